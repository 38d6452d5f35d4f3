//! `allotd`'s network edge (DESIGN §3–§4): a quinn endpoint that authenticates each
//! stream's Hello, decodes framed requests, hands them to the [`Engine`] and writes the
//! answers back, under a limit for everything a peer can make it hold.
//!
//! A [`Server`] owns its engine, endpoint and tasks and nothing process-wide, so several
//! can run in one process (the load harness starts one in-process).

pub mod config;
pub mod memory_budget;

mod auth;
mod budget;
mod connection;
mod dev_files;
mod dispatch;
mod frames;
mod stream;
mod tls;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use allot_protocol::ServerLimits;
use allot_protocol::limits::{BATCH_REQUESTS_MAX, LINES_PER_HOLD_MAX};
use quinn::Endpoint;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use config::{ConfigError, Flags, Limits, ServerConfig, TlsSource, TokenConfig};
pub use dev_files::{DEV_CERT_FILE_NAME, DEV_KEY_FILE_NAME, DEV_TOKEN_FILE_NAME};
pub use dispatch::SERVER_VERSION;

use allot_engine::{Engine, OpenError};

/// How long shutdown waits for the endpoint to send its close frames.
const ENDPOINT_CLOSE_WAIT_MS: u64 = 1_000;

/// Why a server could not start.
#[derive(Debug)]
pub enum ServerError {
    /// A setting is unusable; the message names it.
    Config(String),
    /// The engine could not open its data directory (locked, corrupt, unreadable).
    Engine(OpenError),
    /// The certificate, key or client CA could not be used.
    Tls(String),
    /// A file could not be read or written.
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// The UDP socket could not be bound.
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl ServerError {
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> ServerError {
        let path = path.to_owned();
        move |source| ServerError::Io { action, path, source }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Config(message) => write!(f, "configuration: {message}"),
            ServerError::Engine(error) => write!(f, "cannot open the data directory: {error}"),
            ServerError::Tls(message) => write!(f, "TLS: {message}"),
            ServerError::Io { action, path, source } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Engine(error) => Some(error),
            ServerError::Io { source, .. } | ServerError::Bind { source, .. } => Some(source),
            ServerError::Config(_) | ServerError::Tls(_) => None,
        }
    }
}

impl From<ConfigError> for ServerError {
    fn from(error: ConfigError) -> Self {
        ServerError::Config(error.0)
    }
}

/// What every connection and stream of a server shares.
pub(crate) struct Shared {
    engine: Engine,
    tokens: auth::Tokens,
    limits: Limits,
    /// The limits a `Welcome` announces.
    welcome_limits: ServerLimits,
    /// A client CA is configured, so a peer certificate means a verified one.
    mutual_tls: bool,
    /// The bytes all connections together may hold in frames and answers.
    buffers: Arc<budget::Budget>,
}

/// A running server.
pub struct Server {
    endpoint: Endpoint,
    engine: Engine,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept_loop: Option<JoinHandle<()>>,
    buffers: Arc<budget::Budget>,
}

impl Server {
    /// Opens the engine, prepares TLS (making the development files if needed) and
    /// starts serving. Must be called inside a tokio runtime with I/O and time enabled.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        config.check()?;
        let limits = config.limits;
        let listen = config.listen;
        let mutual_tls = config.client_ca.is_some();
        let (engine, tokens, quic) =
            tokio::task::spawn_blocking(move || prepare(&config))
                .await
                .map_err(|error| ServerError::Config(format!("start-up task failed: {error}")))??;
        let endpoint = match Endpoint::server(quic, listen) {
            Ok(endpoint) => endpoint,
            Err(source) => {
                stop_engine(engine).await;
                return Err(ServerError::Bind { addr: listen, source });
            }
        };
        let local_addr = endpoint.local_addr().unwrap_or(listen);
        let welcome_limits = ServerLimits {
            frame_bytes_max: limits.frame_bytes_max,
            batch_requests_max: BATCH_REQUESTS_MAX as u32,
            in_flight_requests_max: limits.in_flight_requests_per_connection_max,
            lines_per_hold_max: LINES_PER_HOLD_MAX as u32,
        };
        let server_bytes = usize::try_from(limits.server_buffer_bytes_max).unwrap_or(usize::MAX);
        let buffers = Arc::new(budget::Budget::new(server_bytes));
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            tokens,
            limits,
            welcome_limits,
            mutual_tls,
            buffers: buffers.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let accept_loop = tokio::spawn(accept_loop(endpoint.clone(), shared, stopped));
        tracing::info!(%local_addr, "listening");
        Ok(Server { endpoint, engine, local_addr, stop, accept_loop: Some(accept_loop), buffers })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Bytes the connections hold now in unfinished frames and answers not yet handed to
    /// QUIC, under `limits.server_buffer_bytes_max`.
    pub fn buffered_bytes(&self) -> usize {
        self.buffers.used()
    }

