//! Bit flips anywhere in journal segments and checkpoint files are always
//! detected, and the error says exactly where: a flip is never read as a
//! valid record, and never mistaken for a torn write.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_store::checkpoint::load_checkpoint;
use everarcade_store::journal::{RECORD_BODY_BYTES_MAX, RawRecord, RecordKind};
use everarcade_store::{SimStorage, Storage, StoreError};

use crate::checkpoints::sample_checkpoint;
use crate::common::{
    History, Rng, read_journal, read_journal_partially, segment_files, segments_of, sim_journal,
    sim_with, world, write_history,
};

/// An intact journal of several segments and what reading it gives.
struct Journal {
    segments: Vec<(PathBuf, Vec<u8>)>,
    records: Vec<RawRecord>,
}

impl Journal {
    fn new() -> Journal {
        let storage = Arc::new(SimStorage::new());
        let history = History::new(&world(), 8, 3);
        write_history(storage.clone(), &sim_journal(), &history, segments_of(2500));
        let segments = segment_files(&*storage, &sim_journal());
        assert!(segments.len() >= 3);
        let records = read_journal(&*storage, &sim_journal()).unwrap().records;
        Journal { segments, records }
    }

    fn total_bytes(&self) -> usize {
        self.segments.iter().map(|(_, bytes)| bytes.len()).sum()
    }

    /// Segment and offset of the `global`th byte of the journal.
    fn locate(&self, mut global: usize) -> (usize, usize) {
        for (segment, (_, bytes)) in self.segments.iter().enumerate() {
            if global < bytes.len() {
                return (segment, global);
            }
            global -= bytes.len();
        }
        panic!("offset past the journal");
    }
}

