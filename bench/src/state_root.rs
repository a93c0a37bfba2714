//! The state root update of one tick: a [`State`] of `keys` keys, of which
//! each iteration changes `changed_per_iteration` (values of 18 to 64 bytes)
//! and then calls `root()`.
//!
//! Floors, measured in the same run:
//! - (a) raw BLAKE3 (`blake3::keyed_hash`, the protocol's hash) over exactly
//!   the preimages the update hashes: per changed key one value hash and one
//!   64-byte leaf, plus one 64-byte block per trie level with two or more keys
//!   on the changed paths (inner nodes and the single-child levels above them,
//!   see the state crate's hashing rule). That count is computed from the key
//!   hashes by [`hashed_levels`], not guessed;
//! - (b) one `blake3::hash` over the changed keys' and values' bytes
//!   concatenated: what a flat, non-Merkle commitment to the same change would
//!   cost (for transparency: no proofs are possible from it).

use std::collections::HashSet;
use std::ops::Range;
use std::time::Instant;

use everarcade_protocol::{Domain, Hash};
use everarcade_state::State;

use crate::SplitMix64;

/// Distinct change sets cycled through (each is a random choice of keys).
pub const CHANGE_SETS: usize = 64;

/// The shape of the benchmark.
#[derive(Clone, Copy, Debug)]
pub struct StateRootConfig {
    /// Keys in the state.
    pub keys: usize,
    /// Keys changed before each `root()`.
    pub changed_per_iteration: usize,
    /// Iterations in one timed round (a multiple of [`CHANGE_SETS`], so every
    /// round hashes the same work).
    pub iterations_per_round: usize,
    /// Rounds; the update and the floors take turns, and each figure is the
    /// fastest of its rounds, so other load on the machine hits all alike.
    pub rounds: usize,
    /// Shortest value written, in bytes.
    pub value_bytes_min: usize,
    /// Longest value written, in bytes.
    pub value_bytes_max: usize,
}

impl Default for StateRootConfig {
    fn default() -> StateRootConfig {
        StateRootConfig {
            keys: 4_000,
            changed_per_iteration: 256,
            iterations_per_round: 256,
            rounds: 8,
            value_bytes_min: 18,
            value_bytes_max: 64,
        }
    }
}

/// Seconds per iteration of the update and its floors, and the work counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct StateRootReport {
    /// `set` of every changed key, then `root()`.
    pub update_seconds: f64,
    /// Of which `root()` alone.
    pub root_seconds: f64,
    /// Floor (a): raw keyed BLAKE3 over the same preimages.
    pub raw_preimage_seconds: f64,
    /// Floor (b): one BLAKE3 over the changed keys and values.
    pub raw_diff_seconds: f64,
    /// Trie levels hashed per iteration (64-byte node preimages), mean.
    pub node_hashes: f64,
    /// BLAKE3 compressions per iteration (value + leaf + node hashes; every
    /// preimage here is at most 64 bytes, so one compression each).
    pub compressions: f64,
    /// Bytes of changed keys and values per iteration, mean.
    pub diff_bytes: f64,
}

struct ChangeSet {
    /// Indexes of the changed keys.
    keys: Vec<usize>,
    /// Length of each new value.
    lengths: Vec<usize>,
    /// Node hashes `root()` does for this set (see [`hashed_levels`]).
    node_hashes: usize,
}

/// Key `index`: 18 bytes, e.g. `player/00042/state`.
fn key(index: usize) -> Vec<u8> {
    format!("player/{index:05}/state").into_bytes()
}

/// Value of a changed key in iteration `iteration`: the iteration number, so it
/// differs from every earlier value, then a fill pattern.
fn write_value(buffer: &mut [u8], iteration: u64, key_index: usize) {
    let head = iteration.to_le_bytes();
    let fill = key_index as u8;
    for (index, byte) in buffer.iter_mut().enumerate() {
        *byte = if index < 8 {
            head[index]
        } else {
            fill ^ index as u8
        };
    }
}

/// Counts the trie levels `root()` rehashes after `changed` of `all` key
/// hashes change value: the levels `d` with two or more keys sharing the
/// changed key's first `d` bits, one 64-byte hash each (a branching node, or a
/// single-child level hashed against `EMPTY`), counted once per distinct prefix.
pub fn hashed_levels(all_sorted: &[Hash], changed: &[Hash]) -> usize {
    let mut levels: HashSet<(u16, [u8; 32])> = HashSet::new();
    for key_hash in changed {
        let position = all_sorted
            .binary_search(key_hash)
            .expect("a changed key is in the state");
        let neighbours = [position.checked_sub(1), Some(position + 1)];
        let shared = neighbours
            .into_iter()
            .flatten()
            .filter_map(|index| all_sorted.get(index))
            .map(|other| common_prefix_bits(key_hash, other))
            .max();
        let Some(shared) = shared else { continue };
        for depth in 0..=shared {
            levels.insert((depth, prefix(key_hash, depth)));
        }
    }
    levels.len()
}

