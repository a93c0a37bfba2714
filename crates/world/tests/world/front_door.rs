//! The front door: each refusal with its stable code (missing world, held
//! lock, unresolved incident, package mismatch, a divergence found by the
//! runtime-version check), create versus recover, the package binding
//! written through `Storage` (a crash at every sync of a creation leaves no
//! half-written package file, and the world either does not exist or has
//! its whole binding), and the two replay profiles.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use everarcade_package::Package;
use everarcade_protocol::Tick;
use everarcade_store::journal::RecordKind;
use everarcade_store::meta::write_json;
use everarcade_store::{DiskStorage, Reboot, SimStorage, Storage, lock_world};
use everarcade_testkit::arena::PACKAGE_DIR;
use everarcade_testkit::temp::TempDir;
use everarcade_world::front_door::world_exists;
use everarcade_world::incident::{INCIDENT_FORMAT, RuntimeRecord, list_incidents};
use everarcade_world::replay::{ReplayProfile, StartedFrom, replay};
use everarcade_world::{
    Arrival, Entry, FrontDoor, Keys, Lock, Opened, Way, WorldError, bound_package_root,
};

use crate::common::{config, fixture, forge, make_plan, shared, world_dir, world_id};

const SEED: u64 = 0xf00d_0001;
/// Ticks of the match the refusal tests open; checkpoint at tick 7.
const TICKS: Tick = 10;

/// The front door of the sample world on `storage` with the sample package.
fn door(storage: &SimStorage) -> FrontDoor {
    let fixture = fixture();
    FrontDoor {
        storage: shared(storage),
        dir: world_dir(),
        id: world_id(),
        engine: fixture.engine.clone(),
        compiled: fixture.compiled.clone(),
    }
}

/// A node's entry on the simulated disk: everything but the lock (which is
/// a file lock on the real disk).
fn node_entry() -> Entry {
    Entry {
        lock: Lock::None,
        ..Entry::node(config())
    }
}

fn code(result: Result<Opened, WorldError>) -> (&'static str, String) {
    match result {
        Ok(_) => panic!("the front door opened a world it should refuse"),
        Err(error) => (error.code(), error.to_string()),
    }
}

#[test]
fn a_missing_world_is_refused_before_anything_is_created() {
    let temp = TempDir::new("front-door-missing");
    let fixture = fixture();
    let door = FrontDoor {
        storage: Arc::new(DiskStorage),
        dir: everarcade_store::WorldDir::new(temp.path(), &world_id()),
        id: world_id(),
        engine: fixture.engine.clone(),
        compiled: fixture.compiled.clone(),
    };
    let (code, message) = code(door.open(Entry::existing(config())));
    assert_eq!(code, "world_missing", "{message}");
    assert!(
        !door.dir.path().exists(),
        "refusing a missing world created its directory"
    );
}

#[test]
fn a_held_lock_is_refused_naming_the_holder_and_create_then_recover_takes_it() {
    let temp = TempDir::new("front-door-lock");
    let fixture = fixture();
    let door = FrontDoor {
        storage: Arc::new(DiskStorage),
        dir: everarcade_store::WorldDir::new(temp.path(), &world_id()),
        id: world_id(),
        engine: fixture.engine.clone(),
        compiled: fixture.compiled.clone(),
    };
    let mut steps = Vec::new();
    let created = door
        .open_observed(Entry::node(config()), &mut |step| {
            steps.push(format!("{step:?}"))
        })
        .expect("create through the front door");
    assert!(matches!(created.arrival, Arrival::Created));
    assert!(created.lock.is_some(), "Lock::Take keeps the lock");
    assert!(created.key_created, "the node's entry creates the key");
    let order: Vec<&str> = steps
        .iter()
        .map(|step| step.split([' ', '{', '(']).next().unwrap_or(""))
        .collect();
    assert_eq!(order, ["LockTaken", "Created", "KeyReady"], "{steps:?}");

    // While it is open, a second entry is refused with the holder's pid.
    let (code, message) = code(door.open(Entry::existing(config())));
    assert_eq!(code, "world_locked", "{message}");
    assert!(
        message.contains(&std::process::id().to_string()),
        "{message}"
    );
    let Opened { world, lock, .. } = created;
    world.close().expect("close");
    drop(lock);

    // A caller that holds the lock already enters without taking it again.
    let held = lock_world(&door.dir).expect("lock");
    let reopened = door
        .open(Entry {
            lock: Lock::AlreadyHeld,
            ..Entry::existing(config())
        })
        .expect("reopen under a held lock");
    assert!(reopened.lock.is_none());
    match &reopened.arrival {
        Arrival::Recovered(recovery) => assert_eq!(recovery.roots.tick, 0),
        other => panic!("an existing world is recovered, not {other:?}"),
    }
    let key = reopened.keys.as_ref().expect("the key is loaded");
    assert!(
        !reopened.key_created,
        "the key is loaded, not created again"
    );
    assert_eq!(
        key.public_key_hex(),
        reopened.world.operator().expect("signs").public_key_hex()
    );
    reopened.world.close().expect("close");
    drop(held);
}

