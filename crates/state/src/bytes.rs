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
/// worlds (`player/00042/state`) are shorter; the type is then 32 bytes,
/// the size of a `Vec<u8>` plus one word.
pub(crate) const KEY_INLINE_BYTES_MAX: usize = 30;

/// Bytes of a value kept inline; longer values go to the heap. The type is
/// then 48 bytes.
pub(crate) const VALUE_INLINE_BYTES_MAX: usize = 46;

/// A byte string of at most `N` bytes inline, or any length on the heap.
/// Equality, order and hashing are those of the bytes (`[u8]`), whichever
/// way they are stored, so it can key a `BTreeMap` looked up by `&[u8]`.
/// It dereferences to `[u8]`.
#[derive(Clone)]
pub enum InlineBytes<const N: usize> {
    /// `data[..len]` holds the bytes; `len <= N`.
    #[doc(hidden)]
    Inline { len: u8, data: [u8; N] },
    /// More than `N` bytes.
    #[doc(hidden)]
    Heap(Box<[u8]>),
}

/// A state key held by value: up to 30 bytes inline (no allocation).
pub type Key = InlineBytes<KEY_INLINE_BYTES_MAX>;
/// A state value held by value, as [`crate::State::set`] and
/// [`crate::State::delete`] give back the previous one: up to 46 bytes
/// inline (no allocation).
pub type Value = InlineBytes<VALUE_INLINE_BYTES_MAX>;

const _: () = assert!(std::mem::size_of::<Key>() == 32);
const _: () = assert!(std::mem::size_of::<Value>() == 48);

impl<const N: usize> InlineBytes<N> {
    /// A copy of `bytes`: inline if it fits, else one heap allocation.
    pub fn new(bytes: &[u8]) -> InlineBytes<N> {
        const { assert!(N <= u8::MAX as usize, "the length must fit a u8") };
        if bytes.len() > N {
            return InlineBytes::Heap(bytes.into());
        }
        let mut data = [0u8; N];
        data[..bytes.len()].copy_from_slice(bytes);
        InlineBytes::Inline {
            len: bytes.len() as u8,
            data,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            InlineBytes::Inline { len, data } => &data[..usize::from(*len)],
            InlineBytes::Heap(bytes) => bytes,
        }
    }

    /// The bytes as a `Vec` (no copy when they are on the heap).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            InlineBytes::Inline { .. } => self.as_slice().to_vec(),
            InlineBytes::Heap(bytes) => bytes.into_vec(),
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

impl<const N: usize> Ord for InlineBytes<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
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
        assert!(matches!(short, InlineBytes::Inline { .. }));
        assert!(matches!(long, InlineBytes::Heap(_)));
        assert_eq!(short.as_slice(), b"ab");
        assert_eq!(long.as_slice(), &[b'a'; 40][..]);
        // [b'a'; 40] < "ab" bytewise, whatever the storage.
        assert!(long < short);
        assert_eq!(Key::new(&[7; 30]), Key::new(&[7; 30]));
        assert!(matches!(Key::new(&[7; 30]), InlineBytes::Inline { .. }));
        assert!(matches!(Key::new(&[7; 31]), InlineBytes::Heap(_)));
        assert_eq!(Value::new(b"").into_vec(), Vec::<u8>::new());
        assert_eq!(Value::new(&[1; 47]).into_vec(), vec![1; 47]);
        let borrowed: &[u8] = short.borrow();
        assert_eq!(borrowed, b"ab");
    }
}
