//! Byte strings kept inline when short, so that the ordered map holds typical
//! keys and values in its own nodes instead of one heap allocation each.
//!
//! A state of a million small entries costs two million allocations with
//! `Vec<u8>` keys and values, and every ordered walk (checkpoint encoding,
//! `iter`) chases two pointers per entry to random places in the heap. Inline
//! bytes make building the map allocation-free for small entries and its
//! iteration a sequential read.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

/// Bytes of a key kept inline; longer keys go to the heap. Keys of typical
/// worlds are shorter: `player/00042/state`, or a tag byte and a player's
/// 32-byte public key (the 2d-arena's `K` keys). The type is then 40 bytes.
pub(crate) const KEY_INLINE_BYTES_MAX: usize = 38;

/// Bytes of a value kept inline; longer values go to the heap. The type is
/// then 48 bytes.
pub(crate) const VALUE_INLINE_BYTES_MAX: usize = 46;

/// A byte string of at most `N` bytes inline, or any length on the heap.
/// Equality, order and hashing are those of the bytes (`[u8]`), whichever
/// way they are stored, so it can key a `BTreeMap` looked up by `&[u8]`.
/// It dereferences to `[u8]`.
#[derive(Clone)]
pub struct InlineBytes<const N: usize>(Repr<N>);

#[derive(Clone)]
enum Repr<const N: usize> {
    /// `data[..len]` holds the bytes; `len <= N`, and every byte after them
    /// is zero (`InlineBytes::new` is the only way in), so the first 8 bytes
    /// of `data` are the zero-padded prefix.
    Inline { len: u8, data: [u8; N] },
    /// More than `N` bytes.
    Heap(Box<[u8]>),
}

/// A state key held by value: up to 38 bytes inline (no allocation).
pub type Key = InlineBytes<KEY_INLINE_BYTES_MAX>;
/// A state value held by value, as [`crate::State::set`] and
/// [`crate::State::delete`] give back the previous one: up to 46 bytes
/// inline (no allocation).
pub type Value = InlineBytes<VALUE_INLINE_BYTES_MAX>;

const _: () = assert!(std::mem::size_of::<Key>() == 40);
const _: () = assert!(std::mem::size_of::<Value>() == 48);

impl<const N: usize> InlineBytes<N> {
    /// A copy of `bytes`: inline if it fits, else one heap allocation.
    pub fn new(bytes: &[u8]) -> InlineBytes<N> {
        const { assert!(N <= u8::MAX as usize, "the length must fit a u8") };
        if bytes.len() > N {
            return InlineBytes(Repr::Heap(bytes.into()));
        }
        let mut data = [0u8; N];
        data[..bytes.len()].copy_from_slice(bytes);
        InlineBytes(Repr::Inline {
            len: bytes.len() as u8,
            data,
        })
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }

    /// The first 8 bytes as a big-endian number, zero-padded when shorter.
    /// Two byte strings whose prefixes differ compare as their prefixes do
    /// (a string that ends inside the prefix reads as zeros there, below
    /// any byte the other has at that place, just as a prefix sorts first).
    #[inline]
    fn prefix(&self) -> u64 {
        let mut first = [0u8; 8];
        match &self.0 {
            Repr::Inline { data, .. } if N >= 8 => first.copy_from_slice(&data[..8]),
            _ => {
                let bytes = self.as_slice();
                let taken = bytes.len().min(8);
                first[..taken].copy_from_slice(&bytes[..taken]);
            }
        }
        u64::from_be_bytes(first)
    }

    /// The bytes as a `Vec` (no copy when they are on the heap).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Inline { .. } => self.as_slice().to_vec(),
            Repr::Heap(bytes) => bytes.into_vec(),
        }
    }
}

impl<const N: usize> std::ops::Deref for InlineBytes<N> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> Borrow<[u8]> for InlineBytes<N> {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> PartialEq for InlineBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for InlineBytes<N> {}

impl<const N: usize> PartialOrd for InlineBytes<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The order of the bytes (`[u8]`'s), decided by the first 8 bytes without
/// a call to `memcmp` whenever they differ: an ordered map of keys that
/// differ early (public keys, hashes) is searched in registers.
impl<const N: usize> Ord for InlineBytes<N> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match self.prefix().cmp(&other.prefix()) {
            Ordering::Equal => self.as_slice().cmp(other.as_slice()),
            unequal => unequal,
        }
    }
}

impl<const N: usize> std::hash::Hash for InlineBytes<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<const N: usize> fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_bytes_compare_as_their_bytes() {
        let short = Key::new(b"ab");
        let long = Key::new(&[b'a'; 40]);
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Heap(_)));
        assert_eq!(short.as_slice(), b"ab");
        assert_eq!(long.as_slice(), &[b'a'; 40][..]);
        // [b'a'; 40] < "ab" bytewise, whatever the storage.
        assert!(long < short);
        assert_eq!(Key::new(&[7; 38]), Key::new(&[7; 38]));
        assert!(matches!(Key::new(&[7; 38]).0, Repr::Inline { .. }));
        assert!(matches!(Key::new(&[7; 39]).0, Repr::Heap(_)));
        assert_eq!(Value::new(b"").into_vec(), Vec::<u8>::new());
        assert_eq!(Value::new(&[1; 47]).into_vec(), vec![1; 47]);
        let borrowed: &[u8] = short.borrow();
        assert_eq!(borrowed, b"ab");
    }

    /// The fast order of `Key` is the order of the bytes, for every pair
    /// among strings that end inside, at and after the 8-byte prefix, hold
    /// zeros where padding would be, and sit on either side of the inline
    /// limit.
    #[test]
    fn keys_order_as_their_bytes() {
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for len in [1, 2, 7, 8, 9, 16, 38, 39, 40] {
            for fill in [0u8, 1, 0x7f, 0x80, 0xff] {
                strings.push(vec![fill; len]);
                let mut last_differs = vec![fill; len];
                last_differs[len - 1] = fill.wrapping_add(1);
                strings.push(last_differs);
            }
        }
        strings.push(b"ab".to_vec());
        strings.push(b"ab\0".to_vec());
        strings.push(b"ab\0\0\0\0\0\0\0".to_vec());
        strings.push(b"K\x01\x02\x03\x04\x05\x06\x07rest of a public key...!".to_vec());
        for a in &strings {
            for b in &strings {
                let (key_a, key_b) = (Key::new(a), Key::new(b));
                assert_eq!(key_a.cmp(&key_b), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(key_a == key_b, a == b);
            }
        }
    }
}
