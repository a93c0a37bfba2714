//! The node's configuration: every limit with its unit, default and bounds,
//! in one place.
//!
//! [`FIELDS`] is the single table of settings: the TOML file, the
//! `EVERARCADE_*` environment, the flags, `config print` and the operator
//! manual all derive their names from it, so they cannot drift. [`Layers`]
//! stacks the sources (flags > environment > file > defaults), remembering
//! where each value came from so an invalid one is reported with its source.
//! This module owns the shape, defaults, layering and validation; it reads no
//! process environment itself (the binary hands it the variables).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default HTTP address: loopback only.
pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:8080";

/// Shown instead of a secret by [`NodeConfig::redacted`].
pub const REDACTED: &str = "<redacted>";

/// Every configuration environment variable starts with this.
pub const ENV_PREFIX: &str = "EVERARCADE_";

/// The environment variable naming the TOML file (the `--config` flag wins).
pub const CONFIG_FILE_ENV: &str = "EVERARCADE_CONFIG";

/// `EVERARCADE_*` variables that are not configuration: the operator manual
/// uses them as shell variables for the three positional arguments.
pub const ENV_NOT_CONFIG: &[&str] = &[
    "EVERARCADE_ROOT",
    "EVERARCADE_WORLD",
    "EVERARCADE_PACKAGE",
    CONFIG_FILE_ENV,
];

/// A configuration file larger than this is refused unread.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1 << 20;

/// Shortest admin token accepted.
pub const ADMIN_TOKEN_CHARS_MIN: usize = 16;

/// The default of `http.request_head_bytes_max`: 16 KiB.
pub const REQUEST_HEAD_BYTES_MAX_DEFAULT: usize = 16 << 10;

/// Threads `http.read_plane_threads` may start at most.
pub const READ_PLANE_THREADS_MAX: usize = 64;

/// The default of `http.read_plane_threads`.
pub const READ_PLANE_THREADS_DEFAULT: usize = 1;

/// Entries `http.trusted_proxies` may hold at most.
pub const TRUSTED_PROXIES_MAX: usize = 64;

/// Decompressed request bodies are held in memory: `http.body_bytes_max` ×
/// `http.decompression_ratio_max` may not exceed this.
pub const DECOMPRESSED_BODY_BYTES_MAX: u64 = 1 << 30;

/// Everything a node needs besides the world it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The HTTP listener and its hardening limits.
    pub http: HttpConfig,
    /// The admin plane.
    pub admin: AdminConfig,
    /// Durability of the world.
    pub world: WorldSection,
    /// Logging.
    pub log: LogConfig,
    /// Signed usage reports and their delivery.
    pub usage: UsageConfig,
    /// Replication: follower mode, the acknowledgement policy, peers
    /// (docs/FEDERATION.md).
    pub federation: FederationConfig,
    /// Keep everything in memory: nothing is written to disk, anywhere.
    pub amnesia: bool,
}

/// The HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address. Default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// The request head must arrive within this, and the request (body
    /// included) must then finish within it. Default 5000 ms.
    pub request_timeout_ms: u64,
    /// Requests served at once; beyond it the node answers 503 `overloaded`.
    /// Default 512.
    pub in_flight_max: usize,
    /// Requests per second per client IP (GCRA, burst of the same size);
    /// beyond it 429 with `Retry-After`. Default 500.
    pub rate_per_client_per_second: u32,
    /// Client IPs with a bucket at most; buckets back at a full burst are
    /// swept each second, and while the table is still full the clients
    /// beyond it share one bucket. Default 65536.
    pub rate_clients_tracked_max: usize,
    /// Largest request head (request line and headers, as sent); beyond it
    /// 431 `request_head_too_large`. Default 16384 bytes (16 KiB).
    pub request_head_bytes_max: usize,
    /// Largest request body on the wire; beyond it 413. Default 1 MiB.
    pub body_bytes_max: usize,
    /// A gzip or zstd body may decompress to at most this many times its
    /// size on the wire (and never beyond `body_bytes_max` × this). Default 10.
    pub decompression_ratio_max: u32,
    /// Worker threads of the read plane: a second runtime at the lowest CPU
    /// priority (`SCHED_IDLE`, nice +10), serving the connections of the pages, tick streams and
    /// state reads (docs/HTTP.md, "Connections"); 0 serves every connection
    /// on the main runtime. Default 1.
    pub read_plane_threads: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed: when the TCP
    /// peer is one of these, the client is the right-most address in that
    /// header that is not one of these. Default none.
    pub trusted_proxies: Vec<IpAddr>,
    /// TLS certificate chain (PEM). TLS is on when this and `tls_key` are set.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
}

/// The admin plane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The bearer token. Default: none here, in which case the node reads
    /// `<runtime-root>/admin.token` (0600), creating it on first start; in
    /// amnesia mode without a token the admin API is off.
    pub token: Option<String>,
}

/// Durability of the world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldSection {
    /// A checkpoint after every tick divisible by this; 0 only on demand.
    /// Default 1000.
    pub checkpoint_interval_ticks: u64,
    /// Checkpoints kept, at least 1. Default 3.
    pub checkpoints_retained: usize,
    /// Free bytes on the runtime root's filesystem below which `/readyz`
    /// turns 503. Default 256 MiB.
    pub disk_free_bytes_min: u64,
    /// A graceful stop (SIGINT, SIGTERM, `stop`) must finish within this;
    /// past it the process exits non-zero (recovery covers the rest).
    /// Default 30000 ms.
    pub shutdown_deadline_ms: u64,
}

/// Log output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `everarcade_node=debug`. Default `info`.
    pub level: String,
}

/// Signed usage reports (docs/OPERATIONS.md §Usage reports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// A report every this many ms, at a tick boundary; 0: none. Default
    /// 3600000 (1 h).
    pub interval_ms: u64,
    /// Reports per submission at most. Default 100.
    pub batch_size: usize,
    /// POST reports to this `http://` or `https://` URL. Default none.
    pub http_url: Option<String>,
    /// Certificates (PEM) trusted for an `https://` `http_url`.
    pub http_ca: Option<PathBuf>,
    /// Add reports to a Redis stream at this `redis://` URL. Default none.
    pub redis_url: Option<String>,
    /// The Redis stream key. Default `usage:reports`.
    pub redis_stream: String,
    /// Write reports into this directory. Default none.
    pub dir: Option<PathBuf>,
    /// One submission must finish within this. Default 10000 ms.
    pub submit_timeout_ms: u64,
    /// The first retry after a failed submission comes after about this;
    /// each further one waits twice as long. Default 1000 ms.
    pub retry_initial_ms: u64,
    /// The longest wait between retries. Default 300000 ms (5 min).
    pub retry_max_ms: u64,
}

