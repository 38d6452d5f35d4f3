//! Crash tests with a real child process: many concurrent holds, `SIGKILL` at a random
//! moment, reopen. Everything the child saw acknowledged must be there, and every cell's
//! `held` must equal the sum of its live holds.
//!
//! "Acknowledged" is what the child printed; "durable" is what recovery finds. The test
//! only ever asserts acknowledged ⊆ durable: work in flight at the kill may land or not.
//!
//! `kill -9` keeps the page cache; a power loss does not. The last test drives an engine
//! through a modelled power loss after a process crash.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use allot_engine::core::{HoldState, Query, Reply, Request, Resolution, State};
use allot_engine::{EngineConfig, ReplayFrom, rebuild_state};
use allot_snapshots::{FsStorage, PowerLoss, PowerLossStorage};
use allot_tests::{Ack, Rng};

use crate::support::*;

/// How long the child may take to open its directory and say it is ready.
const CHILD_READY_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn acknowledged_holds_survive_kill_9_over_20_cycles() {
    run_crash_cycles(20, 0x5eed);
}

#[test]
#[ignore = "long: run with --ignored for 200 kill -9 cycles"]
fn acknowledged_holds_survive_kill_9_over_200_cycles() {
    run_crash_cycles(200, 0xdead_beef);
}

/// What the parent knows was acknowledged, per hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    lines: Vec<(String, String, u32)>,
    resolved: Option<Resolution>,
}

fn run_crash_cycles(cycles: u64, seed: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng::new(seed);
    let mut known: BTreeMap<u64, Known> = BTreeMap::new();
    let mut acks_total = 0;
    for cycle in 0..cycles {
        let run_for = Duration::from_millis(20 + rng.below(200));
        let acks = run_child_and_kill(dir.path(), seed + cycle, run_for);
        acks_total += acks.len();
        record(&mut known, acks);
        let state = recovered_state(dir.path());
        check_acknowledged(&state, &known, cycle);
    }
    assert!(acks_total > cycles as usize, "the child acknowledged too little to test anything");
    let (_, report) =
        rebuild_state(Arc::new(FsStorage), dir.path(), ReplayFrom::Snapshot).expect("recovers");
    eprintln!(
        "{cycles} kill -9 cycles, {acks_total} acknowledgements, {} holds; last recovery: {report:?}",
        known.len()
    );
    assert!(report.snapshot_position.is_some(), "the child wrote snapshots while being killed");
}

/// Starts the child, lets it work for `run_for` after it is ready, kills it with
/// SIGKILL and returns every complete acknowledgement line it printed.
fn run_child_and_kill(dir: &Path, seed: u64, run_for: Duration) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir)
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    let lines = read_lines(&mut child);
    let first = lines.recv_timeout(CHILD_READY_TIMEOUT);
    if first.as_deref() != Ok("ready") {
        let _ = child.kill();
        panic!("child did not get ready: {first:?}");
    }
    std::thread::sleep(run_for);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("child is reaped");
    assert!(!status.success(), "the child was killed, not finished");
    lines.iter().filter_map(|line| Ack::parse(&line)).collect()
}

/// Complete lines from the child's stdout; a line cut off by the kill has no newline
/// and is dropped, since the parent cannot know what it said.
fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
            if let Some(complete) = line.strip_suffix('\n') {
                let _ = sender.send(complete.to_owned());
            }
            line.clear();
        }
    });
    receiver
}

fn record(known: &mut BTreeMap<u64, Known>, acks: Vec<Ack>) {
    for ack in acks {
        match ack {
            Ack::Placed { hold, lines } => {
                let previous = known.insert(hold, Known { lines, resolved: None });
                assert!(previous.is_none(), "hold id {hold} was acknowledged twice");
            }
            Ack::Released { hold } => resolve(known, hold, Resolution::Released),
            Ack::Committed { hold } => resolve(known, hold, Resolution::Committed),
        }
    }
}

