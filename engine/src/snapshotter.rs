//! The snapshotter: a shadow copy of the state, fed the same durable log as the writer,
//! that serialises itself to a snapshot file on its own thread.
//!
//! The writer never stops for a snapshot: it only hands each durable batch over a
//! channel (as LMAX's replicas follow the journal). The same feed can later drive a hot
//! standby on another machine.

use std::time::Instant;

use allot_snapshots::snapshot::SnapshotStore;
use crossbeam_channel::Receiver;
use tokio::sync::oneshot;

use crate::codec;
use allot_core::{EngineError, Request, State};

/// Messages from the writer, in log order.
#[derive(Debug)]
pub(crate) enum ShadowMessage {
    /// A durable batch: its requests, all applied at `time_ms`, the first logged at
    /// `first_position`.
    Batch { first_position: u64, time_ms: u64, requests: Vec<Request> },
    /// Write a snapshot now and answer with its log position.
    Snapshot(oneshot::Sender<Result<u64, EngineError>>),
    /// The writer has stopped; write a final snapshot only if `final_snapshot` (never
    /// after a storage failure: fail-stop means nothing more is written).
    Stop { final_snapshot: bool },
}

pub(crate) struct Snapshotter {
    pub state: State,
    /// Log position the shadow state has applied up to.
    pub position: u64,
    pub store: SnapshotStore,
    /// Records between automatic snapshots; zero turns them off.
    pub snapshot_every_records: u64,
    pub snapshot_on_stop: bool,
    /// Records no snapshot covers yet. It starts at the records replayed at open, so
    /// after a crash loop they count toward the next snapshot and recovery time stays
    /// bounded.
    pub records_since_snapshot: u64,
    pub inbox: Receiver<ShadowMessage>,
}

impl Snapshotter {
    pub fn run(mut self) {
        while let Ok(message) = self.inbox.recv() {
            match message {
                ShadowMessage::Batch { first_position, time_ms, requests } => {
                    assert_eq!(
                        first_position,
                        self.position + 1,
                        "shadow follows the log in order"
                    );
                    self.apply(&requests, time_ms);
                    let due = self.snapshot_every_records > 0
                        && self.records_since_snapshot >= self.snapshot_every_records;
                    if due {
                        let _ = self.write();
                    }
                }
                ShadowMessage::Snapshot(reply) => {
                    let _ = reply.send(self.write());
                }
                ShadowMessage::Stop { final_snapshot } => {
                    let unsaved = self.records_since_snapshot > 0;
                    if final_snapshot && self.snapshot_on_stop && unsaved {
                        let _ = self.write();
                    }
                    return;
                }
            }
        }
    }

    fn apply(&mut self, requests: &[Request], time_ms: u64) {
        for request in requests {
            let applied = self.state.apply(request, time_ms);
            // The writer logged it because it changed the state; the shadow must agree,
            // or replay would not reproduce the live state.
            assert!(applied.changed, "shadow state diverged at position {}", self.position + 1);
            self.position += 1;
            self.records_since_snapshot += 1;
        }
    }

    fn write(&mut self) -> Result<u64, EngineError> {
        let started = Instant::now();
        let body = codec::encode_state(&self.state);
        let encoded = started.elapsed();
        match self.store.write(self.position, &body) {
            Ok(path) => {
                self.records_since_snapshot = 0;
                tracing::info!(
                    position = self.position,
                    bytes = body.len(),
                    encode_ms = encoded.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    path = %path.display(),
                    "snapshot written"
                );
                Ok(self.position)
            }
            Err(error) => {
                // The log still holds everything, so nothing acknowledged is at risk;
                // the log simply is not trimmed until a snapshot succeeds.
                tracing::error!(%error, position = self.position, "snapshot failed");
                Err(EngineError::Unavailable(format!("snapshot failed: {error}")))
            }
        }
    }
}
