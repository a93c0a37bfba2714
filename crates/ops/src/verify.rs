//! Verifying a backup folder before anything is restored from it, in this
//! order, each failure with its own code:
//!
//! 1. `manifest.json`, `manifest.sig` and `SHA256SUMS` are present
//!    (`backup_incomplete`);
//! 2. the manifest parses, is format 1, and is consistent: safe paths of
//!    world files only, sorted and unique; the checkpoint, the journal
//!    segments 1..n and their sizes, genesis and the key history listed
//!    (`backup_manifest_malformed`);
//! 3. the signature: by the manifest's operator key over BLAKE3 of the
//!    manifest's exact bytes; that key in the backup's key history (itself
//!    hash-checked, every rotation endorsed by the key before it), within
//!    its tick range at the head, and, when trusted keys are given, one of
//!    them at or before it in that history (`backup_signature_invalid`);
//! 4. every listed file exists (`backup_incomplete`) and has the size and
//!    BLAKE3 hash the manifest records (`backup_file_changed`, naming it);
//! 5. every line of `SHA256SUMS` matches, and it covers every file
//!    (`backup_checksum_mismatch`).
//!
//! Files in the folder that the manifest does not list are reported, never
//! restored.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use everarcade_protocol::{Hash, WorldId};
use everarcade_store::keys::{
    KeyHistory, Signed, parse_public_key, parse_signature, verify_signature,
};
use everarcade_store::layout::checkpoint_name;

use crate::error::OpsError;
use crate::files::hash_file;
use crate::manifest::{
    BACKUP_FORMAT, FileRole, KEY_HISTORY_FILE, MANIFEST_BYTES_MAX, MANIFEST_FILE,
    MANIFEST_FILES_MAX, Manifest, SHA256SUMS_FILE, SIDE_FILE_BYTES_MAX, SIGNATURE_FILE, classify,
    is_hash_hex, manifest_digest, parse_sha256sums,
};
use crate::operator::{check_history, signs_for};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Operator public keys the caller trusts (kept outside the backup:
    /// given by the operator, or the current world's key history on this
    /// host): the signing key must be one of them, or a later key of the
    /// backup's history (each rotation is endorsed by the key before it).
    /// Empty: the backup's own history is the only evidence, and the report
    /// says so.
    pub trusted_keys: Vec<[u8; 32]>,
}

/// A backup that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedBackup {
    /// The backup folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// BLAKE3 of the manifest's bytes.
    pub manifest_blake3: Hash,
    /// The key history it carries.
    pub history: KeyHistory,
    /// The trusted key the signer was reached from, hex (`None`: no
    /// trusted key was given).
    pub anchored_by: Option<String>,
    /// Files in the folder the manifest does not list (not restored).
    pub unlisted: Vec<String>,
    /// Bytes of the data files.
    pub data_bytes: u64,
}

/// Verifies the backup folder `dir`; see the module docs.
pub fn verify_backup(dir: &Path, options: &VerifyOptions) -> Result<VerifiedBackup, OpsError> {
    let incomplete = |what: String| OpsError::BackupIncomplete {
        dir: dir.to_path_buf(),
        what,
    };
    if !dir.is_dir() {
        return Err(incomplete("there is no backup folder there".into()));
    }
    let manifest_bytes = read_side_file(dir, MANIFEST_FILE, MANIFEST_BYTES_MAX)?;
    let signature_bytes = read_side_file(dir, SIGNATURE_FILE, SIDE_FILE_BYTES_MAX)?;
    let sums_bytes = read_side_file(dir, SHA256SUMS_FILE, SIDE_FILE_BYTES_MAX)?;
    let manifest = parse_manifest(dir, &manifest_bytes)?;
    let manifest_blake3 = manifest_digest(&manifest_bytes);
    let signer = check_signature(&manifest, &manifest_blake3, &signature_bytes)?;

    // The key history is needed for the signature, so its file is checked
    // first; the other files follow.
    let mut sha256: BTreeMap<String, [u8; 32]> = BTreeMap::new();
    let history_entry = manifest
        .files
        .iter()
        .find(|file| file.path == KEY_HISTORY_FILE)
        .expect("parse_manifest requires the key history");
    sha256.insert(
        KEY_HISTORY_FILE.to_string(),
        check_file(dir, history_entry)?,
    );
    let history_bytes = fs::read(dir.join(KEY_HISTORY_FILE))
        .map_err(OpsError::io("read", dir.join(KEY_HISTORY_FILE)))?;
    let history: KeyHistory =
        serde_json::from_slice(&history_bytes).map_err(|error| OpsError::SignatureInvalid {
            what: format!("the key history {KEY_HISTORY_FILE} does not parse: {error}"),
        })?;
    let anchored_by = check_signer(&manifest, &history, &signer, options)?;

    for file in &manifest.files {
        if file.path != KEY_HISTORY_FILE {
            sha256.insert(file.path.clone(), check_file(dir, file)?);
        }
    }
    sha256.insert(MANIFEST_FILE.into(), sha256_of(&manifest_bytes));
    sha256.insert(SIGNATURE_FILE.into(), sha256_of(&signature_bytes));
    check_sha256sums(&sums_bytes, &sha256)?;
    let listed: BTreeSet<String> = sha256.keys().cloned().collect();
    let mut unlisted = Vec::new();
    walk_unlisted(dir, "", &listed, &mut unlisted)?;
    Ok(VerifiedBackup {
        dir: dir.to_path_buf(),
        data_bytes: manifest.files.iter().map(|file| file.bytes).sum(),
        manifest,
        manifest_blake3,
        history,
        anchored_by,
        unlisted,
    })
}

