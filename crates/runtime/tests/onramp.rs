//! The game developer's on-ramp, through the real binary: `new`, `package
//! check`, `simulate --trace`, and the remedy `package_mismatch` names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use everarcade_testkit::manifest::small_manifest;
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, expect_failure, repository_root, stderr, stdout, text};

/// The nine manifest limits, in the order `package check` reports them.
const LIMITS: [&str; 9] = [
    "fuel_per_input",
    "fuel_per_tick",
    "memory_bytes",
    "inputs_per_tick",
    "payload_bytes",
    "key_bytes",
    "value_bytes",
    "events_per_input",
    "event_bytes",
];

fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn succeeded(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
}

fn json_line(text: &str) -> serde_json::Value {
    let line = text.lines().next().expect("a line of output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Fails (never skips) when the C toolchain the template needs is absent.
fn require_clang() {
    for tool in ["clang", "wasm-ld"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            found,
            "{tool} is needed to build the template: apt-get install -y clang lld"
        );
    }
}

/// `package check <dir> --json …`: the exit code and the report.
fn check_json(package: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value, Output) {
    let mut args = vec![
        "package".into(),
        "check".into(),
        package.as_os_str().to_owned(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let output = run(args);
    let report = json_line(&stdout(&output));
    (output.status.code(), report, output)
}

fn limit_row<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["limits"]
        .as_array()
        .expect("limits is an array")
        .iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {report}"))
}

/// A copy of the 2d-arena with `world.toml` lines replaced.
fn arena_copy(temp: &TempDir, replacements: &[(&str, &str)]) -> PathBuf {
    let dir = temp.join("arena");
    std::fs::create_dir_all(&dir).unwrap();
    let source = repository_root().join(PACKAGE);
    std::fs::copy(source.join("world.wasm"), dir.join("world.wasm")).unwrap();
    let mut manifest = std::fs::read_to_string(source.join("world.toml")).unwrap();
    for (line, replacement) in replacements {
        assert!(manifest.contains(line), "no line {line:?} in the manifest");
        manifest = manifest.replace(line, replacement);
    }
    std::fs::write(dir.join("world.toml"), manifest).unwrap();
    dir
}

#[test]
fn new_package_builds_and_passes_simulate_verify_at_once() {
    require_clang();
    let temp = TempDir::new("onramp-new");
    let package = temp.join("my-game");
    let root = temp.join("root");
    succeeded(&run(["new".as_ref(), package.as_os_str()]));
    let header = std::fs::read(package.join("include/everarcade.h")).unwrap();
    let sdk = std::fs::read(repository_root().join("sdk/c/everarcade.h")).unwrap();
    assert_eq!(header, sdk, "the header is the SDK's");
    let manifest = std::fs::read_to_string(package.join("world.toml")).unwrap();
    assert!(manifest.contains("name = \"my-game\""), "{manifest}");
    // New worlds check signatures under ZIP-215, in batches (PROTOCOL §4.3);
    // the simulate --verify below replays them under it.
    assert!(
        manifest.contains("\nsignatures = \"zip215\"\n"),
        "{manifest}"
    );
    // ... and derive bots' seeds from one XOF per tick (PROTOCOL §10.1).
    assert!(manifest.contains("\nbot_seeds = \"xof\"\n"), "{manifest}");
    let built = Command::new(package.join("build.sh")).output().unwrap();
    succeeded(&built);
    let output = run([
        "simulate".as_ref(),
        root.as_os_str(),
        "world-001".as_ref(),
        package.as_os_str(),
        "--ticks".as_ref(),
        "50".as_ref(),
        "--bots".as_ref(),
        "8".as_ref(),
        "--verify".as_ref(),
        "--json".as_ref(),
    ]);
    succeeded(&output);
    let summary = json_line(&stdout(&output));
    assert_eq!(summary["verified"], true, "{summary}");
    assert_eq!(summary["head_tick"], 50, "{summary}");
    assert!(
        summary["receipts"]["applied"].as_u64().unwrap() > 50,
        "{summary}"
    );
    for outcome in ["rejected", "trapped", "out_of_fuel"] {
        assert_eq!(summary["receipts"][outcome], 0, "{summary}");
    }
    // The measured limits in the template fit the sample.
    let (exit, report, output) = check_json(&package, &[]);
    assert_eq!(exit, Some(0), "{}", text(&output));
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn new_refuses_a_non_empty_directory_and_a_bad_name() {
    let temp = TempDir::new("onramp-new-refusals");
    let full = temp.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let output = run(["new".as_ref(), full.as_os_str()]);
    expect_failure(&output, 2, "directory_not_empty");
    assert_eq!(
        std::fs::read_dir(&full).unwrap().count(),
        1,
        "nothing written"
    );
    let output = run([
        "new".as_ref(),
        temp.join("fresh").as_os_str(),
        "--name".as_ref(),
        "bad\"name".as_ref(),
    ]);
    expect_failure(&output, 2, "invalid_name");
    assert!(!temp.join("fresh").exists(), "nothing written");
    // An empty directory is fine.
    let empty = temp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    succeeded(&run([
        "new".as_ref(),
        empty.as_os_str(),
        "--name".as_ref(),
        "demo".as_ref(),
    ]));
    assert!(empty.join("build.sh").exists());
}

#[test]
fn package_check_measures_the_arena_below_every_limit() {
    let package = repository_root().join(PACKAGE);
    let (exit, report, output) = check_json(&package, &["--ticks", "60", "--bots", "8"]);
    assert_eq!(exit, Some(0), "{}", text(&output));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["defects"].as_array().unwrap().len(), 0);
    assert_eq!(report["match"]["ticks"], 60);
    assert_eq!(report["match"]["persisted"], false);
    for name in LIMITS {
        let row = limit_row(&report, name);
        let measured = row["measured"].as_u64().unwrap();
        let limit = row["limit"].as_u64().unwrap();
        let suggested = row["suggested"].as_u64().unwrap();
        assert!(measured > 0, "{name} measured nothing: {row}");
        assert!(measured < limit, "{name} is not below its limit: {row}");
        assert!(
            suggested >= measured,
            "{name} suggestion below the need: {row}"
        );
        assert_eq!(row["fits"], true, "{row}");
        let headroom = row["headroom_percent"].as_f64().unwrap();
        assert!(headroom > 0.0 && headroom < 100.0, "{row}");
    }
    for name in ["fuel_per_input", "fuel_per_tick"] {
        let mean = limit_row(&report, name)["mean"].as_f64().unwrap();
        assert!(mean > 0.0, "{name} mean: {report}");
    }
    // The manifest says the arena's JOIN costs at most ~1.4k fuel.
    let fuel = limit_row(&report, "fuel_per_input")["measured"]
        .as_u64()
        .unwrap();
    assert!((100..10_000).contains(&fuel), "{report}");
    let output = run(["package".as_ref(), "check".as_ref(), package.as_os_str()]);
    succeeded(&output);
    assert!(
        stdout(&output).contains("every limit fits"),
        "{}",
        text(&output)
    );
}

#[test]
fn package_check_names_each_limit_below_the_measured_figure() {
    let temp = TempDir::new("onramp-check-tight");
    // The arena needs 33-byte keys and ~25k fuel for a tick of 8 bots.
    let package = arena_copy(
        &temp,
        &[
            ("key_bytes = 64", "key_bytes = 16"),
            ("fuel_per_tick = 50000000", "fuel_per_tick = 5000"),
        ],
    );
    let (exit, report, output) = check_json(&package, &["--ticks", "40", "--bots", "8"]);
    assert_eq!(exit, Some(6), "{}", text(&output));
    let error = expect_failure(&output, 6, "limit_exceeded");
    assert!(
        error.contains("key_bytes") && error.contains("fuel_per_tick"),
        "{error}"
    );
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        report["exceeded"],
        serde_json::json!(["fuel_per_tick", "key_bytes"])
    );
    let key = limit_row(&report, "key_bytes");
    assert_eq!(key["measured"], 33, "{key}");
    assert_eq!(key["fits"], false);
    assert!(key["headroom_percent"].as_f64().unwrap() < 0.0, "{key}");
    assert!(key["suggested"].as_u64().unwrap() >= 33, "{key}");
    let fuel = limit_row(&report, "fuel_per_tick");
    assert!(fuel["measured"].as_u64().unwrap() > 5000, "{fuel}");
    assert_eq!(limit_row(&report, "value_bytes")["fits"], true);
    // Text: the same verdict, each limit named.
    let output = run(["package".as_ref(), "check".as_ref(), package.as_os_str()]);
    expect_failure(&output, 6, "limit_exceeded");
    assert!(
        stdout(&output).contains("exceeded: fuel_per_tick, key_bytes"),
        "{}",
        text(&output)
    );
}

#[test]
fn package_check_reports_an_invalid_package_with_its_code() {
    let temp = TempDir::new("onramp-check-invalid");
    let package = arena_copy(&temp, &[("key_bytes = 64", "key_bytes = 0")]);
    let (exit, report, output) = check_json(&package, &[]);
    assert_eq!(exit, Some(6), "{}", text(&output));
    expect_failure(&output, 6, "limit_out_of_range");
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["defects"][0]["code"], "limit_out_of_range",
        "{report}"
    );
    std::fs::remove_file(package.join("world.wasm")).unwrap();
    std::fs::write(
        package.join("world.toml"),
        small_manifest("x", "1.0.0", 65536),
    )
    .unwrap();
    let (_, report, output) = check_json(&package, &[]);
    expect_failure(&output, 6, "module_missing");
    assert_eq!(report["defects"][0]["code"], "module_missing", "{report}");
}

