//! The backup folder's own files: `manifest.json` (what the backup holds,
//! signed), `manifest.sig` and `SHA256SUMS`. docs/OPERATIONS.md ("Backup and
//! restore") describes the folder; this module is the source of truth for
//! its fields.
//!
//! ```text
//! <backup>/
//!   manifest.json        this module's [`Manifest`], pretty JSON + newline
//!   manifest.sig         128 hex digits + newline: the operator's ed25519
//!                        signature, context "ea/operator/backup/v1", over
//!                        BLAKE3(manifest.json's exact bytes)
//!   SHA256SUMS           `sha256sum -c` format, every other file
//!   genesis.json
//!   checkpoints/<tick:020>.ckpt     the newest checkpoint (none for a world without one)
//!   signatures/<tick:020>.ckpt.sig  its operator signature, if it has one
//!   journal/<index:010>.seg         every segment, the last cut at the durable end
//!   package/…                       the package the world runs now
//!   lineage.json, packages/<root>/… the upgrade transitions and earlier packages, if any
//!   operator/keys.json              the operator key history (public keys only)
//! ```
//!
//! Every data file's path in the backup is its path in the world directory,
//! so restoring is copying each listed file to the same relative path.

use serde::{Deserialize, Serialize};

use everarcade_protocol::Hash;
use everarcade_store::layout::{parse_checkpoint_name, parse_segment_name, segment_name};

/// Version of `manifest.json`.
pub const BACKUP_FORMAT: u32 = 1;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature's file name.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// The SHA-256 list's file name.
pub const SHA256SUMS_FILE: &str = "SHA256SUMS";
/// `genesis.json` in the backup.
pub const GENESIS_FILE: &str = "genesis.json";
/// The upgrade transitions in the backup.
pub const LINEAGE_FILE: &str = "lineage.json";
/// The key history in the backup.
pub const KEY_HISTORY_FILE: &str = "operator/keys.json";
/// Largest `manifest.json` read (a package has at most a few thousand files).
pub const MANIFEST_BYTES_MAX: u64 = 16 << 20;
/// Largest `SHA256SUMS` or `manifest.sig` read.
pub const SIDE_FILE_BYTES_MAX: u64 = 16 << 20;
/// Most files a manifest may list.
pub const MANIFEST_FILES_MAX: usize = 1_000_000;

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`BACKUP_FORMAT`].
    pub format: u32,
    /// The world id.
    pub world: String,
    /// When the backup was written, RFC 3339 UTC (wall clock; feeds no root).
    pub created_at: String,
    /// The host that wrote it.
    pub host: String,
    /// The runtime version that wrote it.
    pub runtime_version: String,
    /// The protocol version.
    pub protocol_version: u32,
    /// The package root bound at genesis, hex.
    pub package_root: String,
    /// `C(0)`, hex.
    pub genesis_root: String,
    /// The checkpoint the restore starts from; `None`: replay from genesis.
    pub checkpoint: Option<ManifestCheckpoint>,
    /// The last executed tick in the backed-up journal and its roots.
    pub head: ManifestHead,
    /// The journal copied.
    pub journal: ManifestJournal,
    /// The operator key that signed `manifest.sig`, hex.
    pub operator_public_key: String,
    /// Every data file (not the manifest, its signature or `SHA256SUMS`),
    /// sorted by path.
    pub files: Vec<ManifestFile>,
}

/// The checkpoint in the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestCheckpoint {
    /// Its path in the backup, `checkpoints/<tick:020>.ckpt`.
    pub file: String,
    /// Its tick.
    pub tick: u64,
    /// Plain BLAKE3 of the file, hex (also in `files`).
    pub blake3: String,
    /// `C(tick)`, hex.
    pub continuity_root: String,
    /// The state root at `tick`, hex.
    pub state_root: String,
}

/// The head of the backed-up journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestHead {
    /// The last executed tick (0: genesis only).
    pub tick: u64,
    /// Its input root, hex.
    pub input_root: String,
    /// Its receipt root, hex.
    pub receipt_root: String,
    /// Its state root, hex.
    pub state_root: String,
    /// `C(tick)`, hex.
    pub continuity_root: String,
}

/// The journal in the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestJournal {
    /// Segments copied: `journal/0000000001.seg` … this index.
    pub segments: u64,
    /// Bytes of the last segment copied (the durable end).
    pub last_segment_bytes: u64,
    /// Bytes of all segments.
    pub bytes: u64,
    /// Records in all segments.
    pub records: u64,
    /// Acknowledged inputs after the head tick (they run in the next tick).
    pub pending_inputs: u64,
}

/// One data file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative path with `/` separators.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// Plain BLAKE3 of the contents, hex.
    pub blake3: String,
}

/// The manifest as bytes: pretty JSON and a final newline. These exact bytes
/// are hashed and signed.
pub fn encode_manifest(manifest: &Manifest) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
    bytes.push(b'\n');
    bytes
}

/// The digest the operator signs: plain BLAKE3 of the manifest's bytes.
pub fn manifest_digest(bytes: &[u8]) -> Hash {
    Hash(*blake3::hash(bytes).as_bytes())
}

