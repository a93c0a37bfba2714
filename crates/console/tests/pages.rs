//! The pages' routes without a browser: security headers on every answer,
//! assets with revalidation, the first-load budget, no outside URL in any
//! asset, and a package's viewer served only as its package root covers it
//! (absent, ready, broken).

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use everarcade_console::{ASSETS, CONTENT_SECURITY_POLICY, Viewer, manager_router, node_router};
use everarcade_package::Package;
use http_body_util::BodyExt;
use tower::ServiceExt;

const ARENA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../runtime/games/2d-arena");

/// A page's first load must stay under this many bytes.
const FIRST_LOAD_BYTES_MAX: usize = 300 * 1024;

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn code(&self) -> String {
        let body: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        body["error"]["code"].as_str().unwrap().to_string()
    }
}

async fn get(router: &Router, path: &str, if_none_match: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        CONTENT_SECURITY_POLICY,
        "{path}"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
    Answer {
        status,
        headers,
        body,
    }
}

/// A copy of the 2d-arena whose `viewer/` holds `files`.
fn package_with_viewer(dir: &Path, files: &[(&str, &str)]) -> Package {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["world.toml", "world.wasm"] {
        std::fs::copy(Path::new(ARENA).join(name), dir.join(name)).unwrap();
    }
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    Package::load(dir).unwrap()
}

