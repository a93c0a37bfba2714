//! Old-format fixtures: a version-1 journal and checkpoint made once and
//! committed under `tests/fixtures/v1/`. They stay under test forever: a
//! change that stops this runtime from reading files an older one wrote
//! fails here. `EA_REGENERATE_FIXTURES=1` rewrites them from the generator
//! below (only on purpose, with a format version bump or before release).
//!
//! The generator is self-contained: it shares nothing with the other test
//! helpers, so changing those never changes the fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use everarcade_protocol::{
    Domain, Envelope, Hash, Outcome, PublicKey, Receipt, ReceiptKind, TickRoots, TrapClass,
    WorldId, continuity_root, events_hash, genesis_root, list_root, test_signing_key,
};
use everarcade_state::State;
use everarcade_store::checkpoint::{encode_checkpoint, load_checkpoint};
use everarcade_store::journal::{GenesisRecord, InputsRecord, Record, TickRecord};
use everarcade_store::{DiskStorage, JournalConfig, JournalWriter, SimStorage, Storage};

use crate::common::read_journal;

/// `tests/fixtures/v1` in the source tree.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// Whether this run regenerates committed fixtures and seed corpora.
pub fn regenerating() -> bool {
    std::env::var_os("EA_REGENERATE_FIXTURES").is_some_and(|value| value == "1")
}

/// The fixture files as the current code writes them: relative path, bytes.
pub fn generate() -> Vec<(String, Vec<u8>)> {
    let world = WorldId::new("fixture-v1").unwrap();
    let players = ["alice", "bob", "carol"];
    let package_root = Domain::Package.hash(b"fixture package v1");
    let profile_hash = Domain::Profile.hash(b"fixture profile v1");
    let mut state = State::new();
    state.set(b"created", b"genesis");
    let genesis = GenesisRecord {
        world: world.clone(),
        package_root,
        profile_hash,
        genesis_root: genesis_root(&world, &package_root, &profile_hash),
        state_root: state.root(),
        receipt: Some(receipt(
            ReceiptKind::GenesisHook,
            Hash::ZERO,
            Outcome::Applied,
            777,
            &[b"hello"],
        )),
    };
    let storage = SimStorage::new();
    let dir = Path::new("/fixture/journal");
    let config = JournalConfig {
        segment_bytes_max: 1400,
    };
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let mut writer = JournalWriter::create(shared, dir, &genesis, config).unwrap();
    let mut previous = genesis.genesis_root;
    let mut nonces: BTreeMap<PublicKey, u64> = BTreeMap::new();
    // Tick 1: three inputs; tick 2: none; tick 3: two inputs.
    for (tick, inputs) in [(1u64, 3usize), (2, 0), (3, 2)] {
        let envelopes: Vec<Envelope> = (0..inputs)
            .map(|n| {
                let key = test_signing_key(players[n]);
                let nonce = tick * 10 + n as u64;
                nonces.insert(key.verifying_key().to_bytes(), nonce);
                let payload = format!("fixture tick {tick} input {n}").into_bytes();
                Envelope::sign(&world, &key, nonce, payload)
            })
            .collect();
        let outcomes = [
            Outcome::Applied,
            Outcome::Rejected(3),
            Outcome::Trapped(TrapClass::Unreachable),
        ];
        let mut receipts: Vec<Receipt> = envelopes
            .iter()
            .enumerate()
            .map(|(n, envelope)| {
                let outcome = outcomes[(n + tick as usize) % outcomes.len()];
                if outcome == Outcome::Applied {
                    state.set(
                        format!("player/{}", players[n]).as_bytes(),
                        &tick.to_le_bytes(),
                    );
                }
                receipt(
                    ReceiptKind::Input,
                    envelope.hash(),
                    outcome,
                    100 + n as u64,
                    &[],
                )
            })
            .collect();
        state.set(b"tick", &tick.to_le_bytes());
        receipts.push(receipt(
            ReceiptKind::TickHook,
            Hash::ZERO,
            Outcome::OutOfFuel,
            5000,
            &[],
        ));
        let input_root = list_root(&envelopes.iter().map(Envelope::hash).collect::<Vec<_>>());
        let receipt_root = list_root(&receipts.iter().map(Receipt::hash).collect::<Vec<_>>());
        let state_root = state.root();
        previous = continuity_root(&previous, tick, &input_root, &receipt_root, &state_root);
        if !envelopes.is_empty() {
            writer
                .append(&Record::Inputs(InputsRecord { tick, envelopes }))
                .unwrap();
        }
        let roots = TickRoots {
            tick,
            input_root,
            receipt_root,
            state_root,
            continuity_root: previous,
        };
        let input_count = inputs as u32;
        writer
            .append(&Record::Tick(TickRecord {
                roots,
                input_count,
                receipts,
            }))
            .unwrap();
        writer.commit().unwrap();
    }
    let mut files: Vec<(String, Vec<u8>)> = storage
        .list(dir)
        .unwrap()
        .into_iter()
        .map(|name| {
            let bytes = storage.read(&dir.join(&name)).unwrap();
            (format!("journal/{name}"), bytes)
        })
        .collect();
    assert_eq!(files.len(), 2, "the fixture journal has two segments");
    let state_root = state.root();
    let checkpoint = encode_checkpoint(
        3,
        &genesis.genesis_root,
        &previous,
        &state_root,
        &state,
        &nonces,
    );
    files.push(("checkpoints/00000000000000000003.ckpt".into(), checkpoint));
    files
}

