//! [`Client`]: one node, one world, over HTTP/1.1 (plain or TLS) with a pool
//! of kept-alive connections (hyper's legacy client). Every call is bounded by the
//! client's timeout, and every answer body by [`ANSWER_BYTES_MAX`].

use std::path::Path;
use std::time::{Duration, Instant};

use everarcade_protocol::{Envelope, WorldId};
use everarcade_state::Proof;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::api::{
    self, Ack, Admission, BackupTaken, CheckpointTaken, Drained, Encoding, Refusal, StateAnswer,
    Status, TickInfo, Version,
};
use crate::error::ClientError;
use crate::tls::Trust;

/// The timeout of one call (request sent, whole answer read) unless
/// [`Client::with_timeout`] says otherwise: the node's own request timeout
/// (5 s) plus a margin for the group commit.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// The largest answer body read, in bytes; a longer one is
/// [`ClientError::Unexpected`]. A tick of 1024 inputs answers about 300 KiB.
pub const ANSWER_BYTES_MAX: usize = 40 << 20;

/// The record stream's header naming the authority's head tick.
pub const HEAD_TICK_HEADER: &str = "everarcade-head-tick";

/// The checkpoint answer's header naming the checkpoint's tick.
pub const CHECKPOINT_TICK_HEADER: &str = "everarcade-checkpoint-tick";

/// The largest checkpoint file [`Client::checkpoint_file`] reads, in bytes
/// (a state of about 18 million small keys).
pub const CHECKPOINT_ANSWER_BYTES_MAX: usize = 1 << 30;

/// Idle connections kept per node; a load generator with more concurrent
/// requests than this opens and closes the rest.
pub const IDLE_CONNECTIONS_MAX: usize = 256;

/// How often [`Client::wait_ready`] asks `/readyz`.
pub const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A proven state read: the value of `key` at the node's head, with a proof
/// that was checked against `state_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenValue {
    /// The head tick the value was read at.
    pub tick: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value, or `None` if the key is absent (absence is proven too).
    pub value: Option<Vec<u8>>,
    /// The state root the proof verified against; compare it with a root you
    /// trust (e.g. [`Client::tick`] of `tick`, or a replica's) to trust the value.
    pub state_root: everarcade_protocol::Hash,
    /// The proof.
    pub proof: Proof,
}

/// A raw answer: status, body, `Retry-After`, the record stream's head tick.
struct Answer {
    status: StatusCode,
    body: Bytes,
    retry_after_seconds: Option<u64>,
    head_tick: Option<u64>,
    checkpoint_tick: Option<u64>,
}

/// A node's newest checkpoint file (`GET …/checkpoint`).
#[derive(Clone, Debug)]
pub struct CheckpointFile {
    /// Its tick, as the node names it (the file records it too).
    pub tick: u64,
    /// The whole file (docs/FORMATS.md §Checkpoint), unchecked: the caller
    /// checks it before using it.
    pub bytes: Bytes,
}

/// A page of an authority's record stream (`GET …/records`).
#[derive(Clone, Debug)]
pub struct RecordsPage {
    /// The framed records (docs/FORMATS.md §9), possibly none.
    pub body: Bytes,
    /// The authority's head tick when it answered (`Everarcade-Head-Tick`).
    pub head_tick: Option<u64>,
}

/// What a follower asks the record stream for.
#[derive(Clone, Debug)]
pub struct RecordsQuery<'a> {
    /// The ordinal of the asker's last record.
    pub after: u64,
    /// That record's checksum, 64 hex digits.
    pub checksum: &'a str,
    /// How long the node may wait for new records, ms.
    pub wait_ms: u64,
    /// Framed bytes wanted at most.
    pub max_bytes: usize,
    /// The asker's name and its durable record's ordinal, when it is a
    /// follower whose acknowledgements count.
    pub follower: Option<(&'a str, u64)>,
    /// A follower reporting that its roots differed from this node's at
    /// this tick (its last pull: it stops following).
    pub diverged: Option<u64>,
}

