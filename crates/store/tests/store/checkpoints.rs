//! Checkpoints: the encoding round-trips, loading verifies the checksum,
//! the structure and the recomputed state root, and retention keeps the
//! newest.

use std::collections::BTreeMap;
use std::path::Path;

use everarcade_protocol::{Domain, Hash, PublicKey, test_signing_key};
use everarcade_state::State;
use everarcade_store::checkpoint::{
    CHECKPOINT_HEADER_BYTES, decode_checkpoint, encode_checkpoint, list_checkpoints,
    load_checkpoint, prune_checkpoints, read_checkpoint_summary, write_checkpoint,
    write_checkpoint_of,
};
use everarcade_store::keys::file_digest;
use everarcade_store::{DiskStorage, Reboot, SimStorage, Storage, StoreError, WorldDir};

use crate::common::{TempDir, check_corrupt, world};

/// A checkpoint's inputs and its encoding.
pub struct Sample {
    pub tick: u64,
    pub genesis_root: Hash,
    pub continuity_root: Hash,
    pub state_root: Hash,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    pub nonces: BTreeMap<PublicKey, u64>,
    pub bytes: Vec<u8>,
}

/// A small checkpoint at tick 42: five entries (one with an empty value,
/// one with the longest key) and two senders' nonces.
pub fn sample_checkpoint() -> Sample {
    sample_at(42)
}

/// The sample checkpoint at `tick`.
pub fn sample_at(tick: u64) -> Sample {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"player/alice".to_vec(), b"x=3,y=4".to_vec()),
        (b"player/bob".to_vec(), b"x=9,y=1".to_vec()),
        (b"score".to_vec(), 17u64.to_le_bytes().to_vec()),
        (b"empty".to_vec(), Vec::new()),
        (vec![b'k'; 256], vec![0xab; 300]),
    ];
    let mut state = State::new();
    for (key, value) in &entries {
        state.set(key, value);
    }
    let nonces: BTreeMap<PublicKey, u64> = ["alice", "bob"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            (
                test_signing_key(name).verifying_key().to_bytes(),
                100 + n as u64,
            )
        })
        .collect();
    let genesis_root = Domain::Genesis.hash(b"sample");
    let continuity_root = Domain::Continuity.hash(&tick.to_le_bytes());
    let state_root = state.root();
    let bytes = encode_checkpoint(
        tick,
        &genesis_root,
        &continuity_root,
        &state_root,
        &state,
        &nonces,
    );
    let mut entries = entries;
    entries.sort();
    Sample {
        tick,
        genesis_root,
        continuity_root,
        state_root,
        entries,
        nonces,
        bytes,
    }
}

fn world_dir() -> WorldDir {
    WorldDir::new(Path::new("/runtime"), &world())
}

/// `bytes` with its trailing checksum recomputed.
pub fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes.len() - 32;
    let checksum = Domain::Checkpoint.hash(&bytes[..end]);
    bytes[end..].copy_from_slice(&checksum.0);
    bytes
}

#[track_caller]
fn check_decodes_to(bytes: &[u8], sample: &Sample) {
    let checkpoint = decode_checkpoint(bytes)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    assert_eq!(checkpoint.tick, sample.tick);
    assert_eq!(checkpoint.genesis_root, sample.genesis_root);
    assert_eq!(checkpoint.continuity_root, sample.continuity_root);
    assert_eq!(checkpoint.state_root, sample.state_root);
    assert_eq!(checkpoint.nonces, sample.nonces);
    let entries: Vec<(Vec<u8>, Vec<u8>)> = checkpoint
        .state
        .iter()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect();
    assert_eq!(entries, sample.entries);
    let mut state = checkpoint.state.clone();
    assert_eq!(state.root(), sample.state_root);
}

/// Decoding `bytes` fails as corruption at `offset`, saying `what`.
#[track_caller]
fn check_refused(bytes: &[u8], offset: u64, what: &str) {
    let storage = SimStorage::new();
    let path = world_dir().checkpoint(42);
    storage.write_synced(&path, bytes).unwrap();
    let error = load_checkpoint(&storage, &path).err().unwrap();
    check_corrupt(&error, &path, offset, what);
}

