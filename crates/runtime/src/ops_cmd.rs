//! Operator keys (`keys rotate`, `keys list`), `backup` and `restore`,
//! through `everarcade-ops`. `backup` goes through the running node when
//! there is one (its hot backup, `POST /admin/backup`); `restore` and `keys
//! rotate` refuse to run while any process holds the world, naming its pid.

use std::path::{Path, PathBuf};
use std::time::Duration;

use everarcade_client::ClientError;
use everarcade_ops::operator::{KeyListing, list_keys, rotate_offline};
use everarcade_ops::{
    KeySource, OfflineBackup, OpsError, ReplayFrom, RestoreOptions, RestorePhase, RestoreRequest,
    VerifyOptions, backup_offline, restore_observed,
};
use everarcade_store::keys::parse_public_key;
use everarcade_world::ErrorClass;

use crate::JsonWorldArgs;
use crate::exit::{DIVERGENCE, FAILURE, Failure, INTEGRITY, PACKAGE, USAGE};
use crate::probe;
use crate::progress;
use crate::target::{Target, store_failure, world_failure};

/// `backup` arguments.
#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    /// The backup folder to create (it must not exist; outside the runtime
    /// root) [default: `<parent of the runtime root>/<root name>-backups/<world>-<tick>-<n>`].
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
}

/// `restore` arguments.
#[derive(clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    /// The backup folder (the one holding manifest.json).
    #[arg(long, value_name = "BACKUP")]
    from: PathBuf,
    /// An operator public key (hex) kept outside the backup: the backup's
    /// signer must be it or endorsed by it through the key history.
    #[arg(long, value_name = "HEX")]
    trusted_key: Option<String>,
    /// A file holding the backup's current operator key secret (64 hex
    /// digits, as `operator/key`), for a host that does not have it.
    #[arg(long, value_name = "FILE")]
    operator_key: Option<PathBuf>,
    /// Where replay verification of the restored world begins.
    #[arg(long, value_enum, default_value = "genesis")]
    replay_from: ReplayStart,
}

/// `--replay-from`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplayStart {
    /// Every tick of the journal.
    Genesis,
    /// Only the ticks after the backup's checkpoint.
    Checkpoint,
}

/// `keys` arguments.
#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand)]
enum KeysCommand {
    /// Retire the world's operator key at its height and start a new one
    /// endorsed by it (offline: stop the node first).
    Rotate(JsonWorldArgs),
    /// The world's operator keys with the tick range each one signed.
    List(JsonWorldArgs),
}

/// The exit status and code of an ops error.
pub fn ops_failure(error: OpsError) -> Failure {
    if let OpsError::World(error) = error {
        return world_failure(error);
    }
    let exit = match error.class() {
        ErrorClass::Operational => FAILURE,
        ErrorClass::Integrity => INTEGRITY,
        ErrorClass::Divergence => DIVERGENCE,
        ErrorClass::Package => PACKAGE,
    };
    Failure::new(exit, error.code(), error.to_string())
}

/// Refuses when a process holds the world: a node, or another command.
fn refuse_running(target: &Target, remedy: &str) -> Result<(), Failure> {
    let Some(node) = probe::running_node(&target.world_ref()).map_err(store_failure)? else {
        return Ok(());
    };
    let holder = match node.address {
        Some(address) => format!("a node (pid {}, listening on {address})", node.pid),
        None => format!("pid {}", node.pid),
    };
    Err(Failure::new(
        FAILURE,
        "node_running",
        format!("{holder} holds world {}; {remedy}", target.id),
    ))
}

