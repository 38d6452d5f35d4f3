//! A simulated file system for tests that can lose power: it tracks, per file, what was
//! written and what was synced, and per directory which creations, renames and removals
//! a directory fsync made durable, so that a test can cut the power at any operation and
//! recover from the disk image a real machine could come back with.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{Storage, StorageFile};

/// Sector size: the smallest unit a disk writes.
const SECTOR_BYTES: usize = 512;
/// Page size: the unit the kernel writes back from the page cache.
const PAGE_BYTES: usize = 4096;

/// What a power loss does to the bytes and directory entries that were not yet durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// The worst case for acknowledged data: every write not covered by a sync and every
    /// directory change not covered by a directory fsync is lost.
    DropUnsynced,
    /// Chosen by `seed`, per file: unsynced writes survive whole, are lost, are cut off
    /// at a 512-byte or 4 KiB boundary, or reach the disk in scattered units (later ones
    /// present, earlier ones zeros, old bytes or stale garbage); the file size is the
    /// synced one, the written one, or a unit boundary between. A random prefix of the
    /// unsynced directory changes survives (journaled metadata commits in order).
    Random { seed: u64 },
}

/// An in-memory file system implementing [`Storage`], with power loss and process crash.
///
/// Every mutating call (create, write, sync, truncate, rename, remove, directory fsync)
/// counts as one operation. After [`PowerLossStorage::crash_after_ops`] the storage
/// fails every later mutating call without doing it, as if the process or the machine
/// had stopped there. [`PowerLossStorage::restart_process`] models `kill -9` and a
/// restart (the page cache survives); [`PowerLossStorage::power_loss`] returns the disk a
/// restarted machine sees.
///
/// Clones share the same disk. Directories must be created with `create_dir_all`.
#[derive(Clone, Default)]
pub struct PowerLossStorage {
    disk: Arc<Mutex<Disk>>,
}

impl fmt::Debug for PowerLossStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let disk = self.lock();
        f.debug_struct("PowerLossStorage")
            .field("files", &disk.names.keys().collect::<Vec<_>>())
            .field("ops", &disk.ops)
            .field("crashed", &disk.crashed)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Disk {
    dirs: BTreeSet<PathBuf>,
    inodes: Vec<Inode>,
    /// Directory entries as the running system sees them.
    names: BTreeMap<PathBuf, usize>,
    /// Directory entries a directory fsync made durable.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Directory changes since their directory's last fsync, in order.
    unsynced_dir_changes: Vec<DirChange>,
    ops: u64,
    crash_at_ops: Option<u64>,
    crashed: bool,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    /// What reads return: the page cache.
    current: Vec<u8>,
    /// What the last sync made durable.
    durable: Vec<u8>,
    /// Whether `current` no longer extends `durable` (the file was truncated by a create),
    /// so a sync must copy it whole rather than append the new tail.
    diverged: bool,
}

impl Inode {
    fn sync(&mut self) {
        if self.diverged || self.durable.len() > self.current.len() {
            self.durable.clone_from(&self.current);
            self.diverged = false;
        } else {
            let synced = self.durable.len();
            self.durable.extend_from_slice(&self.current[synced..]);
        }
    }
}

#[derive(Debug, Clone)]
enum DirChange {
    Link { path: PathBuf, inode: usize },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirChange {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirChange::Link { path, .. } | DirChange::Unlink { path } => path.parent(),
            DirChange::Rename { to, .. } => to.parent(),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>) {
        match self {
            DirChange::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            DirChange::Unlink { path } => {
                names.remove(path);
            }
            DirChange::Rename { from, to } => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} does not exist", path.display()))
}

impl Disk {
    /// Counts one mutating operation, or fails it once the planned crash point is reached.
    fn admit(&mut self) -> io::Result<()> {
        if self.crash_at_ops.is_some_and(|at| self.ops >= at) {
            self.crashed = true;
        }
        if self.crashed {
            return Err(io::Error::other("injected crash: the storage has stopped"));
        }
        self.ops += 1;
        Ok(())
    }

