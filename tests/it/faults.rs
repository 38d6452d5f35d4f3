//! Fail-stop on storage errors: after a failed log write or fsync the engine acknowledges
//! nothing more and touches the disk no more (an fsync is never retried), and a restart
//! on healthy storage recovers every hold acknowledged before the failure. The same holds
//! when the snapshotter's shadow state panics or diverges; failing snapshot writes are
//! retried after growing delays, and a slow final snapshot does not hold up shutdown.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use allot_engine::core::{EngineError, HoldId, HoldState, Query, Reply, Request};
use allot_engine::{
    Engine, EngineConfig, ReplayFrom, SNAPSHOT_RETRY_DELAY_MS_MAX, SNAPSHOT_RETRY_DELAY_MS_MIN,
    ShadowFault,
};
use allot_snapshots::snapshot::SNAPSHOT_TMP_FILE_SUFFIX;
use allot_snapshots::storage::{FaultPlan, FaultyStorage, FsStorage, Storage, StorageFile};

use crate::support::*;

const SKU: &str = "LAMP-OAK";
const UNITS_PER_HOLD: u32 = 3;
const HOLDS_BEFORE_FAULT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The log write lands but its fdatasync fails.
    Sync,
    /// The log write fails and nothing of it lands.
    Write,
    /// The log write fails after putting half its bytes on disk.
    TornWrite,
}

#[test]
fn a_failed_fsync_stops_the_engine_and_acknowledged_holds_survive_a_restart() {
    storage_failure_case(Fault::Sync);
}

#[test]
fn a_failed_write_stops_the_engine_and_acknowledged_holds_survive_a_restart() {
    storage_failure_case(Fault::Write);
}

#[test]
fn a_torn_failed_write_stops_the_engine_and_is_cut_off_on_restart() {
    storage_failure_case(Fault::TornWrite);
}

fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, EngineError>) -> bool {
    matches!(result, Err(EngineError::Unavailable(_)))
}

fn storage_failure_case(fault: Fault) {
    let dir = data_dir();
    let plan = FaultPlan::new();
    let faulty = EngineConfig { storage: Arc::new(FaultyStorage::new(plan.clone())), ..config() };
    let engine = stocked_engine(dir.path(), faulty, &[SKU], 1_000);
    let acknowledged: Vec<HoldId> =
        (0..HOLDS_BEFORE_FAULT).map(|_| reserve(&engine, SKU, UNITS_PER_HOLD)).collect();
    let (writes_before, syncs_before) = (plan.writes(), plan.syncs());
    assert!(writes_before > 0 && syncs_before > 0, "the log went through the faulty storage");

    match fault {
        Fault::Sync => plan.fail_syncs_after(plan.syncs()),
        Fault::Write => plan.fail_writes_after(plan.writes()),
        Fault::TornWrite => {
            plan.tear_failed_writes(true);
            plan.fail_writes_after(plan.writes());
        }
    }
    let failed = engine.submit(Request::new(reserve_command(SKU, UNITS_PER_HOLD, None))).wait();
    assert!(is_unavailable(&failed), "{fault:?}: the failing batch answered {failed:?}");
    let (writes, syncs) = (plan.writes(), plan.syncs());
    match fault {
        // The batch was written; its fdatasync was refused and not counted.
        Fault::Sync => assert_eq!((writes, syncs), (writes_before + 1, syncs_before)),
        // Nothing is synced after a failed write.
        Fault::Write | Fault::TornWrite => {
            assert_eq!((writes, syncs), (writes_before, syncs_before))
        }
    }

    for _ in 0..5 {
        let later = engine.submit(Request::new(reserve_command(SKU, 1, None))).wait();
        assert!(is_unavailable(&later), "{fault:?}: a later submit answered {later:?}");
    }
    let receipt = allot_engine::core::Command::Receive {
        sku: SKU.into(),
        location: LOCATION.into(),
        quantity: 5,
    };
    let batch = engine.submit_batch(vec![Request::new(receipt)]).wait();
    assert!(is_unavailable(&batch), "{fault:?}: a later batch answered {batch:?}");
    let query = engine.query(Query::Cell { sku: SKU.into(), location: LOCATION.into() }).wait();
    assert!(is_unavailable(&query), "{fault:?}: a later query answered {query:?}");
    let query = engine.query(Query::Hold { hold: acknowledged[0] }).wait();
    assert!(is_unavailable(&query), "{fault:?}: a later query answered {query:?}");
    assert!(is_unavailable(&engine.digest().wait()), "{fault:?}: digest");
    assert!(is_unavailable(&engine.snapshot().wait()), "{fault:?}: snapshot");
    assert_eq!((plan.writes(), plan.syncs()), (writes, syncs), "{fault:?}: wrote after failing");
    engine.shutdown();
    assert_eq!((plan.writes(), plan.syncs()), (writes, syncs), "{fault:?}: wrote at shutdown");

    let engine = open(dir.path(), config());
    check_recovered(&engine, fault, &acknowledged);
    // Healthy storage: the engine takes writes again.
    let after = reserve(&engine, SKU, 1);
    assert!(acknowledged.iter().all(|&id| id < after));
    engine.shutdown();

    let (state, _) = rebuild(dir.path(), ReplayFrom::Snapshot);
    state.audit().unwrap_or_else(|error| panic!("{fault:?}: audit: {error}"));
    for &id in acknowledged.iter().chain([&after]) {
        assert_eq!(state_hold(&state, id).state, HoldState::Held, "{fault:?}: hold {id}");
    }
}

