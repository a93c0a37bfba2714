//! Building a whole [`State`] at once from entries in key order (a loaded
//! checkpoint), instead of one [`State::set`] per key and an incremental trie
//! fold.
//!
//! [`StateBuilder::finish`] hashes every key, value and leaf once (split over
//! threads), sorts the leaves by key hash with one counting pass on the top
//! bits (key hashes are uniform) and a sort of each small bucket, builds the
//! trie bottom-up in one pass ([`Trie::from_sorted`]), and bulk-loads the
//! slots and their indexes. The result is the same `State`, root included, as inserting
//! the entries one by one: the root depends only on the contents.

use std::num::NonZeroUsize;

use everarcade_protocol::Domain;

use crate::bytes::{Key, Value};
use crate::error::BuildError;
use crate::store::{Entry, Slots, State};
use crate::trie::{Leaf, Trie};

/// States of fewer entries are built on one thread: below this, starting a
/// thread costs more than it saves.
const PARALLEL_ENTRIES_MIN: usize = 1 << 15;

/// Most threads a build uses, whatever the machine has.
const BUILD_THREADS_MAX: usize = 8;

/// Most top bits of the key hash the leaf sort buckets by: 65,536 buckets,
/// whose counters stay in cache. Fewer for small states, about one leaf per
/// bucket.
const SORT_BUCKET_BITS_MAX: u32 = 16;

/// Builds a [`State`] from entries pushed in strictly ascending key order.
///
/// ```
/// # use everarcade_state::{State, StateBuilder};
/// let mut builder = StateBuilder::new();
/// builder.push(b"a", b"1").unwrap();
/// builder.push(b"b", b"2").unwrap();
/// assert!(builder.push(b"b", b"3").is_err());
/// let mut built = builder.finish();
/// let mut inserted = State::new();
/// inserted.set(b"b", b"2");
/// inserted.set(b"a", b"1");
/// assert_eq!(built.root(), inserted.root());
/// ```
#[derive(Default)]
pub struct StateBuilder {
    /// Entries in ascending key order; key hashes are filled in by `finish`.
    entries: Vec<(Key, Entry)>,
    /// Sum of key and value lengths.
    value_bytes: u64,
}

impl StateBuilder {
    /// An empty builder.
    pub fn new() -> StateBuilder {
        StateBuilder::default()
    }

    /// An empty builder with room for `entries` entries. The caller bounds
    /// `entries` by what it can really hold (e.g. the bytes left to decode).
    pub fn with_capacity(entries: usize) -> StateBuilder {
        StateBuilder {
            entries: Vec::with_capacity(entries),
            value_bytes: 0,
        }
    }

    /// Appends an entry; `key` must sort strictly after the previous key
    /// (bytewise), else nothing is added.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), BuildError> {
        if let Some((last, _)) = self.entries.last()
            && last.as_slice() >= key
        {
            return Err(BuildError::NotAscending {
                index: self.entries.len(),
            });
        }
        let entry = Entry::folded(Value::new(value), everarcade_protocol::Hash::ZERO);
        self.entries.push((Key::new(key), entry));
        self.value_bytes += (key.len() + value.len()) as u64;
        Ok(())
    }

    /// Number of entries pushed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state holding the pushed entries, its trie built and hashed: the
    /// next [`State::root`] costs nothing. Large states are hashed on up to
    /// [`std::thread::available_parallelism`] threads (at most 8).
    pub fn finish(self) -> State {
        let threads = build_threads(self.entries.len());
        self.finish_on(threads)
    }

    /// [`finish`](Self::finish) on `threads` threads (tests compare counts).
    pub(crate) fn finish_on(self, threads: usize) -> State {
        let StateBuilder {
            mut entries,
            value_bytes,
        } = self;
        let chunks = hash_entries(&mut entries, threads);
        let leaves = sort_by_key_hash(chunks);
        let (entries, trie) = build_slots_and_trie(entries, leaves, threads);
        State::from_parts(entries, trie, value_bytes)
    }
}

impl State {
    /// The state holding `entries`, given in strictly ascending key order;
    /// the same state as inserting them one by one, built much faster (see
    /// [`StateBuilder`]).
    pub fn from_sorted<'a>(
        entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<State, BuildError> {
        let mut builder = StateBuilder::new();
        for (key, value) in entries {
            builder.push(key, value)?;
        }
        Ok(builder.finish())
    }
}

