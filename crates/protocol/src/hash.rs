//! The one hash function of the protocol: BLAKE3 in keyed mode, with a key
//! derived from a domain string, so that no two kinds of object can ever share
//! a preimage.
//!
//! `H(domain, bytes) = BLAKE3-keyed(key = BLAKE3(domain as ASCII), bytes)`.
//!
//! Keyed mode costs nothing over plain BLAKE3: a 64-byte preimage (two child
//! hashes) is exactly one compression, which keeps Merkle updates cheap.

use std::fmt;
use std::sync::LazyLock;

use blake3::hazmat::{self, HasherExt};

/// A 32-byte BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used where the protocol says "no subject" (hook receipts).
    pub const ZERO: Hash = Hash([0; 32]);

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Option<Hash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Hash(bytes))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

macro_rules! domains {
    ($($(#[$doc:meta])* $name:ident = $text:literal,)*) => {
        /// Every hashing domain of the protocol. The string is the key material;
        /// see docs/PROTOCOL.md §Hashing.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Domain { $($(#[$doc])* $name,)* }

        const DOMAIN_TEXTS: &[&str] = &[$($text,)*];
    };
}

domains! {
    /// Hash of a signed input envelope's full wire encoding.
    Envelope = "ea/envelope/v1",
    /// Hash of a receipt's encoding.
    Receipt = "ea/receipt/v1",
    /// Hash of the ordered list of events one call emitted.
    Events = "ea/events/v1",
    /// Inner node of a Merkle list (input root, receipt root).
    MerkleNode = "ea/merkle/node/v1",
    /// Root of an empty Merkle list.
    MerkleEmpty = "ea/merkle/empty/v1",
    /// Hash of a state key (its position in the state trie).
    StateKey = "ea/state/key/v1",
    /// Hash of a state value.
    StateValue = "ea/state/value/v1",
    /// A state trie leaf: key hash and value hash.
    StateLeaf = "ea/state/leaf/v1",
    /// A state trie inner node.
    StateNode = "ea/state/node/v1",
    /// An empty state subtree (and the root of an empty state).
    StateEmpty = "ea/state/empty/v1",
    /// The continuity chain link `C(t)`.
    Continuity = "ea/continuity/v1",
    /// The genesis continuity root `C(0)`.
    Genesis = "ea/genesis/v1",
    /// The determinism profile.
    Profile = "ea/profile/v1",
    /// One file of a world package.
    PackageFile = "ea/package/file/v1",
    /// The package root over the canonical file listing.
    Package = "ea/package/v1",
    /// Seed of a deterministic test signing key.
    TestKey = "ea/test-key/v1",
    /// The 32 bytes `random_seed` gives the world during a tick.
    Random = "ea/random/v1",
    /// The 32 bytes `random_seed` gives a bot (never part of the lineage).
    BotRandom = "ea/bot-random/v1",
    /// The stream of every bot's 32 random bytes for one tick, read from
    /// one BLAKE3 XOF (worlds with the bot-seed XOF profile flag).
    BotRandomXof = "ea/bot-random/xof/v1",
    /// The checksum of a journal segment header.
    JournalSegment = "ea/journal/segment/v1",
    /// The checksum of a journal record; it covers the previous record's, so
    /// the records form a hash chain.
    JournalRecord = "ea/journal/record/v1",
    /// The checksum of a checkpoint file.
    Checkpoint = "ea/checkpoint/v1",
    /// A tick's leaf in the accumulator of ticks (docs/BUNDLES.md): the
    /// tick number and its four roots.
    MmrLeaf = "ea/mmr/leaf/v1",
    /// An inner node of the accumulator of ticks.
    MmrNode = "ea/mmr/node/v1",
    /// The accumulator's root: the leaf count and every peak.
    MmrRoot = "ea/mmr/root/v1",
    /// The digest of a proof bundle's body, which the operator signs.
    Bundle = "ea/bundle/v1",
    /// The checksum of a proof bundle file: body and signature.
    BundleChecksum = "ea/bundle/checksum/v1",
    /// The seed of the coefficients of one batch of ZIP-215 signature
    /// checks (docs/PROTOCOL.md §4.3): every item's key, signature and
    /// message. Feeds no root; it only makes a batch check deterministic.
    SignatureBatch = "ea/signature/batch/v1",
}

static DOMAIN_KEYS: LazyLock<Vec<[u8; 32]>> = LazyLock::new(|| {
    DOMAIN_TEXTS
        .iter()
        .map(|text| *blake3::hash(text.as_bytes()).as_bytes())
        .collect()
});

impl Domain {
    /// The domain string, e.g. `ea/receipt/v1`.
    pub fn as_str(self) -> &'static str {
        DOMAIN_TEXTS[self as usize]
    }

    /// The BLAKE3 key derived from the domain string.
    pub fn key(self) -> &'static [u8; 32] {
        &DOMAIN_KEYS[self as usize]
    }

    /// `H(self, bytes)` in one call.
    pub fn hash(self, bytes: &[u8]) -> Hash {
        Hash(*blake3::keyed_hash(self.key(), bytes).as_bytes())
    }

    /// `H(self, a || b)` for two 32-byte hashes: one BLAKE3 compression.
    pub fn hash_pair(self, left: &Hash, right: &Hash) -> Hash {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&left.0);
        block[32..].copy_from_slice(&right.0);
        self.hash(&block)
    }

    /// `H(self, bytes)` computed on up to `threads` threads: the same hash
    /// as [`Domain::hash`], for long inputs (a checkpoint file). BLAKE3 is
    /// a tree: `bytes` is cut into aligned pieces of [`PARALLEL_PIECE_BYTES`]
    /// (each a complete subtree), the threads take pieces in turn, and the
    /// pieces' chaining values are merged in the tree's shape.
    pub fn hash_on_threads(self, bytes: &[u8], threads: usize) -> Hash {
        if threads < 2 || bytes.len() <= PARALLEL_PIECE_BYTES {
            return self.hash(bytes);
        }
        let pieces: &[&[u8]] = &bytes.chunks(PARALLEL_PIECE_BYTES).collect::<Vec<_>>();
        let threads = threads.min(pieces.len());
        let key = self.key();
        let mut chaining_values = vec![[0u8; 32]; pieces.len()];
        std::thread::scope(|scope| {
            // Thread `t` takes pieces `t`, `t + threads`, …: equal shares
            // whatever the thread count, the last piece being the only
            // short one.
            let workers: Vec<_> = (1..threads)
                .map(|first| scope.spawn(move || piece_values(key, pieces, first, threads)))
                .collect();
            for (index, value) in piece_values(key, pieces, 0, threads) {
                chaining_values[index] = value;
            }
            for worker in workers {
                let values = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                for (index, value) in values {
                    chaining_values[index] = value;
                }
            }
        });
        let length = bytes.len() as u64;
        let left_length = hazmat::left_subtree_len(length);
        let left_pieces = (left_length / PARALLEL_PIECE_BYTES as u64) as usize;
        let left = merge_pieces(key, &chaining_values[..left_pieces], left_length);
        let right = merge_pieces(key, &chaining_values[left_pieces..], length - left_length);
        Hash(*hazmat::merge_subtrees_root(&left, &right, hazmat::Mode::KeyedHash(key)).as_bytes())
    }

    /// A streaming hasher for preimages built piece by piece.
    pub fn hasher(self) -> Hasher {
        Hasher(blake3::Hasher::new_keyed(self.key()))
    }
}

