//! Operator keys: after a rotation, old checkpoints and old backups still
//! verify (their signers are in the history, in range); a backup signed by
//! the new key is vouched for by the old one through the endorsement; a
//! restore without the secret starts a new identity that no old key vouches
//! for; the endorsement signs the context and the raw new key.

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use everarcade_ops::operator::{check_history, list_keys, rotate_offline};
use everarcade_ops::restore::PREVIOUS_HISTORY_FILE;
use everarcade_ops::{KeySource, RestoreOptions, VerifyOptions, verify_backup};
use everarcade_protocol::{Hash, test_signing_key};
use everarcade_store::keys::{KeyEntry, KeyHistory, Signed, parse_public_key, parse_signature};

use crate::common::{Root, audit, backup, continue_world, door, make_world, restore_into};

fn trusting(key: &str) -> VerifyOptions {
    VerifyOptions {
        trusted_keys: vec![parse_public_key(key).unwrap()],
    }
}

#[test]
fn after_a_rotation_old_checkpoints_and_backups_still_verify() {
    let root = Root::new();
    make_world(&root, 12);
    let first = backup(&root, None).expect("backup");
    let old_key = first.backup.manifest.operator_public_key.clone();
    let rotation = rotate_offline(&door(&root)).expect("rotate");
    assert_eq!(rotation.height, 12);
    assert_eq!(rotation.retired.as_deref(), Some(old_key.as_str()));
    assert_eq!(rotation.current.from_tick, 13);
    let new_key = rotation.current.public_key.clone();
    endorsement_signs_the_raw_new_key(&old_key, &rotation.current);

    // Tick 20's checkpoint is signed by the new key, 12's by the old one.
    continue_world(&root, 10);
    let audited = audit(&root).expect("verify after the rotation");
    assert_eq!(audited.signed_checkpoints, 2);
    assert_eq!(audited.operator_keys, 2);
    let listing = list_keys(&root.dir()).unwrap().expect("a history");
    listing.check.expect("endorsed");
    assert_eq!(listing.history.keys[0].to_tick, Some(12));

    // The old backup: its own history, and the old key anchors it.
    verify_backup(&first.backup.path, &trusting(&old_key)).expect("old backup");
    let refused = verify_backup(&first.backup.path, &trusting(&new_key)).expect_err("not yet");
    assert_eq!(refused.code(), "backup_signature_invalid");
    // A new backup is signed by the new key, which the old key endorsed.
    let second = backup(&root, None).expect("backup after the rotation");
    assert_eq!(second.backup.manifest.operator_public_key, new_key);
    let verified = verify_backup(&second.backup.path, &trusting(&old_key)).expect("endorsed");
    assert_eq!(verified.anchored_by.as_deref(), Some(old_key.as_str()));

    // Restoring the old backup here: the retired secret is found on the host.
    let report = restore_into(&root, &first.backup.path, RestoreOptions::default())
        .expect("restore the pre-rotation backup");
    assert_eq!(report.roots.tick, 12);
    assert_eq!(report.operator_key, old_key);
    match &report.key_source {
        KeySource::Host(path) => assert!(path.ends_with(format!("retired/{old_key}.key"))),
        other => panic!("{other:?}"),
    }
    audit(&root).expect("verify the restored world");
}

/// docs/FORMATS.md §5a: the endorsement is the old key's ed25519 signature
/// (`verify_strict`) over the 23 ASCII bytes `ea/operator/rotation/v1`
/// followed by the new public key's 32 raw bytes: not its hex, not a hash.
fn endorsement_signs_the_raw_new_key(old_key: &str, entry: &KeyEntry) {
    let old = VerifyingKey::from_bytes(&parse_public_key(old_key).unwrap()).unwrap();
    let new = parse_public_key(&entry.public_key).unwrap();
    let endorsement = Signature::from_bytes(
        &parse_signature(entry.endorsed_by_previous.as_deref().expect("endorsed")).unwrap(),
    );
    let mut message = b"ea/operator/rotation/v1".to_vec();
    message.extend_from_slice(&new);
    assert_eq!(message.len(), 55);
    old.verify_strict(&message, &endorsement)
        .expect("context || raw new key");
    let mut over_hex = b"ea/operator/rotation/v1".to_vec();
    over_hex.extend_from_slice(entry.public_key.as_bytes());
    assert!(old.verify_strict(&over_hex, &endorsement).is_err());
    assert!(
        old.verify_strict(&new, &endorsement).is_err(),
        "the context is signed"
    );
}

