//! Opening a data directory: the lock that keeps one engine per directory, choosing the
//! newest snapshot that verifies, and replaying the log with torn-tail repair, corruption
//! and gap detection, then making what was replayed durable.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::SegmentHeaderError;
use crate::error::{RecoveryError, StorageError};
use crate::snapshot::{
    SNAPSHOT_HEADER_BYTES, SnapshotStore, check_file_size, list_snapshots,
    parse_snapshot_tmp_file_name, snapshot_file_name, verify_snapshot,
};
use crate::storage::Storage;
use crate::wal::{
    BATCH_HEADER_BYTES, BATCHES_UNSYNCED_MAX, Batch, Record, SEGMENT_FIRST_POSITION_OFFSET,
    SEGMENT_HEADER_BYTES, WalWriter, decode_batch, decode_segment_header, find_batches_after,
    list_segments, segment_file_name,
};

/// Appended to the name of a snapshot that failed to verify and was set aside.
pub const CORRUPT_SNAPSHOT_SUFFIX: &str = ".corrupt";

/// Name of the lock file in a data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// An open, locked data directory.
///
/// Keep it alive while writing: the lock is released when it is dropped.
#[derive(Debug)]
pub struct DataDir {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// Held for its OS lock, which the kernel releases if the process dies.
    _lock: File,
}

/// A snapshot whose header and crc verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedSnapshot {
    pub position: u64,
    pub body: Vec<u8>,
    pub path: PathBuf,
}

/// Bytes cut from the end of the last segment because they did not hold whole batches
/// (or, at offset 0, a whole segment header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// The segment's new length: where the first bad batch started, or 0 for a torn
    /// segment header.
    pub offset: u64,
    pub bytes_dropped: u64,
}

/// What [`DataDir::replay`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records passed to `apply`.
    pub records: u64,
    /// The last position in the log, or `after_position` if the log is empty; the writer
    /// continues at `last_position + 1`.
    pub last_position: u64,
    pub torn_tail: Option<TornTail>,
}

