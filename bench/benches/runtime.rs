//! `cargo bench -p everarcade-bench`: every figure of `docs/BENCHMARKS.md`,
//! each printed beside its physical limit measured in the same run.
//!
//! Environment:
//! - `EA_BENCH_TICKS`: ticks of the 2d-arena match (default 10000);
//! - `EA_BENCH_ONLY`: `arena`, `state` or `signatures` runs one section;
//!   `wasm-loop` runs only the timed wasm loop of the match, with no floor and
//!   no second pass, for `perf record` (default: all three sections).

use std::process::ExitCode;

use everarcade_bench::arena::{Breakdown, WasmArena};
use everarcade_bench::native::NativeArena;
use everarcade_bench::report::{Target, count, load_average, machine_facts, micros};
use everarcade_bench::settings;
use everarcade_bench::signatures::{self, SignatureConfig};
use everarcade_bench::state_root::{self, StateRootConfig};
use everarcade_bench::{MatchConfig, MatchReport, bot_keys};

/// Bots in the 2d-arena match (the arena holds 256 players).
const BOTS: usize = 256;
/// Ticks of the match unless `EA_BENCH_TICKS` says otherwise.
const TICKS_DEFAULT: u64 = 10_000;
/// Seed of the bots' choices.
const SEED: u64 = 1;
/// Runs of the match on each side, taking turns; each side's figure is its
/// fastest run, so other load on the shared machine hits both alike.
const MATCH_RUNS: usize = 3;
/// The real-time factor (ticks/s over the manifest's tick rate) must reach this.
const REAL_TIME_FACTOR_MIN: f64 = 100.0;
/// The wasm match may be at most this many times slower than the native floor.
const NATIVE_RATIO_MAX: f64 = 3.0;
/// The state-root update may cost at most this many times raw BLAKE3 (issue 13).
const STATE_ROOT_RATIO_MAX: f64 = 1.5;

/// What to run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Arena,
    State,
    Signatures,
    WasmLoop,
}

/// The validated environment.
struct Options {
    ticks: u64,
    /// `None`: the three sections (not `WasmLoop`).
    only: Option<Section>,
}

impl Options {
    fn from_env() -> Result<Options, String> {
        let ticks = settings::positive("EA_BENCH_TICKS", TICKS_DEFAULT)?;
        let only = settings::only(&[
            ("arena", Section::Arena),
            ("state", Section::State),
            ("signatures", Section::Signatures),
            ("wasm-loop", Section::WasmLoop),
        ])?;
        Ok(Options { ticks, only })
    }

