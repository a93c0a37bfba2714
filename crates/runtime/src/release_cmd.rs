//! `verify-release`: check a release directory before deploying it, and
//! record the deployment in the runtime root.
//!
//! The release is what `cargo xtask dist` writes (`xtask/src/manifest.rs`
//! describes the format): `SHA256SUMS`, `release-manifest.json` and the
//! tarball. This module reads that format on its own, so the shipped binary
//! does not depend on the release tooling; `tests/release.rs` assembles a
//! release with xtask and verifies it here.
//!
//! The checks, cheapest first, each with a stable refusal:
//! 1. every line of `SHA256SUMS` against its file (`release_checksum_mismatch`
//!    naming the file; `release_incomplete` for a missing one);
//! 2. the manifest parses and is well-formed (`release_manifest_malformed`);
//! 3. this binary's runtime and protocol versions are the manifest's
//!    (`release_version_mismatch`);
//! 4. the package given is one the release bundles (`release_package_mismatch`,
//!    exit 6, naming both roots);
//! 5. the tarball, read entry by entry: every file is in the manifest with its
//!    size, mode and SHA-256, none is missing, nothing but files and
//!    directories, and the manifest inside equals the one beside it
//!    (`release_checksum_mismatch` naming `<archive>:<path>`).
//!
//! Then `<root>/deployments/<n>.json` (0600, directories 0700) records the
//! deployment: runtime version, package root, host, release manifest hash,
//! time. The wall clock appears only there; it feeds no root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use everarcade_ops::{host_name, rfc3339};
use everarcade_protocol::PROTOCOL_VERSION;
use everarcade_store::{DiskStorage, Storage};
use everarcade_world::RUNTIME_VERSION;
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::WorldArgs;
use crate::exit::{FAILURE, Failure, INTEGRITY, PACKAGE};
use crate::target::Target;

/// The manifest's format string.
const MANIFEST_FORMAT: &str = "everarcade-release/1";
/// The manifest's file name, beside the tarball and inside it.
const MANIFEST_FILE: &str = "release-manifest.json";
/// The checksum file's name.
const SUMS_FILE: &str = "SHA256SUMS";
/// The deployment record's format string.
const DEPLOYMENT_FORMAT: &str = "everarcade-deployment/1";
/// The directory under the runtime root that holds deployment records.
const DEPLOYMENTS_DIR: &str = "deployments";

/// The largest `SHA256SUMS` read.
const SUMS_BYTES_MAX: u64 = 64 * 1024;
/// The most lines `SHA256SUMS` may have.
const SUMS_LINES_MAX: usize = 64;
/// The largest manifest read (beside the tarball or inside it).
const MANIFEST_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// The most files a manifest may list.
const MANIFEST_FILES_MAX: usize = 4_096;
/// The most packages a manifest may list.
const MANIFEST_PACKAGES_MAX: usize = 64;
/// The most entries read from a tarball: every file, its directories, the
/// manifest. Bounds the work a hostile archive can cause.
const ARCHIVE_ENTRIES_MAX: usize = 2 * MANIFEST_FILES_MAX + 1;
/// Decompressed bytes read past the tar end marker to reach gzip's trailer.
const ARCHIVE_TRAILER_BYTES_MAX: u64 = 1024 * 1024;
/// Bytes read at a time while hashing.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Names tried when another process takes the same deployment number.
const DEPLOYMENT_NUMBER_ATTEMPTS_MAX: u64 = 64;
/// `verify-release` arguments.
#[derive(clap::Args)]
pub struct VerifyReleaseArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// The release directory: the tarball, release-manifest.json and SHA256SUMS.
    #[arg(long, value_name = "DIR")]
    release: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `verify-release`.
