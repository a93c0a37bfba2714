//! The client against a real node (`everarcade_node::Node`, in this process,
//! a durable 2d-arena world in a temporary runtime root, listening on a free
//! loopback port): every route, with answers checked the way the client
//! checks them (receipt roots, state proofs), and the admin plane.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use everarcade_client::{Client, ClientError, Encoding, Trust};
use everarcade_node::{Node, NodeConfig, NodeSpec};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, WorldId, test_signing_key};

const TOKEN: &str = "client-test-admin-token";
const JOIN: u8 = 1;

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runtime/games/2d-arena")
}

fn world() -> WorldId {
    WorldId::new("world-001").unwrap()
}

/// A running node and a scratch root, both gone when dropped.
struct Running {
    client: Client,
    package: Package,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    root: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn start(name: &str) -> Running {
    start_with(name, None).await
}

/// A node that serves TLS when `tls` names a certificate and key; its
/// client trusts that certificate.
async fn start_with(name: &str, tls: Option<(PathBuf, PathBuf)>) -> Running {
    let root = std::env::temp_dir().join(format!("ea-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = NodeConfig::default();
    config.http.addr = address;
    config.admin.token = Some(TOKEN.into());
    let trust = tls
        .as_ref()
        .map(|(cert, _)| Trust::from_pem_file(cert).unwrap());
    if let Some((cert, key)) = tls {
        config.http.tls_cert = Some(cert);
        config.http.tls_key = Some(key);
    }
    let package = Package::load(&package_dir()).unwrap();
    let spec = NodeSpec {
        runtime_root: root.clone(),
        world: world(),
        package: package.clone(),
        config,
    };
    let node = tokio::task::spawn_blocking(move || Node::prepare(spec))
        .await
        .unwrap()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let exit = node
            .serve(async move {
                let _ = stopped.await;
            })
            .await;
        exit.expect("the node stops cleanly");
    });
    let client = match &trust {
        Some(trust) => Client::with_trust(&format!("https://{address}"), world(), trust).unwrap(),
        None => Client::new(&address.to_string(), world()).unwrap(),
    };
    client.wait_ready(Duration::from_secs(60)).await.unwrap();
    Running {
        client,
        package,
        stop: Some(stop),
        task: Some(task),
        root,
    }
}

impl Running {
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
    }
}

