//! A simulated disk for crash tests: it keeps, for every file, the bytes
//! written and the bytes made durable by the last sync, and for the
//! namespace, the entries made durable by the last directory sync.
//!
//! [`SimStorage::crash_at_sync`] makes the Nth sync (file or directory) fail
//! and every later operation fail too, as if the power went out just before
//! it; [`SimStorage::reboot`] then gives the disk as it would be found
//! afterwards: only durable bytes and durable names, and optionally a prefix
//! of the unsynced bytes of each file (a torn write). Everything is
//! deterministic; torn prefixes come from a caller-given seed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{AppendFile, Storage};

/// What survives a reboot of unsynced file bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reboot {
    /// Everything written after the last sync of a file is lost.
    LoseUnsynced,
    /// A seeded prefix of the unsynced bytes of each file survives.
    TornUnsynced {
        /// Seed of the prefix lengths.
        seed: u64,
    },
}

#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct Disk {
    inodes: BTreeMap<u64, Inode>,
    /// The live namespace: path → inode.
    names: BTreeMap<PathBuf, u64>,
    /// The namespace as of each directory's last sync.
    durable_names: BTreeMap<PathBuf, u64>,
    next_inode: u64,
    syncs: u64,
    crash_at_sync: Option<u64>,
    fail_sync_at: Option<u64>,
    crashed: bool,
}

/// An in-memory disk shared by clones; see the module docs.
#[derive(Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

fn crashed() -> io::Error {
    io::Error::other("simulated power loss")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Disk {
    fn check(&self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        Ok(())
    }

    /// Counts a sync; fails it if it is the one chosen to crash or fail.
    fn sync(&mut self) -> io::Result<()> {
        self.check()?;
        self.syncs += 1;
        if self.crash_at_sync == Some(self.syncs) {
            self.crashed = true;
            return Err(crashed());
        }
        if self.fail_sync_at == Some(self.syncs) {
            return Err(io::Error::other("simulated fsync failure (EIO)"));
        }
        Ok(())
    }

    fn inode_mut(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let id = *self.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(self.inodes.get_mut(&id).expect("named inodes exist"))
    }

    fn create(&mut self, path: &Path) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        self.names.insert(path.to_path_buf(), id);
        id
    }
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes sync number `n` (1-based, counting file and directory syncs) a
    /// power loss: it does not happen, and every later operation fails.
    pub fn crash_at_sync(&self, n: u64) {
        self.disk().crash_at_sync = Some(n);
    }

    /// Makes sync number `n` fail with an I/O error without crashing.
    pub fn fail_sync_at(&self, n: u64) {
        self.disk().fail_sync_at = Some(n);
    }

    /// Syncs performed so far.
    pub fn syncs(&self) -> u64 {
        self.disk().syncs
    }

    /// Whether the simulated power loss has happened.
    pub fn has_crashed(&self) -> bool {
        self.disk().crashed
    }

    /// The disk as found after a power loss now: durable names, durable
    /// bytes, and (for `TornUnsynced`) a prefix of each file's unsynced bytes.
    pub fn reboot(&self, mode: Reboot) -> SimStorage {
        let disk = self.disk();
        let mut next = Disk {
            next_inode: disk.next_inode,
            ..Disk::default()
        };
        let mut state = match mode {
            Reboot::LoseUnsynced => 0,
            Reboot::TornUnsynced { seed } => seed | 1,
        };
        for (path, id) in &disk.durable_names {
            let inode = &disk.inodes[id];
            let mut data = inode.durable.clone();
            if state != 0 && inode.data.len() > data.len() && inode.data.starts_with(&data) {
                let extra = inode.data.len() - data.len();
                let keep = (xorshift(&mut state) % (extra as u64 + 1)) as usize;
                data.extend_from_slice(&inode.data[inode.durable.len()..][..keep]);
            }
            next.inodes.insert(
                *id,
                Inode {
                    durable: data.clone(),
                    data,
                },
            );
            next.names.insert(path.clone(), *id);
            next.durable_names.insert(path.clone(), *id);
        }
        SimStorage {
            disk: Arc::new(Mutex::new(next)),
        }
    }

    /// Replaces the bytes of `path` (durably), for corruption tests.
    pub fn overwrite(&self, path: &Path, bytes: Vec<u8>) -> io::Result<()> {
        let mut disk = self.disk();
        let inode = disk.inode_mut(path)?;
        inode.durable = bytes.clone();
        inode.data = bytes;
        Ok(())
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: u64,
}

impl SimFile {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AppendFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let inode = self.inode;
        let mut disk = self.disk();
        disk.check()?;
        let file = disk.inodes.get_mut(&inode).ok_or_else(crashed)?;
        file.data.extend_from_slice(bytes);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let inode = self.inode;
        let mut disk = self.disk();
        disk.sync()?;
        let file = disk.inodes.get_mut(&inode).ok_or_else(crashed)?;
        file.durable = file.data.clone();
        Ok(())
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit in file paths.
        self.disk().check()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut disk = self.disk();
        disk.check()?;
        Ok(disk.inode_mut(path)?.data.clone())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk();
        disk.check()?;
        let names: Vec<String> = disk
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        self.disk().names.contains_key(path)
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let mut disk = self.disk();
        disk.check()?;
        let inode = match disk.names.get(path) {
            Some(id) => *id,
            None => disk.create(path),
        };
        Ok(Box::new(SimFile {
            disk: self.disk.clone(),
            inode,
        }))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check()?;
        // O_TRUNC replaces the contents of the same inode.
        let id = match disk.names.get(path) {
            Some(id) => *id,
            None => disk.create(path),
        };
        disk.inodes.get_mut(&id).expect("inode exists").data = bytes.to_vec();
        disk.sync()?;
        let inode = disk.inodes.get_mut(&id).expect("inode exists");
        inode.durable = inode.data.clone();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check()?;
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.sync()?;
        disk.durable_names
            .retain(|path, _| path.parent() != Some(dir));
        let live: Vec<(PathBuf, u64)> = disk
            .names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .map(|(path, id)| (path.clone(), *id))
            .collect();
        disk.durable_names.extend(live);
        Ok(())
    }

    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check()?;
        let inode = disk.inode_mut(path)?;
        inode.data.truncate(length as usize);
        disk.sync()?;
        let inode = disk.inode_mut(path)?;
        inode.durable = inode.data.clone();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check()?;
        disk.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }
}
