//! `verify-release` through the real binary, against a release that xtask
//! assembles from the debug binary under test (no release build): a release
//! verifies and its deployment is recorded 0600 under 0700 directories; a
//! flipped byte, a wrong or malformed SHA256SUMS line, an edited manifest, a
//! manifest that lies about a file, another version and another package are
//! each refused with their exact code and exit status, and record nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use everarcade_package::Package;
use xtask::manifest::MANIFEST_FILE;
use xtask::sums::{SUMS_FILE, sha256_hex};
use xtask::{BuildInfo, DistConfig, Release, assemble, workspace_root};

mod common;

use common::{PACKAGE, WORLD, stderr};

const EXIT_INTEGRITY: i32 = 4;
const EXIT_PACKAGE: i32 = 6;

/// One release for the whole test binary, assembled once.
struct Fixture {
    /// This process's scratch directory (under cargo's per-target tmp).
    scratch: PathBuf,
    /// The pristine release directory.
    release: PathBuf,
    /// What xtask wrote.
    written: Release,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_scratch(base);
        let scratch = base.join(format!("verify-release-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch).unwrap();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_everarcade-runtime"));
        let root = workspace_root();
        let build =
            BuildInfo::detect(&root, &binary).expect("the debug binary, rustc and git answer");
        let release = scratch.join("release");
        let config = DistConfig {
            workspace_root: root,
            out_dir: release.clone(),
            binary,
            build,
            // Fast: the debug binary is hundreds of MB.
            compression_level: 1,
        };
        let written = assemble(&config).expect("the release assembles");
        Fixture {
            scratch,
            release,
            written,
        }
    })
}

/// Scratch directories of earlier test processes that no longer run (the
/// harness has no hook to remove ours at exit; the next run does).
fn remove_stale_scratch(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("verify-release-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A copy of the release to damage, with a runtime root of its own. The
/// tarball is hard-linked unless `copy_archive` (it is large).
struct Case {
    dir: PathBuf,
    root: PathBuf,
}

impl Case {
    fn new(copy_archive: bool) -> Case {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let fixture = fixture();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let case = fixture.scratch.join(format!("case-{n}"));
        let dir = case.join("release");
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&fixture.release).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let target = dir.join(&name);
            if name == fixture.written.manifest.archive && !copy_archive {
                fs::hard_link(entry.path(), target).unwrap();
            } else {
                fs::copy(entry.path(), target).unwrap();
            }
        }
        Case {
            dir,
            root: case.join("operator-node"),
        }
    }

    fn archive(&self) -> PathBuf {
        self.dir.join(&fixture().written.manifest.archive)
    }

    /// `verify-release <root> world-001 <package> --release DIR --json`.
    fn verify(&self, package: &Path) -> (Output, serde_json::Value) {
        let output = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
            .current_dir(workspace_root())
            .arg("verify-release")
            .arg(&self.root)
            .arg(WORLD)
            .arg(package)
            .arg("--release")
            .arg(&self.dir)
            .arg("--json")
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "one JSON object on stdout ({error}): {stdout}\nstderr: {}",
                stderr(&output)
            )
        });
        (output, value)
    }

    /// Refused with `code` and `exit`, naming `names` in the message, and
    /// nothing recorded in the root.
    fn check_refused(&self, package: &Path, exit: i32, code: &str, names: &[&str]) {
        let (output, value) = self.verify(package);
        assert_eq!(
            output.status.code(),
            Some(exit),
            "{value}\n{}",
            stderr(&output)
        );
        assert_eq!(value["verified"], false, "{value}");
        assert_eq!(value["error"]["code"], code, "{value}");
        let message = value["error"]["message"].as_str().unwrap();
        for name in names {
            assert!(message.contains(name), "{code}: {message:?} names {name:?}");
        }
        assert!(
            stderr(&output).contains(&format!("error[{code}]")),
            "{}",
            stderr(&output)
        );
        assert!(
            !self.root.join("deployments").exists(),
            "a refused release records nothing"
        );
    }

    /// Rewrites the manifest beside the tarball through `edit`, and (when
    /// `resum`) SHA256SUMS so that it covers the edited bytes.
    fn edit_manifest(&self, resum: bool, edit: impl FnOnce(&mut serde_json::Value) -> Vec<u8>) {
        let path = self.dir.join(MANIFEST_FILE);
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let bytes = edit(&mut manifest);
        fs::write(&path, &bytes).unwrap();
        if resum {
            let sums = fs::read_to_string(self.dir.join(SUMS_FILE)).unwrap();
            let old = &fixture().written.manifest_sha256;
            fs::write(
                self.dir.join(SUMS_FILE),
                sums.replace(old.as_str(), &sha256_hex(&bytes)),
            )
            .unwrap();
        }
    }
}

