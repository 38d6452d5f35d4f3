//! Error types: storage failures while writing, problems found while recovering, and the
//! typed reasons a log record or snapshot file fails to verify.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::snapshot::{SNAPSHOT_BODY_BYTES_MAX, SNAPSHOT_HEADER_BYTES};
use crate::wal::{
    BATCH_BODY_BYTES_MAX, BATCH_HEADER_BYTES, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX,
    SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES,
};

/// A failure while writing the log or a snapshot.
#[derive(Debug)]
pub enum StorageError {
    /// An operation on a file or directory failed.
    Io {
        /// What was being done, e.g. "fdatasync".
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The log writer failed earlier and refuses all further work (fail-stop).
    Poisoned,
}

impl StorageError {
    /// Maps an `io::Error` from `op` on `path`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        move |source| StorageError::Io { op, path: path.to_path_buf(), source }
    }

    /// A request the files on disk contradict, reported as `InvalidInput`.
    pub(crate) fn invalid_input(op: &'static str, path: &Path, message: String) -> Self {
        StorageError::Io {
            op,
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, message),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { op, path, source } => {
                write!(f, "could not {op} {}: {source}", path.display())
            }
            StorageError::Poisoned => f.write_str(
                "the write-ahead log stopped after an earlier write or fsync failure; \
                 restart the engine to recover from the files on disk",
            ),
        }
    }
}

impl Error for StorageError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            StorageError::Poisoned => None,
        }
    }
}

/// A reason the engine cannot start from a data directory.
#[derive(Debug)]
pub enum RecoveryError {
    /// An operation on a file or directory failed.
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// Another engine holds the lock file at `path`.
    Locked { path: PathBuf },
    /// Data that does not verify, where it cannot be a torn write.
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// Log positions `expected..found` are missing; `path` is where the log resumes (or
    /// ends, when it stops short of the snapshot).
    Gap { path: PathBuf, expected: u64, found: u64 },
    /// The caller's `apply` rejected the record at `position`.
    Apply { path: PathBuf, offset: u64, position: u64, message: String },
    /// A log segment written in a format version this build cannot read.
    UnsupportedVersion { path: PathBuf, version: u32 },
}

impl RecoveryError {
    /// Maps an `io::Error` from `op` on `path`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        move |source| RecoveryError::Io { op, path: path.to_path_buf(), source }
    }
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Io { op, path, source } => {
                write!(f, "could not {op} {}: {source}", path.display())
            }
            RecoveryError::Locked { path } => write!(
                f,
                "data directory is in use by another engine: {} is locked",
                path.display()
            ),
            RecoveryError::Corrupt { path, offset, reason } => {
                write!(f, "corrupt data in {} at byte {offset}: {reason}", path.display())
            }
            RecoveryError::Gap { path, expected, found } => write!(
                f,
                "log positions missing at {}: expected position {expected}, found {found}",
                path.display()
            ),
            RecoveryError::Apply { path, offset, position, message } => write!(
                f,
                "could not apply record {position} from {} at byte {offset}: {message}",
                path.display()
            ),
            RecoveryError::UnsupportedVersion { path, version } => write!(
                f,
                "{} is in log format version {version}; this build reads version \
                 {SEGMENT_FORMAT_VERSION} only",
                path.display()
            ),
        }
    }
}

impl Error for RecoveryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RecoveryError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why bytes do not hold a valid log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than a record header.
    ShortHeader { available: usize },
    /// The length field exceeds `RECORD_PAYLOAD_BYTES_MAX`.
    PayloadTooLarge { len: u32 },
    /// Fewer payload bytes than the length field claims.
    ShortPayload { len: u32, available: usize },
    /// The stored crc32c does not match the header fields and payload.
    CrcMismatch { stored: u32, computed: u32 },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::ShortHeader { available } => {
                write!(f, "record header cut short: {available} of {RECORD_HEADER_BYTES} bytes")
            }
            RecordError::PayloadTooLarge { len } => write!(
                f,
                "record claims {len} payload bytes, more than the {RECORD_PAYLOAD_BYTES_MAX} allowed"
            ),
            RecordError::ShortPayload { len, available } => {
                write!(f, "record payload cut short: {available} of {len} bytes")
            }
            RecordError::CrcMismatch { stored, computed } => {
                write!(f, "record crc mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
        }
    }
}

impl Error for RecordError {}

/// Why a segment file does not start with a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer bytes than a segment header.
    Short { available: usize },
    /// The first eight bytes are not `ALLOTWAL`.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion { version: u32 },
    /// The stored crc32c does not match the header.
    CrcMismatch { stored: u32, computed: u32 },
}

