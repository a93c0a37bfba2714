//! Helpers shared by the integration tests: temporary package directories
//! built with std only, a valid manifest and the smallest module ABI v1 accepts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use everarcade_protocol::{Domain, Hash};

/// A valid `world.toml`; `memory_bytes` is two pages.
pub const MANIFEST: &str = r#"name = "minimal"
version = "1.2.3"
abi = "ea-world/1"
module = "world.wasm"
tick_rate_hz = 20

[limits]
fuel_per_input = 200000
fuel_per_tick = 50000000
memory_bytes = 131072
inputs_per_tick = 1024
payload_bytes = 256
key_bytes = 64
value_bytes = 65536
events_per_input = 16
event_bytes = 256
"#;

/// The smallest module ABI v1 accepts: a fixed one-page memory and the two
/// required functions.
pub const MINIMAL_WAT: &str = r#"(module
  (memory (export "memory") 1 1)
  (func (export "ea_alloc") (param i32) (result i32) i32.const 0)
  (func (export "ea_input") (param i32 i32) (result i32) i32.const 0))"#;

/// `MANIFEST` with `from` replaced by `to`; panics if `from` is absent, so a
/// typo cannot silently leave the manifest valid.
pub fn manifest_with(from: &str, to: &str) -> String {
    assert!(MANIFEST.contains(from), "manifest has no {from:?}");
    MANIFEST.replacen(from, to, 1)
}

/// Compiles WAT text.
pub fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|error| panic!("bad WAT in test: {error}\n{wat}"))
}

/// A directory under `std::env::temp_dir()` (`tempfile`'s, unique to the call),
/// removed with everything in it on drop.
pub struct TempDir {
    dir: tempfile::TempDir,
}

impl TempDir {
    /// Creates an empty directory; `label` only helps a reader find it.
    pub fn new(label: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("everarcade-package-{label}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"));
        TempDir { dir }
    }

    /// A directory holding `files`, created in the order given.
    pub fn with_files(label: &str, files: &[(&str, &[u8])]) -> TempDir {
        let dir = TempDir::new(label);
        for (relative, bytes) in files {
            dir.write(relative, bytes);
        }
        dir
    }

    /// A valid package: `MANIFEST`, `MINIMAL_WAT` and `extra` files.
    pub fn valid_package(label: &str, extra: &[(&str, &[u8])]) -> TempDir {
        let module = wasm(MINIMAL_WAT);
        let mut files = vec![
            ("world.toml", MANIFEST.as_bytes()),
            ("world.wasm", module.as_slice()),
        ];
        files.extend_from_slice(extra);
        TempDir::with_files(label, &files)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path()` joined with a `/`-separated relative path.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `bytes` at `relative`, creating parent directories.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// The package root straight from the formula in `src/listing.rs`, with the
/// preimage assembled byte by byte:
/// `H(Package, count u32 || for each file sorted by path bytes:
/// path_len u32 || path || length u64 || H(PackageFile, contents))`.
pub fn reference_root(files: &[(&str, &[u8])]) -> Hash {
    let mut sorted = files.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut preimage = Vec::new();
    preimage.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for (path, contents) in sorted {
        preimage.extend_from_slice(&(path.len() as u32).to_le_bytes());
        preimage.extend_from_slice(path.as_bytes());
        preimage.extend_from_slice(&(contents.len() as u64).to_le_bytes());
        preimage.extend_from_slice(&Domain::PackageFile.hash(contents).0);
    }
    Domain::Package.hash(&preimage)
}

/// Every regular file under `dir` with its `/`-separated relative path,
/// found by a plain recursive walk independent of the crate's.
pub fn disk_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type().unwrap().is_dir() {
                pending.push((entry.path(), relative));
            } else {
                found.push((relative, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    found
}

/// `reference_root` over owned pairs.
pub fn reference_root_owned(files: &[(String, Vec<u8>)]) -> Hash {
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    reference_root(&borrowed)
}
