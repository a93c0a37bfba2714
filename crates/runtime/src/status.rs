//! `status`: live from the running node (pid, uptime, head tick, roots,
//! admission, achieved tick rate, address); without a node, the world as the
//! disk shows it (state, head tick, roots, lock holder, checkpoints, journal
//! size) and the not-running exit code.

use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::layout::parse_segment_name;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, LockState, Storage, WorldLock};

use everarcade_package::Package;

use crate::JsonWorldArgs;
use crate::exit::{Failure, NOT_RUNNING};
use crate::probe;
use crate::target::{WorldRef, package_mismatch, store_failure};

/// Runs `status`.
pub fn run(args: JsonWorldArgs) -> Result<(), Failure> {
    let world = WorldRef::resolve(&args.world)?;
    let node = probe::running_node(&world).map_err(store_failure)?;
    let given = world.given_package(&args.world)?;
    let mut unreachable = None;
    if let Some(node) = &node {
        match live(&world, node, given.as_ref(), args.json) {
            Ok(()) => return Ok(()),
            Err(Live::Refused(failure)) => return Err(failure),
            Err(Live::Unreachable(reason)) => {
                let holds = if node.amnesia {
                    "is registered as an amnesia node"
                } else {
                    "holds the lock"
                };
                unreachable = Some(format!("node pid {} {holds} but {reason}", node.pid))
            }
        }
    }
    if !world.exists()
        && let Some(reason) = unreachable
    {
        // An amnesia node keeps no disk view to fall back on.
        return Err(Failure::new(NOT_RUNNING, "node_unreachable", reason));
    }
    // The package given was checked against the binding above.
    world.require_exists()?;
    let target = world.with_package(given)?;
    let dir = &target.dir;
    let status: StatusFile = read_json(&DiskStorage, &dir.status()).map_err(store_failure)?;
    let lock = WorldLock::probe(&dir.lock()).map_err(store_failure)?;
    let checkpoints = list_checkpoints(&DiskStorage, dir).map_err(store_failure)?;
    let segments: Vec<String> = DiskStorage
        .list(&dir.journal())
        .unwrap_or_default()
        .into_iter()
        .filter(|name| parse_segment_name(name).is_some())
        .collect();
    let journal_bytes: u64 = segments
        .iter()
        .filter_map(|name| std::fs::metadata(dir.journal().join(name)).ok())
        .map(|metadata| metadata.len())
        .sum();
    let (holder, running) = match lock {
        LockState::Free => ("none".to_string(), false),
        LockState::Held { pid } => (format!("pid {pid} (live)"), true),
        LockState::Stale { pid, .. } => (
            format!("none (stale lock of pid {pid}, which died; the next writer takes it over)"),
            false,
        ),
    };
    let checkpoint_ticks: Vec<u64> = checkpoints.checkpoints.iter().map(|(t, _)| *t).collect();
    // The current operator key (created on the first start; none before).
    let operator_key = everarcade_store::keys::read_history(&DiskStorage, dir)
        .map_err(store_failure)?
        .and_then(|history| history.keys.last().map(|key| key.public_key.clone()));
    let incidents = everarcade_world::incident::list_incidents(&DiskStorage, dir)
        .map_err(crate::target::world_failure)?;
    let last_incident = incidents.last().map(|(path, incident)| {
        serde_json::json!({
            "path": path.display().to_string(),
            "kind": incident.kind,
            "tick": incident.tick,
            "detected_by": incident.detected_by,
            "message": incident.message,
        })
    });
    let mut details = None;
    if args.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "state": if running { "running" } else { "stopped" },
            "recorded_state": status.state,
            "head_tick": status.head_tick,
            "state_root": status.state_root,
            "input_root": status.input_root,
            "receipt_root": status.receipt_root,
            "continuity_root": status.continuity_root,
            "package_root": target.package.root.to_hex(),
            "operator_public_key": operator_key,
            "lock_holder": holder,
            "checkpoints": checkpoint_ticks,
            "journal_segments": segments.len(),
            "journal_bytes": journal_bytes,
            "live": false,
            "unreachable": unreachable,
            "incidents": incidents.len(),
            "last_incident": last_incident,
        });
        if running {
            println!("{object}");
        } else {
            // Not running is the failure's envelope, with the disk's view beside it.
            details = Some(object);
        }
    } else {
        println!("world            {}", target.id);
        println!(
            "state            {} (status.json says {})",
            if running { "running" } else { "stopped" },
            status.state
        );
        println!("head tick        {}", status.head_tick);
        println!("state root       {}", status.state_root);
        println!("input root       {}", status.input_root);
        println!("receipt root     {}", status.receipt_root);
        println!("continuity C(t)  {}", status.continuity_root);
        println!("package root     {} (matches genesis)", target.package.root);
        println!(
            "operator key     {}",
            operator_key
                .as_deref()
                .unwrap_or("none yet (created on the first start)")
        );
        println!("lock holder      {holder}");
        println!("checkpoints      {checkpoint_ticks:?}");
        println!(
            "journal          {} segments, {journal_bytes} bytes",
            segments.len()
        );
        println!(
            "source           disk (no node answers; status.json as the last process left it)"
        );
    }
    if let Some((path, incident)) = incidents.last()
        && !args.json
    {
        println!(
            "INCIDENT         {} at tick {} ({}); record {}; the node refuses to serve until it is resolved",
            incident.kind,
            incident.tick,
            incident.detected_by,
            path.display()
        );
    }
    if let Some(reason) = &unreachable {
        eprintln!("warning: {reason}; showing the disk's view");
    }
    if running {
        return Ok(());
    }
    let failure = Failure::new(
        NOT_RUNNING,
        "not_running",
        format!("no node runs world {}", target.id),
    );
    Err(match details {
        Some(details) => failure.with_details(details),
        None => failure,
    })
}

