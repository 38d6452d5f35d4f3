//! The embedded API's contract: expiry through ticks the writer logs itself, `Overloaded`
//! meaning not applied, the limits and refusals at `submit`, `Unavailable` after
//! shutdown, and many async tasks awaiting replies at once.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use allot_engine::core::{Command, EngineError, HoldState, Reply, Request, Resolution};
use allot_engine::{
    Engine, EngineConfig, OpenError, Pending, ReplayFrom, SUBMIT_BATCH_REQUESTS_MAX,
};
use allot_snapshots::scan_segment;

use crate::support::*;

const SKU: &str = "BOOT-BLK-42";

/// Records in whole batches at the start of a segment that may be being appended to
/// right now.
fn whole_records(path: &Path) -> usize {
    let bytes = fs::read(path).expect("read the segment");
    scan_segment(&bytes).records.len()
}

#[test]
fn a_hold_expires_through_a_tick_the_idle_writer_logs_and_stays_expired_after_restart() {
    let dir = data_dir();
    let clock = manual_clock();
    let engine = stocked_engine(dir.path(), config_with_clock(&clock), &[SKU], 10);
    let reply = submit(&engine, reserve_command(SKU, 4, Some(1_000)));
    let Reply::HoldPlaced { hold: id, expires_at_ms } = reply else { panic!("{reply:?}") };
    assert_eq!(expires_at_ms, START_MS + 1_000);
    assert_eq!(cell(&engine, SKU, LOCATION).held, 4);
    let segment = newest_segment(dir.path());
    let records_before = whole_records(&segment);

    // No request arrives: the writer notices the clock passed the deadline by itself.
    clock.advance(3_000);
    poll_until("the writer logs a tick", || whole_records(&segment) == records_before + 1);
    poll_until("the hold reads as expired", || {
        hold(&engine, id).state == HoldState::Resolved(Resolution::Expired)
    });
    // An expired hold is a tombstone: its state, no lines or times.
    let view = hold(&engine, id);
    assert!(view.lines.is_empty() && view.resolved_at_ms.is_none(), "{view:?}");
    let stock = cell(&engine, SKU, LOCATION);
    assert_eq!((stock.held, stock.available), (0, 10));
    let expired = Err(EngineError::AlreadyResolved { how: Resolution::Expired });
    let release = Command::ReleaseHold { hold: id, lines: Vec::new() };
    assert_eq!(engine.submit(Request::new(release)).wait(), expired);
    let commit = Command::CommitHold { hold: id, order_number: "W0000001".into() };
    assert_eq!(engine.submit(Request::new(commit)).wait(), expired);
    engine.shutdown();

    // An offline replay reads no clock: only the logged tick can have expired the hold.
    let (state, _) = rebuild(dir.path(), ReplayFrom::WholeLog);
    assert_eq!(state_hold(&state, id).state, HoldState::Resolved(Resolution::Expired));
    assert_eq!(state.counters().holds_expired, 1);
    assert_eq!(state_cell(&state, SKU, LOCATION).held, 0);

    let engine = open(dir.path(), config_with_clock(&clock));
    assert_eq!(hold(&engine, id).state, HoldState::Resolved(Resolution::Expired));
    assert_eq!(cell(&engine, SKU, LOCATION).held, 0);
    engine.shutdown();
}

