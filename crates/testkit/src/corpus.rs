//! The committed fuzz corpora under `fuzz/corpus/<target>/`, which the
//! stable-toolchain tests replay through the same bodies as the cargo-fuzz
//! targets (fuzz/README.md).

use std::path::{Path, PathBuf};

/// `fuzz/corpus/<target>` of this repository.
pub fn dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of `target`'s corpus with its bytes, sorted by path.
///
/// # Panics
///
/// If the directory or a file in it cannot be read: the corpus is part of
/// the repository.
pub fn files(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = dir(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}
