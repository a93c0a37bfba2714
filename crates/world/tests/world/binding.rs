//! Package binding: a world runs only the package bound at its genesis.
//! Opening, verifying or recovering it with another package (here the
//! sample package with one byte of its manifest changed) fails with
//! `PackageMismatch` naming both roots, and recovery moves nothing.

use std::fs;
use std::path::Path;

use everarcade_package::Package;
use everarcade_protocol::Tick;
use everarcade_testkit::arena::PACKAGE_DIR;
use everarcade_testkit::temp::TempDir;
use everarcade_world::WorldError;

use crate::common::{fixture, make_plan, open_with, snapshot, world_dir, world_id};

const SEED: u64 = 0xb14d_0001;
const TICKS: Tick = 10;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create");
    for entry in fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn another_package_is_refused_naming_both_roots() {
    let temp = TempDir::new("world-binding");
    copy_dir(Path::new(PACKAGE_DIR), temp.path());
    let manifest = temp.join("world.toml");
    let text = fs::read_to_string(&manifest).expect("read world.toml");
    assert!(text.contains("version = \"0.1.0\""));
    fs::write(
        &manifest,
        text.replace("version = \"0.1.0\"", "version = \"0.1.1\""),
    )
    .expect("write world.toml");
    let other = Package::load(temp.path()).expect("the changed package loads");
    let fixture = fixture();
    let (bound, given) = (fixture.package.root, other.root);
    assert_ne!(bound, given);
    let compiled = fixture.engine.compile(&other).expect("compiles");

    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let before = snapshot(&disk);
    let mismatch = |what: &str, error: WorldError| {
        let message = error.to_string();
        match error {
            WorldError::PackageMismatch {
                bound: found_bound,
                given: found_given,
            } => assert_eq!((found_bound, found_given), (bound, given), "{what}"),
            other => panic!("{what} with another package: {other}"),
        }
        assert!(
            message.contains(&bound.to_hex()) && message.contains(&given.to_hex()),
            "{what}: {message}"
        );
    };
    mismatch(
        "open",
        open_with(&disk, compiled.clone())
            .err()
            .expect("open refuses"),
    );
    mismatch(
        "verify",
        everarcade_world::audit::audit(&disk, &world_dir(), &other).expect_err("verify refuses"),
    );
    let repaired = everarcade_world::repair::repair(
        std::sync::Arc::new(disk.clone()),
        world_dir(),
        world_id(),
        fixture.engine.clone(),
        compiled,
        crate::common::config(),
    );
    mismatch("recover", repaired.err().expect("recover refuses"));
    assert_eq!(snapshot(&disk), before, "recover moved or changed files");
}
