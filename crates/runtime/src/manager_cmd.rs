//! `manager <runtime-root>` (the runtime manager in the foreground) and
//! `fleet …` (the operator CLI that calls its API): parse, call
//! `everarcade-manager`, print.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use everarcade_manager::ManagerConfig;
use everarcade_manager::client::{ClientError, ManagerClient};
use everarcade_manager::config::ConfigError;
use everarcade_node::server::shutdown_signal;
use serde_json::{Value, json};

use crate::exit::{FAILURE, Failure, USAGE};

/// The configuration file variable of the manager.
const CONFIG_ENV: &str = "EVERARCADE_MANAGER_CONFIG";

/// `manager` arguments.
#[derive(clap::Args)]
pub struct ManagerArgs {
    /// The runtime root whose worlds the manager runs (e.g. runtime/operator-node).
    runtime_root: PathBuf,
    #[command(flatten)]
    flags: ManagerFlags,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    /// With --print-config: JSON instead of TOML.
    #[arg(long)]
    json: bool,
}

/// Manager flags: each overrides the environment (`EVERARCADE_MANAGER_*`)
/// and the file's `[manager]` table.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ManagerFlags {
    /// A TOML file with a [manager] table (also EVERARCADE_MANAGER_CONFIG).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The internal HTTP listener (manager.http_addr; default 127.0.0.1:8096).
    #[arg(long, value_name = "HOST:PORT")]
    http_addr: Option<String>,
    /// postgres://… (manager.database_url; default SQLite at <root>/manager.db).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// redis://host:port: job streams, events and leases in Redis (manager.redis_url).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// The everarcade-runtime binary worlds run under (manager.node_binary; default this one).
    #[arg(long, value_name = "PATH")]
    node_binary: Option<PathBuf>,
    /// Log line format: text or json.
    #[arg(long, value_name = "text|json", default_value = "text")]
    log_format: String,
    /// Any setting by name, e.g. `--set probe_interval_ms=500` (repeatable).
    #[arg(long = "set", value_name = "SETTING=VALUE")]
    set: Vec<String>,
}

fn config_failure(error: ConfigError) -> Failure {
    Failure::new(USAGE, "invalid_config", error.to_string())
}

/// The effective manager configuration: flags > environment > file > defaults.
pub fn effective(flags: &ManagerFlags) -> Result<ManagerConfig, Failure> {
    effective_with(flags, std::env::vars_os().collect())
}

fn effective_with(
    flags: &ManagerFlags,
    vars: Vec<(OsString, OsString)>,
) -> Result<ManagerConfig, Failure> {
    let mut config = ManagerConfig::default();
    let file = flags.config.clone().or_else(|| {
        vars.iter()
            .find(|(name, value)| name == CONFIG_ENV && !value.is_empty())
            .map(|(_, value)| PathBuf::from(value))
    });
    if let Some(file) = &file {
        config.merge_file(file).map_err(config_failure)?;
    }
    let vars: Vec<_> = vars
        .into_iter()
        .filter(|(name, _)| name != CONFIG_ENV)
        .collect();
    config.merge_env(&vars).map_err(config_failure)?;
    for assignment in &flags.set {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(Failure::new(
                USAGE,
                "invalid_config",
                format!("--set {assignment:?}: expected SETTING=VALUE"),
            ));
        };
        config
            .set(name.trim(), value, "--set")
            .map_err(config_failure)?;
    }
    let named = [
        ("http_addr", flags.http_addr.clone(), "--http-addr"),
        ("database_url", flags.database_url.clone(), "--database-url"),
        ("redis_url", flags.redis_url.clone(), "--redis-url"),
        (
            "node_binary",
            flags.node_binary.as_ref().map(|p| p.display().to_string()),
            "--node-binary",
        ),
    ];
    for (name, value, flag) in named {
        if let Some(value) = value {
            config.set(name, &value, flag).map_err(config_failure)?;
        }
    }
    config.validate().map_err(config_failure)?;
    Ok(config)
}

/// The configuration as TOML (a `[manager]` table), secrets redacted.
pub fn render_toml(config: &ManagerConfig) -> String {
    let mut out = String::from(
        "# The effective manager configuration: flags > EVERARCADE_MANAGER_* environment > file > defaults.\n\
         # Secrets are redacted.\n",
    );
    let table = toml::Table::try_from(config.redacted()).unwrap_or_default();
    let mut wrapper = toml::Table::new();
    wrapper.insert("manager".into(), toml::Value::Table(table));
    out.push_str(&toml::to_string(&wrapper).unwrap_or_default());
    out
}

/// Validates a manager file (`config validate` on a file with a `[manager]` table).
pub fn validate_file(file: &std::path::Path) -> Result<ManagerConfig, Failure> {
    let mut config = ManagerConfig::default();
    config.merge_file(file).map_err(config_failure)?;
    config.validate().map_err(config_failure)?;
    Ok(config)
}

