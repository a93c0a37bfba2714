//! The file operations the journal and checkpoints need, behind a trait, so
//! that tests can swap the disk for a simulator that separates written bytes
//! from durable ones (see [`crate::sim`]).
//!
//! Every directory this crate creates is 0700 and every file 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of every directory under the runtime root.
pub const DIRECTORY_MODE: u32 = 0o700;
/// Mode of every file under the runtime root.
pub const FILE_MODE: u32 = 0o600;

/// A file opened for appending.
pub trait AppendFile: Send {
    /// Appends all of `bytes` (not yet durable).
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The file system as the store sees it.
pub trait Storage: Send + Sync {
    /// Creates `dir` and its parents (0700).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Up to `length` bytes of `path` from byte `offset`: fewer where the
    /// file ends first, none at or past its end.
    fn read_at(&self, path: &Path, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        let bytes = self.read(path)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start.saturating_add(length).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }
    /// Names of the regular files directly in `dir`, sorted; `NotFound` if
    /// `dir` does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Opens `path` for appending, creating it (0600) if it does not exist.
    fn append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Creates or replaces `path` with `bytes` and syncs it (not its directory).
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames atomically (not durable until the directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (creates, renames, removes).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Cuts `path` to `length` bytes and syncs it.
    fn truncate(&self, path: &Path, length: u64) -> io::Result<()>;
    /// Removes a file (not durable until the directory is synced).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
}

/// Opens `path` for appending, creating it (0600) if it does not exist.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates `path` (0600) or empties it, for writing.
fn create_replacing(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskStorage;

struct DiskFile(File);

impl AppendFile for DiskFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for DiskStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIRECTORY_MODE)
            .create(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = File::open(path)?;
        let mut out = vec![0u8; length];
        let mut filled = 0;
        while filled < length {
            match file.read_at(&mut out[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        out.truncate(filled);
        Ok(out)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = open_append(path)?;
        Ok(Box::new(DiskFile(file)))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = create_replacing(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(length)?;
        file.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}

/// The real file system with every sync a no-op, for building a whole tree
/// that is made durable once at the end by [`sync_tree`] before anything
/// relies on it: archive recovery's staging world (published by a rename
/// only after the sync), and benchmark fixtures. The bytes written are
/// exactly those [`DiskStorage`] writes. Never a live world's storage.
#[derive(Clone, Copy, Debug, Default)]
pub struct StagingDisk;

struct StagingFile(File);

impl AppendFile for StagingFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for StagingDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        DiskStorage.create_dir_all(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        DiskStorage.read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        DiskStorage.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        DiskStorage.exists(path)
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = open_append(path)?;
        Ok(Box::new(StagingFile(file)))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = create_replacing(path)?;
        file.write_all(bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        DiskStorage.rename(from, to)
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&self, path: &Path, length: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.set_len(length)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        DiskStorage.remove_file(path)
    }
}

/// fsyncs every file and directory under `dir` (depth first), then `dir`:
/// what [`StagingDisk`] wrote becomes durable.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

/// [`write_atomic`] for a file that is produced while it is written:
/// `fill` appends the contents to the temporary file (a leftover temporary
/// file of a crashed write is replaced, as [`write_atomic`] replaces it),
/// which is then fdatasynced, renamed over `path`, and its directory synced.
pub fn write_atomic_with(
    storage: &dyn Storage,
    path: &Path,
    fill: impl FnOnce(&mut dyn AppendFile) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = temporary_path(path);
    if storage.exists(&temporary) {
        storage.remove_file(&temporary)?;
    }
    let mut file = storage.append(&temporary)?;
    fill(&mut *file)?;
    file.sync_data()?;
    drop(file);
    storage.rename(&temporary, path)?;
    storage.sync_dir(dir)
}

/// `.<name>.tmp` beside `path`: where [`write_atomic`] writes first.
fn temporary_path(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync,
/// rename, fsync of the directory. A crash leaves either the old file (or
/// none) or the new one, never a mix; at worst a stray `.tmp` file.
pub fn write_atomic(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = temporary_path(path);
    storage.write_synced(&temporary, bytes)?;
    storage.rename(&temporary, path)?;
    storage.sync_dir(dir)
}
