//! The HTTP surface (docs/HTTP.md): probes, metrics, version, the world API
//! and the admin API. [`router`] builds it from an [`AppState`], so tests
//! drive it with `oneshot` and the server with a real socket.

pub mod body;
pub mod connection;
pub mod guard;
pub mod plane;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::from_fn_with_state;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use everarcade_federation::Role;
use everarcade_protocol::{Hash, Outcome, ReceiptKind, Verified, WorldId};
use everarcade_store::keys::{OperatorKeys, Signed, file_digest};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

use crate::actor::{Ack, TickView, WorldHandle};
use crate::config::HttpConfig;
use crate::error::ApiError;
use body::{BodyLimits, Inputs};
use guard::{Guards, RateLimiter};

/// Every route template of [`router`], and `unmatched` (no route): the
/// values of the `route` metric label, fixed at compile time.
pub const ROUTE_LABELS: [&str; 20] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/version",
    "/v1/worlds/{world}/inputs",
    "/v1/worlds/{world}/status",
    "/v1/worlds/{world}/ticks/{tick}",
    "/v1/worlds/{world}/state/{key}",
    "/v1/worlds/{world}/keys",
    "/v1/worlds/{world}/events",
    "/v1/worlds/{world}/attestation",
    "/v1/worlds/{world}/records",
    "/v1/worlds/{world}/authority",
    "/admin/admission/open",
    "/admin/admission/close",
    "/admin/checkpoint",
    "/admin/drain",
    "/admin/audit",
    "/admin/backup",
    "unmatched",
];

/// The `route` label of a matched route template: the template itself
/// (one of [`ROUTE_LABELS`]), or `other` for one missing from that list
/// (a test keeps the list complete).
pub fn route_label(template: &str) -> &'static str {
    ROUTE_LABELS
        .iter()
        .find(|label| **label == template)
        .copied()
        .unwrap_or("other")
}

/// What the node is, fixed at startup.
#[derive(Debug)]
pub struct Facts {
    /// The world.
    pub world: WorldId,
    /// The package root bound at genesis.
    pub package_root: Hash,
    /// `C(0)`.
    pub genesis_root: Hash,
    /// The manifest's tick rate.
    pub tick_rate_hz: u32,
    /// The address served.
    pub address: String,
    /// This process.
    pub pid: u32,
    /// When the node started.
    pub started: Instant,
    /// Whether nothing is written to disk.
    pub amnesia: bool,
    /// Whether TLS is on.
    pub tls: bool,
    /// The runtime root (for the free-disk check and hot backups), `None`
    /// under amnesia.
    pub disk_root: Option<PathBuf>,
    /// The world's directory.
    pub world_dir: everarcade_store::WorldDir,
    /// `/readyz` fails below this many free bytes.
    pub disk_free_bytes_min: u64,
    /// The world's operator key (signs checkpoints and status attestations).
    pub operator: Arc<OperatorKeys>,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The world actor.
    pub world: WorldHandle,
    /// Fixed facts.
    pub facts: Arc<Facts>,
    /// Middleware state.
    pub guards: Arc<Guards>,
    /// Body limits.
    pub body_limits: BodyLimits,
    /// The admin bearer token; `None` turns the admin API off.
    pub admin_token: Option<Arc<str>>,
    /// Asks the self-audit thread for an audit now (`POST /admin/audit`).
    pub audit: Option<std::sync::mpsc::Sender<crate::audit::AuditRequest>>,
}

impl AppState {
    /// The state for a world handle, facts and the HTTP limits.
    pub fn new(
        world: WorldHandle,
        facts: Facts,
        http: &HttpConfig,
        admin_token: Option<String>,
    ) -> AppState {
        AppState {
            world,
            facts: Arc::new(facts),
            guards: Arc::new(Guards {
                rate: RateLimiter::new(
                    std::num::NonZeroU32::new(http.rate_per_client_per_second)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                    http.rate_clients_tracked_max.max(1),
                ),
                in_flight: Arc::new(tokio::sync::Semaphore::new(http.in_flight_max)),
                in_flight_max: http.in_flight_max,
                trusted_proxies: http.trusted_proxies.clone(),
                request_timeout: Duration::from_millis(http.request_timeout_ms),
            }),
            body_limits: BodyLimits {
                wire_bytes_max: http.body_bytes_max,
                decompression_ratio_max: http.decompression_ratio_max,
            },
            admin_token: admin_token.map(Arc::from),
            audit: None,
        }
    }

