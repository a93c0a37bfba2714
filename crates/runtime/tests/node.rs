//! The node's lifecycle through the real binary: start/status/checkpoint/
//! stop/restart, fail-fast startup, SIGTERM, and amnesia's no-files proof.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use everarcade_client::BlockingClient;
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, free_port, repository_root, text};

/// A path that does not exist yet, inside a temporary directory removed
/// (with whatever the test and its node wrote there) when the guard drops.
struct Scratch {
    _dir: TempDir,
    path: PathBuf,
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

impl std::ops::Deref for Scratch {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.path
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = TempDir::new(&format!("node-{name}"));
    let path = dir.join(name);
    Scratch { _dir: dir, path }
}

fn command(root: &Path, verb: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"));
    command
        .current_dir(repository_root())
        .arg(verb)
        .arg(root)
        .arg(WORLD)
        .arg(PACKAGE)
        .args(extra)
        .env_remove("EVERARCADE_ADMIN_TOKEN")
        .env_remove("EVERARCADE_HTTP_ADDR");
    command
}

fn run(root: &Path, verb: &str, extra: &[&str]) -> Output {
    command(root, verb, extra).output().unwrap()
}

fn client(port: u16) -> BlockingClient {
    BlockingClient::connect(&format!("127.0.0.1:{port}"), WorldId::new(WORLD).unwrap()).unwrap()
}

fn wait_ready(client: &BlockingClient, child: &mut Child) {
    let started = Instant::now();
    while client.readyz().is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the node exited before it was ready: {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
}

fn files_under(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            out.push(entry.path());
            out.extend(files_under(&entry.path()));
        }
    }
    out
}

#[test]
fn amnesia_writes_no_file_anywhere() {
    let root = scratch("amnesia-root");
    let tmp = scratch("amnesia-tmp");
    let registry = scratch("amnesia-registry");
    std::fs::create_dir_all(&tmp).unwrap();
    let port = free_port();
    let mut child = command(
        &root,
        "run",
        &["--amnesia", "--http-addr", &format!("127.0.0.1:{port}")],
    )
    .env("TMPDIR", &tmp)
    .env("XDG_RUNTIME_DIR", &registry)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let client = client(port);
    wait_ready(&client, &mut child);
    assert!(
        client.version().unwrap().features.amnesia,
        "/version says amnesia"
    );
    let key = test_signing_key("amnesiac");
    let world = WorldId::new(WORLD).unwrap();
    for nonce in 1..=5 {
        client
            .submit(&Envelope::sign(&world, &key, nonce, vec![1]))
            .expect("an input is admitted in memory");
    }
    sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        !root.exists(),
        "amnesia created the runtime root: {:?}",
        files_under(&root)
    );
    assert_eq!(
        files_under(&tmp),
        Vec::<PathBuf>::new(),
        "amnesia wrote to the temp dir"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
    // Only the registry entry's lock is left (empty, free): the record of
    // where the node listened went with it.
    let left = files_under(&registry);
    assert_eq!(left.len(), 2, "{left:?}");
    let lock = left
        .iter()
        .find(|path| path.extension().is_some_and(|e| e == "lock"));
    assert_eq!(std::fs::read(lock.expect("the lock file")).unwrap(), b"");
}

