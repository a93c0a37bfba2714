//! The self-audit: a running node whose journal no longer replays to its
//! recorded roots records an incident, closes admission, stops publishing
//! the lineage, and says so in status and readiness.

use axum::http::StatusCode;
use everarcade_store::{SimStorage, Storage, WorldDir};
use everarcade_testkit::journal::{KIND_TICK, body_tick, forge_segment};

use crate::common::*;

/// Flips a bit of tick `tick`'s recorded state root and re-chains every
/// checksum after it, as a forger would.
fn forge_state_root(disk: &SimStorage, dir: &WorldDir, tick: u64) {
    let segment = dir.segment(1);
    let bytes = disk.read(&segment).unwrap();
    let mut forged = false;
    let out = forge_segment(&bytes, |kind, body| {
        if kind == KIND_TICK && body_tick(body) == tick {
            body[12 + 64] ^= 0x80;
            forged = true;
        }
    });
    assert!(forged, "tick {tick} is in the journal");
    disk.overwrite(&segment, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergence_found_by_the_self_audit_is_an_incident() {
    let node = node_prepared(
        |_| {},
        |_| {},
        |world, disk, dir| {
            for _ in 0..4 {
                world.execute_tick().unwrap();
            }
            forge_state_root(disk, dir, 2);
        },
    );
    let (status, clean) = node.call(admin("/admin/audit", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{clean}");
    let (status, outcome) = node.call(admin("/admin/audit", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["result"], "incident", "{outcome}");
    assert_eq!(outcome["kind"], "divergence", "{outcome}");
    assert_eq!(outcome["tick"], 2, "{outcome}");

    node.not_ready_because("incident: divergence at tick 2")
        .await;
    node.refused(
        post_json(&inputs_path(), &json_envelope(&envelope("zed", 1, b"a"))),
        StatusCode::SERVICE_UNAVAILABLE,
        "admission_closed",
    )
    .await;
    for path in ["ticks/1", "attestation", "events", "state/57"] {
        node.refused(
            get(&format!("/v1/worlds/{WORLD}/{path}")),
            StatusCode::SERVICE_UNAVAILABLE,
            "incident",
        )
        .await;
    }
    let (status, body) = node.call(get(&format!("/v1/worlds/{WORLD}/status"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["incident"]["tick"], 2, "{body}");
    let record = body["incident"]["record"].as_str().unwrap();
    let incident: serde_json::Value =
        serde_json::from_slice(&node.disk.read(std::path::Path::new(record)).unwrap()).unwrap();
    assert_eq!(incident["detected_by"], "self-audit");
    assert_eq!(incident["roots"][0][0], "state_root");
    // Ticks stopped: the head stays where the incident found it.
    let head = node.handle.live.status().roots.tick;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(node.handle.live.status().roots.tick, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_journal_passes_the_self_audit() {
    let node = node(|_| {});
    node.wait_for_tick(3).await;
    let (status, outcome) = node.call(admin("/admin/audit", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["result"], "matched", "{outcome}");
    assert!(outcome["to_tick"].as_u64().unwrap() >= 3, "{outcome}");
    assert_eq!(node.ready().await.0, StatusCode::OK);
}
