//! The package root: the fixed vector quoted in docs/PROTOCOL.md, and what the
//! root does and does not depend on.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{MANIFEST, MINIMAL_WAT, TempDir, disk_files, reference_root_owned, wasm};
use everarcade_package::{Package, PackageFile, package_root};
use everarcade_protocol::{Domain, Hash};

/// The root of the package {`a.txt` = "hello", `world.toml` = "x"}.
const TWO_FILE_ROOT: &str = "93f01954ddea880eb2e47b96bb27b325cc8c5b44d40c34194491160eb7373785";

/// Loads `dir` and checks its root against the formula over the files on disk.
fn root_of(dir: &Path) -> Hash {
    let package =
        Package::load(dir).unwrap_or_else(|e| panic!("{}: [{}] {e}", dir.display(), e.code()));
    let mut on_disk = disk_files(dir);
    on_disk.sort();
    assert_eq!(
        package.root,
        reference_root_owned(&on_disk),
        "{}",
        dir.display()
    );
    package.root
}

enum Expect {
    Same,
    Changed,
}

/// Applies `change` to the package in `dir`; checks whether the root moved.
/// Returns the root after the change.
fn check(dir: &TempDir, what: &str, change: impl FnOnce(&Path), expect: Expect) -> Hash {
    let before = root_of(dir.path());
    change(dir.path());
    let after = root_of(dir.path());
    match expect {
        Expect::Same => assert_eq!(after, before, "{what} moved the root"),
        Expect::Changed => assert_ne!(after, before, "{what} left the root unchanged"),
    }
    after
}

fn listing(files: &[(&str, &[u8])]) -> Vec<PackageFile> {
    files
        .iter()
        .map(|(path, bytes)| PackageFile {
            path: path.to_string(),
            length: bytes.len() as u64,
            hash: Domain::PackageFile.hash(bytes),
        })
        .collect()
}

#[test]
fn two_file_vector() {
    let dir = TempDir::with_files("vector", &[("world.toml", b"x"), ("a.txt", b"hello")]);
    let mut on_disk = disk_files(dir.path());
    assert_eq!(on_disk.len(), 2);
    // Out of order on purpose: package_root sorts.
    on_disk.sort_by(|a, b| b.0.cmp(&a.0));
    let files: Vec<(&str, &[u8])> = on_disk
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let by_crate = package_root(&listing(&files));

    let mut preimage = Vec::new();
    preimage.extend_from_slice(&2u32.to_le_bytes());
    preimage.extend_from_slice(&5u32.to_le_bytes());
    preimage.extend_from_slice(b"a.txt");
    preimage.extend_from_slice(&5u64.to_le_bytes());
    preimage.extend_from_slice(&Domain::PackageFile.hash(b"hello").0);
    preimage.extend_from_slice(&10u32.to_le_bytes());
    preimage.extend_from_slice(b"world.toml");
    preimage.extend_from_slice(&1u64.to_le_bytes());
    preimage.extend_from_slice(&Domain::PackageFile.hash(b"x").0);
    let by_hand = Domain::Package.hash(&preimage);

    println!(
        "package root of {{a.txt = \"hello\", world.toml = \"x\"}}: {}",
        by_crate.to_hex()
    );
    assert_eq!(by_crate, by_hand);
    assert_eq!(by_crate.to_hex(), TWO_FILE_ROOT);
}

#[test]
fn package_root_sorts_its_input() {
    let files: [(&str, &[u8]); 4] = [("b", b"1"), ("a/b", b"2"), ("a.b", b"3"), ("B", b"4")];
    let mut permuted = listing(&files);
    let expected = package_root(&permuted);
    for _ in 0..permuted.len() {
        permuted.rotate_left(1);
        assert_eq!(package_root(&permuted), expected);
        permuted.reverse();
        assert_eq!(package_root(&permuted), expected);
    }
}

