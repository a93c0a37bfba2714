//! `config validate <file>`, `config print`, and the layering of a node's
//! configuration: flags > `EVERARCADE_*` environment > TOML file > defaults.
//!
//! The settings, their environment names and bounds live in one table,
//! `everarcade_node::config::FIELDS`; this module only maps flags onto it
//! and reads the process environment.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use everarcade_node::config::{
    CONFIG_FILE_ENV, FIELDS, LayerError, Layered, Layers, NodeConfig, Source,
};

use crate::exit::{Failure, USAGE};

/// An admin token file larger than this is refused unread.
const ADMIN_TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// Node flags shared by `run`, `start`, `restart` and `config print`.
/// Each overrides the environment and the file; `--set` covers every
/// setting, and the named flags win over `--set`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NodeFlags {
    /// A TOML configuration file (also `EVERARCADE_CONFIG`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP listen address (http.addr; default 127.0.0.1:8080).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// Keep everything in memory; write nothing to disk (amnesia; also `EVERARCADE_AMNESIA=1`).
    #[arg(long)]
    pub amnesia: bool,
    /// Log line format (log.format; default text).
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<String>,
    /// A tracing filter such as `info` or `everarcade_node=debug` (log.level).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// PEM certificate chain; TLS is on with --tls-key (http.tls_cert).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// PEM private key for --tls-cert (http.tls_key).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
    /// A checkpoint every N ticks; 0 only on demand (world.checkpoint_interval_ticks).
    #[arg(long, value_name = "TICKS")]
    pub checkpoint_interval: Option<String>,
    /// Checkpoints kept (world.checkpoints_retained).
    #[arg(long, value_name = "N")]
    pub checkpoints_retained: Option<String>,
    /// Read the admin token from this file (admin.token); keeps it out of `ps`.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Follow the authority at `http://HOST:PORT` or `nats://HOST:PORT`:
    /// replicate, verify, admit nothing (federation.follow).
    #[arg(long, value_name = "URL")]
    pub follow: Option<String>,
    /// As the authority, publish records to JetStream at `nats://HOST:PORT`
    /// (federation.replicate).
    #[arg(long, value_name = "URL")]
    pub replicate: Option<String>,
    /// When to answer 202: `local` or `replicated` (federation.ack).
    #[arg(long, value_name = "local|replicated")]
    pub ack: Option<String>,
    /// Under `--ack replicated` over HTTP: followers that must hold a record
    /// first (federation.ack_followers).
    #[arg(long, value_name = "N")]
    pub ack_followers: Option<String>,
    /// Any setting by its dotted name, e.g. `--set http.in_flight_max=1024` (repeatable).
    #[arg(long = "set", value_name = "SETTING=VALUE")]
    pub set: Vec<String>,
}

impl NodeFlags {
    /// The flags given, as (flag, setting, value), in the order they apply.
    fn values(&self) -> Result<Vec<(String, String, String)>, Failure> {
        let mut out = Vec::new();
        for assignment in &self.set {
            let Some((name, value)) = assignment.split_once('=') else {
                return Err(invalid(format!(
                    "flag --set {assignment:?}: expected SETTING=VALUE, e.g. http.in_flight_max=1024"
                )));
            };
            out.push(("--set".into(), name.trim().into(), value.into()));
        }
        let named = [
            ("--http-addr", "http.addr", &self.http_addr),
            ("--log-format", "log.format", &self.log_format),
            ("--log-level", "log.level", &self.log_level),
            ("--tls-cert", "http.tls_cert", &self.tls_cert),
            ("--tls-key", "http.tls_key", &self.tls_key),
            (
                "--checkpoint-interval",
                "world.checkpoint_interval_ticks",
                &self.checkpoint_interval,
            ),
            (
                "--checkpoints-retained",
                "world.checkpoints_retained",
                &self.checkpoints_retained,
            ),
            ("--follow", "federation.follow", &self.follow),
            ("--replicate", "federation.replicate", &self.replicate),
            ("--ack", "federation.ack", &self.ack),
            (
                "--ack-followers",
                "federation.ack_followers",
                &self.ack_followers,
            ),
        ];
        for (flag, name, value) in named {
            if let Some(value) = value {
                out.push((flag.into(), name.into(), value.clone()));
            }
        }
        if self.amnesia {
            out.push(("--amnesia".into(), "amnesia".into(), "true".into()));
        }
        if let Some(path) = &self.admin_token_file {
            let token = read_token(path)?;
            out.push(("--admin-token-file".into(), "admin.token".into(), token));
        }
        Ok(out)
    }

    /// The configuration file: `--config`, else `EVERARCADE_CONFIG`.
    fn file(&self, vars: &[(OsString, OsString)]) -> Option<PathBuf> {
        if let Some(path) = &self.config {
            return Some(path.clone());
        }
        vars.iter()
            .find(|(name, value)| name == CONFIG_FILE_ENV && !value.is_empty())
            .map(|(_, value)| PathBuf::from(value))
    }
}

fn invalid(message: String) -> Failure {
    Failure::new(USAGE, "invalid_config", message)
}

fn layer_failure(error: LayerError) -> Failure {
    Failure::new(USAGE, error.code(), error.to_string())
}

