//! Temporary directories that tests running in parallel, in one process or
//! several, never share: `tempfile`'s, named after the test that made them.

use std::path::{Path, PathBuf};

/// A new, empty directory `<temp>/ea-<label>-<random>`, removed with
/// everything in it when dropped. A thin wrapper over [`tempfile::TempDir`]
/// that keeps the call sites of the workspace's tests short.
#[derive(Debug)]
pub struct TempDir {
    dir: tempfile::TempDir,
}

impl TempDir {
    /// Creates the directory; `label` only helps a reader find it.
    pub fn new(label: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ea-{label}-"))
            .tempdir()
            .expect("create a temporary directory");
        TempDir { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `name` inside the directory (not created).
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }
}
