//! `release-manifest.json`: what a release holds, file by file.
//!
//! One JSON object (pretty-printed, fields in the order below, a final
//! `\n`), format `everarcade-release/1`:
//!
//! | field | meaning |
//! |---|---|
//! | `format` | `everarcade-release/1` |
//! | `runtime_version` | what the bundled binary's `--version` prints |
//! | `protocol_version` | the protocol version it speaks (docs/PROTOCOL.md) |
//! | `target` | the target triple it was built for |
//! | `rustc` | `rustc -vV`'s first line |
//! | `git_commit`, `git_dirty` | the source commit and whether tracked files differed from it; `null` outside a git checkout |
//! | `source_date_epoch` | the mtime of every archive entry, seconds since 1970 |
//! | `archive` | the tarball's file name, beside the manifest |
//! | `archive_prefix` | the one top-level directory inside the tarball |
//! | `binary` | the runtime binary's path inside `archive_prefix` |
//! | `packages` | bundled world packages: `name`, `version`, `path` (inside `archive_prefix`), `root` (the package root, BLAKE3 hex) |
//! | `files` | every regular file of the tarball but the manifest itself, sorted by `path`: `path`, `size` (bytes), `sha256` (hex), `mode` (permission bits as a JSON number: 493 is 0o755, 420 is 0o644) |
//!
//! The same bytes are in the tarball as `<archive_prefix>/release-manifest.json`.

use serde::{Deserialize, Serialize};

/// The manifest's format string.
pub const MANIFEST_FORMAT: &str = "everarcade-release/1";
/// The manifest's file name, beside the tarball and inside it.
pub const MANIFEST_FILE: &str = "release-manifest.json";
/// The name of the runtime, the first part of the tarball's name.
pub const RUNTIME_NAME: &str = "everarcade-runtime";

/// The release manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The bundled binary's version.
    pub runtime_version: String,
    /// The protocol version the binary speaks.
    pub protocol_version: u32,
    /// The target triple.
    pub target: String,
    /// The compiler, as `rustc -vV` names itself.
    pub rustc: String,
    /// The source commit, when built from a git checkout.
    pub git_commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub git_dirty: Option<bool>,
    /// The mtime of every archive entry, seconds since 1970.
    pub source_date_epoch: u64,
    /// The tarball's file name.
    pub archive: String,
    /// The top-level directory inside the tarball.
    pub archive_prefix: String,
    /// The runtime binary's path inside the prefix.
    pub binary: String,
    /// The bundled world packages.
    pub packages: Vec<BundledPackage>,
    /// Every file but the manifest, sorted by path.
    pub files: Vec<FileEntry>,
}

/// A world package inside the release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledPackage {
    /// The manifest's `name`.
    pub name: String,
    /// The manifest's `version`.
    pub version: String,
    /// The package directory inside the archive prefix.
    pub path: String,
    /// The package root, lowercase hex.
    pub root: String,
}

/// One regular file inside the release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the archive prefix, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
    /// Permission bits (0o644 or 0o755).
    pub mode: u32,
}

impl ReleaseManifest {
    /// The canonical bytes: pretty JSON and a final line break.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        bytes.push(b'\n');
        bytes
    }

    /// The tarball's name for a version and target.
    pub fn archive_name(version: &str, target: &str) -> String {
        format!("{}.tar.gz", Self::archive_prefix_for(version, target))
    }

    /// The top-level directory inside the tarball for a version and target.
    pub fn archive_prefix_for(version: &str, target: &str) -> String {
        format!("{RUNTIME_NAME}-{version}-{target}")
    }
}
