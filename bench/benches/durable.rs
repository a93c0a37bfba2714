//! `cargo bench -p everarcade-bench --bench durable`: the durable side of a
//! world (docs/BENCHMARKS.md, "Durability"), each figure beside its limit
//! measured in the same run on the same disk (files under `target/bench-tmp/`,
//! removed afterwards).
//!
//! Environment:
//! - `EA_BENCH_ONLY`: `journal`, `checkpoint`, `replay` or `recovery` runs
//!   one section (default: all four);
//! - `EA_BENCH_REPLAY_TICKS`: ticks of the replay world (default 2000);
//! - `EA_BENCH_RECOVERY_TICKS`: ticks since the last checkpoint of the
//!   recovery world (default 100000);
//! - `EA_BENCH_CHECKPOINT_KEYS`: state entries of the checkpoint (default 1000000).

use std::process::ExitCode;

use everarcade_bench::durable::checkpoint::{self, CheckpointBenchConfig, CheckpointReport};
use everarcade_bench::durable::fixture::{self, Arena, FixtureConfig};
use everarcade_bench::durable::journal::{self, JournalBenchConfig, JournalRow, WorldRow};
use everarcade_bench::durable::replay::{self, RecoveryReport, ReplayReport};
use everarcade_bench::durable::{megabytes_per_second, millis, scratch_root};
use everarcade_bench::report::{Target, count, load_average, machine_facts};
use everarcade_bench::settings;

/// Group commit must reach at least this share of raw write + fdatasync.
const JOURNAL_RATIO_MIN: f64 = 0.5;
/// Checkpoint write and load must reach at least this share of raw bandwidth.
const CHECKPOINT_RATIO_MIN: f64 = 0.5;
/// Issue 13: the checksum of a loaded checkpoint on both cores against one.
const CHECKSUM_SPEEDUP_MIN: f64 = 1.7;
/// Recovery of `EA_BENCH_RECOVERY_TICKS` ticks must take less than this.
const RECOVERY_SECONDS_MAX: f64 = 60.0;
/// Bots of the replay world (and of `simulate --bots 64`).
const REPLAY_BOTS: usize = 64;
/// Bots of the recovery world: a light load, so 100,000 ticks build in minutes.
const RECOVERY_BOTS: usize = 8;
/// Seed of the bots' choices.
const SEED: u64 = 1;
/// Rounds of each replay figure (replay-verify of 2000 ticks takes seconds).
const REPLAY_ROUNDS: usize = 2;
/// Rounds of the recovery figure.
const RECOVERY_ROUNDS: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Journal,
    Checkpoint,
    Replay,
    Recovery,
}

/// One section: runs, prints, or says why it failed.
type SectionFn = fn(&Options) -> Result<(), String>;

struct Options {
    only: Option<Section>,
    replay_ticks: u64,
    recovery_ticks: u64,
    checkpoint_keys: u64,
}

impl Options {
    fn from_env() -> Result<Options, String> {
        let only = settings::only(&[
            ("journal", Section::Journal),
            ("checkpoint", Section::Checkpoint),
            ("replay", Section::Replay),
            ("recovery", Section::Recovery),
        ])?;
        Ok(Options {
            only,
            replay_ticks: settings::positive("EA_BENCH_REPLAY_TICKS", 2_000)?,
            recovery_ticks: settings::positive("EA_BENCH_RECOVERY_TICKS", 100_000)?,
            checkpoint_keys: settings::positive("EA_BENCH_CHECKPOINT_KEYS", 1_000_000)?,
        })
    }

    fn runs(&self, section: Section) -> bool {
        self.only.is_none_or(|only| only == section)
    }
}

fn main() -> ExitCode {
    let Some(options) = settings::or_report(Options::from_env()) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("scratch directory: {}", scratch_root().display());
    println!();
    let sections: [(Section, &str, SectionFn); 4] = [
        (Section::Journal, "journal", journal_section),
        (Section::Checkpoint, "checkpoint", checkpoint_section),
        (Section::Replay, "replay", replay_section),
        (Section::Recovery, "recovery", recovery_section),
    ];
    for (section, name, run) in sections {
        if !options.runs(section) {
            continue;
        }
        println!("load average before {name}: {}", load_average());
        if let Err(message) = run(&options) {
            eprintln!("{name} benchmark failed: {message}");
            return ExitCode::FAILURE;
        }
        println!();
    }
    println!("load average at end: {}", load_average());
    ExitCode::SUCCESS
}