fn init_logs(format: &str) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EVERARCADE_LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        "json" => builder.json().try_init(),
        "text" => builder.try_init(),
        other => {
            return Err(Failure::new(
                USAGE,
                "invalid_config",
                format!("--log-format {other:?}: text or json"),
            ));
        }
    };
    Ok(())
}

/// Runs `manager`: foreground until SIGINT or SIGTERM.
pub fn run(args: ManagerArgs) -> Result<(), Failure> {
    let config = effective(&args.flags)?;
    if args.print_config {
        match args.json {
            true => println!(
                "{}",
                serde_json::to_string_pretty(&config.redacted()).unwrap_or_default()
            ),
            false => print!("{}", render_toml(&config)),
        }
        return Ok(());
    }
    init_logs(&args.flags.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(FAILURE, "runtime", e.to_string()))?;
    runtime.block_on(async {
        let signal = shutdown_signal().map_err(|e| {
            Failure::new(
                FAILURE,
                "signals",
                format!("installing SIGINT/SIGTERM handlers: {e}"),
            )
        })?;
        everarcade_manager::run(args.runtime_root, config, signal)
            .await
            .map_err(|error| {
                tracing::error!(code = error.code(), "{error}");
                Failure::new(FAILURE, error.code(), error.to_string())
            })
    })
}

/// `fleet` arguments.
#[derive(clap::Args)]
pub struct FleetArgs {
    /// The manager's URL [default: EVERARCADE_MANAGER_URL, else http://127.0.0.1:8096].
    #[arg(long, value_name = "URL")]
    manager: Option<String>,
    /// The bearer token's file [default: EVERARCADE_ADMIN_TOKEN, else <--runtime-root>/admin.token].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The runtime root whose admin.token to send.
    #[arg(long, value_name = "DIR")]
    runtime_root: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(clap::Subcommand)]
enum FleetCommand {
    /// Every world the manager records, with status, pid and endpoint.
    List,
    /// Start a world (created at genesis or recovered).
    Start {
        /// The world id.
        world: String,
        /// The package directory (required for a new world).
        #[arg(long)]
        package: Option<PathBuf>,
        /// never or on-failure.
        #[arg(long)]
        restart_policy: Option<String>,
    },
    /// Stop a world gracefully (checkpointed).
    Stop {
        /// The world id.
        world: String,
        /// Why, for the operation log.
        #[arg(long, default_value = "admin_request")]
        reason: String,
    },
    /// Stop (if running), then start with the bound package.
    Restart {
        /// The world id.
        world: String,
    },
    /// Patch a world's package (semver patch only).
    Patch {
        /// The world id.
        world: String,
        /// The new package directory.
        #[arg(long)]
        package: PathBuf,
    },
    /// Mark a stopped world removed (its journal and checkpoints stay).
    Cleanup {
        /// The world id.
        world: String,
    },
    /// Health events, oldest first.
    Events {
        /// Only this world's.
        #[arg(long)]
        world: Option<String>,
        /// Only events after this id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// A world's operation log, newest first.
    Ops {
        /// The world id.
        world: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

fn token(args: &FleetArgs) -> Result<Option<String>, Failure> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|text| Some(text.trim().to_string()))
            .map_err(|e| Failure::new(USAGE, "admin_token", format!("{}: {e}", path.display())))
    };
    if let Some(path) = &args.token_file {
        return read(path);
    }
    if let Ok(token) = std::env::var("EVERARCADE_ADMIN_TOKEN") {
        return Ok(Some(token));
    }
    match &args.runtime_root {
        Some(root) => read(&root.join("admin.token")),
        None => Ok(None),
    }
}

fn client_failure(error: ClientError) -> Failure {
    let exit = match &error {
        ClientError::Url(_) => USAGE,
        _ => FAILURE,
    };
    Failure::new(exit, &error.code(), error.to_string())
}