    fn runs(&self, section: Section) -> bool {
        match self.only {
            None => section != Section::WasmLoop,
            Some(only) => only == section,
        }
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; everything else comes from the environment.
    let Some(options) = settings::or_report(Options::from_env()) else {
        return settings::bad_settings();
    };
    let config = MatchConfig {
        bots: BOTS,
        ticks: options.ticks,
        seed: SEED,
    };
    print!("{}", machine_facts());
    println!();
    if options.runs(Section::WasmLoop)
        && let Err(message) = wasm_loop(&config)
    {
        eprintln!("2d-arena wasm loop failed: {message}");
        return ExitCode::FAILURE;
    }
    if options.runs(Section::Arena) {
        if let Err(message) = arena(&config) {
            eprintln!("2d-arena benchmark failed: {message}");
            return ExitCode::FAILURE;
        }
        println!();
    }
    if options.runs(Section::State) {
        state_root_figures();
        println!();
    }
    if options.runs(Section::Signatures) {
        signature_figures();
        println!();
    }
    println!("load average at end: {}", load_average());
    ExitCode::SUCCESS
}

/// The timed wasm loop alone, for profiling.
fn wasm_loop(config: &MatchConfig) -> Result<(), String> {
    let wasm = WasmArena::load_xof()?;
    let measured = wasm
        .run(config, &bot_keys(config.bots))
        .map_err(|e| e.to_string())?;
    println!(
        "2d-arena {} bots wasm loop only, bot_seeds = \"xof\": {} ticks/s ({} inputs/s)",
        config.bots,
        count(measured.ticks_per_second()),
        count(measured.inputs_per_second())
    );
    Ok(())
}

/// The match on the engine, under the shipped manifest (one bot seed hash
/// per bot) and with `bot_seeds = "xof"`, its native floor, and where the
/// engine's time goes.
fn arena(config: &MatchConfig) -> Result<(), String> {
    let shipped = WasmArena::load()?;
    let xof = WasmArena::load_xof()?;
    let limits = shipped.limits();
    let keys = bot_keys(config.bots);
    let mut native = NativeArena::acquire().ok_or("the native world is in use")?;
    let fastest = |best: Option<MatchReport>, run: MatchReport| match best {
        Some(best) if best.total_seconds() <= run.total_seconds() => Some(best),
        _ => Some(run),
    };
    let (mut floor, mut measured, mut measured_xof) = (None, None, None);
    for _ in 0..MATCH_RUNS {
        native.genesis(&limits, config.seed);
        floor = fastest(floor, native.run(config, &keys, &limits));
        let run = shipped.run(config, &keys).map_err(|e| e.to_string())?;
        measured = fastest(measured, run);
        let run = xof.run(config, &keys).map_err(|e| e.to_string())?;
        measured_xof = fastest(measured_xof, run);
    }
    let floor = floor.expect("a native run");
    let hz = f64::from(shipped.tick_rate_hz());
    for (rule, wasm, measured) in [
        (
            "per-bot seeds (shipped manifest)",
            &shipped,
            measured.expect("a wasm run"),
        ),
        (
            "bot_seeds = \"xof\"",
            &xof,
            measured_xof.expect("a wasm run"),
        ),
    ] {
        let breakdown = wasm.breakdown(config, &keys).map_err(|e| e.to_string())?;
        print_arena(config, rule, hz, &measured, &floor);
        print_breakdown(config, &measured, &floor, &breakdown);
    }
    Ok(())
}

fn print_arena(
    config: &MatchConfig,
    rule: &str,
    hz: f64,
    measured: &MatchReport,
    floor: &MatchReport,
) {
    let ticks = config.ticks as f64;
    let (wasm_rate, floor_rate) = (measured.ticks_per_second(), floor.ticks_per_second());
    let ratio = floor_rate / wasm_rate;
    println!(
        "== 2d-arena, {} bots, {} ticks, no I/O, {rule} (each side: fastest of {MATCH_RUNS} runs)",
        config.bots, config.ticks
    );
    println!(
        "2d-arena {} bots wasm: {} ticks/s ({} inputs/s) | native floor: {} ticks/s ({} inputs/s) | ratio {ratio:.1}x {}",
        config.bots,
        count(wasm_rate),
        count(measured.inputs_per_second()),
        count(floor_rate),
        count(floor.inputs_per_second()),
        Target::AtMost(NATIVE_RATIO_MAX).verdict(ratio),
    );
    let real_time = wasm_rate / hz;
    println!(
        "real-time factor at {hz} Hz: wasm {real_time:.0}x | native {:.0}x {}",
        floor_rate / hz,
        Target::AtLeast(REAL_TIME_FACTOR_MIN).verdict(real_time),
    );
    for (name, report) in [("wasm  ", measured), ("native", floor)] {
        let share = |seconds: f64| 100.0 * seconds / report.total_seconds();
        println!(
            "  {name} per tick {}: bot_payloads {} ({:.0}%), envelopes {} ({:.0}%), execute_tick {} ({:.0}%) | {:.1} inputs/tick, {:.1}% applied, {} keys at end",
            micros(report.total_seconds() / ticks),
            micros(report.bot_seconds / ticks),
            share(report.bot_seconds),
            micros(report.envelope_seconds / ticks),
            share(report.envelope_seconds),
            micros(report.execute_seconds / ticks),
            share(report.execute_seconds),
            report.inputs as f64 / ticks,
            100.0 * report.applied as f64 / report.inputs.max(1) as f64,
            report.state_keys,
        );
    }
}

fn print_breakdown(
    config: &MatchConfig,
    measured: &MatchReport,
    floor: &MatchReport,
    breakdown: &Breakdown,
) {
    let ticks = config.ticks as f64;
    let bot_calls = ticks * config.bots as f64;
    println!(
        "  phase ratios wasm/native: bots {:.1}x ({} vs {} per bot call), inputs+tick {:.1}x ({} vs {} per input, tick hook included)",
        measured.bot_seconds / floor.bot_seconds,
        micros(measured.bot_seconds / bot_calls),
        micros(floor.bot_seconds / bot_calls),
        measured.execute_seconds / floor.execute_seconds,
        micros(measured.execute_seconds / measured.inputs.max(1) as f64),
        micros(floor.execute_seconds / floor.inputs.max(1) as f64),
    );
    println!(
        "  inside bot_payloads (redone in a second pass): bot_random_seeds under the world's rule, {} per tick ({:.0}% of bot_payloads)",
        micros(breakdown.bot_seed_seconds / ticks),
        100.0 * breakdown.bot_seed_seconds / measured.bot_seconds,
    );
    println!(
        "  inside execute_tick (redone in a second pass): envelope/events/receipt hashes + list roots {} per tick ({:.0}%), state root {} per tick ({:.0}%; {:.0} changed value bytes/tick)",
        micros(breakdown.protocol_hash_seconds / ticks),
        100.0 * breakdown.protocol_hash_seconds / measured.execute_seconds,
        micros(breakdown.state_root_seconds / ticks),
        100.0 * breakdown.state_root_seconds / measured.execute_seconds,
        breakdown.state_changed_value_bytes as f64 / ticks,
    );
    let hashing =
        breakdown.bot_seed_seconds + breakdown.protocol_hash_seconds + breakdown.state_root_seconds;
    println!(
        "  hashing in all: {} per tick = {:.0}% of the wasm loop; without it the loop would be {:.1}x native",
        micros(hashing / ticks),
        100.0 * hashing / measured.total_seconds(),
        (measured.total_seconds() - hashing) / floor.total_seconds(),
    );
    println!(
        "  one instance + one ea_bot call (bot_payloads with 1 bot): {}; every tick creates two instances (bots, then the tick)",
        micros(breakdown.single_bot_call_seconds),
    );
}

fn state_root_figures() {
    let config = StateRootConfig::default();
    let report = state_root::run(&config);
    let ratio = report.update_seconds / report.raw_preimage_seconds;
    println!(
        "== state root: {} keys, {} changed per iteration (values {}..={} bytes), fastest of {} rounds of {} iterations",
        config.keys,
        config.changed_per_iteration,
        config.value_bytes_min,
        config.value_bytes_max,
        config.rounds,
        config.iterations_per_round,
    );
    println!(
        "state root update: {} per iteration (set {} + root {}) | raw BLAKE3 over the same preimages: {} | ratio {ratio:.2}x {}",
        micros(report.update_seconds),
        micros(report.update_seconds - report.root_seconds),
        micros(report.root_seconds),
        micros(report.raw_preimage_seconds),
        Target::AtMost(STATE_ROOT_RATIO_MAX).verdict(ratio),
    );
    println!(
        "  preimages per iteration: {} value + {} leaf + {:.1} node hashes = {:.1} BLAKE3 compressions ({:.0} ns each raw); root() alone is {:.2}x raw",
        config.changed_per_iteration,
        config.changed_per_iteration,
        report.node_hashes,
        report.compressions,
        1e9 * report.raw_preimage_seconds / report.compressions,
        report.root_seconds / report.raw_preimage_seconds,
    );
    let diff_ratio = report.update_seconds / report.raw_diff_seconds;
    println!(
        "state root update vs one BLAKE3 over the changed keys+values ({:.0} bytes): {} | ratio {diff_ratio:.1}x {}",
        report.diff_bytes,
        micros(report.raw_diff_seconds),
        Target::None.verdict(diff_ratio),
    );
}

fn signature_figures() {
    let config = SignatureConfig::default();
    let report = signatures::run(&config);
    let threads = config.threads;
    println!(
        "== signature checks: {} envelopes (3-byte payloads), {} signers",
        report.envelopes, config.signers
    );
    let line = |name: &str, rate: f64, floor_name: &str, floor: f64| {
        println!(
            "{name}: {} checks/s | {floor_name}: {} checks/s | ratio {:.2}x {}",
            count(rate),
            count(floor),
            floor / rate,
            Target::None.verdict(floor / rate),
        );
    };
    let floor_name = "ed25519-dalek verify floor";
    line(
        "Envelope::verify_signature (verify_strict), 1 thread",
        report.ours_single,
        floor_name,
        report.dalek_verify,
    );
    line(
        &format!("Envelope::verify_signature, parallel, {threads} threads"),
        report.ours_parallel,
        &format!("ed25519-dalek verify floor, {threads} threads"),
        report.dalek_verify_parallel,
    );
    line(
        "ed25519-dalek verify_strict, prepared keys and messages",
        report.dalek_verify_strict,
        floor_name,
        report.dalek_verify,
    );
    println!(
        "  parallel speed-up {:.2}x on {threads} threads (the machine has {} CPUs, shared with other work)",
        report.ours_parallel / report.ours_single,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
    );
    println!(
        "  admission of {BOTS} players at 20 Hz needs {} checks/s: one thread serves {:.1} such worlds",
        BOTS * 20,
        report.ours_single / (BOTS * 20) as f64,
    );
    println!(
        "ed25519-dalek verify_batch: skipped (it needs ed25519-dalek's `batch` feature, which the workspace does not enable)"
    );
}
