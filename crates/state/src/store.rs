//! The key-value store and its lazily folded trie.
//!
//! Entries live in a slab of slots ([`Slots`]). Two indexes point into it:
//! an ordered map from key to slot, for walks in key order (checkpoints,
//! `iter`, pages of the key space), and a hash table of slot numbers, for
//! `get`, `set` and `delete`, the tick loop's hot path. The hash table is
//! never iterated, so its hasher (seeded per process, against hash
//! flooding by chosen keys) decides nothing but where a lookup probes: no
//! root, output or order depends on it.
//!
//! Writes only touch the slots and the pending list of changes; the value
//! hashes and the trie are brought up to date by [`State::root`]. So a key
//! written many times between two roots is hashed once, and a key set and
//! deleted again between two roots costs no trie work beyond a no-op.
//!
//! The pending list holds each changed key's hash and the slot of its value
//! (or its deletion), and an entry knows its place in the list, so a write
//! finds the key once, copies no value, and folding needs no lookup at all. An entry is pending when
//! its generation is the store's: folding starts a new generation instead of
//! visiting every entry it folded.
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
    /// The generation in which the key was last put in `State::pending`
    /// (pending now iff it is `State::generation`), and its index there.
    pub(crate) pending_generation: u64,
    pub(crate) pending_index: u32,
}

impl Entry {
    /// An entry not pending in any generation.
    pub(crate) fn folded(value: Value, key_hash: Hash) -> Entry {
        Entry {
            value,
            key_hash,
            pending_generation: 0,
            pending_index: 0,
        }
    }
}

/// The hasher of the key index.
type IndexHasher = foldhash::fast::RandomState;

/// The slab is put back in key order only once this many keys were placed
/// since (see [`Slots::compact_if_scattered`]): a small state is walked in
/// cache whatever its order.
const SCATTERED_SLOTS_MIN: usize = 4096;

/// Every key and its entry in a slab of slots, found by key through a hash
/// table of slot numbers and walked in key order through an ordered map.
#[derive(Clone, Default)]
pub(crate) struct Slots {
    /// Every key and its entry, by slot number; a slot listed in `free`
    /// holds an empty key and is in neither index.
    slots: Vec<(Key, Entry)>,
    /// Empty slots, reused first.
    free: Vec<u32>,
    /// Key → slot, in key order.
    order: BTreeMap<Key, u32>,
    /// The slots of live keys, found by the hash of the key bytes.
    index: HashTable<u32>,
    hasher: IndexHasher,
    /// Keys placed in a slot since the slab was last in key order.
    placed: usize,
}

impl Slots {
    /// The slots of `entries`, given in strictly ascending key order (slot
    /// `i` holds entry `i`, so a walk in key order reads the slab in order).
    pub(crate) fn from_sorted(entries: Vec<(Key, Entry)>) -> Slots {
        let count = slot_number(entries.len());
        // Already ascending, so the map's bulk build only checks the order.
        let order: BTreeMap<Key, u32> = entries
            .iter()
            .zip(0..count)
            .map(|((key, _), slot)| (key.clone(), slot))
            .collect();
        let hasher = IndexHasher::default();
        let index = index_of(&entries, &hasher);
        Slots {
            slots: entries,
            free: Vec::new(),
            order,
            index,
            hasher,
            placed: 0,
        }
    }