    /// With a self-audit thread to ask.
    pub fn with_audit(
        mut self,
        audit: std::sync::mpsc::Sender<crate::audit::AuditRequest>,
    ) -> AppState {
        self.audit = Some(audit);
        self
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let world_api = Router::new()
        .route("/v1/worlds/{world}/inputs", post(submit_inputs))
        .route("/v1/worlds/{world}/status", get(world_status))
        .route("/v1/worlds/{world}/ticks/{tick}", get(tick))
        .route("/v1/worlds/{world}/state/{key}", get(state_value))
        .route("/v1/worlds/{world}/keys", get(keys_page))
        .route("/v1/worlds/{world}/events", get(events))
        .route("/v1/worlds/{world}/attestation", get(attestation))
        .route("/v1/worlds/{world}/records", get(records))
        .route("/v1/worlds/{world}/records/durable", post(records_durable))
        .route("/v1/worlds/{world}/checkpoint", get(checkpoint_file))
        .route("/v1/worlds/{world}/authority", get(authority));
    let admin_api = Router::new()
        .route("/admin/admission/open", post(admission_open))
        .route("/admin/admission/close", post(admission_close))
        .route("/admin/checkpoint", post(admin_checkpoint))
        .route("/admin/drain", post(admin_drain))
        .route("/admin/audit", post(admin_audit))
        .route("/admin/backup", post(admin_backup))
        .route("/admin/federation/promote", post(federation_promote))
        .route("/admin/federation/leave", post(federation_leave))
        .route("/admin/federation/rejoin", post(federation_rejoin))
        .route_layer(from_fn_with_state(state.clone(), guard::admin_auth));
    // Limits apply to the APIs, not to the probes: a flood must not make a
    // healthy node look unready. Outermost first: the rate limit, the
    // in-flight bound (tower's concurrency limit; its load shedder answers
    // 503 `overloaded` at once instead of queueing), the deadline.
    let in_flight_max = state.guards.in_flight_max;
    let in_flight = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |_: tower::BoxError| async move { guard::overloaded(in_flight_max) },
        ))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(
            state.guards.in_flight.clone(),
        ));
    let limited = world_api
        .merge(admin_api)
        .route_layer(from_fn_with_state(state.clone(), guard::deadline))
        .route_layer(in_flight)
        .route_layer(from_fn_with_state(state.clone(), guard::rate_limit));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .merge(limited)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), guard::observe))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take this method", uri.path()),
    )
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// The first failing readiness check, if any.
pub fn not_ready_reason(state: &AppState) -> Option<String> {
    let live = &state.world.live;
    if let Some(incident) = live.incident() {
        return Some(format!(
            "incident: {} at tick {} (record {}); the lineage is not published",
            incident.kind, incident.tick, incident.record
        ));
    }
    if let Some(reason) = live.poison_reason() {
        return Some(format!("journal: the world refuses writes: {reason}"));
    }
    if live.stopping.load(Ordering::SeqCst) {
        return Some("the node is stopping".into());
    }
    if let Some(root) = &state.facts.disk_root {
        match free_bytes(root) {
            Some(free) if free < state.facts.disk_free_bytes_min => {
                return Some(format!(
                    "disk: {free} bytes free under {}, below the {} required",
                    root.display(),
                    state.facts.disk_free_bytes_min
                ));
            }
            None => {
                return Some(format!(
                    "disk: cannot read free space of {}",
                    root.display()
                ));
            }
            Some(_) => {}
        }
    }
    match &*live.role.borrow() {
        Role::Authority => {}
        Role::Follower { authority } => {
            return live
                .follow_error
                .lock()
                .expect("follow error lock")
                .as_ref()
                .map(|reason| format!("following {authority}: {reason}"));
        }
        Role::Diverged { authority, tick } => {
            return Some(format!(
                "peer root mismatch: this node's roots differed from {authority}'s at tick {tick}; \
                 following stopped"
            ));
        }
        Role::Standby => {
            return Some("standby: not the authority and following nobody".into());
        }
    }
    if !live.admission_open.load(Ordering::SeqCst) {
        return Some("admission is closed".into());
    }
    None
}

/// Free bytes on the filesystem holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match not_ready_reason(&state) {
        None => Json(json!({"status": "ready"})).into_response(),
        Some(reason) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("not ready: {reason}"),
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let ready = not_ready_reason(&state).is_none();
    let open = state.world.live.admission_open.load(Ordering::SeqCst);
    let text = state.world.live.metrics.render(open, ready);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn version(State(state): State<AppState>) -> Json<Value> {
    let facts = &state.facts;
    Json(json!({
        "runtime": everarcade_world::RUNTIME_VERSION,
        "protocol": everarcade_protocol::PROTOCOL_VERSION,
        "package_root": facts.package_root.to_hex(),
        "world": facts.world.as_str(),
        "features": {"amnesia": facts.amnesia, "tls": facts.tls},
        "operator_public_key": facts.operator.public_key_hex(),
    }))
}

/// 503 `incident` while an incident stands: the lineage is not published.
fn check_published(state: &AppState) -> Result<(), ApiError> {
    match state.world.live.incident() {
        None => Ok(()),
        Some(incident) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "incident",
            format!(
                "{} at tick {}: the lineage is not published until the incident ({}) is resolved",
                incident.kind, incident.tick, incident.record
            ),
        )),
    }
}

fn check_world(state: &AppState, world: &str) -> Result<(), ApiError> {
    if world == state.facts.world.as_str() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_world",
        format!("this node runs world {}, not {world:?}", state.facts.world),
    ))
}

