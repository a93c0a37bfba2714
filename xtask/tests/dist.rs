//! `dist` end to end with a stand-in binary: the release is reproducible,
//! its archive is normalized, its manifest describes every byte, its bundled
//! package keeps its root, and `sha256sum -c` accepts its SHA256SUMS.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use everarcade_package::Package;
use flate2::read::GzDecoder;
use xtask::manifest::{MANIFEST_FILE, ReleaseManifest};
use xtask::sums::{SUMS_FILE, sha256_hex};
use xtask::{BuildInfo, DistConfig, Release, assemble, workspace_root};

/// A scratch directory of its own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ea-xtask-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A stand-in runtime binary: a script that answers `--version`.
fn stand_in_binary(dir: &Path, version: &str) -> PathBuf {
    let path = dir.join("everarcade-runtime");
    fs::write(
        &path,
        format!("#!/bin/sh\necho everarcade-runtime {version}\n"),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn build_info() -> BuildInfo {
    BuildInfo {
        runtime_version: "0.1.0".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        rustc: "rustc 1.95.0 (test)".into(),
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        git_dirty: Some(false),
        source_date_epoch: 1_700_000_000,
    }
}

fn release(scratch: &Scratch, out: &str) -> Release {
    let binary = stand_in_binary(&scratch.0, "0.1.0");
    let config = DistConfig {
        workspace_root: workspace_root(),
        out_dir: scratch.0.join(out),
        binary,
        build: build_info(),
        compression_level: 6,
    };
    assemble(&config).expect("the release assembles")
}

/// Every entry of a tarball: path → (header fields, contents).
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    names: (Option<Vec<u8>>, Option<Vec<u8>>),
    bytes: Vec<u8>,
}

fn read_archive(path: &Path) -> Vec<(String, Entry)> {
    let file = fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        entries.push((
            path,
            Entry {
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                names: (
                    header.username_bytes().map(<[u8]>::to_vec),
                    header.groupname_bytes().map(<[u8]>::to_vec),
                ),
                bytes,
            },
        ));
    }
    entries
}

#[test]
fn two_runs_write_identical_releases() {
    let scratch = Scratch::new("repro");
    let first = release(&scratch, "one");
    let second = release(&scratch, "two");
    assert_eq!(
        first.manifest.archive,
        "everarcade-runtime-0.1.0-x86_64-unknown-linux-gnu.tar.gz"
    );
    for name in [first.manifest.archive.as_str(), MANIFEST_FILE, SUMS_FILE] {
        let one = fs::read(scratch.0.join("one").join(name)).unwrap();
        let two = fs::read(scratch.0.join("two").join(name)).unwrap();
        assert!(one == two, "{name} differs between two runs");
    }
    assert_eq!(first.archive_sha256, second.archive_sha256);
}

