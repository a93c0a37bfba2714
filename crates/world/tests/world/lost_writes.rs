//! Lost unsynced writes without an interrupted sync: the process dies
//! between two calls (between an admit and its commit, a commit and its
//! tick, anywhere) and the machine loses everything unsynced. Several deaths
//! per match, each followed by a reopen on what survived: recovery opens
//! directly (nothing can be torn), keeps every acknowledged input, and the
//! world plays on to the clean run's roots.

use everarcade_protocol::Tick;
use everarcade_store::{Reboot, SimStorage};

use crate::check::{check_recovered, play_on, recover};
use crate::common::{Driver, Halt, Ledger, Rng, create, make_plan};

/// Ticks per match.
const TICKS: Tick = 40;
/// Matches played.
const MATCHES: u64 = 12;
/// Deaths per match.
const DEATHS_PER_MATCH: usize = 4;

#[test]
fn dying_between_calls_loses_only_unacknowledged_inputs() {
    let seed = 0x1057_0001;
    let plan = make_plan(seed, TICKS);
    let mut counting = Driver::new();
    counting
        .run(&plan, create(&SimStorage::new()).expect("create"))
        .expect("a clean run");
    let operations = counting.operations;
    let mut rng = Rng::new(seed);
    let mut deaths_with_inputs_in_flight = 0;
    for game in 0..MATCHES {
        let mut disk = SimStorage::new();
        let mut world = create(&disk).expect("create");
        let mut ledger = Ledger::default();
        for death in 0..DEATHS_PER_MATCH {
            let case = format!("seed {seed:#x}, match {game}, death {death}");
            let mut driver = Driver::new();
            driver.stop_at = Some(rng.below(operations / DEATHS_PER_MATCH as u64 + 1));
            match driver.play(&plan, &mut world) {
                Err(Halt::Stopped) | Ok(()) => {}
                Err(Halt::Failed(error)) => panic!("{case}: a call failed: {error}"),
            }
            ledger.absorb(&driver);
            if driver.in_flight() > 0 {
                deaths_with_inputs_in_flight += 1;
            }
            drop(world);
            disk = disk.reboot(Reboot::LoseUnsynced);
            let (opened, how) = recover(&case, &disk, false);
            let (reopened, recovery) =
                opened.unwrap_or_else(|| panic!("{case}: the world is gone ({how:?})"));
            check_recovered(&case, &plan, &disk, &ledger, &recovery);
            world = reopened;
        }
        play_on(
            &format!("seed {seed:#x}, match {game}"),
            &plan,
            &disk,
            world,
        );
    }
    assert!(
        deaths_with_inputs_in_flight > 0,
        "no death left an admitted input unacknowledged"
    );
}
