//! Snapshot files: the engine state at a log position, written atomically, verified on
//! load, and pruned together with the log segments they make unnecessary.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{SnapshotError, StorageError};
use crate::files::{
    list_positions, parse_position_file_name, position_file_name, read_u32, read_u64,
};
use crate::storage::Storage;
use crate::wal::{list_segments, segment_file_name};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"ALLOTSNP";
/// Version 4: idempotency keys are fixed-size entries (a 128-bit key hash, the command's
/// fingerprint and a compact outcome) with their recording times; resolved holds are
/// tombstones (resolved at, id, fate) instead of whole holds; the counters count keys
/// forgotten early; orders and shipments are compact records. Version 3 made the stored
/// fingerprints hashes of canonical bytes; version 2 added orders.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 4;
/// magic 8, version u32, position u64, body length u64, body crc32c u32.
pub const SNAPSHOT_HEADER_BYTES: usize = 32;
/// Largest body a snapshot may hold; checked before a snapshot is read into memory.
pub const SNAPSHOT_BODY_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// Snapshots kept after a write: the newest, and one to fall back to if it is bad.
pub const SNAPSHOTS_KEPT: usize = 2;
pub const SNAPSHOT_FILE_PREFIX: &str = "snapshot-";
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snap";
/// Suffix of a snapshot being written; recovery removes such files.
pub const SNAPSHOT_TMP_FILE_SUFFIX: &str = ".snap.tmp";

pub(crate) const VERSION_OFFSET: usize = 8;
pub(crate) const POSITION_OFFSET: usize = 12;
pub(crate) const BODY_LEN_OFFSET: usize = 20;
pub(crate) const BODY_CRC_OFFSET: usize = 28;

/// The verified header of a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub position: u64,
    pub body_bytes: u64,
    pub body_crc: u32,
}

/// `snapshot-{position:020}.snap`.
pub fn snapshot_file_name(position: u64) -> String {
    position_file_name(SNAPSHOT_FILE_PREFIX, position, SNAPSHOT_FILE_SUFFIX)
}

/// `snapshot-{position:020}.snap.tmp`.
pub fn snapshot_tmp_file_name(position: u64) -> String {
    position_file_name(SNAPSHOT_FILE_PREFIX, position, SNAPSHOT_TMP_FILE_SUFFIX)
}

/// The position of a snapshot file name, or `None` for any other name (including
/// temporary ones).
pub fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    parse_position_file_name(name, SNAPSHOT_FILE_PREFIX, SNAPSHOT_FILE_SUFFIX)
}

/// The position of a temporary snapshot file name, or `None`.
pub fn parse_snapshot_tmp_file_name(name: &str) -> Option<u64> {
    parse_position_file_name(name, SNAPSHOT_FILE_PREFIX, SNAPSHOT_TMP_FILE_SUFFIX)
}

/// Positions of the snapshots in `dir`, ascending.
pub(crate) fn list_snapshots(storage: &dyn Storage, dir: &Path) -> std::io::Result<Vec<u64>> {
    list_positions(storage, dir, SNAPSHOT_FILE_PREFIX, SNAPSHOT_FILE_SUFFIX)
}

/// The header that precedes `body` in a snapshot at `position`.
pub fn encode_snapshot_header(position: u64, body: &[u8]) -> [u8; SNAPSHOT_HEADER_BYTES] {
    let mut header = [0; SNAPSHOT_HEADER_BYTES];
    header[..VERSION_OFFSET].copy_from_slice(&SNAPSHOT_MAGIC);
    header[VERSION_OFFSET..POSITION_OFFSET].copy_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    header[POSITION_OFFSET..BODY_LEN_OFFSET].copy_from_slice(&position.to_le_bytes());
    header[BODY_LEN_OFFSET..BODY_CRC_OFFSET].copy_from_slice(&(body.len() as u64).to_le_bytes());
    header[BODY_CRC_OFFSET..].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    header
}

/// Checks a whole snapshot file named for `name_position`: magic, version, position,
/// body length (against the max and the bytes present) and body crc. The body is
/// `file[SNAPSHOT_HEADER_BYTES..]`.
pub fn verify_snapshot(file: &[u8], name_position: u64) -> Result<SnapshotHeader, SnapshotError> {
    let header = verify_snapshot_header(file, name_position)?;
    let body = &file[SNAPSHOT_HEADER_BYTES..];
    let computed = crc32c::crc32c(body);
    if computed != header.body_crc {
        return Err(SnapshotError::CrcMismatch { stored: header.body_crc, computed });
    }
    Ok(header)
}

