//! Opening a data directory and replaying the log: torn tails (of batches and of segment
//! headers), corruption, gaps, format versions, locking.

mod common;

use std::fs;

use allot_snapshots::wal::{SEGMENT_HEADER_BYTES, encode_batch, encode_segment_header};
use allot_snapshots::{DataDir, LOCK_FILE_NAME, RecoveryError, SEGMENT_BYTES_TARGET_DEFAULT};
use common::*;

#[test]
fn empty_directory_replays_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), &dir.path().join("new")).expect("open");
    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert!(records.is_empty());
    assert_eq!((report.records, report.last_position), (0, 0));
}

#[test]
fn replay_applies_only_records_after_the_given_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    write_log(&data_dir, 50, 7, 200);
    let (records, report) = replay(&data_dir, 30).expect("replay");
    assert_eq!(records, expected(31..=50));
    assert_eq!((report.records, report.last_position), (20, 50));
}

#[test]
fn torn_half_batch_is_truncated_reported_and_then_replay_is_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let whole_len = file_len(&path);
    let mut next = Vec::new();
    encode_batch(&mut next, 21, &[(time_of(21), &[9; 100]), (time_of(22), &[8; 100])]);
    append_bytes(&path, &next[..next.len() / 2]);

    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, expected(1..=20));
    let torn = report.torn_tail.expect("torn tail reported");
    assert_eq!((torn.path, torn.offset), (path.clone(), whole_len));
    assert_eq!(torn.bytes_dropped, (next.len() / 2) as u64);
    assert_eq!(file_len(&path), whole_len);

    let (again, report) = replay(&data_dir, 0).expect("second replay");
    assert_eq!(again, expected(1..=20));
    assert_eq!(report.torn_tail, None);
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let whole_len = file_len(&path);
    append_bytes(&path, &[0xEE; 5]);
    append_bytes(&path, &[0; 4096]);
    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, expected(1..=20));
    let torn = report.torn_tail.expect("torn tail");
    assert_eq!((torn.offset, torn.bytes_dropped), (whole_len, 4101));
}

#[test]
fn writer_appends_after_a_truncated_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    append_bytes(&segment_path(dir.path(), 1), &[1, 2, 3]);
    let (_, report) = replay(&data_dir, 0).expect("replay");
    assert!(report.torn_tail.is_some());
    let mut writer = data_dir
        .wal_writer(report.last_position + 1, SEGMENT_BYTES_TARGET_DEFAULT)
        .expect("writer");
    append_and_commit(&mut writer, 10, 3);
    let (records, report) = replay(&data_dir, 0).expect("replay after appending");
    assert_eq!(records, expected(1..=30));
    assert_eq!(report.torn_tail, None);
}

#[test]
fn byte_flipped_mid_log_is_corrupt_naming_file_and_offset_and_nothing_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let len = file_len(&path);
    let tenth = record_offsets(&path)[9];
    flip_byte(&path, tenth + 12);

    let error = replay(&data_dir, 0).expect_err("corrupt");
    let RecoveryError::Corrupt { path: bad_path, offset, reason } = &error else {
        panic!("expected Corrupt, got {error}");
    };
    assert_eq!((bad_path, *offset), (&path, tenth));
    assert!(reason.contains("crc mismatch"), "{reason}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("at byte {tenth}")), "{message}");
    assert_eq!(file_len(&path), len);
}

#[test]
fn damaged_length_field_mid_log_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let len = file_len(&path);
    let fifth = record_offsets(&path)[4];
    // Bit 6 of the length's third byte: claims ~4 MiB, over the maximum.
    flip_byte(&path, fifth + 2);
    let error = replay(&data_dir, 0).expect_err("corrupt");
    assert!(matches!(&error, RecoveryError::Corrupt { offset, .. } if *offset == fifth), "{error}");
    assert_eq!(file_len(&path), len);
}

#[test]
fn bad_record_in_a_segment_that_is_not_the_last_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 60, 10, 200));
    let files = segments(dir.path());
    assert!(files.len() >= 3);
    let middle = &files[1];
    let len = file_len(middle);
    let last_record = *record_offsets(middle).last().expect("records");
    // The middle segment's final record: it would look torn were the segment last.
    flip_byte(middle, last_record + RECORD_BYTES_PAST_HEADER);
    let error = replay(&data_dir, 0).expect_err("corrupt");
    assert!(
        matches!(&error, RecoveryError::Corrupt { path, offset, .. }
            if path == middle && *offset == last_record),
        "{error}"
    );
    assert_eq!(file_len(middle), len);
}

/// An offset inside a record's position field.
const RECORD_BYTES_PAST_HEADER: u64 = 9;

#[test]
fn missing_middle_segment_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, 1));
    fs::remove_file(segment_path(dir.path(), 11)).expect("remove");
    let error = replay(&data_dir, 0).expect_err("gap");
    let RecoveryError::Gap { path, expected, found } = &error else {
        panic!("expected Gap, got {error}");
    };
    assert_eq!((path, *expected, *found), (&segment_path(dir.path(), 21), 11, 21));
}

