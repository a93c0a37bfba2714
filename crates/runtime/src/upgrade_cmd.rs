//! `upgrade --to NEW_PACKAGE` and `rollback`: the manual's upgrade and
//! rollback procedures for a world's package (`everarcade_world::upgrade`).
//!
//! Upgrade: stop the node if one runs (admission closes, the tick finishes,
//! a checkpoint is written); take a checkpoint of the head and a backup
//! (beside the runtime root, as `backup` does);
//! replay-verify the lineage under the current package; validate the new
//! package; apply the semver rule (a patch must replay all history under
//! the new package; minor and major need `--allow-minor`/`--allow-major`
//! and are recorded as a protocol transition at the next tick); switch;
//! verify; start the node again if one ran. The rollback artifacts stay
//! until `upgrade --accept`. A refusal after step 2 leaves the package and
//! lineage unchanged but says what step 2 wrote (the checkpoint, the
//! backup, a new operator key) and that a stopped node stays stopped.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_engine::Engine;
use everarcade_package::Package;
use everarcade_store::DiskStorage;
use everarcade_store::keys::OperatorKeys;
use everarcade_world::audit::audit;
use everarcade_world::lineage::UpgradeKind;
use everarcade_world::upgrade::{
    Allow, PendingUpgrade, UpgradeInputs, accept, apply, classify, matches_head, pending,
    replay_history_under_new, roll_back, verify_current,
};
use everarcade_world::{Entry, FrontDoor, Lock, Opened};

use crate::WorldArgs;
use crate::exit::{DIVERGENCE, FAILURE, Failure, NOT_RUNNING, PACKAGE};
use crate::ops_cmd::ops_failure;
use crate::target::{DurabilityArgs, Target, disk, open, store_failure, world_failure};
use crate::{node_cmd, probe};

/// `upgrade` arguments.
#[derive(clap::Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// The new package directory.
    #[arg(long, required_unless_present = "accept")]
    to: Option<PathBuf>,
    /// Allow a minor version upgrade (a protocol transition at the next tick).
    #[arg(long)]
    allow_minor: bool,
    /// Allow a major version upgrade (a protocol transition at the next tick).
    #[arg(long)]
    allow_major: bool,
    /// Accept the pending upgrade: its rollback artifacts stop being rollback artifacts.
    #[arg(long, conflicts_with = "to")]
    accept: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `rollback` arguments.
#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn step(json: bool, text: &str) {
    if !json {
        println!("{text}");
    }
}

/// The running node's command line, to start it again after the change.
fn running_command(target: &Target) -> Result<Option<Vec<String>>, Failure> {
    let Some(node) = probe::running_node(&target.world_ref()).map_err(store_failure)? else {
        return Ok(None);
    };
    let raw = std::fs::read(format!("/proc/{}/cmdline", node.pid)).map_err(|e| {
        Failure::new(
            FAILURE,
            "node_unreachable",
            format!("reading pid {}'s command line: {e}", node.pid),
        )
    })?;
    let arguments: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    if arguments.get(1).map(String::as_str) != Some("run") || arguments.len() < 5 {
        return Err(Failure::new(
            FAILURE,
            "node_unrecognized",
            format!(
                "pid {} holds the world but is not `everarcade-runtime run …`; stop it first",
                node.pid
            ),
        ));
    }
    Ok(Some(arguments))
}

/// Starts the node again with its old flags and `package`.
fn start_again(mut arguments: Vec<String>, package: &std::path::Path) -> Result<(), Failure> {
    arguments[1] = "start".into();
    arguments[4] = package.display().to_string();
    let status = std::process::Command::new(&arguments[0])
        .args(&arguments[1..])
        .status()
        .map_err(|e| Failure::new(FAILURE, "start_failed", e.to_string()))?;
    if !status.success() {
        return Err(Failure::new(
            FAILURE,
            "start_failed",
            format!("the node did not start again ({status}); see node.log"),
        ));
    }
    Ok(())
}