    fn inode_of(&self, path: &Path) -> io::Result<usize> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.dirs.contains(dir) => Ok(()),
            _ => Err(not_found(path)),
        }
    }
}

impl PowerLossStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        // A test that panicked while holding the lock left a consistent disk behind: every
        // operation completes under the lock or not at all.
        self.disk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails every mutating call once `ops` more of them have been done.
    pub fn crash_after_ops(&self, ops: u64) {
        let mut disk = self.lock();
        disk.crash_at_ops = Some(disk.ops + ops);
    }

    /// Mutating operations done so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether a planned crash point has been reached.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// A process crash and restart (`kill -9`): everything written stays readable, from
    /// the page cache, but no more durable than it was; the crash plan is cleared.
    pub fn restart_process(&self) {
        let mut disk = self.lock();
        disk.crashed = false;
        disk.crash_at_ops = None;
    }

    /// The disk a machine sees after losing power now and restarting: a new storage in
    /// which everything present is durable.
    pub fn power_loss(&self, how: PowerLoss) -> PowerLossStorage {
        let disk = self.lock();
        let mut rng = match how {
            PowerLoss::DropUnsynced => None,
            PowerLoss::Random { seed } => Some(SplitMix64(seed)),
        };
        let mut names = disk.durable_names.clone();
        let changes = &disk.unsynced_dir_changes;
        let surviving = rng.as_mut().map_or(0, |rng| rng.below(changes.len() as u64 + 1) as usize);
        for change in &changes[..surviving] {
            change.apply(&mut names);
        }
        let mut inodes = Vec::new();
        let mut renumbered = BTreeMap::new();
        for inode in names.values_mut() {
            let new = *renumbered.entry(*inode).or_insert_with(|| {
                let image = disk_image(&disk.inodes[*inode], rng.as_mut());
                inodes.push(Inode { current: image.clone(), durable: image, diverged: false });
                inodes.len() - 1
            });
            *inode = new;
        }
        let after = Disk {
            dirs: disk.dirs.clone(),
            inodes,
            durable_names: names.clone(),
            names,
            ..Disk::default()
        };
        PowerLossStorage { disk: Arc::new(Mutex::new(after)) }
    }

    /// Xors the byte at `offset` of `path` with `mask`, durably: damage on purpose.
    ///
    /// # Panics
    /// If the file does not exist or is too short.
    pub fn flip_byte(&self, path: &Path, offset: usize, mask: u8) {
        let mut disk = self.lock();
        let inode = disk.inode_of(path).expect("the file to damage exists");
        let inode = &mut disk.inodes[inode];
        inode.current[offset] ^= mask;
        if let Some(byte) = inode.durable.get_mut(offset) {
            *byte ^= mask;
        }
    }
}

/// The bytes of one file after a power loss.
fn disk_image(inode: &Inode, rng: Option<&mut SplitMix64>) -> Vec<u8> {
    let (old, new) = (&inode.durable, &inode.current);
    let Some(rng) = rng else { return old.clone() };
    if old == new {
        return old.clone();
    }
    let unit = if rng.below(2) == 0 { SECTOR_BYTES } else { PAGE_BYTES };
    let len = match rng.below(4) {
        0 => old.len(),
        1 => new.len(),
        _ => {
            let (low, high) = (old.len().min(new.len()), old.len().max(new.len()));
            let boundaries = (high / unit).saturating_sub(low / unit) as u64;
            (((low / unit) as u64 + rng.below(boundaries + 1)) as usize * unit).clamp(low, high)
        }
    };
    let units = len.div_ceil(unit);
    // How the unsynced units reach the disk: a prefix of them in order, or scattered.
    let in_order_until =
        if rng.below(2) == 0 { Some(rng.below(units as u64 + 1) as usize) } else { None };
    let new_percent = [0, 30, 70, 100][rng.below(4) as usize];
    let mut image = vec![0; len];
    for (index, chunk) in image.chunks_mut(unit).enumerate() {
        let start = index * unit;
        let reached = match in_order_until {
            Some(until) => index < until,
            None => rng.below(100) < new_percent,
        };
        // What an unreached unit holds: the old bytes, zeros, or stale garbage.
        let lost = rng.below(3);
        for (i, byte) in chunk.iter_mut().enumerate() {
            let at = start + i;
            let (old_byte, new_byte) = (old.get(at).copied(), new.get(at).copied());
            *byte = match (old_byte, new_byte) {
                // Synced and unchanged: durable, whatever happens to the unit.
                (Some(o), Some(n)) if o == n => o,
                _ if reached => new_byte.unwrap_or(0),
                _ => match lost {
                    0 => old_byte.unwrap_or(0),
                    1 => 0,
                    _ => rng.next() as u8,
                },
            };
        }
    }
    image
}

