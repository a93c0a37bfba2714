//! What can go wrong while building a release.

use std::io;
use std::path::PathBuf;

use everarcade_package::PackageError;

/// A failed `dist`.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A tool the release needs (cargo, rustc, the binary itself) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line, for the operator to rerun.
        command: String,
        /// Its exit status and the end of what it printed.
        detail: String,
    },
    /// A bundled world package does not load.
    #[error("world package {}: {source}", path.display())]
    Package {
        /// The package directory.
        path: PathBuf,
        /// Why it does not load.
        #[source]
        source: PackageError,
    },
    /// A package file's bytes changed between loading the package and
    /// reading it into the archive: the package root would not describe what
    /// ships.
    #[error("world package {}: {file} changed while the release was assembled; run dist again", path.display())]
    PackageChanged {
        /// The package directory.
        path: PathBuf,
        /// The file, relative to it.
        file: String,
    },
    /// The binary's `--version` is not `everarcade-runtime <semver>`.
    #[error("{} --version printed {output:?}, not `everarcade-runtime <version>`", binary.display())]
    BinaryVersion {
        /// The binary.
        binary: PathBuf,
        /// What it printed.
        output: String,
    },
    /// A bad `cargo xtask` command line.
    #[error("{0}")]
    Usage(String),
}

impl DistError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DistError::Io { .. } => "dist_io",
            DistError::Command { .. } => "dist_command_failed",
            DistError::Package { .. } => "dist_package_invalid",
            DistError::PackageChanged { .. } => "dist_package_changed",
            DistError::BinaryVersion { .. } => "dist_binary_version",
            DistError::Usage(_) => "usage",
        }
    }

    /// An I/O error on `path` while doing `action`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> DistError {
        let path = path.into();
        move |source| DistError::Io {
            action,
            path,
            source,
        }
    }
}
