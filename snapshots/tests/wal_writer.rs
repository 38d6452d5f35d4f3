//! The log writer: group commit, positions, segment rollover and reopening.

mod common;

use std::fs;
use std::sync::Arc;

use allot_snapshots::wal::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use allot_snapshots::{
    DataDir, FaultPlan, FaultyStorage, SEGMENT_BYTES_TARGET_DEFAULT, StorageError,
};
use common::*;

#[test]
fn group_commit_does_one_write_and_one_sync_per_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = FaultPlan::new();
    let data_dir =
        DataDir::open(Arc::new(FaultyStorage::new(Arc::clone(&plan))), dir.path()).expect("open");
    let mut writer = data_dir.wal_writer(1, SEGMENT_BYTES_TARGET_DEFAULT).expect("writer");
    for batch in 1..=3u64 {
        let (writes, syncs) = (plan.writes(), plan.syncs());
        for _ in 0..100 * batch {
            writer.append(7, b"hold sku-1 x1");
        }
        writer.commit().expect("commit");
        assert_eq!(plan.writes() - writes, 1, "writes in batch {batch}");
        assert_eq!(plan.syncs() - syncs, 1, "syncs in batch {batch}");
    }
    assert_eq!(writer.durable_position(), 600);
}

#[test]
fn commit_with_nothing_pending_touches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = FaultPlan::new();
    let data_dir =
        DataDir::open(Arc::new(FaultyStorage::new(Arc::clone(&plan))), dir.path()).expect("open");
    let mut writer = data_dir.wal_writer(1, 1024).expect("writer");
    let (writes, syncs) = (plan.writes(), plan.syncs());
    writer.commit().expect("empty commit");
    assert_eq!((plan.writes(), plan.syncs()), (writes, syncs));
}

#[test]
fn positions_advance_on_append_and_become_durable_on_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let mut writer = data_dir.wal_writer(1, 1024).expect("writer");
    assert_eq!(writer.append(10, b"a"), 1);
    assert_eq!(writer.append(11, b"b"), 2);
    assert_eq!(writer.next_position(), 3);
    assert_eq!(writer.pending_records(), 2);
    assert_eq!(writer.durable_position(), 0);
    writer.commit().expect("commit");
    assert_eq!(writer.pending_records(), 0);
    assert_eq!(writer.durable_position(), 2);
    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, vec![(1, 10, b"a".to_vec()), (2, 11, b"b".to_vec())]);
    assert_eq!(report.last_position, 2);
}

#[test]
fn append_with_encodes_the_payload_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let mut writer = data_dir.wal_writer(1, 1024).expect("writer");
    let position = writer.append_with(5, |buf| {
        buf.extend_from_slice(b"qty=");
        buf.extend_from_slice(&3u32.to_le_bytes());
    });
    writer.commit().expect("commit");
    let (records, _) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, vec![(position, 5, b"qty=\x03\0\0\0".to_vec())]);
}

#[test]
fn small_segment_target_rolls_over_into_segments_named_by_first_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    write_log(&data_dir, 200, 10, 300);
    let files = segments(dir.path());
    assert!(files.len() > 3, "only {} segments", files.len());
    for path in &files {
        let first = replay_first_position(path).expect("segment has records");
        assert_eq!(*path, segment_path(dir.path(), first));
    }
    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, expected(1..=200));
    assert_eq!(report.last_position, 200);
    assert_eq!(report.torn_tail, None);
}

fn replay_first_position(path: &std::path::Path) -> Option<u64> {
    let bytes = fs::read(path).expect("read");
    let scan = allot_snapshots::scan_segment(&bytes);
    assert_eq!(scan.stopped, None, "{} verifies to its end", path.display());
    let first = scan.records.first()?.record.position;
    assert_eq!(scan.header.map(|h| h.first_position), Some(first), "header names the first record");
    Some(first)
}

#[test]
fn a_batch_never_spans_two_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    // Every batch overshoots the target, so each one must land in a segment of its own.
    write_log(&data_dir, 50, 5, 1);
    let firsts: Vec<u64> = segments(dir.path())
        .iter()
        .map(|path| replay_first_position(path).expect("first record"))
        .collect();
    assert_eq!(firsts, (0..10).map(|batch| batch * 5 + 1).collect::<Vec<_>>());
}

#[test]
fn reopening_appends_to_a_newest_segment_under_the_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 10, 10, SEGMENT_BYTES_TARGET_DEFAULT));
    let mut writer = data_dir.wal_writer(11, SEGMENT_BYTES_TARGET_DEFAULT).expect("reopen");
    append_and_commit(&mut writer, 10, 10);
    assert_eq!(segments(dir.path()), vec![segment_path(dir.path(), 1)]);
    assert_eq!(replay(&data_dir, 0).expect("replay").0, expected(1..=20));
}

#[test]
fn reopening_starts_a_new_segment_when_the_newest_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 10, 10, 64));
    let first_len = file_len(&segment_path(dir.path(), 1));
    assert!(first_len >= 64);
    let writer = data_dir.wal_writer(11, 64).expect("reopen");
    // The new segment exists, with only its header, before anything is appended.
    assert_eq!(writer.segment_path(), segment_path(dir.path(), 11));
    assert_eq!(file_len(&segment_path(dir.path(), 11)), SEGMENT_HEADER_BYTES as u64);
    assert_eq!(file_len(&segment_path(dir.path(), 1)), first_len);
}

#[test]
fn open_refuses_a_position_the_newest_segment_contradicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, 1));
    // Segment 21 holds records 21..=30, so the log cannot continue at 21 or 5.
    for next in [21, 5] {
        let error = data_dir.wal_writer(next, 1).expect_err("behind the log");
        let StorageError::Io { source, path, .. } = error else {
            panic!("expected an I/O error, got {error}");
        };
        assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(path, segment_path(dir.path(), 21));
    }
    assert!(data_dir.wal_writer(0, 1).is_err(), "position 0 does not exist");
}

#[test]
fn segment_size_counts_the_segment_header_batch_headers_record_headers_and_payloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    // Two batches: records 1..=3, then 4..=5.
    drop(write_log(&data_dir, 5, 3, SEGMENT_BYTES_TARGET_DEFAULT));
    let payload_bytes: usize = (1..=5).map(|p| payload(p).len()).sum();
    assert_eq!(
        file_len(&segment_path(dir.path(), 1)),
        (SEGMENT_HEADER_BYTES + 2 * BATCH_HEADER_BYTES + 5 * RECORD_HEADER_BYTES + payload_bytes)
            as u64
    );
    assert_eq!(batch_offsets(&segment_path(dir.path(), 1)).len(), 2);
}
