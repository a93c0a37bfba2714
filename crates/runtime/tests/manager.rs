//! The runtime manager through the real binary: `manager <root>` with its
//! worlds as child `run` processes, driven over its REST API (and `fleet`),
//! against SQLite, PostgreSQL and Redis streams. Each test has its own
//! runtime root, database schema, stream names and key prefix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use everarcade_testkit::manifest::small_manifest;
use everarcade_testkit::temp::TempDir;
use serde_json::{Value, json};

mod common;

use common::{PACKAGE, free_port, repository_root};

const BINARY: &str = env!("CARGO_BIN_EXE_everarcade-runtime");

/// A manager process; killed (with its worlds) on drop.
struct ManagerProcess {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    token: String,
    root: PathBuf,
}

fn kill(pid: i64, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

fn alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Blocking HTTP/1.1 to the manager: (status, JSON body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the manager");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let body = body.unwrap_or("");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let payload = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let value = serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string()));
    (status, value)
}

/// The first bytes of a server-sent event stream (it never ends): read
/// until an event arrived or 5 s passed.
fn sse_head(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(5) && !text.contains("\n\n") {
        if let Ok(n) = stream.read(&mut buffer) {
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        if body.contains("data:") && body.contains("\n\n") {
            break;
        }
    }
    text
}

impl ManagerProcess {
    fn spawn(root: &Path, extra: &[String]) -> ManagerProcess {
        let port = free_port();
        let log = root.with_extension(format!("manager-{port}.log"));
        let child = Command::new(BINARY)
            .current_dir(repository_root())
            .arg("manager")
            .arg(root)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "--set",
                "probe_interval_ms=200",
                "--set",
                "probe_failure_threshold=2",
                "--set",
                "inspect_interval_ms=500",
                "--set",
                "restart_backoff_initial_ms=200",
                "--set",
                "ready_timeout_ms=60000",
            ])
            .args(extra)
            .env_remove("EVERARCADE_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut manager = ManagerProcess {
            child: Some(child),
            port,
            log,
            token: String::new(),
            root: root.to_path_buf(),
        };
        manager.wait_ready();
        manager.token = std::fs::read_to_string(root.join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        manager
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the manager exited ({status}):\n{}", self.log_text());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (status, _) = http(self.port, "GET", "/readyz", None, None);
                if status == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the manager is not ready:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        http(self.port, "GET", path, None, None)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        http(
            self.port,
            "POST",
            path,
            Some(&self.token),
            Some(&body.to_string()),
        )
    }

    fn start(&self, world: &str, package: &Path, policy: &str) -> Value {
        let (status, body) = self.post(
            &format!("/api/v1/internal/runtimes/{world}/start"),
            json!({"package": package, "restart_policy": policy}),
        );
        assert_eq!(status, 200, "{body}\n{}", self.log_text());
        assert_eq!(body["status"], "running", "{body}");
        body
    }

    fn record(&self, world: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/internal/runtimes/{world}"));
        assert_eq!(status, 200, "{body}");
        body
    }

    fn events(&self, world: &str) -> Vec<Value> {
        let (_, body) = self.get(&format!(
            "/api/v1/internal/health_events?world={world}&limit=1000"
        ));
        body["events"].as_array().cloned().unwrap_or_default()
    }

    fn operations(&self, world: &str) -> Vec<Value> {
        let (_, body) = self.get(&format!(
            "/api/v1/internal/runtimes/{world}/operations?limit=1000"
        ));
        body["operations"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `check` holds, or fails with the manager's log.
    fn until(&self, what: &str, within: Duration, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < within,
                "{what} within {within:?}; the manager's log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        kill(i64::from(child.id()), "TERM");
        child.wait().unwrap()
    }

    /// Every world node's pid under the root (from the world locks).
    fn world_pids(root: &Path) -> Vec<i64> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(root.join("worlds")).into_iter().flatten() {
            let lock = entry.unwrap().path().join("world.lock");
            if let Ok(text) = std::fs::read_to_string(lock)
                && let Ok(pid) = text.trim().parse::<i64>()
                && alive(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        self.kill9();
        for pid in ManagerProcess::world_pids(&self.root) {
            kill(pid, "KILL");
        }
    }
}

fn package() -> PathBuf {
    repository_root().join(PACKAGE).canonicalize().unwrap()
}

/// SQLite: startup order, lifecycle, bad input, a world killed, on-failure
/// restarts, cleanup, a second manager, the manager killed and adopting.
#[test]
fn manager_supervises_worlds_on_sqlite() {
    let scratch = TempDir::new("manager-sqlite");
    let root = scratch.join("root");
    let mut manager = ManagerProcess::spawn(&root, &[]);
    // The fixed startup order, each step logged.
    let log = manager.log_text();
    let steps = [
        "migrations applied",
        "database ping ok",
        "runtime root ok",
        "internal http listening",
        "reconciler initial pass completed",
        "worker started",
    ];
    let mut at = 0;
    for step in steps {
        let found = log[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order:\n{log}"));
        at += found;
    }
    assert!(root.join("manager.db").exists());
    assert_eq!(manager.get("/healthz").0, 200);
    // The manager console is mounted at `/` with its assets.
    let (status, page) = manager.get("/");
    assert_eq!(status, 200);
    let page = page.as_str().expect("an HTML page, not JSON");
    assert!(page.contains("manager.js"), "{page}");
    assert_eq!(manager.get("/console/assets/manager.js").0, 200);

    let package = package();
    manager.start("alpha", &package, "never");
    let beta = manager.start("beta", &package, "never");
    let gamma = manager.start("gamma", &package, "on-failure");
    assert!(
        beta["engine_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_ne!(beta["engine_endpoint"], gamma["engine_endpoint"]);
    let (_, list) = manager.get("/api/v1/internal/runtimes");
    let running: Vec<_> = list["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "running")
        .map(|r| r["world"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(running, ["alpha", "beta", "gamma"]);
    for field in [
        "world",
        "status",
        "pid",
        "engine_endpoint",
        "package_root",
        "package_version",
        "updated_at",
    ] {
        assert!(!beta[field].is_null(), "{field} in {beta}");
    }

    // The SSE stream replays stored events after ?after= and names each.
    let sse = sse_head(manager.port, "/api/v1/internal/events?after=0&world=beta");
    assert!(sse.contains("text/event-stream"), "{sse}");
    assert!(sse.contains("event: started"), "{sse}");
    assert!(sse.contains("\"world\":\"beta\""), "{sse}");
    assert!(!sse.contains("\"world\":\"alpha\""), "{sse}");

    // Bad input: no token, bad JSON, unknown fields, unknown worlds, a bad id.
    let (status, body) = http(
        manager.port,
        "POST",
        "/api/v1/internal/runtimes/delta/start",
        None,
        Some("{}"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = http(
        manager.port,
        "POST",
        "/api/v1/internal/runtimes/delta/start",
        Some(&manager.token),
        Some("{\"package\":"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = manager.post(
        "/api/v1/internal/runtimes/delta/start",
        json!({"package": package, "colour": "red"}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_field"))
    );
    let (status, body) = manager.get("/api/v1/internal/runtimes/nobody");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_world"))
    );
    let (status, body) = manager.post("/api/v1/internal/runtimes/nobody/stop", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_world"))
    );
    let (status, body) = manager.post("/api/v1/internal/runtimes/Bad_Id/start", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_world_id"))
    );
    let (status, body) = manager.post(
        "/api/v1/internal/runtimes/delta/start",
        json!({"package": scratch.join("no-such-package")}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("package_not_found"))
    );
    let (status, body) = manager.post("/api/v1/internal/runtimes/alpha/start", json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_running"))
    );

    // Cleanup of a running world is refused.
    let (status, body) = http(
        manager.port,
        "DELETE",
        "/api/v1/internal/runtimes/alpha/container",
        Some(&manager.token),
        None,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("world_running"))
    );

    // kill -9 of a world: process_exited, the record moves to failed, the others tick on.
    let beta_pid = beta["pid"].as_i64().unwrap();
    let alpha_tick = |m: &ManagerProcess| m.record("alpha")["health"]["head_tick"].as_i64();
    manager.until("alpha inspected", Duration::from_secs(10), || {
        alpha_tick(&manager).is_some()
    });
    let before = alpha_tick(&manager).unwrap();
    kill(beta_pid, "KILL");
    manager.until("beta's process_exited", Duration::from_secs(10), || {
        manager
            .events("beta")
            .iter()
            .any(|e| e["event_type"] == "process_exited" && e["details"]["signal"] == 9)
    });
    manager.until("beta failed", Duration::from_secs(5), || {
        manager.record("beta")["status"] == "failed"
    });
    manager.until("alpha ticking on", Duration::from_secs(10), || {
        alpha_tick(&manager).is_some_and(|t| t > before)
    });
    assert_eq!(manager.record("alpha")["status"], "running");

    // on-failure: gamma comes back with a new pid after its backoff.
    let gamma_pid = gamma["pid"].as_i64().unwrap();
    kill(gamma_pid, "KILL");
    manager.until("gamma restarted", Duration::from_secs(60), || {
        let record = manager.record("gamma");
        record["status"] == "running" && record["pid"].as_i64() != Some(gamma_pid)
    });
    let kinds: Vec<String> = manager
        .events("gamma")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    let exited = kinds.iter().position(|k| k == "process_exited").unwrap();
    assert!(
        kinds[exited..].contains(&"restarting".to_string()),
        "{kinds:?}"
    );
    // The record turns running just before the operation row is finished.
    manager.until(
        "gamma's supervisor restart logged",
        Duration::from_secs(10),
        || {
            manager.operations("gamma").iter().any(|o| {
                o["op_kind"] == "restart" && o["op_source"] == "supervisor" && o["outcome"] == "ok"
            })
        },
    );

    // Stop, then cleanup keeps the journal.
    let (status, stopped) = manager.post(
        "/api/v1/internal/runtimes/alpha/stop",
        json!({"reason": "test"}),
    );
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert!(
        stopped["operation"]["details"]["head_tick"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (status, removed) = http(
        manager.port,
        "DELETE",
        "/api/v1/internal/runtimes/alpha/container",
        Some(&manager.token),
        None,
    );
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["status"], "removed");
    let journal = root.join("worlds/alpha/journal");
    assert!(
        std::fs::read_dir(&journal).unwrap().count() > 0,
        "the journal stays"
    );
    let ops = manager.operations("alpha");
    let kinds: Vec<&str> = ops.iter().map(|o| o["op_kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["cleanup", "stop", "cleanup", "start", "start"],
        "{ops:?}"
    );
    assert_eq!(ops[2]["error_code"], "world_running");
    assert_eq!(ops[3]["error_code"], "already_running");
    assert!(ops.iter().all(|o| o["op_source"] == "admin_rest"));

    // The operator CLI.
    let output = Command::new(BINARY)
        .args([
            "fleet",
            "--manager",
            &format!("http://127.0.0.1:{}", manager.port),
        ])
        .args(["--runtime-root", root.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    assert!(table.starts_with("WORLD"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("alpha") && l.contains("removed")),
        "{table}"
    );
    let output = Command::new(BINARY)
        .args([
            "fleet",
            "--manager",
            &format!("http://127.0.0.1:{}", manager.port),
        ])
        .args([
            "--runtime-root",
            root.to_str().unwrap(),
            "stop",
            "gamma",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "stopped");
    assert_eq!(answer["operation"]["op_source"], "cli");
    let output = Command::new(BINARY)
        .args([
            "fleet",
            "--manager",
            &format!("http://127.0.0.1:{}", manager.port),
        ])
        .args(["ops", "nobody", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let failure: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(failure["error"]["code"], "unknown_world");

    // A second manager on the same root refuses, naming the first's pid.
    let first_pid = manager.child.as_ref().unwrap().id();
    let second = Command::new(BINARY)
        .arg("manager")
        .arg(&root)
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("manager_running"), "{stderr}");
    assert!(stderr.contains(&format!("pid {first_pid}")), "{stderr}");
    assert!(!stderr.contains("internal http listening"), "{stderr}");

    // kill -9 of the manager: the next one adopts the running world.
    let delta = manager.start("delta", &package, "never");
    let delta_pid = delta["pid"].as_i64().unwrap();
    manager.kill9();
    assert!(alive(delta_pid), "a world outlives its manager");
    let manager = ManagerProcess::spawn(&root, &[]);
    let record = manager.record("delta");
    assert_eq!(record["status"], "running");
    assert_eq!(
        record["pid"].as_i64(),
        Some(delta_pid),
        "nothing runs twice"
    );
    let adopt: Vec<_> = manager
        .operations("delta")
        .into_iter()
        .filter(|o| o["op_kind"] == "reconcile_adopt")
        .collect();
    assert_eq!(adopt.len(), 1, "{adopt:?}");
    assert_eq!(adopt[0]["op_source"], "reconcile");
    assert_eq!(ManagerProcess::world_pids(&root), vec![delta_pid]);
    let (_, metrics) = manager.get("/metrics");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("everarcade_manager_runtimes{status=\"running\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("everarcade_manager_reconcile_drift_total{kind=\"adopt\"} 1"),
        "{metrics}"
    );
    // The adopted world can be stopped through the manager.
    let (status, body) = manager.post("/api/v1/internal/runtimes/delta/stop", json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(!alive(delta_pid));
    // A graceful stop of the manager.
    let mut manager = manager;
    assert!(manager.terminate().success(), "{}", manager.log_text());
}

/// The counter game of `tests/upgrade.rs` in one version.
fn counter(dir: &Path, version: &str) -> PathBuf {
    counter_adding(dir, version, 1)
}

/// A counter package whose every input adds `step`.
fn counter_adding(dir: &Path, version: &str, step: u32) -> PathBuf {
    let module = r#"(module
  (import "ea" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "ea" "state_set" (func $state_set (param i32 i32 i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "nt")
  (func (export "ea_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "ea_tick") (param $tick i64))
  (func (export "ea_input") (param i32 i32) (result i32)
    (i64.store (i32.const 16) (i64.const 0))
    (drop (call $state_get (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 8)))
    (i64.store (i32.const 16) (i64.add (i64.load (i32.const 16)) (i64.const STEP)))
    (call $state_set (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 8))
    (i32.const 0)))"#
        .replace("STEP", &step.to_string());
    let package = dir.join(format!("counter-{version}-{step}"));
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("world.toml"),
        small_manifest("counter", version, 65_536),
    )
    .unwrap();
    std::fs::write(package.join("world.wasm"), wat::parse_str(&module).unwrap()).unwrap();
    package
}

/// Patch 0.1.0 -> 0.1.1 passes (one operation row with both versions and
/// roots); -> 0.2.0 is `semver_patch_only`; a non-semver version is
/// `package_version_not_semver`.
#[test]
fn manager_patches_within_a_minor_version() {
    let scratch = TempDir::new("manager-patch");
    let root = scratch.join("root");
    let v010 = counter(scratch.path(), "0.1.0");
    let v011 = counter(scratch.path(), "0.1.1");
    let v020 = counter(scratch.path(), "0.2.0");
    let bad = counter(scratch.path(), "0.1.2");
    std::fs::write(
        bad.join("world.toml"),
        small_manifest("counter", "0.1.x", 65_536),
    )
    .unwrap();
    let manager = ManagerProcess::spawn(&root, &[]);
    let started = manager.start("counter", &v010, "never");
    let path = "/api/v1/internal/runtimes/counter/patch";
    let (status, body) = manager.post(path, json!({"package": v020}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("semver_patch_only")),
        "{body}"
    );
    let (status, body) = manager.post(path, json!({"package": bad}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("package_version_not_semver")),
        "{body}"
    );
    assert_eq!(
        manager.record("counter")["pid"],
        started["pid"],
        "refusals change nothing"
    );
    // An input in history, then a patch whose module would replay it to
    // another root: refused after the node was stopped; the node runs
    // again on the package it had (the seed asks for no backup: the world
    // library's upgrade rule changes nothing until the new package
    // replayed all history).
    let submitted = Command::new(BINARY)
        .current_dir(repository_root())
        .arg("submit")
        .arg(&root)
        .arg("counter")
        .args(["--player", "p", "--payload", "01", "--json"])
        .env_remove("EVERARCADE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let diverging = counter_adding(scratch.path(), "0.1.3", 2);
    let (status, body) = manager.post(path, json!({"package": diverging}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("upgrade_history_diverges")),
        "{body}"
    );
    let after = manager.record("counter");
    assert_eq!(after["status"], "running", "{after}");
    assert_ne!(after["pid"], started["pid"], "stopped, then started again");
    assert_eq!(after["package_version"], "0.1.0");
    assert_eq!(after["package_root"], started["package_root"]);
    let (status, patched) = manager.post(path, json!({"package": v011}));
    assert_eq!(status, 200, "{patched}\n{}", manager.log_text());
    assert_eq!(patched["status"], "running");
    assert_eq!(patched["package_version"], "0.1.1");
    assert_ne!(patched["package_root"], started["package_root"]);
    let details = &patched["operation"]["details"];
    assert_eq!(patched["operation"]["op_kind"], "patch");
    assert_eq!(details["old_version"], "0.1.0");
    assert_eq!(details["new_version"], "0.1.1");
    assert_eq!(details["old_root"], started["package_root"]);
    assert_eq!(details["new_root"], patched["package_root"]);
    let patches: Vec<_> = manager
        .operations("counter")
        .into_iter()
        .filter(|o| o["op_kind"] == "patch")
        .collect();
    assert_eq!(
        patches.len(),
        4,
        "three refusals and the patch: {patches:?}"
    );
}

fn postgres_url() -> String {
    std::env::var("EVERARCADE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn require_service(address: &str, name: &str, start: &str) {
    if TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2)).is_err() {
        panic!("{name} is not reachable at {address}; start it with: {start}");
    }
}

/// PostgreSQL (a schema of its own) and Redis streams (streams and keys of
/// their own): start jobs run exactly once across a manager killed in the
/// middle of a batch; results and health events are published; a stop job.
#[test]
fn manager_on_postgres_and_redis_streams_runs_each_job_once() {
    require_service(
        "127.0.0.1:5432",
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    );
    require_service(
        "127.0.0.1:6379",
        "Redis",
        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    );
    let scratch = TempDir::new("manager-pg-redis");
    let root = scratch.join("root");
    let tag = format!("t{}_{}", std::process::id(), free_port());
    let schema = format!("manager_{tag}");
    let prefix = format!("test:{tag}:");
    let stream = |name: &str| format!("{prefix}{name}");
    let extra: Vec<String> = vec![
        "--database-url".into(),
        postgres_url(),
        "--set".into(),
        format!("database_schema={schema}"),
        "--redis-url".into(),
        "redis://127.0.0.1:6379".into(),
        "--set".into(),
        format!("redis_key_prefix={prefix}"),
        "--set".into(),
        format!("start_jobs_stream={}", stream("start_jobs")),
        "--set".into(),
        format!("stop_jobs_stream={}", stream("stop_jobs")),
        "--set".into(),
        format!("job_results_stream={}", stream("job_results")),
        "--set".into(),
        format!("health_events_stream={}", stream("health_events")),
    ];
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_connection().unwrap();
    let mut manager = ManagerProcess::spawn(&root, &extra);
    assert!(manager.log_text().contains("redis ping ok"));
    let package = package();
    let mut jobs = Vec::new();
    for world in ["r1", "r2", "r3"] {
        let id: String = redis::cmd("XADD")
            .arg(stream("start_jobs"))
            .arg("*")
            .arg("world")
            .arg(world)
            .arg("package")
            .arg(package.to_str().unwrap())
            .query(&mut conn)
            .unwrap();
        jobs.push(id);
    }
    let results = |conn: &mut redis::Connection| -> Vec<redis::streams::StreamId> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream("job_results"))
            .arg("-")
            .arg("+")
            .query(conn)
            .unwrap();
        reply.ids
    };
    // Kill the manager once the first job is answered, mid-batch.
    manager.until("the first result", Duration::from_secs(60), || {
        !results(&mut conn).is_empty()
    });
    manager.kill9();
    let manager = ManagerProcess::spawn(&root, &extra);
    manager.until("three results", Duration::from_secs(120), || {
        results(&mut conn).len() >= 3
    });
    std::thread::sleep(Duration::from_millis(500));
    let answered = results(&mut conn);
    let answered_ids: Vec<String> = answered
        .iter()
        .map(|r| r.get::<String>("job_id").unwrap())
        .collect();
    assert_eq!(answered_ids, jobs, "one result per job, in order");
    // The node of a job interrupted after its spawn is adopted once ready.
    let worlds = ["r1", "r2", "r3"];
    manager.until("every live node recorded", Duration::from_secs(60), || {
        let running = worlds
            .iter()
            .filter(|w| manager.record(w)["status"] == "running")
            .count();
        running == ManagerProcess::world_pids(&root).len()
    });
    // A job the killed manager was running is answered once, from its row:
    // `manager_interrupted`, with what runs now; the others ran.
    let mut running = 0;
    for (world, result) in ["r1", "r2", "r3"].iter().zip(&answered) {
        let outcome = result.get::<String>("outcome").unwrap();
        let code = result.get::<String>("error_code").unwrap_or_default();
        assert!(
            outcome == "ok" || code == "manager_interrupted",
            "{result:?}"
        );
        let status = manager.record(world)["status"].clone();
        if status == "running" {
            running += 1;
        }
        if outcome == "ok" {
            assert_eq!(status, "running", "{world}");
        }
    }
    assert!(
        running >= 2,
        "at most the interrupted job's world is not running"
    );
    let offset: String = redis::cmd("GET")
        .arg(format!("{prefix}stream_offsets:{}", stream("start_jobs")))
        .query(&mut conn)
        .unwrap();
    assert_eq!(&offset, jobs.last().unwrap());
    for (world, job) in ["r1", "r2", "r3"].iter().zip(&jobs) {
        let starts: Vec<_> = manager
            .operations(world)
            .into_iter()
            .filter(|o| o["op_kind"] == "start")
            .collect();
        assert_eq!(starts.len(), 1, "job {job} ran once: {starts:?}");
        assert_eq!(starts[0]["job_id"].as_str(), Some(job.as_str()));
        assert_eq!(starts[0]["op_source"], "stream");
    }
    assert_eq!(
        ManagerProcess::world_pids(&root).len(),
        running,
        "nothing runs twice"
    );
    // A stop job.
    let _: String = redis::cmd("XADD")
        .arg(stream("stop_jobs"))
        .arg("*")
        .arg("world")
        .arg("r1")
        .arg("reason")
        .arg("match over")
        .query(&mut conn)
        .unwrap();
    manager.until("r1 stopped", Duration::from_secs(30), || {
        manager.record("r1")["status"] == "stopped"
    });
    manager.until("the stop result", Duration::from_secs(10), || {
        results(&mut conn).len() == 4
    });
    // Health events went to the stream too; no lease is left behind.
    let events: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream("health_events"))
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert!(
        events
            .ids
            .iter()
            .any(|e| e.get::<String>("event_type").as_deref() == Some("stopped")),
        "{:?}",
        events.ids
    );
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}world_lease:*"))
        .query(&mut conn)
        .unwrap();
    assert!(leases.is_empty(), "{leases:?}");
    let (_, ready) = manager.get("/readyz");
    assert_eq!(ready["status"], "ready");
    let _: () = redis::cmd("DEL")
        .arg(stream("start_jobs"))
        .arg(stream("stop_jobs"))
        .arg(stream("job_results"))
        .arg(stream("health_events"))
        .arg(format!("{prefix}stream_offsets:{}", stream("start_jobs")))
        .arg(format!("{prefix}stream_offsets:{}", stream("stop_jobs")))
        .query(&mut conn)
        .unwrap();
    drop(manager);
    let _ = Command::new("psql")
        .arg(postgres_url())
        .arg("-c")
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
}

/// Fail-fast startup: a port already taken and an unreachable database each
/// exit 1 with their code before the listener opens; a bad setting is a
/// usage error.
#[test]
fn manager_startup_fails_fast() {
    let scratch = TempDir::new("manager-fail-fast");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = Command::new(BINARY)
        .arg("manager")
        .arg(scratch.join("root"))
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("listen_failed"), "{stderr}");
    assert!(stderr.contains("runtime root ok"), "{stderr}");
    assert!(!stderr.contains("internal http listening"), "{stderr}");
    let output = Command::new(BINARY)
        .arg("manager")
        .arg(scratch.join("root"))
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("database_unavailable"), "{stderr}");
    assert!(!stderr.contains("migrations applied"), "{stderr}");
    let output = Command::new(BINARY)
        .arg("manager")
        .arg(scratch.join("root"))
        .args(["--set", "restart_policy=always"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid_config"), "{stderr}");
    // The effective configuration, secrets redacted.
    let output = Command::new(BINARY)
        .arg("manager")
        .arg(scratch.join("root"))
        .args(["--redis-url", "redis://user:secret@127.0.0.1:6379"])
        .args(["--print-config", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let config: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        config["redis_url"],
        "redis://user:<redacted>@127.0.0.1:6379"
    );
    assert_eq!(config["start_jobs_stream"], "runtime:start_jobs");
    // `config validate` knows a manager file.
    let file = scratch.join("manager.toml");
    std::fs::write(&file, "[manager]\nprobe_interval_ms = 500\n").unwrap();
    let output = Command::new(BINARY)
        .args(["config", "validate"])
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["kind"], "manager");
    std::fs::write(&file, "[manager]\nprobe_interval_ms = 0\n").unwrap();
    let output = Command::new(BINARY)
        .args(["config", "validate"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("probe_interval_ms"), "{stderr}");
    drop(taken);
}

/// A TCP forwarder to PostgreSQL that the test can take down and bring back.
struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(upstream: &'static str) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, list) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the database "went away"
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut list = list.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, up, conns }
    }

    fn set(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for conn in self.conns.lock().unwrap().drain(..) {
                let _ = conn.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// The database goes away: /readyz answers 503 naming it, an operation is
/// refused with `database_unavailable` before it changes anything, the
/// running world ticks on; when it returns, the same operation succeeds.
#[test]
fn manager_survives_the_database_going_away() {
    require_service(
        "127.0.0.1:5432",
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    );
    let proxy = Proxy::to("127.0.0.1:5432");
    let scratch = TempDir::new("manager-db-away");
    let root = scratch.join("root");
    let schema = format!("manager_away_{}_{}", std::process::id(), proxy.port);
    let extra = vec![
        "--database-url".to_string(),
        format!("postgres://postgres@127.0.0.1:{}/test", proxy.port),
        "--set".into(),
        format!("database_schema={schema}"),
    ];
    let manager = ManagerProcess::spawn(&root, &extra);
    let package = package();
    let first = manager.start("steady", &package, "never");
    proxy.set(false);
    manager.until("readyz names the database", Duration::from_secs(30), || {
        let (status, body) = manager.get("/readyz");
        status == 503
            && body["error"]["code"] == "service_unavailable"
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("database"))
    });
    let (status, body) = manager.post(
        "/api/v1/internal/runtimes/later/start",
        json!({"package": package}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    assert!(!root.join("worlds/later").exists(), "nothing was started");
    assert!(alive(first["pid"].as_i64().unwrap()), "the world runs on");
    proxy.set(true);
    manager.until("ready again", Duration::from_secs(30), || {
        manager.get("/readyz").0 == 200
    });
    manager.start("later", &package, "never");
    let starts: Vec<_> = manager
        .operations("later")
        .into_iter()
        .filter(|o| o["op_kind"] == "start")
        .collect();
    assert_eq!(starts.len(), 1, "the refused start left no row: {starts:?}");
    drop(manager);
    let _ = Command::new("psql")
        .arg(postgres_url())
        .arg("-c")
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
}

/// Redis goes away: /readyz names it, the intake pauses without advancing
/// its offset, and once Redis is back the waiting job runs once.
#[test]
fn manager_intake_pauses_while_redis_is_away() {
    require_service(
        "127.0.0.1:6379",
        "Redis",
        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    );
    let proxy = Proxy::to("127.0.0.1:6379");
    let scratch = TempDir::new("manager-redis-away");
    let root = scratch.join("root");
    let tag = format!("a{}_{}", std::process::id(), proxy.port);
    let prefix = format!("test:{tag}:");
    let start_jobs = format!("{prefix}start_jobs");
    let results_stream = format!("{prefix}job_results");
    let extra: Vec<String> = vec![
        "--redis-url".into(),
        format!("redis://127.0.0.1:{}", proxy.port),
        "--set".into(),
        format!("redis_key_prefix={prefix}"),
        "--set".into(),
        format!("start_jobs_stream={start_jobs}"),
        "--set".into(),
        format!("stop_jobs_stream={prefix}stop_jobs"),
        "--set".into(),
        format!("job_results_stream={results_stream}"),
        "--set".into(),
        format!("health_events_stream={prefix}health_events"),
    ];
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_connection().unwrap();
    let manager = ManagerProcess::spawn(&root, &extra);
    let results = |conn: &mut redis::Connection| -> usize {
        redis::cmd("XLEN").arg(&results_stream).query(conn).unwrap()
    };
    proxy.set(false);
    manager.until("readyz names redis", Duration::from_secs(30), || {
        let (status, body) = manager.get("/readyz");
        status == 503
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("redis"))
    });
    let job: String = redis::cmd("XADD")
        .arg(&start_jobs)
        .arg("*")
        .arg("world")
        .arg("queued")
        .arg("package")
        .arg(package().to_str().unwrap())
        .query(&mut conn)
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        results(&mut conn),
        0,
        "nothing is answered while redis is away"
    );
    let offset_key = format!("{prefix}stream_offsets:{start_jobs}");
    let offset: Option<String> = redis::cmd("GET").arg(&offset_key).query(&mut conn).unwrap();
    assert_eq!(offset, None, "the offset did not move");
    proxy.set(true);
    manager.until("the job answered", Duration::from_secs(60), || {
        results(&mut conn) == 1
    });
    let offset: Option<String> = redis::cmd("GET").arg(&offset_key).query(&mut conn).unwrap();
    assert_eq!(offset.as_deref(), Some(job.as_str()));
    assert_eq!(manager.record("queued")["status"], "running");
    manager.until("ready again", Duration::from_secs(30), || {
        manager.get("/readyz").0 == 200
    });
    let _: () = redis::cmd("DEL")
        .arg(&start_jobs)
        .arg(&results_stream)
        .arg(&offset_key)
        .arg(format!("{prefix}health_events"))
        .query(&mut conn)
        .unwrap();
}

/// The manager console (issue 12) in Debian's headless chromium, driven by
/// `crates/console/tests/browser/manager.mjs` (playwright-core), against this
/// manager with one running world: the page lists it, shows its operation
/// log and, with the token, stops and starts it. Needs `/usr/bin/chromium`
/// and `npm ci --prefix crates/console/tests/browser`; fails saying so
/// without them.
#[test]
fn manager_console_in_a_real_browser() {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "no chromium at {}: install it with `apt-get install -y chromium` (or set CHROMIUM)",
        chromium.display()
    );
    let browser = repository_root().join("crates/console/tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix crates/console/tests/browser`"
    );
    let scratch = TempDir::new("manager-console");
    let root = scratch.join("root");
    let manager = ManagerProcess::spawn(&root, &[]);
    let package = package();
    manager.start("alpha", &package, "never");
    let output = Command::new("node")
        .arg(browser.join("manager.mjs"))
        .arg(format!("http://127.0.0.1:{}", manager.port))
        .arg(&manager.token)
        .arg("alpha")
        .arg(&package)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("`node` runs (install Node.js 20)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "the manager console failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        manager.log_text()
    );
    assert_eq!(manager.record("alpha")["status"], "running");
}

/// A small tmpfs, mounted for one test and unmounted on drop: a real full
/// disk. Mounting needs root or CAP_SYS_ADMIN, as `.ci/run` has.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            mounted.status.success(),
            "mounting a {size} tmpfs at {} failed ({}): the full-disk test needs root or \
             CAP_SYS_ADMIN to mount one; run the tests as root, as .ci/run does",
            path.display(),
            String::from_utf8_lossy(&mounted.stderr).trim()
        );
        Tmpfs { path }
    }

    /// Fills the disk to its last byte; returns the filler to remove.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        for chunk in [1 << 16, 4096, 512, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        let probe = std::fs::write(self.path.join("probe"), [0u8; 4096]);
        assert!(probe.is_err(), "the disk is full");
        let _ = std::fs::remove_file(self.path.join("probe"));
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A full disk under the database, then under the runtime root: operations
/// are refused with a clear code (507), nothing is half written (no row, no
/// record, no node), the running world runs on, and the same operations
/// pass once space returns.
#[test]
fn manager_refuses_operations_on_a_full_disk_and_recovers() {
    let scratch = TempDir::new("manager-full");
    let package = package();
    let db_disk = Tmpfs::mount(scratch.join("db-disk"), "4m");
    let root_disk = Tmpfs::mount(scratch.join("root-disk"), "320m");
    // (A node is ready only with 256 MiB free under its root.)

    // 1. The database's disk is full.
    let root = scratch.join("root");
    let url = format!(
        "sqlite://{}?mode=rwc",
        db_disk.path.join("manager.db").display()
    );
    let manager = ManagerProcess::spawn(&root, &["--database-url".into(), url]);
    let alpha = manager.start("alpha", &package, "never");
    let filler = db_disk.fill();
    let refused = |path: &str, body: Value| {
        let (status, body) = manager.post(path, body);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (507, Some("database_full")),
            "{body}"
        );
    };
    refused(
        "/api/v1/internal/runtimes/beta/start",
        json!({"package": package}),
    );
    refused(
        "/api/v1/internal/runtimes/alpha/stop",
        json!({"reason": "full"}),
    );
    assert_eq!(
        manager.get("/api/v1/internal/runtimes/beta").0,
        404,
        "no record"
    );
    assert!(!root.join("worlds/beta").exists(), "nothing was started");
    assert!(alive(alpha["pid"].as_i64().unwrap()), "alpha runs on");
    assert_eq!(manager.record("alpha")["status"], "running");
    std::fs::remove_file(filler).unwrap();
    manager.start("beta", &package, "never");
    let (status, stopped) = manager.post(
        "/api/v1/internal/runtimes/alpha/stop",
        json!({"reason": "space returned"}),
    );
    assert_eq!(
        (status, &stopped["status"]),
        (200, &json!("stopped")),
        "{stopped}"
    );
    let kinds = |world: &str| -> Vec<(String, String)> {
        manager
            .operations(world)
            .iter()
            .map(|o| {
                let field = |name: &str| o[name].as_str().unwrap_or_default().to_string();
                (field("op_kind"), field("outcome"))
            })
            .collect()
    };
    let ok = |kind: &str| (kind.to_string(), "ok".to_string());
    assert_eq!(
        kinds("beta"),
        [ok("start")],
        "the refused start left no row"
    );
    assert_eq!(kinds("alpha"), [ok("stop"), ok("start")], "newest first");
    drop(manager);

    // 2. The runtime root's disk is full (the database is elsewhere).
    let root = root_disk.path.join("root");
    let url = format!(
        "sqlite://{}?mode=rwc",
        scratch.join("root-full.db").display()
    );
    let manager = ManagerProcess::spawn(&root, &["--database-url".into(), url]);
    let filler = root_disk.fill();
    let (status, body) = manager.post(
        "/api/v1/internal/runtimes/gamma/start",
        json!({"package": package}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (507, Some("runtime_root_full")),
        "{body}"
    );
    assert_eq!(manager.get("/api/v1/internal/runtimes/gamma").0, 404);
    assert!(!root.join("worlds/gamma").exists(), "nothing was created");
    assert!(ManagerProcess::world_pids(&root).is_empty());
    // A world without a record: its rows through the all-worlds log.
    let (_, log) = manager.get("/api/v1/internal/operations?world=gamma&limit=1000");
    let failed = log["operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        (
            failed[0]["outcome"].as_str(),
            failed[0]["error_code"].as_str()
        ),
        (Some("failed"), Some("runtime_root_full"))
    );
    std::fs::remove_file(filler).unwrap();
    manager.start("gamma", &package, "never");
    let (status, stopped) = manager.post(
        "/api/v1/internal/runtimes/gamma/stop",
        json!({"reason": "done"}),
    );
    assert_eq!(status, 200, "{stopped}");
    drop(manager);
}

/// A node an operator started by hand with TLS under the root: the initial
/// reconcile adopts it over https:// (trusting the certificate the node
/// recorded, as the CLI does), the probe and inspect workers reach it, and
/// the manager stops it.
#[test]
fn manager_adopts_a_tls_node() {
    let scratch = TempDir::new("manager-tls");
    let root = scratch.join("root");
    let certs = scratch.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (cert, key) = everarcade_testkit::tls::self_signed(&certs, "node");
    let addr = format!("127.0.0.1:{}", free_port());
    let started = Command::new(BINARY)
        .current_dir(repository_root())
        .arg("start")
        .arg(&root)
        .arg("secure")
        .arg(package())
        .args(["--http-addr", &addr, "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("EVERARCADE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let manager = ManagerProcess::spawn(&root, &[]);
    let record = manager.record("secure");
    assert_eq!(record["status"], "running", "{record}");
    assert_eq!(record["engine_endpoint"], format!("https://{addr}"));
    let adopted = manager.operations("secure");
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert_eq!(adopted[0]["op_kind"], "reconcile_adopt");
    manager.until("secure inspected over TLS", Duration::from_secs(15), || {
        let health = &manager.record("secure")["health"];
        health["ready"] == true && health["head_tick"].as_i64().is_some_and(|t| t > 0)
    });
    let (status, stopped) = manager.post(
        "/api/v1/internal/runtimes/secure/stop",
        json!({"reason": "test"}),
    );
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert!(ManagerProcess::world_pids(&root).is_empty());
}
