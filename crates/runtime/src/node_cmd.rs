//! `run` (the node in the foreground), `start` (detached, returns once
//! `/readyz` is green), `stop` (graceful, waits and reports) and `restart`.

use std::path::PathBuf;
use std::time::Duration;

use everarcade_node::config::{LogFormat, NodeConfig};
use everarcade_node::launch::{self, LaunchError, LaunchSpec};
use everarcade_node::registry;
use everarcade_node::server::shutdown_signal;
use everarcade_node::{Node, NodeError, NodeSpec};
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, Storage};

use crate::WorldArgs;
use crate::config_cmd::{NodeFlags, effective};
use crate::exit::{FAILURE, Failure, NOT_RUNNING, USAGE};
use crate::probe;
use crate::target::{Target, WorldRef, package_mismatch, store_failure, world_failure};

/// `run` arguments.
#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    world: WorldArgs,
    #[command(flatten)]
    flags: NodeFlags,
}

/// `start` and `restart` arguments.
#[derive(clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    world: WorldArgs,
    #[command(flatten)]
    flags: NodeFlags,
    /// Seconds to wait for /readyz before giving up (the node is then stopped).
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `stop` arguments.
#[derive(clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Seconds to wait for the node to finish stopping.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The exit status and code of a node error.
fn node_failure(error: NodeError) -> Failure {
    let code = error.code();
    match error {
        NodeError::World(error) => world_failure(error),
        NodeError::Config(message) => Failure::new(USAGE, code, message),
        incident @ NodeError::Incident { .. } => {
            Failure::new(crate::exit::DIVERGENCE, code, incident.to_string())
        }
        other => Failure::new(FAILURE, code, other.to_string()),
    }
}

fn init_logs(config: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs `run`: the node in the foreground until SIGINT or SIGTERM.
///
/// With `--log-format json` every line it writes is one JSON object: the
/// stop line is an `info` event and a failure an `error` event with `code`,
/// `exit` and the failure as `message` (then `main` prints nothing more).
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let config = match effective(&args.flags) {
        Ok(config) => config,
        Err(failure) if json_requested(&args.flags) => {
            let mut fallback = NodeConfig::default();
            fallback.log.format = LogFormat::Json;
            init_logs(&fallback);
            return Err(log_failure(failure));
        }
        Err(failure) => return Err(failure),
    };
    init_logs(&config);
    let json = config.log.format == LogFormat::Json;
    let world = args.world.world_id.clone();
    match serve_until_stopped(args, config) {
        Ok(exit) => {
            let stop = &exit.stop;
            // Under amnesia the checkpoint was kept in memory and is gone.
            let checkpoint = (!exit.amnesia)
                .then(|| stop.checkpoint.as_ref().map(|c| c.path.clone()))
                .flatten();
            if json {
                tracing::info!(
                    world = %world,
                    tick = stop.tick,
                    checkpoint,
                    amnesia = exit.amnesia,
                    final_tick_inputs = stop.final_tick_inputs,
                    "stopped world"
                );
            } else {
                println!(
                    "stopped world {world} at tick {}{}; {} acknowledged inputs ran in the final tick",
                    stop.tick,
                    match checkpoint {
                        _ if exit.amnesia => {
                            "; amnesia: nothing was written, the world is gone".to_string()
                        }
                        Some(path) => format!(", checkpoint {path}"),
                        None => ", already checkpointed".to_string(),
                    },
                    stop.final_tick_inputs
                );
            }
            Ok(())
        }
        Err(failure) if json => Err(log_failure(failure)),
        Err(failure) => Err(failure),
    }
}

/// Whether the flags or the environment ask for JSON logs, for a failure
/// that happens before the configuration could be read.
fn json_requested(flags: &NodeFlags) -> bool {
    let from_env = || std::env::var("EVERARCADE_LOG_FORMAT").is_ok_and(|f| f == "json");
    match flags.log_format.as_deref() {
        Some(format) => format == "json",
        None => from_env(),
    }
}

/// Logs a failure as an `error` event and marks it reported.
fn log_failure(failure: Failure) -> Failure {
    tracing::error!(code = %failure.code, exit = failure.exit, "{}", failure.message);
    failure.logged()
}

