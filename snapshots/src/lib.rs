//! allot's durable files: the write-ahead log (segments, group commit), snapshot files,
//! recovery of a data directory, and a fault-injecting storage for tests.
//!
//! The byte layouts, the fsync order and the recovery rules are specified in
//! `docs/storage.md`.

pub mod error;
mod files;
mod power_loss;
pub mod recovery;
pub mod snapshot;
pub mod storage;
pub mod wal;

pub use error::{
    BatchError, RecordError, RecoveryError, SegmentHeaderError, SnapshotError, StorageError,
};
pub use recovery::{
    CORRUPT_SNAPSHOT_SUFFIX, DataDir, LOCK_FILE_NAME, LoadedSnapshot, ReplayReport, TornTail,
};
pub use snapshot::{SNAPSHOT_BODY_BYTES_MAX, SNAPSHOTS_KEPT, SnapshotStore};
pub use storage::{
    FaultPlan, FaultyStorage, FsStorage, PowerLoss, PowerLossStorage, SplitMix64, Storage,
    StorageFile,
};
pub use wal::{
    BATCHES_UNSYNCED_MAX, RECORD_PAYLOAD_BYTES_MAX, Record, SEGMENT_BYTES_TARGET_DEFAULT,
    SEGMENT_FORMAT_VERSION, WalWriter, decode_batch, decode_record, encode_batch, encode_record,
    scan_segment,
};