pub fn verify_release(args: VerifyReleaseArgs) -> Result<(), Failure> {
    let outcome = Target::resolve(&args.world).and_then(|target| {
        if target.exists() {
            // A world already bound to another package would refuse this
            // deployment at start; say so now.
            target.require_bound()?;
        }
        let verified = verify(&args.release, &target, !args.json)?;
        let record = DeploymentRecord::new(&target, &verified);
        let path = record_deployment(&args.world.runtime_root, record)?;
        Ok((verified, path))
    });
    let (verified, (path, record)) = match outcome {
        Ok(done) => done,
        Err(failure) => {
            if !args.json {
                println!("FAIL  {}", failure.message);
            }
            return Err(failure.with_details(serde_json::json!({"verified": false})));
        }
    };
    if args.json {
        let object = serde_json::json!({
            "verified": true,
            "record": path.display().to_string(),
            "deployment": record,
        });
        println!("{object}");
        return Ok(());
    }
    let binary = if verified.binary_matches_release {
        "is the release's own"
    } else {
        "is NOT the release's (install the release's binary before starting)"
    };
    println!(
        "NOTE  binary      this binary {binary} {}",
        verified.manifest.binary
    );
    println!(
        "deployment {} recorded: {}",
        record.deployment,
        path.display()
    );
    let pretty = serde_json::to_string_pretty(&record).expect("a record serializes");
    println!("{pretty}");
    Ok(())
}

/// The release manifest, as `cargo xtask dist` writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseManifest {
    format: String,
    runtime_version: String,
    protocol_version: u32,
    target: String,
    rustc: String,
    git_commit: Option<String>,
    git_dirty: Option<bool>,
    source_date_epoch: u64,
    archive: String,
    archive_prefix: String,
    binary: String,
    packages: Vec<BundledPackage>,
    files: Vec<FileEntry>,
}

/// A world package inside the release.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundledPackage {
    name: String,
    version: String,
    path: String,
    root: String,
}

/// One file inside the release.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
    mode: u32,
}

/// What a verified release established.
struct Verified {
    dir: PathBuf,
    manifest: ReleaseManifest,
    manifest_sha256: String,
    archive_sha256: String,
    package: BundledPackage,
    binary_path: PathBuf,
    binary_sha256: String,
    binary_matches_release: bool,
}

/// Runs every check; prints a PASS line per check when `report`.
fn verify(dir: &Path, target: &Target, report: bool) -> Result<Verified, Failure> {
    let pass = |check: &str, text: String| {
        if report {
            println!("PASS  {check:<11} {text}");
        }
    };
    let sums = check_sums(dir)?;
    let names: Vec<&str> = sums.keys().map(String::as_str).collect();
    pass("checksums", format!("SHA256SUMS: {}", names.join(", ")));

    let (manifest, manifest_sha256) = read_manifest(dir, &sums)?;
    pass("manifest", describe(&manifest));

    check_version(&manifest)?;
    pass(
        "version",
        format!(
            "this binary is everarcade-runtime {RUNTIME_VERSION} (protocol {PROTOCOL_VERSION}), as the release"
        ),
    );

    let package = check_package(&manifest, target)?;
    pass(
        "package",
        format!(
            "{} {} (root {}) is the release's {}",
            package.name, package.version, package.root, package.path
        ),
    );

    let archive_sha256 = sums[&manifest.archive].clone();
    let contents = check_archive(dir, &manifest, &archive_sha256, &manifest_sha256)?;
    pass(
        "archive",
        format!(
            "{}: {} files, {} bytes, each size, mode and sha256 as the manifest says",
            manifest.archive, contents.files, contents.bytes
        ),
    );

    let (binary_path, binary_sha256, binary_matches_release) = running_binary(&manifest)?;
    Ok(Verified {
        dir: dir.to_path_buf(),
        manifest,
        manifest_sha256,
        archive_sha256,
        package,
        binary_path,
        binary_sha256,
        binary_matches_release,
    })
}

/// One line about what the manifest says the release is.
fn describe(manifest: &ReleaseManifest) -> String {
    let commit = manifest.git_commit.as_deref().unwrap_or("unknown");
    let dirty = if manifest.git_dirty == Some(true) {
        " with uncommitted changes"
    } else {
        ""
    };
    format!(
        "{}: everarcade-runtime {} (protocol {}) for {}, commit {commit}{dirty}, source date {}",
        manifest.format,
        manifest.runtime_version,
        manifest.protocol_version,
        manifest.target,
        rfc3339(manifest.source_date_epoch)
    )
}

