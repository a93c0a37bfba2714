//! A package's viewer: the static files under `viewer/` of a world package
//! (docs/GAME_DEVELOPERS.md, "A viewer for the spectator page"), read once
//! and served only as the package root covers them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use everarcade_package::{Package, PackageFile};
use everarcade_protocol::Domain;

/// The folder of a package that holds its viewer.
pub const VIEWER_DIR: &str = "viewer/";

/// The viewer's entry module: an ES module exporting `start(api, root)`.
pub const VIEWER_ENTRY: &str = "viewer/viewer.js";

/// The most bytes a viewer's files may hold together (they are kept in
/// memory for as long as the node runs).
pub const VIEWER_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// The most files a viewer may hold.
pub const VIEWER_FILES_MAX: usize = 256;

/// One viewer file, checked against the package listing.
#[derive(Clone, Debug)]
pub struct ViewerFile {
    /// Its bytes, as the package root covers them.
    pub bytes: Vec<u8>,
    /// Its `Content-Type` (from the extension; see [`content_type`]).
    pub content_type: &'static str,
    /// Its strong ETag.
    pub etag: String,
}

/// What a world's package offers the spectator page.
#[derive(Clone, Debug)]
pub enum Viewer {
    /// No `viewer/` folder: the page shows the generic view.
    Absent,
    /// The files under `viewer/`, keyed by their path inside that folder.
    Ready(BTreeMap<String, ViewerFile>),
    /// A `viewer/` folder the node will not serve, and why. The node runs
    /// on; the page reports this and shows the generic view.
    Broken(String),
}

impl Viewer {
    /// The viewer of `package`: the files its listing holds under
    /// `viewer/`, read again from the package directory and each checked
    /// against the listing's hash (a file changed since the package was
    /// loaded is not covered by the root the world is bound to).
    pub fn load(package: &Package) -> Viewer {
        let listed: Vec<&PackageFile> = package
            .files
            .iter()
            .filter(|file| file.path.starts_with(VIEWER_DIR))
            .collect();
        if listed.is_empty() {
            return Viewer::Absent;
        }
        match read_checked(&package.dir, &listed) {
            Ok(files) => Viewer::Ready(files),
            Err(reason) => {
                tracing::warn!(%reason, "the package's viewer is not served; /spectate shows the generic view");
                Viewer::Broken(reason)
            }
        }
    }
}

fn read_checked(
    dir: &Path,
    listed: &[&PackageFile],
) -> Result<BTreeMap<String, ViewerFile>, String> {
    if listed.len() > VIEWER_FILES_MAX {
        return Err(format!(
            "viewer/ holds {} files, more than {VIEWER_FILES_MAX}",
            listed.len()
        ));
    }
    let total: u64 = listed.iter().map(|file| file.length).sum();
    if total > VIEWER_BYTES_MAX {
        return Err(format!(
            "viewer/ holds {total} bytes, more than {VIEWER_BYTES_MAX}"
        ));
    }
    if !listed.iter().any(|file| file.path == VIEWER_ENTRY) {
        return Err(format!(
            "the package has a viewer/ folder but no {VIEWER_ENTRY}"
        ));
    }
    let mut files = BTreeMap::new();
    for file in listed {
        let bytes = read_bounded(&dir.join(&file.path), file.length)
            .map_err(|error| format!("reading {}: {error}", file.path))?;
        if bytes.len() as u64 != file.length || Domain::PackageFile.hash(&bytes) != file.hash {
            return Err(format!(
                "{} changed on disk since the package was loaded: it is no longer the file the package root covers",
                file.path
            ));
        }
        let inner = file.path[VIEWER_DIR.len()..].to_string();
        files.insert(
            inner,
            ViewerFile {
                etag: crate::etag_of(&bytes),
                content_type: content_type(&file.path),
                bytes,
            },
        );
    }
    Ok(files)
}

/// Reads at most one byte more than `length`, so a grown file is caught
/// without reading all of it.
fn read_bounded(path: &Path, length: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(length + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The `Content-Type` of a viewer file, from its extension; anything not
/// listed is `application/octet-stream` (and `nosniff` keeps it so).
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension.to_ascii_lowercase().as_str() {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}