/// Stops a running node, if any; returns its command line.
fn stop_if_running(
    target: &Target,
    world: &WorldArgs,
    json: bool,
) -> Result<Option<Vec<String>>, Failure> {
    let command = running_command(target)?;
    if command.is_some() {
        step(
            json,
            "1. closing admission: stopping the node (it finishes the tick and checkpoints)",
        );
        match node_cmd::stop_world(world) {
            Ok(()) => {}
            Err(failure) if failure.exit == NOT_RUNNING => {}
            Err(failure) => return Err(failure),
        }
    } else {
        step(json, "1. no node runs: admission is closed");
    }
    Ok(command)
}

/// Runs `upgrade`.
pub fn upgrade(args: UpgradeArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let storage = disk();
    if args.accept {
        return accept_pending(&target, args.json);
    }
    if let Some(pending) = pending(&*storage, &target.dir).map_err(world_failure)? {
        let refusal = everarcade_world::upgrade::UpgradeRefusal::Pending {
            to: pending.transition.package_root,
            tick: pending.transition.from_tick,
        };
        return Err(Failure::new(FAILURE, refusal.code(), refusal.to_string()));
    }
    let new_path = args
        .to
        .clone()
        .expect("clap requires --to without --accept");
    let new_package = Package::load(&new_path)
        .map_err(|e| Failure::new(PACKAGE, e.code(), format!("the new package: {e}")))?;
    let allow = Allow {
        minor: args.allow_minor,
        major: args.allow_major,
    };
    let kind = classify(&target.package, &new_package, allow)
        .map_err(|refusal| Failure::new(PACKAGE, refusal.code(), refusal.to_string()))?;
    let restart = stop_if_running(&target, &args.world, args.json)?;
    let lock = target.lock()?;
    let (engine, current) = target.compile()?;
    let saved = checkpoint_and_backup(&target, &args.world, &engine, &current, args.json)?;
    // From here a refusal leaves the package and lineage as they were, but
    // not the world directory: it says what step 2 wrote.
    let refused = |failure: Failure| saved.refusal(failure, restart.is_some());
    let compiled_new = compile(&engine, &new_package).map_err(refused)?;
    let inputs = UpgradeInputs {
        storage: &*storage,
        dir: &target.dir,
        id: &target.id,
        engine: &engine,
        current: current.clone(),
        new: compiled_new.clone(),
    };
    let verified = verify_current(&inputs)
        .map_err(world_failure)
        .map_err(refused)?;
    step(
        args.json,
        &format!(
            "3. replay-verify under the current package: ticks 1..={} match",
            verified.tick
        ),
    );
    step(
        args.json,
        &format!(
            "4. the new package {} ({} {}) validates and compiles",
            new_package.root, new_package.manifest.name, new_package.manifest.version
        ),
    );
    let history_replayed =
        check_history(&inputs, kind, &new_package, saved.head.tick, args.json).map_err(refused)?;
    let backup_path = Some(saved.backup.display().to_string());
    let pending = apply(
        &inputs,
        &saved.keys,
        kind,
        saved.head,
        saved.journal_end,
        history_replayed,
        backup_path,
    )
    .map_err(world_failure)?;
    step(
        args.json,
        &format!(
            "6. switched: package/ is {} from tick {}; lineage.json signed by {}",
            new_package.root,
            pending.transition.from_tick,
            saved.keys.public_key_hex()
        ),
    );
    let new_target = Target {
        id: target.id.clone(),
        dir: target.dir.clone(),
        package: new_package,
    };
    verify_after(&new_target, &engine, &compiled_new, args.json)?;
    drop(lock);
    if let Some(command) = restart {
        start_again(command, &new_path)?;
        step(args.json, "7. the node runs again with the new package");
    }
    report_upgrade(&target, &pending, history_replayed, args.json);
    Ok(())
}

