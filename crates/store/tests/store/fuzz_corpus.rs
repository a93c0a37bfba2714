//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`) replayed
//! through the same functions the targets call, on the stable toolchain;
//! then a bounded, seeded mutation fuzzer over them. A panic names the file
//! (or the seed and iteration) that caused it.
//!
//! `EA_REGENERATE_FIXTURES=1` also rewrites the hand-made seed files (named
//! `seed-*`); entries libFuzzer added (named by their SHA-1) are kept.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::OnceLock;

use everarcade_protocol::{Domain, Hash, WorldId};
use everarcade_state::State;
use everarcade_store::checkpoint::encode_checkpoint;
use everarcade_store::fuzz;
use everarcade_store::journal::{InputsRecord, Record, SEGMENT_HEADER_BYTES, SegmentHeader};

use crate::checkpoints::{sample_checkpoint, with_checksum};
use crate::common::{History, Rng, genesis_of};
use crate::fixtures::{generate, regenerating};

/// The body of a fuzz target.
type Target = fn(&[u8]);

/// The fuzz targets: directory name and body.
const TARGETS: [(&str, Target); 3] = [
    ("journal_segment", fuzz::journal_segment),
    ("journal_record", fuzz::journal_record),
    ("checkpoint", fuzz::checkpoint),
];

/// The files of a target's corpus, sorted by name (regenerated first when
/// asked).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    regenerate_if_asked();
    everarcade_testkit::corpus::files(target)
}

/// Runs `body` on `data`; a panic fails the test naming `what`.
#[track_caller]
fn check_no_panic(body: Target, data: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
        panic!(
            "{what} panicked ({} bytes: {})",
            data.len(),
            hex::encode(data)
        );
    }
}

#[test]
fn every_corpus_file_runs_without_panicking() {
    for (target, body) in TARGETS {
        let files = corpus(target);
        assert!(
            files.len() >= 20,
            "{target} has only {} corpus files",
            files.len()
        );
        for (path, bytes) in &files {
            check_no_panic(body, bytes, &path.display().to_string());
        }
    }
}

