//! Idempotency keys across restarts and batches: a retried keyed request gets exactly the
//! original reply and is applied once, whether the engine recovered from the log or from
//! a snapshot; the same key with a different request is a conflict.

use allot_engine::Engine;
use allot_engine::core::{Command, EngineError, HoldState, Outcome, Reply, Request};

use crate::support::*;

const SKU: &str = "KETTLE-RED";
const OTHER_SKU: &str = "TOASTER-RED";

/// How the engine comes back after the first reply.
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// No snapshot: recovery replays the whole log.
    FromLog,
    /// A snapshot after the keyed request: recovery replays nothing.
    FromSnapshot,
}

#[test]
fn a_keyed_reserve_retried_after_recovering_from_the_log_gets_the_original_reply() {
    keyed_reserve_across_restart(Restart::FromLog);
}

#[test]
fn a_keyed_reserve_retried_after_recovering_from_a_snapshot_gets_the_original_reply() {
    keyed_reserve_across_restart(Restart::FromSnapshot);
}

fn keyed_reserve_across_restart(restart: Restart) {
    let dir = data_dir();
    let clock = manual_clock();
    let engine = stocked_engine(dir.path(), config_with_clock(&clock), &[SKU], 20);
    let request = Request::with_key("cart-7f3a/1", reserve_command(SKU, 4, Some(60_000)));
    let original = engine.submit(request.clone()).wait();
    let hold_id = placed(&original);
    assert_eq!(original, Ok(Reply::HoldPlaced { hold: hold_id, expires_at_ms: START_MS + 60_000 }));

    // A retry later on does not run the command again (which would give a new hold and a
    // later deadline): it answers what the first attempt answered.
    clock.advance(5_000);
    assert_eq!(engine.submit(request.clone()).wait(), original, "{restart:?}");
    assert_eq!(cell(&engine, SKU, LOCATION).held, 4, "{restart:?}");

    let snapshot = match restart {
        Restart::FromLog => None,
        Restart::FromSnapshot => Some(engine.snapshot().wait().expect("snapshot")),
    };
    engine.shutdown();
    clock.advance(5_000);

    let engine = open(dir.path(), config_with_clock(&clock));
    let report = engine.recovery_report().clone();
    assert_eq!(report.snapshot_position, snapshot, "{restart:?}");
    if snapshot.is_some() {
        assert_eq!(report.records_replayed, 0, "{restart:?}");
    }
    assert_eq!(engine.submit(request.clone()).wait(), original, "{restart:?}");
    assert_eq!(cell(&engine, SKU, LOCATION).held, 4, "{restart:?}: applied once");
    assert_eq!(hold(&engine, hold_id).state, HoldState::Held, "{restart:?}");

    let different = Request::with_key("cart-7f3a/1", reserve_command(SKU, 5, Some(60_000)));
    assert_eq!(
        engine.submit(different).wait(),
        Err(EngineError::IdempotencyConflict),
        "{restart:?}"
    );
    let other_sku = Request::with_key("cart-7f3a/1", reserve_command(OTHER_SKU, 4, Some(60_000)));
    assert_eq!(engine.submit(other_sku).wait(), Err(EngineError::IdempotencyConflict));
    assert_eq!(cell(&engine, SKU, LOCATION).held, 4, "{restart:?}: the conflict applied nothing");

    // The same command under a fresh key is a new hold.
    let fresh = Request::with_key("cart-7f3a/2", reserve_command(SKU, 4, Some(60_000)));
    let fresh_id = placed(&engine.submit(fresh).wait());
    assert_ne!(fresh_id, hold_id);
    assert_eq!(cell(&engine, SKU, LOCATION).held, 8, "{restart:?}");
    engine.shutdown();
}

