//! The snapshotter: a shadow copy of the state, fed the same durable log as the writer,
//! that serialises itself to a snapshot file on its own thread.
//!
//! The writer never stops for a snapshot: it only hands each durable batch over a
//! channel (as LMAX's replicas follow the journal). The same feed can later drive a hot
//! standby on another machine.
//!
//! The shadow is also the proof that the log reproduces the live state: if it panics or
//! disagrees with the writer, it says so through [`ShadowHealth`] and the writer stops
//! acknowledging, because a state its log no longer rebuilds must not take more writes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use allot_snapshots::snapshot::SnapshotStore;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::codec;
use allot_core::{Counters, EngineError, Request, State};

/// Longest the snapshotter sleeps with nothing to do, so a snapshot that time makes due
/// is never later than this.
pub const SNAPSHOTTER_WAKE_MS_MAX: u64 = 1_000;
/// First wait after a failed automatic snapshot before the next attempt.
pub const SNAPSHOT_RETRY_DELAY_MS_MIN: u64 = 1_000;
/// Longest wait between attempts while snapshots keep failing.
pub const SNAPSHOT_RETRY_DELAY_MS_MAX: u64 = 300_000;

/// Messages from the writer, in log order.
#[derive(Debug)]
pub(crate) enum ShadowMessage {
    /// A durable batch: its requests, all applied at `time_ms`, the first logged at
    /// `first_position`; `log_bytes` is what they took in the log, and `expected` what the
    /// writer's state looked like after them.
    Batch {
        first_position: u64,
        time_ms: u64,
        requests: Vec<Request>,
        log_bytes: u64,
        expected: Summary,
    },
    /// Write a snapshot now and answer with its log position.
    Snapshot(oneshot::Sender<Result<u64, EngineError>>),
    /// The writer has stopped; write a final snapshot only if `final_snapshot` (never
    /// after a storage failure: fail-stop means nothing more is written) and only if the
    /// last one's duration says it ends before `deadline`: past it, the log is enough.
    Stop { final_snapshot: bool, deadline: Instant },
}

/// A few numbers the writer's state and the shadow's must agree on after every batch:
/// each read in constant time (the writer computes them for every batch, so nothing here
/// may walk a table), and any lost, doubled or differently applied request moves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    last_applied_ms: u64,
    counters: Counters,
    holds: usize,
    orders: usize,
}

impl Summary {
    pub fn of(state: &State) -> Summary {
        Summary {
            last_applied_ms: state.last_applied_ms(),
            counters: state.counters(),
            holds: state.hold_count(),
            orders: state.order_count(),
        }
    }
}

/// How the snapshotter tells the writer it can no longer vouch for the log: set once,
/// by a divergence or a panic, and read by the writer before each batch.
#[derive(Debug, Default)]
pub(crate) struct ShadowHealth {
    failure: OnceLock<String>,
}

impl ShadowHealth {
    pub fn fail(&self, why: String) {
        tracing::error!(%why, "snapshotter failed: the engine stops acknowledging requests");
        let _first = self.failure.set(why);
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
}

/// Reports a panic of the thread that holds it (dropped while unwinding).
struct PanicWatch(Arc<ShadowHealth>);

impl Drop for PanicWatch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("the snapshotter panicked".into());
        }
    }
}

/// Faults a test can inject into the shadow, to prove the writer fail-stops on them.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowFault {
    /// Panic when the record at this log position arrives.
    PanicAt(u64),
    /// Leave out the record at this log position, as a shadow that lost it would.
    SkipAt(u64),
}

/// When automatic snapshots are due; a zero turns its trigger off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotPolicy {
    pub every_records: u64,
    pub every_log_bytes: u64,
    /// Engine-clock milliseconds since the last snapshot, once anything is unsaved.
    pub every_ms: u64,
    pub on_stop: bool,
}

/// What no snapshot covers yet. It starts with what recovery replayed, so after a crash
/// loop that replay counts toward the next snapshot and recovery time stays bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unsaved {
    pub records: u64,
    pub log_bytes: u64,
    /// Engine time of the last snapshot, or of the start when none was written since.
    pub since_ms: u64,
}

/// Growing waits between failed automatic snapshots, so a failing disk does not get a
/// full encode of the state after every batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    delay_ms: u64,
    retry_at_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { delay_ms: SNAPSHOT_RETRY_DELAY_MS_MIN, retry_at_ms: 0 }
    }
}

impl Backoff {
    fn failed(&mut self, now_ms: u64) {
        self.retry_at_ms = now_ms.saturating_add(self.delay_ms);
        self.delay_ms = (self.delay_ms * 2).min(SNAPSHOT_RETRY_DELAY_MS_MAX);
    }
}

pub(crate) struct Snapshotter {
    pub state: State,
    /// Log position the shadow state has applied up to.
    pub position: u64,
    pub store: SnapshotStore,
    pub policy: SnapshotPolicy,
    pub unsaved: Unsaved,
    pub clock: Arc<dyn Clock>,
    pub inbox: Receiver<ShadowMessage>,
    pub health: Arc<ShadowHealth>,
    /// How long the last snapshot took: the estimate for a final one at shutdown.
    pub last_duration: Option<Duration>,
    pub backoff: Backoff,
    #[cfg(feature = "fault-injection")]
    pub fault: Option<ShadowFault>,
}