#[test]
fn overloaded_means_the_request_was_not_applied() {
    const SUBMITS: usize = 2_000;
    let dir = data_dir();
    let tiny_queue = EngineConfig { ingress_queue_len_max: 1, ..config() };
    let engine = stocked_engine(dir.path(), tiny_queue, &[SKU], 10_000);
    // Fired without waiting, with a short pause now and then so the writer drains the
    // queue a few times along the way.
    let pending: Vec<Pending<Reply>> = (0..SUBMITS)
        .map(|index| {
            if index % 100 == 99 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            engine.submit(Request::new(reserve_command(SKU, 1, None)))
        })
        .collect();
    let outcomes: Vec<_> = pending.into_iter().map(Pending::wait).collect();

    let placed: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Ok(Reply::HoldPlaced { hold, .. }) => Some(*hold),
            _ => None,
        })
        .collect();
    let overloaded = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(EngineError::Overloaded(_))))
        .count();
    assert_eq!(placed.len() + overloaded, SUBMITS, "only placed or overloaded: {outcomes:?}");
    assert!(overloaded > 0, "a one-slot queue must overflow");
    assert!(!placed.is_empty());
    assert_eq!(cell(&engine, SKU, LOCATION).held as usize, placed.len());
    // Hold ids are sequential from 1: no refused request consumed one.
    let next = reserve(&engine, SKU, 1);
    assert_eq!(next as usize, placed.len() + 1);
    engine.shutdown();

    let (state, _) = rebuild(dir.path(), ReplayFrom::WholeLog);
    assert_eq!(state_cell(&state, SKU, LOCATION).held as usize, placed.len() + 1);
    assert_eq!(state.counters().holds_placed as usize, placed.len() + 1);
}

#[test]
fn a_tick_submitted_by_a_client_is_refused_as_invalid() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 10);
    let refused = |outcome: Result<_, EngineError>| {
        assert!(matches!(outcome, Err(EngineError::InvalidArgument(_))), "{outcome:?}");
    };
    refused(engine.submit(Request::new(Command::Tick)).wait());
    refused(engine.submit(Request::with_key("tick-1", Command::Tick)).wait());
    let batch = vec![Request::new(reserve_command(SKU, 2, None)), Request::new(Command::Tick)];
    refused(engine.submit_batch(batch).wait().map(|_| Reply::Ticked { expired: 0 }));
    assert_eq!(cell(&engine, SKU, LOCATION).held, 0, "nothing in the refused batch applied");
    engine.shutdown();
}

#[test]
fn a_batch_over_the_request_limit_is_refused_whole() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 10);
    let receipts = |count: usize| -> Vec<Request> {
        let receipt = Command::Receive { sku: SKU.into(), location: LOCATION.into(), quantity: 1 };
        vec![Request::new(receipt); count]
    };
    let over = engine.submit_batch(receipts(SUBMIT_BATCH_REQUESTS_MAX + 1)).wait();
    assert!(matches!(over, Err(EngineError::InvalidArgument(_))), "{:?}", over.map(|o| o.len()));
    assert_eq!(cell(&engine, SKU, LOCATION).on_hand, 10, "nothing of it applied");

    let at_limit = engine.submit_batch(receipts(SUBMIT_BATCH_REQUESTS_MAX)).wait().expect("taken");
    assert_eq!(at_limit.len(), SUBMIT_BATCH_REQUESTS_MAX);
    assert!(at_limit.iter().all(Result::is_ok));
    assert_eq!(cell(&engine, SKU, LOCATION).on_hand as usize, 10 + SUBMIT_BATCH_REQUESTS_MAX);
    engine.shutdown();
}

#[test]
fn after_shutdown_every_handle_answers_unavailable() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 10);
    let other_handle = engine.clone();
    engine.shutdown();
    engine.shutdown();

    for handle in [&engine, &other_handle] {
        let unavailable = |outcome: Result<(), EngineError>| {
            assert!(matches!(outcome, Err(EngineError::Unavailable(_))), "{outcome:?}");
        };
        let reserve = Request::new(reserve_command(SKU, 1, None));
        unavailable(handle.submit(reserve.clone()).wait().map(drop));
        unavailable(handle.submit_batch(vec![reserve]).wait().map(drop));
        let query = allot_engine::core::Query::Cell { sku: SKU.into(), location: LOCATION.into() };
        unavailable(handle.query(query).wait().map(drop));
        unavailable(handle.digest().wait().map(drop));
        unavailable(handle.snapshot().wait().map(drop));
    }

    // The directory lock went with the engine; nothing was applied after shutdown.
    let engine = open(dir.path(), config());
    assert_eq!(cell(&engine, SKU, LOCATION).held, 0);
    engine.shutdown();
}