fn receipt(
    kind: ReceiptKind,
    subject: Hash,
    outcome: Outcome,
    fuel: u64,
    events: &[&[u8]],
) -> Receipt {
    let emitted: &[&[u8]] = if outcome == Outcome::Applied {
        events
    } else {
        &[]
    };
    Receipt {
        kind,
        subject,
        outcome,
        fuel_used: fuel,
        events_hash: events_hash(emitted.iter().copied()),
        event_count: emitted.len() as u32,
    }
}

/// Rewrites the committed fixtures once per run, if asked.
pub fn regenerate_if_asked() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if !regenerating() {
            return;
        }
        for (relative, bytes) in generate() {
            let path = fixture_dir().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    });
}

fn hex(hash: &Hash) -> String {
    hash.to_hex()
}

#[test]
fn v1_journal_decodes_to_the_recorded_values() {
    regenerate_if_asked();
    let reading = read_journal(&DiskStorage, &fixture_dir().join("journal")).unwrap();
    assert!(reading.torn.is_none());
    assert_eq!(reading.end.segments, 2);
    assert_eq!(reading.end.records, 6);
    let records = reading.decoded();
    let Record::Genesis(genesis) = &records[0] else {
        panic!("the first record is genesis");
    };
    assert_eq!(genesis.world.as_str(), "fixture-v1");
    assert_eq!(hex(&genesis.genesis_root), GENESIS_ROOT);
    assert_eq!(
        hex(&genesis.package_root),
        hex(&Domain::Package.hash(b"fixture package v1"))
    );
    assert_eq!(hex(&genesis.state_root), GENESIS_STATE_ROOT);
    let hook = genesis.receipt.unwrap();
    assert_eq!(
        (hook.kind, hook.outcome, hook.fuel_used, hook.event_count),
        (ReceiptKind::GenesisHook, Outcome::Applied, 777, 1)
    );

    let mut envelopes = 0;
    let mut ticks = Vec::new();
    let mut previous = genesis.genesis_root;
    for record in &records[1..] {
        match record {
            Record::Inputs(inputs) => {
                for envelope in &inputs.envelopes {
                    envelope.verify_signature().unwrap();
                    assert_eq!(envelope.world.as_str(), "fixture-v1");
                }
                envelopes += inputs.envelopes.len();
            }
            Record::Tick(tick) => {
                let roots = &tick.roots;
                let recomputed = continuity_root(
                    &previous,
                    roots.tick,
                    &roots.input_root,
                    &roots.receipt_root,
                    &roots.state_root,
                );
                assert_eq!(recomputed, roots.continuity_root, "tick {}", roots.tick);
                previous = roots.continuity_root;
                ticks.push((
                    roots.tick,
                    tick.input_count,
                    tick.receipts.len(),
                    hex(&roots.state_root),
                    hex(&roots.continuity_root),
                ));
            }
            Record::Genesis(_) => panic!("a second genesis"),
        }
    }
    assert_eq!(envelopes, 5);
    let expected: Vec<(u64, u32, usize, String, String)> = TICKS
        .iter()
        .map(|(tick, inputs, receipts, state, continuity)| {
            (
                *tick,
                *inputs,
                *receipts,
                state.to_string(),
                continuity.to_string(),
            )
        })
        .collect();
    assert_eq!(ticks, expected);
    assert_eq!(hex(&reading.end.last_checksum), FINAL_CHECKSUM);
    assert_eq!(
        hex(&reading.records.last().unwrap().checksum),
        FINAL_CHECKSUM
    );
    assert_eq!(reading.end.segment, 2);
    assert_eq!(reading.end.length, SEGMENT_2_BYTES);
}

