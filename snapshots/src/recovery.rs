//! Opening a data directory: the lock that keeps one engine per directory, choosing the
//! newest snapshot that verifies, and replaying the log with torn-tail repair and
//! corruption and gap detection.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{RecoveryError, StorageError};
use crate::snapshot::{
    SNAPSHOT_HEADER_BYTES, SnapshotStore, check_file_size, list_snapshots,
    parse_snapshot_tmp_file_name, snapshot_file_name, verify_snapshot,
};
use crate::storage::Storage;
use crate::wal::{
    Record, WalWriter, decode_record, find_record_after, list_segments, segment_file_name,
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

/// Bytes cut from the end of the last segment because they did not hold whole records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// The segment's new length: where the first bad record started.
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

    /// Verifies every record of every segment in order and calls `apply` for each one
    /// with position above `after_position`, in order.
    ///
    /// A bad record at the end of the last segment, with no valid record after it, is a
    /// torn write: the segment is truncated there and the cut reported. Any other bad
    /// record is [`RecoveryError::Corrupt`] and nothing is changed. Missing positions are
    /// [`RecoveryError::Gap`]. Segments are read one at a time.
    pub fn replay(
        &self,
        after_position: u64,
        mut apply: impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<ReplayReport, RecoveryError> {
        let segments = list_segments(self.storage.as_ref(), &self.dir)
            .map_err(RecoveryError::io("list", &self.dir))?;
        let (Some(&first), Some(&newest)) = (segments.first(), segments.last()) else {
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
        Ok(ReplayReport { records: cursor.records, last_position, torn_tail })
    }

    fn gap(&self, segment: u64, expected: u64, found: u64) -> RecoveryError {
        RecoveryError::Gap { path: self.dir.join(segment_file_name(segment)), expected, found }
    }

    /// Replays one segment; a bad record ends it, as a torn tail or as corruption.
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
        let Some(bad) = cursor.apply_records(&path, &bytes, apply)? else {
            return Ok(None);
        };
        // Only the last segment can end in a torn write: a segment is complete and synced
        // before the writer creates the next one.
        if !is_last {
            return Err(bad.corrupt(path, "in a segment that is not the last"));
        }
        if let Some(next) = find_record_after(&bytes, bad.offset, cursor.expected) {
            let context = format!("a valid record follows at byte {next}");
            return Err(bad.corrupt(path, &context));
        }
        self.truncate_torn_tail(path, bytes.len(), bad)
    }

    fn truncate_torn_tail(
        &self,
        path: PathBuf,
        segment_bytes: usize,
        bad: BadRecord,
    ) -> Result<Option<TornTail>, RecoveryError> {
        let offset = bad.offset as u64;
        let bytes_dropped = (segment_bytes - bad.offset) as u64;
        tracing::warn!(
            path = %path.display(),
            offset,
            bytes_dropped,
            reason = %bad.reason,
            "truncating a torn write at the end of the log"
        );
        self.storage.truncate(&path, offset).map_err(RecoveryError::io("truncate", &path))?;
        Ok(Some(TornTail { path, offset, bytes_dropped }))
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

/// The first record of a segment that did not verify.
struct BadRecord {
    offset: usize,
    reason: String,
}

impl BadRecord {
    fn corrupt(self, path: PathBuf, context: &str) -> RecoveryError {
        RecoveryError::Corrupt {
            path,
            offset: self.offset as u64,
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

    /// Applies the records of one segment until its end or its first bad record.
    ///
    /// A record that verifies but repeats an earlier position is bad (stale bytes, e.g.
    /// from a reused disk block); one that skips positions is a gap.
    fn apply_records(
        &mut self,
        path: &Path,
        bytes: &[u8],
        apply: &mut impl FnMut(Record<'_>) -> Result<(), String>,
    ) -> Result<Option<BadRecord>, RecoveryError> {
        let mut offset = 0;
        while offset < bytes.len() {
            let (record, record_bytes) = match decode_record(&bytes[offset..]) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => {
                    let reason = error.to_string();
                    return Ok(Some(BadRecord { offset, reason }));
                }
            };
            if record.position < self.expected {
                let reason =
                    format!("record has position {}, expected {}", record.position, self.expected);
                return Ok(Some(BadRecord { offset, reason }));
            }
            if record.position > self.expected {
                return Err(RecoveryError::Gap {
                    path: path.to_path_buf(),
                    expected: self.expected,
                    found: record.position,
                });
            }
            self.apply(path, offset, record, apply)?;
            offset += record_bytes;
        }
        Ok(None)
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
