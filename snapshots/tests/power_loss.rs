//! Modelled power loss: the log and snapshots written through [`PowerLossStorage`], the
//! power cut at any operation (mid-commit included), recovery from the disk image a
//! machine could come back with. Every acknowledged record must survive byte for byte,
//! recovery must never refuse what only a crash produced, and damage to synced data must
//! still be refused, naming the file and offset.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use allot_snapshots::wal::segment_file_name;
use allot_snapshots::{
    BATCHES_UNSYNCED_MAX, DataDir, PowerLoss, PowerLossStorage, RecoveryError,
    SEGMENT_BYTES_TARGET_DEFAULT, SplitMix64, Storage, scan_segment,
};
use common::*;

/// Seeds the power-loss property runs; each is a few rounds of writes, a cut and a
/// recovery.
const POWER_LOSS_SEEDS: u64 = 2000;
/// Rounds of write-crash-recover per seed.
const ROUNDS_PER_SEED_MAX: u64 = 3;
/// Batches a round tries to commit before its planned crash.
const BATCHES_PER_ROUND_MAX: u64 = 8;
/// Records per batch.
const RECORDS_PER_BATCH_MAX: u64 = 6;
/// Payload sizes reach past a 4 KiB page, so batches straddle pages and sectors.
const PAYLOAD_BYTES_MAX: u64 = 1500;
/// The crash falls within this many storage operations of a round's start (a commit is
/// two, a rollover four, a snapshot write six or more).
const CRASH_AFTER_OPS_MAX: u64 = 40;

fn open(storage: &PowerLossStorage, lock_dir: &Path) -> DataDir {
    DataDir::open(Arc::new(storage.clone()), lock_dir).expect("open the data directory")
}

fn replay_all(data_dir: &DataDir, after: u64) -> Result<(Vec<Owned>, u64), RecoveryError> {
    let (records, report) = replay(data_dir, after)?;
    Ok((records, report.last_position))
}

#[test]
fn records_replayed_from_the_page_cache_survive_a_later_power_loss() {
    // kill -9 before the fsync leaves the batch in the page cache; the restarted engine
    // replays it and may answer from it (a retried hold found in the idempotency table),
    // so recovery itself must make it durable.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = PowerLossStorage::new();
    let data_dir = open(&storage, dir.path());
    let mut writer = data_dir.wal_writer(1, SEGMENT_BYTES_TARGET_DEFAULT).expect("writer");
    append_and_commit(&mut writer, 10, 10);
    for position in 11..=15 {
        writer.append(time_of(position), &payload(position));
    }
    storage.crash_after_ops(1);
    writer.commit().expect_err("killed between the write and its fsync");
    drop((writer, data_dir));

    storage.restart_process();
    let data_dir = open(&storage, dir.path());
    assert_eq!(replay_all(&data_dir, 0).expect("replay").0, expected(1..=15));
    drop(data_dir);

    let after_power_loss = storage.power_loss(PowerLoss::DropUnsynced);
    let data_dir = open(&after_power_loss, dir.path());
    let (records, last) = replay_all(&data_dir, 0).expect("replay after the power loss");
    assert_eq!(records, expected(1..=15), "records the engine may have answered from are gone");
    assert_eq!(last, 15);
}

#[test]
fn a_new_segment_after_a_replayed_full_one_leaves_no_gap_after_a_power_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = PowerLossStorage::new();
    let data_dir = open(&storage, dir.path());
    let target = 600;
    let mut writer = data_dir.wal_writer(1, target).expect("writer");
    append_and_commit(&mut writer, 5, 5);
    let first = dir.path().join(segment_file_name(1));
    assert!(storage.file_len(&first).expect("size") < target, "room for another batch");
    for position in 6..=10 {
        writer.append(time_of(position), &[position as u8; 200]);
    }
    storage.crash_after_ops(1);
    writer.commit().expect_err("killed between the write and its fsync");
    drop((writer, data_dir));

    storage.restart_process();
    let data_dir = open(&storage, dir.path());
    let (replayed, last) = replay_all(&data_dir, 0).expect("replay");
    assert_eq!((replayed.len(), last), (10, 10));
    assert!(storage.file_len(&first).expect("size") >= target, "the replayed segment is full");
    let mut writer = data_dir.wal_writer(11, target).expect("writer starts segment 11");
    assert_eq!(writer.segment_path(), dir.path().join(segment_file_name(11)));
    append_and_commit(&mut writer, 5, 5);
    drop((writer, data_dir));

    let after_power_loss = storage.power_loss(PowerLoss::DropUnsynced);
    let data_dir = open(&after_power_loss, dir.path());
    let (records, last) = replay_all(&data_dir, 0).expect("acknowledged records 11..=15 recover");
    assert_eq!(last, 15);
    assert_eq!(records[10..], expected(11..=15)[..]);
}