    /// The slot holding `key`, if present.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(key), |&slot| {
                slots[slot as usize].0.as_slice() == key
            })
            .copied()
    }

    /// The entry of `key`, if present.
    #[inline]
    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.find(key).map(|slot| &self.slots[slot as usize].1)
    }

    /// The entry in `slot`, which holds a key.
    #[inline]
    fn entry(&self, slot: u32) -> &Entry {
        &self.slots[slot as usize].1
    }

    /// The entry in `slot`, which holds a key, for writing.
    #[inline]
    fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        &mut self.slots[slot as usize].1
    }

    /// Adds `key`, which is absent, with `entry`; returns its slot.
    fn insert(&mut self, key: &[u8], entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = (Key::new(key), entry);
                slot
            }
            None => {
                let slot = slot_number(self.slots.len());
                self.slots.push((Key::new(key), entry));
                slot
            }
        };
        index_slot(&mut self.index, &self.hasher, &self.slots, slot);
        self.order.insert(Key::new(key), slot);
        self.placed += 1;
        slot
    }

    /// Removes `key` and gives back its key and entry, if present.
    fn remove(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let slots = &self.slots;
        let (slot, _) = self
            .index
            .find_entry(self.hasher.hash_one(key), |&slot| {
                slots[slot as usize].0.as_slice() == key
            })
            .ok()?
            .remove();
        self.order.remove(key);
        self.free.push(slot);
        Some(std::mem::replace(&mut self.slots[slot as usize], vacant()))
    }

    /// Number of keys.
    fn len(&self) -> usize {
        self.order.len()
    }

    /// The entries of `order` (a walk of the ordered map) with their values.
    fn in_order<'a>(
        &'a self,
        order: impl Iterator<Item = (&'a Key, &'a u32)> + 'a,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        order.map(|(key, &slot)| (key.as_slice(), self.slots[slot as usize].1.value.as_slice()))
    }

    /// Puts the slab back in key order once more keys were placed since the
    /// last time than it held then (and at least [`SCATTERED_SLOTS_MIN`]).
    ///
    /// A new key takes a free slot or the slab's end, so a walk in key order
    /// (a checkpoint's encoding) reads the slots of keys added since at
    /// random, a cache and TLB miss each: a million keys written in random
    /// order encoded 30% slower than from an ordered map. Compacting when
    /// the placed keys outnumber the ordered ones costs `O(n)` each time the
    /// state doubles, `O(1)` per new key amortized.
    fn compact_if_scattered(&mut self) {
        // A key placed in a freed slot is counted too, so `placed` may exceed
        // the slab's length.
        let ordered = self.slots.len().saturating_sub(self.placed);
        if self.placed < SCATTERED_SLOTS_MIN || self.placed <= ordered {
            return;
        }
        let mut slots = Vec::with_capacity(self.order.len());
        for (number, slot) in (0..).zip(self.order.values_mut()) {
            slots.push(std::mem::replace(&mut self.slots[*slot as usize], vacant()));
            *slot = number;
        }
        self.index = index_of(&slots, &self.hasher);
        self.slots = slots;
        self.free.clear();
        self.placed = 0;
    }
}

/// The index of `slots`, every one of which holds a distinct key.
fn index_of(slots: &[(Key, Entry)], hasher: &IndexHasher) -> HashTable<u32> {
    let mut index = HashTable::with_capacity(slots.len());
    for slot in 0..slot_number(slots.len()) {
        index_slot(&mut index, hasher, slots, slot);
    }
    index
}

/// Adds `slot`, whose key is not in `index` yet, to `index`.
fn index_slot(index: &mut HashTable<u32>, hasher: &IndexHasher, slots: &[(Key, Entry)], slot: u32) {
    let hash_of = |slot: &u32| hasher.hash_one(slots[*slot as usize].0.as_slice());
    index.insert_unique(hash_of(&slot), slot, hash_of);
}

/// What an emptied slot holds: an empty key, in neither index.
fn vacant() -> (Key, Entry) {
    (Key::new(b""), Entry::folded(Value::new(b""), Hash::ZERO))
}

/// An in-memory ordered key-value store committed by a Merkle root; see the
/// crate docs for the exact root.
#[derive(Clone)]
pub struct State {
    slots: Slots,
    trie: Trie,
    /// Changes since the trie was last folded, in order: a key hash, the
    /// slot holding its latest value (`None` once deleted: a freed slot is
    /// never named), and whether the key was in the trie when the change
    /// began (a new value for a leaf, not a new leaf). A key appears at most
    /// once while present; a key deleted and inserted again appears twice
    /// (folded in order: removed, then inserted). Slots are renumbered only
    /// after a fold, with nothing pending.
    pending: Vec<(Hash, Option<u32>, bool)>,
    /// Scratch for folding: new value hashes of keys already in the trie.
    updates: Vec<(Hash, Hash)>,
    /// The current generation (from 1); each fold starts the next.
    generation: u64,
    /// Sum of key and value lengths over all entries.
    value_bytes: u64,
}

impl Default for State {
    fn default() -> State {
        State::from_parts(Slots::default(), Trie::default(), 0)
    }
}

impl State {
    /// An empty store; its root is `EMPTY`.
    pub fn new() -> State {
        State::default()
    }

    /// A store with nothing pending, from its parts (see `crate::build`);
    /// no entry may be pending (generation 0).
    pub(crate) fn from_parts(slots: Slots, trie: Trie, value_bytes: u64) -> State {
        State {
            slots,
            trie,
            pending: Vec::new(),
            updates: Vec::new(),
            generation: 1,
            value_bytes,
        }
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.slots.get(key).map(|entry| entry.value.as_slice())
    }

