//! The embedded API: open a data directory, submit commands and queries from any thread
//! or async task, and shut down cleanly. The server, the benches and the tests all go
//! through this.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use allot_snapshots::recovery::DataDir;
use allot_snapshots::storage::{FsStorage, Storage};
use allot_snapshots::wal::SEGMENT_BYTES_TARGET_DEFAULT;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::clock::{Clock, SystemClock};
use crate::open_report::{OpenError, RecoveryReport};
use crate::pending::Pending;
use crate::recover::{Recovered, recover};
use crate::sequencer::{Sequencer, Work};
#[cfg(feature = "fault-injection")]
pub use crate::snapshotter::ShadowFault;
use crate::snapshotter::{ShadowHealth, SnapshotPolicy, Snapshotter, Unsaved};
use allot_core::idempotency::IdempotencyPolicy;
use allot_core::limits::{IDEMPOTENCY_KEYS_MAX, TableCaps};
use allot_core::routing::RoutingWeights;
use allot_core::{Command, EngineError, Outcome, Query, Reply, Request};

/// Default ingress queue length; a full queue answers `Overloaded`.
pub const INGRESS_QUEUE_LEN_DEFAULT: usize = 65_536;
/// Default most requests the writer applies per batch (and so per fsync).
pub const BATCH_REQUESTS_MAX_DEFAULT: usize = 16_384;
/// Most requests one `submit_batch` call may carry.
pub const SUBMIT_BATCH_REQUESTS_MAX: usize = 4_096;
/// Default log records between automatic snapshots.
pub const SNAPSHOT_EVERY_RECORDS_DEFAULT: u64 = 4_000_000;
/// Default log bytes between automatic snapshots: one log segment, which replays in a few
/// seconds, so a restart never replays much more however the records are sized.
pub const SNAPSHOT_EVERY_LOG_BYTES_DEFAULT: u64 = SEGMENT_BYTES_TARGET_DEFAULT;
/// Default longest time (engine clock) a write waits for a snapshot to cover it.
pub const SNAPSHOT_EVERY_MS_DEFAULT: u64 = 5 * 60 * 1_000;
/// Default longest `shutdown` takes: well inside what a process supervisor waits before
/// it kills, with the server's answer drain before it.
pub const SHUTDOWN_DEADLINE_MS_DEFAULT: u64 = 10_000;
/// Durable batches queued for the snapshotter before the writer waits for it.
pub const SHADOW_BATCHES_QUEUED_MAX: usize = 65_536;

/// How an engine runs; `Default` gives working production settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    pub ingress_queue_len_max: usize,
    pub batch_requests_max: usize,
    pub segment_bytes_target: u64,
    /// Automatic snapshots follow whichever of these three is reached first, once
    /// anything is unsaved; a zero turns its trigger off, and three zeros turn automatic
    /// snapshots off (`Engine::snapshot` still works).
    pub snapshot_every_records: u64,
    pub snapshot_every_log_bytes: u64,
    /// Engine-clock milliseconds since the last snapshot.
    pub snapshot_every_ms: u64,
    /// A final snapshot at shutdown, when the last one's duration says it fits before
    /// the deadline; otherwise the log alone covers everything.
    pub snapshot_on_shutdown: bool,
    /// Longest `shutdown` waits; a final snapshot still being written past it goes on in
    /// the background, holding the directory lock until it ends (or the process exits).
    pub shutdown_deadline_ms: u64,
    /// Routing weights to route with; `None` keeps those the state has (the defaults,
    /// until weights were once configured).
    pub routing_weights: Option<RoutingWeights>,
    /// How long idempotency keys are remembered and how many at most
    /// (`keys_max` ≤ `allot_core::limits::IDEMPOTENCY_KEYS_MAX`). Replay runs under it
    /// too, so the recovered table is the one the live engine would have.
    pub idempotency: IdempotencyPolicy,
    /// Most SKUs, live holds and orders; a command that would add one past its cap is
    /// `Overloaded`. Each at most its ceiling in `allot_core::limits`.
    pub caps: TableCaps,
    /// A fault to inject into the snapshotter (tests of fail-stop only).
    #[cfg(feature = "fault-injection")]
    pub shadow_fault: Option<ShadowFault>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            storage: Arc::new(FsStorage),
            clock: Arc::new(SystemClock),
            ingress_queue_len_max: INGRESS_QUEUE_LEN_DEFAULT,
            batch_requests_max: BATCH_REQUESTS_MAX_DEFAULT,
            segment_bytes_target: SEGMENT_BYTES_TARGET_DEFAULT,
            snapshot_every_records: SNAPSHOT_EVERY_RECORDS_DEFAULT,
            snapshot_every_log_bytes: SNAPSHOT_EVERY_LOG_BYTES_DEFAULT,
            snapshot_every_ms: SNAPSHOT_EVERY_MS_DEFAULT,
            snapshot_on_shutdown: true,
            shutdown_deadline_ms: SHUTDOWN_DEADLINE_MS_DEFAULT,
            routing_weights: None,
            idempotency: IdempotencyPolicy::default(),
            caps: TableCaps::CONFIGURED_DEFAULT,
            #[cfg(feature = "fault-injection")]
            shadow_fault: None,
        }
    }
}

