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

use everarcade_protocol::SignatureRule;
use everarcade_store::journal::RecordKind;
use everarcade_store::journal::{RECORD_BODY_BYTES_MAX, RECORD_HEADER_BYTES, RECORD_TRAILER_BYTES};
use everarcade_world::DurableWorld;
use everarcade_world::follow::{Applied, CheckedSignatures, FollowError, Head};

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
        if !(RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES..=FRAME_RECORD_BYTES_MAX).contains(&length)
        {
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
    match apply_until_refused(world, records) {
        (applied, None) => Ok(applied),
        (_, Some(error)) => Err(error),
    }
}

/// [`apply`] that also reports the ticks journaled ahead of a refused
/// record (`DurableWorld::apply_records_until_refused`).
pub fn apply_until_refused(
    world: &mut DurableWorld,
    records: &[WireRecord],
) -> (Applied, Option<FollowError>) {
    apply_checked_until_refused(world, records, None)
}

/// [`apply_until_refused`] with the batch's signatures checked ahead
/// ([`check_signatures`]; `DurableWorld::apply_checked_until_refused`).
pub fn apply_checked_until_refused(
    world: &mut DurableWorld,
    records: &[WireRecord],
    checked: Option<CheckedSignatures>,
) -> (Applied, Option<FollowError>) {
    world.apply_checked_until_refused(&borrow(records), checked)
}

/// The signatures of a batch's inputs records, checked at once on every
/// core under `rule`, for [`apply_checked_until_refused`].
pub fn check_signatures(records: &[WireRecord], rule: SignatureRule) -> CheckedSignatures {
    everarcade_world::follow::check_signatures(&borrow(records), rule)
}

fn borrow(records: &[WireRecord]) -> Vec<(u64, &[u8])> {
    records
        .iter()
        .map(|record| (record.ordinal, record.bytes.as_slice()))
        .collect()
}

/// Where an authority's journal is durable: records wholly before byte
/// `length` of segment `segment` (and every record of earlier segments)
/// are fdatasynced (`DurableWorld::journal_end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableEnd {
    /// The newest segment's index.
    pub segment: u64,
    /// Durable bytes in it.
    pub length: u64,
}

/// The journal in `journal_dir`, opened for reading from its first record.
fn open_journal<'a>(
    storage: &'a dyn everarcade_store::Storage,
    journal_dir: &std::path::Path,
) -> Result<everarcade_store::JournalReader<'a>, FederationError> {
    everarcade_store::JournalReader::open(storage, journal_dir).map_err(journal_unavailable)
}

fn journal_unavailable(error: everarcade_store::StoreError) -> FederationError {
    FederationError::Unavailable(format!("reading the journal: {error}"))
}

/// Bytes read from a segment at a time by [`JournalTail`] (a record longer
/// than this is read whole on its own).
const TAIL_CHUNK_BYTES: usize = 1 << 20;

/// An authority's forward reader of its own journal: each
/// [`JournalTail::read`] reads only the bytes after the last record it
/// returned, up to the durable end, instead of the journal from its first
/// segment every time. Every record's framing, checksum and chain are
/// checked as they are read.
#[derive(Clone, Debug)]
pub struct JournalTail {
    dir: std::path::PathBuf,
    segment: u64,
    offset: u64,
    ordinal: u64,
    checksum: everarcade_protocol::Hash,
}

impl JournalTail {
    /// A tail positioned right after record `ordinal`, which must have
    /// `checksum` here and lie within the durable end `end` (else
    /// `peer_diverged`: the asker is not on this chain, or holds records
    /// this journal has not made durable); finds it with one scan of the
    /// journal.
    pub fn after(
        storage: &dyn everarcade_store::Storage,
        journal_dir: &std::path::Path,
        ordinal: u64,
        checksum: &everarcade_protocol::Hash,
        end: DurableEnd,
    ) -> Result<JournalTail, FederationError> {
        let mut reader = open_journal(storage, journal_dir)?;
        let mut at = 0u64;
        while let Some(raw) = reader.next().map_err(journal_unavailable)? {
            let position = reader.position().expect("a record was read");
            if (position.segment, position.offset) > (end.segment, end.length) {
                break;
            }
            if at == ordinal {
                if raw.checksum != *checksum {
                    return Err(FederationError::Diverged(format!(
                        "record {ordinal} has checksum {} here, not {checksum}",
                        raw.checksum
                    )));
                }
                return Ok(JournalTail {
                    dir: journal_dir.to_path_buf(),
                    segment: position.segment,
                    offset: position.offset,
                    ordinal,
                    checksum: raw.checksum,
                });
            }
            at += 1;
        }
        Err(FederationError::Diverged(format!(
            "record {ordinal} is past this journal's durable end (record {})",
            at.saturating_sub(1)
        )))
    }

    /// The last record returned (or the one the tail was opened after).
    pub fn position(&self) -> Position {
        Position {
            ordinal: self.ordinal,
            checksum: self.checksum,
            tick: 0,
        }
    }