#[test]
fn many_async_tasks_awaiting_holds_all_succeed() {
    const TASKS: usize = 64;
    const HOLDS_PER_TASK: usize = 50;
    const TASK_SKUS: [&str; 4] = ["TEE-S", "TEE-M", "TEE-L", "TEE-XL"];
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &TASK_SKUS, 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .expect("runtime");

    let holds: Vec<Vec<u64>> = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let engine: Engine = engine.clone();
                tokio::spawn(async move {
                    let sku = TASK_SKUS[task % TASK_SKUS.len()];
                    let quantity = 1 + (task % 3) as u32;
                    let mut ids = Vec::with_capacity(HOLDS_PER_TASK);
                    for _ in 0..HOLDS_PER_TASK {
                        let request = Request::new(reserve_command(sku, quantity, None));
                        ids.push(placed(&engine.submit(request).await));
                    }
                    let last = *ids.last().expect("placed");
                    let query = allot_engine::core::Query::Hold { hold: last };
                    let view = engine.query(query).await.expect("query");
                    assert!(matches!(view, Reply::Hold(view) if view.state == HoldState::Held));
                    ids
                })
            })
            .collect();
        let mut holds = Vec::with_capacity(TASKS);
        for task in tasks {
            holds.push(task.await.expect("task"));
        }
        holds
    });

    let distinct: HashSet<u64> = holds.iter().flatten().copied().collect();
    assert_eq!(distinct.len(), TASKS * HOLDS_PER_TASK);
    for (index, sku) in TASK_SKUS.iter().enumerate() {
        let expected: u32 = (0..TASKS)
            .filter(|task| task % TASK_SKUS.len() == index)
            .map(|task| (1 + task % 3) as u32 * HOLDS_PER_TASK as u32)
            .sum();
        assert_eq!(cell(&engine, sku, LOCATION).held, expected, "{sku}");
    }
    engine.shutdown();
}

/// File names in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_directory_stays_locked_until_the_final_snapshot_is_written() {
    const SKUS: usize = 40_000;
    let dir = data_dir();
    let final_snapshot = EngineConfig { snapshot_on_shutdown: true, ..config() };
    let engine = open(dir.path(), final_snapshot);
    add_location(&engine, LOCATION);
    let receipts: Vec<Request> = (0..SKUS)
        .map(|sku| {
            let sku = format!("SKU-{sku:06}");
            Request::new(Command::Receive { sku, location: LOCATION.into(), quantity: 5 })
        })
        .collect();
    for chunk in receipts.chunks(SUBMIT_BATCH_REQUESTS_MAX) {
        engine.submit_batch(chunk.to_vec()).wait().expect("receipts");
    }

    // Another process wanting the directory: it spins on the lock file's OS lock and, the
    // moment it has it, notes what the directory holds.
    let lock_path = dir.path().join(allot_snapshots::LOCK_FILE_NAME);
    let dir_path = dir.path().to_owned();
    let (waiting_tx, waiting_rx) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let lock = fs::File::open(&lock_path).expect("open the lock file");
        let mut told = false;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if !told => {
                    waiting_tx.send(()).expect("signal");
                    told = true;
                }
                Err(fs::TryLockError::WouldBlock) => std::hint::spin_loop(),
                Err(fs::TryLockError::Error(error)) => panic!("lock: {error}"),
            }
        }
        (lock, file_names(&dir_path))
    });
    waiting_rx.recv().expect("the other process is waiting for the lock");
    engine.shutdown();
    let (lock, when_locked) = other.join().expect("the other process");
    let after_shutdown = file_names(dir.path());
    drop(lock);

    assert!(
        after_shutdown.iter().any(|name| name.ends_with(".snap")),
        "a final snapshot was written: {after_shutdown:?}"
    );
    assert_eq!(
        when_locked, after_shutdown,
        "the engine kept writing to its directory after another process had locked it"
    );
}

#[test]
fn a_zero_queue_or_batch_size_is_refused_at_open_and_leaves_the_directory_unlocked() {
    let dir = data_dir();
    for config in [
        EngineConfig { ingress_queue_len_max: 0, ..config() },
        EngineConfig { batch_requests_max: 0, ..config() },
    ] {
        let error = Engine::open(dir.path(), config).err().expect("refused");
        assert!(matches!(error, OpenError::Config(_)), "{error:?}");
    }
    let engine = open(dir.path(), config());
    engine.shutdown();
}