    /// The engine behind the server, for in-process use next to the network.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stops accepting, lets the answers in flight go out (within `shutdown_drain_ms`),
    /// closes every connection, then shuts the engine down (its final snapshot included).
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        let _ = self.stop.send(true);
        if let Some(accept_loop) = self.accept_loop.take() {
            let _ = accept_loop.await;
        }
        self.endpoint.close(connection::CLOSE_SHUTDOWN_CODE, connection::CLOSE_SHUTDOWN_REASON);
        let close_wait = Duration::from_millis(ENDPOINT_CLOSE_WAIT_MS);
        let _ = tokio::time::timeout(close_wait, self.endpoint.wait_idle()).await;
        stop_engine(self.engine.clone()).await;
        tracing::info!("stopped");
    }
}

impl Drop for Server {
    /// A server dropped without `shutdown` still stops serving; the engine shuts down when
    /// its last handle goes.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.endpoint.close(connection::CLOSE_SHUTDOWN_CODE, connection::CLOSE_SHUTDOWN_REASON);
    }
}

/// The blocking part of start-up: recovery, and the files TLS and tokens need.
fn prepare(
    config: &ServerConfig,
) -> Result<(Engine, auth::Tokens, quinn::ServerConfig), ServerError> {
    let engine =
        Engine::open(&config.data_dir, config.engine.clone()).map_err(ServerError::Engine)?;
    let rest = auth::Tokens::from_config(config).and_then(|tokens| {
        let crypto = tls::server_crypto(config)?;
        Ok((tokens, tls::quic_server_config(crypto, &config.limits)?))
    });
    match rest {
        Ok((tokens, quic)) => Ok((engine, tokens, quic)),
        Err(error) => {
            engine.shutdown();
            Err(error)
        }
    }
}

/// `Engine::shutdown` joins threads; it must not block a runtime worker.
async fn stop_engine(engine: Engine) {
    if tokio::task::spawn_blocking(move || engine.shutdown()).await.is_err() {
        tracing::error!("the engine shutdown task failed");
    }
}

async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let slots = connection::Slots::new(&shared.limits);
    let mut connections = JoinSet::new();
    // Warn once per stretch at the limit, not once per refused connection.
    let mut at_limit = false;
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            biased;
            _ = stopped.wait_for(|stopping| *stopping) => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                match slots.take() {
                    Some(slot) => {
                        at_limit = false;
                        let serve = connection::serve(incoming, shared.clone(), stop.clone(), slot);
                        connections.spawn(serve);
                    }
                    None => {
                        if !at_limit {
                            tracing::warn!(
                                connections_max = shared.limits.connections_max,
                                "connection limit reached; refusing new connections"
                            );
                        }
                        at_limit = true;
                        incoming.refuse();
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drain(connections, shared.limits.shutdown_drain()).await;
}

/// Gives the connections `within` to finish their answers, then cuts the rest off.
async fn drain(mut connections: JoinSet<()>, within: Duration) {
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(within, finished).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still busy at the end of the shutdown drain; closing them"
        );
        connections.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