    /// The records after the last one returned, up to `end`, at most
    /// `max_bytes` of framed records (but at least one when there is one).
    pub fn read(
        &mut self,
        storage: &dyn everarcade_store::Storage,
        end: DurableEnd,
        max_bytes: usize,
    ) -> Result<Vec<WireRecord>, FederationError> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while (self.segment, self.offset) < (end.segment, end.length) {
            let path = self
                .dir
                .join(everarcade_store::layout::segment_name(self.segment));
            let unavailable = |error: std::io::Error| {
                FederationError::Unavailable(format!("reading {}: {error}", path.display()))
            };
            let limit = if self.segment == end.segment {
                (end.length - self.offset) as usize
            } else {
                usize::MAX
            };
            let mut chunk = storage
                .read_at(&path, self.offset, limit.min(TAIL_CHUNK_BYTES))
                .map_err(unavailable)?;
            if chunk.is_empty() {
                if self.segment == end.segment {
                    break;
                }
                // This segment is read to its end; the next one's records
                // follow its header.
                self.segment += 1;
                self.offset = everarcade_store::journal::SEGMENT_HEADER_BYTES as u64;
                continue;
            }
            if chunk.len() < RECORD_HEADER_BYTES {
                return Err(FederationError::Unavailable(format!(
                    "{}: {} bytes at offset {} where a record should begin",
                    path.display(),
                    chunk.len(),
                    self.offset
                )));
            }
            let whole_at = |chunk: &[u8], at: usize| {
                let body = u32::from_le_bytes(chunk[at..at + 4].try_into().expect("4 bytes"));
                RECORD_HEADER_BYTES
                    + body.min(RECORD_BODY_BYTES_MAX) as usize
                    + RECORD_TRAILER_BYTES
            };
            let first = whole_at(&chunk, 0);
            if first > chunk.len() {
                // A record longer than a chunk: read it whole.
                chunk = storage
                    .read_at(&path, self.offset, first.min(limit))
                    .map_err(unavailable)?;
                if chunk.len() < first {
                    return Err(FederationError::Unavailable(format!(
                        "{}: the record at offset {} ends past the durable end",
                        path.display(),
                        self.offset
                    )));
                }
            }
            let mut at = 0;
            while at + RECORD_HEADER_BYTES <= chunk.len() {
                let whole = whole_at(&chunk, at);
                if at + whole > chunk.len() {
                    break;
                }
                if !records.is_empty() && bytes + FRAME_HEADER_BYTES + whole > max_bytes {
                    return Ok(records);
                }
                let record = &chunk[at..at + whole];
                let frame =
                    everarcade_store::journal::decode_record_frame(record).map_err(|what| {
                        FederationError::Unavailable(format!(
                            "{} at offset {}: {what}",
                            path.display(),
                            self.offset
                        ))
                    })?;
                if frame.prev != self.checksum {
                    return Err(FederationError::Unavailable(format!(
                        "{} at offset {}: the record does not chain to record {}",
                        path.display(),
                        self.offset,
                        self.ordinal
                    )));
                }
                self.ordinal += 1;
                self.checksum = frame.checksum;
                self.offset += whole as u64;
                at += whole;
                bytes += FRAME_HEADER_BYTES + whole;
                records.push(WireRecord {
                    ordinal: self.ordinal,
                    kind: frame.kind,
                    bytes: record.to_vec(),
                });
            }
        }
        Ok(records)
    }
}

/// The journal's first record, the genesis record (ordinal 0), as carried:
/// what an authority publishes first to an empty stream.
pub fn read_genesis(
    storage: &dyn everarcade_store::Storage,
    journal_dir: &std::path::Path,
) -> Result<WireRecord, FederationError> {
    let mut reader = open_journal(storage, journal_dir)?;
    let raw = reader
        .next()
        .map_err(journal_unavailable)?
        .ok_or_else(|| FederationError::Unavailable("the journal is empty".into()))?;
    let prev = reader.genesis_root().expect("a record was read");
    let mut whole = Vec::with_capacity(raw.encoded_len() as usize);
    everarcade_store::journal::encode_record(raw.kind, &raw.body, &prev, &mut whole);
    Ok(WireRecord {
        ordinal: 0,
        kind: raw.kind,
        bytes: whole,
    })
}

/// Every record of the journal up to the durable end as (ordinal,
/// checksum), ascending: what a returning authority compares with the
/// stream (`RecordLog::last_shared`).
pub fn checksums(
    storage: &dyn everarcade_store::Storage,
    journal_dir: &std::path::Path,
) -> Result<Vec<(u64, everarcade_protocol::Hash)>, FederationError> {
    let mut reader = open_journal(storage, journal_dir)?;
    let mut out = Vec::new();
    while let Some(raw) = reader.next().map_err(journal_unavailable)? {
        out.push((out.len() as u64, raw.checksum));
    }
    Ok(out)
}
