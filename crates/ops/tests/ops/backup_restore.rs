//! A backup, the root destroyed, a restore: identical roots, and a world
//! that carries on exactly as one that was never lost. Restores over a live
//! world put it in quarantine whole. Hot backups copy a journal prefix while
//! the world keeps writing. `sha256sum -c` accepts every backup.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use everarcade_ops::manifest::MANIFEST_FILE;
use everarcade_ops::{BackupSource, KeySource, RestoreOptions, write_backup};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, WorldLock};

use crate::common::{
    Root, audit, backup, continue_world, files, make_world, open, play, replay_verify, restore_into,
};

#[test]
fn backup_destroy_restore_gives_identical_roots_and_the_world_carries_on() {
    let root = Root::new();
    let roots = make_world(&root, 25);
    let done = backup(&root, None).expect("backup");
    let manifest = &done.backup.manifest;
    // The head (25) was past the newest checkpoint (20): one was taken.
    assert_eq!(done.checkpoint_taken.as_ref().map(|c| c.tick), Some(25));
    assert_eq!(manifest.checkpoint.as_ref().map(|c| c.tick), Some(25));
    assert_eq!(manifest.head.tick, 25);
    assert_eq!(
        manifest.head.continuity_root,
        roots.continuity_root.to_hex()
    );
    assert!(
        manifest.journal.segments > 1,
        "small segments: several copied"
    );
    // The default place: beside the runtime root, never inside it.
    assert_eq!(done.backup.path, root.beside("root-backups/world-001-25-1"));
    assert!(!done.backup.path.starts_with(&root.path));

    // A twin world that is never lost, for what "carries on" must reach.
    let twin = Root::new();
    assert_eq!(make_world(&twin, 25), roots, "worlds are deterministic");

    std::fs::remove_dir_all(&root.path).expect("destroy the runtime root");
    let report =
        restore_into(&root, &done.backup.path, RestoreOptions::default()).expect("restore");
    assert_eq!(report.roots, roots);
    assert_eq!(report.quarantined, None, "there was nothing to quarantine");
    assert_eq!(report.recovered_from, Some(25));
    assert_eq!(report.replayed_from, None, "replay-verify from genesis");
    assert_eq!(report.replayed_ticks, 25);
    assert_eq!(
        report.key_source,
        KeySource::New,
        "the secret went with the root"
    );
    assert!(
        !root.path.join("restoring").exists(),
        "staging is cleaned up"
    );

    let after = continue_world(&root, 12);
    assert_eq!(after, continue_world(&twin, 12));
    assert_eq!(replay_verify(&root).expect("replay-verify").last, after);
    let audited = audit(&root).expect("verify");
    assert_eq!(audited.head.map(|(tick, _)| tick), Some(37));
    assert!(
        audited.signed_checkpoints >= 1,
        "tick 30 is signed by the new key"
    );
}

#[test]
fn a_restore_over_a_world_moves_it_to_quarantine_whole_and_keeps_the_key() {
    let root = Root::new();
    make_world(&root, 12);
    let done = backup(&root, Some(root.beside("backups"))).expect("backup");
    assert_eq!(done.backup.path, root.beside("backups"), "the folder named");
    let taken = backup(&root, Some(root.beside("backups"))).expect_err("exists");
    assert_eq!(taken.code(), "backup_exists");
    let advanced = continue_world(&root, 6);
    let before = files(root.dir().path());

    let report =
        restore_into(&root, &done.backup.path, RestoreOptions::default()).expect("restore");
    assert_eq!(report.roots.tick, 12);
    assert_ne!(report.roots, advanced);
    let quarantined = report.quarantined.clone().expect("the old world is kept");
    assert!(quarantined.starts_with(root.path.join("quarantine")));
    let name = quarantined
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("world-001-") && name.ends_with("Z-1"),
        "{name}"
    );
    let kept = files(&quarantined);
    for (path, bytes) in &before {
        if path != "world.lock" {
            assert_eq!(kept.get(path), Some(bytes), "{path} changed in quarantine");
        }
    }
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    // The current world's secret is the backup's key: it is kept.
    assert!(matches!(report.key_source, KeySource::Host(_)));
    assert_eq!(
        report.operator_key,
        done.backup.manifest.operator_public_key
    );
    assert_eq!(
        report.backup.anchored_by.as_deref(),
        Some(report.operator_key.as_str()),
        "the host's history anchors the backup's signature"
    );
    let audited = audit(&root).expect("verify");
    assert_eq!(
        audited.signed_checkpoints, 1,
        "the shipped checkpoint's signature"
    );
    assert_eq!(replay_verify(&root).expect("replay").last, report.roots);

    // A second restore quarantines the first restored world beside the old one.
    let again = restore_into(&root, &done.backup.path, RestoreOptions::default()).expect("restore");
    let second = again.quarantined.expect("kept");
    assert_ne!(second, quarantined);
    assert!(quarantined.exists() && second.exists());
}