#[test]
fn an_amnesia_node_is_found_by_status_stop_and_restart() {
    let root = scratch("amnesia-found");
    let registry = scratch("amnesia-found-registry");
    let addr = format!("127.0.0.1:{}", free_port());
    let in_registry = |verb: &str, extra: &[&str]| {
        command(&root, verb, extra)
            .env("XDG_RUNTIME_DIR", &registry)
            .output()
            .unwrap()
    };
    let started = in_registry("start", &["--amnesia", "--http-addr", &addr]);
    assert!(started.status.success(), "{}", text(&started));
    assert!(!root.exists(), "start --amnesia wrote under the root");
    let again = in_registry("start", &["--amnesia", "--http-addr", &addr]);
    assert!(text(&again).contains("already_running"), "{}", text(&again));

    let status = in_registry("status", &["--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let live: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (live["live"].clone(), live["amnesia"].clone()),
        (true.into(), true.into())
    );
    let first_pid = live["pid"].as_u64().unwrap();

    let restarted = in_registry("restart", &["--amnesia", "--http-addr", &addr]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    let status = in_registry("status", &["--json"]);
    let live: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_ne!(live["pid"].as_u64().unwrap(), first_pid, "a new process");

    let stopped = in_registry("stop", &["--json"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let report: serde_json::Value = serde_json::from_slice(&stopped.stdout).unwrap();
    assert_eq!(report["amnesia"], true);
    let log_path = files_under(&registry)
        .into_iter()
        .find(|path| path.extension().is_some_and(|e| e == "log"))
        .expect("the detached node's log beside its registry entry");
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("amnesia: nothing was written"), "{log}");
    assert!(!log.contains("checkpoint written"), "{log}");
    assert!(!log.contains(".ckpt"), "names no checkpoint file: {log}");
    let after = in_registry("stop", &[]);
    assert_eq!(after.status.code(), Some(5), "{}", text(&after));
    assert!(
        !root.exists(),
        "nothing under the root: {:?}",
        files_under(&root)
    );
}

#[test]
fn the_command_line_reaches_its_own_tls_node() {
    let root = scratch("tls-root");
    let certs = scratch("tls-certs");
    let (cert, key) = everarcade_testkit::tls::self_signed(&certs, "node");
    let (stranger, _) = everarcade_testkit::tls::self_signed(&certs, "stranger");
    let addr = format!("127.0.0.1:{}", free_port());
    let tls = [
        "--http-addr",
        addr.as_str(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let started = run(&root, "start", &tls);
    assert!(started.status.success(), "{}", text(&started));
    assert!(
        text(&started).contains(&format!("https://{addr}")),
        "{}",
        text(&started)
    );

    let status = run(&root, "status", &["--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let live: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(live["live"], true, "{live}");
    let submitted = run(
        &root,
        "submit",
        &["--player", "tls", "--payload", "01", "--json"],
    );
    assert!(submitted.status.success(), "{}", text(&submitted));
    let checkpoint = run(&root, "checkpoint", &["--json"]);
    assert!(checkpoint.status.success(), "{}", text(&checkpoint));
    let backup_dir = certs.join("backups");
    let backup = run(
        &root,
        "backup",
        &["--backup-dir", backup_dir.to_str().unwrap()],
    );
    assert!(backup.status.success(), "{}", text(&backup));
    assert!(text(&backup).contains("running node"), "{}", text(&backup));

    // Trusting another certificate, the node cannot be reached: the disk's
    // view, and the reason.
    let distrusting = command(&root, "status", &[])
        .arg("--ca")
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(
        text(&distrusting).contains("source           disk"),
        "{}",
        text(&distrusting)
    );
    assert!(
        text(&distrusting).contains("certificate"),
        "{}",
        text(&distrusting)
    );
    let trusting = command(&root, "status", &[])
        .arg("--ca")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(trusting.status.success(), "{}", text(&trusting));
    assert!(
        text(&trusting).contains("source           live"),
        "{}",
        text(&trusting)
    );

    let stopped = run(&root, "stop", &[]);
    assert!(stopped.status.success(), "{}", text(&stopped));
}

#[test]
fn start_status_checkpoint_stop_and_start_again() {
    let root = scratch("lifecycle");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let started = run(&root, "start", &["--http-addr", &addr]);
    assert!(started.status.success(), "{}", text(&started));
    let again = run(&root, "start", &["--http-addr", &addr]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("already_running"), "{}", text(&again));

    let client = client(port);
    let key = test_signing_key("lifecycle");
    let world = WorldId::new(WORLD).unwrap();
    let ack = client
        .submit(&Envelope::sign(&world, &key, 1, vec![1]))
        .unwrap();

    let status = run(&root, "status", &["--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let live: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(live["live"], true);
    assert_eq!(live["admission"], "open");
    assert_eq!(live["address"], addr);
    let operator_key = live["operator_public_key"].as_str().unwrap().to_string();
    assert_eq!(operator_key.len(), 64, "{live}");
    assert_eq!(live["incident"], serde_json::Value::Null);
    let shown = run(&root, "status", &[]);
    assert!(shown.status.success(), "{}", text(&shown));
    assert!(
        text(&shown).contains(&format!("operator key     {operator_key}")),
        "{}",
        text(&shown)
    );

    let checkpoint = run(&root, "checkpoint", &["--json"]);
    assert!(checkpoint.status.success(), "{}", text(&checkpoint));
    let taken: serde_json::Value = serde_json::from_slice(&checkpoint.stdout).unwrap();
    assert!(taken["tick"].as_u64().unwrap() >= ack.tick, "{taken}");

    let stopped = run(&root, "stop", &["--json"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let report: serde_json::Value = serde_json::from_slice(&stopped.stdout).unwrap();
    assert_eq!(report["state"], "stopped");
    let height = report["head_tick"].as_u64().unwrap();
    assert!(height >= ack.tick);
    assert_eq!(
        report["checkpoint_tick"].as_u64(),
        Some(height),
        "stop checkpoints the head"
    );

    let down = run(&root, "status", &[]);
    assert_eq!(down.status.code(), Some(5), "{}", text(&down));
    assert!(
        text(&down).contains(&format!("operator key     {operator_key}")),
        "the disk's status names the same key: {}",
        text(&down)
    );
    let stop_again = run(&root, "stop", &[]);
    assert_eq!(stop_again.status.code(), Some(5), "{}", text(&stop_again));

    let verified = run(&root, "replay-verify", &["--json"]);
    assert!(verified.status.success(), "{}", text(&verified));
    let audited = run(&root, "verify", &["--json"]);
    assert!(audited.status.success(), "{}", text(&audited));
    let audited: serde_json::Value = serde_json::from_slice(&audited.stdout).unwrap();
    assert_eq!(audited["operator_keys"], 1);
    assert!(
        audited["signed_checkpoints"].as_u64().unwrap() >= 1,
        "{audited}"
    );
    let key_file = root.join("worlds").join(WORLD).join("operator/key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let restarted = run(&root, "restart", &["--http-addr", &addr]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    // A new client: the old one's pooled connection went with the old process.
    let client = self::client(port);
    let status = client.status().unwrap();
    assert!(
        status.head_tick >= height,
        "the world continues from tick {height}"
    );
    let ack = client
        .submit(&Envelope::sign(&world, &key, 2, vec![1]))
        .unwrap();
    assert!(ack.tick > height);
    let stopped = run(&root, "stop", &[]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let log = std::fs::read_to_string(root.join("worlds").join(WORLD).join("node.log")).unwrap();
    for line in [
        "configuration validated",
        "world lock acquired",
        "module compiled",
        "world created",
        "world recovered",
        "operator key ready",
        "admin token ready",
        "listening",
        "tick loop started",
        "ready",
        "shutdown requested",
        "world stopped",
    ] {
        assert!(log.contains(line), "node.log lacks {line:?}:\n{log}");
    }
    let token = root.join("admin.token");
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin token is 0600");
    let token_text = std::fs::read_to_string(&token).unwrap();
    assert!(
        !log.contains(token_text.trim()),
        "the token is never logged"
    );
}

#[test]
fn verify_works_against_a_live_world_whose_retention_prunes_checkpoints() {
    let root = scratch("verify-live");
    let addr = format!("127.0.0.1:{}", free_port());
    let durability = [
        "--http-addr",
        addr.as_str(),
        "--checkpoint-interval",
        "2",
        "--checkpoints-retained",
        "1",
    ];
    let started = run(&root, "start", &durability);
    assert!(started.status.success(), "{}", text(&started));
    let client = client(addr.rsplit(':').next().unwrap().parse().unwrap());
    let key = test_signing_key("verifier");
    let world = WorldId::new(WORLD).unwrap();
    // At 20 Hz a checkpoint every 2 ticks replaces the only one ten times a
    // second, while inputs keep the journal's tail moving.
    let mut failures = Vec::new();
    for round in 1..=200u64 {
        client
            .submit(&Envelope::sign(&world, &key, round, vec![1]))
            .unwrap();
        let output = run(&root, "verify", &["--json"]);
        if !output.status.success() {
            failures.push(text(&output));
        }
    }
    let stopped = run(&root, "stop", &[]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "verify failed against a live world"
    );
}

#[test]
fn startup_fails_fast_before_any_listener_opens() {
    let root = scratch("failfast");
    let made = run(&root, "simulate", &["--ticks", "3"]);
    assert!(made.status.success(), "{}", text(&made));
    let other_package = scratch("failfast-package");
    std::fs::create_dir_all(&other_package).unwrap();
    for file in ["world.toml", "world.wasm"] {
        std::fs::copy(
            repository_root().join(PACKAGE).join(file),
            other_package.join(file),
        )
        .unwrap();
    }
    std::fs::write(other_package.join("extra.txt"), "another package root").unwrap();
    let port = free_port();
    let output = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .args(["run"])
        .arg(&root)
        .arg(WORLD)
        .arg(&other_package)
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(
        text(&output).contains("package_mismatch"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains("listening"), "{}", text(&output));
    // Nothing listens, and the lock is free for the right package.
    assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    let started = run(
        &root,
        "start",
        &["--http-addr", &format!("127.0.0.1:{port}")],
    );
    assert!(started.status.success(), "{}", text(&started));
    let stopped = run(&root, "stop", &[]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    std::fs::remove_dir_all(&other_package).unwrap();
}

#[test]
fn sigterm_finishes_the_tick_and_checkpoints() {
    let root = scratch("sigterm");
    let port = free_port();
    let mut child = command(&root, "run", &["--http-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = client(port);
    wait_ready(&client, &mut child);
    let key = test_signing_key("term");
    let world = WorldId::new(WORLD).unwrap();
    let envelopes: Vec<Envelope> = (1..=20)
        .map(|n| Envelope::sign(&world, &key, n, vec![1]))
        .collect();
    client.submit_batch(&envelopes).unwrap();
    sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("stopped world world-001"),
        "{}",
        text(&output)
    );
    let report = run(&root, "replay-report", &["--json"]);
    assert!(report.status.success(), "{}", text(&report));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        report["inputs"], 20,
        "every acknowledged input executed before exit: {report}"
    );
}

/// POST with a bearer token over a plain socket; returns status and body.
fn post(port: u16, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_hot_backup_through_the_running_node_restores_to_its_tick() {
    let root = scratch("hot");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let started = run(&root, "start", &["--http-addr", &addr]);
    assert!(started.status.success(), "{}", text(&started));
    let client = client(port);
    let key = test_signing_key("hot");
    let world = WorldId::new(WORLD).unwrap();
    for nonce in 1..=10 {
        client
            .submit(&Envelope::sign(&world, &key, nonce, vec![1]))
            .unwrap();
    }
    let token = std::fs::read_to_string(root.join("admin.token")).unwrap();
    let (status, body) = post(port, "/admin/backup", token.trim(), "");
    assert_eq!(status, 200, "{body}");
    let backup: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tick = backup["tick"].as_u64().unwrap();
    let path = PathBuf::from(backup["path"].as_str().unwrap());
    assert!(
        !path.starts_with(&root),
        "the backup lies outside the runtime root"
    );
    let (status, body) = post(port, "/admin/backup", token.trim(), "{\"nope\": 1}");
    assert_eq!(status, 400, "{body}");
    // The node went on ticking meanwhile; stop it, then compare.
    let stopped = run(&root, "stop", &[]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let original = run(
        &root,
        "replay-root",
        &["--tick", &tick.to_string(), "--json"],
    );
    assert!(original.status.success(), "{}", text(&original));
    let fresh = scratch("hot-restored");
    let restored = run(&fresh, "restore", &["--from", path.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", text(&restored));
    let again = run(&fresh, "replay-root", &["--json"]);
    assert!(again.status.success(), "{}", text(&again));
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&original.stdout).unwrap(),
        serde_json::from_slice(&again.stdout).unwrap(),
    );
    assert_eq!(b["tick"], tick);
    for root_name in [
        "state_root",
        "input_root",
        "receipt_root",
        "continuity_root",
    ] {
        assert_eq!(a[root_name], b[root_name], "{root_name}");
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Every line of `output` (stdout and stderr) is one JSON object, and no
/// field holds Rust debug text; returns the lines.
fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for stream in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", text(output)));
            assert!(value.is_object(), "{line}");
            assert!(!line.contains("Some("), "debug text in a field: {line}");
            lines.push(value);
        }
    }
    lines
}

fn line_with<'a>(lines: &'a [serde_json::Value], message: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
}

/// `run --log-format json` writes nothing but JSON objects: startup,
/// recovery from a checkpoint, the stop line, and a fatal error.
#[test]
fn json_logs_are_json_on_every_line() {
    let root = scratch("json-logs");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let json_run = || {
        command(
            &root,
            "run",
            &["--http-addr", &addr, "--log-format", "json"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    for round in 0..2 {
        let mut child = json_run();
        wait_ready(&client(port), &mut child);
        sigterm(&child);
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let lines = json_lines(&output);
        let stopped = line_with(&lines, "stopped world");
        assert_eq!(stopped["fields"]["world"], WORLD, "{stopped}");
        assert!(stopped["fields"]["tick"].as_u64().is_some(), "{stopped}");
        if round == 1 {
            let recovered = &line_with(&lines, "world recovered")["fields"];
            assert_eq!(recovered["from"], "checkpoint", "{recovered}");
            assert!(recovered["from_tick"].as_u64().is_some(), "{recovered}");
        }
    }
    // A fatal error: the port is taken.
    let _taken = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let output = json_run().wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let lines = json_lines(&output);
    let error = lines
        .iter()
        .find(|line| line["level"] == "ERROR" && line["fields"]["code"].is_string())
        .unwrap_or_else(|| panic!("no error line in {lines:#?}"));
    assert_eq!(error["fields"]["code"], "listen_failed", "{error}");
    assert!(
        error["fields"]["message"].as_str().unwrap().contains(&addr),
        "{error}"
    );
}
