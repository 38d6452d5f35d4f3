//! What opening a data directory found, or why it could not be opened: shared by the
//! embedded API and recovery, which both depend on this module and not on each other.

use std::path::PathBuf;

use allot_snapshots::{RecoveryError, StorageError, TornTail};

/// What opening the data directory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Position of the snapshot recovery started from, if any.
    pub snapshot_position: Option<u64>,
    /// Newer snapshots that failed to verify and were renamed aside (`*.corrupt`).
    pub snapshots_set_aside: Vec<PathBuf>,
    /// Log records replayed after the snapshot.
    pub records_replayed: u64,
    /// Bytes those records took in the log, headers included.
    pub log_bytes_replayed: u64,
    /// Position of the last durable record.
    pub last_position: u64,
    /// A torn write cut off the log's tail: where, and how many bytes were dropped.
    pub torn_tail: Option<TornTail>,
}

/// Why an engine could not open its data directory.
#[derive(Debug)]
pub enum OpenError {
    /// The directory is locked, a file is corrupt, the log has a gap, or a read failed:
    /// the error names the file and byte offset.
    Recovery(RecoveryError),
    /// A verified snapshot or log record could not be decoded or applied.
    Replay { path: PathBuf, message: String },
    /// The log could not be opened for appending.
    Storage(StorageError),
    /// A setting is out of range; the message names it.
    Config(String),
    /// A thread could not be started.
    Thread(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Recovery(error) => write!(f, "{error}"),
            OpenError::Replay { path, message } => write!(f, "{}: {message}", path.display()),
            OpenError::Storage(error) => write!(f, "{error}"),
            OpenError::Config(message) | OpenError::Thread(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Recovery(error) => Some(error),
            OpenError::Storage(error) => Some(error),
            OpenError::Replay { .. } | OpenError::Config(_) | OpenError::Thread(_) => None,
        }
    }
}

impl From<RecoveryError> for OpenError {
    fn from(error: RecoveryError) -> Self {
        OpenError::Recovery(error)
    }
}
