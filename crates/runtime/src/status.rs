//! `status`: the world as the disk shows it: state, height, roots, lock
//! holder, checkpoints and journal size. The node adds live state; until one
//! runs, `status` exits with the not-running code.

use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::layout::parse_segment_name;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, LockState, Storage, WorldLock};

use crate::JsonWorldArgs;
use crate::exit::{Failure, NOT_RUNNING};
use crate::target::{Target, store_failure};

/// Runs `status`.
pub fn run(args: JsonWorldArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
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
            "source           disk (status.json as the last process left it); live status comes with the node"
        );
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
