//! Torn writes: only the end of the newest segment may be incomplete, and
//! the reader says exactly where the torn bytes begin; an incomplete record
//! anywhere else is corruption.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_store::journal::{RawRecord, TornTail};
use everarcade_store::{JournalWriter, SimStorage, Storage};

use crate::common::{
    History, Reading, Segments, append_all, check_corrupt, read_journal, read_journal_partially,
    segment_files, segments_of, sim_journal, sim_with, world, write_history,
};

/// An intact journal of several segments.
fn journal() -> (History, Segments, Vec<RawRecord>) {
    let storage = Arc::new(SimStorage::new());
    let history = History::new(&world(), 8, 3);
    write_history(storage.clone(), &sim_journal(), &history, segments_of(2500));
    let segments = segment_files(&*storage, &sim_journal());
    assert!(segments.len() >= 3);
    let records = read_journal(&*storage, &sim_journal()).unwrap().records;
    (history, segments, records)
}

/// Checks a reading that ended in a torn tail at `offset` of `path`, with
/// the first `intact` records of `records` read before it.
#[track_caller]
fn check_torn(reading: &Reading, path: &PathBuf, offset: u64, bytes: u64, records: &[RawRecord]) {
    let torn = reading.torn.as_ref().expect("a torn tail");
    assert_eq!(
        torn,
        &TornTail {
            path: path.clone(),
            offset,
            bytes,
        }
    );
    assert_eq!(torn.to_error().code(), "torn_tail");
    let read: Vec<(&PathBuf, u64, &[u8])> = reading
        .records
        .iter()
        .map(|r| (&r.path, r.offset, r.body.as_slice()))
        .collect();
    let expected: Vec<(&PathBuf, u64, &[u8])> = records
        .iter()
        .map(|r| (&r.path, r.offset, r.body.as_slice()))
        .collect();
    assert_eq!(read, expected);
    let last = records.last().unwrap();
    assert_eq!(reading.end.last_checksum, last.checksum);
    if &last.path == path {
        assert_eq!(reading.end.length, offset);
    }
}

#[test]
fn truncation_inside_the_last_record_is_a_torn_tail() {
    let (_, segments, records) = journal();
    let last = records.last().unwrap();
    let (path, bytes) = segments.last().unwrap();
    assert_eq!(&last.path, path);
    for cut in last.offset + 1..bytes.len() as u64 {
        let mut torn = segments.clone();
        torn.last_mut().unwrap().1.truncate(cut as usize);
        let reading = read_journal(&sim_with(&torn), &sim_journal()).unwrap();
        let intact = &records[..records.len() - 1];
        check_torn(&reading, path, last.offset, cut - last.offset, intact);
    }
}

#[test]
fn truncation_at_a_record_boundary_of_the_newest_segment_reads_as_shorter() {
    // Undetectable here by design: the world layer compares the height with
    // its checkpoints and status. Documented in docs/FORMATS.md.
    let (_, segments, records) = journal();
    let last = records.last().unwrap();
    let mut shorter = segments.clone();
    shorter.last_mut().unwrap().1.truncate(last.offset as usize);
    let reading = read_journal(&sim_with(&shorter), &sim_journal()).unwrap();
    assert!(reading.torn.is_none());
    assert_eq!(reading.records.len(), records.len() - 1);
}

#[test]
fn truncation_inside_a_non_final_segment_is_corruption() {
    let (_, segments, records) = journal();
    let (path, bytes) = &segments[1];
    let last = records.iter().rev().find(|r| &r.path == path).unwrap();
    for cut in (last.offset + 1..bytes.len() as u64).step_by(7) {
        let mut damaged = segments.clone();
        damaged[1].1.truncate(cut as usize);
        let (error, _) = read_journal_partially(&sim_with(&damaged), &sim_journal())
            .err()
            .unwrap();
        let what = if cut - last.offset < 40 {
            "segment ends inside a record header"
        } else {
            "segment ends inside a record"
        };
        check_corrupt(&error, path, last.offset, what);
    }
    for cut in [0, 1, 64, 127] {
        let mut damaged = segments.clone();
        damaged[1].1.truncate(cut);
        let error = read_journal(&sim_with(&damaged), &sim_journal())
            .err()
            .unwrap();
        check_corrupt(&error, path, 0, "shorter than its header");
    }
    // Whole records dropped from a closed segment break the chain into the next.
    let mut damaged = segments.clone();
    damaged[1].1.truncate(last.offset as usize);
    let error = read_journal(&sim_with(&damaged), &sim_journal())
        .err()
        .unwrap();
    check_corrupt(&error, &segments[2].0, 64, "chain broken");
}