fn resolve(known: &mut BTreeMap<u64, Known>, hold: u64, how: Resolution) {
    let entry = known.get_mut(&hold).expect("a resolved hold was placed first");
    entry.resolved = Some(how);
}

fn recovered_state(dir: &Path) -> State {
    let (state, _report) =
        rebuild_state(Arc::new(FsStorage), dir, ReplayFrom::Snapshot).expect("recovery succeeds");
    state.audit().expect("held counters equal the live holds");
    state
}

fn check_acknowledged(state: &State, known: &BTreeMap<u64, Known>, cycle: u64) {
    for (hold, expected) in known {
        let view = match state.query(&Query::Hold { hold: *hold }) {
            Ok(Reply::Hold(view)) => view,
            other => panic!("cycle {cycle}: acknowledged hold {hold} is missing: {other:?}"),
        };
        match expected.resolved {
            Some(how) => {
                assert_eq!(view.state, HoldState::Resolved(how), "cycle {cycle}, hold {hold}")
            }
            // An unacknowledged release or commit may have become durable; expiry may not,
            // since the child's holds live for a day.
            None => assert_ne!(view.state, HoldState::Resolved(Resolution::Expired), "hold {hold}"),
        }
        if view.state == HoldState::Held || expected.resolved == Some(Resolution::Committed) {
            let mut lines: Vec<(String, String, u32)> = view
                .lines
                .iter()
                .map(|line| (line.sku.clone(), line.location.clone(), line.quantity))
                .collect();
            lines.sort();
            assert_eq!(lines, merged(&expected.lines), "cycle {cycle}: lines of hold {hold}");
        }
    }
    let shortages = state.query(&Query::Shortages);
    assert_eq!(shortages, Ok(Reply::Cells(Vec::new())), "cycle {cycle}: holds oversold a cell");
}

/// The child's request lines as the engine stores them: same cells summed, sorted.
fn merged(lines: &[(String, String, u32)]) -> Vec<(String, String, u32)> {
    let mut cells: BTreeMap<(String, String), u32> = BTreeMap::new();
    for (sku, location, quantity) in lines {
        *cells.entry((sku.clone(), location.clone())).or_default() += quantity;
    }
    cells.into_iter().map(|((sku, location), quantity)| (sku, location, quantity)).collect()
}

#[test]
fn a_hold_answered_from_replay_after_kill_9_survives_a_later_power_loss() {
    // The hold's batch reaches the page cache, the engine dies before its fsync, the
    // restarted engine replays it and answers the client's retry from the idempotency
    // table (logging nothing), then the power fails: the answered hold must be there.
    const SKU: &str = "LAMP-OAK";
    let dir = data_dir();
    let storage = PowerLossStorage::new();
    // A manual clock: no expiry ticks are logged, so nothing else syncs the segment.
    let config =
        EngineConfig { storage: Arc::new(storage.clone()), ..config_with_clock(&manual_clock()) };
    let engine = stocked_engine(dir.path(), config.clone(), &[SKU], 10);
    let keyed = || Request::with_key("checkout-7", reserve_command(SKU, 3, None));

    storage.crash_after_ops(1);
    let lost = engine.submit(keyed()).wait();
    assert!(lost.is_err(), "the batch was written but its fsync failed: {lost:?}");
    engine.shutdown();

    storage.restart_process();
    let engine = open(dir.path(), config);
    let retried = engine.submit(keyed()).wait().expect("the retry is answered");
    let Reply::HoldPlaced { hold: id, .. } = retried else { panic!("{retried:?}") };
    assert_eq!(hold(&engine, id).state, HoldState::Held);
    let after_power_loss = storage.power_loss(PowerLoss::DropUnsynced);
    engine.shutdown();

    let config =
        EngineConfig { storage: Arc::new(after_power_loss), ..config_with_clock(&manual_clock()) };
    let engine = open(dir.path(), config);
    assert_eq!(hold(&engine, id).state, HoldState::Held, "the acknowledged hold was lost");
    assert_eq!(cell(&engine, SKU, LOCATION).held, 3);
    engine.shutdown();
}