/// The token in `path`, without its final line break.
fn read_token(path: &Path) -> Result<String, Failure> {
    let fail = |reason: String| {
        invalid(format!(
            "flag --admin-token-file: {}: {reason}",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    file.take(ADMIN_TOKEN_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > ADMIN_TOKEN_FILE_BYTES_MAX {
        return Err(fail(format!(
            "larger than {ADMIN_TOKEN_FILE_BYTES_MAX} bytes"
        )));
    }
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Every layer for these flags and this environment, built and checked.
fn layered(flags: &NodeFlags, vars: Vec<(OsString, OsString)>) -> Result<Layered, Failure> {
    let mut layers = Layers::new();
    if let Some(path) = flags.file(&vars) {
        layers.file(&path).map_err(layer_failure)?;
    }
    layers.env(vars).map_err(layer_failure)?;
    for (flag, name, value) in flags.values()? {
        layers
            .set(&name, &value, Source::Flag(flag))
            .map_err(layer_failure)?;
    }
    let layered = layers.build().map_err(layer_failure)?;
    check_log_level(&layered)?;
    Ok(layered)
}

/// The node's log filter must parse; the library cannot check it (only the
/// binary knows `tracing-subscriber`).
fn check_log_level(layered: &Layered) -> Result<(), Failure> {
    let level = &layered.config.log.level;
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
        layer_failure(LayerError::Invalid {
            origin: layered.source("log.level").clone(),
            field: "log.level".into(),
            reason: format!("{level:?} is not a tracing filter: {e}"),
        })
    })?;
    Ok(())
}

/// The effective configuration for these flags and this process's
/// environment: flags > `EVERARCADE_*` environment > file > defaults.
pub fn effective(flags: &NodeFlags) -> Result<NodeConfig, Failure> {
    Ok(layered(flags, std::env::vars_os().collect())?.config)
}

/// `config …` arguments.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(clap::Subcommand)]
enum ConfigCommand {
    /// Parse and validate a TOML configuration file (on its own: no environment, no flags).
    Validate {
        /// The TOML file.
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The effective configuration after flags, environment, file and defaults; secrets redacted.
    Print(Box<PrintArgs>),
}

/// `config print` arguments.
#[derive(clap::Args)]
struct PrintArgs {
    #[command(flatten)]
    flags: NodeFlags,
    /// Print JSON instead of TOML.
    #[arg(long)]
    json: bool,
}

/// Runs `config …`.
pub fn run(args: ConfigArgs) -> Result<(), Failure> {
    match args.command {
        ConfigCommand::Validate { file, json } => validate(&file, json),
        ConfigCommand::Print(args) => print(&args.flags, args.json),
    }
}

fn validate(file: &Path, json: bool) -> Result<(), Failure> {
    if is_manager_file(file) {
        crate::manager_cmd::validate_file(file)?;
        if json {
            println!(
                "{}",
                serde_json::json!({"valid": true, "file": file.display().to_string(), "kind": "manager"})
            );
        } else {
            println!("ok: {} is a valid manager configuration", file.display());
        }
        return Ok(());
    }
    let mut layers = Layers::new();
    layers.file(file).map_err(layer_failure)?;
    check_log_level(&layers.build().map_err(layer_failure)?)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"valid": true, "file": file.display().to_string()})
        );
    } else {
        println!("ok: {} is valid", file.display());
    }
    Ok(())
}

/// Whether `file` is a manager configuration: TOML whose only table is
/// `[manager]` (the node's files have no such table).
fn is_manager_file(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("manager"))
}

fn print(flags: &NodeFlags, json: bool) -> Result<(), Failure> {
    let layered = layered(flags, std::env::vars_os().collect())?;
    if json {
        let text = serde_json::to_string_pretty(&layered.config.redacted())
            .map_err(|e| Failure::new(crate::exit::FAILURE, "internal", e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", render_toml(&layered));
    }
    Ok(())
}

/// The configuration as TOML, top-level settings first, each value not at
/// its default followed by a comment naming its source.
fn render_toml(layered: &Layered) -> String {
    let config = layered.config.redacted();
    let mut out = String::from(
        "# The effective configuration: flags > EVERARCADE_* environment > file > defaults.\n\
         # Secrets are redacted.\n",
    );
    let top = FIELDS.iter().filter(|field| field.split().0.is_none());
    let sectioned = FIELDS.iter().filter(|field| field.split().0.is_some());
    let mut section = None;
    for field in top.chain(sectioned) {
        let (field_section, key) = field.split();
        if field_section != section {
            section = field_section;
            out.push_str(&format!("\n[{}]\n", field_section.unwrap_or_default()));
        }
        let source = layered.source(field.name);
        match (config.value(field.name), source) {
            (Some(value), Source::Default) => out.push_str(&format!("{key} = {value}\n")),
            (Some(value), source) => out.push_str(&format!("{key} = {value} # {source}\n")),
            (None, Source::Default) => out.push_str(&format!("# {key} is not set\n")),
            (None, source) => out.push_str(&format!("# {key} is not set ({source})\n")),
        }
    }
    out
}
