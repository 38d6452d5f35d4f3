//! One QUIC connection with one stream: the handshake, a writer task that coalesces
//! frames, a reader task that routes answers to their waiters, and the in-flight bound.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use allot_protocol::codec::{self, decode_server};
use allot_protocol::frame::FrameError;
use allot_protocol::limits::{BATCH_REQUESTS_MAX, FRAME_BYTES_MAX};
use allot_protocol::{
    ClientFrame, Deframer, Error, Hello, PROTOCOL_VERSION, Reply, Request, RequestBody,
    ServerFrame, Welcome,
};
use tokio::sync::{Semaphore, mpsc};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::pending::{Answer, Delivery, Expect, Pending};

/// Bytes asked of the stream per read; many small answers arrive in one read.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Frames queued by callers are written together up to about this many bytes, so a
/// pipelined burst costs one stream write rather than one per request.
const WRITE_COALESCE_BYTES_MAX: usize = 256 * 1024;
/// The most requests in flight whatever the server offers; bounds the waiter map.
const IN_FLIGHT_REQUESTS_CLIENT_MAX: usize = 65_536;

/// QUIC application close codes the client uses.
const CLOSE_CODE_DONE: u32 = 0;
const CLOSE_CODE_PROTOCOL: u32 = 1;

/// What the caller, the reader task and the writer task share.
struct Shared {
    pending: Mutex<Pending>,
    /// One permit per request the server may have unanswered (`in_flight_requests_max`).
    permits: Arc<Semaphore>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere while holding the lock leaves the map consistent: every
        // change to it is a single insert, remove or drain.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the connection for everyone: waiters, later callers, blocked permit takers.
    fn fail(&self, error: ClientError) {
        self.pending().close(error);
        self.permits.close();
    }

    fn is_closed(&self) -> bool {
        self.pending().is_closed()
    }
}

/// A connected, welcomed stream.
pub(crate) struct Session {
    connection: quinn::Connection,
    endpoint: quinn::Endpoint,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    welcome: Welcome,
}

impl Session {
    /// Connects, says `Hello` and waits for `Welcome`. The caller bounds the time.
    pub(crate) async fn open(
        quic: &quinn::ClientConfig,
        config: &ClientConfig,
    ) -> Result<Session, ClientError> {
        let addr = resolve(&config.addr).await?;
        let endpoint = quinn::Endpoint::client(unspecified(addr))
            .map_err(|error| ClientError::Connect(format!("cannot open a UDP socket: {error}")))?;
        let connecting = endpoint
            .connect_with(quic.clone(), addr, &config.server_name)
            .map_err(|error| ClientError::Connect(error.to_string()))?;
        let connection = connecting.await.map_err(|error| connect_error(&error))?;
        let (send, reader, welcome) = handshake(&connection, config)
            .await
            .map_err(|error| tls_rejection(&connection).unwrap_or(error))?;
        tracing::debug!(addr = %addr, role = %welcome.role, "connected to allot {}", welcome.server_version);
        Ok(Session::start(connection, endpoint, send, reader, welcome))
    }

