//! The JetStream acceptance, through the real binary against the
//! machine's NATS server (127.0.0.1:4222, JetStream on; `.ci/run` starts it):
//! one authority under `--ack replicated` and two followers; inputs under
//! load; `kill -9` of the authority; a follower takes the lease and becomes
//! the authority within twice the lease TTL; every input answered 202 is in
//! the new authority's journal at the tick and seq its answer named; the
//! survivors' journals are one chain and `replay-verify` passes on each; the
//! old authority restarted is fenced (follows, admits nothing) and catches up.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use everarcade_client::{Ack, BlockingClient, Client, ClientError, Encoding};
use everarcade_federation::lease::{LeaseBucket, LeaseConfig};
use everarcade_federation::nats::{NatsConfig, RecordLog};
use everarcade_protocol::{Envelope, Hash, WorldId, test_signing_key};
use everarcade_store::{DiskStorage, JournalReader, Record};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, repository_root, text};

const NATS: &str = "nats://127.0.0.1:4222";
const READY_WITHIN: Duration = Duration::from_secs(120);
const LEASE_TTL: Duration = Duration::from_secs(2);
const CATCH_UP_WITHIN: Duration = Duration::from_secs(60);

struct Node {
    child: Child,
    address: String,
    root: PathBuf,
    log: PathBuf,
}

