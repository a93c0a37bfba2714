//! World identifiers: `[a-z0-9][a-z0-9-]{0,62}`.

use std::fmt;

/// The longest world id, in bytes.
pub const WORLD_ID_LENGTH_MAX: usize = 63;

/// A validated world id such as `world-001`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorldId(String);

/// Why a string is not a world id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldIdError {
    /// The id is empty.
    #[error("world id is empty")]
    Empty,
    /// The id is longer than 63 bytes.
    #[error("world id is {length} bytes long; the maximum is {WORLD_ID_LENGTH_MAX}")]
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The id contains a character outside `[a-z0-9-]` or starts with `-`.
    #[error(
        "world id {id:?} must match [a-z0-9][a-z0-9-]{{0,62}} (offending character at byte {position})"
    )]
    BadCharacter {
        /// The rejected id.
        id: String,
        /// Byte offset of the first bad character.
        position: usize,
    },
}

impl WorldId {
    /// Validates `text` as a world id.
    pub fn new(text: &str) -> Result<WorldId, WorldIdError> {
        if text.is_empty() {
            return Err(WorldIdError::Empty);
        }
        if text.len() > WORLD_ID_LENGTH_MAX {
            return Err(WorldIdError::TooLong { length: text.len() });
        }
        for (position, byte) in text.bytes().enumerate() {
            let allowed = byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || (byte == b'-' && position > 0);
            if !allowed {
                return Err(WorldIdError::BadCharacter {
                    id: text.to_string(),
                    position,
                });
            }
        }
        Ok(WorldId(text.to_string()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Encoding used inside other encodings: `length u8 || ASCII bytes`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.0.len() as u8);
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl fmt::Display for WorldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorldId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(WorldId::new("world-001").is_ok());
        assert!(WorldId::new("a").is_ok());
        assert!(WorldId::new(&"a".repeat(63)).is_ok());
        assert_eq!(WorldId::new(""), Err(WorldIdError::Empty));
        assert_eq!(
            WorldId::new(&"a".repeat(64)),
            Err(WorldIdError::TooLong { length: 64 })
        );
        for bad in ["-world", "World", "wor ld", "w_1", "wörld", "../x"] {
            assert!(
                matches!(WorldId::new(bad), Err(WorldIdError::BadCharacter { .. })),
                "{bad}"
            );
        }
    }
}
