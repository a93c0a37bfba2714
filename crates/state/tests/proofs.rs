//! Membership and absence proofs: honest proofs verify, every tampering is
//! rejected, and the encoding round-trips and never panics on bad bytes.

mod common;

use common::{bit, build};
use everarcade_protocol::{Domain, Hash};
use everarcade_state::{Proof, ProofError, State, Terminal};
use proptest::prelude::*;

fn contents() -> impl Strategy<Value = std::collections::BTreeMap<Vec<u8>, Vec<u8>>> {
    proptest::collection::btree_map(
        proptest::collection::vec(any::<u8>(), 1..6),
        proptest::collection::vec(any::<u8>(), 0..20),
        0..60,
    )
}

/// Every way of damaging `proof` that must make it fail to verify the claim.
fn tamperings(proof: &Proof, seed: usize) -> Vec<Proof> {
    let mut out = Vec::new();
    if !proof.siblings.is_empty() {
        let mut flipped = proof.clone();
        let index = seed % flipped.siblings.len();
        flipped.siblings[index].0[seed % 32] ^= 1 << (seed % 8);
        out.push(flipped);
        let mut shorter = proof.clone();
        shorter.siblings.remove(0);
        out.push(shorter);
    }
    let mut longer = proof.clone();
    longer.siblings.push(Domain::StateEmpty.hash(b""));
    out.push(longer);
    let mut other = proof.clone();
    other.terminal = match proof.terminal {
        Terminal::Empty => Terminal::Leaf {
            key_hash: Hash::ZERO,
            value_hash: Hash::ZERO,
        },
        Terminal::Leaf {
            key_hash,
            mut value_hash,
        } => {
            value_hash.0[seed % 32] ^= 0x80;
            out.push(Proof {
                siblings: proof.siblings.clone(),
                terminal: Terminal::Empty,
            });
            Terminal::Leaf {
                key_hash,
                value_hash,
            }
        }
    };
    out.push(other);
    out
}

