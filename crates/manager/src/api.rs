//! The manager's internal REST API (docs/MANAGER.md, "API"): JSON with the
//! node's error envelope; mutating routes need `Authorization: Bearer
//! <token>`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use everarcade_node::ApiError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Manager;
use crate::config::RestartPolicy;
use crate::db::Record;
use crate::ops::{Done, OpError, Source};

type Shared = State<Arc<Manager>>;
type Answer = Result<Response, ApiError>;

/// The manager's router.
pub fn router(manager: Arc<Manager>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/internal/runtimes", get(list))
        .route("/api/v1/internal/runtimes/{world}", get(show))
        .route("/api/v1/internal/runtimes/{world}/start", post(start))
        .route("/api/v1/internal/runtimes/{world}/stop", post(stop))
        .route("/api/v1/internal/runtimes/{world}/restart", post(restart))
        .route("/api/v1/internal/runtimes/{world}/patch", post(patch))
        .route(
            "/api/v1/internal/runtimes/{world}/container",
            delete(cleanup),
        )
        .route(
            "/api/v1/internal/runtimes/{world}/operations",
            get(operations),
        )
        .route("/api/v1/internal/operations", get(all_operations))
        .route("/api/v1/internal/health_events", get(health_events))
        .route("/api/v1/internal/events", get(events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(manager)
        // The manager console (`/` and its assets) reads only the routes above.
        .merge(everarcade_console::manager_router())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} exists with another method", uri.path()),
    )
}

fn ok(value: Value) -> Answer {
    Ok(axum::Json(value).into_response())
}

fn db_down(error: crate::db::DbError) -> ApiError {
    OpError::from(error).0
}

async fn healthz() -> Answer {
    ok(json!({"status": "ok"}))
}

/// Pings the database and Redis afresh; 503 naming the first failing one.
async fn readyz(State(manager): Shared) -> Answer {
    if let Err(error) = manager.db.ping().await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("database: {error}"),
        ));
    }
    if let Some(redis) = &manager.redis
        && let Err(error) = redis.ping().await
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("redis: {error}"),
        ));
    }
    ok(json!({"status": "ready"}))
}

async fn metrics(State(manager): Shared) -> Response {
    let (counts, up) = match manager.db.status_counts().await {
        Ok(counts) => (counts, true),
        Err(_) => (Vec::new(), false),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        manager.metrics.render(&counts, up),
    )
        .into_response()
}

/// A record with its health snapshot.
async fn view(manager: &Manager, record: Record) -> Value {
    let health = manager.latest_snapshot(&record.world).await;
    let mut value = serde_json::to_value(&record).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "health".into(),
            serde_json::to_value(health).unwrap_or_default(),
        );
    }
    value
}

async fn list(State(manager): Shared) -> Answer {
    let records = manager.db.records().await.map_err(db_down)?;
    let mut runtimes = Vec::with_capacity(records.len());
    for record in records {
        runtimes.push(view(&manager, record).await);
    }
    ok(json!({"runtimes": runtimes}))
}

async fn show(State(manager): Shared, Path(world): Path<String>) -> Answer {
    crate::ops::world_id(&world).map_err(|e| e.0)?;
    let record = manager.known(&world).await.map_err(|e| e.0)?;
    ok(view(&manager, record).await)
}

/// Refuses a request without the bearer token; the operation's source.
fn authorize(manager: &Manager, headers: &HeaderMap) -> Result<Source, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let matches = given.is_some_and(|given| {
        given.len() == manager.token.len()
            && given
                .bytes()
                .zip(manager.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !matches {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this route needs Authorization: Bearer <token> (the runtime root's admin.token)",
        ));
    }
    let cli = headers
        .get("x-op-source")
        .is_some_and(|value| value.as_bytes() == b"cli");
    Ok(if cli { Source::Cli } else { Source::AdminRest })
}

/// Parses a JSON body (an empty body is `{}`), with the node's codes.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = match bytes.iter().all(u8::is_ascii_whitespace) {
        true => b"{}",
        false => bytes,
    };
    serde_json::from_slice(bytes).map_err(|error| {
        let message = error.to_string();
        let code = match message.contains("unknown field") {
            true => "unknown_field",
            false => "malformed_json",
        };
        ApiError::bad_request(code, format!("the body: {message}"))
    })
}

