//! Rebuilding the state at start: the newest snapshot that verifies, then the log after
//! it, each record applied at the engine time stamped in it.

use std::path::Path;
use std::sync::Arc;

use allot_snapshots::Record;
use allot_snapshots::recovery::DataDir;
use allot_snapshots::storage::Storage;
use allot_snapshots::wal::RECORD_HEADER_BYTES;

use crate::codec;
use crate::open_report::{OpenError, RecoveryReport};
use allot_core::State;
use allot_core::idempotency::IdempotencyPolicy;

pub(crate) struct Recovered {
    pub state: State,
    pub report: RecoveryReport,
}

/// Where a rebuild starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The newest snapshot that verifies, then the log after it (what `Engine::open` does).
    Snapshot,
    /// An empty state and the whole log; fails with a gap if the log was trimmed.
    WholeLog,
}

/// Rebuilds the state of a data directory that no engine has open, without starting
/// one: for replay-determinism tests and offline verification.
pub fn rebuild_state(
    storage: Arc<dyn Storage>,
    data_dir: &Path,
    from: ReplayFrom,
) -> Result<(State, RecoveryReport), OpenError> {
    let dir = DataDir::open(storage, data_dir)?;
    let recovered = match from {
        ReplayFrom::Snapshot => recover(&dir, IdempotencyPolicy::default())?,
        ReplayFrom::WholeLog => replay_after(&dir, State::new(), None)?,
    };
    Ok((recovered.state, recovered.report))
}

/// Recovers under the idempotency `policy` the engine runs with, set before replay.
pub(crate) fn recover(dir: &DataDir, policy: IdempotencyPolicy) -> Result<Recovered, OpenError> {
    let Some(snapshot) = dir.load_snapshot()? else {
        let mut state = State::new();
        state.set_idempotency_policy(policy);
        return replay_after(dir, state, None);
    };
    let mut state = codec::decode_state(&snapshot.body)
        .map_err(|message| OpenError::Replay { path: snapshot.path.clone(), message })?;
    state.set_idempotency_policy(policy);
    let mut recovered = replay_after(dir, state, Some(snapshot.position))?;
    // Only once the older snapshot and the log after it have proved good are the newer,
    // corrupt snapshots moved out of the way.
    recovered.report.snapshots_set_aside = dir.set_aside_snapshots_above(snapshot.position)?;
    Ok(recovered)
}

fn replay_after(
    dir: &DataDir,
    mut state: State,
    snapshot_position: Option<u64>,
) -> Result<Recovered, OpenError> {
    let after = snapshot_position.unwrap_or(0);
    let mut log_bytes_replayed = 0;
    let replay = dir.replay(after, |record| {
        log_bytes_replayed += (RECORD_HEADER_BYTES + record.payload.len()) as u64;
        replay_record(&mut state, record)
    })?;
    if let Some(torn) = &replay.torn_tail {
        tracing::warn!(path = %torn.path.display(), offset = torn.offset, "torn log tail truncated");
    }
    let report = RecoveryReport {
        snapshot_position,
        snapshots_set_aside: Vec::new(),
        records_replayed: replay.records,
        log_bytes_replayed,
        last_position: replay.last_position.max(after),
        torn_tail: replay.torn_tail,
    };
    Ok(Recovered { state, report })
}

/// Applies one log record. A record that does not decode, goes back in time or changes
/// nothing means the log and this engine disagree, and recovery stops rather than guess.
pub fn replay_record(state: &mut State, record: Record<'_>) -> Result<(), String> {
    let request = codec::decode_request(record.payload)?;
    if record.time_ms < state.last_applied_ms() {
        return Err(format!(
            "record time {} is before {}",
            record.time_ms,
            state.last_applied_ms()
        ));
    }
    let applied = state.apply(&request, record.time_ms);
    if !applied.changed {
        return Err(format!("{} changed nothing on replay", request.command.name()));
    }
    Ok(())
}