/// Prepares and serves the node until a signal stops it.
fn serve_until_stopped(
    args: RunArgs,
    config: NodeConfig,
) -> Result<everarcade_node::server::NodeExit, Failure> {
    let target = Target::resolve(&args.world)?;
    let spec = NodeSpec {
        runtime_root: args.world.runtime_root.clone(),
        world: target.id.clone(),
        package: target.package,
        config,
    };
    let mut spec = spec;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(FAILURE, "runtime", e.to_string()))?;
    // A returning authority learns it is one from JetStream before its
    // world opens (docs/FEDERATION.md, "A returning authority").
    let quarantined = runtime
        .block_on(everarcade_node::jetstream::preflight(
            &mut spec.config,
            &spec.runtime_root,
            &spec.world,
        ))
        .map_err(|error| Failure::new(FAILURE, error.code(), error.to_string()))?;
    // It undid a package upgrade of its unreplicated suffix: the world runs
    // its earlier package again. Without a package given, that is the one
    // to open; a package given must be it (the binding check says so).
    if quarantined.is_some_and(|moved| !moved.transitions_undone.is_empty())
        && args.world.package_given().is_none()
    {
        spec.package = Target::resolve(&args.world)?.package;
    }
    let node = Node::prepare(spec).map_err(node_failure)?;
    let exit = runtime.block_on(async {
        let signal = shutdown_signal().map_err(|e| {
            Failure::new(
                FAILURE,
                "signals",
                format!("installing SIGINT/SIGTERM handlers: {e}"),
            )
        })?;
        node.serve(signal).await.map_err(node_failure)
    })?;
    if let Some(error) = &exit.stop.error {
        return Err(Failure::new(
            FAILURE,
            "stop_incomplete",
            format!("the node stopped at tick {} but: {error}", exit.stop.tick),
        ));
    }
    Ok(exit)
}

/// The arguments of this process's `start`/`restart`, turned into `run`'s.
fn run_arguments() -> Vec<String> {
    let mut out = vec!["run".to_string()];
    let mut skip_value = false;
    for argument in std::env::args().skip(2) {
        if skip_value {
            skip_value = false;
            continue;
        }
        if argument == "--json" || argument.starts_with("--ready-timeout-secs=") {
            continue;
        }
        if argument == "--ready-timeout-secs" {
            skip_value = true;
            continue;
        }
        out.push(argument);
    }
    out
}

/// The running node of the world, if any.
fn running(world: &WorldRef) -> Result<Option<probe::RunningNode>, Failure> {
    probe::running_node(world).map_err(store_failure)
}

/// Where a detached node's output goes: `node.log` in the world directory,
/// or under amnesia (which writes nothing under the root) beside its
/// registry entry.
fn log_path(target: &Target, config: &NodeConfig) -> Result<PathBuf, Failure> {
    if config.amnesia {
        registry::ensure_registry_dir().map_err(store_failure)?;
        return Ok(registry::paths(target.dir.runtime_root(), &target.id).log);
    }
    DiskStorage.create_dir_all(target.dir.path()).map_err(|e| {
        Failure::new(
            FAILURE,
            "io",
            format!("{}: {e}", target.dir.path().display()),
        )
    })?;
    Ok(target.dir.node_log())
}

/// A launch failure as the command line reports it.
fn launch_failure(error: LaunchError) -> Failure {
    match error {
        LaunchError::Store(error) => store_failure(error),
        other => Failure::new(FAILURE, other.code(), other.to_string()),
    }
}

/// Runs `start`.
pub fn start(args: StartArgs) -> Result<(), Failure> {
    let config = effective(&args.flags)?;
    let target = Target::resolve(&args.world)?;
    if let Some(node) = running(&target.world_ref())? {
        return Err(Failure::new(
            FAILURE,
            "already_running",
            format!("a node (pid {}) already runs world {}", node.pid, target.id),
        ));
    }
    let log_path = log_path(&target, &config)?;
    let binary = std::env::current_exe()
        .map_err(|e| Failure::new(FAILURE, "io", format!("finding this binary: {e}")))?;
    let spec = LaunchSpec {
        binary,
        args: run_arguments(),
        log: log_path.clone(),
    };
    let mut launched = launch::spawn_detached(&spec).map_err(|error| match error {
        LaunchError::Io { what, source } if what.starts_with("spawning") => {
            Failure::new(FAILURE, "start_failed", format!("{what}: {source}"))
        }
        other => launch_failure(other),
    })?;
    let pid = launched.pid;
    let world = target.world_ref();
    let ready = launch::wait_ready(
        &mut launched,
        target.dir.runtime_root(),
        &target.id,
        Duration::from_secs(args.ready_timeout_secs),
        |node| readiness(&world, node),
    )
    .map_err(launch_failure)?;
    let (url, elapsed) = (ready.url, ready.elapsed.as_millis());
    if args.json {
        let object = serde_json::json!({
            "world": target.id.as_str(), "pid": pid, "url": url,
            "amnesia": config.amnesia,
            "ready_ms": elapsed as u64, "log": log_path.display().to_string(),
        });
        println!("{object}");
    } else {
        println!(
            "started world {} as pid {pid} on {url}; ready in {elapsed} ms; log {}",
            target.id,
            log_path.display()
        );
    }
    Ok(())
}

