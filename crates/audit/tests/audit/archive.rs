//! Archive recovery: chained bundles (and journals) rebuild the world; material
//! that does not chain is refused with the tick where the chain breaks, before
//! anything is written.

use std::path::{Path, PathBuf};

use everarcade_audit::Class;
use everarcade_audit::archive::{ArchiveError, RebuildRequest, Rebuilt, open_source, rebuild};
use everarcade_protocol::Tick;
use everarcade_world::{DurableWorld, WorldConfig};

use crate::common::{Built, Temp, build, export_window, extend, fixture, world_id};

fn write_bundle(dir: &Path, built: &Built, from: Tick, to: Tick) -> PathBuf {
    let path = dir.join(format!("{from}-{to}.bundle"));
    std::fs::write(&path, export_window(built, from, to).bytes).unwrap();
    path
}

fn recover(root: &Path, paths: &[PathBuf]) -> Result<Rebuilt, ArchiveError> {
    let fixture = fixture();
    let mut sources = Vec::new();
    for path in paths {
        sources.push(open_source(path, &[])?);
    }
    let request = RebuildRequest {
        runtime_root: root,
        id: &world_id(),
        package: &fixture.package,
        engine: fixture.engine.clone(),
        compiled: fixture.compiled.clone(),
        config: WorldConfig {
            checkpoint_interval_ticks: 8,
            ..WorldConfig::default()
        },
    };
    rebuild(&request, sources, &mut |_| {})
}

fn broken_at(result: Result<Rebuilt, ArchiveError>) -> Tick {
    match result {
        Err(ArchiveError::ChainBroken { tick, .. }) => tick,
        Err(other) => panic!("expected a broken chain, got {other}"),
        Ok(_) => panic!("expected a broken chain, got a world"),
    }
}

#[test]
fn chained_bundles_rebuild_the_world_in_any_order() {
    let built = build("archive", 21, 30, 10);
    let material = Temp::new("archive-material");
    let bundles = [
        write_bundle(material.path(), &built, 20, 30),
        write_bundle(material.path(), &built, 0, 12),
        write_bundle(material.path(), &built, 12, 20),
        // Overlapping and redundant material is fine when it chains.
        write_bundle(material.path(), &built, 3, 10),
    ];
    let target = Temp::new("archive-target");
    let rebuilt = recover(target.path(), &bundles).unwrap();
    assert_eq!(rebuilt.roots, built.head());
    assert_eq!(rebuilt.ticks, 30);
    assert_eq!(rebuilt.redundant, vec![bundles[3].clone()]);
    let spans: Vec<(Tick, Tick)> = rebuilt
        .contributions
        .iter()
        .map(|(_, a, b)| (*a, *b))
        .collect();
    assert_eq!(spans, vec![(0, 12), (13, 20), (21, 30)]);
    // The rebuilt world opens like any other and replays to the same head.
    let fixture = fixture();
    let (world, recovery) = DurableWorld::open(
        std::sync::Arc::new(everarcade_store::DiskStorage),
        everarcade_store::WorldDir::new(target.path(), &world_id()),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        WorldConfig::default(),
    )
    .unwrap();
    assert_eq!(recovery.roots, built.head());
    world.close().unwrap();
    // An existing world is never touched.
    let again = recover(target.path(), &bundles).unwrap_err();
    assert!(matches!(again, ArchiveError::Exists { .. }), "{again}");
}

#[test]
fn a_backup_journal_and_later_bundles_rebuild_the_world() {
    let mut built = build("journal", 22, 24, 6);
    let material = Temp::new("journal-material");
    let backup = material.path().join("backup");
    copy_tree(built.dir.path(), &backup);
    extend(&mut built, 16);
    let later = write_bundle(material.path(), &built, 18, 40);
    let redundant = write_bundle(material.path(), &built, 10, 20);
    let target = Temp::new("journal-target");
    let rebuilt = recover(
        target.path(),
        &[later.clone(), redundant.clone(), backup.clone()],
    )
    .unwrap();
    assert_eq!(rebuilt.roots, built.head());
    assert_eq!(rebuilt.redundant, vec![redundant]);
    let spans: Vec<(PathBuf, Tick, Tick)> = rebuilt.contributions.clone();
    assert_eq!(spans, vec![(backup, 0, 24), (later, 25, 40)]);
    // The world's own, longer journal is a source as well.
    let target = Temp::new("journal-target-2");
    let rebuilt = recover(target.path(), &[built.dir.path().to_path_buf()]).unwrap();
    assert_eq!(rebuilt.roots, built.head());
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn material_that_does_not_chain_is_refused_with_the_break_tick() {
    let built = build("break", 23, 20, 5);
    let fork = build("fork", 24, 20, 5);
    let material = Temp::new("break-material");
    let base = write_bundle(material.path(), &built, 0, 10);
    let target = Temp::new("break-target");
    // A gap: nothing holds tick 11.
    let gap = write_bundle(material.path(), &built, 15, 20);
    assert_eq!(broken_at(recover(target.path(), &[base.clone(), gap])), 11);
    // Another history of the same world from tick 10 on: C(10) differs.
    let forked = material.path().join("fork.bundle");
    std::fs::write(&forked, export_window(&fork, 10, 20).bytes).unwrap();
    assert_eq!(
        broken_at(recover(target.path(), &[base.clone(), forked])),
        10
    );
    // The same history up to 5, then forked: breaks where they meet.
    let overlap = material.path().join("overlap.bundle");
    std::fs::write(&overlap, export_window(&fork, 5, 20).bytes).unwrap();
    assert_eq!(
        broken_at(recover(target.path(), &[base.clone(), overlap])),
        10
    );
    // No base from genesis.
    let tail = write_bundle(material.path(), &built, 10, 20);
    assert_eq!(broken_at(recover(target.path(), &[tail])), 1);
    // Nothing was written.
    assert!(!target.path().join("worlds").exists());
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
}

#[test]
fn another_world_is_refused_at_genesis_and_a_damaged_bundle_before_anything() {
    let built = build("other", 25, 8, 0);
    let material = Temp::new("other-material");
    let base = write_bundle(material.path(), &built, 0, 8);
    let target = Temp::new("other-target");
    let fixture = fixture();
    let source = open_source(&base, &[]).unwrap();
    let request = RebuildRequest {
        runtime_root: target.path(),
        id: &everarcade_protocol::WorldId::new("world-002").unwrap(),
        package: &fixture.package,
        engine: fixture.engine.clone(),
        compiled: fixture.compiled.clone(),
        config: WorldConfig::default(),
    };
    assert_eq!(broken_at(rebuild(&request, vec![source], &mut |_| {})), 0);
    let mut bytes = std::fs::read(&base).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&base, bytes).unwrap();
    let error = open_source(&base, &[])
        .err()
        .expect("a damaged bundle opens");
    assert_eq!(error.class(), Class::Malformed, "{error}");
}
