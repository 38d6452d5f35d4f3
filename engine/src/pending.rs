//! A reply that is not there yet: awaitable from async code, or waited on from a thread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use allot_core::EngineError;

/// Resolves once the engine has answered, which for a command means once it is durable.
#[derive(Debug)]
pub struct Pending<T> {
    state: PendingState<T>,
}

#[derive(Debug)]
enum PendingState<T> {
    Ready(Option<Result<T, EngineError>>),
    Waiting(oneshot::Receiver<Result<T, EngineError>>),
}

impl<T> Pending<T> {
    pub(crate) fn ready(value: Result<T, EngineError>) -> Pending<T> {
        Pending { state: PendingState::Ready(Some(value)) }
    }

    pub(crate) fn waiting(receiver: oneshot::Receiver<Result<T, EngineError>>) -> Pending<T> {
        Pending { state: PendingState::Waiting(receiver) }
    }

    /// Blocks the calling thread until the answer arrives. Do not call it from inside an
    /// async runtime; `.await` the `Pending` there instead.
    pub fn wait(self) -> Result<T, EngineError> {
        match self.state {
            PendingState::Ready(value) => value.expect("a ready Pending is taken once"),
            PendingState::Waiting(receiver) => {
                receiver.blocking_recv().unwrap_or_else(|_| Err(stopped()))
            }
        }
    }
}

fn stopped() -> EngineError {
    EngineError::Unavailable("the engine stopped before answering".into())
}

// Nothing in a `Pending` is ever pinned in place: the ready value is moved out and the
// receiver is itself `Unpin`.
impl<T> Unpin for Pending<T> {}

impl<T> Future for Pending<T> {
    type Output = Result<T, EngineError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            PendingState::Ready(value) => {
                Poll::Ready(value.take().expect("polled after completion"))
            }
            PendingState::Waiting(receiver) => Pin::new(receiver)
                .poll(context)
                .map(|result| result.unwrap_or_else(|_| Err(stopped()))),
        }
    }
}
