use std::collections::BTreeMap;

use everarcade_protocol::Hash;
use everarcade_store::WorldDir;
use everarcade_testkit::temp::TempDir;
use everarcade_testkit::world_id;
use everarcade_usage::report::{FLAG_OFFLINE, REPORT_BYTES_MAX};
use everarcade_usage::{Counted, Metadata, Outcomes, ReportError, SignedReport, UsageReport};

use crate::common::fixed_keys;

/// The report of docs/FORMATS.md §Usage report's vector.
pub fn vector_report() -> UsageReport {
    UsageReport {
        flags: FLAG_OFFLINE,
        world: world_id(),
        first_tick: 1,
        last_tick: 3,
        start_continuity_root: Hash([0x11; 32]),
        end_continuity_root: Hash([0x22; 32]),
        counted: Counted {
            ticks: 3,
            inputs_admitted: 5,
            input_receipts: Outcomes {
                applied: 2,
                rejected: 1,
                trapped: 1,
                out_of_fuel: 1,
            },
            hook_receipts: Outcomes {
                applied: 3,
                ..Outcomes::default()
            },
            fuel_inputs: 1000,
            fuel_hooks: 30,
            events: 7,
            journal_bytes: 4096,
        },
        metadata: Metadata {
            window_start_unix_ms: 1_700_000_000_000,
            window_end_unix_ms: 1_700_003_600_000,
            checkpoints_written: 1,
            checkpoint_bytes: 2048,
            refused: BTreeMap::from([
                ("bad_signature".to_string(), 2),
                ("nonce_reused".to_string(), 1),
            ]),
            runtime_version: "0.1.0".into(),
            package_root: Hash([0x33; 32]),
            package_version: "1.0.0".into(),
        },
    }
}

const VECTOR_DIGEST: &str = "3f9169f548ab662b680a8d11dea2239703751f4f4fb4c5ea3462400ff53710f6";
const VECTOR_SIGNATURE: &str = "9d60fc8d58b4912ad9a35230a748890be3675e48ccbd33a4a17c22dea1ae0a0e55df06996ce24fe13715d824da00fe96ed04cab14bfdd4f33f7f5e8022757203";

fn signed_vector() -> SignedReport {
    let temp = TempDir::new("usage-vector");
    let dir = WorldDir::new(temp.path(), &world_id());
    vector_report().sign(&fixed_keys(&dir))
}

#[test]
fn vector_matches_the_docs() {
    let signed = signed_vector();
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/FORMATS.md"
    ))
    .unwrap();
    let body_hex = hex::encode(&signed.bytes[..signed.bytes.len() - 96]);
    assert_eq!(signed.digest.to_hex(), VECTOR_DIGEST);
    assert_eq!(hex::encode(signed.signature), VECTOR_SIGNATURE);
    let flat: String = docs.split_whitespace().collect();
    for value in [body_hex.as_str(), VECTOR_DIGEST, VECTOR_SIGNATURE] {
        assert!(flat.contains(value), "docs/FORMATS.md lacks {value}");
    }
}

#[test]
fn decode_is_the_inverse_of_sign() {
    let signed = signed_vector();
    let decoded = SignedReport::decode(&signed.bytes).expect("decodes");
    assert_eq!(decoded, signed);
    assert!(signed.bytes.len() <= REPORT_BYTES_MAX);
}

#[test]
fn every_changed_byte_is_refused() {
    let signed = signed_vector();
    for at in 0..signed.bytes.len() {
        let mut bytes = signed.bytes.clone();
        bytes[at] ^= 0x01;
        assert!(
            SignedReport::decode(&bytes).is_err(),
            "byte {at} flipped was accepted"
        );
    }
}

#[test]
fn every_truncation_is_refused() {
    let signed = signed_vector();
    for length in 0..signed.bytes.len() {
        let error = SignedReport::decode(&signed.bytes[..length]).expect_err("truncated");
        assert!(
            matches!(
                error,
                ReportError::Malformed { .. } | ReportError::Signature(_)
            ),
            "{length}: {error}"
        );
    }
    let mut longer = signed.bytes.clone();
    longer.push(0);
    assert!(SignedReport::decode(&longer).is_err());
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for length in [0usize, 1, 8, 12, 100, 400, 9000] {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            assert!(SignedReport::decode(&bytes).is_err());
        }
    }
}
