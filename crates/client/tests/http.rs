//! The client over a real loopback socket against a scripted server (axum):
//! what it sends (paths, content types, bodies, the bearer token) and how it
//! reads every kind of answer, including refusals, lies and silence. The real
//! node is exercised by `crates/runtime/tests/node_e2e.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use everarcade_client::load::{self, LoadConfig};
use everarcade_client::{Ack, Client, ClientError, Encoding};
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_state::State;
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// What the server answers: status, extra headers, body.
type Script =
    Arc<dyn Fn(&Seen) -> (StatusCode, Vec<(&'static str, String)>, Vec<u8>) + Send + Sync>;

struct Server {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn serve(script: Script) -> Server {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let script = script.clone();
            let log = log.clone();
            async move {
                let header =
                    |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
                let request = Seen {
                    method,
                    path: uri.path().to_string(),
                    content_type: header("content-type"),
                    authorization: header("authorization"),
                    body: body.to_vec(),
                };
                // Off the runtime's workers: a script may sleep to play a slow
                // node, and must not stall the client's timers meanwhile.
                let (request, (status, extra, body)) = tokio::task::spawn_blocking(move || {
                    let answer = script(&request);
                    (request, answer)
                })
                .await
                .unwrap();
                log.lock().unwrap().push(request);
                let mut response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json");
                for (name, value) in extra {
                    response = response.header(name, value);
                }
                response.body(Body::from(body)).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { address, seen }
}

fn answer(status: StatusCode, body: Value) -> (StatusCode, Vec<(&'static str, String)>, Vec<u8>) {
    (status, Vec::new(), body.to_string().into_bytes())
}

fn refusal(status: StatusCode, code: &str) -> (StatusCode, Vec<(&'static str, String)>, Vec<u8>) {
    answer(
        status,
        json!({"error": {"code": code, "message": format!("{code} happened")}}),
    )
}

fn world() -> WorldId {
    WorldId::new("world-001").unwrap()
}

fn envelope(name: &str, nonce: u64) -> Envelope {
    Envelope::sign(&world(), &test_signing_key(name), nonce, vec![1, 2, 3])
}

fn client(server: &Server) -> Client {
    Client::new(&server.address, world()).unwrap()
}

#[tokio::test]
async fn submit_sends_json_or_binary_and_reads_the_ack() {
    let server = serve(Arc::new(|_: &Seen| {
        answer(StatusCode::ACCEPTED, json!({"tick": 12, "seq": 3}))
    }))
    .await;
    let e = envelope("alice", 1);
    let ack = client(&server).submit(&e).await.unwrap();
    assert_eq!(ack, Ack { tick: 12, seq: 3 });
    client(&server)
        .with_encoding(Encoding::Binary)
        .submit(&e)
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, "/v1/worlds/world-001/inputs");
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    let json: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(json["nonce"], 1);
    assert_eq!(
        seen[1].content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(seen[1].body, e.encode());
    assert_eq!(seen[0].authorization, None, "no token on world routes");
}

#[tokio::test]
async fn refusals_carry_status_code_and_retry_after() {
    let server = serve(Arc::new(|seen: &Seen| {
        let nonce = serde_json::from_slice::<Value>(&seen.body).unwrap()["nonce"]
            .as_u64()
            .unwrap();
        match nonce {
            1 => refusal(StatusCode::UNPROCESSABLE_ENTITY, "stale_nonce"),
            2 => {
                let (status, _, body) = refusal(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                (status, vec![("retry-after", "3".to_string())], body)
            }
            3 => (
                StatusCode::BAD_GATEWAY,
                Vec::new(),
                b"<html>proxy</html>".to_vec(),
            ),
            _ => answer(StatusCode::OK, json!({"tick": 1, "seq": 0})),
        }
    }))
    .await;
    let client = client(&server);
    match client.submit(&envelope("alice", 1)).await.unwrap_err() {
        ClientError::Node {
            status,
            code,
            retry_after_seconds,
            ..
        } => {
            assert_eq!(
                (status, code.as_str(), retry_after_seconds),
                (422, "stale_nonce", None)
            );
        }
        other => panic!("{other}"),
    }
    let limited = client.submit(&envelope("alice", 2)).await.unwrap_err();
    assert_eq!(
        (limited.status(), limited.code()),
        (Some(429), "rate_limited")
    );
    assert!(matches!(
        limited,
        ClientError::Node {
            retry_after_seconds: Some(3),
            ..
        }
    ));
    let proxy = client.submit(&envelope("alice", 3)).await.unwrap_err();
    assert_eq!(
        (proxy.status(), proxy.code()),
        (Some(502), "unexpected_response")
    );
    let wrong_status = client.submit(&envelope("alice", 4)).await.unwrap_err();
    assert_eq!(
        wrong_status.code(),
        "unexpected_response",
        "inputs are acknowledged with 202, not 200"
    );
}

#[tokio::test]
async fn batches_read_per_envelope_results() {
    let server = serve(Arc::new(|seen: &Seen| {
        if seen.content_type.as_deref() == Some("application/octet-stream") {
            return refusal(StatusCode::UNPROCESSABLE_ENTITY, "bad_signature");
        }
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        let results: Vec<Value> = body["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, e)| match e["nonce"].as_u64().unwrap() {
                0 => json!({"error": {"code": "stale_nonce", "message": "zero"}}),
                _ => json!({"tick": 4, "seq": i}),
            })
            .collect();
        answer(StatusCode::ACCEPTED, json!({"results": results}))
    }))
    .await;
    let client = client(&server);
    let batch = [
        envelope("alice", 1),
        envelope("bob", 0),
        envelope("carol", 5),
    ];
    let results = client.submit_batch(&batch).await.unwrap();
    assert_eq!(results[0], Ok(Ack { tick: 4, seq: 0 }));
    assert_eq!(results[1].as_ref().unwrap_err().code, "stale_nonce");
    assert_eq!(results[2], Ok(Ack { tick: 4, seq: 2 }));
    // A binary body with one envelope is a single input: its 422 is that envelope's refusal.
    let binary = client.clone().with_encoding(Encoding::Binary);
    let single = binary.submit_batch(&batch[..1]).await.unwrap();
    assert_eq!(single[0].as_ref().unwrap_err().code, "bad_signature");
    assert_eq!(
        client.submit_batch(&[]).await.unwrap_err().code(),
        "empty_batch"
    );
    let other = Envelope::sign(
        &WorldId::new("world-002").unwrap(),
        &test_signing_key("a"),
        1,
        vec![],
    );
    let mixed = client
        .submit_batch(&[batch[0].clone(), other])
        .await
        .unwrap_err();
    assert!(matches!(mixed, ClientError::MixedWorlds { index: 1, .. }));
    assert_eq!(
        server.seen.lock().unwrap().len(),
        2,
        "refused locally without a request"
    );
}

#[tokio::test]
async fn admin_routes_send_the_bearer_token() {
    let server = serve(Arc::new(|seen: &Seen| {
        if seen.authorization.as_deref() != Some("Bearer sixteen-chars-token") {
            return refusal(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        match seen.path.as_str() {
            "/admin/admission/close" => answer(StatusCode::OK, json!({"admission": "closed"})),
            "/admin/admission/open" => answer(StatusCode::OK, json!({"admission": "open"})),
            "/admin/checkpoint" => answer(
                StatusCode::OK,
                json!({"tick": 40, "path": "/x/40.ckpt", "bytes": 123}),
            ),
            "/admin/drain" => answer(StatusCode::OK, json!({"admission": "closed", "tick": 41})),
            _ => refusal(StatusCode::NOT_FOUND, "not_found"),
        }
    }))
    .await;
    let anonymous = client(&server);
    assert_eq!(
        anonymous.checkpoint().await.unwrap_err().code(),
        "no_admin_token"
    );
    assert!(server.seen.lock().unwrap().is_empty());
    let wrong = client(&server).with_admin_token("not-the-right-one");
    let error = wrong.drain().await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(401), "unauthorized"));
    let admin = client(&server).with_admin_token("sixteen-chars-token");
    assert_eq!(admin.admission_close().await.unwrap().admission, "closed");
    assert_eq!(admin.admission_open().await.unwrap().admission, "open");
    assert_eq!(admin.checkpoint().await.unwrap().tick, 40);
    assert_eq!(admin.drain().await.unwrap().tick, 41);
    assert!(
        server
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|seen| seen.method == Method::POST)
    );
    let debug = format!("{admin:?}");
    assert!(
        !debug.contains("sixteen-chars-token"),
        "the token is never printed: {debug}"
    );
}

#[tokio::test]
async fn state_reads_check_the_proof() {
    let mut state = State::new();
    for i in 0u32..64 {
        state.set(&i.to_be_bytes(), b"value");
    }
    let root = state.root();
    let proof = state.prove(&7u32.to_be_bytes()).encode();
    let server = serve(Arc::new(move |seen: &Seen| {
        let key = seen.path.rsplit('/').next().unwrap().to_string();
        let mut proof = proof.clone();
        if key == hex::encode(8u32.to_be_bytes()) {
            proof[5] ^= 0x80; // a node answering key 8 with key 7's (tampered) proof
        }
        answer(
            StatusCode::OK,
            json!({"tick": 3, "key": key, "value": hex::encode(b"value"),
            "state_root": root.to_hex(), "proof": hex::encode(proof)}),
        )
    }))
    .await;
    let client = client(&server);
    let proven = client.state(&7u32.to_be_bytes()).await.unwrap();
    assert_eq!(
        (proven.tick, proven.value.as_deref(), proven.state_root),
        (3, Some(&b"value"[..]), root)
    );
    assert_eq!(
        server.seen.lock().unwrap()[0].path,
        "/v1/worlds/world-001/state/00000007"
    );
    let error = client.state(&8u32.to_be_bytes()).await.unwrap_err();
    assert_eq!(error.code(), "proof_invalid", "{error}");
}

#[tokio::test]
async fn probes_version_status_and_ticks() {
    let server = serve(Arc::new(|seen: &Seen| match seen.path.as_str() {
        "/readyz" => refusal(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        "/healthz" => answer(StatusCode::OK, json!({"status": "alive"})),
        "/version" => answer(StatusCode::OK, json!({"runtime": "0.1.0", "protocol": 1,
            "package_root": "ab".repeat(32), "world": "world-001", "features": {"amnesia": false, "tls": false},
            "operator_public_key": "cd".repeat(32)})),
        "/v1/worlds/world-001/ticks/5" => answer(StatusCode::OK, json!({"tick": 5, "input_root": "00".repeat(32),
            "receipt_root": "11".repeat(32), "state_root": "22".repeat(32), "continuity_root": "33".repeat(32),
            "input_count": 0, "receipts": []})),
        _ => refusal(StatusCode::NOT_FOUND, "tick_not_found"),
    }))
    .await;
    let client = client(&server);
    let error = client.readyz().await.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(503), "service_unavailable")
    );
    let waited = client
        .wait_ready(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(
        waited.code(),
        "service_unavailable",
        "bounded wait gives the last error"
    );
    client.healthz().await.unwrap();
    let version = client.version().await.unwrap();
    assert_eq!((version.protocol, version.world.as_str()), (1, "world-001"));
    // The receipts of an empty list fold to list_root([]), not to 11…11.
    assert_eq!(
        client.tick(5).await.unwrap_err().code(),
        "receipt_root_mismatch"
    );
    assert_eq!(client.tick(6).await.unwrap_err().code(), "tick_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_absence_are_transport_errors() {
    let server = serve(Arc::new(|_: &Seen| {
        std::thread::sleep(Duration::from_millis(400));
        answer(StatusCode::OK, json!({"status": "ready"}))
    }))
    .await;
    let slow = client(&server).with_timeout(Duration::from_millis(100));
    let error = slow.readyz().await.unwrap_err();
    assert_eq!(error.code(), "timeout", "{error}");
    assert!(error.is_transport());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let nobody = Client::new(&address, world()).unwrap();
    let error = nobody.readyz().await.unwrap_err();
    assert_eq!(error.code(), "unreachable", "{error}");
    assert!(error.is_transport());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_keeps_each_lane_in_nonce_order_and_counts_refusals() {
    // The server refuses any nonce not above the sender's last, like the node.
    let last: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let server = serve(Arc::new(move |seen: &Seen| {
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        let sender = body["sender"].as_str().unwrap().to_string();
        let nonce = body["nonce"].as_u64().unwrap();
        let mut last = last.lock().unwrap();
        let previous = last.entry(sender).or_default();
        if nonce <= *previous || nonce.is_multiple_of(10) {
            return refusal(StatusCode::TOO_MANY_REQUESTS, "tick_full");
        }
        *previous = nonce;
        answer(StatusCode::ACCEPTED, json!({"tick": 1, "seq": 0}))
    }))
    .await;
    let lanes: Vec<load::Lane> = (0..8)
        .map(|lane| {
            (1..=25)
                .map(|nonce| vec![envelope(&format!("p{lane}"), nonce)])
                .collect()
        })
        .collect();
    let config = LoadConfig {
        duration: Duration::from_secs(30),
        pause_after_full: Duration::from_millis(20),
    };
    let started = std::time::Instant::now();
    let report = load::run(&client(&server), lanes, config).await;
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "each lane paused after each of its two tick_full refusals"
    );
    assert_eq!((report.sent, report.requests), (200, 200));
    assert_eq!(
        report.acknowledged,
        8 * 23,
        "every nonce but 10 and 20 of each lane"
    );
    assert_eq!(report.refused.get("tick_full"), Some(&16));
    assert_eq!(report.latencies_micros.len(), 184);
    assert!(!report.stopped_by_deadline);
    assert!(report.latency_quantile_micros(0.5) <= report.latency_quantile_micros(0.99));
    let stopped = load::run(
        &client(&server),
        vec![vec![vec![envelope("q", 1)]]],
        LoadConfig {
            duration: Duration::ZERO,
            pause_after_full: Duration::ZERO,
        },
    )
    .await;
    assert_eq!((stopped.sent, stopped.stopped_by_deadline), (0, true));
}
