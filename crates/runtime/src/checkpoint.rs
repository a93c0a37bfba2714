//! `checkpoint`: through the running node when there is one (its admin API
//! takes one at the next tick boundary); otherwise offline: recovers the
//! world and takes a checkpoint now.

use everarcade_world::Entry;

use crate::JsonWorldArgs;
use crate::exit::{FAILURE, Failure};
use crate::probe;
use crate::target::{DurabilityArgs, Target, open, store_failure, world_failure};

/// Options of `checkpoint`.
#[derive(clap::Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    #[command(flatten)]
    durability: DurabilityArgs,
}

/// Runs `checkpoint`.
pub fn run(args: CheckpointArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.common.world)?;
    target.require_bound()?;
    // A lock holder that records an address is a node; any other holder
    // (an offline command) makes the lock below fail, naming its pid.
    if let Some(node) = probe::running_node(&target.world_ref()).map_err(store_failure)?
        && node.address.is_some()
    {
        return online(&target, &node, args.common.json);
    }
    let opened = open(&target.door()?, Entry::existing(args.durability.config()))?;
    let (mut world, _lock) = (opened.world, opened.lock);
    let recovered_ticks = opened.arrival.recovery().map_or(0, |r| r.ticks_replayed);
    // Refused (busy) when acknowledged inputs wait for the next tick: a
    // checkpoint is of a tick boundary, and advancing the world is not this
    // command's call to make.
    let taken = world.checkpoint().map_err(world_failure)?;
    let roots = world.roots();
    world.close().map_err(world_failure)?;
    let pruned: Vec<String> = taken
        .pruned
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if args.common.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "tick": taken.tick,
            "path": taken.path.display().to_string(),
            "bytes": taken.bytes,
            "state_root": roots.state_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "pruned": pruned,
            "recovered_ticks": recovered_ticks,
        });
        println!("{object}");
        return Ok(());
    }
    println!(
        "checkpoint of tick {} written to {} ({} bytes)",
        taken.tick,
        taken.path.display(),
        taken.bytes
    );
    println!("state root       {}", roots.state_root);
    println!("continuity C(t)  {}", roots.continuity_root);
    for path in pruned {
        println!("retention removed {path}");
    }
    Ok(())
}

/// Asks the running node for a checkpoint.
fn online(target: &Target, node: &probe::RunningNode, json: bool) -> Result<(), Failure> {
    let pid = node.pid;
    let client = probe::admin_client(
        &target.world_ref(),
        node,
        std::time::Duration::from_secs(30),
    )?;
    let taken = client.checkpoint().map_err(|error| {
        let code = if error.is_transport() {
            "node_unreachable"
        } else {
            "checkpoint_failed"
        };
        Failure::new(FAILURE, code, error.to_string())
    })?;
    if json {
        let object = serde_json::to_value(&taken).expect("a checkpoint answer serializes");
        println!("{object}");
        return Ok(());
    }
    println!(
        "checkpoint of tick {} written by the running node (pid {pid}) to {} ({} bytes)",
        taken.tick, taken.path, taken.bytes
    );
    Ok(())
}
