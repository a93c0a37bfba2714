//! Where reports go: an HTTP(S) endpoint, a Redis stream, a directory.
//! Every sink is idempotent by report digest, so a report sent twice (a
//! crash after the sink acknowledged, before the acknowledgement was
//! recorded) is stored once. A submission is bounded by a timeout.
//!
//! - **HTTP**: `POST` of one JSON batch (docs/OPERATIONS.md §Usage reports);
//!   the endpoint answers 2xx with `{"accepted": [digest, …]}`; only the
//!   digests listed count as acknowledged. Anything else (another status,
//!   a body that is not that JSON, a timeout) is a failed submission.
//! - **Redis**: per report, one Lua script that adds the report to the
//!   stream unless its digest is already in the hash `<stream>:digests`,
//!   and records its entry id there; the entry id is the acknowledgement.
//! - **Directory**: `<dir>/<world>-<first:020>-<last:020>-<digest:16>.report`,
//!   written atomically and durably.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use everarcade_protocol::Hash;
use everarcade_store::storage::write_atomic;
use everarcade_store::{DiskStorage, Storage};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, Uri, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::report::SignedReport;

/// The default Redis stream.
pub const REDIS_STREAM_DEFAULT: &str = "usage:reports";
/// Bytes of an HTTP sink's answer read at most.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Bytes of a PEM trust file read at most.
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// The Lua script of the Redis sink: add unless the digest was seen.
const REDIS_SCRIPT: &str = "\
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen then return seen end
local id = redis.call('XADD', KEYS[1], '*', 'digest', ARGV[1], 'world', ARGV[2], \
'first_tick', ARGV[3], 'last_tick', ARGV[4], 'report', ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], id)
return id";

/// A sink as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkConfig {
    /// `POST` to a URL.
    Http {
        /// `http://…` or `https://…`.
        url: String,
        /// Certificates (PEM) to trust for an `https://` URL.
        ca: Option<PathBuf>,
    },
    /// `XADD` to a stream.
    Redis {
        /// `redis://host:port[/db]`.
        url: String,
        /// The stream key.
        stream: String,
    },
    /// Files in a directory.
    Dir {
        /// The directory.
        path: PathBuf,
    },
}

impl SinkConfig {
    /// The sink's name in logs and under `usage/acked/`.
    pub fn name(&self) -> &'static str {
        match self {
            SinkConfig::Http { .. } => "http",
            SinkConfig::Redis { .. } => "redis",
            SinkConfig::Dir { .. } => "dir",
        }
    }
}

/// A sink that could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("usage sink {sink}: {reason}")]
pub struct SinkSetupError {
    /// The sink.
    pub sink: &'static str,
    /// Why.
    pub reason: String,
}

/// A submission that failed; the reports stay in the backlog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct SubmitError {
    /// A stable snake_case code: `sink_unreachable`, `sink_timeout`,
    /// `sink_refused`, `sink_bad_answer`, `sink_io`.
    pub code: &'static str,
    /// What happened.
    pub reason: String,
}

impl SubmitError {
    fn new(code: &'static str, reason: impl Into<String>) -> SubmitError {
        SubmitError {
            code,
            reason: reason.into(),
        }
    }
}

/// One acknowledged report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Its digest.
    pub digest: Hash,
    /// What the sink answered (a stream entry id, a file, a status).
    pub answer: String,
}

/// A connected (or connectable) sink.
pub enum Sink {
    /// See [`SinkConfig::Http`].
    Http(HttpSink),
    /// See [`SinkConfig::Redis`].
    Redis(RedisSink),
    /// See [`SinkConfig::Dir`].
    Dir(DirSink),
}