/// The node's URL once `/readyz` answers 200 (over TLS when it serves TLS).
fn readiness(world: &WorldRef, node: &probe::RunningNode) -> Result<String, String> {
    let url = node.url().ok_or("the node has not recorded an address")?;
    probe::client(world, node, Duration::from_secs(2))
        .and_then(|client| client.readyz())
        .map(|()| url)
        .map_err(|error| error.to_string())
}

/// Refuses a package given on the command line that the world does not
/// run: checked against the binding, or, for an amnesia node (no world on
/// disk), against what the node says it runs.
fn check_given_package(
    args: &WorldArgs,
    world: &WorldRef,
    node: Option<&probe::RunningNode>,
) -> Result<(), Failure> {
    let Some(package) = world.given_package(args)? else {
        return Ok(());
    };
    if !world.exists()
        && let Some(node) = node
        && let Ok(status) =
            probe::client(world, node, Duration::from_secs(5)).and_then(|client| client.status())
        && status.package_root != package.root
    {
        return Err(package_mismatch(status.package_root, package.root));
    }
    Ok(())
}

/// Runs `stop`.
pub fn stop(args: StopArgs) -> Result<(), Failure> {
    let world = WorldRef::resolve(&args.world)?;
    let node = running(&world)?;
    check_given_package(&args.world, &world, node.as_ref())?;
    let Some(node) = node else {
        return Err(Failure::new(
            NOT_RUNNING,
            "not_running",
            format!("no node runs world {}; nothing to stop", world.id),
        ));
    };
    let stopped = launch::stop_node(
        world.dir.runtime_root(),
        &world.id,
        node,
        Duration::from_secs(args.timeout_secs),
    )
    .map_err(launch_failure)?;
    let (node, log) = (stopped.node, stopped.log);
    let pid = node.pid;
    let elapsed = stopped.elapsed.as_millis() as u64;
    if node.amnesia {
        if args.json {
            let object = serde_json::json!({
                "world": world.id.as_str(), "pid": pid, "state": "stopped",
                "amnesia": true, "stopped_ms": elapsed,
            });
            println!("{object}");
        } else {
            println!(
                "stopped amnesia node pid {pid} in {elapsed} ms; nothing was kept (log {})",
                log.display()
            );
        }
        return Ok(());
    }
    let status: StatusFile = read_json(&DiskStorage, &world.dir.status()).map_err(store_failure)?;
    if args.json {
        let object = serde_json::json!({
            "world": world.id.as_str(), "pid": pid, "state": status.state, "amnesia": false,
            "head_tick": status.head_tick, "checkpoint_tick": status.checkpoint_tick,
            "state_root": status.state_root, "continuity_root": status.continuity_root,
            "stopped_ms": elapsed,
        });
        println!("{object}");
    } else {
        println!(
            "stopped pid {pid} in {elapsed} ms: admission closed, last tick {} finished, checkpoint at tick {}, lock released",
            status.head_tick,
            status
                .checkpoint_tick
                .map_or("none".to_string(), |t| t.to_string())
        );
        println!("state root       {}", status.state_root);
        println!("continuity C(t)  {}", status.continuity_root);
    }
    if status.state != "stopped" {
        return Err(Failure::new(
            FAILURE,
            "stop_unclean",
            format!(
                "the node exited but status.json says {:?}; run `recover`, then `verify`",
                status.state
            ),
        ));
    }
    Ok(())
}

/// `stop` with the default timeout, for commands that stop a node first.
pub fn stop_world(world: &WorldArgs) -> Result<(), Failure> {
    stop(StopArgs {
        world: world.clone(),
        timeout_secs: 60,
        json: false,
    })
}

/// Runs `restart`: `stop` (if a node runs), then `start`.
pub fn restart(args: StartArgs) -> Result<(), Failure> {
    let stop_args = StopArgs {
        world: args.world.clone(),
        timeout_secs: 60,
        json: false,
    };
    match stop(stop_args) {
        Ok(()) => {}
        Err(failure) if failure.exit == NOT_RUNNING => {
            println!("no node was running; starting one");
        }
        Err(failure) => return Err(failure),
    }
    start(args)
}