#[test]
fn v1_checkpoint_decodes_to_the_recorded_values() {
    regenerate_if_asked();
    let path = fixture_dir().join("checkpoints/00000000000000000003.ckpt");
    let checkpoint = load_checkpoint(&DiskStorage, &path).ok().unwrap();
    assert_eq!(checkpoint.tick, 3);
    assert_eq!(hex(&checkpoint.genesis_root), GENESIS_ROOT);
    assert_eq!(hex(&checkpoint.state_root), TICKS[2].3);
    assert_eq!(hex(&checkpoint.continuity_root), TICKS[2].4);
    let keys: Vec<&[u8]> = checkpoint.state.iter().map(|(key, _)| key).collect();
    assert_eq!(
        keys,
        [&b"created"[..], b"player/alice", b"player/carol", b"tick"]
    );
    assert_eq!(checkpoint.state.get(b"tick"), Some(&3u64.to_le_bytes()[..]));
    assert_eq!(
        checkpoint.state.get(b"player/carol"),
        Some(&1u64.to_le_bytes()[..])
    );
    let nonces: Vec<u64> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| checkpoint.nonces[&test_signing_key(name).verifying_key().to_bytes()])
        .collect();
    assert_eq!(nonces, [30, 31, 12]);
}

#[test]
fn the_current_writer_reproduces_the_fixtures_byte_for_byte() {
    regenerate_if_asked();
    for (relative, bytes) in generate() {
        let committed = std::fs::read(fixture_dir().join(&relative)).unwrap();
        assert!(
            committed == bytes,
            "{relative} is no longer written as in v1"
        );
    }
}

/// `C(0)` of the fixture world.
const GENESIS_ROOT: &str = "f639b617cd4c8dd620cec8cf19e9ab6ad109ca48cfe9a441cf7d801aa9ad37fe";
/// The state root after genesis.
const GENESIS_STATE_ROOT: &str = "d32d093f4d6ea3ccff9684a22abebbad46ec581ddd7f4855b89bc9704e5167d4";
/// Per tick: number, inputs, receipts, state root, continuity root.
const TICKS: [(u64, u32, usize, &str, &str); 3] = [
    (
        1,
        3,
        4,
        "6ae6132e0d9363acf61d6c13b21c3ad5c9b12776e85e29718b1f2e1825b4ef6a",
        "9f9a9ca16466c4af1d8140c2329b7fc1b4c7b6bea29e9ea2d5bcbf89bc15dd19",
    ),
    (
        2,
        0,
        1,
        "864e3331978d2b8c31ee9ddf6d8122a8ff433fa9fce5598cee661c6e9a1111cf",
        "dd5ccc33710781cf3a14f272ae1e06f34a3f4295478e1a7415f8bbdc2570a43b",
    ),
    (
        3,
        2,
        3,
        "8fc6961265fc155c8a5dc9a05ed2df96b48a99cdb8a314cf55b3dcf2c37f367f",
        "3893f540655f67d5b5ad57e5626e132bf5be0e005d14314f733e9539b7c61b2d",
    ),
];
/// The checksum of the last record (tick 3's).
const FINAL_CHECKSUM: &str = "5d3346cc5f8c16077945a2b6cb697ea5493ae46e2c8f6eb1ed66cf93be273101";
/// Bytes of segment 2.
const SEGMENT_2_BYTES: u64 = 1264;
