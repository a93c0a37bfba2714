//! Package binding: a world runs only the package bound at its genesis. The
//! bound copy lives in `package/`; every command checks the package it is
//! given against the root recorded at genesis.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use everarcade_package::Package;
use everarcade_protocol::Hash;
use everarcade_store::meta::{GenesisFile, read_json};
use everarcade_store::storage::{DIRECTORY_MODE, FILE_MODE};
use everarcade_store::{DiskStorage, StoreError, WorldDir};

use crate::error::WorldError;

/// Copies `package` into the world's `package/` (0700 directories, 0600
/// files, synced) and checks the copy has the same root. If a bound copy is
/// already there, only checks it.
pub fn bind_package(dir: &WorldDir, package: &Package) -> Result<(), WorldError> {
    let target = dir.package();
    let io = |op: &'static str, path: &Path| StoreError::io(op, path.to_path_buf());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(&target)
        .map_err(io("create", &target))?;
    let empty = fs::read_dir(&target)
        .map_err(io("list", &target))?
        .next()
        .is_none();
    if empty {
        for file in &package.files {
            let source = package.dir.join(&file.path);
            let destination = target.join(&file.path);
            if let Some(parent) = destination.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIRECTORY_MODE)
                    .create(parent)
                    .map_err(io("create", parent))?;
            }
            let bytes = fs::read(&source).map_err(io("read", &source))?;
            let mut out = fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(FILE_MODE)
                .open(&destination)
                .map_err(io("create", &destination))?;
            out.write_all(&bytes).map_err(io("write", &destination))?;
            out.sync_all().map_err(io("fsync", &destination))?;
        }
        fs::File::open(&target)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync the directory", &target))?;
    }
    let bound = Package::load(&target).map_err(|error| WorldError::Lineage {
        path: target.clone(),
        offset: 0,
        what: format!("the bound package copy does not load: {error}"),
    })?;
    if bound.root != package.root {
        return Err(WorldError::PackageMismatch {
            bound: bound.root,
            given: package.root,
        });
    }
    Ok(())
}

/// The package root bound at genesis, from `genesis.json`.
pub fn bound_package_root(dir: &WorldDir) -> Result<Hash, WorldError> {
    let genesis: GenesisFile = read_json(&DiskStorage, &dir.genesis())?;
    Hash::from_hex(&genesis.package_root).ok_or_else(|| {
        WorldError::Store(StoreError::Corrupt {
            path: dir.genesis(),
            offset: 0,
            what: "package_root is not 64 hex characters".into(),
        })
    })
}

/// The package root that runs now: the last upgrade's, else genesis's.
pub fn current_package_root(dir: &WorldDir) -> Result<Hash, WorldError> {
    let genesis = bound_package_root(dir)?;
    let lineage = crate::lineage::read_lineage(&DiskStorage, dir)?;
    Ok(lineage.current_root(genesis))
}

/// The package the world runs now, from its own copy: `package/` (bound at
/// genesis) or, after an upgrade, `packages/<root>/`; its root is checked
/// against the one recorded. What a command uses when no package is given.
pub fn bound_package(dir: &WorldDir) -> Result<Package, WorldError> {
    let genesis = bound_package_root(dir)?;
    let current = current_package_root(dir)?;
    let path = if current == genesis {
        dir.package()
    } else {
        dir.package_store(&current.to_hex())
    };
    crate::lineage::load_stored(&path, &current.to_hex())
}

/// Refuses a package whose root is not the one the world runs now (bound
/// at genesis, or by the last upgrade).
pub fn check_binding(dir: &WorldDir, package: &Package) -> Result<(), WorldError> {
    let bound = current_package_root(dir)?;
    if bound != package.root {
        return Err(WorldError::PackageMismatch {
            bound,
            given: package.root,
        });
    }
    Ok(())
}