fn common_prefix_bits(a: &Hash, b: &Hash) -> u16 {
    for (index, (x, y)) in a.0.iter().zip(b.0.iter()).enumerate() {
        if x != y {
            return index as u16 * 8 + (x ^ y).leading_zeros() as u16;
        }
    }
    256
}

/// The first `bits` bits of `hash`, the rest zero.
fn prefix(hash: &Hash, bits: u16) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bits = usize::from(bits);
    out[..bits / 8].copy_from_slice(&hash.0[..bits / 8]);
    if bits % 8 != 0 {
        out[bits / 8] = hash.0[bits / 8] & (0xFFu8 << (8 - bits % 8));
    }
    out
}

/// Runs the update and both floors.
pub fn run(config: &StateRootConfig) -> StateRootReport {
    assert!(config.changed_per_iteration <= config.keys);
    assert!(config.value_bytes_min >= 8 && config.value_bytes_min <= config.value_bytes_max);
    // Every preimage must stay one BLAKE3 block for the compression count.
    assert!(config.value_bytes_max <= 64);
    let keys: Vec<Vec<u8>> = (0..config.keys).map(key).collect();
    let key_hashes: Vec<Hash> = keys.iter().map(|key| Domain::StateKey.hash(key)).collect();
    let mut sorted = key_hashes.clone();
    sorted.sort();
    let sets = change_sets(config, &key_hashes, &sorted);

    let mut state = State::new();
    let mut buffer = [0u8; 64];
    let mut random = SplitMix64(7);
    for (index, key) in keys.iter().enumerate() {
        let length = config.value_bytes_min
            + random.below((config.value_bytes_max - config.value_bytes_min + 1) as u64) as usize;
        write_value(&mut buffer[..length], 0, index);
        state.set(key, &buffer[..length]);
    }
    state.root();

    let per_round = config.iterations_per_round;
    assert!(per_round > 0 && per_round.is_multiple_of(CHANGE_SETS) && config.rounds > 0);
    let buffers = diff_buffers(&keys, &sets);
    let mut best = [f64::INFINITY; 4];
    for round in 0..config.rounds {
        let iterations = round * per_round..(round + 1) * per_round;
        let (update, root) = time_update(&mut state, &keys, &sets, iterations.clone());
        let raw = time_raw_preimages(&key_hashes, &sets, iterations.clone());
        let diff = time_raw_diff(&buffers, iterations);
        for (best, seconds) in best.iter_mut().zip([update, root, raw, diff]) {
            *best = best.min(seconds / per_round as f64);
        }
    }
    let node_hashes: usize = sets.iter().map(|set| set.node_hashes).sum();
    let node_hashes = node_hashes as f64 / sets.len() as f64;
    let diff_bytes: usize = buffers.iter().map(Vec::len).sum();
    StateRootReport {
        update_seconds: best[0],
        root_seconds: best[1],
        raw_preimage_seconds: best[2],
        raw_diff_seconds: best[3],
        node_hashes,
        compressions: node_hashes + 2.0 * config.changed_per_iteration as f64,
        diff_bytes: diff_bytes as f64 / buffers.len() as f64,
    }
}

fn change_sets(config: &StateRootConfig, key_hashes: &[Hash], sorted: &[Hash]) -> Vec<ChangeSet> {
    let mut random = SplitMix64(42);
    let span = (config.value_bytes_max - config.value_bytes_min + 1) as u64;
    (0..CHANGE_SETS)
        .map(|_| {
            let mut chosen = HashSet::new();
            while chosen.len() < config.changed_per_iteration {
                chosen.insert(random.below(config.keys as u64) as usize);
            }
            let mut keys: Vec<usize> = chosen.into_iter().collect();
            keys.sort_unstable();
            let lengths = keys
                .iter()
                .map(|_| config.value_bytes_min + random.below(span) as usize)
                .collect();
            let changed: Vec<Hash> = keys.iter().map(|&index| key_hashes[index]).collect();
            let node_hashes = hashed_levels(sorted, &changed);
            ChangeSet {
                keys,
                lengths,
                node_hashes,
            }
        })
        .collect()
}

