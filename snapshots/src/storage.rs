//! The file-system seam: everything the log and snapshots do to disk goes through
//! [`Storage`], so tests can swap in [`FaultyStorage`] and fail writes or syncs on cue, or
//! [`PowerLossStorage`] and cut the power.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use crate::power_loss::{PowerLoss, PowerLossStorage, SplitMix64};

/// A file open for writing.
pub trait StorageFile: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// fdatasync: the data and the metadata needed to read it back (the size).
    fn sync_data(&mut self) -> io::Result<()>;
    /// fsync: the data and all metadata.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// The file-system operations the crate needs.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Size of the file at `path` in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path`, or truncates it if it exists, for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file to append to it.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Cuts the file to `len` bytes and fsyncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Fsyncs an existing file: whatever reads of it return (perhaps from the page cache,
    /// written by a process that died before syncing) is durable afterwards.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Opens the directory and fsyncs it, making creations, renames and removals in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

struct FsFile(File);

impl StorageFile for FsFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            // The crate names its files in ASCII; a name that is not UTF-8 is not one of them.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(File::create(path)?)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(FsFile(file)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fsync works on a descriptor opened for reading; the file's mode may forbid writing.
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// When [`FaultyStorage`] fails file writes and syncs, and how many it let through.
///
/// Counts start when the plan is made and cover every file opened through storages
/// sharing the plan.
#[derive(Debug)]
pub struct FaultPlan {
    /// How many `write_all` calls may succeed; `u64::MAX` means no fault is planned.
    writes_allowed: AtomicU64,
    syncs_allowed: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    /// Whether a failed write first writes half its bytes, like a real short write.
    tear_failed_writes: AtomicBool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            writes_allowed: AtomicU64::new(u64::MAX),
            syncs_allowed: AtomicU64::new(u64::MAX),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            tear_failed_writes: AtomicBool::new(false),
        }
    }
}

impl FaultPlan {
    /// A plan with no faults.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The `(successful_writes + 1)`-th `write_all` and every later one fail with
    /// "injected write fault". Use `fail_writes_after(plan.writes())` to fail the next.
    pub fn fail_writes_after(&self, successful_writes: u64) {
        self.writes_allowed.store(successful_writes, Ordering::SeqCst);
    }

    /// The `(successful_syncs + 1)`-th `sync_data`/`sync_all` and every later one fail
    /// with "injected sync fault".
    pub fn fail_syncs_after(&self, successful_syncs: u64) {
        self.syncs_allowed.store(successful_syncs, Ordering::SeqCst);
    }

    /// With `true`, a failed write puts the first half of its buffer on disk before
    /// returning the error, as a short write does.
    pub fn tear_failed_writes(&self, enabled: bool) {
        self.tear_failed_writes.store(enabled, Ordering::SeqCst);
    }

    /// How many `write_all` calls the plan let through.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// How many `sync_data`/`sync_all` calls the plan let through.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Counts one more call in `done` unless the budget in `allowed` is spent.
    fn admit(done: &AtomicU64, allowed: &AtomicU64) -> bool {
        let allowed = allowed.load(Ordering::SeqCst);
        done.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < allowed).then_some(n + 1))
            .is_ok()
    }
}

/// [`FsStorage`] whose files fail writes and syncs as a [`FaultPlan`] says; `sync_file`
/// counts as a sync. Directory operations, reads and truncation are never faulted.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: FsStorage,
    plan: Arc<FaultPlan>,
}

impl FaultyStorage {
    pub fn new(plan: Arc<FaultPlan>) -> Self {
        FaultyStorage { inner: FsStorage, plan }
    }

    pub fn plan(&self) -> &Arc<FaultPlan> {
        &self.plan
    }

    fn wrap(&self, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(FaultyFile { inner, plan: Arc::clone(&self.plan) })
    }
}

struct FaultyFile {
    inner: Box<dyn StorageFile>,
    plan: Arc<FaultPlan>,
}

impl FaultyFile {
    fn admit_sync(&self) -> io::Result<()> {
        if FaultPlan::admit(&self.plan.syncs, &self.plan.syncs_allowed) {
            Ok(())
        } else {
            Err(io::Error::other("injected sync fault"))
        }
    }
}

impl StorageFile for FaultyFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if FaultPlan::admit(&self.plan.writes, &self.plan.writes_allowed) {
            return self.inner.write_all(bytes);
        }
        if self.plan.tear_failed_writes.load(Ordering::SeqCst) {
            self.inner.write_all(&bytes[..bytes.len() / 2])?;
        }
        Err(io::Error::other("injected write fault"))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.admit_sync()?;
        self.inner.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.admit_sync()?;
        self.inner.sync_all()
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.create(path)?))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open_append(path)?))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.inner.truncate(path, len)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        if !FaultPlan::admit(&self.plan.syncs, &self.plan.syncs_allowed) {
            return Err(io::Error::other("injected sync fault"));
        }
        self.inner.sync_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_twice(storage: &FaultyStorage, path: &Path) -> (io::Result<()>, io::Result<()>) {
        let mut file = storage.create(path).expect("create");
        let first = file.write_all(b"0123");
        let second = file.write_all(b"456789");
        (first, second)
    }

    #[test]
    fn writes_fail_after_the_planned_count_and_stop_counting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = FaultPlan::new();
        plan.fail_writes_after(1);
        let storage = FaultyStorage::new(Arc::clone(&plan));
        let path = dir.path().join("f");
        let (first, second) = write_twice(&storage, &path);
        assert!(first.is_ok());
        let error = second.expect_err("second write must fail");
        assert_eq!(error.to_string(), "injected write fault");
        assert_eq!(plan.writes(), 1);
        assert_eq!(fs::read(&path).expect("read"), b"0123");
    }

    #[test]
    fn a_torn_write_leaves_the_first_half_of_the_buffer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = FaultPlan::new();
        plan.fail_writes_after(1);
        plan.tear_failed_writes(true);
        let storage = FaultyStorage::new(Arc::clone(&plan));
        let path = dir.path().join("f");
        let (_, second) = write_twice(&storage, &path);
        assert!(second.is_err());
        assert_eq!(fs::read(&path).expect("read"), b"0123456");
    }

    #[test]
    fn syncs_fail_after_the_planned_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = FaultPlan::new();
        plan.fail_syncs_after(1);
        let storage = FaultyStorage::new(Arc::clone(&plan));
        let mut file = storage.create(&dir.path().join("f")).expect("create");
        assert!(file.sync_data().is_ok());
        assert!(file.sync_all().is_err());
        assert!(file.sync_data().is_err());
        assert_eq!(plan.syncs(), 1);
    }

    #[test]
    fn list_returns_sorted_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b", "c", "a"] {
            fs::write(dir.path().join(name), b"").expect("write");
        }
        assert_eq!(FsStorage.list(dir.path()).expect("list"), ["a", "b", "c"]);
    }
}
