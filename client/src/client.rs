//! The client handle: one shared connection, reconnected lazily, with pipelining,
//! batches, per-request timeouts and retries under the same idempotency key.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use allot_protocol::{Error, Reply, RequestBody, Role, ServerLimits, Welcome};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::config::ClientConfig;
use crate::connection::Session;
use crate::error::ClientError;
use crate::key::KeyGenerator;
use crate::tls;

/// A connection to an allot server, shared by every clone.
///
/// Clones are cheap and share one QUIC connection; calls from many tasks are pipelined
/// on it, up to the server's `in_flight_requests_max` at once (further calls wait for a
/// free slot). When the connection is lost, calls in flight fail with
/// [`ClientError::ConnectionLost`] and the next call reconnects.
///
/// Every command gets an idempotency key (generated unless given), and a call whose
/// outcome is unknown (timeout, lost connection) is retried with that same key up to
/// `ClientConfig::retries` times, so it is applied exactly once. `Overloaded` is
/// returned as is: it means nothing was applied.
///
/// ```no_run
/// # async fn example() -> Result<(), allot_client::ClientError> {
/// use allot_client::{Client, ClientConfig};
/// use allot_client::protocol::LineRequest;
///
/// let client = Client::connect(ClientConfig::from_data_dir("127.0.0.1:7411", "data")?).await?;
/// let line = LineRequest { sku: "SKU-1".into(), location: "LDN".into(), quantity: 2 };
/// let placed = client.reserve(vec![line], None).await?;
/// client.commit_hold(placed.hold, "O-1001").await?;
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    quic: quinn::ClientConfig,
    keys: KeyGenerator,
    /// Request ids are chosen here, unique over every connection this client makes.
    next_id: AtomicU64,
    current: Mutex<Option<Arc<Session>>>,
    /// The latest handshake's answer; kept when its connection is lost.
    welcome: Mutex<Welcome>,
    /// Held while connecting, so concurrent callers wait for one reconnect.
    connecting: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or clone: a poisoned lock still
    // holds a consistent value.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    /// Connects and completes the handshake, within `config.connect_timeout`.
    ///
    /// Fails with [`ClientError::Refused`] when the server refuses the token or the
    /// protocol version, [`ClientError::Tls`] when the certificate is not trusted, and
    /// [`ClientError::Connect`] when the server cannot be reached.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), allot_client::ClientError> {
    /// use allot_client::{Client, ClientConfig, Trust};
    ///
    /// let trust = Trust::PinnedCert("/var/lib/allot/dev-cert.pem".into());
    /// let client = Client::connect(ClientConfig::new("127.0.0.1:7411", trust, "token")).await?;
    /// println!("connected as {}", client.role());
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let quic = tls::quic_config(&config)?;
        let keys = KeyGenerator::new()?;
        let session = open(&quic, &config).await?;
        let welcome = session.welcome().clone();
        let inner = Inner {
            config,
            quic,
            keys,
            next_id: AtomicU64::new(1),
            current: Mutex::new(Some(Arc::new(session))),
            welcome: Mutex::new(welcome),
            connecting: tokio::sync::Mutex::new(()),
        };
        Ok(Client { inner: Arc::new(inner) })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The server's answer to the latest handshake: version, role and limits.
    pub fn welcome(&self) -> Welcome {
        lock(&self.inner.welcome).clone()
    }

    /// What this client's token may do.
    pub fn role(&self) -> Role {
        lock(&self.inner.welcome).role
    }

    /// The limits the server enforces on this connection.
    pub fn limits(&self) -> ServerLimits {
        lock(&self.inner.welcome).limits
    }

    /// A fresh idempotency key, unique to this client instance. Keep it to retry a
    /// command yourself (after a restart, say) with the `*_with_key` calls.
    pub fn new_key(&self) -> String {
        self.inner.keys.next()
    }

    /// Sends any request and returns the server's reply; a command without an
    /// idempotency key gets one. A server error is [`ClientError::Server`].
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// use allot_client::protocol::{Query, Reply, RequestBody};
    ///
    /// if let Reply::Locations(all) = client.send(RequestBody::Query(Query::Locations)).await? {
    ///     println!("{} locations", all.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, body: RequestBody) -> Result<Reply, ClientError> {
        let body = self.with_key(body);
        let body = &body;
        let result = self.retrying(move || self.send_once(body.clone())).await?;
        result.map_err(ClientError::Server)
    }

    /// Sends many requests in batch frames (each at most the server's
    /// `batch_requests_max`), pipelined, and returns one result per request, in order.
    /// Commands without an idempotency key get one.
    ///
    /// The outer error means a whole frame failed even after retries (the outcome of its
    /// commands is then unknown unless you gave them keys to retry with).
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// use allot_client::protocol::{Command, RequestBody};
    ///
    /// let receipts = (1..=100).map(|n| RequestBody::Command {
    ///     idempotency_key: None,
    ///     command: Command::Receive { sku: format!("SKU-{n}"), location: "LDN".into(), quantity: 10 },
    /// });
    /// for (n, result) in client.batch(receipts.collect()).await?.into_iter().enumerate() {
    ///     if let Err(error) = result {
    ///         eprintln!("receipt {n}: {error}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn batch(
        &self,
        bodies: Vec<RequestBody>,
    ) -> Result<Vec<Result<Reply, ClientError>>, ClientError> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let frame_max = self.session().await?.batch_requests_max();
        let mut frames = JoinSet::new();
        let mut bodies = bodies.into_iter().map(|body| self.with_key(body)).peekable();
        let mut count = 0;
        while bodies.peek().is_some() {
            let frame: Vec<RequestBody> = bodies.by_ref().take(frame_max).collect();
            let client = self.clone();
            frames.spawn(async move { (count, client.send_frame(frame).await) });
            count += 1;
        }
        let mut answers: Vec<Option<Vec<Result<Reply, Error>>>> = vec![None; count];
        while let Some(joined) = frames.join_next().await {
            let (index, answer) = joined
                .map_err(|error| ClientError::ConnectionLost(format!("batch task: {error}")))?;
            answers[index] = Some(answer?);
        }
        let results = answers.into_iter().flatten().flatten();
        Ok(results.map(|result| result.map_err(ClientError::Server)).collect())
    }

    /// Closes the connection and waits until the server has been told. A later call
    /// opens a new connection.
    pub async fn close(&self) {
        let session = lock(&self.inner.current).take();
        if let Some(session) = session {
            session.close().await;
        }
    }

    /// One frame's worth of requests (split further if the server's limits shrank or
    /// the frame is over its byte limit), with retries.
    async fn send_frame(
        &self,
        bodies: Vec<RequestBody>,
    ) -> Result<Vec<Result<Reply, Error>>, ClientError> {
        let mut results = Vec::with_capacity(bodies.len());
        // Parts still to send, the next one last, so halves go out in request order.
        let mut parts = vec![bodies];
        while let Some(part) = parts.pop() {
            if part.len() > self.session().await?.batch_requests_max() {
                halve(&mut parts, part);
                continue;
            }
            let sent = {
                let part = &part;
                self.retrying(move || self.batch_once(part.clone())).await
            };
            match sent {
                Ok(mut answered) => results.append(&mut answered),
                Err(ClientError::FrameTooLarge { .. }) if part.len() > 1 => halve(&mut parts, part),
                Err(error) => return Err(error),
            }
        }
        Ok(results)
    }

    async fn send_once(&self, body: RequestBody) -> Result<Result<Reply, Error>, ClientError> {
        let session = self.session().await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let answer = timeout(self.inner.config.request_timeout, session.call(id, body)).await;
        answer.unwrap_or(Err(ClientError::Timeout))
    }

    async fn batch_once(
        &self,
        bodies: Vec<RequestBody>,
    ) -> Result<Vec<Result<Reply, Error>>, ClientError> {
        let session = self.session().await?;
        let first = self.inner.next_id.fetch_add(bodies.len() as u64, Ordering::Relaxed);
        let answer =
            timeout(self.inner.config.request_timeout, session.call_batch(first, bodies)).await;
        answer.unwrap_or(Err(ClientError::Timeout))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut retries = 0;
        loop {
            let error = match attempt().await {
                Err(error) if error.is_transient() => error,
                done => return done,
            };
            if retries >= self.inner.config.retries {
                return Err(error);
            }
            retries += 1;
            tracing::debug!(%error, retries, "retrying");
            tokio::time::sleep(self.inner.config.retry_backoff * retries).await;
        }
    }

    /// The open connection, or a new one when it was lost.
    async fn session(&self) -> Result<Arc<Session>, ClientError> {
        if let Some(session) = self.open_session() {
            return Ok(session);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(session) = self.open_session() {
            return Ok(session);
        }
        tracing::debug!(addr = %self.inner.config.addr, "reconnecting");
        let session = Arc::new(open(&self.inner.quic, &self.inner.config).await?);
        *lock(&self.inner.welcome) = session.welcome().clone();
        *lock(&self.inner.current) = Some(session.clone());
        Ok(session)
    }

    fn open_session(&self) -> Option<Arc<Session>> {
        lock(&self.inner.current).as_ref().filter(|session| session.is_open()).cloned()
    }

    /// Gives a command without an idempotency key a fresh one.
    fn with_key(&self, body: RequestBody) -> RequestBody {
        match body {
            RequestBody::Command { idempotency_key: None, command } => {
                RequestBody::Command { idempotency_key: Some(self.new_key()), command }
            }
            other => other,
        }
    }
}

/// Splits `part` in two, pushed so that its first half is sent first.
fn halve(parts: &mut Vec<Vec<RequestBody>>, mut part: Vec<RequestBody>) {
    let second = part.split_off(part.len() / 2);
    parts.push(second);
    parts.push(part);
}

async fn open(quic: &quinn::ClientConfig, config: &ClientConfig) -> Result<Session, ClientError> {
    match timeout(config.connect_timeout, Session::open(quic, config)).await {
        Ok(opened) => opened,
        Err(_) => Err(ClientError::Connect(format!(
            "no connection to {} within {} ms",
            config.addr,
            config.connect_timeout.as_millis()
        ))),
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.config.addr)
            .field("role", &self.role())
            .finish_non_exhaustive()
    }
}