#[test]
fn missing_first_segment_without_a_snapshot_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, 1));
    fs::remove_file(segment_path(dir.path(), 1)).expect("remove");
    let error = replay(&data_dir, 0).expect_err("gap");
    assert!(matches!(error, RecoveryError::Gap { expected: 1, found: 11, .. }), "{error}");
    // A snapshot at 10 covers the missing segment.
    let (records, _) = replay(&data_dir, 10).expect("replay from 10");
    assert_eq!(records, expected(11..=30));
}

#[test]
fn log_ending_before_the_snapshot_position_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, SEGMENT_BYTES_TARGET_DEFAULT));
    let error = replay(&data_dir, 40).expect_err("log too short");
    assert!(matches!(error, RecoveryError::Gap { expected: 31, found: 41, .. }), "{error}");
}

#[test]
fn empty_last_segment_named_after_the_log_end_is_accepted_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 10, 64));
    // A crash right after a rollover created segment 21 and before anything reached it.
    drop(data_dir.wal_writer(21, 64).expect("writer rolls over"));
    assert_eq!(file_len(&segment_path(dir.path(), 21)), SEGMENT_HEADER_BYTES as u64);

    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, expected(1..=20));
    assert_eq!((report.last_position, report.torn_tail), (20, None));
    let mut writer = data_dir.wal_writer(21, 64).expect("writer");
    assert_eq!(writer.segment_path(), segment_path(dir.path(), 21));
    append_and_commit(&mut writer, 5, 5);
    assert_eq!(replay(&data_dir, 0).expect("replay").0, expected(1..=25));
}

#[test]
fn empty_segment_alone_after_a_snapshot_is_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(data_dir.wal_writer(101, 64).expect("writer"));
    let (records, report) = replay(&data_dir, 100).expect("replay");
    assert!(records.is_empty());
    assert_eq!(report.last_position, 100);
}

#[test]
fn stale_batch_with_an_old_position_at_the_tail_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 10, 10, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let whole_len = file_len(&path);
    let mut stale = Vec::new();
    encode_batch(&mut stale, 4, &[(time_of(4), &payload(4))]);
    append_bytes(&path, &stale);
    let (records, report) = replay(&data_dir, 0).expect("replay");
    assert_eq!(records, expected(1..=10));
    assert_eq!(report.torn_tail.expect("torn").offset, whole_len);
}

#[test]
fn batch_that_skips_positions_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 10, 10, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let len_before = file_len(&path);
    let mut ahead = Vec::new();
    encode_batch(&mut ahead, 13, &[(0, b"")]);
    append_bytes(&path, &ahead);
    let error = replay(&data_dir, 0).expect_err("gap");
    assert!(matches!(error, RecoveryError::Gap { expected: 11, found: 13, .. }), "{error}");
    assert_eq!(file_len(&path), len_before + ahead.len() as u64);
}

#[test]
fn apply_error_stops_replay_naming_position_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 10, 10, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let mut applied = 0;
    let error = data_dir
        .replay(0, |record| {
            if record.position == 6 {
                return Err("unknown command".to_owned());
            }
            applied += 1;
            Ok(())
        })
        .expect_err("apply fails");
    let RecoveryError::Apply { path: at, offset, position, message } = &error else {
        panic!("expected Apply, got {error}");
    };
    assert_eq!((at, *position, message.as_str()), (&path, 6, "unknown command"));
    assert_eq!(*offset, record_offsets(&path)[5]);
    assert_eq!(applied, 5);
}

#[test]
fn second_open_of_a_locked_directory_fails_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = DataDir::open(fs_storage(), dir.path()).expect("first open");
    let error = DataDir::open(fs_storage(), dir.path()).expect_err("locked");
    let RecoveryError::Locked { path } = &error else {
        panic!("expected Locked, got {error}");
    };
    assert_eq!(*path, dir.path().join(LOCK_FILE_NAME));
    assert!(error.to_string().contains(LOCK_FILE_NAME));
    drop(first);
    DataDir::open(fs_storage(), dir.path()).expect("open after drop");
}

#[test]
fn open_removes_unfinished_snapshot_files_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = dir.path().join("snapshot-00000000000000000007.snap.tmp");
    let other = dir.path().join("notes.tmp");
    fs::write(&tmp, b"half a snapshot").expect("write");
    fs::write(&other, b"not ours").expect("write");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    assert!(!tmp.exists());
    assert!(other.exists());
    assert_eq!(data_dir.load_snapshot().expect("load"), None);
}