async fn done(manager: &Manager, result: Result<Done, OpError>) -> Answer {
    let done = result.map_err(|e| e.0)?;
    let operation = manager.db.operation(done.operation).await.ok().flatten();
    let mut value = view(manager, done.record).await;
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "operation".into(),
            serde_json::to_value(operation).unwrap_or_default(),
        );
    }
    ok(value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    package: Option<PathBuf>,
    restart_policy: Option<String>,
}

async fn start(
    State(manager): Shared,
    Path(world): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let source = authorize(&manager, &headers)?;
    let request: StartBody = body(&bytes)?;
    let policy = request
        .restart_policy
        .map(|text| {
            RestartPolicy::parse(&text).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_restart_policy",
                    format!("restart_policy {text:?}: never or on-failure"),
                )
            })
        })
        .transpose()?;
    let result = manager
        .start(&world, request.package, policy, source, None)
        .await;
    done(&manager, result).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    reason: Option<String>,
}

async fn stop(
    State(manager): Shared,
    Path(world): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let source = authorize(&manager, &headers)?;
    let request: StopBody = body(&bytes)?;
    let reason = request.reason.unwrap_or_else(|| "admin_request".into());
    let result = manager.stop(&world, &reason, source, None).await;
    done(&manager, result).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn restart(
    State(manager): Shared,
    Path(world): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let source = authorize(&manager, &headers)?;
    let Empty {} = body(&bytes)?;
    let result = manager.restart(&world, source, None).await;
    done(&manager, result).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    package: PathBuf,
}

async fn patch(
    State(manager): Shared,
    Path(world): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let source = authorize(&manager, &headers)?;
    let request: PatchBody = body(&bytes)?;
    let result = manager.patch(&world, request.package, source, None).await;
    done(&manager, result).await
}

async fn cleanup(State(manager): Shared, Path(world): Path<String>, headers: HeaderMap) -> Answer {
    let source = authorize(&manager, &headers)?;
    let result = manager.cleanup(&world, source, None).await;
    done(&manager, result).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    world: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

fn page_query(
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Page, ApiError> {
    query
        .map(|Query(page)| page)
        .map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))
}

async fn operations(
    State(manager): Shared,
    Path(world): Path<String>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let page = page_query(query)?;
    manager.known(&world).await.map_err(|e| e.0)?;
    operation_log(&manager, Some(&world), &page).await
}

/// The newest operation rows (of one world, or all), `?limit` of them.
async fn operation_log(manager: &Manager, world: Option<&str>, page: &Page) -> Answer {
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let rows = manager.db.operations(world, limit).await.map_err(db_down)?;
    ok(json!({"operations": rows}))
}

async fn all_operations(
    State(manager): Shared,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let page = page_query(query)?;
    operation_log(&manager, page.world.as_deref(), &page).await
}

async fn health_events(
    State(manager): Shared,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let page = page_query(query)?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let rows = manager
        .db
        .events(page.world.as_deref(), page.after.unwrap_or(0), limit)
        .await
        .map_err(db_down)?;
    ok(json!({"events": rows}))
}

/// Server-sent events: the stored events after `?after=ID` (default: none),
/// then each new one as it happens; `event: <event_type>`, `id: <id>`,
/// `data: <the event as JSON>`.
async fn events(
    State(manager): Shared,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let page = page_query(query)?;
    let receiver = manager.events.subscribe();
    let backlog = match page.after {
        Some(after) => manager
            .db
            .events(page.world.as_deref(), after, 1000)
            .await
            .map_err(db_down)?,
        None => Vec::new(),
    };
    let last = backlog.last().map_or(page.after.unwrap_or(0), |e| e.id);
    let filter = page.world;
    let state = (backlog.into_iter(), receiver, last, filter);
    let stream = futures_util::stream::unfold(
        state,
        |(mut backlog, mut receiver, last, filter)| async move {
            if let Some(event) = backlog.next() {
                let item = sse_event(&event);
                return Some((Ok(item), (backlog, receiver, last, filter)));
            }
            loop {
                match receiver.recv().await {
                    Ok(event) if event.id <= last => continue,
                    Ok(event) if filter.as_ref().is_some_and(|w| *w != event.world) => continue,
                    Ok(event) => {
                        let item = sse_event(&event);
                        return Some((Ok(item), (backlog, receiver, last, filter)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_event(event: &crate::db::HealthEvent) -> Event {
    Event::default()
        .event(event.event_type.clone())
        .id(event.id.to_string())
        .data(serde_json::to_string(event).unwrap_or_default())
}