/// Waits (bounded) until the node has executed `tick`.
async fn executed(client: &Client, tick: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.status().await.unwrap().head_tick < tick {
        assert!(Instant::now() < deadline, "tick {tick} never executed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn join(name: &str, nonce: u64) -> Envelope {
    Envelope::sign(&world(), &test_signing_key(name), nonce, vec![JOIN])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaks_tls_to_a_tls_node_trusting_only_what_it_is_given() {
    let scratch = std::env::temp_dir().join(format!("ea-client-certs-{}", std::process::id()));
    let node_cert = everarcade_testkit::tls::self_signed(&scratch, "node");
    let (other_cert, _) = everarcade_testkit::tls::self_signed(&scratch, "other");
    let node = start_with("tls", Some(node_cert)).await;
    let client = &node.client;
    assert_eq!(client.scheme(), "https");
    let ack = client.submit(&join("alice", 1)).await.unwrap();
    executed(client, ack.tick).await;
    assert!(client.status().await.unwrap().head_tick >= ack.tick);

    let address = client.address().to_string();
    let plain = Client::new(&format!("http://{address}"), world()).unwrap();
    let error = plain.status().await.unwrap_err();
    assert!(error.is_transport(), "plain HTTP to a TLS node: {error}");
    let stranger = Trust::from_pem_file(&other_cert).unwrap();
    let distrusting =
        Client::with_trust(&format!("https://{address}"), world(), &stranger).unwrap();
    let error = distrusting.status().await.unwrap_err();
    assert_eq!(error.code(), "unreachable", "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
    let garbage = scratch.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    assert_eq!(
        Trust::from_pem_file(&garbage).unwrap_err().code(),
        "tls_trust"
    );
    node.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_ticks_and_proven_state_against_a_real_node() {
    let node = start("inputs").await;
    let client = &node.client;
    let version = client.version().await.unwrap();
    assert_eq!((version.world.as_str(), version.protocol), ("world-001", 1));
    assert_eq!(version.package_root, node.package.root);
    client.healthz().await.unwrap();
    assert!(client.metrics().await.unwrap().contains("everarcade"));

    let alice = join("alice", 1);
    let ack = client.submit(&alice).await.unwrap();
    let bob = join("bob", 1);
    let binary = client.clone().with_encoding(Encoding::Binary);
    binary.submit(&bob).await.unwrap();
    let stale = client.submit(&alice).await.unwrap_err();
    assert_eq!((stale.status(), stale.code()), (Some(422), "stale_nonce"));

    let mut forged = join("carol", 1);
    forged.payload = vec![JOIN, 0];
    let batch = [join("dave", 1), forged, join("alice", 1), join("erin", 5)];
    for encoding in [Encoding::Json, Encoding::Binary] {
        let results = client
            .clone()
            .with_encoding(encoding)
            .submit_batch(&batch)
            .await
            .unwrap();
        let codes: Vec<&str> = results
            .iter()
            .map(|r| r.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok"))
            .collect();
        if encoding == Encoding::Json {
            assert_eq!(codes, ["ok", "bad_signature", "stale_nonce", "ok"]);
        } else {
            // The same envelopes again: the first and last are stale now.
            assert_eq!(
                codes,
                ["stale_nonce", "bad_signature", "stale_nonce", "stale_nonce"]
            );
        }
    }

    executed(client, ack.tick).await;
    let tick = client.tick(ack.tick).await.unwrap(); // receipt root checked
    assert_eq!(tick.receipts[ack.seq as usize].subject, alice.hash());
    assert_eq!(tick.receipts[ack.seq as usize].outcome, "applied");

    let mut key = b"K".to_vec();
    key.extend_from_slice(&alice.sender);
    let proven = client.state(&key).await.unwrap(); // proof checked
    assert_eq!(
        proven.value.as_ref().map(Vec::len),
        Some(2),
        "a 2-byte slot"
    );
    let absent = client.state(b"K-nobody").await.unwrap();
    assert_eq!(absent.value, None);
    if let Ok(at) = client.tick(proven.tick).await {
        assert_eq!(
            at.state_root, proven.state_root,
            "the proof is against that tick's root"
        );
    }

    let other = Client::new(client.address(), WorldId::new("world-002").unwrap()).unwrap();
    let error = other.status().await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(404), "unknown_world"));
    let error = client.tick(u64::MAX).await.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(404), "tick_not_found")
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_plane_against_a_real_node() {
    let node = start("admin").await;
    let client = &node.client;
    assert_eq!(client.drain().await.unwrap_err().code(), "no_admin_token");
    let wrong = client.clone().with_admin_token("not-the-token-at-all");
    let error = wrong.admission_close().await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(401), "unauthorized"));
    let admin = client.clone().with_admin_token(TOKEN);

    assert_eq!(admin.admission_close().await.unwrap().admission, "closed");
    let refused = client.submit(&join("alice", 1)).await.unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(503), "admission_closed")
    );
    let not_ready = client.readyz().await.unwrap_err();
    assert_eq!(
        (not_ready.status(), not_ready.code()),
        (Some(503), "service_unavailable")
    );
    let status = client.status().await.unwrap();
    assert_eq!((status.admission.as_str(), status.ready), ("closed", false));
    assert!(status.not_ready_reason.is_some());

    assert_eq!(admin.admission_open().await.unwrap().admission, "open");
    client.readyz().await.unwrap();
    let ack = client.submit(&join("alice", 1)).await.unwrap();
    let checkpoint = admin.checkpoint().await.unwrap();
    assert!(
        checkpoint.tick >= 1 && checkpoint.bytes > 0,
        "{checkpoint:?}"
    );
    // A hot backup into a folder outside the runtime root.
    let backup_dir = node.root.with_extension("backup");
    let _ = std::fs::remove_dir_all(&backup_dir);
    assert_eq!(
        client.backup(Some(&backup_dir)).await.unwrap_err().code(),
        "no_admin_token"
    );
    let backup = admin.backup(Some(&backup_dir)).await.unwrap();
    assert_eq!(PathBuf::from(&backup.path), backup_dir);
    assert!(backup.tick >= checkpoint.tick, "{backup:?}");
    assert_eq!(
        PathBuf::from(&backup.manifest),
        backup_dir.join("manifest.json")
    );
    assert!(backup_dir.join("SHA256SUMS").is_file());
    let again = admin.backup(Some(&backup_dir)).await.unwrap_err();
    assert_eq!((again.status(), again.code()), (Some(409), "backup_exists"));
    let inside = admin.backup(Some(&node.root.join("b"))).await.unwrap_err();
    assert_eq!(
        (inside.status(), inside.code()),
        (Some(409), "backup_dir_inside_root")
    );
    std::fs::remove_dir_all(&backup_dir).unwrap();
    let drained = admin.drain().await.unwrap();
    assert_eq!(drained.admission, "closed");
    assert!(
        drained.tick >= ack.tick,
        "every acknowledged input ran: {drained:?}"
    );
    let after = client.submit(&join("bob", 1)).await.unwrap_err();
    assert_eq!(after.code(), "admission_closed");
    assert!(matches!(after, ClientError::Node { status: 503, .. }));
    node.stop().await;
}
