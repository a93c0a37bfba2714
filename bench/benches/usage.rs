//! `cargo bench -p everarcade-bench --bench usage`: signed usage reports
//! (docs/OPERATIONS.md §Usage reports), each figure beside its limit
//! measured in the same run.
//!
//! 1. **Building a report vs reading the journal.** A 2d-arena world of N
//!    ticks is built on disk (as `simulate` builds it). Then, taking turns,
//!    fastest of the rounds:
//!    - `fs::read` of every segment (the disk's raw read, no checking);
//!    - the store's `JournalReader` over every record (checksums and chain:
//!      the floor of any checked read of the journal);
//!    - a usage report over ticks 1..=N (`Producer::build`: count from the
//!      journal, sign), as the node and `usage report` build it;
//!    - `replay` from genesis with signatures checked, as `replay-report`
//!      reads the same journal. Target: the report ≥ 50% of its speed.
//! 2. **The tick rate while reporting.** The node in-process on that world,
//!    usage reports off, then on (every second, a directory sink, the first
//!    report covering all N ticks): ticks executed, the achieved rate and
//!    the mean tick duration over the same wall-clock span. Target: the
//!    rate unchanged.
//!
//! Environment: `EA_BENCH_USAGE_TICKS` (default 100000), `EA_BENCH_USAGE_BOTS`
//! (default 4), `EA_BENCH_ROUNDS` (default 2), `EA_BENCH_USAGE_SECONDS`
//! (default 6, each half of section 2).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use everarcade_bench::durable::fixture::{self, Arena, Fixture, FixtureConfig, read_segments};
use everarcade_bench::durable::replay::replay_once;
use everarcade_bench::durable::{fastest, megabytes_per_second};
use everarcade_bench::report::{load_average, machine_facts};
use everarcade_bench::settings;
use everarcade_client::Client;
use everarcade_node::{Node, NodeConfig, NodeSpec};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, JournalReader};
use everarcade_usage::{Metadata, Producer};

const READY_WITHIN: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    let options = (|| {
        Ok::<_, String>((
            settings::positive("EA_BENCH_USAGE_TICKS", 100_000)?,
            settings::positive("EA_BENCH_USAGE_BOTS", 4)? as usize,
            settings::positive("EA_BENCH_ROUNDS", 2)? as usize,
            settings::positive("EA_BENCH_USAGE_SECONDS", 6)?,
        ))
    })();
    let Some((ticks, bots, rounds, seconds)) = settings::or_report(options) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("load average before: {}", load_average());
    let result = (|| {
        let arena = Arena::load()?;
        let config = FixtureConfig {
            bots,
            ticks,
            seed: 1,
            checkpoint_interval_ticks: 10_000,
        };
        let built = fixture::build(&arena, &config, "usage", &mut |_| {})?;
        println!(
            "world: {ticks} ticks, {bots} bots, {} inputs, journal {} bytes, built in {:.1} s",
            built.input_count(),
            built.journal_bytes,
            built.build_seconds
        );
        reading_section(&arena, &built, rounds)?;
        println!();
        tick_rate_section(&arena, &built, seconds)
    })();
    println!("load average at end: {}", load_average());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("usage benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn walk_journal(built: &Fixture) -> Result<f64, String> {
    let began = Instant::now();
    let mut reader =
        JournalReader::open(&DiskStorage, &built.dir.journal()).map_err(|e| e.to_string())?;
    let mut records = 0u64;
    while reader.next().map_err(|e| e.to_string())?.is_some() {
        records += 1;
    }
    assert!(records > built.config.ticks);
    Ok(began.elapsed().as_secs_f64())
}