impl Default for UsageConfig {
    fn default() -> UsageConfig {
        UsageConfig {
            interval_ms: 3_600_000,
            batch_size: 100,
            http_url: None,
            http_ca: None,
            redis_url: None,
            redis_stream: "usage:reports".into(),
            dir: None,
            submit_timeout_ms: 10_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
        }
    }
}

/// Replication (docs/FEDERATION.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Run as a follower of the authority at this URL: `http://HOST:PORT`
    /// (its node) or `nats://HOST:PORT` (JetStream). Default none: this
    /// node is the world's authority.
    pub follow: Option<String>,
    /// An authority publishes its records to JetStream at this
    /// `nats://HOST:PORT`. Default none (HTTP followers pull).
    pub replicate: Option<String>,
    /// `local` (202 once the record is durable here) or `replicated` (202
    /// once JetStream, or `ack_followers` HTTP followers, also have it).
    pub ack: AckPolicy,
    /// Under `ack = "replicated"` without JetStream: HTTP followers that
    /// must have a record before its inputs are acknowledged. Default 1.
    pub ack_followers: u32,
    /// Trusted peers, each `"<url> <operator public key, 64 hex>"`:
    /// material from any other is refused.
    pub peers: Vec<String>,
    /// The authority lease's time to live in JetStream, ms. Default 6000.
    pub lease_ttl_ms: u64,
    /// Names on JetStream start with this (`[a-z0-9_]{1,32}`). Default
    /// `everarcade`.
    pub nats_prefix: String,
    /// A follower at least this many ticks behind its authority's
    /// newest checkpoint catches up from that checkpoint: it
    /// journals the records up to it without executing them, then resumes
    /// from it (docs/FEDERATION.md, catch-up). 0: never; every tick is
    /// executed. Default 10000.
    pub catch_up_ticks: u64,
    /// PEM certificates trusted for an `https://` `follow` URL (no system
    /// root store is used).
    pub follow_ca: Option<PathBuf>,
}

impl Default for FederationConfig {
    fn default() -> FederationConfig {
        FederationConfig {
            follow: None,
            replicate: None,
            ack: AckPolicy::Local,
            ack_followers: 1,
            peers: Vec::new(),
            lease_ttl_ms: 6_000,
            nats_prefix: "everarcade".into(),
            catch_up_ticks: 10_000,
            follow_ca: None,
        }
    }
}

/// When an authority answers 202.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicy {
    /// Once the record is durable in this node's journal.
    #[default]
    Local,
    /// Once it is also replicated (JetStream's PubAck, or followers).
    Replicated,
}

/// A trusted peer: its URL and its operator's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub url: String,
    /// The operator public key it must report, 64 lowercase hex digits.
    pub operator_public_key: String,
}

impl FederationConfig {
    /// The configured peers, parsed.
    pub fn peers(&self) -> Result<Vec<Peer>, ConfigError> {
        self.peers
            .iter()
            .map(|entry| {
                let fail = |reason: String| ConfigError {
                    field: "federation.peers".into(),
                    reason,
                };
                let mut parts = entry.split_whitespace();
                let (Some(url), Some(key), None) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(fail(format!(
                        "{entry:?} is not \"<url> <operator public key>\""
                    )));
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(fail(format!("{url:?} must start with http:// or https://")));
                }
                if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(fail(format!(
                        "the key of {url} must be 64 hex digits, not {key:?}"
                    )));
                }
                Ok(Peer {
                    url: url.trim_end_matches('/').to_string(),
                    operator_public_key: key.to_ascii_lowercase(),
                })
            })
            .collect()
    }

    /// The relations between the federation settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field: &str, reason: String| {
            Err(ConfigError {
                field: field.into(),
                reason,
            })
        };
        if let Some(url) = &self.follow
            && !(url.starts_with("http://")
                || url.starts_with("https://")
                || url.starts_with("nats://"))
        {
            return fail(
                "federation.follow",
                format!("{url:?} must start with http://, https:// or nats://"),
            );
        }
        if let Some(url) = &self.follow
            && url.starts_with("https://")
            && self.follow_ca.is_none()
        {
            return fail(
                "federation.follow",
                format!("{url:?} is https:// but federation.follow_ca is not set"),
            );
        }
        if let Some(url) = &self.replicate {
            if !url.starts_with("nats://") {
                return fail(
                    "federation.replicate",
                    format!("{url:?} must start with nats://"),
                );
            }
            if self.follow.is_some() {
                return fail(
                    "federation.replicate",
                    "is set together with federation.follow: a follower publishes nothing".into(),
                );
            }
        }
        let prefix = &self.nats_prefix;
        if prefix.is_empty()
            || prefix.len() > 32
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return fail(
                "federation.nats_prefix",
                format!("{prefix:?} must be 1 to 32 of [a-z0-9_]"),
            );
        }
        self.peers().map(|_| ())
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            addr: HTTP_ADDR_DEFAULT.parse().expect("a valid address"),
            request_timeout_ms: 5_000,
            in_flight_max: 512,
            rate_per_client_per_second: 500,
            rate_clients_tracked_max: 65_536,
            request_head_bytes_max: REQUEST_HEAD_BYTES_MAX_DEFAULT,
            body_bytes_max: 1 << 20,
            decompression_ratio_max: 10,
            read_plane_threads: READ_PLANE_THREADS_DEFAULT,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for WorldSection {
    fn default() -> WorldSection {
        WorldSection {
            checkpoint_interval_ticks: 1000,
            checkpoints_retained: 3,
            disk_free_bytes_min: 256 << 20,
            shutdown_deadline_ms: 30_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// What kind of value a setting holds, and how a string (environment, flag)
/// becomes one.
#[derive(Clone, Copy)]
pub enum Kind {
    /// An integer within `min..=max`.
    Integer {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// Reads the value from a configuration.
        get: fn(&NodeConfig) -> u64,
    },
    /// `true`/`false` (`1`/`0` in the environment).
    Bool,
    /// A string; its shape is checked when it is read into [`NodeConfig`].
    Text,
    /// An optional file path; an empty string in the environment unsets it.
    Path,
    /// An optional secret string, redacted by `config print`.
    Secret,
    /// An optional string (a URL); an empty string in the environment
    /// unsets it.
    Url,
    /// A list of strings: a TOML array of strings in the file,
    /// comma-separated in the environment and flags (empty: none).
    List,
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Integer { min, max, .. } => write!(f, "Integer({min}..={max})"),
            Kind::Bool => f.write_str("Bool"),
            Kind::Text => f.write_str("Text"),
            Kind::Path => f.write_str("Path"),
            Kind::Secret => f.write_str("Secret"),
            Kind::Url => f.write_str("Url"),
            Kind::List => f.write_str("List"),
        }
    }
}

/// One setting: its dotted name (`section.field`, or `field` at the top),
/// kind, unit and meaning.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Dotted name, e.g. `http.body_bytes_max`.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Unit or format, e.g. `ms`, `bytes`, `host:port`.
    pub unit: &'static str,
    /// One line for the operator manual.
    pub about: &'static str,
}

