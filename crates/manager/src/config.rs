//! The manager's configuration: flags > `EVERARCADE_MANAGER_*` environment >
//! a TOML file's `[manager]` table > defaults, the way the node layers its
//! own (docs/MANAGER.md, "Configuration").

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The environment prefix of every setting.
pub const ENV_PREFIX: &str = "EVERARCADE_MANAGER_";

/// The runtime manager's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerConfig {
    /// The internal HTTP listener (`manager.http_addr`).
    pub http_addr: String,
    /// `sqlite://…` or `postgres://…`; empty: SQLite at `<root>/manager.db`.
    pub database_url: String,
    /// PostgreSQL only: the schema the tables live in (created if absent);
    /// empty: the URL's `search_path`.
    pub database_schema: String,
    /// `redis://…`; empty: no Redis (events to the database and SSE, leases
    /// in the database).
    pub redis_url: String,
    /// The bearer token of mutating routes; empty: `<root>/admin.token`.
    pub admin_token: String,
    /// The `everarcade-runtime` binary worlds run under; empty: this binary.
    pub node_binary: String,
    /// Extra arguments for every world's `run` (e.g. `--set`, `--log-format`).
    pub node_args: Vec<String>,
    /// Graceful shutdown budget.
    pub shutdown_timeout_ms: u64,
    /// Periodic reconcile interval.
    pub reconcile_interval_ms: u64,
    /// How often each running world's `/readyz` is probed.
    pub probe_interval_ms: u64,
    /// Consecutive failed probes before `probe_failed`.
    pub probe_failure_threshold: u32,
    /// How often each running world's status is inspected.
    pub inspect_interval_ms: u64,
    /// The longest a world's health snapshot goes unwritten while nothing
    /// an operator acts on changes (docs/MANAGER.md, "Health").
    pub snapshot_heartbeat_ms: u64,
    /// How long a start waits for `/readyz`.
    pub ready_timeout_ms: u64,
    /// How long a stop waits for the node to exit.
    pub stop_timeout_ms: u64,
    /// The first restart delay under `on-failure`.
    pub restart_backoff_initial_ms: u64,
    /// The restart delay cap under `on-failure`.
    pub restart_backoff_max_ms: u64,
    /// The default restart policy: `never` or `on-failure`.
    pub restart_policy: String,
    /// A per-world lease's time to live.
    pub lease_ttl_ms: u64,
    /// The stream of start jobs.
    pub start_jobs_stream: String,
    /// The stream of stop jobs.
    pub stop_jobs_stream: String,
    /// The stream of job results.
    pub job_results_stream: String,
    /// The stream of health events.
    pub health_events_stream: String,
    /// The prefix of the manager's own Redis keys (offsets, leases).
    pub redis_key_prefix: String,
}

impl Default for ManagerConfig {
    fn default() -> ManagerConfig {
        ManagerConfig {
            http_addr: "127.0.0.1:8096".into(),
            database_url: String::new(),
            database_schema: String::new(),
            redis_url: String::new(),
            admin_token: String::new(),
            node_binary: String::new(),
            node_args: Vec::new(),
            shutdown_timeout_ms: 30_000,
            reconcile_interval_ms: 300_000,
            probe_interval_ms: 2_000,
            probe_failure_threshold: 3,
            inspect_interval_ms: 5_000,
            snapshot_heartbeat_ms: 60_000,
            ready_timeout_ms: 60_000,
            stop_timeout_ms: 60_000,
            restart_backoff_initial_ms: 1_000,
            restart_backoff_max_ms: 60_000,
            restart_policy: "never".into(),
            lease_ttl_ms: 180_000,
            start_jobs_stream: "runtime:start_jobs".into(),
            stop_jobs_stream: "runtime:stop_jobs".into(),
            job_results_stream: "runtime:job_results".into(),
            health_events_stream: "runtime:health_events".into(),
            redis_key_prefix: "everarcade_manager:".into(),
        }
    }
}

/// A setting that does not parse or is out of range.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct ConfigError {
    /// Where the value came from (`file …`, `EVERARCADE_MANAGER_…`, `--flag`).
    pub origin: String,
    /// Why it is refused.
    pub reason: String,
}

/// The restart policy of a world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restarted by the manager (the seed's behaviour).
    Never,
    /// Restarted after an unexpected exit, with capped exponential backoff.
    OnFailure,
}

