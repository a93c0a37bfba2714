//! Little-endian byte reading and writing for the on-disk formats. The reader
//! never panics: every read is bounds-checked and reports the offset where it
//! stopped.

use everarcade_protocol::Hash;

/// Appends little-endian integers and raw bytes.
pub(crate) trait Put {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
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
pub(crate) struct DecodeError {
    pub what: String,
    pub offset: usize,
}

/// A bounds-checked cursor over a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            offset: self.offset,
        }
    }

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

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        Ok(slice.try_into().expect("take returned N bytes"))
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub fn hash(&mut self, what: &str) -> Result<Hash, DecodeError> {
        Ok(Hash(self.array(what)?))
    }

    /// Requires that every byte was consumed.
    pub fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{what}: {} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}
