//! A journal forger: rewrites the records of a segment and recomputes what a
//! forger can recompute (every length, checksum and `prev` link), so that
//! only what needs a secret or a replay (signatures, roots) can give the
//! forgery away. The layout is `docs/FORMATS.md` §2, written out here rather
//! than taken from the store.

use everarcade_protocol::Domain;

/// Bytes of a segment header (§2.1).
pub const SEGMENT_HEADER_BYTES: usize = 128;
/// Where the segment header's `prev` (the chain value the first record links
/// to) starts.
pub const SEGMENT_PREV_OFFSET: usize = 64;
/// Bytes of a record header: `length: u32`, `kind: u8`, 3 zero bytes,
/// `prev: [u8; 32]`.
pub const RECORD_HEADER_BYTES: usize = 40;
/// Bytes of a record trailer: the chain hash of header and body.
pub const RECORD_TRAILER_BYTES: usize = 32;
/// The kind of an inputs record.
pub const KIND_INPUTS: u8 = 2;
/// The kind of a tick record.
pub const KIND_TICK: u8 = 3;

/// The tick number an inputs or tick record body starts with.
pub fn body_tick(body: &[u8]) -> u64 {
    u64::from_le_bytes(body[..8].try_into().expect("a body starts with its tick"))
}

/// Rewrites every record of the segment `bytes` through `edit(kind, body)`
/// and re-chains the whole segment: each record's length, `prev` link and
/// trailer are recomputed, starting from the `prev` in the segment header
/// (which is kept). Returns the forged segment. A journal of one segment is
/// thus forged whole; with later segments, their headers' `prev` would no
/// longer match.
pub fn forge_segment(bytes: &[u8], mut edit: impl FnMut(u8, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = bytes[..SEGMENT_HEADER_BYTES].to_vec();
    let mut prev: [u8; 32] = bytes[SEGMENT_PREV_OFFSET..SEGMENT_PREV_OFFSET + 32]
        .try_into()
        .expect("32 bytes");
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset < bytes.len() {
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        let length = length as usize;
        let kind = bytes[offset + 4];
        let body_start = offset + RECORD_HEADER_BYTES;
        let mut body = bytes[body_start..body_start + length].to_vec();
        edit(kind, &mut body);
        let start = out.len();
        let body_bytes = u32::try_from(body.len()).expect("a body fits a u32 length");
        out.extend_from_slice(&body_bytes.to_le_bytes());
        out.extend_from_slice(&[kind, 0, 0, 0]);
        out.extend_from_slice(&prev);
        out.extend_from_slice(&body);
        prev = Domain::JournalRecord.hash(&out[start..]).0;
        out.extend_from_slice(&prev);
        offset = body_start + length + RECORD_TRAILER_BYTES;
    }
    out
}
