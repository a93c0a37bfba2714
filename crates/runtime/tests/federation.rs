//! `federation compare|import|status` through the real binary against real
//! nodes on loopback (docs/FEDERATION.md §Recovery commands): an authority
//! and a byte copy of its world compare equal; two histories from the same
//! genesis diverge at the tick their inputs part; a copy that is behind
//! imports the authority's records to identical journal bytes; a forged
//! stream (served by a small axum server in front of the real node) is
//! refused and nothing of it is journaled; unconfigured peers and peers
//! with another operator key are refused before anything is fetched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use everarcade_client::{BlockingClient, Client, Encoding, RecordsQuery};
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_store::Record;
use everarcade_store::journal::{decode_body, decode_record_frame, encode_record};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, expect_failure, repository_root, stderr, text};

/// How long a node may take to answer /readyz 200.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// Ticks the simulated history runs before a node serves it.
const HISTORY_TICKS: u64 = 20;

/// Runs the binary from the repository root.
fn run(command: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(command)
        .output()
        .expect("the binary runs")
}

/// `federation <sub> <root> <world> <pkg> <options…>`.
fn federation(sub: &str, root: &Path, options: &[&str]) -> Output {
    let root = root.to_str().unwrap();
    let mut line = vec!["federation", sub, root, WORLD, PACKAGE];
    line.extend_from_slice(options);
    run(&line)
}

/// `simulate` of `ticks` ticks with the scripted `inputs` (JSON lines).
fn simulate(root: &Path, scratch: &Path, name: &str, inputs: &str, ticks: u64) {
    let script = scratch.join(format!("{name}.jsonl"));
    std::fs::write(&script, inputs).unwrap();
    let output = run(&[
        "simulate",
        root.to_str().unwrap(),
        WORLD,
        PACKAGE,
        "--inputs",
        script.to_str().unwrap(),
        "--ticks",
        &ticks.to_string(),
    ]);
    assert!(output.status.success(), "simulate: {}", text(&output));
}

/// A script of a few inputs over the first ticks; `variant` changes the
/// payload of tick 12's input.
fn script(variant: u8) -> String {
    let lines = [
        (3, "alice", "00".to_string()),
        (5, "bob", "01".to_string()),
        (9, "alice", "02".to_string()),
        (12, "bob", format!("{variant:02x}")),
        (15, "carol", "03".to_string()),
    ];
    lines
        .iter()
        .map(|(tick, player, payload)| {
            format!("{{\"tick\":{tick},\"player\":\"{player}\",\"payload\":\"{payload}\"}}\n")
        })
        .collect()
}

fn copy_root(from: &Path, to: &Path) {
    let output = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(output.status.success(), "cp: {}", text(&output));
}

fn journal_dir(root: &Path) -> PathBuf {
    root.join("worlds").join(WORLD).join("journal")
}

/// The journal's segments, by name, with their bytes.
fn journal_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut segments: Vec<(String, Vec<u8>)> = std::fs::read_dir(journal_dir(root))
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    segments.sort();
    segments
}

/// A node started with `run` in a child process.
struct Node {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Node {
    fn start(root: &Path, log: PathBuf) -> Node {
        Node::start_with(root, log, &[])
    }

    /// `run` with further options (e.g. `--follow URL`).
    fn start_with(root: &Path, log: PathBuf, options: &[&str]) -> Node {
        Node::start_in(root, PACKAGE, log, options)
    }

    /// `run` of the package at `package`.
    fn start_in(root: &Path, package: &str, log: PathBuf, options: &[&str]) -> Node {
        let node = Node::spawn_in(root, package, log, options);
        if let Err(error) = node.blocking().wait_ready(READY_WITHIN) {
            panic!("the node never became ready: {error}\n{}", node.log_text());
        }
        node
    }