impl Field {
    /// The environment variable: `EVERARCADE_` + name, dots as `_`, uppercased.
    pub fn env(&self) -> String {
        format!(
            "{ENV_PREFIX}{}",
            self.name.replace('.', "_").to_ascii_uppercase()
        )
    }

    /// The section (`http`) and key (`addr`); no section for a top-level key.
    pub fn split(&self) -> (Option<&'static str>, &'static str) {
        match self.name.split_once('.') {
            Some((section, key)) => (Some(section), key),
            None => (None, self.name),
        }
    }

    /// Whether the setting may be absent.
    pub fn optional(&self) -> bool {
        matches!(self.kind, Kind::Path | Kind::Secret | Kind::Url)
    }

    /// Turns a string from the environment or a flag into a value; `None`
    /// unsets an optional setting (the empty string).
    fn parse(&self, text: &str) -> Result<Option<toml::Value>, String> {
        if text.is_empty() && !matches!(self.kind, Kind::List) {
            return if self.optional() {
                Ok(None)
            } else {
                Err("is empty".into())
            };
        }
        match self.kind {
            Kind::Integer { .. } => text
                .parse::<i64>()
                .map(|n| Some(toml::Value::Integer(n)))
                .map_err(|_| format!("{text:?} is not an integer")),
            Kind::Bool => match text.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(Some(toml::Value::Boolean(true))),
                "0" | "false" => Ok(Some(toml::Value::Boolean(false))),
                _ => Err(format!("{text:?} is not 1, true, 0 or false")),
            },
            Kind::Text | Kind::Path | Kind::Secret | Kind::Url => {
                Ok(Some(toml::Value::String(text.into())))
            }
            Kind::List => Ok(Some(toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.into()))
                    .collect(),
            ))),
        }
    }
}

const fn integer(min: u64, max: u64, get: fn(&NodeConfig) -> u64) -> Kind {
    Kind::Integer { min, max, get }
}