/// The slots of `entries` (ascending, key hashes filled in) with their
/// ordered map and key index, and the trie of `leaves` (sorted by key hash).
/// They do not depend on each other, so with two threads or more the slots
/// are indexed beside the trie.
fn build_slots_and_trie(
    entries: Vec<(Key, Entry)>,
    leaves: Vec<Leaf>,
    threads: usize,
) -> (Slots, Trie) {
    let map = Slots::from_sorted;
    if threads < 2 {
        return (map(entries), Trie::from_sorted(leaves, 1));
    }
    std::thread::scope(|scope| {
        let entries = scope.spawn(move || map(entries));
        let trie = Trie::from_sorted(leaves, threads - 1);
        let entries = entries
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (entries, trie)
    })
}

/// Threads to build a state of `entries` entries with.
fn build_threads(entries: usize) -> usize {
    if entries < PARALLEL_ENTRIES_MIN {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(BUILD_THREADS_MAX)
}

/// Fills in every entry's key hash and returns the leaves, in entry order,
/// in one chunk per thread.
fn hash_entries(entries: &mut [(Key, Entry)], threads: usize) -> Vec<Vec<Leaf>> {
    if threads < 2 || entries.len() < PARALLEL_ENTRIES_MIN {
        return vec![hash_chunk(entries)];
    }
    let chunk_len = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = entries.chunks_mut(chunk_len);
        let own = chunks.next().expect("at least one entry");
        let others: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || hash_chunk(chunk)))
            .collect();
        let mut leaves = vec![hash_chunk(own)];
        for other in others {
            let chunk = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            leaves.push(chunk);
        }
        leaves
    })
}

/// Three hashes per entry: key, value, leaf.
fn hash_chunk(entries: &mut [(Key, Entry)]) -> Vec<Leaf> {
    entries
        .iter_mut()
        .map(|(key, entry)| {
            entry.key_hash = Domain::StateKey.hash(key.as_slice());
            Leaf::new(
                entry.key_hash,
                Domain::StateValue.hash(entry.value.as_slice()),
            )
        })
        .collect()
}

