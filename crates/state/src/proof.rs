//! Membership and absence proofs for one key against a state root.
//!
//! # Proof (protocol)
//!
//! A proof for key `k` with `key_hash = H(StateKey, k)` is a list of `d`
//! sibling hashes, `siblings[0..d]`, top-down (`siblings[i]` is the hash of the
//! subtree at depth `i + 1` on the other side of bit `i` of `key_hash`), and a
//! *terminal*: the subtree at depth `d` on `key_hash`'s path, which is either
//! empty or a single leaf, given as its `key_hash'` and `value_hash'`.
//! `0 <= d <= 256`.
//!
//! Verification of "under `root`, `k` holds `v`" (or "`k` is absent"):
//!
//! 1. `h = EMPTY` for an empty terminal, `h = H(StateLeaf, key_hash' || value_hash')`
//!    for a leaf terminal.
//! 2. For `i = d - 1` down to `0`: if bit `i` of `key_hash` is 1,
//!    `h = H(StateNode, siblings[i] || h)`, otherwise `h = H(StateNode, h || siblings[i])`.
//! 3. `h` must equal `root`.
//! 4. A leaf terminal must share its first `d` bits with `key_hash`.
//! 5. Presence of `v` requires a leaf terminal with `key_hash' = key_hash` and
//!    `value_hash' = H(StateValue, v)`. Absence requires an empty terminal or
//!    a leaf terminal with `key_hash' != key_hash`. A leaf terminal proves
//!    absence soundly because a subtree hashing to a single leaf holds exactly
//!    one key.
//!
//! The proofs this crate produces are the shortest possible: `d` is the first
//! depth at which the subtree on `key_hash`'s path holds at most one key.
//! Because the hashing rule gives every set of keys exactly one tree, a valid
//! proof for a key is unique.
//!
//! # Encoding (protocol)
//!
//! Little-endian, no padding:
//!
//! ```text
//! depth        u16        d, at most 256
//! siblings     d × 32     siblings[0], siblings[1], …
//! tag          u8         0 = empty terminal, 1 = leaf terminal
//! key_hash'    32         only if tag = 1
//! value_hash'  32         only if tag = 1
//! ```
//!
//! Decoding rejects a depth above 256, an unknown tag, truncated input and
//! trailing bytes.

use everarcade_protocol::{Domain, Hash};

use crate::error::ProofError;
use crate::trie::{KEY_HASH_BITS, bit, empty_hash, leaf_hash, parent_hash};

/// Terminal tag byte of an empty terminal.
const TAG_EMPTY: u8 = 0;
/// Terminal tag byte of a leaf terminal.
const TAG_LEAF: u8 = 1;

/// A membership or absence proof for one key; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Sibling subtree hashes, top-down: `siblings[i]` is the sibling at depth `i`.
    pub siblings: Vec<Hash>,
    /// The subtree at depth `siblings.len()` on the key's path.
    pub terminal: Terminal,
}

/// The subtree a proof ends in: empty, or exactly one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// No key lies below this point of the path.
    Empty,
    /// Exactly one key lies below this point of the path.
    Leaf {
        /// `H(StateKey, key)` of that key.
        key_hash: Hash,
        /// `H(StateValue, value)` of its value.
        value_hash: Hash,
    },
}

impl Terminal {
    /// The subtree hash of this terminal: `EMPTY` or the leaf hash.
    pub fn hash(&self) -> Hash {
        match self {
            Terminal::Empty => empty_hash(),
            Terminal::Leaf {
                key_hash,
                value_hash,
            } => leaf_hash(key_hash, value_hash),
        }
    }
}

impl Proof {
    /// The root this proof folds to for `key_hash` (steps 1 and 2 of the
    /// module docs). Callers must have checked `siblings.len() <= 256`.
    fn fold(&self, key_hash: &Hash) -> Hash {
        let mut hash = self.terminal.hash();
        for (depth, sibling) in self.siblings.iter().enumerate().rev() {
            // depth < 256 was checked by the caller, so it fits a u16.
            hash = parent_hash(&hash, sibling, bit(key_hash, depth as u16));
        }
        hash
    }