/// Every setting, in the order `config print` and the manual list them.
pub const FIELDS: &[Field] = &[
    Field {
        name: "http.addr",
        kind: Kind::Text,
        unit: "host:port",
        about: "Listen address. Loopback by default; bind a public address only behind TLS or a proxy.",
    },
    Field {
        name: "http.request_timeout_ms",
        kind: integer(1, 600_000, |c| c.http.request_timeout_ms),
        unit: "ms",
        about: "The request head must arrive within this, and the request, body included, must then finish within it; else 408 `request_timeout`.",
    },
    Field {
        name: "http.in_flight_max",
        kind: integer(1, 1_000_000, |c| c.http.in_flight_max as u64),
        unit: "requests",
        about: "Requests served at once; beyond it 503 `overloaded`.",
    },
    Field {
        name: "http.rate_per_client_per_second",
        kind: integer(1, 1_000_000, |c| {
            u64::from(c.http.rate_per_client_per_second)
        }),
        unit: "requests/s",
        about: "Token bucket per client IP (burst of the same size); beyond it 429 `rate_limited`.",
    },
    Field {
        name: "http.rate_clients_tracked_max",
        kind: integer(1, 16_777_216, |c| c.http.rate_clients_tracked_max as u64),
        unit: "clients",
        about: "Client IPs with a bucket at most; buckets back at a full burst are swept each second, and while the table is still full the clients beyond it share one bucket.",
    },
    Field {
        name: "http.request_head_bytes_max",
        kind: integer(1024, 1 << 20, |c| c.http.request_head_bytes_max as u64),
        unit: "bytes",
        about: "Largest request line plus headers; beyond it 431 `request_head_too_large`. The head must also arrive within `http.request_timeout_ms`, else 408.",
    },
    Field {
        name: "http.body_bytes_max",
        kind: integer(1024, 64 << 20, |c| c.http.body_bytes_max as u64),
        unit: "bytes",
        about: "Largest request body on the wire; beyond it 413 `body_too_large`.",
    },
    Field {
        name: "http.decompression_ratio_max",
        kind: integer(1, 1000, |c| u64::from(c.http.decompression_ratio_max)),
        unit: "ratio",
        about: "A gzip or zstd body may inflate to this many times its size; beyond it 413.",
    },
    Field {
        name: "http.read_plane_threads",
        kind: integer(0, READ_PLANE_THREADS_MAX as u64, |c| {
            c.http.read_plane_threads as u64
        }),
        unit: "threads",
        about: "Threads of the read plane, a second runtime at the lowest CPU priority (SCHED_IDLE, nice +10) that serves the connections whose first request reads a page, a tick stream or the state; 0: every connection on the main runtime.",
    },
    Field {
        name: "http.trusted_proxies",
        kind: Kind::List,
        unit: "IP addresses",
        about: "Reverse proxies whose `X-Forwarded-For` is believed: from them, the client is the right-most address in it that is not a trusted proxy. Comma-separated in the environment.",
    },
    Field {
        name: "http.tls_cert",
        kind: Kind::Path,
        unit: "path",
        about: "PEM certificate chain. TLS is on when this and `http.tls_key` are both set.",
    },
    Field {
        name: "http.tls_key",
        kind: Kind::Path,
        unit: "path",
        about: "PEM private key (PKCS#8, PKCS#1 or SEC1) for `http.tls_cert`.",
    },
    Field {
        name: "admin.token",
        kind: Kind::Secret,
        unit: "string",
        about: "Admin bearer token, at least 16 visible ASCII characters. Unset: `<runtime-root>/admin.token` (0600) is created and used.",
    },
    Field {
        name: "world.checkpoint_interval_ticks",
        kind: integer(0, i64::MAX as u64, |c| c.world.checkpoint_interval_ticks),
        unit: "ticks",
        about: "A checkpoint after every tick divisible by this; 0 takes them only on demand.",
    },
    Field {
        name: "world.checkpoints_retained",
        kind: integer(1, 1000, |c| c.world.checkpoints_retained as u64),
        unit: "checkpoints",
        about: "Checkpoints kept on disk; older ones are removed.",
    },
    Field {
        name: "world.disk_free_bytes_min",
        kind: integer(0, i64::MAX as u64, |c| c.world.disk_free_bytes_min),
        unit: "bytes",
        about: "Below this much free space on the runtime root, `/readyz` answers 503.",
    },
    Field {
        name: "world.shutdown_deadline_ms",
        kind: integer(1, 3_600_000, |c| c.world.shutdown_deadline_ms),
        unit: "ms",
        about: "A graceful stop must finish within this; past it the process exits non-zero.",
    },
    Field {
        name: "log.format",
        kind: Kind::Text,
        unit: "`text` or `json`",
        about: "Log lines for humans (`text`) or one JSON object per line (`json`).",
    },
    Field {
        name: "log.level",
        kind: Kind::Text,
        unit: "filter",
        about: "A `tracing` filter, e.g. `info` or `everarcade_node=debug,info`.",
    },
    Field {
        name: "usage.interval_ms",
        kind: integer(0, 30 * 24 * 3_600_000, |c| c.usage.interval_ms),
        unit: "ms",
        about: "A signed usage report every this often, at a tick boundary, stored under the world's `usage/` before it is sent; 0: none.",
    },
    Field {
        name: "usage.batch_size",
        kind: integer(1, 10_000, |c| c.usage.batch_size as u64),
        unit: "reports",
        about: "Reports sent per submission at most; raise it when a backlog builds up.",
    },
    Field {
        name: "usage.http_url",
        kind: Kind::Secret,
        unit: "URL",
        about: "POST reports to this `http://` or `https://` URL (idempotent by report digest). Redacted by `config print`: it may carry a credential.",
    },
    Field {
        name: "usage.http_ca",
        kind: Kind::Path,
        unit: "path",
        about: "PEM certificates trusted for an `https://` `usage.http_url` (no system root store is used).",
    },
    Field {
        name: "usage.redis_url",
        kind: Kind::Secret,
        unit: "URL",
        about: "Add reports to a Redis stream at this `redis://` URL. Redacted by `config print`.",
    },
    Field {
        name: "usage.redis_stream",
        kind: Kind::Text,
        unit: "key",
        about: "The Redis stream key; digests already added are kept in the hash `<key>:digests`.",
    },
    Field {
        name: "usage.dir",
        kind: Kind::Path,
        unit: "path",
        about: "Write reports into this directory, one file per report.",
    },
    Field {
        name: "usage.submit_timeout_ms",
        kind: integer(1, 600_000, |c| c.usage.submit_timeout_ms),
        unit: "ms",
        about: "One submission to a sink must finish within this, else it failed and is retried.",
    },
    Field {
        name: "usage.retry_initial_ms",
        kind: integer(1, 3_600_000, |c| c.usage.retry_initial_ms),
        unit: "ms",
        about: "Wait after a failed submission, doubled after each further failure, jittered to 50–100%.",
    },
    Field {
        name: "usage.retry_max_ms",
        kind: integer(1, 86_400_000, |c| c.usage.retry_max_ms),
        unit: "ms",
        about: "The longest wait between retries.",
    },
    Field {
        name: "federation.follow",
        kind: Kind::Url,
        unit: "URL",
        about: "Follow the authority at this `http://HOST:PORT` (its node) or `nats://HOST:PORT` (JetStream): replicate and verify every record, admit nothing, serve reads.",
    },
    Field {
        name: "federation.replicate",
        kind: Kind::Url,
        unit: "URL",
        about: "An authority publishes every durable record to JetStream at this `nats://HOST:PORT` and holds the authority lease there.",
    },
    Field {
        name: "federation.ack",
        kind: Kind::Text,
        unit: "`local` or `replicated`",
        about: "`local`: 202 once the input is durable here. `replicated`: 202 once JetStream (or `federation.ack_followers` HTTP followers) also holds it; 503 `replication_unavailable` when it cannot.",
    },
    Field {
        name: "federation.ack_followers",
        kind: integer(1, 64, |c| u64::from(c.federation.ack_followers)),
        unit: "followers",
        about: "Under `ack = \"replicated\"` over HTTP: followers that must have journaled a record before its inputs are acknowledged.",
    },
    Field {
        name: "federation.peers",
        kind: Kind::List,
        unit: "\"URL KEY\" list",
        about: "Trusted peers, each `\"<url> <operator public key hex>\"`; the `federation` commands refuse any other peer, and a peer whose /status reports another key.",
    },
    Field {
        name: "federation.lease_ttl_ms",
        kind: integer(1_000, 600_000, |c| c.federation.lease_ttl_ms),
        unit: "ms",
        about: "The JetStream authority lease's time to live; a follower takes over within about twice this after the authority dies.",
    },
    Field {
        name: "federation.nats_prefix",
        kind: Kind::Text,
        unit: "[a-z0-9_]{1,32}",
        about: "JetStream stream, subject and bucket names start with this.",
    },
    Field {
        name: "federation.catch_up_ticks",
        kind: integer(0, 1_000_000_000, |c| c.federation.catch_up_ticks),
        unit: "ticks",
        about: "A follower this many ticks or more behind its authority's newest checkpoint journals the records up to it unexecuted and resumes from it; 0: execute every tick.",
    },
    Field {
        name: "federation.follow_ca",
        kind: Kind::Path,
        unit: "path",
        about: "PEM certificates trusted for an `https://` authority: the `federation.follow` node, or the node a JetStream lease names (no system root store is used).",
    },
    Field {
        name: "amnesia",
        kind: Kind::Bool,
        unit: "bool",
        about: "Keep the world in memory only: nothing is written to disk, anywhere.",
    },
];

/// The setting with this dotted name.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|field| field.name == name)
}

/// The setting whose environment variable is `var`.
pub fn field_for_env(var: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|field| field.env() == var)
}

