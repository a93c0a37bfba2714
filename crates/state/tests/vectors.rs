//! Fixed vectors: the root rule checked against hashes built by hand with
//! `Domain` calls, and the hex values quoted in docs/PROTOCOL.md.

mod common;

use common::bit;
use everarcade_protocol::{Domain, Hash};
use everarcade_state::{Proof, State, Terminal};

/// The root of {"alpha" → "1", "beta" → "2", "gamma" → "3"}.
const ALPHA_BETA_GAMMA_ROOT: &str =
    "a8cec6b26d1ba814fa0d661858e779c3dd2c247a4dc4e370d0dee3b459b564ec";

/// The encoded proof for "beta" in that store (which also proves "delta" absent).
const BETA_PROOF: &str = concat!(
    "0100",
    "1d92fd7c35e36636b6ed812d5eac8713e618fb33b6338b6f6448ba3e212a62b4",
    "01",
    "ab75c2758f0a1f2e818b3f96d633482503f9fddaaefe6676fc3f53907cc75ab6",
    "09faa0620255d1650ab6048ddfdcbcd28e667340059120a1cf594ce90665a193",
);

fn leaf(key: &[u8], value: &[u8]) -> Hash {
    Domain::StateLeaf.hash_pair(&Domain::StateKey.hash(key), &Domain::StateValue.hash(value))
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Domain::StateNode.hash_pair(left, right)
}

/// The first `count` bits of `key`'s key hash, as '0'/'1' characters.
fn bits(key: &[u8], count: usize) -> String {
    let hash = Domain::StateKey.hash(key);
    (0..count)
        .map(|i| char::from(b'0' + bit(&hash, i)))
        .collect()
}

fn store(entries: &[(&[u8], &[u8])]) -> State {
    let mut state = State::new();
    for (key, value) in entries {
        state.set(key, value);
    }
    state
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn empty_store_root_is_the_empty_hash() {
    let empty = Domain::StateEmpty.hash(b"");
    assert_eq!(State::new().root(), empty);
    assert_eq!(
        empty.to_hex(),
        "1f388647f225b598a1cfeb29ddbd014628b67e1da91e47db6ddab375191d043f"
    );
    // Deleting the last key returns to it.
    let mut state = store(&[(b"a", b"1")]);
    state.delete(b"a");
    assert_eq!(state.root(), empty);
}

#[test]
fn one_key_root_is_its_leaf_hash() {
    let root = store(&[(b"a", b"1")]).root();
    assert_eq!(root, leaf(b"a", b"1"));
    assert_eq!(
        root.to_hex(),
        "7f3a22619d40e6b51e8118baee87cc42a571f336cada51d5aa24a5e9f72fabac"
    );
}

#[test]
fn three_key_root_matches_the_rule_by_hand() {
    // The construction below relies on these bit patterns: at depth 0 alpha
    // and gamma go left and beta right; at depth 1 alpha goes left, gamma right.
    assert_eq!(bits(b"alpha", 2), "00");
    assert_eq!(bits(b"gamma", 2), "01");
    assert_eq!(bits(b"beta", 1), "1");
    let left = node(&leaf(b"alpha", b"1"), &leaf(b"gamma", b"3"));
    let expected = node(&left, &leaf(b"beta", b"2"));
    let mut state = store(&[(b"gamma", b"3"), (b"alpha", b"1"), (b"beta", b"2")]);
    let root = state.root();
    assert_eq!(root, expected);
    println!("root of {{alpha: 1, beta: 2, gamma: 3}} = {root}");
    assert_eq!(root.to_hex(), ALPHA_BETA_GAMMA_ROOT);
}

#[test]
fn shared_prefix_levels_are_hashed_against_empty() {
    // "alpha" and "a" share their first two bits (00) and split at bit 2, so
    // the two levels above the split each pair the subtree with EMPTY.
    assert_eq!(bits(b"alpha", 3), "000");
    assert_eq!(bits(b"a", 3), "001");
    let empty = Domain::StateEmpty.hash(b"");
    let split = node(&leaf(b"alpha", b"1"), &leaf(b"a", b"2"));
    let expected = node(&node(&split, &empty), &empty);
    assert_eq!(store(&[(b"alpha", b"1"), (b"a", b"2")]).root(), expected);
}

#[test]
fn beta_proof_vector() {
    let mut state = store(&[(b"alpha", b"1"), (b"beta", b"2"), (b"gamma", b"3")]);
    let root = state.root();
    let proof = state.prove(b"beta");
    let expected = Proof {
        siblings: vec![node(&leaf(b"alpha", b"1"), &leaf(b"gamma", b"3"))],
        terminal: Terminal::Leaf {
            key_hash: Domain::StateKey.hash(b"beta"),
            value_hash: Domain::StateValue.hash(b"2"),
        },
    };
    assert_eq!(proof, expected);
    println!("proof of beta = {}", hex(&proof.encode()));
    assert_eq!(hex(&proof.encode()), BETA_PROOF);
    assert_eq!(proof.verify(&root, b"beta", Some(b"2")), Ok(()));
    // "delta" hashes to the right of bit 0 too, so beta's leaf proves it absent.
    assert_eq!(bits(b"delta", 1), "1");
    assert_eq!(state.prove(b"delta"), proof);
    assert_eq!(proof.verify(&root, b"delta", None), Ok(()));
}