/// What step 2 of an upgrade saved: the head it checkpointed, where the
/// journal ended, the operator keys and the backup folder, and everything
/// it wrote on the way.
struct Saved {
    head: everarcade_protocol::TickRoots,
    journal_end: (u64, u64),
    keys: OperatorKeys,
    backup: PathBuf,
    /// The tick step 2 executed for acknowledged inputs, if any.
    executed_tick: Option<u64>,
    /// The checkpoint file step 2 wrote.
    checkpoint: PathBuf,
    /// Checkpoints retention removed after it.
    pruned: Vec<PathBuf>,
    /// Whether step 2 created the operator key.
    key_created: bool,
}

impl Saved {
    /// `failure`, a refusal after step 2, with what step 2 wrote: the
    /// package and lineage are unchanged, the world directory is not.
    fn refusal(&self, mut failure: Failure, node_stopped: bool) -> Failure {
        let mut written = Vec::new();
        if let Some(tick) = self.executed_tick {
            written.push(format!(
                "executed tick {tick} for the inputs a node had acknowledged (journaled)"
            ));
        }
        written.push(format!(
            "the checkpoint of tick {} ({})",
            self.head.tick,
            self.checkpoint.display()
        ));
        for path in &self.pruned {
            written.push(format!(
                "removed the older checkpoint {} (retention)",
                path.display()
            ));
        }
        if self.key_created {
            written.push(format!(
                "created the operator key {} (operator/)",
                self.keys.public_key_hex()
            ));
        }
        written.push(format!("a backup at {}", self.backup.display()));
        failure.message = format!(
            "{}\nthe package and lineage are unchanged (no transition, nothing pending), but before this step the upgrade wrote: {}",
            failure.message,
            written.join("; ")
        );
        if node_stopped {
            failure.message.push_str(
                "\nthe node was stopped for the upgrade and was not started again: `start` it",
            );
        }
        failure
    }
}

/// Step 2: executes any acknowledged inputs under the rules they were
/// admitted under, checkpoints the head, and writes a backup beside the
/// runtime root (as `backup` does).
fn checkpoint_and_backup(
    target: &Target,
    world_args: &WorldArgs,
    engine: &Arc<Engine>,
    current: &Arc<everarcade_engine::CompiledPackage>,
    json: bool,
) -> Result<Saved, Failure> {
    let storage = disk();
    let door = FrontDoor {
        storage: storage.clone(),
        dir: target.dir.clone(),
        id: target.id.clone(),
        engine: engine.clone(),
        compiled: current.clone(),
    };
    // The upgrade holds the lock from step 1 to the end.
    let entry = Entry {
        lock: Lock::AlreadyHeld,
        ..Entry::existing(DurabilityArgs::defaults().config())
    };
    let Opened {
        mut world, keys, ..
    } = open(&door, entry)?;
    let executed_tick = if world.pending_inputs() > 0 {
        Some(world.execute_tick().map_err(world_failure)?.roots.tick)
    } else {
        None
    };
    let taken = world.checkpoint().map_err(world_failure)?;
    let head = world.roots();
    let journal_end = world.journal_end();
    world.close().map_err(world_failure)?;
    step(
        json,
        &format!(
            "2. checkpoint of tick {} at {}",
            taken.tick,
            taken.path.display()
        ),
    );
    // The key the front door loaded, else one created at the head (after
    // the checkpoint, which a world without a key leaves unsigned).
    let (keys, key_created) = match keys.and_then(Arc::into_inner) {
        Some(keys) => (keys, false),
        None => OperatorKeys::load_or_create(&*storage, &target.dir, head.tick)
            .map_err(store_failure)?,
    };
    let parent = everarcade_ops::backup::default_backup_parent(&world_args.runtime_root)
        .map_err(ops_failure)?;
    let source = everarcade_ops::backup::BackupSource {
        world: target.dir.clone(),
        checkpoint_tick: Some(taken.tick),
        journal_end,
    };
    let out = everarcade_ops::backup::next_backup_dir(&parent, &target.id, taken.tick);
    let backup = everarcade_ops::backup::write_backup(&source, &out, &keys).map_err(ops_failure)?;
    step(
        json,
        &format!(
            "   backup at {} (manifest {})",
            backup.path.display(),
            backup.manifest_path.display()
        ),
    );
    Ok(Saved {
        head,
        journal_end,
        keys,
        backup: backup.path,
        executed_tick,
        checkpoint: taken.path,
        pruned: taken.pruned,
        key_created,
    })
}

