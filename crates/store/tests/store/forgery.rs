//! The store checks integrity, not truth: someone who rewrites a record and
//! recomputes every checksum after it produces a journal the store accepts.
//! Catching that is the world layer's job (signatures, the roots replayed
//! against the package); this test pins down where the store's duty ends.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_protocol::{Domain, Envelope};
use everarcade_store::journal::{RECORD_HEADER_BYTES, Record, SEGMENT_HEADER_BYTES};
use everarcade_store::{SimStorage, StoreError};

use crate::common::{
    History, read_journal, segment_files, segments_of, sim_journal, sim_with, world, write_history,
};

/// Recomputes every segment header's `prev` and checksum and every record's
/// `prev` and checksum, in order: what a forger with write access does.
fn rechain(segments: &mut [(PathBuf, Vec<u8>)]) {
    let genesis: [u8; 32] = segments[0].1[32..64].try_into().unwrap();
    let mut prev = genesis;
    for (_, bytes) in segments.iter_mut() {
        bytes[64..96].copy_from_slice(&prev);
        let checksum = Domain::JournalSegment.hash(&bytes[..96]);
        bytes[96..SEGMENT_HEADER_BYTES].copy_from_slice(&checksum.0);
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset < bytes.len() {
            let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            bytes[offset + 8..offset + RECORD_HEADER_BYTES].copy_from_slice(&prev);
            let body_end = offset + RECORD_HEADER_BYTES + length;
            prev = Domain::JournalRecord.hash(&bytes[offset..body_end]).0;
            bytes[body_end..body_end + 32].copy_from_slice(&prev);
            offset = body_end + 32;
        }
    }
}

#[test]
fn a_rechained_forgery_passes_the_store_and_fails_the_signature() {
    let storage = Arc::new(SimStorage::new());
    let history = History::new(&world(), 8, 3);
    write_history(storage.clone(), &sim_journal(), &history, segments_of(2500));
    let original = read_journal(&*storage, &sim_journal()).unwrap();
    let mut segments = segment_files(&*storage, &sim_journal());
    assert!(segments.len() >= 3);

    // The inputs record of tick 2, which is not in the last segment.
    let target = original
        .records
        .iter()
        .position(|raw| raw.decode().unwrap() == history.records[3])
        .unwrap();
    let raw = &original.records[target];
    assert_ne!(&raw.path, &segments.last().unwrap().0);
    let Record::Inputs(inputs) = &history.records[3] else {
        panic!("record 3 is tick 2's inputs");
    };
    let payload = &inputs.envelopes[1].payload;
    let encoded = inputs.envelopes[1].encode();
    let in_body = find(&raw.body, &encoded) + encoded.len() - 64 - payload.len();
    let segment = segments
        .iter()
        .position(|(path, _)| path == &raw.path)
        .unwrap();
    let at = raw.offset as usize + RECORD_HEADER_BYTES + in_body;
    assert_eq!(segments[segment].1[at], payload[0]);
    segments[segment].1[at] ^= 0x20;

    // Without rechaining, the checksum catches it.
    let error = read_journal(&sim_with(&segments), &sim_journal())
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");

    rechain(&mut segments);
    let forged = read_journal(&sim_with(&segments), &sim_journal()).unwrap();
    assert!(forged.torn.is_none());
    let records = forged.decoded();
    assert_eq!(records.len(), history.records.len());
    for (position, (read, original)) in records.iter().zip(&history.records).enumerate() {
        assert_eq!(read == original, position != 3, "record {position}");
    }
    let Record::Inputs(forged_inputs) = &records[3] else {
        panic!("still an inputs record");
    };
    let envelope: &Envelope = &forged_inputs.envelopes[1];
    assert_eq!(envelope.payload[0], payload[0] ^ 0x20);
    assert!(
        envelope.verify_signature().is_err(),
        "the layer above catches this"
    );
    assert!(forged_inputs.envelopes[0].verify_signature().is_ok());
    // Every checksum after the forged record differs from the original's.
    for (read, original) in forged.records.iter().zip(&original.records).skip(target) {
        assert_ne!(read.checksum, original.checksum);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap()
}
