//! The journal: segmented, append-only files of length-prefixed,
//! checksummed, hash-chained records (docs/FORMATS.md §Journal).
//!
//! ```text
//! segment := header(128) record*
//! header  := magic "EAJOURNL" | version u16 | zero[6] | index u64 | zero[8]
//!            | genesis_root[32] | prev[32] | checksum[32]
//! record  := body_length u32 | kind u8 | zero[3] | prev[32] | body | checksum[32]
//! ```
//!
//! A record's checksum is `H(JournalRecord, every byte of the record before
//! it)`, and its `prev` is the previous record's checksum (`C(0)` before the
//! first record), so every checksum commits to the whole history.
//!
//! Only the end of the newest segment may be torn (an interrupted append);
//! anything else that does not check out is corruption.

mod reader;
mod record;
mod writer;

pub use reader::{JournalEnd, JournalPosition, JournalReader, RawRecord, TornTail};
pub use record::{GenesisRecord, InputsRecord, Record, RecordKind, TickRecord};
pub use writer::{JournalConfig, JournalWriter};

use everarcade_protocol::{Domain, Hash};

use crate::codec::{DecodeError, Put, Reader};

/// The segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"EAJOURNL";
/// The journal format version this runtime writes and reads.
pub const JOURNAL_VERSION: u16 = 1;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 128;
/// Bytes of a record before its body.
pub const RECORD_HEADER_BYTES: usize = 40;
/// Bytes of a record after its body (the checksum).
pub const RECORD_TRAILER_BYTES: usize = 32;
/// The largest record body. A tick of `inputs_per_tick` (at most 65,536)
/// receipts is 5.4 MiB; larger input batches are split by the writer.
pub const RECORD_BODY_BYTES_MAX: u32 = 16 * 1024 * 1024;

const _: () = assert!(
    65_537 * everarcade_protocol::RECEIPT_BYTES + 8 + 4 + 128 + 4 <= RECORD_BODY_BYTES_MAX as usize
);

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// 1 for the first segment, then consecutive.
    pub index: u64,
    /// `C(0)` of the world.
    pub genesis_root: Hash,
    /// The checksum of the last record before this segment (`C(0)` for segment 1).
    pub prev: Hash,
}

impl SegmentHeader {
    /// The 128 header bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEGMENT_HEADER_BYTES);
        out.extend_from_slice(&SEGMENT_MAGIC);
        out.put_u16(JOURNAL_VERSION);
        out.extend_from_slice(&[0; 6]);
        out.put_u64(self.index);
        out.extend_from_slice(&[0; 8]);
        out.put_hash(&self.genesis_root);
        out.put_hash(&self.prev);
        let checksum = Domain::JournalSegment.hash(&out);
        out.put_hash(&checksum);
        assert_eq!(out.len(), SEGMENT_HEADER_BYTES);
        out
    }

    /// Decodes and checks a header. The version is returned separately in the
    /// error path so callers can report an unsupported version distinctly.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let mut reader = Reader::new(bytes);
        let magic: [u8; 8] = reader.array("magic")?;
        if magic != SEGMENT_MAGIC {
            return Err(reader.error("not a journal segment (bad magic)").into());
        }
        let version = reader.u16("version")?;
        if version != JOURNAL_VERSION {
            return Err(HeaderError::Version(version));
        }
        if reader.array::<6>("reserved")? != [0; 6] {
            return Err(reader.error("reserved bytes are not zero").into());
        }
        let index = reader.u64("segment index")?;
        if reader.array::<8>("reserved")? != [0; 8] {
            return Err(reader.error("reserved bytes are not zero").into());
        }
        let genesis_root = reader.hash("genesis root")?;
        let prev = reader.hash("prev")?;
        let checksum = reader.hash("checksum")?;
        if Domain::JournalSegment.hash(&bytes[..96]) != checksum {
            return Err(DecodeError {
                what: "segment header checksum does not match".into(),
                offset: 96,
            }
            .into());
        }
        Ok(SegmentHeader {
            index,
            genesis_root,
            prev,
        })
    }
}

/// Why a segment header did not decode.
#[derive(Debug)]
pub(crate) enum HeaderError {
    Version(u16),
    Bad(DecodeError),
}

impl From<DecodeError> for HeaderError {
    fn from(error: DecodeError) -> HeaderError {
        HeaderError::Bad(error)
    }
}

/// Encodes one whole record (header, body, checksum) chained to `prev`;
/// returns its checksum.
pub fn encode_record(kind: RecordKind, body: &[u8], prev: &Hash, out: &mut Vec<u8>) -> Hash {
    assert!(
        body.len() <= RECORD_BODY_BYTES_MAX as usize,
        "record body over the limit"
    );
    let start = out.len();
    out.put_u32(body.len() as u32);
    out.put_u8(kind as u8);
    out.extend_from_slice(&[0; 3]);
    out.put_hash(prev);
    out.extend_from_slice(body);
    let checksum = Domain::JournalRecord.hash(&out[start..]);
    out.put_hash(&checksum);
    checksum
}

/// One whole record as [`encode_record`] writes it, its framing and
/// checksum checked, its body not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFrame<'a> {
    /// The kind byte.
    pub kind: RecordKind,
    /// The previous record's checksum.
    pub prev: Hash,
    /// The body.
    pub body: &'a [u8],
    /// The record's checksum.
    pub checksum: Hash,
}

/// Checks one whole record (a record carried on its own, as federation
/// does): length, kind, reserved bytes and checksum; `bytes` must hold
/// exactly the record. The inverse of [`encode_record`]; never panics.
pub fn decode_record_frame(bytes: &[u8]) -> Result<RecordFrame<'_>, String> {
    if bytes.len() < RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES {
        return Err(format!(
            "{} bytes is shorter than a record's header and checksum",
            bytes.len()
        ));
    }
    let body_length = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let kind = RecordKind::from_byte(bytes[4])
        .ok_or_else(|| format!("unknown record kind {}", bytes[4]))?;
    if bytes[5..8] != [0, 0, 0] {
        return Err("reserved record bytes are not zero".into());
    }
    if body_length > RECORD_BODY_BYTES_MAX {
        return Err(format!(
            "record body length {body_length} is over the limit"
        ));
    }
    let end = RECORD_HEADER_BYTES + body_length as usize;
    if bytes.len() != end + RECORD_TRAILER_BYTES {
        return Err(format!(
            "the record says its body is {body_length} bytes, but {} bytes were given for the whole record",
            bytes.len()
        ));
    }
    let checksum = Hash(bytes[end..].try_into().expect("32 bytes"));
    if Domain::JournalRecord.hash(&bytes[..end]) != checksum {
        return Err("record checksum does not match".into());
    }
    Ok(RecordFrame {
        kind,
        prev: Hash(bytes[8..40].try_into().expect("32 bytes")),
        body: &bytes[RECORD_HEADER_BYTES..end],
        checksum,
    })
}

/// Decodes a record body (for fuzzing and tools); see [`Record`].
pub fn decode_body(kind: RecordKind, body: &[u8]) -> Result<Record, String> {
    Record::decode_body(kind, body)
        .map_err(|error| format!("{} at byte {}", error.what, error.offset))
}