/// Step 5, the semver rule: a patch must replay all history to the
/// recorded roots under the new package (true when it did); an allowed
/// minor or major upgrade is a protocol transition at the next tick.
fn check_history(
    inputs: &UpgradeInputs<'_>,
    kind: UpgradeKind,
    new_package: &Package,
    head_tick: u64,
    json: bool,
) -> Result<bool, Failure> {
    if kind != UpgradeKind::Patch {
        step(
            json,
            &format!(
                "5. {kind:?} upgrade allowed: recorded as a protocol transition at tick {}",
                head_tick + 1
            ),
        );
        return Ok(false);
    }
    replay_history_under_new(inputs).map_err(|error| {
        let mut failure = world_failure(error);
        failure.message = format!(
            "refused: a patch must replay all history to the recorded roots, and this one does not: {}\n\
             if the new rules are meant to change the game, make it a minor version and pass --allow-minor",
            failure.message
        );
        if failure.exit == DIVERGENCE {
            failure.code = "upgrade_history_diverges".into();
        }
        failure
    })?;
    step(
        json,
        &format!(
            "5. patch: history replays to the recorded roots under {}",
            new_package.manifest.version
        ),
    );
    Ok(true)
}

fn report_upgrade(target: &Target, pending: &PendingUpgrade, history_replayed: bool, json: bool) {
    if json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "kind": pending.transition.kind,
            "from_tick": pending.transition.from_tick,
            "previous_root": pending.transition.previous_root,
            "package_root": pending.transition.package_root,
            "history_replayed": history_replayed,
            "pending": true,
        });
        println!("{object}");
    } else {
        println!(
            "upgrade pending: keep the rollback artifacts until `upgrade --accept`; `rollback` returns to tick {}",
            pending.head_tick
        );
    }
}

fn compile(
    engine: &Arc<Engine>,
    package: &Package,
) -> Result<Arc<everarcade_engine::CompiledPackage>, Failure> {
    engine
        .compile(package)
        .map_err(|e| Failure::new(PACKAGE, e.code(), format!("the new package: {e}")))
}

/// `verify` and `replay-verify` of the switched world.
fn verify_after(
    target: &Target,
    engine: &Arc<Engine>,
    compiled: &Arc<everarcade_engine::CompiledPackage>,
    json: bool,
) -> Result<(), Failure> {
    audit(&DiskStorage, &target.dir, &target.package).map_err(world_failure)?;
    let inputs = UpgradeInputs {
        storage: &DiskStorage,
        dir: &target.dir,
        id: &target.id,
        engine,
        current: compiled.clone(),
        new: compiled.clone(),
    };
    let roots = verify_current(&inputs).map_err(world_failure)?;
    step(
        json,
        &format!(
            "   verify and replay-verify pass with the new lineage: head tick {} C(t) {}",
            roots.tick, roots.continuity_root
        ),
    );
    Ok(())
}

fn accept_pending(target: &Target, json: bool) -> Result<(), Failure> {
    let _lock = target.lock()?;
    match accept(&DiskStorage, &target.dir).map_err(world_failure)? {
        None => Err(Failure::new(
            FAILURE,
            "no_pending_upgrade",
            "no upgrade is pending",
        )),
        Some(pending) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"accepted": pending.transition.package_root, "from_tick": pending.transition.from_tick})
                );
            } else {
                println!(
                    "accepted the upgrade to {} (from tick {}); its record is under upgrade/",
                    pending.transition.package_root, pending.transition.from_tick
                );
            }
            Ok(())
        }
    }
}