impl Snapshotter {
    /// Runs until the writer stops, or until the shadow can no longer vouch for the log.
    pub fn run(mut self) {
        let _watch = PanicWatch(self.health.clone());
        // A log that grew past the policy during a crash loop is covered at once, not
        // only after the next write.
        self.snapshot_if_due();
        let wake = Duration::from_millis(SNAPSHOTTER_WAKE_MS_MAX);
        loop {
            let go_on = match self.inbox.recv_timeout(wake) {
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) => {
                    self.snapshot_if_due();
                    true
                }
                Err(RecvTimeoutError::Disconnected) => false,
            };
            if !go_on {
                return;
            }
        }
    }

    /// Acts on one message from the writer; returns whether to go on following the log.
    fn handle(&mut self, message: ShadowMessage) -> bool {
        match message {
            ShadowMessage::Batch { first_position, time_ms, requests, log_bytes, expected } => {
                assert_eq!(first_position, self.position + 1, "shadow follows the log in order");
                if let Err(divergence) = self.apply(&requests, time_ms, expected) {
                    self.health.fail(divergence);
                    return false;
                }
                self.unsaved.log_bytes += log_bytes;
                self.snapshot_if_due();
                true
            }
            ShadowMessage::Snapshot(reply) => {
                let _ = reply.send(self.write());
                true
            }
            ShadowMessage::Stop { final_snapshot, deadline } => {
                if final_snapshot && self.policy.on_stop && self.unsaved.records > 0 {
                    self.final_snapshot(deadline);
                }
                false
            }
        }
    }

    /// Applies a durable batch; a request that changes nothing here, or a state that ends
    /// up different from the writer's, means the log no longer reproduces the live state.
    fn apply(
        &mut self,
        requests: &[Request],
        time_ms: u64,
        expected: Summary,
    ) -> Result<(), String> {
        for request in requests {
            let position = self.position + 1;
            self.position = position;
            self.unsaved.records += 1;
            if self.skip_injected(position) {
                continue;
            }
            // The writer logged it because it changed the state; the shadow must agree.
            if !self.state.apply(request, time_ms).changed {
                let name = request.command.name();
                return Err(format!(
                    "shadow state diverged at position {position}: {name} changed nothing"
                ));
            }
        }
        let found = Summary::of(&self.state);
        if found != expected {
            let position = self.position;
            return Err(format!(
                "shadow state diverged by position {position}: {found:?}, the writer has {expected:?}"
            ));
        }
        Ok(())
    }

    #[cfg(feature = "fault-injection")]
    fn skip_injected(&self, position: u64) -> bool {
        match self.fault {
            Some(ShadowFault::PanicAt(at)) if at == position => panic!("injected at {position}"),
            Some(ShadowFault::SkipAt(at)) => at == position,
            _ => false,
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    fn skip_injected(&self, _position: u64) -> bool {
        false
    }

    /// Writes a snapshot when a trigger is reached (or retries one after its backoff).
    pub fn snapshot_if_due(&mut self) {
        let now_ms = self.clock.now_ms();
        if self.is_due(now_ms) && now_ms >= self.backoff.retry_at_ms {
            let _ = self.write();
        }
    }

    fn is_due(&self, now_ms: u64) -> bool {
        let (policy, unsaved) = (self.policy, self.unsaved);
        if unsaved.records == 0 {
            return false;
        }
        let reached = |every: u64, so_far: u64| every > 0 && so_far >= every;
        reached(policy.every_records, unsaved.records)
            || reached(policy.every_log_bytes, unsaved.log_bytes)
            || reached(policy.every_ms, now_ms.saturating_sub(unsaved.since_ms))
    }

    /// A final snapshot only if the last one's duration says it fits before `deadline`;
    /// otherwise the log already holds everything, and restart replays it.
    fn final_snapshot(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.last_duration {
            Some(estimate) if estimate > left => tracing::warn!(
                estimate_ms = estimate.as_millis() as u64,
                left_ms = left.as_millis() as u64,
                "no final snapshot: it would not end before the shutdown deadline"
            ),
            _ => drop(self.write()),
        }
    }

    fn write(&mut self) -> Result<u64, EngineError> {
        let started = Instant::now();
        let body = codec::encode_state(&self.state);
        let encoded = started.elapsed();
        let result = self.store.write(self.position, &body);
        let now_ms = self.clock.now_ms();
        match result {
            Ok(path) => {
                self.last_duration = Some(started.elapsed());
                self.unsaved = Unsaved { records: 0, log_bytes: 0, since_ms: now_ms };
                self.backoff = Backoff::default();
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
                self.backoff.failed(now_ms);
                tracing::error!(
                    %error,
                    position = self.position,
                    retry_in_ms = self.backoff.retry_at_ms.saturating_sub(now_ms),
                    "snapshot failed"
                );
                Err(EngineError::Unavailable(format!("snapshot failed: {error}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_their_limit() {
        let mut backoff = Backoff::default();
        let mut waits = Vec::new();
        for _ in 0..12 {
            backoff.failed(0);
            waits.push(backoff.retry_at_ms);
        }
        assert_eq!(waits[0], SNAPSHOT_RETRY_DELAY_MS_MIN);
        assert_eq!(waits[1], 2 * SNAPSHOT_RETRY_DELAY_MS_MIN);
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]), "{waits:?}");
        assert_eq!(*waits.last().expect("waits"), SNAPSHOT_RETRY_DELAY_MS_MAX);
    }
}
