//! The ordered key-value store and its lazily folded trie.
//!
//! Writes only touch the ordered map and the pending list of changes; the
//! value hashes and the trie are brought up to date by [`State::root`]. So a
//! key written many times between two roots is hashed once, and a key set
//! and deleted again between two roots costs no trie work beyond a no-op.
//!
//! The pending list holds each changed key's hash and its latest value (or
//! its deletion), and an entry knows its slot in the list, so a write finds
//! the key in the ordered map once and folding needs no lookup at all. An
//! entry is pending when its generation is the store's: folding starts a new
//! generation instead of visiting every entry it folded.
//!
//! Keys and values up to a few dozen bytes are kept inline in the map's nodes
//! (`crate::bytes`), so most writes allocate nothing.

use std::collections::BTreeMap;
use std::fmt;

use everarcade_protocol::{Domain, Hash};

use crate::bytes::{KEY_INLINE_BYTES_MAX, Key, Value};
use crate::proof::Proof;
use crate::trie::Trie;

/// One stored value, with the key's hash cached.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) key_hash: Hash,
    /// The generation in which the key was last put in `State::pending`
    /// (pending now iff it is `State::generation`), and its slot there.
    pub(crate) pending_generation: u64,
    pub(crate) pending_slot: u32,
}

impl Entry {
    /// An entry not pending in any generation.
    pub(crate) fn folded(value: Value, key_hash: Hash) -> Entry {
        Entry {
            value,
            key_hash,
            pending_generation: 0,
            pending_slot: 0,
        }
    }
}

/// An in-memory ordered key-value store committed by a Merkle root; see the
/// crate docs for the exact root.
#[derive(Clone)]
pub struct State {
    entries: BTreeMap<Key, Entry>,
    trie: Trie,
    /// Changes since the trie was last folded, in order: a key hash, its
    /// latest value (`None` once deleted), and whether the key was in the
    /// trie when the change began (a new value for a leaf, not a new leaf).
    /// A key appears at most once while present; a key deleted and inserted
    /// again appears twice (folded in order: removed, then inserted).
    pending: Vec<(Hash, Option<Value>, bool)>,
    /// Scratch for folding: new value hashes of keys already in the trie.
    updates: Vec<(Hash, Hash)>,
    /// The current generation (from 1); each fold starts the next.
    generation: u64,
    /// Sum of key and value lengths over all entries.
    value_bytes: u64,
}

impl Default for State {
    fn default() -> State {
        State::from_parts(BTreeMap::new(), Trie::default(), 0)
    }
}

impl State {
    /// An empty store; its root is `EMPTY`.
    pub fn new() -> State {
        State::default()
    }

    /// A store with nothing pending, from its parts (see `crate::build`);
    /// no entry may be pending (generation 0).
    pub(crate) fn from_parts(entries: BTreeMap<Key, Entry>, trie: Trie, value_bytes: u64) -> State {
        State {
            entries,
            trie,
            pending: Vec::new(),
            updates: Vec::new(),
            generation: 1,
            value_bytes,
        }
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entry(key).map(|entry| entry.value.as_slice())
    }

    /// The entry of `key`. A key short enough to be held inline is looked
    /// up as a `Key`, whose order compares 8 bytes at once (no `memcmp` per
    /// node visited, no allocation); a longer one as its bytes.
    fn entry(&self, key: &[u8]) -> Option<&Entry> {
        match key.len() <= KEY_INLINE_BYTES_MAX {
            true => self.entries.get(&Key::new(key)),
            false => self.entries.get(key),
        }
    }

