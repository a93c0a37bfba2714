//! The small JSON files of a world: `genesis.json` (written once, at
//! creation) and `status.json` (rewritten atomically as the world changes),
//! and moving suspect files to `quarantine/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::layout::WorldDir;
use crate::storage::{Storage, write_atomic};

/// Version of the `genesis.json` and `status.json` formats.
pub const META_FORMAT: u32 = 1;

/// `genesis.json`: what the world is. The journal's genesis record holds the
/// same facts under its checksum; `verify` checks that they agree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// Always [`META_FORMAT`].
    pub format: u32,
    /// The world id.
    pub world: String,
    /// The package root bound at genesis (hex).
    pub package_root: String,
    /// The package's profile hash (hex).
    pub profile_hash: String,
    /// `C(0)` (hex).
    pub genesis_root: String,
    /// The state root after `ea_genesis` (hex).
    pub state_root: String,
    /// The protocol version.
    pub protocol_version: u32,
    /// The runtime version that created the world.
    pub runtime_version: String,
}

/// `status.json`: the world as last left by a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusFile {
    /// Always [`META_FORMAT`].
    pub format: u32,
    /// `stopped` or `running`.
    pub state: String,
    /// The process that wrote it, if it is running.
    pub pid: Option<u32>,
    /// The last executed tick (written as `head_tick`; `height`, its name
    /// before format 1's field was renamed, is read too).
    #[serde(rename = "head_tick", alias = "height")]
    pub head_tick: u64,
    /// The roots at `head_tick` (hex).
    pub state_root: String,
    /// Input root at `head_tick` (hex).
    pub input_root: String,
    /// Receipt root at `head_tick` (hex).
    pub receipt_root: String,
    /// `C(head_tick)` (hex).
    pub continuity_root: String,
    /// Whether admission is open.
    pub admission: String,
    /// Addresses the node listens on.
    pub addresses: Vec<String>,
    /// The newest checkpoint's tick, if any.
    pub checkpoint_tick: Option<u64>,
    /// The certificate chain (PEM) the node serves TLS with, absolute, when
    /// it serves TLS: the command line's tools trust it to reach the node.
    /// Absent for plain HTTP (and in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
}

/// Reads and parses a JSON file; a parse failure names the file.
pub fn read_json<T: for<'de> Deserialize<'de>>(
    storage: &dyn Storage,
    path: &Path,
) -> Result<T, StoreError> {
    let bytes = storage.read(path).map_err(StoreError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: error.column() as u64,
        what: format!("not valid JSON for this file: {error}"),
    })
}

/// Writes a JSON file atomically.
pub fn write_json<T: Serialize>(
    storage: &dyn Storage,
    path: &Path,
    value: &T,
) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("these types always serialize");
    bytes.push(b'\n');
    write_atomic(storage, path, &bytes).map_err(StoreError::io("write", path))
}

/// Moves `path` into `quarantine/` under a name that says where it came from
/// and does not overwrite anything already there; returns the new path.
pub fn quarantine(
    storage: &dyn Storage,
    world: &WorldDir,
    path: &Path,
) -> Result<PathBuf, StoreError> {
    let dir = world.quarantine();
    storage
        .create_dir_all(&dir)
        .map_err(StoreError::io("create", &dir))?;
    let target = free_name(storage, &dir, &origin_name(world, path));
    storage
        .rename(path, &target)
        .map_err(StoreError::io("move to quarantine", path))?;
    for changed in [dir.as_path(), path.parent().unwrap_or(world.path())] {
        storage
            .sync_dir(changed)
            .map_err(StoreError::io("fsync the directory", changed))?;
    }
    Ok(target)
}

/// Writes `bytes` (e.g. a torn tail about to be truncated) into `quarantine/`
/// under a name derived from `origin` and `label`; returns the path.
pub fn quarantine_bytes(
    storage: &dyn Storage,
    world: &WorldDir,
    origin: &Path,
    label: &str,
    bytes: &[u8],
) -> Result<PathBuf, StoreError> {
    let dir = world.quarantine();
    storage
        .create_dir_all(&dir)
        .map_err(StoreError::io("create", &dir))?;
    let name = format!("{}.{label}", origin_name(world, origin));
    let target = free_name(storage, &dir, &name);
    write_atomic(storage, &target, bytes).map_err(StoreError::io("write", &target))?;
    Ok(target)
}

/// `journal/0000000003.seg` → `journal-0000000003.seg`.
fn origin_name(world: &WorldDir, path: &Path) -> String {
    let relative = path.strip_prefix(world.path()).unwrap_or(path);
    relative
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "-")
}

/// `dir/name` if nothing is there, else `dir/name.2`, `dir/name.3`, …: a
/// name that moves nothing aside.
pub fn free_name(storage: &dyn Storage, dir: &Path, name: &str) -> PathBuf {
    let mut candidate = dir.join(name);
    let mut n = 1;
    while storage.exists(&candidate) {
        n += 1;
        candidate = dir.join(format!("{name}.{n}"));
    }
    candidate
}