fn journal_section(_: &Options) -> Result<(), String> {
    let config = JournalBenchConfig::default();
    let rows = journal::store_rows(&config)?;
    println!(
        "== durable inputs, group commit: signed 3-byte MOVE envelopes, {} signers, one Record::Inputs per commit; {} rounds of {} commits per side, taking turns; throughput: fastest round; latency: every commit of every round",
        config.signers, config.rounds, config.commits_per_round
    );
    for row in &rows {
        print_journal_row(row);
    }
    let arena = Arena::load()?;
    let world_rows = journal::world_rows(&config, &arena)?;
    println!(
        "  -- through DurableWorld::admit (signature checked) + commit_inputs; ticks executed outside the timed region; limit: the raw row of the same batch size above"
    );
    for world in &world_rows {
        let raw = rows
            .iter()
            .find(|row| row.batch == world.batch)
            .expect("a store row per batch size");
        print_world_row(world, raw);
    }
    Ok(())
}

fn print_journal_row(row: &JournalRow) {
    let ratio = row.store.inputs_per_second() / row.raw.inputs_per_second();
    println!(
        "journal batch {:>3} ({} B/commit): JournalWriter append+commit {} inputs/s ({} commits/s), ack p50 {} p99 {} | raw write+fdatasync {} inputs/s, p50 {} p99 {} | ratio {ratio:.2} {}",
        row.batch,
        row.bytes_per_commit,
        count(row.store.inputs_per_second()),
        count(row.store.commits_per_second()),
        millis(row.store.latency(0.5)),
        millis(row.store.latency(0.99)),
        count(row.raw.inputs_per_second()),
        millis(row.raw.latency(0.5)),
        millis(row.raw.latency(0.99)),
        Target::AtLeast(JOURNAL_RATIO_MIN).verdict(ratio),
    );
}

fn print_world_row(world: &WorldRow, raw: &JournalRow) {
    let ratio = world.world.inputs_per_second() / raw.raw.inputs_per_second();
    let timed_per_round = world.world.total_seconds / (world.world.latencies.len() as f64)
        * world.world.commits_per_round as f64;
    println!(
        "world   batch {:>3} ({} commits x {} rounds): admit+commit_inputs {} inputs/s, ack p50 {} p99 {} | raw write+fdatasync {} inputs/s | ratio {ratio:.2} {} | verify_signature alone {} inputs/s = {:.0}% of the timed time",
        world.batch,
        world.world.commits_per_round,
        world.world.latencies.len() as u64 / world.world.commits_per_round.max(1),
        count(world.world.inputs_per_second()),
        millis(world.world.latency(0.5)),
        millis(world.world.latency(0.99)),
        count(raw.raw.inputs_per_second()),
        Target::None.verdict(ratio),
        count(world.world.inputs_per_round as f64 / world.signature_seconds_per_round),
        100.0 * world.signature_seconds_per_round / timed_per_round,
    );
}

fn checkpoint_section(options: &Options) -> Result<(), String> {
    let config = CheckpointBenchConfig {
        keys: options.checkpoint_keys,
        ..CheckpointBenchConfig::default()
    };
    let report = checkpoint::run(&config)?;
    print_checkpoint(&config, &report);
    Ok(())
}