fn checks_stopped(stopped: crate::signatures::ChecksStopped) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopping",
        stopped.to_string(),
    )
}

async fn submit_inputs(
    State(state): State<AppState>,
    Path(world): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_world(&state, &world)?;
    let live = &state.world.live;
    // Refused before the body is read; the actor checks again at admission.
    if let Some(refusal) = live.admission_refusal() {
        return Err(refusal);
    }
    let bytes = body::read(&headers, body, state.body_limits).await?;
    match body::decode_inputs(&headers, &bytes)? {
        Inputs::One(envelope) => {
            let verified = state
                .world
                .signatures
                .check(envelope)
                .await
                .map_err(checks_stopped)?
                .map_err(|error| {
                    live.metrics.inputs_rejected.add(error.code(), 1);
                    ApiError::from(error)
                })?;
            let mut answers = state.world.admit(vec![verified]).await?;
            let ack = answers.pop().expect("one answer per input")?;
            Ok((StatusCode::ACCEPTED, Json(ack)).into_response())
        }
        Inputs::Batch(envelopes) => {
            let checked = state
                .world
                .signatures
                .check_all(envelopes)
                .await
                .map_err(checks_stopped)?;
            let (verified, positions): (Vec<Verified>, Vec<usize>) = checked
                .iter()
                .enumerate()
                .filter_map(|(index, result)| result.as_ref().ok().map(|v| (v.clone(), index)))
                .unzip();
            let mut results: Vec<Result<Ack, ApiError>> = checked
                .into_iter()
                .map(|result| {
                    result.map(|_| Ack { tick: 0, seq: 0 }).map_err(|error| {
                        live.metrics.inputs_rejected.add(error.code(), 1);
                        ApiError::from(error)
                    })
                })
                .collect();
            let answers = state.world.admit(verified).await?;
            for (position, answer) in positions.into_iter().zip(answers) {
                results[position] = answer;
            }
            let results: Vec<Value> = results
                .into_iter()
                .map(|result| match result {
                    Ok(ack) => json!({"tick": ack.tick, "seq": ack.seq}),
                    Err(error) => error.body(),
                })
                .collect();
            Ok((StatusCode::ACCEPTED, Json(json!({"results": results}))).into_response())
        }
    }
}

/// The live status as JSON (also used by `status` through the client).
pub fn status_json(state: &AppState) -> Value {
    let facts = &state.facts;
    let live = state.world.live.status();
    let reason = not_ready_reason(state);
    let roots = live.roots;
    json!({
        "world": facts.world.as_str(),
        "head_tick": roots.tick,
        "state_root": roots.state_root.to_hex(),
        "input_root": roots.input_root.to_hex(),
        "receipt_root": roots.receipt_root.to_hex(),
        "continuity_root": roots.continuity_root.to_hex(),
        "genesis_root": facts.genesis_root.to_hex(),
        "package_root": facts.package_root.to_hex(),
        "admission": if state.world.live.admission_open.load(Ordering::SeqCst) && state.world.live.role.borrow().admits() { "open" } else { "closed" },
        "ready": reason.is_none(),
        "not_ready_reason": reason,
        "pid": facts.pid,
        "uptime_ms": facts.started.elapsed().as_millis() as u64,
        "tick_rate_hz": facts.tick_rate_hz,
        "achieved_tick_rate_hz": (live.achieved_tick_rate_hz * 100.0).round() / 100.0,
        "pending_inputs": live.pending_inputs,
        "checkpoint_tick": live.checkpoint_tick,
        "address": facts.address,
        "amnesia": facts.amnesia,
        "operator_public_key": facts.operator.public_key_hex(),
        "incident": state.world.live.incident(),
        "role": state.world.live.role.borrow().name(),
        "authority": authority_url(state),
        "lag_ticks": lag_ticks(state),
        "follow_error": state.world.live.follow_error.lock().expect("follow error lock").clone(),
        "caught_up_from_checkpoint": *state.world.live.caught_up_from.lock().expect("caught-up lock"),
        "followers": followers(state),
        "live": true,
    })
}

/// The longest a record request waits for new records.
pub const RECORDS_WAIT_MS_MAX: u64 = 30_000;
/// Framed bytes a record request answers at most by default, and at most.
pub const RECORDS_BYTES_DEFAULT: usize = 1024 * 1024;
/// See [`RECORDS_BYTES_DEFAULT`].
pub const RECORDS_BYTES_MAX: usize = 32 * 1024 * 1024;
/// The record stream's media type (docs/FORMATS.md §Record stream).
pub const RECORDS_CONTENT_TYPE: &str = "application/vnd.everarcade.records";

/// A record request's query: `after`, `checksum`, `wait_ms`, `max_bytes`.
struct RecordsQuery {
    after: u64,
    checksum: Hash,
    wait_ms: u64,
    max_bytes: usize,
    /// The asking follower's name and durable record ordinal.
    follower: Option<(String, u64)>,
    /// The tick at which the asking follower's roots differed.
    diverged: Option<u64>,
}

