//! `dist`: build the runtime and assemble the release directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use everarcade_package::Package;
use everarcade_protocol::{Domain, PROTOCOL_VERSION};

use crate::archive::{ArchiveFile, ArchiveOptions, write_tar_gz};
use crate::error::DistError;
use crate::manifest::{
    BundledPackage, FileEntry, MANIFEST_FILE, MANIFEST_FORMAT, RUNTIME_NAME, ReleaseManifest,
};
use crate::sums::{self, SUMS_FILE};

/// The cargo package of the runtime binary.
pub const RUNTIME_PACKAGE: &str = "everarcade-runtime";
/// World packages bundled in the release (source directories under the
/// workspace root); each lands in `packages/<directory name>`.
pub const BUNDLED_PACKAGES: &[&str] = &["runtime/games/2d-arena"];
/// The systemd unit template (source, then path inside the release).
pub const SYSTEMD_UNIT: (&str, &str) = (
    "dist/systemd/everarcade-runtime@.service",
    "systemd/everarcade-runtime@.service",
);
/// Operator documentation (source, then path inside the release).
pub const DOCS: &[(&str, &str)] = &[
    ("README.md", "docs/README.md"),
    ("docs/OPERATIONS.md", "docs/OPERATIONS.md"),
    ("docs/HTTP.md", "docs/HTTP.md"),
];
/// The gzip level of a real release.
pub const COMPRESSION_LEVEL_DEFAULT: u32 = 9;
/// How much of a failed command's output an error quotes.
const COMMAND_OUTPUT_QUOTED_BYTES_MAX: usize = 2_000;

/// The mode of a file that ships executable, and of one that does not.
const MODE_EXECUTABLE: u32 = 0o755;
const MODE_REGULAR: u32 = 0o644;

/// Facts about the build that the manifest records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// What the binary's `--version` prints after its name.
    pub runtime_version: String,
    /// The target triple (the host's: dist builds without `--target`).
    pub target: String,
    /// `rustc -vV`'s first line.
    pub rustc: String,
    /// `git rev-parse HEAD`, if the workspace is a git checkout.
    pub git_commit: Option<String>,
    /// Whether tracked files differ from that commit.
    pub git_dirty: Option<bool>,
    /// Every archive entry's mtime: `SOURCE_DATE_EPOCH`, else the commit's
    /// time, else 0.
    pub source_date_epoch: u64,
}

impl BuildInfo {
    /// Asks the binary, rustc and git.
    pub fn detect(workspace_root: &Path, binary: &Path) -> Result<BuildInfo, DistError> {
        let version_output = run(Command::new(binary).arg("--version"))?;
        let runtime_version =
            parse_version(&version_output).ok_or_else(|| DistError::BinaryVersion {
                binary: binary.to_path_buf(),
                output: version_output.trim().to_string(),
            })?;
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let rustc_output = run(Command::new(rustc).arg("-vV"))?;
        let rustc_line = rustc_output.lines().next().unwrap_or_default().to_string();
        let target = rustc_output
            .lines()
            .find_map(|line| line.strip_prefix("host: "))
            .map(str::to_string)
            .ok_or_else(|| DistError::Command {
                command: "rustc -vV".into(),
                detail: "no `host:` line".into(),
            })?;
        let git =
            |args: &[&str]| run(Command::new("git").args(args).current_dir(workspace_root)).ok();
        let git_commit = git(&["rev-parse", "HEAD"]).map(|out| out.trim().to_string());
        let git_dirty = git_commit.as_ref().and_then(|_| {
            git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|out| !out.trim().is_empty())
        });
        let commit_time = git_commit
            .as_ref()
            .and_then(|_| git(&["log", "-1", "--format=%ct"]))
            .and_then(|out| out.trim().parse().ok());
        let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|value| value.trim().parse().ok())
            .or(commit_time)
            .unwrap_or(0);
        Ok(BuildInfo {
            runtime_version,
            target,
            rustc: rustc_line,
            git_commit,
            git_dirty,
            source_date_epoch,
        })
    }
}

/// `everarcade-runtime 1.2.3` → `1.2.3`.
fn parse_version(output: &str) -> Option<String> {
    let version = output
        .trim()
        .strip_prefix(RUNTIME_NAME)?
        .strip_prefix(' ')?;
    let valid = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    valid.then(|| version.to_string())
}