/// Applies one to four seeded mutations: bit flips, interesting integers,
/// cuts, insertions, duplicated chunks.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    const INTERESTING: [u32; 8] = [0, 1, 2, 3, 0x7f, 0xff, 0x1_0000, u32::MAX];
    for _ in 0..1 + rng.below(4) {
        let length = input.len();
        match rng.below(6) {
            0 if length > 0 => {
                let at = rng.below(length);
                input[at] ^= 1 << rng.below(8);
            }
            1 if length >= 4 => {
                let at = rng.below(length - 3);
                let value = INTERESTING[rng.below(INTERESTING.len())];
                input[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            2 if length > 0 => input.truncate(rng.below(length)),
            3 => {
                let at = rng.below(length + 1);
                let extra: Vec<u8> = (0..1 + rng.below(40)).map(|_| rng.next() as u8).collect();
                input.splice(at..at, extra);
            }
            4 if length > 0 => {
                let from = rng.below(length);
                let to = from + rng.below(length - from).min(200);
                let chunk = input[from..to].to_vec();
                let at = rng.below(length + 1);
                input.splice(at..at, chunk);
            }
            _ if length > 0 => {
                let at = rng.below(length);
                input[at] = rng.next() as u8;
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

#[test]
fn bounded_mutation_fuzzing_from_the_corpus() {
    for (number, (target, body)) in TARGETS.into_iter().enumerate() {
        let files = corpus(target);
        let mut rng = Rng::new(0xf022_0000 + number as u64);
        for iteration in 0..20_000 {
            let mut input = files[rng.below(files.len())].1.clone();
            mutate(&mut rng, &mut input);
            check_no_panic(body, &input, &format!("{target} iteration {iteration}"));
        }
    }
}

/// Rewrites the `seed-*` files once per run, if asked.
fn regenerate_if_asked() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if !regenerating() {
            return;
        }
        for (target, seeds) in [
            ("journal_segment", segment_seeds()),
            ("journal_record", record_seeds()),
            ("checkpoint", checkpoint_seeds()),
        ] {
            let dir = everarcade_testkit::corpus::dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in seeds {
                std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
            }
        }
    });
}

fn fixture(prefix: &str) -> Vec<u8> {
    generate()
        .into_iter()
        .find(|(name, _)| name.starts_with(prefix))
        .unwrap()
        .1
}

/// A one-segment journal of `ticks` ticks with `inputs` inputs each.
fn one_segment(ticks: u64, inputs: usize) -> Vec<u8> {
    let history = History::new(&WorldId::new("world-001").unwrap(), ticks, inputs);
    let genesis = history.genesis().genesis_root;
    let mut out = SegmentHeader {
        index: 1,
        genesis_root: genesis,
        prev: genesis,
    }
    .encode();
    let mut prev = genesis;
    for record in &history.records {
        prev = everarcade_store::journal::encode_record(
            record.kind(),
            &record.encode_body(),
            &prev,
            &mut out,
        );
    }
    out
}

fn with(bytes: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = bytes.to_vec();
    change(&mut out);
    out
}

fn segment_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let first = fixture("journal/0000000001");
    let second = fixture("journal/0000000002");
    let small = one_segment(3, 2);
    let first_record = SEGMENT_HEADER_BYTES;
    vec![
        ("fixture-segment-1", first.clone()),
        ("fixture-segment-2", second.clone()),
        ("three-ticks", small.clone()),
        ("empty-ticks", one_segment(6, 0)),
        ("genesis-only", one_segment(0, 0)),
        ("many-inputs", one_segment(1, 12)),
        ("header-only", small[..SEGMENT_HEADER_BYTES].to_vec()),
        ("empty", Vec::new()),
        ("short-header", small[..77].to_vec()),
        ("zero-header", vec![0; SEGMENT_HEADER_BYTES]),
        ("torn-last-record", small[..small.len() - 50].to_vec()),
        ("torn-record-header", small[..small.len() - 20].to_vec()),
        ("zero-tail", with(&small, |b| b.extend([0; 64]))),
        ("bad-magic", with(&small, |b| b[0] = b'X')),
        ("version-2", with(&small, |b| b[8] = 2)),
        ("reserved-header", with(&small, |b| b[12] = 1)),
        ("index-7", with(&small, |b| b[16] = 7)),
        ("flipped-body", with(&small, |b| b[first_record + 60] ^= 4)),
        (
            "flipped-checksum",
            with(&small, |b| *b.last_mut().unwrap() ^= 1),
        ),
        ("length-grown", with(&small, |b| b[first_record + 1] ^= 8)),
        ("length-huge", with(&small, |b| b[first_record + 3] = 0x7f)),
        ("kind-9", with(&small, |b| b[first_record + 4] = 9)),
        ("reserved-record", with(&small, |b| b[first_record + 6] = 1)),
        ("broken-prev", with(&small, |b| b[first_record + 8] ^= 1)),
        ("trailing-garbage", with(&small, |b| b.extend(b"garbage"))),
        (
            "second-twice",
            with(&first, |b| {
                b.extend_from_slice(&second[SEGMENT_HEADER_BYTES..])
            }),
        ),
    ]
}

fn record_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let world = WorldId::new("world-001").unwrap();
    let history = History::new(&world, 2, 3);
    let body = |n: usize| history.records[n].encode_body();
    let mut genesis = genesis_of(&world);
    let with_receipt = Record::Genesis(genesis.clone()).encode_body();
    genesis.receipt = None;
    let without_receipt = Record::Genesis(genesis).encode_body();
    let no_inputs = Record::Inputs(InputsRecord {
        tick: 9,
        envelopes: Vec::new(),
    })
    .encode_body();
    let inputs = body(1);
    let tick = body(2);
    vec![
        ("genesis", with_receipt.clone()),
        ("genesis-no-receipt", without_receipt.clone()),
        ("inputs-3", inputs.clone()),
        ("inputs-0", no_inputs),
        ("tick-4-receipts", tick.clone()),
        ("tick-2", body(4)),
        ("empty", Vec::new()),
        (
            "genesis-flag-2",
            with(&without_receipt, |b| *b.last_mut().unwrap() = 2),
        ),
        ("genesis-bad-world", with(&with_receipt, |b| b[1] = b'A')),
        ("genesis-world-0", with(&with_receipt, |b| b[0] = 0)),
        (
            "genesis-truncated",
            with_receipt[..with_receipt.len() - 10].to_vec(),
        ),
        (
            "inputs-count-huge",
            with(&inputs, |b| {
                b[8..12].copy_from_slice(&u32::MAX.to_le_bytes())
            }),
        ),
        ("inputs-count-short", with(&inputs, |b| b[8] = 2)),
        ("inputs-envelope-long", with(&inputs, |b| b[12] = 0xff)),
        ("inputs-bad-version", with(&inputs, |b| b[16] = 2)),
        ("inputs-trailing", with(&inputs, |b| b.push(0))),
        (
            "tick-count-huge",
            with(&tick, |b| {
                b[140..144].copy_from_slice(&u32::MAX.to_le_bytes())
            }),
        ),
        ("tick-bad-receipt-kind", with(&tick, |b| b[144] = 7)),
        ("tick-bad-outcome", with(&tick, |b| b[144 + 33] = 9)),
        (
            "tick-rejected-0",
            with(&tick, |b| {
                b[144 + 33] = 1;
                b[144 + 34..144 + 38].copy_from_slice(&0u32.to_le_bytes());
            }),
        ),
        ("tick-truncated", tick[..tick.len() - 1].to_vec()),
        ("tick-trailing", with(&tick, |b| b.extend([0; 82]))),
    ]
}