/// Everything [`verify_snapshot`] checks except the crc.
fn verify_snapshot_header(
    file: &[u8],
    name_position: u64,
) -> Result<SnapshotHeader, SnapshotError> {
    check_file_size(file.len() as u64)?;
    if file[..VERSION_OFFSET] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = read_u32(file, VERSION_OFFSET);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion { version });
    }
    let position = read_u64(file, POSITION_OFFSET);
    if position != name_position {
        return Err(SnapshotError::PositionMismatch { header: position, name: name_position });
    }
    let body_bytes = read_u64(file, BODY_LEN_OFFSET);
    if body_bytes > SNAPSHOT_BODY_BYTES_MAX {
        return Err(SnapshotError::BodyTooLarge { body_bytes });
    }
    let available = (file.len() - SNAPSHOT_HEADER_BYTES) as u64;
    if body_bytes != available {
        return Err(SnapshotError::LengthMismatch { body_bytes, available });
    }
    Ok(SnapshotHeader { position, body_bytes, body_crc: read_u32(file, BODY_CRC_OFFSET) })
}

/// Rejects a file too small for a header or too large for any valid body, so that a
/// file can be checked before it is read into memory.
pub(crate) fn check_file_size(file_bytes: u64) -> Result<(), SnapshotError> {
    let Some(body_bytes) = file_bytes.checked_sub(SNAPSHOT_HEADER_BYTES as u64) else {
        return Err(SnapshotError::TooShort { file_bytes });
    };
    if body_bytes > SNAPSHOT_BODY_BYTES_MAX {
        return Err(SnapshotError::BodyTooLarge { body_bytes });
    }
    Ok(())
}

/// Writes snapshot files into a data directory and prunes what they make unnecessary.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
}

impl SnapshotStore {
    pub fn new(storage: Arc<dyn Storage>, dir: &Path) -> Self {
        SnapshotStore { storage, dir: dir.to_path_buf() }
    }

    /// Writes the snapshot at `position` to a temporary name, fsyncs it, renames it into
    /// place and fsyncs the directory; then keeps the newest [`SNAPSHOTS_KEPT`] snapshots
    /// and deletes the log segments the older kept one covers. Returns the final path.
    ///
    /// `position` must be durable in the log: recovery replays from it.
    pub fn write(&self, position: u64, body: &[u8]) -> Result<PathBuf, StorageError> {
        let path = self.dir.join(snapshot_file_name(position));
        if body.len() as u64 > SNAPSHOT_BODY_BYTES_MAX {
            let message = format!("body of {} bytes exceeds SNAPSHOT_BODY_BYTES_MAX", body.len());
            return Err(StorageError::invalid_input("write snapshot", &path, message));
        }
        let tmp = self.dir.join(snapshot_tmp_file_name(position));
        if let Err(error) = self.write_tmp(&tmp, position, body) {
            // Best effort: the write error is what matters, and recovery removes
            // leftover temporary files anyway.
            let _ = self.storage.remove(&tmp);
            return Err(error);
        }
        self.storage.rename(&tmp, &path).map_err(StorageError::io("rename", &tmp))?;
        self.sync_dir()?;
        self.prune()?;
        Ok(path)
    }

    fn write_tmp(&self, tmp: &Path, position: u64, body: &[u8]) -> Result<(), StorageError> {
        let mut file = self.storage.create(tmp).map_err(StorageError::io("create", tmp))?;
        let header = encode_snapshot_header(position, body);
        // Two writes rather than one: the body can be gigabytes, not worth copying.
        file.write_all(&header).map_err(StorageError::io("write", tmp))?;
        file.write_all(body).map_err(StorageError::io("write", tmp))?;
        file.sync_all().map_err(StorageError::io("fsync", tmp))
    }

    /// Deletes snapshots older than the newest [`SNAPSHOTS_KEPT`], then the segments
    /// whose records all lie at or below the oldest kept snapshot.
    fn prune(&self) -> Result<(), StorageError> {
        let snapshots = list_snapshots(self.storage.as_ref(), &self.dir)
            .map_err(StorageError::io("list", &self.dir))?;
        let keep_from = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
        for &position in &snapshots[..keep_from] {
            self.remove(&snapshot_file_name(position))?;
        }
        self.sync_dir()?;
        // With fewer snapshots than SNAPSHOTS_KEPT the whole log stays: it is the only
        // fallback if the newest snapshot goes bad.
        if snapshots.len() < SNAPSHOTS_KEPT {
            return Ok(());
        }
        self.prune_segments(snapshots[keep_from])
    }

