//! Requests sent and not yet answered on one connection: who waits for which id, and
//! what everyone learns when the connection ends. No I/O; the reader task feeds it.

use std::collections::HashMap;

use allot_protocol::{Error, Reply, ServerFrame};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::ClientError;

/// What a waiter receives.
///
/// `One` is far larger than `Batch` since a reply can carry a whole order view; an answer
/// is moved once, from the reader task to its waiter, so it is not worth a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    One(Result<Reply, Error>),
    /// A batch's results, in request order.
    Batch(Vec<Result<Reply, Error>>),
}

pub(crate) type Delivery = Result<Answer, ClientError>;

/// What a request is waiting for: one response, or a batch of `len` responses with ids
/// `id, id + 1, …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    One,
    Batch { len: usize },
}

struct Waiter {
    expect: Expect,
    slot: oneshot::Sender<Delivery>,
    /// In-flight permits, held until the server answers (not merely until the caller
    /// gives up), so the client never has more unanswered requests than the server takes.
    _permit: Option<OwnedSemaphorePermit>,
}

/// The id → waiter map of one connection.
#[derive(Default)]
pub(crate) struct Pending {
    waiters: HashMap<u64, Waiter>,
    /// Set once the connection is over; every later registration fails with it.
    closed: Option<ClientError>,
}

impl Pending {
    pub(crate) fn new() -> Pending {
        Pending::default()
    }

