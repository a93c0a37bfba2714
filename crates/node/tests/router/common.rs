//! A node's router over a world on the simulated disk, driven with `oneshot`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use ed25519_dalek::SigningKey;
use everarcade_engine::Engine;
use everarcade_node::actor::{self, ActorConfig, WorldHandle};
use everarcade_node::config::HttpConfig;
use everarcade_node::http::{AppState, Facts, router};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{SimStorage, WorldDir};
use everarcade_world::{DurableWorld, WorldConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../runtime/games/2d-arena");
pub const WORLD: &str = "world-001";
pub const TOKEN: &str = "test-admin-token-0123456789";

/// A running actor and its router.
pub struct TestNode {
    pub app: Router,
    pub handle: WorldHandle,
    pub disk: SimStorage,
    pub _thread: std::thread::JoinHandle<()>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let runtime = tokio::runtime::Handle::try_current();
        if let Ok(runtime) = runtime {
            // Best effort: the test's runtime may be shutting down.
            runtime.spawn(async move {
                let _ = handle.stop().await;
            });
        }
    }
}

pub fn world_id() -> WorldId {
    WorldId::new(WORLD).unwrap()
}

/// A node with default limits changed by `adjust`.
pub fn node(adjust: impl FnOnce(&mut HttpConfig)) -> TestNode {
    node_with(adjust, |_| {})
}

/// A node with limits and facts changed.
pub fn node_with(
    adjust: impl FnOnce(&mut HttpConfig),
    adjust_facts: impl FnOnce(&mut Facts),
) -> TestNode {
    node_prepared(adjust, adjust_facts, |_, _, _| {})
}

/// A node whose world `prepare` may advance (and tamper with) before the
/// actor starts; it also runs the self-audit thread.
pub fn node_prepared(
    adjust: impl FnOnce(&mut HttpConfig),
    adjust_facts: impl FnOnce(&mut Facts),
    prepare: impl FnOnce(&mut DurableWorld, &SimStorage, &WorldDir),
) -> TestNode {
    let package = Package::load(Path::new(PACKAGE_DIR)).expect("the sample package loads");
    node_of(package, adjust, adjust_facts, prepare)
}

/// A node of the sample package with `signatures = "zip215"` in its
/// manifest (a copy in `dir`), as `everarcade-runtime new` writes.
pub fn zip215_node(dir: &Path) -> TestNode {
    let source = Path::new(PACKAGE_DIR);
    let manifest = std::fs::read_to_string(source.join("world.toml")).unwrap();
    let manifest = manifest.replacen(
        "tick_rate_hz = 20\n",
        "tick_rate_hz = 20\nsignatures = \"zip215\"\n",
        1,
    );
    assert!(
        manifest.contains("zip215"),
        "the manifest names its tick rate"
    );
    std::fs::write(dir.join("world.toml"), manifest).unwrap();
    std::fs::copy(source.join("world.wasm"), dir.join("world.wasm")).unwrap();
    let package = Package::load(dir).expect("the copy loads");
    assert_eq!(
        package.manifest.signatures,
        everarcade_protocol::SignatureRule::Zip215
    );
    node_of(package, |_| {}, |_| {}, |_, _, _| {})
}

fn node_of(
    package: Package,
    adjust: impl FnOnce(&mut HttpConfig),
    adjust_facts: impl FnOnce(&mut Facts),
    prepare: impl FnOnce(&mut DurableWorld, &SimStorage, &WorldDir),
) -> TestNode {
    let mut http = HttpConfig::default();
    adjust(&mut http);
    let engine = Arc::new(Engine::new().expect("the engine starts"));
    let compiled = engine.compile(&package).expect("the package compiles");
    let disk = SimStorage::new();
    let dir = WorldDir::new(Path::new("/sim/root"), &world_id());
    let config = WorldConfig {
        checkpoint_interval_ticks: 0,
        ..WorldConfig::default()
    };
    let (keys, _) = OperatorKeys::load_or_create(&disk, &dir, 0).expect("an operator key");
    let keys = Arc::new(keys);
    let mut world = DurableWorld::create(
        Arc::new(disk.clone()),
        dir.clone(),
        world_id(),
        engine.clone(),
        compiled.clone(),
        config,
    )
    .expect("the world is created");
    world.set_operator(keys.clone());
    prepare(&mut world, &disk, &dir);
    let genesis_root = world.genesis().genesis_root;
    let (handle, thread) = actor::spawn(
        world,
        None,
        ActorConfig {
            tick_rate_hz: 20,
            checkpoint_interval_ticks: 0,
            addresses: vec!["127.0.0.1:0".into()],
            tls_cert: None,
            amnesia: false,
            admission_open: true,
            role: everarcade_federation::Role::Authority,
            ack_replicated: false,
            ack_followers: 1,
        },
    )
    .expect("the actor starts");
    let mut facts = Facts {
        world: world_id(),
        package_root: package.root,
        genesis_root,
        tick_rate_hz: 20,
        address: "127.0.0.1:0".into(),
        pid: std::process::id(),
        started: Instant::now(),
        amnesia: true,
        tls: false,
        disk_root: None,
        world_dir: dir.clone(),
        disk_free_bytes_min: 0,
        operator: keys,
    };
    adjust_facts(&mut facts);
    let auditor = everarcade_node::audit::spawn(
        everarcade_node::audit::AuditTarget {
            storage: Arc::new(disk.clone()),
            dir,
            id: world_id(),
            engine,
            compiled,
        },
        handle.clone(),
        tokio::runtime::Handle::current(),
    )
    .expect("the self-audit starts");
    let state = AppState::new(handle.clone(), facts, &http, Some(TOKEN.into())).with_audit(auditor);
    TestNode {
        app: router(state),
        handle,
        disk,
        _thread: thread,
    }
}

