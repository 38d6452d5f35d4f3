//! One bidirectional stream (DESIGN §4): the Hello handshake, then requests and batches,
//! many in flight at once, until the peer finishes the stream, breaks the protocol, or
//! the server shuts down.
//!
//! Whatever a peer sends ends at worst in a `Refused` frame and the end of this stream;
//! the connection's other streams and other clients are not touched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use allot_protocol::{
    ClientFrame, Error, ErrorCode, Hello, PROTOCOL_VERSION, Role, ServerFrame, Welcome, check,
};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{Semaphore, mpsc, watch};

use super::Shared;
use super::budget::{Admission, Buffers, Kind};
use super::dispatch::{self, SERVER_VERSION};
use super::frames::{FrameEnd, FrameReader};
use super::writer::{self, ANSWERS_QUEUED_PER_STREAM_MAX, Outgoing};

/// The application error code sent with STOP_SENDING when the server stops reading a
/// stream: it refused the stream (the `Refused` frame says why) or is shutting down.
const STOP_READING_CODE: VarInt = VarInt::from_u32(0);

/// What a stream shares with its connection.
pub struct StreamContext {
    pub shared: Arc<Shared>,
    /// Requests the connection may have unanswered, over all its streams.
    pub in_flight: Arc<Semaphore>,
    /// The bytes the connection (and the server) may hold in frames and answers.
    pub buffers: Buffers,
    /// Set on a connection in a slot kept for the admin role: only an admin Hello is
    /// served, and one that is sets the flag.
    pub admin_only: Option<Arc<AtomicBool>>,
    /// The peer presented a client certificate that verified against the configured CA.
    pub cert_verified: bool,
    pub stop: watch::Receiver<bool>,
}

/// Why a stream stops reading.
enum Ending {
    Frame(FrameEnd),
    Refuse(Error),
    Stopping,
}

/// Serves one stream until it ends; the answers in flight are written first.
pub async fn serve(send: SendStream, mut recv: RecvStream, context: StreamContext) {
    let (answers, outbox) = mpsc::channel(ANSWERS_QUEUED_PER_STREAM_MAX);
    let linger = context.shared.limits.shutdown_drain();
    let reader = async move {
        let ending = read_requests(&mut recv, &context, &answers).await;
        end(&mut recv, ending, &answers).await;
        // `answers` drops here; the writer ends once the tasks still answering finish.
    };
    tokio::join!(reader, writer::write_answers(send, outbox, linger));
}

async fn read_requests(
    recv: &mut RecvStream,
    context: &StreamContext,
    answers: &mpsc::Sender<Outgoing>,
) -> Ending {
    let limits = &context.shared.limits;
    let held = context.buffers.empty();
    let mut frames =
        FrameReader::new(limits.frame_bytes_max as usize, held, limits.frame_timeout());
    let mut stop = context.stop.clone();
    let role = match greet(&mut frames, recv, context, &mut stop, answers).await {
        Ok(role) => role,
        Err(ending) => return ending,
    };
    loop {
        let frame = match next_frame(&mut frames, recv, &mut stop).await {
            Ok(frame) => frame,
            Err(ending) => return ending,
        };
        if let Err(ending) = handle(frame, role, context, &mut stop, answers).await {
            return ending;
        }
    }
}

async fn greet(
    frames: &mut FrameReader,
    recv: &mut RecvStream,
    context: &StreamContext,
    stop: &mut watch::Receiver<bool>,
    answers: &mpsc::Sender<Outgoing>,
) -> Result<Role, Ending> {
    let ClientFrame::Hello(hello) = next_frame(frames, recv, stop).await? else {
        return Err(Ending::Refuse(Error::invalid("the first frame on a stream must be Hello")));
    };
    let (role, credential) = handshake(&hello, context).map_err(Ending::Refuse)?;
    admit_on_reserved_slot(role, context).map_err(Ending::Refuse)?;
    tracing::debug!(client = %hello.client_name, credential, %role, "stream opened");
    let welcome = ServerFrame::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        server_version: SERVER_VERSION.to_owned(),
        role,
        limits: context.shared.welcome_limits,
    });
    let _ = answers.send(Outgoing::frame(&welcome, &context.buffers)).await;
    Ok(role)
}