/// A client of one node serving one world. Cheap to clone: clones share the
/// connection pool.
#[derive(Clone)]
pub struct Client {
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    scheme: &'static str,
    address: String,
    world: WorldId,
    admin_token: Option<String>,
    timeout: Duration,
    encoding: Encoding,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The admin token is a secret: never printed.
        f.debug_struct("Client")
            .field("scheme", &self.scheme)
            .field("address", &self.address)
            .field("world", &self.world.as_str())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl Client {
    /// A client of the node at `address` (`host:port`, e.g. `127.0.0.1:8080`;
    /// an `http://` prefix is accepted) serving `world`. Connects lazily:
    /// calls need a running tokio runtime. An `https://` address needs
    /// certificates to trust: [`Client::with_trust`].
    pub fn new(address: &str, world: WorldId) -> Result<Client, ClientError> {
        Client::build(address, world, None)
    }

    /// A client of the node at `address` that speaks TLS to an `https://`
    /// address, trusting exactly `trust`'s certificates (a plain `http://`
    /// address or `host:port` stays plain HTTP).
    pub fn with_trust(address: &str, world: WorldId, trust: &Trust) -> Result<Client, ClientError> {
        Client::build(address, world, Some(trust))
    }

    fn build(address: &str, world: WorldId, trust: Option<&Trust>) -> Result<Client, ClientError> {
        let (scheme, address) = normalize_address(address)?;
        let config = match (scheme, trust) {
            (_, Some(trust)) => trust.client_config(),
            ("https", None) => {
                return Err(ClientError::Trust {
                    origin: format!("https://{address}"),
                    reason: "an https:// node needs certificates to trust (its certificate \
                             or its CA; Client::with_trust, or --ca on the command line)"
                        .into(),
                });
            }
            // Never used for http:// URIs; the connector needs one anyway.
            _ => Trust::empty().client_config(),
        };
        let mut builder = HttpClient::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(TIMEOUT_DEFAULT));
        connector.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Client {
            http: builder.build(connector),
            scheme,
            address,
            world,
            admin_token: None,
            timeout: TIMEOUT_DEFAULT,
            encoding: Encoding::Json,
        })
    }

    /// The same client with a bearer token for the admin routes.
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Client {
        self.admin_token = Some(token.into());
        self
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The same client sending inputs in `encoding` (default JSON).
    pub fn with_encoding(mut self, encoding: Encoding) -> Client {
        self.encoding = encoding;
        self
    }

    /// The node's address, `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The world this client talks to.
    pub fn world(&self) -> &WorldId {
        &self.world
    }

    /// The encoding inputs are sent in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn world_path(&self, rest: &str) -> String {
        format!("/v1/worlds/{}/{rest}", self.world.as_str())
    }

    /// Submits one signed envelope; `Ok` once the node made it durable (202).
    /// A refusal is [`ClientError::Node`] with the node's code
    /// (`stale_nonce`, `tick_full`, `rate_limited`, …).
    pub async fn submit(&self, envelope: &Envelope) -> Result<Ack, ClientError> {
        let path = self.world_path("inputs");
        let body = api::single_body(envelope, self.encoding);
        let answer = self
            .send(Method::POST, &path, Some((body, self.encoding)), false)
            .await?;
        let body = expect(&answer, StatusCode::ACCEPTED, "POST", &path)?;
        decode("POST", &path, answer.status, body)
    }

    /// Submits a batch in one request: one result per envelope, in order.
    /// The whole batch fails only when the node refuses the request itself
    /// (a bad body, admission closed, journal poisoned, rate limited, …).
    /// Every envelope must be for the client's world.
    pub async fn submit_batch(
        &self,
        envelopes: &[Envelope],
    ) -> Result<Vec<Result<Ack, Refusal>>, ClientError> {
        if envelopes.is_empty() {
            return Err(ClientError::EmptyBatch);
        }
        if let Some(index) = envelopes.iter().position(|e| e.world != self.world) {
            return Err(ClientError::MixedWorlds {
                index,
                expected: self.world.as_str().into(),
                got: envelopes[index].world.as_str().into(),
            });
        }
        let path = self.world_path("inputs");
        let body = api::batch_body(envelopes, self.encoding);
        let answer = self
            .send(Method::POST, &path, Some((body, self.encoding)), false)
            .await?;
        // A binary body of one envelope is a single input: its refusal is a
        // 422 with an error body, which belongs to that envelope alone.
        if envelopes.len() == 1
            && self.encoding == Encoding::Binary
            && answer.status == StatusCode::UNPROCESSABLE_ENTITY
            && let Some(refusal) = api::parse_error(&answer.body)
        {
            return Ok(vec![Err(refusal)]);
        }
        let body = expect(&answer, StatusCode::ACCEPTED, "POST", &path)?;
        let results = api::parse_batch(body)
            .map_err(|reason| unexpected("POST", &path, answer.status, reason))?;
        if results.len() != envelopes.len() {
            let reason = format!(
                "{} results for a batch of {} envelopes",
                results.len(),
                envelopes.len()
            );
            return Err(unexpected("POST", &path, answer.status, reason));
        }
        Ok(results)
    }

    /// `GET /v1/worlds/{world}/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get_json(&self.world_path("status")).await
    }

    /// `GET /v1/worlds/{world}/ticks/{tick}`: the tick's roots and receipts,
    /// after checking that the receipts fold to the receipt root given.
    pub async fn tick(&self, tick: u64) -> Result<TickInfo, ClientError> {
        let info: TickInfo = self
            .get_json(&self.world_path(&format!("ticks/{tick}")))
            .await?;
        let computed = info.computed_receipt_root().ok_or_else(|| {
            let path = self.world_path(&format!("ticks/{tick}"));
            let reason = "a receipt has an unknown kind, outcome or code".to_string();
            unexpected("GET", &path, StatusCode::OK, reason)
        })?;
        if computed != info.receipt_root {
            return Err(ClientError::ReceiptRoot {
                tick: info.tick,
                expected: info.receipt_root,
                computed,
            });
        }
        Ok(info)
    }

    /// `GET /v1/worlds/{world}/state/{key}`: the value of `key` at the head,
    /// returned only if its proof verifies against the answer's state root.
    pub async fn state(&self, key: &[u8]) -> Result<ProvenValue, ClientError> {
        let path = self.world_path(&format!("state/{}", hex::encode(key)));
        let answer: StateAnswer = self.get_json(&path).await?;
        verify_state(key, answer).map_err(|error| match error {
            StateCheck::Proof(error) => error,
            StateCheck::Shape(reason) => unexpected("GET", &path, StatusCode::OK, reason),
        })
    }

    /// `GET /v1/worlds/{world}/records`: the authority's records after a
    /// follower's position (docs/FEDERATION.md). The body is returned
    /// framed and unchecked: `everarcade_federation::stream` decodes it.
    pub async fn records(&self, query: &RecordsQuery<'_>) -> Result<RecordsPage, ClientError> {
        let mut path = self.world_path(&format!(
            "records?after={}&checksum={}&wait_ms={}&max_bytes={}",
            query.after, query.checksum, query.wait_ms, query.max_bytes
        ));
        if let Some((name, durable)) = query.follower {
            path.push_str(&format!("&follower={name}&durable={durable}"));
            if let Some(tick) = query.diverged {
                path.push_str(&format!("&diverged={tick}"));
            }
        }
        let answer = self.send(Method::GET, &path, None, false).await?;
        expect(&answer, StatusCode::OK, "GET", &path)?;
        Ok(RecordsPage {
            body: answer.body.clone(),
            head_tick: answer.head_tick,
        })
    }

    /// `POST /v1/worlds/{world}/records/durable`: a follower named
    /// `follower` tells its authority that its journal holds every record
    /// through ordinal `durable` durably (what `--ack replicated` over HTTP
    /// counts; docs/FEDERATION.md). 204 on success.
    pub async fn report_durable(&self, follower: &str, durable: u64) -> Result<(), ClientError> {
        let path = self.world_path(&format!(
            "records/durable?follower={follower}&durable={durable}"
        ));
        let answer = self.send(Method::POST, &path, None, false).await?;
        expect(&answer, StatusCode::NO_CONTENT, "POST", &path).map(|_| ())
    }

    /// `GET /v1/worlds/{world}/checkpoint`: the node's newest checkpoint
    /// file, for a follower far behind (docs/FEDERATION.md, catch-up); 404
    /// `no_checkpoint` when it has none. Read up to
    /// [`CHECKPOINT_ANSWER_BYTES_MAX`].
    pub async fn checkpoint_file(&self) -> Result<CheckpointFile, ClientError> {
        let path = self.world_path("checkpoint");
        let answer = self
            .send_limited(Method::GET, &path, None, false, CHECKPOINT_ANSWER_BYTES_MAX)
            .await?;
        expect(&answer, StatusCode::OK, "GET", &path)?;
        let tick = answer.checkpoint_tick.ok_or_else(|| {
            unexpected(
                "GET",
                &path,
                answer.status,
                format!("the answer has no {CHECKPOINT_TICK_HEADER} header"),
            )
        })?;
        Ok(CheckpointFile {
            tick,
            bytes: answer.body,
        })
    }

    /// `GET /v1/worlds/{world}/authority`: who admits inputs for the world.
    pub async fn authority(&self) -> Result<api::Authority, ClientError> {
        self.get_json(&self.world_path("authority")).await
    }

    /// `GET /readyz`: `Ok` when ready; not ready is [`ClientError::Node`]
    /// with status 503, code `service_unavailable` and the failing check.
    pub async fn readyz(&self) -> Result<(), ClientError> {
        self.get_json::<api::Probe>("/readyz").await.map(|_| ())
    }

    /// `GET /healthz`: `Ok` while the process lives.
    pub async fn healthz(&self) -> Result<(), ClientError> {
        self.get_json::<api::Probe>("/healthz").await.map(|_| ())
    }

    /// Polls `/readyz` every [`READY_POLL_INTERVAL`] until it answers 200 or
    /// `within` has passed; returns the time it took, or the last error.
    pub async fn wait_ready(&self, within: Duration) -> Result<Duration, ClientError> {
        let start = Instant::now();
        loop {
            let error = match self.readyz().await {
                Ok(()) => return Ok(start.elapsed()),
                Err(error) => error,
            };
            if start.elapsed() + READY_POLL_INTERVAL > within {
                return Err(error);
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, ClientError> {
        self.get_json("/version").await
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let answer = self.send(Method::GET, "/metrics", None, false).await?;
        let body = expect(&answer, StatusCode::OK, "GET", "/metrics")?;
        String::from_utf8(body.to_vec())
            .map_err(|e| unexpected("GET", "/metrics", answer.status, e.to_string()))
    }

    /// `POST /admin/admission/open`.
    pub async fn admission_open(&self) -> Result<Admission, ClientError> {
        self.admin("/admin/admission/open").await
    }

    /// `POST /admin/admission/close`.
    pub async fn admission_close(&self) -> Result<Admission, ClientError> {
        self.admin("/admin/admission/close").await
    }

    /// `POST /admin/checkpoint`: a checkpoint at the next quiet tick boundary.
    pub async fn checkpoint(&self) -> Result<CheckpointTaken, ClientError> {
        self.admin("/admin/checkpoint").await
    }

    /// `POST /admin/backup`: a hot backup at the next tick boundary, written
    /// by the node into `backup_dir` (absolute, outside its runtime root) or
    /// its default folder. Copying a large journal takes time: give this
    /// call a client with a long enough timeout ([`Client::with_timeout`]).
    pub async fn backup(&self, backup_dir: Option<&Path>) -> Result<BackupTaken, ClientError> {
        let path = "/admin/backup";
        let body = match backup_dir {
            Some(dir) => serde_json::json!({ "backup_dir": dir })
                .to_string()
                .into_bytes(),
            None => Vec::new(),
        };
        let answer = self
            .send(Method::POST, path, Some((body, Encoding::Json)), true)
            .await?;
        let body = expect(&answer, StatusCode::OK, "POST", path)?;
        decode("POST", path, answer.status, body)
    }

    /// `POST /admin/drain`: closes admission and executes every acknowledged input.
    pub async fn drain(&self) -> Result<Drained, ClientError> {
        self.admin("/admin/drain").await
    }

    async fn admin<T: for<'de> serde::Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let answer = self.send(Method::POST, path, None, true).await?;
        let body = expect(&answer, StatusCode::OK, "POST", path)?;
        decode("POST", path, answer.status, body)
    }

    async fn get_json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let answer = self.send(Method::GET, path, None, false).await?;
        let body = expect(&answer, StatusCode::OK, "GET", path)?;
        decode("GET", path, answer.status, body)
    }

    /// Sends one request and reads the whole answer, within the timeout.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, Encoding)>,
        admin: bool,
    ) -> Result<Answer, ClientError> {
        self.send_limited(method, path, body, admin, ANSWER_BYTES_MAX)
            .await
    }

    /// [`Client::send`], reading at most `limit` bytes of answer.
    async fn send_limited(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, Encoding)>,
        admin: bool,
        limit: usize,
    ) -> Result<Answer, ClientError> {
        let method_name = method_name(&method);
        let uri: Uri = format!("{}://{}{path}", self.scheme, self.address)
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ClientError::Address {
                address: self.address.clone(),
                reason: e.to_string(),
            })?;
        let mut request = Request::builder().method(method).uri(uri);
        if admin {
            let Some(token) = &self.admin_token else {
                return Err(ClientError::NoAdminToken { path: path.into() });
            };
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some((bytes, encoding)) => {
                request = request.header(header::CONTENT_TYPE, encoding.content_type());
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| ClientError::Address {
            address: self.address.clone(),
            reason: e.to_string(),
        })?;
        let unreachable = |reason: String| ClientError::Unreachable {
            method: method_name,
            path: path.into(),
            address: self.address.clone(),
            reason,
        };
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = response.status();
            let retry_after_seconds = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse().ok());
            let head_tick = response
                .headers()
                .get(HEAD_TICK_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse().ok());
            let checkpoint_tick = response
                .headers()
                .get(CHECKPOINT_TICK_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse().ok());
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        let reason = format!("the answer is over {limit} bytes");
                        unexpected(method_name, path, status, reason)
                    } else {
                        unreachable(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Answer {
                status,
                body,
                retry_after_seconds,
                head_tick,
                checkpoint_tick,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                method: method_name,
                path: path.into(),
                address: self.address.clone(),
                timeout_ms: self.timeout.as_millis() as u64,
            }),
        }
    }

    // The federation recovery commands (docs/FEDERATION.md §Recovery
    // commands): a node's role changes, through its admin API.

    /// `POST /admin/federation/promote`: a follower (or standby) becomes
    /// the world's authority at its head (`{"role":"authority","tick":T}`);
    /// 409 `already_authority` or `world_diverged` otherwise.
    pub async fn federation_promote(&self) -> Result<api::RoleChange, ClientError> {
        self.admin("/admin/federation/promote").await
    }

    /// `POST /admin/federation/leave`: the authority stops admitting inputs
    /// and stands by (`{"role":"standby","tick":T}`); 409 `not_authority`
    /// otherwise.
    pub async fn federation_leave(&self) -> Result<api::RoleChange, ClientError> {
        self.admin("/admin/federation/leave").await
    }

    /// `POST /admin/federation/rejoin` with `{"authority":"URL"}`: a
    /// standby follows the authority at `authority`
    /// (`{"role":"follower","authority":"URL"}`), once that node confirms it
    /// is the authority and this node's head is a record of its journal
    /// (else 409 `not_authority` or `peer_diverged`).
    pub async fn federation_rejoin(&self, authority: &str) -> Result<api::RoleChange, ClientError> {
        let path = "/admin/federation/rejoin";
        let body = serde_json::json!({ "authority": authority })
            .to_string()
            .into_bytes();
        let answer = self
            .send(Method::POST, path, Some((body, Encoding::Json)), true)
            .await?;
        let body = expect(&answer, StatusCode::OK, "POST", path)?;
        decode("POST", path, answer.status, body)
    }
}

