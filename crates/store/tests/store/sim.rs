//! The crash simulator keeps what a real disk keeps after a power loss, and
//! the journal writer acknowledges only what survives one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use everarcade_store::journal::Record;
use everarcade_store::{JournalWriter, Reboot, SimStorage, Storage, StoreError};

use crate::common::{History, read_journal, segments_of, sim_journal, world};

fn file(name: &str) -> PathBuf {
    Path::new("/disk/dir").join(name)
}

/// Creates `name` durably (data and directory entry) holding `bytes`.
fn durable_file(storage: &SimStorage, name: &str, bytes: &[u8]) {
    let mut handle = storage.append(&file(name)).unwrap();
    handle.write_all(bytes).unwrap();
    handle.sync_data().unwrap();
    storage.sync_dir(Path::new("/disk/dir")).unwrap();
}

#[track_caller]
fn check_file(storage: &SimStorage, name: &str, expected: Option<&[u8]>) {
    let found = storage.read(&file(name)).ok();
    assert_eq!(found.as_deref(), expected, "{name}");
    assert_eq!(storage.exists(&file(name)), expected.is_some(), "{name}");
}

#[test]
fn unsynced_appends_are_lost_on_power_loss() {
    let storage = SimStorage::new();
    durable_file(&storage, "a", b"durable");
    let mut handle = storage.append(&file("a")).unwrap();
    handle.write_all(b" and more").unwrap();
    check_file(&storage, "a", Some(b"durable and more"));
    check_file(&storage.reboot(Reboot::LoseUnsynced), "a", Some(b"durable"));
    handle.sync_data().unwrap();
    check_file(
        &storage.reboot(Reboot::LoseUnsynced),
        "a",
        Some(b"durable and more"),
    );
}

#[test]
fn creates_and_renames_are_lost_without_a_directory_sync() {
    let storage = SimStorage::new();
    storage.write_synced(&file("new"), b"synced data").unwrap();
    check_file(&storage.reboot(Reboot::LoseUnsynced), "new", None);

    durable_file(&storage, "old", b"x");
    storage.rename(&file("old"), &file("renamed")).unwrap();
    check_file(&storage, "renamed", Some(b"x"));
    check_file(&storage, "old", None);
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    check_file(&rebooted, "old", Some(b"x"));
    check_file(&rebooted, "renamed", None);

    storage.remove_file(&file("new")).unwrap();
    storage.sync_dir(Path::new("/disk/dir")).unwrap();
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    check_file(&rebooted, "old", None);
    check_file(&rebooted, "renamed", Some(b"x"));
    check_file(&rebooted, "new", None);
    assert_eq!(rebooted.list(Path::new("/disk/dir")).unwrap(), ["renamed"]);
}

#[test]
fn a_crash_at_a_sync_fails_it_and_everything_after() {
    let storage = SimStorage::new();
    durable_file(&storage, "a", b"one");
    assert_eq!(storage.syncs(), 2);
    storage.crash_at_sync(3);
    let mut handle = storage.append(&file("a")).unwrap();
    handle.write_all(b" two").unwrap();
    assert!(handle.sync_data().is_err());
    assert!(storage.has_crashed());
    assert!(handle.write_all(b"three").is_err());
    assert!(storage.read(&file("a")).is_err());
    assert!(storage.append(&file("b")).is_err());
    assert!(storage.write_synced(&file("b"), b"b").is_err());
    assert!(storage.rename(&file("a"), &file("b")).is_err());
    assert!(storage.sync_dir(Path::new("/disk/dir")).is_err());
    assert!(storage.truncate(&file("a"), 0).is_err());
    assert!(storage.remove_file(&file("a")).is_err());
    assert!(storage.create_dir_all(Path::new("/disk/other")).is_err());
    assert_eq!(storage.syncs(), 3);
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    assert!(!rebooted.has_crashed());
    check_file(&rebooted, "a", Some(b"one"));
}

#[test]
fn torn_unsynced_keeps_a_seeded_prefix() {
    let storage = SimStorage::new();
    durable_file(&storage, "a", b"durable|");
    let written: Vec<u8> = (0..200u8).collect();
    let mut handle = storage.append(&file("a")).unwrap();
    handle.write_all(&written).unwrap();
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let rebooted = storage.reboot(Reboot::TornUnsynced { seed });
        let bytes = rebooted.read(&file("a")).unwrap();
        assert!(bytes.starts_with(b"durable|"));
        let kept = &bytes[8..];
        assert_eq!(kept, &written[..kept.len()], "seed {seed}: a prefix");
        lengths.insert(kept.len());
        let again = storage.reboot(Reboot::TornUnsynced { seed });
        assert_eq!(
            again.read(&file("a")).unwrap(),
            bytes,
            "seed {seed}: deterministic"
        );
    }
    assert!(lengths.len() > 10, "prefix lengths vary: {lengths:?}");
}