proptest! {
    #[test]
    fn honest_proofs_verify_and_wrong_claims_fail(
        contents in contents(),
        absent in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..6), 0..20),
    ) {
        let mut state = build(contents.iter());
        let root = state.root();
        for (key, value) in &contents {
            let proof = state.prove(key);
            prop_assert_eq!(proof.verify(&root, key, Some(value)), Ok(()));
            prop_assert_eq!(proof.verify(&root, key, None), Err(ProofError::KeyPresent));
            let mut other = value.clone();
            other.push(0);
            let wrong = proof.verify(&root, key, Some(&other));
            prop_assert!(matches!(wrong, Err(ProofError::WrongValue { .. })), "{:?}", wrong);
        }
        for key in absent.iter().filter(|key| !contents.contains_key(*key)) {
            let proof = state.prove(key);
            prop_assert_eq!(proof.verify(&root, key, None), Ok(()));
            prop_assert_eq!(proof.verify(&root, key, Some(b"x")), Err(ProofError::KeyAbsent));
        }
    }

    #[test]
    fn tampered_proofs_and_wrong_roots_fail(
        contents in contents(),
        probe in proptest::collection::vec(any::<u8>(), 1..6),
        seed in any::<usize>(),
    ) {
        let mut state = build(contents.iter());
        let root = state.root();
        let value = contents.get(&probe).map(Vec::as_slice);
        let proof = state.prove(&probe);
        prop_assert_eq!(proof.verify(&root, &probe, value), Ok(()));
        for tampered in tamperings(&proof, seed) {
            prop_assert!(tampered.verify(&root, &probe, value).is_err(), "{:?}", tampered);
        }
        let mut wrong_root = root;
        wrong_root.0[seed % 32] ^= 1;
        let result = proof.verify(&wrong_root, &probe, value);
        prop_assert!(matches!(result, Err(ProofError::RootMismatch { .. })), "{:?}", result);
        // A proof is only good for the state it was made from.
        state.set(&probe, b"changed value");
        let changed = state.root();
        prop_assert!(proof.verify(&changed, &probe, value).is_err());
    }

    #[test]
    fn encoding_round_trips_and_truncation_fails(
        contents in contents(),
        probe in proptest::collection::vec(any::<u8>(), 1..6),
    ) {
        let mut state = build(contents.iter());
        let proof = state.prove(&probe);
        let bytes = proof.encode();
        let leaf = matches!(proof.terminal, Terminal::Leaf { .. });
        prop_assert_eq!(bytes.len(), 2 + 32 * proof.siblings.len() + 1 + if leaf { 64 } else { 0 });
        prop_assert_eq!(Proof::decode(&bytes), Ok(proof));
        for cut in 0..bytes.len() {
            let result = Proof::decode(&bytes[..cut]);
            prop_assert!(matches!(result, Err(ProofError::Truncated { .. })), "{:?}", result);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(Proof::decode(&longer), Err(ProofError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        depth in 0u16..4,
    ) {
        // Raw bytes rarely get past the depth field; also try with a small depth.
        let _ = Proof::decode(&bytes);
        let mut framed = depth.to_le_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        if let Ok(proof) = Proof::decode(&framed) {
            prop_assert_eq!(proof.encode(), framed);
        }
    }
}

#[test]
fn decoding_rejects_malformed_encodings() {
    let mut too_deep = 257u16.to_le_bytes().to_vec();
    too_deep.extend_from_slice(&[0; 257 * 32 + 1]);
    assert_eq!(
        Proof::decode(&too_deep),
        Err(ProofError::TooDeep { depth: 257 })
    );
    assert_eq!(
        Proof::decode(&[0, 0, 2]),
        Err(ProofError::UnknownTerminalTag { tag: 2 })
    );
    assert_eq!(
        Proof::decode(&[0, 0, 0, 0]),
        Err(ProofError::TrailingBytes { count: 1 })
    );
    assert_eq!(
        Proof::decode(&[1, 0, 0]),
        Err(ProofError::Truncated {
            offset: 2,
            needed: 32,
            available: 1
        })
    );
    assert_eq!(
        Proof::decode(&[0, 0, 1, 5]),
        Err(ProofError::Truncated {
            offset: 3,
            needed: 32,
            available: 1
        })
    );
    assert_eq!(
        Proof::decode(&[]),
        Err(ProofError::Truncated {
            offset: 0,
            needed: 2,
            available: 0
        })
    );
    let empty = Proof {
        siblings: Vec::new(),
        terminal: Terminal::Empty,
    };
    assert_eq!(Proof::decode(&[0, 0, 0]), Ok(empty));
}

#[test]
fn proofs_in_tiny_stores() {
    let mut state = State::new();
    let proof = state.prove(b"a");
    assert_eq!(
        proof,
        Proof {
            siblings: Vec::new(),
            terminal: Terminal::Empty
        }
    );
    assert_eq!(proof.verify(&state.root(), b"a", None), Ok(()));
    assert_eq!(
        proof.verify(&state.root(), b"a", Some(b"1")),
        Err(ProofError::KeyAbsent)
    );

    // One key: the root is its leaf, so every proof has depth 0 and an
    // absent key is proven absent by the one leaf that is there.
    state.set(b"a", b"1");
    let root = state.root();
    let member = state.prove(b"a");
    assert!(member.siblings.is_empty());
    assert_eq!(member.verify(&root, b"a", Some(b"1")), Ok(()));
    let absent = state.prove(b"b");
    assert_eq!(absent, member);
    assert_eq!(absent.verify(&root, b"b", None), Ok(()));
}

#[test]
fn proofs_over_too_many_siblings_are_rejected() {
    let proof = Proof {
        siblings: vec![Hash::ZERO; 257],
        terminal: Terminal::Empty,
    };
    assert_eq!(
        proof.verify(&Hash::ZERO, b"a", None),
        Err(ProofError::TooDeep { depth: 257 })
    );
}

/// A leaf that folds to the root but sits on another path must not prove
/// absence. Only a forged tree can fold that way: here both children of the
/// root are the same leaf, so the order of the pair does not matter.
#[test]
fn an_off_path_leaf_does_not_prove_absence() {
    let leaf_key_hash = Domain::StateKey.hash(b"a");
    let value_hash = Domain::StateValue.hash(b"1");
    let leaf = Domain::StateLeaf.hash_pair(&leaf_key_hash, &value_hash);
    let forged_root = Domain::StateNode.hash_pair(&leaf, &leaf);
    let other = (0u8..=255)
        .map(|i| vec![i])
        .find(|key| bit(&Domain::StateKey.hash(key), 0) != bit(&leaf_key_hash, 0))
        .expect("half of all keys differ in bit 0");
    let proof = Proof {
        siblings: vec![leaf],
        terminal: Terminal::Leaf {
            key_hash: leaf_key_hash,
            value_hash,
        },
    };
    assert_eq!(proof.verify(&forged_root, b"a", Some(b"1")), Ok(()));
    assert_eq!(
        proof.verify(&forged_root, &other, None),
        Err(ProofError::OffPath { depth: 1 })
    );
}

#[test]
fn proof_errors_read_well() {
    let error = ProofError::TooDeep { depth: 300 };
    assert_eq!(error.to_string(), "proof depth 300 exceeds 256");
}