/// What to assemble, and where.
#[derive(Clone, Debug)]
pub struct DistConfig {
    /// The workspace root (sources of the package, unit and docs).
    pub workspace_root: PathBuf,
    /// The release directory to write (created if missing).
    pub out_dir: PathBuf,
    /// The runtime binary to ship.
    pub binary: PathBuf,
    /// What the manifest records about the build.
    pub build: BuildInfo,
    /// gzip level, 0–9 ([`COMPRESSION_LEVEL_DEFAULT`] for a real release).
    pub compression_level: u32,
}

/// A release directory that was written.
#[derive(Clone, Debug)]
pub struct Release {
    /// The tarball.
    pub archive: PathBuf,
    /// `release-manifest.json` beside it.
    pub manifest_path: PathBuf,
    /// `SHA256SUMS`.
    pub sums_path: PathBuf,
    /// The manifest.
    pub manifest: ReleaseManifest,
    /// SHA-256 of the tarball, hex.
    pub archive_sha256: String,
    /// SHA-256 of the manifest, hex.
    pub manifest_sha256: String,
}

/// The workspace root this xtask was built from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits one level below the workspace root")
        .to_path_buf()
}

/// `cargo build --release -p everarcade-runtime`; returns the binary's path
/// as cargo reports it (so a `CARGO_TARGET_DIR` is honoured).
pub fn build_runtime(workspace_root: &Path) -> Result<PathBuf, DistError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root)
        .args(["build", "--release", "--package", RUNTIME_PACKAGE])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    let stdout = run(&mut command)?;
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == RUNTIME_PACKAGE)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| DistError::Command {
            command: format!("cargo build --release --package {RUNTIME_PACKAGE}"),
            detail: "cargo reported no executable for the runtime".into(),
        })
}