fn checkpoint_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let sample = sample_checkpoint().bytes;
    let mut state = State::new();
    let empty = encode_checkpoint(
        0,
        &Hash::ZERO,
        &Hash::ZERO,
        &state.root(),
        &state,
        &BTreeMap::new(),
    );
    state.set(b"a", b"1");
    state.set(b"b", b"");
    let small = encode_checkpoint(
        5,
        &Hash::ZERO,
        &Domain::Continuity.hash(b"c"),
        &state.root(),
        &state,
        &BTreeMap::from([([7; 32], 1)]),
    );
    let fixed = |bytes: Vec<u8>| with_checksum(bytes);
    vec![
        ("fixture", fixture("checkpoints/")),
        ("sample", sample.clone()),
        ("empty", empty.clone()),
        ("small", small.clone()),
        ("nothing", Vec::new()),
        ("magic-only", b"EACHECKP".to_vec()),
        ("short-header", sample[..100].to_vec()),
        ("bad-magic", with(&sample, |b| b[1] = 0)),
        ("version-2", fixed(with(&sample, |b| b[8] = 2))),
        ("reserved", fixed(with(&sample, |b| b[11] = 1))),
        ("flipped", with(&sample, |b| b[200] ^= 1)),
        ("wrong-root", fixed(with(&small, |b| b[100] ^= 1))),
        (
            "nonce-count-huge",
            fixed(with(&small, |b| b[120..128].fill(0xff))),
        ),
        (
            "entry-count-huge",
            fixed(with(&small, |b| b[128..136].fill(0xff))),
        ),
        ("entry-count-0", fixed(with(&small, |b| b[128] = 0))),
        (
            "senders-equal",
            fixed(with(&small, |b| {
                b[120] = 2;
                let sender = b[136..176].to_vec();
                b.splice(176..176, sender);
            })),
        ),
        ("key-length-0", fixed(with(&small, |b| b[176] = 0))),
        ("key-length-big", fixed(with(&small, |b| b[177] = 1))),
        (
            "value-length-big",
            fixed(with(&small, |b| {
                b[181..185].copy_from_slice(&65_537u32.to_le_bytes())
            })),
        ),
        ("keys-swapped", fixed(with(&small, |b| b[180] = b'c'))),
        (
            "trailing",
            fixed(with(&small, |b| {
                let at = b.len() - 32;
                b.splice(at..at, [1, 2, 3]);
            })),
        ),
        ("truncated", fixed(small[..small.len() - 5].to_vec())),
    ]
}