/// What reading must report for one flipped bit.
#[derive(Debug)]
enum Expected {
    Corrupt { offset: u64, what: &'static str },
    Version(u16),
}

fn expected_in_header(offset: usize, bit: u32) -> Expected {
    let corrupt = |at, what| Expected::Corrupt { offset: at, what };
    match offset {
        0..8 => corrupt(8, "bad magic"),
        8..10 => Expected::Version(1 ^ (1 << (bit + 8 * (offset as u32 - 8)))),
        10..16 => corrupt(16, "reserved bytes are not zero"),
        24..32 => corrupt(32, "reserved bytes are not zero"),
        _ => corrupt(96, "segment header checksum does not match"),
    }
}

fn expected_in_record(
    record: &RawRecord,
    segment: &[u8],
    last_segment: bool,
    relative: usize,
    bit: u32,
) -> Expected {
    let what = match relative {
        0..4 => {
            let old = record.body.len() as u64;
            let new = old ^ (1 << (bit + 8 * relative as u32));
            let rest = segment.len() as u64 - record.offset;
            if new > RECORD_BODY_BYTES_MAX as u64 {
                "is over the limit"
            } else if new + 72 <= rest {
                "record checksum does not match"
            } else if !last_segment {
                "segment ends inside a record"
            } else {
                "the length field is damaged"
            }
        }
        4 => match RecordKind::from_byte(record.kind as u8 ^ (1 << bit)) {
            None => "unknown record kind",
            Some(_) => "record checksum does not match",
        },
        5..8 => "reserved record bytes are not zero",
        8..40 => "chain broken",
        _ => "record checksum does not match",
    };
    Expected::Corrupt {
        offset: record.offset,
        what,
    }
}

/// Flips bit `bit` of byte `offset` of segment `segment` and checks the
/// reader's verdict and the records it gave before it.
fn check_journal_flip(journal: &Journal, segment: usize, offset: usize, bit: u32) {
    let (path, bytes) = &journal.segments[segment];
    let last_segment = segment + 1 == journal.segments.len();
    let (expected, records_before) = if offset < 128 {
        let before = journal.records.iter().filter(|r| r.path < *path).count();
        (expected_in_header(offset, bit), before)
    } else {
        let position = journal
            .records
            .iter()
            .position(|r| &r.path == path && r.offset + r.encoded_len() > offset as u64)
            .unwrap();
        let record = &journal.records[position];
        let relative = offset - record.offset as usize;
        let expected = expected_in_record(record, bytes, last_segment, relative, bit);
        (expected, position)
    };
    let mut flipped = journal.segments.clone();
    flipped[segment].1[offset] ^= 1 << bit;
    let context = format!("bit {bit} of byte {offset} of {}", path.display());
    let (error, records) = match read_journal_partially(&sim_with(&flipped), &sim_journal()) {
        Ok(reading) => panic!(
            "{context}: accepted ({} records, torn {:?})",
            reading.records.len(),
            reading.torn
        ),
        Err(failure) => failure,
    };
    match (&expected, &error) {
        (
            Expected::Corrupt { offset, what },
            StoreError::Corrupt {
                path: found_path,
                offset: found_offset,
                what: found_what,
            },
        ) => {
            assert_eq!(found_path, path, "{context}: {error}");
            assert_eq!(found_offset, offset, "{context}: {error}");
            assert!(found_what.contains(what), "{context}: {error}");
        }
        (
            Expected::Version(version),
            StoreError::UnsupportedVersion {
                path: found_path,
                found,
                ..
            },
        ) => {
            assert_eq!(found_path, path, "{context}: {error}");
            assert_eq!(found, version, "{context}: {error}");
        }
        _ => panic!("{context}: expected {expected:?}, got {error}"),
    }
    let intact: Vec<(PathBuf, u64)> = records.iter().map(|r| (r.path.clone(), r.offset)).collect();
    let originals: Vec<(PathBuf, u64)> = journal.records[..records_before]
        .iter()
        .map(|r| (r.path.clone(), r.offset))
        .collect();
    assert_eq!(
        intact, originals,
        "{context}: the records before the damage"
    );
    for (read, original) in records.iter().zip(&journal.records) {
        assert_eq!(read.body, original.body, "{context}");
    }
}

#[test]
fn every_byte_of_every_segment_is_covered() {
    let journal = Journal::new();
    let mut rng = Rng::new(0x5eed_0001);
    for (segment, (_, bytes)) in journal.segments.iter().enumerate() {
        for offset in 0..bytes.len() {
            check_journal_flip(&journal, segment, offset, rng.below(8) as u32);
        }
    }
}

#[test]
fn random_flips_in_segments_are_detected() {
    let journal = Journal::new();
    let mut rng = Rng::new(0x5eed_0002);
    for _ in 0..500 {
        let (segment, offset) = journal.locate(rng.below(journal.total_bytes()));
        check_journal_flip(&journal, segment, offset, rng.below(8) as u32);
    }
}

#[test]
fn a_damaged_length_is_never_a_torn_tail() {
    // Any larger length, not only one bit off: in the final segment the
    // reader finds the complete record behind it; elsewhere the segment ends.
    let journal = Journal::new();
    let mut rng = Rng::new(0x5eed_0003);
    for _ in 0..300 {
        let record = &journal.records[1 + rng.below(journal.records.len() - 1)];
        let segment = journal
            .segments
            .iter()
            .position(|(path, _)| path == &record.path)
            .unwrap();
        let bytes = &journal.segments[segment].1;
        let rest = bytes.len() as u64 - record.offset;
        let low = rest - 72 + 1;
        let length = low + rng.next() % (RECORD_BODY_BYTES_MAX as u64 - low + 1);
        let mut damaged = journal.segments.clone();
        let at = record.offset as usize;
        damaged[segment].1[at..at + 4].copy_from_slice(&(length as u32).to_le_bytes());
        let (error, _) = read_journal_partially(&sim_with(&damaged), &sim_journal())
            .err()
            .unwrap();
        let what = if segment + 1 == journal.segments.len() {
            "the length field is damaged"
        } else {
            "segment ends inside a record"
        };
        crate::common::check_corrupt(&error, &record.path, record.offset, what);
    }
}

/// Flips one bit of a checkpoint file and checks that loading refuses it,
/// saying where.
fn check_checkpoint_flip(bytes: &[u8], offset: usize, bit: u32) {
    let storage = SimStorage::new();
    let path = PathBuf::from("/runtime/worlds/world-001/checkpoints/00000000000000000042.ckpt");
    let mut flipped = bytes.to_vec();
    flipped[offset] ^= 1 << bit;
    storage.write_synced(&path, &flipped).unwrap();
    let context = format!("bit {bit} of byte {offset}");
    let error = match load_checkpoint(&storage, &path) {
        Ok(_) => panic!("{context}: a flipped checkpoint was accepted"),
        Err(error) => error,
    };
    match (offset, &error) {
        (8..10, StoreError::UnsupportedVersion { found, .. }) => {
            assert_eq!(
                *found,
                1 ^ (1 << (bit + 8 * (offset as u32 - 8))),
                "{context}"
            )
        }
        (
            0..8,
            StoreError::Corrupt {
                offset: 8, what, ..
            },
        ) => {
            assert!(what.contains("bad magic"), "{context}: {error}")
        }
        (
            _,
            StoreError::Corrupt {
                offset: at, what, ..
            },
        ) if offset >= 10 => {
            assert_eq!(*at as usize, bytes.len() - 32, "{context}: {error}");
            assert!(
                what.contains("checksum does not match"),
                "{context}: {error}"
            );
        }
        _ => panic!("{context}: unexpected {error}"),
    }
}

#[test]
fn every_byte_of_a_checkpoint_is_covered() {
    let bytes = sample_checkpoint().bytes;
    let mut rng = Rng::new(0x5eed_0004);
    for offset in 0..bytes.len() {
        check_checkpoint_flip(&bytes, offset, rng.below(8) as u32);
    }
}

#[test]
fn random_flips_in_checkpoints_are_detected() {
    let bytes = sample_checkpoint().bytes;
    let mut rng = Rng::new(0x5eed_0005);
    for _ in 0..500 {
        check_checkpoint_flip(&bytes, rng.below(bytes.len()), rng.below(8) as u32);
    }
}
