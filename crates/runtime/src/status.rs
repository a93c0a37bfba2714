//! `status`: live from the running node (pid, uptime, height, roots,
//! admission, achieved tick rate, address); without a node, the world as the
//! disk shows it (state, height, roots, lock holder, checkpoints, journal
//! size) and the not-running exit code.

use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::layout::parse_segment_name;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, LockState, Storage, WorldLock};

use crate::JsonWorldArgs;
use crate::exit::{Failure, NOT_RUNNING};
use crate::probe;
use crate::target::{Target, store_failure};

/// Runs `status`.
pub fn run(args: JsonWorldArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let dir = &target.dir;
    let mut unreachable = None;
    if let Some(node) = probe::running_node(dir).map_err(store_failure)? {
        match live(&target, &node, args.json) {
            Ok(()) => return Ok(()),
            Err(reason) => {
                unreachable = Some(format!("node pid {} holds the lock but {reason}", node.pid))
            }
        }
    }
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
    if args.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "state": if running { "running" } else { "stopped" },
            "recorded_state": status.state,
            "height": status.height,
            "state_root": status.state_root,
            "input_root": status.input_root,
            "receipt_root": status.receipt_root,
            "continuity_root": status.continuity_root,
            "package_root": target.package.root.to_hex(),
            "lock_holder": holder,
            "checkpoints": checkpoint_ticks,
            "journal_segments": segments.len(),
            "journal_bytes": journal_bytes,
            "live": false,
            "unreachable": unreachable,
            "incidents": incidents.len(),
            "last_incident": last_incident,
        });
        println!("{object}");
    } else {
        println!("world            {}", target.id);
        println!(
            "state            {} (status.json says {})",
            if running { "running" } else { "stopped" },
            status.state
        );
        println!("height           {}", status.height);
        println!("state root       {}", status.state_root);
        println!("input root       {}", status.input_root);
        println!("receipt root     {}", status.receipt_root);
        println!("continuity C(t)  {}", status.continuity_root);
        println!("package root     {} (matches genesis)", target.package.root);
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
    if let Some((path, incident)) = incidents.last() {
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
    Err(Failure::new(
        NOT_RUNNING,
        "not_running",
        format!("no node runs world {}", target.id),
    ))
}

/// Prints the running node's own status.
fn live(target: &Target, node: &probe::RunningNode, json: bool) -> Result<(), String> {
    let address = node
        .address
        .ok_or("status.json records no address (starting, or amnesia)")?;
    let path = format!("/v1/worlds/{}/status", target.id);
    let reply = probe::exchange(
        address,
        "GET",
        &path,
        None,
        std::time::Duration::from_secs(5),
    )
    .map_err(|error| format!("does not answer at {address}: {error}"))?;
    if reply.status != 200 {
        return Err(format!(
            "answered {} at {address}: {}",
            reply.status, reply.body
        ));
    }
    if json {
        println!("{}", reply.body.trim());
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_str(&reply.body).map_err(|error| format!("sent bad JSON: {error}"))?;
    let field = |name: &str| match &value[name] {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "none".to_string(),
        other => other.to_string(),
    };
    println!("world            {}", field("world"));
    println!(
        "state            running (pid {}, up {} ms)",
        field("pid"),
        field("uptime_ms")
    );
    println!("address          http://{}", field("address"));
    println!(
        "ready            {} ({})",
        field("ready"),
        field("not_ready_reason")
    );
    println!("admission        {}", field("admission"));
    println!("height           {}", field("height"));
    println!(
        "tick rate        {} Hz achieved of {} Hz",
        field("achieved_tick_rate_hz"),
        field("tick_rate_hz")
    );
    println!("pending inputs   {}", field("pending_inputs"));
    println!("state root       {}", field("state_root"));
    println!("input root       {}", field("input_root"));
    println!("receipt root     {}", field("receipt_root"));
    println!("continuity C(t)  {}", field("continuity_root"));
    println!("package root     {}", field("package_root"));
    println!("checkpoint tick  {}", field("checkpoint_tick"));
    println!("source           live (the running node)");
    Ok(())
}