#[test]
fn encoding_round_trips() {
    let sample = sample_checkpoint();
    check_decodes_to(&sample.bytes, &sample);
    let checkpoint = decode_checkpoint(&sample.bytes).ok().unwrap();
    let again = encode_checkpoint(
        checkpoint.tick,
        &checkpoint.genesis_root,
        &checkpoint.continuity_root,
        &checkpoint.state_root,
        &checkpoint.state,
        &checkpoint.nonces,
    );
    assert_eq!(again, sample.bytes);
    let expected_length = CHECKPOINT_HEADER_BYTES
        + 2 * 40
        + sample
            .entries
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>()
        + 32;
    assert_eq!(sample.bytes.len(), expected_length);
    assert_eq!(&sample.bytes[..8], b"EACHECKP");
    assert_eq!(&sample.bytes[88..120], &sample.state_root.0);
}

#[test]
fn an_empty_state_round_trips() {
    let mut state = State::new();
    let root = state.root();
    let bytes = encode_checkpoint(0, &Hash::ZERO, &Hash::ZERO, &root, &state, &BTreeMap::new());
    assert_eq!(bytes.len(), CHECKPOINT_HEADER_BYTES + 32);
    let checkpoint = decode_checkpoint(&bytes).ok().unwrap();
    assert!(checkpoint.state.is_empty() && checkpoint.nonces.is_empty());
}

#[test]
fn write_then_load_on_disk_and_simulator() {
    let sample = sample_checkpoint();
    let temp = TempDir::new("checkpoint");
    let on_disk = WorldDir::new(temp.path(), &world());
    DiskStorage.create_dir_all(&on_disk.checkpoints()).unwrap();
    let simulated = SimStorage::new();
    for (storage, dir) in [
        (&DiskStorage as &dyn Storage, on_disk),
        (&simulated as &dyn Storage, world_dir()),
    ] {
        let path = write_checkpoint(storage, &dir, 42, &sample.bytes).unwrap();
        assert_eq!(path, dir.checkpoints().join("00000000000000000042.ckpt"));
        let loaded = load_checkpoint(storage, &path).ok().unwrap();
        assert_eq!(loaded.state_root, sample.state_root);
        check_decodes_to(&storage.read(&path).unwrap(), &sample);
        let summary = read_checkpoint_summary(storage, &path).unwrap();
        assert_eq!(summary.tick, 42);
        assert_eq!(summary.genesis_root, sample.genesis_root);
        assert_eq!(summary.continuity_root, sample.continuity_root);
        assert_eq!(summary.state_root, sample.state_root);
        assert_eq!(summary.entries, sample.entries.len() as u64);
        assert_eq!(
            &summary.checksum.0[..],
            &sample.bytes[sample.bytes.len() - 32..]
        );
        let listing = list_checkpoints(storage, &dir).unwrap();
        assert_eq!(listing.checkpoints, [(42, path.clone())]);
        assert!(listing.strays.is_empty(), "{:?}", listing.strays);
    }
    // Durable: the directory was synced.
    let rebooted = simulated.reboot(Reboot::LoseUnsynced);
    assert!(load_checkpoint(&rebooted, &world_dir().checkpoint(42)).is_ok());
}

/// A state of `entries` keys spread over several of the streaming writer's
/// blocks (about 1 MiB each), with two senders' nonces.
fn large_state(entries: u32) -> (State, BTreeMap<PublicKey, u64>) {
    let mut state = State::new();
    for i in 0..entries {
        let key = format!("player/{:08}", i.wrapping_mul(2_654_435_761));
        state.set(
            key.as_bytes(),
            &i.to_le_bytes().repeat(1 + (i % 9) as usize),
        );
    }
    let nonces = sample_checkpoint().nonces;
    (state, nonces)
}