fn check_recovered(engine: &Engine, fault: Fault, acknowledged: &[HoldId]) {
    for &id in acknowledged {
        let view = hold(engine, id);
        assert_eq!(view.state, HoldState::Held, "{fault:?}: hold {id}");
        assert_eq!(view.lines.len(), 1);
        assert_eq!(view.lines[0].quantity, UNITS_PER_HOLD);
    }
    let acknowledged_units = UNITS_PER_HOLD * HOLDS_BEFORE_FAULT as u32;
    let held = cell(engine, SKU, LOCATION).held;
    match fault {
        // The unacknowledged batch reached the file before its fsync failed, so it may be
        // there: not acknowledged means unknown, never half applied.
        Fault::Sync => assert!(
            held == acknowledged_units || held == acknowledged_units + UNITS_PER_HOLD,
            "{fault:?}: held {held}"
        ),
        Fault::Write | Fault::TornWrite => assert_eq!(held, acknowledged_units, "{fault:?}"),
    }
    let report = engine.recovery_report();
    assert_eq!(report.torn_tail.is_some(), fault == Fault::TornWrite, "{fault:?}: {report:?}");
    let Ok(Reply::Cell(cell)) =
        engine.query(Query::Cell { sku: SKU.into(), location: LOCATION.into() }).wait()
    else {
        panic!("cell query failed");
    };
    assert_eq!(cell.on_hand, 1_000, "{fault:?}: the refused receipt was not applied");
}

#[test]
fn after_a_storage_failure_shutdown_writes_no_final_snapshot() {
    let dir = data_dir();
    let plan = FaultPlan::new();
    let faulty = EngineConfig {
        storage: Arc::new(FaultyStorage::new(plan.clone())),
        snapshot_on_shutdown: true,
        ..config()
    };
    let engine = stocked_engine(dir.path(), faulty, &[SKU], 1_000);
    let acknowledged = reserve(&engine, SKU, UNITS_PER_HOLD);
    plan.fail_syncs_after(plan.syncs());
    let failed = engine.submit(Request::new(reserve_command(SKU, UNITS_PER_HOLD, None))).wait();
    assert!(is_unavailable(&failed), "{failed:?}");
    let (writes, syncs) = (plan.writes(), plan.syncs());
    engine.shutdown();
    assert_eq!(
        (plan.writes(), plan.syncs()),
        (writes, syncs),
        "the engine wrote (a final snapshot) after its log failed"
    );

    let engine = open(dir.path(), config());
    assert_eq!(hold(&engine, acknowledged).state, HoldState::Held);
    engine.shutdown();
}

/// Storage that reaches snapshot files only through a gate: it counts the snapshots
/// started, can refuse them, and can make writing one slow; the log is left alone.
#[derive(Debug, Default)]
struct SnapshotGate {
    started: AtomicU64,
    refuse: AtomicBool,
    write_delay_ms: AtomicU64,
}

