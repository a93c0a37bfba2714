//! `everarcade-runtime <command> <runtime-root> <world-id> <package-path> [options]`.
//!
//! Only this binary knows clap and anyhow. It parses arguments, validates them
//! into typed values, runs one command and maps the outcome to an exit code
//! (see [`exit`]).

mod checkpoint;
mod client_cmd;
mod config_cmd;
mod doctor;
mod exit;
mod node_cmd;
mod probe;
mod recover;
mod replay_cmd;
mod simulate;
mod status;
mod target;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::exit::Failure;

/// Hosts deterministic game worlds.
#[derive(Parser)]
#[command(name = "everarcade-runtime", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The three positional arguments every world command takes.
#[derive(Args, Clone)]
struct WorldArgs {
    /// The runtime root (e.g. runtime/operator-node).
    runtime_root: PathBuf,
    /// The world id, [a-z0-9][a-z0-9-]{0,62}.
    world_id: String,
    /// The world package directory (world.toml + world.wasm).
    package_path: PathBuf,
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
    /// Not built yet: arrives with the operations work.
    Backup(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Restore(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Upgrade(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Rollback(NotBuilt),
    /// Sign and send inputs to a running node.
    Submit(client_cmd::SubmitArgs),
    /// Drive a running node with the package's bots over HTTP (bounded).
    Load(client_cmd::LoadArgs),
    /// `config validate <file>` or `config print`.
    Config(config_cmd::ConfigArgs),
}

/// Arguments of a command that is not built yet; accepted so the message is clear.
#[derive(Args)]
struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Submit(args) => client_cmd::submit(args),
        Command::Load(args) => client_cmd::load(args),
        Command::Config(args) => config_cmd::run(args),
        other => Err(Failure::not_built(command_name(&other))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Simulate(_) => "simulate",
        Command::Start(_) => "start",
        Command::Stop(_) => "stop",
        Command::Restart(_) => "restart",
        Command::Run(_) => "run",
        Command::Status(_) => "status",
        Command::Verify(_) => "verify",
        Command::Checkpoint(_) => "checkpoint",
        Command::ReplayVerify(_) => "replay-verify",
        Command::ReplayReport(_) => "replay-report",
        Command::ReplayRoot(_) => "replay-root",
        Command::Recover(_) => "recover",
        Command::Doctor(_) => "doctor",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::Upgrade(_) => "upgrade",
        Command::Rollback(_) => "rollback",
        Command::Submit(_) => "submit",
        Command::Load(_) => "load",
        Command::Config(_) => "config",
    }
}
