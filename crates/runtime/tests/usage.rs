//! Usage reports end to end through the real binary: a node with a short
//! `usage.interval_ms` and an HTTP sink that refuses, then accepts. The
//! reports pile up in the backlog (on disk, 0600), retries show in the
//! metrics and `usage_submit_failed` in the log, a report that cannot be
//! written leaves the world running, a SIGKILL loses nothing, and after the
//! sink recovers every report arrives, each once, tiling the lineage from
//! tick 1. `usage verify` accepts each delivered report against the world
//! and refuses a changed byte, a number altered and re-signed with another
//! key, and one altered and re-signed with the world's own key (naming the
//! field); `usage report` rebuilds the same numbers offline.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use everarcade_client::Client;
use everarcade_protocol::WorldId;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, WorldDir};
use everarcade_testkit::temp::TempDir;
use everarcade_usage::SignedReport;
use everarcade_usage::report::parse_window_file_name;

mod common;

use common::{PACKAGE, WORLD, expect_failure, repository_root, stdout, text};

const READY_WITHIN: Duration = Duration::from_secs(120);
const PHASE_MAX: Duration = Duration::from_secs(60);

/// Digest → (report bytes, arrivals).
type Received = BTreeMap<String, (Vec<u8>, u32)>;

/// The sink's state: whether it accepts, and what it received.
#[derive(Clone, Default)]
struct SinkState {
    accept: Arc<Mutex<bool>>,
    received: Arc<Mutex<Received>>,
}

async fn answer(state: SinkState, body: axum::body::Bytes) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    if !*state.accept.lock().unwrap() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not now".into());
    }
    let Ok(batch) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON".into());
    };
    let mut accepted = Vec::new();
    for report in batch["reports"].as_array().cloned().unwrap_or_default() {
        let digest = report["digest"].as_str().unwrap_or_default().to_string();
        let bytes = hex::decode(report["bytes"].as_str().unwrap_or_default()).unwrap_or_default();
        let mut received = state.received.lock().unwrap();
        received.entry(digest.clone()).or_insert((bytes, 0)).1 += 1;
        accepted.push(digest);
    }
    (
        StatusCode::OK,
        serde_json::json!({ "accepted": accepted }).to_string(),
    )
}

