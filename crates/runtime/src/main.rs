//! `everarcade-runtime <command> <runtime-root> <world-id> <package-path> [options]`.
//!
//! Only this binary knows clap and anyhow. It parses arguments, validates them
//! into typed values, runs one command and maps the outcome to an exit code
//! (see [`exit`]).

mod exit;
mod simulate;

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

#[derive(Subcommand)]
enum Command {
    /// Drive a world without a network: bots and/or scripted inputs, then print its roots.
    Simulate(simulate::SimulateArgs),
    /// Not built yet: the node arrives with the world-node work.
    Start(NotBuilt),
    /// Not built yet: the node arrives with the world-node work.
    Stop(NotBuilt),
    /// Not built yet: the node arrives with the world-node work.
    Restart(NotBuilt),
    /// Not built yet: the node arrives with the world-node work.
    Run(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    Status(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    Verify(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    Checkpoint(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    ReplayVerify(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    ReplayReport(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    ReplayRoot(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    Recover(NotBuilt),
    /// Not built yet: needs the journal (durable-worlds work).
    Doctor(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Backup(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Restore(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Upgrade(NotBuilt),
    /// Not built yet: arrives with the operations work.
    Rollback(NotBuilt),
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
    }
}