fn print_checkpoint(config: &CheckpointBenchConfig, report: &CheckpointReport) {
    let mb = |seconds: f64| format!("{:.0} MB/s", megabytes_per_second(report.bytes, seconds));
    println!(
        "== checkpoint: {} keys (16-byte keys, {}-byte values), {:.1} MB file; fastest of {} rounds, taking turns; MB = 10^6 bytes; state built in {:.2} s",
        config.keys,
        config.value_bytes,
        report.bytes as f64 / 1e6,
        config.rounds,
        report.build_seconds,
    );
    let write = report.write_seconds;
    let ratio = report.raw_write_seconds / write;
    println!(
        "checkpoint write (write_checkpoint_of: encode, hash and write streamed, fdatasync, rename, fsync dir): {} ({}) | raw write_all+sync_all: {} ({}) | ratio {ratio:.2} {}",
        mb(write),
        millis(write),
        mb(report.raw_write_seconds),
        millis(report.raw_write_seconds),
        Target::AtLeast(CHECKPOINT_RATIO_MIN).verdict(ratio),
    );
    let ratio = report.raw_read_seconds / report.load_seconds;
    println!(
        "checkpoint load (load_checkpoint): {} ({}) | raw fs::read, page cache: {} ({}) | ratio {ratio:.3} {}",
        mb(report.load_seconds),
        millis(report.load_seconds),
        mb(report.raw_read_seconds),
        millis(report.raw_read_seconds),
        Target::AtLeast(CHECKPOINT_RATIO_MIN).verdict(ratio),
    );
    let share =
        |seconds: f64, of: f64| format!("{} ({:.0}%)", millis(seconds), 100.0 * seconds / of);
    println!(
        "  write, steps redone alone: encode_checkpoint into memory {} (checksum on a second thread; the checksum alone {}); the raw write of the same bytes {}",
        share(report.encode_seconds, write),
        millis(report.checksum_seconds),
        share(report.raw_write_seconds, write),
    );
    let parts = report.raw_read_seconds
        + report.checksum_seconds
        + report.rebuild_seconds
        + report.root_seconds;
    println!(
        "  load, each step redone alone: read {}, checksum {}, decode + bulk build with every hash (StateBuilder, {} entries) {}, root read {}; sum {} vs load {}",
        share(report.raw_read_seconds, report.load_seconds),
        share(report.checksum_seconds, report.load_seconds),
        config.keys,
        share(report.rebuild_seconds, report.load_seconds),
        share(report.root_seconds, report.load_seconds),
        millis(parts),
        millis(report.load_seconds),
    );
    let speedup = report.checksum_seconds / report.checksum_parallel_seconds;
    println!(
        "  checksum on {} cores (Domain::hash_on_threads, as load_checkpoint): {} ({:.0} MB/s) | one core, same run: {} | {speedup:.2}x {}",
        report.checksum_threads,
        millis(report.checksum_parallel_seconds),
        megabytes_per_second(report.bytes, report.checksum_parallel_seconds),
        millis(report.checksum_seconds),
        Target::AtLeast(CHECKSUM_SPEEDUP_MIN).verdict(speedup),
    );
    println!(
        "  per key: rebuild {:.0} ns, root {:.0} ns; checksum {:.0} MB/s",
        1e9 * report.rebuild_seconds / config.keys as f64,
        1e9 * report.root_seconds / config.keys as f64,
        megabytes_per_second(report.bytes, report.checksum_seconds),
    );
}

fn replay_section(options: &Options) -> Result<(), String> {
    let arena = Arena::load()?;
    let config = FixtureConfig {
        bots: REPLAY_BOTS,
        ticks: options.replay_ticks,
        seed: SEED,
        checkpoint_interval_ticks: 0,
    };
    let fixture = fixture::build(&arena, &config, "replay", &mut |_| {})?;
    let report = replay::replay_figures(&arena, &fixture, REPLAY_ROUNDS)?;
    println!(
        "== replay-verify: 2d-arena, {} bots, {} ticks, {} inputs, journal {:.1} MB (built in {:.1} s); fastest of {REPLAY_ROUNDS} rounds, taking turns",
        config.bots,
        config.ticks,
        report.inputs,
        fixture.journal_bytes as f64 / 1e6,
        fixture.build_seconds,
    );
    print_replay(&report);
    Ok(())
}