fn package() -> PathBuf {
    workspace_root().join(PACKAGE)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_release_verifies_and_records_the_deployment() {
    let case = Case::new(false);
    let written = &fixture().written;
    let (output, value) = case.verify(&package());
    assert!(output.status.success(), "{value}\n{}", stderr(&output));
    assert_eq!(value["verified"], true);
    let record_path = case.root.join("deployments/1.json");
    assert_eq!(value["record"], record_path.display().to_string());

    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(
        record, value["deployment"],
        "what was printed is what was recorded"
    );
    assert_eq!(record["format"], "everarcade-deployment/1");
    assert_eq!(record["deployment"], 1);
    assert_eq!(record["world"], WORLD);
    assert_eq!(record["runtime_version"], env!("CARGO_PKG_VERSION"));
    let root = Package::load(&package()).unwrap().root.to_hex();
    assert_eq!(record["package_root"], root);
    assert_eq!(record["package_name"], "2d-arena");
    assert_eq!(record["release_manifest_sha256"], written.manifest_sha256);
    assert_eq!(record["release_archive_sha256"], written.archive_sha256);
    assert_eq!(record["release_archive"], written.manifest.archive);
    assert!(!record["host"].as_str().unwrap().is_empty());
    assert!(record["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        record["binary_matches_release"], true,
        "the release was assembled from this binary"
    );

    // 0600 under 0700 directories, the runtime root included (it was created here).
    assert_eq!(mode(&record_path), 0o600);
    assert_eq!(mode(&case.root.join("deployments")), 0o700);
    assert_eq!(mode(&case.root), 0o700);
    let names: Vec<String> = fs::read_dir(case.root.join("deployments"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["1.json"], "no temporary file is left");

    // A second deployment takes the next number; the text form names each check.
    let output = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(workspace_root())
        .args(["verify-release"])
        .arg(&case.root)
        .arg(WORLD)
        .arg(PACKAGE)
        .arg("--release")
        .arg(&case.dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for check in ["checksums", "manifest", "version", "package", "archive"] {
        assert!(
            text.contains(&format!("PASS  {check}")),
            "{check} in {text}"
        );
    }
    let second = case.root.join("deployments/2.json");
    assert!(
        text.contains(&format!("deployment 2 recorded: {}", second.display())),
        "{text}"
    );
    assert_eq!(mode(&second), 0o600);
}

#[test]
fn a_flipped_byte_in_the_tarball_is_refused() {
    let case = Case::new(true);
    let archive = case.archive();
    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&archive, bytes).unwrap();
    let name = fixture().written.manifest.archive.clone();
    case.check_refused(
        &package(),
        EXIT_INTEGRITY,
        "release_checksum_mismatch",
        &[&name],
    );
}

#[test]
fn a_wrong_sums_line_is_refused() {
    let case = Case::new(false);
    let sums = fs::read_to_string(case.dir.join(SUMS_FILE)).unwrap();
    let wrong = sums.replace(&fixture().written.manifest_sha256, &"0".repeat(64));
    assert_ne!(sums, wrong);
    fs::write(case.dir.join(SUMS_FILE), wrong).unwrap();
    case.check_refused(
        &package(),
        EXIT_INTEGRITY,
        "release_checksum_mismatch",
        &[MANIFEST_FILE],
    );

    let case = Case::new(false);
    fs::write(
        case.dir.join(SUMS_FILE),
        sums.replace("  release", " release"),
    )
    .unwrap();
    case.check_refused(
        &package(),
        EXIT_INTEGRITY,
        "release_checksums_malformed",
        &[SUMS_FILE, "line 2"],
    );

    let case = Case::new(false);
    fs::remove_file(case.archive()).unwrap();
    let name = fixture().written.manifest.archive.clone();
    case.check_refused(&package(), EXIT_INTEGRITY, "release_incomplete", &[&name]);
}

#[test]
fn an_edited_manifest_is_refused() {
    // Edited alone: SHA256SUMS no longer covers it.
    let case = Case::new(false);
    case.edit_manifest(false, |manifest| {
        manifest["rustc"] = "rustc 0.0.0 (edited)".into();
        serde_json::to_vec_pretty(manifest).unwrap()
    });
    case.check_refused(
        &package(),
        EXIT_INTEGRITY,
        "release_checksum_mismatch",
        &[MANIFEST_FILE],
    );

    // Edited with SHA256SUMS to match: another runtime version.
    let case = Case::new(false);
    case.edit_manifest(true, |manifest| {
        manifest["runtime_version"] = "9.9.9".into();
        serde_json::to_vec_pretty(manifest).unwrap()
    });
    case.check_refused(
        &package(),
        EXIT_INTEGRITY,
        "release_version_mismatch",
        &["9.9.9", env!("CARGO_PKG_VERSION")],
    );

    // Not JSON, an unknown field, a path escaping the archive: malformed.
    for edit in [
        (|_: &mut serde_json::Value| b"{\"format\": ".to_vec())
            as fn(&mut serde_json::Value) -> Vec<u8>,
        |manifest| {
            manifest["signed_by"] = "nobody".into();
            serde_json::to_vec(manifest).unwrap()
        },
        |manifest| {
            manifest["files"][0]["path"] = "../../etc/passwd".into();
            serde_json::to_vec(manifest).unwrap()
        },
    ] {
        let case = Case::new(false);
        case.edit_manifest(true, edit);
        case.check_refused(
            &package(),
            EXIT_INTEGRITY,
            "release_manifest_malformed",
            &[MANIFEST_FILE],
        );
    }

    // A manifest that lies about one file: the tarball's contents disagree.
    let case = Case::new(false);
    case.edit_manifest(true, |manifest| {
        let files = manifest["files"].as_array_mut().unwrap();
        let file = files
            .iter_mut()
            .find(|file| file["path"] == "docs/HTTP.md")
            .unwrap();
        file["sha256"] = "1".repeat(64).into();
        serde_json::to_vec_pretty(manifest).unwrap()
    });
    let name = format!("{}:docs/HTTP.md", fixture().written.manifest.archive);
    case.check_refused(
        &package(),
        EXIT_INTEGRITY,
        "release_checksum_mismatch",
        &[&name],
    );
}

#[test]
fn another_package_is_refused_naming_both_roots() {
    let case = Case::new(false);
    let other = case.dir.parent().unwrap().join("other-package");
    fs::create_dir_all(&other).unwrap();
    for name in ["world.toml", "world.wasm"] {
        fs::copy(package().join(name), other.join(name)).unwrap();
    }
    let given = Package::load(&other).unwrap().root.to_hex();
    let bundled = Package::load(&package()).unwrap().root.to_hex();
    assert_ne!(given, bundled);
    case.check_refused(
        &other,
        EXIT_PACKAGE,
        "release_package_mismatch",
        &[&given, &bundled],
    );
}