/// Runs `backup`.
pub fn backup(args: BackupArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.common.world)?;
    target.require_bound()?;
    if let Some(node) = probe::running_node(&target.world_ref()).map_err(store_failure)?
        && node.address.is_some()
    {
        let out = args.backup_dir.as_deref();
        return hot_backup(&target, &node, out, args.common.json);
    }
    // Any other holder of the lock (a command, a node still starting).
    refuse_running(&target, "wait until it is done, then back up")?;
    let done = backup_offline(&OfflineBackup {
        door: &target.door()?,
        out: args.backup_dir,
    })
    .map_err(ops_failure)?;
    let report = &done.backup;
    let manifest = &report.manifest;
    let checkpoint = manifest.checkpoint.as_ref();
    if args.common.json {
        let object = serde_json::json!({
            "world": manifest.world,
            "path": report.path.display().to_string(),
            "manifest": report.manifest_path.display().to_string(),
            "manifest_blake3": report.manifest_blake3.to_hex(),
            "tick": manifest.head.tick,
            "head": manifest.head,
            "checkpoint": checkpoint,
            "checkpoint_taken": done.checkpoint_taken.is_some(),
            "note": done.checkpoint_note,
            "package_root": manifest.package_root,
            "runtime_version": manifest.runtime_version,
            "protocol_version": manifest.protocol_version,
            "host": manifest.host,
            "created_at": manifest.created_at,
            "operator_public_key": manifest.operator_public_key,
            "operator_key_created": done.key_created,
            "files": manifest.files.len(),
            "bytes": report.data_bytes,
            "seconds": report.seconds,
        });
        println!("{object}");
        return Ok(());
    }
    println!(
        "backup of world {} at tick {} written to {} ({} files, {:.1} MB in {:.2} s)",
        manifest.world,
        manifest.head.tick,
        report.path.display(),
        manifest.files.len(),
        report.data_bytes as f64 / 1e6,
        report.seconds
    );
    match checkpoint {
        Some(c) => println!(
            "checkpoint     {} (tick {}, BLAKE3 {}){}",
            c.file,
            c.tick,
            c.blake3,
            if done.checkpoint_taken.is_some() {
                ", taken now"
            } else {
                ""
            }
        ),
        None => println!("checkpoint     none: a restore replays from genesis"),
    }
    if let Some(note) = &done.checkpoint_note {
        println!("note: {note}");
    }
    println!(
        "head           tick {}, C(t) {}",
        manifest.head.tick, manifest.head.continuity_root
    );
    println!("package root   {}", manifest.package_root);
    println!(
        "runtime        {} (protocol {}), host {}, {}",
        manifest.runtime_version, manifest.protocol_version, manifest.host, manifest.created_at
    );
    println!(
        "operator key   {}{}",
        manifest.operator_public_key,
        if done.key_created {
            " (created now: the world had none)"
        } else {
            ""
        }
    );
    println!(
        "manifest       {} (BLAKE3 {})",
        report.manifest_path.display(),
        report.manifest_blake3
    );
    println!(
        "store a copy of the manifest (or its BLAKE3 and the operator key) off this host; check the folder with: cd {} && sha256sum -c SHA256SUMS",
        report.path.display()
    );
    Ok(())
}

/// How long a hot backup may take (the node copies the whole journal).
const HOT_BACKUP_TIMEOUT: Duration = Duration::from_secs(600);

/// A hot backup through the running node's admin API.
fn hot_backup(
    target: &Target,
    node: &probe::RunningNode,
    out: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let pid = node.pid;
    let client = probe::admin_client(&target.world_ref(), node, HOT_BACKUP_TIMEOUT)?;
    // The node resolves paths from its own directory: send an absolute one.
    let out = match out {
        Some(out) => Some(everarcade_ops::backup::absolute(out).map_err(ops_failure)?),
        None => None,
    };
    let taken = client.backup(out.as_deref()).map_err(|error| {
        let code = match &error {
            ClientError::Node { code, .. } => code.clone(),
            error if error.is_transport() => "node_unreachable".into(),
            _ => "node_reply".into(),
        };
        // The node answers 409 for what the operator can fix (the folder
        // exists, or lies inside the runtime root) and 500 with a backup_*
        // code when the world's files did not check out while being copied.
        let exit = if error.status() == Some(500) && code.starts_with("backup_") {
            INTEGRITY
        } else {
            FAILURE
        };
        Failure::new(
            exit,
            &code,
            format!("the running node (pid {pid}) refused the hot backup: {error}"),
        )
    })?;
    if json {
        let object = serde_json::to_value(&taken).expect("a backup answer serializes");
        println!("{object}");
        return Ok(());
    }
    println!(
        "hot backup of world {} at tick {} written by the running node (pid {pid}) to {} ({:.1} MB in {:.2} s)",
        target.id,
        taken.tick,
        taken.path,
        taken.data_bytes as f64 / 1e6,
        taken.seconds,
    );
    println!(
        "manifest       {} (BLAKE3 {})",
        taken.manifest, taken.manifest_blake3
    );
    println!(
        "store a copy of the manifest (or its BLAKE3 and the operator key) off this host; check the folder with: cd {} && sha256sum -c SHA256SUMS",
        taken.path
    );
    Ok(())
}

