//! Replay determinism: a few thousand seeded random requests, with engine time moving so
//! that holds expire through logged ticks, rebuild to exactly the live state both from
//! the whole log and from a snapshot taken midway.

use allot_bench::Rng;
use std::sync::Arc;

use allot_engine::core::{Command, HoldId, HoldState, LineRequest, Reply, Request};
use allot_engine::{Engine, ManualClock, ReplayFrom, codec};

use crate::support::*;

const SKUS: [&str; 6] = ["SOCK-1", "SOCK-2", "SOCK-3", "HAT-1", "HAT-2", "SCARF-1"];
const LOCATIONS: [&str; 3] = ["DC-NORTH", "DC-SOUTH", "STORE-LDS"];
const BATCHES: usize = 60;
const REQUESTS_PER_BATCH: usize = 50;
const SEED: u64 = 0x5eed_a110_7000_0001;

/// Drawing from lists with the shared seeded generator, so the request stream is the
/// same on every run.
trait Pick {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T;

    fn pick_str(&mut self, items: &[&str]) -> String {
        (*self.pick(items)).to_owned()
    }
}

impl Pick for Rng {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A hold the generator has seen placed, with the lines it asked for.
struct Placed {
    hold: HoldId,
    lines: Vec<LineRequest>,
}

fn random_lines(rng: &mut Rng) -> Vec<LineRequest> {
    let count = 1 + rng.below(3);
    (0..count)
        .map(|_| line(&rng.pick_str(&SKUS), &rng.pick_str(&LOCATIONS), 1 + rng.below(5) as u32))
        .collect()
}

fn random_request(rng: &mut Rng, placed: &[Placed], orders: &mut u64) -> Request {
    let recent = &placed[placed.len().saturating_sub(200)..];
    let roll = rng.below(100);
    let command = match roll {
        0..10 => Command::Receive {
            sku: rng.pick_str(&SKUS),
            location: rng.pick_str(&LOCATIONS),
            quantity: 1 + rng.below(40) as u32,
        },
        10..18 => {
            let delta = rng.below(21) as i64 - 10;
            Command::Adjust {
                sku: rng.pick_str(&SKUS),
                location: rng.pick_str(&LOCATIONS),
                delta: if delta == 0 { 1 } else { delta },
                reason: rng.pick_str(&["damaged", "found", "cycle-variance"]),
            }
        }
        55..92 if !recent.is_empty() => {
            let target = rng.pick(recent);
            match roll {
                55..62 => Command::ReleaseHold { hold: target.hold, lines: Vec::new() },
                62..68 => {
                    let mut part = target.lines[0].clone();
                    part.quantity = 1;
                    Command::ReleaseHold { hold: target.hold, lines: vec![part] }
                }
                68..82 => {
                    *orders += 1;
                    Command::CommitHold { hold: target.hold, order_number: format!("W{orders:07}") }
                }
                _ => Command::ExtendHold { hold: target.hold, ttl_ms: 1_000 + rng.below(4_000) },
            }
        }
        92..100 => {
            // A small key pool: some retries repeat the command, some conflict with it.
            let key = rng.below(40);
            let command = Command::Reserve {
                lines: vec![line(
                    SKUS[key as usize % SKUS.len()],
                    LOCATIONS[0],
                    1 + rng.below(2) as u32,
                )],
                ttl_ms: Some(2_000),
            };
            return Request::with_key(format!("retry-{key}"), command);
        }
        _ => Command::Reserve { lines: random_lines(rng), ttl_ms: Some(1_000 + rng.below(4_000)) },
    };
    Request::new(command)
}

/// Sends the seeded stream in batches, moving the clock between batches; takes a snapshot
/// after half of them. Returns the snapshot's position and every hold placed.
fn drive(engine: &Engine, clock: &ManualClock) -> (u64, Vec<Placed>) {
    let mut rng = Rng::new(SEED);
    let mut placed: Vec<Placed> = Vec::new();
    let mut orders = 0;
    let mut snapshot = None;
    for batch in 0..BATCHES {
        let requests: Vec<Request> = (0..REQUESTS_PER_BATCH)
            .map(|_| random_request(&mut rng, &placed, &mut orders))
            .collect();
        let outcomes = engine.submit_batch(requests.clone()).wait().expect("batch taken");
        assert_eq!(outcomes.len(), requests.len());
        for (request, outcome) in requests.iter().zip(&outcomes) {
            if let (Command::Reserve { lines, .. }, Ok(Reply::HoldPlaced { hold, .. })) =
                (&request.command, outcome)
            {
                placed.push(Placed { hold: *hold, lines: lines.clone() });
            }
        }
        clock.advance(rng.below(1_500));
        if batch == BATCHES / 2 {
            snapshot = Some(engine.snapshot().wait().expect("midway snapshot"));
        }
    }
    (snapshot.expect("taken midway"), placed)
}

#[test]
fn replaying_the_whole_log_or_from_a_midway_snapshot_gives_the_live_digest() {
    let dir = data_dir();
    let clock = Arc::new(ManualClock::new(START_MS));
    let engine = open(dir.path(), config_with_clock(&clock));
    for code in LOCATIONS {
        add_location(&engine, code);
    }
    for sku in SKUS {
        for code in LOCATIONS {
            receive(&engine, sku, code, 60);
        }
    }
    let (snapshot_position, placed) = drive(&engine, &clock);
    assert!(placed.len() > 300, "{} holds placed", placed.len());

    // Move past every deadline; the writer logs the tick that expires what is left.
    clock.advance(10_000);
    let newest = placed.last().expect("holds").hold;
    poll_until("the last hold is resolved", || hold(&engine, newest).state != HoldState::Held);
    let live_digest = engine.digest().wait().expect("digest");
    engine.shutdown();
    assert_eq!(segments(dir.path())[0].0, 1, "the whole log is still there");

    let (whole, whole_report) = rebuild(dir.path(), ReplayFrom::WholeLog);
    let (snapped, snapped_report) = rebuild(dir.path(), ReplayFrom::Snapshot);
    assert_eq!(codec::state_digest(&whole), live_digest, "whole-log replay");
    assert_eq!(codec::state_digest(&snapped), live_digest, "replay from the snapshot");
    assert_eq!(whole_report.snapshot_position, None);
    assert_eq!(whole_report.records_replayed, whole_report.last_position);
    assert_eq!(snapped_report.snapshot_position, Some(snapshot_position));
    assert_eq!(snapped_report.last_position, whole_report.last_position);
    assert_eq!(snapped_report.records_replayed, whole_report.last_position - snapshot_position);
    assert!(snapshot_position > 0 && snapshot_position < whole_report.last_position);

    for state in [&whole, &snapped] {
        state.audit().expect("audit");
        assert_eq!(state.counters(), whole.counters());
        for sku in SKUS {
            for code in LOCATIONS {
                assert_eq!(state_cell(state, sku, code).held, 0, "{sku}@{code}: all resolved");
            }
        }
    }
    let counters = whole.counters();
    assert!(counters.holds_expired > 0, "{counters:?}");
    assert!(counters.holds_committed > 0, "{counters:?}");
    assert!(counters.holds_released > 0, "{counters:?}");
    assert_eq!(
        counters.holds_placed,
        counters.holds_expired + counters.holds_committed + counters.holds_released,
        "{counters:?}"
    );

    // Opening the directory, the way a restart does, lands on the same state too.
    let engine = open(dir.path(), config_with_clock(&clock));
    assert_eq!(engine.digest().wait().expect("digest"), live_digest);
    engine.shutdown();
}

#[test]
fn a_hold_extended_before_a_snapshot_expires_at_the_same_tick_live_and_after_replay() {
    let dir = data_dir();
    let clock = Arc::new(ManualClock::new(START_MS));
    let engine = stocked_engine(dir.path(), config_with_clock(&clock), &[SKUS[0]], 10);
    // Deadline START + 1 s: its expiry bucket ends at START + 2 s.
    let id = placed(&engine.submit(Request::new(reserve_command(SKUS[0], 2, Some(1_000)))).wait());
    // Moved to START + 2.1 s, in the next bucket, which ends at START + 3 s. The live
    // engine still has the old entry; a state loaded from a snapshot only has the new one.
    clock.set(START_MS + 900);
    let extend = Command::ExtendHold { hold: id, ttl_ms: 1_200 };
    assert_eq!(
        engine.submit(Request::new(extend)).wait(),
        Ok(Reply::HoldExtended { hold: id, expires_at_ms: START_MS + 2_100 })
    );
    let snapshot_position = engine.snapshot().wait().expect("snapshot");

    // Past the new deadline but inside its bucket: the old entry's tick is logged now.
    clock.set(START_MS + 2_500);
    receive(&engine, SKUS[0], LOCATION, 1);
    let live_state = hold(&engine, id).state;
    clock.set(START_MS + 3_500);
    poll_until("the hold expires", || hold(&engine, id).state != HoldState::Held);
    let live_digest = engine.digest().wait().expect("digest");
    engine.shutdown();

    let (whole, _) = rebuild(dir.path(), ReplayFrom::WholeLog);
    let (snapped, report) = rebuild(dir.path(), ReplayFrom::Snapshot);
    assert_eq!(report.snapshot_position, Some(snapshot_position));
    assert_eq!(codec::state_digest(&whole), live_digest, "whole-log replay");
    assert_eq!(
        codec::state_digest(&snapped),
        live_digest,
        "replay from the snapshot (the live hold read {live_state:?} at START + 2.5 s)"
    );
}

/// Log bytes between snapshots in the restart tests: a few dozen records.
const SNAPSHOT_LOG_BYTES: u64 = 2 * 1024;
/// Largest log record a one-line reserve makes (header included), generously.
const RESERVE_RECORD_BYTES_MAX: u64 = 256;

#[test]
fn replay_after_many_unclean_restarts_stays_within_the_log_size_policy() {
    const RESTARTS: usize = 20;
    const HOLDS_PER_RUN: usize = 10;
    let dir = data_dir();
    // Only log size triggers snapshots, and none is written at shutdown: each run ends
    // as a crash would leave it.
    let by_log_size =
        allot_engine::EngineConfig { snapshot_every_log_bytes: SNAPSHOT_LOG_BYTES, ..config() };
    drop(stocked_engine(dir.path(), by_log_size.clone(), &["SOCK-1"], 1_000_000));
    let (mut most_records, mut most_bytes) = (0, 0);
    for _ in 0..RESTARTS {
        let engine = open(dir.path(), by_log_size.clone());
        let report = engine.recovery_report().clone();
        most_records = most_records.max(report.records_replayed);
        most_bytes = most_bytes.max(report.log_bytes_replayed);
        for _ in 0..HOLDS_PER_RUN {
            reserve(&engine, "SOCK-1", 1);
        }
        drop(engine);
    }
    eprintln!(
        "after {} records in {RESTARTS} runs, the longest replay was {most_records} records, \
         {most_bytes} bytes",
        RESTARTS * HOLDS_PER_RUN
    );
    assert!(
        most_bytes < SNAPSHOT_LOG_BYTES + RESERVE_RECORD_BYTES_MAX,
        "replayed {most_bytes} bytes"
    );
    assert!((most_records as usize) < RESTARTS * HOLDS_PER_RUN / 2, "replayed {most_records}");
    let engine = open(dir.path(), by_log_size);
    assert!(
        engine.recovery_report().log_bytes_replayed < SNAPSHOT_LOG_BYTES + RESERVE_RECORD_BYTES_MAX
    );
    engine.shutdown();
}

#[test]
fn a_start_that_replays_more_than_the_log_size_policy_snapshots_it_before_serving() {
    const HOLDS: usize = 64;
    let dir = data_dir();
    // Written with automatic snapshots off, and no snapshot at shutdown: everything the
    // next start replays is unsaved, as a process that died before its snapshot leaves it.
    let engine = stocked_engine(dir.path(), config(), &["SOCK-1"], 1_000_000);
    for _ in 0..HOLDS {
        reserve(&engine, "SOCK-1", 1);
    }
    drop(engine);
    let by_log_size =
        allot_engine::EngineConfig { snapshot_every_log_bytes: SNAPSHOT_LOG_BYTES, ..config() };
    let engine = open(dir.path(), by_log_size);
    let report = engine.recovery_report().clone();
    assert!(report.log_bytes_replayed >= SNAPSHOT_LOG_BYTES, "{report:?}");
    // Already there when `open` returns: a start that dies right after serving still
    // leaves the next one a short log.
    let snapshot =
        dir.path().join(allot_snapshots::snapshot::snapshot_file_name(report.last_position));
    assert!(snapshot.exists(), "no {} once open returned", snapshot.display());
    engine.shutdown();
}

#[test]
fn an_idle_engine_snapshots_its_writes_once_the_time_policy_passes() {
    const EVERY_MS: u64 = 60_000;
    let dir = data_dir();
    let clock = manual_clock();
    let by_time =
        allot_engine::EngineConfig { snapshot_every_ms: EVERY_MS, ..config_with_clock(&clock) };
    let engine = stocked_engine(dir.path(), by_time, &["SOCK-1"], 10);
    let held = reserve(&engine, "SOCK-1", 1);
    clock.advance(EVERY_MS);
    // No write follows: the snapshotter's own wake-up finds the snapshot due.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while snapshots(dir.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no snapshot was taken");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    engine.shutdown();
    let engine = open(dir.path(), config_with_clock(&clock));
    // Positions 1 to 3 are the location, the receipt and the hold; a tick may follow.
    let report = engine.recovery_report();
    assert!(report.snapshot_position.is_some_and(|position| position >= 3), "{report:?}");
    assert_eq!(hold(&engine, held).state, HoldState::Held);
    engine.shutdown();
}
