//! Limits that bound what a client can make the node hold: metric labels,
//! per-client rates behind proxies, and request heads over a real socket.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use everarcade_node::http::ROUTE_LABELS;
use everarcade_node::http::connection::{self, ConnectionLimits};
use everarcade_node::metrics::METHOD_LABELS;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// Every `name="value"` label value of `name` in the exposition.
fn label_values(text: &str, name: &str) -> BTreeSet<String> {
    let prefix = format!("{name}=\"");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| {
            line.match_indices(&prefix)
                .filter(|(at, _)| *at > 0 && matches!(line.as_bytes()[at - 1], b'{' | b','))
                .filter_map(|(at, _)| {
                    let value = &line[at + prefix.len()..];
                    Some(value[..value.find('"')?].to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn metrics_text(node: &TestNode) -> String {
    node.call(get("/metrics"))
        .await
        .1
        .as_str()
        .expect("text")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_do_not_grow_the_metric_labels() {
    let node = node(|_| {});
    for i in 0..600 {
        let request = Request::builder()
            .method(Method::from_bytes(format!("M{i}").as_bytes()).unwrap())
            .uri("/healthz")
            .body(Body::empty())
            .unwrap();
        node.send(request).await;
    }
    let (status, _) = node.call(get(&format!("/v1/worlds/{WORLD}/status"))).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics_text(&node).await;
    let methods = label_values(&text, "method");
    let allowed: BTreeSet<String> = METHOD_LABELS.iter().map(|m| m.to_string()).collect();
    assert!(methods.is_subset(&allowed), "{methods:?}");
    assert!(methods.contains("other"), "{methods:?}");
    assert!(
        text.contains(
            "everarcade_http_request_duration_seconds_count{route=\"/v1/worlds/{world}/status\",method=\"GET\",status=\"200\"} 1"
        ),
        "a real route keeps its own label:\n{text}"
    );
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_has_its_own_label() {
    let node = node(|_| {});
    node.wait_for_tick(1).await;
    for template in ROUTE_LABELS {
        let path = template
            .replace("{world}", WORLD)
            .replace("{tick}", "1")
            .replace("{key}", "00");
        let request = if template == "unmatched" {
            get("/no/such/route")
        } else if path.starts_with("/admin") || path.ends_with("/inputs") {
            admin(&path, None)
        } else if path.ends_with("/events") {
            // Its response is a stream that does not end: only its head.
            let response = node.send(get(&path)).await;
            assert_eq!(response.status(), StatusCode::OK);
            continue;
        } else {
            get(&path)
        };
        node.send(request).await;
    }
    let routes = label_values(&metrics_text(&node).await, "route");
    let expected: BTreeSet<String> = ROUTE_LABELS.iter().map(|r| r.to_string()).collect();
    assert_eq!(routes, expected, "no route falls under `other`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_the_process_and_the_build() {
    let node = node(|_| {});
    let text = metrics_text(&node).await;
    let build = format!(
        "everarcade_build_info{{version=\"{}\",runtime=\"{}\",protocol=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        everarcade_world::RUNTIME_VERSION,
        everarcade_protocol::PROTOCOL_VERSION
    );
    assert!(text.contains(&build), "{text}");
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}:\n{text}"));
        let value: f64 = line[name.len() + 1..].parse().expect("a number");
        assert!(value > 0.0 || name == "process_cpu_seconds_total", "{line}");
    }
}

/// A status request from TCP peer `peer`, with `X-Forwarded-For` if given.
fn status_from(peer: &str, forwarded_for: Option<&str>) -> Request<Body> {
    let mut request = get(&format!("/v1/worlds/{WORLD}/status"));
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    if let Some(value) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", value.parse().unwrap());
    }
    request
}

async fn status_of(node: &TestNode, request: Request<Body>) -> StatusCode {
    node.send(request).await.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_per_client_and_believes_only_trusted_proxies() {
    let node = node(|http| {
        // One request per second, a burst of one: the second request within
        // the second is refused.
        http.rate_per_client_per_second = 1;
        http.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
    });
    // Per client: 192.0.2.1 spends its burst; 192.0.2.2 still has its own.
    assert_eq!(
        status_of(&node, status_from("192.0.2.1", None)).await,
        StatusCode::OK
    );
    node.refused(
        status_from("192.0.2.1", None),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_eq!(
        status_of(&node, status_from("192.0.2.2", None)).await,
        StatusCode::OK
    );

    // Through the trusted proxy, each forwarded client has its own bucket,
    // and the proxy is not charged for them.
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(
            status_of(&node, status_from("10.0.0.1", Some(client))).await,
            StatusCode::OK,
            "{client}"
        );
        node.refused(
            status_from("10.0.0.1", Some(client)),
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
    // A client cannot escape by prepending addresses: the right-most
    // untrusted one is charged.
    node.refused(
        status_from("10.0.0.1", Some("203.0.113.9, 198.51.100.1")),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;

    // From an untrusted peer the header is ignored: spoofing fresh
    // addresses does not buy fresh buckets.
    let mut limited = 0;
    for i in 0..6 {
        let spoofed = format!("203.0.113.{i}");
        if status_of(&node, status_from("192.0.2.3", Some(&spoofed))).await
            == StatusCode::TOO_MANY_REQUESTS
        {
            limited += 1;
        }
    }
    assert!(limited >= 4, "only {limited} of 6 spoofed requests limited");
}

/// Serves the node's router on a loopback socket with `limits`.
async fn serve(node: &TestNode, limits: ConnectionLimits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(connection::serve(
        listener,
        node.app.clone(),
        limits,
        Some(node.handle.live.clone()),
        std::future::pending(),
    ));
    address
}

/// Status line and JSON body of a raw HTTP/1.1 response.
fn parse_response(bytes: &[u8]) -> (String, Value) {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_gets_431_with_the_envelope() {
    let node = node(|_| {});
    let address = serve(&node, ConnectionLimits::default()).await;

    // Under the limit: served.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let small = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    stream.write_all(small.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(parse_response(&answer).0.starts_with("HTTP/1.1 200"));

    // 200 KB of header: refused with the envelope, the connection closed.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let answer = answer_to_head(address, big.as_bytes()).await;
    let (status, body) = parse_response(&answer);
    assert_eq!(
        status, "HTTP/1.1 431 Request Header Fields Too Large",
        "{body}"
    );
    assert_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        &body,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_head_too_large",
    );

    // A head that is not HTTP: 400 with the envelope, not a bare 400.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let (status, body) = parse_response(&answer);
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
    assert_error(
        StatusCode::BAD_REQUEST,
        &body,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );
    assert_eq!(node.ready().await.0, StatusCode::OK);
    // Counted before they were answered.
    let rejected = &node.handle.live.metrics.rejected;
    assert_eq!(rejected.get("request_head_too_large"), 1);
    assert_eq!(rejected.get("malformed_request"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_slower_than_the_timeout_gets_408_with_the_envelope() {
    let node = node(|_| {});
    let timeout = Duration::from_millis(300);
    let address = serve(
        &node,
        ConnectionLimits {
            request_head_timeout: timeout,
            ..ConnectionLimits::default()
        },
    )
    .await;
    // Before the connection exists, so before the node's clock starts.
    let started = Instant::now();
    // One header byte every 50 ms: the head would take 10 s to complete.
    let answer = answer_to_trickled_head(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let elapsed = started.elapsed();
    let (status, body) = parse_response(&answer);
    assert_eq!(status, "HTTP/1.1 408 Request Timeout", "{body}");
    assert_error(
        StatusCode::REQUEST_TIMEOUT,
        &body,
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
    );
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert_eq!(node.handle.live.metrics.rejected.get("request_timeout"), 1);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // A connection that sends nothing is closed at the timeout without an
    // answer (an idle keep-alive connection, not a request).
    let mut idle = TcpStream::connect(address).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut answer))
        .await
        .expect("closed")
        .unwrap();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}