/// The running binary's path and SHA-256, and whether it is the release's.
/// Not a refusal: the check may run before the release's binary is installed.
fn running_binary(manifest: &ReleaseManifest) -> Result<(PathBuf, String, bool), Failure> {
    let unreadable = |error: io::Error| {
        let message = format!("cannot read this binary to hash it: {error}");
        Failure::new(FAILURE, "release_unreadable", message)
    };
    let path = std::env::current_exe().map_err(unreadable)?;
    let (sha256, _) = sha256_file(&path).map_err(unreadable)?;
    let released = manifest
        .files
        .iter()
        .find(|file| file.path == manifest.binary);
    let matches = released.is_some_and(|file| file.sha256 == sha256);
    Ok((path, sha256, matches))
}

fn integrity(code: &str, message: impl Into<String>) -> Failure {
    Failure::new(INTEGRITY, code, message)
}

fn io_failure(path: &Path, error: io::Error) -> Failure {
    if error.kind() == io::ErrorKind::NotFound {
        integrity(
            "release_incomplete",
            format!("{} is missing from the release", path.display()),
        )
    } else {
        Failure::new(
            FAILURE,
            "release_unreadable",
            format!("cannot read {}: {error}", path.display()),
        )
    }
}

/// Checks every line of `SHA256SUMS`; returns file name → sha256.
fn check_sums(dir: &Path) -> Result<BTreeMap<String, String>, Failure> {
    let path = dir.join(SUMS_FILE);
    let bytes = read_bounded(&path, SUMS_BYTES_MAX)?;
    let sums = parse_sums(&bytes).map_err(|reason| {
        integrity(
            "release_checksums_malformed",
            format!("{}: {reason}", path.display()),
        )
    })?;
    if !sums.contains_key(MANIFEST_FILE) {
        return Err(integrity(
            "release_checksums_malformed",
            format!("{} does not cover {MANIFEST_FILE}", path.display()),
        ));
    }
    for (name, expected) in &sums {
        let file = dir.join(name);
        let (actual, _) = sha256_file(&file).map_err(|error| io_failure(&file, error))?;
        if &actual != expected {
            return Err(integrity(
                "release_checksum_mismatch",
                format!("{name}: SHA256SUMS says {expected}, the file hashes to {actual}"),
            ));
        }
    }
    Ok(sums)
}

/// `<64 hex>  <name>` (or ` *<name>`) per line, names plain and unique.
fn parse_sums(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut sums = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if number > SUMS_LINES_MAX {
            return Err(format!("more than {SUMS_LINES_MAX} lines"));
        }
        let malformed = || format!("line {number} is not `<sha256>  <file name>`");
        let (hash, rest) = line.split_at_checked(64).ok_or_else(malformed)?;
        let name = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(malformed)?;
        if !is_hex_64(hash) {
            return Err(format!("line {number}: {hash:?} is not a lowercase sha256"));
        }
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(format!(
                "line {number}: {name:?} is not a file name in the release directory"
            ));
        }
        if sums.insert(name.to_string(), hash.to_string()).is_some() {
            return Err(format!("line {number}: {name} is listed twice"));
        }
    }
    if sums.is_empty() {
        return Err("no lines".into());
    }
    Ok(sums)
}

/// Reads and validates the manifest beside the tarball. Its bytes are
/// hashed again here, so what is parsed is what `SHA256SUMS` covered.
fn read_manifest(
    dir: &Path,
    sums: &BTreeMap<String, String>,
) -> Result<(ReleaseManifest, String), Failure> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = read_bounded(&path, MANIFEST_BYTES_MAX)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != sums[MANIFEST_FILE] {
        return Err(integrity(
            "release_checksum_mismatch",
            format!("{MANIFEST_FILE} changed while being verified"),
        ));
    }
    let malformed = |reason: String| {
        integrity(
            "release_manifest_malformed",
            format!("{}: {reason}", path.display()),
        )
    };
    let manifest: ReleaseManifest =
        serde_json::from_slice(&bytes).map_err(|error| malformed(error.to_string()))?;
    validate_manifest(&manifest).map_err(malformed)?;
    if !sums.contains_key(&manifest.archive) {
        return Err(integrity(
            "release_incomplete",
            format!(
                "SHA256SUMS does not cover {}, the archive the manifest names",
                manifest.archive
            ),
        ));
    }
    Ok((manifest, sha256))
}

