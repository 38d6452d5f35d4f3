//! Snapshot files through a data directory: loading, fallback, retention and log pruning.

mod common;

use std::fs;

use allot_snapshots::snapshot::{SNAPSHOT_HEADER_BYTES, snapshot_file_name};
use allot_snapshots::{DataDir, RecoveryError, SNAPSHOT_BODY_BYTES_MAX, SNAPSHOTS_KEPT};
use common::*;

fn snapshot_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| entry.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|name| name.starts_with("snapshot-"))
        .collect();
    names.sort();
    names
}

#[test]
fn snapshot_written_is_loaded_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    assert_eq!(data_dir.load_snapshot().expect("load"), None);
    let path = data_dir.snapshot_store().write(42, b"state at 42").expect("write");
    assert_eq!(path, dir.path().join("snapshot-00000000000000000042.snap"));
    assert_eq!(file_len(&path), (SNAPSHOT_HEADER_BYTES + 11) as u64);
    let loaded = data_dir.load_snapshot().expect("load").expect("present");
    assert_eq!(
        (loaded.position, loaded.body.as_slice(), loaded.path),
        (42, &b"state at 42"[..], path)
    );
    assert_eq!(snapshot_names(dir.path()), ["snapshot-00000000000000000042.snap"]);
}

#[test]
fn corrupt_newest_snapshot_falls_back_to_the_previous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let store = data_dir.snapshot_store();
    store.write(10, b"state at 10").expect("write");
    let newest = store.write(20, b"state at 20").expect("write");
    flip_byte(&newest, (SNAPSHOT_HEADER_BYTES + 3) as u64);
    let loaded = data_dir.load_snapshot().expect("load").expect("fallback");
    assert_eq!((loaded.position, loaded.body), (10, b"state at 10".to_vec()));
}

#[test]
fn no_verifying_snapshot_is_corrupt_naming_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let store = data_dir.snapshot_store();
    let older = store.write(10, b"state at 10").expect("write");
    let newest = store.write(20, b"state at 20").expect("write");
    flip_byte(&older, 0);
    flip_byte(&newest, (SNAPSHOT_HEADER_BYTES + 1) as u64);
    let error = data_dir.load_snapshot().expect_err("none verifies");
    let RecoveryError::Corrupt { path, offset, reason } = &error else {
        panic!("expected Corrupt, got {error}");
    };
    assert_eq!((path, *offset), (&newest, 28));
    assert!(reason.contains("crc mismatch"), "{reason}");
}

#[test]
fn caller_can_reject_a_verified_snapshot_and_take_the_one_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let store = data_dir.snapshot_store();
    store.write(10, b"ten").expect("write");
    store.write(20, b"twenty").expect("write");
    let before_20 = data_dir.load_snapshot_before(Some(20)).expect("load");
    assert_eq!(before_20.map(|s| s.position), Some(10));
    assert_eq!(data_dir.load_snapshot_before(Some(10)).expect("load"), None);
}

#[test]
fn bad_header_fields_are_corrupt_with_their_reason_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let path = data_dir.snapshot_store().write(5, b"body").expect("write");
    let good = fs::read(&path).expect("read");
    let cases: [(usize, &[u8], u64, &str); 4] = [
        (0, b"NOTASNAP", 0, "bad magic"),
        (8, &9u32.to_le_bytes(), 8, "version 9"),
        (12, &6u64.to_le_bytes(), 12, "position 6"),
        (20, &u64::MAX.to_le_bytes(), 20, "exceeds"),
    ];
    for (at, bytes, expected_offset, expected_reason) in cases {
        let mut bad = good.clone();
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        fs::write(&path, &bad).expect("write");
        let error = data_dir.load_snapshot().expect_err("bad header");
        let RecoveryError::Corrupt { offset, reason, .. } = &error else {
            panic!("expected Corrupt, got {error}");
        };
        assert_eq!(*offset, expected_offset, "{reason}");
        assert!(reason.contains(expected_reason), "{reason}");
    }
}

#[test]
fn oversized_snapshot_file_is_rejected_without_being_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let path = dir.path().join(snapshot_file_name(9));
    let file = fs::File::create(&path).expect("create");
    // Sparse: takes no disk space, but reading it would need more memory than allowed.
    file.set_len(SNAPSHOT_HEADER_BYTES as u64 + SNAPSHOT_BODY_BYTES_MAX + 1).expect("set_len");
    let error = data_dir.load_snapshot().expect_err("too large");
    assert!(
        matches!(&error, RecoveryError::Corrupt { reason, .. } if reason.contains("exceeds")),
        "{error}"
    );
}

#[test]
fn only_the_newest_snapshots_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let store = data_dir.snapshot_store();
    for position in [10, 20, 30, 40] {
        store.write(position, b"state").expect("write");
    }
    assert_eq!(SNAPSHOTS_KEPT, 2);
    assert_eq!(snapshot_names(dir.path()), [snapshot_file_name(30), snapshot_file_name(40)]);
}

#[test]
fn segments_covered_by_the_older_kept_snapshot_are_deleted_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    // Batches of 10 with a tiny target: segments 1, 11, 21, ..., 91.
    drop(write_log(&data_dir, 100, 10, 1));
    let store = data_dir.snapshot_store();
    store.write(35, b"at 35").expect("write");
    assert_eq!(segments(dir.path()).len(), 10, "one snapshot deletes nothing");
    store.write(50, b"at 50").expect("write");
    // Older kept snapshot at 35: segments ending at 10, 20, 30 go; 31..=40 holds 36.
    let firsts: Vec<_> = (4..=10).map(|k| segment_path(dir.path(), k * 10 - 9)).collect();
    assert_eq!(segments(dir.path()), firsts);
    let (records, _) = replay(&data_dir, 35).expect("replay from the older snapshot");
    assert_eq!(records, expected(36..=100));
}

#[test]
fn newest_segment_is_never_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, 1));
    let store = data_dir.snapshot_store();
    // Both snapshots lie past the log's end, so every segment's records are covered.
    store.write(40, b"at 40").expect("write");
    store.write(50, b"at 50").expect("write");
    assert_eq!(segments(dir.path()), [segment_path(dir.path(), 21)]);
}

#[test]
fn segment_holding_the_newest_snapshot_position_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, 1));
    let store = data_dir.snapshot_store();
    store.write(20, b"at 20").expect("write");
    store.write(30, b"at 30").expect("write");
    assert_eq!(segments(dir.path()), [segment_path(dir.path(), 21)]);
    let (records, report) = replay(&data_dir, 20).expect("replay from the older snapshot");
    assert_eq!(records, expected(21..=30));
    assert_eq!(report.last_position, 30);
}
