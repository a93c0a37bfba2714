//! Federation through the real binary over the embedded HTTP transport
//! (docs/FEDERATION.md): a follower replicates and verifies an authority,
//! serves the read API, refuses inputs; `--ack replicated` answers 202 only
//! once a follower holds the record; after the authority is killed an
//! operator promotes the follower (`federation promote`), which admits and
//! ticks on the same lineage; a standby that rejoins follows again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use everarcade_client::{BlockingClient, Client, ClientError, Encoding};
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, repository_root, text};

/// How long a node may take to answer /readyz 200.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long a follower may take to reach a tick.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(60);

/// A node started with `run` in a child process, on its own runtime root.
struct Node {
    child: Child,
    address: String,
    root: PathBuf,
    log: PathBuf,
    /// The certificate it serves TLS with, if it does.
    cert: Option<PathBuf>,
}

impl Node {
    fn start(dir: &TempDir, label: &str, options: &[&str]) -> Node {
        Node::start_with(dir, label, options, None)
    }

    /// A node serving HTTPS with a self-signed certificate.
    fn start_tls(dir: &TempDir, label: &str, options: &[&str]) -> Node {
        let (cert, key) = everarcade_testkit::tls::self_signed(&dir.join("certs"), label);
        let tls = [
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        let options = [&tls[..], options].concat();
        Node::start_with(dir, label, &options, Some(cert.clone()))
    }

    fn start_with(dir: &TempDir, label: &str, options: &[&str], cert: Option<PathBuf>) -> Node {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let root = dir.join(format!("{label}-root"));
        let log = dir.join(format!("{label}.log"));
        let options = [
            &["--set", "http.rate_per_client_per_second=1000000"],
            options,
        ]
        .concat();
        let child = common::spawn_run(&root, PACKAGE, &address, &options, &log);
        let node = Node {
            child,
            address,
            root,
            log,
            cert,
        };
        if let Err(error) = node.blocking().wait_ready(READY_WITHIN) {
            panic!("{label} never became ready: {error}\n{}", node.log_text());
        }
        node
    }

    fn url(&self) -> String {
        let scheme = if self.cert.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    fn blocking(&self) -> BlockingClient {
        let world = WorldId::new(WORLD).unwrap();
        let client = match &self.cert {
            Some(cert) => {
                let trust = everarcade_client::Trust::from_pem_file(cert).unwrap();
                Client::with_trust(&self.url(), world, &trust).unwrap()
            }
            None => Client::new(&self.address, world).unwrap(),
        }
        .with_encoding(Encoding::Json);
        BlockingClient::new(client)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `POST` an admin route with the node's own token; (status, JSON body).
    fn admin(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let token = std::fs::read_to_string(self.root.join("admin.token")).unwrap();
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            token.trim(),
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let json = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, serde_json::from_str(json).unwrap_or_default())
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn envelope(player: &str, nonce: u64) -> Envelope {
    let world = WorldId::new(WORLD).unwrap();
    Envelope::sign(
        &world,
        &test_signing_key(player),
        nonce,
        vec![1, nonce as u8],
    )
}

/// Waits until `node`'s head tick is at least `tick`.
fn wait_for_tick(node: &Node, tick: u64) {
    let started = Instant::now();
    loop {
        let status = node.blocking().status().unwrap();
        if status.head_tick >= tick {
            return;
        }
        assert!(
            started.elapsed() < CATCH_UP_WITHIN,
            "stuck at tick {} short of {tick}: {:?}\n{}",
            status.head_tick,
            status.not_ready_reason,
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_code(error: ClientError) -> String {
    match error {
        ClientError::Node { code, .. } => code,
        other => panic!("not a node refusal: {other}"),
    }
}

/// `everarcade-runtime <command…> <root> <world> <package> <tail…>`, run
/// from the repository root.
fn on_world(command: &[&str], root: &Path, tail: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(command)
        .arg(root)
        .args([WORLD, PACKAGE])
        .args(tail)
        .output()
        .unwrap()
}

fn replay_verify(root: &Path) {
    let output = on_world(&["replay-verify"], root, &[]);
    assert!(output.status.success(), "replay-verify: {}", text(&output));
}

#[test]
fn a_follower_replicates_verifies_and_takes_over_when_promoted() {
    let dir = TempDir::new("federation-http");
    let authority = Node::start(&dir, "authority", &[]);
    let follower = Node::start(&dir, "follower", &["--follow", &authority.url()]);

    // The follower names its role and the authority, and refuses inputs.
    let status = follower.blocking().status().unwrap();
    assert_eq!(status.role, "follower");
    assert_eq!(status.authority.as_deref(), Some(authority.url().as_str()));
    let refused = follower
        .blocking()
        .submit(&envelope("alice", 1))
        .unwrap_err();
    assert_eq!(node_code(refused), "not_authority");

    // Inputs admitted by the authority execute on the follower at the same
    // tick with the same roots.
    let mut last = None;
    for nonce in 1..=20 {
        last = Some(
            authority
                .blocking()
                .submit(&envelope("alice", nonce))
                .unwrap(),
        );
    }
    let ack = last.unwrap();
    wait_for_tick(&authority, ack.tick + 2);
    wait_for_tick(&follower, ack.tick + 2);
    for tick in [ack.tick, ack.tick + 1] {
        let here = authority.blocking().tick(tick).unwrap();
        let there = follower.blocking().tick(tick).unwrap();
        assert_eq!(here.state_root, there.state_root, "tick {tick}");
        assert_eq!(here.continuity_root, there.continuity_root, "tick {tick}");
        assert_eq!(here.receipt_root, there.receipt_root, "tick {tick}");
    }
    let value = follower.blocking().state(b"no-such-key").unwrap();
    assert!(value.value.is_none(), "absence is proven on a follower too");
    let status = follower.blocking().status().unwrap();
    assert!(
        status.lag_ticks.is_some(),
        "a following follower knows its lag"
    );

    // The authority dies; the operator promotes the follower with the
    // manual's command.
    let killed_at = authority.blocking().status().unwrap().head_tick;
    authority.kill();
    let output = on_world(&["federation", "promote"], &follower.root, &["--json"]);
    assert!(
        output.status.success(),
        "federation promote: {}\n{}",
        text(&output),
        follower.log_text()
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", text(&output)));
    assert_eq!(answer["role"], "authority", "{answer}");
    assert!(answer["tick"].as_u64().unwrap() + 1 >= killed_at.min(ack.tick + 2));
    let again = follower.admin("/admin/federation/promote", "");
    assert_eq!(again.0, 409, "{}", again.1);
    // It admits and ticks: alice's next nonce continues her sequence.
    let taken = follower.blocking().submit(&envelope("alice", 21)).unwrap();
    wait_for_tick(&follower, taken.tick + 1);
    let stale = follower
        .blocking()
        .submit(&envelope("alice", 20))
        .unwrap_err();
    assert_eq!(node_code(stale), "stale_nonce");
    assert_eq!(follower.blocking().status().unwrap().role, "authority");

    // Leave, then rejoin a live authority: refused when the journals forked.
    let (code, answer) = follower.admin("/admin/federation/leave", "");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["role"], "standby");
    let refused = follower
        .blocking()
        .submit(&envelope("alice", 22))
        .unwrap_err();
    assert_eq!(node_code(refused), "not_authority");
    let other = Node::start(&dir, "other", &[]);
    other.blocking().submit(&envelope("bob", 1)).unwrap();
    wait_for_tick(&other, taken.tick + 2);
    let body = format!("{{\"authority\":\"{}\"}}", other.url());
    let (code, answer) = follower.admin("/admin/federation/rejoin", &body);
    assert_eq!(code, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "peer_diverged", "{answer}");
    drop(other);
    let root = follower.root.clone();
    drop(follower);
    replay_verify(&root);
}

#[test]
fn ack_replicated_answers_202_only_once_a_follower_holds_the_record() {
    let dir = TempDir::new("federation-ack");
    let authority = Node::start(&dir, "authority", &["--ack", "replicated"]);
    // No follower: the input is durable here, but not acknowledged.
    let unreplicated = authority
        .blocking()
        .submit(&envelope("carol", 1))
        .unwrap_err();
    assert_eq!(node_code(unreplicated), "replication_unavailable");
    let follower = Node::start(&dir, "follower", &["--follow", &authority.url()]);
    let ack = authority.blocking().submit(&envelope("carol", 2)).unwrap();
    // The follower journaled the record before the 202: it reaches the tick.
    wait_for_tick(&follower, ack.tick);
    let root = follower.root.clone();
    drop(follower);
    drop(authority);
    replay_verify(&root);
}

#[test]
fn a_follower_far_behind_catches_up_from_the_checkpoint_of_an_https_authority() {
    let dir = TempDir::new("federation-catch-up");
    let authority = Node::start_tls(&dir, "authority", &["--checkpoint-interval", "20"]);
    for nonce in 1..=10 {
        authority
            .blocking()
            .submit(&envelope("dave", nonce))
            .unwrap();
    }
    wait_for_tick(&authority, 65);
    let checkpoint = authority
        .blocking()
        .status()
        .unwrap()
        .checkpoint_tick
        .unwrap();
    assert!(checkpoint >= 60, "checkpoints every 20 ticks: {checkpoint}");

    // An https:// authority needs the certificates to trust.
    let config = dir.join("follower.toml");
    std::fs::write(
        &config,
        format!("[federation]\nfollow = \"{}\"\n", authority.url()),
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .args(["config", "validate"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("federation.follow_ca"),
        "{}",
        text(&refused)
    );

    let cert = authority.cert.clone().unwrap();
    let follower = Node::start(
        &dir,
        "follower",
        &[
            "--follow",
            &authority.url(),
            "--set",
            &format!("federation.follow_ca={}", cert.display()),
            "--set",
            "federation.catch_up_ticks=30",
        ],
    );
    // It resumes from the authority's checkpoint rather than executing
    // every tick before it, then follows record by record.
    let target = authority.blocking().status().unwrap().head_tick + 5;
    wait_for_tick(&follower, target);
    let status = follower.blocking().status().unwrap();
    let from = status.caught_up_from_checkpoint.unwrap_or_else(|| {
        panic!(
            "no catch-up from a checkpoint: {status:?}\n{}",
            follower.log_text()
        )
    });
    assert!(
        from >= checkpoint,
        "caught up from tick {from}, the authority had {checkpoint}"
    );
    assert!(
        follower
            .log_text()
            .contains("caught up from the authority's checkpoint")
    );
    let output = on_world(&["federation", "status"], &follower.root, &["--json"]);
    assert!(
        output.status.success(),
        "federation status: {}",
        text(&output)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["caught_up_from_checkpoint"], from, "{answer}");
    // The first tick it executed after the checkpoint, and a later one.
    for tick in [from + 1, target] {
        let here = authority.blocking().tick(tick).unwrap();
        let there = follower.blocking().tick(tick).unwrap();
        assert_eq!(here.state_root, there.state_root, "tick {tick}");
        assert_eq!(here.continuity_root, there.continuity_root, "tick {tick}");
    }
    // What it journaled without executing, replay-verify re-executes.
    let root = follower.root.clone();
    drop(follower);
    replay_verify(&root);
}