fn print_replay(report: &ReplayReport) {
    let ticks = report.ticks as f64;
    let rate = |seconds: f64| {
        format!(
            "{} ticks/s ({} inputs/s)",
            count(ticks / seconds),
            count(report.inputs as f64 / seconds)
        )
    };
    let ratio = report.verify_seconds / report.memory_seconds;
    println!(
        "replay-verify (replay from genesis, signatures checked): {} | in-memory World::execute_tick, same inputs: {} | ratio {ratio:.1}x slower {}",
        rate(report.verify_seconds),
        rate(report.memory_seconds),
        Target::None.verdict(ratio),
    );
    // replay-verify checks a record's signatures on every core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let floor = report.memory_seconds + report.signature_seconds / cores as f64;
    let ratio = report.verify_seconds / floor;
    println!(
        "  vs in-memory execution + one verify_signature per input spread over {cores} cores: {} | ratio {ratio:.2}x slower {}",
        rate(floor),
        Target::None.verdict(ratio),
    );
    let ratio = report.recovery_mode_seconds / report.memory_seconds;
    println!(
        "replay, recovery mode (signatures not checked): {} | in-memory: {} | ratio {ratio:.1}x slower {}",
        rate(report.recovery_mode_seconds),
        rate(report.memory_seconds),
        Target::None.verdict(ratio),
    );
    let signatures = report.verify_seconds - report.recovery_mode_seconds;
    println!(
        "  signature checks cost {:.1} us per input in replay-verify ({:.0}% of it); verify_signature alone: {:.1} us per input",
        1e6 * signatures / report.inputs as f64,
        100.0 * signatures / report.verify_seconds,
        1e6 * report.signature_seconds / report.inputs as f64,
    );
    println!(
        "  per tick: replay-verify {:.1} us, recovery mode {:.1} us, in memory {:.1} us",
        1e6 * report.verify_seconds / ticks,
        1e6 * report.recovery_mode_seconds / ticks,
        1e6 * report.memory_seconds / ticks,
    );
}

fn recovery_section(options: &Options) -> Result<(), String> {
    let arena = Arena::load()?;
    let config = FixtureConfig {
        bots: RECOVERY_BOTS,
        ticks: options.recovery_ticks,
        seed: SEED,
        checkpoint_interval_ticks: 0,
    };
    eprintln!(
        "building a {}-tick world ({} bots, no checkpoints)...",
        config.ticks, config.bots
    );
    let fixture = fixture::build(&arena, &config, "recovery", &mut |tick| {
        eprintln!("  {tick} ticks built");
    })?;
    let report = replay::recovery_figures(&arena, &fixture, RECOVERY_ROUNDS)?;
    println!(
        "== recovery: 2d-arena, {} bots, {} ticks since the last checkpoint (none: from genesis), {} inputs, journal {:.1} MB (built in {:.1} s); fastest of {RECOVERY_ROUNDS} rounds",
        config.bots,
        report.ticks,
        report.inputs,
        report.journal_bytes as f64 / 1e6,
        fixture.build_seconds,
    );
    print_recovery(&report);
    Ok(())
}

fn print_recovery(report: &RecoveryReport) {
    let ticks = report.ticks as f64;
    let limit = report.limit_seconds();
    let verdict = if report.open_seconds < RECOVERY_SECONDS_MAX {
        format!("(target < {RECOVERY_SECONDS_MAX} s: met)")
    } else {
        format!(
            "(target < {RECOVERY_SECONDS_MAX} s: MISSED, {:.1}% over)",
            100.0 * (report.open_seconds / RECOVERY_SECONDS_MAX - 1.0)
        )
    };
    println!(
        "recovery (DurableWorld::open): {:.2} s, {} ticks/s {verdict} | limit: in-memory execution {:.2} s + fs::read of the journal {:.3} s = {:.2} s, {} ticks/s | ratio {:.1}x slower {}",
        report.open_seconds,
        count(ticks / report.open_seconds),
        report.memory_seconds,
        report.read_seconds,
        limit,
        count(ticks / limit),
        report.open_seconds / limit,
        Target::None.verdict(report.open_seconds / limit),
    );
    println!(
        "  per tick: recovery {:.1} us, in memory {:.1} us, journal read {:.2} us ({:.0} MB/s from the page cache)",
        1e6 * report.open_seconds / ticks,
        1e6 * report.memory_seconds / ticks,
        1e6 * report.read_seconds / ticks,
        megabytes_per_second(report.journal_bytes, report.read_seconds),
    );
}
