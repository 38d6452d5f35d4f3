//! Damaged data directories: a torn tail is cut off and reported, every other kind of
//! damage (a flipped byte mid-log, a missing segment) refuses to open and says where, a
//! bad newest snapshot falls back to the older one, and a directory opens only once.

use std::fs;
use std::sync::Arc;

use allot_engine::core::{HoldState, Request};
use allot_engine::{Engine, EngineConfig, OpenError, ReplayFrom, codec};
use allot_snapshots::RecoveryError;
use allot_snapshots::storage::FsStorage;
use allot_snapshots::wal::encode_batch;

use crate::support::*;

const SKU: &str = "MUG-BLUE";

/// What a crash can leave after the last whole record.
#[derive(Debug, Clone, Copy)]
enum Tail {
    /// The first half of the next batch: a write cut off part way.
    HalfBatch,
    /// Zeros: space the file system allocated but the data never reached.
    Zeros,
}

#[test]
fn a_torn_tail_is_truncated_to_the_last_whole_record_and_reported() {
    for tail in [Tail::HalfBatch, Tail::Zeros] {
        torn_tail_case(tail);
    }
}

fn torn_tail_case(tail: Tail) {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 100);
    let holds: Vec<_> = (0..5).map(|_| reserve(&engine, SKU, 2)).collect();
    engine.shutdown();

    let segment = newest_segment(dir.path());
    let whole = fs::read(&segment).expect("read the segment");
    let last = *records_in(&segment).last().expect("records");
    let appended = match tail {
        Tail::HalfBatch => {
            let mut payload = Vec::new();
            codec::encode_request(&Request::new(reserve_command(SKU, 1, None)), &mut payload);
            let mut batch = Vec::new();
            encode_batch(
                &mut batch,
                last.position + 1,
                &[(START_MS, &payload), (START_MS, &payload)],
            );
            batch.truncate(batch.len() / 2);
            batch
        }
        Tail::Zeros => vec![0; 40],
    };
    let mut damaged = whole.clone();
    damaged.extend_from_slice(&appended);
    fs::write(&segment, &damaged).expect("append the torn tail");

    let engine = open(dir.path(), config());
    let report = engine.recovery_report().clone();
    let torn = report.torn_tail.expect("the torn tail is reported");
    assert_eq!((&torn.path, torn.offset), (&segment, whole.len() as u64), "{tail:?}");
    assert_eq!(torn.bytes_dropped, appended.len() as u64, "{tail:?}");
    assert_eq!(report.last_position, last.position, "{tail:?}");
    assert_eq!(fs::read(&segment).expect("read the segment"), whole, "{tail:?}: truncated back");
    for &id in &holds {
        assert_eq!(hold(&engine, id).state, HoldState::Held, "{tail:?}: hold {id}");
    }
    assert_eq!(cell(&engine, SKU, LOCATION).held, 10, "{tail:?}");

    // The log continues cleanly where the cut was.
    let more = reserve(&engine, SKU, 1);
    engine.shutdown();
    let engine = open(dir.path(), config());
    assert_eq!(engine.recovery_report().torn_tail, None, "{tail:?}");
    assert_eq!(engine.recovery_report().last_position, last.position + 1, "{tail:?}");
    assert_eq!(hold(&engine, more).state, HoldState::Held, "{tail:?}");
    assert_eq!(cell(&engine, SKU, LOCATION).held, 11, "{tail:?}");
    engine.shutdown();
}

#[test]
fn a_flipped_byte_with_valid_records_after_it_refuses_to_open_naming_file_and_offset() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 100);
    for _ in 0..6 {
        reserve(&engine, SKU, 1);
    }
    engine.shutdown();

    let segment = newest_segment(dir.path());
    let records = records_in(&segment);
    assert!(records.len() >= 8, "{} records", records.len());
    let victim = records[records.len() / 2];
    flip_byte(&segment, victim.offset + victim.bytes - 3);
    let damaged = fs::read(&segment).expect("read the segment");

    for attempt in 0..2 {
        // The second attempt also shows the failed open let go of the directory lock.
        let error = try_open(dir.path(), config()).err().expect("a corrupt log must not open");
        let is_corrupt_at_victim = matches!(&error,
            OpenError::Recovery(RecoveryError::Corrupt { path, offset, .. })
                if *path == segment && *offset == victim.offset as u64);
        assert!(is_corrupt_at_victim, "attempt {attempt}: {error:?}");
        let message = error.to_string();
        assert!(message.contains(&segment.display().to_string()), "attempt {attempt}: {message}");
        assert!(message.contains(&format!("at byte {}", victim.offset)), "{message}");
        assert!(message.contains("corrupt"), "{message}");
        assert_eq!(fs::read(&segment).expect("read"), damaged, "the log was modified");
    }
    let offline = try_rebuild(dir.path(), ReplayFrom::WholeLog);
    let error = offline.expect_err("an offline rebuild refuses it too");
    assert!(error.to_string().contains(&format!("at byte {}", victim.offset)), "{error}");
}