/// The rotation vector printed in docs/FORMATS.md §5a: `test_signing_key("operator")`
/// endorses `test_signing_key("operator-2")`.
#[test]
fn rotation_endorsement_vector() {
    let old = test_signing_key("operator");
    let new = test_signing_key("operator-2").verifying_key().to_bytes();
    let message = Signed::Rotation.message(&Hash(new));
    let signature = old.sign(&message).to_bytes();
    println!("new key {}", hex::encode(new));
    println!("message {}", hex::encode(&message));
    println!("endorsement {}", hex::encode(signature));
    assert_eq!(hex::encode(new), ROTATION_NEW_KEY);
    assert_eq!(
        hex::encode(&message),
        format!(
            "{}{ROTATION_NEW_KEY}",
            hex::encode("ea/operator/rotation/v1")
        )
    );
    assert_eq!(hex::encode(signature), ROTATION_ENDORSEMENT);
    old.verifying_key()
        .verify_strict(&message, &Signature::from_bytes(&signature))
        .unwrap();
}

const ROTATION_NEW_KEY: &str = "f4f8c4b63ba12976aa05cb7b47c8a4d5405886b1b4a20530075a5ee3f582fff0";
const ROTATION_ENDORSEMENT: &str = "3449b713b0328741d7a6cc6b122ccee151276b4a0bb9b18d8f0f5831aeaa55a839d5bb8965e0bd4b4788876bb01f14ca515ec0682f85546c5a510325da08830c";

#[test]
fn a_restore_without_the_secret_starts_a_new_identity_that_old_keys_do_not_vouch_for() {
    let root = Root::new();
    make_world(&root, 9);
    let done = backup(&root, None).expect("backup");
    let old_key = done.backup.manifest.operator_public_key.clone();
    let old_history = std::fs::read(done.backup.path.join("operator/keys.json")).unwrap();
    std::fs::remove_dir_all(&root.path).unwrap();

    let report =
        restore_into(&root, &done.backup.path, RestoreOptions::default()).expect("restore");
    assert_eq!(report.key_source, KeySource::New);
    assert_ne!(report.operator_key, old_key);
    let operator = root.dir().operator();
    assert_eq!(
        std::fs::read(operator.join(PREVIOUS_HISTORY_FILE)).unwrap(),
        old_history
    );
    let history: KeyHistory =
        serde_json::from_slice(&std::fs::read(root.dir().operator_keys()).unwrap()).unwrap();
    assert_eq!(history.keys.len(), 1);
    assert_eq!(history.keys[0].from_tick, 9);
    check_history(&history).expect("a valid history");
    audit(&root).expect("verify");

    continue_world(&root, 3);
    let after = backup(&root, None).expect("backup of the restored world");
    verify_backup(&after.backup.path, &VerifyOptions::default()).expect("self-consistent");
    let refused = verify_backup(&after.backup.path, &trusting(&old_key)).expect_err("no link");
    assert_eq!(refused.code(), "backup_signature_invalid");
    // With the old secret given, the identity is kept instead.
    let keyed = Root::new();
    make_world(&keyed, 4);
    let keyed_backup = backup(&keyed, None).expect("backup");
    let secret = keyed.beside("operator.key");
    std::fs::copy(keyed.dir().operator_key(), &secret).unwrap();
    std::fs::remove_dir_all(&keyed.path).unwrap();
    let options = RestoreOptions {
        operator_key_file: Some(secret.clone()),
        ..RestoreOptions::default()
    };
    let kept = restore_into(&keyed, &keyed_backup.backup.path, options).expect("restore");
    assert_eq!(kept.key_source, KeySource::Given(secret));
    assert_eq!(
        kept.operator_key,
        keyed_backup.backup.manifest.operator_public_key
    );
}