/// Runs `rollback`.
pub fn rollback(args: RollbackArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let storage = disk();
    let Some(pending) = pending(&*storage, &target.dir).map_err(world_failure)? else {
        return Err(Failure::new(
            FAILURE,
            "no_pending_upgrade",
            "no upgrade is pending: nothing to roll back",
        ));
    };
    let restart = stop_if_running(&target, &args.world, args.json)?;
    let lock = target.lock()?;
    let preserved = preserve(&target)?;
    step(
        args.json,
        &format!(
            "2. preserved the failed world directory at {}",
            preserved.display()
        ),
    );
    let report = roll_back(&*storage, &target.dir, &pending).map_err(world_failure)?;
    step(
        args.json,
        &format!(
            "3. moved {} journal bytes and {} checkpoint files after tick {} to quarantine/",
            report.journal_bytes_moved,
            report.checkpoints_moved.len(),
            pending.head_tick
        ),
    );
    let (old_target, roots) = recover_pre_upgrade(&target, &pending, args.json)?;
    drop(lock);
    if let Some(command) = restart {
        start_again(command, &target.dir.package())?;
        step(
            args.json,
            "5. the node runs again with the pre-upgrade package (from the world's package/)",
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "world": target.id.as_str(),
                "tick": roots.tick,
                "state_root": roots.state_root.to_hex(),
                "continuity_root": roots.continuity_root.to_hex(),
                "package_root": old_target.package.root.to_hex(),
                "preserved": preserved.display().to_string(),
            })
        );
    } else {
        println!(
            "rolled back to tick {}; document the incident and its approval",
            roots.tick
        );
    }
    Ok(())
}

/// Step 4 of `rollback`: recovers the rolled-back world with the
/// pre-upgrade package (restored into `package/`), requires its head to be
/// the last accepted pre-upgrade root, then verifies and replay-verifies it.
fn recover_pre_upgrade(
    target: &Target,
    pending: &PendingUpgrade,
    json: bool,
) -> Result<(Target, everarcade_protocol::TickRoots), Failure> {
    let previous = Package::load(&target.dir.package())
        .map_err(|e| Failure::new(PACKAGE, e.code(), format!("the pre-upgrade package: {e}")))?;
    let old_target = Target {
        id: target.id.clone(),
        dir: target.dir.clone(),
        package: previous,
    };
    let door = old_target.door()?;
    let (engine, compiled) = (door.engine.clone(), door.compiled.clone());
    // `rollback` holds the lock from step 1 to the end.
    let entry = Entry {
        lock: Lock::AlreadyHeld,
        ..Entry::existing(DurabilityArgs::defaults().config())
    };
    let opened = open(&door, entry)?;
    let ticks_replayed = opened.arrival.recovery().map_or(0, |r| r.ticks_replayed);
    let roots = opened.world.roots();
    opened.world.close().map_err(world_failure)?;
    if !matches_head(pending, &roots) {
        return Err(Failure::new(
            crate::exit::INTEGRITY,
            "rollback_roots_differ",
            format!(
                "after rollback the head is tick {} C(t) {}, not the pre-upgrade tick {} C(t) {}",
                roots.tick, roots.continuity_root, pending.head_tick, pending.head_roots[3]
            ),
        ));
    }
    step(
        json,
        &format!(
            "4. recovered {} ticks with the pre-upgrade package {}: tick {} C(t) {} equals the last accepted pre-upgrade root",
            ticks_replayed, old_target.package.root, roots.tick, roots.continuity_root
        ),
    );
    verify_after(&old_target, &engine, &compiled, json)?;
    Ok((old_target, roots))
}

/// Copies the whole world directory to `<root>/quarantine/<world>-rollback-<n>/`.
fn preserve(target: &Target) -> Result<PathBuf, Failure> {
    let quarantine = target.dir.runtime_root().join("quarantine");
    let destination =
        everarcade_ops::restore::free_name(&quarantine, &format!("{}-rollback", target.id));
    copy_tree(target.dir.path(), &destination).map_err(|e| {
        Failure::new(
            FAILURE,
            "io",
            format!("preserving {}: {e}", target.dir.path().display()),
        )
    })?;
    Ok(destination)
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() && entry.file_name() != "world.lock" {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