impl DataDir {
    /// Creates `dir` if needed, takes an exclusive lock on `dir/LOCK` and removes leftover
    /// temporary snapshot files. Fails with [`RecoveryError::Locked`] while another
    /// `DataDir` (in this process or another) holds the directory.
    pub fn open(storage: Arc<dyn Storage>, dir: &Path) -> Result<DataDir, RecoveryError> {
        storage.create_dir_all(dir).map_err(RecoveryError::io("create directory", dir))?;
        let lock = lock_dir(dir)?;
        let data_dir = DataDir { storage, dir: dir.to_path_buf(), _lock: lock };
        data_dir.remove_tmp_files()?;
        Ok(data_dir)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// The newest snapshot that verifies; see [`DataDir::load_snapshot_before`].
    pub fn load_snapshot(&self) -> Result<Option<LoadedSnapshot>, RecoveryError> {
        self.load_snapshot_before(None)
    }

    /// The newest snapshot below `before` (any, with `None`) whose header and crc verify.
    /// A snapshot that fails to verify is skipped with a warning. `Ok(None)` when there
    /// is no candidate; [`RecoveryError::Corrupt`] naming the newest candidate when none
    /// verifies. A caller that cannot use a verified snapshot asks again with
    /// `before = Some(its position)`.
    pub fn load_snapshot_before(
        &self,
        before: Option<u64>,
    ) -> Result<Option<LoadedSnapshot>, RecoveryError> {
        let positions = list_snapshots(self.storage.as_ref(), &self.dir)
            .map_err(RecoveryError::io("list", &self.dir))?;
        let candidates = positions
            .into_iter()
            .rev()
            .filter(|&position| before.is_none_or(|before| position < before));
        let mut newest_failure = None;
        for position in candidates {
            match self.read_snapshot(position) {
                Ok(loaded) => return Ok(Some(loaded)),
                Err(error @ RecoveryError::Corrupt { .. }) => {
                    tracing::warn!(%error, "skipping a snapshot that does not verify");
                    newest_failure.get_or_insert(error);
                }
                Err(error) => return Err(error),
            }
        }
        newest_failure.map_or(Ok(None), Err)
    }

    /// Renames every snapshot above `position` to `<name>.corrupt`, then fsyncs the
    /// directory. Called after recovery fell back past snapshots that do not verify, so
    /// they stop counting toward the kept snapshots (and the log below them is not
    /// trimmed on their account) while staying on disk for inspection.
    pub fn set_aside_snapshots_above(&self, position: u64) -> Result<Vec<PathBuf>, RecoveryError> {
        let positions = list_snapshots(self.storage.as_ref(), &self.dir)
            .map_err(RecoveryError::io("list", &self.dir))?;
        let mut set_aside = Vec::new();
        for bad in positions.into_iter().filter(|&candidate| candidate > position) {
            let path = self.dir.join(snapshot_file_name(bad));
            let mut aside = path.clone().into_os_string();
            aside.push(CORRUPT_SNAPSHOT_SUFFIX);
            let aside = PathBuf::from(aside);
            self.storage.rename(&path, &aside).map_err(RecoveryError::io("rename", &path))?;
            tracing::warn!(path = %path.display(), aside = %aside.display(), "corrupt snapshot set aside");
            set_aside.push(aside);
        }
        if !set_aside.is_empty() {
            self.storage.sync_dir(&self.dir).map_err(RecoveryError::io("fsync", &self.dir))?;
        }
        Ok(set_aside)
    }

    fn read_snapshot(&self, position: u64) -> Result<LoadedSnapshot, RecoveryError> {
        let path = self.dir.join(snapshot_file_name(position));
        let corrupt = |error: crate::error::SnapshotError| RecoveryError::Corrupt {
            path: path.clone(),
            offset: error.offset(),
            reason: error.to_string(),
        };
        let file_bytes =
            self.storage.file_len(&path).map_err(RecoveryError::io("read the size of", &path))?;
        // Checked before reading, so a huge file is never pulled into memory.
        check_file_size(file_bytes).map_err(corrupt)?;
        let mut body = self.storage.read(&path).map_err(RecoveryError::io("read", &path))?;
        verify_snapshot(&body, position).map_err(corrupt)?;
        body.drain(..SNAPSHOT_HEADER_BYTES);
        Ok(LoadedSnapshot { position, body, path })
    }

    /// Verifies every batch of every segment in order and calls `apply` for each record
    /// with position above `after_position`, in order. A batch is applied only once all
    /// of it has verified.
    ///
    /// Damage within the final [`BATCHES_UNSYNCED_MAX`] batches of the last segment is a
    /// torn write: the segment is truncated where the first bad batch starts and the cut
    /// reported; so is a torn header of the last segment when no batch follows it. Any
    /// other damage is [`RecoveryError::Corrupt`] and nothing is changed. Missing
    /// positions are [`RecoveryError::Gap`]. Segments are read one at a time.
    ///
    /// Before returning `Ok`, every segment read is fsynced, then the directory: what was
    /// replayed may have come from the page cache after a process crash, and must be on
    /// disk before the engine answers anything that depends on it.
    pub fn replay(
        &self,
        after_position: u64,
        mut apply: impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<ReplayReport, RecoveryError> {
        let segments = list_segments(self.storage.as_ref(), &self.dir)
            .map_err(RecoveryError::io("list", &self.dir))?;
        let (Some(&first), Some(&newest)) = (segments.first(), segments.last()) else {
            self.sync_dir()?;
            return Ok(ReplayReport { records: 0, last_position: after_position, torn_tail: None });
        };
        if first == 0 {
            let reason = "segment named for position 0; log positions start at 1".to_owned();
            let path = self.dir.join(segment_file_name(first));
            return Err(RecoveryError::Corrupt { path, offset: 0, reason });
        }
        let needed = after_position.saturating_add(1);
        if first > needed {
            return Err(self.gap(first, needed, first));
        }
        let mut cursor = Cursor { after_position, expected: first, records: 0 };
        let mut torn_tail = None;
        for &segment in &segments {
            torn_tail = self.replay_segment(segment, segment == newest, &mut cursor, &mut apply)?;
        }
        let last_position = cursor.expected - 1;
        if last_position < after_position {
            // The log stops short of the snapshot: the writer would leave a hole.
            return Err(self.gap(newest, cursor.expected, needed));
        }
        self.make_durable(&segments)?;
        Ok(ReplayReport { records: cursor.records, last_position, torn_tail })
    }

    /// Fsyncs every segment, then the directory. A process crash keeps the page cache, so
    /// replay can read records that never reached the disk; if the engine answered from
    /// them (a retry found in the idempotency table, a new segment after a full one) and
    /// power were then lost, acknowledged work would vanish or leave a gap.
    fn make_durable(&self, segments: &[u64]) -> Result<(), RecoveryError> {
        for &segment in segments {
            let path = self.dir.join(segment_file_name(segment));
            self.storage.sync_file(&path).map_err(RecoveryError::io("fsync", &path))?;
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), RecoveryError> {
        self.storage.sync_dir(&self.dir).map_err(RecoveryError::io("fsync directory", &self.dir))
    }

    fn gap(&self, segment: u64, expected: u64, found: u64) -> RecoveryError {
        RecoveryError::Gap { path: self.dir.join(segment_file_name(segment)), expected, found }
    }

    /// Replays one segment; a bad header or batch ends it, as a torn tail or as
    /// corruption.
    fn replay_segment(
        &self,
        segment: u64,
        is_last: bool,
        cursor: &mut Cursor,
        apply: &mut impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<Option<TornTail>, RecoveryError> {
        let path = self.dir.join(segment_file_name(segment));
        cursor.check_segment_start(&path, segment)?;
        let bytes = self.storage.read(&path).map_err(RecoveryError::io("read", &path))?;
        if let Some(torn) = self.check_segment_header(&path, &bytes, segment, is_last)? {
            return Ok(torn);
        }
        let Some(bad) = cursor.apply_batches(&path, &bytes, apply)? else {
            return Ok(None);
        };
        // Only the last segment can end in a torn write: the writer syncs every batch of
        // a segment before it creates the next one.
        if !is_last {
            return Err(bad.corrupt(path, "in a segment that is not the last"));
        }
        let following = find_batches_after(&bytes, bad.offset, cursor.expected);
        if 1 + following.len() > BATCHES_UNSYNCED_MAX {
            let context = format!(
                "a valid batch follows at byte {}, so this one was synced \
                 (BATCHES_UNSYNCED_MAX = {BATCHES_UNSYNCED_MAX})",
                following[0]
            );
            return Err(bad.corrupt(path, &context));
        }
        self.truncate_torn_tail(path, bytes.len(), bad.offset, &bad.reason).map(Some)
    }

    /// Checks a segment's header. `Ok(Some(_))` ends the segment: it is the newest and
    /// holds no batch (empty, or its torn header was cut off). `Ok(None)`: read on.
    fn check_segment_header(
        &self,
        path: &Path,
        bytes: &[u8],
        segment: u64,
        is_last: bool,
    ) -> Result<Option<Option<TornTail>>, RecoveryError> {
        let error = match decode_segment_header(bytes) {
            Ok(header) if header.first_position == segment => return Ok(None),
            Ok(header) => {
                return Err(RecoveryError::Corrupt {
                    path: path.to_path_buf(),
                    offset: SEGMENT_FIRST_POSITION_OFFSET as u64,
                    reason: format!(
                        "segment header says first position {} but the file is named for {segment}",
                        header.first_position
                    ),
                });
            }
            Err(SegmentHeaderError::UnsupportedVersion { version }) => {
                return Err(RecoveryError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    version,
                });
            }
            Err(error) => error,
        };
        // The writer syncs a new segment's header before writing any batch to it, so a
        // torn header can only be followed by nothing (or zeros the file system
        // allocated), and only in the newest segment.
        let nothing_follows = bytes.iter().skip(SEGMENT_HEADER_BYTES).all(|&byte| byte == 0);
        if !is_last || !nothing_follows {
            let context =
                if is_last { "with data after it" } else { "in a segment that is not the last" };
            return Err(RecoveryError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: format!("{error} ({context})"),
            });
        }
        if bytes.is_empty() {
            // Created and named, header not yet written: an empty newest segment.
            return Ok(Some(None));
        }
        let torn =
            self.truncate_torn_tail(path.to_path_buf(), bytes.len(), 0, &error.to_string())?;
        Ok(Some(Some(torn)))
    }

    fn truncate_torn_tail(
        &self,
        path: PathBuf,
        segment_bytes: usize,
        offset: usize,
        reason: &str,
    ) -> Result<TornTail, RecoveryError> {
        let bytes_dropped = (segment_bytes - offset) as u64;
        let offset = offset as u64;
        tracing::warn!(
            path = %path.display(),
            offset,
            bytes_dropped,
            reason,
            "truncating a torn write at the end of the log"
        );
        self.storage.truncate(&path, offset).map_err(RecoveryError::io("truncate", &path))?;
        Ok(TornTail { path, offset, bytes_dropped })
    }

    /// A writer appending after `next_position - 1`; see [`WalWriter::open`].
    pub fn wal_writer(
        &self,
        next_position: u64,
        segment_bytes_target: u64,
    ) -> Result<WalWriter, StorageError> {
        WalWriter::open(self.storage(), &self.dir, next_position, segment_bytes_target)
    }

    pub fn snapshot_store(&self) -> SnapshotStore {
        SnapshotStore::new(self.storage(), &self.dir)
    }

    /// Removes temporary snapshot files a crash left behind; they were never renamed into
    /// place, so nothing refers to them.
    fn remove_tmp_files(&self) -> Result<(), RecoveryError> {
        let names = self.storage.list(&self.dir).map_err(RecoveryError::io("list", &self.dir))?;
        let mut removed = false;
        for name in names.iter().filter(|name| parse_snapshot_tmp_file_name(name).is_some()) {
            let path = self.dir.join(name);
            tracing::info!(path = %path.display(), "removing an unfinished snapshot");
            self.storage.remove(&path).map_err(RecoveryError::io("remove", &path))?;
            removed = true;
        }
        if removed {
            self.storage
                .sync_dir(&self.dir)
                .map_err(RecoveryError::io("fsync directory", &self.dir))?;
        }
        Ok(())
    }
}

/// Takes the exclusive OS lock on `dir/LOCK` and writes the holder's process id into it.
fn lock_dir(dir: &Path) -> Result<File, RecoveryError> {
    let path = dir.join(LOCK_FILE_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(RecoveryError::io("open", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(RecoveryError::Locked { path }),
        Err(TryLockError::Error(source)) => {
            return Err(RecoveryError::Io { op: "lock", path, source });
        }
    }
    // For operators only: the lock is the OS lock, not the file's contents.
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(RecoveryError::io("write", &path))?;
    Ok(file)
}

/// Where replay stands in the log.
struct Cursor {
    after_position: u64,
    /// The position the next record must have.
    expected: u64,
    /// Records passed to `apply`.
    records: u64,
}

/// The first batch of a segment that did not verify.
struct BadBatch {
    /// Where the batch starts: a torn tail is cut here.
    offset: usize,
    /// Where the damage was found: the failing record, or the batch header.
    damage_offset: usize,
    reason: String,
}

impl BadBatch {
    fn corrupt(self, path: PathBuf, context: &str) -> RecoveryError {
        RecoveryError::Corrupt {
            path,
            offset: self.damage_offset as u64,
            reason: format!("{} ({context})", self.reason),
        }
    }
}

impl Cursor {
    /// A segment must start exactly where the previous one ended.
    fn check_segment_start(&self, path: &Path, first_position: u64) -> Result<(), RecoveryError> {
        if first_position > self.expected {
            return Err(RecoveryError::Gap {
                path: path.to_path_buf(),
                expected: self.expected,
                found: first_position,
            });
        }
        if first_position < self.expected {
            return Err(RecoveryError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: format!(
                    "segment starts at position {first_position}, inside the previous segment, which ends at {}",
                    self.expected - 1
                ),
            });
        }
        Ok(())
    }

    /// Applies the batches of one segment until its end or its first bad batch.
    ///
    /// A batch that verifies but repeats an earlier position is bad (stale bytes, e.g.
    /// from a reused disk block); one that skips positions is a gap.
    fn apply_batches(
        &mut self,
        path: &Path,
        bytes: &[u8],
        apply: &mut impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<Option<BadBatch>, RecoveryError> {
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset < bytes.len() {
            let (batch, batch_bytes) = match decode_batch(&bytes[offset..]) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => {
                    let damage_offset = offset + error.offset_in_batch();
                    return Ok(Some(BadBatch { offset, damage_offset, reason: error.to_string() }));
                }
            };
            if batch.first_position < self.expected {
                let reason = format!(
                    "batch starts at position {}, expected {}",
                    batch.first_position, self.expected
                );
                return Ok(Some(BadBatch { offset, damage_offset: offset, reason }));
            }
            if batch.first_position > self.expected {
                return Err(RecoveryError::Gap {
                    path: path.to_path_buf(),
                    expected: self.expected,
                    found: batch.first_position,
                });
            }
            self.apply_batch(path, offset, &batch, apply)?;
            offset += batch_bytes;
        }
        Ok(None)
    }

    fn apply_batch(
        &mut self,
        path: &Path,
        batch_offset: usize,
        batch: &Batch<'_>,
        apply: &mut impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<(), RecoveryError> {
        for (offset, record) in batch.records() {
            self.apply(path, batch_offset + BATCH_HEADER_BYTES + offset, record, apply)?;
        }
        Ok(())
    }

    fn apply(
        &mut self,
        path: &Path,
        offset: usize,
        record: Record<'_>,
        apply: &mut impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<(), RecoveryError> {
        if record.position > self.after_position {
            let position = record.position;
            apply(record).map_err(|message| RecoveryError::Apply {
                path: path.to_path_buf(),
                offset: offset as u64,
                position,
                message,
            })?;
            self.records += 1;
        }
        // Only a crafted file can hold position u64::MAX; refuse it rather than overflow.
        self.expected = self.expected.checked_add(1).ok_or_else(|| RecoveryError::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason: "record position at the end of the position range".to_owned(),
        })?;
        Ok(())
    }
}