fn validate_manifest(manifest: &ReleaseManifest) -> Result<(), String> {
    if manifest.format != MANIFEST_FORMAT {
        return Err(format!(
            "format {:?}, this binary reads {MANIFEST_FORMAT:?}",
            manifest.format
        ));
    }
    let printable = |value: &str| {
        !value.is_empty() && value.len() <= 256 && !value.chars().any(char::is_control)
    };
    for (field, value) in [
        ("runtime_version", &manifest.runtime_version),
        ("target", &manifest.target),
        ("rustc", &manifest.rustc),
    ] {
        if !printable(value) {
            return Err(format!(
                "{field} {value:?} is empty, too long or not printable"
            ));
        }
    }
    if let Some(commit) = &manifest.git_commit
        && !(matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("git_commit {commit:?} is not a commit id"));
    }
    let plain_name = |name: &str| is_clean_relative(name) && !name.contains('/');
    if !plain_name(&manifest.archive) || !manifest.archive.ends_with(".tar.gz") {
        return Err(format!(
            "archive {:?} is not a .tar.gz file name",
            manifest.archive
        ));
    }
    if !plain_name(&manifest.archive_prefix) {
        return Err(format!(
            "archive_prefix {:?} is not one directory name",
            manifest.archive_prefix
        ));
    }
    validate_files(&manifest.files)?;
    if !manifest
        .files
        .iter()
        .any(|file| file.path == manifest.binary)
    {
        return Err(format!(
            "binary {:?} is not among the files",
            manifest.binary
        ));
    }
    validate_packages(manifest)
}

fn validate_files(files: &[FileEntry]) -> Result<(), String> {
    if files.len() > MANIFEST_FILES_MAX {
        return Err(format!("more than {MANIFEST_FILES_MAX} files"));
    }
    let mut previous: Option<&str> = None;
    for file in files {
        if !is_clean_relative(&file.path) || file.path == MANIFEST_FILE {
            return Err(format!(
                "file path {:?} is not a clean relative path",
                file.path
            ));
        }
        if previous.is_some_and(|previous| previous.as_bytes() >= file.path.as_bytes()) {
            return Err(format!(
                "files are not sorted and unique at {:?}",
                file.path
            ));
        }
        if !is_hex_64(&file.sha256) {
            return Err(format!(
                "{}: sha256 {:?} is not 64 lowercase hex",
                file.path, file.sha256
            ));
        }
        if file.mode > 0o777 {
            return Err(format!(
                "{}: mode {:o} is not permission bits",
                file.path, file.mode
            ));
        }
        previous = Some(&file.path);
    }
    Ok(())
}

fn validate_packages(manifest: &ReleaseManifest) -> Result<(), String> {
    if manifest.packages.is_empty() || manifest.packages.len() > MANIFEST_PACKAGES_MAX {
        return Err(format!("packages: between 1 and {MANIFEST_PACKAGES_MAX}"));
    }
    for package in &manifest.packages {
        if !is_hex_64(&package.root) {
            return Err(format!(
                "package {}: root {:?} is not 64 lowercase hex",
                package.name, package.root
            ));
        }
        let inside = format!("{}/", package.path);
        if !is_clean_relative(&package.path)
            || !manifest
                .files
                .iter()
                .any(|file| file.path.starts_with(&inside))
        {
            return Err(format!(
                "package {}: no files under {:?}",
                package.name, package.path
            ));
        }
    }
    Ok(())
}

fn check_version(manifest: &ReleaseManifest) -> Result<(), Failure> {
    if manifest.runtime_version != RUNTIME_VERSION || manifest.protocol_version != PROTOCOL_VERSION
    {
        return Err(integrity(
            "release_version_mismatch",
            format!(
                "the release is everarcade-runtime {} (protocol {}); this binary is {RUNTIME_VERSION} (protocol {PROTOCOL_VERSION}); verify with the release's own {}",
                manifest.runtime_version, manifest.protocol_version, manifest.binary
            ),
        ));
    }
    Ok(())
}

