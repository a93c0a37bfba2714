//! A fenced authority's suffix and the package upgrades recorded in it: an
//! upgrade that took effect at a tick after the cut is undone with the
//! suffix (lineage.json, package/, the pending upgrade), nothing deleted,
//! and the world reopens on its earlier package at the kept tick's roots;
//! an upgrade before the cut stays. (The journal and checkpoint part of
//! the cut, against a real stream, is in the `nats` tests.)

use std::path::Path;
use std::sync::Arc;

use everarcade_engine::CompiledPackage;
use everarcade_federation::fence::quarantine_suffix;
use everarcade_package::Package;
use everarcade_protocol::TickRoots;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, Storage, WorldDir};
use everarcade_testkit::arena::{PACKAGE_DIR, arena};
use everarcade_testkit::bots::Bots;
use everarcade_testkit::temp::TempDir;
use everarcade_testkit::world_id;
use everarcade_world::lineage::{UpgradeKind, read_lineage};
use everarcade_world::upgrade::{UpgradeInputs, apply};
use everarcade_world::{DurableWorld, WorldConfig, bind_package, bound_package};

/// The sample package as version 0.2.0 (a minor upgrade: a protocol
/// transition at the tick after the head), in `scratch`.
fn upgraded_package(scratch: &TempDir) -> Arc<CompiledPackage> {
    let dir = scratch.join("2d-arena-0.2.0");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read_to_string(Path::new(PACKAGE_DIR).join("world.toml"))
        .unwrap()
        .replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1);
    std::fs::write(dir.join("world.toml"), manifest).unwrap();
    std::fs::copy(
        Path::new(PACKAGE_DIR).join("world.wasm"),
        dir.join("world.wasm"),
    )
    .unwrap();
    let package = Package::load(&dir).unwrap();
    assert_eq!(package.manifest.version.to_string(), "0.2.0");
    arena().engine.compile(&package).unwrap()
}

fn open(dir: &WorldDir, compiled: &Arc<CompiledPackage>) -> DurableWorld {
    try_open(dir, compiled).expect("the world opens")
}

fn try_open(
    dir: &WorldDir,
    compiled: &Arc<CompiledPackage>,
) -> Result<DurableWorld, everarcade_world::WorldError> {
    DurableWorld::open(
        Arc::new(DiskStorage),
        dir.clone(),
        world_id(),
        arena().engine.clone(),
        compiled.clone(),
        WorldConfig::default(),
    )
    .map(|(world, _)| world)
}

/// Runs `ticks` ticks of 4 bots; returns, for each, its roots and the
/// ordinal of its tick record (the journal's durable head after it).
fn run(world: &mut DurableWorld, ticks: u64) -> Vec<(TickRoots, u64)> {
    let bots = Bots::new(4);
    (0..ticks)
        .map(|_| {
            let inputs = bots
                .inputs(world.world_mut(), &arena().engine, 7)
                .expect("bots decide");
            for envelope in inputs {
                world.admit(envelope).expect("admitted");
            }
            let roots = world.execute_tick().expect("the tick runs").roots;
            (roots, world.durable_head().ordinal)
        })
        .collect()
}

/// A world on the sample package 0.1.0 (bound in `package/`) that ran
/// ticks 1..=5, was upgraded to 0.2.0 from tick 6, and ran ticks 6..=7 on
/// it, with a checkpoint of tick 7. Returns each tick's roots and tick
/// record ordinal, and the new package.
fn upgraded_world(
    scratch: &TempDir,
    dir: &WorldDir,
) -> (Vec<(TickRoots, u64)>, Arc<CompiledPackage>) {
    let fixture = arena();
    let storage = DiskStorage;
    let mut world = DurableWorld::create(
        Arc::new(DiskStorage),
        dir.clone(),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        WorldConfig::default(),
    )
    .unwrap();
    bind_package(&storage, dir, &fixture.package).unwrap();
    let mut ticks = run(&mut world, 5);
    let journal_end = world.journal_end();
    let head = world.close().unwrap();

    let new = upgraded_package(scratch);
    let (keys, _) = OperatorKeys::load_or_create(&storage, dir, 0).unwrap();
    let inputs = UpgradeInputs {
        storage: &storage,
        dir,
        id: &world_id(),
        engine: &fixture.engine,
        current: fixture.compiled.clone(),
        new: new.clone(),
    };
    let pending = apply(
        &inputs,
        &keys,
        UpgradeKind::Minor,
        head,
        journal_end,
        false,
        None,
    )
    .unwrap();
    assert_eq!(pending.transition.from_tick, 6);

    let mut world = open(dir, &new);
    ticks.extend(run(&mut world, 2));
    world.checkpoint().unwrap();
    world.close().unwrap();
    (ticks, new)
}

