//! `simulate` end to end, through the real binary, from the repository root.

use std::path::PathBuf;
use std::process::{Command, Output};

use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, repository_root};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A runtime root of its own under the temp dir (not created: `simulate`
/// creates it), removed on drop.
struct Root {
    _temp: TempDir,
    path: PathBuf,
}

impl Root {
    fn new() -> Root {
        let temp = TempDir::new("sim");
        let path = temp.join("root");
        Root { _temp: temp, path }
    }

    fn as_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp dir")
    }
}

fn simulate_in(root: &Root, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["simulate", root.as_str(), "world-001", PACKAGE, "--json"];
    args.extend_from_slice(extra);
    let output = run(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "simulate failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    serde_json::from_str(stdout.lines().next().expect("one line")).expect("json")
}

/// A simulation of a new world in a fresh runtime root.
fn simulate_json(extra: &[&str]) -> serde_json::Value {
    simulate_in(&Root::new(), extra)
}

fn roots(summary: &serde_json::Value) -> [String; 4] {
    [
        "state_root",
        "input_root",
        "receipt_root",
        "continuity_root",
    ]
    .map(|name| summary[name].as_str().expect("hex root").to_string())
}

/// Runs two simulations at once, in two processes, and returns both summaries.
fn twice(extra: &[&str]) -> (serde_json::Value, serde_json::Value) {
    std::thread::scope(|scope| {
        let first = scope.spawn(|| simulate_json(extra));
        let second = simulate_json(extra);
        (first.join().expect("first run"), second)
    })
}

#[test]
fn same_run_in_two_processes_gives_identical_roots() {
    let (first, second) = twice(&["--ticks", "300", "--bots", "48", "--seed", "7"]);
    assert_eq!(first, second);
    assert_eq!(first["head_tick"], 300);
    let applied = first["receipts"]["applied"].as_u64().unwrap();
    assert!(
        applied > 300,
        "a 48-bot match applies many inputs, got {applied}"
    );
    for root in roots(&first) {
        assert_eq!(root.len(), 64);
        assert_eq!(root, root.to_lowercase());
    }
}

#[test]
fn different_seeds_give_different_roots() {
    let one = simulate_json(&["--ticks", "100", "--bots", "16", "--seed", "1"]);
    let two = simulate_json(&["--ticks", "100", "--bots", "16", "--seed", "2"]);
    assert_eq!(one["genesis_root"], two["genesis_root"]);
    assert_ne!(one["state_root"], two["state_root"]);
    assert_ne!(one["continuity_root"], two["continuity_root"]);
}

#[test]
fn long_64_bot_match_is_identical_across_runs_and_replays() {
    let (first, second) = twice(&[
        "--ticks", "10000", "--bots", "64", "--seed", "42", "--verify",
    ]);
    assert_eq!(roots(&first), roots(&second));
    assert_eq!(first, second);
    assert_eq!(first["head_tick"], 10_000);
    assert_eq!(first["verified"], true);
    assert_eq!(first["players"].as_object().unwrap().len(), 64);
}

#[test]
fn scripted_inputs_apply_reject_and_dump_sorted_state() {
    let dir = std::env::temp_dir().join(format!("ea-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = dir.join("inputs.jsonl");
    // MOVE before JOIN (rejected: not joined), JOIN, MOVE within speed, MOVE too fast.
    let lines = [
        r#"{"tick": 1, "player": "alice", "payload": "020101"}"#,
        r#"{"tick": 1, "player": "alice", "payload": "01"}"#,
        r#"{"tick": 2, "player": "alice", "payload": "020203"}"#,
        r#"{"tick": 2, "player": "bob", "payload": "01"}"#,
        r#"{"tick": 3, "player": "bob", "payload": "027f7f"}"#,
    ];
    std::fs::write(&inputs, lines.join("\n")).unwrap();
    let path = inputs.to_str().unwrap();
    let root = Root::new();
    let output = run(&[
        "simulate",
        root.as_str(),
        "world-001",
        PACKAGE,
        "--inputs",
        path,
        "--json",
        "--dump-state",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    let summary: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        summary["head_tick"], 3,
        "ticks default to the last scripted tick"
    );
    assert_eq!(summary["inputs"], 5);
    assert_eq!(summary["receipts"]["rejected"], 2);
    // Three applied inputs plus one applied ea_tick hook per tick.
    assert_eq!(summary["receipts"]["applied"], 3 + 3);
    let alice = everarcade_protocol::test_signing_key("alice")
        .verifying_key()
        .to_bytes();
    assert_eq!(summary["players"]["alice"], hex::encode(alice));
    let keys: Vec<String> = lines
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            entry["key"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(keys.len(), summary["state_keys"].as_u64().unwrap() as usize);
    let mut sorted = keys.clone();
    sorted.sort_by_key(|key| hex::decode(key).unwrap());
    assert_eq!(keys, sorted);
}

fn check_failure(args: &[&str], exit: i32, code: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(exit), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("error[{code}]")),
        "{args:?}: {stderr}"
    );
}

#[test]
fn bad_command_lines_fail_with_their_codes() {
    check_failure(
        &["simulate", "r", "World_1", PACKAGE],
        2,
        "invalid_world_id",
    );
    check_failure(
        &["simulate", "r", "world-001", "runtime/games/missing"],
        6,
        "package_not_found",
    );
    check_failure(
        &["simulate", "r", "world-001", "runtime"],
        6,
        "manifest_missing",
    );
    check_failure(
        &[
            "simulate",
            "r",
            "world-001",
            PACKAGE,
            "--inputs",
            "/nonexistent/x.jsonl",
        ],
        2,
        "inputs_unreadable",
    );
    check_failure(&["verify", "r", "world-001", PACKAGE], 1, "world_missing");
    let output = run(&["simulate", "r", "world-001", PACKAGE, "--ticks", "many"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn bad_inputs_files_name_the_line() {
    let dir = std::env::temp_dir().join(format!("ea-inputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "{\"tick\": 2, \"player\": \"a\", \"payload\": \"01\"}\n{\"tick\": 1, \"player\": \"a\", \"payload\": \"01\"}",
            ":2:",
        ),
        (
            "{\"tick\": 1, \"player\": \"a\", \"payload\": \"zz\"}",
            ":1: payload is not hex",
        ),
        (
            "{\"tick\": 0, \"player\": \"a\", \"payload\": \"01\"}",
            ":1: tick must be at least 1",
        ),
        (
            "{\"tick\": 1, \"player\": \"a\", \"payload\": \"01\", \"extra\": 1}",
            ":1: unknown field",
        ),
        ("not json", ":1:"),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("{index}.jsonl"));
        std::fs::write(&path, text).unwrap();
        let output = run(&[
            "simulate",
            "r",
            "world-001",
            PACKAGE,
            "--inputs",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains("error[inputs_invalid]") && stderr.contains(expected),
            "{text}: {stderr}"
        );
    }
    let path = dir.join("beyond.jsonl");
    std::fs::write(
        &path,
        "{\"tick\": 9, \"player\": \"a\", \"payload\": \"01\"}",
    )
    .unwrap();
    check_failure(
        &[
            "simulate",
            "r",
            "world-001",
            PACKAGE,
            "--inputs",
            path.to_str().unwrap(),
            "--ticks",
            "3",
        ],
        2,
        "inputs_beyond_ticks",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `simulate` and `submit` read `--inputs` with one parser: an over-long
/// file and a malformed line are refused before anything runs or is sent,
/// with the same exit status, code and `<path>:<line>: <what>` message.
#[test]
fn simulate_and_submit_refuse_the_same_bad_inputs_files_alike() {
    let temp = TempDir::new("inputs-shared");
    let root = temp.join("root");
    let line = "{\"tick\": 1, \"player\": \"a\", \"payload\": \"01\"}\n";
    // One past the bound of 100,000 inputs.
    let long = temp.join("long.jsonl");
    std::fs::write(&long, line.repeat(100_001)).unwrap();
    let malformed = temp.join("malformed.jsonl");
    std::fs::write(&malformed, format!("{line}{{\"tick\": 1}}\n")).unwrap();
    let cases = [
        (&long, ":100001: more than 100000 inputs"),
        (&malformed, ":2: missing field"),
    ];
    for (path, expected) in cases {
        let mut messages = Vec::new();
        for command in ["simulate", "submit"] {
            let mut args = vec![
                command,
                root.to_str().unwrap(),
                "world-001",
                PACKAGE,
                "--inputs",
                path.to_str().unwrap(),
            ];
            if command == "submit" {
                // Nothing listens there; the file is refused before any request.
                args.extend(["--addr", "127.0.0.1:9"]);
            }
            let output = run(&args);
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
            let wanted = format!("error[inputs_invalid]: {}{expected}", path.display());
            assert!(stderr.contains(&wanted), "{command}: {stderr}");
            messages.push(stderr);
        }
        assert_eq!(
            messages[0], messages[1],
            "the same refusal from both commands"
        );
    }
}

#[test]
fn a_world_continued_equals_one_run_of_all_its_ticks() {
    let root = Root::new();
    let common = ["--bots", "12", "--seed", "3", "--checkpoint-interval", "40"];
    let first = simulate_in(&root, &[&["--ticks", "60"], &common[..]].concat());
    assert_eq!(first["first_tick"], 1);
    assert_eq!(first["persisted"], true);
    let second = simulate_in(
        &root,
        &[&["--ticks", "60", "--verify"], &common[..]].concat(),
    );
    assert_eq!(second["first_tick"], 61);
    assert_eq!(second["head_tick"], 120);
    assert_eq!(second["verified"], true);
    let whole = simulate_json(&[&["--ticks", "120"], &common[..]].concat());
    assert_eq!(roots(&second), roots(&whole));
    assert_eq!(second["genesis_root"], whole["genesis_root"]);
    let checkpoints = root.path.join("worlds/world-001/checkpoints");
    let mut names: Vec<String> = std::fs::read_dir(checkpoints)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000040.ckpt",
            "00000000000000000080.ckpt",
            "00000000000000000120.ckpt"
        ]
    );
}

#[test]
fn amnesia_writes_nothing() {
    let root = Root::new();
    let summary = simulate_in(
        &root,
        &["--ticks", "30", "--bots", "4", "--amnesia", "--verify"],
    );
    assert_eq!(summary["persisted"], false);
    assert_eq!(summary["verified"], true);
    assert!(
        !root.path.exists(),
        "--amnesia created {}",
        root.path.display()
    );
    let durable = simulate_json(&["--ticks", "30", "--bots", "4"]);
    assert_eq!(roots(&summary), roots(&durable));
}

/// `simulate` enters a durable world through the front door as a node
/// does: it creates no operator key, records the runtime that verified the
/// lineage, and refuses a world with an unresolved incident (exit 3), which
/// it opens again once the incident is resolved.
#[test]
fn simulate_enters_through_the_front_door_and_refuses_an_incident() {
    let root = Root::new();
    let first = simulate_in(&root, &["--ticks", "5"]);
    assert_eq!(first["head_tick"], 5);
    let world = root.path.join("worlds/world-001");
    assert!(
        !world.join("operator").exists(),
        "simulate created an operator key"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(record["runtime_version"], env!("CARGO_PKG_VERSION"));
    let incidents = world.join("incidents");
    std::fs::create_dir_all(&incidents).unwrap();
    let incident = serde_json::json!({
        "format": 1, "kind": "divergence", "detected_by": "self-audit", "time_unix_ms": 0,
        "tick": 3, "roots": [["state_root", "00".repeat(32), "11".repeat(32)]],
        "runtime_version": "0.1.0", "package_root": "22".repeat(32), "message": "replay diverged at tick 3",
    });
    std::fs::write(incidents.join("000001.json"), incident.to_string()).unwrap();
    check_failure(
        &[
            "simulate",
            root.as_str(),
            "world-001",
            PACKAGE,
            "--ticks",
            "1",
        ],
        3,
        "incident_unresolved",
    );
    std::fs::create_dir_all(incidents.join("resolved")).unwrap();
    std::fs::rename(
        incidents.join("000001.json"),
        incidents.join("resolved/000001.json"),
    )
    .unwrap();
    let again = simulate_in(&root, &["--ticks", "1"]);
    assert_eq!(again["head_tick"], 6);
}
