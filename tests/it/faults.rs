//! Fail-stop on storage errors: after a failed log write or fsync the engine acknowledges
//! nothing more and touches the disk no more (an fsync is never retried), and a restart
//! on healthy storage recovers every hold acknowledged before the failure.

use std::sync::Arc;

use allot_engine::core::{EngineError, HoldId, HoldState, Query, Reply, Request};
use allot_engine::{Engine, EngineConfig, ReplayFrom};
use allot_snapshots::storage::{FaultPlan, FaultyStorage};

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
