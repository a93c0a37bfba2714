//! The audit fuzz targets' committed corpora (`fuzz/corpus/bundle/`,
//! `fuzz/corpus/player_proof/`) replayed through the same functions the
//! targets call (`everarcade_audit::fuzz`), on the stable toolchain; the valid
//! seeds checked to verify; then a bounded, seeded mutation fuzzer over a
//! freshly exported bundle and proofs of the sample package and over the
//! corpus. A panic names the file (or the target and iteration) and the input
//! in hex.
//!
//! The hand-made seeds (`seed-*`) come from a tiny world of a hand-assembled
//! package ([`TINY_MANIFEST`], [`tiny_module`]), so that each is a few KB
//! where a bundle of the sample package carries its ~52 KB of files; they
//! are signed by the fuzzing key (`fuzz::resign`), so they are the same
//! bytes on every run. `EA_REGENERATE_FIXTURES=1` rewrites them; entries
//! libFuzzer added (named by their SHA-1) are kept.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use everarcade_audit::bundle::{Bundle, StartState};
use everarcade_audit::export::{ExportRequest, export};
use everarcade_audit::fuzz::{self, Depth};
use everarcade_audit::proof::{ProofQuery, ProveRequest, prove};
use everarcade_audit::{Claim, PlayerProof, VerifyOptions, verify_bundle};
use everarcade_engine::CompiledPackage;
use everarcade_package::Package;
use everarcade_protocol::{Envelope, Tick, test_signing_key};
use everarcade_store::journal::JournalConfig;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, WorldDir};
use everarcade_world::{DurableWorld, WorldConfig, bind_package};

use crate::common::{Rng, Temp, build, contents, export_window, fixture, world_id};

/// The body of a fuzz target.
type Target = fn(&[u8]) -> Depth;

/// The fuzz targets: directory name and body.
const TARGETS: [(&str, Target); 2] = [
    ("bundle", fuzz::bundle),
    ("player_proof", fuzz::player_proof),
];

/// Mutations per target in the bounded loop: about half a second each in the
/// dev profile on a 2-core machine.
const MUTATIONS: [usize; 2] = [10_000, 10_000];

/// The files of a target's corpus, sorted by name (regenerated first when
/// asked).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    regenerate_if_asked();
    everarcade_testkit::corpus::files(target)
}

/// Runs `body` on `data`; a panic fails the test naming `what`.
#[track_caller]
fn check_no_panic(body: Target, data: &[u8], what: &str) -> Depth {
    match catch_unwind(AssertUnwindSafe(|| body(data))) {
        Ok(depth) => depth,
        Err(_) => panic!(
            "{what} panicked ({} bytes: {})",
            data.len(),
            hex::encode(data)
        ),
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

/// The corpus files named `seed-valid-*`.
fn valid_seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let valid: Vec<_> = corpus(target)
        .into_iter()
        .filter(|(path, _)| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-valid-")
        })
        .collect();
    assert!(valid.len() >= 4, "{target} has {} valid seeds", valid.len());
    valid
}

#[test]
fn the_valid_seeds_verify() {
    let engine = &fixture().engine;
    let mut head_root = None;
    for (path, bytes) in valid_seeds("bundle") {
        let report = verify_bundle(&bytes, engine, VerifyOptions::default())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(fuzz::bundle(&bytes), Depth::Verified, "{}", path.display());
        if report.to_tick == TINY_TICKS {
            head_root = Some(report.accumulator_root);
        }
    }
    // The proofs are of the same world, against its head.
    let head_root = head_root.expect("a valid bundle ends at the head");
    for (path, bytes) in valid_seeds("player_proof") {
        let proof = PlayerProof::decode(&bytes).unwrap();
        assert_eq!(
            proof.verify(&head_root),
            Ok(TINY_TICKS),
            "{}",
            path.display()
        );
        assert_eq!(fuzz::player_proof(&bytes), Depth::Verified);
    }
}