    /// Inserts or replaces; returns the previous value (used as an undo
    /// log; held inline when short, so no allocation).
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Option<Value> {
        let generation = self.generation;
        if let Some(entry) = entry_mut(&mut self.entries, key) {
            let previous = std::mem::replace(&mut entry.value, Value::new(value));
            let previous_len = previous.as_slice().len() as u64;
            self.value_bytes = self.value_bytes - previous_len + value.len() as u64;
            if entry.pending_generation == generation {
                self.pending[entry.pending_slot as usize].1 = Some(entry.value.clone());
            } else if previous.as_slice() != value {
                entry.pending_generation = generation;
                entry.pending_slot = slot(self.pending.len());
                // Not pending since the last fold: its key is in the trie.
                self.pending
                    .push((entry.key_hash, Some(entry.value.clone()), true));
            }
            return Some(previous);
        }
        let key_hash = Domain::StateKey.hash(key);
        let entry = Entry {
            value: Value::new(value),
            key_hash,
            pending_generation: generation,
            pending_slot: slot(self.pending.len()),
        };
        self.pending
            .push((key_hash, Some(entry.value.clone()), false));
        self.entries.insert(Key::new(key), entry);
        self.value_bytes += (key.len() + value.len()) as u64;
        None
    }

    /// Removes `key`; returns the previous value.
    pub fn delete(&mut self, key: &[u8]) -> Option<Value> {
        let (key, entry) = match key.len() <= KEY_INLINE_BYTES_MAX {
            true => self.entries.remove_entry(&Key::new(key))?,
            false => self.entries.remove_entry(key)?,
        };
        self.value_bytes -= (key.as_slice().len() + entry.value.as_slice().len()) as u64;
        if entry.pending_generation == self.generation {
            self.pending[entry.pending_slot as usize].1 = None;
        } else {
            self.pending.push((entry.key_hash, None, true));
        }
        Some(entry.value)
    }

    /// Folds all changes since the last call into the trie and returns the
    /// root. Costs `O(changed × log n)` hashes plus one hash per changed value.
    /// Deletions and new keys change the trie's shape first; new values of
    /// keys already in it are then written in one pass from the root down
    /// that also rehashes every changed node (`Trie::root_hash_updating`).
    pub fn root(&mut self) -> Hash {
        // Every entry pending so far is folded below.
        self.generation += 1;
        let mut updates = std::mem::take(&mut self.updates);
        for (key_hash, value, in_trie) in self.pending.drain(..) {
            match value {
                None => self.trie.remove(&key_hash),
                Some(value) => {
                    let value_hash = Domain::StateValue.hash(value.as_slice());
                    match in_trie {
                        true => updates.push((key_hash, value_hash)),
                        false => self.trie.upsert(&key_hash, &value_hash),
                    }
                }
            }
        }
        let root = self.trie.root_hash_updating(&mut updates);
        // Keep the buffer's capacity for the next tick.
        self.updates = updates;
        root
    }

    /// A membership proof for `key` if present, an absence proof otherwise,
    /// against the current root (folds pending changes first).
    pub fn prove(&mut self, key: &[u8]) -> Proof {
        self.root();
        let key_hash = match self.entry(key) {
            Some(entry) => entry.key_hash,
            None => Domain::StateKey.hash(key),
        };
        self.trie.prove(&key_hash)
    }

    /// All entries, sorted by key bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(key, entry)| (key.as_slice(), entry.value.as_slice()))
    }

    /// Entries whose key sorts after `after` (all of them for `None`), in
    /// key order: a page of the key space costs its own length, not the
    /// store's.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        self.entries
            .range::<[u8], _>((start, Bound::Unbounded))
            .map(|(key, entry)| (key.as_slice(), entry.value.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of key and value lengths over all entries, in bytes (for metrics).
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }
}

/// [`State::entry`], for writing.
fn entry_mut<'a>(entries: &'a mut BTreeMap<Key, Entry>, key: &[u8]) -> Option<&'a mut Entry> {
    match key.len() <= KEY_INLINE_BYTES_MAX {
        true => entries.get_mut(&Key::new(key)),
        false => entries.get_mut(key),
    }
}

/// A pending slot's index; the pending list holds one slot per change of a
/// distinct key, far below 2^32.
fn slot(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 keys change between two roots")
}

/// Shows the number of keys, the byte total and the entries (as byte lists).
impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entries<'a>(&'a State);
        impl fmt::Debug for Entries<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("State")
            .field("len", &self.len())
            .field("value_bytes", &self.value_bytes)
            .field("pending", &self.pending.len())
            .field("entries", &Entries(self))
            .finish()
    }
}