#[test]
fn segments_named_for_impossible_positions_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    fs::write(segment_path(dir.path(), 0), b"").expect("write");
    let error = replay(&data_dir, 0).expect_err("position 0");
    assert!(matches!(error, RecoveryError::Corrupt { offset: 0, .. }), "{error}");
    fs::remove_file(segment_path(dir.path(), 0)).expect("remove");

    let mut last = encode_segment_header(u64::MAX).to_vec();
    encode_batch(&mut last, u64::MAX, &[(0, b"")]);
    fs::write(segment_path(dir.path(), u64::MAX), &last).expect("write");
    let error = replay(&data_dir, u64::MAX - 1).expect_err("position u64::MAX");
    let record_offset = record_offsets(&segment_path(dir.path(), u64::MAX))[0];
    assert!(
        matches!(error, RecoveryError::Corrupt { offset, .. } if offset == record_offset),
        "{error}"
    );
}

/// Zeros `len` bytes of the file at `path` from `offset`.
fn zero_bytes(path: &std::path::Path, offset: u64, len: u64) {
    let mut contents = fs::read(path).expect("read");
    contents[offset as usize..(offset + len) as usize].fill(0);
    fs::write(path, contents).expect("write");
}

#[test]
fn final_batch_with_a_lost_middle_page_and_later_pages_present_is_a_torn_tail() {
    // After a power loss the kernel may have written back later pages of the unsynced
    // final batch but not earlier ones; whole records after the hole are not evidence
    // that the damaged bytes were ever synced.
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    let mut writer = write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT);
    let path = segment_path(dir.path(), 1);
    let synced_len = file_len(&path);
    for position in 21..=40 {
        writer.append(time_of(position), &[position as u8; 1000]);
    }
    writer.commit().expect("commit");
    drop(writer);
    let page = 4096;
    let hole = synced_len.next_multiple_of(page);
    zero_bytes(&path, hole, page);
    assert!(file_len(&path) > hole + 2 * page, "whole records follow the hole");

    let (records, report) = replay(&data_dir, 0).expect("a torn final batch is not corruption");
    assert_eq!(records, expected(1..=20));
    let torn = report.torn_tail.expect("torn tail reported");
    assert_eq!((torn.path, torn.offset), (path.clone(), synced_len));
    assert_eq!(file_len(&path), synced_len);
}

#[test]
fn damage_in_a_batch_followed_by_a_valid_batch_is_corrupt_at_the_damaged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 20, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let batches = batch_offsets(&path);
    assert_eq!(batches.len(), 4);
    // Zero the header of the third batch: the fourth follows, so the third was synced.
    zero_bytes(&path, batches[2], 8);
    let error = replay(&data_dir, 0).expect_err("corrupt");
    let RecoveryError::Corrupt { path: at, offset, reason } = &error else {
        panic!("expected Corrupt, got {error}");
    };
    assert_eq!((at, *offset), (&path, batches[2]));
    assert!(reason.contains(&format!("a valid batch follows at byte {}", batches[3])), "{reason}");
}

#[test]
fn torn_header_of_the_newest_segment_is_cut_and_the_writer_writes_it_again() {
    for torn in [encode_segment_header(21)[..10].to_vec(), vec![0; 4096]] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
        drop(write_log(&data_dir, 20, 10, 64));
        let newest = segment_path(dir.path(), 21);
        fs::write(&newest, &torn).expect("write a torn header");

        let (records, report) = replay(&data_dir, 0).expect("a torn header is not corruption");
        assert_eq!(records, expected(1..=20));
        let cut = report.torn_tail.expect("torn tail reported");
        assert_eq!(
            (cut.path, cut.offset, cut.bytes_dropped),
            (newest.clone(), 0, torn.len() as u64)
        );
        assert_eq!((report.last_position, file_len(&newest)), (20, 0));

        let mut writer = data_dir.wal_writer(21, 64).expect("writer");
        append_and_commit(&mut writer, 5, 5);
        assert_eq!(replay(&data_dir, 0).expect("replay").0, expected(1..=25));
    }
}

#[test]
fn damaged_header_of_a_segment_that_holds_batches_is_corrupt_at_byte_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 30, 10, 64));
    // The newest segment as well as an older one: batches follow the header in both, so
    // the header was synced before them.
    for first in [21, 11] {
        let path = segment_path(dir.path(), first);
        flip_byte(&path, 2);
        let error = replay(&data_dir, 0).expect_err("corrupt");
        assert!(
            matches!(&error, RecoveryError::Corrupt { path: at, offset: 0, .. } if *at == path),
            "{error}"
        );
        flip_byte(&path, 2);
    }
    assert_eq!(replay(&data_dir, 0).expect("repaired").0, expected(1..=30));
}

#[test]
fn unknown_log_format_version_is_refused_naming_the_file_and_the_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
    drop(write_log(&data_dir, 10, 5, SEGMENT_BYTES_TARGET_DEFAULT));
    let path = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&path).expect("read");
    // A future version, with a header crc that matches it.
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..20]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).expect("write");

    let error = replay(&data_dir, 0).expect_err("unknown version");
    assert!(
        matches!(&error, RecoveryError::UnsupportedVersion { path: at, version: 2 } if *at == path),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("format version 2"), "{message}");
    assert_eq!(fs::read(&path).expect("read"), bytes, "nothing was changed");
}
