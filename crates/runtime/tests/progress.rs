//! Progress on a terminal, silence off one: the long commands run under a
//! pseudo-terminal (util-linux `script`) draw a bar with position, total,
//! rate and ETA on stderr; with piped output, or with `--json`, no progress
//! text reaches either stream and `--json` prints exactly one JSON object.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, repository_root, stderr, stdout, text};

/// Ticks of the test world: enough for several bar redraws.
const TICKS: u64 = 1_500;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_everarcade-runtime")
}

/// A shell word: `word` in single quotes.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs the binary with `args` under a pseudo-terminal; returns what the
/// terminal showed (stdout and stderr together).
fn on_terminal(args: &[&str]) -> String {
    let mut line = quote(binary());
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(repository_root())
        // A terminal that can move its cursor (CI may set no TERM at all).
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script runs");
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args:?} on a terminal: {shown}");
    shown
}

/// Runs the binary with `args`, both streams piped.
fn piped(args: &[&str]) -> Output {
    let output = Command::new(binary())
        .current_dir(repository_root())
        .env("TERM", "xterm")
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    output
}

/// A world of [`TICKS`] ticks with bots, made with piped output.
fn world() -> (TempDir, PathBuf) {
    let temp = TempDir::new("progress");
    let root = temp.join("root");
    let ticks = TICKS.to_string();
    let args = ["--bots", "8", "--ticks", ticks.as_str()];
    piped(&world_args("simulate", &root, &args));
    (temp, root)
}

fn world_args<'a>(command: &'a str, root: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, root.to_str().unwrap(), "world-001", PACKAGE];
    args.extend_from_slice(extra);
    args
}

/// The text a bar shows: total, rate and ETA.
fn assert_bar(shown: &str, total: &str) {
    for part in [total, "/s", "ETA "] {
        assert!(shown.contains(part), "wanted {part:?} in the bar: {shown}");
    }
}

/// Nothing of a bar: no ETA, no bar, no terminal control.
fn assert_no_progress(output: &Output) {
    for stream in [stdout(output), stderr(output)] {
        for part in [
            "ETA ",
            "[=",
            "[>",
            "\u{1b}[",
            "\r",
            "ticks (",
            "of journal (",
        ] {
            assert!(!stream.contains(part), "{part:?} off a terminal: {stream}");
        }
    }
}

/// Under `--json`: stdout is one JSON object on one line, stderr is empty.
fn assert_one_json_object(output: &Output) {
    let out = stdout(output);
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    let value: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(value.is_object(), "{out}");
    assert_eq!(stderr(output), "", "nothing on stderr under --json");
}

#[test]
fn simulate_shows_ticks_on_a_terminal_and_nothing_off_one() {
    let (_temp, root) = world();
    let shown = on_terminal(&world_args("simulate", &root, &["--ticks", "800"]));
    assert_bar(&shown, "/800 ticks");
    assert!(shown.contains("continuity C(t)"), "the summary: {shown}");

    let quiet = piped(&world_args("simulate", &root, &["--ticks", "800"]));
    assert_no_progress(&quiet);
    let json = piped(&world_args(
        "simulate",
        &root,
        &["--ticks", "800", "--json"],
    ));
    assert_no_progress(&json);
    assert_one_json_object(&json);
    // On a terminal too, --json prints the object alone.
    let shown = on_terminal(&world_args("simulate", &root, &["--ticks", "5", "--json"]));
    let value: serde_json::Value = serde_json::from_str(shown.trim()).expect("only JSON");
    assert_eq!(value["head_tick"], TICKS + 3 * 800 + 5);
}

#[test]
fn verify_prints_each_pass_line_as_its_checks_finish() {
    let (_temp, root) = world();
    let shown = on_terminal(&world_args("verify", &root, &[]));
    assert_bar(&shown, "MiB of journal");
    // The package is checked at the journal's first record: its PASS line
    // is out while the bar still moves over the rest of the journal.
    let package = shown.find("PASS  package").expect("package line");
    let journal = shown.find("PASS  journal").expect("journal line");
    assert!(
        shown[package..journal].contains("of journal"),
        "a bar drawn between the package's and the journal's PASS lines: {shown}"
    );
    let lines: Vec<&str> = shown
        .lines()
        .filter_map(|line| line.find("PASS  ").map(|at| &line[at..]))
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "package",
            "journal",
            "ticks",
            "envelopes",
            "checkpoints",
            "operator"
        ],
        "every PASS line once, in order: {shown}"
    );

    let quiet = piped(&world_args("verify", &root, &[]));
    assert_no_progress(&quiet);
    assert!(stdout(&quiet).contains("PASS  operator"));
    let json = piped(&world_args("verify", &root, &["--json"]));
    assert_no_progress(&json);
    assert_one_json_object(&json);
}

#[test]
fn replay_commands_verify_bundle_and_restore_show_bars_on_a_terminal_only() {
    let (temp, root) = world();
    for command in ["replay-verify", "replay-report"] {
        let shown = on_terminal(&world_args(command, &root, &[]));
        assert_bar(&shown, "MiB of journal");
        assert!(shown.contains(&format!("{command} [")), "{shown}");
        let quiet = piped(&world_args(command, &root, &[]));
        assert_no_progress(&quiet);
        let json = piped(&world_args(command, &root, &["--json"]));
        assert_no_progress(&json);
        assert_one_json_object(&json);
    }

    let bundle = temp.join("window.bundle");
    let window = [
        "--from",
        "100",
        "--to",
        "1500",
        "--out",
        bundle.to_str().unwrap(),
    ];
    // A bundle is signed by the world's operator key; export never makes one.
    let root_text = root.to_str().unwrap();
    piped(&["keys", "rotate", root_text, "world-001", PACKAGE]);
    piped(&world_args("export-bundle", &root, &window));
    let bundle = bundle.to_str().unwrap();
    let shown = on_terminal(&["verify-bundle", bundle]);
    assert_bar(&shown, "/1400 ticks");
    let quiet = piped(&["verify-bundle", bundle]);
    assert_no_progress(&quiet);
    let json = piped(&["verify-bundle", bundle, "--json"]);
    assert_no_progress(&json);
    assert_one_json_object(&json);

    let backup = temp.join("backup");
    let backup_arg = ["--backup-dir", backup.to_str().unwrap()];
    piped(&world_args("backup", &root, &backup_arg));
    let from = ["--from", backup.to_str().unwrap()];
    let shown = on_terminal(&world_args("restore", &root, &from));
    assert!(
        shown.contains("restore [") && shown.contains("phase "),
        "{shown}"
    );
    assert!(
        shown.contains("/5 (") && shown.contains("replaying"),
        "{shown}"
    );
    let quiet = piped(&world_args("restore", &root, &from));
    assert_no_progress(&quiet);
    let json = piped(&world_args(
        "restore",
        &root,
        &[&from[..], &["--json"]].concat(),
    ));
    assert_no_progress(&json);
    assert_one_json_object(&json);
}
