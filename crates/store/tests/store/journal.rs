//! Journal round trips on the real disk and the simulator: what is
//! committed is read back record for record, across segment rollovers and
//! across a writer resumed after reading.

use std::path::Path;
use std::sync::Arc;

use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_store::journal::{InputsRecord, Record, RecordKind, SEGMENT_HEADER_BYTES};
use everarcade_store::layout::segment_name;
use everarcade_store::{
    DiskStorage, JournalConfig, JournalWriter, SimStorage, Storage, StoreError, WorldDir,
};

use crate::common::{
    History, TempDir, append_all, check_corrupt, read_journal, segment_files, segments_of,
    sim_journal, sim_with, world, write_history,
};

/// Writes `history` into `dir` and checks that a full read gives back every
/// record, in order, in more than one segment, ending where the writer is.
fn check_round_trip(storage: Arc<dyn Storage>, dir: &Path, history: &History) {
    let writer = write_history(storage.clone(), dir, history, segments_of(1500));
    let reading = read_journal(&*storage, dir).unwrap();
    assert_eq!(reading.decoded(), history.records);
    assert!(reading.torn.is_none());
    assert!(reading.end.segments >= 3, "{:?}", reading.end);
    assert_eq!(reading.end.segment, writer.segment());
    assert_eq!(reading.end.records, history.records.len() as u64);
    assert_eq!(reading.end.last_checksum, writer.last_checksum());
    let last = reading.records.last().unwrap();
    assert_eq!(last.checksum, writer.last_checksum());
    // The last commit may have rolled to a new segment that holds only its header.
    let expected_length = if last.path == dir.join(segment_name(writer.segment())) {
        last.offset + last.encoded_len()
    } else {
        SEGMENT_HEADER_BYTES as u64
    };
    assert_eq!(reading.end.length, expected_length);
    check_segment_headers(&*storage, dir, &history.genesis().genesis_root);
}

/// Each segment header names its index, the genesis root and the checksum
/// of the last record of the segment before it.
fn check_segment_headers(storage: &dyn Storage, dir: &Path, genesis: &everarcade_protocol::Hash) {
    let reading = read_journal(storage, dir).unwrap();
    let mut prev = *genesis;
    for (position, (path, bytes)) in segment_files(storage, dir).iter().enumerate() {
        assert_eq!(&bytes[..8], b"EAJOURNL");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
        let index = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
        assert_eq!(index, position as u64 + 1);
        assert_eq!(&bytes[32..64], &genesis.0);
        assert_eq!(&bytes[64..96], &prev.0, "{}", path.display());
        if let Some(last) = reading.records.iter().rev().find(|raw| &raw.path == path) {
            prev = last.checksum;
        }
    }
}

#[test]
fn round_trip_on_disk() {
    let temp = TempDir::new("round-trip");
    let dir = WorldDir::new(temp.path(), &world()).journal();
    DiskStorage.create_dir_all(&dir).unwrap();
    check_round_trip(Arc::new(DiskStorage), &dir, &History::new(&world(), 12, 3));
}

#[test]
fn round_trip_on_the_simulator_survives_power_loss() {
    let storage = SimStorage::new();
    let history = History::new(&world(), 12, 3);
    check_round_trip(Arc::new(storage.clone()), &sim_journal(), &history);
    let rebooted = storage.reboot(everarcade_store::Reboot::LoseUnsynced);
    let reading = read_journal(&rebooted, &sim_journal()).unwrap();
    assert_eq!(reading.decoded(), history.records);
}

#[test]
fn ticks_without_inputs_round_trip() {
    let storage = SimStorage::new();
    let history = History::new(&world(), 20, 0);
    check_round_trip(Arc::new(storage), &sim_journal(), &history);
}

#[test]
fn resume_continues_the_chain() {
    let storage = Arc::new(SimStorage::new());
    let dir = sim_journal();
    let history = History::new(&world(), 16, 2);
    let (first, second) = history.records.split_at(13);
    let config = segments_of(1200);
    let mut writer =
        JournalWriter::create(storage.clone(), &dir, history.genesis(), config).unwrap();
    append_all(&mut writer, &first[1..]);
    drop(writer);

    let reading = read_journal(&*storage, &dir).unwrap();
    assert_eq!(reading.decoded(), first);
    let genesis_root = history.genesis().genesis_root;
    let mut writer =
        JournalWriter::resume(storage.clone(), &dir, genesis_root, &reading.end, config).unwrap();
    assert_eq!(writer.segment(), reading.end.segment);
    append_all(&mut writer, second);

    let reading = read_journal(&*storage, &dir).unwrap();
    assert_eq!(reading.decoded(), history.records);
    assert_eq!(reading.end.last_checksum, writer.last_checksum());
    assert!(reading.end.segments > 2);
    check_segment_headers(&*storage, &dir, &genesis_root);
}

#[test]
fn create_refuses_an_existing_journal() {
    let storage = Arc::new(SimStorage::new());
    let history = History::new(&world(), 1, 1);
    write_history(
        storage.clone(),
        &sim_journal(),
        &history,
        JournalConfig::default(),
    );
    let error = JournalWriter::create(
        storage,
        &sim_journal(),
        history.genesis(),
        JournalConfig::default(),
    )
    .err()
    .unwrap();
    check_corrupt(
        &error,
        &sim_journal().join("0000000001.seg"),
        0,
        "a journal already exists",
    );
}