    fn start(
        connection: quinn::Connection,
        endpoint: quinn::Endpoint,
        send: quinn::SendStream,
        reader: FrameReader,
        welcome: Welcome,
    ) -> Session {
        let in_flight = clamp(welcome.limits.in_flight_requests_max, IN_FLIGHT_REQUESTS_CLIENT_MAX);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::new()),
            permits: Arc::new(Semaphore::new(in_flight)),
        });
        let (frames, queued) = mpsc::unbounded_channel();
        tokio::spawn(write_frames(send, queued, shared.clone(), connection.clone()));
        tokio::spawn(read_frames(reader, shared.clone(), connection.clone()));
        Session { connection, endpoint, frames, shared, welcome }
    }

    pub(crate) fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Whether calls can still go out on this connection.
    pub(crate) fn is_open(&self) -> bool {
        !self.shared.is_closed() && self.connection.close_reason().is_none()
    }

    /// Most requests in one batch frame: the server's limit, never more than may be in
    /// flight at once (a bigger frame could never get its permits).
    pub(crate) fn batch_requests_max(&self) -> usize {
        clamp(self.welcome.limits.batch_requests_max, BATCH_REQUESTS_MAX).min(self.in_flight_max())
    }

    fn in_flight_max(&self) -> usize {
        clamp(self.welcome.limits.in_flight_requests_max, IN_FLIGHT_REQUESTS_CLIENT_MAX)
    }

    fn frame_bytes_max(&self) -> usize {
        (self.welcome.limits.frame_bytes_max as usize).min(FRAME_BYTES_MAX)
    }

    /// Sends one request and waits for its answer. Safe to cancel (a timeout): the frame
    /// is either queued whole or not at all.
    pub(crate) async fn call(
        &self,
        id: u64,
        body: RequestBody,
    ) -> Result<Result<Reply, Error>, ClientError> {
        let frame = self.encode(&ClientFrame::Request(Request { id, body }))?;
        match self.send(id, Expect::One, 1, frame).await? {
            Answer::One(result) => Ok(result),
            Answer::Batch(_) => {
                Err(ClientError::Protocol(format!("a batch answer to request {id}")))
            }
        }
    }

    /// Sends requests `first_id, first_id + 1, …` as one batch frame.
    pub(crate) async fn call_batch(
        &self,
        first_id: u64,
        bodies: Vec<RequestBody>,
    ) -> Result<Vec<Result<Reply, Error>>, ClientError> {
        let len = bodies.len();
        if len > self.in_flight_max() {
            return Err(ClientError::Config(format!(
                "a batch of {len} requests is over the server's {} in flight",
                self.in_flight_max()
            )));
        }
        let requests = (first_id..).zip(bodies).map(|(id, body)| Request { id, body }).collect();
        let frame = self.encode(&ClientFrame::Batch(requests))?;
        match self.send(first_id, Expect::Batch { len }, len, frame).await? {
            Answer::Batch(results) => Ok(results),
            Answer::One(_) => {
                Err(ClientError::Protocol(format!("a single answer to batch {first_id}")))
            }
        }
    }

    async fn send(
        &self,
        id: u64,
        expect: Expect,
        permits: usize,
        frame: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        let permit = self
            .shared
            .permits
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| self.closed_error())?;
        let answer = self.shared.pending().register(id, expect, Some(permit))?;
        // No await between registering and queueing: a cancelled caller leaves either
        // nothing behind or a whole frame whose answer is dropped on arrival.
        if self.frames.send(frame).is_err() {
            self.shared.fail(ClientError::ConnectionLost("the writer stopped".into()));
        }
        deliver(answer.await)
    }

    fn closed_error(&self) -> ClientError {
        let closed = self.shared.pending().closed().cloned();
        closed.unwrap_or_else(|| ClientError::ConnectionLost("connection closed".into()))
    }

    fn encode(&self, frame: &ClientFrame) -> Result<Vec<u8>, ClientError> {
        frame_bytes(frame, self.frame_bytes_max())
    }

    /// Closes the connection politely and waits until the server has been told.
    pub(crate) async fn close(&self) {
        self.shared.fail(ClientError::ConnectionLost("the client closed the connection".into()));
        self.connection.close(CLOSE_CODE_DONE.into(), b"done");
        self.endpoint.wait_idle().await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The reader task holds the stream, which would keep the connection alive.
        self.connection.close(CLOSE_CODE_DONE.into(), b"done");
    }
}

fn deliver(
    received: Result<Delivery, tokio::sync::oneshot::error::RecvError>,
) -> Result<Answer, ClientError> {
    match received {
        Ok(delivery) => delivery,
        Err(_) => Err(ClientError::ConnectionLost("the connection ended".into())),
    }
}

/// A server limit as a usable count: at least one, at most `cap`.
fn clamp(limit: u32, cap: usize) -> usize {
    (limit as usize).clamp(1, cap)
}

