//! Package binding: a world runs only the package bound at its genesis. The
//! bound copy lives in `package/`; every command checks the package it is
//! given against the root recorded at genesis (or by the last upgrade).
//!
//! Every write and check here goes through [`Storage`], so the crash
//! simulator sees the binding as it sees the journal. Each file of the copy
//! is written atomically (a temporary file, fsync, rename, directory fsync),
//! so a crash leaves each file whole or absent, never half-written; the
//! copy as a whole is complete once every file is there, which the next
//! bind (the same world created again) finishes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use everarcade_package::Package;
use everarcade_protocol::{Domain, Hash};
use everarcade_store::meta::{GenesisFile, quarantine, read_json};
use everarcade_store::storage::write_atomic;
use everarcade_store::{DiskStorage, Storage, StoreError, WorldDir};

use crate::error::WorldError;

/// What binding did to `package/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bound {
    /// Files written (package-relative paths).
    pub written: Vec<String>,
    /// Files that were already there with the right contents.
    pub kept: Vec<String>,
    /// Files left in `package/` by an interrupted creation with other
    /// contents, moved to `quarantine/` (from, to).
    pub quarantined: Vec<(PathBuf, PathBuf)>,
}

/// Makes `package/` a whole copy of `package`, through `storage`: writes
/// each missing file atomically, moves any file whose contents differ (the
/// leftover of an interrupted creation with another package) to
/// `quarantine/`, fsyncs every directory it changed, and reads every file
/// back to check its hash. Only for a world that has no journal yet (or a
/// staged copy of one): a created world's binding is checked by
/// [`check_binding`], never rewritten.
pub fn bind_package(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
) -> Result<Bound, WorldError> {
    let target = dir.package();
    let mut bound = Bound::default();
    let mut changed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut files: Vec<_> = package.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for directory in package_directories(&target, package) {
        storage
            .create_dir_all(&directory)
            .map_err(StoreError::io("create", &directory))?;
        // Anything in a directory of the copy that the package does not
        // name is a leftover too.
        let names = storage
            .list(&directory)
            .map_err(StoreError::io("list", &directory))?;
        for name in names {
            // A temporary file of an interrupted atomic write goes too.
            let path = directory.join(&name);
            let relative = relative_path(&target, &path);
            if !files.iter().any(|file| file.path == relative) {
                let to = quarantine(storage, dir, &path)?;
                bound.quarantined.push((path, to));
            }
        }
    }
    for file in files {
        let destination = target.join(&file.path);
        if storage.exists(&destination) {
            let bytes = storage
                .read(&destination)
                .map_err(StoreError::io("read", &destination))?;
            if Domain::PackageFile.hash(&bytes) == file.hash {
                bound.kept.push(file.path.clone());
                continue;
            }
            let to = quarantine(storage, dir, &destination)?;
            bound.quarantined.push((destination.clone(), to));
        }
        let source = package.dir.join(&file.path);
        let bytes = std::fs::read(&source).map_err(StoreError::io("read", &source))?;
        if Domain::PackageFile.hash(&bytes) != file.hash {
            return Err(WorldError::Lineage {
                path: source,
                offset: 0,
                what: "the package file changed since the package was loaded".into(),
            });
        }
        write_atomic(storage, &destination, &bytes)
            .map_err(StoreError::io("write", &destination))?;
        if let Some(parent) = destination.parent() {
            changed.insert(parent.to_path_buf());
        }
        bound.written.push(file.path.clone());
    }
    sync_directories(storage, dir, &target, &changed)?;
    check_copy(storage, &target, package)?;
    Ok(bound)
}

/// `package/` and every directory inside it that the package's files name.
fn package_directories(target: &Path, package: &Package) -> BTreeSet<PathBuf> {
    let mut directories = BTreeSet::from([target.to_path_buf()]);
    for file in &package.files {
        let mut path = target.join(&file.path);
        while let Some(parent) = path.parent() {
            if !parent.starts_with(target) || parent == target {
                break;
            }
            directories.insert(parent.to_path_buf());
            path = parent.to_path_buf();
        }
    }
    directories
}

