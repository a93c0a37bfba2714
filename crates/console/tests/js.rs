//! The pages' JavaScript BLAKE3 and state-proof verifier agree with the
//! Rust crates: vectors made here (the `blake3` crate, `everarcade-state`
//! proofs, valid and tampered) are checked by `tests/js/units.mjs` under
//! Node.js.

use std::path::Path;
use std::process::Command;

use everarcade_protocol::Domain;
use everarcade_state::State;
use serde_json::{Value, json};

const LENGTHS: [usize; 14] = [
    0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 4097, 8192, 9000,
];

fn input(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i % 251) as u8).collect()
}

fn proof_vectors() -> Vec<Value> {
    let mut state = State::new();
    for i in 0..200u32 {
        state.set(
            format!("key-{i}").as_bytes(),
            &input(i as usize * 37 % 5000),
        );
    }
    state.set(b"P", &input(4608));
    let root = state.root();
    let mut out = Vec::new();
    let mut vector =
        |name: &str, key: &[u8], value: Option<Vec<u8>>, proof: Vec<u8>, expect: &str| {
            out.push(json!({
                "name": name, "root": root.to_hex(), "key": hex::encode(key),
                "value": value.map(hex::encode), "proof": hex::encode(proof), "expect": expect,
            }));
        };
    for key in [&b"P"[..], b"key-7", b"key-199"] {
        let value = state.get(key).map(<[u8]>::to_vec);
        let proof = state.prove(key).encode();
        vector("present", key, value.clone(), proof.clone(), "ok");
        let mut wrong = value.clone().unwrap();
        wrong[0] ^= 1;
        vector(
            "wrong value",
            key,
            Some(wrong),
            proof.clone(),
            "wrong_value",
        );
        vector("value withheld", key, None, proof.clone(), "key_present");
        let mut flipped = proof.clone();
        flipped[2] ^= 0x80;
        vector("sibling flipped", key, value, flipped, "root_mismatch");
    }
    for key in [&b"absent-1"[..], b"W", b"absent-key-longer-than-usual"] {
        assert!(state.get(key).is_none());
        let proof = state.prove(key).encode();
        vector("absent", key, None, proof.clone(), "ok");
        vector(
            "value invented",
            key,
            Some(b"x".to_vec()),
            proof,
            "key_absent",
        );
    }
    let present = state.prove(b"key-7").encode();
    vector(
        "another key's proof",
        b"key-8",
        None,
        present,
        "root_mismatch",
    );
    out
}

fn vectors() -> Value {
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7)).collect();
    let hash: Vec<Value> = LENGTHS
        .iter()
        .map(|&length| json!({"length": length, "hash": blake3::hash(&input(length)).to_hex().to_string()}))
        .collect();
    let keyed: Vec<Value> = LENGTHS
        .iter()
        .map(|&length| {
            let digest = blake3::keyed_hash(&key.clone().try_into().unwrap(), &input(length));
            json!({"length": length, "key": hex::encode(&key), "hash": digest.to_hex().to_string()})
        })
        .collect();
    let domains = [
        Domain::StateKey,
        Domain::StateValue,
        Domain::StateLeaf,
        Domain::StateNode,
        Domain::StateEmpty,
        Domain::PackageFile,
    ];
    let domain: Vec<Value> = domains
        .iter()
        .flat_map(|domain| {
            [b"".to_vec(), b"abc".to_vec(), input(64), input(1500)].map(|bytes| {
                json!({"domain": domain.as_str(), "input": hex::encode(&bytes), "hash": domain.hash(&bytes).to_hex()})
            })
        })
        .collect();
    let bad_encodings = json!([
        {"name": "empty", "proof": "", "expect": "proof_truncated"},
        {"name": "too deep", "proof": "010100", "expect": "proof_too_deep"},
        {"name": "unknown tag", "proof": "000002", "expect": "proof_unknown_tag"},
        {"name": "trailing", "proof": "00000000", "expect": "proof_trailing_bytes"},
        {"name": "short sibling", "proof": "0100aabb", "expect": "proof_truncated"},
        {"name": "empty terminal", "proof": "000000", "expect": "ok"},
    ]);
    json!({"hash": hash, "keyed": keyed, "domain": domain, "proofs": proof_vectors(), "bad_encodings": bad_encodings})
}

#[test]
fn javascript_blake3_and_proofs_match_rust() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.json");
    std::fs::write(&path, vectors().to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/units.mjs");
    let output = Command::new("node")
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `node` ({error}): install Node.js 20 (apt-get install -y nodejs) to run the pages' JavaScript tests")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the pages' JavaScript disagrees with Rust:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