/// Settings that roll the log over every few kilobytes, so there are several segments.
fn small_segments() -> EngineConfig {
    EngineConfig { segment_bytes_target: 4 * 1024, ..config() }
}

/// One-unit holds per batch: a batch fills a small segment on its own.
const HOLDS_PER_BATCH: u32 = 120;

/// Places `batches` batches of one-unit holds; each batch is one log write.
fn hold_batches(engine: &Engine, batches: usize) {
    for _ in 0..batches {
        let requests =
            (0..HOLDS_PER_BATCH).map(|_| Request::new(reserve_command(SKU, 1, None))).collect();
        let outcomes = engine.submit_batch(requests).wait().expect("batch");
        for outcome in &outcomes {
            placed(outcome);
        }
    }
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older_one_and_the_log_after_it() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), small_segments(), &[SKU], 10_000);
    hold_batches(&engine, 3);
    let older = engine.snapshot().wait().expect("first snapshot");
    hold_batches(&engine, 3);
    let newer = engine.snapshot().wait().expect("second snapshot");
    assert!(newer > older);
    hold_batches(&engine, 3);
    let digest = engine.digest().wait().expect("digest");
    engine.shutdown();

    let files = snapshots(dir.path());
    assert_eq!(files.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [older, newer]);
    let segments = segments(dir.path());
    assert!(segments[0].0 > 1, "pruning removed the segments before the older snapshot");
    assert!(segments[0].0 <= older + 1, "the log after the older snapshot is kept");

    let newest = &files[1].1;
    let body_middle = 32 + (fs::metadata(newest).expect("size").len() as usize - 32) / 2;
    flip_byte(newest, body_middle);

    let engine = open(dir.path(), config());
    let report = engine.recovery_report().clone();
    assert_eq!(report.snapshot_position, Some(older));
    assert_eq!(report.records_replayed, report.last_position - older);
    assert_eq!(engine.digest().wait().expect("digest"), digest);
    assert_eq!(cell(&engine, SKU, LOCATION).held, 9 * HOLDS_PER_BATCH);
    // The corrupt snapshot is renamed aside, so it no longer counts as one of the two
    // kept and the next snapshot cannot trim the log on its account.
    let mut aside = newest.clone().into_os_string();
    aside.push(".corrupt");
    assert_eq!(report.snapshots_set_aside, [std::path::PathBuf::from(aside)]);
    assert_eq!(snapshots(dir.path()).iter().map(|(p, _)| *p).collect::<Vec<_>>(), [older]);
    let third = engine.snapshot().wait().expect("a new snapshot");
    assert_eq!(snapshots(dir.path()).iter().map(|(p, _)| *p).collect::<Vec<_>>(), [older, third]);
    engine.shutdown();
}

#[test]
fn a_missing_segment_in_the_middle_refuses_to_open_naming_the_gap() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), small_segments(), &[SKU], 10_000);
    hold_batches(&engine, 6);
    engine.shutdown();

    let segments = segments(dir.path());
    assert!(segments.len() >= 4, "{} segments", segments.len());
    let (missing_from, missing) = segments[1].clone();
    let (resumes_at, resumes) = segments[2].clone();
    fs::remove_file(&missing).expect("delete a middle segment");

    let error = try_open(dir.path(), config()).err().expect("a log with a gap must not open");
    let is_gap = matches!(&error,
        OpenError::Recovery(RecoveryError::Gap { expected, found, .. })
            if *expected == missing_from && *found == resumes_at);
    assert!(is_gap, "{error:?}");
    let message = error.to_string();
    assert!(message.contains("missing"), "{message}");
    assert!(message.contains(&format!("expected position {missing_from}")), "{message}");
    assert!(message.contains(&format!("found {resumes_at}")), "{message}");
    assert!(message.contains(&resumes.display().to_string()), "{message}");
    let offline = try_rebuild(dir.path(), ReplayFrom::WholeLog);
    let error = offline.expect_err("an offline rebuild refuses it too");
    assert!(error.to_string().contains(&format!("expected position {missing_from}")), "{error}");
}

#[test]
fn a_second_open_of_an_open_directory_fails_with_a_lock_error() {
    let dir = data_dir();
    let engine = stocked_engine(dir.path(), config(), &[SKU], 10);
    let id = reserve(&engine, SKU, 3);

    let error = Engine::open(dir.path(), config()).err().expect("the directory is in use");
    assert!(matches!(error, OpenError::Recovery(RecoveryError::Locked { .. })), "{error:?}");
    let offline =
        allot_engine::rebuild_state(Arc::new(FsStorage), dir.path(), ReplayFrom::WholeLog);
    assert!(offline.expect_err("in use").to_string().contains("locked"));
    // The refused opens touched nothing: the first engine still works.
    assert_eq!(hold(&engine, id).state, HoldState::Held);
    reserve(&engine, SKU, 1);
    engine.shutdown();

    let engine = open(dir.path(), config());
    assert_eq!(cell(&engine, SKU, LOCATION).held, 4);
    engine.shutdown();
}