/// The sections of the TOML file.
fn is_section(name: &str) -> bool {
    FIELDS.iter().any(|field| field.split().0 == Some(name))
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The dotted field name, e.g. `http.body_bytes_max`.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl NodeConfig {
    /// Checks every value and how values relate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field: &str, reason: String| {
            Err(ConfigError {
                field: field.into(),
                reason,
            })
        };
        for field in FIELDS {
            if let Kind::Integer { min, max, get } = field.kind {
                let value = get(self);
                if value < min {
                    return fail(field.name, format!("{value} is below the minimum {min}"));
                }
                if value > max {
                    return fail(field.name, format!("{value} is above the maximum {max}"));
                }
            }
        }
        let http = &self.http;
        let decompressed =
            (http.body_bytes_max as u64).saturating_mul(u64::from(http.decompression_ratio_max));
        if decompressed > DECOMPRESSED_BODY_BYTES_MAX {
            return fail(
                "http.decompression_ratio_max",
                format!(
                    "http.body_bytes_max × http.decompression_ratio_max = {decompressed} bytes, \
                     above the maximum {DECOMPRESSED_BODY_BYTES_MAX}"
                ),
            );
        }
        if http.trusted_proxies.len() > TRUSTED_PROXIES_MAX {
            return fail(
                "http.trusted_proxies",
                format!(
                    "{} addresses, above the maximum {TRUSTED_PROXIES_MAX}",
                    http.trusted_proxies.len()
                ),
            );
        }
        match (&http.tls_cert, &http.tls_key) {
            (Some(_), None) => {
                return fail("http.tls_cert", "is set without http.tls_key".into());
            }
            (None, Some(_)) => {
                return fail("http.tls_key", "is set without http.tls_cert".into());
            }
            _ => {}
        }
        if let Some(token) = &self.admin.token {
            if token.chars().count() < ADMIN_TOKEN_CHARS_MIN {
                return fail(
                    "admin.token",
                    format!("must be at least {ADMIN_TOKEN_CHARS_MIN} characters"),
                );
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return fail(
                    "admin.token",
                    "must be visible ASCII (no spaces or control characters)".into(),
                );
            }
        }
        if self.log.level.trim().is_empty() {
            return fail("log.level", "is empty".into());
        }
        self.usage.validate()?;
        self.federation.validate()
    }
}

impl UsageConfig {
    /// The relations between the usage settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field: &str, reason: &str| {
            Err(ConfigError {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if self.retry_initial_ms > self.retry_max_ms {
            return fail("usage.retry_initial_ms", "is above usage.retry_max_ms");
        }
        if let Some(url) = &self.http_url {
            match url.split_once("://").map(|(scheme, _)| scheme) {
                Some("http") => {}
                Some("https") if self.http_ca.is_some() => {}
                Some("https") => {
                    return fail("usage.http_url", "is https:// but usage.http_ca is not set");
                }
                _ => return fail("usage.http_url", "must start with http:// or https://"),
            }
        }
        if let Some(url) = &self.redis_url
            && !url.starts_with("redis://")
        {
            return fail("usage.redis_url", "must start with redis://");
        }
        let stream = &self.redis_stream;
        if stream.is_empty() || stream.len() > 200 || !stream.bytes().all(|b| b.is_ascii_graphic())
        {
            return fail(
                "usage.redis_stream",
                "must be 1 to 200 visible ASCII characters",
            );
        }
        Ok(())
    }
}

impl NodeConfig {
    /// A copy with every secret replaced by [`REDACTED`].
    pub fn redacted(&self) -> NodeConfig {
        let mut copy = self.clone();
        if copy.admin.token.is_some() {
            copy.admin.token = Some(REDACTED.into());
        }
        for url in [&mut copy.usage.http_url, &mut copy.usage.redis_url] {
            if url.is_some() {
                *url = Some(REDACTED.into());
            }
        }
        copy
    }

    /// Whether TLS is configured.
    pub fn tls(&self) -> bool {
        self.http.tls_cert.is_some()
    }

    /// The value of a setting as TOML, `None` when an optional one is unset.
    pub fn value(&self, name: &str) -> Option<toml::Value> {
        let table = toml::Table::try_from(self).ok()?;
        let (section, key) = field(name)?.split();
        match section {
            Some(section) => table.get(section)?.as_table()?.get(key).cloned(),
            None => table.get(key).cloned(),
        }
    }
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A TOML file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (e.g. `--http-addr`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration source that cannot be used. Every variant has the stable
/// code `invalid_config` ([`LayerError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The file could not be read.
    #[error("cannot read config file {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not TOML.
    #[error("config file {}: line {line}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What the parser said.
        reason: String,
    },
    /// A setting that does not exist.
    #[error("{}", unknown_message(origin, name, hint))]
    Unknown {
        /// Where it was given.
        origin: Source,
        /// The name as given.
        name: String,
        /// ` (did you mean …?)` or empty.
        hint: String,
    },
    /// A setting with a value that cannot work.
    #[error("{origin}: {field}: {reason}")]
    Invalid {
        /// Where the value came from.
        origin: Source,
        /// The dotted field name.
        field: String,
        /// Why.
        reason: String,
    },
}

fn unknown_message(origin: &Source, name: &str, hint: &str) -> String {
    match origin {
        Source::Env(var) => format!(
            "environment variable {var} is not a setting{hint}; unset it \
             (every EVERARCADE_* variable is configuration except {})",
            ENV_NOT_CONFIG.join(", ")
        ),
        origin => format!("{origin}: unknown setting `{name}`{hint}"),
    }
}

impl LayerError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        "invalid_config"
    }
}

/// The configuration sources stacked so far; a later layer overrides an
/// earlier one field by field. Apply them lowest first: file, environment,
/// flags.
#[derive(Clone, Debug, Default)]
pub struct Layers {
    /// Field name → value (`None`: explicitly unset) and where it came from.
    values: BTreeMap<&'static str, (Option<toml::Value>, Source)>,
}

/// A configuration and where each of its values came from.
#[derive(Clone, Debug)]
pub struct Layered {
    /// The validated configuration.
    pub config: NodeConfig,
    /// Field name → source, for every field not at its default.
    pub sources: BTreeMap<&'static str, Source>,
}

impl Layered {
    /// Where a field's value came from.
    pub fn source(&self, name: &str) -> &Source {
        self.sources.get(name).unwrap_or(&Source::Default)
    }
}

impl Layers {
    /// No layers: every field at its default.
    pub fn new() -> Layers {
        Layers::default()
    }

