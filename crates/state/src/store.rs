//! The key-value store and its lazily folded trie.
//!
//! Entries live in a slab of slots. Two indexes point into it: an ordered
//! map from key to slot (for ordered iteration: checkpoints, `iter`) and a
//! hash table of slot numbers (for `get`, `set` and `delete`, which are
//! the tick loop's hot path). The hash table is never iterated, so its
//! hasher (seeded per process, against hash flooding by chosen keys)
//! decides nothing but where a lookup probes: no root, output or order
//! depends on it.
//!
//! Writes only touch the slots and remember the slot as pending; the value
//! hashes and the trie are brought up to date by [`State::root`]. So a key
//! written many times between two roots is hashed once, and the pending
//! list names slots, so folding looks nothing up again.
//!
//! Keys and values up to a few dozen bytes are kept inline (`crate::bytes`),
//! so most writes allocate nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::BuildHasher;

use everarcade_protocol::{Domain, Hash};
use hashbrown::HashTable;

use crate::bytes::{Key, Value};
use crate::proof::Proof;
use crate::trie::Trie;

/// One stored value, with the key's hash cached.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) key_hash: Hash,
    /// Whether the slot is in `State::pending` with a change not yet folded
    /// into the trie.
    pub(crate) pending: bool,
}

/// A change since the trie was last folded.
#[derive(Clone, Copy)]
enum Change {
    /// The key in this slot was inserted or its value changed (skipped if
    /// the slot's entry is no longer pending: folded by an earlier
    /// duplicate, or deleted since).
    Written(u32),
    /// The key with this key hash was deleted.
    Removed(Hash),
}

/// The hasher of the key index.
type IndexHasher = foldhash::fast::RandomState;

/// An in-memory ordered key-value store committed by a Merkle root; see the
/// crate docs for the exact root.
#[derive(Clone, Default)]
pub struct State {
    /// Every key and its entry, by slot number.
    slots: Vec<(Key, Entry)>,
    /// Empty slots, reused first.
    free: Vec<u32>,
    /// Slots emptied since the last fold: reused only after it, so that a
    /// pending `Written` never names a slot holding another key.
    released: Vec<u32>,
    /// Key → slot, in key order.
    order: BTreeMap<Key, u32>,
    /// The slots of live keys, found by the hash of the key bytes.
    index: HashTable<u32>,
    hasher: IndexHasher,
    trie: Trie,
    /// Changes since the trie was last folded, in the order made.
    pending: Vec<Change>,
    /// Sum of key and value lengths over all entries.
    value_bytes: u64,
}

impl State {
    /// An empty store; its root is `EMPTY`.
    pub fn new() -> State {
        State::default()
    }

    /// A store with nothing pending, from entries in ascending key order
    /// and their trie (see `crate::build`).
    pub(crate) fn from_parts(entries: Vec<(Key, Entry)>, trie: Trie, value_bytes: u64) -> State {
        assert!(
            entries.len() < u32::MAX as usize,
            "the state exceeds 2^32 - 1 keys"
        );
        // Already ascending, so the map's bulk build only checks the order.
        let order: BTreeMap<Key, u32> = entries
            .iter()
            .enumerate()
            .map(|(slot, (key, _))| (key.clone(), slot as u32))
            .collect();
        let hasher = IndexHasher::default();
        let mut index = HashTable::with_capacity(entries.len());
        for (slot, (key, _)) in entries.iter().enumerate() {
            let hash = hasher.hash_one(key.as_slice());
            index.insert_unique(hash, slot as u32, |&slot| {
                hasher.hash_one(entries[slot as usize].0.as_slice())
            });
        }
        State {
            slots: entries,
            free: Vec::new(),
            released: Vec::new(),
            order,
            index,
            hasher,
            trie,
            pending: Vec::new(),
            value_bytes,
        }
    }

    /// Replaces the trie of a state built with nothing pending.
    pub(crate) fn set_trie(&mut self, trie: Trie) {
        assert!(
            self.pending.is_empty(),
            "the trie of a built state is set once"
        );
        self.trie = trie;
    }