/// Applies one to four seeded mutations: bit flips, interesting integers,
/// cuts, insertions, duplicated chunks.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    const INTERESTING: [u32; 8] = [0, 1, 2, 3, 0x7f, 0xff, 0x1_0000, u32::MAX];
    let mut below = |bound: usize| rng.below(bound as u64) as usize;
    for _ in 0..1 + below(4) {
        let length = input.len();
        match below(6) {
            0 if length > 0 => {
                let at = below(length);
                input[at] ^= 1 << below(8);
            }
            1 if length >= 4 => {
                let at = below(length - 3);
                let value = INTERESTING[below(INTERESTING.len())];
                input[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            2 if length > 0 => input.truncate(below(length)),
            3 => {
                let at = below(length + 1);
                let extra: Vec<u8> = (0..1 + below(40)).map(|_| below(256) as u8).collect();
                input.splice(at..at, extra);
            }
            4 if length > 0 => {
                let from = below(length);
                let to = from + below(length - from).min(200);
                let chunk = input[from..to].to_vec();
                let at = below(length + 1);
                input.splice(at..at, chunk);
            }
            _ if length > 0 => {
                let at = below(length);
                input[at] = below(256) as u8;
            }
            _ => input.push(below(256) as u8),
        }
    }
}

/// A bundle exported from a world of the sample package (its own operator
/// key, not the fuzzing key), from genesis and from a checkpoint; a receipt
/// proof and state proofs of a present and an absent key.
fn fresh_inputs() -> [Vec<Vec<u8>>; 2] {
    let built = build("fuzz", 21, 6, 3);
    let bundles = vec![
        export_window(&built, 0, 6).bytes,
        export_window(&built, 3, 6).bytes,
    ];
    let request = ProveRequest {
        storage: &DiskStorage,
        dir: &built.dir,
        id: &world_id(),
        engine: &fixture().engine,
        compiled: fixture().compiled.clone(),
    };
    let bot = test_signing_key("bot-0").verifying_key().to_bytes();
    let player = [b"K".as_slice(), &bot].concat();
    let proofs = [
        ProofQuery::TickReceipt { tick: 2, index: 0 },
        ProofQuery::Key(player),
        ProofQuery::Key(b"no-such-key".to_vec()),
    ]
    .iter()
    .map(|query| prove(&request, query).unwrap().proof.unwrap().encode())
    .collect();
    [bundles, proofs]
}

#[test]
fn bounded_mutation_fuzzing_reaches_replay_and_verification() {
    let fresh = fresh_inputs();
    for (number, (target, body)) in TARGETS.into_iter().enumerate() {
        for bytes in &fresh[number] {
            assert_eq!(body(bytes), Depth::Verified, "a fresh {target} input");
        }
        let corpus: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, bytes)| bytes).collect();
        let mut rng = Rng(0xa0d1_7000 + number as u64);
        let mut reached: BTreeMap<Depth, usize> = BTreeMap::new();
        for iteration in 0..MUTATIONS[number] {
            // Half from the fresh exports of the sample package, half from
            // the corpus.
            let inputs = if rng.below(2) == 0 {
                &fresh[number]
            } else {
                &corpus
            };
            let mut input = inputs[rng.below(inputs.len() as u64) as usize].clone();
            mutate(&mut rng, &mut input);
            let what = format!("{target} iteration {iteration}");
            *reached
                .entry(check_no_panic(body, &input, &what))
                .or_default() += 1;
        }
        // Mutations get past the checksum and the signature (the target
        // reseals and re-signs) into replay, and some still verify. A bundle
        // that decodes is re-signed, so it never stops at `Decoded`.
        let expected: Vec<Depth> = match target {
            "bundle" => vec![Depth::Refused, Depth::Signed, Depth::Verified],
            _ => vec![Depth::Refused, Depth::Decoded, Depth::Verified],
        };
        assert_eq!(
            reached.keys().copied().collect::<Vec<_>>(),
            expected,
            "{target}: {reached:?}"
        );
    }
}

/// Rewrites the `seed-*` files once per run, if asked.
fn regenerate_if_asked() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var_os("EA_REGENERATE_FIXTURES").is_none_or(|value| value != "1") {
            return;
        }
        let tiny = tiny_world();
        for (target, seeds) in [
            ("bundle", bundle_seeds(&tiny)),
            ("player_proof", proof_seeds(&tiny)),
        ] {
            let dir = everarcade_testkit::corpus::dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in seeds {
                std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
            }
        }
    });
}

/// The tiny package's manifest.
const TINY_MANIFEST: &str = r#"name = "fuzz-tiny"
version = "0.1.0"
abi = "ea-world/1"
module = "world.wasm"
tick_rate_hz = 20

[limits]
fuel_per_input = 10000
fuel_per_tick = 10000
memory_bytes = 65536
inputs_per_tick = 8
payload_bytes = 32
key_bytes = 32
value_bytes = 32
events_per_input = 1
event_bytes = 16
"#;

/// Ticks the tiny world runs.
const TINY_TICKS: Tick = 4;