    /// Reads a TOML file (at most [`CONFIG_FILE_BYTES_MAX`]) as a layer.
    pub fn file(&mut self, path: &Path) -> Result<(), LayerError> {
        let read_error = |reason: String| LayerError::Read {
            path: path.to_owned(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(CONFIG_FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(e.to_string()))?;
        if bytes.len() as u64 > CONFIG_FILE_BYTES_MAX {
            return Err(read_error(format!(
                "larger than {CONFIG_FILE_BYTES_MAX} bytes"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| read_error("not UTF-8".into()))?;
        self.file_text(path, &text)
    }

    /// A TOML document as a layer; `path` names it in errors.
    pub fn file_text(&mut self, path: &Path, text: &str) -> Result<(), LayerError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let offset = e.span().map_or(0, |span| span.start);
            LayerError::Syntax {
                path: path.to_owned(),
                line: text[..offset.min(text.len())].matches('\n').count() + 1,
                reason: e.message().trim().to_string(),
            }
        })?;
        let origin = Source::File(path.to_owned());
        for (key, value) in table {
            match value {
                toml::Value::Table(section) if is_section(&key) => {
                    for (name, value) in section {
                        self.put(&format!("{key}.{name}"), Some(value), &origin)?;
                    }
                }
                _ if is_section(&key) => {
                    return Err(LayerError::Invalid {
                        origin,
                        field: key.clone(),
                        reason: format!("must be a table ([{key}])"),
                    });
                }
                toml::Value::Table(_) => {
                    let sections = FIELDS.iter().filter_map(|field| field.split().0);
                    return Err(LayerError::Unknown {
                        hint: hint(&key, sections),
                        name: format!("[{key}]"),
                        origin,
                    });
                }
                value => self.put(&key, Some(value), &origin)?,
            }
        }
        Ok(())
    }

    /// The `EVERARCADE_*` variables among `vars` as a layer. Variables that
    /// name no setting are refused (a typo must not be silently ignored),
    /// except [`ENV_NOT_CONFIG`]; variables without the prefix are ignored.
    pub fn env(
        &mut self,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<(), LayerError> {
        let mut ours: Vec<(String, OsString)> = vars
            .into_iter()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .filter(|(name, _)| !ENV_NOT_CONFIG.contains(&name.as_str()))
            .collect();
        ours.sort();
        for (var, value) in ours {
            let origin = Source::Env(var.clone());
            let Some(field) = field_for_env(&var) else {
                let known: Vec<String> = FIELDS.iter().map(Field::env).collect();
                return Err(LayerError::Unknown {
                    origin,
                    hint: hint(&var, known.iter().map(String::as_str)),
                    name: var,
                });
            };
            let Some(value) = value.to_str() else {
                return Err(LayerError::Invalid {
                    origin,
                    field: field.name.into(),
                    reason: "is not UTF-8".into(),
                });
            };
            self.set(field.name, value, origin)?;
        }
        Ok(())
    }

    /// Sets one field from a string (an environment variable or a flag).
    /// The empty string unsets an optional field.
    pub fn set(&mut self, name: &str, text: &str, origin: Source) -> Result<(), LayerError> {
        let Some(field) = field(name) else {
            return Err(LayerError::Unknown {
                origin,
                name: name.into(),
                hint: hint(name, FIELDS.iter().map(|field| field.name)),
            });
        };
        let value = field.parse(text).map_err(|reason| LayerError::Invalid {
            origin: origin.clone(),
            field: field.name.into(),
            reason,
        })?;
        self.put(field.name, value, &origin)
    }

    fn put(
        &mut self,
        name: &str,
        value: Option<toml::Value>,
        origin: &Source,
    ) -> Result<(), LayerError> {
        let Some(field) = field(name) else {
            return Err(LayerError::Unknown {
                origin: origin.clone(),
                name: name.into(),
                hint: hint(name, FIELDS.iter().map(|field| field.name)),
            });
        };
        self.values.insert(field.name, (value, origin.clone()));
        Ok(())
    }

    /// The configuration of every layer over the defaults, each value
    /// checked on its own first (so an error names its source), then
    /// [`NodeConfig::validate`] on the whole.
    pub fn build(&self) -> Result<Layered, LayerError> {
        let mut whole = toml::Table::new();
        for (name, (value, origin)) in &self.values {
            let Some(value) = value else { continue };
            let mut alone = toml::Table::new();
            insert(&mut alone, name, value.clone());
            if let Err(e) = alone.try_into::<NodeConfig>() {
                return Err(LayerError::Invalid {
                    origin: origin.clone(),
                    field: (*name).into(),
                    reason: e.message().trim().to_string(),
                });
            }
            insert(&mut whole, name, value.clone());
        }
        let config: NodeConfig = whole.try_into().map_err(|e| LayerError::Invalid {
            origin: Source::Default,
            field: "(all)".into(),
            reason: e.message().trim().to_string(),
        })?;
        let sources: BTreeMap<&'static str, Source> = self
            .values
            .iter()
            .map(|(name, (_, origin))| (*name, origin.clone()))
            .collect();
        config.validate().map_err(|e| LayerError::Invalid {
            origin: sources
                .get(e.field.as_str())
                .cloned()
                .unwrap_or(Source::Default),
            field: e.field,
            reason: e.reason,
        })?;
        Ok(Layered { config, sources })
    }
}

fn insert(table: &mut toml::Table, name: &str, value: toml::Value) {
    match name.split_once('.') {
        Some((section, key)) => {
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(section) = section {
                section.insert(key.into(), value);
            }
        }
        None => {
            table.insert(name.into(), value);
        }
    }
}

/// ` (did you mean X?)` for the closest known name, if it is close.
fn hint<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|name| (edit_distance(given, name), name))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map_or_else(String::new, |(_, name)| format!(" (did you mean {name}?)"))
}

/// Levenshtein distance over bytes; names are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, &y) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(x != y);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The operator manual's table of settings, rendered from [`FIELDS`] and the
/// defaults; docs/OPERATIONS.md holds exactly this text (a test checks).
pub fn markdown_table() -> String {
    let defaults = NodeConfig::default();
    let mut out = String::from(
        "| setting | environment | unit | default | bounds | meaning |\n|---|---|---|---|---|---|\n",
    );
    for field in FIELDS {
        let default = match defaults.value(field.name) {
            Some(toml::Value::String(text)) => format!("`{text}`"),
            Some(value) => format!("`{value}`"),
            None => "unset".into(),
        };
        let bounds = match field.kind {
            Kind::Integer { min, max, .. } if max == i64::MAX as u64 => format!("≥ {min}"),
            Kind::Integer { min, max, .. } => format!("{min}–{max}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} | {} |\n",
            field.name,
            field.env(),
            field.unit,
            default,
            bounds,
            field.about
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_invalid(edit: impl FnOnce(&mut NodeConfig), field: &str) {
        let mut config = NodeConfig::default();
        edit(&mut config);
        let error = config.validate().expect_err("invalid");
        assert_eq!(error.field, field, "{error}");
    }

    #[test]
    fn defaults_are_valid() {
        NodeConfig::default().validate().expect("valid defaults");
    }

    #[test]
    fn validate_refuses_each_bad_value() {
        check_invalid(|c| c.http.request_timeout_ms = 0, "http.request_timeout_ms");
        check_invalid(
            |c| c.http.request_timeout_ms = 600_001,
            "http.request_timeout_ms",
        );
        check_invalid(|c| c.http.in_flight_max = 0, "http.in_flight_max");
        check_invalid(
            |c| c.http.rate_per_client_per_second = 0,
            "http.rate_per_client_per_second",
        );
        check_invalid(
            |c| c.http.rate_clients_tracked_max = 0,
            "http.rate_clients_tracked_max",
        );
        check_invalid(|c| c.http.body_bytes_max = 1023, "http.body_bytes_max");
        check_invalid(
            |c| c.http.request_head_bytes_max = 1023,
            "http.request_head_bytes_max",
        );
        check_invalid(
            |c| c.http.trusted_proxies = vec![std::net::Ipv4Addr::LOCALHOST.into(); 65],
            "http.trusted_proxies",
        );
        check_invalid(
            |c| c.http.decompression_ratio_max = 0,
            "http.decompression_ratio_max",
        );
        check_invalid(
            |c| c.http.read_plane_threads = READ_PLANE_THREADS_MAX + 1,
            "http.read_plane_threads",
        );
        check_invalid(
            |c| {
                c.http.body_bytes_max = 64 << 20;
                c.http.decompression_ratio_max = 100;
            },
            "http.decompression_ratio_max",
        );
        check_invalid(|c| c.http.tls_cert = Some("c.pem".into()), "http.tls_cert");
        check_invalid(|c| c.http.tls_key = Some("k.pem".into()), "http.tls_key");
        check_invalid(|c| c.admin.token = Some("short".into()), "admin.token");
        check_invalid(
            |c| c.admin.token = Some("sixteen chars with spaces".into()),
            "admin.token",
        );
        check_invalid(
            |c| c.world.checkpoints_retained = 0,
            "world.checkpoints_retained",
        );
        check_invalid(
            |c| c.world.shutdown_deadline_ms = 0,
            "world.shutdown_deadline_ms",
        );
        check_invalid(|c| c.log.level = " ".into(), "log.level");
        check_invalid(
            |c| c.federation.follow = Some("ftp://10.0.0.2".into()),
            "federation.follow",
        );
        check_invalid(
            |c| c.federation.follow = Some("https://10.0.0.2:8443".into()),
            "federation.follow",
        );
        check_invalid(
            |c| c.federation.replicate = Some("http://10.0.0.2:4222".into()),
            "federation.replicate",
        );
        check_invalid(
            |c| {
                c.federation.replicate = Some("nats://127.0.0.1:4222".into());
                c.federation.follow = Some("http://127.0.0.1:8080".into());
            },
            "federation.replicate",
        );
        check_invalid(
            |c| c.federation.ack_followers = 0,
            "federation.ack_followers",
        );
        check_invalid(
            |c| c.federation.lease_ttl_ms = 999,
            "federation.lease_ttl_ms",
        );
        check_invalid(
            |c| c.federation.nats_prefix = "Bad-Prefix".into(),
            "federation.nats_prefix",
        );
        check_invalid(
            |c| c.federation.peers = vec!["http://10.0.0.2:8080".into()],
            "federation.peers",
        );
        check_invalid(
            |c| c.federation.peers = vec![format!("10.0.0.2:8080 {}", "ab".repeat(32))],
            "federation.peers",
        );
        check_invalid(
            |c| c.federation.peers = vec!["http://10.0.0.2:8080 abcd".into()],
            "federation.peers",
        );
        check_invalid(|c| c.usage.batch_size = 0, "usage.batch_size");
        check_invalid(|c| c.usage.submit_timeout_ms = 0, "usage.submit_timeout_ms");
        check_invalid(
            |c| c.usage.retry_initial_ms = c.usage.retry_max_ms + 1,
            "usage.retry_initial_ms",
        );
        check_invalid(
            |c| c.usage.http_url = Some("ftp://x/".into()),
            "usage.http_url",
        );
        check_invalid(
            |c| c.usage.http_url = Some("https://x/".into()),
            "usage.http_url",
        );
        check_invalid(
            |c| c.usage.redis_url = Some("rediss://x/".into()),
            "usage.redis_url",
        );
        check_invalid(
            |c| c.usage.redis_stream = String::new(),
            "usage.redis_stream",
        );
    }

    #[test]
    fn validate_accepts_the_bounds() {
        let mut config = NodeConfig::default();
        config.http.body_bytes_max = 1024;
        config.http.request_timeout_ms = 600_000;
        config.http.read_plane_threads = READ_PLANE_THREADS_MAX;
        config.world.checkpoint_interval_ticks = 0;
        config.http.tls_cert = Some("c.pem".into());
        config.http.tls_key = Some("k.pem".into());
        config.admin.token = Some("0123456789abcdef".into());
        config.federation.follow = Some("nats://127.0.0.1:4222".into());
        config.federation.ack = AckPolicy::Replicated;
        config.federation.ack_followers = 64;
        config.federation.peers = vec![format!("http://10.0.0.2:8080/ {}", "AB".repeat(32))];
        config.validate().expect("valid");
        assert_eq!(
            config.federation.peers().unwrap(),
            [Peer {
                url: "http://10.0.0.2:8080".into(),
                operator_public_key: "ab".repeat(32),
            }]
        );
    }

    #[test]
    fn redacted_hides_the_token() {
        let mut config = NodeConfig::default();
        config.admin.token = Some("0123456789abcdef".into());
        assert_eq!(config.redacted().admin.token.as_deref(), Some(REDACTED));
        assert_eq!(NodeConfig::default().redacted().admin.token, None);
        config.usage.redis_url = Some("redis://:password@127.0.0.1/".into());
        assert_eq!(config.redacted().usage.redis_url.as_deref(), Some(REDACTED));
        assert_eq!(config.redacted().usage.http_url, None);
    }

    /// Every field of the struct is in the table, and nothing else is.
    #[test]
    fn fields_cover_the_struct() {
        let mut config = NodeConfig::default();
        config.http.tls_cert = Some("c.pem".into());
        config.http.tls_key = Some("k.pem".into());
        config.admin.token = Some("0123456789abcdef".into());
        config.usage.http_url = Some("http://127.0.0.1:1/usage".into());
        config.usage.http_ca = Some("ca.pem".into());
        config.usage.redis_url = Some("redis://127.0.0.1/".into());
        config.usage.dir = Some("usage-out".into());
        config.federation.follow = Some("http://127.0.0.1:1".into());
        config.federation.replicate = Some("nats://127.0.0.1:4222".into());
        config.federation.follow_ca = Some("authority.pem".into());
        let table = toml::Table::try_from(&config).expect("serializes");
        let mut names = Vec::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(section) => {
                    names.extend(section.keys().map(|name| format!("{key}.{name}")));
                }
                _ => names.push(key.clone()),
            }
        }
        names.sort();
        let mut fields: Vec<String> = FIELDS.iter().map(|f| f.name.to_string()).collect();
        fields.sort();
        assert_eq!(names, fields);
        for field in FIELDS {
            assert!(config.value(field.name).is_some(), "{}", field.name);
        }
    }

    #[test]
    fn env_names_follow_the_rule() {
        assert_eq!(field("http.addr").unwrap().env(), "EVERARCADE_HTTP_ADDR");
        assert_eq!(field("amnesia").unwrap().env(), "EVERARCADE_AMNESIA");
        assert_eq!(
            field_for_env("EVERARCADE_WORLD_CHECKPOINT_INTERVAL_TICKS")
                .unwrap()
                .name,
            "world.checkpoint_interval_ticks"
        );
        for field in FIELDS {
            assert!(!ENV_NOT_CONFIG.contains(&field.env().as_str()));
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn layers_override_in_order() {
        let mut layers = Layers::new();
        let file = Path::new("node.toml");
        layers
            .file_text(
                file,
                "amnesia = true\n[http]\naddr = \"127.0.0.1:1\"\nin_flight_max = 7\n",
            )
            .unwrap();
        layers
            .env(vars(&[
                ("EVERARCADE_HTTP_ADDR", "127.0.0.1:2"),
                ("EVERARCADE_ROOT", "/somewhere"),
                ("PATH", "/bin"),
            ]))
            .unwrap();
        layers
            .set("http.in_flight_max", "9", Source::Flag("--set".into()))
            .unwrap();
        let layered = layers.build().unwrap();
        assert_eq!(layered.config.http.addr.to_string(), "127.0.0.1:2");
        assert_eq!(layered.config.http.in_flight_max, 9);
        assert!(layered.config.amnesia);
        assert_eq!(layered.config.http.body_bytes_max, 1 << 20);
        assert_eq!(
            layered.source("http.addr"),
            &Source::Env("EVERARCADE_HTTP_ADDR".into())
        );
        assert_eq!(layered.source("amnesia"), &Source::File(file.into()));
        assert_eq!(layered.source("http.body_bytes_max"), &Source::Default);
    }

    #[test]
    fn errors_name_their_source() {
        let file = Path::new("node.toml");
        let error = |text: &str| {
            let mut layers = Layers::new();
            match layers.file_text(file, text) {
                Err(e) => e.to_string(),
                Ok(()) => layers.build().expect_err("invalid").to_string(),
            }
        };
        assert!(
            error("[http]\nadr = 1\n")
                .contains("unknown setting `http.adr` (did you mean http.addr?)")
        );
        assert!(
            error("[htp]\naddr = 1\n").contains("unknown setting `[htp]` (did you mean http?)")
        );
        assert!(error("http = 1\n").contains("http: must be a table"));
        let typed = error("[http]\naddr = 8080\n");
        assert!(
            typed.starts_with("config file node.toml: http.addr: "),
            "{typed}"
        );
        let ranged = error("[world]\ncheckpoints_retained = 0\n");
        assert!(
            ranged.starts_with("config file node.toml: world.checkpoints_retained: 0 is below"),
            "{ranged}"
        );
        assert!(error("[http\n").contains("line 1"));
        assert!(error("\n\nx = = 1\n").contains("line 3"));

        let mut layers = Layers::new();
        let typo = layers
            .env(vars(&[("EVERARCADE_HTTP_ADR", "x")]))
            .unwrap_err()
            .to_string();
        assert!(typo.contains("EVERARCADE_HTTP_ADR"), "{typo}");
        assert!(
            typo.contains("did you mean EVERARCADE_HTTP_ADDR?"),
            "{typo}"
        );
        let bad = layers
            .env(vars(&[("EVERARCADE_AMNESIA", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("environment variable EVERARCADE_AMNESIA: amnesia:"),
            "{bad}"
        );
    }

    #[test]
    fn empty_unsets_optional_fields_only() {
        let mut layers = Layers::new();
        layers
            .file_text(
                Path::new("a.toml"),
                "[http]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
            )
            .unwrap();
        let env = vars(&[
            ("EVERARCADE_HTTP_TLS_CERT", ""),
            ("EVERARCADE_HTTP_TLS_KEY", ""),
        ]);
        layers.env(env).unwrap();
        assert!(!layers.build().unwrap().config.tls());
        let error = layers
            .set("http.addr", "", Source::Flag("--http-addr".into()))
            .unwrap_err();
        assert!(error.to_string().contains("is empty"));
    }

    #[test]
    fn trusted_proxies_are_a_list_everywhere() {
        let mut layers = Layers::new();
        layers
            .file_text(
                Path::new("a.toml"),
                "[http]\ntrusted_proxies = [\"10.0.0.1\", \"::1\"]\n",
            )
            .unwrap();
        let config = layers.build().unwrap().config;
        assert_eq!(config.http.trusted_proxies.len(), 2);
        layers
            .env(vars(&[(
                "EVERARCADE_HTTP_TRUSTED_PROXIES",
                "192.0.2.1, 192.0.2.2,198.51.100.7",
            )]))
            .unwrap();
        let config = layers.build().unwrap().config;
        assert_eq!(
            config.http.trusted_proxies,
            ["192.0.2.1", "192.0.2.2", "198.51.100.7"]
                .map(|a| a.parse::<IpAddr>().unwrap())
                .to_vec()
        );
        layers
            .set("http.trusted_proxies", "", Source::Flag("--set".into()))
            .unwrap();
        assert!(
            layers
                .build()
                .unwrap()
                .config
                .http
                .trusted_proxies
                .is_empty()
        );
        let error = layers
            .set(
                "http.trusted_proxies",
                "10.0.0.0/8",
                Source::Flag("--set".into()),
            )
            .and_then(|()| layers.build().map(|_| ()))
            .unwrap_err();
        assert!(
            error.to_string().contains("http.trusted_proxies"),
            "{error}"
        );
    }

    #[test]
    fn markdown_lists_every_field() {
        let table = markdown_table();
        for field in FIELDS {
            assert!(table.contains(&format!("`{}`", field.env())));
        }
        assert!(
            table.contains(
                "| `http.addr` | `EVERARCADE_HTTP_ADDR` | host:port | `127.0.0.1:8080` |"
            )
        );
    }
}
