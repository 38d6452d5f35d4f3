//! One QUIC connection: the TLS handshake within its time limit, then a task per
//! bidirectional stream, all sharing one in-flight request budget, until the peer goes
//! away or the server shuts down.

use std::sync::Arc;

use quinn::{Connection, Incoming, VarInt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::Shared;
use super::stream::{self, StreamContext};

/// The application close code when the server shuts down.
pub const CLOSE_SHUTDOWN_CODE: VarInt = VarInt::from_u32(0);
/// The reason sent with it.
pub const CLOSE_SHUTDOWN_REASON: &[u8] = b"server shutting down";

/// Serves one connection; `_slot` is its place under `connections_max`, given back when
/// this returns.
pub async fn serve(
    incoming: Incoming,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let remote = incoming.remote_address();
    let Some(connection) = handshake(incoming, &shared).await else {
        return;
    };
    tracing::debug!(%remote, "connection open");
    let cert_verified = shared.mutual_tls && connection.peer_identity().is_some();
    let in_flight =
        Arc::new(Semaphore::new(shared.limits.in_flight_requests_per_connection_max as usize));
    let mut streams = JoinSet::new();
    let mut stopped = stop.clone();
    let stopping = loop {
        tokio::select! {
            biased;
            _ = stopped.wait_for(|stopping| *stopping) => break true,
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let context = StreamContext {
                        shared: shared.clone(),
                        in_flight: in_flight.clone(),
                        cert_verified,
                        stop: stop.clone(),
                    };
                    streams.spawn(stream::serve(send, recv, context));
                }
                Err(error) => {
                    tracing::debug!(%remote, %error, "connection ended");
                    break false;
                }
            },
            // Reaps finished streams, so a long-lived connection does not pile them up.
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    };
    while streams.join_next().await.is_some() {}
    if stopping {
        connection.close(CLOSE_SHUTDOWN_CODE, CLOSE_SHUTDOWN_REASON);
    }
}

/// The connection once TLS is done, or `None` if it failed or took too long.
async fn handshake(incoming: Incoming, shared: &Shared) -> Option<Connection> {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            tracing::debug!(%remote, %error, "connection failed before the handshake");
            return None;
        }
    };
    match tokio::time::timeout(shared.limits.handshake_timeout(), connecting).await {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "handshake timed out");
            None
        }
    }
}