/// A module of World ABI v1 written out by hand (the audit tests have no WAT
/// compiler): one page of memory; `ea_alloc` answers 1024; `ea_input` stores
/// the payload as a key holding itself and returns 0; `ea_genesis` and
/// `ea_tick` do nothing, so every tick has a hook receipt.
fn tiny_module() -> Vec<u8> {
    fn section(id: u8, content: &[&[u8]]) -> Vec<u8> {
        let content = content.concat();
        assert!(content.len() < 128, "one-byte LEB128 sizes");
        [&[id, content.len() as u8][..], &content].concat()
    }
    fn name(text: &str) -> Vec<u8> {
        [&[text.len() as u8][..], text.as_bytes()].concat()
    }
    let (i32_, i64_) = (0x7f, 0x7e);
    let types = section(
        1,
        &[
            &[5],
            &[0x60, 1, i32_, 1, i32_],             // 0: ea_alloc
            &[0x60, 2, i32_, i32_, 1, i32_],       // 1: ea_input
            &[0x60, 0, 0],                         // 2: ea_genesis
            &[0x60, 1, i64_, 0],                   // 3: ea_tick
            &[0x60, 4, i32_, i32_, i32_, i32_, 0], // 4: state_set
        ],
    );
    let imports = section(2, &[&[1], &name("ea"), &name("state_set"), &[0, 4]]);
    let functions = section(3, &[&[4, 0, 1, 2, 3]]);
    let memory = section(5, &[&[1, 1, 1, 1]]);
    let export = |text: &str, kind: u8, index: u8| [name(text), vec![kind, index]].concat();
    let exports = section(
        7,
        &[
            &[5],
            &export("memory", 2, 0),
            &export("ea_alloc", 0, 1),
            &export("ea_input", 0, 2),
            &export("ea_genesis", 0, 3),
            &export("ea_tick", 0, 4),
        ],
    );
    let (local_get, call, i32_const, i32_add, i32_sub, end) = (0x20, 0x10, 0x41, 0x6a, 0x6b, 0x0b);
    // The payload follows the sender and the nonce (40 bytes).
    let payload = [
        local_get, 0, i32_const, 40, i32_add, local_get, 1, i32_const, 40, i32_sub,
    ];
    let input = [&[0][..], &payload, &payload, &[call, 0, i32_const, 0, end]].concat();
    let code = section(
        10,
        &[
            &[4],
            &[5, 0, i32_const, 0x80, 0x08, end],
            &[input.len() as u8],
            &input,
            &[2, 0, end],
            &[2, 0, end],
        ],
    );
    [
        b"\0asm\x01\0\0\0".as_slice(),
        &types,
        &imports,
        &functions,
        &memory,
        &exports,
        &code,
    ]
    .concat()
}

/// A closed world of the tiny package, checkpointed every 2 ticks, that ran
/// [`TINY_TICKS`] ticks of two players' inputs.
struct Tiny {
    _root: Temp,
    dir: WorldDir,
    compiled: Arc<CompiledPackage>,
}

fn tiny_world() -> Tiny {
    let root = Temp::new("fuzz-tiny");
    let package_dir = root.path().join("package");
    std::fs::create_dir_all(&package_dir).unwrap();
    std::fs::write(package_dir.join("world.toml"), TINY_MANIFEST).unwrap();
    std::fs::write(package_dir.join("world.wasm"), tiny_module()).unwrap();
    let package = Package::load(&package_dir).unwrap();
    let engine = fixture().engine.clone();
    let compiled = engine.compile(&package).unwrap();
    let dir = WorldDir::new(&root.path().join("worlds"), &world_id());
    bind_package(&DiskStorage, &dir, &package).unwrap();
    let config = WorldConfig {
        checkpoint_interval_ticks: 2,
        checkpoints_retained: 10,
        journal: JournalConfig {
            segment_bytes_max: 64 * 1024,
        },
    };
    let storage = Arc::new(DiskStorage);
    let mut world = DurableWorld::create(
        storage,
        dir.clone(),
        world_id(),
        engine,
        compiled.clone(),
        config,
    )
    .unwrap();
    let players = [test_signing_key("player-0"), test_signing_key("player-1")];
    for tick in 1..=TINY_TICKS {
        for (number, key) in players.iter().enumerate() {
            let payload = format!("p{number}-t{tick}").into_bytes();
            world
                .admit(Envelope::sign(&world_id(), key, tick, payload))
                .unwrap();
        }
        world.execute_tick().unwrap();
    }
    world.close().unwrap();
    Tiny {
        _root: root,
        dir,
        compiled,
    }
}