/// What the test knows about the log across crashes.
#[derive(Default)]
struct Model {
    /// Every record appended and not since lost, by position: (time, payload).
    written: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Positions whose commit returned `Ok`.
    acknowledged_through: u64,
    /// Snapshot bodies written, by position.
    snapshots: BTreeMap<u64, Vec<u8>>,
}

fn snapshot_body(position: u64) -> Vec<u8> {
    format!("state through {position}").into_bytes()
}

/// Recovers as the engine does (newest snapshot that verifies, then the log after it)
/// and checks the result against the model; returns the log's last position.
fn recover_and_check(data_dir: &DataDir, model: &mut Model, seed: u64) -> u64 {
    let snapshot = data_dir.load_snapshot().unwrap_or_else(|error| {
        panic!("seed {seed}: a power loss made the snapshots unreadable: {error}")
    });
    let after = snapshot.as_ref().map_or(0, |s| s.position);
    if let Some(snapshot) = &snapshot {
        assert_eq!(Some(&snapshot.body), model.snapshots.get(&after), "seed {seed}: snapshot body");
    }
    let (records, report) = replay(data_dir, after).unwrap_or_else(|error| {
        panic!("seed {seed}: recovery refused a power-loss image: {error}")
    });
    assert!(
        report.last_position >= model.acknowledged_through,
        "seed {seed}: log ends at {} but {} was acknowledged",
        report.last_position,
        model.acknowledged_through
    );
    for (position, time_ms, payload) in &records {
        let written = model.written.get(position).map(|(t, p)| (*t, p.as_slice()));
        assert_eq!(
            written,
            Some((*time_ms, payload.as_slice())),
            "seed {seed}: record {position} differs from what was written"
        );
    }
    let replayed: Vec<u64> = records.iter().map(|r| r.0).collect();
    let contiguous: Vec<u64> = (after + 1..=report.last_position).collect();
    assert_eq!(replayed, contiguous, "seed {seed}: replayed positions");
    // Unacknowledged records after the log's end are gone; their positions are reused.
    model.written.retain(|&position, _| position <= report.last_position);
    report.last_position
}

/// One round: recover, then write batches (and sometimes snapshots) until the planned
/// crash or the round's batches run out.
fn write_until_crash(
    storage: &PowerLossStorage,
    data_dir: &DataDir,
    model: &mut Model,
    rng: &mut SplitMix64,
    next_position: u64,
    target: u64,
) {
    storage.crash_after_ops(rng.below(CRASH_AFTER_OPS_MAX));
    let Ok(mut writer) = data_dir.wal_writer(next_position, target) else {
        return;
    };
    for _ in 0..1 + rng.below(BATCHES_PER_ROUND_MAX) {
        for _ in 0..1 + rng.below(RECORDS_PER_BATCH_MAX) {
            let position = writer.next_position();
            let len = rng.below(PAYLOAD_BYTES_MAX + 1) as usize;
            let fill = rng.next_u64() as u8;
            let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
            writer.append(time_of(position), &payload);
            model.written.insert(position, (time_of(position), payload));
        }
        if writer.commit().is_err() {
            return;
        }
        model.acknowledged_through = writer.durable_position();
        if rng.below(4) == 0 {
            let position = writer.durable_position();
            let body = snapshot_body(position);
            model.snapshots.insert(position, body.clone());
            if data_dir.snapshot_store().write(position, &body).is_err() {
                return;
            }
        }
    }
}

