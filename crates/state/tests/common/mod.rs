//! Helpers shared by the integration tests: the hashing rule of the crate
//! docs applied naively, independent of the crate's trie.

#![allow(dead_code)]

use std::collections::BTreeMap;

use everarcade_protocol::{Domain, Hash};
use everarcade_state::State;

/// Contents as the model holds them.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Bit `index` of `hash`, most significant bit of byte 0 first.
pub fn bit(hash: &Hash, index: usize) -> u8 {
    (hash.0[index / 8] >> (7 - index % 8)) & 1
}

/// `S(depth, leaves)` straight from the definition.
fn subtree(leaves: &[(Hash, Hash)], depth: usize) -> Hash {
    match leaves {
        [] => Domain::StateEmpty.hash(b""),
        [(key_hash, value_hash)] => Domain::StateLeaf.hash_pair(key_hash, value_hash),
        _ => {
            let (left, right): (Vec<_>, Vec<_>) = leaves
                .iter()
                .partition(|(key_hash, _)| bit(key_hash, depth) == 0);
            let left = subtree(&left, depth + 1);
            let right = subtree(&right, depth + 1);
            Domain::StateNode.hash_pair(&left, &right)
        }
    }
}

/// The state root of `model` computed from the definition.
pub fn reference_root(model: &Model) -> Hash {
    let leaves: Vec<(Hash, Hash)> = model
        .iter()
        .map(|(key, value)| (Domain::StateKey.hash(key), Domain::StateValue.hash(value)))
        .collect();
    subtree(&leaves, 0)
}

/// A fresh store holding `model`, inserted in key order.
pub fn build<'a>(entries: impl IntoIterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>) -> State {
    let mut state = State::new();
    for (key, value) in entries {
        state.set(key, value);
    }
    state
}