fn records_query(uri: &Uri) -> Result<RecordsQuery, ApiError> {
    let bad = |what: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", what);
    let (mut after, mut checksum, mut wait_ms, mut max_bytes) =
        (None, None, 0, RECORDS_BYTES_DEFAULT);
    let (mut follower, mut durable, mut diverged) = (None, None, None);
    for (name, value) in query_pairs(uri) {
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|_| bad(format!("{what} must be a whole number, not {value:?}")))
        };
        match name {
            "after" => after = Some(number("after")?),
            "checksum" => {
                checksum =
                    Some(Hash::from_hex(value).ok_or_else(|| {
                        bad(format!("checksum must be 64 hex digits, not {value:?}"))
                    })?)
            }
            "wait_ms" => wait_ms = number("wait_ms")?.min(RECORDS_WAIT_MS_MAX),
            "max_bytes" => {
                max_bytes = (number("max_bytes")?.min(RECORDS_BYTES_MAX as u64) as usize).max(1)
            }
            // A follower names itself and its durable record: what
            // `--ack replicated` counts.
            "follower" => follower = Some(follower_name(value)?),
            "durable" => durable = Some(number("durable")?),
            "diverged" => diverged = Some(number("diverged")?),
            other => return Err(bad(format!("unknown parameter {other:?}"))),
        }
    }
    Ok(RecordsQuery {
        after: after.ok_or_else(|| bad("after is required".into()))?,
        checksum: checksum.ok_or_else(|| bad("checksum is required".into()))?,
        wait_ms,
        max_bytes,
        follower: follower.zip(durable),
        diverged,
    })
}

/// A query's `name=value` pairs, in order (a bare `name` has the value "").
fn query_pairs(uri: &Uri) -> impl Iterator<Item = (&str, &str)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// A follower's name in a query: 1 to 64 of `[A-Za-z0-9._-]`.
fn follower_name(value: &str) -> Result<String, ApiError> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("follower must be 1 to 64 of [A-Za-z0-9._-], not {value:?}"),
        ));
    }
    Ok(value.to_string())
}

