//! The read plane over real sockets: which runtime serves a connection, that
//! inputs on a read-plane connection are still admitted (on the main
//! runtime), the head limits on both planes, and the graceful stop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::routing::{get, post};
use everarcade_node::http::connection::{self, ConnectionLimits, Serving};
use everarcade_node::http::plane::{READ_PLANE_THREAD_NAME, ReadPlane};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::common::*;

/// A server on a loopback socket, with a read plane, stopped by `stop`.
struct Served {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    plane: ReadPlane,
}

impl Served {
    /// Stops the server and waits, within 10 s, for every connection of
    /// both planes to close; the read plane is the caller's to shut down.
    async fn stopped(self) -> ReadPlane {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("stops within 10 s")
            .unwrap()
            .unwrap();
        self.plane
    }
}

async fn serve_planes(app: Router, serving: impl FnOnce(&mut Serving)) -> Served {
    let plane = ReadPlane::start(1).expect("a read plane");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut settings = Serving {
        read_plane: Some(plane.handle()),
        ..Serving::default()
    };
    serving(&mut settings);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(connection::serve_with(
        listener,
        app,
        settings,
        async move {
            let _ = stopped.await;
        },
    ));
    Served {
        address,
        stop,
        server,
        plane,
    }
}

/// One keep-alive connection speaking raw HTTP/1.1.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn open(address: SocketAddr) -> Client {
        Client {
            stream: BufReader::new(TcpStream::connect(address).await.unwrap()),
        }
    }

    /// Sends `method path` (with a JSON body if given) and reads the status
    /// line and the body (`Content-Length` framed).
    async fn send(&mut self, method: &str, path: &str, body: Option<&Value>) -> (String, String) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let head = self.head().await;
        let length = head
            .lines()
            .find_map(|line| {
                let lower = line.to_ascii_lowercase();
                lower
                    .strip_prefix("content-length:")
                    .map(|n| n.trim().parse::<usize>().unwrap())
            })
            .expect("a Content-Length");
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        let status = head.lines().next().unwrap().to_string();
        (status, String::from_utf8(body).unwrap())
    }

    /// The response head, up to the blank line.
    async fn head(&mut self) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut line))
                    .await
                    .expect("an answer within 10 s")
                    .unwrap();
            assert!(read > 0, "closed before the head ended: {head}");
            if line == "\r\n" {
                return head;
            }
            head.push_str(&line);
        }
    }

    /// Reads until the server closes the connection (within 10 s).
    async fn closed(mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut rest))
            .await
            .expect("closed within 10 s")
            .unwrap_or_default();
        rest
    }
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// A router that answers with the serving thread's name and the client's
/// address, on a read-plane path and on the inputs path.
fn threads_app() -> Router {
    let answer = |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
        format!("{} {}", thread_name(), peer.port())
    };
    Router::new()
        .route("/spectate", get(answer))
        .route("/v1/worlds/w/inputs", post(answer))
        .route("/v1/worlds/w/status", get(answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_connection_is_served_by_the_read_plane_and_its_inputs_by_the_main_runtime() {
    let served = serve_planes(threads_app(), |_| {}).await;
    let mut page = Client::open(served.address).await;
    let port = page.stream.get_ref().local_addr().unwrap().port();

    let (status, body) = page.send("GET", "/spectate", None).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, format!("{READ_PLANE_THREAD_NAME} {port}"));
    // The same connection's input and status request: handled on the main
    // runtime, never at the read plane's priority.
    for (method, path) in [
        ("POST", "/v1/worlds/w/inputs"),
        ("GET", "/v1/worlds/w/status"),
    ] {
        let (status, body) = page.send(method, path, Some(&Value::Null)).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let (thread, peer) = body.split_once(' ').unwrap();
        assert_ne!(thread, READ_PLANE_THREAD_NAME, "{method} {path}");
        assert_eq!(peer, port.to_string());
    }
    let (_, body) = page.send("GET", "/spectate", None).await;
    assert!(body.starts_with(READ_PLANE_THREAD_NAME), "{body}");

    // A connection whose first request is an input stays on the main
    // runtime, whatever it reads later.
    let mut player = Client::open(served.address).await;
    for (method, path) in [("POST", "/v1/worlds/w/inputs"), ("GET", "/spectate")] {
        let (_, body) = player.send(method, path, Some(&Value::Null)).await;
        assert!(
            !body.starts_with(READ_PLANE_THREAD_NAME),
            "{method} {path}: {body}"
        );
    }

    // A connection silent past the plane choice is the main plane's.
    let mut late = Client::open(served.address).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = late.send("GET", "/spectate", None).await;
    assert!(!body.starts_with(READ_PLANE_THREAD_NAME), "{body}");

    drop((page, player, late));
    served.stopped().await.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_on_a_stream_connection_are_admitted_and_connections_are_counted_by_plane() {
    let node = node(|_| {});
    let live = node.handle.live.clone();
    let served = serve_planes(node.app.clone(), |serving| {
        serving.live = Some(live.clone());
    })
    .await;
    node.wait_for_tick(1).await;

    // A spectator: a state read first, then an input on the same connection.
    let mut spectator = Client::open(served.address).await;
    let (status, body) = spectator
        .send("GET", &format!("/v1/worlds/{WORLD}/state/50"), None)
        .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    let join = json_envelope(&envelope("alice", 1, &[1]));
    let (status, body) = spectator.send("POST", &inputs_path(), Some(&join)).await;
    assert!(status.starts_with("HTTP/1.1 202"), "{status} {body}");
    let ack: Value = serde_json::from_str(&body).unwrap();
    assert!(ack["tick"].as_u64().unwrap() >= 1, "{ack}");

    // A tick stream, and a probe.
    let mut stream = TcpStream::connect(served.address).await.unwrap();
    let request = format!("GET /v1/worlds/{WORLD}/events HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: tick") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a tick event within 10 s")
            .unwrap();
        assert!(n > 0, "the stream closed");
        seen.extend_from_slice(&chunk[..n]);
    }
    let mut probe = Client::open(served.address).await;
    let (status, _) = probe.send("GET", "/healthz", None).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    let connections = &live.metrics.connections;
    assert_eq!(connections.get("read"), 2);
    assert_eq!(connections.get("main"), 1);
    let (_, metrics) = probe.send("GET", "/metrics", None).await;
    assert!(
        metrics.contains("everarcade_http_connections_total{plane=\"read\"} 2"),
        "{metrics}"
    );

    // The graceful stop: the streams end, every connection of both planes
    // closes, and the server returns.
    let _ = live.stopped.send(true);
    let plane = served.stopped().await;
    spectator.closed().await;
    probe.closed().await;
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the stream closes")
        .unwrap();
    plane.shutdown().await;
    assert_eq!(node.ready().await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_limits_hold_on_the_read_plane() {
    let node = node(|_| {});
    let live = node.handle.live.clone();
    let timeout = Duration::from_millis(300);
    let served = serve_planes(node.app.clone(), |serving| {
        serving.live = Some(live.clone());
        serving.limits = ConnectionLimits {
            request_head_timeout: timeout,
            ..ConnectionLimits::default()
        };
    })
    .await;

    // A page request whose headers are too large: 431 with the envelope.
    let head = format!(
        "GET /spectate HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = answer_to_head(served.address, head.as_bytes()).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\"request_head_too_large\""), "{answer}");

    // A page request whose headers trickle in: 408 with the envelope.
    let answer =
        answer_to_trickled_head(served.address, b"GET /spectate HTTP/1.1\r\nHost: x\r\n").await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\"request_timeout\""), "{answer}");

    let rejected = &live.metrics.rejected;
    assert_eq!(rejected.get("request_head_too_large"), 1);
    assert_eq!(rejected.get("request_timeout"), 1);
    assert_eq!(live.metrics.connections.get("read"), 2);
    served.stopped().await.shutdown().await;
}
