//! The browser pages of EverArcade: the operator console a node serves at
//! `/`, the spectator page at `/spectate` (with the viewer a world package
//! ships in `viewer/`), and the manager console the runtime manager serves
//! at its `/` (docs/HTTP.md, "Pages").
//!
//! This crate is responsible for the pages' bytes (HTML, CSS and plain ES
//! modules, embedded in the binary with `include_bytes!`: no build step, no
//! framework, no outside request), for the response headers that make them
//! safe to serve (a strict Content-Security-Policy, `nosniff`, no referrer,
//! no framing) and for serving a package's viewer files only as the package
//! root covers them. It is not responsible for any data: the pages read the
//! node's and the manager's documented JSON APIs like any other client, and
//! no route here answers with world data.
//!
//! Architecture invariants:
//! - every route answers from memory: assets are compiled in, viewer files
//!   are read and checked against the package listing once, when the router
//!   is built, so a page request never touches the disk or the world actor;
//! - a viewer file is served only if its bytes hash to the package listing's
//!   entry (the package root covers it); a viewer that does not is reported
//!   as broken, and the node serves on unaffected;
//! - every page and asset carries [`CONTENT_SECURITY_POLICY`]: scripts,
//!   styles and connections from the node's own origin only, so the pages
//!   work the same over plain HTTP and over the node's TLS.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod assets;
pub mod viewer;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub use assets::{ASSETS, Asset, asset};
pub use viewer::{VIEWER_ENTRY, Viewer};

/// The Content-Security-Policy of every page, asset and viewer file: the
/// node's own origin for scripts, styles, images and connections (`fetch`,
/// the event stream), nothing inline, no plugins, no framing, no forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// Where the embedded assets are served: `/console/assets/<name>`.
pub const ASSET_PREFIX: &str = "/console/assets/";

/// The routes of a node: the operator console at `/`, the spectator page
/// at `/spectate`, the embedded assets and the package's viewer files at
/// `/spectate/viewer/<path inside viewer/>`. It has no fallback, so it
/// merges into the node's router (whose fallback answers `not_found`).
pub fn node_router(viewer: Viewer) -> Router {
    let pages = Arc::new(NodePages {
        spectate: assets::spectate_page(&viewer),
        viewer,
    });
    Router::new()
        .route("/", get(console_page))
        .route("/spectate", get(spectate_page))
        .route("/spectate/viewer/{*path}", get(viewer_file))
        .route("/console/assets/{name}", get(asset_file))
        .with_state(pages)
}

/// The routes of the manager console: the page at `/` and the embedded
/// assets. No fallback, like [`node_router`].
pub fn manager_router() -> Router {
    Router::new()
        .route("/", get(manager_page))
        .route(
            "/console/assets/{name}",
            get(|headers: HeaderMap, Path(name): Path<String>| async move {
                serve_asset(&headers, &name)
            }),
        )
}

struct NodePages {
    spectate: Vec<u8>,
    viewer: Viewer,
}

async fn console_page(headers: HeaderMap) -> Response {
    serve_asset(&headers, "console.html")
}

async fn manager_page(headers: HeaderMap) -> Response {
    serve_asset(&headers, "manager.html")
}

async fn spectate_page(State(pages): State<Arc<NodePages>>) -> Response {
    respond(
        "text/html; charset=utf-8",
        pages.spectate.clone(),
        None,
        &HeaderMap::new(),
    )
}

async fn asset_file(headers: HeaderMap, Path(name): Path<String>) -> Response {
    serve_asset(&headers, &name)
}

fn serve_asset(headers: &HeaderMap, name: &str) -> Response {
    match asset(name) {
        Some(found) => respond(
            found.content_type,
            found.bytes.to_vec(),
            Some(&found.etag()),
            headers,
        ),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no asset {name:?} (the console's assets are listed in docs/HTTP.md)"),
        ),
    }
}

async fn viewer_file(
    State(pages): State<Arc<NodePages>>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    match &pages.viewer {
        Viewer::Absent => error(
            StatusCode::NOT_FOUND,
            "viewer_not_found",
            "this world's package ships no viewer (no viewer/viewer.js); /spectate shows the generic view",
        ),
        Viewer::Broken(reason) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "viewer_broken",
            &format!("this world's viewer is not served: {reason}"),
        ),
        Viewer::Ready(files) => match files.get(&path) {
            Some(file) => respond(
                file.content_type,
                file.bytes.clone(),
                Some(&file.etag),
                &headers,
            ),
            None => error(
                StatusCode::NOT_FOUND,
                "viewer_not_found",
                &format!("the package has no file viewer/{path}"),
            ),
        },
    }
}

/// A 200 with the security headers, or a 304 when `If-None-Match` names
/// the current ETag.
fn respond(
    content_type: &'static str,
    bytes: Vec<u8>,
    etag: Option<&str>,
    request: &HeaderMap,
) -> Response {
    let not_modified = etag.is_some_and(|etag| {
        request
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag))
    });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = bytes.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    security_headers(headers);
    // Revalidated on every load: a node upgrade never serves stale pages.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(value) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// The headers every answer of this crate carries.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The node's error envelope, `{"error":{"code","message"}}`.
fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    let mut response = (status, axum::Json(body)).into_response();
    security_headers(response.headers_mut());
    response
}

/// A strong ETag over some bytes: the first 16 bytes of their BLAKE3, hex.
fn etag_of(bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes);
    let hex: String = hash.as_bytes()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"{hex}\"")
}
