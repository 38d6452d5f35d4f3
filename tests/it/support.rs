//! Shared helpers: throwaway data directories, an engine configuration without automatic
//! or final snapshots, a standard location, and short forms of receiving stock, reserving
//! it and reading it back from a live engine or a rebuilt state.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use allot_engine::core::{
    CellView, Command, EngineError, HoldId, HoldView, LineRequest, LocationKind, LocationSpec,
    Query, Reply, Request, ShippingCost, State,
};
use allot_engine::{Engine, EngineConfig, ManualClock, OpenError, RecoveryReport, ReplayFrom};
use allot_snapshots::RecoveryError;
use allot_snapshots::scan_segment;
use allot_snapshots::snapshot::parse_snapshot_file_name;
use allot_snapshots::storage::FsStorage;
use allot_snapshots::wal::parse_segment_file_name;

/// The location every module stocks unless it needs more than one.
pub const LOCATION: &str = "DC-NORTH";
/// Where a `ManualClock` starts: a whole second, so expiry buckets line up with it.
pub const START_MS: u64 = 1_700_000_000_000;

/// A fresh data directory, removed when the handle drops.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("allot-it-").tempdir().expect("create a data directory")
}

/// Production settings, except that snapshots happen only when a test asks for one, so
/// that what is on disk after `shutdown` is exactly what the test made.
pub fn config() -> EngineConfig {
    EngineConfig {
        snapshot_every_records: 0,
        snapshot_every_log_bytes: 0,
        snapshot_every_ms: 0,
        snapshot_on_shutdown: false,
        ..EngineConfig::default()
    }
}

/// [`config`] with engine time driven by `clock`.
pub fn config_with_clock(clock: &Arc<ManualClock>) -> EngineConfig {
    EngineConfig { clock: clock.clone(), ..config() }
}

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START_MS))
}

/// Tries to open `dir`, waiting out a lock that is only still held for a moment.
///
/// Right after `shutdown` the lock can still be held briefly: a child process that another
/// test in this binary spawns at that instant inherits the lock file's descriptor until it
/// execs. A directory that stays locked still fails.
pub fn try_open(dir: &Path, config: EngineConfig) -> Result<Engine, OpenError> {
    retry_while_locked(|| Engine::open(dir, config.clone()))
}

pub fn open(dir: &Path, config: EngineConfig) -> Engine {
    try_open(dir, config).unwrap_or_else(|error| panic!("open {}: {error}", dir.display()))
}

fn retry_while_locked<T>(
    mut attempt: impl FnMut() -> Result<T, OpenError>,
) -> Result<T, OpenError> {
    for _ in 0..LOCK_RETRIES {
        match attempt() {
            Err(OpenError::Recovery(RecoveryError::Locked { .. })) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            outcome => return outcome,
        }
    }
    attempt()
}

/// Tries at a lock still held a moment after shutdown: two seconds in all.
const LOCK_RETRIES: usize = 200;

/// The standard location: an active warehouse that ships.
pub fn location_spec(code: &str) -> LocationSpec {
    LocationSpec {
        code: code.to_owned(),
        name: format!("Warehouse {code}"),
        kind: LocationKind::Warehouse,
        latitude_e6: 53_480_800,
        longitude_e6: -2_242_600,
        ships: true,
        pickup: false,
        daily_capacity: 10_000,
        shipping_cost: ShippingCost { base_minor: 450, per_km_minor: 1, currency: "GBP".into() },
        priority: 1,
        active: true,
    }
}

/// Submits an unkeyed command and waits for its reply, failing the test on an error.
pub fn submit(engine: &Engine, command: Command) -> Reply {
    let name = command.name();
    engine
        .submit(Request::new(command))
        .wait()
        .unwrap_or_else(|error| panic!("{name} was refused: {error}"))
}

pub fn add_location(engine: &Engine, code: &str) {
    submit(engine, Command::UpsertLocation(location_spec(code)));
}

pub fn receive(engine: &Engine, sku: &str, location: &str, quantity: u32) -> CellView {
    let command = Command::Receive { sku: sku.into(), location: location.into(), quantity };
    match submit(engine, command) {
        Reply::Cell(cell) => cell,
        other => panic!("a receipt answered {other:?}"),
    }
}

/// Opens `dir` and stocks `quantity` units of each SKU at [`LOCATION`].
pub fn stocked_engine(dir: &Path, config: EngineConfig, skus: &[&str], quantity: u32) -> Engine {
    let engine = open(dir, config);
    add_location(&engine, LOCATION);
    for sku in skus {
        receive(&engine, sku, LOCATION, quantity);
    }
    engine
}

pub fn line(sku: &str, location: &str, quantity: u32) -> LineRequest {
    LineRequest { sku: sku.into(), location: location.into(), quantity }
}

