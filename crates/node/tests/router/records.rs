//! The record stream (`GET /v1/worlds/{world}/records`) and `/authority`:
//! a follower fed the framed records reaches the authority's roots; a
//! position on another chain is 409 `peer_diverged`; a request with
//! nothing new long-polls until the next fdatasync.

use std::path::Path;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use everarcade_engine::Engine;
use everarcade_federation::WireRecord;
use everarcade_federation::stream::{apply, decode_stream};
use everarcade_package::Package;
use everarcade_store::{JournalReader, SimStorage, Storage, WorldDir};
use everarcade_world::{DurableWorld, WorldConfig};
use http_body_util::BodyExt;

use crate::common::*;

async fn records(node: &TestNode, query: &str) -> (StatusCode, Vec<WireRecord>) {
    let response = node
        .send(get(&format!("/v1/worlds/{WORLD}/records?{query}")))
        .await;
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/vnd.everarcade.records"
        );
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status != StatusCode::OK {
        return (status, Vec::new());
    }
    (status, decode_stream(&bytes).expect("the stream decodes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_fed_the_record_stream_reaches_the_authoritys_roots() {
    let node = node(|_| {});
    let (tick, _) = node.admit(&envelope("alice", 1, b"\x01")).await;
    node.wait_for_tick(tick).await;
    let journal = WorldDir::new(Path::new("/sim/root"), &world_id()).journal();
    let genesis = JournalReader::open(&node.disk as &dyn Storage, &journal)
        .unwrap()
        .next()
        .unwrap()
        .expect("a genesis record")
        .checksum;

    let (status, served) = records(&node, &format!("after=0&checksum={}", genesis.to_hex())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served[0].ordinal, 1);

    let package = Package::load(Path::new(PACKAGE_DIR)).unwrap();
    let engine = Arc::new(Engine::new().unwrap());
    let compiled = engine.compile(&package).unwrap();
    let disk = SimStorage::new();
    let mut follower = DurableWorld::create(
        Arc::new(disk),
        WorldDir::new(Path::new("/sim/follower"), &world_id()),
        world_id(),
        engine,
        compiled,
        WorldConfig::default(),
    )
    .unwrap();
    let applied = apply(&mut follower, &served).expect("the served records apply");
    assert!(applied.durable.tick >= tick);
    let head = follower.roots();
    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/ticks/{}", head.tick)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state_root"], head.state_root.to_hex());

    // Nothing new after the last record yet: the request waits for the next tick.
    let last = applied.durable;
    let (status, next) = records(
        &node,
        &format!(
            "after={}&checksum={}&wait_ms=5000",
            last.ordinal,
            last.checksum.to_hex()
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(next[0].ordinal, last.ordinal + 1);
    apply(&mut follower, &next).expect("the next records apply");

    let (status, _) = records(&node, &format!("after=1&checksum={}", genesis.to_hex())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = node
        .call(get(&format!(
            "/v1/worlds/{WORLD}/records?after=1&checksum={}",
            genesis.to_hex()
        )))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("peer_diverged"))
    );
    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/records?after=x")))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_query"))
    );

    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/authority")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "authority");
    assert_eq!(body["authority"], "http://127.0.0.1:0");
    let (_, status) = node.call(get(&format!("/v1/worlds/{WORLD}/status"))).await;
    assert_eq!(status["role"], "authority");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_report_is_counted_and_a_malformed_one_refused() {
    let node = node(|_| {});
    let path = |query: &str| format!("/v1/worlds/{WORLD}/records/durable?{query}");
    for query in [
        "",
        "follower=f1",
        "durable=3",
        "follower=&durable=1",
        "follower=a%20b&durable=1",
        "follower=f1&durable=x",
        "follower=f1&durable=1&after=2",
    ] {
        node.refused(
            admin(&path(query), None),
            StatusCode::BAD_REQUEST,
            "bad_query",
        )
        .await;
    }
    // Another world's path is not this node's.
    let (status, _) = node
        .call(admin(
            "/v1/worlds/another-world/records/durable?follower=f1&durable=1",
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = node.send(admin(&path("follower=f1&durable=5"), None)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // An older report never moves a follower back.
    let response = node.send(admin(&path("follower=f1&durable=2"), None)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = node.call(get(&format!("/v1/worlds/{WORLD}/status"))).await;
    assert_eq!(status, StatusCode::OK);
    let followers = body["followers"].as_array().expect("followers");
    assert_eq!(followers.len(), 1, "{body}");
    assert_eq!(followers[0]["name"], "f1", "{body}");
    assert_eq!(followers[0]["durable_record"], 5, "{body}");
}