#[test]
fn streamed_checkpoints_are_the_encoded_bytes_and_durable() {
    let (mut big, nonces) = large_state(80_000);
    let big_root = big.root();
    let small = sample_checkpoint();
    let mut small_state = State::new();
    for (key, value) in &small.entries {
        small_state.set(key, value);
    }
    let temp = TempDir::new("checkpoint-streamed");
    let on_disk = WorldDir::new(temp.path(), &world());
    DiskStorage.create_dir_all(&on_disk.checkpoints()).unwrap();
    let simulated = SimStorage::new();
    simulated
        .create_dir_all(&world_dir().checkpoints())
        .unwrap();
    for (storage, dir) in [
        (&DiskStorage as &dyn Storage, on_disk),
        (&simulated as &dyn Storage, world_dir()),
    ] {
        for (tick, state, root, nonces) in [
            (7, &big, big_root, &nonces),
            (42, &small_state, small.state_root, &small.nonces),
        ] {
            let roots = [&small.genesis_root, &small.continuity_root, &root];
            let expected = encode_checkpoint(tick, roots[0], roots[1], &root, state, nonces);
            // A temporary file left by a crashed write is replaced, not appended to.
            let temporary = dir.checkpoints().join(format!(".{:020}.ckpt.tmp", tick));
            storage
                .write_synced(&temporary, b"left by a crash")
                .unwrap();
            let written =
                write_checkpoint_of(storage, &dir, tick, roots, state, nonces, None).unwrap();
            assert_eq!(written.path, dir.checkpoint(tick));
            assert_eq!(written.bytes, expected.len() as u64);
            if tick == 7 {
                assert!(expected.len() > 3 << 20, "spans several 1 MiB blocks");
            }
            assert_eq!(written.file_digest, file_digest(&expected));
            assert!(
                storage.read(&written.path).unwrap() == expected,
                "tick {tick}"
            );
            assert!(!storage.exists(&temporary));
            let loaded = load_checkpoint(storage, &written.path).ok().unwrap();
            assert_eq!((loaded.state_root, loaded.state.len()), (root, state.len()));
        }
    }
    let rebooted = simulated.reboot(Reboot::LoseUnsynced);
    for tick in [7, 42] {
        assert!(load_checkpoint(&rebooted, &world_dir().checkpoint(tick)).is_ok());
    }
}

#[test]
fn a_failed_sync_while_streaming_is_an_error_and_leaves_no_checkpoint() {
    let (mut state, nonces) = large_state(80_000);
    let root = state.root();
    let simulated = SimStorage::new();
    simulated
        .create_dir_all(&world_dir().checkpoints())
        .unwrap();
    simulated.fail_sync_at(simulated.syncs() + 1);
    let error = write_checkpoint_of(
        &simulated,
        &world_dir(),
        9,
        [&Hash::ZERO, &Hash::ZERO, &root],
        &state,
        &nonces,
        None,
    )
    .unwrap_err();
    assert!(matches!(error, StoreError::Io { .. }), "{error}");
    assert!(!simulated.exists(&world_dir().checkpoint(9)));
}

#[test]
fn a_wrong_recorded_state_root_is_caught_by_recomputing_it() {
    let sample = sample_checkpoint();
    let mut bytes = sample.bytes.clone();
    bytes[88..120].copy_from_slice(&Domain::StateEmpty.hash(b"not it").0);
    check_refused(&with_checksum(bytes), 88, "the state it holds has root");
    // The same through the encoder: a caller passing the wrong root.
    let mut state = State::new();
    state.set(b"k", b"v");
    let bytes = encode_checkpoint(
        1,
        &Hash::ZERO,
        &Hash::ZERO,
        &Hash::ZERO,
        &state,
        &BTreeMap::new(),
    );
    assert!(decode_checkpoint(&bytes).is_err());
}

#[test]
fn a_name_that_disagrees_with_the_tick_is_refused() {
    let sample = sample_checkpoint();
    let storage = SimStorage::new();
    for name in ["00000000000000000043.ckpt", "42.ckpt", "checkpoint"] {
        let path = world_dir().checkpoints().join(name);
        storage.write_synced(&path, &sample.bytes).unwrap();
        let error = load_checkpoint(&storage, &path).err().unwrap();
        check_corrupt(&error, &path, 16, "records tick 42");
        let error = read_checkpoint_summary(&storage, &path).err().unwrap();
        check_corrupt(&error, &path, 16, "records tick 42");
    }
}

fn entry(key: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (key.to_vec(), value.to_vec())
}