/// Whether `text` is a hash as this crate writes it: 64 lowercase hex digits.
pub fn is_hash_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Which part of the world a backup path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// `genesis.json`.
    Genesis,
    /// `checkpoints/<tick:020>.ckpt`.
    Checkpoint(u64),
    /// `journal/<index:010>.seg`.
    Segment(u64),
    /// `package/…`.
    Package,
    /// `operator/keys.json`.
    KeyHistory,
    /// `signatures/<tick:020>.ckpt.sig`.
    CheckpointSignature(u64),
    /// `lineage.json`.
    Lineage,
    /// `packages/<root>/…`: a package an upgrade replaced.
    StoredPackage,
}

/// Why a path cannot be in a backup.
pub type PathRefusal = String;

/// Checks a backup path: relative, `/`-separated, no empty, `.` or `..`
/// component, nothing a `SHA256SUMS` line cannot carry (newline, backslash,
/// control characters), and one of the roles above. Restore writes only
/// such paths, so a manifest can never name `operator/key` or a path
/// outside the world directory.
pub fn classify(path: &str) -> Result<FileRole, PathRefusal> {
    if path.is_empty() || path.len() > 4096 {
        return Err("empty or longer than 4096 bytes".into());
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("holds a control character or a backslash".into());
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err("is absolute or has an empty, `.` or `..` component".into());
    }
    match parts.as_slice() {
        [GENESIS_FILE] => Ok(FileRole::Genesis),
        [LINEAGE_FILE] => Ok(FileRole::Lineage),
        ["operator", "keys.json"] => Ok(FileRole::KeyHistory),
        ["signatures", name] => name
            .strip_suffix(".sig")
            .and_then(parse_checkpoint_name)
            .map(FileRole::CheckpointSignature)
            .ok_or_else(|| "is not a checkpoint signature file name".into()),
        ["packages", root, _, ..] if is_hash_hex(root) => Ok(FileRole::StoredPackage),
        ["checkpoints", name] => parse_checkpoint_name(name)
            .map(FileRole::Checkpoint)
            .ok_or_else(|| "is not a checkpoint file name".into()),
        ["journal", name] => parse_segment_name(name)
            .filter(|index| *index >= 1 && segment_name(*index) == *name)
            .map(FileRole::Segment)
            .ok_or_else(|| "is not a journal segment name".into()),
        ["package", _, ..] => Ok(FileRole::Package),
        _ => Err("is not a file a backup holds (genesis.json, checkpoints/, signatures/, journal/, package/, lineage.json, packages/, operator/keys.json)".into()),
    }
}

/// `SHA256SUMS`: one `<sha256 hex>  <path>` line per file, sorted by path.
pub fn render_sha256sums(entries: &[(String, [u8; 32])]) -> String {
    let mut sorted: Vec<&(String, [u8; 32])> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (path, digest) in sorted {
        out.push_str(&hex::encode(digest));
        out.push_str("  ");
        out.push_str(path);
        out.push('\n');
    }
    out
}

/// Parses `SHA256SUMS` (text `  ` or binary ` *` separators, as `sha256sum`
/// writes them); returns `(line number, path, digest)` per line.
pub fn parse_sha256sums(text: &str) -> Result<Vec<(usize, String, [u8; 32])>, String> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let (digest, path) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(|| format!("line {number} is not `<sha256>  <path>`"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digest, &mut bytes)
            .map_err(|_| format!("line {number}: {digest:?} is not 64 hex digits"))?;
        lines.push((number, path.to_string(), bytes));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_world_files_are_backup_paths() {
        assert_eq!(classify("genesis.json"), Ok(FileRole::Genesis));
        assert_eq!(classify("journal/0000000002.seg"), Ok(FileRole::Segment(2)));
        assert_eq!(
            classify("checkpoints/00000000000000001000.ckpt"),
            Ok(FileRole::Checkpoint(1000))
        );
        assert_eq!(classify("package/world.wasm"), Ok(FileRole::Package));
        assert_eq!(classify("package/assets/a.png"), Ok(FileRole::Package));
        assert_eq!(classify("operator/keys.json"), Ok(FileRole::KeyHistory));
        assert_eq!(classify("lineage.json"), Ok(FileRole::Lineage));
        assert_eq!(
            classify("signatures/00000000000000001000.ckpt.sig"),
            Ok(FileRole::CheckpointSignature(1000))
        );
        let stored = format!("packages/{}/world.wasm", "ab".repeat(32));
        assert_eq!(classify(&stored), Ok(FileRole::StoredPackage));
        for bad in [
            "",
            "/etc/passwd",
            "package/../operator/key",
            "operator/key",
            "package",
            "package//x",
            "journal/7.seg",
            "journal/0000000000.seg",
            "status.json",
            "world.lock",
            "package/a\nb",
            "package/a\\b",
            "./genesis.json",
            "signatures/x.sig",
            "packages/notahash/world.wasm",
            "upgrade/x",
            "incidents/x",
        ] {
            assert!(classify(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn sha256sums_round_trip() {
        let entries = vec![("b".to_string(), [2u8; 32]), ("a/c".to_string(), [1u8; 32])];
        let text = render_sha256sums(&entries);
        assert!(text.starts_with(&format!("{}  a/c\n", hex::encode([1u8; 32]))));
        let parsed = parse_sha256sums(&text).unwrap();
        assert_eq!(parsed[1], (2, "b".to_string(), [2u8; 32]));
        assert!(parse_sha256sums("nothex  a\n").is_err());
        assert!(parse_sha256sums("no separator\n").is_err());
    }
}