impl RestartPolicy {
    /// Parses `never` or `on-failure`.
    pub fn parse(text: &str) -> Option<RestartPolicy> {
        match text {
            "never" => Some(RestartPolicy::Never),
            "on-failure" => Some(RestartPolicy::OnFailure),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    manager: Option<toml::Table>,
}

impl ManagerConfig {
    /// The settings' names (`manager.<name>`), for `config print`.
    pub fn names() -> Vec<String> {
        let value = serde_json::to_value(ManagerConfig::default()).unwrap_or_default();
        value
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Reads the `[manager]` table of a TOML file over `self`.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let origin = || format!("file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin(),
            reason: e.to_string(),
        })?;
        let file: File = toml::from_str(&text).map_err(|e| ConfigError {
            origin: origin(),
            reason: format!("{e} (a manager file has only a [manager] table)"),
        })?;
        for (key, value) in file.manager.unwrap_or_default() {
            let json = serde_json::to_value(&value).map_err(|e| ConfigError {
                origin: origin(),
                reason: e.to_string(),
            })?;
            self.set_json(&key, json, &format!("{} (manager.{key})", origin()))?;
        }
        Ok(())
    }

    /// Applies `EVERARCADE_MANAGER_<NAME>` variables from `vars`; an
    /// unknown name under the prefix is refused.
    pub fn merge_env(&mut self, vars: &[(OsString, OsString)]) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(name) = name.to_str().and_then(|n| n.strip_prefix(ENV_PREFIX)) else {
                continue;
            };
            let value = value.to_str().ok_or_else(|| ConfigError {
                origin: format!("{ENV_PREFIX}{name}"),
                reason: "not UTF-8".into(),
            })?;
            self.set(
                &name.to_ascii_lowercase(),
                value,
                &format!("{ENV_PREFIX}{name}"),
            )?;
        }
        Ok(())
    }

    /// Sets one setting from text (a flag or a variable).
    pub fn set(&mut self, name: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        let current = serde_json::to_value(&*self).unwrap_or_default();
        let json = match current.get(name) {
            None => {
                return Err(ConfigError {
                    origin: origin.into(),
                    reason: format!(
                        "unknown setting manager.{name}; known: {}",
                        ManagerConfig::names().join(", ")
                    ),
                });
            }
            Some(serde_json::Value::Number(_)) => {
                let number: u64 = value.trim().parse().map_err(|_| ConfigError {
                    origin: origin.into(),
                    reason: format!("manager.{name} wants a whole number, got {value:?}"),
                })?;
                serde_json::Value::from(number)
            }
            Some(serde_json::Value::Array(_)) => serde_json::Value::from(
                value
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ),
            Some(_) => serde_json::Value::from(value),
        };
        self.set_json(name, json, origin)
    }

    fn set_json(
        &mut self,
        name: &str,
        value: serde_json::Value,
        origin: &str,
    ) -> Result<(), ConfigError> {
        let mut object = serde_json::to_value(&*self).unwrap_or_default();
        let Some(map) = object.as_object_mut() else {
            unreachable!("a struct serializes to an object")
        };
        if !map.contains_key(name) {
            return Err(ConfigError {
                origin: origin.into(),
                reason: format!(
                    "unknown setting manager.{name}; known: {}",
                    ManagerConfig::names().join(", ")
                ),
            });
        }
        map.insert(name.to_string(), value);
        *self = serde_json::from_value(object).map_err(|e| ConfigError {
            origin: origin.into(),
            reason: format!("manager.{name}: {e}"),
        })?;
        Ok(())
    }

    /// Checks ranges and formats.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, reason: String| ConfigError {
            origin: format!("manager.{name}"),
            reason,
        };
        self.http_addr
            .parse::<std::net::SocketAddr>()
            .map_err(|e| bad("http_addr", format!("{:?}: {e}", self.http_addr)))?;
        if !(self.database_url.is_empty()
            || self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(bad("database_url", "wants sqlite:… or postgres://…".into()));
        }
        let schema_ok = self
            .database_schema
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()))
            && self.database_schema.len() <= 63;
        if !schema_ok {
            return Err(bad(
                "database_schema",
                format!("{:?}: wants [a-z_][a-z0-9_]{{0,62}}", self.database_schema),
            ));
        }
        if !(self.redis_url.is_empty()
            || self.redis_url.starts_with("redis://")
            || self.redis_url.starts_with("redis+unix://"))
        {
            return Err(bad("redis_url", "wants redis://host:port".into()));
        }
        if RestartPolicy::parse(&self.restart_policy).is_none() {
            return Err(bad(
                "restart_policy",
                format!("{:?}: wants never or on-failure", self.restart_policy),
            ));
        }
        let positive = [
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
            ("reconcile_interval_ms", self.reconcile_interval_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            (
                "probe_failure_threshold",
                u64::from(self.probe_failure_threshold),
            ),
            ("inspect_interval_ms", self.inspect_interval_ms),
            ("snapshot_heartbeat_ms", self.snapshot_heartbeat_ms),
            ("ready_timeout_ms", self.ready_timeout_ms),
            ("stop_timeout_ms", self.stop_timeout_ms),
            (
                "restart_backoff_initial_ms",
                self.restart_backoff_initial_ms,
            ),
            ("restart_backoff_max_ms", self.restart_backoff_max_ms),
            ("lease_ttl_ms", self.lease_ttl_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(bad(name, "must be above 0".into()));
            }
        }
        for (name, value) in [
            ("start_jobs_stream", &self.start_jobs_stream),
            ("stop_jobs_stream", &self.stop_jobs_stream),
            ("job_results_stream", &self.job_results_stream),
            ("health_events_stream", &self.health_events_stream),
        ] {
            if value.is_empty() {
                return Err(bad(name, "must not be empty".into()));
            }
        }
        Ok(())
    }

    /// The database URL for `runtime_root`: the configured one, else SQLite
    /// at `<root>/manager.db` (created).
    pub fn database_url_for(&self, runtime_root: &Path) -> String {
        match self.database_url.is_empty() {
            false => self.database_url.clone(),
            true => {
                let path = std::path::absolute(runtime_root.join("manager.db"))
                    .unwrap_or_else(|_| runtime_root.join("manager.db"));
                format!("sqlite://{}?mode=rwc", path.display())
            }
        }
    }

    /// The node binary: the configured one, else this process's executable.
    pub fn node_binary(&self) -> std::io::Result<PathBuf> {
        match self.node_binary.is_empty() {
            false => Ok(PathBuf::from(&self.node_binary)),
            true => std::env::current_exe(),
        }
    }

    /// The default restart policy.
    pub fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::parse(&self.restart_policy).unwrap_or(RestartPolicy::Never)
    }

    /// The configuration with secrets (the token, URL passwords) redacted.
    pub fn redacted(&self) -> ManagerConfig {
        let mut copy = self.clone();
        if !copy.admin_token.is_empty() {
            copy.admin_token = "<redacted>".into();
        }
        copy.database_url = redact_url(&copy.database_url);
        copy.redis_url = redact_url(&copy.redis_url);
        copy
    }

    /// A duration setting.
    pub fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }
}

