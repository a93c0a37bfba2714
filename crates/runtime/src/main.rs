//! `everarcade-runtime <command> <runtime-root> <world-id> <package-path> [options]`.
//!
//! Only this binary knows clap. It parses arguments, validates them into
//! typed values, runs one command and maps the outcome to an exit code (see
//! [`exit`]): every failure is an [`exit::Failure`], not an `anyhow` error.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod bundle_cmd;
mod checkpoint;
mod client_cmd;
mod config_cmd;
mod doctor;
mod exit;
mod federation_cmd;
mod inputs;
mod manager_cmd;
mod new_cmd;
mod node_cmd;
mod ops_cmd;
mod package_cmd;
mod probe;
mod progress;
mod recover;
mod release_cmd;
mod replay_cmd;
mod simulate;
mod status;
mod target;
mod upgrade_cmd;
mod usage_cmd;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Hosts deterministic game worlds.
#[derive(Parser)]
#[command(name = "everarcade-runtime", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Certificates (PEM) to trust for a node that serves TLS [default: the
    /// certificate the node recorded in status.json].
    #[arg(long, global = true, value_name = "PEM")]
    ca: Option<PathBuf>,
}

/// The three positional arguments every world command takes.
#[derive(Args, Clone)]
struct WorldArgs {
    /// The runtime root (e.g. runtime/operator-node).
    runtime_root: PathBuf,
    /// The world id, [a-z0-9][a-z0-9-]{0,62}.
    world_id: String,
    /// The world package directory (world.toml + world.wasm); `-` or
    /// nothing: the package the world runs now, from its own bound copy.
    package_path: Option<PathBuf>,
}

impl WorldArgs {
    /// The package directory given, unless it is `-` or missing.
    fn package_given(&self) -> Option<&std::path::Path> {
        self.package_path
            .as_deref()
            .filter(|path| path.as_os_str() != "-")
    }
}

/// The world arguments plus `--json`.
#[derive(Args)]
struct JsonWorldArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a world without a network: bots and/or scripted inputs, then print its roots.
    Simulate(simulate::SimulateArgs),
    /// Start the node in the background; returns once /readyz is green.
    Start(node_cmd::StartArgs),
    /// Stop the node gracefully: close admission, finish the tick, checkpoint, release the lock.
    Stop(node_cmd::StopArgs),
    /// Stop, then start.
    Restart(node_cmd::StartArgs),
    /// Run the node in the foreground (systemd, containers).
    Run(node_cmd::RunArgs),
    /// The live node's status; without a node, the disk's view and exit 5 (not running).
    Status(JsonWorldArgs),
    /// Check every checksum, chain link, signature, checkpoint and the package binding.
    Verify(JsonWorldArgs),
    /// Take a checkpoint now (through the running node, or offline).
    Checkpoint(checkpoint::CheckpointArgs),
    /// Re-execute the journal and compare every tick's roots with the record.
    ReplayVerify(replay_cmd::ReplayArgs),
    /// Replay and report range, inputs, outcomes, fuel, time, checkpoint roots, divergences.
    ReplayReport(replay_cmd::ReplayArgs),
    /// The roots recomputed by replay, at the head or at --tick N.
    ReplayRoot(replay_cmd::ReplayRootArgs),
    /// Repair (torn tail, checkpoint fallback, quarantine) and prove the roots match the lineage.
    Recover(recover::RecoverArgs),
    /// Check the world's files, lock, status, package, journal and checkpoints.
    Doctor(JsonWorldArgs),
    /// Write a self-contained, signed, checksummed backup (offline, or hot through the node).
    Backup(ops_cmd::BackupArgs),
    /// Restore a backup into the runtime root (quarantining what is there), then verify.
    Restore(ops_cmd::RestoreArgs),
    /// Upgrade the world's package under the semver rule: checkpoint and back up first, keep rollback artifacts.
    Upgrade(upgrade_cmd::UpgradeArgs),
    /// Return to the pre-upgrade package and checkpoint.
    Rollback(upgrade_cmd::RollbackArgs),
    /// Operator keys: `keys rotate`, `keys list`.
    Keys(ops_cmd::KeysArgs),
    /// Write a proof bundle for ticks T1..T2 that another machine can replay.
    ExportBundle(bundle_cmd::ExportArgs),
    /// Replay a proof bundle and confirm every root (no runtime root needed).
    VerifyBundle(bundle_cmd::VerifyArgs),
    /// A proof for a player: a receipt at tick t, or a state value now, against the head.
    Prove(bundle_cmd::ProveArgs),
    /// Check a player proof against a head.
    VerifyProof(bundle_cmd::VerifyProofArgs),
    /// Rebuild a world from a backup plus later bundles or journals.
    ArchiveRecover(bundle_cmd::ArchiveArgs),
    /// Check a release's checksums and manifest; record the deployment manifest in the root.
    VerifyRelease(release_cmd::VerifyReleaseArgs),
    /// The runtime manager in the foreground: many worlds, a lifecycle API, health, reconcile.
    Manager(manager_cmd::ManagerArgs),
    /// Operate the worlds of a running manager: list, start, stop, restart, patch, cleanup, events, ops.
    Fleet(manager_cmd::FleetArgs),
    /// Sign and send inputs to a running node.
    Submit(client_cmd::SubmitArgs),
    /// Drive a running node with the package's bots over HTTP (bounded).
    Load(client_cmd::LoadArgs),
    /// `config validate <file>` or `config print`.
    Config(config_cmd::ConfigArgs),
    // The game developer's on-ramp.
    /// Write a ready world package in C (SDK header, sample world, build.sh, measured world.toml).
    New(new_cmd::NewArgs),
    /// `package check <pkg>`: validate, compile, play a bot match in memory, measure against the limits.
    Package(package_cmd::PackageArgs),
    /// Signed usage reports: `usage report` builds one from the journal, `usage verify` checks one.
    Usage(usage_cmd::UsageArgs),
    /// Federation recovery: `federation status|compare|import|promote|leave|rejoin` (docs/FEDERATION.md).
    Federation(federation_cmd::FederationArgs),
}

