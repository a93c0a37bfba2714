//! `recover`: the repair actions (torn tail, checkpoint fallback, quarantine),
//! each stated, ending with a recovery whose roots match the lineage.

use everarcade_world::replay::StartedFrom;
use everarcade_world::{Arrival, Entry, Way};

use crate::JsonWorldArgs;
use crate::exit::Failure;
use crate::target::{DurabilityArgs, Target, open, world_failure};

/// Options of `recover`.
#[derive(clap::Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    #[command(flatten)]
    durability: DurabilityArgs,
}

/// Runs `recover`.
pub fn run(args: RecoverArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.common.world)?;
    target.require_bound()?;
    let entry = Entry {
        way: Way::Repair,
        ..Entry::existing(args.durability.config())
    };
    let opened = open(&target.door()?, entry)?;
    let Arrival::Repaired {
        actions: repairs,
        recovery,
    } = &opened.arrival
    else {
        unreachable!("Way::Repair repairs an existing world")
    };
    let roots = recovery.roots;
    let from = match &recovery.started_from {
        StartedFrom::Genesis => "genesis".to_string(),
        StartedFrom::Checkpoint { tick, .. } => format!("checkpoint {tick}"),
    };
    let mut actions: Vec<String> = Vec::new();
    if let Some(pid) = opened.lock.as_ref().and_then(|lock| lock.stale_pid()) {
        actions.push(format!("took over the stale world lock of pid {pid}"));
    }
    actions.extend(repairs.iter().map(ToString::to_string));
    let recovery = recovery.clone();
    opened.world.close().map_err(world_failure)?;
    if args.common.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "actions": actions,
            "from": from,
            "ticks_replayed": recovery.ticks_replayed,
            "pending_inputs": recovery.pending_inputs,
            "head_tick": roots.tick,
            "state_root": roots.state_root.to_hex(),
            "input_root": roots.input_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "lineage_matches": true,
        });
        println!("{object}");
        return Ok(());
    }
    if actions.is_empty() {
        println!("no repair needed");
    }
    for action in &actions {
        println!("action: {action}");
    }
    println!(
        "recovered from {from}: replayed {} ticks; {} acknowledged inputs wait for tick {}",
        recovery.ticks_replayed,
        recovery.pending_inputs,
        roots.tick + 1
    );
    println!("tick             {}", roots.tick);
    println!("state root       {}", roots.state_root);
    println!("continuity C(t)  {}", roots.continuity_root);
    println!("every replayed tick's roots equal the journal's record: the roots match the lineage");
    Ok(())
}