/// A package whose `ea_input` logs a line and returns payload[0] (0 applies,
/// > 0 rejects with that code) and whose `ea_tick` logs a line.
fn logging_package(temp: &TempDir) -> PathBuf {
    let wat = r#"(module
  (import "ea" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "hello from input")
  (data (i32.const 32) "tick hook ran")
  (func (export "ea_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "ea_input") (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 0) (i32.const 16))
    (i32.load8_u offset=40 (local.get $ptr)))
  (func (export "ea_tick") (param i64)
    (call $log (i32.const 32) (i32.const 13))))"#;
    let dir = temp.join("logging");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("world.wasm"), wat::parse_str(wat).unwrap()).unwrap();
    let manifest = small_manifest("logging", "0.1.0", 65536);
    std::fs::write(dir.join("world.toml"), manifest).unwrap();
    dir
}

fn trace_run(temp: &TempDir, package: &Path, json: bool) -> Output {
    let inputs = temp.join("inputs.jsonl");
    std::fs::write(
        &inputs,
        "{\"tick\": 1, \"player\": \"alice\", \"payload\": \"00\"}\n\
         {\"tick\": 1, \"player\": \"bob\", \"payload\": \"05\"}\n",
    )
    .unwrap();
    let mut args = vec![
        "simulate".into(),
        temp.join("root").into_os_string(),
        "world-001".into(),
        package.as_os_str().to_owned(),
        "--amnesia".into(),
        "--ticks".into(),
        "2".into(),
        "--inputs".into(),
        inputs.into_os_string(),
        "--trace".into(),
    ];
    if json {
        args.push("--json".into());
    }
    let output = run(args);
    succeeded(&output);
    output
}