/// A small deterministic generator (SplitMix64), so the crate and the tests that drive
/// this storage need no random-number dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    // Not an `Iterator`: the sequence never ends and callers take one draw at a time.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: usize,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StorageFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.lock();
        disk.admit()?;
        disk.inodes[self.inode].current.extend_from_slice(bytes);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.lock();
        disk.admit()?;
        disk.inodes[self.inode].sync();
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

impl Storage for PowerLossStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        for ancestor in dir.ancestors() {
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.lock();
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut names: Vec<String> = disk
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let disk = self.lock();
        Ok(disk.inodes[disk.inode_of(path)?].current.len() as u64)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.lock();
        Ok(disk.inodes[disk.inode_of(path)?].current.clone())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut disk = self.lock();
        disk.check_parent(path)?;
        disk.admit()?;
        let inode = match disk.names.get(path) {
            Some(&inode) => {
                let existing = &mut disk.inodes[inode];
                existing.current.clear();
                existing.diverged = true;
                inode
            }
            None => {
                disk.inodes.push(Inode::default());
                let inode = disk.inodes.len() - 1;
                disk.names.insert(path.to_path_buf(), inode);
                disk.unsynced_dir_changes.push(DirChange::Link { path: path.to_path_buf(), inode });
                inode
            }
        };
        Ok(Box::new(SimFile { disk: Arc::clone(&self.disk), inode }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let inode = self.lock().inode_of(path)?;
        Ok(Box::new(SimFile { disk: Arc::clone(&self.disk), inode }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut disk = self.lock();
        let inode = disk.inode_of(path)?;
        disk.admit()?;
        let file = &mut disk.inodes[inode];
        file.current.resize(len as usize, 0);
        file.durable.clone_from(&file.current);
        file.diverged = false;
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let inode = disk.inode_of(path)?;
        disk.admit()?;
        disk.inodes[inode].sync();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let inode = disk.inode_of(from)?;
        disk.check_parent(to)?;
        disk.admit()?;
        disk.names.remove(from);
        disk.names.insert(to.to_path_buf(), inode);
        let change = DirChange::Rename { from: from.to_path_buf(), to: to.to_path_buf() };
        disk.unsynced_dir_changes.push(change);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.inode_of(path)?;
        disk.admit()?;
        disk.names.remove(path);
        disk.unsynced_dir_changes.push(DirChange::Unlink { path: path.to_path_buf() });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        disk.admit()?;
        let changes = std::mem::take(&mut disk.unsynced_dir_changes);
        let (synced, unsynced): (Vec<_>, Vec<_>) =
            changes.into_iter().partition(|change| change.dir() == Some(dir));
        for change in &synced {
            change.apply(&mut disk.durable_names);
        }
        disk.unsynced_dir_changes = unsynced;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/sim/data")
    }

    fn storage() -> PowerLossStorage {
        let storage = PowerLossStorage::new();
        storage.create_dir_all(&dir()).expect("mkdir");
        storage
    }

    #[test]
    fn synced_bytes_survive_and_unsynced_ones_are_dropped() {
        let storage = storage();
        let path = dir().join("f");
        let mut file = storage.create(&path).expect("create");
        storage.sync_dir(&dir()).expect("sync dir");
        file.write_all(b"durable").expect("write");
        file.sync_data().expect("sync");
        file.write_all(b" cached").expect("write");
        assert_eq!(storage.read(&path).expect("read"), b"durable cached");
        let after = storage.power_loss(PowerLoss::DropUnsynced);
        assert_eq!(after.read(&path).expect("read"), b"durable");
    }

    #[test]
    fn a_file_whose_creation_was_not_made_durable_disappears() {
        let storage = storage();
        let path = dir().join("f");
        let mut file = storage.create(&path).expect("create");
        file.write_all(b"data").expect("write");
        file.sync_data().expect("sync");
        let after = storage.power_loss(PowerLoss::DropUnsynced);
        assert!(after.list(&dir()).expect("list").is_empty());
    }

    #[test]
    fn an_unsynced_rename_or_removal_is_undone() {
        let storage = storage();
        let (a, b) = (dir().join("a"), dir().join("b"));
        let mut file = storage.create(&a).expect("create");
        file.write_all(b"x").expect("write");
        file.sync_data().expect("sync");
        storage.sync_dir(&dir()).expect("sync dir");
        storage.rename(&a, &b).expect("rename");
        assert_eq!(storage.list(&dir()).expect("list"), ["b"]);
        assert_eq!(storage.power_loss(PowerLoss::DropUnsynced).list(&dir()).expect("list"), ["a"]);
        storage.sync_dir(&dir()).expect("sync dir");
        storage.remove(&b).expect("remove");
        assert_eq!(storage.power_loss(PowerLoss::DropUnsynced).list(&dir()).expect("list"), ["b"]);
    }

    #[test]
    fn random_power_loss_never_changes_synced_bytes_and_sometimes_scatters_unsynced_ones() {
        let storage = storage();
        let path = dir().join("f");
        let mut file = storage.create(&path).expect("create");
        storage.sync_dir(&dir()).expect("sync dir");
        let synced: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
        file.write_all(&synced).expect("write");
        file.sync_data().expect("sync");
        file.write_all(&[0xAB; 3 * PAGE_BYTES]).expect("write");
        let mut scattered = 0;
        for seed in 0..200 {
            let image = storage.power_loss(PowerLoss::Random { seed }).read(&path).expect("read");
            assert_eq!(&image[..synced.len()], &synced[..], "seed {seed}");
            assert!(image.len() <= synced.len() + 3 * PAGE_BYTES);
            let tail = &image[synced.len()..];
            // A later unit present after an earlier one lost: out-of-order writeback.
            let first_lost = tail.iter().position(|&byte| byte != 0xAB);
            if first_lost.is_some_and(|lost| {
                tail[lost..].windows(SECTOR_BYTES).any(|w| w.iter().all(|&b| b == 0xAB))
            }) {
                scattered += 1;
            }
        }
        assert!(scattered > 0, "no image had later units present after a lost one");
    }

    #[test]
    fn operations_fail_after_the_crash_point_without_taking_effect() {
        let storage = storage();
        let path = dir().join("f");
        let mut file = storage.create(&path).expect("create");
        storage.crash_after_ops(1);
        file.write_all(b"one").expect("first write");
        assert!(file.write_all(b"two").is_err());
        assert!(file.sync_data().is_err());
        assert!(storage.crashed());
        assert_eq!(storage.read(&path).expect("read"), b"one");
        storage.restart_process();
        file.sync_data().expect("sync after restart");
        storage.sync_dir(&dir()).expect("sync dir");
        assert_eq!(storage.power_loss(PowerLoss::DropUnsynced).read(&path).expect("read"), b"one");
    }
}