/// Ticks `from..=to` of the tiny world, re-signed by the fuzzing key.
fn tiny_bundle(tiny: &Tiny, from: Tick, to: Tick) -> Bundle {
    let request = ExportRequest {
        storage: &DiskStorage,
        dir: &tiny.dir,
        id: &world_id(),
        engine: &fixture().engine,
        compiled: tiny.compiled.clone(),
        from_tick: from,
        to_tick: to,
        runtime_version: "0.1.0",
    };
    let exported = export(&request, &mut |head| {
        Ok(OperatorKeys::load_or_create(&DiskStorage, &tiny.dir, head)?.0)
    })
    .unwrap();
    contents(&fuzz::resign(&contents(&exported.bytes)))
}

fn with(bytes: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = bytes.to_vec();
    change(&mut out);
    out
}

/// `bytes` with `change` applied and the checksum recomputed.
fn resealed(bytes: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    fuzz::reseal(&with(bytes, change)).unwrap()
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// Where a bundle body's sections start (docs/BUNDLES.md §3.1).
struct Layout {
    package: usize,
    genesis_receipt_flag: usize,
    start_kind: usize,
    anchor: usize,
    frontier: usize,
    anchor_path: usize,
    tick_count: usize,
    operator: usize,
}

impl Layout {
    fn of(bundle: &Bundle) -> Layout {
        let package = 8
            + 2
            + 6
            + 4
            + 1
            + bundle.world.as_str().len()
            + 1
            + bundle.runtime_version.len()
            + 64
            + 24;
        let files: usize = bundle
            .package
            .iter()
            .map(|f| 2 + f.path.len() + 8 + f.bytes.len())
            .sum();
        let genesis_receipt_flag = package + 4 + files + 32;
        let start_kind = genesis_receipt_flag + 1 + 82 * bundle.genesis_receipt.iter().count();
        let anchor = start_kind
            + 1
            + match &bundle.start {
                StartState::Genesis => 0,
                StartState::Checkpoint(bytes) => 8 + bytes.len(),
            };
        let frontier = anchor + 8 + 128;
        let anchor_path = frontier + 1 + 32 * bundle.frontier.len();
        let tick_count = anchor_path + 1 + 32 * bundle.anchor_path.len();
        let operator = bundle.encode_body().len() - (32 + 2 + 42 * bundle.operator.keys.len());
        Layout {
            package,
            genesis_receipt_flag,
            start_kind,
            anchor,
            frontier,
            anchor_path,
            tick_count,
            operator,
        }
    }
}

fn bundle_seeds(tiny: &Tiny) -> Vec<(&'static str, Vec<u8>)> {
    let genesis = tiny_bundle(tiny, 0, TINY_TICKS);
    let from_checkpoint = tiny_bundle(tiny, 2, TINY_TICKS);
    let bytes = fuzz::resign(&genesis);
    let at = Layout::of(&genesis);
    let tick = at.tick_count + 8;
    let first_input = tick + 12;
    let envelope_bytes = 4 + genesis.ticks[0].inputs[0].encode().len();
    let receipts = first_input + 2 * envelope_bytes + 128;
    let path = at.package + 4 + 2;
    let resigned = |change: &dyn Fn(&mut Bundle)| {
        let mut bundle = genesis.clone();
        change(&mut bundle);
        fuzz::resign(&bundle)
    };
    let checkpoint_resigned = |change: &dyn Fn(&mut Bundle)| {
        let mut bundle = from_checkpoint.clone();
        change(&mut bundle);
        fuzz::resign(&bundle)
    };
    vec![
        ("valid-genesis", bytes.clone()),
        ("valid-checkpoint", fuzz::resign(&from_checkpoint)),
        (
            "valid-head-only",
            fuzz::resign(&tiny_bundle(tiny, TINY_TICKS, TINY_TICKS)),
        ),
        ("valid-genesis-only", fuzz::resign(&tiny_bundle(tiny, 0, 0))),
        ("empty", Vec::new()),
        ("magic-only", b"EABUNDLE".to_vec()),
        ("short", bytes[..95].to_vec()),
        ("bad-magic", with(&bytes, |b| b[0] = b'X')),
        ("version-2", with(&bytes, |b| b[8] = 2)),
        (
            "checksum-flipped",
            with(&bytes, |b| *b.last_mut().unwrap() ^= 1),
        ),
        ("body-flipped", with(&bytes, |b| b[200] ^= 1)),
        ("truncated", bytes[..bytes.len() - 1].to_vec()),
        (
            "signature-flipped",
            resealed(&bytes, |b| {
                let at = b.len() - 96;
                b[at] ^= 1;
            }),
        ),
        (
            "resealed-state-root",
            resealed(&bytes, |b| b[tick + 12 + 2 * envelope_bytes + 64] ^= 1),
        ),
        ("reserved", resealed(&bytes, |b| b[10] = 1)),
        ("world-id-empty", resealed(&bytes, |b| b[20] = 0)),
        (
            "runtime-version-control",
            resealed(&bytes, |b| b[31] = b'\n'),
        ),
        (
            "window-unordered",
            resealed(&bytes, |b| put(b, 108, &9u64.to_le_bytes())),
        ),
        (
            "package-count-0",
            resealed(&bytes, |b| put(b, at.package, &0u32.to_le_bytes())),
        ),
        (
            "package-count-huge",
            resealed(&bytes, |b| put(b, at.package, &u32::MAX.to_le_bytes())),
        ),
        ("path-dot-dot", resealed(&bytes, |b| put(b, path, b"../"))),
        (
            "path-length-huge",
            resealed(&bytes, |b| put(b, at.package + 4, &u16::MAX.to_le_bytes())),
        ),
        (
            "file-length-huge",
            resealed(&bytes, |b| b[path + 10 + 7] = 0x7f),
        ),
        (
            "genesis-receipt-flag-2",
            resealed(&bytes, |b| b[at.genesis_receipt_flag] = 2),
        ),
        (
            "start-kind-1-at-genesis",
            resealed(&bytes, |b| b[at.start_kind] = 1),
        ),
        ("anchor-tick-1", resealed(&bytes, |b| b[at.anchor] = 1)),
        ("peak-count-2", resealed(&bytes, |b| b[at.frontier] = 2)),
        ("anchor-path-1", resealed(&bytes, |b| b[at.anchor_path] = 1)),
        (
            "tick-count-huge",
            resealed(&bytes, |b| b[at.tick_count + 7] = 0x7f),
        ),
        ("tick-number-wrong", resealed(&bytes, |b| b[tick] = 2)),
        (
            "input-count-huge",
            resealed(&bytes, |b| put(b, tick + 8, &u32::MAX.to_le_bytes())),
        ),
        (
            "envelope-length-huge",
            resealed(&bytes, |b| put(b, first_input, &u32::MAX.to_le_bytes())),
        ),
        (
            "envelope-version-2",
            resealed(&bytes, |b| b[first_input + 4] = 2),
        ),
        (
            "receipt-count-0",
            resealed(&bytes, |b| put(b, receipts, &0u32.to_le_bytes())),
        ),
        ("receipt-kind-7", resealed(&bytes, |b| b[receipts + 4] = 7)),
        (
            "operator-keys-0",
            resealed(&bytes, |b| put(b, at.operator + 32, &0u16.to_le_bytes())),
        ),
        (
            "key-flag-2",
            resealed(&bytes, |b| b[at.operator + 34 + 40] = 2),
        ),
        (
            "trailing-byte",
            resealed(&bytes, |b| b.insert(b.len() - 96, 0)),
        ),
        (
            "resigned-paths-unsorted",
            resigned(&|b| b.package.reverse()),
        ),
        (
            "resigned-state-root",
            resigned(&|b| b.ticks[1].roots.state_root.0[0] ^= 1),
        ),
        (
            "resigned-receipt",
            resigned(&|b| b.ticks[2].receipts[0].fuel_used += 1),
        ),
        (
            "resigned-package-root",
            resigned(&|b| b.package_root.0[0] ^= 1),
        ),
        ("resigned-protocol-2", resigned(&|b| b.protocol_version = 2)),
        (
            "resigned-manifest",
            resigned(&|b| b.package[0].bytes[0] = b'#'),
        ),
        (
            "resigned-module",
            resigned(&|b| b.package[1].bytes.truncate(40)),
        ),
        (
            "resigned-input-dropped",
            resigned(&|b| {
                b.ticks[0].inputs.pop();
                b.ticks[0].receipts.remove(1);
            }),
        ),
        (
            "resigned-checkpoint-damaged",
            checkpoint_resigned(&|b| {
                if let StartState::Checkpoint(bytes) = &mut b.start {
                    bytes[100] ^= 1;
                }
            }),
        ),
        (
            "resigned-frontier",
            checkpoint_resigned(&|b| b.frontier.last_mut().unwrap().0[0] ^= 1),
        ),
    ]
}

/// Proofs of the tiny world's head.
fn tiny_proof(tiny: &Tiny, query: ProofQuery) -> PlayerProof {
    let request = ProveRequest {
        storage: &DiskStorage,
        dir: &tiny.dir,
        id: &world_id(),
        engine: &fixture().engine,
        compiled: tiny.compiled.clone(),
    };
    prove(&request, &query).unwrap().proof.unwrap()
}

fn proof_seeds(tiny: &Tiny) -> Vec<(&'static str, Vec<u8>)> {
    let receipt = tiny_proof(tiny, ProofQuery::TickReceipt { tick: 2, index: 1 });
    let hook = tiny_proof(tiny, ProofQuery::TickReceipt { tick: 3, index: 2 });
    let present = tiny_proof(tiny, ProofQuery::Key(b"p0-t1".to_vec()));
    let absent = tiny_proof(tiny, ProofQuery::Key(b"nobody".to_vec()));
    let bytes = receipt.encode();
    let state = present.encode();
    // Where the claim starts: after magic, version, kind, the accumulator
    // proof, the tick and four roots.
    let claim = |proof: &PlayerProof| {
        let accumulator = &proof.accumulator;
        11 + 8 + 8 + 1 + 32 * accumulator.path.len() + 1 + 32 * accumulator.peaks.len() + 8 + 128
    };
    let (at, state_at) = (claim(&receipt), claim(&present));
    let value_flag = state_at + 2 + b"p0-t1".len();
    let state_proof = value_flag + 1 + 4 + b"p0-t1".len();
    let mut stale = receipt.clone();
    stale.claim = absent.claim.clone();
    let mut lie = present.clone();
    if let Claim::State { value, .. } = &mut lie.claim {
        *value = Some(b"p0-t2".to_vec());
    }
    vec![
        ("valid-receipt", bytes.clone()),
        ("valid-hook-receipt", hook.encode()),
        ("valid-state-present", state.clone()),
        ("valid-state-absent", absent.encode()),
        ("empty", Vec::new()),
        ("magic-only", b"EAPROOFS".to_vec()),
        ("bad-magic", with(&bytes, |b| b[0] = b'X')),
        ("version-2", with(&bytes, |b| b[8] = 2)),
        ("kind-3", with(&bytes, |b| b[10] = 3)),
        ("truncated", bytes[..bytes.len() - 1].to_vec()),
        ("trailing-byte", with(&bytes, |b| b.push(0))),
        (
            "leaf-beyond-count",
            with(&bytes, |b| put(b, 19, &9u64.to_le_bytes())),
        ),
        ("path-length-wrong", with(&bytes, |b| b[27] += 1)),
        ("root-flipped", with(&bytes, |b| b[at - 1] ^= 1)),
        ("tick-wrong", with(&bytes, |b| b[at - 136] ^= 1)),
        (
            "receipt-index-beyond",
            with(&bytes, |b| put(b, at, &3u32.to_le_bytes())),
        ),
        (
            "receipt-count-huge",
            with(&bytes, |b| put(b, at + 4, &u32::MAX.to_le_bytes())),
        ),
        ("list-path-65", with(&bytes, |b| b[at + 8] = 65)),
        ("list-path-short", with(&bytes, |b| b[at + 8] -= 1)),
        ("receipt-kind-7", with(&bytes, |b| b[bytes.len() - 82] = 7)),
        (
            "receipt-changed",
            with(&bytes, |b| b[bytes.len() - 40] ^= 1),
        ),
        (
            "key-length-0",
            with(&state, |b| put(b, state_at, &0u16.to_le_bytes())),
        ),
        (
            "key-length-huge",
            with(&state, |b| put(b, state_at, &u16::MAX.to_le_bytes())),
        ),
        ("value-flag-2", with(&state, |b| b[value_flag] = 2)),
        (
            "value-length-huge",
            with(&state, |b| put(b, value_flag + 1, &u32::MAX.to_le_bytes())),
        ),
        (
            "state-proof-length-huge",
            with(&state, |b| put(b, state_proof, &u32::MAX.to_le_bytes())),
        ),
        (
            "state-proof-depth-257",
            with(&state, |b| put(b, state_proof + 4, &257u16.to_le_bytes())),
        ),
        (
            "state-proof-tag-7",
            with(&state, |b| {
                let at = b.len() - 65;
                b[at] = 7;
            }),
        ),
        ("state-value-lie", lie.encode()),
        ("state-not-at-head", stale.encode()),
    ]
}