fn reading_section(arena: &Arena, built: &Fixture, rounds: usize) -> Result<(), String> {
    let ticks = built.config.ticks;
    let (keys, _) =
        OperatorKeys::load_or_create(&DiskStorage, &built.dir, ticks).map_err(|e| e.to_string())?;
    let producer = Producer::new(
        Arc::new(DiskStorage),
        built.dir.clone(),
        Arena::world_id(),
        Arc::new(keys),
        (
            arena.package.root,
            arena.package.manifest.version.to_string(),
        ),
    );
    let (mut raw, mut walk, mut report, mut replay) = (None, None, None, None);
    let mut counted = None;
    for _ in 0..rounds {
        let began = Instant::now();
        read_segments(&built.dir.journal())?;
        raw = fastest(raw, began.elapsed().as_secs_f64());
        walk = fastest(walk, walk_journal(built)?);
        let began = Instant::now();
        let signed = producer
            .build(1, ticks, 0, Metadata::default())
            .map_err(|e| e.to_string())?;
        report = fastest(report, began.elapsed().as_secs_f64());
        if signed.report.end_continuity_root != built.roots.continuity_root {
            return Err("the report ends at another root than the world".into());
        }
        counted = Some(signed.report.counted);
        replay = fastest(replay, replay_once(arena, built, true)?);
    }
    let (raw, walk, report, replay) = (
        raw.expect("a round"),
        walk.expect("a round"),
        report.expect("a round"),
        replay.expect("a round"),
    );
    let counted = counted.expect("a round");
    let bytes = built.journal_bytes;
    let rate = |seconds: f64| ticks as f64 / seconds;
    println!(
        "== usage report over ticks 1..={ticks} vs reading the same journal; fastest of {rounds} rounds, taking turns"
    );
    println!(
        "report counted: {} inputs, {} applied, fuel {} + {}, {} events, {} journal bytes",
        counted.inputs_admitted,
        counted.input_receipts.applied,
        counted.fuel_inputs,
        counted.fuel_hooks,
        counted.events,
        counted.journal_bytes
    );
    let line = |name: &str, seconds: f64| {
        println!(
            "{name:<44} {:>9.3} s {:>12.0} ticks/s {:>9.1} MB/s",
            seconds,
            rate(seconds),
            megabytes_per_second(bytes, seconds)
        );
    };
    line("fs::read of every segment (raw read)", raw);
    line("JournalReader, checksums + chain (checked read)", walk);
    line("usage report: count + sign", report);
    line("replay from genesis, signatures (replay-report)", replay);
    println!(
        "ratio: usage report / replay-report = {:.1}× its speed (target ≥ 0.5: {})",
        replay / report,
        if replay / report >= 0.5 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "ratio: usage report / checked read = {:.2}; / raw read = {:.2}",
        walk / report,
        raw / report
    );
    resumed_figure(arena, built, rounds)
}

/// The node's case: the last 1,000 ticks after a report that ended just
/// before them (resumed at the remembered journal position) beside the same
/// window counted by reading the journal from its start.
fn resumed_figure(arena: &Arena, built: &Fixture, rounds: usize) -> Result<(), String> {
    let ticks = built.config.ticks;
    let window = 1_000.min(ticks - 1);
    let first = ticks - window + 1;
    let producer = || -> Result<Producer, String> {
        let keys = OperatorKeys::load(&DiskStorage, &built.dir)
            .map_err(|e| e.to_string())?
            .ok_or("no operator key")?;
        Ok(Producer::new(
            Arc::new(DiskStorage),
            built.dir.clone(),
            Arena::world_id(),
            Arc::new(keys),
            (
                arena.package.root,
                arena.package.manifest.version.to_string(),
            ),
        ))
    };
    let (mut resumed, mut full) = (None, None);
    for _ in 0..rounds {
        let node = producer()?;
        node.build(1, first - 1, 0, Metadata::default())
            .map_err(|e| e.to_string())?;
        let began = Instant::now();
        let a = node
            .build(first, ticks, 0, Metadata::default())
            .map_err(|e| e.to_string())?;
        resumed = fastest(resumed, began.elapsed().as_secs_f64());
        let began = Instant::now();
        let b = producer()?
            .build(first, ticks, 0, Metadata::default())
            .map_err(|e| e.to_string())?;
        full = fastest(full, began.elapsed().as_secs_f64());
        if a.report.counted != b.report.counted {
            return Err("the resumed count differs from the full read".into());
        }
    }
    let (resumed, full) = (resumed.expect("a round"), full.expect("a round"));
    println!(
        "the last {window} ticks after a report ending at tick {}: resumed {:.4} s vs read from the start {:.4} s ({:.0}×)",
        first - 1,
        resumed,
        full,
        full / resumed
    );
    Ok(())
}