#[test]
fn an_unresolved_incident_is_refused() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let incident = everarcade_world::incident::Incident {
        format: INCIDENT_FORMAT,
        kind: "divergence".into(),
        detected_by: "self-audit".into(),
        time_unix_ms: 0,
        tick: 3,
        roots: Vec::new(),
        runtime_version: everarcade_world::RUNTIME_VERSION.into(),
        package_root: fixture().package.root.to_hex(),
        message: "replay diverged at tick 3".into(),
    };
    everarcade_world::incident::record_incident(&disk, &world_dir(), &incident).expect("record");
    let (code, message) = code(door(&disk).open(node_entry()));
    assert_eq!(code, "incident_unresolved", "{message}");
    assert!(message.contains("incidents/resolved"), "{message}");
    // An offline entry that does not take part in incidents still opens.
    let opened = door(&disk)
        .open(Entry {
            lock: Lock::None,
            ..Entry::existing(config())
        })
        .expect("an entry without incident checks opens");
    assert_eq!(opened.world.roots(), plan.roots[TICKS as usize]);
}

#[test]
fn another_package_is_refused_with_package_mismatch() {
    let temp = TempDir::new("front-door-package");
    copy_dir(Path::new(PACKAGE_DIR), temp.path());
    let manifest = temp.join("world.toml");
    let text = fs::read_to_string(&manifest).expect("read world.toml");
    fs::write(
        &manifest,
        text.replace("version = \"0.1.0\"", "version = \"0.1.9\""),
    )
    .expect("write world.toml");
    let other = Package::load(temp.path()).expect("the changed package loads");
    let fixture = fixture();
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let door = FrontDoor {
        compiled: fixture.engine.compile(&other).expect("compiles"),
        ..door(&disk)
    };
    let (code, message) = code(door.open(node_entry()));
    assert_eq!(code, "package_mismatch", "{message}");
    assert!(message.contains(&other.root.to_hex()), "{message}");
    assert!(
        !disk.exists(&world_dir().package().join("world.toml")),
        "a refused package was bound"
    );
}

#[test]
fn a_new_runtime_replays_from_genesis_and_a_divergence_is_an_incident() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    // Same runtime: no replay from genesis.
    let mut steps = Vec::new();
    let opened = door(&disk)
        .open_observed(node_entry(), &mut |step| steps.push(format!("{step:?}")))
        .expect("opens");
    drop(opened);
    assert!(
        !steps
            .iter()
            .any(|step| step.starts_with("VerifyingForNewRuntime")),
        "{steps:?}"
    );

    // Another runtime verified last, and the lineage replays: recorded.
    pretend_another_runtime(&disk);
    let mut steps = Vec::new();
    let opened = door(&disk)
        .open_observed(node_entry(), &mut |step| steps.push(format!("{step:?}")))
        .expect("a lineage that replays opens under a new runtime");
    drop(opened);
    assert!(
        steps
            .iter()
            .any(|step| step.starts_with("RuntimeVerified { ticks: 10 }")),
        "{steps:?}"
    );
    let verified = everarcade_world::incident::verified_runtime(&disk, &world_dir()).unwrap();
    assert_eq!(verified, everarcade_world::RUNTIME_VERSION);

    // A forged root before the checkpoint of tick 7: recovery cannot see
    // it, the replay from genesis does.
    forge_tick_root(&disk, 3);
    pretend_another_runtime(&disk);
    let (code, message) = code(door(&disk).open(node_entry()));
    assert_eq!(code, "divergence", "{message}");
    assert!(message.contains("diverged at tick 3"), "{message}");
    let incidents = list_incidents(&disk, &world_dir()).unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].1.detected_by, "startup replay-verify");
    assert_eq!(incidents[0].1.tick, 3);
    // From now on the incident refuses.
    assert_eq!(
        code_of(door(&disk).open(node_entry())),
        "incident_unresolved"
    );
}

#[test]
fn the_profiles_are_recovery_from_a_checkpoint_and_verification_from_genesis() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let door = door(&disk);
    let context = door.context();
    let recovery = ReplayProfile::Recovery.options();
    let replayed = replay(&context, &recovery, &mut |_| {}).expect("recovery");
    assert!(
        matches!(
            replayed.started_from,
            StartedFrom::Checkpoint { tick: 7, .. }
        ),
        "{:?}",
        replayed.started_from
    );
    assert_eq!(replayed.ticks_replayed, TICKS - 7);
    let verify = ReplayProfile::VerifyFromGenesis.options();
    assert!(verify.verify_signatures && !recovery.verify_signatures);
    let replayed = replay(&context, &verify, &mut |_| {}).expect("verify");
    assert_eq!(replayed.started_from, StartedFrom::Genesis);
    assert_eq!(replayed.ticks_replayed, TICKS);
    assert_eq!(replayed.last, plan.roots[TICKS as usize]);

    forge_tick_root(&disk, 3);
    replay(&context, &recovery, &mut |_| {}).expect("recovery starts after the forgery");
    let diverged = replay(&context, &verify, &mut |_| {})
        .err()
        .expect("diverges");
    assert_eq!(diverged.code(), "divergence");
}