/// Writes the tarball, `release-manifest.json` and `SHA256SUMS` into
/// `config.out_dir`. Nothing is half-written: each file goes to a temporary
/// name first and is renamed once synced.
pub fn assemble(config: &DistConfig) -> Result<Release, DistError> {
    let root = &config.workspace_root;
    let build = &config.build;
    let mut files = vec![ArchiveFile {
        path: format!("bin/{RUNTIME_NAME}"),
        mode: MODE_EXECUTABLE,
        bytes: read(&config.binary)?,
    }];
    let mut packages = Vec::new();
    for source in BUNDLED_PACKAGES {
        let (package, package_files) = bundle_package(&root.join(source))?;
        packages.push(package);
        files.extend(package_files);
    }
    for (source, path) in std::iter::once(&SYSTEMD_UNIT).chain(DOCS) {
        files.push(ArchiveFile {
            path: path.to_string(),
            mode: MODE_REGULAR,
            bytes: read(&root.join(source))?,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = ReleaseManifest {
        format: MANIFEST_FORMAT.to_string(),
        runtime_version: build.runtime_version.clone(),
        protocol_version: PROTOCOL_VERSION,
        target: build.target.clone(),
        rustc: build.rustc.clone(),
        git_commit: build.git_commit.clone(),
        git_dirty: build.git_dirty,
        source_date_epoch: build.source_date_epoch,
        archive: ReleaseManifest::archive_name(&build.runtime_version, &build.target),
        archive_prefix: ReleaseManifest::archive_prefix_for(&build.runtime_version, &build.target),
        binary: format!("bin/{RUNTIME_NAME}"),
        packages,
        files: files.iter().map(file_entry).collect(),
    };
    let manifest_bytes = manifest.to_bytes();
    files.push(ArchiveFile {
        path: MANIFEST_FILE.to_string(),
        mode: MODE_REGULAR,
        bytes: manifest_bytes.clone(),
    });
    write_release(config, manifest, &manifest_bytes, &files)
}

fn write_release(
    config: &DistConfig,
    manifest: ReleaseManifest,
    manifest_bytes: &[u8],
    files: &[ArchiveFile],
) -> Result<Release, DistError> {
    let out = &config.out_dir;
    fs::create_dir_all(out).map_err(DistError::io("create", out))?;
    let options = ArchiveOptions {
        prefix: manifest.archive_prefix.clone(),
        mtime: manifest.source_date_epoch,
        compression_level: config.compression_level,
    };
    let archive = out.join(&manifest.archive);
    write_file(&archive, |file| {
        write_tar_gz(file, &options, files).map(drop)
    })?;
    let manifest_path = out.join(MANIFEST_FILE);
    write_file(&manifest_path, |file| file.write_all(manifest_bytes))?;
    let (archive_sha256, _) =
        sums::sha256_file(&archive).map_err(DistError::io("read", &archive))?;
    let manifest_sha256 = sums::sha256_hex(manifest_bytes);
    let sums_text = sums::render(&[
        (manifest.archive.clone(), archive_sha256.clone()),
        (MANIFEST_FILE.to_string(), manifest_sha256.clone()),
    ]);
    let sums_path = out.join(SUMS_FILE);
    write_file(&sums_path, |file| file.write_all(sums_text.as_bytes()))?;
    Ok(Release {
        archive,
        manifest_path,
        sums_path,
        manifest,
        archive_sha256,
        manifest_sha256,
    })
}

/// Loads a package and reads every file it holds (all of them, so the
/// bundled copy has the same package root as the source directory).
fn bundle_package(dir: &Path) -> Result<(BundledPackage, Vec<ArchiveFile>), DistError> {
    let package = Package::load(dir).map_err(|source| DistError::Package {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .expect("a bundled package path names a directory");
    let mut files = Vec::new();
    for listed in &package.files {
        let source = dir.join(&listed.path);
        let bytes = read(&source)?;
        // The root below is the one `Package::load` computed; it describes
        // what ships only if these are the bytes it hashed.
        if bytes.len() as u64 != listed.length || Domain::PackageFile.hash(&bytes) != listed.hash {
            return Err(DistError::PackageChanged {
                path: dir.to_path_buf(),
                file: listed.path.clone(),
            });
        }
        let metadata = fs::metadata(&source).map_err(DistError::io("stat", &source))?;
        let executable = metadata.permissions().mode() & 0o111 != 0;
        files.push(ArchiveFile {
            path: format!("packages/{name}/{}", listed.path),
            mode: if executable {
                MODE_EXECUTABLE
            } else {
                MODE_REGULAR
            },
            bytes,
        });
    }
    let bundled = BundledPackage {
        name: package.manifest.name.clone(),
        version: package.manifest.version.to_string(),
        path: format!("packages/{name}"),
        root: package.root.to_hex(),
    };
    Ok((bundled, files))
}

fn file_entry(file: &ArchiveFile) -> FileEntry {
    FileEntry {
        path: file.path.clone(),
        size: file.bytes.len() as u64,
        sha256: sums::sha256_hex(&file.bytes),
        mode: file.mode,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DistError> {
    fs::read(path).map_err(DistError::io("read", path))
}

/// Writes through `fill` to a temporary file beside `path`, syncs it and
/// renames it into place.
fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), DistError> {
    let name = path.file_name().expect("a file path").to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(MODE_REGULAR)
        .open(&temporary)
        .map_err(DistError::io("create", &temporary))?;
    fill(&mut file).map_err(DistError::io("write", &temporary))?;
    file.sync_all().map_err(DistError::io("sync", &temporary))?;
    fs::rename(&temporary, path).map_err(DistError::io("rename into place", path))
}

/// Runs a command to completion; its stdout, or an error with its status
/// and the end of its stderr.
fn run(command: &mut Command) -> Result<String, DistError> {
    let line = format!("{command:?}");
    let output = command.output().map_err(|error| DistError::Command {
        command: line.clone(),
        detail: error.to_string(),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let start = stderr.len().saturating_sub(COMMAND_OUTPUT_QUOTED_BYTES_MAX);
        let start = (start..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        return Err(DistError::Command {
            command: line,
            detail: format!("{}: {}", output.status, stderr[start..].trim()),
        });
    }
    String::from_utf8(output.stdout).map_err(|_| DistError::Command {
        command: line,
        detail: "printed something that is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn version_lines() {
        assert_eq!(
            parse_version("everarcade-runtime 0.1.0\n").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(
            parse_version("everarcade-runtime 1.2.3-rc.1+b5").as_deref(),
            Some("1.2.3-rc.1+b5")
        );
        assert_eq!(parse_version("everarcade-runtime"), None);
        assert_eq!(parse_version("other 0.1.0"), None);
        assert_eq!(parse_version("everarcade-runtime 0.1.0 extra"), None);
    }
}