    /// Checks that under `root`, `key` holds `value` (`Some`) or is absent
    /// (`None`).
    pub fn verify(&self, root: &Hash, key: &[u8], value: Option<&[u8]>) -> Result<(), ProofError> {
        let depth = self.siblings.len();
        if depth > usize::from(KEY_HASH_BITS) {
            return Err(ProofError::TooDeep { depth });
        }
        let key_hash = Domain::StateKey.hash(key);
        let computed = self.fold(&key_hash);
        if computed != *root {
            return Err(ProofError::RootMismatch {
                expected: *root,
                computed,
            });
        }
        let Terminal::Leaf {
            key_hash: found,
            value_hash,
        } = self.terminal
        else {
            return match value {
                None => Ok(()),
                Some(_) => Err(ProofError::KeyAbsent),
            };
        };
        if (0..depth as u16).any(|i| bit(&found, i) != bit(&key_hash, i)) {
            return Err(ProofError::OffPath { depth });
        }
        match value {
            None if found == key_hash => Err(ProofError::KeyPresent),
            None => Ok(()),
            Some(_) if found != key_hash => Err(ProofError::KeyAbsent),
            Some(value) if Domain::StateValue.hash(value) != value_hash => {
                Err(ProofError::WrongValue { actual: value_hash })
            }
            Some(_) => Ok(()),
        }
    }

    /// The byte encoding of the module docs.
    ///
    /// # Panics
    ///
    /// If the proof has more than 256 siblings: such a proof was not made by
    /// [`State::prove`](crate::State::prove) or [`Proof::decode`] and can never verify.
    pub fn encode(&self) -> Vec<u8> {
        let depth = u16::try_from(self.siblings.len())
            .ok()
            .filter(|depth| *depth <= KEY_HASH_BITS)
            .expect("a proof has at most 256 siblings");
        let mut bytes = Vec::with_capacity(2 + 32 * self.siblings.len() + 1 + 64);
        bytes.extend_from_slice(&depth.to_le_bytes());
        for sibling in &self.siblings {
            bytes.extend_from_slice(sibling.as_bytes());
        }
        match &self.terminal {
            Terminal::Empty => bytes.push(TAG_EMPTY),
            Terminal::Leaf {
                key_hash,
                value_hash,
            } => {
                bytes.push(TAG_LEAF);
                bytes.extend_from_slice(key_hash.as_bytes());
                bytes.extend_from_slice(value_hash.as_bytes());
            }
        }
        bytes
    }

    /// Parses the byte encoding of the module docs. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Proof, ProofError> {
        let mut reader = Reader { bytes, offset: 0 };
        let depth = usize::from(u16::from_le_bytes(reader.array()?));
        if depth > usize::from(KEY_HASH_BITS) {
            return Err(ProofError::TooDeep { depth });
        }
        let mut siblings = Vec::with_capacity(depth);
        for _ in 0..depth {
            siblings.push(Hash(reader.array()?));
        }
        let terminal = match reader.array::<1>()?[0] {
            TAG_EMPTY => Terminal::Empty,
            TAG_LEAF => Terminal::Leaf {
                key_hash: Hash(reader.array()?),
                value_hash: Hash(reader.array()?),
            },
            tag => return Err(ProofError::UnknownTerminalTag { tag }),
        };
        let count = bytes.len() - reader.offset;
        if count != 0 {
            return Err(ProofError::TrailingBytes { count });
        }
        Ok(Proof { siblings, terminal })
    }
}

/// A cursor over proof bytes that reports truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProofError> {
        let rest = &self.bytes[self.offset..];
        let Some((field, _)) = rest.split_first_chunk::<N>() else {
            return Err(ProofError::Truncated {
                offset: self.offset,
                needed: N,
                available: rest.len(),
            });
        };
        self.offset += N;
        Ok(*field)
    }
}
