//! `replay-verify`, `replay-report` and `replay-root`: re-execute the journal
//! from genesis (or a checkpoint) and compare every tick's input, receipt,
//! state and continuity roots with the recorded ones; signatures and nonces
//! are re-checked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use everarcade_protocol::{ReceiptKind, Tick, TickRoots};
use everarcade_store::DiskStorage;
use everarcade_store::checkpoint::list_checkpoints;
use everarcade_world::WorldError;
use everarcade_world::replay::{
    Context, ReplayOptions, Replayed, ReplayedTick, Start, StartedFrom, replay,
};

use crate::JsonWorldArgs;
use crate::exit::Failure;
use crate::progress::{self, JournalBytes};
use crate::target::{Target, store_failure, world_failure};

/// Options shared by the replay commands.
#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    /// Start from a checkpoint instead of genesis: the newest one, or the one of TICK.
    #[arg(long, value_name = "TICK", num_args = 0..=1, default_missing_value = "newest")]
    from_checkpoint: Option<String>,
}

/// Options of `replay-root`.
#[derive(clap::Args)]
pub struct ReplayRootArgs {
    #[command(flatten)]
    replay: ReplayArgs,
    /// The tick whose roots to print [default: the head].
    #[arg(long)]
    tick: Option<Tick>,
}

/// What the observer gathered.
#[derive(Default)]
struct Tally {
    inputs: u64,
    outcomes: BTreeMap<&'static str, u64>,
    fuel: u64,
    at_checkpoints: Vec<TickRoots>,
}

fn start(args: &ReplayArgs) -> Result<Start, Failure> {
    match args.from_checkpoint.as_deref() {
        None => Ok(Start::Genesis),
        Some("newest") => Ok(Start::NewestCheckpoint),
        Some(text) => text.parse().map(Start::Checkpoint).map_err(|_| {
            Failure::new(
                crate::exit::USAGE,
                "invalid_tick",
                format!("--from-checkpoint takes a tick number, not {text:?}"),
            )
        }),
    }
}

/// Replays with a progress bar on a terminal; returns the result and what was tallied.
fn run_replay(
    target: &Target,
    args: &ReplayArgs,
    stop_after: Option<Tick>,
    label: &str,
) -> Result<(Result<Replayed, WorldError>, Tally, Duration), Failure> {
    target.require_bound()?;
    let (engine, compiled) = target.compile()?;
    let checkpoint_ticks: Vec<Tick> = list_checkpoints(&DiskStorage, &target.dir)
        .map_err(store_failure)?
        .checkpoints
        .iter()
        .map(|(tick, _)| *tick)
        .collect();
    let context = Context {
        storage: &DiskStorage,
        dir: &target.dir,
        id: &target.id,
        engine: &engine,
        compiled,
        schedule: None,
    };
    let options = ReplayOptions {
        start: start(args)?,
        stop_after,
        verify_signatures: true,
        diff_on_divergence: true,
    };
    let journal = JournalBytes::measure(&target.dir);
    let bar = progress::journal(progress::visible(args.common.json), label, &journal);
    let began = Instant::now();
    let mut tally = Tally::default();
    let mut observe = |tick: ReplayedTick<'_>| {
        for receipt in &tick.output.receipts {
            if receipt.kind == ReceiptKind::Input {
                tally.inputs += 1;
            }
            *tally.outcomes.entry(receipt.outcome.name()).or_default() += 1;
            tally.fuel += receipt.fuel_used;
        }
        if checkpoint_ticks.contains(&tick.record.roots.tick) {
            tally.at_checkpoints.push(tick.record.roots);
        }
        bar.set_position(journal.position(tick.segment, tick.end_bytes));
        bar.set_message(format!("tick {}", tick.record.roots.tick));
    };
    let result = replay(&context, &options, &mut observe);
    bar.finish_and_clear();
    Ok((result, tally, began.elapsed()))
}

fn started(replayed: &Replayed) -> String {
    match &replayed.started_from {
        StartedFrom::Genesis => "genesis".into(),
        StartedFrom::Checkpoint { tick, .. } => format!("checkpoint {tick}"),
    }
}

fn first_tick(replayed: &Replayed) -> Tick {
    replayed.last.tick + 1 - replayed.ticks_replayed
}