/// `[u32 length LE][payload]`, refused locally when over the server's frame limit.
pub(crate) fn frame_bytes(frame: &ClientFrame, bytes_max: usize) -> Result<Vec<u8>, ClientError> {
    let mut bytes = Vec::new();
    codec::try_write_frame(frame, bytes_max, &mut bytes).map_err(|error| match error {
        FrameError::TooLarge { length, bytes_max } => ClientError::FrameTooLarge {
            bytes: usize::try_from(length).unwrap_or(usize::MAX),
            bytes_max: usize::try_from(bytes_max).unwrap_or(usize::MAX),
        },
        other => ClientError::Protocol(other.to_string()),
    })?;
    Ok(bytes)
}

fn hello_frame(config: &ClientConfig) -> Result<Vec<u8>, ClientError> {
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        token: config.token.clone(),
        client_name: config.client_name.clone(),
    };
    allot_protocol::check::hello(&hello).map_err(|error| ClientError::Config(error.message))?;
    frame_bytes(&ClientFrame::Hello(hello), FRAME_BYTES_MAX)
}

/// Opens the stream, says `Hello` and reads `Welcome`.
async fn handshake(
    connection: &quinn::Connection,
    config: &ClientConfig,
) -> Result<(quinn::SendStream, FrameReader, Welcome), ClientError> {
    let (mut send, recv) = connection
        .open_bi()
        .await
        .map_err(|error| ClientError::Connect(format!("cannot open a stream: {error}")))?;
    let mut reader = FrameReader::new(recv);
    send.write_all(&hello_frame(config)?)
        .await
        .map_err(|error| ClientError::Connect(format!("cannot send Hello: {error}")))?;
    let welcome = read_welcome(&mut reader).await?;
    Ok((send, reader, welcome))
}

/// In TLS 1.3 the client finishes its side of the handshake before the server judges
/// the client certificate, so a refused certificate shows up only as the connection
/// closing during our Hello; its close reason carries the TLS alert.
fn tls_rejection(connection: &quinn::Connection) -> Option<ClientError> {
    let reason = connection.close_reason()?;
    match connect_error(&reason) {
        tls @ ClientError::Tls(_) => Some(tls),
        _ => None,
    }
}

async fn read_welcome(reader: &mut FrameReader) -> Result<Welcome, ClientError> {
    let frame = reader.next().await.map_err(|error| match error {
        ClientError::ConnectionLost(reason) => {
            ClientError::Connect(format!("during the handshake: {reason}"))
        }
        other => other,
    })?;
    match frame {
        Some(ServerFrame::Welcome(welcome)) if welcome.protocol_version == PROTOCOL_VERSION => {
            Ok(welcome)
        }
        Some(ServerFrame::Welcome(welcome)) => Err(ClientError::Protocol(format!(
            "the server welcomed protocol version {}, this client speaks {PROTOCOL_VERSION}",
            welcome.protocol_version
        ))),
        Some(ServerFrame::Refused(error)) => Err(ClientError::Refused(error)),
        Some(_) => Err(ClientError::Protocol(
            "the server answered Hello with something other than Welcome".into(),
        )),
        None => {
            Err(ClientError::Connect("the server closed the stream during the handshake".into()))
        }
    }
}

async fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    let mut addrs = tokio::net::lookup_host(addr)
        .await
        .map_err(|error| ClientError::Connect(format!("cannot resolve {addr}: {error}")))?;
    addrs.next().ok_or_else(|| ClientError::Connect(format!("{addr} resolves to no address")))
}

