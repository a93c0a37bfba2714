//! `genesis.json`, `status.json` and quarantine.

use std::path::Path;

use everarcade_store::meta::{
    GenesisFile, META_FORMAT, StatusFile, quarantine, quarantine_bytes, read_json, write_json,
};
use everarcade_store::{Reboot, SimStorage, Storage, StoreError, WorldDir};

use crate::common::{check_corrupt, world};

fn world_dir() -> WorldDir {
    WorldDir::new(Path::new("/runtime"), &world())
}

/// A status file as a stopped world leaves it.
pub fn sample_status() -> StatusFile {
    StatusFile {
        format: META_FORMAT,
        state: "stopped".into(),
        pid: None,
        head_tick: 1000,
        state_root: "11".repeat(32),
        input_root: "22".repeat(32),
        receipt_root: "33".repeat(32),
        continuity_root: "44".repeat(32),
        admission: "open".into(),
        addresses: vec!["127.0.0.1:7000".into()],
        checkpoint_tick: Some(1000),
        tls_cert: None,
    }
}

fn sample_genesis() -> GenesisFile {
    GenesisFile {
        format: META_FORMAT,
        world: "world-001".into(),
        package_root: "aa".repeat(32),
        profile_hash: "bb".repeat(32),
        genesis_root: "cc".repeat(32),
        state_root: "dd".repeat(32),
        protocol_version: 1,
        runtime_version: "0.1.0".into(),
    }
}

#[test]
fn json_files_round_trip_durably() {
    let storage = SimStorage::new();
    let dir = world_dir();
    write_json(&storage, &dir.status(), &sample_status()).unwrap();
    write_json(&storage, &dir.genesis(), &sample_genesis()).unwrap();
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    let status: StatusFile = read_json(&rebooted, &dir.status()).unwrap();
    assert_eq!(status, sample_status());
    let genesis: GenesisFile = read_json(&rebooted, &dir.genesis()).unwrap();
    assert_eq!(genesis, sample_genesis());
    let text = String::from_utf8(rebooted.read(&dir.status()).unwrap()).unwrap();
    assert!(text.starts_with("{\n  \"format\": 1,\n  \"state\": \"stopped\",\n  \"pid\": null,"));
    assert!(text.ends_with("}\n"));
    assert!(text.contains("\"head_tick\": 1000,"), "{text}");
}

#[test]
fn a_status_file_from_before_the_rename_still_reads() {
    let storage = SimStorage::new();
    let dir = world_dir();
    let text = String::from_utf8(serde_json::to_vec(&sample_status()).unwrap()).unwrap();
    let old = text.replace("\"head_tick\"", "\"height\"");
    assert!(old.contains("\"height\":1000"), "{old}");
    storage.create_dir_all(dir.path()).unwrap();
    storage.write_synced(&dir.status(), old.as_bytes()).unwrap();
    let status: StatusFile = read_json(&storage, &dir.status()).unwrap();
    assert_eq!(status, sample_status());
}

#[test]
fn unknown_or_missing_fields_are_refused() {
    let storage = SimStorage::new();
    let path = world_dir().status();
    let mut value = serde_json::to_value(sample_status()).unwrap();
    value["colour"] = serde_json::json!("blue");
    storage
        .write_synced(&path, &serde_json::to_vec(&value).unwrap())
        .unwrap();
    let error = read_json::<StatusFile>(&storage, &path).err().unwrap();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("unknown field `colour`"),
        "{error}"
    );

    let path = world_dir().genesis();
    storage.write_synced(&path, br#"{"format": 1}"#).unwrap();
    let error = read_json::<GenesisFile>(&storage, &path).err().unwrap();
    assert!(error.to_string().contains("missing field"), "{error}");
    storage.write_synced(&path, b"{\"format\": ").unwrap();
    let error = read_json::<GenesisFile>(&storage, &path).err().unwrap();
    check_corrupt(&error, &path, 11, "not valid JSON");
}

#[test]
fn quarantine_moves_without_overwriting() {
    let storage = SimStorage::new();
    let dir = world_dir();
    for round in 0..3u8 {
        storage.write_synced(&dir.segment(3), &[round]).unwrap();
        storage.sync_dir(&dir.journal()).unwrap();
        let moved = quarantine(&storage, &dir, &dir.segment(3)).unwrap();
        let expected = match round {
            0 => "journal-0000000003.seg".to_string(),
            n => format!("journal-0000000003.seg.{}", n + 1),
        };
        assert_eq!(moved, dir.quarantine().join(expected));
        assert!(!storage.exists(&dir.segment(3)));
    }
    let tail = quarantine_bytes(&storage, &dir, &dir.segment(2), "torn", b"tail").unwrap();
    assert_eq!(tail, dir.quarantine().join("journal-0000000002.seg.torn"));
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    assert!(!rebooted.exists(&dir.segment(3)), "the move is durable");
    assert_eq!(
        rebooted.list(&dir.quarantine()).unwrap(),
        [
            "journal-0000000002.seg.torn",
            "journal-0000000003.seg",
            "journal-0000000003.seg.2",
            "journal-0000000003.seg.3",
        ]
    );
    for (name, byte) in [
        ("journal-0000000003.seg", 0u8),
        ("journal-0000000003.seg.3", 2),
    ] {
        assert_eq!(rebooted.read(&dir.quarantine().join(name)).unwrap(), [byte]);
    }
}
