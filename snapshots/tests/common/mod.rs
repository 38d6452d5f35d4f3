//! Helpers shared by the integration tests: building logs and reading them back.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use allot_snapshots::wal::{parse_segment_file_name, segment_file_name};
use allot_snapshots::{DataDir, FsStorage, RecoveryError, ReplayReport, Storage, WalWriter};

/// A record as the tests compare it.
pub type Owned = (u64, u64, Vec<u8>);

pub fn fs_storage() -> Arc<dyn Storage> {
    Arc::new(FsStorage)
}

/// A deterministic payload whose length varies with `position`.
pub fn payload(position: u64) -> Vec<u8> {
    let len = (position * 7 % 40) as usize;
    (0..len).map(|i| (position as u8).wrapping_add(i as u8)).collect()
}

pub fn time_of(position: u64) -> u64 {
    1_700_000_000_000 + position
}

pub fn expected(positions: std::ops::RangeInclusive<u64>) -> Vec<Owned> {
    positions.map(|p| (p, time_of(p), payload(p))).collect()
}

/// Writes records `1..=records` in batches of `batch` through a writer with the given
/// segment target, and returns the writer.
pub fn write_log(
    data_dir: &DataDir,
    records: u64,
    batch: u64,
    segment_bytes_target: u64,
) -> WalWriter {
    let mut writer = data_dir.wal_writer(1, segment_bytes_target).expect("open writer");
    append_and_commit(&mut writer, records, batch);
    writer
}

/// Appends `records` more records, committing every `batch`.
pub fn append_and_commit(writer: &mut WalWriter, records: u64, batch: u64) {
    for _ in 0..records {
        let position = writer.next_position();
        writer.append(time_of(position), &payload(position));
        if writer.pending_records() as u64 == batch {
            writer.commit().expect("commit");
        }
    }
    writer.commit().expect("commit");
}

/// Replays everything after `after`, collecting owned copies.
pub fn replay(data_dir: &DataDir, after: u64) -> Result<(Vec<Owned>, ReplayReport), RecoveryError> {
    let mut records = Vec::new();
    let report = data_dir.replay(after, |record| {
        records.push((record.position, record.time_ms, record.payload.to_vec()));
        Ok(())
    })?;
    Ok((records, report))
}

/// Segment files in `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|entry| {
            let name = entry.expect("entry").file_name().into_string().ok()?;
            parse_segment_file_name(&name)
        })
        .collect();
    firsts.sort_unstable();
    firsts.into_iter().map(|first| dir.join(segment_file_name(first))).collect()
}

pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment_file_name(first))
}

pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

/// Offsets at which each record of a segment file starts, up to the first bytes that do
/// not verify.
pub fn record_offsets(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).expect("read segment");
    allot_snapshots::scan_segment(&bytes).records.iter().map(|r| r.offset as u64).collect()
}

/// Offsets at which each batch of a segment file starts, up to the first bytes that do not
/// verify.
pub fn batch_offsets(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).expect("read segment");
    allot_snapshots::scan_segment(&bytes).batches.iter().map(|b| b.offset as u64).collect()
}

pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut contents = fs::read(path).expect("read");
    contents.extend_from_slice(bytes);
    fs::write(path, contents).expect("write");
}

pub fn flip_byte(path: &Path, offset: u64) {
    let mut contents = fs::read(path).expect("read");
    contents[offset as usize] ^= 0x40;
    fs::write(path, contents).expect("write");
}