    /// Waits for the answer to request `id` (the first id of a batch).
    pub(crate) fn register(
        &mut self,
        id: u64,
        expect: Expect,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<oneshot::Receiver<Delivery>, ClientError> {
        if let Some(error) = &self.closed {
            return Err(error.clone());
        }
        if self.waiters.contains_key(&id) {
            return Err(ClientError::Protocol(format!("request id {id} is already in flight")));
        }
        let (slot, receiver) = oneshot::channel();
        self.waiters.insert(id, Waiter { expect, slot, _permit: permit });
        Ok(receiver)
    }

    /// Hands a server frame to its waiter. An error means the server broke the protocol
    /// or ended the stream; the caller closes the connection with it.
    pub(crate) fn complete(&mut self, frame: ServerFrame) -> Result<(), ClientError> {
        match frame {
            ServerFrame::Response(response) => {
                self.deliver(response.id, Expect::One, Answer::One(response.result))
            }
            ServerFrame::Batch(responses) => self.complete_batch(responses),
            ServerFrame::Welcome(_) => {
                Err(ClientError::Protocol("a second Welcome on an open stream".into()))
            }
            ServerFrame::Refused(error) => {
                Err(ClientError::ConnectionLost(format!("the server ended the stream: {error}")))
            }
        }
    }

    fn complete_batch(
        &mut self,
        responses: Vec<allot_protocol::Response>,
    ) -> Result<(), ClientError> {
        let Some(first) = responses.first().map(|response| response.id) else {
            return Err(ClientError::Protocol("an empty batch response".into()));
        };
        let out_of_order =
            responses.iter().zip(first..).find(|(response, expected)| response.id != *expected);
        if let Some((response, expected)) = out_of_order {
            let message = format!("batch response has id {} where {expected} belongs", response.id);
            return self.fail_waiter(first, ClientError::Protocol(message));
        }
        let expect = Expect::Batch { len: responses.len() };
        let results = responses.into_iter().map(|response| response.result).collect();
        self.deliver(first, expect, Answer::Batch(results))
    }

    fn deliver(&mut self, id: u64, got: Expect, answer: Answer) -> Result<(), ClientError> {
        let Some(waiter) = self.waiters.get(&id) else {
            return Err(ClientError::Protocol(format!("a response to unknown request id {id}")));
        };
        if waiter.expect != got {
            let message = format!("request {id} expected {:?} but got {got:?}", waiter.expect);
            return self.fail_waiter(id, ClientError::Protocol(message));
        }
        if let Some(waiter) = self.waiters.remove(&id) {
            // The caller may have timed out and gone; the answer is then dropped.
            let _ = waiter.slot.send(Ok(answer));
        }
        Ok(())
    }

    /// Tells request `id` what broke, and reports the same error to the caller.
    fn fail_waiter(&mut self, id: u64, error: ClientError) -> Result<(), ClientError> {
        if let Some(waiter) = self.waiters.remove(&id) {
            let _ = waiter.slot.send(Err(error.clone()));
        }
        Err(error)
    }

    /// The connection is over: every waiter gets `error`, and so does every later
    /// registration. Only the first reason is kept.
    pub(crate) fn close(&mut self, error: ClientError) {
        let error = self.closed.get_or_insert(error).clone();
        for (_, waiter) in self.waiters.drain() {
            let _ = waiter.slot.send(Err(error.clone()));
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Why the connection ended, once it has.
    pub(crate) fn closed(&self) -> Option<&ClientError> {
        self.closed.as_ref()
    }

    /// Requests still unanswered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use allot_protocol::{ErrorCode, Response};

    use super::*;

    fn pong(id: u64) -> Response {
        Response { id, result: Ok(Reply::Pong { server_version: "1".into() }) }
    }

    #[test]
    fn responses_reach_their_waiters_in_any_order() {
        let mut pending = Pending::new();
        let mut first = pending.register(1, Expect::One, None).unwrap();
        let mut second = pending.register(2, Expect::One, None).unwrap();
        let not_found = Error::new(ErrorCode::NotFound, "hold 9");
        let failed = Response { id: 2, result: Err(not_found.clone()) };
        pending.complete(ServerFrame::Response(failed)).unwrap();
        pending.complete(ServerFrame::Response(pong(1))).unwrap();
        assert_eq!(second.try_recv().unwrap(), Ok(Answer::One(Err(not_found))));
        assert!(matches!(first.try_recv().unwrap(), Ok(Answer::One(Ok(Reply::Pong { .. })))));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_batch_answer_reaches_the_waiter_of_its_first_id() {
        let mut pending = Pending::new();
        let mut batch = pending.register(10, Expect::Batch { len: 3 }, None).unwrap();
        let responses = vec![pong(10), pong(11), pong(12)];
        pending.complete(ServerFrame::Batch(responses)).unwrap();
        let Ok(Answer::Batch(results)) = batch.try_recv().unwrap() else { panic!("not a batch") };
        assert_eq!(results.len(), 3);
    }

    #[test]
    fn a_batch_of_the_wrong_length_or_order_is_a_protocol_error_for_its_waiter() {
        let mut pending = Pending::new();
        let mut short = pending.register(10, Expect::Batch { len: 3 }, None).unwrap();
        let error = pending.complete(ServerFrame::Batch(vec![pong(10), pong(11)])).unwrap_err();
        assert!(matches!(error, ClientError::Protocol(_)));
        assert!(matches!(short.try_recv().unwrap(), Err(ClientError::Protocol(_))));
        let mut swapped = pending.register(20, Expect::Batch { len: 2 }, None).unwrap();
        assert!(pending.complete(ServerFrame::Batch(vec![pong(20), pong(22)])).is_err());
        assert!(matches!(swapped.try_recv().unwrap(), Err(ClientError::Protocol(_))));
        assert!(pending.complete(ServerFrame::Batch(vec![])).is_err());
    }

    #[test]
    fn unknown_ids_and_a_second_welcome_are_protocol_errors() {
        let mut pending = Pending::new();
        let error = pending.complete(ServerFrame::Response(pong(99))).unwrap_err();
        assert!(matches!(&error, ClientError::Protocol(m) if m.contains("99")), "{error}");
        let mut one = pending.register(5, Expect::One, None).unwrap();
        assert!(pending.complete(ServerFrame::Batch(vec![pong(5)])).is_err());
        assert!(matches!(one.try_recv().unwrap(), Err(ClientError::Protocol(_))));
        assert!(pending.register(6, Expect::One, None).is_ok());
        assert!(pending.register(6, Expect::One, None).is_err(), "ids are never reused");
    }

    #[test]
    fn closing_fails_every_waiter_and_every_later_registration() {
        let mut pending = Pending::new();
        let mut waiting = pending.register(1, Expect::One, None).unwrap();
        pending.close(ClientError::ConnectionLost("reset".into()));
        pending.close(ClientError::Timeout);
        assert_eq!(waiting.try_recv().unwrap(), Err(ClientError::ConnectionLost("reset".into())));
        assert!(pending.is_closed());
        let late = pending.register(2, Expect::One, None).unwrap_err();
        assert_eq!(late, ClientError::ConnectionLost("reset".into()), "the first reason is kept");
    }

    #[test]
    fn a_refused_frame_mid_stream_ends_it_as_lost() {
        let mut pending = Pending::new();
        let refused = Error::new(ErrorCode::FrameTooLarge, "frame of 9 MiB");
        let error = pending.complete(ServerFrame::Refused(refused)).unwrap_err();
        assert!(error.is_outcome_unknown(), "{error}");
    }

    #[test]
    fn an_answer_to_a_caller_that_gave_up_is_dropped_quietly() {
        let mut pending = Pending::new();
        drop(pending.register(1, Expect::One, None).unwrap());
        assert_eq!(pending.complete(ServerFrame::Response(pong(1))), Ok(()));
        assert_eq!(pending.len(), 0);
    }
}
