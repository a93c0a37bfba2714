//! `cargo bench -p everarcade-bench --bench bundle`: proof bundles and player
//! proofs (docs/BUNDLES.md §9), each figure beside its limit measured in the
//! same run.
//!
//! 1. **verify-bundle vs replay-verify.** A 64-bot 2d-arena world is built on
//!    disk (as `simulate` builds it); ticks 0..=N are exported as one bundle
//!    (from genesis, so both sides replay the same window from the same
//!    start); then, taking turns, `verify_bundle` on the bundle's bytes
//!    (checksum, structure, signature, package, replay with every envelope
//!    signature, accumulator) and `replay` from genesis with signatures
//!    checked, as `replay-verify` runs it. Fastest of the rounds; both reuse
//!    the engine's compiled-module cache.
//! 2. **A receipt 1,000,000 ticks back.** The accumulator over 1,000,002
//!    synthetic tick leaves (ticks 0..=1,000,001; each leaf hashes synthetic
//!    roots), built in memory, with the proof of a receipt (index 17 of 64)
//!    of tick 1, so the head is 1,000,000 ticks later. Reported: the proof's
//!    size, its verification time (decode + verify, median of many), the
//!    one-pass cost of folding the accumulator, and as the limit the same
//!    number of raw BLAKE3 two-hash compressions the verification needs.
//!
//! Environment: `EA_BENCH_BUNDLE_TICKS` (default 2000),
//! `EA_BENCH_PROOF_TICKS_BACK` (default 1000000), `EA_BENCH_ROUNDS` (default 3).

use std::process::ExitCode;
use std::time::Instant;

use everarcade_audit::export::{ExportRequest, export};
use everarcade_audit::mmr::{MmrProver, leaf_hash};
use everarcade_audit::{Claim, PlayerProof, VerifyOptions, verify_bundle};
use everarcade_bench::durable::fastest;
use everarcade_bench::durable::fixture::{self, Arena, FixtureConfig};
use everarcade_bench::durable::replay::replay_once;
use everarcade_bench::report::{count, load_average, machine_facts};
use everarcade_bench::settings;
use everarcade_protocol::{
    Domain, Hash, Outcome, Receipt, ReceiptKind, TickRoots, list_proof, list_root,
};
use everarcade_store::DiskStorage;
use everarcade_store::keys::OperatorKeys;

/// Bots of the bundle world (as the durable bench's replay world).
const BOTS: usize = 64;
/// Receipts of the synthetic proven tick.
const RECEIPTS: u32 = 64;
/// The proven receipt's index.
const RECEIPT_INDEX: u32 = 17;
/// Verifications timed for the proof figure.
const VERIFICATIONS: usize = 20_001;

fn main() -> ExitCode {
    let options = (|| {
        Ok::<_, String>((
            settings::positive("EA_BENCH_BUNDLE_TICKS", 2_000)?,
            settings::positive("EA_BENCH_PROOF_TICKS_BACK", 1_000_000)?,
            settings::positive("EA_BENCH_ROUNDS", 3)? as usize,
        ))
    })();
    let Some((ticks, back, rounds)) = settings::or_report(options) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("load average before: {}", load_average());
    if let Err(message) = verify_section(ticks, rounds) {
        eprintln!("bundle benchmark failed: {message}");
        return ExitCode::FAILURE;
    }
    println!();
    proof_section(back);
    println!("load average at end: {}", load_average());
    ExitCode::SUCCESS
}

fn verify_section(ticks: u64, rounds: usize) -> Result<(), String> {
    let arena = Arena::load()?;
    let config = FixtureConfig {
        bots: BOTS,
        ticks,
        seed: 1,
        checkpoint_interval_ticks: 0,
    };
    let built = fixture::build(&arena, &config, "bundle", &mut |_| {})?;
    let id = Arena::world_id();
    let request = ExportRequest {
        storage: &DiskStorage,
        dir: &built.dir,
        id: &id,
        engine: &arena.engine,
        compiled: arena.compiled.clone(),
        from_tick: 0,
        to_tick: ticks,
        runtime_version: env!("CARGO_PKG_VERSION"),
    };
    let began = Instant::now();
    let exported = export(&request, &mut |head| {
        Ok(OperatorKeys::load_or_create(&DiskStorage, &built.dir, head)?.0)
    })
    .map_err(|e| e.to_string())?;
    let export_seconds = began.elapsed().as_secs_f64();
    let (mut verify, mut replay) = (None, None);
    for _ in 0..rounds {
        let began = Instant::now();
        let report = verify_bundle(&exported.bytes, &arena.engine, VerifyOptions::default())
            .map_err(|e| e.to_string())?;
        verify = fastest(verify, began.elapsed().as_secs_f64());
        if report.last != built.roots {
            return Err("verify-bundle reached other roots than the world".into());
        }
        replay = fastest(replay, replay_once(&arena, &built, true)?);
    }
    let (verify, replay) = (verify.expect("a round"), replay.expect("a round"));
    let per_second = |seconds: f64| ticks as f64 / seconds;
    println!(
        "== verify-bundle vs replay-verify: {ticks} ticks from genesis, {BOTS} bots, {} inputs; fastest of {rounds} rounds, taking turns",
        built.input_count()
    );
    println!(
        "bundle: {} bytes ({:.0} B/tick), export {:.3} s ({} ticks/s)",
        exported.bytes.len(),
        exported.bytes.len() as f64 / ticks as f64,
        export_seconds,
        count(per_second(export_seconds))
    );
    println!(
        "verify-bundle {} ticks/s ({:.3} s) | replay-verify (journal from disk, signatures checked) {} ticks/s ({:.3} s) | ratio {:.2}",
        count(per_second(verify)),
        verify,
        count(per_second(replay)),
        replay,
        replay / verify
    );
    Ok(())
}

