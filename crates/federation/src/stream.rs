//! The record stream's framing (docs/FORMATS.md §Record stream): how an
//! authority answers a follower's `GET /v1/worlds/{world}/records`, and how
//! a batch of carried records reaches a follower's world.
//!
//! ```text
//! stream := frame*
//! frame  := ordinal u64 | length u32 | record[length]
//! ```
//!
//! Integers are little-endian; `record` is one whole journal record, its
//! exact bytes (docs/FORMATS.md §Journal); ordinals are consecutive.

use everarcade_store::journal::RecordKind;
use everarcade_store::journal::{RECORD_BODY_BYTES_MAX, RECORD_HEADER_BYTES, RECORD_TRAILER_BYTES};
use everarcade_world::DurableWorld;
use everarcade_world::follow::{Applied, FollowError, Head};

use crate::error::FederationError;
use crate::wire::{Position, WireRecord};

/// Bytes of a frame before its record.
pub const FRAME_HEADER_BYTES: usize = 12;
/// The largest record a frame may carry.
pub const FRAME_RECORD_BYTES_MAX: usize =
    RECORD_HEADER_BYTES + RECORD_BODY_BYTES_MAX as usize + RECORD_TRAILER_BYTES;

/// Appends `records` framed to `out`.
pub fn encode_stream(records: &[WireRecord], out: &mut Vec<u8>) {
    for record in records {
        out.extend_from_slice(&record.ordinal.to_le_bytes());
        out.extend_from_slice(&(record.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&record.bytes);
    }
}

/// Splits a stream into its records. Checks the framing only (whole
/// frames, lengths within the limit, consecutive ordinals, a known kind
/// byte); the records themselves are checked by the follower's world.
/// Never panics.
pub fn decode_stream(mut bytes: &[u8]) -> Result<Vec<WireRecord>, FederationError> {
    let mut records: Vec<WireRecord> = Vec::new();
    let mut offset = 0usize;
    while !bytes.is_empty() {
        let bad = |what: String| FederationError::Framing(format!("{what} at byte {offset}"));
        if bytes.len() < FRAME_HEADER_BYTES {
            return Err(bad("the stream ends inside a frame header".into()));
        }
        let ordinal = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let length = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        if length > FRAME_RECORD_BYTES_MAX || length < RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES {
            return Err(bad(format!("a frame of {length} bytes is not a record")));
        }
        let rest = &bytes[FRAME_HEADER_BYTES..];
        if rest.len() < length {
            return Err(bad(format!(
                "the stream ends inside record {ordinal} ({} of {length} bytes)",
                rest.len()
            )));
        }
        if let Some(last) = records.last()
            && last.ordinal.checked_add(1) != Some(ordinal)
        {
            return Err(bad(format!(
                "record {ordinal} follows record {}",
                last.ordinal
            )));
        }
        let kind = RecordKind::from_byte(rest[4])
            .ok_or_else(|| bad(format!("record {ordinal} has unknown kind {}", rest[4])))?;
        records.push(WireRecord {
            ordinal,
            kind,
            bytes: rest[..length].to_vec(),
        });
        bytes = &rest[length..];
        offset += FRAME_HEADER_BYTES + length;
    }
    Ok(records)
}

impl From<Head> for Position {
    fn from(head: Head) -> Position {
        Position {
            ordinal: head.ordinal,
            checksum: head.checksum,
            tick: head.tick,
        }
    }
}

/// Hands carried records to a follower's world (see
/// `DurableWorld::apply_records`): what every transport's follower does
/// with what its [`crate::RecordSource`] returns.
pub fn apply(world: &mut DurableWorld, records: &[WireRecord]) -> Result<Applied, FollowError> {
    let borrowed: Vec<(u64, &[u8])> = records
        .iter()
        .map(|record| (record.ordinal, record.bytes.as_slice()))
        .collect();
    world.apply_records(&borrowed)
}