/// Runs `restore`.
pub fn restore(args: RestoreArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.common.world)?;
    refuse_running(&target, "stop the node before restoring")?;
    let trusted_key = match &args.trusted_key {
        None => None,
        Some(text) => Some(parse_public_key(text).map_err(|_| {
            Failure::new(
                USAGE,
                "invalid_key",
                format!("--trusted-key takes 64 hex digits, not {text:?}"),
            )
        })?),
    };
    let (engine, compiled) = target.compile()?;
    let request = RestoreRequest {
        runtime_root: target.dir.runtime_root(),
        id: &target.id,
        package: &target.package,
        engine: &engine,
        compiled: &compiled,
        backup: &args.from,
        options: RestoreOptions {
            verify: VerifyOptions {
                trusted_keys: trusted_key.into_iter().collect(),
            },
            replay_from: match args.replay_from {
                ReplayStart::Genesis => ReplayFrom::Genesis,
                ReplayStart::Checkpoint => ReplayFrom::Checkpoint,
            },
            operator_key_file: args.operator_key.clone(),
        },
    };
    let phases = RestorePhase::ALL;
    let bar = progress::phases(
        progress::visible(args.common.json),
        "restore",
        phases.len() as u64,
    );
    let result = restore_observed(&request, &mut |phase| {
        let number = phases.iter().position(|p| *p == phase).map_or(0, |i| i + 1);
        bar.set_position(number as u64);
        bar.set_message(phase.describe());
    });
    bar.finish_and_clear();
    let report = result.map_err(ops_failure)?;
    let roots = report.roots;
    let backup = &report.backup;
    let key_source = match &report.key_source {
        KeySource::Given(path) => format!("kept: its secret came from {}", path.display()),
        KeySource::Host(path) => format!("kept: its secret came from {}", path.display()),
        KeySource::New => format!(
            "new: no secret for {} was at hand (pass --operator-key FILE to keep it), so the restored world has a new operator identity from tick {}; the backup's key history is kept in operator/keys.before-restore.json",
            backup
                .history
                .keys
                .last()
                .map_or("", |entry| entry.public_key.as_str()),
            backup.manifest.head.tick
        ),
    };
    if args.common.json {
        let phases = report.phases;
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "restored": report.world_dir.display().to_string(),
            "from": backup.dir.display().to_string(),
            "manifest_blake3": backup.manifest_blake3.to_hex(),
            "signed_by": backup.manifest.operator_public_key,
            "anchored_by": backup.anchored_by,
            "unlisted_files": backup.unlisted,
            "quarantined": report.quarantined.as_ref().map(|p| p.display().to_string()),
            "recovered_from_checkpoint": report.recovered_from,
            "recovered_ticks": report.recovered_ticks,
            "audited_ticks": report.audited_ticks,
            "audited_envelopes": report.audited_envelopes,
            "replayed_from_checkpoint": report.replayed_from,
            "replayed_ticks": report.replayed_ticks,
            "head_tick": roots.tick,
            "state_root": roots.state_root.to_hex(),
            "input_root": roots.input_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "operator_public_key": report.operator_key,
            "operator_key": key_source,
            "bytes": backup.data_bytes,
            "seconds": {
                "verify": phases.verify,
                "copy": phases.copy,
                "open": phases.open,
                "audit": phases.audit,
                "replay": phases.replay,
                "total": phases.total,
            },
        });
        println!("{object}");
        return Ok(());
    }
    println!(
        "PASS  backup        {}: manifest (BLAKE3 {}), {} files ({:.1} MB) by size and BLAKE3, SHA256SUMS",
        backup.dir.display(),
        backup.manifest_blake3,
        backup.manifest.files.len(),
        backup.data_bytes as f64 / 1e6
    );
    let anchor = match &backup.anchored_by {
        Some(key) if *key == backup.manifest.operator_public_key => {
            ", a trusted key".to_string()
        }
        Some(key) => format!(", endorsed from the trusted key {key}"),
        None => " per the backup's own key history (pass --trusted-key to check it against a key kept elsewhere)".to_string(),
    };
    println!(
        "PASS  signature     operator key {}{anchor}",
        backup.manifest.operator_public_key
    );
    for file in &backup.unlisted {
        println!("WARN  unlisted      {file} is not in the manifest and was not restored");
    }
    println!(
        "PASS  recovery      from {}, {} ticks replayed, roots equal the manifest's",
        report
            .recovered_from
            .map_or("genesis".to_string(), |tick| format!("checkpoint {tick}")),
        report.recovered_ticks
    );
    println!(
        "PASS  verify        {} ticks, {} envelopes: checksums, chain, signatures, roots, checkpoint",
        report.audited_ticks, report.audited_envelopes
    );
    println!(
        "PASS  replay-verify from {}, {} ticks re-executed, every root equal",
        report
            .replayed_from
            .map_or("genesis".to_string(), |tick| format!("checkpoint {tick}")),
        report.replayed_ticks
    );
    match &report.quarantined {
        Some(path) => println!("previous world moved to {}", path.display()),
        None => println!("there was no previous world"),
    }
    println!("operator key   {} ({key_source})", report.operator_key);
    println!(
        "restored world {} to tick {} at {}",
        target.id,
        roots.tick,
        report.world_dir.display()
    );
    println!("state root       {}", roots.state_root);
    println!("input root       {}", roots.input_root);
    println!("receipt root     {}", roots.receipt_root);
    println!("continuity C(t)  {}", roots.continuity_root);
    println!("run `doctor`, then start the node once these roots are the expected ones");
    Ok(())
}

