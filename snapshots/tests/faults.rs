//! Injected write and sync failures: the writer stops for good, and recovery keeps every
//! acknowledged record.

mod common;

use std::sync::Arc;

use allot_snapshots::{
    DataDir, FaultPlan, FaultyStorage, SEGMENT_BYTES_TARGET_DEFAULT, StorageError,
};
use common::*;

fn faulty_data_dir(dir: &std::path::Path) -> (DataDir, Arc<FaultPlan>) {
    let plan = FaultPlan::new();
    let storage = Arc::new(FaultyStorage::new(Arc::clone(&plan)));
    (DataDir::open(storage, dir).expect("open"), plan)
}

#[test]
fn failed_write_poisons_the_writer_and_recovery_keeps_exactly_the_committed_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data_dir, plan) = faulty_data_dir(dir.path());
    let mut writer = write_log(&data_dir, 20, 10, SEGMENT_BYTES_TARGET_DEFAULT);
    let committed_len = file_len(&segment_path(dir.path(), 1));

    plan.tear_failed_writes(true);
    plan.fail_writes_after(plan.writes());
    writer.append(time_of(21), &[7; 200]);
    let error = writer.commit().expect_err("write fault");
    assert!(matches!(&error, StorageError::Io { op: "write", .. }), "{error}");
    assert!(writer.is_poisoned());
    assert_eq!(writer.durable_position(), 20);

    let (writes, syncs) = (plan.writes(), plan.syncs());
    writer.append(time_of(22), b"after the fault");
    assert!(matches!(writer.commit(), Err(StorageError::Poisoned)));
    assert!(matches!(writer.commit(), Err(StorageError::Poisoned)));
    assert_eq!((plan.writes(), plan.syncs()), (writes, syncs));
    let torn_len = file_len(&segment_path(dir.path(), 1));
    assert!(torn_len > committed_len, "the failed write left no partial bytes");

    drop(writer);
    drop(data_dir);
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("reopen");
    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, expected(1..=20));
    let torn = report.torn_tail.expect("partial write reported as a torn tail");
    assert_eq!(torn.offset, committed_len);
    assert_eq!(torn.bytes_dropped, torn_len - committed_len);
}

#[test]
fn failed_sync_poisons_the_writer_and_nothing_more_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data_dir, plan) = faulty_data_dir(dir.path());
    let mut writer = write_log(&data_dir, 20, 10, SEGMENT_BYTES_TARGET_DEFAULT);

    plan.fail_syncs_after(plan.syncs());
    let writes_before = plan.writes();
    append_and_commit_expecting_error(&mut writer, 5);
    assert!(writer.is_poisoned());
    assert_eq!(writer.durable_position(), 20);
    assert_eq!(plan.writes(), writes_before + 1, "the batch itself was written");

    writer.append(time_of(26), b"after the fault");
    assert!(matches!(writer.commit(), Err(StorageError::Poisoned)));
    assert_eq!(plan.writes(), writes_before + 1);

    drop(writer);
    drop(data_dir);
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("reopen");
    let (records, _) = replay(&data_dir, 0).expect("replay");
    // Records 21..=25 were written but never acknowledged: they may survive or not, but
    // the acknowledged ones must, and nothing else may appear.
    assert!((20..=25).contains(&records.len()), "{} records", records.len());
    assert_eq!(records, expected(1..=records.len() as u64));
}

fn append_and_commit_expecting_error(writer: &mut allot_snapshots::WalWriter, records: u64) {
    for _ in 0..records {
        let position = writer.next_position();
        writer.append(time_of(position), &payload(position));
    }
    let error = writer.commit().expect_err("sync fault");
    assert!(matches!(&error, StorageError::Io { op: "fdatasync", .. }), "{error}");
    assert!(error.to_string().contains("injected sync fault"), "{error}");
}

#[test]
fn failed_snapshot_write_leaves_the_previous_snapshot_and_the_log_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data_dir, plan) = faulty_data_dir(dir.path());
    drop(write_log(&data_dir, 30, 10, 1));
    let store = data_dir.snapshot_store();
    store.write(10, b"at 10").expect("write");
    store.write(20, b"at 20").expect("write");
    let segments_before = segments(dir.path());

    plan.tear_failed_writes(true);
    plan.fail_writes_after(plan.writes() + 1);
    let error = store.write(30, &[5; 1000]).expect_err("body write fails");
    assert!(matches!(error, StorageError::Io { op: "write", .. }), "{error}");

    assert_eq!(segments(dir.path()), segments_before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|entry| entry.expect("entry").file_name())
        .filter(|name| name.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let loaded = data_dir.load_snapshot().expect("load").expect("previous");
    assert_eq!(loaded.position, 20);
}