    /// The slot holding `key`, if present.
    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index
            .find(hash, |&slot| slots[slot as usize].0.as_slice() == key)
            .copied()
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let slot = self.find(key)?;
        Some(self.slots[slot as usize].1.value.as_slice())
    }

    /// Inserts or replaces; returns the previous value (used as an undo log).
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        if let Some(slot) = self.find(key) {
            let entry = &mut self.slots[slot as usize].1;
            let previous = std::mem::replace(&mut entry.value, Value::new(value));
            let previous_len = previous.as_slice().len() as u64;
            self.value_bytes = self.value_bytes - previous_len + value.len() as u64;
            if !entry.pending && previous.as_slice() != value {
                entry.pending = true;
                self.pending.push(Change::Written(slot));
            }
            return Some(previous.into_vec());
        }
        let entry = Entry {
            value: Value::new(value),
            key_hash: Domain::StateKey.hash(key),
            pending: true,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = (Key::new(key), entry);
                slot
            }
            None => {
                assert!(
                    self.slots.len() < u32::MAX as usize,
                    "the state exceeds 2^32 - 1 keys"
                );
                self.slots.push((Key::new(key), entry));
                (self.slots.len() - 1) as u32
            }
        };
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.index
            .insert_unique(hasher.hash_one(key), slot, |&slot| {
                hasher.hash_one(slots[slot as usize].0.as_slice())
            });
        self.order.insert(Key::new(key), slot);
        self.pending.push(Change::Written(slot));
        self.value_bytes += (key.len() + value.len()) as u64;
        None
    }

    /// Removes `key`; returns the previous value.
    pub fn delete(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let found = self
            .index
            .find_entry(hash, |&slot| slots[slot as usize].0.as_slice() == key)
            .ok()?;
        let (slot, _) = found.remove();
        self.order.remove(key);
        let vacant = (
            Key::new(b""),
            Entry {
                value: Value::new(b""),
                key_hash: Hash::ZERO,
                pending: false,
            },
        );
        let (key, entry) = std::mem::replace(&mut self.slots[slot as usize], vacant);
        self.released.push(slot);
        self.value_bytes -= (key.as_slice().len() + entry.value.as_slice().len()) as u64;
        self.pending.push(Change::Removed(entry.key_hash));
        Some(entry.value.into_vec())
    }

    /// Folds all changes since the last call into the trie and returns the
    /// root. Costs `O(changed × log n)` hashes plus one hash per changed value.
    pub fn root(&mut self) -> Hash {
        for change in self.pending.drain(..) {
            match change {
                Change::Removed(key_hash) => self.trie.remove(&key_hash),
                Change::Written(slot) => {
                    let entry = &mut self.slots[slot as usize].1;
                    if entry.pending {
                        entry.pending = false;
                        let value_hash = Domain::StateValue.hash(entry.value.as_slice());
                        self.trie.upsert(&entry.key_hash, &value_hash);
                    }
                }
            }
        }
        self.free.append(&mut self.released);
        self.trie.root_hash()
    }

    /// A membership proof for `key` if present, an absence proof otherwise,
    /// against the current root (folds pending changes first).
    pub fn prove(&mut self, key: &[u8]) -> Proof {
        self.root();
        let key_hash = match self.find(key) {
            Some(slot) => self.slots[slot as usize].1.key_hash,
            None => Domain::StateKey.hash(key),
        };
        self.trie.prove(&key_hash)
    }

    /// All entries, sorted by key bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.order.iter().map(|(key, &slot)| {
            let value = self.slots[slot as usize].1.value.as_slice();
            (key.as_slice(), value)
        })
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
        self.order
            .range::<[u8], _>((start, Bound::Unbounded))
            .map(|(key, &slot)| {
                let value = self.slots[slot as usize].1.value.as_slice();
                (key.as_slice(), value)
            })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Sum of key and value lengths over all entries, in bytes (for metrics).
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }
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