impl Sink {
    /// Sets a sink up (nothing is connected yet).
    pub fn new(config: &SinkConfig) -> Result<Sink, SinkSetupError> {
        let fail = |reason: String| SinkSetupError {
            sink: config.name(),
            reason,
        };
        match config {
            SinkConfig::Http { url, ca } => HttpSink::new(url, ca.as_deref())
                .map(Sink::Http)
                .map_err(fail),
            SinkConfig::Redis { url, stream } => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| fail(format!("not a Redis URL: {e}")))?;
                Ok(Sink::Redis(RedisSink {
                    client,
                    stream: stream.clone(),
                    connection: None,
                }))
            }
            SinkConfig::Dir { path } => Ok(Sink::Dir(DirSink { path: path.clone() })),
        }
    }

    /// The sink's name.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Http(_) => "http",
            Sink::Redis(_) => "redis",
            Sink::Dir(_) => "dir",
        }
    }

    /// Submits a batch within `timeout`; returns what the sink acknowledged.
    pub async fn submit(
        &mut self,
        batch: &[SignedReport],
        timeout: Duration,
    ) -> Result<Vec<Acked>, SubmitError> {
        let work = async {
            match self {
                Sink::Http(sink) => sink.submit(batch).await,
                Sink::Redis(sink) => sink.submit(batch).await,
                Sink::Dir(sink) => sink.submit(batch).await,
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                if let Sink::Redis(sink) = self {
                    // A connection in an unknown state is not reused.
                    sink.connection = None;
                }
                Err(SubmitError::new(
                    "sink_timeout",
                    format!("no answer within {} ms", timeout.as_millis()),
                ))
            }
        }
    }
}

/// The HTTP(S) sink.
pub struct HttpSink {
    uri: Uri,
    client: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

fn trust(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(path) = ca else { return Ok(roots) };
    let length = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if length > PEM_FILE_BYTES_MAX {
        return Err(format!(
            "{}: over {PEM_FILE_BYTES_MAX} bytes",
            path.display()
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
        roots
            .add(certificate)
            .map_err(|e| format!("{}: not a usable certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: holds no CERTIFICATE block", path.display()));
    }
    Ok(roots)
}

impl HttpSink {
    fn new(url: &str, ca: Option<&Path>) -> Result<HttpSink, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        match (uri.scheme_str(), ca) {
            (Some("http"), _) | (Some("https"), Some(_)) => {}
            (Some("https"), None) => {
                return Err(
                    "an https:// URL needs usage.http_ca (no system root store is used)".into(),
                );
            }
            _ => return Err("the URL must start with http:// or https://".into()),
        }
        if uri.host().is_none() {
            return Err("the URL has no host".into());
        }
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(trust(ca)?)
            .with_no_client_auth();
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(HttpSink {
            uri,
            client: HttpClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn submit(&self, batch: &[SignedReport]) -> Result<Vec<Acked>, SubmitError> {
        let body = batch_json(batch);
        let key = batch_key(batch);
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key.to_hex())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SubmitError::new("sink_unreachable", e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SubmitError::new("sink_unreachable", error_chain(&e)))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| SubmitError::new("sink_bad_answer", format!("reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            return Err(SubmitError::new(
                "sink_refused",
                format!("HTTP {status}: {}", text.trim()),
            ));
        }
        accepted(&answer, batch, status.as_u16())
    }
}

/// The JSON body of a batch.
pub fn batch_json(batch: &[SignedReport]) -> Vec<u8> {
    let reports: Vec<serde_json::Value> = batch.iter().map(SignedReport::to_json).collect();
    let body = serde_json::json!({
        "format": "everarcade-usage-batch/v1",
        "reports": reports,
    });
    serde_json::to_vec(&body).expect("JSON values serialize")
}

/// BLAKE3 of the batch's digests, in order: the `Idempotency-Key`.
pub fn batch_key(batch: &[SignedReport]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    for report in batch {
        hasher.update(&report.digest.0);
    }
    Hash(*hasher.finalize().as_bytes())
}

fn accepted(answer: &[u8], batch: &[SignedReport], status: u16) -> Result<Vec<Acked>, SubmitError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        accepted: Vec<String>,
    }
    let parsed: Answer = serde_json::from_slice(answer).map_err(|e| {
        SubmitError::new(
            "sink_bad_answer",
            format!("HTTP {status} without a JSON {{\"accepted\": [digest, …]}} body: {e}"),
        )
    })?;
    let acked: Vec<Acked> = batch
        .iter()
        .filter(|report| {
            parsed
                .accepted
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&report.digest.to_hex()))
        })
        .map(|report| Acked {
            digest: report.digest,
            answer: format!("HTTP {status}"),
        })
        .collect();
    Ok(acked)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The Redis sink.