#[test]
fn a_zero_filled_tail_is_torn() {
    let (_, segments, records) = journal();
    let (path, bytes) = segments.last().unwrap();
    for zeros in [1usize, 39, 40, 41, 100, 4096] {
        let mut padded = segments.clone();
        padded.last_mut().unwrap().1.extend(vec![0; zeros]);
        let reading = read_journal(&sim_with(&padded), &sim_journal()).unwrap();
        check_torn(&reading, path, bytes.len() as u64, zeros as u64, &records);
    }
    // A record cut short and then zero-filled, within its stated length.
    let last = records.last().unwrap();
    let mut padded = segments.clone();
    let segment = &mut padded.last_mut().unwrap().1;
    let cut = last.offset as usize + 50;
    segment[cut..].fill(0);
    // The zeros replace the end of the body and the checksum: the stated
    // length still fits in the file, so this is a checksum failure, not a tail.
    let error = read_journal(&sim_with(&padded), &sim_journal())
        .err()
        .unwrap();
    check_corrupt(&error, path, last.offset, "record checksum does not match");
    let mut padded = segments.clone();
    let segment = &mut padded.last_mut().unwrap().1;
    segment.truncate(cut);
    segment.extend(vec![0; 10]);
    let reading = read_journal(&sim_with(&padded), &sim_journal()).unwrap();
    check_torn(
        &reading,
        path,
        last.offset,
        60,
        &records[..records.len() - 1],
    );
}

#[test]
fn a_newest_segment_torn_while_being_created_is_torn_at_zero() {
    let (_, segments, records) = journal();
    let (last_path, last_bytes) = segments.last().unwrap();
    let before: Vec<RawRecord> = records
        .iter()
        .filter(|r| &r.path != last_path)
        .cloned()
        .collect();
    let mut header_only = segments.clone();
    header_only.last_mut().unwrap().1.truncate(128);
    let next = sim_journal().join(format!("{:010}.seg", segments.len() + 1));
    for partial in [
        Vec::new(),
        last_bytes[..100].to_vec(),
        vec![0; 128],
        vec![0; 500],
    ] {
        let mut torn = header_only.clone();
        torn.push((next.clone(), partial.clone()));
        let reading = read_journal(&sim_with(&torn), &sim_journal()).unwrap();
        check_torn(&reading, &next, 0, partial.len() as u64, &before);
        assert_eq!(reading.end.segment, segments.len() as u64);
        assert_eq!(reading.end.length, 128);
    }
}

#[test]
fn recovery_truncates_the_tail_and_resumes_the_chain() {
    let (history, segments, records) = journal();
    let storage = Arc::new(sim_with(&segments));
    let (path, bytes) = segments.last().unwrap();
    let last = records.last().unwrap();
    storage
        .truncate(path, (last.offset + 10).min(bytes.len() as u64))
        .unwrap();
    let reading = read_journal(&*storage, &sim_journal()).unwrap();
    let torn = reading.torn.clone().unwrap();
    storage.truncate(&torn.path, torn.offset).unwrap();
    let reading = read_journal(&*storage, &sim_journal()).unwrap();
    assert!(reading.torn.is_none());
    let genesis_root = history.genesis().genesis_root;
    let mut writer = JournalWriter::resume(
        storage.clone(),
        &sim_journal(),
        genesis_root,
        &reading.end,
        segments_of(2500),
    )
    .unwrap();
    let lost = history.records.len() - 1;
    append_all(&mut writer, &history.records[lost..]);
    let reading = read_journal(&*storage, &sim_journal()).unwrap();
    assert_eq!(reading.decoded(), history.records);
}
