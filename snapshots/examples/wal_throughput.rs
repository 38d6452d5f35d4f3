//! Measures the log's hot paths on this machine: appending (encode and crc), group commit
//! with one fdatasync per batch, and replay.
//!
//! `cargo run --release -p allot-snapshots --example wal_throughput [records] [batch] [dir]`
//! (defaults: 4,000,000 records of 64 bytes, batches of 4,096, a temporary directory).

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use allot_snapshots::{DataDir, FsStorage, SEGMENT_BYTES_TARGET_DEFAULT};

const RECORDS_DEFAULT: u64 = 4_000_000;
const BATCH_RECORDS_DEFAULT: u64 = 4096;
const PAYLOAD_BYTES: usize = 64;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().map_or(Ok(RECORDS_DEFAULT), |a| a.parse())?;
    let batch: u64 = args.next().map_or(Ok(BATCH_RECORDS_DEFAULT), |a| a.parse())?;
    let scratch = tempfile::tempdir()?;
    let dir = args.next().map_or_else(|| scratch.path().to_path_buf(), PathBuf::from);
    let data_dir = DataDir::open(Arc::new(FsStorage), &dir)?;
    let payload = [0x5A; PAYLOAD_BYTES];

    let mut writer = data_dir.wal_writer(1, SEGMENT_BYTES_TARGET_DEFAULT)?;
    let mut append_seconds = 0.0;
    let started = Instant::now();
    for _ in 0..records / batch {
        let appending = Instant::now();
        for _ in 0..batch {
            writer.append_with(1_700_000_000_000, |buf| buf.extend_from_slice(&payload));
        }
        append_seconds += appending.elapsed().as_secs_f64();
        writer.commit()?;
    }
    let total = started.elapsed().as_secs_f64();
    let written = writer.durable_position();
    let commits = records / batch;
    println!(
        "append:  {:>12.0} records/s ({:.0} ns/record, encode + crc only)",
        written as f64 / append_seconds,
        append_seconds * 1e9 / written as f64
    );
    println!(
        "commit:  {:>12.0} records/s, {commits} commits of {batch}, {:.0} us/commit (write + fdatasync)",
        written as f64 / total,
        (total - append_seconds) * 1e6 / commits as f64
    );
    drop(writer);

    let started = Instant::now();
    let mut payload_bytes = 0;
    let report = data_dir.replay(0, |record| {
        payload_bytes += record.payload.len();
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "replay:  {:>12.0} records/s ({} records, {payload_bytes} payload bytes, {seconds:.2} s)",
        report.records as f64 / seconds,
        report.records
    );
    Ok(())
}
