//! `upgrade` and `rollback` through the real binary, with a small counter
//! game written in WAT in four versions:
//! - 0.1.0 adds 1 per input;
//! - 0.1.1, a patch whose new rule applies only from tick 1000 on (history
//!   replays identically);
//! - 0.1.2, a patch that changes the past (adds 2 always): refused;
//! - 0.2.0, a minor version (adds 3): a protocol transition.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use everarcade_testkit::manifest::small_manifest;
use everarcade_testkit::temp::TempDir;

mod common;

use common::{WORLD, text};

/// The counter's memory: one wasm page.
const MEMORY_BYTES: u64 = 65_536;

fn module(delta: &str) -> String {
    format!(
        r#"(module
  (import "ea" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "ea" "state_set" (func $state_set (param i32 i32 i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "nt")
  (func (export "ea_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "ea_tick") (param $tick i64)
    (i64.store (i32.const 24) (local.get $tick))
    (call $state_set (i32.const 1) (i32.const 1) (i32.const 24) (i32.const 8)))
  (func (export "ea_input") (param i32 i32) (result i32)
    (i64.store (i32.const 16) (i64.const 0))
    (i64.store (i32.const 24) (i64.const 0))
    (drop (call $state_get (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 8)))
    (drop (call $state_get (i32.const 1) (i32.const 1) (i32.const 24) (i32.const 8)))
    (i64.store (i32.const 16) (i64.add (i64.load (i32.const 16)) {delta}))
    (call $state_set (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 8))
    (i32.const 0)))"#
    )
}

const ADD_1: &str = "(i64.const 1)";
const ADD_1_THEN_2_FROM_TICK_1000: &str =
    "(select (i64.const 2) (i64.const 1) (i64.ge_u (i64.load (i32.const 24)) (i64.const 1000)))";
const ADD_2: &str = "(i64.const 2)";
const ADD_3: &str = "(i64.const 3)";

struct Scratch {
    root: TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            root: TempDir::new("upgrade"),
        }
    }

    fn package(&self, version: &str, delta: &str) -> PathBuf {
        let dir = self.root.join(format!("counter-{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("world.toml"),
            small_manifest("counter", version, MEMORY_BYTES),
        )
        .unwrap();
        std::fs::write(
            dir.join("world.wasm"),
            wat::parse_str(module(delta)).unwrap(),
        )
        .unwrap();
        dir
    }

    fn runtime_root(&self) -> PathBuf {
        self.root.join("node")
    }

    fn run(&self, verb: &str, package: &Path, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
            .arg(verb)
            .arg(self.runtime_root())
            .arg(WORLD)
            .arg(package)
            .args(extra)
            .output()
            .unwrap()
    }

    /// `simulate` with one input per tick from alice for `ticks` ticks.
    fn play(&self, package: &Path, first_nonce: u64, ticks: u64) -> serde_json::Value {
        let script = self.root.join(format!("inputs-{first_nonce}.jsonl"));
        let lines: Vec<String> = (0..ticks)
            .map(|i| {
                format!(
                    "{{\"tick\": {}, \"player\": \"alice\", \"payload\": \"01\"}}",
                    i + 1
                )
            })
            .collect();
        std::fs::write(&script, lines.join("\n")).unwrap();
        let output = self.run(
            "simulate",
            package,
            &[
                "--ticks",
                &ticks.to_string(),
                "--inputs",
                script.to_str().unwrap(),
                "--json",
            ],
        );
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn counter(&self, package: &Path) -> u64 {
        let output = self.run("simulate", package, &["--ticks", "0", "--dump-state"]);
        assert!(output.status.success(), "{}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            if let Ok(entry) = serde_json::from_str::<serde_json::Value>(line)
                && entry["key"] == hex::encode("n")
            {
                let bytes = hex::decode(entry["value"].as_str().unwrap()).unwrap();
                return u64::from_le_bytes(bytes.try_into().unwrap());
            }
        }
        panic!("no counter in the state:\n{stdout}");
    }

    fn head(&self, package: &Path) -> serde_json::Value {
        let output = self.run("replay-root", package, &["--json"]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn verified(&self, package: &Path) {
        for verb in ["verify", "replay-verify"] {
            let output = self.run(verb, package, &["--json"]);
            assert!(output.status.success(), "{verb}: {}", text(&output));
        }
    }
}

fn stored_root(scratch: &Scratch) -> String {
    let genesis: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            scratch
                .runtime_root()
                .join("worlds")
                .join(WORLD)
                .join("genesis.json"),
        )
        .unwrap(),
    )
    .unwrap();
    genesis["package_root"].as_str().unwrap().to_string()
}

#[test]
fn a_forward_only_patch_upgrades_cleanly_and_the_world_continues() {
    let scratch = Scratch::new();
    let v010 = scratch.package("0.1.0", ADD_1);
    let v011 = scratch.package("0.1.1", ADD_1_THEN_2_FROM_TICK_1000);
    scratch.play(&v010, 1, 5);
    assert_eq!(scratch.counter(&v010), 5);
    let output = scratch.run("upgrade", &v010, &["--to", v011.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("history replays to the recorded roots"),
        "{}",
        text(&output)
    );
    // The old package is no longer the world's.
    let old = scratch.run("verify", &v010, &[]);
    assert_eq!(old.status.code(), Some(6), "{}", text(&old));
    scratch.verified(&v011);
    scratch.play(&v011, 6, 3);
    assert_eq!(scratch.counter(&v011), 8);
    scratch.verified(&v011);
    let lineage: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            scratch
                .runtime_root()
                .join("worlds")
                .join(WORLD)
                .join("lineage.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(lineage["transitions"][0]["kind"], "patch");
    assert_eq!(lineage["transitions"][0]["from_tick"], 6);
    assert_eq!(lineage["transitions"][0]["history_replayed"], true);
    let backups: Vec<_> = std::fs::read_dir(scratch.root.join("node-backups"))
        .expect("the upgrade took a backup beside the runtime root")
        .flatten()
        .collect();
    assert_eq!(backups.len(), 1);
    assert!(backups[0].path().join("manifest.json").exists());
    assert_eq!(
        stored_root(&scratch),
        lineage["transitions"][0]["previous_root"].as_str().unwrap()
    );
    // A version-1 bundle carries the genesis package only: export says so.
    let out = scratch.root.join("after-upgrade.bundle");
    let export = scratch.run(
        "export-bundle",
        &v011,
        &["--from", "6", "--to", "8", "--out", out.to_str().unwrap()],
    );
    assert_eq!(export.status.code(), Some(2), "{}", text(&export));
    assert!(
        text(&export).contains("upgraded_world_unsupported"),
        "{}",
        text(&export)
    );
    assert!(!out.exists(), "no bundle is written");
}

#[test]
fn a_patch_that_changes_history_is_refused_and_says_what_it_wrote() {
    let scratch = Scratch::new();
    let v010 = scratch.package("0.1.0", ADD_1);
    let v012 = scratch.package("0.1.2", ADD_2);
    scratch.play(&v010, 1, 4);
    let before = scratch.head(&v010);
    let output = scratch.run("upgrade", &v010, &["--to", v012.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("error[upgrade_history_diverges]"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("tick 1"),
        "names the first divergent tick: {}",
        text(&output)
    );
    let world = scratch.runtime_root().join("worlds").join(WORLD);
    assert!(!world.join("lineage.json").exists());
    assert!(!world.join("upgrade/pending.json").exists());
    scratch.verified(&v010);
    assert_eq!(scratch.head(&v010), before);
    // Step 2 wrote a checkpoint, a key and a backup before the refusal: the
    // message names each, and does not claim nothing changed.
    let message = text(&output);
    assert!(!message.contains("nothing was changed"), "{message}");
    assert!(
        message.contains("the package and lineage are unchanged"),
        "{message}"
    );
    let checkpoint = world.join("checkpoints").join(format!("{:020}.ckpt", 4));
    assert!(checkpoint.exists());
    assert!(
        message.contains(&format!(
            "the checkpoint of tick 4 ({})",
            checkpoint.display()
        )),
        "{message}"
    );
    assert!(world.join("operator/key").exists());
    assert!(message.contains("created the operator key"), "{message}");
    let backups: Vec<_> = std::fs::read_dir(scratch.root.join("node-backups"))
        .expect("the upgrade took a backup beside the runtime root")
        .flatten()
        .collect();
    assert_eq!(backups.len(), 1);
    assert!(
        message.contains(&format!("a backup at {}", backups[0].path().display())),
        "{message}"
    );
}

#[test]
fn a_minor_upgrade_needs_its_flag_and_is_a_transition_at_the_next_tick() {
    let scratch = Scratch::new();
    let v010 = scratch.package("0.1.0", ADD_1);
    let v020 = scratch.package("0.2.0", ADD_3);
    scratch.play(&v010, 1, 3);
    let refused = scratch.run("upgrade", &v010, &["--to", v020.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(
        text(&refused).contains("error[upgrade_needs_flag]"),
        "{}",
        text(&refused)
    );
    let output = scratch.run(
        "upgrade",
        &v010,
        &["--to", v020.to_str().unwrap(), "--allow-minor", "--json"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rev()
            .find(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["kind"], "minor");
    assert_eq!(report["from_tick"], 4);
    assert_eq!(report["history_replayed"], false);
    scratch.play(&v020, 4, 2);
    assert_eq!(
        scratch.counter(&v020),
        3 + 2 * 3,
        "old ticks under 0.1.0, new ones under 0.2.0"
    );
    // Replay from genesis runs each tick with the package that ran it.
    scratch.verified(&v020);
}

#[test]
fn rollback_returns_to_identical_roots_and_preserves_everything() {
    let scratch = Scratch::new();
    let v010 = scratch.package("0.1.0", ADD_1);
    let v020 = scratch.package("0.2.0", ADD_3);
    scratch.play(&v010, 1, 4);
    let before = scratch.head(&v010);
    let output = scratch.run(
        "upgrade",
        &v010,
        &["--to", v020.to_str().unwrap(), "--allow-minor"],
    );
    assert!(output.status.success(), "{}", text(&output));
    scratch.play(&v020, 5, 3);
    let rolled = scratch.run("rollback", &v020, &["--json"]);
    assert!(rolled.status.success(), "{}", text(&rolled));
    let after = scratch.head(&v010);
    assert_eq!(after, before, "the pre-upgrade roots");
    assert_eq!(scratch.counter(&v010), 4);
    scratch.verified(&v010);
    let quarantine = scratch.runtime_root().join("quarantine");
    let preserved: Vec<_> = std::fs::read_dir(&quarantine).unwrap().flatten().collect();
    assert_eq!(
        preserved.len(),
        1,
        "the failed world directory is preserved"
    );
    assert!(preserved[0].path().join("lineage.json").exists());
    let again = scratch.run("rollback", &v010, &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("no_pending_upgrade"));
    // The world goes on under the old rules.
    scratch.play(&v010, 5, 1);
    assert_eq!(scratch.counter(&v010), 5);
}

#[test]
fn accept_ends_the_rollback_window() {
    let scratch = Scratch::new();
    let v010 = scratch.package("0.1.0", ADD_1);
    let v011 = scratch.package("0.1.1", ADD_1_THEN_2_FROM_TICK_1000);
    scratch.play(&v010, 1, 2);
    let output = scratch.run("upgrade", &v010, &["--to", v011.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let another = scratch.run("upgrade", &v011, &["--to", v011.to_str().unwrap()]);
    assert!(!another.status.success(), "{}", text(&another));
    let accepted = scratch.run("upgrade", &v011, &["--accept"]);
    assert!(accepted.status.success(), "{}", text(&accepted));
    let rollback = scratch.run("rollback", &v011, &[]);
    assert!(
        text(&rollback).contains("no_pending_upgrade"),
        "{}",
        text(&rollback)
    );
    assert!(
        scratch
            .runtime_root()
            .join("worlds")
            .join(WORLD)
            .join("upgrade/accepted-3.json")
            .exists()
    );
}