fn start_sink(runtime: &tokio::runtime::Runtime, state: SinkState) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/usage", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/usage",
        axum::routing::post(move |body: axum::body::Bytes| answer(state.clone(), body)),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Node {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Node {
    fn start(root: &Path, sink: &str, log: PathBuf) -> Node {
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let sink = format!("usage.http_url={sink}");
        let options = [
            "--set",
            "usage.interval_ms=400",
            "--set",
            &sink,
            "--set",
            "usage.batch_size=2",
            "--set",
            "usage.retry_initial_ms=100",
            "--set",
            "usage.retry_max_ms=400",
            "--set",
            "usage.submit_timeout_ms=2000",
        ];
        let child = common::spawn_run(root, PACKAGE, &address, &options, &log);
        let node = Node {
            child,
            address,
            log,
        };
        let client = everarcade_client::BlockingClient::new(node.client());
        if let Err(error) = client.wait_ready(READY_WITHIN) {
            panic!("the node never became ready: {error}\n{}", node.log_text());
        }
        node
    }

    fn client(&self) -> Client {
        Client::new(&self.address, WorldId::new(WORLD).unwrap()).unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metric(&self, runtime: &tokio::runtime::Runtime, name: &str) -> u64 {
        let text = runtime.block_on(self.client().metrics()).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in the metrics"))
            .trim()
            .parse()
            .unwrap()
    }

    fn wait(&self, what: &str, mut done: impl FnMut(&Node) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < PHASE_MAX,
                "timed out waiting for {what}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Node {
    /// SIGKILL: no graceful anything.
    fn kill(mut self) {
        self.child.kill().expect("the node is running");
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime_command(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The report files on disk, by window.
fn report_files(world: &Path) -> BTreeMap<(u64, u64), Vec<u8>> {
    let dir = world.join("usage/reports");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with('.') {
            continue; // a report being written
        }
        let window = parse_window_file_name(&name).unwrap_or_else(|| panic!("stray {name}"));
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
        files.insert(window, std::fs::read(entry.path()).unwrap());
    }
    files
}

#[test]
fn reports_survive_refusal_and_sigkill_and_arrive_once() {
    let scratch = TempDir::new("usage-e2e");
    let root = scratch.join("root");
    let world = root.join("worlds").join(WORLD);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sink = SinkState::default();
    let url = start_sink(&runtime, sink.clone());

    // A report that cannot be written (here `usage/` is a file, as good as
    // a full disk) is logged and its window stays open; the world ticks on.
    std::fs::create_dir_all(&world).unwrap();
    std::fs::write(world.join("usage"), b"in the way").unwrap();
    let first = Node::start(&root, &url, scratch.join("first.log"));
    first.wait("a failed report", |node| {
        node.log_text().matches("usage_report_failed").count() >= 2
    });
    let head = first.metric(&runtime, "everarcade_head_tick");
    first.wait("ticks after the failures", |node| {
        node.metric(&runtime, "everarcade_head_tick") > head + 5
    });
    std::fs::remove_file(world.join("usage")).unwrap();

    // The sink refuses: the backlog grows and retries count.
    first.wait("a backlog and retries", |node| {
        node.metric(&runtime, "everarcade_usage_backlog_reports") >= 3
            && node.metric(&runtime, "everarcade_usage_submit_retries_total") >= 2
    });
    assert!(first.log_text().contains("usage_submit_failed"));
    assert_eq!(
        first.metric(&runtime, "everarcade_usage_submitted_total"),
        0
    );
    let before_kill = report_files(&world);
    assert!(before_kill.len() >= 3);
    assert_eq!(
        before_kill.keys().next().unwrap().0,
        1,
        "the first report covers the ticks of the failed attempts"
    );
    first.kill();

    // After a SIGKILL the backlog is still there; the sink recovers.
    let second = Node::start(&root, &url, scratch.join("second.log"));
    second.wait("retries after the restart", |node| {
        node.metric(&runtime, "everarcade_usage_submit_retries_total") >= 1
    });
    assert!(
        second.metric(&runtime, "everarcade_usage_backlog_reports") >= before_kill.len() as u64
    );
    *sink.accept.lock().unwrap() = true;
    let produced_at_accept = report_files(&world).len();
    second.wait("an empty backlog after new reports", |node| {
        report_files(&world).len() > produced_at_accept + 1
            && node.metric(&runtime, "everarcade_usage_backlog_reports") == 0
    });
    let submitted = second.metric(&runtime, "everarcade_usage_submitted_total");
    let stop = runtime_command(&["stop", root.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(stop.status.success(), "{}", text(&stop));
    let mut second = second;
    assert!(second.child.wait().unwrap().success());

    // Every report on disk arrived, each once, and they tile the lineage.
    let files = report_files(&world);
    let received = sink.received.lock().unwrap().clone();
    assert!(submitted as usize >= files.len().saturating_sub(1));
    let mut next = 1;
    for ((first_tick, last_tick), bytes) in &files {
        assert_eq!(
            *first_tick,
            next,
            "reports tile the lineage: {:?}",
            files.keys()
        );
        next = last_tick + 1;
        let report = SignedReport::decode(bytes).unwrap();
        let digest = report.digest.to_hex();
        let acked = world
            .join("usage/acked/http")
            .join(format!("{first_tick:020}-{last_tick:020}.ack"));
        if acked.exists() {
            let (sent, _) = received.get(&digest).unwrap_or_else(|| {
                panic!("report {first_tick}..={last_tick} acknowledged, never received")
            });
            assert_eq!(sent, bytes);
        }
    }
    assert_eq!(
        received.len(),
        files
            .keys()
            .filter(|(a, b)| world
                .join(format!("usage/acked/http/{a:020}-{b:020}.ack"))
                .exists())
            .count(),
        "the sink holds exactly the acknowledged reports"
    );
    assert!(received.len() >= before_kill.len());
    // Only a report made in the last moments before the stop may still wait.
    let waiting: Vec<_> = files
        .keys()
        .filter(|(a, b)| {
            !world
                .join(format!("usage/acked/http/{a:020}-{b:020}.ack"))
                .exists()
        })
        .collect();
    assert!(
        waiting.len() <= 1 && waiting.iter().all(|w| Some(*w) == files.keys().last()),
        "unacknowledged: {waiting:?}"
    );
    eprintln!(
        "{} reports over ticks 1..={}, {} delivered ({} arrivals), {} before the SIGKILL",
        files.len(),
        next - 1,
        received.len(),
        received.values().map(|(_, n)| n).sum::<u32>(),
        before_kill.len()
    );
    verify_delivered(&scratch, &root, &received);
}

fn verify_delivered(scratch: &TempDir, root: &Path, received: &Received) {
    let root_arg = root.to_str().unwrap();
    let mut first_file = None;
    for (digest, (bytes, _)) in received {
        let file = scratch.join(format!("{digest}.report"));
        std::fs::write(&file, bytes).unwrap();
        let output = runtime_command(&[
            "usage",
            "verify",
            file.to_str().unwrap(),
            "--root",
            root_arg,
            "--world",
            WORLD,
            "--json",
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let answer: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
        assert_eq!(answer["recomputed"], true);
        first_file.get_or_insert(file);
    }
    let file = first_file.expect("a delivered report");
    let bytes = std::fs::read(&file).unwrap();
    let verify = |path: &Path| {
        runtime_command(&[
            "usage",
            "verify",
            path.to_str().unwrap(),
            "--root",
            root_arg,
            "--world",
            WORLD,
        ])
    };

    // Any changed byte is refused.
    let changed = scratch.join("changed.report");
    for at in [0, 20, bytes.len() / 2, bytes.len() - 1] {
        let mut altered = bytes.clone();
        altered[at] ^= 0x10;
        std::fs::write(&changed, &altered).unwrap();
        let output = verify(&changed);
        assert!(
            [8, 9].contains(&output.status.code().unwrap()),
            "byte {at}: {}",
            text(&output)
        );
    }

    // A number altered and re-signed with another key: not the operator's.
    let mut report = SignedReport::decode(&bytes).unwrap().report;
    report.counted.fuel_inputs += 1;
    let other = TempDir::new("usage-other-key");
    let other_dir = WorldDir::new(other.path(), &WorldId::new(WORLD).unwrap());
    let (other_keys, _) = OperatorKeys::load_or_create(&DiskStorage, &other_dir, 0).unwrap();
    std::fs::write(&changed, report.clone().sign(&other_keys).bytes).unwrap();
    expect_failure(&verify(&changed), 9, "unknown_operator_key");

    // Altered and re-signed with the world's own key: the journal refutes it.
    let world_dir = WorldDir::new(root, &WorldId::new(WORLD).unwrap());
    let keys = OperatorKeys::load(&DiskStorage, &world_dir)
        .unwrap()
        .unwrap();
    std::fs::write(&changed, report.clone().sign(&keys).bytes).unwrap();
    let refused = expect_failure(&verify(&changed), 4, "usage_report_mismatch");
    assert!(refused.contains("field counted.fuel_inputs"), "{refused}");

    // Without the world, only the signature is checked.
    let output = runtime_command(&["usage", "verify", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(stdout(&output).contains("not checked"));

    // Offline, the same window counts the same.
    let original = SignedReport::decode(&bytes).unwrap().report;
    let out = scratch.join("offline.report");
    let output = runtime_command(&[
        "usage",
        "report",
        root_arg,
        WORLD,
        PACKAGE,
        "--from",
        &original.first_tick.to_string(),
        "--to",
        &original.last_tick.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let offline = SignedReport::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(offline.report.counted, original.counted);
    assert_eq!(
        offline.report.end_continuity_root,
        original.end_continuity_root
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let output = verify(&out);
    assert!(output.status.success(), "{}", text(&output));
    let beyond = runtime_command(&[
        "usage", "report", root_arg, WORLD, PACKAGE, "--from", "1", "--to", "99999999",
    ]);
    expect_failure(&beyond, 2, "window_beyond_head");
}

fn config_command(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EVERARCADE_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// `[usage]` through every layer: file, environment, `--set`; `config
/// validate` refuses what cannot work; `config print` redacts the URLs.
#[test]
fn usage_settings_are_layered_validated_and_redacted() {
    let scratch = TempDir::new("usage-config");
    let file = scratch.join("node.toml");
    std::fs::write(
        &file,
        "[usage]\ninterval_ms = 60000\nbatch_size = 500\nredis_url = \"redis://:secret@127.0.0.1:6379\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let output = config_command(&["config", "validate", path], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let output = config_command(
        &[
            "config",
            "print",
            "--json",
            "--config",
            path,
            "--set",
            "usage.batch_size=7",
        ],
        &[("EVERARCADE_USAGE_INTERVAL_MS", "5000")],
    );
    assert!(output.status.success(), "{}", text(&output));
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["usage"]["interval_ms"], 5000);
    assert_eq!(config["usage"]["batch_size"], 7);
    assert_eq!(config["usage"]["redis_url"], "<redacted>");
    assert_eq!(config["usage"]["redis_stream"], "usage:reports");
    assert!(!stdout(&output).contains("secret"));

    for (bad, field) in [
        ("[usage]\nbatch_size = 0\n", "usage.batch_size"),
        (
            "[usage]\nhttp_url = \"https://example.org/usage\"\n",
            "usage.http_url",
        ),
        (
            "[usage]\nredis_url = \"http://127.0.0.1\"\n",
            "usage.redis_url",
        ),
        (
            "[usage]\nretry_initial_ms = 10\nretry_max_ms = 5\n",
            "usage.retry_initial_ms",
        ),
        ("[usage]\nintervl_ms = 5\n", "usage.intervl_ms"),
    ] {
        std::fs::write(&file, bad).unwrap();
        let output = config_command(&["config", "validate", path], &[]);
        let message = expect_failure(&output, 2, "invalid_config");
        assert!(message.contains(field), "{bad}: {message}");
    }
}
