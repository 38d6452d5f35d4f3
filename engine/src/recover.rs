//! Rebuilding the state at start: the newest snapshot that verifies, then the log after
//! it, each record applied at the engine time stamped in it.

use std::path::Path;
use std::sync::Arc;

use allot_snapshots::Record;
use allot_snapshots::recovery::DataDir;
use allot_snapshots::storage::Storage;

use crate::codec;
use crate::core::State;
use crate::engine::{OpenError, RecoveryReport};

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
    let dir = DataDir::open(storage, data_dir).map_err(|error| OpenError(error.to_string()))?;
    let recovered = match from {
        ReplayFrom::Snapshot => recover(&dir)?,
        ReplayFrom::WholeLog => replay_after(&dir, State::new(), None)?,
    };
    Ok((recovered.state, recovered.report))
}

pub(crate) fn recover(dir: &DataDir) -> Result<Recovered, OpenError> {
    let snapshot = dir.load_snapshot().map_err(|error| OpenError(error.to_string()))?;
    let Some(snapshot) = snapshot else {
        return replay_after(dir, State::new(), None);
    };
    let state = codec::decode_state(&snapshot.body)
        .map_err(|error| OpenError(format!("snapshot {}: {error}", snapshot.path.display())))?;
    replay_after(dir, state, Some(snapshot.position))
}

fn replay_after(
    dir: &DataDir,
    mut state: State,
    snapshot_position: Option<u64>,
) -> Result<Recovered, OpenError> {
    let after = snapshot_position.unwrap_or(0);
    let replay = dir
        .replay(after, |record| replay_record(&mut state, record))
        .map_err(|error| OpenError(error.to_string()))?;
    if let Some(torn) = &replay.torn_tail {
        tracing::warn!(path = %torn.path.display(), offset = torn.offset, "torn log tail truncated");
    }
    let report = RecoveryReport {
        snapshot_position,
        records_replayed: replay.records,
        last_position: replay.last_position.max(after),
        torn_tail: replay.torn_tail.map(|torn| (torn.path, torn.offset)),
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