/// Flips a byte inside a batch that must have been synced (any but the final
/// [`BATCHES_UNSYNCED_MAX`] of the newest segment) and checks that recovery refuses it,
/// naming that file and an offset inside that batch.
fn check_synced_damage_is_refused(
    storage: &PowerLossStorage,
    data_dir: &DataDir,
    rng: &mut SplitMix64,
    seed: u64,
) {
    let dir = data_dir.path();
    let names: Vec<String> = storage.list(dir).expect("list");
    let segments: Vec<_> = names.iter().filter(|n| n.starts_with("wal-")).collect();
    let mut candidates = Vec::new();
    for (index, name) in segments.iter().enumerate() {
        let path = dir.join(name);
        let bytes = storage.read(&path).expect("read");
        let scan = scan_segment(&bytes);
        // Recovery leaves a newest segment whose header was torn empty, for the writer.
        let empty_newest = bytes.is_empty() && index + 1 == segments.len();
        assert!(empty_newest || scan.stopped.is_none(), "seed {seed}: {name}: {:?}", scan.stopped);
        let synced = if index + 1 == segments.len() {
            scan.batches.len().saturating_sub(BATCHES_UNSYNCED_MAX)
        } else {
            scan.batches.len()
        };
        candidates.extend(scan.batches[..synced].iter().map(|b| (path.clone(), b.offset, b.bytes)));
    }
    if candidates.is_empty() {
        return;
    }
    let (path, offset, bytes) = candidates[rng.below(candidates.len() as u64) as usize].clone();
    storage.flip_byte(&path, offset + rng.below(bytes as u64) as usize, 1 + rng.below(255) as u8);
    let after =
        data_dir.load_snapshot().expect("snapshots are untouched").map_or(0, |s| s.position);
    match replay(data_dir, after) {
        Err(RecoveryError::Corrupt { path: at, offset: damaged, .. }) => {
            assert_eq!(at, path, "seed {seed}");
            let damaged = damaged as usize;
            assert!((offset..offset + bytes).contains(&damaged), "seed {seed}: offset {damaged}");
        }
        other => panic!(
            "seed {seed}: damage to a synced batch of {} was not refused: {other:?}",
            path.display()
        ),
    }
}

#[test]
fn acknowledged_records_survive_power_loss_at_any_point_and_synced_damage_is_refused() {
    let lock_dir = tempfile::tempdir().expect("tempdir");
    let mut rounds = 0;
    for seed in 0..POWER_LOSS_SEEDS {
        let mut rng = SplitMix64(seed);
        let mut storage = PowerLossStorage::new();
        let mut model = Model::default();
        // Small segments, so rollovers and segment headers are cut too.
        let target = 512 + rng.below(8 * 1024);
        for _ in 0..1 + rng.below(ROUNDS_PER_SEED_MAX) {
            rounds += 1;
            let data_dir = open(&storage, lock_dir.path());
            let last = recover_and_check(&data_dir, &mut model, seed);
            write_until_crash(&storage, &data_dir, &mut model, &mut rng, last + 1, target);
            drop(data_dir);
            if rng.below(3) == 0 {
                // kill -9: the page cache survives; the next recovery must make it durable.
                storage.restart_process();
            } else {
                storage = storage.power_loss(PowerLoss::Random { seed: rng.next_u64() });
            }
        }
        // A final power loss catches anything the last recovery should have synced.
        storage.restart_process();
        let data_dir = open(&storage, lock_dir.path());
        recover_and_check(&data_dir, &mut model, seed);
        drop(data_dir);
        let storage = storage.power_loss(PowerLoss::Random { seed: rng.next_u64() });
        let data_dir = open(&storage, lock_dir.path());
        recover_and_check(&data_dir, &mut model, seed);
        check_synced_damage_is_refused(&storage, &data_dir, &mut rng, seed);
    }
    // Every seed runs at least one round, and each round ends in a crash or a power loss.
    assert!(rounds >= POWER_LOSS_SEEDS, "{rounds} rounds over {POWER_LOSS_SEEDS} seeds");
    eprintln!("{POWER_LOSS_SEEDS} seeds, {rounds} power-loss or crash rounds");
}
