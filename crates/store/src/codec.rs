//! Little-endian byte reading and writing for the on-disk formats (and the
//! audit crate's bundles and proofs). The reader never panics: every read is
//! bounds-checked and reports the offset where it stopped, and nothing is
//! allocated from a count the remaining bytes cannot back.

use everarcade_protocol::Hash;

/// Appends little-endian integers and raw bytes.
pub trait Put {
    /// One byte.
    fn put_u8(&mut self, value: u8);
    /// A little-endian `u16`.
    fn put_u16(&mut self, value: u16);
    /// A little-endian `u32`.
    fn put_u32(&mut self, value: u32);
    /// A little-endian `u64`.
    fn put_u64(&mut self, value: u64);
    /// A hash's 32 bytes.
    fn put_hash(&mut self, value: &Hash);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }
    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_hash(&mut self, value: &Hash) {
        self.extend_from_slice(&value.0);
    }
}

/// Why bytes did not decode: what was wrong, and where (relative to the
/// start of the reader's slice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub what: String,
    /// Byte offset of the field.
    pub offset: usize,
}

/// A bounds-checked cursor over a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// An error at the current offset.
    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        self.error_at(self.offset, what)
    }

    /// An error at `offset` (a field read earlier).
    pub fn error_at(&self, offset: usize, what: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            offset,
        }
    }

    /// The next `length` bytes.
    pub fn take(&mut self, length: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if length > self.remaining() {
            return Err(self.error(format!(
                "{what}: needs {length} bytes, {} remain",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.offset..self.offset + length];
        self.offset += length;
        Ok(slice)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        Ok(slice.try_into().expect("take returned N bytes"))
    }

    /// One byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A 32-byte hash.
    pub fn hash(&mut self, what: &str) -> Result<Hash, DecodeError> {
        Ok(Hash(self.array(what)?))
    }

    /// A count of items each at least `item_bytes_min` long: refused when the
    /// bytes left cannot hold that many, so it is safe to reserve.
    pub fn count(
        &mut self,
        value: u64,
        item_bytes_min: usize,
        what: &str,
    ) -> Result<usize, DecodeError> {
        let fits = (self.remaining() / item_bytes_min.max(1)) as u64;
        if value > fits {
            return Err(self.error(format!(
                "{what} {value} exceeds what the remaining {} bytes can hold",
                self.remaining()
            )));
        }
        Ok(value as usize)
    }

    /// Requires that every byte was consumed.
    pub fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{what}: {} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}