/// Why the live status was not shown.
enum Live {
    /// The node could not be asked; the disk's view follows.
    Unreachable(String),
    /// The node runs another package than the one given.
    Refused(Failure),
}

/// Prints the running node's own status.
fn live(
    world: &WorldRef,
    node: &probe::RunningNode,
    given: Option<&Package>,
    json: bool,
) -> Result<(), Live> {
    let url = node.url().ok_or_else(|| {
        Live::Unreachable("has recorded no address yet (still starting)".to_string())
    })?;
    let status = probe::client(world, node, std::time::Duration::from_secs(5))
        .and_then(|client| client.status())
        .map_err(|error| Live::Unreachable(format!("does not answer at {url}: {error}")))?;
    if let Some(package) = given
        && package.root != status.package_root
    {
        return Err(Live::Refused(package_mismatch(
            status.package_root,
            package.root,
        )));
    }
    if json {
        let object = serde_json::to_value(&status).expect("a status serializes");
        println!("{object}");
        return Ok(());
    }
    let or_none = |value: Option<String>| value.unwrap_or_else(|| "none".into());
    println!("world            {}", status.world);
    println!(
        "state            running (pid {}, up {} ms)",
        status.pid, status.uptime_ms
    );
    println!("address          {url}");
    if node.amnesia {
        println!("amnesia          yes: nothing is kept; the world is gone when the node stops");
    }
    println!(
        "ready            {} ({})",
        status.ready,
        or_none(status.not_ready_reason)
    );
    println!("admission        {}", status.admission);
    if let Some(incident) = &status.incident {
        println!(
            "incident         {} at tick {}: {} (record {})",
            incident.kind, incident.tick, incident.message, incident.record
        );
    }
    println!("head tick        {}", status.head_tick);
    println!(
        "tick rate        {} Hz achieved of {} Hz",
        status.achieved_tick_rate_hz, status.tick_rate_hz
    );
    println!("pending inputs   {}", status.pending_inputs);
    println!("state root       {}", status.state_root);
    println!("input root       {}", status.input_root);
    println!("receipt root     {}", status.receipt_root);
    println!("continuity C(t)  {}", status.continuity_root);
    println!("package root     {}", status.package_root);
    println!(
        "operator key     {}",
        hex::encode(status.operator_public_key)
    );
    println!(
        "checkpoint tick  {}",
        or_none(status.checkpoint_tick.map(|tick| tick.to_string()))
    );
    println!("source           live (the running node)");
    Ok(())
}