#[test]
fn listing_is_sorted_by_path_bytes() {
    let extra: [(&str, &[u8]); 5] = [
        ("b", b"1"),
        ("a/b", b"2"),
        ("a.b", b"3"),
        ("a-b", b"4"),
        ("B", b"5"),
    ];
    let dir = TempDir::valid_package("sorted", &extra);
    let package = Package::load(dir.path()).unwrap();
    let paths: Vec<&str> = package
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    // Byte order, not path-component order: '-' < '.' < '/' and 'B' < 'a'.
    assert_eq!(
        paths,
        ["B", "a-b", "a.b", "a/b", "b", "world.toml", "world.wasm"]
    );
    let _ = root_of(dir.path());
}

#[test]
fn root_ignores_creation_order() {
    let module = wasm(MINIMAL_WAT);
    let files: [(&str, &[u8]); 7] = [
        ("world.toml", MANIFEST.as_bytes()),
        ("world.wasm", &module),
        ("assets/b.txt", b"bee"),
        ("assets/a.txt", b"ay"),
        ("z.txt", b""),
        ("deep/er/c.bin", &[0, 1, 2, 255]),
        ("a.b", b"dot"),
    ];
    let forward = TempDir::with_files("order-forward", &files);
    let mut reversed_files = files;
    reversed_files.reverse();
    let reversed = TempDir::with_files("order-reversed", &reversed_files);
    let forward_package = Package::load(forward.path()).unwrap();
    let reversed_package = Package::load(reversed.path()).unwrap();
    assert_eq!(forward_package.files, reversed_package.files);
    assert_eq!(root_of(forward.path()), root_of(reversed.path()));
}

