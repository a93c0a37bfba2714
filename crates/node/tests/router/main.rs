//! Router tests: every status code and error envelope of docs/HTTP.md,
//! driven with `oneshot` against a real world actor on the simulated disk,
//! and the hostile requests the node must refuse while staying ready and
//! losing nothing it acknowledged.

mod common;
mod hostile;
mod incident;
mod limits;
mod planes;
mod records;

use axum::http::{StatusCode, header};
use everarcade_state::Proof;
use http_body_util::BodyExt;
use serde_json::json;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_version_and_metrics() {
    let node = node(|_| {});
    let (status, body) = node.call(get("/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "alive"})));
    let (status, body) = node.ready().await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let (status, body) = node.call(get("/version")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["protocol"], 1);
    assert_eq!(body["world"], WORLD);
    assert_eq!(body["features"]["amnesia"], true);
    assert_eq!(body["package_root"].as_str().unwrap().len(), 64);
    node.wait_for_tick(1).await;
    let response = node.send(get("/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for name in [
        "everarcade_ticks_total",
        "everarcade_tick_duration_seconds_bucket",
        "everarcade_inputs_admitted_total",
        "everarcade_journal_fsync_seconds_count",
        "everarcade_checkpoint_duration_seconds_count",
        "everarcade_state_keys",
        "everarcade_state_bytes",
        "everarcade_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\"",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_methods_and_worlds() {
    let node = node(|_| {});
    node.refused(get("/nope"), StatusCode::NOT_FOUND, "not_found")
        .await;
    node.refused(
        get(&inputs_path()),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    node.refused(
        get("/v1/worlds/world-002/status"),
        StatusCode::NOT_FOUND,
        "unknown_world",
    )
    .await;
    // Raw paths never become metric labels.
    let (_, _) = node.call(get("/some/random/path/12345")).await;
    let text = node.call(get("/metrics")).await.1;
    let text = text.as_str().unwrap();
    assert!(!text.contains("12345"), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(
        text.contains("everarcade_rejected_total{reason=\"not_found\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_input_is_acknowledged_then_executed_in_its_tick() {
    let node = node(|_| {});
    let envelope = envelope("alice", 1, b"\x01");
    let (tick, seq) = node.admit(&envelope).await;
    assert!(tick >= 1);
    assert_eq!(seq, 0);
    node.wait_for_tick(tick).await;
    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/ticks/{tick}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["input_count"], 1);
    assert_eq!(body["receipts"][0]["subject"], envelope.hash().to_hex());
    assert_eq!(body["receipts"][0]["kind"], "input");
    let (status, body) = node.call(get(&format!("/v1/worlds/{WORLD}/status"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["head_tick"].as_u64().unwrap() >= tick);
    assert_eq!(body["admission"], "open");
    assert_eq!(body["live"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refusals_have_their_codes() {
    let node = node(|_| {});
    node.admit(&envelope("bob", 5, b"x")).await;
    let reused = json_envelope(&envelope("bob", 5, b"y"));
    node.refused(
        post_json(&inputs_path(), &reused),
        StatusCode::UNPROCESSABLE_ENTITY,
        "stale_nonce",
    )
    .await;
    let mut forged = envelope("bob", 6, b"x");
    forged.payload = b"z".to_vec();
    node.refused(
        post_json(&inputs_path(), &json_envelope(&forged)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_signature",
    )
    .await;
    let other = everarcade_protocol::Envelope::sign(
        &everarcade_protocol::WorldId::new("world-002").unwrap(),
        &key("bob"),
        7,
        b"x".to_vec(),
    );
    node.refused(
        post_json(&inputs_path(), &json_envelope(&other)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_world",
    )
    .await;
    let big = envelope("bob", 8, &[0u8; 257]);
    node.refused(
        post_json(&inputs_path(), &json_envelope(&big)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "payload_too_large",
    )
    .await;
    let text = node.call(get("/metrics")).await.1;
    let text = text.as_str().unwrap();
    for reason in [
        "stale_nonce",
        "bad_signature",
        "wrong_world",
        "payload_too_large",
    ] {
        assert!(
            text.contains(&format!(
                "everarcade_inputs_rejected_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}:\n{text}"
        );
    }
}

/// A ZIP-215 world checks the inputs of requests waiting together as one
/// batch (crates/node/src/signatures.rs): every good input is admitted,
/// every forgery is refused `bad_signature` in its own request at its own
/// index, and `/metrics` counts the gathered checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip215_node_checks_waiting_requests_together() {
    let dir = everarcade_testkit::temp::TempDir::new("zip215-node");
    let node = std::sync::Arc::new(zip215_node(dir.path()));
    let mut singles = Vec::new();
    for player in 0..40u64 {
        let mut envelope = envelope(&format!("p{player}"), 1, b"\x01");
        let forged = player % 9 == 4;
        if forged {
            envelope.signature[3] ^= 1;
        }
        let node = node.clone();
        singles.push((
            forged,
            tokio::spawn(async move {
                node.call(post_json(&inputs_path(), &json_envelope(&envelope)))
                    .await
            }),
        ));
    }
    let mut batch = Vec::new();
    for nonce in 1..=6u64 {
        let mut envelope = envelope("batcher", nonce, b"\x02");
        if nonce == 4 {
            envelope.payload = b"\x03".to_vec();
        }
        batch.push(json_envelope(&envelope));
    }
    let batched = node
        .call(post_json(&inputs_path(), &json!({ "envelopes": batch })))
        .await;
    for (forged, single) in singles {
        let (status, body) = single.await.unwrap();
        if forged {
            assert_error(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_signature",
            );
        } else {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            assert!(body["tick"].is_u64(), "{body}");
        }
    }
    let (status, body) = batched;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let results = body["results"].as_array().unwrap();
    for (index, result) in results.iter().enumerate() {
        if index == 3 {
            assert_eq!(result["error"]["code"], "bad_signature", "{body}");
        } else {
            assert!(result["tick"].is_u64(), "{index}: {body}");
        }
    }
    let text = node.call(get("/metrics")).await.1;
    let text = text.as_str().unwrap().to_string();
    let counter = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{text}"))
    };
    assert_eq!(counter("everarcade_signature_batch_inputs_total "), 46);
    assert!(counter("everarcade_signature_batches_total ") >= 1);
    assert_eq!(
        counter("everarcade_inputs_rejected_total{reason=\"bad_signature\"} "),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_json_and_binary_answer_per_input() {
    let node = node(|_| {});
    let good = envelope("carol", 1, b"a");
    let mut bad = envelope("carol", 2, b"b");
    bad.signature[0] ^= 1;
    let also_good = envelope("dave", 1, b"c");
    let batch = json!({"envelopes": [json_envelope(&good), json_envelope(&bad), json_envelope(&also_good)]});
    let (status, body) = node.call(post_json(&inputs_path(), &batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0]["tick"].is_u64(), "{body}");
    assert_eq!(results[1]["error"]["code"], "bad_signature");
    assert!(results[2]["tick"].is_u64(), "{body}");

    let one = envelope("erin", 1, b"q").encode();
    let (status, body) = node
        .call(post_bytes(&inputs_path(), "application/octet-stream", one))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["seq"].is_u64(), "{body}");

    let mut two = envelope("erin", 2, b"r").encode();
    two.extend(envelope("erin", 2, b"s").encode());
    let (status, body) = node
        .call(post_bytes(&inputs_path(), "application/octet-stream", two))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["results"][0]["tick"].is_u64(), "{body}");
    assert_eq!(body["results"][1]["error"]["code"], "stale_nonce", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_values_come_with_proofs() {
    let node = node(|_| {});
    node.wait_for_tick(1).await;
    // The 2d-arena's genesis writes its config under a key; absence proofs work for any key.
    let missing = hex::encode(b"no-such-key");
    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/state/{missing}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["value"].is_null());
    let proof = Proof::decode(&hex::decode(body["proof"].as_str().unwrap()).unwrap()).unwrap();
    let root_hex = body["state_root"].as_str().unwrap();
    let root = everarcade_protocol::Hash(hex::decode(root_hex).unwrap().try_into().unwrap());
    proof
        .verify(&root, b"no-such-key", None)
        .expect("the absence proof verifies");
    assert!(proof.verify(&root, b"no-such-key", Some(b"x")).is_err());
    // `W` is the arena's meta record, written at genesis: a membership proof.
    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/state/57")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let value = hex::decode(body["value"].as_str().expect("W is present")).unwrap();
    assert_eq!(value.len(), 40);
    let proof = Proof::decode(&hex::decode(body["proof"].as_str().unwrap()).unwrap()).unwrap();
    let root_hex = body["state_root"].as_str().unwrap();
    let root = everarcade_protocol::Hash(hex::decode(root_hex).unwrap().try_into().unwrap());
    proof
        .verify(&root, b"W", Some(&value))
        .expect("the membership proof verifies");
    let mut changed = value.clone();
    changed[0] ^= 1;
    assert!(
        proof.verify(&root, b"W", Some(&changed)).is_err(),
        "a changed value fails"
    );
    assert!(
        proof.verify(&root, b"W", None).is_err(),
        "claiming absence fails"
    );
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/state/zz")),
        StatusCode::BAD_REQUEST,
        "malformed_key",
    )
    .await;
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/state/{}", "00".repeat(257))),
        StatusCode::BAD_REQUEST,
        "malformed_key",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_space_is_listed_in_pages() {
    let node = node(|_| {});
    node.wait_for_tick(1).await;
    // Two players join (JOIN is the arena's opcode 1): the state gains keys.
    node.admit(&envelope("ann", 1, &[1])).await;
    let (tick, _) = node.admit(&envelope("bob", 1, &[1])).await;
    node.wait_for_tick(tick + 1).await;
    let keys_path = format!("/v1/worlds/{WORLD}/keys");
    let (status, all) = node.call(get(&format!("{keys_path}?limit=256"))).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let listed: Vec<String> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["key"].as_str().unwrap().to_string())
        .collect();
    assert!(listed.len() >= 2, "{all}");
    assert!(
        listed
            .windows(2)
            .all(|pair| hex::decode(&pair[0]).unwrap() < hex::decode(&pair[1]).unwrap()),
        "keys come in key order: {listed:?}"
    );
    assert_eq!(
        all["total"].as_u64().unwrap() as usize,
        listed.len(),
        "{all}"
    );
    assert!(all["next"].is_null(), "one page holds them all: {all}");

    // `W`'s entry names the hash its trie leaf commits to.
    let w = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["key"] == "57")
        .expect("the arena's meta record is listed");
    let (_, read) = node
        .call(get(&format!("/v1/worlds/{WORLD}/state/57")))
        .await;
    let value = hex::decode(read["value"].as_str().unwrap()).unwrap();
    assert_eq!(w["value_bytes"].as_u64().unwrap() as usize, value.len());
    assert_eq!(
        w["value_hash"].as_str().unwrap(),
        everarcade_protocol::Domain::StateValue
            .hash(&value)
            .to_hex()
    );

    // Pages of one key walk the same order.
    let (_, first) = node.call(get(&format!("{keys_path}?limit=1"))).await;
    assert_eq!(first["keys"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["keys"][0]["key"], listed[0].as_str());
    assert_eq!(first["next"], listed[0].as_str(), "{first}");
    let (_, second) = node
        .call(get(&format!("{keys_path}?limit=1&after={}", listed[0])))
        .await;
    let second_key = hex::decode(second["keys"][0]["key"].as_str().unwrap()).unwrap();
    assert!(second_key > hex::decode(&listed[0]).unwrap(), "{second}");

    for (query, what) in [
        ("after=zz", "not hex"),
        ("limit=0", "limit 0"),
        ("limit=257", "limit over the bound"),
        ("prefix=57", "an unknown parameter"),
    ] {
        let (status, body) = node.call(get(&format!("{keys_path}?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"]["code"], "malformed_query", "{what}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_not_executed_or_malformed() {
    let node = node(|_| {});
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/ticks/99999999")),
        StatusCode::NOT_FOUND,
        "tick_not_found",
    )
    .await;
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/ticks/0")),
        StatusCode::NOT_FOUND,
        "tick_not_found",
    )
    .await;
    node.refused(
        get(&format!("/v1/worlds/{WORLD}/ticks/abc")),
        StatusCode::BAD_REQUEST,
        "malformed_tick",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_the_token_and_controls_admission() {
    let node = node(|_| {});
    node.refused(
        admin("/admin/admission/close", None),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    node.refused(
        admin("/admin/admission/close", Some("wrong-token-wrong-token")),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let (status, body) = node
        .call(admin("/admin/admission/close", Some(TOKEN)))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"admission": "closed"}))
    );
    let refused = node
        .refused(
            post_json(&inputs_path(), &json_envelope(&envelope("frank", 1, b"a"))),
            StatusCode::SERVICE_UNAVAILABLE,
            "admission_closed",
        )
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operator")
    );
    node.not_ready_because("admission is closed").await;
    let (status, _) = node.call(admin("/admin/admission/open", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node.ready().await.0, StatusCode::OK);
    let (tick, _) = node.admit(&envelope("frank", 1, b"a")).await;
    let (status, body) = node.call(admin("/admin/checkpoint", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["tick"].as_u64().unwrap() >= tick,
        "the checkpoint waits for the pending input's tick: {body}"
    );
    assert!(body["path"].as_str().unwrap().ends_with(".ckpt"));
    node.admit(&envelope("frank", 2, b"b")).await;
    let (status, body) = node.call(admin("/admin/drain", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["admission"], "closed");
    let executed = node.executed_inputs().await;
    assert!(
        executed.contains(&envelope("frank", 2, b"b").hash().to_hex()),
        "drain ran the pending input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_ticks() {
    let node = node(|_| {});
    let mut stream = node.events(None).await;
    let event = stream.next_event().await;
    assert_eq!(event.kind, "tick", "{event:?}");
    let data = event.data();
    assert!(data["tick"].as_u64().unwrap() >= 1);
    assert_eq!(
        event.id,
        Some(data["tick"].as_u64().unwrap()),
        "id: is the tick"
    );
    assert_eq!(data["continuity_root"].as_str().unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_after_last_event_id() {
    let node = node(|_| {});
    node.wait_for_tick(6).await;
    let mut stream = node.events(Some("2")).await;
    // Ticks 3.. first (replayed from memory), in order, then live ones.
    let mut ids = Vec::new();
    while ids.len() < 8 {
        let event = stream.next_event().await;
        assert_eq!(event.kind, "tick", "{event:?}");
        assert_eq!(event.id, event.data()["tick"].as_u64());
        ids.push(event.id.unwrap());
    }
    assert_eq!(
        ids,
        (3..11).collect::<Vec<u64>>(),
        "no tick missing or twice"
    );

    // An id at or beyond the head: live ticks only, from the head on.
    let head = node.handle.live.status().roots.tick;
    let mut stream = node.events(Some(&format!("{}", head + 1000))).await;
    let event = stream.next_event().await;
    assert_eq!(event.kind, "tick");
    assert!(event.id.unwrap() > head, "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_says_which_ticks_it_no_longer_holds() {
    // Ticks 1..=5 ran before the node started: it does not hold them.
    let node = node_prepared(
        |_| {},
        |_| {},
        |world, _, _| {
            for _ in 0..5 {
                world.execute_tick().unwrap();
            }
        },
    );
    let mut stream = node.events(Some("2")).await;
    let gap = stream.next_event().await;
    assert_eq!(gap.kind, "gap", "{gap:?}");
    assert_eq!(gap.id, None);
    assert_eq!(gap.data(), json!({"from": 3, "to": 5}));
    let next = stream.next_event().await;
    assert_eq!(next.kind, "tick");
    assert_eq!(next.id, Some(6), "then the ticks it holds, from the oldest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_poisons_admission_and_readiness() {
    let node = node(|_| {});
    node.admit(&envelope("gina", 1, b"a")).await;
    node.disk.fail_sync_at(node.disk.syncs() + 1);
    let started = std::time::Instant::now();
    let mut nonce = 2;
    loop {
        let (status, body) = node
            .call(post_json(
                &inputs_path(),
                &json_envelope(&envelope("gina", nonce, b"a")),
            ))
            .await;
        nonce += 1;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_error(
                status,
                &body,
                StatusCode::SERVICE_UNAVAILABLE,
                "journal_poisoned",
            );
            break;
        }
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never poisoned"
        );
    }
    node.not_ready_because("journal").await;
    // No retry: the next input is refused too.
    node.refused(
        post_json(
            &inputs_path(),
            &json_envelope(&envelope("gina", 1000, b"a")),
        ),
        StatusCode::SERVICE_UNAVAILABLE,
        "journal_poisoned",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_disk_is_nearly_full() {
    let node = node_with(
        |_| {},
        |facts| {
            facts.disk_root = Some(std::env::temp_dir());
            facts.disk_free_bytes_min = u64::MAX;
        },
    );
    node.not_ready_because("disk:").await;
    let (status, body) = node.call(get(&format!("/v1/worlds/{WORLD}/status"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ready"], false);
    assert!(
        body["not_ready_reason"].as_str().unwrap().contains("disk:"),
        "{body}"
    );
    let metrics = node.call(get("/metrics")).await.1;
    assert!(metrics.as_str().unwrap().contains("everarcade_ready 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_attests_the_head_and_signs_checkpoints() {
    use everarcade_store::keys::{
        Signed, file_digest, parse_public_key, parse_signature, verify_signature,
    };
    let node = node(|_| {});
    node.wait_for_tick(2).await;
    let (status, body) = node
        .call(get(&format!("/v1/worlds/{WORLD}/attestation")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statement = body["statement"].as_str().unwrap();
    let digest = file_digest(statement.as_bytes());
    assert_eq!(body["digest"], digest.to_hex());
    let key = parse_public_key(body["public_key"].as_str().unwrap()).unwrap();
    let signature = parse_signature(body["signature"].as_str().unwrap()).unwrap();
    verify_signature(&key, Signed::Status, &digest, &signature).expect("the attestation verifies");
    let tampered = statement.replace("\"tick\":", "\"tick\":1");
    assert!(
        verify_signature(
            &key,
            Signed::Status,
            &file_digest(tampered.as_bytes()),
            &signature
        )
        .is_err()
    );
    let version = node.call(get("/version")).await.1;
    assert_eq!(version["operator_public_key"], body["public_key"]);
    let statement: serde_json::Value = serde_json::from_str(statement).unwrap();
    assert_eq!(statement["world"], WORLD);

    let (status, taken) = node.call(admin("/admin/checkpoint", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    let tick = taken["tick"].as_u64().unwrap();
    let dir = everarcade_store::WorldDir::new(std::path::Path::new("/sim/root"), &world_id());
    let bytes = everarcade_store::Storage::read(&node.disk, &dir.checkpoint(tick)).unwrap();
    let history = everarcade_store::keys::read_history(&node.disk, &dir).unwrap();
    let signing = everarcade_store::keys::check_checkpoint_signature(
        &node.disk,
        &dir,
        history.as_ref(),
        tick,
        &bytes,
    );
    assert!(
        matches!(
            signing,
            Ok(everarcade_store::keys::CheckpointSigning::Signed(_))
        ),
        "{signing:?}"
    );
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert!(
        everarcade_store::keys::check_checkpoint_signature(
            &node.disk,
            &dir,
            history.as_ref(),
            tick,
            &flipped
        )
        .is_err()
    );
}