/// Why a state answer was refused.
enum StateCheck {
    Proof(ClientError),
    Shape(String),
}

/// Checks a state answer: it names the key asked for, its proof decodes and
/// verifies the value (or absence) against its state root.
fn verify_state(key: &[u8], answer: StateAnswer) -> Result<ProvenValue, StateCheck> {
    if answer.key != key {
        return Err(StateCheck::Shape(format!(
            "the answer is for key {}, not {}",
            hex::encode(&answer.key),
            hex::encode(key)
        )));
    }
    let proof_error = |source| {
        StateCheck::Proof(ClientError::Proof {
            key: hex::encode(key),
            state_root: answer.state_root,
            source: Box::new(source),
        })
    };
    let proof = Proof::decode(&answer.proof).map_err(proof_error)?;
    proof
        .verify(&answer.state_root, key, answer.value.as_deref())
        .map_err(proof_error)?;
    Ok(ProvenValue {
        tick: answer.tick,
        key: answer.key,
        value: answer.value,
        state_root: answer.state_root,
        proof,
    })
}

/// Checks a parsed state answer against its proof; the public face of
/// [`verify_state`] for callers that fetched the JSON themselves.
pub fn verify_state_answer(key: &[u8], answer: StateAnswer) -> Result<ProvenValue, ClientError> {
    verify_state(key, answer).map_err(|error| match error {
        StateCheck::Proof(error) => error,
        StateCheck::Shape(reason) => ClientError::Unexpected {
            method: "GET",
            path: format!("state/{}", hex::encode(key)),
            status: 200,
            reason,
        },
    })
}

