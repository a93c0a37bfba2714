//! Where an amnesia node can be found. An amnesia node writes nothing under
//! its runtime root (no world lock, no `status.json`), so `status`, `stop`
//! and `restart` find it here instead: in the OS runtime directory
//! (`$XDG_RUNTIME_DIR/everarcade/`, else `/tmp/everarcade-<uid>/`, 0700 and
//! owned by the user), one lock and one record per runtime root and world.
//!
//! The lock is the world lock's `flock` ([`WorldLock`]): held for the node's
//! life and dropped by the kernel however the node dies, so a record whose
//! lock nobody holds is stale and never trusted. The record
//! ([`AmnesiaRecord`]) is written once the listener is bound and removed on
//! a clean stop.
//!
//! Architecture invariant: nothing here feeds a root or is read by a world;
//! it only tells tools where a process listens.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use everarcade_protocol::WorldId;
use everarcade_store::meta::{read_json, write_json};
use everarcade_store::{DiskStorage, LockState, StoreError, WorldLock};
use serde::{Deserialize, Serialize};

/// The format of [`AmnesiaRecord`].
pub const REGISTRY_FORMAT: u32 = 1;

/// The record of a running amnesia node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmnesiaRecord {
    /// Always [`REGISTRY_FORMAT`].
    pub format: u32,
    /// The world id.
    pub world: String,
    /// The runtime root as the node was given it, absolute.
    pub runtime_root: String,
    /// The node's process id.
    pub pid: u32,
    /// The addresses it listens on (`host:port`).
    pub addresses: Vec<String>,
    /// The certificate chain it serves TLS with (absolute), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
}

/// The registry's paths for one runtime root and world.
#[derive(Clone, Debug)]
pub struct RegistryPaths {
    /// `<key>.lock`: held by the running node.
    pub lock: PathBuf,
    /// `<key>.json`: the [`AmnesiaRecord`].
    pub record: PathBuf,
    /// `<key>.log`: where `start` sends the detached node's output.
    pub log: PathBuf,
}

/// The registry directory: `$XDG_RUNTIME_DIR/everarcade`, else
/// `/tmp/everarcade-<uid>`.
pub fn registry_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("everarcade"),
        None => {
            std::env::temp_dir().join(format!("everarcade-{}", rustix::process::getuid().as_raw()))
        }
    }
}

/// The paths for `world` under `runtime_root` (made absolute, so a relative
/// root names the same world from any directory it was given from).
pub fn paths(runtime_root: &Path, world: &WorldId) -> RegistryPaths {
    let root = std::path::absolute(runtime_root).unwrap_or_else(|_| runtime_root.to_path_buf());
    let digest = blake3::hash(root.as_os_str().as_encoded_bytes());
    let key = format!("{}-{}", world, &digest.to_hex()[..16]);
    let dir = registry_dir();
    RegistryPaths {
        lock: dir.join(format!("{key}.lock")),
        record: dir.join(format!("{key}.json")),
        log: dir.join(format!("{key}.log")),
    }
}

/// Creates the registry directory (0700) and refuses one owned by another
/// user or open to others.
pub fn ensure_registry_dir() -> Result<PathBuf, StoreError> {
    let dir = registry_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(StoreError::io("create", &dir))?;
    let metadata = std::fs::metadata(&dir).map_err(StoreError::io("stat", &dir))?;
    let uid = rustix::process::getuid().as_raw();
    if metadata.uid() != uid || metadata.permissions().mode() & 0o077 != 0 {
        return Err(StoreError::Corrupt {
            path: dir,
            offset: 0,
            what: format!(
                "the node registry must be a directory of uid {uid} with mode 0700 \
                 (it is uid {}, mode {:o}); remove it or set XDG_RUNTIME_DIR",
                metadata.uid(),
                metadata.permissions().mode() & 0o777
            ),
        });
    }
    Ok(dir)
}

/// An amnesia node's place in the registry: its lock, held until drop,
/// when the record is removed too.
#[derive(Debug)]
pub struct Registration {
    paths: RegistryPaths,
    runtime_root: String,
    world: String,
    _lock: WorldLock,
}

impl Registration {
    /// Takes the registry lock of `world` under `runtime_root`; a live
    /// holder is [`StoreError::Locked`] naming its pid.
    pub fn acquire(runtime_root: &Path, world: &WorldId) -> Result<Registration, StoreError> {
        ensure_registry_dir()?;
        let paths = paths(runtime_root, world);
        let lock = WorldLock::acquire(&paths.lock)?;
        let root = std::path::absolute(runtime_root).unwrap_or_else(|_| runtime_root.to_path_buf());
        Ok(Registration {
            paths,
            runtime_root: root.display().to_string(),
            world: world.to_string(),
            _lock: lock,
        })
    }

    /// Records where the node listens.
    pub fn publish(
        &self,
        addresses: Vec<String>,
        tls_cert: Option<String>,
    ) -> Result<(), StoreError> {
        let record = AmnesiaRecord {
            format: REGISTRY_FORMAT,
            world: self.world.clone(),
            runtime_root: self.runtime_root.clone(),
            pid: std::process::id(),
            addresses,
            tls_cert,
        };
        write_json(&DiskStorage, &self.paths.record, &record)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The lock is released right after (field drop); a leftover record
        // would be ignored anyway, as its lock is free.
        let _ = std::fs::remove_file(&self.paths.record);
    }
}

/// The running amnesia node of `world` under `runtime_root`, if one runs:
/// its lock is held and its record names the holder's pid.
pub fn find(runtime_root: &Path, world: &WorldId) -> Result<Option<AmnesiaRecord>, StoreError> {
    let paths = paths(runtime_root, world);
    if !paths.lock.exists() {
        return Ok(None);
    }
    let LockState::Held { pid } = WorldLock::probe(&paths.lock)? else {
        return Ok(None);
    };
    let record = read_json::<AmnesiaRecord>(&DiskStorage, &paths.record)
        .ok()
        .filter(|record| record.pid == pid)
        .unwrap_or(AmnesiaRecord {
            // Holding the lock but not yet listening.
            format: REGISTRY_FORMAT,
            world: world.to_string(),
            runtime_root: String::new(),
            pid,
            addresses: Vec::new(),
            tls_cert: None,
        });
    Ok(Some(record))
}