/// Checkpoint bytes assembled field by field, checksum recomputed.
fn assemble(
    nonces: &[([u8; 32], u64)],
    entries: &[(Vec<u8>, Vec<u8>)],
    trailing: &[u8],
) -> Vec<u8> {
    let mut state = State::new();
    for (key, value) in entries {
        state.set(key, value);
    }
    let mut out = encode_checkpoint(
        7,
        &Hash::ZERO,
        &Hash::ZERO,
        &state.root(),
        &State::new(),
        &BTreeMap::new(),
    );
    out.truncate(120);
    out.extend_from_slice(&(nonces.len() as u64).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (sender, nonce) in nonces {
        out.extend_from_slice(sender);
        out.extend_from_slice(&nonce.to_le_bytes());
    }
    for (key, value) in entries {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(trailing);
    out.extend_from_slice(&[0; 32]);
    with_checksum(out)
}

#[test]
fn malformed_contents_are_refused_even_with_a_good_checksum() {
    let path = |tick: u64| world_dir().checkpoint(tick);
    let storage = SimStorage::new();
    let check = |bytes: Vec<u8>, offset: u64, what: &str| {
        storage.write_synced(&path(7), &bytes).unwrap();
        let error = load_checkpoint(&storage, &path(7)).err().unwrap();
        check_corrupt(&error, &path(7), offset, what);
    };
    let good = assemble(
        &[([1; 32], 5)],
        &[entry(b"a", b"1"), entry(b"b", b"2")],
        &[],
    );
    storage.write_synced(&path(7), &good).unwrap();
    assert!(load_checkpoint(&storage, &path(7)).is_ok());

    let after_counts = 136;
    check(
        assemble(&[([2; 32], 5), ([1; 32], 5)], &[], &[]),
        (after_counts + 80) as u64,
        "senders are not strictly ascending",
    );
    check(
        assemble(&[([1; 32], 5), ([1; 32], 6)], &[], &[]),
        (after_counts + 80) as u64,
        "senders are not strictly ascending",
    );
    check(
        assemble(&[], &[entry(b"b", b"2"), entry(b"a", b"1")], &[]),
        (after_counts + 20) as u64,
        "keys are not strictly ascending",
    );
    check(
        assemble(&[], &[entry(b"", b"1")], &[]),
        (after_counts + 4) as u64,
        "key length 0 is out of range",
    );
    check(
        assemble(&[], &[entry(&[b'k'; 257], b"1")], &[]),
        (after_counts + 4) as u64,
        "key length 257 is out of range",
    );
    check(
        assemble(&[], &[entry(b"k", &[0; 65_537])], &[]),
        (after_counts + 9) as u64,
        "value length 65537 is out of range",
    );
    let with_trailing = assemble(&[], &[entry(b"a", b"1")], &[9, 9, 9]);
    check(
        with_trailing.clone(),
        (with_trailing.len() - 3) as u64,
        "3 trailing bytes",
    );
    // Counts larger than the file run out of bytes (nothing is allocated up front).
    let mut huge = assemble(&[], &[entry(b"a", b"1")], &[]);
    huge[120..128].copy_from_slice(&u64::MAX.to_le_bytes());
    check(with_checksum(huge), 176, "sender: needs 32 bytes, 2 remain");
    let mut huge = assemble(&[], &[entry(b"a", b"1")], &[]);
    huge[128..136].copy_from_slice(&u64::MAX.to_le_bytes());
    // The second entry's key length is read from the checksum.
    check(with_checksum(huge), 150, "key length");
}

#[test]
fn short_and_foreign_files_are_refused() {
    let sample = sample_checkpoint();
    check_refused(&sample.bytes[..100], 10, "shorter than a checkpoint header");
    check_refused(b"EACHECK", 0, "magic");
    check_refused(b"not a checkpoint at all", 8, "bad magic");
    let mut bytes = sample.bytes.clone();
    bytes[8..10].copy_from_slice(&9u16.to_le_bytes());
    let storage = SimStorage::new();
    let path = world_dir().checkpoint(42);
    storage.write_synced(&path, &with_checksum(bytes)).unwrap();
    let error = load_checkpoint(&storage, &path).err().unwrap();
    assert!(
        matches!(
            error,
            StoreError::UnsupportedVersion {
                found: 9,
                supported: 1,
                ..
            }
        ),
        "{error}"
    );
    let mut bytes = sample.bytes.clone();
    bytes[12] = 1;
    check_refused(&with_checksum(bytes), 16, "reserved bytes are not zero");
}

#[test]
fn retention_keeps_the_newest_and_never_the_only_one() {
    let storage = SimStorage::new();
    let dir = world_dir();
    let single = sample_at(10);
    write_checkpoint(&storage, &dir, 10, &single.bytes).unwrap();
    assert!(prune_checkpoints(&storage, &dir, 1).unwrap().is_empty());
    for tick in [20, 30, 40] {
        write_checkpoint(&storage, &dir, tick, &sample_at(tick).bytes).unwrap();
    }
    let stray = dir.checkpoints().join(".00000000000000000050.ckpt.tmp");
    storage.write_synced(&stray, b"half a checkpoint").unwrap();
    let notes = dir.checkpoints().join("notes.txt");
    storage.write_synced(&notes, b"?").unwrap();
    let listing = list_checkpoints(&storage, &dir).unwrap();
    let ticks: Vec<u64> = listing.checkpoints.iter().map(|(tick, _)| *tick).collect();
    assert_eq!(ticks, [10, 20, 30, 40]);
    assert_eq!(listing.strays, [stray.clone(), notes.clone()]);

    assert!(prune_checkpoints(&storage, &dir, 5).unwrap().is_empty());
    let removed = prune_checkpoints(&storage, &dir, 2).unwrap();
    assert_eq!(removed, [dir.checkpoint(10), dir.checkpoint(20)]);
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    let listing = list_checkpoints(&rebooted, &dir).unwrap();
    let ticks: Vec<u64> = listing.checkpoints.iter().map(|(tick, _)| *tick).collect();
    assert_eq!(ticks, [30, 40], "the removals are durable");
    let removed = prune_checkpoints(&storage, &dir, 1).unwrap();
    assert_eq!(removed, [dir.checkpoint(30)]);
    let listing = list_checkpoints(&storage, &dir).unwrap();
    assert_eq!(listing.checkpoints, [(40, dir.checkpoint(40))]);
    assert_eq!(listing.strays.len(), 2, "strays are listed, never pruned");
}

#[test]
fn listing_a_missing_directory_is_empty() {
    let temp = TempDir::new("no-checkpoints");
    let dir = WorldDir::new(temp.path(), &world());
    let listing = list_checkpoints(&DiskStorage, &dir).unwrap();
    assert!(listing.checkpoints.is_empty() && listing.strays.is_empty());
}

#[test]
fn a_crash_while_writing_leaves_the_old_file_or_the_new_one() {
    let dir = world_dir();
    let old = sample_at(42);
    let new = decode_checkpoint(&old.bytes).ok().unwrap();
    let new = encode_checkpoint(
        42,
        &new.genesis_root,
        &Domain::Continuity.hash(b"another lineage point"),
        &new.state_root,
        &new.state,
        &new.nonces,
    );
    // write_atomic syncs twice: the temporary file, then the directory.
    for crash in 1..=2 {
        let storage = SimStorage::new();
        write_checkpoint(&storage, &dir, 42, &old.bytes).unwrap();
        storage.crash_at_sync(storage.syncs() + crash);
        assert!(write_checkpoint(&storage, &dir, 42, &new).is_err());
        for seed in 0..4 {
            let rebooted = storage.reboot(Reboot::TornUnsynced { seed });
            let found = rebooted.read(&dir.checkpoint(42)).unwrap();
            assert!(found == old.bytes || found == new, "crash at sync {crash}");
            assert!(load_checkpoint(&rebooted, &dir.checkpoint(42)).is_ok());
        }
    }
    let storage = SimStorage::new();
    write_checkpoint(&storage, &dir, 42, &old.bytes).unwrap();
    write_checkpoint(&storage, &dir, 42, &new).unwrap();
    let rebooted = storage.reboot(Reboot::LoseUnsynced);
    assert_eq!(rebooted.read(&dir.checkpoint(42)).unwrap(), new);
}

/// 40,000 entries (past the size at which the loader's state builder splits
/// its work between threads), keys of 13 bytes and values of 4 to 80 bytes
/// (stored inline and on the heap alike), in key order.
fn large_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..40_000u32)
        .map(|i| {
            let key = format!("player/{i:06}").into_bytes();
            (key, i.to_le_bytes().repeat(1 + (i % 20) as usize))
        })
        .collect()
}