/// Runs `keys`.
pub fn keys(args: KeysArgs) -> Result<(), Failure> {
    match args.command {
        KeysCommand::Rotate(args) => rotate(args),
        KeysCommand::List(args) => list(args),
    }
}

fn rotate(args: JsonWorldArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    refuse_running(&target, "stop the node first: `keys rotate` works offline")?;
    let rotation = rotate_offline(&target.door()?).map_err(ops_failure)?;
    if args.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "head_tick": rotation.height,
            "retired": rotation.retired,
            "current": rotation.current,
            "keys": rotation.history.keys,
        });
        println!("{object}");
        return Ok(());
    }
    match &rotation.retired {
        Some(retired) => println!(
            "operator key rotated at tick {}: {retired} retired (it signed up to tick {}), {} current from tick {}, endorsed by the retired key",
            rotation.height,
            rotation.height,
            rotation.current.public_key,
            rotation.current.from_tick
        ),
        None => println!(
            "world {} had no operator key; created {} at tick {} (nothing to rotate)",
            target.id, rotation.current.public_key, rotation.height
        ),
    }
    println!(
        "the retired secret stays in {}",
        target.dir.operator().join("retired").display()
    );
    Ok(())
}

fn list(args: JsonWorldArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let listed = list_keys(&target.dir).map_err(ops_failure)?;
    let Some(KeyListing { history, check }) = listed else {
        if args.json {
            let object = serde_json::json!({"world": target.id.as_str(), "keys": [], "history_verified": true});
            println!("{object}");
        } else {
            println!(
                "world {} has no operator key yet (the node's first start or the first backup creates it)",
                target.id
            );
        }
        return Ok(());
    };
    let count = history.keys.len();
    let mut details = None;
    if args.json {
        let keys: Vec<serde_json::Value> = history
            .keys
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::json!({
                    "public_key": entry.public_key,
                    "from_tick": entry.from_tick,
                    "to_tick": entry.to_tick,
                    "current": index + 1 == count,
                    "endorsed_by_previous": entry.endorsed_by_previous.is_some(),
                })
            })
            .collect();
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "keys": keys,
            "history_verified": check.is_ok(),
        });
        match &check {
            Ok(_) => println!("{object}"),
            // The failure below prints the error envelope with these fields.
            Err(_) => details = Some(object),
        }
    } else {
        for (index, entry) in history.keys.iter().enumerate() {
            let range = match entry.to_tick {
                Some(to) => format!("ticks {}..={to}", entry.from_tick),
                None => format!("ticks {}.. (current)", entry.from_tick),
            };
            let endorsement = match (index, &entry.endorsed_by_previous) {
                (0, _) => "first key",
                (_, Some(_)) => "endorsed by the previous key",
                (_, None) => "NOT endorsed by the previous key",
            };
            println!("{index:>3}  {}  {range}  {endorsement}", entry.public_key);
        }
        match &check {
            Ok(_) => {
                println!("history verified: every endorsement checks out, ranges follow each other")
            }
            Err(error) => println!("FAIL  history: {error} [{}]", error.code()),
        }
    }
    check.map(|_| ()).map_err(|error| {
        let failure = Failure::new(
            INTEGRITY,
            error.code(),
            format!(
                "the operator key history of {} does not verify: {error}",
                target.id
            ),
        );
        match details {
            Some(details) => failure.with_details(details),
            None => failure,
        }
    })
}
