//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz), kept here so that
//! a stable-toolchain test can replay the committed corpus through exactly
//! the same code (`tests/store/fuzz_corpus.rs`).
//!
//! Each function takes arbitrary bytes and must never panic: a panic is a
//! finding. Besides "no panic", they assert properties that hold for every
//! input: errors are integrity errors, a torn tail ends the file, and
//! whatever decodes re-encodes to exactly the same bytes (every format has
//! one encoding). Checksums stop a fuzzer at the first hash, so each target
//! also runs a *repaired* copy of its input whose checksums and chain links
//! are recomputed, which lets mutations reach the decoders behind them.

use std::path::Path;

use everarcade_protocol::{Domain, Hash};

use crate::checkpoint::{decode_checkpoint, encode_checkpoint};
use crate::journal::{
    JournalReader, RECORD_BODY_BYTES_MAX, RECORD_HEADER_BYTES, RECORD_TRAILER_BYTES, RawRecord,
    RecordKind, SEGMENT_HEADER_BYTES, SegmentHeader, decode_body, encode_record,
};
use crate::layout::segment_name;
use crate::sim::SimStorage;
use crate::storage::Storage;

/// Target `journal_segment`: `data` as segment 1 of a journal, read whole
/// with [`JournalReader`], every record decoded; then the same with the
/// header checksum and every record's `prev` and checksum repaired.
pub fn journal_segment(data: &[u8]) {
    read_segment(data);
    if let Some(repaired) = repair_segment(data) {
        read_segment(&repaired);
    }
}

/// Target `journal_record`: `data` as a record body of each kind.
pub fn journal_record(data: &[u8]) {
    for kind in [RecordKind::Genesis, RecordKind::Inputs, RecordKind::Tick] {
        check_body(kind, data);
    }
}

/// Target `checkpoint`: `data` as a checkpoint file, then the same with its
/// trailing checksum recomputed.
pub fn checkpoint(data: &[u8]) {
    check_checkpoint(data);
    if let Some(body_end) = data.len().checked_sub(32) {
        let mut repaired = data.to_vec();
        let checksum = Domain::Checkpoint.hash(&repaired[..body_end]);
        repaired[body_end..].copy_from_slice(&checksum.0);
        check_checkpoint(&repaired);
    }
}

fn check_body(kind: RecordKind, body: &[u8]) {
    if let Ok(record) = decode_body(kind, body) {
        assert_eq!(record.kind(), kind, "decoded as another kind");
        assert_eq!(
            record.encode_body(),
            body,
            "a {kind:?} body re-encodes differently"
        );
    }
}

fn check_checkpoint(bytes: &[u8]) {
    let Ok(checkpoint) = decode_checkpoint(bytes) else {
        return;
    };
    let encoded = encode_checkpoint(
        checkpoint.tick,
        &checkpoint.genesis_root,
        &checkpoint.continuity_root,
        &checkpoint.state_root,
        &checkpoint.state,
        &checkpoint.nonces,
    );
    assert_eq!(encoded, bytes, "a checkpoint re-encodes differently");
}

/// Reads `bytes` as the only segment of a journal and checks what the reader
/// reports against the bytes.
fn read_segment(bytes: &[u8]) {
    let storage = SimStorage::new();
    let dir = Path::new("/fuzz/journal");
    storage
        .write_synced(&dir.join(segment_name(1)), bytes)
        .expect("the simulated disk takes any bytes");
    let mut reader = JournalReader::open(&storage, dir).expect("segment 1 is there");
    let mut records: Vec<RawRecord> = Vec::new();
    loop {
        match reader.next() {
            Ok(Some(record)) => {
                if let Ok(decoded) = record.decode() {
                    assert_eq!(
                        decoded.encode_body(),
                        record.body,
                        "body re-encodes differently"
                    );
                }
                records.push(record);
            }
            Ok(None) => break,
            Err(error) => {
                assert!(error.is_integrity(), "not an integrity error: {error}");
                return;
            }
        }
    }
    let end = reader.end().length as usize;
    match reader.torn_tail() {
        Some(torn) => {
            assert_eq!(
                torn.offset + torn.bytes,
                bytes.len() as u64,
                "it runs to the end"
            );
            // A journal without one complete record is torn as a whole.
            let whole = torn.offset == 0 && records.is_empty();
            assert!(
                whole || torn.offset as usize == end,
                "it starts where reading ended"
            );
        }
        None => assert_eq!(end, bytes.len(), "an untorn segment is read to its end"),
    }
    if end >= SEGMENT_HEADER_BYTES {
        let genesis_root = reader.genesis_root().expect("the header was read");
        assert_eq!(rebuild(&genesis_root, &records), bytes[..end]);
    }
}

/// Segment 1 as the writer would have written these records.
fn rebuild(genesis_root: &Hash, records: &[RawRecord]) -> Vec<u8> {
    let header = SegmentHeader {
        index: 1,
        genesis_root: *genesis_root,
        prev: *genesis_root,
    };
    let mut out = header.encode();
    let mut prev = *genesis_root;
    for record in records {
        prev = encode_record(record.kind, &record.body, &prev, &mut out);
        assert_eq!(prev, record.checksum);
    }
    out
}

/// `bytes` with the header's `prev` set to its genesis root, its checksum
/// recomputed, and each record (as far as its length allows) chained to the
/// one before and checksummed.
fn repair_segment(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return None;
    }
    let mut out = bytes.to_vec();
    // Segment 1 chains from the genesis root.
    out.copy_within(32..64, 64);
    let checksum = Domain::JournalSegment.hash(&out[..96]);
    out[96..SEGMENT_HEADER_BYTES].copy_from_slice(&checksum.0);
    let mut prev: [u8; 32] = out[32..64].try_into().expect("32 bytes");
    let mut offset = SEGMENT_HEADER_BYTES;
    while out.len() - offset >= RECORD_HEADER_BYTES {
        let length = u32::from_le_bytes(out[offset..offset + 4].try_into().expect("4 bytes"));
        out[offset + 8..offset + RECORD_HEADER_BYTES].copy_from_slice(&prev);
        let body_end = offset + RECORD_HEADER_BYTES + length as usize;
        let total = body_end + RECORD_TRAILER_BYTES;
        if length > RECORD_BODY_BYTES_MAX || total > out.len() {
            break;
        }
        prev = Domain::JournalRecord.hash(&out[offset..body_end]).0;
        out[body_end..total].copy_from_slice(&prev);
        offset = total;
    }
    Some(out)
}