/// The piece [`Domain::hash_on_threads`] hands a thread at a time: a power
/// of two of BLAKE3 chunks (1 KiB each), so every piece but the last is a
/// complete subtree of the hash tree.
pub const PARALLEL_PIECE_BYTES: usize = 1 << 20;

/// The chaining values of pieces `first`, `first + step`, … of an input cut
/// into [`PARALLEL_PIECE_BYTES`] pieces, with their indexes.
fn piece_values(
    key: &[u8; 32],
    pieces: &[&[u8]],
    first: usize,
    step: usize,
) -> Vec<(usize, hazmat::ChainingValue)> {
    (first..pieces.len())
        .step_by(step)
        .map(|index| {
            let mut hasher = blake3::Hasher::new_keyed(key);
            hasher.set_input_offset((index * PARALLEL_PIECE_BYTES) as u64);
            hasher.update(pieces[index]);
            (index, hasher.finalize_non_root())
        })
        .collect()
}

/// The chaining value of the subtree of `length` bytes whose pieces have
/// the chaining values `values` (BLAKE3's rule: the left subtree is the
/// largest power of two of chunks shorter than the whole; with pieces of a
/// power of two of chunks, it is a whole number of pieces).
fn merge_pieces(
    key: &[u8; 32],
    values: &[hazmat::ChainingValue],
    length: u64,
) -> hazmat::ChainingValue {
    if values.len() == 1 {
        return values[0];
    }
    let left_length = hazmat::left_subtree_len(length);
    let left_pieces = (left_length / PARALLEL_PIECE_BYTES as u64) as usize;
    let left = merge_pieces(key, &values[..left_pieces], left_length);
    let right = merge_pieces(key, &values[left_pieces..], length - left_length);
    hazmat::merge_subtrees_non_root(&left, &right, hazmat::Mode::KeyedHash(key))
}

