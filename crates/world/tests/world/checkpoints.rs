//! Checkpoint fallback: a damaged checkpoint, or one that verifies but
//! contradicts the journal, is passed over (and reported) by recovery, which
//! falls back to an older checkpoint or to genesis and still reaches the
//! recorded roots; `recover` moves it to quarantine and deletes nothing.

use std::path::PathBuf;

use everarcade_protocol::Tick;
use everarcade_store::checkpoint::{encode_checkpoint, list_checkpoints, load_checkpoint};
use everarcade_store::{SimStorage, Storage};
use everarcade_world::repair::Action;
use everarcade_world::replay::StartedFrom;

use crate::common::{Plan, create, flip_byte, make_plan, open, repair, snapshot, world_dir};

const SEED: u64 = 0xc4ec_0001;
/// With a checkpoint every 7 ticks and 2 retained: checkpoints 21 and 28.
const TICKS: Tick = 30;

fn checkpoints(disk: &SimStorage) -> Vec<(Tick, PathBuf)> {
    list_checkpoints(disk, &world_dir())
        .expect("list checkpoints")
        .checkpoints
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let listed = checkpoints(&disk);
    assert_eq!(
        listed.iter().map(|(tick, _)| *tick).collect::<Vec<_>>(),
        [21, 28]
    );
    let (older, newest) = (listed[0].1.clone(), listed[1].1.clone());
    let length = disk.read(&newest).expect("read").len();
    flip_byte(&disk, &newest, length / 2);

    let (_, recovery) = open(&disk).expect("open falls back");
    assert_eq!(
        recovery.started_from,
        StartedFrom::Checkpoint {
            tick: 21,
            path: older.clone()
        }
    );
    assert_eq!(recovery.skipped_checkpoints.len(), 1);
    let (skipped, reason) = &recovery.skipped_checkpoints[0];
    assert_eq!(skipped, &newest);
    assert!(reason.contains("checksum"), "{reason}");
    assert_eq!(recovery.ticks_replayed, TICKS - 21);
    assert_eq!(recovery.roots, plan.roots[TICKS as usize]);

    check_quarantined(&plan, &disk, &newest, "checksum");
}

#[test]
fn with_every_checkpoint_damaged_recovery_replays_from_genesis() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let listed = checkpoints(&disk);
    for (_, path) in &listed {
        flip_byte(&disk, path, 20);
    }
    let (_, recovery) = open(&disk).expect("open falls back to genesis");
    assert_eq!(recovery.started_from, StartedFrom::Genesis);
    let skipped: Vec<PathBuf> = recovery
        .skipped_checkpoints
        .iter()
        .map(|(path, _)| path.clone())
        .collect();
    let newest_first: Vec<PathBuf> = listed.iter().rev().map(|(_, path)| path.clone()).collect();
    assert_eq!(skipped, newest_first);
    assert_eq!(recovery.ticks_replayed, TICKS);
    assert_eq!(recovery.roots, plan.roots[TICKS as usize]);
}

/// A checkpoint whose checksum and state root check out, but whose state is
/// not the one the journal records for its tick.
#[test]
fn a_checkpoint_that_contradicts_the_journal_is_passed_over() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let newest = checkpoints(&disk)[1].1.clone();
    let mut checkpoint = load_checkpoint(&disk, &newest).expect("the checkpoint loads");
    checkpoint.state.set(b"forged", b"gold");
    let state_root = checkpoint.state.root();
    let bytes = encode_checkpoint(
        checkpoint.tick,
        &checkpoint.genesis_root,
        &checkpoint.continuity_root,
        &state_root,
        &checkpoint.state,
        &checkpoint.nonces,
    );
    disk.overwrite(&newest, bytes).expect("write");
    load_checkpoint(&disk, &newest).expect("the forged checkpoint loads");

    let (_, recovery) = open(&disk).expect("open passes it over");
    assert_eq!(recovery.skipped_checkpoints.len(), 1);
    let (skipped, reason) = &recovery.skipped_checkpoints[0];
    assert_eq!(skipped, &newest);
    assert!(reason.contains("contradicts the journal"), "{reason}");
    assert_eq!(recovery.roots, plan.roots[TICKS as usize]);

    check_quarantined(&plan, &disk, &newest, "contradicts the journal");
}