#[test]
fn simulate_trace_shows_each_receipt_and_the_guest_log() {
    let temp = TempDir::new("onramp-trace");
    let package = logging_package(&temp);
    let output = trace_run(&temp, &package, false);
    let trace = stderr(&output);
    assert!(
        trace.contains("trace tick 1: 3 receipts, 3 log lines"),
        "{trace}"
    );
    assert!(
        trace.contains("trace tick 2: 1 receipts, 1 log lines"),
        "{trace}"
    );
    let alice = trace
        .lines()
        .find(|l| l.contains("alice"))
        .expect("alice's receipt");
    assert!(
        alice.contains("applied") && alice.contains("code 0"),
        "{alice}"
    );
    let bob = trace
        .lines()
        .find(|l| l.contains("bob"))
        .expect("bob's receipt");
    assert!(bob.contains("rejected") && bob.contains("code 5"), "{bob}");
    assert!(trace.contains("log: hello from input"), "{trace}");
    assert!(trace.contains("log: tick hook ran"), "{trace}");
    assert!(
        stdout(&output).contains("continuity C(t)"),
        "the summary stays on stdout"
    );
    assert!(
        !stdout(&output).contains("trace tick"),
        "{}",
        stdout(&output)
    );

    let output = trace_run(&temp, &package, true);
    let summary = json_line(&stdout(&output));
    assert_eq!(summary["head_tick"], 2, "stdout keeps the summary");
    let lines: Vec<serde_json::Value> = stderr(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every trace line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4, "3 receipts in tick 1, 1 in tick 2");
    let first = &lines[0];
    assert_eq!(first["tick"], 1);
    assert_eq!(first["kind"], "input");
    assert_eq!(first["player"], "alice");
    assert_eq!(first["outcome"], "applied");
    assert!(first["fuel"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["events"], 0);
    assert_eq!(first["logs"], serde_json::json!(["hello from input"]));
    assert_eq!(lines[1]["outcome"], "rejected");
    assert_eq!(lines[1]["code"], 5);
    assert_eq!(lines[1]["logs"], serde_json::json!(["hello from input"]));
    assert_eq!(lines[2]["kind"], "tick_hook");
    assert_eq!(lines[2]["logs"], serde_json::json!(["tick hook ran"]));
    // Without --trace nothing is traced.
    let output = run([
        "simulate".as_ref(),
        temp.join("root").as_os_str(),
        "world-001".as_ref(),
        package.as_os_str(),
        "--amnesia".as_ref(),
        "--ticks".as_ref(),
        "2".as_ref(),
    ]);
    succeeded(&output);
    assert!(!stderr(&output).contains("trace tick"), "{}", text(&output));
}

#[test]
fn package_mismatch_names_the_remedies() {
    let temp = TempDir::new("onramp-mismatch");
    let root = temp.join("root");
    let arena = repository_root().join(PACKAGE);
    let simulate = |package: &Path| {
        run([
            "simulate".as_ref(),
            root.as_os_str(),
            "world-001".as_ref(),
            package.as_os_str(),
            "--ticks".as_ref(),
            "1".as_ref(),
        ])
    };
    succeeded(&simulate(&arena));
    let edited = arena_copy(&temp, &[]);
    std::fs::write(edited.join("NOTES.md"), "an edit changes the root\n").unwrap();
    let output = simulate(&edited);
    let error = expect_failure(&output, 6, "package_mismatch");
    for remedy in [
        "remedy:",
        "new world id",
        "--amnesia",
        "upgrade",
        "--to <pkg>",
        "semver",
    ] {
        assert!(error.contains(remedy), "no {remedy:?} in: {error}");
    }
}