/// Reads one of the folder's own files, bounded.
fn read_side_file(dir: &Path, name: &str, bytes_max: u64) -> Result<Vec<u8>, OpsError> {
    let path = dir.join(name);
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpsError::BackupIncomplete {
                dir: dir.to_path_buf(),
                what: format!("{name} is missing"),
            });
        }
        Err(error) => return Err(OpsError::io("open", &path)(error)),
    };
    let mut bytes = Vec::new();
    file.take(bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(OpsError::io("read", &path))?;
    if bytes.len() as u64 > bytes_max {
        let what = format!("{name} is larger than {bytes_max} bytes");
        return Err(match name {
            MANIFEST_FILE => OpsError::ManifestMalformed { path, what },
            SIGNATURE_FILE => OpsError::SignatureInvalid { what },
            _ => OpsError::ChecksumMismatch { what },
        });
    }
    Ok(bytes)
}

/// Parses and checks the manifest's own consistency.
pub fn parse_manifest(dir: &Path, bytes: &[u8]) -> Result<Manifest, OpsError> {
    let path = dir.join(MANIFEST_FILE);
    let malformed = |what: String| OpsError::ManifestMalformed {
        path: path.clone(),
        what,
    };
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|error| malformed(format!("{error}")))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(malformed(format!(
            "format {}; this runtime reads format {BACKUP_FORMAT}",
            manifest.format
        )));
    }
    WorldId::new(&manifest.world)
        .map_err(|error| malformed(format!("world {:?}: {error}", manifest.world)))?;
    let head = &manifest.head;
    let mut hashes = vec![
        ("package_root", &manifest.package_root),
        ("genesis_root", &manifest.genesis_root),
        ("operator_public_key", &manifest.operator_public_key),
        ("head.input_root", &head.input_root),
        ("head.receipt_root", &head.receipt_root),
        ("head.state_root", &head.state_root),
        ("head.continuity_root", &head.continuity_root),
    ];
    if let Some(checkpoint) = &manifest.checkpoint {
        hashes.push(("checkpoint.blake3", &checkpoint.blake3));
        hashes.push(("checkpoint.state_root", &checkpoint.state_root));
        hashes.push(("checkpoint.continuity_root", &checkpoint.continuity_root));
    }
    for file in &manifest.files {
        hashes.push(("files[].blake3", &file.blake3));
    }
    if let Some((name, _)) = hashes.iter().find(|(_, text)| !is_hash_hex(text)) {
        return Err(malformed(format!("{name} is not 64 lowercase hex digits")));
    }
    check_file_list(&manifest).map_err(malformed)?;
    Ok(manifest)
}