/// The scheme and `host:port` of `host:port`, `http://host:port[/]` or
/// `https://host:port[/]`.
fn normalize_address(address: &str) -> Result<(&'static str, String), ClientError> {
    let bad = |reason: &str| ClientError::Address {
        address: address.into(),
        reason: reason.into(),
    };
    let (scheme, rest) = if let Some(rest) = address.strip_prefix("https://") {
        ("https", rest)
    } else {
        ("http", address.strip_prefix("http://").unwrap_or(address))
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains("://") {
        return Err(bad("only http:// and https:// are supported"));
    }
    let uri: Uri = format!("http://{rest}/")
        .parse()
        .map_err(|_| bad("expected host:port, e.g. 127.0.0.1:8080"))?;
    let authority = uri.authority().ok_or_else(|| bad("expected host:port"))?;
    if authority.port_u16().is_none() {
        return Err(bad("a port is required, e.g. 127.0.0.1:8080"));
    }
    if authority.as_str() != rest || rest.contains('@') {
        return Err(bad("expected host:port and nothing else"));
    }
    Ok((scheme, rest.to_string()))
}

/// The body of an answer with the expected status, else the node's error.
fn expect<'a>(
    answer: &'a Answer,
    expected: StatusCode,
    method: &'static str,
    path: &str,
) -> Result<&'a [u8], ClientError> {
    if answer.status == expected {
        return Ok(&answer.body);
    }
    Err(node_error(answer, method, path))
}