fn relative_path(target: &Path, path: &Path) -> String {
    path.strip_prefix(target)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// fsyncs each changed directory and its ancestors up to the world
/// directory, so new directory entries (nested directories, `package/`
/// itself) are durable too.
fn sync_directories(
    storage: &dyn Storage,
    dir: &WorldDir,
    target: &Path,
    changed: &BTreeSet<PathBuf>,
) -> Result<(), WorldError> {
    if changed.is_empty() {
        return Ok(());
    }
    let mut directories: BTreeSet<PathBuf> = BTreeSet::new();
    for directory in changed {
        let mut current = Some(directory.as_path());
        while let Some(path) = current {
            directories.insert(path.to_path_buf());
            if path == target {
                break;
            }
            current = path.parent();
        }
    }
    directories.insert(dir.path().to_path_buf());
    // Deepest first: a directory's entry is made durable after its contents.
    for directory in directories.iter().rev() {
        storage
            .sync_dir(directory)
            .map_err(StoreError::io("fsync the directory", directory))?;
    }
    Ok(())
}

/// Reads every file of the copy back and checks its hash (the pair of the
/// check before writing).
fn check_copy(storage: &dyn Storage, target: &Path, package: &Package) -> Result<(), WorldError> {
    for file in &package.files {
        let path = target.join(&file.path);
        let bytes = storage.read(&path).map_err(StoreError::io("read", &path))?;
        if Domain::PackageFile.hash(&bytes) != file.hash {
            return Err(WorldError::Store(StoreError::Corrupt {
                path,
                offset: 0,
                what: "the bound package file does not read back as written".into(),
            }));
        }
    }
    Ok(())
}

/// Whether `package/` holds no file at all (a staged world whose copy is
/// still to be made).
pub(crate) fn copy_absent(storage: &dyn Storage, dir: &WorldDir) -> Result<bool, WorldError> {
    let target = dir.package();
    match storage.list(&target) {
        Ok(names) => Ok(names.is_empty()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(error) => Err(StoreError::io("list", &target)(error).into()),
    }
}

/// The package root bound at genesis, from `genesis.json`.
pub fn bound_package_root(storage: &dyn Storage, dir: &WorldDir) -> Result<Hash, WorldError> {
    let genesis: GenesisFile = read_json(storage, &dir.genesis())?;
    Hash::from_hex(&genesis.package_root).ok_or_else(|| {
        WorldError::Store(StoreError::Corrupt {
            path: dir.genesis(),
            offset: 0,
            what: "package_root is not 64 hex characters".into(),
        })
    })
}

/// The package root that runs now: the last upgrade's, else genesis's.
pub fn current_package_root(storage: &dyn Storage, dir: &WorldDir) -> Result<Hash, WorldError> {
    let genesis = bound_package_root(storage, dir)?;
    let lineage = crate::lineage::read_lineage(storage, dir)?;
    Ok(lineage.current_root(genesis))
}

/// The package the world runs now, from its own copy on disk: `package/`
/// (bound at genesis) or, after an upgrade, `packages/<root>/`; its root is
/// checked against the one recorded. What a command uses when no package is
/// given.
pub fn bound_package(dir: &WorldDir) -> Result<Package, WorldError> {
    let genesis = bound_package_root(&DiskStorage, dir)?;
    let current = current_package_root(&DiskStorage, dir)?;
    let path = if current == genesis {
        dir.package()
    } else {
        dir.package_store(&current.to_hex())
    };
    crate::lineage::load_stored(&path, &current.to_hex())
}

/// Refuses a package whose root is not the one the world runs now (bound
/// at genesis, or by the last upgrade).
pub fn check_binding(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
) -> Result<(), WorldError> {
    let bound = current_package_root(storage, dir)?;
    if bound != package.root {
        return Err(WorldError::PackageMismatch {
            bound,
            given: package.root,
        });
    }
    Ok(())
}