#[test]
fn archive_entries_are_normalized_and_in_path_order() {
    let scratch = Scratch::new("normal");
    let release = release(&scratch, "out");
    let prefix = &release.manifest.archive_prefix;
    let entries = read_archive(&release.archive);
    let paths: Vec<&str> = entries.iter().map(|(path, _)| path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_by_key(|path| path.as_bytes());
    assert_eq!(paths, sorted, "entries in path order");
    assert_eq!(
        paths[0],
        format!("{prefix}/"),
        "the prefix directory comes first"
    );
    for (path, entry) in &entries {
        assert!(
            path.starts_with(&format!("{prefix}/")),
            "{path} under the prefix"
        );
        assert_eq!((entry.uid, entry.gid), (0, 0), "{path}");
        assert_eq!(entry.mtime, 1_700_000_000, "{path}");
        let no_name = |name: &Option<Vec<u8>>| name.as_deref().is_none_or(<[u8]>::is_empty);
        assert!(
            no_name(&entry.names.0) && no_name(&entry.names.1),
            "{path} has owner names"
        );
        match entry.kind {
            tar::EntryType::Directory => assert_eq!(entry.mode, 0o755, "{path}"),
            tar::EntryType::Regular => assert!(matches!(entry.mode, 0o644 | 0o755), "{path}"),
            other => panic!("{path}: unexpected entry type {other:?}"),
        }
    }
    let files: BTreeMap<&str, &Entry> = entries
        .iter()
        .filter(|(_, entry)| entry.kind == tar::EntryType::Regular)
        .map(|(path, entry)| (&path[prefix.len() + 1..], entry))
        .collect();
    for expected in [
        "bin/everarcade-runtime",
        "packages/2d-arena/world.toml",
        "packages/2d-arena/world.wasm",
        "packages/2d-arena/README.md",
        "systemd/everarcade-runtime@.service",
        "docs/README.md",
        "docs/OPERATIONS.md",
        "docs/HTTP.md",
        MANIFEST_FILE,
    ] {
        assert!(files.contains_key(expected), "{expected} is in the archive");
    }
    assert_eq!(files["bin/everarcade-runtime"].mode, 0o755);
    assert_eq!(files["docs/README.md"].mode, 0o644);
    // The manifest inside is the manifest beside, byte for byte.
    assert_eq!(
        files[MANIFEST_FILE].bytes,
        fs::read(&release.manifest_path).unwrap()
    );
}

#[test]
fn manifest_describes_every_file_and_the_package_root() {
    let scratch = Scratch::new("manifest");
    let release = release(&scratch, "out");
    let manifest: ReleaseManifest =
        serde_json::from_slice(&fs::read(&release.manifest_path).unwrap()).unwrap();
    assert_eq!(manifest, release.manifest);
    assert_eq!(manifest.format, "everarcade-release/1");
    assert_eq!(
        manifest.protocol_version,
        everarcade_protocol::PROTOCOL_VERSION
    );
    assert_eq!(
        manifest.git_commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    let prefix = format!("{}/", manifest.archive_prefix);
    let contents: BTreeMap<String, Vec<u8>> = read_archive(&release.archive)
        .into_iter()
        .filter(|(_, entry)| entry.kind == tar::EntryType::Regular)
        .map(|(path, entry)| (path[prefix.len()..].to_string(), entry.bytes))
        .filter(|(path, _)| path != MANIFEST_FILE)
        .collect();
    let listed: Vec<&str> = manifest
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    assert_eq!(
        listed,
        contents.keys().map(String::as_str).collect::<Vec<_>>()
    );
    for file in &manifest.files {
        let bytes = &contents[&file.path];
        assert_eq!(file.size, bytes.len() as u64, "{}", file.path);
        assert_eq!(file.sha256, sha256_hex(bytes), "{}", file.path);
    }

    // The bundled copy, unpacked, has the source package's root.
    let source = Package::load(&workspace_root().join("runtime/games/2d-arena")).unwrap();
    assert_eq!(manifest.packages.len(), 1);
    let bundled = &manifest.packages[0];
    assert_eq!(
        (bundled.name.as_str(), bundled.path.as_str()),
        ("2d-arena", "packages/2d-arena")
    );
    assert_eq!(bundled.root, source.root.to_hex());
    let unpacked = scratch.0.join("unpacked");
    for (path, bytes) in &contents {
        if let Some(inner) = path.strip_prefix("packages/2d-arena/") {
            let target = unpacked.join(inner);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(target, bytes).unwrap();
        }
    }
    assert_eq!(
        Package::load(&unpacked).unwrap().root.to_hex(),
        bundled.root
    );
}

#[test]
fn sha256sum_checks_the_release() {
    let scratch = Scratch::new("sums");
    let release = release(&scratch, "out");
    let sums = fs::read_to_string(&release.sums_path).unwrap();
    assert_eq!(
        sums,
        format!(
            "{}  {}\n{}  {MANIFEST_FILE}\n",
            release.archive_sha256, release.manifest.archive, release.manifest_sha256
        )
    );
    let Ok(output) = Command::new("sha256sum")
        .args(["-c", SUMS_FILE])
        .current_dir(scratch.0.join("out"))
        .output()
    else {
        eprintln!("sha256sum is not installed; the format is checked above");
        return;
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn build_info_asks_the_binary_for_its_version() {
    let scratch = Scratch::new("detect");
    let binary = stand_in_binary(&scratch.0, "9.8.7-rc.1");
    let info = BuildInfo::detect(&workspace_root(), &binary).expect("detects");
    assert_eq!(info.runtime_version, "9.8.7-rc.1");
    assert!(info.rustc.starts_with("rustc "), "{}", info.rustc);
    assert!(info.target.contains('-'), "{}", info.target);

    let liar = scratch.0.join("liar");
    fs::write(&liar, "#!/bin/sh\necho something-else 1.0\n").unwrap();
    fs::set_permissions(&liar, fs::Permissions::from_mode(0o755)).unwrap();
    let error = BuildInfo::detect(&workspace_root(), &liar).unwrap_err();
    assert_eq!(error.code(), "dist_binary_version");
}
