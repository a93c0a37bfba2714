//! Player proofs: receipts and state against the head commitment; tampered
//! proofs and wrong heads fail.

use everarcade_audit::proof::{ProofQuery, ProveRequest, Proven, prove};
use everarcade_audit::{Claim, PlayerProof, PlayerProofError};
use everarcade_protocol::{Hash, ReceiptKind};
use everarcade_store::DiskStorage;

use crate::common::{Built, build, export_window, fixture, world_id};

fn proven(built: &Built, query: ProofQuery) -> Proven {
    let fixture = fixture();
    let request = ProveRequest {
        storage: &DiskStorage,
        dir: &built.dir,
        id: &world_id(),
        engine: &fixture.engine,
        compiled: fixture.compiled.clone(),
    };
    prove(&request, &query).unwrap()
}

/// Every single-byte change of the encoding is refused (malformed or invalid).
fn tampering_fails(proof: &PlayerProof, head_root: &Hash) {
    let bytes = proof.encode();
    for position in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x01;
        match PlayerProof::decode(&tampered) {
            Err(PlayerProofError::Malformed { .. }) => {}
            Err(other) => panic!("{other:?}"),
            Ok(decoded) => {
                let error = decoded.verify(head_root).expect_err(&format!(
                    "byte {position} flipped and the proof still verifies"
                ));
                assert!(matches!(error, PlayerProofError::Invalid { .. }));
            }
        }
    }
}

#[test]
fn receipt_proofs_verify_against_the_head_and_tampered_ones_fail() {
    let built = build("receipts", 11, 40, 10);
    let head = built.head();
    let (tick, envelope) = built
        .inputs
        .iter()
        .enumerate()
        .find_map(|(t, inputs)| inputs.get(1).map(|e| (t as u64 + 1, e.clone())))
        .expect("bots sent inputs");
    let by_hash = proven(&built, ProofQuery::Receipt(envelope.hash()));
    assert_eq!(by_hash.head, head);
    let proof = by_hash.proof.clone().unwrap();
    assert_eq!(proof.roots, built.roots[tick as usize]);
    assert_eq!(proof.verify(&by_hash.head_root), Ok(head.tick));
    let Claim::Receipt { index, receipt, .. } = &proof.claim else {
        panic!("a receipt claim")
    };
    assert_eq!(
        (*index, receipt.subject, receipt.kind),
        (1, envelope.hash(), ReceiptKind::Input)
    );
    let round = PlayerProof::decode(&proof.encode()).unwrap();
    assert_eq!(round, proof);
    tampering_fails(&proof, &by_hash.head_root);
    // The same receipt by tick and index; the tick hook's receipt too.
    let by_index = proven(&built, ProofQuery::TickReceipt { tick, index: 1 });
    assert_eq!(by_index.proof, by_hash.proof);
    let hook = built.inputs[29].len() as u32;
    let hook = proven(
        &built,
        ProofQuery::TickReceipt {
            tick: 30,
            index: hook,
        },
    );
    let hook_proof = hook.proof.unwrap();
    hook_proof.verify(&hook.head_root).unwrap();
    // The head commitment is what a bundle ending at the head reports.
    let exported = export_window(&built, 30, 40);
    assert_eq!(exported.accumulator_root, by_hash.head_root);
    // Another head root: refused.
    let earlier = export_window(&built, 20, 39).accumulator_root;
    assert!(matches!(
        proof.verify(&earlier),
        Err(PlayerProofError::Invalid { .. })
    ));
    // A receipt of another tick under these roots: refused.
    let Claim::Receipt {
        receipt: hook_receipt,
        ..
    } = hook_proof.claim.clone()
    else {
        panic!()
    };
    let mut swapped = proof.clone();
    if let Claim::Receipt { receipt, .. } = &mut swapped.claim {
        *receipt = hook_receipt;
    }
    assert!(swapped.verify(&by_hash.head_root).is_err());
}

#[test]
fn state_proofs_verify_at_the_head_and_tampered_ones_fail() {
    let built = build("state", 12, 25, 10);
    // A player key of the arena: "K" + bot-0's public key (see the package's README).
    let bot = everarcade_protocol::test_signing_key("bot-0")
        .verifying_key()
        .to_bytes();
    let mut key = b"K".to_vec();
    key.extend_from_slice(&bot);
    for key in [key, b"no-such-key".to_vec()] {
        let state = proven(&built, ProofQuery::Key(key.clone()));
        let proof = state.proof.clone().unwrap();
        assert_eq!(proof.roots, built.head());
        assert_eq!(proof.verify(&state.head_root), Ok(25));
        tampering_fails(&proof, &state.head_root);
        // The claim flipped (present ↔ absent, or another value) fails.
        let mut lie = proof.clone();
        if let Claim::State { value, .. } = &mut lie.claim {
            *value = match value {
                Some(_) => None,
                None => Some(b"1".to_vec()),
            };
        }
        assert!(lie.verify(&state.head_root).is_err());
    }
    // A state proof of a tick that is not the head is refused.
    let head = proven(&built, ProofQuery::Head);
    assert!(head.proof.is_none());
    let receipt = proven(&built, ProofQuery::TickReceipt { tick: 3, index: 0 });
    let mut stale = receipt.proof.unwrap();
    stale.claim = proven(&built, ProofQuery::Key(b"x".to_vec()))
        .proof
        .unwrap()
        .claim;
    let error = stale.verify(&head.head_root).unwrap_err();
    assert!(error.to_string().contains("head tick"), "{error}");
}

#[test]
fn missing_receipts_and_ticks_are_usage_errors() {
    let built = build("missing", 13, 5, 0);
    let fixture = fixture();
    let request = ProveRequest {
        storage: &DiskStorage,
        dir: &built.dir,
        id: &world_id(),
        engine: &fixture.engine,
        compiled: fixture.compiled.clone(),
    };
    for query in [
        ProofQuery::Receipt(Hash([9; 32])),
        ProofQuery::TickReceipt { tick: 6, index: 0 },
        ProofQuery::TickReceipt {
            tick: 2,
            index: 1000,
        },
    ] {
        let error = prove(&request, &query).unwrap_err();
        assert_eq!(error.class(), everarcade_audit::Class::Usage, "{error}");
    }
}

#[test]
fn random_proof_bytes_never_panic() {
    let built = build("proof-fuzz", 14, 12, 0);
    let receipt = proven(&built, ProofQuery::TickReceipt { tick: 5, index: 0 });
    let state = proven(&built, ProofQuery::Key(b"K".to_vec()));
    let head_root = receipt.head_root;
    let mut rng = crate::common::Rng(14);
    for proof in [receipt.proof.unwrap(), state.proof.unwrap()] {
        let bytes = proof.encode();
        for _ in 0..3000 {
            let mut mutated = bytes.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(mutated.len() as u64) as usize;
                mutated[at] = rng.next_u64() as u8;
            }
            if rng.below(3) == 0 {
                mutated.truncate(rng.below(mutated.len() as u64) as usize);
            }
            if let Ok(decoded) = PlayerProof::decode(&mutated) {
                // Whatever decodes re-encodes to the same bytes, and verifies
                // only if it is the original proof.
                assert_eq!(decoded.encode(), mutated);
                if decoded.verify(&head_root).is_ok() {
                    assert_eq!(mutated, bytes);
                }
            }
        }
    }
    for length in [0usize, 1, 8, 11, 64, 300_000] {
        let noise: Vec<u8> = (0..length).map(|_| rng.next_u64() as u8).collect();
        assert!(PlayerProof::decode(&noise).is_err());
    }
}