/// The wildcard address of the server address's family, port chosen by the system.
fn unspecified(server: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = if server.is_ipv6() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// TLS failures arrive as QUIC crypto errors (codes 0x100–0x1ff carry the TLS alert).
fn connect_error(error: &quinn::ConnectionError) -> ClientError {
    let is_crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    let tls = match error {
        quinn::ConnectionError::TransportError(transport) => is_crypto(transport.code),
        quinn::ConnectionError::ConnectionClosed(close) => is_crypto(close.error_code),
        _ => false,
    };
    if tls { ClientError::Tls(error.to_string()) } else { ClientError::Connect(error.to_string()) }
}

/// Server frames off the receiving half of the stream.
struct FrameReader {
    recv: quinn::RecvStream,
    deframer: Deframer,
    buffer: Vec<u8>,
}

impl FrameReader {
    fn new(recv: quinn::RecvStream) -> FrameReader {
        FrameReader { recv, deframer: Deframer::new(), buffer: vec![0; READ_BUFFER_BYTES] }
    }

    /// The next frame; `None` when the server finished the stream between frames.
    async fn next(&mut self) -> Result<Option<ServerFrame>, ClientError> {
        loop {
            let payload = self
                .deframer
                .next_frame()
                .map_err(|error| ClientError::Protocol(error.to_string()))?;
            if let Some(payload) = payload {
                return decode_server(payload)
                    .map(Some)
                    .map_err(|error| ClientError::Protocol(error.to_string()));
            }
            match self.recv.read(&mut self.buffer).await {
                Ok(Some(read)) => self.deframer.push(&self.buffer[..read]),
                Ok(None) => {
                    self.deframer
                        .finish()
                        .map_err(|error| ClientError::Protocol(error.to_string()))?;
                    return Ok(None);
                }
                Err(error) => return Err(ClientError::ConnectionLost(error.to_string())),
            }
        }
    }
}

/// Routes every answer to its waiter until the stream ends or breaks the protocol.
async fn read_frames(mut reader: FrameReader, shared: Arc<Shared>, connection: quinn::Connection) {
    let error = loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break ClientError::ConnectionLost("the server finished the stream".into()),
            Err(error) => break error,
        };
        if let Err(error) = shared.pending().complete(frame) {
            break error;
        }
    };
    if let ClientError::Protocol(reason) = &error {
        tracing::warn!(%reason, "dropping the connection: the server broke the protocol");
        connection.close(CLOSE_CODE_PROTOCOL.into(), b"protocol violation");
    } else {
        tracing::debug!(%error, "connection ended");
    }
    shared.fail(error);
}

/// Writes queued frames, coalescing whatever has accumulated, until every sender is gone.
async fn write_frames(
    mut send: quinn::SendStream,
    mut queued: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
    connection: quinn::Connection,
) {
    while let Some(mut bytes) = queued.recv().await {
        while bytes.len() < WRITE_COALESCE_BYTES_MAX {
            match queued.try_recv() {
                Ok(more) => bytes.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(error) = send.write_all(&bytes).await {
            shared.fail(ClientError::ConnectionLost(format!("cannot write: {error}")));
            connection.close(CLOSE_CODE_DONE.into(), b"write failed");
            return;
        }
    }
    let _ = send.finish();
}

#[cfg(test)]
mod tests {
    use allot_protocol::codec::decode_client;
    use allot_protocol::frame::frame_length;

    use super::*;

    #[test]
    fn a_frame_is_its_length_then_its_payload() {
        let frame = ClientFrame::Request(Request { id: 7, body: RequestBody::Ping });
        let bytes = frame_bytes(&frame, FRAME_BYTES_MAX).unwrap();
        let length = frame_length(bytes[..4].try_into().unwrap(), FRAME_BYTES_MAX).unwrap();
        assert_eq!(length, bytes.len() - 4);
        assert_eq!(decode_client(&bytes[4..]).unwrap(), frame);
        assert_eq!(
            bytes,
            allot_protocol::codec::frame(&frame),
            "the same bytes as the codec's own"
        );
    }

    #[test]
    fn a_frame_over_the_server_limit_is_refused_before_sending() {
        let frame = ClientFrame::Request(Request { id: 1, body: RequestBody::Ping });
        let error = frame_bytes(&frame, 4).unwrap_err();
        assert!(matches!(error, ClientError::FrameTooLarge { bytes_max: 4, .. }), "{error}");
    }

    #[test]
    fn limits_of_zero_still_allow_one_request() {
        assert_eq!(clamp(0, 10), 1);
        assert_eq!(clamp(5, 10), 5);
        assert_eq!(clamp(u32::MAX, 10), 10);
    }
}
