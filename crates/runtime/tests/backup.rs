//! `backup`, `restore` and `keys` through the real binary, in the manual's
//! form: a backup that `sha256sum -c` accepts, the root destroyed, a restore
//! to the same roots, and a world that carries on; a tampered backup
//! refused with exit 4 and its reason; a restore over a world that keeps
//! the old one in quarantine; refusals naming the process that holds the
//! world; key rotation and the history.

use std::path::PathBuf;
use std::process::{Command, Output};

use everarcade_store::WorldLock;
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, expect_failure, repository_root, stderr, stdout};

/// A runtime root of its own, with room beside it for backups.
struct Root {
    base: TempDir,
    root: PathBuf,
}

impl Root {
    fn new() -> Root {
        let base = TempDir::new("backup");
        let root = base.join("node");
        Root { base, root }
    }

    fn world_dir(&self) -> PathBuf {
        self.root.join("worlds").join(WORLD)
    }

    /// `<words…> <root> world-001 <package> <options…>`.
    fn run(&self, words: &[&str], options: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
            .current_dir(repository_root())
            .args(words)
            .arg(&self.root)
            .arg(WORLD)
            .arg(PACKAGE)
            .args(options)
            .output()
            .expect("the binary runs")
    }

    fn ok(&self, words: &[&str], options: &[&str]) -> String {
        let output = self.run(words, options);
        assert!(
            output.status.success(),
            "{words:?} {options:?}: {}{}",
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// Runs with `--json` and expects success; returns the object.
    fn json(&self, words: &[&str], options: &[&str]) -> serde_json::Value {
        let mut options = options.to_vec();
        options.push("--json");
        let out = self.ok(words, &options);
        serde_json::from_str(out.lines().last().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{words:?}: not JSON ({e}): {out}"))
    }

    fn simulate(&self, ticks: u32) {
        let ticks = ticks.to_string();
        self.ok(
            &["simulate"],
            &[
                "--ticks",
                &ticks,
                "--bots",
                "6",
                "--checkpoint-interval",
                "10",
            ],
        );
    }
}

const ROOTS: [&str; 4] = [
    "state_root",
    "input_root",
    "receipt_root",
    "continuity_root",
];

#[test]
fn backup_destroy_restore_and_the_world_carries_on() {
    let root = Root::new();
    root.simulate(25);
    let before = root.json(&["replay-root"], &[]);

    let text = root.ok(&["backup"], &[]);
    let default_dir = root.base.join("node-backups").join("world-001-25-1");
    assert!(
        text.contains(&default_dir.join("manifest.json").display().to_string()),
        "the manifest's place is printed: {text}"
    );
    assert!(text.contains("sha256sum -c SHA256SUMS"), "{text}");
    let sums = Command::new("sha256sum")
        .args(["--strict", "-c", "SHA256SUMS"])
        .current_dir(&default_dir)
        .output()
        .expect("sha256sum runs");
    assert!(sums.status.success(), "{}{}", stdout(&sums), stderr(&sums));

    let backup = root.json(
        &["backup"],
        &[
            "--backup-dir",
            root.base.join("elsewhere").to_str().unwrap(),
        ],
    );
    let path = PathBuf::from(backup["path"].as_str().unwrap());
    assert_eq!(path, root.base.join("elsewhere"), "the folder named");
    assert_eq!(backup["tick"], 25);
    assert_eq!(backup["checkpoint"]["tick"], 25);
    assert!(backup["operator_public_key"].as_str().unwrap().len() == 64);
    assert!(!backup["host"].as_str().unwrap().is_empty());

    std::fs::remove_dir_all(&root.root).unwrap();
    let restored = root.json(&["restore"], &["--from", path.to_str().unwrap()]);
    assert_eq!(restored["head_tick"], before["tick"]);
    for name in ROOTS {
        assert_eq!(restored[name], before[name], "{name}");
    }
    assert_eq!(restored["quarantined"], serde_json::Value::Null);
    assert_eq!(restored["replayed_ticks"], 25);

    root.simulate(7);
    let verified = root.json(&["replay-verify"], &[]);
    assert_eq!(verified["head_tick"], 32);
    root.ok(&["verify"], &[]);
}

#[test]
fn a_tampered_backup_is_refused_with_its_reason_and_nothing_changes() {
    let root = Root::new();
    root.simulate(12);
    let backup = root.json(&["backup"], &[]);
    let path = PathBuf::from(backup["path"].as_str().unwrap());
    let segment = path.join("journal/0000000001.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[150] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let output = root.run(&["restore"], &["--from", path.to_str().unwrap()]);
    let message = expect_failure(&output, 4, "backup_file_changed");
    assert!(message.contains("journal/0000000001.seg"), "{message}");
    assert!(!root.root.join("quarantine").exists());
    root.ok(&["verify"], &[]);

    let sig = path.join("manifest.sig");
    let signature = std::fs::read_to_string(&sig).unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    std::fs::write(&sig, format!("{flipped}{}", &signature[1..])).unwrap();
    let output = root.run(&["restore"], &["--from", path.to_str().unwrap()]);
    expect_failure(&output, 4, "backup_signature_invalid");
}

#[test]
fn a_restore_over_a_world_keeps_it_in_quarantine() {
    let root = Root::new();
    root.simulate(12);
    let backup = root.json(&["backup"], &[]);
    let path = backup["path"].as_str().unwrap().to_string();
    root.simulate(5);
    let journal_before = std::fs::read(root.world_dir().join("journal/0000000001.seg")).unwrap();
    let restored = root.json(&["restore"], &["--from", &path]);
    assert_eq!(restored["head_tick"], 12);
    let quarantined = PathBuf::from(restored["quarantined"].as_str().unwrap());
    assert!(quarantined.starts_with(root.root.join("quarantine")));
    assert_eq!(
        std::fs::read(quarantined.join("journal/0000000001.seg")).unwrap(),
        journal_before
    );
    assert_eq!(
        restored["operator_public_key"], backup["operator_public_key"],
        "the host had the key's secret"
    );
    let text = root.ok(
        &["restore"],
        &["--from", &path, "--replay-from", "checkpoint"],
    );
    assert!(
        text.contains("PASS  replay-verify from checkpoint 12"),
        "{text}"
    );
    assert!(text.contains("previous world moved to"), "{text}");
}

#[test]
fn a_held_world_is_neither_backed_up_restored_nor_rotated() {
    let root = Root::new();
    root.simulate(4);
    let backup = root.json(&["backup"], &[]);
    let path = backup["path"].as_str().unwrap().to_string();
    let lock = WorldLock::acquire(&root.world_dir().join("world.lock")).unwrap();
    let pid = std::process::id().to_string();
    for (words, options) in [
        (vec!["backup"], vec![]),
        (vec!["restore"], vec!["--from", path.as_str()]),
        (vec!["keys", "rotate"], vec![]),
    ] {
        let output = root.run(&words, &options);
        let message = expect_failure(&output, 1, "node_running");
        assert!(message.contains(&pid), "{words:?}: {message}");
    }
    // Reading the history needs no lock.
    let listed = root.json(&["keys", "list"], &[]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    drop(lock);
}

#[test]
fn backup_goes_through_a_running_node() {
    let root = Root::new();
    root.simulate(6);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    root.ok(&["start"], &["--http-addr", &address]);
    let hot = root.run(&["backup"], &["--json"]);
    let named = root.base.join("hot");
    let named_hot = root.run(&["backup"], &["--backup-dir", named.to_str().unwrap()]);
    let restore = root.run(&["restore"], &["--from", named.to_str().unwrap()]);
    root.ok(&["stop"], &[]);
    assert!(hot.status.success(), "{}{}", stdout(&hot), stderr(&hot));
    let value: serde_json::Value = serde_json::from_str(stdout(&hot).trim()).unwrap();
    let path = PathBuf::from(value["path"].as_str().unwrap());
    assert!(path.starts_with(root.base.join("node-backups")), "{path:?}");
    assert!(value["tick"].as_u64().unwrap() >= 6);
    let text = stdout(&named_hot);
    assert!(named_hot.status.success(), "{text}{}", stderr(&named_hot));
    assert!(text.contains("written by the running node (pid"), "{text}");
    assert!(
        text.contains(&named.join("manifest.json").display().to_string()),
        "{text}"
    );
    let sums = Command::new("sha256sum")
        .args(["--strict", "-c", "SHA256SUMS"])
        .current_dir(&named)
        .output()
        .expect("sha256sum runs");
    assert!(sums.status.success(), "{}{}", stdout(&sums), stderr(&sums));
    expect_failure(&restore, 1, "node_running");
    // Stopped, the hot backup restores over the world.
    let restored = root.json(&["restore"], &["--from", named.to_str().unwrap()]);
    assert!(restored["quarantined"].is_string());
}

#[test]
fn keys_rotate_and_list_show_the_ranges_and_verify_keeps_passing() {
    let root = Root::new();
    // No world yet: nothing to list, and nothing is created.
    for words in [&["keys", "list"][..], &["keys", "rotate"][..]] {
        expect_failure(&root.run(words, &[]), 1, "world_missing");
    }
    assert!(!root.world_dir().exists());
    root.simulate(5);
    let listed = root.json(&["keys", "list"], &[]);
    assert_eq!(listed["keys"], serde_json::json!([]));
    let created = root.json(&["keys", "rotate"], &[]);
    assert_eq!(
        created["retired"],
        serde_json::Value::Null,
        "a first key is created"
    );
    root.simulate(3);
    let rotated = root.json(&["keys", "rotate"], &[]);
    assert_eq!(rotated["head_tick"], 8);
    assert_eq!(rotated["retired"], created["current"]["public_key"]);
    root.simulate(4);
    let listed = root.json(&["keys", "list"], &[]);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0]["from_tick"].clone(), keys[0]["to_tick"].clone()),
        (5.into(), 8.into())
    );
    assert_eq!(keys[1]["from_tick"], 9);
    assert_eq!(keys[1]["current"], true);
    assert_eq!(keys[1]["endorsed_by_previous"], true);
    assert_eq!(listed["history_verified"], true);
    // Tick 10's checkpoint is signed by the new key; verify checks it.
    let verified = root.json(&["verify"], &[]);
    assert_eq!(verified["verified"], true);
    let text = root.ok(&["keys", "list"], &[]);
    assert!(text.contains("ticks 5..=8"), "{text}");
    assert!(text.contains("ticks 9.. (current)"), "{text}");
}