/// A streaming `H(domain, …)`; feed it with the `update_*` methods.
#[derive(Clone)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    /// Appends raw bytes.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    /// Appends a little-endian u32.
    pub fn update_u32(&mut self, value: u32) -> &mut Self {
        self.update(&value.to_le_bytes())
    }

    /// Appends a little-endian u64.
    pub fn update_u64(&mut self, value: u64) -> &mut Self {
        self.update(&value.to_le_bytes())
    }

    /// The digest.
    pub fn finalize(&self) -> Hash {
        Hash(*self.0.finalize().as_bytes())
    }

    /// The output read as a stream (BLAKE3's XOF); its first 32 bytes are
    /// [`Hasher::finalize`].
    pub fn finalize_xof(&self) -> blake3::OutputReader {
        self.0.finalize_xof()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_distinct() {
        let mut texts: Vec<&str> = DOMAIN_TEXTS.to_vec();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), DOMAIN_TEXTS.len());
        assert_eq!(Domain::Envelope.as_str(), "ea/envelope/v1");
        assert_eq!(Domain::BotRandom.as_str(), "ea/bot-random/v1");
    }

    #[test]
    fn keyed_hash_matches_definition() {
        let key = blake3::hash(b"ea/receipt/v1");
        let expected = blake3::keyed_hash(key.as_bytes(), b"abc");
        assert_eq!(Domain::Receipt.hash(b"abc").0, *expected.as_bytes());
        assert_ne!(Domain::Receipt.hash(b"abc"), Domain::Events.hash(b"abc"));
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut hasher = Domain::Events.hasher();
        hasher.update(b"ab").update_u32(7);
        let mut flat = b"ab".to_vec();
        flat.extend_from_slice(&7u32.to_le_bytes());
        assert_eq!(hasher.finalize(), Domain::Events.hash(&flat));
    }

    #[test]
    fn hashing_on_threads_gives_the_one_thread_hash() {
        let piece = PARALLEL_PIECE_BYTES;
        let bytes: Vec<u8> = (0..piece * 5 + 3000)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        // Below, at and around piece boundaries and powers of two of pieces.
        let lengths = [
            0,
            1,
            1024,
            piece - 1,
            piece,
            piece + 1,
            2 * piece,
            2 * piece + 1,
        ];
        let more = [
            3 * piece + 17,
            4 * piece,
            4 * piece + 1024,
            5 * piece + 3000,
        ];
        for length in lengths.into_iter().chain(more) {
            let expected = Domain::Checkpoint.hash(&bytes[..length]);
            for threads in [1, 2, 3, 8] {
                assert_eq!(
                    Domain::Checkpoint.hash_on_threads(&bytes[..length], threads),
                    expected,
                    "{length} bytes on {threads} threads"
                );
            }
        }
        assert_ne!(
            Domain::Checkpoint.hash_on_threads(&bytes, 2),
            Domain::Bundle.hash_on_threads(&bytes, 2)
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = Domain::Genesis.hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
    }
}