impl EngineConfig {
    /// A queue or batch of zero would accept nothing; refuse it at open rather than
    /// answer every request `Overloaded`.
    fn check(&self) -> Result<(), OpenError> {
        if let Some(weights) = &self.routing_weights {
            allot_core::routing::check_weights(weights).map_err(OpenError::Config)?;
        }
        let keys_max = self.idempotency.keys_max;
        if keys_max == 0 || keys_max > IDEMPOTENCY_KEYS_MAX {
            return Err(OpenError::Config(format!(
                "idempotency keys_max must be 1 to {IDEMPOTENCY_KEYS_MAX}, not {keys_max}"
            )));
        }
        self.caps.check().map_err(OpenError::Config)?;
        if self.ingress_queue_len_max == 0 {
            return Err(OpenError::Config("ingress_queue_len_max must be at least 1".into()));
        }
        if self.batch_requests_max == 0 {
            return Err(OpenError::Config("batch_requests_max must be at least 1".into()));
        }
        Ok(())
    }

    fn snapshot_policy(&self) -> SnapshotPolicy {
        SnapshotPolicy {
            every_records: self.snapshot_every_records,
            every_log_bytes: self.snapshot_every_log_bytes,
            every_ms: self.snapshot_every_ms,
            on_stop: self.snapshot_on_shutdown,
        }
    }

    fn shutdown_deadline(&self) -> Duration {
        Duration::from_millis(self.shutdown_deadline_ms)
    }
}

/// A handle to a running engine; clone it freely, one per thread or task.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    ingress: Sender<Work>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Disconnects once both threads have ended (each holds a sender), so shutdown can
    /// wait for them with a deadline.
    threads_done: Receiver<()>,
    shutdown_deadline: Duration,
    /// Held until both threads have finished, so no other engine opens the directory
    /// while a final snapshot or log trim is still being written.
    locked_dir: Mutex<Option<DataDir>>,
    recovery: RecoveryReport,
    data_dir: PathBuf,
}

impl Engine {
    /// Locks `data_dir`, recovers the state from its snapshot and log, and starts the
    /// writer and snapshotter threads.
    pub fn open(data_dir: impl AsRef<Path>, config: EngineConfig) -> Result<Engine, OpenError> {
        let data_dir = data_dir.as_ref();
        config.check()?;
        let dir = DataDir::open(config.storage.clone(), data_dir)?;
        let Recovered { state, report } = recover(&dir, config.idempotency)?;
        tracing::info!(?report, dir = %data_dir.display(), "recovered");
        let wal = dir
            .wal_writer(report.last_position + 1, config.segment_bytes_target)
            .map_err(OpenError::Storage)?;
        let (ingress, ingress_rx) = crossbeam_channel::bounded(config.ingress_queue_len_max);
        let (shadow, shadow_rx) = crossbeam_channel::bounded(SHADOW_BATCHES_QUEUED_MAX);
        let shadow_health = Arc::new(ShadowHealth::default());
        let mut snapshotter = Snapshotter {
            state: state.clone(),
            position: report.last_position,
            store: dir.snapshot_store(),
            policy: config.snapshot_policy(),
            unsaved: Unsaved {
                records: report.records_replayed,
                log_bytes: report.log_bytes_replayed,
                since_ms: config.clock.now_ms(),
            },
            clock: config.clock.clone(),
            inbox: shadow_rx,
            health: shadow_health.clone(),
            last_duration: None,
            backoff: Default::default(),
            #[cfg(feature = "fault-injection")]
            fault: config.shadow_fault,
        };
        // Only the writer refuses at the caps: the shadow state applies what the writer
        // accepted, and replay what was accepted before.
        let mut state = state;
        state.set_caps(config.caps);
        let sequencer = Sequencer {
            last_now_ms: state.last_applied_ms(),
            state,
            wal,
            clock: config.clock.clone(),
            ingress: ingress_rx,
            shadow,
            shadow_health,
            shutdown_deadline: config.shutdown_deadline(),
            batch_requests_max: config.batch_requests_max,
            failure: None,
            configured_weights: config.routing_weights,
        };
        // Before anything is served: a start that replayed a trigger's worth of log (what
        // recovery replayed counts as unsaved) snapshots it first. Otherwise a process
        // that keeps dying sooner than a snapshot takes would replay more at every start.
        snapshotter.snapshot_if_due();
        let (done, threads_done) = crossbeam_channel::bounded::<()>(0);
        let snapshot_done = done.clone();
        let snapshot_thread = spawn("allot-snapshotter", move || {
            let _done = snapshot_done;
            snapshotter.run();
        })?;
        let writer_thread = spawn("allot-writer", move || {
            let _done = done;
            sequencer.run();
        })?;
        let inner = Inner {
            ingress,
            threads: Mutex::new(vec![writer_thread, snapshot_thread]),
            threads_done,
            shutdown_deadline: config.shutdown_deadline(),
            locked_dir: Mutex::new(Some(dir)),
            recovery: report,
            data_dir: data_dir.to_owned(),
        };
        Ok(Engine { inner: Arc::new(inner) })
    }