/// All leaves of `chunks`, sorted by key hash. Distinct keys are assumed never
/// to share a key hash (crate docs); should two do, the later one's leaf is
/// kept, as inserting them in key order would.
fn sort_by_key_hash(chunks: Vec<Vec<Leaf>>) -> Vec<Leaf> {
    let total: usize = chunks.iter().map(Vec::len).sum();
    let bits = (usize::BITS - total.leading_zeros()).clamp(1, SORT_BUCKET_BITS_MAX);
    let bucket = |leaf: &Leaf| (top_bits(leaf) >> (u64::BITS - bits)) as usize;
    // starts[b]..starts[b + 1] will hold bucket b.
    let mut starts = vec![0usize; (1 << bits) + 1];
    for leaf in chunks.iter().flatten() {
        starts[bucket(leaf) + 1] += 1;
    }
    for index in 1..starts.len() {
        starts[index] += starts[index - 1];
    }
    let mut sorted = vec![Leaf::UNSET; total];
    let mut next = starts.clone();
    for leaf in chunks.into_iter().flatten() {
        let slot = &mut next[bucket(&leaf)];
        sorted[*slot] = leaf;
        *slot += 1;
    }
    // Buckets hold a leaf or two: insertion sorts, comparing the first eight
    // bytes as an integer before the rest. Stable, so that equal key hashes
    // stay in entry order.
    let mut duplicates = false;
    for bounds in starts.windows(2) {
        let bucket = &mut sorted[bounds[0]..bounds[1]];
        bucket.sort_by(|a, b| {
            top_bits(a)
                .cmp(&top_bits(b))
                .then_with(|| a.key_hash.cmp(&b.key_hash))
        });
        duplicates |= bucket.windows(2).any(|w| w[0].key_hash == w[1].key_hash);
    }
    if duplicates {
        sorted.dedup_by(|later, earlier| {
            let same = later.key_hash == earlier.key_hash;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
    }
    sorted
}

/// The first 64 bits of a leaf's key hash.
fn top_bits(leaf: &Leaf) -> u64 {
    let mut top = [0u8; 8];
    top.copy_from_slice(&leaf.key_hash.0[..8]);
    u64::from_be_bytes(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` entries with keys of 1 to 60 bytes (inline and heap) and
    /// values of 0 to 99 bytes, in key order.
    fn entries(count: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = (0..count)
            .map(|i| {
                let key = format!("k{i:x}").repeat(1 + (i % 13) as usize);
                (key.into_bytes(), vec![i as u8; (i % 100) as usize])
            })
            .collect();
        entries.sort();
        entries.dedup_by(|a, b| a.0 == b.0);
        entries
    }

    fn inserted(entries: &[(Vec<u8>, Vec<u8>)]) -> State {
        let mut state = State::new();
        for (key, value) in entries.iter().rev() {
            state.set(key, value);
        }
        state
    }

    #[test]
    fn a_built_state_equals_an_inserted_one_whatever_the_threads() {
        for count in [0, 1, 2, 5, 300, PARALLEL_ENTRIES_MIN as u32 + 1234] {
            let entries = entries(count);
            let mut expected = inserted(&entries);
            let root = expected.root();
            for threads in [1, 2, 3, 8] {
                let mut builder = StateBuilder::with_capacity(entries.len());
                for (key, value) in &entries {
                    builder.push(key, value).unwrap();
                }
                assert_eq!(builder.len(), entries.len());
                let mut built = builder.finish_on(threads);
                assert_eq!(built.root(), root, "{count} entries, {threads} threads");
                assert_eq!(built.len(), expected.len());
                assert_eq!(built.value_bytes(), expected.value_bytes());
                assert!(built.iter().eq(expected.iter()));
            }
        }
    }

    #[test]
    fn a_built_state_takes_writes_like_any_other() {
        let entries = entries(500);
        let mut built = State::from_sorted(
            entries
                .iter()
                .map(|(key, value)| (key.as_slice(), value.as_slice())),
        )
        .unwrap();
        let mut expected = inserted(&entries);
        for (index, (key, _)) in entries.iter().enumerate().step_by(3) {
            for state in [&mut built, &mut expected] {
                if index % 2 == 0 {
                    state.delete(key);
                } else {
                    state.set(key, b"changed");
                }
                state.set(format!("new{index}").as_bytes(), b"v");
            }
        }
        assert_eq!(built.root(), expected.root());
        for (key, _) in entries.iter().take(50) {
            assert_eq!(built.prove(key), expected.prove(key));
        }
    }

    #[test]
    fn keys_out_of_order_are_refused_and_not_added() {
        let mut builder = StateBuilder::new();
        builder.push(b"b", b"1").unwrap();
        assert_eq!(
            builder.push(b"a", b"2"),
            Err(BuildError::NotAscending { index: 1 })
        );
        assert_eq!(
            builder.push(b"b", b"2"),
            Err(BuildError::NotAscending { index: 1 })
        );
        builder.push(b"c", b"3").unwrap();
        let state = builder.finish();
        let contents: Vec<_> = state.iter().collect();
        assert_eq!(contents, [(&b"b"[..], &b"1"[..]), (&b"c"[..], &b"3"[..])]);
        let unsorted = [(&b"b"[..], &b""[..]), (&b"a"[..], &b""[..])];
        assert!(State::from_sorted(unsorted).is_err());
    }

    #[test]
    fn the_leaf_sort_orders_by_key_hash_and_keeps_the_later_duplicate() {
        let leaf = |key: u32, value: u8| {
            Leaf::new(
                Domain::StateKey.hash(&key.to_le_bytes()),
                Domain::StateValue.hash(&[value]),
            )
        };
        let chunks = vec![
            (0..700).map(|k| leaf(k, 0)).collect(),
            vec![leaf(5, 1), leaf(900, 0)],
        ];
        let sorted = sort_by_key_hash(chunks);
        assert_eq!(sorted.len(), 701);
        assert!(sorted.windows(2).all(|w| w[0].key_hash < w[1].key_hash));
        assert!(sorted.contains(&leaf(5, 1)));
        assert!(!sorted.contains(&leaf(5, 0)));
        assert!(sort_by_key_hash(vec![Vec::new()]).is_empty());
    }
}