pub fn key(name: &str) -> SigningKey {
    test_signing_key(name)
}

pub fn envelope(player: &str, nonce: u64, payload: &[u8]) -> Envelope {
    Envelope::sign(&world_id(), &key(player), nonce, payload.to_vec())
}

pub fn json_envelope(envelope: &Envelope) -> Value {
    serde_json::json!({
        "world": envelope.world.as_str(),
        "sender": hex::encode(envelope.sender),
        "nonce": envelope.nonce,
        "payload": hex::encode(&envelope.payload),
        "signature": hex::encode(envelope.signature),
    })
}

pub fn inputs_path() -> String {
    format!("/v1/worlds/{WORLD}/inputs")
}

pub fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn post_bytes(path: &str, content_type: &str, bytes: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes))
        .unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

pub fn admin(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

impl TestNode {
    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    /// Sends and returns status and JSON body.
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.send(request).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// Sends and requires the error envelope with this status and code.
    pub async fn refused(&self, request: Request<Body>, status: StatusCode, code: &str) -> Value {
        let (got, body) = self.call(request).await;
        assert_error(got, &body, status, code);
        body
    }

    /// Submits one envelope as JSON and requires 202.
    pub async fn admit(&self, envelope: &Envelope) -> (u64, u32) {
        let (status, body) = self
            .call(post_json(&inputs_path(), &json_envelope(envelope)))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        (
            body["tick"].as_u64().unwrap(),
            body["seq"].as_u64().unwrap() as u32,
        )
    }

    /// Waits until the head reaches `tick`.
    pub async fn wait_for_tick(&self, tick: u64) {
        let started = Instant::now();
        while self.handle.live.status().roots.tick < tick {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "tick {tick} never came"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every input hash the node executed, from the ticks it keeps.
    pub async fn executed_inputs(&self) -> Vec<String> {
        let head = self.handle.live.status().roots.tick;
        let mut out = Vec::new();
        for tick in 1..=head {
            let (status, body) = self
                .call(get(&format!("/v1/worlds/{WORLD}/ticks/{tick}")))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            for receipt in body["receipts"].as_array().unwrap() {
                if receipt["kind"] == "input" {
                    out.push(receipt["subject"].as_str().unwrap().to_string());
                }
            }
        }
        out
    }

    pub async fn ready(&self) -> (StatusCode, Value) {
        self.call(get("/readyz")).await
    }

    /// Requires `/readyz` to answer 503 `service_unavailable` with a
    /// message that names `reason`.
    pub async fn not_ready_because(&self, reason: &str) {
        let (status, body) = self.ready().await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "wanted {reason:?}: {body}");
    }
}

/// One server-sent event.
#[derive(Debug)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub kind: String,
    pub data: String,
}

impl SseEvent {
    pub fn data(&self) -> Value {
        serde_json::from_str(&self.data).expect("JSON data")
    }
}

/// An open event stream.
pub struct EventStream {
    body: axum::body::Body,
    buffer: String,
}

impl EventStream {
    /// The next event (comments such as keep-alives skipped); fails after 10 s.
    pub async fn next_event(&mut self) -> SseEvent {
        let started = Instant::now();
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    kind: "message".into(),
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.parse().expect("a numeric id"));
                    } else if let Some(kind) = line.strip_prefix("event: ") {
                        event.kind = kind.into();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        event.data.push_str(data);
                    }
                }
                if block.lines().all(|line| line.starts_with(':')) {
                    continue;
                }
                return event;
            }
            let left = Duration::from_secs(10).saturating_sub(started.elapsed());
            let frame = tokio::time::timeout(left, self.body.frame())
                .await
                .expect("an event within 10 s")
                .expect("the stream stays open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

impl TestNode {
    /// Opens the event stream, with `Last-Event-ID` if given.
    pub async fn events(&self, last_event_id: Option<&str>) -> EventStream {
        let mut request = Request::get(format!("/v1/worlds/{WORLD}/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        EventStream {
            body: response.into_body(),
            buffer: String::new(),
        }
    }
}

pub fn assert_error(got: StatusCode, body: &Value, status: StatusCode, code: &str) {
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error says what happened: {body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only the envelope: {body}"
    );
}

/// Writes `head` on a new connection to `address` and reads the answer
/// until the node closes the connection, within 10 s. The node stops
/// reading once it refused a head; a reset write is fine, the answer is
/// what counts.
pub async fn answer_to_head(address: std::net::SocketAddr, head: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(head).await;
    };
    let read = async {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    let (_, answer) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(write, read) })
            .await
            .expect("answered and closed within 10 s");
    answer
}

/// Writes `start` on a new connection to `address`, then one header byte
/// every 50 ms (a head that would take 10 s to complete), and reads the
/// answer the node closes the connection with. Panics if the node lets
/// the whole head through.
pub async fn answer_to_trickled_head(address: std::net::SocketAddr, start: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        let _ = writer.write_all(start).await;
        for _ in 0..200 {
            if writer.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let read = async {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    tokio::select! {
        answer = read => answer,
        () = trickle => panic!("the node let a 10 s head through"),
    }
}
