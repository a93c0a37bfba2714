//! The world lock: an exclusive `flock` on `world.lock`, so two processes can
//! never write the same world. The holder's pid is written into the file; a
//! clean release empties it again.
//!
//! The kernel drops a `flock` when its holder dies, however it dies, so a lock
//! left by a dead process is free to take: the only trace is its pid still in
//! the file, which [`WorldLock::acquire`] reports as a stale takeover. There is
//! no window in which two live processes both believe they hold the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::layout::WorldDir;
use crate::storage::{DiskStorage, FILE_MODE, Storage};

/// A held world lock; released (and emptied) on drop.
#[derive(Debug)]
pub struct WorldLock {
    file: File,
    path: PathBuf,
    stale_pid: Option<u32>,
}

/// What a probe of the lock found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// No lock file, or an empty one nobody holds.
    Free,
    /// A live process holds it.
    Held {
        /// The pid written by the holder (0 if unreadable).
        pid: u32,
    },
    /// Nobody holds it, but a pid is still written: its holder died without
    /// releasing it. The next acquire takes it over.
    Stale {
        /// The dead holder's pid.
        pid: u32,
        /// Whether a process with that pid runs now (pid reuse).
        pid_alive: bool,
    },
}

fn open(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(StoreError::io("open the lock file", path))
}

fn written_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether a process with this pid exists (Linux `/proc`).
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

impl WorldLock {
    /// Takes the lock or names the live holder.
    pub fn acquire(path: &Path) -> Result<WorldLock, StoreError> {
        let mut file = open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = written_pid(&mut file).unwrap_or(0);
                return Err(StoreError::Locked {
                    pid,
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    op: "lock",
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let stale_pid = written_pid(&mut file);
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_data()
        };
        write(&mut file).map_err(StoreError::io("write the lock file", path))?;
        Ok(WorldLock {
            file,
            path: path.to_path_buf(),
            stale_pid,
        })
    }

    /// The pid of a dead holder whose lock this one took over, if any.
    pub fn stale_pid(&self) -> Option<u32> {
        self.stale_pid
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks at the lock without keeping it.
    pub fn probe(path: &Path) -> Result<LockState, StoreError> {
        if !path.exists() {
            return Ok(LockState::Free);
        }
        let mut file = open(path)?;
        let pid = written_pid(&mut file);
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(match pid {
                    None => LockState::Free,
                    Some(pid) => LockState::Stale {
                        pid,
                        pid_alive: pid_alive(pid),
                    },
                })
            }
            Err(TryLockError::WouldBlock) => Ok(LockState::Held {
                pid: pid.unwrap_or(0),
            }),
            Err(TryLockError::Error(source)) => Err(StoreError::Io {
                op: "probe the lock",
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// Takes a world's lock: creates the world directory (0700) if needed, then
/// [`WorldLock::acquire`] on its `world.lock`. The one way a process takes
/// the lock of a world; [`WorldLock::stale_pid`] says whether it took over
/// the lock of a dead holder.
pub fn lock_world(dir: &WorldDir) -> Result<WorldLock, StoreError> {
    DiskStorage
        .create_dir_all(dir.path())
        .map_err(StoreError::io("create", dir.path()))?;
    WorldLock::acquire(&dir.lock())
}

/// Whether this process holds `dir`'s lock (through any [`WorldLock`]): the
/// lock is held and the pid written in it is ours.
pub fn held_by_this_process(dir: &WorldDir) -> Result<bool, StoreError> {
    Ok(WorldLock::probe(&dir.lock())?
        == LockState::Held {
            pid: std::process::id(),
        })
}

impl Drop for WorldLock {
    fn drop(&mut self) {
        // Empty the pid so the next holder does not report a stale takeover;
        // closing the file releases the flock.
        let _ = self.file.set_len(0);
        let _ = self.file.sync_data();
    }
}
