//! Crash consistency: a match on the simulated disk loses power at a random
//! sync; after a reboot that drops (or tears) everything unsynced, recovery
//! must pass every check of [`crate::check`].
//!
//! Any failure names its seed, sync number and reboot mode; rerunning the
//! same test reproduces it exactly.

use std::time::Instant;

use everarcade_protocol::Tick;
use everarcade_store::{Reboot, SimStorage};

use crate::check::{Recovered, check_no_world, check_recovered, play_on, recover};
use crate::common::{Driver, Halt, Ledger, Plan, Rng, create, make_plan};

/// Ticks per match.
const TICKS: Tick = 48;
/// Random crash points per seed.
const CRASH_POINTS_PER_SEED: usize = 120;
/// Syncs `DurableWorld::create` performs: genesis.json (file, directory),
/// the first segment (file, directory), the genesis record, status.json
/// (file, directory).
const CREATE_SYNCS: u64 = 7;

#[test]
fn crash_points_seed_1() {
    crash_points(0x5eed_0001);
}

#[test]
fn crash_points_seed_2() {
    crash_points(0x5eed_0002);
}

#[test]
fn crash_points_seed_3() {
    crash_points(0x5eed_0003);
}

#[test]
fn crash_points_seed_4() {
    crash_points(0x5eed_0004);
}

/// Every sync of world creation (and the first one after it), with both
/// reboot modes: afterwards the world either does not exist (and can be
/// created again) or recovers at genesis.
#[test]
fn crash_while_creating_the_world() {
    let plan = make_plan(0x5eed_0005, 10);
    let mut outcomes = Vec::new();
    for n in 1..=CREATE_SYNCS + 1 {
        for reboot in [Reboot::LoseUnsynced, Reboot::TornUnsynced { seed: n }] {
            outcomes.push(crash_case(&plan, n, reboot));
        }
    }
    assert!(outcomes.contains(&Recovered::NoWorld), "{outcomes:?}");
    assert!(outcomes.contains(&Recovered::Opened), "{outcomes:?}");
}

fn crash_points(seed: u64) {
    let started = Instant::now();
    let plan = make_plan(seed, TICKS);
    let mut rng = Rng::new(seed ^ 0x00c0_ffee);
    let mut outcomes = [0usize; 3];
    for point in 0..CRASH_POINTS_PER_SEED {
        let n = 1 + rng.below(plan.syncs);
        let reboot = if point % 2 == 0 {
            Reboot::LoseUnsynced
        } else {
            Reboot::TornUnsynced {
                seed: rng.next_u64(),
            }
        };
        outcomes[crash_case(&plan, n, reboot) as usize] += 1;
    }
    eprintln!(
        "seed {seed:#x}: {CRASH_POINTS_PER_SEED} crash points over {} syncs in {:?} \
         (opened {}, repaired {}, no world {})",
        plan.syncs,
        started.elapsed(),
        outcomes[0],
        outcomes[1],
        outcomes[2]
    );
    assert!(
        outcomes[Recovered::Repaired as usize] > 0,
        "seed {seed:#x}: no crash point left a torn tail to repair"
    );
}

/// Runs the plan until power is lost at sync `n`, reboots, recovers and checks.
fn crash_case(plan: &Plan, n: u64, reboot: Reboot) -> Recovered {
    let case = format!("seed {:#x}, crash_at_sync({n}), {reboot:?}", plan.seed);
    let disk = SimStorage::new();
    disk.crash_at_sync(n);
    let mut driver = Driver::new();
    match create(&disk) {
        Ok(world) => match driver.run(plan, world) {
            Ok(_) => panic!("{case}: the run finished without losing power"),
            Err(Halt::Failed(error)) => assert!(
                disk.has_crashed(),
                "{case}: a call failed before the power loss: {error}"
            ),
            Err(Halt::Stopped) => unreachable!("no operation budget"),
        },
        Err(error) => assert!(
            disk.has_crashed(),
            "{case}: create failed before the power loss: {error}"
        ),
    }
    let mut ledger = Ledger::default();
    ledger.absorb(&driver);
    let rebooted = disk.reboot(reboot);
    let torn_possible = matches!(reboot, Reboot::TornUnsynced { .. });
    match recover(&case, &rebooted, torn_possible) {
        (Some((world, recovery)), recovered) => {
            check_recovered(&case, plan, &rebooted, &ledger, &recovery);
            play_on(&case, plan, &rebooted, world);
            recovered
        }
        (None, recovered) => {
            check_no_world(&case, plan, &rebooted, &ledger);
            recovered
        }
    }
}