    /// Deletes, oldest first, each segment whose last position (the next segment's first
    /// minus one) is at or below `covered_through`. The newest segment is never deleted.
    fn prune_segments(&self, covered_through: u64) -> Result<(), StorageError> {
        let segments = list_segments(self.storage.as_ref(), &self.dir)
            .map_err(StorageError::io("list", &self.dir))?;
        for pair in segments.windows(2) {
            let &[first, next_first] = pair else { break };
            if next_first.saturating_sub(1) > covered_through {
                break;
            }
            self.remove(&segment_file_name(first))?;
            // One directory fsync per segment, so a crash can only leave a prefix of the
            // log deleted, never a hole in the middle of it.
            self.sync_dir()?;
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), StorageError> {
        let path = self.dir.join(name);
        self.storage.remove(&path).map_err(StorageError::io("remove", &path))
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        self.storage.sync_dir(&self.dir).map_err(StorageError::io("fsync directory", &self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_file(position: u64, body: &[u8]) -> Vec<u8> {
        let mut file = encode_snapshot_header(position, body).to_vec();
        file.extend_from_slice(body);
        file
    }

    #[test]
    fn header_round_trips() {
        let file = snapshot_file(77, b"state");
        assert_eq!(&file[..8], b"ALLOTSNP");
        assert_eq!(
            verify_snapshot(&file, 77),
            Ok(SnapshotHeader { position: 77, body_bytes: 5, body_crc: crc32c::crc32c(b"state") })
        );
    }

    #[test]
    fn header_matches_the_example_in_docs_storage_md() {
        let documented = [
            b'A', b'L', b'L', b'O', b'T', b'S', b'N', b'P', // magic
            0x04, 0x00, 0x00, 0x00, // format version 4
            0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // position 7
            0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // body length 5
            0xdf, 0x68, 0xdb, 0x66, // crc32c of "state", 0x66db68df
        ];
        assert_eq!(encode_snapshot_header(7, b"state"), documented);
    }

    #[test]
    fn bad_magic_is_a_typed_error() {
        let mut file = snapshot_file(1, b"state");
        file[0] = b'X';
        assert_eq!(verify_snapshot(&file, 1), Err(SnapshotError::BadMagic));
    }

    #[test]
    fn unknown_version_is_a_typed_error() {
        let mut file = snapshot_file(1, b"state");
        for version in [1u32, 2, 3, 5] {
            file[VERSION_OFFSET..POSITION_OFFSET].copy_from_slice(&version.to_le_bytes());
            let error = verify_snapshot(&file, 1).expect_err("another version");
            assert_eq!(error, SnapshotError::UnsupportedVersion { version });
        }
        let error = verify_snapshot(&file, 1).expect_err("version 5");
        assert_eq!(error.offset(), 8);
    }

    #[test]
    fn oversized_length_is_a_typed_error() {
        let mut file = snapshot_file(1, b"state");
        file[BODY_LEN_OFFSET..BODY_CRC_OFFSET].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            verify_snapshot(&file, 1),
            Err(SnapshotError::BodyTooLarge { body_bytes: u64::MAX })
        );
    }

    #[test]
    fn length_disagreeing_with_the_file_is_a_typed_error() {
        let mut file = snapshot_file(1, b"state");
        file.pop();
        assert_eq!(
            verify_snapshot(&file, 1),
            Err(SnapshotError::LengthMismatch { body_bytes: 5, available: 4 })
        );
    }

    #[test]
    fn short_file_is_a_typed_error() {
        let file = snapshot_file(1, b"");
        assert_eq!(
            verify_snapshot(&file[..SNAPSHOT_HEADER_BYTES - 1], 1),
            Err(SnapshotError::TooShort { file_bytes: 31 })
        );
        assert!(verify_snapshot(&file, 1).is_ok());
    }

    #[test]
    fn position_must_match_the_file_name() {
        let file = snapshot_file(5, b"state");
        assert_eq!(
            verify_snapshot(&file, 6),
            Err(SnapshotError::PositionMismatch { header: 5, name: 6 })
        );
    }

    #[test]
    fn flipped_body_byte_fails_the_crc() {
        let mut file = snapshot_file(1, b"state");
        file[SNAPSHOT_HEADER_BYTES + 2] ^= 0x10;
        assert!(matches!(verify_snapshot(&file, 1), Err(SnapshotError::CrcMismatch { .. })));
    }

    #[test]
    fn snapshot_names_parse_and_tmp_names_are_distinct() {
        assert_eq!(snapshot_file_name(3), "snapshot-00000000000000000003.snap");
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(3)), Some(3));
        assert_eq!(parse_snapshot_file_name(&snapshot_tmp_file_name(3)), None);
        assert_eq!(parse_snapshot_tmp_file_name(&snapshot_tmp_file_name(3)), Some(3));
    }
}
