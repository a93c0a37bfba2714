//! Errors of this crate. The store itself cannot fail; proofs can be
//! rejected, either while decoding their bytes or while verifying them, and
//! a [`StateBuilder`](crate::StateBuilder) refuses keys out of order.

use everarcade_protocol::Hash;

/// Why a [`Proof`](crate::Proof) was rejected by
/// [`Proof::decode`](crate::Proof::decode) or [`Proof::verify`](crate::Proof::verify).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof folds up to a different root than the one it was checked against.
    #[error("proof folds to root {computed}, expected {expected}")]
    RootMismatch {
        /// The root the proof was checked against.
        expected: Hash,
        /// The root the proof actually folds to.
        computed: Hash,
    },
    /// Presence of a value was claimed, and the key is present, with another value.
    #[error("the key is present with a different value (value hash {actual})")]
    WrongValue {
        /// The value hash the proof commits to.
        actual: Hash,
    },
    /// Absence was claimed, but the proof shows the key present.
    #[error("absence was claimed but the key is present")]
    KeyPresent,
    /// Presence was claimed, but the proof shows the key absent.
    #[error("presence was claimed but the key is absent")]
    KeyAbsent,
    /// The terminal leaf is not on the queried key's path: its key hash does
    /// not share the key's first `depth` bits.
    #[error("terminal leaf does not share the key's first {depth} bits")]
    OffPath {
        /// The proof's depth (number of siblings).
        depth: usize,
    },
    /// The proof has more siblings than a key hash has bits (256).
    #[error("proof depth {depth} exceeds 256")]
    TooDeep {
        /// The proof's depth (number of siblings).
        depth: usize,
    },
    /// The encoding ends before a field it announces.
    #[error(
        "proof encoding truncated: {needed} bytes needed at offset {offset}, {available} available"
    )]
    Truncated {
        /// Byte offset of the field that does not fit.
        offset: usize,
        /// Size of that field in bytes.
        needed: usize,
        /// Bytes left from `offset`.
        available: usize,
    },
    /// The terminal tag is neither 0 (empty) nor 1 (leaf).
    #[error("unknown proof terminal tag {tag} (expected 0 or 1)")]
    UnknownTerminalTag {
        /// The tag byte found.
        tag: u8,
    },
    /// Bytes follow a complete proof.
    #[error("{count} trailing bytes after the proof")]
    TrailingBytes {
        /// How many bytes follow the proof.
        count: usize,
    },
}

/// Why a [`StateBuilder`](crate::StateBuilder) refused an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The entry's key does not sort strictly after the previous one.
    #[error("entry {index}: its key does not sort strictly after the previous key")]
    NotAscending {
        /// The refused entry's position (the number of entries before it).
        index: usize,
    },
}