#[tokio::test]
async fn pages_and_assets_carry_the_security_headers() {
    let router = node_router(Viewer::Absent);
    let console = get(&router, "/", None).await;
    assert_eq!(console.status, StatusCode::OK);
    assert_eq!(
        console.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(console.text().contains("/console/assets/console.js"));
    for asset in ASSETS {
        let answer = get(&router, &format!("/console/assets/{}", asset.name), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", asset.name);
        assert_eq!(answer.headers[header::CONTENT_TYPE], asset.content_type);
        assert_eq!(answer.body, asset.bytes);
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-cache");
        let tag = answer.headers[header::ETAG].to_str().unwrap().to_string();
        let again = get(
            &router,
            &format!("/console/assets/{}", asset.name),
            Some(&tag),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", asset.name);
        assert!(again.body.is_empty());
    }
    let missing = get(&router, "/console/assets/nope.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "not_found");
    let manager = get(&manager_router(), "/", None).await;
    assert_eq!(manager.status, StatusCode::OK);
    assert!(manager.text().contains("/console/assets/manager.js"));
}

#[test]
fn no_asset_names_an_outside_origin_or_inline_code() {
    for asset in ASSETS {
        // The SVG namespace is an identifier, not a request.
        let text = String::from_utf8_lossy(asset.bytes).replace("http://www.w3.org/2000/svg", "");
        // Inline scripts, styles and handlers would need 'unsafe-inline'.
        for forbidden in [
            "http://",
            "https://",
            "<script>",
            " style=\"",
            " onclick=",
            " onload=",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} contains {forbidden:?}",
                asset.name
            );
        }
    }
}

/// The bytes a browser fetches on a page's first load: the page and every
/// asset it references, transitively (modules import modules).
fn first_load(page: &str, extra: &[(&str, usize)]) -> usize {
    let asset = |name: &str| everarcade_console::asset(name).unwrap();
    let mut seen = vec![page.to_string()];
    let mut index = 0;
    while index < seen.len() {
        let text = String::from_utf8_lossy(asset(&seen[index]).bytes).into_owned();
        for other in ASSETS {
            let referenced = text.contains(&format!("/console/assets/{}", other.name))
                || text.contains(&format!("'./{}'", other.name));
            if referenced && !seen.iter().any(|name| name == other.name) {
                seen.push(other.name.to_string());
            }
        }
        index += 1;
    }
    let bytes: usize = seen.iter().map(|name| asset(name).bytes.len()).sum();
    let extra: usize = extra.iter().map(|(_, bytes)| bytes).sum();
    println!(
        "{page}: {} files, {} bytes + {extra} from the package",
        seen.len(),
        bytes
    );
    bytes + extra
}

#[test]
fn first_loads_stay_under_300_kib() {
    let console = first_load("console.html", &[]);
    assert!(console < FIRST_LOAD_BYTES_MAX, "{console}");
    let viewer = std::fs::read(Path::new(ARENA).join("viewer/viewer.js")).unwrap();
    let spectate = first_load("spectate.html", &[("viewer.js", viewer.len())]);
    assert!(spectate < FIRST_LOAD_BYTES_MAX, "{spectate}");
    let manager = first_load("manager.html", &[]);
    assert!(manager < FIRST_LOAD_BYTES_MAX, "{manager}");
    // The console needs its scripts: the walk found them.
    assert!(console > 20 * 1024, "{console}");
}

#[tokio::test]
async fn a_package_without_a_viewer_gets_the_generic_view() {
    let temp = tempfile::tempdir().unwrap();
    let package = package_with_viewer(temp.path(), &[]);
    let viewer = Viewer::load(&package);
    assert!(matches!(viewer, Viewer::Absent), "{viewer:?}");
    let router = node_router(viewer);
    let page = get(&router, "/spectate", None).await;
    assert!(
        page.text()
            .contains("<meta name=\"everarcade-viewer\" content=\"none\">")
    );
    let file = get(&router, "/spectate/viewer/viewer.js", None).await;
    assert_eq!(file.status, StatusCode::NOT_FOUND);
    assert_eq!(file.code(), "viewer_not_found");
}

#[tokio::test]
async fn a_viewer_is_served_as_the_package_root_covers_it() {
    let temp = tempfile::tempdir().unwrap();
    let package = package_with_viewer(
        temp.path(),
        &[
            ("viewer/viewer.js", "export function start() {}\n"),
            ("viewer/art/sprites.svg", "<svg/>"),
            ("viewer/data.bin", "x"),
        ],
    );
    let router = node_router(Viewer::load(&package));
    let page = get(&router, "/spectate", None).await;
    assert!(
        page.text()
            .contains("<meta name=\"everarcade-viewer\" content=\"ready\">")
    );
    let entry = get(&router, "/spectate/viewer/viewer.js", None).await;
    assert_eq!(entry.status, StatusCode::OK);
    assert_eq!(
        entry.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(entry.text(), "export function start() {}\n");
    let nested = get(&router, "/spectate/viewer/art/sprites.svg", None).await;
    assert_eq!(nested.headers[header::CONTENT_TYPE], "image/svg+xml");
    let binary = get(&router, "/spectate/viewer/data.bin", None).await;
    assert_eq!(
        binary.headers[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    for missing in ["nope.js", "../world.toml", "art/../../world.wasm"] {
        let answer = get(&router, &format!("/spectate/viewer/{missing}"), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(answer.code(), "viewer_not_found", "{missing}");
    }
    // Changed on disk after loading: a later node start reads it again,
    // and the files it serves are the ones it checked.
    std::fs::write(
        temp.path().join("viewer/viewer.js"),
        "export function start() { steal(); }\n",
    )
    .unwrap();
    let served = get(&router, "/spectate/viewer/viewer.js", None).await;
    assert_eq!(served.text(), "export function start() {}\n");
}

#[tokio::test]
async fn a_viewer_the_root_does_not_cover_is_reported_broken() {
    let temp = tempfile::tempdir().unwrap();
    let package = package_with_viewer(
        temp.path(),
        &[("viewer/viewer.js", "export function start() {}\n")],
    );
    std::fs::write(
        temp.path().join("viewer/viewer.js"),
        "export function start() { steal(); }\n",
    )
    .unwrap();
    let viewer = Viewer::load(&package);
    let Viewer::Broken(reason) = &viewer else {
        panic!("{viewer:?}");
    };
    assert!(
        reason.contains("viewer/viewer.js changed on disk"),
        "{reason}"
    );
    let router = node_router(viewer);
    let page = get(&router, "/spectate", None).await;
    assert!(
        page.text()
            .contains("<meta name=\"everarcade-viewer\" content=\"broken\">"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("changed on disk"));
    let file = get(&router, "/spectate/viewer/viewer.js", None).await;
    assert_eq!(file.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(file.code(), "viewer_broken");

    let other = tempfile::tempdir().unwrap();
    let package = package_with_viewer(other.path(), &[("viewer/main.js", "1")]);
    let Viewer::Broken(reason) = Viewer::load(&package) else {
        panic!("a viewer without viewer.js is broken");
    };
    assert!(reason.contains("no viewer/viewer.js"), "{reason}");
}

#[test]
fn the_arena_ships_a_viewer() {
    let package = Package::load(Path::new(ARENA)).unwrap();
    let Viewer::Ready(files) = Viewer::load(&package) else {
        panic!("the 2d-arena's viewer loads");
    };
    assert!(files.contains_key("viewer.js"));
    assert!(
        package
            .files
            .iter()
            .any(|file| file.path == everarcade_console::VIEWER_ENTRY),
        "the package root covers the viewer"
    );
}