/// The bundled package whose root is the given package's.
fn check_package(manifest: &ReleaseManifest, target: &Target) -> Result<BundledPackage, Failure> {
    let root = target.package.root.to_hex();
    if let Some(bundled) = manifest
        .packages
        .iter()
        .find(|package| package.root == root)
    {
        return Ok(bundled.clone());
    }
    let bundled: Vec<String> = manifest
        .packages
        .iter()
        .map(|package| {
            format!(
                "{} {} ({}) root {}",
                package.name, package.version, package.path, package.root
            )
        })
        .collect();
    Err(Failure::new(
        PACKAGE,
        "release_package_mismatch",
        format!(
            "package {} has root {root}, a different package from the release's: {}",
            target.package.dir.display(),
            bundled.join("; ")
        ),
    ))
}

/// What the archive held.
struct Contents {
    files: usize,
    bytes: u64,
}

/// Reads the tarball entry by entry and checks it against the manifest.
fn check_archive(
    dir: &Path,
    manifest: &ReleaseManifest,
    sha256: &str,
    manifest_sha256: &str,
) -> Result<Contents, Failure> {
    let path = dir.join(&manifest.archive);
    let file = File::open(&path).map_err(|error| io_failure(&path, error))?;
    let mut reader = ArchiveReader::new(manifest, manifest_sha256);
    let mut archive = tar::Archive::new(GzDecoder::new(HashingReader::new(file)));
    let malformed = |error: io::Error| {
        integrity(
            "release_archive_malformed",
            format!("{}: {error}", manifest.archive),
        )
    };
    for entry in archive.entries().map_err(malformed)? {
        reader.entry(entry.map_err(malformed)?)?;
    }
    let mut gzip = archive.into_inner();
    // Reading to gzip's end checks its CRC; then the raw bytes to their end.
    io::copy(
        &mut (&mut gzip).take(ARCHIVE_TRAILER_BYTES_MAX),
        &mut io::sink(),
    )
    .map_err(malformed)?;
    let mut raw = gzip.into_inner();
    io::copy(&mut raw, &mut io::sink()).map_err(|error| io_failure(&path, error))?;
    if raw.finish() != sha256 {
        return Err(integrity(
            "release_checksum_mismatch",
            format!("{}: changed while being verified", manifest.archive),
        ));
    }
    reader.finish()
}

/// The state of one pass over the archive's entries.
struct ArchiveReader<'a> {
    manifest: &'a ReleaseManifest,
    expected: BTreeMap<&'a str, &'a FileEntry>,
    seen: BTreeSet<String>,
    embedded_manifest: Option<Vec<u8>>,
    /// SHA-256 of the manifest beside the tarball.
    manifest_sha256: &'a str,
    entries: usize,
    bytes: u64,
}