#[test]
fn a_large_checkpoint_loads_to_the_same_working_state() {
    let entries = large_entries();
    let mut state = State::new();
    for (key, value) in entries.iter().rev() {
        state.set(key, value);
    }
    let root = state.root();
    let bytes = encode_checkpoint(
        42,
        &Hash::ZERO,
        &Hash::ZERO,
        &root,
        &state,
        &BTreeMap::new(),
    );
    let checkpoint = decode_checkpoint(&bytes).ok().unwrap();
    assert_eq!(checkpoint.state_root, root);
    assert_eq!(checkpoint.state.len(), entries.len());
    assert_eq!(checkpoint.state.value_bytes(), state.value_bytes());
    assert!(checkpoint.state.iter().eq(state.iter()));
    let mut loaded = checkpoint.state;
    assert_eq!(loaded.root(), root);
    assert_eq!(
        loaded.prove(b"player/012345"),
        state.prove(b"player/012345")
    );
    // The loaded state takes writes like the one that was saved.
    for target in [&mut state, &mut loaded] {
        target.set(b"player/000007", b"moved");
        target.delete(b"player/000008");
        target.set(b"player/zzz", b"new");
    }
    assert_eq!(loaded.root(), state.root());
    assert_ne!(loaded.root(), root);
}

#[test]
fn every_entry_of_a_large_checkpoint_is_checked() {
    let entries = large_entries();
    let mut state = State::new();
    for (key, value) in &entries {
        state.set(key, value);
    }
    let bytes = encode_checkpoint(
        42,
        &Hash::ZERO,
        &Hash::ZERO,
        &state.root(),
        &state,
        &BTreeMap::new(),
    );
    // One bit of the last value, or a key in the middle, changed with the
    // checksum recomputed: the rebuilt root tells.
    let mut forged = bytes.clone();
    let last_value_byte = forged.len() - 33;
    forged[last_value_byte] ^= 1;
    check_refused(&with_checksum(forged), 88, "the state it holds has root");
    let middle_key = CHECKPOINT_HEADER_BYTES
        + entries[..20_000]
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>()
        + 4;
    let mut forged = bytes.clone();
    assert_eq!(&forged[middle_key..middle_key + 13], b"player/020000");
    // Between "player/019999" and "player/020001": the order still holds.
    forged[middle_key..middle_key + 13].copy_from_slice(b"player/01999:");
    check_refused(&with_checksum(forged), 88, "the state it holds has root");
    // Two neighbours swapped: refused where the second one ends.
    let mut swapped = entries.clone();
    swapped.swap(30_000, 30_001);
    let end_of_swap = CHECKPOINT_HEADER_BYTES
        + swapped[..30_002]
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>();
    check_refused(
        &assemble(&[], &swapped, &[]),
        end_of_swap as u64,
        "keys are not strictly ascending",
    );
}

#[test]
fn a_checkpoint_of_megabytes_is_checksummed_whole_while_encoded() {
    // 6.7 MB: past the size at which the checksum runs beside the encoder,
    // and over several of the blocks it is handed.
    let mut state = State::new();
    for i in 0..60_000u32 {
        state.set(&i.to_be_bytes(), &[i as u8; 100]);
    }
    let root = state.root();
    let bytes = encode_checkpoint(
        42,
        &Hash::ZERO,
        &Hash::ZERO,
        &root,
        &state,
        &BTreeMap::new(),
    );
    assert!(bytes.len() > 6_000_000);
    let end = bytes.len() - 32;
    assert_eq!(&bytes[end..], &Domain::Checkpoint.hash(&bytes[..end]).0);
    let checkpoint = decode_checkpoint(&bytes).ok().unwrap();
    assert!(checkpoint.state.iter().eq(state.iter()));
}
