//! Package errors. Each has a stable code, see [`PackageError::code`].

use std::path::PathBuf;

/// Why a package cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The package path does not exist or cannot be read.
    #[error("package {path} cannot be read: {source}")]
    NotFound {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The package path is not a directory.
    #[error("package path {path} is not a directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A file or directory inside the package cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A symlink, special file, or a name that is not plain UTF-8.
    #[error("{path}: {reason}; packages may hold only regular files and directories")]
    PathEscape {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The package exceeds the file-count or size ceiling.
    #[error("package is too large: {reason}")]
    TooLarge {
        /// Which ceiling was hit.
        reason: String,
    },
    /// `world.toml` is absent.
    #[error("manifest {path} is missing")]
    ManifestMissing {
        /// Where it was expected.
        path: PathBuf,
    },
    /// `world.toml` is not valid TOML or does not match the schema.
    #[error("manifest world.toml is invalid: {message}")]
    ManifestInvalid {
        /// The parser's message.
        message: String,
    },
    /// The `abi` field names an ABI this runtime does not implement.
    #[error("manifest abi {abi:?} is unknown; this runtime implements \"ea-world/1\"")]
    UnknownAbi {
        /// The abi given.
        abi: String,
    },
    /// The `version` field is not semver.
    #[error("manifest version {version:?} is not semver (MAJOR.MINOR.PATCH): {message}")]
    VersionNotSemver {
        /// The version given.
        version: String,
        /// The parser's message.
        message: String,
    },
    /// A limit is zero or above the runtime's ceiling.
    #[error("manifest limit {name} = {value} is out of range (1..={max})")]
    LimitOutOfRange {
        /// The limit.
        name: &'static str,
        /// Its value.
        value: u64,
        /// The ceiling.
        max: u64,
    },
    /// The `module` field is not a plain relative path inside the package.
    #[error("manifest module path {module:?} must be a relative path inside the package")]
    ModulePath {
        /// The module path given.
        module: String,
    },
    /// The module file named by the manifest is absent.
    #[error("module {path} is missing")]
    ModuleMissing {
        /// Where it was expected.
        path: PathBuf,
    },
    /// The module is not valid WebAssembly under the determinism profile.
    #[error("module is not valid WebAssembly for this runtime: {message}")]
    InvalidWasm {
        /// The validator's message.
        message: String,
    },
    /// The module imports something outside module `ea`, or an unknown `ea` name.
    #[error(
        "module imports {module}.{name}, which is not part of ABI ea-world/1 (only ea.state_get, ea.state_set, ea.state_del, ea.emit, ea.random_seed, ea.log)"
    )]
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// An `ea` import has the wrong type.
    #[error("import ea.{name} has type {found}; ABI ea-world/1 requires {expected}")]
    ImportSignature {
        /// Import name.
        name: String,
        /// The required type.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// A required export is absent.
    #[error("module does not export {name}, which ABI ea-world/1 requires")]
    MissingExport {
        /// Export name.
        name: &'static str,
    },
    /// An ABI export has the wrong type.
    #[error("export {name} has type {found}; ABI ea-world/1 requires {expected}")]
    ExportSignature {
        /// Export name.
        name: &'static str,
        /// The required type.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// The module has a start function, which would run outside any tick.
    #[error(
        "module has a start function; ABI ea-world/1 forbids it (state lives in the host: initialise it in ea_genesis)"
    )]
    StartFunction,
    /// The memory declares no maximum.
    #[error(
        "module memory declares no maximum; ABI ea-world/1 requires a fixed maximum (link with --max-memory)"
    )]
    MemoryMaximumMissing,
    /// The memory maximum exceeds the manifest's `memory_bytes`.
    #[error(
        "module memory maximum is {maximum_bytes} bytes, over the manifest's memory_bytes = {limit_bytes}"
    )]
    MemoryMaximumTooLarge {
        /// Declared maximum in bytes.
        maximum_bytes: u64,
        /// The manifest's limit.
        limit_bytes: u64,
    },
}

impl PackageError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PackageError::NotFound { .. } => "package_not_found",
            PackageError::NotADirectory { .. } => "package_not_a_directory",
            PackageError::Io { .. } => "package_unreadable",
            PackageError::PathEscape { .. } => "package_path_escape",
            PackageError::TooLarge { .. } => "package_too_large",
            PackageError::ManifestMissing { .. } => "manifest_missing",
            PackageError::ManifestInvalid { .. } => "manifest_invalid",
            PackageError::UnknownAbi { .. } => "abi_unknown",
            PackageError::VersionNotSemver { .. } => "version_not_semver",
            PackageError::LimitOutOfRange { .. } => "limit_out_of_range",
            PackageError::ModulePath { .. } => "module_path_invalid",
            PackageError::ModuleMissing { .. } => "module_missing",
            PackageError::InvalidWasm { .. } => "wasm_invalid",
            PackageError::ForbiddenImport { .. } => "import_forbidden",
            PackageError::ImportSignature { .. } => "import_signature",
            PackageError::MissingExport { .. } => "export_missing",
            PackageError::ExportSignature { .. } => "export_signature",
            PackageError::StartFunction => "start_function_forbidden",
            PackageError::MemoryMaximumMissing => "memory_maximum_missing",
            PackageError::MemoryMaximumTooLarge { .. } => "memory_maximum_too_large",
        }
    }
}