fn main() -> ExitCode {
    // Every command that prints JSON takes `--json`; its failures are JSON
    // on stdout too (the same exit status).
    let json = std::env::args_os().any(|argument| argument == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            let _ = error.print();
            if json {
                let message = error.kind().as_str().unwrap_or("invalid command line");
                let object = serde_json::json!({
                    "error": {"code": "usage", "message": message, "exit": exit::USAGE},
                });
                println!("{object}");
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(ca) = cli.ca {
        probe::set_ca(ca);
    }
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Status(args) => status::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Checkpoint(args) => checkpoint::run(args),
        Command::ReplayVerify(args) => replay_cmd::verify(args),
        Command::ReplayReport(args) => replay_cmd::report(args),
        Command::ReplayRoot(args) => replay_cmd::root(args),
        Command::Recover(args) => recover::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Start(args) => node_cmd::start(args),
        Command::Stop(args) => node_cmd::stop(args),
        Command::Restart(args) => node_cmd::restart(args),
        Command::Run(args) => node_cmd::run(args),
        Command::Manager(args) => manager_cmd::run(args),
        Command::Fleet(args) => manager_cmd::fleet(args),
        Command::Submit(args) => client_cmd::submit(args),
        Command::Load(args) => client_cmd::load(args),
        Command::Config(args) => config_cmd::run(args),
        Command::Backup(args) => ops_cmd::backup(args),
        Command::Restore(args) => ops_cmd::restore(args),
        Command::Keys(args) => ops_cmd::keys(args),
        Command::Upgrade(args) => upgrade_cmd::upgrade(args),
        Command::Rollback(args) => upgrade_cmd::rollback(args),
        Command::ExportBundle(args) => bundle_cmd::export(args),
        Command::VerifyBundle(args) => bundle_cmd::verify(args),
        Command::Prove(args) => bundle_cmd::prove(args),
        Command::VerifyProof(args) => bundle_cmd::verify_proof(args),
        Command::ArchiveRecover(args) => bundle_cmd::archive_recover(args),
        Command::VerifyRelease(args) => release_cmd::verify_release(args),
        // The game developer's on-ramp.
        Command::New(args) => new_cmd::run(args),
        Command::Package(args) => package_cmd::run(args),
        Command::Usage(args) => usage_cmd::run(args),
        Command::Federation(args) => federation_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(json),
    }
}