impl Node {
    fn start(dir: &TempDir, label: &str, prefix: &str, role: &[&str]) -> Node {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let root = dir.join(format!("{label}-root"));
        let log = dir.join(format!("{label}.log"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        writeln!(file, "==== start").unwrap();
        let prefix = format!("federation.nats_prefix={prefix}");
        let ttl = format!("federation.lease_ttl_ms={}", LEASE_TTL.as_millis());
        let options = [
            &[
                "--set",
                "http.rate_per_client_per_second=1000000",
                "--set",
                &prefix,
                "--set",
                &ttl,
            ],
            role,
        ]
        .concat();
        let child = common::spawn_run(&root, PACKAGE, &address, &options, &log);
        let node = Node {
            child,
            address,
            root,
            log,
        };
        if let Err(error) = node.blocking().wait_ready(READY_WITHIN) {
            panic!("{label} never became ready: {error}\n{}", node.log_text());
        }
        node
    }

    fn blocking(&self) -> BlockingClient {
        let client = Client::new(&self.address, WorldId::new(WORLD).unwrap())
            .unwrap()
            .with_encoding(Encoding::Binary)
            .with_timeout(Duration::from_secs(10));
        BlockingClient::new(client)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn envelope(player: &str, nonce: u64) -> Envelope {
    let world = WorldId::new(WORLD).unwrap();
    Envelope::sign(
        &world,
        &test_signing_key(player),
        nonce,
        vec![2, nonce as u8],
    )
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Every input of a journal: envelope hash → (tick, seq); and every record's checksum.
fn journal(root: &Path) -> (BTreeMap<Hash, (u64, u32)>, Vec<Hash>) {
    let dir = root.join("worlds").join(WORLD).join("journal");
    let mut reader = JournalReader::open(&DiskStorage, &dir).unwrap();
    let mut seqs: BTreeMap<u64, u32> = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    let mut checksums = Vec::new();
    while let Some(raw) = reader.next().unwrap() {
        checksums.push(raw.checksum);
        if let Record::Inputs(record) = raw.decode().unwrap() {
            for envelope in record.envelopes {
                let seq = seqs.entry(record.tick).or_default();
                inputs.insert(envelope.hash(), (record.tick, *seq));
                *seq += 1;
            }
        }
    }
    (inputs, checksums)
}

fn replay_verify(root: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .arg("replay-verify")
        .arg(root)
        .args([WORLD, PACKAGE])
        .output()
        .unwrap();
    assert!(output.status.success(), "replay-verify: {}", text(&output));
}

fn code(error: ClientError) -> String {
    match error {
        ClientError::Node { code, .. } => code,
        other => format!("{other}"),
    }
}

/// Deletes the test's stream and buckets, whatever the outcome.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut nats = NatsConfig::new(NATS);
            nats.prefix = prefix.clone();
            if let Ok(log) = RecordLog::open(&nats, &WorldId::new(WORLD).unwrap()).await {
                let _ = log.delete_divergences().await;
                let _ = log.delete().await;
            }
            let lease = LeaseConfig {
                bucket: format!("{prefix}_authority"),
                ttl: LEASE_TTL,
            };
            if let Ok(bucket) = LeaseBucket::open(&nats, &lease).await {
                let _ = bucket.delete().await;
            }
        });
    }
}

#[test]
fn a_follower_takes_over_when_the_authority_is_killed_and_the_old_one_is_fenced() {
    assert!(
        std::net::TcpStream::connect("127.0.0.1:4222").is_ok(),
        "NATS with JetStream is not running on 127.0.0.1:4222: start it with \
         `nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server` (.ci/run does)"
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("t{}_{nanos}", std::process::id());
    let _cleanup = Cleanup(prefix.clone());
    let dir = TempDir::new("federation-nats");
    let leader = [
        "--replicate",
        NATS,
        "--ack",
        "replicated",
        "--checkpoint-interval",
        "20",
    ];
    let follower = ["--follow", NATS, "--ack", "replicated"];
    let mut authority = Node::start(&dir, "a", &prefix, &leader);
    let mut b = Node::start(&dir, "b", &prefix, &follower);
    let mut c = Node::start(&dir, "c", &prefix, &follower);
    let status = authority.blocking().status().unwrap();
    assert_eq!(status.role, "authority");
    assert_eq!(b.blocking().status().unwrap().role, "follower");
    let refused = b.blocking().submit(&envelope("p0", 1)).unwrap_err();
    assert_eq!(code(refused), "not_authority");

    // Load: four players, each input answered 202 only once JetStream holds it.
    let mut acked: Vec<(Hash, Ack)> = Vec::new();
    let mut next = [1u64; 4];
    for round in 0..60 {
        for (player, nonce) in next.iter_mut().enumerate() {
            let input = envelope(&format!("p{player}"), *nonce);
            match authority.blocking().submit(&input) {
                Ok(ack) => acked.push((input.hash(), ack)),
                Err(error) => panic!("round {round}: {}\n{}", code(error), authority.log_text()),
            }
            *nonce += 1;
        }
    }
    let head = authority.blocking().status().unwrap().head_tick;
    for node in [&b, &c] {
        wait_for("a follower catches up", CATCH_UP_WITHIN, || {
            node.blocking().status().unwrap().head_tick >= head
        });
    }
    // A follower that joins late, far behind the authority's checkpoint,
    // starts from it (fetched from the node the lease names), then follows
    // the stream.
    let mut checkpoint = 0;
    wait_for("the authority checkpoints", CATCH_UP_WITHIN, || {
        checkpoint = authority
            .blocking()
            .status()
            .unwrap()
            .checkpoint_tick
            .unwrap_or(0);
        checkpoint >= 20
    });
    let late = [&follower[..], &["--set", "federation.catch_up_ticks=20"]].concat();
    let d = Node::start(&dir, "d", &prefix, &late);
    wait_for("the late follower catches up", CATCH_UP_WITHIN, || {
        d.blocking().status().unwrap().head_tick >= head
    });
    let status = d.blocking().status().unwrap();
    assert!(
        status
            .caught_up_from_checkpoint
            .is_some_and(|tick| tick >= checkpoint),
        "{status:?}\n{}",
        d.log_text()
    );
    let d_root = d.root.clone();
    drop(d);
    replay_verify(&d_root);

    // kill -9 the authority: a follower becomes the authority.
    authority.kill();
    let killed = Instant::now();
    let mut leader_node = None;
    wait_for("a follower takes the lease", LEASE_TTL * 10, || {
        for (index, node) in [&b, &c].iter().enumerate() {
            if node
                .blocking()
                .status()
                .is_ok_and(|s| s.role == "authority")
            {
                leader_node = Some(index);
                return true;
            }
        }
        false
    });
    let (new, other) = match leader_node.unwrap() {
        0 => (&b, &c),
        _ => (&c, &b),
    };
    // The first 202 from the new authority.
    let mut nonce = next[0];
    wait_for("the new authority acknowledges", LEASE_TTL * 10, || {
        let result = new.blocking().submit(&envelope("p0", nonce));
        nonce += 1;
        match result {
            Ok(ack) => {
                acked.push((envelope("p0", nonce - 1).hash(), ack));
                true
            }
            Err(_) => false,
        }
    });
    let failover = killed.elapsed();
    eprintln!("failover: kill -9 to the first 202 from the new authority in {failover:?}");
    assert!(
        failover <= LEASE_TTL * 2 + Duration::from_secs(2),
        "failover took {failover:?} (lease TTL {LEASE_TTL:?})\n{}",
        new.log_text()
    );
    // The other follower follows the new authority.
    let new_head = new.blocking().status().unwrap().head_tick + 2;
    wait_for("the new authority ticks", CATCH_UP_WITHIN, || {
        new.blocking().status().unwrap().head_tick >= new_head
    });
    wait_for("the other follower follows it", CATCH_UP_WITHIN, || {
        other.blocking().status().unwrap().head_tick >= new_head
    });

    // The old authority returns: it finds the lease another's, quarantines
    // what it never replicated, and follows.
    let a_root = authority.root.clone();
    drop(authority);
    let returned = Node::start(&dir, "a", &prefix, &leader);
    let status = returned.blocking().status().unwrap();
    assert_eq!(status.role, "follower", "{}", returned.log_text());
    let refused = returned
        .blocking()
        .submit(&envelope("p3", 1_000))
        .unwrap_err();
    assert_eq!(code(refused), "not_authority");
    wait_for("the returned authority catches up", CATCH_UP_WITHIN, || {
        returned.blocking().status().unwrap().head_tick >= new_head
    });

    // Stop everything; compare journals.
    let roots: Vec<PathBuf> = [new, other, &returned]
        .iter()
        .map(|n| n.root.clone())
        .collect();
    b.kill();
    c.kill();
    drop(returned);
    let (inputs, new_chain) = journal(&roots[0]);
    for (hash, ack) in &acked {
        assert_eq!(
            inputs.get(hash),
            Some(&(ack.tick, ack.seq)),
            "an input answered 202 is not in the new authority's lineage where its answer said"
        );
    }
    for root in &roots[1..] {
        let (_, chain) = journal(root);
        let common = chain.len().min(new_chain.len());
        assert_eq!(chain[..common], new_chain[..common], "{}", root.display());
    }
    for root in &roots {
        replay_verify(root);
    }
    assert_eq!(roots[2], a_root);
}