/// The file list: safe paths, sorted and unique, exactly the files a world
/// backup holds.
fn check_file_list(manifest: &Manifest) -> Result<(), String> {
    if manifest.files.len() > MANIFEST_FILES_MAX {
        return Err(format!("more than {MANIFEST_FILES_MAX} files"));
    }
    let mut previous: Option<&str> = None;
    let mut segments = BTreeMap::new();
    let mut checkpoints = Vec::new();
    let mut signatures = Vec::new();
    let (mut genesis, mut history, mut package) = (false, false, false);
    for file in &manifest.files {
        if previous.is_some_and(|previous| previous >= file.path.as_str()) {
            return Err(format!(
                "files are not sorted and unique at {:?}",
                file.path
            ));
        }
        previous = Some(&file.path);
        match classify(&file.path).map_err(|what| format!("path {:?} {what}", file.path))? {
            FileRole::Genesis => genesis = true,
            FileRole::KeyHistory => history = true,
            FileRole::Package => package = true,
            FileRole::Segment(index) => {
                segments.insert(index, file.bytes);
            }
            FileRole::Checkpoint(tick) => checkpoints.push((tick, file)),
            FileRole::CheckpointSignature(tick) => signatures.push(tick),
            FileRole::Lineage | FileRole::StoredPackage => {}
        }
    }
    if !(genesis && history && package) {
        return Err("genesis.json, operator/keys.json and the package must all be listed".into());
    }
    let journal = &manifest.journal;
    // Segments 1..=n exactly: as many as listed, numbered in order (never
    // materialize 1..=n: n comes from the file).
    let numbered = segments
        .keys()
        .zip(1u64..)
        .all(|(index, expected)| *index == expected);
    if journal.segments == 0 || segments.len() as u64 != journal.segments || !numbered {
        return Err(format!(
            "the journal must be segments 1..={} exactly",
            journal.segments
        ));
    }
    if segments.get(&journal.segments) != Some(&journal.last_segment_bytes)
        || segments.values().sum::<u64>() != journal.bytes
    {
        return Err("the journal sizes do not add up".into());
    }
    let checkpoint_tick = manifest.checkpoint.as_ref().map(|c| c.tick);
    if signatures.iter().any(|tick| Some(*tick) != checkpoint_tick) {
        return Err(
            "a checkpoint signature is listed for a checkpoint the backup does not hold".into(),
        );
    }
    match (&manifest.checkpoint, checkpoints.as_slice()) {
        (None, []) => Ok(()),
        (Some(checkpoint), [(tick, file)]) => {
            let consistent = *tick == checkpoint.tick
                && file.path == checkpoint.file
                && file.path == format!("checkpoints/{}", checkpoint_name(*tick))
                && file.blake3 == checkpoint.blake3
                && checkpoint.tick <= manifest.head.tick;
            if consistent {
                Ok(())
            } else {
                Err("the checkpoint entry does not agree with its file entry or the head".into())
            }
        }
        _ => Err("exactly the one checkpoint named by `checkpoint` may be listed".into()),
    }
}

/// Checks `manifest.sig` against the manifest's operator key; returns the key.
fn check_signature(
    manifest: &Manifest,
    digest: &Hash,
    signature_bytes: &[u8],
) -> Result<[u8; 32], OpsError> {
    let invalid = |what: String| OpsError::SignatureInvalid { what };
    let text = std::str::from_utf8(signature_bytes)
        .map_err(|_| invalid(format!("{SIGNATURE_FILE} is not text")))?;
    let signature = parse_signature(text.trim())
        .map_err(|_| invalid(format!("{SIGNATURE_FILE} is not 128 hex digits")))?;
    let key = parse_public_key(&manifest.operator_public_key)?;
    verify_signature(&key, Signed::Backup, digest, &signature).map_err(|_| {
        invalid(format!(
            "{SIGNATURE_FILE} is not operator key {}'s signature over manifest.json (BLAKE3 {digest}): the manifest or the signature was changed",
            manifest.operator_public_key
        ))
    })?;
    Ok(key)
}

/// The signer against the history: every rotation endorsed, the signer in
/// it and in range at the head, and, when trusted keys are given, one of
/// them at or before the signer (the endorsements link them). Returns the
/// anchoring key.
fn check_signer(
    manifest: &Manifest,
    history: &KeyHistory,
    signer: &[u8; 32],
    options: &VerifyOptions,
) -> Result<Option<String>, OpsError> {
    let invalid = |what: String| OpsError::SignatureInvalid { what };
    check_history(history)?;
    let signer_hex = hex::encode(signer);
    let position = |key: &str| {
        history
            .keys
            .iter()
            .position(|entry| entry.public_key == key)
    };
    let index = position(&signer_hex).ok_or_else(|| {
        invalid(format!(
            "the signing key {signer_hex} is not in the backup's operator key history"
        ))
    })?;
    let entry = &history.keys[index];
    if !signs_for(entry, index, manifest.head.tick) {
        return Err(invalid(format!(
            "operator key {signer_hex} signed ticks {}..{}, not a backup of tick {}",
            entry.from_tick,
            entry.to_tick.map_or("now".into(), |to| format!("={to}")),
            manifest.head.tick
        )));
    }
    if options.trusted_keys.is_empty() {
        return Ok(None);
    }
    for trusted in &options.trusted_keys {
        let trusted_hex = hex::encode(trusted);
        if position(&trusted_hex).is_some_and(|anchor| anchor <= index) {
            return Ok(Some(trusted_hex));
        }
    }
    let trusted: Vec<String> = options.trusted_keys.iter().map(hex::encode).collect();
    Err(invalid(format!(
        "no trusted operator key ({}) vouches for the signing key {signer_hex}: none is in the backup's key history at or before it",
        trusted.join(", ")
    )))
}

