//! World packages: a directory holding `world.toml` and a WebAssembly module.
//!
//! This crate reads a package from disk, validates its manifest and checks the
//! module against World ABI v1 (imports only from `ea` with exact signatures,
//! required exports, a declared memory maximum within the manifest's limit, no
//! feature outside the determinism profile). It computes the package root over
//! every file.
//!
//! It is *not* responsible for compiling or running the module (that is
//! `everarcade-engine`) and it never writes to disk.
//!
//! Architecture invariant: the package root depends only on the relative paths
//! and bytes of the files, never on timestamps, permissions or directory order.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod error;
mod listing;
mod manifest;
mod module;

pub use error::PackageError;
pub use listing::{PackageFile, package_root};
pub use manifest::{ABI_V1, Manifest};
pub use module::{Exports, WASM_PAGE_BYTES, memory_maximum_bytes, validate_module};

use std::path::{Path, PathBuf};

use everarcade_protocol::{Hash, Profile};

/// The manifest's file name inside a package directory.
pub const MANIFEST_FILE: &str = "world.toml";

/// A package that loaded and validated.
#[derive(Clone, Debug)]
pub struct Package {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The module bytes.
    pub wasm: Vec<u8>,
    /// Which optional exports the module has.
    pub exports: Exports,
    /// Every file, sorted by path, with its length and hash.
    pub files: Vec<PackageFile>,
    /// The package root.
    pub root: Hash,
}

impl Package {
    /// Reads and validates the package in `dir`.
    pub fn load(dir: &Path) -> Result<Package, PackageError> {
        let metadata = std::fs::symlink_metadata(dir).map_err(|source| PackageError::NotFound {
            path: dir.to_path_buf(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(PackageError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let (files, contents) = listing::read_files(dir)?;
        let root = package_root(&files);
        let manifest_text =
            contents
                .get(MANIFEST_FILE)
                .ok_or_else(|| PackageError::ManifestMissing {
                    path: dir.join(MANIFEST_FILE),
                })?;
        let manifest = Manifest::parse(manifest_text)?;
        let wasm = contents
            .get(manifest.module.as_str())
            .ok_or_else(|| PackageError::ModuleMissing {
                path: dir.join(&manifest.module),
            })?
            .clone();
        let exports = validate_module(&wasm, &manifest.limits)?;
        Ok(Package {
            dir: dir.to_path_buf(),
            manifest,
            wasm,
            exports,
            files,
            root,
        })
    }

    /// The determinism profile this package runs under.
    pub fn profile(&self) -> Profile {
        Profile::with_signatures(self.manifest.limits, self.manifest.signatures)
            .with_bot_seeds(self.manifest.bot_seeds)
    }
}
