//! The shipped 2d-arena package loads and validates, and its root is stable.

mod common;

use std::path::PathBuf;

use everarcade_package::{ABI_V1, Exports, Package};

fn arena_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../runtime/games/2d-arena"
    ))
}

fn load_arena() -> Package {
    let dir = arena_dir();
    Package::load(&dir).unwrap_or_else(|e| panic!("{}: [{}] {e}", dir.display(), e.code()))
}

#[test]
fn arena_package_loads() {
    let package = load_arena();
    let manifest = &package.manifest;
    assert_eq!(manifest.name, "2d-arena");
    assert_eq!(manifest.version, semver_0_1_0());
    assert_eq!(manifest.abi, ABI_V1);
    assert_eq!(manifest.module, "world.wasm");
    assert_eq!(
        package.exports,
        Exports {
            genesis: true,
            tick: true,
            bot: true
        }
    );
    let paths: Vec<&str> = package
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    for required in ["world.toml", "world.wasm"] {
        assert!(
            paths.contains(&required),
            "{required} not in listing {paths:?}"
        );
    }
    let module = package
        .files
        .iter()
        .find(|file| file.path == "world.wasm")
        .unwrap();
    assert_eq!(module.length, package.wasm.len() as u64);
    assert!(package.manifest.limits.memory_bytes >= 2 * 65_536);
}

#[test]
fn arena_root_is_stable_across_loads() {
    let first = load_arena();
    let second = load_arena();
    assert_eq!(first.root, second.root);
    assert_eq!(first.files, second.files);
}

#[test]
fn arena_listing_and_root_follow_the_formula() {
    let package = load_arena();
    let mut on_disk = common::disk_files(&arena_dir());
    on_disk.sort();
    let listed: Vec<(&str, u64)> = package
        .files
        .iter()
        .map(|file| (file.path.as_str(), file.length))
        .collect();
    let expected: Vec<(&str, u64)> = on_disk
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.len() as u64))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(package.root, common::reference_root_owned(&on_disk));
}

fn semver_0_1_0() -> semver::Version {
    semver::Version::new(0, 1, 0)
}
