//! `config validate <file>`, `config print`, and the layering of a node's
//! configuration: flags > `EVERARCADE_*` environment > TOML file > defaults.

use std::path::PathBuf;

use everarcade_node::config::NodeConfig;

use crate::exit::{Failure, USAGE};

/// Node flags shared by `run`, `start`, `restart` and `config print`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NodeFlags {
    /// A TOML configuration file (also `EVERARCADE_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTP listen address, HOST:PORT (also `EVERARCADE_HTTP_ADDR`; default 127.0.0.1:8080).
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Keep everything in memory; write nothing to disk (also `EVERARCADE_AMNESIA=1`).
    #[arg(long)]
    pub amnesia: bool,
}

/// The effective configuration for these flags.
pub fn effective(flags: &NodeFlags) -> Result<NodeConfig, Failure> {
    let mut config = NodeConfig::default();
    if let Some(addr) = &flags.http_addr {
        config.http.addr = addr.parse().map_err(|e| {
            Failure::new(
                USAGE,
                "invalid_config",
                format!("--http-addr {addr:?}: {e}"),
            )
        })?;
    }
    if flags.amnesia {
        config.amnesia = true;
    }
    config
        .validate()
        .map_err(|e| Failure::new(USAGE, "invalid_config", e.to_string()))?;
    Ok(config)
}

/// `config …` arguments.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs `config …`.
pub fn run(_args: ConfigArgs) -> Result<(), Failure> {
    Err(Failure::not_built("config"))
}
