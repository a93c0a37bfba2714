//! The canonical file listing and the package root.
//!
//! `package_root = H(Package, count u32 || for each file sorted by path bytes:
//! path_len u32 || path (UTF-8, '/'-separated, relative) || length u64 || H(PackageFile, contents))`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use everarcade_protocol::{Domain, Hash};

use crate::PackageError;

/// The most files a package may hold.
pub const PACKAGE_FILES_MAX: usize = 4_096;
/// The most bytes a package may hold, all files together.
pub const PACKAGE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The deepest directory nesting inside a package.
pub const PACKAGE_DEPTH_MAX: usize = 16;

/// One file of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFile {
    /// Relative path with `/` separators.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// `H(PackageFile, contents)`.
    pub hash: Hash,
}

/// The package root over a listing (sorted here, whatever the input order).
pub fn package_root(files: &[PackageFile]) -> Hash {
    let mut sorted: Vec<&PackageFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut hasher = Domain::Package.hasher();
    hasher.update_u32(sorted.len() as u32);
    for file in sorted {
        hasher
            .update_u32(file.path.len() as u32)
            .update(file.path.as_bytes())
            .update_u64(file.length)
            .update(&file.hash.0);
    }
    hasher.finalize()
}

type Contents = BTreeMap<String, Vec<u8>>;

/// Reads every regular file under `dir`, refusing symlinks and special files.
pub(crate) fn read_files(dir: &Path) -> Result<(Vec<PackageFile>, Contents), PackageError> {
    let mut contents = Contents::new();
    let mut total_bytes = 0u64;
    walk(dir, "", 0, &mut contents, &mut total_bytes)?;
    let files = contents
        .iter()
        .map(|(path, bytes)| PackageFile {
            path: path.clone(),
            length: bytes.len() as u64,
            hash: Domain::PackageFile.hash(bytes),
        })
        .collect();
    Ok((files, contents))
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    contents: &mut Contents,
    total_bytes: &mut u64,
) -> Result<(), PackageError> {
    if depth > PACKAGE_DEPTH_MAX {
        let reason = format!("directories nest deeper than {PACKAGE_DEPTH_MAX}");
        return Err(PackageError::TooLarge { reason });
    }
    let io = |source| PackageError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let escape = |reason| PackageError::PathEscape {
            path: path.clone(),
            reason,
        };
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| escape("file name is not UTF-8"))?;
        if name.contains('\\') {
            return Err(escape("file name contains a backslash"));
        }
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let metadata = std::fs::symlink_metadata(&path).map_err(|source| PackageError::Io {
            path: path.clone(),
            source,
        })?;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            return Err(escape("is a symlink"));
        } else if kind.is_dir() {
            walk(&path, &relative, depth + 1, contents, total_bytes)?;
        } else if kind.is_file() {
            // Refuse an oversized file before reading it, and read at most one
            // byte past the budget in case it grew since: the ceiling bounds
            // memory, not just the answer.
            check_size(
                contents.len() + 1,
                total_bytes.saturating_add(metadata.len()),
            )?;
            let bytes = read_bounded(&path, PACKAGE_BYTES_MAX - *total_bytes + 1)?;
            *total_bytes += bytes.len() as u64;
            check_size(contents.len() + 1, *total_bytes)?;
            contents.insert(relative, bytes);
        } else {
            return Err(escape("is not a regular file or directory"));
        }
    }
    Ok(())
}

fn read_bounded(path: &Path, length_max: u64) -> Result<Vec<u8>, PackageError> {
    let io = |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(length_max)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

fn check_size(files: usize, bytes: u64) -> Result<(), PackageError> {
    if files > PACKAGE_FILES_MAX {
        return Err(PackageError::TooLarge {
            reason: format!("more than {PACKAGE_FILES_MAX} files"),
        });
    }
    if bytes > PACKAGE_BYTES_MAX {
        return Err(PackageError::TooLarge {
            reason: format!("more than {PACKAGE_BYTES_MAX} bytes"),
        });
    }
    Ok(())
}
