//! Tampered backups are refused with the exact reason, before anything in
//! the runtime root changes: a changed, truncated or missing file; a wrong
//! or missing `SHA256SUMS` line; a bad signature; an edited, malformed or
//! future-format manifest; a backup re-signed by a stranger.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use everarcade_ops::manifest::{Manifest, encode_manifest, manifest_digest, render_sha256sums};
use everarcade_ops::{RestoreOptions, VerifyOptions, verify_backup};
use everarcade_store::keys::{KEYS_FORMAT, KeyEntry, KeyHistory, Signed, parse_public_key};
use sha2::Digest;

use crate::common::{Root, backup, copy_tree, files, make_world, restore_into};

/// A world of 12 ticks and a pristine backup of it.
struct Case {
    root: Root,
    backup: PathBuf,
}

impl Case {
    fn new() -> Case {
        let root = Root::new();
        make_world(&root, 12);
        let done = backup(&root, Some(root.beside("backups"))).expect("backup");
        let backup = done.backup.path.clone();
        Case { root, backup }
    }

    /// A copy of the backup to damage.
    fn copy(&self, name: &str) -> PathBuf {
        let copy = self.root.beside(name);
        copy_tree(&self.backup, &copy);
        copy
    }

    /// Restores `backup` over the world, expects `code`, and checks that
    /// nothing in the runtime root changed; returns the message.
    fn refused(&self, backup: &Path, code: &str) -> String {
        let before = files(&self.root.path);
        let error = restore_into(&self.root, backup, RestoreOptions::default())
            .expect_err("a tampered backup is refused");
        assert_eq!(error.code(), code, "{error}");
        assert_eq!(files(&self.root.path), before, "the root changed");
        assert!(!self.root.path.join("quarantine").exists());
        error.to_string()
    }
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_changed_file_is_named() {
    let case = Case::new();
    let journal = case.copy("journal-byte");
    flip(&journal.join("journal/0000000001.seg"), 200);
    let message = case.refused(&journal, "backup_file_changed");
    assert!(message.contains("journal/0000000001.seg"), "{message}");

    let package = case.copy("package-file");
    let toml = package.join("package/world.toml");
    let mut text = std::fs::read(&toml).unwrap();
    text.extend_from_slice(b"\n# edited\n");
    std::fs::write(&toml, text).unwrap();
    let message = case.refused(&package, "backup_file_changed");
    assert!(message.contains("package/world.toml"), "{message}");

    let truncated = case.copy("truncated");
    let checkpoint = truncated.join("checkpoints/00000000000000000012.ckpt");
    let length = std::fs::metadata(&checkpoint).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&checkpoint)
        .unwrap()
        .set_len(length - 1)
        .unwrap();
    let message = case.refused(&truncated, "backup_file_changed");
    assert!(message.contains("00000000000000000012.ckpt"), "{message}");