/// On a connection slot kept for operators, only the admin role is served.
fn admit_on_reserved_slot(role: Role, context: &StreamContext) -> Result<(), Error> {
    let Some(admin_seen) = &context.admin_only else { return Ok(()) };
    if role != Role::Admin {
        let message = "the server is at its connection limit; the connections left are kept \
                       for the admin role";
        return Err(Error::new(ErrorCode::Overloaded, message));
    }
    admin_seen.store(true, Ordering::Release);
    Ok(())
}

/// The role a Hello earns and the name of its credential, or why it is refused.
fn handshake<'a>(hello: &Hello, context: &'a StreamContext) -> Result<(Role, &'a str), Error> {
    check::hello(hello)?;
    if hello.protocol_version != PROTOCOL_VERSION {
        let message = format!(
            "protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}",
            hello.protocol_version
        );
        return Err(Error::new(ErrorCode::UnsupportedVersion, message));
    }
    context.shared.tokens.authenticate(&hello.token, context.cert_verified).ok_or_else(|| {
        let message = if hello.token.is_empty() {
            "no token and no verified client certificate"
        } else {
            "unknown token"
        };
        Error::new(ErrorCode::Unauthorized, message)
    })
}

async fn handle(
    frame: ClientFrame,
    role: Role,
    context: &StreamContext,
    stop: &mut watch::Receiver<bool>,
    answers: &mpsc::Sender<Outgoing>,
) -> Result<(), Ending> {
    match frame {
        ClientFrame::Hello(_) => {
            Err(Ending::Refuse(Error::invalid("Hello may only be the first frame of a stream")))
        }
        ClientFrame::Request(request) => {
            let admission = acquire(context, 1, stop).await?;
            dispatch::one(&context.shared, role, request, admission, answers).await;
            Ok(())
        }
        ClientFrame::Batch(requests) => {
            check::batch(&requests).map_err(Ending::Refuse)?;
            let count = u32::try_from(requests.len()).unwrap_or(u32::MAX);
            let admission = acquire(context, count, stop).await?;
            dispatch::batch(&context.shared, role, requests, admission, answers);
            Ok(())
        }
    }
}

/// Waits for room in the connection's in-flight budget, in bytes (answers not yet handed
/// to QUIC, frames being read: the connection's and the server's) and in requests: this
/// is where a stream stops reading while the answers it is owed go out. A batch larger
/// than the whole request budget takes all of it.
async fn acquire(
    context: &StreamContext,
    requests: u32,
    stop: &mut watch::Receiver<bool>,
) -> Result<Admission, Ending> {
    let budget = context.shared.limits.in_flight_requests_per_connection_max;
    let permits = async {
        context.buffers.room(Kind::Answers).await;
        context.in_flight.clone().acquire_many_owned(requests.min(budget)).await
    };
    let permit = tokio::select! {
        biased;
        _ = stop.wait_for(|stopping| *stopping) => return Err(Ending::Stopping),
        permit = permits => permit.map_err(|_| Ending::Stopping)?,
    };
    Ok(Admission::new(permit, requests as usize, &context.buffers))
}

async fn next_frame(
    frames: &mut FrameReader,
    recv: &mut RecvStream,
    stop: &mut watch::Receiver<bool>,
) -> Result<ClientFrame, Ending> {
    tokio::select! {
        biased;
        _ = stop.wait_for(|stopping| *stopping) => Err(Ending::Stopping),
        frame = frames.next(recv) => frame.map_err(|end| match end {
            FrameEnd::Refused(error) => Ending::Refuse(error),
            other => Ending::Frame(other),
        }),
    }
}

async fn end(recv: &mut RecvStream, ending: Ending, answers: &mpsc::Sender<Outgoing>) {
    match ending {
        Ending::Refuse(error) => {
            tracing::debug!(%error, "stream refused");
            let _ = recv.stop(STOP_READING_CODE);
            let _ = answers.send(Outgoing::Refuse(error)).await;
        }
        Ending::Stopping => {
            let _ = recv.stop(STOP_READING_CODE);
        }
        Ending::Frame(FrameEnd::Truncated { buffered }) => {
            tracing::debug!(buffered, "stream ended inside a frame");
        }
        Ending::Frame(FrameEnd::Finished | FrameEnd::Broken | FrameEnd::Refused(_)) => {}
    }
}