/// Runs `replay-verify`.
pub fn verify(args: ReplayArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.common.world)?;
    let (result, tally, elapsed) = run_replay(&target, &args, None, "replay-verify")?;
    let replayed = result.map_err(world_failure)?;
    let roots = replayed.last;
    if args.common.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "verified": true,
            "from": started(&replayed),
            "first_tick": first_tick(&replayed),
            "head_tick": roots.tick,
            "ticks": replayed.ticks_replayed,
            "inputs": tally.inputs,
            "state_root": roots.state_root.to_hex(),
            "input_root": roots.input_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "seconds": elapsed.as_secs_f64(),
            "torn_tail": replayed.torn.as_ref().map(|t| t.to_error().to_string()),
        });
        println!("{object}");
    } else {
        println!(
            "replay-verify: replayed ticks {}..={} from {} ({} ticks, {} inputs) in {:.2} s",
            first_tick(&replayed),
            roots.tick,
            started(&replayed),
            replayed.ticks_replayed,
            tally.inputs,
            elapsed.as_secs_f64()
        );
        println!(
            "every tick's input, receipt, state and continuity roots match the journal; signatures and nonces re-checked"
        );
        println!("head tick {}  C(t) {}", roots.tick, roots.continuity_root);
        if let Some(torn) = &replayed.torn {
            println!(
                "WARN  {} (not part of the lineage; run `recover`)",
                torn.to_error()
            );
        }
    }
    Ok(())
}

/// Runs `replay-report`.
pub fn report(args: ReplayArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.common.world)?;
    let (result, tally, elapsed) = run_replay(&target, &args, None, "replay-report")?;
    let (replayed, divergence) = match result {
        Ok(replayed) => (Some(replayed), None),
        Err(error) => (None, Some(world_failure(error))),
    };
    let checkpoints: Vec<serde_json::Value> = tally
        .at_checkpoints
        .iter()
        .map(|roots| {
            serde_json::json!({
                "tick": roots.tick,
                "state_root": roots.state_root.to_hex(),
                "continuity_root": roots.continuity_root.to_hex(),
            })
        })
        .collect();
    let divergences: Vec<serde_json::Value> = divergence
        .iter()
        .map(|failure| serde_json::json!({"code": failure.code, "message": failure.message}))
        .collect();
    let object = serde_json::json!({
        "world": target.id.as_str(),
        "from": replayed.as_ref().map(started),
        "first_tick": replayed.as_ref().map(first_tick),
        "head_tick": replayed.as_ref().map(|r| r.last.tick),
        "ticks": replayed.as_ref().map(|r| r.ticks_replayed),
        "inputs": tally.inputs,
        "outcomes": tally.outcomes,
        "fuel": tally.fuel,
        "seconds": elapsed.as_secs_f64(),
        "checkpoint_roots": checkpoints,
        "head": replayed.as_ref().map(|r| serde_json::json!({
            "tick": r.last.tick,
            "state_root": r.last.state_root.to_hex(),
            "input_root": r.last.input_root.to_hex(),
            "receipt_root": r.last.receipt_root.to_hex(),
            "continuity_root": r.last.continuity_root.to_hex(),
        })),
        "divergences": divergences,
    });
    if args.common.json {
        // A divergence is the failure's envelope, with this report beside it.
        if divergence.is_none() {
            println!("{object}");
        }
    } else {
        println!("replay report for world {}", target.id);
        match &replayed {
            Some(r) => println!(
                "range            ticks {}..={} from {} ({} ticks)",
                first_tick(r),
                r.last.tick,
                started(r),
                r.ticks_replayed
            ),
            None => println!("range            stopped at the first divergence"),
        }
        println!("inputs           {}", tally.inputs);
        println!("outcomes         {:?}", tally.outcomes);
        println!("fuel             {}", tally.fuel);
        println!("time             {:.3} s", elapsed.as_secs_f64());
        for roots in &tally.at_checkpoints {
            println!(
                "checkpoint       tick {}: state {} C(t) {}",
                roots.tick, roots.state_root, roots.continuity_root
            );
        }
        if let Some(r) = &replayed {
            println!(
                "head             tick {} C(t) {}",
                r.last.tick, r.last.continuity_root
            );
        }
        match &divergence {
            None => println!("divergences      none"),
            Some(failure) => println!("divergences      {}", failure.message),
        }
    }
    match divergence {
        Some(failure) => Err(failure.with_details(object)),
        None => Ok(()),
    }
}

/// Runs `replay-root`.
pub fn root(args: ReplayRootArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.replay.common.world)?;
    let (result, _, _) = run_replay(&target, &args.replay, args.tick, "replay-root")?;
    let replayed = result.map_err(world_failure)?;
    let roots = replayed.last;
    if let Some(wanted) = args.tick
        && roots.tick != wanted
    {
        return Err(Failure::new(
            crate::exit::USAGE,
            "tick_beyond_head",
            format!(
                "--tick {wanted} is beyond the journal's head, tick {}",
                roots.tick
            ),
        ));
    }
    if args.replay.common.json {
        let object = serde_json::json!({
            "tick": roots.tick,
            "state_root": roots.state_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "input_root": roots.input_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
        });
        println!("{object}");
    } else {
        println!("tick             {}", roots.tick);
        println!("state root       {}", roots.state_root);
        println!("receipt root     {}", roots.receipt_root);
        println!("input root       {}", roots.input_root);
        println!("continuity C(t)  {}", roots.continuity_root);
        println!(
            "recomputed by replay from {}; equal to the journal's record",
            started(&replayed)
        );
    }
    Ok(())
}