/// One data file: present, regular, of the recorded size and BLAKE3 hash.
/// Returns its SHA-256.
fn check_file(dir: &Path, file: &crate::manifest::ManifestFile) -> Result<[u8; 32], OpsError> {
    let path = dir.join(&file.path);
    let changed = |what: String| OpsError::FileChanged {
        path: file.path.clone(),
        what,
    };
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpsError::BackupIncomplete {
                dir: dir.to_path_buf(),
                what: format!("{} is missing", file.path),
            });
        }
        Err(error) => return Err(OpsError::io("stat", &path)(error)),
    };
    if !metadata.file_type().is_file() {
        return Err(changed("it is not a regular file".into()));
    }
    if metadata.len() != file.bytes {
        return Err(changed(format!(
            "it has {} bytes; the manifest records {}",
            metadata.len(),
            file.bytes
        )));
    }
    let digest = hash_file(&path)?;
    if digest.bytes != file.bytes {
        return Err(changed(format!(
            "it has {} bytes; the manifest records {}",
            digest.bytes, file.bytes
        )));
    }
    let blake3 = hex::encode(digest.blake3);
    if blake3 != file.blake3 {
        return Err(changed(format!(
            "its BLAKE3 is {blake3}; the manifest records {}",
            file.blake3
        )));
    }
    Ok(digest.sha256)
}

fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Every line matches the computed SHA-256, no path twice, no file left out.
fn check_sha256sums(bytes: &[u8], computed: &BTreeMap<String, [u8; 32]>) -> Result<(), OpsError> {
    let mismatch = |what: String| OpsError::ChecksumMismatch { what };
    let text = std::str::from_utf8(bytes).map_err(|_| mismatch("it is not UTF-8 text".into()))?;
    let lines = parse_sha256sums(text).map_err(mismatch)?;
    let mut seen = BTreeSet::new();
    for (number, path, digest) in &lines {
        let Some(actual) = computed.get(path) else {
            return Err(mismatch(format!(
                "line {number} names {path:?}, which the manifest does not list"
            )));
        };
        if digest != actual {
            return Err(mismatch(format!(
                "line {number}: {path} has SHA-256 {}, the line says {}",
                hex::encode(actual),
                hex::encode(digest)
            )));
        }
        if !seen.insert(path.as_str()) {
            return Err(mismatch(format!("line {number} repeats {path}")));
        }
    }
    if let Some(missing) = computed.keys().find(|path| !seen.contains(path.as_str())) {
        return Err(mismatch(format!("{missing} has no line")));
    }
    Ok(())
}

/// Unlisted files reported at most.
const UNLISTED_MAX: usize = 100;
/// Directory depth walked for unlisted files at most.
const UNLISTED_DEPTH_MAX: usize = 32;

/// Files under `dir` that are neither listed nor the folder's own (at most
/// [`UNLISTED_MAX`], down to [`UNLISTED_DEPTH_MAX`] directories).
fn walk_unlisted(
    dir: &Path,
    prefix: &str,
    listed: &BTreeSet<String>,
    out: &mut Vec<String>,
) -> Result<(), OpsError> {
    let depth = prefix.split('/').filter(|part| !part.is_empty()).count();
    let here = if prefix.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(prefix)
    };
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(&here)
        .and_then(|entries| entries.collect())
        .map_err(OpsError::io("list", &here))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        if out.len() >= UNLISTED_MAX {
            return Ok(());
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(OpsError::io("stat", entry.path()))?;
        if kind.is_dir() && depth < UNLISTED_DEPTH_MAX {
            walk_unlisted(dir, &relative, listed, out)?;
        } else if !kind.is_dir() && !listed.contains(&relative) && relative != SHA256SUMS_FILE {
            out.push(relative);
        }
    }
    Ok(())
}