    /// `run` of the package at `package`, not waiting for it to be ready.
    fn spawn_in(root: &Path, package: &str, log: PathBuf, options: &[&str]) -> Node {
        let address = free_address();
        let child = common::spawn_run(root, package, &address, options, &log);
        Node {
            child,
            address,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn client(&self) -> Client {
        Client::new(&self.address, WorldId::new(WORLD).unwrap())
            .unwrap()
            .with_encoding(Encoding::Json)
    }

    fn blocking(&self) -> BlockingClient {
        BlockingClient::new(self.client())
    }

    fn key_hex(&self) -> String {
        hex::encode(self.blocking().status().unwrap().operator_public_key)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the node's head tick is at least `tick`.
    fn wait_tick(&self, tick: u64) {
        let client = self.blocking();
        let start = Instant::now();
        while client.status().unwrap().head_tick < tick {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "tick {tick} never came"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM through `stop`, then the child must exit.
    fn stop(mut self, root: &Path) {
        let output = run(&["stop", root.to_str().unwrap(), WORLD, PACKAGE]);
        assert!(
            output.status.success(),
            "stop: {}{}",
            text(&output),
            self.log_text()
        );
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed assertion must not leave a node running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A node configuration trusting `peers` (URL, key).
fn config(scratch: &Path, name: &str, peers: &[(&str, &str)]) -> PathBuf {
    let entries: Vec<String> = peers
        .iter()
        .map(|(url, key)| format!("\"{url} {key}\""))
        .collect();
    let path = scratch.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("[federation]\npeers = [{}]\n", entries.join(", ")),
    )
    .unwrap();
    path
}

/// Parses the JSON object the command printed on stdout.
fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", text(output)))
}

/// An authority serving a simulated history of [`HISTORY_TICKS`] ticks,
/// and a byte copy of that world taken before the node started.
struct Pair {
    scratch: TempDir,
    authority: Node,
    copy: PathBuf,
}

impl Pair {
    fn new(name: &str) -> Pair {
        let scratch = TempDir::new(&format!("federation-{name}"));
        let root = scratch.join("authority");
        simulate(&root, scratch.path(), "history", &script(7), HISTORY_TICKS);
        let copy = scratch.join("copy");
        copy_root(&root, &copy);
        let authority = Node::start(&root, scratch.join("authority.log"));
        Pair {
            scratch,
            authority,
            copy,
        }
    }

    fn authority_root(&self) -> PathBuf {
        self.scratch.join("authority")
    }

    /// A configuration trusting the authority with its real key.
    fn trusting(&self) -> PathBuf {
        let key = self.authority.key_hex();
        config(
            self.scratch.path(),
            "trust",
            &[(&self.authority.url(), &key)],
        )
    }

    /// Five signed inputs through the authority, then three ticks more:
    /// history past the copy's head. Returns the tick waited for.
    fn play_on(&self) -> u64 {
        self.submit(5);
        let target = self.authority.blocking().status().unwrap().head_tick + 3;
        self.authority.wait_tick(target);
        target
    }

    /// `export-bundle` of the authority's ticks `from..=to` into the
    /// scratch directory as `name`.
    fn export_bundle(&self, name: &str, from: u64, to: u64) -> PathBuf {
        let bundle = self.scratch.join(name);
        let output = run(&[
            "export-bundle",
            self.authority_root().to_str().unwrap(),
            WORLD,
            PACKAGE,
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--out",
            bundle.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output));
        bundle
    }

    /// Signed inputs through the authority (players the script does not use).
    fn submit(&self, count: u64) {
        let client = self.authority.blocking();
        let world = WorldId::new(WORLD).unwrap();
        let key = test_signing_key("federation-dave");
        for nonce in 1..=count {
            let envelope = Envelope::sign(&world, &key, nonce, vec![nonce as u8]);
            client.submit(&envelope).unwrap();
        }
    }
}

#[test]
fn compare_is_equal_between_an_authority_and_a_byte_copy_of_its_world() {
    let pair = Pair::new("equal");
    pair.authority.wait_tick(HISTORY_TICKS + 5);
    let cfg = pair.trusting();
    let url = pair.authority.url();
    let cfg_text = cfg.to_str().unwrap();
    let output = federation(
        "compare",
        &pair.copy,
        &["--peer", &url, "--config", cfg_text, "--json"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["result"], "equal", "{report}");
    let peer = &report["peers"][0];
    assert_eq!(peer["last_common_tick"], HISTORY_TICKS, "{report}");
    assert_eq!(peer["ticks_compared"], HISTORY_TICKS, "{report}");
    assert!(
        peer["peer_head_tick"].as_u64() > Some(HISTORY_TICKS),
        "{report}"
    );
    // Sampled: every 6th tick (6, 12, 18) and the last common one (20).
    let output = federation(
        "compare",
        &pair.copy,
        &["--peer", &url, "--config", cfg_text, "--sample", "6"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        out.contains(&format!("equal through tick {HISTORY_TICKS}")),
        "{out}"
    );
    assert!(out.contains("4 ticks compared"), "{out}");
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            pair.copy
                .join("worlds")
                .join(WORLD)
                .join("federation/last-compare.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(written["result"], "equal");
    assert_eq!(written["sample_ticks"], 6);

    // Status: the copy is not running; its peer and its last comparison show.
    let output = federation("status", &pair.copy, &["--config", cfg_text, "--json"]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    let status = json(&output);
    assert_eq!(status["error"]["code"], "not_running");
    assert_eq!(status["head_tick"], HISTORY_TICKS, "{status}");
    assert_eq!(status["peers"][0]["reachable"], true, "{status}");
    assert!(
        status["peers"][0]["lag_ticks"].as_i64() < Some(0),
        "{status}"
    );
    assert_eq!(status["last_compare"]["result"], "equal");
    // And the authority, running, reports its role.
    let output = federation(
        "status",
        &pair.authority_root(),
        &["--config", cfg_text, "--json"],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(json(&output)["role"], "authority");
}

#[test]
fn compare_names_the_tick_where_two_histories_from_one_genesis_part() {
    let pair = Pair::new("diverged");
    // Another history from the same genesis: tick 12's input differs.
    let other = pair.scratch.join("other");
    simulate(
        &other,
        pair.scratch.path(),
        "other",
        &script(8),
        HISTORY_TICKS,
    );
    let cfg = pair.trusting();
    let url = pair.authority.url();
    let output = federation(
        "compare",
        &other,
        &["--peer", &url, "--config", cfg.to_str().unwrap(), "--json"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["code"], "peer_root_mismatch", "{report}");
    let divergence = &report["peers"][0]["divergence"];
    assert_eq!(divergence["record_tick"], 12, "{report}");
    assert_eq!(divergence["tick"], 12, "{report}");
    let roots: Vec<&str> = divergence["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|root| root["root"].as_str().unwrap())
        .collect();
    assert!(roots.contains(&"input_root"), "{report}");
    assert!(roots.contains(&"continuity_root"), "{report}");
    // The text names the record, the tick and each root.
    let output = federation(
        "compare",
        &other,
        &["--peer", &url, "--config", cfg.to_str().unwrap()],
    );
    expect_failure(&output, 3, "peer_root_mismatch");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(out.contains("first divergent tick 12"), "{out}");
    assert!(out.contains("input_root"), "{out}");
    // Its journal is not a prefix of the authority's: import takes nothing.
    let before = journal_bytes(&other);
    let output = federation(
        "import",
        &other,
        &["--peer", &url, "--config", cfg.to_str().unwrap(), "--json"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["code"], "peer_diverged", "{report}");
    assert_eq!(report["records_imported"], 0, "{report}");
    assert!(journal_bytes(&other) == before, "nothing was journaled");
}

/// Rewrites the journal of the world under `root` with tick `tick`'s
/// record carrying another state root, every record after it re-chained:
/// a tamperer with the disk who knows the format, so that every checksum
/// and the chain still check out.
fn tamper_and_rechain(root: &Path, tick: u64) {
    let segments = journal_bytes(root);
    assert_eq!(segments.len(), 1, "a short history fits one segment");
    let (name, bytes) = &segments[0];
    let header = everarcade_store::journal::SEGMENT_HEADER_BYTES;
    let mut out = bytes[..header].to_vec();
    let mut at = header;
    let mut prev: Option<everarcade_protocol::Hash> = None;
    let mut tampered = false;
    while at < bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + 40 + length + 32;
        let frame = decode_record_frame(&bytes[at..end]).unwrap();
        let mut record = decode_body(frame.kind, frame.body).unwrap();
        if let Record::Tick(record) = &mut record
            && record.roots.tick == tick
        {
            record.roots.state_root.0[0] ^= 1;
            tampered = true;
        }
        let chained = prev.unwrap_or(frame.prev);
        prev = Some(encode_record(
            frame.kind,
            &record.encode_body(),
            &chained,
            &mut out,
        ));
        at = end;
    }
    assert!(tampered, "tick {tick} has a record");
    std::fs::write(journal_dir(root).join(name), out).unwrap();
}

/// The acceptance: tamper with a follower's journal (every
/// checksum and the chain made to check out again): its next comparison
/// with the authority reports a peer root mismatch naming the tick.
#[test]
fn compare_names_the_tick_of_a_tampered_and_rechained_journal() {
    const TAMPERED_TICK: u64 = 12;
    let pair = Pair::new("tampered");
    tamper_and_rechain(&pair.copy, TAMPERED_TICK);
    let cfg = pair.trusting();
    let url = pair.authority.url();
    let output = federation(
        "compare",
        &pair.copy,
        &["--peer", &url, "--config", cfg.to_str().unwrap(), "--json"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["code"], "peer_root_mismatch", "{report}");
    let divergence = &report["peers"][0]["divergence"];
    assert_eq!(divergence["record_tick"], TAMPERED_TICK, "{report}");
    assert_eq!(divergence["tick"], TAMPERED_TICK, "{report}");
    let roots: Vec<&str> = divergence["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|root| root["root"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["state_root"], "{report}");
    // The comparison is recorded beside the world.
    let recorded = pair
        .copy
        .join("worlds")
        .join(WORLD)
        .join("federation/last-compare.json");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recorded).unwrap()).unwrap();
    assert_eq!(
        recorded["peers"][0]["divergence"]["tick"], TAMPERED_TICK,
        "{recorded}"
    );
}

#[test]
fn import_brings_a_copy_that_is_behind_to_the_authoritys_journal_bytes() {
    let pair = Pair::new("import");
    let target = pair.play_on();
    let cfg = pair.trusting();
    let url = pair.authority.url();
    let cfg_text = cfg.to_str().unwrap();
    // Refused while a node holds the world.
    let output = federation(
        "import",
        &pair.authority_root(),
        &["--peer", &url, "--config", cfg_text],
    );
    expect_failure(&output, 1, "world_running");

    let output = federation(
        "import",
        &pair.copy,
        &["--peer", &url, "--config", cfg_text, "--json"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    let head_tick = report["head_tick"].as_u64().unwrap();
    assert!(head_tick >= target, "{report}");
    assert_eq!(
        report["ticks_imported"].as_u64(),
        Some(head_tick - HISTORY_TICKS),
        "{report}"
    );
    assert!(report["refused"].is_null(), "{report}");
    // Equal to the authority through the imported head, by the comparison too.
    let output = federation(
        "compare",
        &pair.copy,
        &["--peer", &url, "--config", cfg_text],
    );
    assert!(output.status.success(), "{}", text(&output));

    let authority_root = pair.authority_root();
    pair.authority.stop(&authority_root);
    let ours = journal_bytes(&pair.copy);
    let theirs = journal_bytes(&authority_root);
    assert_eq!(ours.len(), theirs.len(), "the same segments");
    for ((name, our_bytes), (_, their_bytes)) in ours.iter().zip(&theirs) {
        assert!(
            their_bytes.starts_with(our_bytes),
            "segment {name}: the copy's {} bytes are not the authority's first bytes",
            our_bytes.len()
        );
    }
    let output = run(&["replay-verify", pair.copy.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(output.status.success(), "{}", text(&output));
}

/// What the forging server does to the first record it serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forgery {
    /// One byte of the body flipped, the checksum left as it was.
    FlippedByte,
    /// Re-encoded with a changed state root or input payload and a correct
    /// checksum and chain: only re-execution or the signature finds it.
    Rewritten,
    /// The stream's last byte cut: a frame ends early.
    Truncated,
    /// The tick record of this tick, wherever it is in a page, re-encoded
    /// with a changed state root and a correct checksum.
    TickRoot(u64),
}

/// The forging server's state.
struct Forger {
    upstream: Client,
    forgery: Forgery,
    record_requests: AtomicU64,
}

/// `wire` re-encoded with its state root (a tick record) or its first
/// input's payload changed, under a correct checksum and the same `prev`.
fn rewrite(wire: &mut everarcade_federation::WireRecord) {
    let frame = decode_record_frame(&wire.bytes).unwrap();
    let mut record = decode_body(frame.kind, frame.body).unwrap();
    match &mut record {
        Record::Tick(tick) => tick.roots.state_root.0[0] ^= 1,
        Record::Inputs(inputs) => inputs.envelopes[0].payload.push(0),
        Record::Genesis(_) => unreachable!("never served after the genesis record"),
    }
    let prev = frame.prev;
    let mut bytes = Vec::new();
    encode_record(frame.kind, &record.encode_body(), &prev, &mut bytes);
    wire.bytes = bytes;
}

fn forge(records: &mut [everarcade_federation::WireRecord], forgery: Forgery) {
    if let Forgery::TickRoot(tick) = forgery {
        for wire in records.iter_mut() {
            let frame = decode_record_frame(&wire.bytes).unwrap();
            if let Ok(Record::Tick(record)) = decode_body(frame.kind, frame.body)
                && record.roots.tick == tick
            {
                rewrite(wire);
            }
        }
        return;
    }
    let Some(first) = records.first_mut() else {
        return;
    };
    match forgery {
        Forgery::FlippedByte => {
            let middle = 40 + (first.bytes.len() - 72) / 2;
            first.bytes[middle] ^= 0x40;
        }
        Forgery::Rewritten => rewrite(first),
        Forgery::Truncated | Forgery::TickRoot(_) => {}
    }
}

/// Serves the upstream node's `/status` as is and its `/records` forged.
fn forging_server(upstream: &Node, forgery: Forgery) -> (String, Arc<Forger>) {
    use axum::extract::{RawQuery, State};
    use axum::response::IntoResponse;
    let state = Arc::new(Forger {
        upstream: upstream.client(),
        forgery,
        record_requests: AtomicU64::new(0),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shared = state.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let status = |State(forger): State<Arc<Forger>>| async move {
                let status = forger.upstream.status().await.unwrap();
                axum::Json(serde_json::to_value(status).unwrap())
            };
            let records = |State(forger): State<Arc<Forger>>, RawQuery(query): RawQuery| async move {
                forger.record_requests.fetch_add(1, Ordering::SeqCst);
                let query = query.unwrap_or_default();
                let value = |name: &str| {
                    query
                        .split('&')
                        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                        .unwrap_or_default()
                        .to_string()
                };
                let after: u64 = value("after").parse().unwrap();
                let checksum = value("checksum");
                // A follower's name, durable record and divergence pass
                // through to the real node.
                let name = value("follower");
                let durable: u64 = value("durable").parse().unwrap_or(0);
                let query = RecordsQuery {
                    diverged: value("diverged").parse().ok(),
                    after,
                    checksum: &checksum,
                    wait_ms: 0,
                    max_bytes: 1 << 20,
                    follower: (!name.is_empty()).then_some((name.as_str(), durable)),
                };
                let page = forger.upstream.records(&query).await.unwrap();
                let mut records = everarcade_federation::stream::decode_stream(&page.body).unwrap();
                forge(&mut records, forger.forgery);
                let mut out = Vec::new();
                everarcade_federation::stream::encode_stream(&records, &mut out);
                if forger.forgery == Forgery::Truncated {
                    out.pop();
                }
                out.into_response()
            };
            let router = axum::Router::new()
                .route(&format!("/v1/worlds/{WORLD}/status"), axum::routing::get(status))
                .route(&format!("/v1/worlds/{WORLD}/records"), axum::routing::get(records))
                .with_state(shared);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    (format!("http://{address}"), state)
}

#[test]
fn import_with_checkpoint_starts_from_the_peers_checkpoint_and_replay_verifies() {
    let pair = Pair::new("import-checkpoint");
    pair.play_on();
    // A checkpoint on the authority, taken through its node.
    let authority_root = pair.authority_root();
    let output = run(&[
        "checkpoint",
        authority_root.to_str().unwrap(),
        WORLD,
        PACKAGE,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let checkpoint = pair
        .authority
        .blocking()
        .status()
        .unwrap()
        .checkpoint_tick
        .unwrap();
    assert!(checkpoint > HISTORY_TICKS, "{checkpoint}");
    let cfg = pair.trusting();
    let url = pair.authority.url();
    let cfg_text = cfg.to_str().unwrap();
    let output = federation(
        "import",
        &pair.copy,
        &[
            "--peer",
            &url,
            "--config",
            cfg_text,
            "--checkpoint",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["from_checkpoint"], checkpoint, "{report}");
    assert!(report["refused"].is_null(), "{report}");
    let head_tick = report["head_tick"].as_u64().unwrap();
    // Only the ticks after the checkpoint were executed here.
    assert_eq!(
        report["ticks_imported"].as_u64(),
        Some(head_tick - checkpoint),
        "{report}"
    );
    let output = federation(
        "compare",
        &pair.copy,
        &["--peer", &url, "--config", cfg_text],
    );
    assert!(output.status.success(), "{}", text(&output));
    // What the import took on the peer's word, replay-verify re-derives.
    let output = run(&["replay-verify", pair.copy.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(output.status.success(), "{}", text(&output));
}

/// `federation import <root> … --bundle <bundle> --config <config> --json`.
fn import_bundle(root: &Path, bundle: &str, config: &str) -> Output {
    federation(
        "import",
        root,
        &["--bundle", bundle, "--config", config, "--json"],
    )
}

#[test]
fn import_of_a_trusted_peers_bundle_executes_its_ticks_and_refuses_untrusted_or_damaged_ones() {
    let pair = Pair::new("import-bundle");
    let to = pair.play_on();
    // The window starts before the copy's head (tick HISTORY_TICKS), so
    // the attach check reads the bundle's recorded roots of that tick.
    let bundle = pair.export_bundle("window.bundle", 10, to);
    let bundle_text = bundle.to_str().unwrap();
    let before = journal_bytes(&pair.copy);

    // Signed by a key no configured peer has: refused, nothing written.
    let url = pair.authority.url();
    let stranger = config(pair.scratch.path(), "stranger", &[(&url, &"ab".repeat(32))]);
    let output = import_bundle(&pair.copy, bundle_text, stranger.to_str().unwrap());
    assert_eq!(output.status.code(), Some(9), "{}", text(&output));
    assert_eq!(json(&output)["error"]["code"], "untrusted_operator_key");
    assert_eq!(journal_bytes(&pair.copy), before);

    // One damaged byte: refused by the checksum, nothing written.
    let damaged = pair.scratch.join("damaged.bundle");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, &bytes).unwrap();
    let cfg = pair.trusting();
    let cfg_text = cfg.to_str().unwrap();
    let output = import_bundle(&pair.copy, damaged.to_str().unwrap(), cfg_text);
    assert_eq!(output.status.code(), Some(8), "{}", text(&output));
    assert_eq!(json(&output)["error"]["code"], "bundle_checksum");
    assert_eq!(journal_bytes(&pair.copy), before);

    // A world whose history parted from the bundle's at tick 12: its
    // roots at its head are not the bundle's; refused, nothing written.
    let other = pair.scratch.join("other");
    simulate(
        &other,
        pair.scratch.path(),
        "other",
        &script(8),
        HISTORY_TICKS,
    );
    let other_before = journal_bytes(&other);
    let output = import_bundle(&other, bundle_text, cfg_text);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let refusal = json(&output);
    assert_eq!(refusal["error"]["code"], "peer_root_mismatch", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("continuity_root"),
        "{refusal}"
    );
    assert_eq!(journal_bytes(&other), other_before);

    // The trusted bundle: every tick after the copy's head is executed
    // here, to the authority's roots.
    let output = import_bundle(&pair.copy, bundle_text, cfg_text);
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    assert!(report["refused"].is_null(), "{report}");
    assert_eq!(report["bundle"], bundle_text, "{report}");
    assert_eq!(report["from_tick"], HISTORY_TICKS, "{report}");
    assert_eq!(report["head_tick"], to, "{report}");
    assert_eq!(
        report["ticks_imported"].as_u64(),
        Some(to - HISTORY_TICKS),
        "{report}"
    );
    let authority_tick = pair.authority.blocking().tick(to).unwrap();
    assert_eq!(
        report["state_root"].as_str(),
        Some(authority_tick.state_root.to_hex().as_str()),
        "{report}"
    );
    let output = run(&["replay-verify", pair.copy.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(output.status.success(), "{}", text(&output));

    // Again: the window holds nothing newer than the head now.
    let output = import_bundle(&pair.copy, bundle_text, cfg_text);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(json(&output)["ticks_imported"], 0);

    // A window that starts after the world's head leaves a gap: refused.
    pair.authority.wait_tick(to + 2);
    let late = pair.export_bundle("late.bundle", to + 1, to + 2);
    let output = import_bundle(&pair.copy, late.to_str().unwrap(), cfg_text);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert_eq!(json(&output)["error"]["code"], "bundle_not_adjacent");
}

#[test]
fn import_refuses_a_forged_record_stream_and_journals_nothing() {
    let pair = Pair::new("forged");
    pair.submit(3);
    pair.authority.wait_tick(HISTORY_TICKS + 10);
    let key = pair.authority.key_hex();
    let before = journal_bytes(&pair.copy);
    for (forgery, codes, names_a_record) in [
        (Forgery::FlippedByte, &["record_malformed"][..], true),
        (
            Forgery::Rewritten,
            &["peer_root_mismatch", "input_refused"][..],
            true,
        ),
        (Forgery::Truncated, &["record_stream_malformed"][..], false),
    ] {
        let (url, forger) = forging_server(&pair.authority, forgery);
        let cfg = config(pair.scratch.path(), "forger", &[(&url, &key)]);
        let output = federation(
            "import",
            &pair.copy,
            &["--peer", &url, "--config", cfg.to_str().unwrap(), "--json"],
        );
        assert!(!output.status.success(), "{}", text(&output));
        let report = json(&output);
        let code = report["error"]["code"].as_str().unwrap().to_string();
        assert!(codes.contains(&code.as_str()), "{report}");
        if names_a_record {
            // The first record after the copy's head is the forged one.
            let forged = report["from_record"].as_u64().unwrap() + 1;
            assert_eq!(report["refused"]["record"], forged, "{report}");
            assert_eq!(report["refused"]["code"], code.as_str(), "{report}");
        } else {
            assert_eq!(output.status.code(), Some(4), "{report}");
        }
        assert_eq!(report["records_imported"], 0, "{report}");
        assert!(forger.record_requests.load(Ordering::SeqCst) >= 1);
        assert!(journal_bytes(&pair.copy) == before, "nothing was journaled");
    }
    let output = run(&["replay-verify", pair.copy.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn unknown_peers_and_peers_with_another_key_are_refused_before_anything_is_fetched() {
    let pair = Pair::new("trust");
    let (url, forger) = forging_server(&pair.authority, Forgery::FlippedByte);
    let wrong_key = "0".repeat(64);
    let cfg = config(pair.scratch.path(), "wrong", &[(&url, &wrong_key)]);
    let cfg_text = cfg.to_str().unwrap();
    for sub in ["compare", "import"] {
        let output = federation(sub, &pair.copy, &["--peer", &url, "--config", cfg_text]);
        let message = expect_failure(&output, 9, "peer_key_mismatch");
        assert!(message.contains(&wrong_key), "{message}");
        // Not configured at all (the authority itself, under its real URL).
        let output = federation(
            sub,
            &pair.copy,
            &["--peer", &pair.authority.url(), "--config", cfg_text],
        );
        expect_failure(&output, 9, "peer_unknown");
        // No configuration: no peer is trusted.
        let output = federation(sub, &pair.copy, &["--peer", &url]);
        expect_failure(&output, 9, "peer_unknown");
    }
    assert_eq!(
        forger.record_requests.load(Ordering::SeqCst),
        0,
        "no record was fetched"
    );
    assert!(
        stderr(&federation("status", &pair.copy, &["--config", cfg_text])).contains("not_running")
    );
}

#[test]
fn compare_reports_a_peer_of_another_lineage_at_the_genesis_record() {
    let scratch = TempDir::new("federation-lineage");
    let ours = scratch.join("ours");
    simulate(&ours, scratch.path(), "ours", &script(7), HISTORY_TICKS);
    // Any change to a package file changes its root, hence the genesis.
    let package = scratch.join("package");
    copy_root(&repository_root().join(PACKAGE), &package);
    let readme = package.join("README.md");
    let mut notes = std::fs::read_to_string(&readme).unwrap();
    notes.push_str("\nAnother lineage.\n");
    std::fs::write(&readme, notes).unwrap();
    let theirs = scratch.join("theirs");
    let node = Node::start_in(
        &theirs,
        package.to_str().unwrap(),
        scratch.join("theirs.log"),
        &[],
    );
    let cfg = config(scratch.path(), "theirs", &[(&node.url(), &node.key_hex())]);
    let output = federation(
        "compare",
        &ours,
        &[
            "--peer",
            &node.url(),
            "--config",
            cfg.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let report = json(&output);
    let divergence = &report["peers"][0]["divergence"];
    assert_eq!(divergence["record"], 0, "{report}");
    assert_eq!(report["peers"][0]["records_compared"], 0, "{report}");
    assert_eq!(
        report["peers"][0]["local_head_tick"], HISTORY_TICKS,
        "{report}"
    );
}

/// The node's role as its status reports it.
fn role(node: &Node) -> String {
    node.blocking().status().unwrap().role
}

#[test]
fn leave_promote_and_rejoin_move_authority_between_two_nodes() {
    let pair = Pair::new("roles");
    let follower_root = pair.scratch.join("follower");
    let follower = Node::start_with(
        &follower_root,
        pair.scratch.join("follower.log"),
        &["--follow", &pair.authority.url()],
    );
    pair.submit(3);
    let head = pair.authority.blocking().status().unwrap().head_tick;
    follower.wait_tick(head);
    assert_eq!(role(&follower), "follower");
    let authority_root = pair.authority_root();

    // A follower cannot leave authority it does not hold.
    let output = federation("leave", &follower_root, &[]);
    expect_failure(&output, 1, "not_authority");
    // The authority leaves: it stands by.
    let output = federation("leave", &authority_root, &["--json"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(json(&output)["role"], "standby");
    // The caught-up follower is promoted.
    let output = federation("promote", &follower_root, &["--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let promoted = json(&output);
    assert_eq!(promoted["role"], "authority", "{promoted}");
    assert!(promoted["tick"].as_u64() >= Some(head), "{promoted}");
    assert_eq!(role(&follower), "authority");
    let output = federation("promote", &follower_root, &[]);
    expect_failure(&output, 1, "already_authority");

    // The old authority rejoins the new one, a configured peer.
    let key = follower.key_hex();
    let cfg = config(
        pair.scratch.path(),
        "new-authority",
        &[(&follower.url(), &key)],
    );
    let cfg_text = cfg.to_str().unwrap();
    let output = federation(
        "rejoin",
        &authority_root,
        &["--authority", &pair.authority.url(), "--config", cfg_text],
    );
    expect_failure(&output, 9, "peer_unknown");
    let output = federation(
        "rejoin",
        &authority_root,
        &[
            "--authority",
            &follower.url(),
            "--config",
            cfg_text,
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let rejoined = json(&output);
    assert_eq!(rejoined["role"], "follower", "{rejoined}");
    assert_eq!(rejoined["authority"], follower.url().as_str(), "{rejoined}");
    assert_eq!(role(&pair.authority), "follower");
    // Status on the follower names its authority.
    let output = federation("status", &authority_root, &["--config", cfg_text, "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let status = json(&output);
    assert_eq!(status["role"], "follower", "{status}");
    assert_eq!(status["authority"], follower.url().as_str(), "{status}");
}

/// The manual's "Troubleshooting: Peer root mismatch", through the binary: a
/// follower fed an authority's stream whose tick record of one tick carries
/// another state root records the incident naming that tick, journals
/// nothing of it, stops following and says so on /readyz, its status and
/// its metrics.
#[test]
fn a_follower_fed_a_forged_tick_record_records_a_peer_root_mismatch_naming_the_tick() {
    const FORGED_TICK: u64 = 12;
    let pair = Pair::new("mismatch");
    let (url, forger) = forging_server(&pair.authority, Forgery::TickRoot(FORGED_TICK));
    let root = pair.scratch.join("follower");
    let follower = Node::spawn_in(
        &root,
        PACKAGE,
        pair.scratch.join("follower.log"),
        &["--follow", &url],
    );
    let client = follower.blocking();
    let start = Instant::now();
    let status = loop {
        if let Ok(status) = client.status()
            && status.role == "diverged"
        {
            break status;
        }
        assert!(
            start.elapsed() < READY_WITHIN,
            "the follower never diverged\n{}",
            follower.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(forger.record_requests.load(Ordering::SeqCst) >= 1);
    let incident = status.incident.expect("the status names the incident");
    assert_eq!(incident.kind, "peer_root_mismatch", "{incident:?}");
    assert_eq!(incident.tick, FORGED_TICK, "{incident:?}");
    assert!(
        incident.message.contains("state_root"),
        "the message names the differing root: {incident:?}"
    );
    assert_eq!(
        status.head_tick,
        FORGED_TICK - 1,
        "nothing of the forged tick"
    );
    // The authority hears of it from the follower's last pull.
    let start = Instant::now();
    let reported = loop {
        let followers = pair.authority.blocking().status().unwrap().followers;
        if let Some(seen) = followers
            .iter()
            .find(|seen| seen.diverged_at_tick.is_some())
        {
            break seen.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the authority never heard of the divergence: {followers:?}\n{}",
            follower.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(reported.diverged_at_tick, Some(FORGED_TICK), "{reported:?}");
    // And `federation status` on the authority says so.
    let output = federation("status", &pair.authority_root(), &["--json"]);
    let report = json(&output);
    let followers = report["followers"].as_array().expect("a list of followers");
    assert!(
        followers
            .iter()
            .any(|follower| follower["diverged_at_tick"] == FORGED_TICK),
        "{report}"
    );
    let error = client
        .readyz()
        .expect_err("a diverged follower is not ready");
    assert!(format!("{error}").contains("503"), "{error}");
    let metrics = client.metrics().unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line == "everarcade_peer_root_mismatches_total 1"),
        "{metrics}"
    );
    // The node's stop report says why the world could not be closed
    // cleanly; the journal holds exactly the ticks before the divergent
    // one, and replays.
    let output = run(&["stop", root.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(!output.status.success(), "{}", text(&output));
    let mut follower = follower;
    follower.child.wait().unwrap();
    let log = follower.log_text();
    assert!(
        log.contains(&format!("peer root mismatch at tick {FORGED_TICK}")),
        "{log}"
    );
    let output = run(&["replay-verify", root.to_str().unwrap(), WORLD, PACKAGE]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("{}", FORGED_TICK - 1)),
        "{}",
        text(&output)
    );
}