/// `scheme://user:secret@host…` → `scheme://user:<redacted>@host…`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_unknown_names_are_refused() {
        let dir = everarcade_testkit::temp::TempDir::new("manager-config");
        let file = dir.join("manager.toml");
        std::fs::write(
            &file,
            "[manager]\nprobe_interval_ms = 250\nrestart_policy = \"on-failure\"\n",
        )
        .unwrap();
        let mut config = ManagerConfig::default();
        config.merge_file(&file).unwrap();
        assert_eq!(config.probe_interval_ms, 250);
        assert_eq!(config.restart_policy(), RestartPolicy::OnFailure);
        let vars = vec![(
            OsString::from("EVERARCADE_MANAGER_PROBE_INTERVAL_MS"),
            OsString::from("300"),
        )];
        config.merge_env(&vars).unwrap();
        assert_eq!(config.probe_interval_ms, 300);
        config.set("node_args", "--set a=1", "--node-arg").unwrap();
        assert_eq!(config.node_args, vec!["--set", "a=1"]);
        let error = config.set("probe_intervl_ms", "1", "--set").unwrap_err();
        assert!(error.reason.contains("unknown setting"), "{error}");
        let error = config
            .set("probe_interval_ms", "soon", "--set")
            .unwrap_err();
        assert!(error.reason.contains("whole number"), "{error}");
        std::fs::write(&file, "[manager]\nbogus = 1\n").unwrap();
        let error = ManagerConfig::default().merge_file(&file).unwrap_err();
        assert!(error.reason.contains("unknown setting"), "{error}");
        config.restart_policy = "always".into();
        assert!(config.validate().is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let config = ManagerConfig {
            admin_token: "0123456789abcdef".into(),
            database_url: "postgres://u:pw@127.0.0.1/test".into(),
            ..ManagerConfig::default()
        };
        let redacted = config.redacted();
        assert_eq!(redacted.admin_token, "<redacted>");
        assert_eq!(
            redacted.database_url,
            "postgres://u:<redacted>@127.0.0.1/test"
        );
    }
}
