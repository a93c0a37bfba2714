//! The node end to end through the real binary and `everarcade-client`:
//! concurrent signed inputs in both encodings, SIGKILL mid-load, a restart,
//! and proof that every input answered 202 is in the journal at the tick
//! and position the answer named; `replay-verify` agrees. Then the `submit`
//! and `load` commands against a live node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use everarcade_client::{Ack, BlockingClient, Client, ClientError, Encoding};
use everarcade_protocol::{Envelope, Hash, WorldId, test_signing_key};
use everarcade_store::{DiskStorage, JournalReader, Record};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, repository_root};

/// How long a node may take to answer /readyz 200.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// Acknowledged inputs to collect before the SIGKILL.
const ACKED_BEFORE_KILL: u64 = 2_000;
/// Bound of the whole load phase.
const LOAD_PHASE_MAX: Duration = Duration::from_secs(60);
/// Nonces one writer uses at most.
const WRITER_NONCES_MAX: u64 = 50_000;

/// A scratch directory holding a runtime root and the nodes' logs.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch {
            dir: TempDir::new(&format!("e2e-{name}")),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn command(&self, command: &str, options: &[&str]) -> Command {
        let mut child = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"));
        child
            .current_dir(repository_root())
            .arg(command)
            .arg(self.root())
            .arg(WORLD)
            .arg(PACKAGE)
            .args(options);
        child
    }

    fn run(&self, command: &str, options: &[&str]) -> Output {
        self.command(command, options)
            .output()
            .expect("the binary runs")
    }
}