/// A one-line hold at [`LOCATION`].
pub fn reserve_command(sku: &str, quantity: u32, ttl_ms: Option<u64>) -> Command {
    Command::Reserve { lines: vec![line(sku, LOCATION, quantity)], ttl_ms }
}

/// Places a one-line hold at [`LOCATION`] with the default TTL; returns its id.
pub fn reserve(engine: &Engine, sku: &str, quantity: u32) -> HoldId {
    match submit(engine, reserve_command(sku, quantity, None)) {
        Reply::HoldPlaced { hold, .. } => hold,
        other => panic!("a reserve answered {other:?}"),
    }
}

/// The id in a `HoldPlaced` outcome.
pub fn placed(outcome: &Result<Reply, EngineError>) -> HoldId {
    match outcome {
        Ok(Reply::HoldPlaced { hold, .. }) => *hold,
        other => panic!("expected a placed hold, got {other:?}"),
    }
}

pub fn cell(engine: &Engine, sku: &str, location: &str) -> CellView {
    let query = Query::Cell { sku: sku.into(), location: location.into() };
    match engine.query(query).wait() {
        Ok(Reply::Cell(cell)) => cell,
        other => panic!("cell {sku}@{location} answered {other:?}"),
    }
}

pub fn hold(engine: &Engine, id: HoldId) -> HoldView {
    match engine.query(Query::Hold { hold: id }).wait() {
        Ok(Reply::Hold(view)) => view,
        other => panic!("hold {id} answered {other:?}"),
    }
}

/// Rebuilds the state of a closed data directory from the real file system.
/// Waits out a lock held only for a moment, as [`try_open`] does.
pub fn try_rebuild(dir: &Path, from: ReplayFrom) -> Result<(State, RecoveryReport), OpenError> {
    retry_while_locked(|| allot_engine::rebuild_state(Arc::new(FsStorage), dir, from))
}

/// [`try_rebuild`], failing the test on an error.
pub fn rebuild(dir: &Path, from: ReplayFrom) -> (State, RecoveryReport) {
    try_rebuild(dir, from)
        .unwrap_or_else(|error| panic!("rebuild {} from {from:?}: {error}", dir.display()))
}

pub fn state_cell(state: &State, sku: &str, location: &str) -> CellView {
    match state.query(&Query::Cell { sku: sku.into(), location: location.into() }) {
        Ok(Reply::Cell(cell)) => cell,
        other => panic!("cell {sku}@{location} answered {other:?}"),
    }
}

pub fn state_hold(state: &State, id: HoldId) -> HoldView {
    match state.query(&Query::Hold { hold: id }) {
        Ok(Reply::Hold(view)) => view,
        other => panic!("hold {id} answered {other:?}"),
    }
}

/// Log segments in `dir`, oldest first, with their first positions.
pub fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    files_by_position(dir, parse_segment_file_name)
}

/// Snapshot files in `dir`, oldest first, with their positions.
pub fn snapshots(dir: &Path) -> Vec<(u64, PathBuf)> {
    files_by_position(dir, parse_snapshot_file_name)
}

fn files_by_position(dir: &Path, parse: fn(&str) -> Option<u64>) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .expect("list the data directory")
        .map(|entry| entry.expect("directory entry").file_name())
        .filter_map(|name| {
            let name = name.into_string().ok()?;
            Some((parse(&name)?, dir.join(name)))
        })
        .collect();
    files.sort();
    files
}

/// The newest log segment.
pub fn newest_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("the log has a segment").1
}

/// One whole record found in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    pub offset: usize,
    pub position: u64,
    pub bytes: usize,
}

/// Every record in a segment file, which must verify to its end.
pub fn records_in(path: &Path) -> Vec<RecordAt> {
    let bytes = fs::read(path).expect("read a segment");
    let scan = scan_segment(&bytes);
    if let Some((offset, reason)) = scan.stopped {
        panic!("{} at byte {offset}: {reason}", path.display());
    }
    scan.records
        .iter()
        .map(|r| RecordAt { offset: r.offset, position: r.record.position, bytes: r.bytes })
        .collect()
}

/// Retries `done` a bounded number of times, sleeping a little between tries.
pub fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting until {what}");
}

/// Flips every bit of the byte at `offset` in the file at `path`.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("read the file to damage");
    bytes[offset] ^= 0xFF;
    fs::write(path, bytes).expect("write the damaged file");
}

/// A runtime for tests that drive a real `allotd` over QUIC: multi-threaded, because a
/// test thread blocked on the process (SIGTERM, `kill -9`) must not stall the client.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The typed code of an error the server sent, failing the test on any other error.
pub fn server_code(error: allot_client::ClientError) -> allot_client::protocol::ErrorCode {
    match error {
        allot_client::ClientError::Server(error) | allot_client::ClientError::Refused(error) => {
            error.code
        }
        other => panic!("expected an error from the server, got {other}"),
    }
}