/// Synthetic roots of tick `t` (`receipt_root` given for the proven tick).
fn synthetic_roots(tick: u64, receipt_root: Option<Hash>) -> TickRoots {
    let bytes = tick.to_le_bytes();
    TickRoots {
        tick,
        input_root: Domain::Envelope.hash(&bytes),
        receipt_root: receipt_root.unwrap_or_else(|| Domain::Receipt.hash(&bytes)),
        state_root: Domain::StateLeaf.hash(&bytes),
        continuity_root: Domain::Continuity.hash(&bytes),
    }
}

fn proof_section(back: u64) {
    let receipts: Vec<Receipt> = (0..RECEIPTS)
        .map(|i| Receipt {
            kind: ReceiptKind::Input,
            subject: Domain::Envelope.hash(&i.to_le_bytes()),
            outcome: Outcome::Applied,
            fuel_used: 200 + u64::from(i),
            events_hash: Domain::Events.hash(b""),
            event_count: 0,
        })
        .collect();
    let hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
    let proven_tick = 1u64;
    let head = proven_tick + back;
    let target = synthetic_roots(proven_tick, Some(list_root(&hashes)));
    let began = Instant::now();
    let mut prover = MmrProver::new();
    for tick in 0..=head {
        let roots = if tick == proven_tick {
            target
        } else {
            synthetic_roots(tick, None)
        };
        prover.append(leaf_hash(&roots), tick == proven_tick);
    }
    let fold_seconds = began.elapsed().as_secs_f64();
    let head_root = prover.mmr().root();
    let proof = PlayerProof {
        roots: target,
        accumulator: prover.proof().expect("the target was appended"),
        claim: Claim::Receipt {
            index: RECEIPT_INDEX,
            count: RECEIPTS,
            path: list_proof(&hashes, RECEIPT_INDEX as usize).expect("in range"),
            receipt: receipts[RECEIPT_INDEX as usize],
        },
    };
    let bytes = proof.encode();
    let mut samples = Vec::with_capacity(VERIFICATIONS);
    for _ in 0..VERIFICATIONS {
        let began = Instant::now();
        let decoded = PlayerProof::decode(std::hint::black_box(&bytes)).expect("it decodes");
        let verified = decoded.verify(&head_root);
        samples.push(began.elapsed().as_secs_f64());
        assert_eq!(verified, Ok(head));
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let Claim::Receipt { path, .. } = &proof.claim else {
        unreachable!()
    };
    // Compressions a verification needs: the leaf (136 B: 3 blocks), one
    // per accumulator path step, the root over the peaks, the receipt hash
    // (82 B: 2 blocks), one per list path step.
    let node_hashes = proof.accumulator.path.len() + path.len();
    let peaks = proof.accumulator.peaks.len() + 1;
    let floor = hash_floor(node_hashes, peaks);
    println!(
        "== a receipt {back} ticks back: accumulator over {} synthetic tick leaves, built in memory; receipt {RECEIPT_INDEX} of {RECEIPTS} of tick {proven_tick}, head tick {head}",
        head + 1
    );
    println!(
        "proof: {} bytes ({} accumulator siblings, {} other peaks, {} receipt-list siblings)",
        bytes.len(),
        proof.accumulator.path.len(),
        proof.accumulator.peaks.len(),
        path.len()
    );
    println!(
        "verify (decode + verify): median {:.1} us, p99 {:.1} us over {VERIFICATIONS} | limit: the same hashing alone ({node_hashes} two-hash nodes, leaf, receipt, root over {peaks} peaks) {:.1} us | ratio {:.2}",
        median * 1e6,
        samples[samples.len() * 99 / 100] * 1e6,
        floor * 1e6,
        median / floor
    );
    println!(
        "folding the accumulator in one pass (what `prove` does over the journal's roots): {:.3} s for {} leaves ({} leaves/s)",
        fold_seconds,
        head + 1,
        count((head + 1) as f64 / fold_seconds)
    );
}

/// Median time of the hashing a verification cannot avoid.
fn hash_floor(node_hashes: usize, peaks: usize) -> f64 {
    let leaf = [7u8; 136];
    let receipt = [9u8; 82];
    let root = vec![3u8; 8 + 32 * peaks];
    let mut samples = Vec::with_capacity(VERIFICATIONS);
    let mut hash = Hash([1; 32]);
    for _ in 0..VERIFICATIONS {
        let began = Instant::now();
        hash = Domain::MmrLeaf.hash(std::hint::black_box(&leaf));
        for _ in 0..node_hashes {
            hash = Domain::MmrNode.hash_pair(&hash, &hash);
        }
        hash = Domain::Receipt.hash(std::hint::black_box(&receipt));
        hash = Domain::MmrRoot.hash(std::hint::black_box(&root)).max(hash);
        samples.push(began.elapsed().as_secs_f64());
    }
    std::hint::black_box(hash);
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