impl fmt::Display for SegmentHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentHeaderError::Short { available } => {
                write!(f, "segment header cut short: {available} of {SEGMENT_HEADER_BYTES} bytes")
            }
            SegmentHeaderError::BadMagic => f.write_str("not a log segment: bad magic"),
            SegmentHeaderError::UnsupportedVersion { version } => {
                write!(f, "unsupported log format version {version}")
            }
            SegmentHeaderError::CrcMismatch { stored, computed } => write!(
                f,
                "segment header crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

impl Error for SegmentHeaderError {}

/// Why bytes do not hold a valid batch of log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header.
    ShortHeader { available: usize },
    /// The first four bytes are not `BTCH`.
    BadMagic,
    /// The stored header crc32c does not match the header.
    HeaderCrcMismatch { stored: u32, computed: u32 },
    /// The header claims no records; the writer never writes an empty batch.
    NoRecords,
    /// The header claims a body over `BATCH_BODY_BYTES_MAX`.
    BodyTooLarge { len: u64 },
    /// Fewer body bytes than the header claims.
    ShortBody { len: u64, available: u64 },
    /// The body's crc32c does not match, yet every record verifies on its own.
    BodyCrcMismatch { stored: u32, computed: u32 },
    /// The record at `offset` in the body does not verify.
    Record { offset: usize, error: RecordError },
    /// The record at `offset` in the body does not have the next position.
    RecordPosition { offset: usize, position: u64, expected: u64 },
    /// The body holds a different number of records than the header says.
    RecordCount { header: u32, found: u64 },
}

impl BatchError {
    /// Offset, from the start of the batch, of the bytes that failed: the record's for a
    /// record that failed, else the batch header's (0).
    pub fn offset_in_batch(&self) -> usize {
        match self {
            BatchError::Record { offset, .. } | BatchError::RecordPosition { offset, .. } => {
                BATCH_HEADER_BYTES + offset
            }
            _ => 0,
        }
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::ShortHeader { available } => {
                write!(f, "batch header cut short: {available} of {BATCH_HEADER_BYTES} bytes")
            }
            BatchError::BadMagic => f.write_str("no batch header: bad magic"),
            BatchError::HeaderCrcMismatch { stored, computed } => write!(
                f,
                "batch header crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BatchError::NoRecords => f.write_str("batch header claims no records"),
            BatchError::BodyTooLarge { len } => write!(
                f,
                "batch claims {len} body bytes, more than the {BATCH_BODY_BYTES_MAX} allowed"
            ),
            BatchError::ShortBody { len, available } => {
                write!(f, "batch body cut short: {available} of {len} bytes")
            }
            BatchError::BodyCrcMismatch { stored, computed } => write!(
                f,
                "batch body crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BatchError::Record { error, .. } => error.fmt(f),
            BatchError::RecordPosition { position, expected, .. } => {
                write!(f, "record in a batch has position {position}, expected {expected}")
            }
            BatchError::RecordCount { header, found } => {
                write!(f, "batch header claims {header} records but its body holds {found}")
            }
        }
    }
}

impl Error for BatchError {}

/// Why bytes do not hold a valid snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotError {
    /// The file is shorter than the header.
    TooShort { file_bytes: u64 },
    /// The first eight bytes are not `ALLOTSNP`.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion { version: u32 },
    /// The header (or the file size) claims a body over `SNAPSHOT_BODY_BYTES_MAX`.
    BodyTooLarge { body_bytes: u64 },
    /// The header's body length differs from the bytes that follow it.
    LengthMismatch { body_bytes: u64, available: u64 },
    /// The header's position differs from the one in the file name.
    PositionMismatch { header: u64, name: u64 },
    /// The stored crc32c does not match the body.
    CrcMismatch { stored: u32, computed: u32 },
}

impl SnapshotError {
    /// Byte offset in the file of the field that failed.
    pub fn offset(&self) -> u64 {
        let offset = match self {
            SnapshotError::TooShort { .. } | SnapshotError::BadMagic => 0,
            SnapshotError::UnsupportedVersion { .. } => crate::snapshot::VERSION_OFFSET,
            SnapshotError::PositionMismatch { .. } => crate::snapshot::POSITION_OFFSET,
            SnapshotError::BodyTooLarge { .. } | SnapshotError::LengthMismatch { .. } => {
                crate::snapshot::BODY_LEN_OFFSET
            }
            SnapshotError::CrcMismatch { .. } => crate::snapshot::BODY_CRC_OFFSET,
        };
        offset as u64
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::TooShort { file_bytes } => write!(
                f,
                "snapshot file is {file_bytes} bytes, shorter than its {SNAPSHOT_HEADER_BYTES}-byte header"
            ),
            SnapshotError::BadMagic => f.write_str("not a snapshot file: bad magic"),
            SnapshotError::UnsupportedVersion { version } => {
                write!(f, "unsupported snapshot format version {version}")
            }
            SnapshotError::BodyTooLarge { body_bytes } => write!(
                f,
                "snapshot body of {body_bytes} bytes exceeds the {SNAPSHOT_BODY_BYTES_MAX} allowed"
            ),
            SnapshotError::LengthMismatch { body_bytes, available } => write!(
                f,
                "snapshot header claims a {body_bytes}-byte body but {available} bytes follow it"
            ),
            SnapshotError::PositionMismatch { header, name } => write!(
                f,
                "snapshot header says position {header} but the file is named for position {name}"
            ),
            SnapshotError::CrcMismatch { stored, computed } => write!(
                f,
                "snapshot body crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

impl Error for SnapshotError {}