#[test]
fn sha256sum_checks_a_backup_and_it_holds_no_secret() {
    let root = Root::new();
    make_world(&root, 8);
    let done = backup(&root, None).expect("backup");
    let dir = &done.backup.path;
    let output = Command::new("sha256sum")
        .args(["--strict", "-c", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .expect("sha256sum runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = done.backup.manifest.files.len() + 2;
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(": OK")).count(),
        listed
    );

    let seed = std::fs::read_to_string(root.dir().operator_key()).expect("the world's key");
    let seed = seed.trim();
    let all = files(dir);
    for (path, bytes) in &all {
        assert!(
            !String::from_utf8_lossy(bytes).contains(seed),
            "{path} holds the secret"
        );
        assert_ne!(path, "operator/key");
        let mode = std::fs::metadata(dir.join(path))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path}");
    }
    for sub in [
        "",
        "journal",
        "checkpoints",
        "package",
        "operator",
        "signatures",
    ] {
        let mode = std::fs::metadata(dir.join(sub))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{sub}/");
    }
    // Every file is the manifest's, or the manifest, its signature, SHA256SUMS.
    assert_eq!(all.len(), done.backup.manifest.files.len() + 3);
    assert!(done.backup.manifest_path.ends_with(MANIFEST_FILE));
}

#[test]
fn a_hot_backup_copies_a_journal_prefix_while_the_world_keeps_writing() {
    let root = Root::new();
    make_world(&root, 15);
    // The node's view: the world open, a checkpoint at a tick boundary, the
    // durable end, then more ticks appended while the backup is written.
    let mut world = open(&root).expect("open");
    let taken = world.checkpoint().expect("checkpoint");
    let end = world.journal_end();
    let at = world.roots();
    play(&mut world, 9);
    let (keys, _) = OperatorKeys::load_or_create(&DiskStorage, &root.dir(), at.tick).unwrap();
    let source = BackupSource {
        world: root.dir(),
        checkpoint_tick: Some(taken.tick),
        journal_end: end,
    };
    let out = root.beside("hot/world-001-15-1");
    let report = write_backup(&source, &out, &keys).expect("hot backup");
    play(&mut world, 3);
    world.close().expect("close");
    assert_eq!(report.manifest.head.tick, 15);
    assert_eq!(report.manifest.head.state_root, at.state_root.to_hex());
    assert_eq!(report.manifest.journal.last_segment_bytes, end.1);

    let fresh = Root::new();
    let restored = restore_into(&fresh, &out, RestoreOptions::default()).expect("restore");
    assert_eq!(restored.roots, at);
    // A folder that exists is never written over.
    let again = write_backup(&source, &out, &keys).expect_err("exists");
    assert_eq!(again.code(), "backup_exists");
}

#[test]
fn a_backup_of_a_world_held_by_another_process_is_refused() {
    let root = Root::new();
    make_world(&root, 3);
    let lock = WorldLock::acquire(&root.dir().lock()).expect("hold the world");
    let refused = backup(&root, None).expect_err("locked");
    assert_eq!(refused.code(), "world_locked");
    assert!(
        refused
            .to_string()
            .contains(&std::process::id().to_string())
    );
    drop(lock);
    let inside = backup(&root, Some(root.path.join("backups"))).expect_err("inside");
    assert_eq!(inside.code(), "backup_dir_inside_root");
}
