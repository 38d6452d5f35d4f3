//! Property tests: whatever a crash or a flipped byte does to a valid log, replay returns
//! a prefix of what was written or a typed error, and never panics.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use allot_snapshots::{DataDir, RecoveryError};
use common::*;
use proptest::prelude::*;

/// A record's place in the written log.
#[derive(Debug, Clone)]
struct Placed {
    record: Owned,
    segment: PathBuf,
    offset: u64,
    len: u64,
}

/// Writes `payloads` as records 1.. through the writer and returns where each landed.
fn write_log_of(
    data_dir: &DataDir,
    payloads: &[Vec<u8>],
    batch: usize,
    target: u64,
) -> Vec<Placed> {
    let mut writer = data_dir.wal_writer(1, target).expect("writer");
    for chunk in payloads.chunks(batch) {
        for payload in chunk {
            let position = writer.next_position();
            writer.append(time_of(position), payload);
        }
        writer.commit().expect("commit");
    }
    let records = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| (i as u64 + 1, time_of(i as u64 + 1), payload.clone()));
    let places = segments(data_dir.path()).into_iter().flat_map(|segment| {
        let len = file_len(&segment);
        let offsets = record_offsets(&segment);
        let ends: Vec<u64> = offsets.iter().skip(1).copied().chain([len]).collect();
        offsets
            .into_iter()
            .zip(ends)
            .map(move |(offset, end)| (segment.clone(), offset, end - offset))
    });
    records
        .zip(places)
        .map(|(record, (segment, offset, len))| Placed { record, segment, offset, len })
        .collect()
}

fn owned(placed: &[Placed]) -> Vec<Owned> {
    placed.iter().map(|p| p.record.clone()).collect()
}

/// Replays, collecting every record handed to `apply` even when replay then fails.
fn replay_collecting(
    data_dir: &DataDir,
) -> (Vec<Owned>, Result<allot_snapshots::ReplayReport, RecoveryError>) {
    let mut records = Vec::new();
    let result = data_dir.replay(0, |record| {
        records.push((record.position, record.time_ms, record.payload.to_vec()));
        Ok(())
    });
    (records, result)
}

/// Cuts the log as one byte stream at `cut`: the segment holding that byte is truncated
/// there and every later segment removed, as a crash mid-write would leave it.
fn cut_log(dir: &Path, cut: u64) {
    let mut start = 0;
    for segment in segments(dir) {
        let len = file_len(&segment);
        if start > cut || (start == cut && start > 0) {
            fs::remove_file(&segment).expect("remove");
        } else if cut < start + len {
            let file = fs::OpenOptions::new().write(true).open(&segment).expect("open");
            file.set_len(cut - start).expect("truncate");
        }
        start += len;
    }
}

fn log_strategy() -> impl Strategy<Value = (Vec<Vec<u8>>, usize, u64)> {
    (prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..30), 1usize..6, 1u64..600)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn truncated_log_replays_to_a_prefix((payloads, batch, target) in log_strategy(), cut_fraction in 0.0f64..=1.0) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
        let placed = write_log_of(&data_dir, &payloads, batch, target);
        let total: u64 = placed.iter().map(|p| p.len).sum();
        let cut = (total as f64 * cut_fraction) as u64;
        cut_log(dir.path(), cut);

        let (records, result) = replay_collecting(&data_dir);
        let report = result.expect("a cut log always replays");
        let mut end = 0;
        let whole = placed.iter().take_while(|p| { end += p.len; end <= cut }).count();
        prop_assert_eq!(&records, &owned(&placed[..whole]));
        prop_assert_eq!(report.last_position, whole as u64);
        let boundary: u64 = placed[..whole].iter().map(|p| p.len).sum();
        prop_assert_eq!(report.torn_tail.map(|t| t.bytes_dropped), (cut != boundary).then_some(cut - boundary));

        let (again, second) = replay_collecting(&data_dir);
        prop_assert_eq!(second.expect("second replay").torn_tail, None);
        prop_assert_eq!(again, records);
    }

    #[test]
    fn flipped_byte_is_corrupt_or_a_torn_last_record((payloads, batch, target) in log_strategy(), at_fraction in 0.0f64..1.0, mask in 1u8..=255) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
        let placed = write_log_of(&data_dir, &payloads, batch, target);
        let total: u64 = placed.iter().map(|p| p.len).sum();
        let at = ((total as f64 * at_fraction) as u64).min(total - 1);
        let mut start = 0;
        let hit = placed.iter().position(|p| { start += p.len; at < start }).expect("byte inside the log");
        let victim = &placed[hit];
        let mut bytes = fs::read(&victim.segment).expect("read");
        let before = start - victim.len;
        bytes[(victim.offset + at - before) as usize] ^= mask;
        fs::write(&victim.segment, &bytes).expect("write");

        let (records, result) = replay_collecting(&data_dir);
        prop_assert_eq!(&records, &owned(&placed[..hit]));
        if hit + 1 == placed.len() {
            let torn = result.expect("last record damaged: torn tail").torn_tail.expect("reported");
            prop_assert_eq!((torn.path, torn.offset), (victim.segment.clone(), victim.offset));
        } else {
            match result {
                Err(RecoveryError::Corrupt { path, offset, .. }) => {
                    prop_assert_eq!((path, offset), (victim.segment.clone(), victim.offset));
                }
                other => prop_assert!(false, "expected Corrupt, got {:?}", other),
            }
            prop_assert_eq!(file_len(&victim.segment), bytes.len() as u64);
        }
    }
}