#[test]
fn an_input_batch_over_the_record_limit_is_split() {
    let world = world();
    let key = test_signing_key("alice");
    // 260 envelopes of 64 KiB payload are about 16.6 MiB: over the 16 MiB body limit.
    let envelopes: Vec<Envelope> = (0..260u64)
        .map(|nonce| Envelope::sign(&world, &key, nonce + 1, vec![nonce as u8; 65_536]))
        .collect();
    let storage = Arc::new(SimStorage::new());
    let history = History::new(&world, 0, 0);
    let mut writer = write_history(
        storage.clone(),
        &sim_journal(),
        &history,
        JournalConfig::default(),
    );
    let batch = Record::Inputs(InputsRecord {
        tick: 1,
        envelopes: envelopes.clone(),
    });
    writer.append(&batch).unwrap();
    writer.commit().unwrap();

    let records = read_journal(&*storage, &sim_journal()).unwrap().decoded();
    let mut read_back = Vec::new();
    for record in &records[1..] {
        match record {
            Record::Inputs(inputs) => {
                assert_eq!(inputs.tick, 1);
                read_back.extend(inputs.envelopes.iter().cloned());
            }
            other => panic!("unexpected {:?}", other.kind()),
        }
    }
    assert_eq!(records.len(), 3, "split in two halves");
    assert_eq!(read_back, envelopes);
}

#[test]
fn a_journal_that_is_not_there_is_missing() {
    let storage = SimStorage::new();
    let error = read_journal(&storage, &sim_journal()).err().unwrap();
    assert!(matches!(error, StoreError::Missing { .. }), "{error}");
    let temp = TempDir::new("missing");
    let error = read_journal(&DiskStorage, &temp.path().join("journal"))
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Missing { .. }), "{error}");
    assert_eq!(error.code(), "world_missing");
}

#[test]
fn a_missing_segment_is_corruption() {
    let storage = Arc::new(SimStorage::new());
    let history = History::new(&world(), 12, 3);
    write_history(storage.clone(), &sim_journal(), &history, segments_of(1500));
    let mut segments = segment_files(&*storage, &sim_journal());
    assert!(segments.len() >= 3);
    segments.remove(1);
    let error = read_journal(&sim_with(&segments), &sim_journal())
        .err()
        .unwrap();
    check_corrupt(
        &error,
        &sim_journal().join("0000000002.seg"),
        0,
        "segment 2 is missing (found segment 3)",
    );
}

#[test]
fn a_segment_of_another_world_is_wrong_lineage() {
    let other = WorldId::new("world-002").unwrap();
    let mut segments = Vec::new();
    for world in [world(), other] {
        let storage = Arc::new(SimStorage::new());
        let history = History::new(&world, 12, 3);
        write_history(storage.clone(), &sim_journal(), &history, segments_of(1500));
        segments.push(segment_files(&*storage, &sim_journal()));
    }
    let mut mixed = segments[0].clone();
    mixed[1] = segments[1][1].clone();
    let error = read_journal(&sim_with(&mixed), &sim_journal())
        .err()
        .unwrap();
    match error {
        StoreError::WrongLineage {
            path,
            expected,
            found,
        } => {
            assert_eq!(path, mixed[1].0);
            assert_eq!(&expected.0[..], &segments[0][0].1[32..64]);
            assert_eq!(&found.0[..], &segments[1][0].1[32..64]);
        }
        other => panic!("expected WrongLineage, got {other}"),
    }
}

#[test]
fn an_unknown_version_is_refused_by_version() {
    let storage = Arc::new(SimStorage::new());
    write_history(
        storage.clone(),
        &sim_journal(),
        &History::new(&world(), 2, 1),
        JournalConfig::default(),
    );
    let mut segments = segment_files(&*storage, &sim_journal());
    let header = &mut segments[0].1;
    header[8..10].copy_from_slice(&2u16.to_le_bytes());
    let checksum = everarcade_protocol::Domain::JournalSegment.hash(&header[..96]);
    header[96..SEGMENT_HEADER_BYTES].copy_from_slice(&checksum.0);
    let error = read_journal(&sim_with(&segments), &sim_journal())
        .err()
        .unwrap();
    match &error {
        StoreError::UnsupportedVersion {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, &segments[0].0);
            assert_eq!((*found, *supported), (2, 1));
        }
        other => panic!("expected UnsupportedVersion, got {other}"),
    }
    assert_eq!(error.code(), "unsupported_format_version");
}

#[test]
fn records_know_their_kind_and_tick() {
    let storage = Arc::new(SimStorage::new());
    let history = History::new(&world(), 3, 2);
    write_history(
        storage.clone(),
        &sim_journal(),
        &history,
        JournalConfig::default(),
    );
    let reading = read_journal(&*storage, &sim_journal()).unwrap();
    let summary: Vec<(RecordKind, Option<u64>)> = reading
        .records
        .iter()
        .map(|raw| (raw.kind, raw.tick()))
        .collect();
    assert_eq!(
        summary,
        [
            (RecordKind::Genesis, None),
            (RecordKind::Inputs, Some(1)),
            (RecordKind::Tick, Some(1)),
            (RecordKind::Inputs, Some(2)),
            (RecordKind::Tick, Some(2)),
            (RecordKind::Inputs, Some(3)),
            (RecordKind::Tick, Some(3)),
        ]
    );
    assert_eq!(reading.records[0].offset, SEGMENT_HEADER_BYTES as u64);
}
