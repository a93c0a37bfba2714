//! Issue 13 (docs/BENCHMARKS.md, "Issue 13"): signature checks batched on
//! every core, `simulate`'s loop and `replay-verify`, under both signature
//! rules, each beside its floor measured in the same run.
//!
//! `cargo bench -p everarcade-bench --bench speed`
//!
//! - `EA_BENCH_ONLY`: `signatures`, `simulate` or `replay` runs one section;
//! - `EA_BENCH_SIMULATE_TICKS`: ticks of the simulate match (default 10000);
//! - `EA_BENCH_REPLAY_TICKS`: ticks of the replay world (default 2000).

use std::process::ExitCode;

use everarcade_bench::durable::fixture::{self, FixtureConfig};
use everarcade_bench::durable::replay::{execute_in_memory, replay_once};
use everarcade_bench::durable::{fastest, scratch_root};
use everarcade_bench::report::{Target, count, load_average, machine_facts};
use everarcade_bench::settings;
use everarcade_bench::speed::{arena_under, signature_speed, signed, simulate_speed};
use everarcade_protocol::SignatureRule;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Signatures,
    Simulate,
    Replay,
}

struct Options {
    only: Option<Section>,
    simulate_ticks: u64,
    replay_ticks: u64,
}

const RULES: [(SignatureRule, &str); 2] = [
    (SignatureRule::Strict, "strict"),
    (SignatureRule::Zip215, "zip215"),
];

fn main() -> ExitCode {
    let parsed = (|| -> Result<Options, String> {
        Ok(Options {
            only: settings::only(&[
                ("signatures", Section::Signatures),
                ("simulate", Section::Simulate),
                ("replay", Section::Replay),
            ])?,
            simulate_ticks: settings::positive("EA_BENCH_SIMULATE_TICKS", 10_000)?,
            replay_ticks: settings::positive("EA_BENCH_REPLAY_TICKS", 2_000)?,
        })
    })();
    let Some(options) = settings::or_report(parsed) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("scratch directory: {}", scratch_root().display());
    println!();
    type SectionFn = fn(&Options) -> Result<(), String>;
    let sections: [(Section, &str, SectionFn); 3] = [
        (Section::Signatures, "signatures", signatures_section),
        (Section::Simulate, "simulate", simulate_section),
        (Section::Replay, "replay", replay_section),
    ];
    for (section, name, run) in sections {
        if options.only.is_some_and(|only| only != section) {
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

fn signatures_section(_: &Options) -> Result<(), String> {
    let envelopes = signed(256, 4);
    let speed = signature_speed(&envelopes, 4, 0.25);
    let base = speed.strict_single_one_core;
    println!(
        "== signature checks: {} envelopes (256 signers x 4 nonces, 3-byte payloads); 4 rounds of >= 0.25 s per path, taking turns, fastest round; {} cores",
        speed.envelopes, speed.threads
    );
    println!(
        "baseline: strict verify_signature, one by one, 1 core: {} checks/s",
        count(base)
    );
    let rows = [
        (
            "strict, one by one, every core (verify_signatures_under)",
            speed.strict_all_cores,
            Target::None,
        ),
        (
            "zip215, one by one, 1 core",
            speed.zip215_single_one_core,
            Target::None,
        ),
        (
            "zip215, one batch, 1 core (messages built in advance)",
            speed.zip215_batch_one_core,
            Target::None,
        ),
        (
            "zip215, a batch per core, every core (verify_signatures_under)",
            speed.zip215_batch_all_cores,
            Target::AtLeast(3.5),
        ),
    ];
    for (name, rate, target) in rows {
        let ratio = rate / base;
        println!(
            "  {name}: {} checks/s = {ratio:.2}x the baseline {}",
            count(rate),
            target.verdict(ratio)
        );
    }
    Ok(())
}

fn simulate_section(options: &Options) -> Result<(), String> {
    let ticks = options.simulate_ticks;
    println!(
        "== simulate's loop (--amnesia), 2d-arena, 256 bots, {ticks} ticks at 20 Hz: bot_payloads, Envelope::sign_and_verify_all under the world's rule (every core signs and checks its part in one pass; batches under zip215), admit_verified in order, execute_tick; floor: the same loop's bots + execute_tick alone (the engine, no signatures)"
    );
    for (rule, name) in RULES {
        let (arena, _scratch) = arena_under(rule)?;
        let speed = simulate_speed(&arena, 256, ticks)?;
        let factor = speed.real_time_factor(20.0);
        let floor = speed.engine_real_time_factor(20.0);
        let per_tick = |seconds: f64| format!("{:.1} us", seconds / ticks as f64 * 1e6);
        println!(
            "{name}: {} inputs ({:.1}/tick); real-time factor {factor:.1}x {} | engine alone {floor:.1}x (ratio {:.2}) | per tick: bots {}, sign+check {}, admit {}, execute {}",
            speed.inputs,
            speed.inputs as f64 / ticks as f64,
            Target::AtLeast(40.0).verdict(factor),
            factor / floor,
            per_tick(speed.bots),
            per_tick(speed.sign),
            per_tick(speed.admit),
            per_tick(speed.execute),
        );
    }
    Ok(())
}

fn replay_section(options: &Options) -> Result<(), String> {
    let ticks = options.replay_ticks;
    println!(
        "== replay-verify from genesis (replay with verify_signatures: true; records read ahead, their signatures checked together on every core), 2d-arena, 64 bots, {ticks} ticks; floor: in-memory execute_tick of the same inputs; 3 rounds, fastest"
    );
    for (rule, name) in RULES {
        let (arena, _scratch) = arena_under(rule)?;
        let config = FixtureConfig {
            bots: 64,
            ticks,
            seed: 7,
            checkpoint_interval_ticks: 0,
        };
        let fixture = fixture::build(
            &arena,
            &config,
            &format!("speed-replay-{name}"),
            &mut |_| {},
        )?;
        let (mut verify, mut memory) = (None, None);
        for _ in 0..3 {
            memory = fastest(memory, execute_in_memory(&arena, &fixture)?);
            verify = fastest(verify, replay_once(&arena, &fixture, true)?);
        }
        let (verify, memory) = (verify.expect("a round"), memory.expect("a round"));
        let rate = ticks as f64 / verify;
        let verdict = match rule {
            SignatureRule::Zip215 if rate >= 5000.0 => "(target >= 5000 ticks/s: met)",
            SignatureRule::Zip215 => "(target >= 5000 ticks/s: MISSED)",
            SignatureRule::Strict => "(the path of every existing world; no target)",
        };
        println!(
            "{name}: {} inputs; replay-verify {} ticks/s {verdict} | in-memory execution {} ticks/s (replay {:.2}x slower)",
            fixture.input_count(),
            count(rate),
            count(ticks as f64 / memory),
            verify / memory,
        );
    }
    Ok(())
}
