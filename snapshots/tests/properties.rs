//! Property tests: whatever a crash or a flipped byte does to a valid log, replay returns
//! whole batches of what was written or a typed error naming the damage, and never panics.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use allot_snapshots::wal::SEGMENT_HEADER_BYTES;
use allot_snapshots::{DataDir, RecoveryError, scan_segment};
use common::*;
use proptest::prelude::*;

/// A batch's place in the written log.
#[derive(Debug, Clone)]
struct PlacedBatch {
    /// Offset in its segment file.
    offset: u64,
    len: u64,
    /// Offsets of its records in the segment file.
    record_offsets: Vec<u64>,
    records: Vec<Owned>,
}

/// A segment's place in the log seen as one byte stream, segment after segment.
#[derive(Debug, Clone)]
struct PlacedSegment {
    path: PathBuf,
    start: u64,
    len: u64,
    batches: Vec<PlacedBatch>,
}

/// Writes `payloads` as records 1.. through the writer, `batch` per commit, and returns
/// where each segment and batch landed.
fn write_log_of(
    data_dir: &DataDir,
    payloads: &[Vec<u8>],
    batch: usize,
    target: u64,
) -> Vec<PlacedSegment> {
    let mut writer = data_dir.wal_writer(1, target).expect("writer");
    for chunk in payloads.chunks(batch) {
        for payload in chunk {
            let position = writer.next_position();
            writer.append(time_of(position), payload);
        }
        writer.commit().expect("commit");
    }
    let mut start = 0;
    let mut placed = Vec::new();
    for path in segments(data_dir.path()) {
        let bytes = fs::read(&path).expect("read");
        let scan = scan_segment(&bytes);
        assert_eq!(scan.stopped, None, "the writer's segments verify");
        let batches = scan
            .batches
            .iter()
            .map(|batch| {
                let inside =
                    |offset: usize| (batch.offset..batch.offset + batch.bytes).contains(&offset);
                let records: Vec<_> = scan.records.iter().filter(|r| inside(r.offset)).collect();
                PlacedBatch {
                    offset: batch.offset as u64,
                    len: batch.bytes as u64,
                    record_offsets: records.iter().map(|r| r.offset as u64).collect(),
                    records: records
                        .iter()
                        .map(|r| (r.record.position, r.record.time_ms, r.record.payload.to_vec()))
                        .collect(),
                }
            })
            .collect();
        let len = bytes.len() as u64;
        placed.push(PlacedSegment { path, start, len, batches });
        start += len;
    }
    let written: Vec<Owned> =
        placed.iter().flat_map(|s| s.batches.iter().flat_map(|b| b.records.clone())).collect();
    assert_eq!(written.len(), payloads.len());
    placed
}

/// Every record of the batches that end at or before `end` in the stream.
fn records_before(placed: &[PlacedSegment], end: u64) -> Vec<Owned> {
    placed
        .iter()
        .flat_map(|s| s.batches.iter().map(move |b| (s.start + b.offset + b.len, b)))
        .filter(|(batch_end, _)| *batch_end <= end)
        .flat_map(|(_, b)| b.records.clone())
        .collect()
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
    fn truncated_log_replays_to_whole_batches((payloads, batch, target) in log_strategy(), cut_fraction in 0.0f64..=1.0) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
        let placed = write_log_of(&data_dir, &payloads, batch, target);
        let total: u64 = placed.iter().map(|s| s.len).sum();
        let cut = (total as f64 * cut_fraction) as u64;
        cut_log(dir.path(), cut);

        let (records, result) = replay_collecting(&data_dir);
        let report = result.expect("a cut log always replays");
        let whole = records_before(&placed, cut);
        prop_assert_eq!(&records, &whole);
        prop_assert_eq!(report.last_position, whole.len() as u64);

        // Where the cut fell inside the last segment left: nothing is torn on a boundary.
        let segment = placed.iter().rev().find(|s| s.start < cut || s.start == 0).expect("a segment");
        let local = cut - segment.start;
        let boundary = if local < SEGMENT_HEADER_BYTES as u64 {
            0
        } else {
            segment.batches.iter().map(|b| b.offset + b.len).filter(|&end| end <= local)
                .max().unwrap_or(SEGMENT_HEADER_BYTES as u64)
        };
        let expected_torn = (local != boundary).then(|| (segment.path.clone(), boundary, local - boundary));
        prop_assert_eq!(report.torn_tail.map(|t| (t.path, t.offset, t.bytes_dropped)), expected_torn);

        let (again, second) = replay_collecting(&data_dir);
        prop_assert_eq!(second.expect("second replay").torn_tail, None);
        prop_assert_eq!(again, records);
    }

    #[test]
    fn flipped_byte_is_corrupt_or_a_torn_final_batch((payloads, batch, target) in log_strategy(), at_fraction in 0.0f64..1.0, mask in 1u8..=255) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = DataDir::open(fs_storage(), dir.path()).expect("open");
        let placed = write_log_of(&data_dir, &payloads, batch, target);
        let total: u64 = placed.iter().map(|s| s.len).sum();
        let at = ((total as f64 * at_fraction) as u64).min(total - 1);
        let segment = placed.iter().rev().find(|s| s.start <= at).expect("byte inside the log");
        let local = at - segment.start;
        let is_last_segment = segment.path == placed.last().expect("segments").path;
        let mut bytes = fs::read(&segment.path).expect("read");
        bytes[local as usize] ^= mask;
        fs::write(&segment.path, &bytes).expect("write");

        let (records, result) = replay_collecting(&data_dir);
        if local < SEGMENT_HEADER_BYTES as u64 {
            // Batches follow every header the writer wrote, so a damaged one was synced.
            prop_assert_eq!(&records, &records_before(&placed, segment.start));
            match result {
                Err(RecoveryError::Corrupt { path, offset, .. }) => {
                    prop_assert_eq!((path, offset), (segment.path.clone(), 0));
                }
                Err(RecoveryError::UnsupportedVersion { path, .. }) => {
                    prop_assert!((8..12).contains(&local), "version error for byte {}", local);
                    prop_assert_eq!(path, segment.path.clone());
                }
                other => prop_assert!(false, "expected Corrupt, got {:?}", other),
            }
            return Ok(());
        }
        let hit = segment.batches.iter().position(|b| local < b.offset + b.len).expect("in a batch");
        let victim = &segment.batches[hit];
        prop_assert_eq!(&records, &records_before(&placed, segment.start + victim.offset));
        if is_last_segment && hit + 1 == segment.batches.len() {
            let torn = result.expect("final batch damaged: torn tail").torn_tail.expect("reported");
            prop_assert_eq!((torn.path, torn.offset), (segment.path.clone(), victim.offset));
        } else {
            // The damage is named at the record it hit, or at the batch for its header.
            let damaged = victim.record_offsets.iter().copied().filter(|&o| o <= local).max()
                .unwrap_or(victim.offset);
            match result {
                Err(RecoveryError::Corrupt { path, offset, .. }) => {
                    prop_assert_eq!((path, offset), (segment.path.clone(), damaged));
                }
                other => prop_assert!(false, "expected Corrupt, got {:?}", other),
            }
            prop_assert_eq!(file_len(&segment.path), bytes.len() as u64);
        }
    }
}