fn node_error(answer: &Answer, method: &'static str, path: &str) -> ClientError {
    match api::parse_error(&answer.body) {
        Some(refusal) if !answer.status.is_success() => ClientError::Node {
            method,
            path: path.into(),
            status: answer.status.as_u16(),
            code: refusal.code,
            message: refusal.message,
            retry_after_seconds: answer.retry_after_seconds,
        },
        _ => {
            let shown =
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned();
            unexpected(method, path, answer.status, format!("body {shown:?}"))
        }
    }
}

fn decode<T: for<'de> serde::Deserialize<'de>>(
    method: &'static str,
    path: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, ClientError> {
    api::parse(body).map_err(|reason| unexpected(method, path, status, reason))
}

fn unexpected(method: &'static str, path: &str, status: StatusCode, reason: String) -> ClientError {
    ClientError::Unexpected {
        method,
        path: path.into(),
        status: status.as_u16(),
        reason,
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => "request",
    }
}

/// The error and its sources, joined: hyper's outer errors say little.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let ok = |text: &str, scheme: &str, want: &str| {
            assert_eq!(
                normalize_address(text).unwrap(),
                (scheme, want.to_string()),
                "{text}"
            )
        };
        ok("127.0.0.1:8080", "http", "127.0.0.1:8080");
        ok("http://127.0.0.1:9/", "http", "127.0.0.1:9");
        ok("https://127.0.0.1:9/", "https", "127.0.0.1:9");
        ok("localhost:1", "http", "localhost:1");
        ok("[::1]:8080", "http", "[::1]:8080");
        for bad in [
            "127.0.0.1",
            "ftp://127.0.0.1:1",
            "https://127.0.0.1",
            "",
            "a:b",
            "127.0.0.1:1/x",
            "u@h:1",
        ] {
            let error = normalize_address(bad).unwrap_err();
            assert_eq!(error.code(), "invalid_address", "{bad}");
        }
    }

    #[test]
    fn https_needs_trust() {
        let world = WorldId::new("w").unwrap();
        let error = Client::new("https://127.0.0.1:1", world.clone()).unwrap_err();
        assert_eq!(error.code(), "tls_trust");
        assert!(Client::new("http://127.0.0.1:1", world).is_ok());
    }
}
