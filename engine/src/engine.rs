//! The embedded API: open a data directory, submit commands and queries from any thread
//! or async task, and shut down cleanly. The server, the benches and the tests all go
//! through this.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use allot_snapshots::recovery::DataDir;
use allot_snapshots::storage::{FsStorage, Storage};
use allot_snapshots::wal::SEGMENT_BYTES_TARGET_DEFAULT;
use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::clock::{Clock, SystemClock};
use crate::pending::Pending;
use crate::open_report::{OpenError, RecoveryReport};
use crate::recover::{Recovered, recover};
use crate::sequencer::{Sequencer, Work};
use crate::snapshotter::Snapshotter;
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
    /// Zero turns automatic snapshots off (`Engine::snapshot` still works).
    pub snapshot_every_records: u64,
    pub snapshot_on_shutdown: bool,
    /// Routing weights to route with; `None` keeps those the state has (the defaults,
    /// until weights were once configured).
    pub routing_weights: Option<RoutingWeights>,
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
            snapshot_on_shutdown: true,
            routing_weights: None,
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
        if self.ingress_queue_len_max == 0 {
            return Err(OpenError::Config("ingress_queue_len_max must be at least 1".into()));
        }
        if self.batch_requests_max == 0 {
            return Err(OpenError::Config("batch_requests_max must be at least 1".into()));
        }
        Ok(())
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
        let Recovered { state, report } = recover(&dir)?;
        tracing::info!(?report, dir = %data_dir.display(), "recovered");
        let wal = dir
            .wal_writer(report.last_position + 1, config.segment_bytes_target)
            .map_err(OpenError::Storage)?;
        let (ingress, ingress_rx) = crossbeam_channel::bounded(config.ingress_queue_len_max);
        let (shadow, shadow_rx) = crossbeam_channel::bounded(SHADOW_BATCHES_QUEUED_MAX);
        let snapshotter = Snapshotter {
            state: state.clone(),
            position: report.last_position,
            store: dir.snapshot_store(),
            snapshot_every_records: config.snapshot_every_records,
            snapshot_on_stop: config.snapshot_on_shutdown,
            records_since_snapshot: report.records_replayed,
            inbox: shadow_rx,
        };
        let sequencer = Sequencer {
            last_now_ms: state.last_applied_ms(),
            state,
            wal,
            clock: config.clock.clone(),
            ingress: ingress_rx,
            shadow,
            batch_requests_max: config.batch_requests_max,
            failure: None,
            configured_weights: config.routing_weights,
        };
        let snapshot_thread = spawn("allot-snapshotter", move || snapshotter.run())?;
        let writer_thread = spawn("allot-writer", move || sequencer.run())?;
        let inner = Inner {
            ingress,
            threads: Mutex::new(vec![writer_thread, snapshot_thread]),
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
    /// (writing a final snapshot if configured) and releases the directory lock. Every
    /// handle sees `Unavailable` afterwards. Calling it twice is harmless.
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
        let _ = self.ingress.send(Work::Shutdown);
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("an engine thread panicked");
            }
        }
        drop(self.locked_dir.lock().unwrap_or_else(|poison| poison.into_inner()).take());
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

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, OpenError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|error| OpenError::Thread(format!("cannot start thread {name}: {error}")))
}