impl<'a> ArchiveReader<'a> {
    fn new(manifest: &'a ReleaseManifest, manifest_sha256: &'a str) -> ArchiveReader<'a> {
        ArchiveReader {
            manifest,
            expected: manifest
                .files
                .iter()
                .map(|file| (file.path.as_str(), file))
                .collect(),
            seen: BTreeSet::new(),
            embedded_manifest: None,
            manifest_sha256,
            entries: 0,
            bytes: 0,
        }
    }

    fn mismatch(&self, path: &str, what: String) -> Failure {
        integrity(
            "release_checksum_mismatch",
            format!("{}:{path}: {what}", self.manifest.archive),
        )
    }

    fn malformed(&self, what: String) -> Failure {
        integrity(
            "release_archive_malformed",
            format!("{}: {what}", self.manifest.archive),
        )
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), Failure> {
        self.entries += 1;
        if self.entries > ARCHIVE_ENTRIES_MAX {
            return Err(self.malformed(format!("more than {ARCHIVE_ENTRIES_MAX} entries")));
        }
        let inner = self.inner_path(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            return Ok(());
        }
        if !kind.is_file() {
            return Err(self.malformed(format!(
                "{inner}: a {kind:?} entry; a release holds only files and directories"
            )));
        }
        if !self.seen.insert(inner.clone()) {
            return Err(self.mismatch(&inner, "appears twice in the archive".into()));
        }
        if inner == MANIFEST_FILE {
            if entry.size() > MANIFEST_BYTES_MAX {
                return Err(self.mismatch(&inner, "larger than any manifest".into()));
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|error| self.malformed(format!("{inner}: {error}")))?;
            self.embedded_manifest = Some(bytes);
            return Ok(());
        }
        self.file(&inner, entry)
    }

    /// An entry's path inside the prefix ("" for the prefix itself).
    fn inner_path(&self, raw: &[u8]) -> Result<String, Failure> {
        let Ok(full) = std::str::from_utf8(raw) else {
            return Err(self.malformed("an entry's path is not UTF-8".into()));
        };
        let prefix = &self.manifest.archive_prefix;
        let inner = full.strip_prefix(prefix.as_str()).and_then(|rest| {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                Some("")
            } else {
                rest.strip_prefix('/')
            }
        });
        match inner {
            Some(inner) if inner.is_empty() || is_clean_relative(inner) => Ok(inner.to_string()),
            _ => Err(self.malformed(format!("{full:?} is not a clean path under {prefix}/"))),
        }
    }

    /// A regular file other than the manifest: mode, size and hash as listed.
    fn file<R: Read>(&mut self, inner: &str, mut entry: tar::Entry<'_, R>) -> Result<(), Failure> {
        let Some(expected) = self.expected.get(inner).copied() else {
            return Err(self.mismatch(inner, "in the archive but not in the manifest".into()));
        };
        let mode = entry.header().mode().unwrap_or(u32::MAX) & 0o7777;
        if mode != expected.mode {
            let what = format!("mode {mode:o}, the manifest says {:o}", expected.mode);
            return Err(self.mismatch(inner, what));
        }
        if entry.size() != expected.size {
            let what = format!(
                "{} bytes, the manifest says {}",
                entry.size(),
                expected.size
            );
            return Err(self.mismatch(inner, what));
        }
        let mut hashing = HashingReader::new(&mut entry);
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|error| self.malformed(format!("{inner}: {error}")))?;
        let actual = hashing.finish();
        if actual != expected.sha256 {
            let what = format!("sha256 {actual}, the manifest says {}", expected.sha256);
            return Err(self.mismatch(inner, what));
        }
        self.bytes += expected.size;
        Ok(())
    }

    fn finish(mut self) -> Result<Contents, Failure> {
        if let Some(missing) = self
            .expected
            .keys()
            .find(|path| !self.seen.contains(**path))
        {
            return Err(self.mismatch(
                missing,
                "in the manifest but missing from the archive".into(),
            ));
        }
        let Some(embedded) = self.embedded_manifest.take() else {
            return Err(self.mismatch(MANIFEST_FILE, "missing from the archive".into()));
        };
        if hex::encode(Sha256::digest(&embedded)) != self.manifest_sha256 {
            return Err(self.mismatch(
                MANIFEST_FILE,
                format!("differs from the {MANIFEST_FILE} beside the archive"),
            ));
        }
        Ok(Contents {
            files: self.expected.len(),
            bytes: self.bytes,
        })
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The SHA-256 of everything read, lowercase hex.
    fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
}

fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut reader = HashingReader::new(File::open(path)?);
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut length = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok((reader.finish(), length));
        }
        length += read as u64;
    }
}

