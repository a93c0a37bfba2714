//! A failed fsync poisons: the call that hit it fails, every later call
//! fails with `Poisoned` without touching the disk again (an fsync is never
//! retried), and reopening on the same disk recovers a consistent world.

use std::collections::BTreeSet;

use everarcade_protocol::Tick;
use everarcade_store::SimStorage;
use everarcade_world::{DurableWorld, ErrorClass, WorldError};

use crate::check::{check_no_world, check_recovered, play_on, recover};
use crate::common::{Driver, Halt, Ledger, Plan, create, make_plan};

/// Ticks per match.
const TICKS: Tick = 30;

/// Every sync of a match fails in turn: creation, group commits, ticks,
/// segment rolls, checkpoints, checkpoint pruning, closing.
#[test]
fn a_failed_fsync_poisons_the_world_until_it_is_reopened() {
    let plan = make_plan(0xf500_0001, TICKS);
    let mut failed_in = BTreeSet::new();
    for n in 1..=plan.syncs {
        failed_in.insert(failure_case(&plan, n));
    }
    for place in ["genesis.json", "journal", "checkpoints", "status.json"] {
        assert!(
            failed_in.contains(place),
            "no fsync failed in {place}: {failed_in:?}"
        );
    }
}

/// Fails sync `n` and checks; returns where the failed call was writing.
fn failure_case(plan: &Plan, n: u64) -> &'static str {
    let case = format!("seed {:#x}, fail_sync_at({n})", plan.seed);
    let disk = SimStorage::new();
    disk.fail_sync_at(n);
    let mut driver = Driver::new();
    let error = match create(&disk) {
        Err(error) => error,
        Ok(mut world) => match driver.play(plan, &mut world) {
            Err(Halt::Failed(error)) => {
                check_poisoned(&case, &mut world);
                error
            }
            Err(Halt::Stopped) => unreachable!("no operation budget"),
            Ok(()) => world
                .close()
                .err()
                .unwrap_or_else(|| panic!("{case}: no call failed")),
        },
    };
    check_failure(&case, &error);
    assert_eq!(
        disk.syncs(),
        n,
        "{case}: the disk was synced again after the failed fsync"
    );
    let mut ledger = Ledger::default();
    ledger.absorb(&driver);
    match recover(&case, &disk, true) {
        (Some((world, recovery)), _) => {
            check_recovered(&case, plan, &disk, &ledger, &recovery);
            play_on(&case, plan, &disk, world);
        }
        (None, _) => check_no_world(&case, plan, &disk, &ledger),
    }
    let message = error.to_string();
    ["genesis.json", "journal", "checkpoints", "status.json"]
        .into_iter()
        .find(|place| message.contains(place))
        .unwrap_or_else(|| panic!("{case}: where did it fail? {message}"))
}

/// The call that hit the failed fsync reports an operational failure.
fn check_failure(case: &str, error: &WorldError) {
    assert_eq!(
        error.class(),
        ErrorClass::Operational,
        "{case}: the failed fsync is reported as {error}"
    );
    assert!(
        matches!(error.code(), "journal_poisoned" | "io"),
        "{case}: the failed fsync is reported as {} ({error})",
        error.code()
    );
}

/// Every later call fails with `Poisoned`.
fn check_poisoned(case: &str, world: &mut DurableWorld) {
    let poisoned = |call: &str, result: Result<(), WorldError>| match result {
        Err(WorldError::Poisoned(_)) => {}
        Err(error) => panic!("{case}: {call} after a failed fsync: {error}, not poisoned"),
        Ok(()) => panic!("{case}: {call} succeeded after a failed fsync"),
    };
    poisoned("commit_inputs", world.commit_inputs().map(drop));
    poisoned("execute_tick", world.execute_tick().map(drop));
    poisoned("checkpoint", world.checkpoint().map(drop));
    poisoned("write_status", world.write_status("stopped"));
}