struct Span {
    ticks: u64,
    seconds: f64,
    mean_tick_seconds: f64,
    achieved_hz: f64,
    reports: u64,
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

fn run_node(arena: &Arena, built: &Fixture, seconds: u64, usage: bool) -> Result<Span, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let mut config = NodeConfig::default();
    config.http.addr = address;
    config.admin.token = Some("bench-admin-token-0123456789".into());
    config.usage.interval_ms = if usage { 1_000 } else { 0 };
    config.usage.dir = usage.then(|| built.scratch.path().join("usage-sink"));
    let spec = NodeSpec {
        runtime_root: built.dir.runtime_root().to_path_buf(),
        world: Arena::world_id(),
        package: arena.package.clone(),
        config,
    };
    let _guard = runtime.enter();
    let node = Node::prepare(spec).map_err(|e| format!("node: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        node.serve(async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| format!("node: {e}"))
    });
    let client = Client::new(&address.to_string(), Arena::world_id()).map_err(|e| e.to_string())?;
    runtime
        .block_on(client.wait_ready(READY_WITHIN))
        .map_err(|e| format!("the node never became ready: {e}"))?;
    let sample = || -> Result<(f64, f64, f64, f64), String> {
        let text = runtime
            .block_on(client.metrics())
            .map_err(|e| e.to_string())?;
        Ok((
            metric(&text, "everarcade_ticks_total"),
            metric(&text, "everarcade_tick_duration_seconds_sum"),
            metric(&text, "everarcade_tick_duration_seconds_count"),
            metric(&text, "everarcade_usage_submitted_total"),
        ))
    };
    let before = sample()?;
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let after = sample()?;
    let elapsed = began.elapsed().as_secs_f64();
    let status = runtime
        .block_on(client.status())
        .map_err(|e| e.to_string())?;
    let _ = stop.send(());
    runtime
        .block_on(task)
        .map_err(|e| format!("node task: {e}"))??;
    let ticks = after.0 - before.0;
    Ok(Span {
        ticks: ticks as u64,
        seconds: elapsed,
        mean_tick_seconds: (after.1 - before.1) / (after.2 - before.2).max(1.0),
        achieved_hz: status.achieved_tick_rate_hz,
        reports: (after.3 - before.3) as u64,
    })
}

fn tick_rate_section(arena: &Arena, built: &Fixture, seconds: u64) -> Result<(), String> {
    let off = run_node(arena, built, seconds, false)?;
    let on = run_node(arena, built, seconds, true)?;
    let sink = built.scratch.path().join("usage-sink");
    let first = std::fs::read_dir(&sink)
        .map_err(|e| format!("{}: {e}", sink.display()))?
        .count();
    println!(
        "== node tick rate, usage reports off vs on (every 1 s, directory sink; the first report covers all {} ticks), {seconds} s each",
        built.config.ticks
    );
    for (name, span) in [("off", &off), ("on", &on)] {
        println!(
            "usage {name:<3}: {} ticks in {:.2} s = {:.2} ticks/s, achieved {:.2} Hz, mean tick {:.3} ms, {} reports delivered",
            span.ticks,
            span.seconds,
            span.ticks as f64 / span.seconds,
            span.achieved_hz,
            span.mean_tick_seconds * 1e3,
            span.reports
        );
    }
    let ratio = (on.ticks as f64 / on.seconds) / (off.ticks as f64 / off.seconds);
    println!(
        "ratio: tick rate with reports / without = {ratio:.3} (target: unchanged, ≥ 0.99: {}); mean tick {:.2}×; {first} report files in the sink",
        if ratio >= 0.99 { "met" } else { "MISSED" },
        on.mean_tick_seconds / off.mean_tick_seconds.max(1e-12)
    );
    Ok(())
}