/// `POST /v1/worlds/{world}/records/durable?follower=NAME&durable=N`: an
/// HTTP follower reports that its journal holds every record through
/// ordinal N durably, without waiting for its next pull (docs/HTTP.md);
/// 204. What `--ack replicated --ack-followers` counts, as the
/// `follower`/`durable` of a pull.
async fn records_durable(
    State(state): State<AppState>,
    Path(world): Path<String>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    let bad = |what: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", what);
    let (mut follower, mut durable) = (None, None);
    for (name, value) in query_pairs(&uri) {
        match name {
            "follower" => follower = Some(follower_name(value)?),
            "durable" => {
                durable =
                    Some(value.parse::<u64>().map_err(|_| {
                        bad(format!("durable must be a whole number, not {value:?}"))
                    })?)
            }
            other => return Err(bad(format!("unknown parameter {other:?}"))),
        }
    }
    let follower = follower.ok_or_else(|| bad("follower is required".into()))?;
    let durable = durable.ok_or_else(|| bad("durable is required".into()))?;
    state
        .world
        .live
        .replication
        .follower_durable(&follower, durable, None);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/worlds/{world}/records`: the journal records after a
/// follower's position, up to the durable end, framed
/// (docs/HTTP.md, docs/FORMATS.md §Record stream).
async fn records(
    State(state): State<AppState>,
    Path(world): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    let query = records_query(&uri)?;
    let live = state.world.live.clone();
    if let Some((name, durable)) = &query.follower {
        live.replication
            .follower_durable(name, *durable, query.diverged);
        if let Some(tick) = query.diverged {
            tracing::error!(
                follower = %name,
                tick,
                "a follower reports a peer root mismatch with this node's tick record"
            );
        }
    }
    let mut durable = live.durable.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(query.wait_ms);
    let journal = state.facts.world_dir.journal();
    let refused = |error: everarcade_federation::FederationError| {
        let status = match &error {
            everarcade_federation::FederationError::Diverged(_) => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, error.code(), error.to_string())
    };
    let reader_failed = |error: tokio::task::JoinError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the record reader failed: {error}"),
        )
    };
    // Continue where a pull ended at this position, else find it (one scan
    // of the journal; the position must be on this chain).
    let kept = {
        let mut tails = live.record_tails.lock().expect("tails lock");
        tails
            .iter()
            .position(|tail| {
                let at = tail.position();
                at.ordinal == query.after && at.checksum == query.checksum
            })
            .map(|index| tails.remove(index))
    };
    let mut tail = match kept {
        Some(tail) => tail,
        None => {
            let (storage, dir) = (live.storage.clone(), journal.clone());
            let (after, checksum, end) = (query.after, query.checksum, *durable.borrow());
            tokio::task::spawn_blocking(move || {
                everarcade_federation::stream::JournalTail::after(
                    &*storage, &dir, after, &checksum, end,
                )
            })
            .await
            .map_err(reader_failed)?
            .map_err(refused)?
        }
    };
    loop {
        let end = *durable.borrow_and_update();
        let storage = live.storage.clone();
        let max_bytes = query.max_bytes;
        let (read, records) = tokio::task::spawn_blocking(move || {
            let records = tail.read(&*storage, end, max_bytes);
            (tail, records)
        })
        .await
        .map_err(reader_failed)?;
        tail = read;
        let records = records.map_err(refused)?;
        let waited_out = tokio::time::Instant::now() >= deadline;
        if !records.is_empty() || waited_out {
            {
                let mut tails = live.record_tails.lock().expect("tails lock");
                if tails.len() == crate::actor::RECORD_TAILS_KEPT {
                    tails.remove(0);
                }
                tails.push(tail);
            }
            let mut body = Vec::new();
            everarcade_federation::stream::encode_stream(&records, &mut body);
            let head_tick = live.status.read().expect("status lock").roots.tick;
            return Ok((
                [
                    (header::CONTENT_TYPE, RECORDS_CONTENT_TYPE.to_string()),
                    (
                        header::HeaderName::from_static(
                            everarcade_federation::http::HEAD_TICK_HEADER,
                        ),
                        head_tick.to_string(),
                    ),
                ],
                body,
            )
                .into_response());
        }
        // Nothing new yet: wait for the next fdatasync, or the deadline.
        let _ = tokio::time::timeout_at(deadline, durable.changed()).await;
    }
}

/// The authority's URL: this node's own when it is the authority.
fn authority_url(state: &AppState) -> String {
    let role = state.world.live.role.borrow();
    let learnt = state
        .world
        .live
        .authority_url
        .lock()
        .expect("authority lock")
        .clone();
    match role.authority() {
        // A JetStream follower names the authority its lease names.
        Some(url) if url.starts_with("nats://") => learnt.unwrap_or_else(|| url.to_string()),
        Some(url) => url.to_string(),
        None => {
            let scheme = if state.facts.tls { "https" } else { "http" };
            format!("{scheme}://{}", state.facts.address)
        }
    }
}

/// The HTTP followers this node has heard from, by name: their durable
/// record and any divergence they reported.
fn followers(state: &AppState) -> serde_json::Value {
    let followers = state
        .world
        .live
        .replication
        .followers
        .lock()
        .expect("followers lock");
    followers
        .iter()
        .map(|(name, seen)| {
            json!({
                "name": name,
                "durable_record": seen.durable_record,
                "diverged_at_tick": seen.diverged_at_tick,
            })
        })
        .collect()
}

/// A follower's distance behind its authority; 0 on the authority; none
/// while it is unknown.
fn lag_ticks(state: &AppState) -> Option<u64> {
    let live = &state.world.live;
    match &*live.role.borrow() {
        Role::Authority => Some(0),
        Role::Follower { .. } | Role::Diverged { .. } => {
            let authority = live.authority_tick.load(Ordering::SeqCst);
            let own = live.status.read().expect("status lock").roots.tick;
            (authority > 0).then(|| authority.saturating_sub(own))
        }
        Role::Standby => None,
    }
}

/// `POST /admin/federation/promote`: this follower (or standby) becomes the
/// authority at its head.
async fn federation_promote(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tick = state.world.promote().await?;
    Ok(Json(json!({"role": "authority", "tick": tick})))
}

/// `POST /admin/federation/leave`: the authority stops admitting and
/// ticking (standby).
async fn federation_leave(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tick = state.world.leave().await?;
    Ok(Json(json!({"role": "standby", "tick": tick})))
}

/// `POST /admin/federation/rejoin` `{"authority":"http://HOST:PORT"}`: a
/// standby follows `authority`, once the authority confirms it is the
/// authority and this node's head is a record of its journal.
async fn federation_rejoin(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let bad = |what: String| ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", what);
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rejoin {
        authority: String,
    }
    let rejoin: Rejoin = serde_json::from_slice(&body).map_err(|error| {
        bad(format!(
            "expected {{\"authority\":\"http://HOST:PORT\"}}: {error}"
        ))
    })?;
    let authority = rejoin.authority.trim_end_matches('/').to_string();
    if !authority.starts_with("http://") {
        return Err(bad(format!(
            "authority must be the authority node's http://HOST:PORT, not {authority:?}"
        )));
    }
    let client = everarcade_client::Client::new(&authority, state.facts.world.clone())
        .map_err(|error| bad(format!("{authority}: {error}")))?
        .with_timeout(Duration::from_secs(10));
    let answer = client.authority().await.map_err(|error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "peer_unreachable",
            format!("{authority}: {error}"),
        )
    })?;
    if answer.role != "authority" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_authority",
            format!(
                "{authority} is a {} of the world, not its authority{}",
                answer.role,
                answer
                    .authority
                    .map(|url| format!(" (it names {url})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let durable = state.world.durable_head().await?;
    let checksum = durable.checksum.to_hex();
    let query = everarcade_client::RecordsQuery {
        after: durable.ordinal,
        checksum: &checksum,
        wait_ms: 0,
        max_bytes: 1,
        follower: None,
        diverged: None,
    };
    match client.records(&query).await {
        Ok(_) => {}
        Err(everarcade_client::ClientError::Node {
            status: 409,
            message,
            ..
        }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "peer_diverged",
                format!(
                    "this node's record {} (tick {}) is not on {authority}'s journal: {message}; \
                     its unreplicated suffix must be quarantined first (docs/FEDERATION.md)",
                    durable.ordinal, durable.tick
                ),
            ));
        }
        Err(error) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "peer_unreachable",
                format!("{authority}: {error}"),
            ));
        }
    }
    state.world.rejoin(authority.clone()).await?;
    Ok(Json(json!({"role": "follower", "authority": authority})))
}

/// `GET /v1/worlds/{world}/checkpoint`: the newest checkpoint file as
/// written, for a follower far behind (docs/FEDERATION.md, catch-up). The
/// follower checks it against the records it journaled before using it.
async fn checkpoint_file(
    State(state): State<AppState>,
    Path(world): Path<String>,
) -> Result<Response, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    let storage = state.world.live.storage.clone();
    let dir = state.facts.world_dir.clone();
    let read = tokio::task::spawn_blocking(move || {
        let listing = everarcade_store::checkpoint::list_checkpoints(&*storage, &dir)?;
        let Some((tick, path)) = listing.checkpoints.last().cloned() else {
            return Ok(None);
        };
        let bytes = storage
            .read(&path)
            .map_err(everarcade_store::StoreError::io("read", &path))?;
        Ok::<_, everarcade_store::StoreError>(Some((tick, bytes)))
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the checkpoint reader failed: {error}"),
        )
    })?;
    match read {
        Ok(Some((tick, bytes))) => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static(everarcade_client::CHECKPOINT_TICK_HEADER),
                    tick.to_string(),
                ),
            ],
            bytes,
        )
            .into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            "this node has no checkpoint yet",
        )),
        Err(error) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error.code(),
            error.to_string(),
        )),
    }
}

/// `GET /v1/worlds/{world}/authority`: who admits inputs for the world.
async fn authority(
    State(state): State<AppState>,
    Path(world): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_world(&state, &world)?;
    let role = state.world.live.role.borrow().clone();
    Ok(Json(json!({
        "world": state.facts.world.as_str(),
        "role": role.name(),
        "authority": authority_url(&state),
        "lease_revision": state
            .world
            .live
            .lease
            .lock()
            .expect("lease lock")
            .as_ref()
            .map(|keeper| keeper.revision()),
    })))
}

async fn world_status(
    State(state): State<AppState>,
    Path(world): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_world(&state, &world)?;
    Ok(Json(status_json(&state)))
}

/// A tick's roots and receipts as JSON.
pub fn tick_json(view: &TickView) -> Value {
    let receipts: Vec<Value> = view
        .receipts
        .iter()
        .map(|receipt| {
            json!({
                "kind": match receipt.kind {
                    ReceiptKind::Input => "input",
                    ReceiptKind::TickHook => "tick_hook",
                    ReceiptKind::GenesisHook => "genesis_hook",
                },
                "subject": receipt.subject.to_hex(),
                "outcome": receipt.outcome.name(),
                "code": receipt.outcome.code(),
                "fuel_used": receipt.fuel_used,
                "events_hash": receipt.events_hash.to_hex(),
                "event_count": receipt.event_count,
            })
        })
        .collect();
    let roots = view.roots;
    json!({
        "tick": roots.tick,
        "input_root": roots.input_root.to_hex(),
        "receipt_root": roots.receipt_root.to_hex(),
        "state_root": roots.state_root.to_hex(),
        "continuity_root": roots.continuity_root.to_hex(),
        "input_count": view.input_count,
        "receipts": receipts,
    })
}

async fn tick(
    State(state): State<AppState>,
    Path((world, tick)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    let tick: u64 = tick.parse().map_err(|_| {
        ApiError::bad_request("malformed_tick", format!("tick {tick:?} is not a number"))
    })?;
    let height = state.world.live.status().roots.tick;
    if tick == 0 || tick > height {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "tick_not_found",
            format!("tick {tick} has not been executed (the head is {height}; ticks start at 1)"),
        ));
    }
    match state.world.tick(tick).await? {
        Some(view) => Ok(Json(tick_json(&view))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "tick_not_found",
            format!(
                "tick {tick} is older than the {} ticks this node keeps in memory; read it from the journal with replay-report",
                crate::actor::TICKS_RETAINED_MAX
            ),
        )),
    }
}

async fn state_value(
    State(state): State<AppState>,
    Path((world, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    let bytes = hex::decode(&key).map_err(|error| {
        ApiError::bad_request("malformed_key", format!("key is not hex: {error}"))
    })?;
    if bytes.is_empty() || bytes.len() > 256 {
        return Err(ApiError::bad_request(
            "malformed_key",
            format!("a key is 1 to 256 bytes, this one is {}", bytes.len()),
        ));
    }
    let view = state.world.state(bytes).await?;
    Ok(Json(json!({
        "tick": view.tick,
        "key": key.to_ascii_lowercase(),
        "value": view.value.map(hex::encode),
        "state_root": view.state_root.to_hex(),
        "proof": hex::encode(&view.proof),
    })))
}

/// Keys a page of `GET …/keys` lists by default.
pub const KEYS_PAGE_DEFAULT: usize = 100;
/// Keys a page of `GET …/keys` lists at most.
pub const KEYS_PAGE_MAX: usize = 256;

/// `?after=<hex>&limit=<n>` of `GET …/keys`.
fn keys_query(query: Option<&str>) -> Result<(Option<Vec<u8>>, usize), ApiError> {
    let malformed = |what: String| ApiError::bad_request("malformed_query", what);
    let (mut after, mut limit) = (None, KEYS_PAGE_DEFAULT);
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "after" => {
                let key = hex::decode(value)
                    .map_err(|error| malformed(format!("after is not hex: {error}")))?;
                if key.len() > 256 {
                    return Err(malformed(format!(
                        "after is a key of 1 to 256 bytes, this one is {}",
                        key.len()
                    )));
                }
                after = (!key.is_empty()).then_some(key);
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=KEYS_PAGE_MAX).contains(limit))
                    .ok_or_else(|| {
                        malformed(format!("limit is 1 to {KEYS_PAGE_MAX}, not {value:?}"))
                    })?;
            }
            other => {
                return Err(malformed(format!(
                    "unknown query parameter {other:?} (after, limit)"
                )));
            }
        }
    }
    Ok((after, limit))
}

/// A page of the key space at the head: each key with its value's size and
/// `H(StateValue, value)`, the hash its trie leaf commits to. The listing
/// is the node's word; a value is proven by reading it with its proof.
async fn keys_page(
    State(state): State<AppState>,
    Path(world): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    let (after, limit) = keys_query(uri.query())?;
    let page = state.world.keys(after, limit).await?;
    let next = page
        .more
        .then(|| page.entries.last().map(|(key, _)| hex::encode(key)))
        .flatten();
    let keys: Vec<Value> = page
        .entries
        .iter()
        .map(|(key, value)| {
            json!({
                "key": hex::encode(key),
                "value_bytes": value.len(),
                "value_hash": everarcade_protocol::Domain::StateValue.hash(value).to_hex(),
            })
        })
        .collect();
    Ok(Json(json!({
        "tick": page.tick,
        "state_root": page.state_root.to_hex(),
        "total": page.total,
        "keys": keys,
        "next": next,
    })))
}

/// One tick as a stream event.
pub fn tick_event_json(view: &TickView) -> Value {
    let roots = view.roots;
    json!({
        "tick": roots.tick,
        "input_root": roots.input_root.to_hex(),
        "receipt_root": roots.receipt_root.to_hex(),
        "state_root": roots.state_root.to_hex(),
        "continuity_root": roots.continuity_root.to_hex(),
        "inputs": view.input_count,
        "applied": view.count(|o| matches!(o, Outcome::Applied)),
        "rejected": view.count(|o| matches!(o, Outcome::Rejected(_))),
        "trapped": view.count(|o| matches!(o, Outcome::Trapped(_))),
        "out_of_fuel": view.count(|o| matches!(o, Outcome::OutOfFuel)),
    })
}

/// One tick as a stream event: `id:` is the tick, so a client that
/// reconnects sends it back as `Last-Event-ID`. The data is made once per
/// tick, however many streams send it.
fn tick_event(view: &TickView) -> Event {
    let data = view
        .event_data
        .get_or_init(|| tick_event_json(view).to_string());
    Event::default()
        .id(view.roots.tick.to_string())
        .event("tick")
        .data(data)
}

/// The tick in `Last-Event-ID`, if the header holds one.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn events(
    State(state): State<AppState>,
    Path(world): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    // Subscribed before the replay is read, so no tick falls between them;
    // live ticks the replay already sent are skipped.
    let receiver = state.world.live.events.subscribe();
    let stopped = state.world.live.stopped.subscribe();
    let mut replayed = Vec::new();
    let mut sent_through = 0;
    if let Some(after) = last_event_id(&headers) {
        let replay = state.world.ticks_after(after).await?;
        if let Some((from, to)) = replay.gap(after) {
            replayed.push(
                Event::default()
                    .event("gap")
                    .data(json!({"from": from, "to": to}).to_string()),
            );
        }
        replayed.extend(replay.ticks.iter().map(|view| tick_event(view)));
        sent_through = replay.head;
    }
    let live = futures_util::stream::unfold(
        (receiver, stopped),
        move |(mut receiver, mut stopped)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                if *stopped.borrow() {
                    return None;
                }
                let received = tokio::select! {
                    received = receiver.recv() => received,
                    _ = stopped.changed() => return None,
                };
                let event = match received {
                    Ok(view) if view.roots.tick <= sent_through => continue,
                    Ok(view) => tick_event(&view),
                    Err(RecvError::Lagged(skipped)) => Event::default()
                        .event("lagged")
                        .data(json!({"skipped": skipped}).to_string()),
                    Err(RecvError::Closed) => return None,
                };
                return Some((event, (receiver, stopped)));
            }
        },
    );
    let stream = futures_util::stream::iter(replayed)
        .chain(live)
        .map(Ok::<Event, Infallible>);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn admission_open(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.world.live.stopping.load(Ordering::SeqCst) {
        return Err(ApiError::admission_closed("the node is stopping"));
    }
    state.world.set_admission(true).await?;
    Ok(Json(json!({"admission": "open"})))
}

async fn admission_close(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.world.set_admission(false).await?;
    Ok(Json(json!({"admission": "closed"})))
}

async fn admin_checkpoint(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let view = state.world.checkpoint().await?;
    Ok(Json(
        json!({"tick": view.tick, "path": view.path, "bytes": view.bytes}),
    ))
}

async fn admin_drain(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tick = state.world.drain().await?;
    Ok(Json(json!({"admission": "closed", "tick": tick})))
}

/// The head as a statement the operator signs: what a player or auditor can
/// hold the operator to. `statement` is a JSON string (its exact bytes are
/// what `digest` covers); `signature` is `Signed::Status` over the digest.
pub fn attestation_json(state: &AppState) -> Value {
    let facts = &state.facts;
    let roots = state.world.live.status().roots;
    let statement = json!({
        "world": facts.world.as_str(),
        "tick": roots.tick,
        "state_root": roots.state_root.to_hex(),
        "input_root": roots.input_root.to_hex(),
        "receipt_root": roots.receipt_root.to_hex(),
        "continuity_root": roots.continuity_root.to_hex(),
        "genesis_root": facts.genesis_root.to_hex(),
        "package_root": facts.package_root.to_hex(),
        "runtime": everarcade_world::RUNTIME_VERSION,
        "protocol": everarcade_protocol::PROTOCOL_VERSION,
    })
    .to_string();
    let digest = file_digest(statement.as_bytes());
    json!({
        "statement": statement,
        "digest": digest.to_hex(),
        "public_key": facts.operator.public_key_hex(),
        "signature": hex::encode(facts.operator.sign(Signed::Status, &digest)),
    })
}

async fn attestation(
    State(state): State<AppState>,
    Path(world): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_world(&state, &world)?;
    check_published(&state)?;
    Ok(Json(attestation_json(&state)))
}

async fn admin_audit(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(audit) = &state.audit else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "this node runs no self-audit",
        ));
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    audit.send(reply).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the self-audit has stopped",
        )
    })?;
    let outcome = answer.await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the self-audit has stopped",
        )
    })?;
    Ok(Json(
        serde_json::to_value(outcome).expect("an outcome serializes"),
    ))
}

/// `POST /admin/backup` body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// Where to write the backup folder (outside the runtime root);
    /// default `<parent of the root>/<root name>-backups/<world>-<tick>-<n>`.
    backup_dir: Option<PathBuf>,
}

fn backup_error(error: everarcade_ops::OpsError) -> ApiError {
    let status = match error.class() {
        everarcade_world::ErrorClass::Operational => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, error.code(), error.to_string())
}

/// A hot backup: a checkpoint at the next tick boundary, then a copy of it,
/// the journal up to that boundary (a prefix of the append-only journal),
/// genesis, the package and the key history, while ticks go on.
async fn admin_backup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Some(root) = state.facts.disk_root.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "amnesia",
            "an amnesia node keeps nothing on disk to back up",
        ));
    };
    let bytes = body::read(&headers, body, state.body_limits).await?;
    let request: BackupRequest = if bytes.is_empty() {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|error| {
            let text = error.to_string();
            let code = if text.starts_with("unknown field") {
                "unknown_field"
            } else {
                "malformed_json"
            };
            ApiError::bad_request(code, text)
        })?
    };
    let point = state.world.backup_point().await?;
    let tick = point.checkpoint.tick;
    let out = match request.backup_dir {
        Some(dir) => {
            let dir = everarcade_ops::backup::absolute(&dir).map_err(backup_error)?;
            everarcade_ops::backup::check_outside_root(&dir, &root).map_err(backup_error)?;
            dir
        }
        None => {
            let parent =
                everarcade_ops::backup::default_backup_parent(&root).map_err(backup_error)?;
            everarcade_ops::backup::next_backup_dir(&parent, &state.facts.world, tick)
        }
    };
    let source = everarcade_ops::backup::BackupSource {
        world: state.facts.world_dir.clone(),
        checkpoint_tick: Some(tick),
        journal_end: point.journal_end,
    };
    let keys = state.facts.operator.clone();
    let report = tokio::task::spawn_blocking(move || {
        everarcade_ops::backup::write_backup(&source, &out, &keys)
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the backup task failed: {error}"),
        )
    })?
    .map_err(backup_error)?;
    Ok(Json(json!({
        "path": report.path.display().to_string(),
        "manifest": report.manifest_path.display().to_string(),
        "manifest_blake3": report.manifest_blake3.to_hex(),
        "tick": tick,
        "data_bytes": report.data_bytes,
        "seconds": report.seconds,
    })))
}