/// Times `set` on a change set then `root()` for each of `iterations`;
/// returns (total seconds, seconds in `root()`).
fn time_update(
    state: &mut State,
    keys: &[Vec<u8>],
    sets: &[ChangeSet],
    iterations: Range<usize>,
) -> (f64, f64) {
    let mut buffer = [0u8; 64];
    let mut root_seconds = 0.0;
    let start = Instant::now();
    for iteration in iterations.clone() {
        let set = &sets[iteration % sets.len()];
        for (&index, &length) in set.keys.iter().zip(&set.lengths) {
            write_value(&mut buffer[..length], iteration as u64 + 1, index);
            state.set(&keys[index], &buffer[..length]);
        }
        let root_start = Instant::now();
        std::hint::black_box(state.root());
        root_seconds += root_start.elapsed().as_secs_f64();
    }
    (start.elapsed().as_secs_f64(), root_seconds)
}

/// Floor (a): the same value, leaf and node preimages, hashed with no trie.
fn time_raw_preimages(key_hashes: &[Hash], sets: &[ChangeSet], iterations: Range<usize>) -> f64 {
    let (value_key, leaf_key, node_key) = (
        Domain::StateValue.key(),
        Domain::StateLeaf.key(),
        Domain::StateNode.key(),
    );
    let mut buffer = [0u8; 64];
    let mut block = [0u8; 64];
    let mut carry = [0u8; 32];
    let start = Instant::now();
    for iteration in iterations.clone() {
        let set = &sets[iteration % sets.len()];
        for (&index, &length) in set.keys.iter().zip(&set.lengths) {
            write_value(&mut buffer[..length], iteration as u64 + 1, index);
            let value_hash = blake3::keyed_hash(value_key, &buffer[..length]);
            block[..32].copy_from_slice(&key_hashes[index].0);
            block[32..].copy_from_slice(value_hash.as_bytes());
            carry = *blake3::keyed_hash(leaf_key, &block).as_bytes();
        }
        // Each node hash consumes the previous one, as the trie's bottom-up pass does.
        for _ in 0..set.node_hashes {
            block[..32].copy_from_slice(&carry);
            carry = *blake3::keyed_hash(node_key, &block).as_bytes();
        }
        std::hint::black_box(&carry);
    }
    start.elapsed().as_secs_f64()
}

/// The changed keys and values of each set, concatenated (for floor (b)).
fn diff_buffers(keys: &[Vec<u8>], sets: &[ChangeSet]) -> Vec<Vec<u8>> {
    let buffer = |set: &ChangeSet| {
        let mut bytes = Vec::new();
        let mut value = [0u8; 64];
        for (&index, &length) in set.keys.iter().zip(&set.lengths) {
            write_value(&mut value[..length], 1, index);
            bytes.extend_from_slice(&keys[index]);
            bytes.extend_from_slice(&value[..length]);
        }
        bytes
    };
    sets.iter().map(buffer).collect()
}

/// Floor (b): one BLAKE3 over the concatenated changed keys and values.
fn time_raw_diff(buffers: &[Vec<u8>], iterations: Range<usize>) -> f64 {
    let start = Instant::now();
    for iteration in iterations {
        let bytes = &buffers[iteration % buffers.len()];
        std::hint::black_box(blake3::hash(std::hint::black_box(bytes)));
    }
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashing rule walked naively: the subtrees at depth `depth` with two
    /// or more keys, at least one of them changed (each costs one hash).
    fn reference(keys: &[(Hash, bool)], depth: u16) -> usize {
        if keys.len() < 2 || !keys.iter().any(|(_, changed)| *changed) {
            return 0;
        }
        let bit = |hash: &Hash| (hash.0[usize::from(depth) / 8] >> (7 - depth % 8)) & 1;
        let (left, right): (Vec<_>, Vec<_>) = keys.iter().partition(|(hash, _)| bit(hash) == 0);
        1 + reference(&left, depth + 1) + reference(&right, depth + 1)
    }

    #[test]
    fn hashed_levels_follow_the_hashing_rule() {
        let mut random = SplitMix64(3);
        for (count, changed_count) in [(2, 1), (3, 2), (50, 7), (400, 64), (400, 400)] {
            let all: Vec<Hash> = (0..count).map(|i| Domain::StateKey.hash(&key(i))).collect();
            let mut chosen = HashSet::new();
            while chosen.len() < changed_count {
                chosen.insert(random.below(count as u64) as usize);
            }
            let changed: Vec<Hash> = chosen.iter().map(|&i| all[i]).collect();
            let marked: Vec<(Hash, bool)> = all
                .iter()
                .enumerate()
                .map(|(i, h)| (*h, chosen.contains(&i)))
                .collect();
            let mut sorted = all.clone();
            sorted.sort();
            assert_eq!(
                hashed_levels(&sorted, &changed),
                reference(&marked, 0),
                "{count} keys, {changed_count} changed"
            );
        }
    }
}
