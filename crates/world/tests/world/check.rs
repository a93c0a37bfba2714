//! The checks every recovery must pass, shared by the crash, lost-write and
//! fsync-failure tests: (a) no acknowledged input is missing, (b) the
//! recovered roots are the clean run's, (c) the world plays on to the end of
//! the match and a replay from genesis with signatures agrees, (d) `verify`
//! passes.

use everarcade_store::{SimStorage, Storage, StoreError};
use everarcade_world::repair::Action;
use everarcade_world::{DurableWorld, Recovery, WorldError};

use crate::common::{
    Driver, Ledger, Plan, audit, create, open, read_journal, repair, replay_from_genesis, world_dir,
};

/// How recovery went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// `DurableWorld::open` succeeded directly.
    Opened,
    /// `open` found a torn tail; `recover` truncated it and recovered.
    Repaired,
    /// No world: it never existed durably.
    NoWorld,
}

/// Recovers the world on `disk`: `open`, and `recover` if (and only if
/// `torn_possible`) `open` reports a torn tail. `None`: there is no world.
pub fn recover(
    case: &str,
    disk: &SimStorage,
    torn_possible: bool,
) -> (Option<(DurableWorld, Recovery)>, Recovered) {
    match open(disk) {
        Ok(opened) => (Some(opened), Recovered::Opened),
        Err(WorldError::Store(StoreError::TornTail { path, offset, .. })) => {
            // Without a torn write, only an interrupted creation leaves a
            // journal to repair: a first segment without its genesis record.
            let creation = (path.as_path(), offset) == (world_dir().segment(1).as_path(), 0);
            assert!(
                torn_possible || creation,
                "{case}: {} is torn at byte {offset}, though no write was interrupted",
                path.display()
            );
            match repair(disk) {
                Ok(repaired) => {
                    assert!(
                        repaired.actions.iter().any(|action| matches!(
                            action,
                            Action::TruncatedTornTail { .. } | Action::Quarantined { .. }
                        )),
                        "{case}: recover said nothing about the torn tail: {:?}",
                        repaired.actions
                    );
                    let opened = (repaired.world, repaired.recovery);
                    (Some(opened), Recovered::Repaired)
                }
                // The world's creation was torn: its only segment is now in
                // quarantine and there is no world.
                Err(WorldError::Store(StoreError::Missing { .. })) => {
                    let quarantined = world_dir().quarantine().join("journal-0000000001.seg");
                    assert!(
                        disk.exists(&quarantined),
                        "{case}: recover found no world but quarantined nothing"
                    );
                    (None, Recovered::NoWorld)
                }
                Err(error) => panic!("{case}: recover failed: {error}"),
            }
        }
        Err(WorldError::Store(StoreError::Missing { .. })) => (None, Recovered::NoWorld),
        Err(error) => panic!("{case}: recovery failed: {error}"),
    }
}

/// There is no world: nothing may have been acknowledged, `recover` agrees,
/// and the world can be created again and plays the match clean.
pub fn check_no_world(case: &str, plan: &Plan, disk: &SimStorage, ledger: &Ledger) {
    assert!(
        ledger.acknowledged.is_empty(),
        "{case}: inputs were acknowledged, but there is no world"
    );
    match repair(disk) {
        Err(WorldError::Store(StoreError::Missing { .. })) => {}
        Err(error) => panic!("{case}: recover of a world never created failed otherwise: {error}"),
        Ok(_) => panic!("{case}: recover found a world that open did not"),
    }
    let world = create(disk)
        .unwrap_or_else(|error| panic!("{case}: cannot create the world again: {error}"));
    let last = Driver::new()
        .run(plan, world)
        .unwrap_or_else(|halt| panic!("{case}: the match after re-creating failed: {halt:?}"));
    assert_eq!(last, plan.roots[plan.last_tick() as usize], "{case}");
    audit(disk).unwrap_or_else(|error| panic!("{case}: verify failed: {error}"));
}