pub struct RedisSink {
    client: redis::Client,
    stream: String,
    connection: Option<redis::aio::MultiplexedConnection>,
}

impl RedisSink {
    async fn submit(&mut self, batch: &[SignedReport]) -> Result<Vec<Acked>, SubmitError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| SubmitError::new("sink_unreachable", e.to_string()))?,
        };
        let mut connection = connection;
        let mut pipe = redis::pipe();
        let digests = format!("{}:digests", self.stream);
        for report in batch {
            let r = &report.report;
            pipe.cmd("EVAL")
                .arg(REDIS_SCRIPT)
                .arg(2)
                .arg(&self.stream)
                .arg(&digests)
                .arg(report.digest.to_hex())
                .arg(r.world.as_str())
                .arg(r.first_tick)
                .arg(r.last_tick)
                .arg(hex::encode(&report.bytes));
        }
        let ids: Vec<String> = pipe.query_async(&mut connection).await.map_err(|e| {
            let code = if e.is_io_error() || e.is_connection_dropped() {
                "sink_unreachable"
            } else {
                "sink_refused"
            };
            SubmitError::new(code, e.to_string())
        })?;
        self.connection = Some(connection);
        if ids.len() != batch.len() {
            return Err(SubmitError::new(
                "sink_bad_answer",
                format!("{} answers to {} reports", ids.len(), batch.len()),
            ));
        }
        Ok(batch
            .iter()
            .zip(ids)
            .map(|(report, id)| Acked {
                digest: report.digest,
                answer: format!("{} {id}", self.stream),
            })
            .collect())
    }
}

/// The directory sink.
pub struct DirSink {
    path: PathBuf,
}

impl DirSink {
    async fn submit(&self, batch: &[SignedReport]) -> Result<Vec<Acked>, SubmitError> {
        let path = self.path.clone();
        let batch = batch.to_vec();
        tokio::task::spawn_blocking(move || write_dir(&path, &batch))
            .await
            .map_err(|e| SubmitError::new("sink_io", e.to_string()))?
    }
}

/// The directory sink's file name of a report.
pub fn dir_file_name(report: &SignedReport) -> String {
    let r = &report.report;
    format!(
        "{}-{:020}-{:020}-{}.report",
        r.world,
        r.first_tick,
        r.last_tick,
        &report.digest.to_hex()[..16]
    )
}

fn write_dir(dir: &Path, batch: &[SignedReport]) -> Result<Vec<Acked>, SubmitError> {
    let storage = DiskStorage;
    let failed = |e: std::io::Error, path: &Path| {
        SubmitError::new("sink_io", format!("{}: {e}", path.display()))
    };
    storage.create_dir_all(dir).map_err(|e| failed(e, dir))?;
    let mut acked = Vec::with_capacity(batch.len());
    for report in batch {
        let path = dir.join(dir_file_name(report));
        let present = storage
            .read(&path)
            .ok()
            .is_some_and(|bytes| bytes == report.bytes);
        if !present {
            write_atomic(&storage, &path, &report.bytes).map_err(|e| failed(e, &path))?;
        }
        acked.push(Acked {
            digest: report.digest,
            answer: path.display().to_string(),
        });
    }
    Ok(acked)
}