/// A clean creation through the front door, then the same creation losing
/// power at each of its syncs, with both reboot modes: no package file is
/// ever found half-written, a world that exists after the reboot has its
/// whole binding, and the front door then creates or recovers it.
///
/// The entry loads the operator key and does not create it: a crash inside
/// the key's creation is the store's own test
/// (`a_creation_that_loses_power_at_any_sync_is_created_again`).
#[test]
fn the_binding_is_written_through_storage_and_survives_a_crash_at_every_sync() {
    let node_entry = || Entry {
        keys: Keys::Load,
        ..node_entry()
    };
    let clean = SimStorage::new();
    let opened = door(&clean).open(node_entry()).expect("create");
    assert!(matches!(opened.arrival, Arrival::Created));
    let bound = opened.bound.as_ref().expect("a new world is bound");
    assert_eq!(bound.written.len(), fixture().package.files.len());
    // The syncs of the way in (closing is not part of it).
    let syncs = clean.syncs();
    opened.world.close().expect("close");
    assert_binding_whole(&clean, "the clean run");
    assert_eq!(
        bound_package_root(&clean, &world_dir()).unwrap(),
        fixture().package.root
    );

    let mut existed = 0;
    for n in 1..=syncs {
        for reboot in [Reboot::LoseUnsynced, Reboot::TornUnsynced { seed: n }] {
            let disk = SimStorage::new();
            disk.crash_at_sync(n);
            let crashed = door(&disk).open(node_entry());
            assert!(crashed.is_err(), "sync {n}: the crash did not happen");
            let after = disk.reboot(reboot);
            let case = format!("sync {n} of {syncs}, {reboot:?}");
            assert_no_half_file(&after, &case);
            if world_exists(&after, &world_dir()).unwrap() {
                existed += 1;
                assert_binding_whole(&after, &case);
            }
            let opened = match door(&after).open(node_entry()) {
                Ok(opened) => opened,
                // Power lost while the first segment's header was written:
                // `recover` moves it to quarantine, and the world, which
                // never existed, is created again.
                Err(error) if error.code() == "torn_tail" => {
                    let repair = Entry {
                        lock: Lock::None,
                        way: Way::Repair,
                        ..Entry::existing(config())
                    };
                    let repaired = door(&after).open(repair);
                    assert_eq!(code_of(repaired), "world_missing", "{case}");
                    door(&after)
                        .open(node_entry())
                        .unwrap_or_else(|error| panic!("{case}: after recover: {error}"))
                }
                Err(error) => panic!("{case}: the front door refuses: {error}"),
            };
            assert_eq!(opened.world.roots().tick, 0, "{case}");
            opened.world.close().expect("close");
            assert_binding_whole(&after, &case);
        }
    }
    assert!(existed > 0, "no crash point left a created world");
}

/// Every package file in `package/` that exists has its whole contents.
fn assert_no_half_file(storage: &SimStorage, case: &str) {
    let target = world_dir().package();
    for file in &fixture().package.files {
        let path = target.join(&file.path);
        if let Ok(bytes) = storage.read(&path) {
            assert_eq!(
                everarcade_protocol::Domain::PackageFile.hash(&bytes),
                file.hash,
                "{case}: {} is half-written",
                path.display()
            );
        }
    }
}

/// Every package file is in `package/` with its whole contents.
fn assert_binding_whole(storage: &SimStorage, case: &str) {
    let target = world_dir().package();
    for file in &fixture().package.files {
        let path = target.join(&file.path);
        let bytes = storage
            .read(&path)
            .unwrap_or_else(|_| panic!("{case}: {} is missing", path.display()));
        assert_eq!(
            everarcade_protocol::Domain::PackageFile.hash(&bytes),
            file.hash,
            "{case}: {}",
            path.display()
        );
    }
}

fn code_of(result: Result<Opened, WorldError>) -> &'static str {
    code(result).0
}

/// `runtime.json` as an older runtime would have left it.
fn pretend_another_runtime(storage: &dyn Storage) {
    let record = RuntimeRecord {
        format: INCIDENT_FORMAT,
        runtime_version: "0.0.1-previous".into(),
        verified_through_tick: 0,
        continuity_root: "00".repeat(32),
    };
    write_json(storage, &world_dir().runtime_record(), &record).expect("write runtime.json");
}

/// Flips a bit of the recorded state root of tick `tick` (checksums
/// recomputed, as a forger would).
fn forge_tick_root(storage: &SimStorage, tick: Tick) {
    forge(storage, &mut |raw| {
        let body = &raw.body;
        let is_tick = raw.kind == RecordKind::Tick && body[..8] == tick.to_le_bytes();
        is_tick.then(|| {
            let mut body = body.clone();
            // tick u64, input count u32, then the input, receipt and state roots.
            body[12 + 64] ^= 0x80;
            body
        })
    });
}

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