/// (a) every acknowledged input is journaled, in a tick up to the recovered
/// height or among the recovered pending inputs, and nothing else is; (b)
/// the recovered roots, and every journaled tick's, are the clean run's.
pub fn check_recovered(
    case: &str,
    plan: &Plan,
    disk: &SimStorage,
    ledger: &Ledger,
    recovery: &Recovery,
) {
    let height = recovery.roots.tick;
    assert!(
        height >= ledger.executed,
        "{case}: recovered to tick {height}, but tick {} was acknowledged",
        ledger.executed
    );
    assert!(height <= plan.last_tick(), "{case}: beyond the match");
    assert_eq!(
        recovery.roots, plan.roots[height as usize],
        "{case}: the recovered roots at tick {height} are not the clean run's"
    );
    let journal = read_journal(disk)
        .unwrap_or_else(|error| panic!("{case}: the recovered journal does not read: {error}"));
    assert!(journal.torn.is_none(), "{case}: a torn tail after recovery");
    assert_eq!(
        journal.ticks,
        plan.roots[1..=height as usize],
        "{case}: the journaled ticks are not the clean run's"
    );
    let journaled = journal.envelope_hashes();
    for hash in &ledger.acknowledged {
        assert!(
            journaled.contains(hash),
            "{case}: acknowledged input {hash} is lost (recovered height {height})"
        );
    }
    assert!(
        journaled.is_subset(&ledger.admitted),
        "{case}: the journal holds inputs that were never admitted"
    );
    assert!(
        journal.inputs.keys().all(|tick| *tick <= height + 1),
        "{case}: inputs journaled beyond the next tick"
    );
    let pending = journal
        .inputs
        .get(&(height + 1))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        pending.len(),
        recovery.pending_inputs,
        "{case}: pending inputs"
    );
    let planned = plan
        .ticks
        .get(height as usize)
        .map_or(&[][..], Vec::as_slice);
    let prefix: Vec<_> = planned
        .iter()
        .take(pending.len())
        .map(|step| step.envelope.clone())
        .collect();
    assert_eq!(
        pending, prefix,
        "{case}: the pending inputs are not the next tick's first planned inputs, in order"
    );
}

/// (c) the recovered world plays the match to its end with the clean run's
/// roots at every tick; a replay from genesis with signatures re-checked
/// agrees; reopening (from a checkpoint) agrees; (d) `verify` passes and
/// counts every input of the match exactly once.
pub fn play_on(case: &str, plan: &Plan, disk: &SimStorage, world: DurableWorld) {
    let last_tick = plan.last_tick();
    let expected = plan.roots[last_tick as usize];
    let last = Driver::new()
        .run(plan, world)
        .unwrap_or_else(|halt| panic!("{case}: playing on after recovery failed: {halt:?}"));
    assert_eq!(last, expected, "{case}: the match ended elsewhere");
    let replayed = replay_from_genesis(disk)
        .unwrap_or_else(|error| panic!("{case}: replay from genesis failed: {error}"));
    assert_eq!(replayed.last, expected, "{case}: replay from genesis");
    assert_eq!(replayed.ticks_replayed, last_tick, "{case}");
    assert!(replayed.pending.is_empty(), "{case}: pending after close");
    let (_, recovery) =
        open(disk).unwrap_or_else(|error| panic!("{case}: reopening failed: {error}"));
    assert_eq!(recovery.roots, expected, "{case}: reopening");
    assert!(
        recovery.skipped_checkpoints.is_empty(),
        "{case}: checkpoints passed over: {:?}",
        recovery.skipped_checkpoints
    );
    let audit = audit(disk).unwrap_or_else(|error| panic!("{case}: verify failed: {error}"));
    assert_eq!(
        audit.head,
        Some((last_tick, expected.continuity_root)),
        "{case}"
    );
    assert_eq!(
        audit.envelopes as usize,
        plan.inputs(),
        "{case}: verify counted other inputs than the match has"
    );
    assert!(!audit.checkpoints.is_empty(), "{case}: no checkpoint");
}