/// `recover` moves `bad` to quarantine (bytes intact), changes nothing
/// else, and the recovery that follows passes over no checkpoint.
fn check_quarantined(plan: &Plan, disk: &SimStorage, bad: &PathBuf, why: &str) {
    let before = snapshot(disk);
    let repaired = repair(disk).expect("recover");
    let [Action::Quarantined { from, to, reason }] = repaired.actions.as_slice() else {
        panic!("recover did: {:?}", repaired.actions);
    };
    assert_eq!(from, bad);
    assert!(reason.contains(why), "{reason}");
    assert_eq!(to.parent(), Some(world_dir().quarantine().as_path()));
    assert!(!disk.exists(bad), "{} is still there", bad.display());
    let mut expected = before;
    let bytes = expected.remove(bad).expect("it was there");
    expected.insert(to.clone(), bytes);
    assert_eq!(
        snapshot(disk),
        expected,
        "recover changed more than the move"
    );
    assert!(repaired.recovery.skipped_checkpoints.is_empty());
    assert_eq!(
        repaired.recovery.started_from,
        StartedFrom::Checkpoint {
            tick: 21,
            path: checkpoints(disk)[0].1.clone()
        }
    );
    assert_eq!(repaired.recovery.roots, plan.roots[TICKS as usize]);
}

/// A checkpoint taken at genesis (tick 0, before any tick record) is a
/// valid starting point, not a checkpoint "beyond the journal".
#[test]
fn a_checkpoint_at_genesis_is_used() {
    let plan = make_plan(SEED, 3);
    let disk = SimStorage::new();
    let mut world = create(&disk).expect("create");
    let taken = world.checkpoint().expect("checkpoint at genesis");
    assert_eq!(taken.tick, 0);
    world.close().expect("close");
    let (world, recovery) = open(&disk).expect("open");
    assert!(
        recovery.skipped_checkpoints.is_empty(),
        "{:?}",
        recovery.skipped_checkpoints
    );
    assert_eq!(
        recovery.started_from,
        StartedFrom::Checkpoint {
            tick: 0,
            path: taken.path.clone()
        }
    );
    assert_eq!(recovery.roots, plan.roots[0]);
    crate::check::play_on("a checkpoint at genesis", &plan, &disk, world);
    let repaired = repair(&disk).expect("recover");
    assert!(repaired.actions.is_empty(), "{:?}", repaired.actions);
}

/// A disk on which a running node's retention removes `victim` just as a
/// reader that listed it comes to read it.
struct PrunedWhileRead {
    disk: SimStorage,
    victim: PathBuf,
}

impl Storage for PrunedWhileRead {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.disk.create_dir_all(dir)
    }
    fn read(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        if path == self.victim && self.disk.exists(path) {
            self.disk.remove_file(path)?;
        }
        self.disk.read(path)
    }
    fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        self.disk.list(dir)
    }
    fn exists(&self, path: &std::path::Path) -> bool {
        self.disk.exists(path)
    }
    fn append(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<Box<dyn everarcade_store::storage::AppendFile>> {
        self.disk.append(path)
    }
    fn write_synced(&self, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
        self.disk.write_synced(path, bytes)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        self.disk.rename(from, to)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.disk.sync_dir(dir)
    }
    fn truncate(&self, path: &std::path::Path, length: u64) -> std::io::Result<()> {
        self.disk.truncate(path, length)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.disk.remove_file(path)
    }
}

#[test]
fn verify_passes_over_a_checkpoint_that_retention_removed_while_it_read() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let listed = checkpoints(&disk);
    let racing = PrunedWhileRead {
        disk: disk.clone(),
        victim: listed[0].1.clone(),
    };
    let audit =
        everarcade_world::audit::audit(&racing, &world_dir(), &crate::common::fixture().package)
            .expect("a checkpoint removed under the reader is not damage");
    assert_eq!(
        audit
            .checkpoints
            .iter()
            .map(|(tick, _)| *tick)
            .collect::<Vec<_>>(),
        [listed[1].0],
        "the remaining checkpoint is verified"
    );
    assert!(
        audit
            .warnings
            .iter()
            .any(|w| w.contains("removed while it was being verified")),
        "{:?}",
        audit.warnings
    );
    // A checkpoint that is there but damaged still fails.
    let length = disk.read(&listed[1].1).unwrap().len();
    flip_byte(&disk, &listed[1].1, length / 2);
    assert!(crate::common::audit(&disk).is_err());
}