impl SnapshotGate {
    fn storage(self: &Arc<Self>) -> Arc<dyn Storage> {
        Arc::new(GatedStorage(self.clone()))
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct GatedStorage(Arc<SnapshotGate>);

struct SlowFile {
    inner: Box<dyn StorageFile>,
    delay: Duration,
}

impl StorageFile for SlowFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.inner.sync_all()
    }
}

impl Storage for GatedStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        FsStorage.file_len(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        FsStorage.read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let is_snapshot = path.to_string_lossy().ends_with(SNAPSHOT_TMP_FILE_SUFFIX);
        if !is_snapshot {
            return FsStorage.create(path);
        }
        self.0.started.fetch_add(1, Ordering::SeqCst);
        if self.0.refuse.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: the snapshot disk is failing"));
        }
        let delay = Duration::from_millis(self.0.write_delay_ms.load(Ordering::SeqCst));
        Ok(Box::new(SlowFile { inner: FsStorage.create(path)?, delay }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        FsStorage.open_append(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FsStorage.truncate(path, len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        FsStorage.sync_file(path)
    }
}

/// Reserves until the engine refuses; returns the holds acknowledged before that.
fn reserve_until_unavailable(engine: &Engine) -> Vec<HoldId> {
    let mut acknowledged = Vec::new();
    poll_until("the engine stops acknowledging", || {
        match engine.submit(Request::new(reserve_command(SKU, 1, None))).wait() {
            Ok(Reply::HoldPlaced { hold, .. }) => {
                acknowledged.push(hold);
                false
            }
            refused => {
                assert!(is_unavailable(&refused), "{refused:?}");
                true
            }
        }
    });
    acknowledged
}

/// After the shadow fails, nothing is acknowledged, and a restart on the same log keeps
/// every hold that was.
fn shadow_failure_case(fault: ShadowFault) {
    let dir = data_dir();
    let faulty = EngineConfig { shadow_fault: Some(fault), ..config() };
    // Positions 1 and 2 stock the location; the first hold is position 3.
    let engine = stocked_engine(dir.path(), faulty, &[SKU], 1_000);
    let acknowledged = reserve_until_unavailable(&engine);
    for _ in 0..5 {
        let later = engine.submit(Request::new(reserve_command(SKU, 1, None))).wait();
        assert!(is_unavailable(&later), "{fault:?}: a later submit answered {later:?}");
    }
    let query = engine.query(Query::Cell { sku: SKU.into(), location: LOCATION.into() }).wait();
    assert!(is_unavailable(&query), "{fault:?}: a later query answered {query:?}");
    engine.shutdown();

    let engine = open(dir.path(), config());
    for &id in &acknowledged {
        assert_eq!(hold(&engine, id).state, HoldState::Held, "{fault:?}: hold {id}");
    }
    reserve(&engine, SKU, 1);
    engine.shutdown();
}

#[test]
fn a_panicking_snapshotter_stops_the_engine_acknowledging() {
    shadow_failure_case(ShadowFault::PanicAt(3));
}

#[test]
fn a_shadow_state_that_diverges_from_the_writer_stops_the_engine_acknowledging() {
    shadow_failure_case(ShadowFault::SkipAt(3));
}

#[test]
fn a_failing_snapshot_disk_is_retried_after_a_growing_delay_not_after_every_batch() {
    const BATCHES: u32 = 30;
    let dir = data_dir();
    let clock = manual_clock();
    let gate = Arc::new(SnapshotGate::default());
    gate.refuse.store(true, Ordering::SeqCst);
    let every_record = EngineConfig {
        storage: gate.storage(),
        snapshot_every_records: 1,
        ..config_with_clock(&clock)
    };
    let engine = stocked_engine(dir.path(), every_record, &[SKU], 1_000);
    for _ in 0..BATCHES {
        reserve(&engine, SKU, 1);
    }
    // The snapshotter follows the writer on its own thread: a query round trip does not
    // wait for it, but an explicit snapshot does (and is always tried).
    assert!(engine.snapshot().wait().is_err());
    let tried = gate.started();
    assert_eq!(tried, 2, "one automatic attempt and the explicit one, not one per batch");

    // The explicit failure doubled the delay: just past the first delay is too early.
    clock.advance(SNAPSHOT_RETRY_DELAY_MS_MIN + 1);
    reserve(&engine, SKU, 1);
    assert!(engine.snapshot().wait().is_err());
    assert_eq!(gate.started(), tried + 1, "only the explicit snapshot was tried");

    // The disk heals; after the longest delay the next batch snapshots again.
    gate.refuse.store(false, Ordering::SeqCst);
    clock.advance(SNAPSHOT_RETRY_DELAY_MS_MAX);
    reserve(&engine, SKU, 1);
    poll_until("a snapshot is written after the delay", || !snapshots(dir.path()).is_empty());
    engine.shutdown();
}

/// How long each write of a slowed snapshot file sleeps: a snapshot is two writes.
const SLOW_SNAPSHOT_WRITE_MS: u64 = 1_500;
/// A shutdown deadline far shorter than a slowed snapshot.
const SHORT_SHUTDOWN_DEADLINE_MS: u64 = 300;
/// Generous bound on how long a shutdown that skips or abandons its snapshot may take.
const SHUTDOWN_RETURNS_WITHIN_MS: u64 = 2 * SLOW_SNAPSHOT_WRITE_MS;

fn slow_snapshots(gate: &Arc<SnapshotGate>) -> EngineConfig {
    gate.write_delay_ms.store(SLOW_SNAPSHOT_WRITE_MS, Ordering::SeqCst);
    EngineConfig {
        storage: gate.storage(),
        snapshot_on_shutdown: true,
        shutdown_deadline_ms: SHORT_SHUTDOWN_DEADLINE_MS,
        ..config()
    }
}

/// Times a shutdown, in milliseconds.
fn timed_shutdown(engine: &Engine) -> u64 {
    let started = std::time::Instant::now();
    engine.shutdown();
    started.elapsed().as_millis() as u64
}

/// Opens `dir` once the lock a background snapshot holds is released.
fn open_when_unlocked(dir: &Path) -> Engine {
    for _ in 0..1_000 {
        match Engine::open(dir, config()) {
            Err(allot_engine::OpenError::Recovery(allot_snapshots::RecoveryError::Locked {
                ..
            })) => std::thread::sleep(Duration::from_millis(20)),
            opened => return opened.expect("open after the background snapshot"),
        }
    }
    panic!("the directory stayed locked");
}

#[test]
fn a_final_snapshot_that_would_not_fit_the_shutdown_deadline_is_skipped() {
    let dir = data_dir();
    let gate = Arc::new(SnapshotGate::default());
    let engine = stocked_engine(dir.path(), slow_snapshots(&gate), &[SKU], 1_000);
    let first = engine.snapshot().wait().expect("a slow snapshot, to measure");
    let after: Vec<HoldId> = (0..5).map(|_| reserve(&engine, SKU, 1)).collect();
    let started = gate.started();

    let took_ms = timed_shutdown(&engine);
    eprintln!("shutdown with a skipped final snapshot took {took_ms} ms");
    assert!(took_ms < SHUTDOWN_RETURNS_WITHIN_MS, "shutdown took {took_ms} ms");
    assert_eq!(gate.started(), started, "no final snapshot was started");

    // Nothing is left running: the directory opens at once and the log has the rest.
    let engine = open(dir.path(), config());
    assert_eq!(engine.recovery_report().snapshot_position, Some(first));
    assert_eq!(engine.recovery_report().records_replayed, after.len() as u64);
    for &id in &after {
        assert_eq!(hold(&engine, id).state, HoldState::Held);
    }
    engine.shutdown();
}

#[test]
fn a_final_snapshot_still_running_at_the_shutdown_deadline_ends_in_the_background() {
    let dir = data_dir();
    let gate = Arc::new(SnapshotGate::default());
    // No snapshot yet, so nothing says the final one will not fit: it is started.
    let engine = stocked_engine(dir.path(), slow_snapshots(&gate), &[SKU], 1_000);
    let held = reserve(&engine, SKU, 1);

    let took_ms = timed_shutdown(&engine);
    eprintln!("shutdown past its deadline took {took_ms} ms");
    assert!(took_ms < SHUTDOWN_RETURNS_WITHIN_MS, "shutdown took {took_ms} ms");
    assert_eq!(gate.started(), 1, "the final snapshot was started");

    let engine = open_when_unlocked(dir.path());
    assert!(engine.recovery_report().snapshot_position.is_some(), "it was finished");
    assert_eq!(hold(&engine, held).state, HoldState::Held);
    engine.shutdown();
}