/// Runs `fleet …`.
pub fn fleet(args: FleetArgs) -> Result<(), Failure> {
    let url = args
        .manager
        .clone()
        .or_else(|| std::env::var("EVERARCADE_MANAGER_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8096".into());
    let client = ManagerClient::new(&url, token(&args)?)
        .map_err(client_failure)?
        .as_cli()
        .with_timeout(Duration::from_secs(300));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(FAILURE, "runtime", e.to_string()))?;
    let base = "/api/v1/internal/runtimes";
    let answer = runtime.block_on(async {
        match &args.command {
            FleetCommand::List => client.get(base).await,
            FleetCommand::Start {
                world,
                package,
                restart_policy,
            } => {
                let mut body = json!({});
                if let Some(package) = package {
                    let absolute = std::path::absolute(package).unwrap_or(package.clone());
                    body["package"] = json!(absolute);
                }
                if let Some(policy) = restart_policy {
                    body["restart_policy"] = json!(policy);
                }
                client.post(&format!("{base}/{world}/start"), &body).await
            }
            FleetCommand::Stop { world, reason } => {
                client
                    .post(&format!("{base}/{world}/stop"), &json!({"reason": reason}))
                    .await
            }
            FleetCommand::Restart { world } => {
                client
                    .post(&format!("{base}/{world}/restart"), &json!({}))
                    .await
            }
            FleetCommand::Patch { world, package } => {
                let absolute = std::path::absolute(package).unwrap_or(package.clone());
                client
                    .post(
                        &format!("{base}/{world}/patch"),
                        &json!({"package": absolute}),
                    )
                    .await
            }
            FleetCommand::Cleanup { world } => {
                client.delete(&format!("{base}/{world}/container")).await
            }
            FleetCommand::Events {
                world,
                after,
                limit,
            } => {
                let mut path =
                    format!("/api/v1/internal/health_events?after={after}&limit={limit}");
                if let Some(world) = world {
                    path.push_str(&format!("&world={world}"));
                }
                client.get(&path).await
            }
            FleetCommand::Ops { world, limit } => {
                client
                    .get(&format!("{base}/{world}/operations?limit={limit}"))
                    .await
            }
        }
    });
    let answer = answer.map_err(client_failure)?;
    if args.json {
        println!("{answer}");
        return Ok(());
    }
    print_table(&args.command, &answer);
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn record_rows(records: &[Value]) -> String {
    let rows = records
        .iter()
        .map(|r| {
            vec![
                text(&r["world"]),
                text(&r["status"]),
                text(&r["pid"]),
                text(&r["engine_endpoint"]),
                text(&r["package_version"]),
                text(&r["restart_policy"]),
                text(&r["updated_at"]),
            ]
        })
        .collect();
    table(
        &[
            "WORLD", "STATUS", "PID", "ENDPOINT", "VERSION", "RESTART", "UPDATED",
        ],
        rows,
    )
}

fn print_table(command: &FleetCommand, answer: &Value) {
    match command {
        FleetCommand::List => {
            let records = answer["runtimes"].as_array().cloned().unwrap_or_default();
            println!("{}", record_rows(&records));
        }
        FleetCommand::Events { .. } => {
            let rows = answer["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    vec![
                        text(&e["id"]),
                        text(&e["created_at"]),
                        text(&e["world"]),
                        text(&e["event_type"]),
                        text(&e["details"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["ID", "AT", "WORLD", "EVENT", "DETAILS"], rows)
            );
        }
        FleetCommand::Ops { .. } => {
            let rows = answer["operations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|o| {
                    vec![
                        text(&o["id"]),
                        text(&o["started_at"]),
                        text(&o["op_kind"]),
                        text(&o["op_source"]),
                        text(&o["outcome"]),
                        text(&o["error_code"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["ID", "STARTED", "KIND", "SOURCE", "OUTCOME", "ERROR"],
                    rows
                )
            );
        }
        _ => {
            println!("{}", record_rows(std::slice::from_ref(answer)));
            if let Some(operation) = answer.get("operation").filter(|o| !o.is_null()) {
                println!(
                    "operation {} {} {}",
                    text(&operation["id"]),
                    text(&operation["op_kind"]),
                    text(&operation["outcome"])
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_environment_over_file() {
        let dir = std::env::temp_dir().join(format!("ea-manager-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("manager.toml");
        std::fs::write(
            &file,
            "[manager]\nhttp_addr = \"127.0.0.1:9001\"\nprobe_interval_ms = 100\n",
        )
        .unwrap();
        let flags = ManagerFlags {
            config: Some(file.clone()),
            http_addr: Some("127.0.0.1:9003".into()),
            ..ManagerFlags::default()
        };
        let vars = vec![
            (
                OsString::from("EVERARCADE_MANAGER_HTTP_ADDR"),
                OsString::from("127.0.0.1:9002"),
            ),
            (
                OsString::from("EVERARCADE_MANAGER_PROBE_INTERVAL_MS"),
                OsString::from("200"),
            ),
        ];
        let config = effective_with(&flags, vars.clone()).unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:9003");
        assert_eq!(config.probe_interval_ms, 200);
        let config = effective_with(
            &ManagerFlags {
                config: Some(file),
                ..ManagerFlags::default()
            },
            vars,
        )
        .unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:9002");
        let bad = vec![(
            OsString::from("EVERARCADE_MANAGER_HTTP_ADR"),
            OsString::from("x"),
        )];
        let failure = effective_with(&ManagerFlags::default(), bad).unwrap_err();
        assert_eq!(failure.code, "invalid_config");
        let toml = render_toml(&effective_with(&ManagerFlags::default(), vec![]).unwrap());
        assert!(toml.contains("[manager]"), "{toml}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