#[test]
fn an_upgrade_after_the_cut_is_undone_and_the_world_reopens_on_its_earlier_package() {
    let scratch = TempDir::new("fence-upgrade");
    let dir = WorldDir::new(&scratch.join("root"), &world_id());
    let (ticks, new) = upgraded_world(&scratch, &dir);
    let storage = DiskStorage;
    let lineage_before = storage.read(&dir.lineage()).unwrap();
    let new_root = new.package.root.to_hex();

    // The stream held the records through tick 3; ticks 4..=7, the upgrade
    // at 6 among them, were never replicated.
    let (roots_3, ordinal_3) = ticks[2];
    let summary = quarantine_suffix(&storage, &dir, ordinal_3).unwrap();
    assert_eq!(summary.kept_tick, 3);
    assert!(summary.records > 0);
    let undone: Vec<_> = summary
        .transitions_undone
        .iter()
        .map(|upgrade| {
            (
                upgrade.from_tick,
                upgrade.version.as_str(),
                upgrade.package_root.as_str(),
            )
        })
        .collect();
    assert_eq!(undone, [(6, "0.2.0", new_root.as_str())]);

    // Nothing was deleted: the old lineage.json, the pending upgrade, the
    // package/ that held 0.2.0 and the checkpoint of tick 7 with its
    // signature are in the quarantine; 0.2.0 stays in packages/.
    assert!(
        summary
            .moved
            .iter()
            .all(|path| path.starts_with(dir.quarantine()))
    );
    let copied: Vec<_> = summary
        .moved
        .iter()
        .filter(|path| path.is_file() && std::fs::read(path).unwrap() == lineage_before)
        .collect();
    assert_eq!(copied.len(), 1, "{:?}", summary.moved);
    let names: Vec<String> = summary
        .moved
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["upgrade-pending.json", "package", "checkpoints-"] {
        assert!(
            names.iter().any(|name| name.starts_with(expected)),
            "{expected} in {names:?}"
        );
    }
    assert!(names.iter().any(|name| name.starts_with("signatures-")));
    assert!(!storage.exists(&dir.upgrades().join("pending.json")));
    assert!(storage.exists(&dir.package_store(&new_root)));

    // lineage.json has no transition; package/ is 0.1.0 again.
    assert!(read_lineage(&storage, &dir).unwrap().transitions.is_empty());
    assert_eq!(bound_package(&dir).unwrap().root, arena().package.root);

    // The world reopens on 0.1.0 at tick 3's roots, and not on 0.2.0.
    let refused = try_open(&dir, &new).err().expect("0.2.0 is refused");
    assert_eq!(refused.code(), "package_mismatch", "{refused}");
    let world = open(&dir, &arena().compiled);
    assert_eq!(world.roots(), roots_3);
    world.close().unwrap();

    // Again: nothing more to move or undo.
    let again = quarantine_suffix(&storage, &dir, ordinal_3).unwrap();
    assert_eq!(again.records, 0);
    assert!(again.transitions_undone.is_empty() && again.moved.is_empty());
}

#[test]
fn an_upgrade_before_the_cut_stays() {
    let scratch = TempDir::new("fence-upgrade-kept");
    let dir = WorldDir::new(&scratch.join("root"), &world_id());
    let (ticks, new) = upgraded_world(&scratch, &dir);
    let storage = DiskStorage;
    let lineage_before = storage.read(&dir.lineage()).unwrap();

    // The stream held the records through tick 6, the first on 0.2.0.
    let (roots_6, ordinal_6) = ticks[5];
    let summary = quarantine_suffix(&storage, &dir, ordinal_6).unwrap();
    assert_eq!(summary.kept_tick, 6);
    assert!(summary.records > 0);
    assert!(summary.transitions_undone.is_empty());
    assert_eq!(storage.read(&dir.lineage()).unwrap(), lineage_before);
    assert!(storage.exists(&dir.upgrades().join("pending.json")));
    assert_eq!(bound_package(&dir).unwrap().root, new.package.root);
    let world = open(&dir, &new);
    assert_eq!(world.roots(), roots_6);
    world.close().unwrap();
}