/// A node started with `run` in a child process.
struct Node {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Node {
    fn start(scratch: &Scratch, label: &str) -> Node {
        let address = free_address();
        let log = scratch.dir.join(format!("{label}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = scratch
            .command(
                "run",
                &[
                    "--http-addr",
                    &address,
                    "--set",
                    "http.rate_per_client_per_second=1000000",
                ],
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the binary starts");
        let node = Node {
            child,
            address,
            log,
        };
        let client = node.blocking(Encoding::Json);
        if let Err(error) = client.wait_ready(READY_WITHIN) {
            panic!("the node never became ready: {error}\n{}", node.log_text());
        }
        node
    }

    fn client(&self, encoding: Encoding) -> Client {
        Client::new(&self.address, WorldId::new(WORLD).unwrap())
            .unwrap()
            .with_encoding(encoding)
    }

    fn blocking(&self, encoding: Encoding) -> BlockingClient {
        BlockingClient::new(self.client(encoding))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no graceful anything.
    fn kill(mut self) {
        self.child.kill().expect("the node is running");
        self.child.wait().unwrap();
    }

    /// `stop` (SIGTERM and wait), then the child must exit 0.
    fn stop(mut self, scratch: &Scratch) {
        let output = scratch.run("stop", &[]);
        assert!(
            output.status.success(),
            "stop: {}{}",
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "run exited {status}: {}", self.log_text());
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

/// An input the node answered 202.
#[derive(Clone, Debug)]
struct Acked {
    hash: Hash,
    ack: Ack,
    sender: [u8; 32],
    nonce: u64,
}

/// Writer `index` sends its player's nonces 1, 2, … until the node stops
/// answering, the stop flag is set or a bound is reached. Writers 0 and 1
/// send single envelopes, 2 and 3 batches of 8; odd writers use the binary
/// encoding.
fn writer(
    client: BlockingClient,
    index: u32,
    acked: Arc<Mutex<Vec<Acked>>>,
    refused: Arc<Mutex<BTreeMap<String, u64>>>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let world = WorldId::new(WORLD).unwrap();
    let key = test_signing_key(&format!("writer-{index}"));
    let batch = if index >= 2 { 8 } else { 1 };
    let started = Instant::now();
    let mut nonce = 1;
    while nonce < WRITER_NONCES_MAX
        && started.elapsed() < LOAD_PHASE_MAX
        && !stop.load(Ordering::SeqCst)
    {
        let envelopes: Vec<Envelope> = (0..batch)
            .map(|i| Envelope::sign(&world, &key, nonce + i, vec![index as u8, i as u8]))
            .collect();
        nonce += batch;
        let results = if batch == 1 {
            match client.submit(&envelopes[0]) {
                Ok(ack) => vec![Ok(ack)],
                Err(ClientError::Node { code, .. }) => vec![Err(code)],
                Err(_) => return, // killed: no answer
            }
        } else {
            match client.submit_batch(&envelopes) {
                Ok(results) => results.into_iter().map(|r| r.map_err(|e| e.code)).collect(),
                Err(ClientError::Node { code, .. }) => vec![Err(code); envelopes.len()],
                Err(_) => return,
            }
        };
        for (envelope, result) in envelopes.iter().zip(results) {
            match result {
                Ok(ack) => {
                    acked.lock().unwrap().push(Acked {
                        hash: envelope.hash(),
                        ack,
                        sender: envelope.sender,
                        nonce: envelope.nonce,
                    });
                    count.fetch_add(1, Ordering::SeqCst);
                }
                Err(code) => *refused.lock().unwrap().entry(code).or_default() += 1,
            }
        }
    }
}

/// Every input of the journal: envelope hash → (tick, position in the tick).
fn journal_inputs(root: &Path) -> BTreeMap<Hash, (u64, u32)> {
    let journal = root.join("worlds").join(WORLD).join("journal");
    let mut reader = JournalReader::open(&DiskStorage, &journal).unwrap();
    let mut positions: BTreeMap<u64, u32> = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    while let Some(raw) = reader.next().unwrap() {
        if let Record::Inputs(record) = raw.decode().unwrap() {
            for envelope in record.envelopes {
                let seq = positions.entry(record.tick).or_default();
                let previous = inputs.insert(envelope.hash(), (record.tick, *seq));
                assert_eq!(previous, None, "an envelope journaled twice");
                *seq += 1;
            }
        }
    }
    inputs
}

#[test]
fn every_acknowledged_input_survives_sigkill() {
    let scratch = Scratch::new("kill");
    let node = Node::start(&scratch, "first");
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let refused: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u32)
        .map(|index| {
            let encoding = if index % 2 == 1 {
                Encoding::Binary
            } else {
                Encoding::Json
            };
            let client = node.blocking(encoding);
            let (acked, refused, count, stop) =
                (acked.clone(), refused.clone(), count.clone(), stop.clone());
            std::thread::spawn(move || writer(client, index, acked, refused, count, stop))
        })
        .collect();
    let started = Instant::now();
    while count.load(Ordering::SeqCst) < ACKED_BEFORE_KILL && started.elapsed() < LOAD_PHASE_MAX {
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = node.log_text();
    node.kill();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().expect("a writer never panics");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() as u64 >= ACKED_BEFORE_KILL,
        "only {} acknowledged before the kill\n{log}",
        acked.len()
    );
    let ticks: std::collections::BTreeSet<u64> = acked.iter().map(|a| a.ack.tick).collect();
    assert!(
        ticks.len() >= 2,
        "the acknowledged inputs span several ticks: {ticks:?}"
    );
    eprintln!(
        "{} acknowledged over ticks {:?}..={:?} before the SIGKILL",
        acked.len(),
        ticks.first(),
        ticks.last()
    );
    let refused = refused.lock().unwrap().clone();
    assert!(
        refused.keys().all(|code| code == "tick_full"),
        "refusals other than a full tick: {refused:?}"
    );

    // Restart: recovery must bring back every acknowledged input.
    let node = Node::start(&scratch, "second");
    let client = node.blocking(Encoding::Json);
    let last_tick = acked.iter().map(|a| a.ack.tick).max().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.status().unwrap().head_tick < last_tick {
        assert!(
            Instant::now() < deadline,
            "the node never executed tick {last_tick}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The recovered nonce map holds every acknowledged nonce: reusing the
    // highest one is stale, a fresh one is admitted.
    let mut highest: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for a in &acked {
        let entry = highest.entry(a.sender).or_default();
        *entry = (*entry).max(a.nonce);
    }
    let world = WorldId::new(WORLD).unwrap();
    for index in 0..4u32 {
        let key = test_signing_key(&format!("writer-{index}"));
        let nonce = highest[&key.verifying_key().to_bytes()];
        let error = client
            .submit(&Envelope::sign(&world, &key, nonce, vec![9]))
            .unwrap_err();
        assert_eq!(
            (error.status(), error.code()),
            (Some(422), "stale_nonce"),
            "{error}"
        );
        client
            .submit(&Envelope::sign(&world, &key, 1 << 60, vec![9]))
            .unwrap();
    }
    let after_restart = client.status().unwrap().head_tick;
    node.stop(&scratch);

    let journal = journal_inputs(&scratch.root());
    for a in &acked {
        assert_eq!(
            journal.get(&a.hash),
            Some(&(a.ack.tick, a.ack.seq)),
            "input {} (nonce {}) was answered {:?} but the journal disagrees",
            a.hash,
            a.nonce,
            a.ack
        );
    }
    let output = scratch.run("replay-verify", &["--json"]);
    assert!(
        output.status.success(),
        "replay-verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert!(report["head_tick"].as_u64().unwrap() >= after_restart);
    assert_eq!(report["inputs"].as_u64().unwrap(), journal.len() as u64);
}

#[test]
fn submit_and_load_commands_drive_a_live_node() {
    let scratch = Scratch::new("cli");
    let node = Node::start(&scratch, "node");
    let addr = node.address.clone();
    // The address comes from status.json when --addr is absent.
    let output = scratch.run(
        "submit",
        &[
            "--player",
            "alice",
            "--payload",
            "00",
            "--nonce",
            "7",
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["nonce"], 7);
    assert!(answer["tick"].as_u64().unwrap() >= 1);
    let again = scratch.run(
        "submit",
        &[
            "--addr",
            &addr,
            "--player",
            "alice",
            "--payload",
            "00",
            "--nonce",
            "7",
            "--binary",
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("error[stale_nonce]"));
    let bad = scratch.run("submit", &["--player", "alice", "--payload", "zz"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let script = scratch.dir.join("inputs.jsonl");
    std::fs::write(&script, "{\"tick\":1,\"player\":\"bob\",\"payload\":\"01\"}\n{\"tick\":1,\"player\":\"carol\",\"payload\":\"\"}\n{\"tick\":3,\"player\":\"bob\",\"payload\":\"02\"}\n").unwrap();
    let output = scratch.run(
        "submit",
        &[
            "--inputs",
            script.to_str().unwrap(),
            "--nonce",
            "1",
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (results[0]["nonce"].as_u64(), results[2]["nonce"].as_u64()),
        (Some(1), Some(2)),
        "bob counts up"
    );
    assert!(
        results[2]["tick"].as_u64() >= Some(results[0]["tick"].as_u64().unwrap() + 2),
        "tick 3 waits two ticks"
    );

    let output = scratch.run(
        "load",
        &[
            "--bots",
            "16",
            "--ticks",
            "40",
            "--duration-secs",
            "30",
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert_eq!(report["acknowledged"].as_u64(), Some(sent), "{report}");
    assert!(report["latency_p99_micros"].as_u64() >= report["latency_p50_micros"].as_u64());
    // Prepared, then held until the wall-clock time given.
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1_500;
    let output = scratch.run(
        "load",
        &[
            "--bots",
            "16",
            "--ticks",
            "40",
            "--batch",
            "--binary",
            "--concurrency",
            "2",
            "--start-at",
            &start_at.to_string(),
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let batched: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(batched["acknowledged"], batched["sent"], "{batched}");
    assert!(
        batched["requests"].as_u64() <= Some(80),
        "at most one request per tick per lane: {batched}"
    );
    assert!(
        batched["send_started_unix_millis"].as_u64() >= Some(start_at),
        "sending waits for --start-at: {batched}"
    );

    node.stop(&scratch);
    // No node now: the commands say so with exit 5.
    let output = scratch.run(
        "submit",
        &["--addr", &addr, "--player", "alice", "--payload", "00"],
    );
    assert_eq!(
        output.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = scratch.run("load", &["--addr", &addr, "--bots", "1", "--ticks", "1"]);
    assert_eq!(
        output.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