/// Reads a whole file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, Failure> {
    let file = File::open(path).map_err(|error| io_failure(path, error))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| io_failure(path, error))?;
    if bytes.len() as u64 > limit {
        return Err(integrity(
            "release_manifest_malformed",
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

fn is_hex_64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A relative `/`-separated path with no empty, `.` or `..` part.
fn is_clean_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// `<root>/deployments/<n>.json`.
#[derive(Clone, Debug, Serialize)]
struct DeploymentRecord {
    format: &'static str,
    deployment: u64,
    recorded_at: String,
    recorded_at_unix_seconds: u64,
    host: String,
    world: String,
    runtime_version: String,
    protocol_version: u32,
    target: String,
    git_commit: Option<String>,
    git_dirty: Option<bool>,
    package_name: String,
    package_version: String,
    package_root: String,
    package_path: String,
    release_dir: String,
    release_archive: String,
    release_archive_sha256: String,
    release_manifest_sha256: String,
    binary_path: String,
    binary_sha256: String,
    binary_matches_release: bool,
}

impl DeploymentRecord {
    fn new(target: &Target, verified: &Verified) -> DeploymentRecord {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        let manifest = &verified.manifest;
        DeploymentRecord {
            format: DEPLOYMENT_FORMAT,
            deployment: 0,
            recorded_at: rfc3339(seconds),
            recorded_at_unix_seconds: seconds,
            host: host_name(),
            world: target.id.as_str().to_string(),
            runtime_version: manifest.runtime_version.clone(),
            protocol_version: manifest.protocol_version,
            target: manifest.target.clone(),
            git_commit: manifest.git_commit.clone(),
            git_dirty: manifest.git_dirty,
            package_name: verified.package.name.clone(),
            package_version: verified.package.version.clone(),
            package_root: verified.package.root.clone(),
            package_path: absolute(&target.package.dir),
            release_dir: absolute(&verified.dir),
            release_archive: manifest.archive.clone(),
            release_archive_sha256: verified.archive_sha256.clone(),
            release_manifest_sha256: verified.manifest_sha256.clone(),
            binary_path: verified.binary_path.display().to_string(),
            binary_sha256: verified.binary_sha256.clone(),
            binary_matches_release: verified.binary_matches_release,
        }
    }
}

/// Writes the record as the next `<n>.json` (0600; the directory 0700):
/// fully written and synced under a temporary name, then linked into place,
/// which fails rather than replaces if another process took the number.
fn record_deployment(
    runtime_root: &Path,
    mut record: DeploymentRecord,
) -> Result<(PathBuf, DeploymentRecord), Failure> {
    let dir = runtime_root.join(DEPLOYMENTS_DIR);
    let failed = |path: &Path, error: io::Error| {
        Failure::new(
            FAILURE,
            "deployment_record_failed",
            format!("cannot write {}: {error}", path.display()),
        )
    };
    DiskStorage
        .create_dir_all(&dir)
        .map_err(|error| failed(&dir, error))?;
    let names = DiskStorage
        .list(&dir)
        .map_err(|error| failed(&dir, error))?;
    let last = names
        .iter()
        .filter_map(|name| name.strip_suffix(".json")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    for number in (last + 1..).take(DEPLOYMENT_NUMBER_ATTEMPTS_MAX as usize) {
        record.deployment = number;
        let mut bytes = serde_json::to_vec_pretty(&record).expect("a record serializes");
        bytes.push(b'\n');
        let path = dir.join(format!("{number}.json"));
        let temporary = dir.join(format!(".{number}.json.{}.tmp", std::process::id()));
        DiskStorage
            .write_synced(&temporary, &bytes)
            .map_err(|error| failed(&temporary, error))?;
        let linked = fs::hard_link(&temporary, &path);
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                DiskStorage
                    .sync_dir(&dir)
                    .map_err(|error| failed(&dir, error))?;
                return Ok((path, record));
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(failed(&path, error)),
        }
    }
    Err(Failure::new(
        FAILURE,
        "deployment_record_failed",
        format!(
            "{DEPLOYMENT_NUMBER_ATTEMPTS_MAX} deployment numbers after {last} were taken while writing; try again"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::{is_clean_relative, parse_sums};

    #[test]
    fn sums_lines() {
        let hash = "a".repeat(64);
        let ok = format!("{hash}  one.tar.gz\n{hash} *release-manifest.json\n");
        let sums = parse_sums(ok.as_bytes()).unwrap();
        assert_eq!(sums.len(), 2);
        for bad in [
            String::new(),
            format!("{hash} one\n"),
            format!("{}  one\n", "A".repeat(64)),
            format!("{hash}  ../one\n"),
            format!("{hash}  dir/one\n"),
            format!("{hash}  one\n{hash}  one\n"),
            "short  one\n".to_string(),
        ] {
            assert!(parse_sums(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clean_paths() {
        assert!(is_clean_relative("bin/everarcade-runtime"));
        for bad in ["", "/bin", "a//b", "a/../b", "./a", "a/", "a\\b"] {
            assert!(!is_clean_relative(bad), "{bad:?}");
        }
    }
}
