//! Hostile requests: each gets its code and envelope, the node stays ready,
//! and every input it acknowledged executes.

use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::common::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

fn encoded(content_type: &str, encoding: &str, bytes: Vec<u8>) -> Request<Body> {
    Request::post(inputs_path())
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_ENCODING, encoding)
        .body(Body::from(bytes))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_refused_and_nothing_acknowledged_is_lost() {
    let node = node(|_| {});
    let mut acknowledged = Vec::new();
    let mut nonce = 0;
    let mut next = |payload: &[u8]| {
        nonce += 1;
        envelope("mallory", nonce, payload)
    };
    let first = next(b"1");
    node.admit(&first).await;
    acknowledged.push(first.hash().to_hex());

    // Oversize: declared, and streamed without a length.
    let big = vec![b'{'; (1 << 20) + 1];
    node.refused(
        post_bytes(&inputs_path(), "application/json", big.clone()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;
    let stream = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let request = Request::post(inputs_path())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    node.refused(request, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        .await;

    // Decompression bombs: 8 MiB of zeros is far beyond 10x its compressed size.
    let zeros = vec![0u8; 8 << 20];
    node.refused(
        encoded("application/octet-stream", "gzip", gzip(&zeros)),
        StatusCode::PAYLOAD_TOO_LARGE,
        "decompression_ratio_exceeded",
    )
    .await;
    node.refused(
        encoded("application/octet-stream", "zstd", zstd(&zeros)),
        StatusCode::PAYLOAD_TOO_LARGE,
        "decompression_ratio_exceeded",
    )
    .await;
    node.refused(
        encoded("application/json", "gzip", b"not gzip at all".to_vec()),
        StatusCode::BAD_REQUEST,
        "malformed_body",
    )
    .await;
    node.refused(
        encoded("application/json", "br", b"{}".to_vec()),
        StatusCode::BAD_REQUEST,
        "unsupported_encoding",
    )
    .await;

    // Honest compressed bodies are fine.
    let gzipped = next(b"2");
    let body = json_envelope(&gzipped).to_string().into_bytes();
    let (status, reply) = node
        .call(encoded("application/json", "gzip", gzip(&body)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    acknowledged.push(gzipped.hash().to_hex());
    let zstded = next(b"3");
    let (status, reply) = node
        .call(encoded(
            "application/octet-stream",
            "zstd",
            zstd(&zstded.encode()),
        ))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    acknowledged.push(zstded.hash().to_hex());

    // Malformed JSON, unknown fields, wrong shapes, wrong media types.
    node.refused(
        post_bytes(&inputs_path(), "application/json", b"{\"world\":".to_vec()),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    let mut extra = json_envelope(&next(b"4"));
    extra["admin"] = json!(true);
    node.refused(
        post_json(&inputs_path(), &extra),
        StatusCode::BAD_REQUEST,
        "unknown_field",
    )
    .await;
    node.refused(
        post_json(&inputs_path(), &json!({"envelopes": [], "x": 1})),
        StatusCode::BAD_REQUEST,
        "unknown_field",
    )
    .await;
    let mut short = json_envelope(&next(b"5"));
    short["signature"] = json!("abcd");
    node.refused(
        post_json(&inputs_path(), &short),
        StatusCode::BAD_REQUEST,
        "malformed_envelope",
    )
    .await;
    node.refused(
        post_bytes(&inputs_path(), "application/octet-stream", vec![1, 2, 3]),
        StatusCode::BAD_REQUEST,
        "malformed_envelope",
    )
    .await;
    node.refused(
        post_bytes(&inputs_path(), "text/plain", b"hi".to_vec()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // A bad signature and a reused nonce.
    let mut forged = next(b"6");
    forged.signature[10] ^= 0x40;
    node.refused(
        post_json(&inputs_path(), &json_envelope(&forged)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_signature",
    )
    .await;
    let replayed = envelope("mallory", 1, b"1");
    node.refused(
        post_json(&inputs_path(), &json_envelope(&replayed)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "stale_nonce",
    )
    .await;

    let last = next(b"7");
    let (tick, _) = node.admit(&last).await;
    acknowledged.push(last.hash().to_hex());
    assert_eq!(node.ready().await.0, StatusCode::OK, "the node stays ready");
    node.wait_for_tick(tick).await;
    let executed = node.executed_inputs().await;
    for hash in &acknowledged {
        assert!(
            executed.contains(hash),
            "acknowledged input {hash} was not executed"
        );
    }
    assert_eq!(
        executed.len(),
        acknowledged.len(),
        "only acknowledged inputs executed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_hits_the_request_timeout() {
    let node = node(|http| http.request_timeout_ms = 300);
    let stream = futures_util::stream::unfold(0, |sent| async move {
        if sent == 0 {
            Some((Ok::<_, std::io::Error>(b"{\"world\":".to_vec()), 1))
        } else {
            // Never finishes: a client trickling or stalling its body.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
    });
    let request = Request::post(inputs_path())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let started = std::time::Instant::now();
    node.refused(request, StatusCode::REQUEST_TIMEOUT, "request_timeout")
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(node.ready().await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_flood_gets_429_with_retry_after_and_probes_stay_green() {
    let node = node(|http| http.rate_per_client_per_second = 20);
    let mut limited = 0;
    for _ in 0..60 {
        let response = node.send(get(&format!("/v1/worlds/{WORLD}/status"))).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key(header::RETRY_AFTER));
            limited += 1;
        }
    }
    assert!(limited >= 30, "only {limited} of 60 were limited at 20 rps");
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/status")),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_eq!(
        node.ready().await.0,
        StatusCode::OK,
        "probes are not rate limited"
    );
    assert_eq!(node.call(get("/healthz")).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_in_flight_max_the_node_sheds_load() {
    let node = node(|http| {
        http.in_flight_max = 1;
        http.request_timeout_ms = 2_000;
    });
    // One slow request occupies the only slot: its body, once the handler
    // starts reading it, says so and then waits for `sender`.
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let (reading, read_started) = tokio::sync::oneshot::channel::<()>();
    let state = (Some(reading), Some(receiver));
    let stream = futures_util::stream::unfold(state, |(reading, receiver)| async move {
        if let Some(reading) = reading {
            let _ = reading.send(());
        }
        let _ = receiver?.await;
        None::<(Result<Vec<u8>, std::io::Error>, _)>
    });
    let slow = Request::post(inputs_path())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let app = node.app.clone();
    let occupied = tokio::spawn(async move { tower::ServiceExt::oneshot(app, slow).await });
    tokio::time::timeout(Duration::from_secs(10), read_started)
        .await
        .expect("the slow request reached its handler")
        .unwrap();
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/status")),
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
    )
    .await;
    drop(sender);
    let _ = occupied.await;
    assert_eq!(
        node.call(get(&format!("/v1/worlds/{WORLD}/status")))
            .await
            .0,
        StatusCode::OK
    );
}
