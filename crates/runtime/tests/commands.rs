//! The runbook commands of a durable world, end to end through the real
//! binary: status, verify, checkpoint, replay-verify/report/root, recover,
//! doctor; the exit codes they promise; and what they do with a world whose
//! files were damaged or forged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use everarcade_store::WorldLock;
use everarcade_testkit::journal::{KIND_INPUTS, KIND_TICK, body_tick, forge_segment};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, expect_failure, free_port, repository_root, stderr, stdout};

/// A world with `ticks` ticks of a 6-bot match, in a runtime root of its own.
struct World {
    /// Removed on drop.
    _temp: TempDir,
    /// `<temp>/root`, created by `simulate`.
    root: PathBuf,
}

impl World {
    fn new(ticks: u32, checkpoint_interval: u32) -> World {
        let temp = TempDir::new("cmd");
        let root = temp.join("root");
        let world = World { _temp: temp, root };
        let ticks = ticks.to_string();
        let interval = checkpoint_interval.to_string();
        let output = world.run_with(
            PACKAGE,
            &[
                "simulate",
                "--ticks",
                &ticks,
                "--bots",
                "6",
                "--checkpoint-interval",
                &interval,
            ],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        world
    }

    fn dir(&self) -> PathBuf {
        self.root.join("worlds").join(WORLD)
    }

    fn segment(&self) -> PathBuf {
        self.dir().join("journal/0000000001.seg")
    }

    /// `<command> <root> world-001 <package> <options…>`.
    fn run_with(&self, package: &str, args: &[&str]) -> Output {
        let (command, options) = args.split_first().expect("a command");
        Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
            .current_dir(repository_root())
            .arg(command)
            .arg(&self.root)
            .arg(WORLD)
            .arg(package)
            .args(options)
            .output()
            .expect("the binary runs")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(PACKAGE, args)
    }

    /// Runs with `--json`; returns the exit code and the one JSON object printed.
    fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.run(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = serde_json::from_str(stdout.lines().next().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout} {}", stderr(&output)));
        (output.status.code().expect("exited"), value)
    }
}

/// Forges the one-segment journal at `segment` through `edit`, as a
/// deliberate forger would (see [`forge_segment`]).
fn forge(segment: &Path, edit: impl FnMut(u8, &mut Vec<u8>)) {
    let bytes = std::fs::read(segment).unwrap();
    std::fs::write(segment, forge_segment(&bytes, edit)).unwrap();
}

#[test]
fn a_healthy_world_passes_every_command() {
    let world = World::new(120, 50);
    let (exit, status) = world.json(&["status"]);
    assert_eq!(
        exit, 5,
        "status exits not-running when no node runs: {status}"
    );
    assert_eq!(status["head_tick"], 120);
    assert_eq!(status["checkpoints"], serde_json::json!([50, 100]));
    let (exit, verify) = world.json(&["verify"]);
    assert_eq!(exit, 0, "{verify}");
    assert_eq!(verify["ticks"], 120);
    assert_eq!(verify["checkpoints"], serde_json::json!([50, 100]));
    assert!(verify["envelopes"].as_u64().unwrap() > 100);
    let (exit, replayed) = world.json(&["replay-verify"]);
    assert_eq!(exit, 0, "{replayed}");
    assert_eq!(replayed["ticks"], 120);
    assert_eq!(replayed["continuity_root"], status["continuity_root"]);
    let (exit, from_checkpoint) = world.json(&["replay-verify", "--from-checkpoint", "50"]);
    assert_eq!(exit, 0, "{from_checkpoint}");
    assert_eq!(from_checkpoint["ticks"], 70);
    assert_eq!(
        from_checkpoint["continuity_root"],
        status["continuity_root"]
    );
    let (exit, report) = world.json(&["replay-report"]);
    assert_eq!(exit, 0, "{report}");
    assert_eq!(report["checkpoint_roots"][1]["tick"], 100);
    assert_eq!(report["divergences"], serde_json::json!([]));
    assert_eq!(report["inputs"], verify["envelopes"]);
    let (_, at_60) = world.json(&["replay-root", "--tick", "60"]);
    let (_, at_60_from_checkpoint) =
        world.json(&["replay-root", "--tick", "60", "--from-checkpoint"]);
    assert_eq!(at_60["tick"], 60);
    assert_eq!(at_60, at_60_from_checkpoint);
    let (_, head) = world.json(&["replay-root"]);
    assert_eq!(head["state_root"], status["state_root"]);
    let output = world.run(&["doctor"]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(!stdout(&output).contains("FAIL"), "{}", stdout(&output));
    let (exit, taken) = world.json(&["checkpoint", "--checkpoints-retained", "2"]);
    assert_eq!(exit, 0, "{taken}");
    assert_eq!(taken["tick"], 120);
    assert_eq!(taken["pruned"].as_array().unwrap().len(), 1);
    let (_, verify) = world.json(&["verify"]);
    assert_eq!(verify["checkpoints"], serde_json::json!([100, 120]));
}

#[test]
fn another_package_is_refused_naming_both_roots() {
    let world = World::new(10, 0);
    let copy = world.root.join("other-package");
    std::fs::create_dir_all(&copy).unwrap();
    for name in ["world.toml", "world.wasm"] {
        std::fs::copy(repository_root().join(PACKAGE).join(name), copy.join(name)).unwrap();
    }
    std::fs::write(copy.join("NOTES.md"), "a different package root\n").unwrap();
    for command in [
        "verify",
        "replay-verify",
        "status",
        "stop",
        "simulate",
        "recover",
    ] {
        let output = world.run_with(copy.to_str().unwrap(), &[command]);
        let text = expect_failure(&output, 6, "package_mismatch");
        assert!(
            text.contains("bound to package root") && text.matches(" root ").count() >= 2,
            "{text}"
        );
    }
}

/// `<command> <root> world-001 <options…>`: no package argument at all.
fn run_without_package(world: &World, command: &str, options: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .arg(command)
        .arg(&world.root)
        .arg(WORLD)
        .args(options)
        .output()
        .expect("the binary runs")
}

#[test]
fn without_a_package_commands_use_the_world_s_bound_copy() {
    let world = World::new(10, 0);
    let (_, given) = world.json(&["status"]);
    for output in [
        world.run_with("-", &["status", "--json"]),
        run_without_package(&world, "status", &["--json"]),
    ] {
        assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
        let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(shown["package_root"], given["package_root"]);
        assert_eq!(shown["head_tick"], 10);
    }
    for output in [
        world.run_with("-", &["stop"]),
        run_without_package(&world, "stop", &[]),
    ] {
        expect_failure(&output, 5, "not_running");
    }
    let verified = run_without_package(&world, "verify", &[]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let missing = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .args([
            "status".as_ref(),
            world.root.as_os_str(),
            "no-such-world".as_ref(),
        ])
        .output()
        .unwrap();
    let text = expect_failure(&missing, 1, "world_missing");
    assert!(text.contains("giving its package"), "{text}");
}

/// Under `--json` a failure is one JSON object on stdout, `error` with its
/// code, message and exit status, and the same exit status.
fn expect_json_failure(output: &Output, exit: i32, code: &str) -> serde_json::Value {
    expect_failure(output, exit, code);
    let text = stdout(output);
    let object: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {text}"));
    assert_eq!(object["error"]["code"], code, "{object}");
    assert_eq!(object["error"]["exit"], exit, "{object}");
    assert!(
        object["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    object
}

#[test]
fn json_failures_are_json_on_stdout_with_the_same_exit_status() {
    let world = World::new(10, 0);
    expect_json_failure(&world.run(&["stop", "--json"]), 5, "not_running");
    expect_json_failure(
        &world.run(&[
            "submit",
            "--json",
            "--player",
            "a",
            "--payload",
            "01",
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
        ]),
        5,
        "unreachable",
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .args([
            "verify".as_ref(),
            world.root.as_os_str(),
            "nobody".as_ref(),
            PACKAGE.as_ref(),
            "--json".as_ref(),
        ])
        .current_dir(repository_root())
        .output()
        .unwrap();
    expect_json_failure(&missing, 1, "world_missing");
    let bad_id = world.run_with(
        PACKAGE,
        &[
            "replay-verify",
            "--json",
            "--from-checkpoint",
            "--ticks-per-second",
            "x",
        ],
    );
    let object: serde_json::Value = serde_json::from_str(stdout(&bad_id).trim()).unwrap();
    assert_eq!(
        (bad_id.status.code(), object["error"]["code"].as_str()),
        (Some(2), Some("usage"))
    );
    let mut forged = false;
    forge(&world.segment(), |kind, body| {
        if kind == KIND_INPUTS && body_tick(body) == 5 && !forged {
            let length = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
            body[16 + length - 65] ^= 0x01;
            forged = true;
        }
    });
    let object = expect_json_failure(&world.run(&["verify", "--json"]), 4, "lineage_broken");
    assert_eq!(
        (object["world"].as_str(), object["verified"].as_bool()),
        (Some(WORLD), Some(false)),
        "the command's own fields stand beside the error: {object}"
    );
}

#[test]
fn a_forged_payload_is_caught_by_its_signature() {
    let world = World::new(30, 0);
    let mut forged = false;
    forge(&world.segment(), |kind, body| {
        // The last byte of the first envelope's payload sits just before its
        // 64-byte signature; the envelope starts after tick u64, count u32, length u32.
        if kind == KIND_INPUTS && body_tick(body) == 17 && !forged {
            let length = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
            body[16 + length - 65] ^= 0x01;
            forged = true;
        }
    });
    assert!(forged);
    let text = expect_failure(&world.run(&["verify"]), 4, "lineage_broken");
    assert!(
        text.contains("tick 17") && text.contains("signature"),
        "{text}"
    );
    let text = expect_failure(&world.run(&["replay-verify"]), 4, "input_refused_at_replay");
    assert!(
        text.contains("tick 17") && text.contains("bad signature"),
        "{text}"
    );
}

#[test]
fn a_forged_state_root_is_a_divergence_with_a_state_diff() {
    let world = World::new(30, 0);
    forge(&world.segment(), |kind, body| {
        if kind == KIND_TICK && body_tick(body) == 12 {
            // tick u64, input_count u32, input_root, receipt_root, state_root…
            body[12 + 64] ^= 0x80;
        }
    });
    let text = expect_failure(&world.run(&["verify"]), 4, "lineage_broken");
    assert!(text.contains("tick 12") && text.contains("C(t)"), "{text}");
    let text = expect_failure(&world.run(&["replay-verify"]), 3, "divergence");
    assert!(text.contains("diverged at tick 12"), "{text}");
    assert!(text.contains("state_root recorded"), "{text}");
    assert!(text.contains("state diff at tick 12"), "{text}");
    let (exit, report) = world.json(&["replay-report"]);
    assert_eq!(exit, 3);
    assert_eq!(report["divergences"][0]["code"], "divergence");
}

#[test]
fn a_torn_tail_is_reported_and_only_recover_truncates_it() {
    let world = World::new(20, 0);
    let segment = world.segment();
    let length = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(length - 10).unwrap();
    drop(file);
    let text = expect_failure(&world.run(&["verify"]), 4, "torn_tail");
    assert!(
        text.contains("0000000001.seg") && text.contains("run `recover`"),
        "{text}"
    );
    expect_failure(&world.run(&["simulate", "--ticks", "1"]), 4, "torn_tail");
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        length - 10,
        "nothing repaired yet"
    );
    let output = world.run(&["recover"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("removed a torn record of"), "{text}");
    assert!(
        text.contains("recovered from genesis: replayed 19 ticks"),
        "{text}"
    );
    let quarantined: Vec<_> = std::fs::read_dir(world.dir().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(quarantined.len(), 1, "the removed bytes are kept");
    let (exit, verify) = world.json(&["verify"]);
    assert_eq!(exit, 0, "{verify}");
    assert_eq!(verify["ticks"], 19);
    let output = world.run(&["simulate", "--ticks", "5", "--bots", "6", "--verify"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn corruption_in_the_middle_stops_with_the_file_and_offset() {
    let world = World::new(20, 0);
    let segment = world.segment();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    for command in ["verify", "replay-verify", "recover", "checkpoint"] {
        let text = expect_failure(&world.run(&[command]), 4, "corrupt");
        assert!(
            text.contains("0000000001.seg is corrupt at byte"),
            "{command}: {text}"
        );
    }
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "nothing was changed"
    );
    let output = world.run(&["doctor"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("FAIL  journal"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_damaged_checkpoint_is_passed_over_then_quarantined_by_recover() {
    let world = World::new(40, 15);
    let newest = world.dir().join("checkpoints/00000000000000000030.ckpt");
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[140] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();
    expect_failure(&world.run(&["verify"]), 4, "corrupt");
    let output = world.run(&["recover"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("00000000000000000030.ckpt to"), "{text}");
    assert!(
        text.contains("recovered from checkpoint 15: replayed 25 ticks"),
        "{text}"
    );
    assert!(!newest.exists());
    assert!(
        world
            .dir()
            .join("quarantine/checkpoints-00000000000000000030.ckpt")
            .exists()
    );
    let (exit, verify) = world.json(&["verify"]);
    assert_eq!(exit, 0, "{verify}");
}

#[test]
fn the_world_lock_names_its_holder_and_a_stale_one_is_taken_over() {
    let world = World::new(5, 0);
    let lock_path = world.dir().join("world.lock");
    {
        let _held = WorldLock::acquire(&lock_path).unwrap();
        let text = expect_failure(&world.run(&["checkpoint"]), 1, "world_locked");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        let (exit, status) = world.json(&["status"]);
        assert_eq!(exit, 0, "a live holder means running: {status}");
    }
    std::fs::write(&lock_path, "4194303\n").unwrap();
    let output = world.run(&["doctor"]);
    assert!(
        stdout(&output).contains("WARN  lock"),
        "{}",
        stdout(&output)
    );
    let output = world.run(&["recover"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("took over the stale world lock of pid 4194303"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&lock_path).unwrap(),
        "",
        "released cleanly"
    );
}

#[test]
fn commands_on_a_missing_world_say_so() {
    let world = World::new(1, 0);
    let output = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(["verify", world.root.to_str().unwrap(), "world-404", PACKAGE])
        .output()
        .unwrap();
    let text = expect_failure(&output, 1, "world_missing");
    assert!(text.contains("no world world-404"), "{text}");
}

/// `--help` opens with the crate's description (clap's `about`): it must not
/// promise commands "to come" that are built.
#[test]
fn help_promises_nothing_still_to_come() {
    let output = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let help = stdout(&output);
    assert!(!help.contains("to come"), "{help}");
    assert!(help.contains("every operator runbook command"), "{help}");
}

fn pretend_another_runtime_verified(world: &World) {
    let record = serde_json::json!({
        "format": 1,
        "runtime_version": "0.0.1-previous",
        "verified_through_tick": 0,
        "continuity_root": "00".repeat(32),
    });
    std::fs::write(world.dir().join("runtime.json"), record.to_string()).unwrap();
}

#[test]
fn a_new_runtime_replay_verifies_the_lineage_before_it_serves() {
    let world = World::new(30, 20);
    pretend_another_runtime_verified(&world);
    let addr = format!("127.0.0.1:{}", free_port());
    let started = world.run(&["start", "--http-addr", &addr]);
    assert!(started.status.success(), "{}", stderr(&started));
    let stopped = world.run(&["stop"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let log = std::fs::read_to_string(world.dir().join("node.log")).unwrap();
    assert!(
        log.contains("replay-verifying it from genesis before serving"),
        "{log}"
    );
    assert!(
        log.contains("the lineage replays to its recorded roots under this runtime"),
        "{log}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.dir().join("runtime.json")).unwrap()).unwrap();
    assert_eq!(record["runtime_version"], env!("CARGO_PKG_VERSION"));

    // A forged root before the newest checkpoint: recovery (from the
    // checkpoint) cannot see it; a new runtime's full replay does.
    forge(&world.segment(), |kind, body| {
        if kind == KIND_TICK && body_tick(body) == 12 {
            body[12 + 64] ^= 0x80;
        }
    });
    pretend_another_runtime_verified(&world);
    let output = world.run(&["run", "--http-addr", &addr]);
    let text = expect_failure(&output, 3, "divergence");
    assert!(text.contains("diverged at tick 12"), "{text}");
    let incident: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.dir().join("incidents/000001.json")).unwrap())
            .unwrap();
    assert_eq!(incident["kind"], "divergence");
    assert_eq!(incident["tick"], 12);
    assert_eq!(incident["detected_by"], "startup replay-verify");
    assert_eq!(incident["roots"][0][0], "state_root");
    let (exit, status) = world.json(&["status"]);
    assert_eq!(exit, 5);
    assert_eq!(status["incidents"], 1, "{status}");
    assert_eq!(status["last_incident"]["tick"], 12, "{status}");
}

#[test]
fn an_unresolved_incident_keeps_the_node_from_serving() {
    let world = World::new(5, 0);
    let incidents = world.dir().join("incidents");
    std::fs::create_dir_all(&incidents).unwrap();
    let incident = serde_json::json!({
        "format": 1, "kind": "divergence", "detected_by": "self-audit", "time_unix_ms": 0,
        "tick": 3, "roots": [["state_root", "00".repeat(32), "11".repeat(32)]],
        "runtime_version": "0.1.0", "package_root": "22".repeat(32), "message": "replay diverged at tick 3",
    });
    std::fs::write(incidents.join("000001.json"), incident.to_string()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let text = expect_failure(
        &world.run(&["run", "--http-addr", &addr]),
        3,
        "incident_unresolved",
    );
    assert!(text.contains("incidents/resolved"), "{text}");
    std::fs::create_dir_all(incidents.join("resolved")).unwrap();
    std::fs::rename(
        incidents.join("000001.json"),
        incidents.join("resolved/000001.json"),
    )
    .unwrap();
    let started = world.run(&["start", "--http-addr", &addr]);
    assert!(started.status.success(), "{}", stderr(&started));
    let stopped = world.run(&["stop"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
}