#[test]
fn a_retry_after_the_hold_expired_answers_the_original_and_holds_nothing() {
    let dir = data_dir();
    let clock = manual_clock();
    let engine = stocked_engine(dir.path(), config_with_clock(&clock), &[SKU], 20);
    let request = Request::with_key("cart-expiring", reserve_command(SKU, 6, Some(1_000)));
    let original = engine.submit(request.clone()).wait();
    let hold_id = placed(&original);

    clock.advance(3_000);
    poll_until("the hold expires", || {
        hold(&engine, hold_id).state == HoldState::Resolved(allot_engine::core::Resolution::Expired)
    });
    assert_eq!(engine.submit(request.clone()).wait(), original);
    assert_eq!(cell(&engine, SKU, LOCATION).held, 0, "the retry did not hold stock again");
    engine.shutdown();

    let engine = open(dir.path(), config_with_clock(&clock));
    assert_eq!(engine.submit(request).wait(), original);
    assert_eq!(cell(&engine, SKU, LOCATION).held, 0);
    engine.shutdown();
}

#[test]
fn a_keyed_request_that_failed_is_not_remembered_and_may_succeed_later() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 10);
    let request = Request::with_key("cart-big", reserve_command(SKU, 15, None));
    let refused = engine.submit(request.clone()).wait();
    assert_eq!(refused, Err(EngineError::InsufficientStock { line: 0, available: 10 }));
    receive(&engine, SKU, LOCATION, 10);
    let accepted = engine.submit(request.clone()).wait();
    placed(&accepted);
    assert_eq!(engine.submit(request).wait(), accepted);
    assert_eq!(cell(&engine, SKU, LOCATION).held, 15);
    engine.shutdown();
}

fn keyed_batch() -> Vec<Request> {
    vec![
        Request::with_key("batch/a", reserve_command(SKU, 2, None)),
        Request::with_key("batch/b", reserve_command(OTHER_SKU, 3, None)),
        Request::with_key(
            "batch/c",
            Command::Receive { sku: SKU.into(), location: LOCATION.into(), quantity: 5 },
        ),
        // The same key and command again inside the batch: answered, not applied.
        Request::with_key("batch/a", reserve_command(SKU, 2, None)),
    ]
}

fn submit_batch(engine: &Engine, requests: Vec<Request>) -> Vec<Outcome> {
    engine.submit_batch(requests).wait().expect("the batch is taken")
}

fn check_applied_once(engine: &Engine) {
    let sku = cell(engine, SKU, LOCATION);
    assert_eq!((sku.on_hand, sku.held), (25, 2));
    assert_eq!(cell(engine, OTHER_SKU, LOCATION).held, 3);
}

#[test]
fn keyed_requests_in_a_batch_repeated_in_a_second_batch_apply_once() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU, OTHER_SKU], 20);
    let first = submit_batch(&engine, keyed_batch());
    assert_eq!(first.len(), 4);
    let hold_a = placed(&first[0]);
    let hold_b = placed(&first[1]);
    assert_ne!(hold_a, hold_b);
    assert!(matches!(&first[2], Ok(Reply::Cell(cell)) if cell.on_hand == 25), "{:?}", first[2]);
    assert_eq!(first[3], first[0], "a repeat inside the batch gets the first answer");
    check_applied_once(&engine);

    let second = submit_batch(&engine, keyed_batch());
    assert_eq!(second, first);
    check_applied_once(&engine);

    let mixed = vec![
        Request::with_key("batch/b", reserve_command(OTHER_SKU, 4, None)),
        Request::with_key("batch/d", reserve_command(OTHER_SKU, 4, None)),
    ];
    let mixed = submit_batch(&engine, mixed);
    assert_eq!(mixed[0], Err(EngineError::IdempotencyConflict));
    placed(&mixed[1]);
    assert_eq!(cell(&engine, OTHER_SKU, LOCATION).held, 7);
    engine.shutdown();

    let engine = open(dir.path(), config());
    assert_eq!(submit_batch(&engine, keyed_batch()), first);
    let sku = cell(&engine, SKU, LOCATION);
    assert_eq!((sku.on_hand, sku.held), (25, 2));
    assert_eq!(cell(&engine, OTHER_SKU, LOCATION).held, 7);
    engine.shutdown();
}