    /// Submits one command. The answer arrives once the command is durable; a full queue
    /// answers `Overloaded` at once, and nothing was applied.
    pub fn submit(&self, request: Request) -> Pending<Reply> {
        if let Err(error) = check_submitted(&request) {
            return Pending::ready(Err(error));
        }
        let (reply, receiver) = oneshot::channel();
        self.push(Work::One(request, reply), receiver)
    }

    /// Submits many commands as one unit of work: they are applied in order, in one
    /// batch, and answered together. Each gets its own outcome.
    pub fn submit_batch(&self, requests: Vec<Request>) -> Pending<Vec<Outcome>> {
        if requests.len() > SUBMIT_BATCH_REQUESTS_MAX {
            let message =
                format!("{} requests in a batch, over {SUBMIT_BATCH_REQUESTS_MAX}", requests.len());
            return Pending::ready(Err(EngineError::InvalidArgument(message)));
        }
        if let Some(error) = requests.iter().find_map(|request| check_submitted(request).err()) {
            return Pending::ready(Err(error));
        }
        let (reply, receiver) = oneshot::channel();
        self.push(Work::Many(requests, reply), receiver)
    }

    /// Answers a query in order with the commands around it, once everything it could
    /// have seen is durable.
    pub fn query(&self, query: Query) -> Pending<Reply> {
        let (reply, receiver) = oneshot::channel();
        self.push(Work::Query(query, reply), receiver)
    }

    /// The canonical digest of the live state (for tests and operators comparing replicas).
    pub fn digest(&self) -> Pending<u64> {
        let (reply, receiver) = oneshot::channel();
        self.push(Work::Digest(reply), receiver)
    }

    /// Writes a snapshot of everything durable so far; answers with its log position.
    pub fn snapshot(&self) -> Pending<u64> {
        let (reply, receiver) = oneshot::channel();
        self.push(Work::Snapshot(reply), receiver)
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Stops taking work, answers everything already queued, lets the snapshotter finish
    /// (writing a final snapshot if configured and it fits) and releases the directory
    /// lock. Returns within `shutdown_deadline_ms`: a final snapshot still being written
    /// then ends in the background and releases the lock itself. Every handle sees
    /// `Unavailable` afterwards. Calling it twice is harmless.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn push<T>(
        &self,
        work: Work,
        receiver: oneshot::Receiver<Result<T, EngineError>>,
    ) -> Pending<T> {
        match self.inner.ingress.try_send(work) {
            Ok(()) => Pending::waiting(receiver),
            Err(TrySendError::Full(_)) => {
                Pending::ready(Err(EngineError::Overloaded("ingress queue is full".into())))
            }
            Err(TrySendError::Disconnected(_)) => {
                Pending::ready(Err(EngineError::Unavailable("the engine has stopped".into())))
            }
        }
    }
}

impl Inner {
    fn shutdown(&self) {
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|poison| poison.into_inner()));
        if threads.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.shutdown_deadline;
        let _ = self.ingress.send(Work::Shutdown(deadline));
        let locked_dir = self.locked_dir.lock().unwrap_or_else(|poison| poison.into_inner()).take();
        let finish = move || {
            join_all(threads);
            drop(locked_dir);
        };
        match self.threads_done.recv_deadline(deadline) {
            Err(RecvTimeoutError::Disconnected) => finish(),
            Ok(()) => unreachable!("nothing is ever sent on threads_done"),
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    deadline_ms = self.shutdown_deadline.as_millis() as u64,
                    "shutdown deadline passed: the final snapshot goes on in the background; \
                     the log already holds everything"
                );
                // Detached: it holds the directory lock until the snapshot is written.
                let finisher =
                    std::thread::Builder::new().name("allot-shutdown".into()).spawn(finish);
                if let Err(error) = finisher {
                    tracing::error!(%error, "cannot start the shutdown thread; the lock is released");
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Ticks come only from the sequencer's clock, and routing weights from the
/// configuration.
fn check_submitted(request: &Request) -> Result<(), EngineError> {
    if matches!(request.command, Command::Tick | Command::SetRoutingWeights(_)) {
        let name = request.command.name();
        return Err(EngineError::InvalidArgument(format!("{name} is issued by the engine itself")));
    }
    Ok(())
}

fn join_all(threads: Vec<JoinHandle<()>>) {
    for thread in threads {
        if thread.join().is_err() {
            tracing::error!("an engine thread panicked");
        }
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, OpenError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|error| OpenError::Thread(format!("cannot start thread {name}: {error}")))
}