    /// Inserts or replaces; returns the previous value (used as an undo
    /// log; held inline when short, so no allocation).
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Option<Value> {
        let generation = self.generation;
        if let Some(slot) = self.slots.find(key) {
            let entry = self.slots.entry_mut(slot);
            let previous = std::mem::replace(&mut entry.value, Value::new(value));
            let previous_len = previous.as_slice().len() as u64;
            self.value_bytes = self.value_bytes - previous_len + value.len() as u64;
            // A key already pending has its value read from its slot when
            // folded, so only a key not pending since the last fold is listed.
            if entry.pending_generation != generation && previous.as_slice() != value {
                entry.pending_generation = generation;
                entry.pending_index = pending_index(self.pending.len());
                // Not pending since the last fold: its key is in the trie.
                self.pending.push((entry.key_hash, Some(slot), true));
            }
            return Some(previous);
        }
        let key_hash = Domain::StateKey.hash(key);
        let entry = Entry {
            value: Value::new(value),
            key_hash,
            pending_generation: generation,
            pending_index: pending_index(self.pending.len()),
        };
        let slot = self.slots.insert(key, entry);
        self.pending.push((key_hash, Some(slot), false));
        self.value_bytes += (key.len() + value.len()) as u64;
        None
    }

    /// Removes `key`; returns the previous value.
    pub fn delete(&mut self, key: &[u8]) -> Option<Value> {
        let (key, entry) = self.slots.remove(key)?;
        self.value_bytes -= (key.as_slice().len() + entry.value.as_slice().len()) as u64;
        if entry.pending_generation == self.generation {
            self.pending[entry.pending_index as usize].1 = None;
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
        for (key_hash, slot, in_trie) in self.pending.drain(..) {
            match slot {
                None => self.trie.remove(&key_hash),
                Some(slot) => {
                    let value = &self.slots.entry(slot).value;
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
        self.slots.compact_if_scattered();
        root
    }

    /// A membership proof for `key` if present, an absence proof otherwise,
    /// against the current root (folds pending changes first).
    pub fn prove(&mut self, key: &[u8]) -> Proof {
        self.root();
        let key_hash = match self.slots.get(key) {
            Some(entry) => entry.key_hash,
            None => Domain::StateKey.hash(key),
        };
        self.trie.prove(&key_hash)
    }

    /// All entries, sorted by key bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.slots.in_order(self.slots.order.iter())
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
        let order = self.slots.order.range::<[u8], _>((start, Bound::Unbounded));
        self.slots.in_order(order)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// Sum of key and value lengths over all entries, in bytes (for metrics).
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }
}

/// A slab slot's number: a state holds fewer than 2^32 keys (a key costs
/// far more than the 64 bytes that would take 256 GiB).
fn slot_number(index: usize) -> u32 {
    u32::try_from(index).expect("a state holds fewer than 2^32 keys")
}

/// An index in the pending list, which holds one item per change of a
/// distinct key, far below 2^32.
fn pending_index(index: usize) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A state grown past the compaction threshold in scattered order, with
    /// keys deleted and placed again in freed slots, answers as an ordered
    /// map does before and after each compaction; a compaction leaves the
    /// slab in key order; the root is the built state's.
    #[test]
    fn compaction_keeps_every_entry_and_orders_the_slab() {
        let mut state = State::new();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut random = 0x5eed_u64;
        let mut next = move || {
            random = random
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            random >> 40
        };
        let mut compactions = 0;
        for round in 0..4u8 {
            for step in 0..6_000u32 {
                let key = next().to_be_bytes()[5..].to_vec();
                let value = vec![round; (step % 60) as usize];
                assert_eq!(
                    state.set(&key, &value).map(Value::into_vec),
                    model.insert(key, value)
                );
                if step % 5 == 0 {
                    let gone = next().to_be_bytes()[5..].to_vec();
                    assert_eq!(
                        state.delete(&gone).map(Value::into_vec),
                        model.remove(&gone)
                    );
                }
            }
            let placed = state.slots.placed;
            let root = state.root();
            if state.slots.placed == 0 && placed > 0 {
                compactions += 1;
                let keys: Vec<&[u8]> = state
                    .slots
                    .slots
                    .iter()
                    .map(|(key, _)| key.as_slice())
                    .collect();
                assert!(
                    keys.windows(2).all(|pair| pair[0] < pair[1]),
                    "slab in key order"
                );
                assert!(state.slots.free.is_empty());
            }
            assert_eq!(state.len(), model.len());
            for (key, value) in &model {
                assert_eq!(state.get(key), Some(value.as_slice()));
            }
            assert!(
                state
                    .iter()
                    .eq(model.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
            );
            let built = State::from_sorted(model.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            assert_eq!(root, built.expect("ascending").root());
        }
        assert!(compactions >= 2, "{compactions} compactions");
    }
}