#[test]
fn a_failed_fsync_poisons_the_writer_for_good() {
    let storage = SimStorage::new();
    let history = History::new(&world(), 4, 2);
    let mut writer = JournalWriter::create(
        Arc::new(storage.clone()),
        &sim_journal(),
        history.genesis(),
        segments_of(1 << 20),
    )
    .unwrap();
    writer.append(&history.records[1]).unwrap();
    writer.append(&history.records[2]).unwrap();
    writer.commit().unwrap();
    storage.fail_sync_at(storage.syncs() + 1);
    writer.append(&history.records[3]).unwrap();
    let error = writer.commit().err().unwrap();
    assert!(matches!(error, StoreError::Poisoned { .. }), "{error}");
    assert_eq!(error.code(), "journal_poisoned");
    assert!(writer.poisoned().unwrap().contains("fdatasync"));
    let syncs = storage.syncs();
    for _ in 0..3 {
        let error = writer.append(&history.records[4]).err().unwrap();
        assert!(matches!(error, StoreError::Poisoned { .. }), "{error}");
        let error = writer.commit().err().unwrap();
        assert!(matches!(error, StoreError::Poisoned { .. }), "{error}");
    }
    assert_eq!(
        storage.syncs(),
        syncs,
        "a poisoned writer never retries an fsync"
    );
    assert!(!storage.has_crashed());
    // After a power loss only the acknowledged records are there.
    let reading = read_journal(&storage.reboot(Reboot::LoseUnsynced), &sim_journal()).unwrap();
    assert_eq!(reading.decoded(), history.records[..3]);
}

#[test]
fn a_failed_fsync_while_rolling_poisons_the_writer() {
    let storage = SimStorage::new();
    let history = History::new(&world(), 4, 2);
    let mut writer = JournalWriter::create(
        Arc::new(storage.clone()),
        &sim_journal(),
        history.genesis(),
        segments_of(600),
    )
    .unwrap();
    // The commit's own fdatasync succeeds; the new segment's header sync fails.
    storage.fail_sync_at(storage.syncs() + 2);
    writer.append(&history.records[1]).unwrap();
    writer.append(&history.records[2]).unwrap();
    let error = writer.commit().err().unwrap();
    assert!(matches!(error, StoreError::Poisoned { .. }), "{error}");
    assert!(writer.poisoned().unwrap().contains("starting segment 2"));
    assert!(writer.append(&history.records[3]).is_err());
    let reading = read_journal(&storage.reboot(Reboot::LoseUnsynced), &sim_journal()).unwrap();
    assert_eq!(reading.decoded(), history.records[..3]);
}

/// Runs the workload with a power loss at sync `crash`; returns how many
/// records were acknowledged (committed with `Ok`) before it.
fn run_until_crash(storage: &SimStorage, history: &History, crash: u64) -> usize {
    storage.crash_at_sync(crash);
    let config = segments_of(1500);
    let storage: Arc<dyn Storage> = Arc::new(storage.clone());
    let Ok(mut writer) = JournalWriter::create(storage, &sim_journal(), history.genesis(), config)
    else {
        return 0;
    };
    let mut acknowledged = 1;
    for (position, record) in history.records.iter().enumerate().skip(1) {
        if writer.append(record).is_err() {
            break;
        }
        if matches!(record, Record::Tick(_)) {
            if writer.commit().is_err() {
                break;
            }
            acknowledged = position + 1;
        }
    }
    acknowledged
}

#[test]
fn every_crash_point_keeps_every_acknowledged_record() {
    let history = History::new(&world(), 10, 3);
    let total_syncs = {
        let storage = SimStorage::new();
        run_until_crash(&storage, &history, u64::MAX);
        storage.syncs()
    };
    assert!(total_syncs > 15, "{total_syncs}");
    for crash in 1..=total_syncs {
        let storage = SimStorage::new();
        let acknowledged = run_until_crash(&storage, &history, crash);
        assert!(storage.has_crashed(), "crash {crash}");
        for mode in [
            Reboot::LoseUnsynced,
            Reboot::TornUnsynced { seed: crash },
            Reboot::TornUnsynced { seed: crash * 7919 },
        ] {
            let context = format!("crash at sync {crash}, {mode:?}");
            let rebooted = storage.reboot(mode);
            let reading = match read_journal(&rebooted, &sim_journal()) {
                Ok(reading) => reading,
                Err(StoreError::Missing { .. }) if acknowledged == 0 => continue,
                Err(error) => panic!("{context}: {error}"),
            };
            let records = reading.decoded();
            assert!(
                records.len() >= acknowledged,
                "{context}: acknowledged records lost"
            );
            assert_eq!(records, history.records[..records.len()], "{context}");
            if records.is_empty() {
                // Creation was interrupted: the one segment is torn as a whole.
                let torn = reading
                    .torn
                    .as_ref()
                    .expect("an interrupted creation is torn");
                assert_eq!(torn.offset, 0, "{context}");
            } else if mode == Reboot::LoseUnsynced {
                assert!(reading.torn.is_none(), "{context}: {:?}", reading.torn);
            }
        }
    }
}
