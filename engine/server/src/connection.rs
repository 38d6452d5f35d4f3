//! One QUIC connection: a slot under the connection limit (or one of those kept for the
//! admin role), the TLS handshake within its time limit, then a task per bidirectional
//! stream, all sharing one in-flight budget in requests and in bytes, until the peer goes
//! away or the server shuts down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quinn::{Connection, Incoming, VarInt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::Shared;
use super::budget::{Budget, Buffers};
use super::config::Limits;
use super::stream::{self, StreamContext};

/// The application close code when the server shuts down.
pub const CLOSE_SHUTDOWN_CODE: VarInt = VarInt::from_u32(0);
/// The reason sent with it.
pub const CLOSE_SHUTDOWN_REASON: &[u8] = b"server shutting down";
/// The application close code of a connection in a slot kept for the admin role that
/// did not say Hello as an admin in time.
pub const CLOSE_CONNECTIONS_FULL_CODE: VarInt = VarInt::from_u32(1);
/// The reason sent with it.
pub const CLOSE_CONNECTIONS_FULL_REASON: &[u8] =
    b"connection limit reached; the connections left are kept for the admin role";

/// A connection's place under the connection limit, given back when it is dropped.
pub struct Slot {
    /// One of the slots kept for the admin role: the connection is served only if its
    /// Hello is an admin's.
    reserved: bool,
    _permit: OwnedSemaphorePermit,
}

/// The ordinary connection slots, and those kept for operators when they are all taken,
/// as databases keep connections for their superusers.
pub struct Slots {
    ordinary: Arc<Semaphore>,
    reserved: Arc<Semaphore>,
}

impl Slots {
    pub fn new(limits: &Limits) -> Slots {
        Slots {
            ordinary: Arc::new(Semaphore::new(limits.connections_max as usize)),
            reserved: Arc::new(Semaphore::new(limits.admin_connections_reserved as usize)),
        }
    }

    /// A free slot, ordinary first; `None` when every one is taken.
    pub fn take(&self) -> Option<Slot> {
        if let Ok(permit) = self.ordinary.clone().try_acquire_owned() {
            return Some(Slot { reserved: false, _permit: permit });
        }
        let permit = self.reserved.clone().try_acquire_owned().ok()?;
        Some(Slot { reserved: true, _permit: permit })
    }
}

/// Why the connection's serving loop ended.
#[derive(PartialEq, Eq)]
enum End {
    Stopping,
    Lost,
    /// A reserved slot not claimed by an admin Hello in time.
    NotAdmin,
}

/// Serves one connection; `slot` is given back when this returns.
pub async fn serve(
    incoming: Incoming,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    slot: Slot,
) {
    let remote = incoming.remote_address();
    let Some(connection) = handshake(incoming, &shared).await else {
        return;
    };
    tracing::debug!(%remote, "connection open");
    let cert_verified = shared.mutual_tls && connection.peer_identity().is_some();
    let in_flight =
        Arc::new(Semaphore::new(shared.limits.in_flight_requests_per_connection_max as usize));
    let connection_bytes = usize::try_from(shared.limits.connection_buffer_bytes_max);
    let budget = Arc::new(Budget::new(connection_bytes.unwrap_or(usize::MAX)));
    let buffers = Buffers::new(budget, shared.buffers.clone());
    let admin_only = slot.reserved.then(|| Arc::new(AtomicBool::new(false)));
    let admitted = || admin_only.as_ref().is_none_or(|seen| seen.load(Ordering::Acquire));
    // A reserved slot must be claimed by an admin Hello within the handshake time.
    let claim_by = tokio::time::sleep(shared.limits.handshake_timeout());
    tokio::pin!(claim_by);
    let mut streams = JoinSet::new();
    let mut stopped = stop.clone();
    let end = loop {
        tokio::select! {
            biased;
            _ = stopped.wait_for(|stopping| *stopping) => break End::Stopping,
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let context = StreamContext {
                        shared: shared.clone(),
                        in_flight: in_flight.clone(),
                        buffers: buffers.clone(),
                        admin_only: admin_only.clone(),
                        cert_verified,
                        stop: stop.clone(),
                    };
                    streams.spawn(stream::serve(send, recv, context));
                }
                Err(error) => {
                    tracing::debug!(%remote, %error, "connection ended");
                    break End::Lost;
                }
            },
            // Reaps finished streams, so a long-lived connection does not pile them up.
            // On a reserved slot, a stream that ended before an admin Hello was refused.
            Some(_) = streams.join_next(), if !streams.is_empty() => {
                if !admitted() {
                    break End::NotAdmin;
                }
            }
            _ = &mut claim_by, if !admitted() => break End::NotAdmin,
        }
    };
    if end == End::NotAdmin {
        tracing::debug!(%remote, "reserved connection slot not claimed by an admin; closing");
        connection.close(CLOSE_CONNECTIONS_FULL_CODE, CLOSE_CONNECTIONS_FULL_REASON);
    }
    while streams.join_next().await.is_some() {}
    if end == End::Stopping {
        connection.close(CLOSE_SHUTDOWN_CODE, CLOSE_SHUTDOWN_REASON);
    }
    drop(slot);
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