    let missing = case.copy("missing");
    // The last segment, however many the sample package's play filled.
    let last = std::fs::read_dir(missing.join("journal"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .max()
        .expect("the backup holds a segment");
    std::fs::remove_file(missing.join("journal").join(&last)).unwrap();
    let message = case.refused(&missing, "backup_incomplete");
    assert!(message.contains(&format!("journal/{last}")), "{message}");
}

#[test]
fn a_wrong_or_missing_sha256sums_line_is_refused() {
    let case = Case::new();
    let wrong = case.copy("wrong-line");
    let sums = wrong.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    let line = text
        .lines()
        .find(|line| line.ends_with("  genesis.json"))
        .unwrap();
    let digit = if line.starts_with('0') { "1" } else { "0" };
    let changed = format!("{digit}{}", &line[1..]);
    std::fs::write(&sums, text.replace(line, &changed)).unwrap();
    let message = case.refused(&wrong, "backup_checksum_mismatch");
    assert!(message.contains("genesis.json"), "{message}");

    let dropped = case.copy("dropped-line");
    let sums = dropped.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    let kept: String = text
        .lines()
        .filter(|line| !line.ends_with("  manifest.sig"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&sums, kept).unwrap();
    let message = case.refused(&dropped, "backup_checksum_mismatch");
    assert!(message.contains("manifest.sig has no line"), "{message}");

    let absent = case.copy("no-sums");
    std::fs::remove_file(absent.join("SHA256SUMS")).unwrap();
    case.refused(&absent, "backup_incomplete");
}

#[test]
fn a_bad_signature_or_an_edited_manifest_is_refused() {
    let case = Case::new();
    let signature = case.copy("signature");
    flip(&signature.join("manifest.sig"), 10);
    let message = case.refused(&signature, "backup_signature_invalid");
    assert!(message.contains("manifest.sig"), "{message}");

    let edited = case.copy("edited");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(edited.join("manifest.json")).unwrap()).unwrap();
    edit(
        &edited.join("manifest.json"),
        &format!("\"host\": \"{}\"", manifest.host),
        "\"host\": \"elsewhere\"",
    );
    case.refused(&edited, "backup_signature_invalid");

    // The signature checked out but the history now says another key signed.
    let history = case.copy("history");
    edit(
        &history.join("operator/keys.json"),
        "\"from_tick\": 12",
        "\"from_tick\": 13",
    );
    let message = case.refused(&history, "backup_file_changed");
    assert!(message.contains("operator/keys.json"), "{message}");
}

#[test]
fn a_malformed_manifest_is_refused() {
    let case = Case::new();
    let cut = case.copy("cut");
    let path = cut.join("manifest.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    case.refused(&cut, "backup_manifest_malformed");

    let unknown = case.copy("unknown");
    edit(&unknown.join("manifest.json"), "{", "{\n  \"extra\": 1,");
    case.refused(&unknown, "backup_manifest_malformed");

    let future = case.copy("future");
    edit(
        &future.join("manifest.json"),
        "\"format\": 1",
        "\"format\": 2",
    );
    let message = case.refused(&future, "backup_manifest_malformed");
    assert!(message.contains("format 2"), "{message}");

    let escape = case.copy("escape");
    edit(
        &escape.join("manifest.json"),
        "\"path\": \"genesis.json\"",
        "\"path\": \"../genesis.json\"",
    );
    case.refused(&escape, "backup_manifest_malformed");

    // Counts come from the file: a huge one is refused, never allocated.
    let huge = case.copy("huge");
    let path = huge.join("manifest.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    value["journal"]["segments"] = serde_json::json!(u64::MAX);
    std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let message = case.refused(&huge, "backup_manifest_malformed");
    assert!(message.contains("segments"), "{message}");

    let absent = case.copy("absent");
    std::fs::remove_file(absent.join("manifest.json")).unwrap();
    case.refused(&absent, "backup_incomplete");
}

#[test]
fn files_the_manifest_does_not_list_are_reported_and_not_restored() {
    let case = Case::new();
    let extra = case.copy("extra");
    std::fs::write(extra.join("NOTES.txt"), b"kept by the operator").unwrap();
    std::fs::write(extra.join("journal/0000000099.seg"), b"stray").unwrap();
    let verified = verify_backup(&extra, &VerifyOptions::default()).expect("verifies");
    assert_eq!(verified.unlisted, ["NOTES.txt", "journal/0000000099.seg"]);
    let report = restore_into(&case.root, &extra, RestoreOptions::default()).expect("restore");
    assert!(!report.world_dir.join("NOTES.txt").exists());
    assert!(!report.world_dir.join("journal/0000000099.seg").exists());
}

/// Re-signs a changed backup as a forger holding another key would: a
/// history of their own, every hash and `SHA256SUMS` recomputed.
fn forge(dir: &Path, stranger: &SigningKey) {
    let path = dir.join("manifest.json");
    let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let public = hex::encode(stranger.verifying_key().to_bytes());
    let history = KeyHistory {
        format: KEYS_FORMAT,
        keys: vec![KeyEntry {
            public_key: public.clone(),
            from_tick: 0,
            to_tick: None,
            endorsed_by_previous: None,
        }],
    };
    let mut history_bytes = serde_json::to_vec_pretty(&history).unwrap();
    history_bytes.push(b'\n');
    std::fs::write(dir.join("operator/keys.json"), &history_bytes).unwrap();
    // The forger's change: a flipped journal byte, hashes redone.
    flip(&dir.join("journal/0000000001.seg"), 300);
    for file in &mut manifest.files {
        let bytes = std::fs::read(dir.join(&file.path)).unwrap();
        file.blake3 = blake3::hash(&bytes).to_hex().to_string();
        file.bytes = bytes.len() as u64;
    }
    manifest.operator_public_key = public;
    let bytes = encode_manifest(&manifest);
    std::fs::write(&path, &bytes).unwrap();
    let signature = stranger.sign(&Signed::Backup.message(&manifest_digest(&bytes)));
    std::fs::write(
        dir.join("manifest.sig"),
        format!("{}\n", hex::encode(signature.to_bytes())),
    )
    .unwrap();
    let mut sums: Vec<(String, [u8; 32])> = Vec::new();
    for name in manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(["manifest.json".into(), "manifest.sig".into()])
    {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        sums.push((name, sha2::Sha256::digest(&bytes).into()));
    }
    std::fs::write(dir.join("SHA256SUMS"), render_sha256sums(&sums)).unwrap();
}

#[test]
fn a_backup_re_signed_by_a_stranger_is_refused_where_a_key_is_trusted() {
    let case = Case::new();
    let real: Manifest =
        serde_json::from_slice(&std::fs::read(case.backup.join("manifest.json")).unwrap()).unwrap();
    let forged = case.copy("forged");
    forge(&forged, &SigningKey::from_bytes(&[42; 32]));
    // Over the world: the host's key history is the anchor.
    let message = case.refused(&forged, "backup_signature_invalid");
    assert!(message.contains("no trusted operator key"), "{message}");
    // On an empty root with the operator's key given.
    let fresh = Root::new();
    let options = RestoreOptions {
        verify: VerifyOptions {
            trusted_keys: vec![parse_public_key(&real.operator_public_key).unwrap()],
        },
        ..RestoreOptions::default()
    };
    let error = restore_into(&fresh, &forged, options).expect_err("refused");
    assert_eq!(error.code(), "backup_signature_invalid");
    assert!(!fresh.path.join("worlds/world-001").exists());
    // Without any anchor the forgery is internally consistent: the report
    // says the signer is vouched for by nothing but the backup itself.
    let alone = verify_backup(&forged, &VerifyOptions::default()).expect("self-consistent");
    assert_eq!(alone.anchored_by, None);
}