#[test]
fn root_ignores_mtimes_and_permissions() {
    let dir = TempDir::valid_package(
        "metadata",
        &[("assets/a.txt", b"ay"), ("run.sh", b"#!/bin/sh\n")],
    );
    check(
        &dir,
        "new mtimes and permissions",
        |root| {
            let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
            for (i, relative) in ["world.toml", "world.wasm", "assets/a.txt", "run.sh"]
                .iter()
                .enumerate()
            {
                let path = root.join(relative);
                std::fs::File::open(&path)
                    .unwrap()
                    .set_modified(then)
                    .unwrap();
                let mode = if i % 2 == 0 { 0o444 } else { 0o755 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            let assets = root.join("assets");
            std::fs::File::open(&assets)
                .unwrap()
                .set_modified(then)
                .unwrap();
            std::fs::set_permissions(&assets, std::fs::Permissions::from_mode(0o700)).unwrap();
        },
        Expect::Same,
    );
}

/// Flips one bit of byte `index` of `relative`.
fn flip(root: &Path, relative: &str, index: usize) {
    let path = root.join(relative);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[index] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

/// `wasm` with a custom section `note` holding `payload` appended, and the
/// offset of the payload.
fn with_custom_section(mut wasm: Vec<u8>, payload: &[u8]) -> (Vec<u8>, usize) {
    let name = b"note";
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 size");
    wasm.extend_from_slice(&[0, size as u8, name.len() as u8]);
    wasm.extend_from_slice(name);
    let offset = wasm.len();
    wasm.extend_from_slice(payload);
    (wasm, offset)
}

#[test]
fn root_changes_with_every_byte() {
    let data: Vec<u8> = (0..32).collect();
    let manifest = format!("{MANIFEST}# comment\n");
    let comment_offset = MANIFEST.len() + 2;
    let (module, payload_offset) = with_custom_section(wasm(MINIMAL_WAT), b"payload!");
    let dir = TempDir::with_files(
        "bytes",
        &[
            ("world.toml", manifest.as_bytes()),
            ("world.wasm", &module),
            ("assets/level.bin", &data),
        ],
    );
    let original = root_of(dir.path());
    let mut seen = BTreeSet::from([original]);
    let targets = [
        ("assets/level.bin", 0..data.len()),
        (
            "world.toml",
            comment_offset..comment_offset + "comment".len(),
        ),
        (
            "world.wasm",
            payload_offset..payload_offset + "payload!".len(),
        ),
    ];
    for (relative, range) in targets {
        for index in range {
            let what = format!("flipping byte {index} of {relative}");
            let changed = check(
                &dir,
                &what,
                |root| flip(root, relative, index),
                Expect::Changed,
            );
            assert!(seen.insert(changed), "{what} gave a root seen before");
            let restored = check(
                &dir,
                &what,
                |root| flip(root, relative, index),
                Expect::Changed,
            );
            assert_eq!(restored, original, "undoing {what}");
        }
    }
    assert_eq!(seen.len(), 1 + 32 + 7 + 8);
}

#[test]
fn root_changes_when_meaningful_bytes_change() {
    let dir = TempDir::valid_package("meaning", &[]);
    check(
        &dir,
        "a different tick rate",
        |root| {
            std::fs::write(
                root.join("world.toml"),
                MANIFEST.replace("tick_rate_hz = 20", "tick_rate_hz = 21"),
            )
            .unwrap()
        },
        Expect::Changed,
    );
    check(
        &dir,
        "a different module",
        |root| {
            std::fs::write(
                root.join("world.wasm"),
                wasm(&MINIMAL_WAT.replacen("i32.const 0", "i32.const 1", 1)),
            )
            .unwrap()
        },
        Expect::Changed,
    );
}

#[test]
fn root_changes_when_a_file_is_renamed() {
    let dir = TempDir::valid_package("rename", &[("assets/a.txt", b"ay"), ("b.txt", b"bee")]);
    let original = root_of(dir.path());
    let renames = [
        ("assets/a.txt", "assets/c.txt"),
        ("assets/c.txt", "assets/A.txt"),
        ("assets/A.txt", "A.txt"),
        ("A.txt", "other/A.txt"),
        ("other/A.txt", "assets/a.txt"),
    ];
    let mut seen = BTreeSet::new();
    for (from, to) in renames {
        let what = format!("renaming {from} to {to}");
        let root = check(
            &dir,
            &what,
            |root| {
                std::fs::create_dir_all(root.join(to).parent().unwrap()).unwrap();
                std::fs::rename(root.join(from), root.join(to)).unwrap();
            },
            Expect::Changed,
        );
        assert!(seen.insert(root), "{what} gave a root seen before");
    }
    // Back where it started, plus the now-empty directory `other`.
    assert_eq!(root_of(dir.path()), original);
}

#[test]
fn root_changes_when_a_file_is_added() {
    let dir = TempDir::valid_package("add", &[("assets/a.txt", b"ay")]);
    let original = root_of(dir.path());
    check(
        &dir,
        "adding an empty file",
        |root| std::fs::write(root.join("empty"), b"").unwrap(),
        Expect::Changed,
    );
    check(
        &dir,
        "adding a file in a new directory",
        |root| {
            std::fs::create_dir(root.join("new")).unwrap();
            std::fs::write(root.join("new/file"), b"n").unwrap();
        },
        Expect::Changed,
    );
    check(
        &dir,
        "removing both again",
        |root| {
            std::fs::remove_file(root.join("empty")).unwrap();
            std::fs::remove_dir_all(root.join("new")).unwrap();
        },
        Expect::Changed,
    );
    assert_eq!(root_of(dir.path()), original);
}

#[test]
fn root_ignores_empty_directories() {
    // The formula covers files only; an empty directory holds none.
    let dir = TempDir::valid_package("empty-dir", &[("assets/a.txt", b"ay")]);
    check(
        &dir,
        "adding an empty directory",
        |root| std::fs::create_dir(root.join("assets/empty")).unwrap(),
        Expect::Same,
    );
}

#[test]
fn root_separates_paths_from_contents() {
    // Same concatenated bytes "x/abc", split differently between path and contents.
    let long_path = TempDir::valid_package("split-path", &[("x/ab", b"c")]);
    let long_contents = TempDir::valid_package("split-contents", &[("x/a", b"bc")]);
    assert_ne!(root_of(long_path.path()), root_of(long_contents.path()));
}
