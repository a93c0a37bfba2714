//! Little-endian encoding helpers and a bounds-checked reader: every read
//! names its field and offset, and nothing is allocated from a count that
//! the remaining bytes cannot back.

use everarcade_protocol::Hash;

/// A field that did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub what: String,
    /// Byte offset of the field.
    pub offset: usize,
}

/// Appending fixed-width little-endian fields.
pub(crate) trait Put {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_hash(&mut self, hash: &Hash);
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

    fn put_hash(&mut self, hash: &Hash) {
        self.extend_from_slice(&hash.0);
    }
}

/// Reads fields front to back; never panics.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub(crate) fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            offset: self.offset,
        }
    }

    pub(crate) fn error_at(&self, offset: usize, what: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            offset,
        }
    }

    pub(crate) fn take(&mut self, length: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if length > self.remaining() {
            return Err(self.error(format!(
                "{what}: {length} bytes needed, {} left",
                self.remaining()
            )));
        }
        let bytes = &self.bytes[self.offset..self.offset + length];
        self.offset += length;
        Ok(bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn hash(&mut self, what: &str) -> Result<Hash, DecodeError> {
        Ok(Hash(self.array(what)?))
    }

    /// A count of items each at least `item_bytes_min` long: refused when the
    /// bytes left cannot hold that many, so it is safe to reserve.
    pub(crate) fn count(
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

    pub(crate) fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!(
                "{} trailing bytes after the {what}",
                self.remaining()
            )));
        }
        Ok(())
    }
}
