//! A call that does not end `applied` leaves the state exactly as before it,
//! and the rest of the tick goes on.

use everarcade_engine::Engine;
use everarcade_protocol::{Outcome, ReceiptKind, TrapClass};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::common::*;

fn map(entries: &[(&[u8], &[u8])]) -> Map {
    entries
        .iter()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect()
}

#[test]
fn genesis_and_applied_input_write_the_state() {
    let mut driver = Driver::new(&guest());
    driver.assert_state(&map(&[(b"k", b"genesis")]));
    let output = driver.tick(&[&[APPLY, 1, 2]]);
    let receipt = output.receipts[0];
    assert_eq!(
        (receipt.kind, receipt.outcome),
        (ReceiptKind::Input, Outcome::Applied)
    );
    assert!(receipt.fuel_used > 0 && receipt.fuel_used < FUEL_PER_INPUT);
    assert_eq!(
        driver.world.state().get(b"k"),
        Some([APPLY, 1, 2].as_slice())
    );
    driver.assert_state(&map(&[(b"k", &[APPLY, 1, 2])]));
}

#[test]
fn rejected_input_rolls_back() {
    let mut driver = Driver::new(&guest());
    driver.tick(&[&[APPLY, b'A']]);
    check(&mut driver, &[REJECT, b'B'], Outcome::Rejected(7));
    assert_eq!(
        driver.world.state().get(b"k"),
        Some([APPLY, b'A'].as_slice())
    );
}

#[test]
fn trapped_input_rolls_back() {
    let mut driver = Driver::new(&guest());
    driver.tick(&[&[APPLY, b'A']]);
    check(
        &mut driver,
        &[TRAP, b'B'],
        Outcome::Trapped(TrapClass::Unreachable),
    );
    assert_eq!(
        driver.world.state().get(b"k"),
        Some([APPLY, b'A'].as_slice())
    );
}

#[test]
fn out_of_fuel_input_rolls_back() {
    let mut driver = Driver::new(&guest());
    driver.tick(&[&[APPLY, b'A']]);
    check(&mut driver, &[LOOP, b'B'], Outcome::OutOfFuel);
    assert_eq!(
        driver.world.state().get(b"k"),
        Some([APPLY, b'A'].as_slice())
    );
}

#[test]
fn rolled_back_delete_restores_the_value() {
    let mut driver = Driver::new(&guest());
    check(
        &mut driver,
        &[DELETE],
        Outcome::Trapped(TrapClass::Unreachable),
    );
    assert_eq!(driver.world.state().get(b"k"), Some(b"genesis".as_slice()));
    // A write then a delete of the same key, undone newest first.
    check(&mut driver, &[SET_DELETE_REJECT, 1], Outcome::Rejected(9));
    assert_eq!(driver.world.state().get(b"k"), Some(b"genesis".as_slice()));
}

#[test]
fn failures_in_one_tick_do_not_disturb_each_other() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[
        &[APPLY, 1],
        &[TRAP, 2],
        &[LATER, 3],
        &[LOOP, 4],
        &[REJECT, 5],
        &[DELETE],
        &[APPLY, 6],
    ]);
    let outcomes: Vec<Outcome> = output
        .receipts
        .iter()
        .map(|receipt| receipt.outcome)
        .collect();
    let unreachable = Outcome::Trapped(TrapClass::Unreachable);
    assert_eq!(
        outcomes,
        [
            Outcome::Applied,
            unreachable,
            Outcome::Applied,
            Outcome::OutOfFuel,
            Outcome::Rejected(7),
            unreachable,
            Outcome::Applied,
            Outcome::Applied,
        ]
    );
    driver.assert_state(&map(&[(b"j", &[LATER, 3]), (b"k", &[APPLY, 6])]));
}

#[test]
fn an_instance_serves_one_tick_until_it_traps() {
    let mut driver = Driver::new(&guest());
    // One instance serves the inputs of a tick, rejections included...
    driver.tick(&[&[APPLY], &[REJECT], &[COUNT]]);
    assert_eq!(driver.world.state().get(b"c"), Some([3].as_slice()));
    // ...a fresh one serves each tick...
    driver.tick(&[&[COUNT]]);
    assert_eq!(driver.world.state().get(b"c"), Some([1].as_slice()));
    // ...and a fresh one takes over after a trap or running out of fuel.
    for failure in [TRAP, LOOP, KEY_LONG, BAD_RETURN] {
        driver.tick(&[&[APPLY], &[failure], &[COUNT]]);
        assert_eq!(
            driver.world.state().get(b"c"),
            Some([1].as_slice()),
            "after mode {failure}"
        );
    }
}

#[test]
fn trapped_tick_hook_rolls_back_to_the_state_after_inputs() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[LATER, 1], &[APPLY, HOOK_TRAP]]);
    assert_eq!(output.receipts.len(), 3);
    assert_eq!(output.receipts[1].outcome, Outcome::Applied);
    let hook = &output.receipts[2];
    assert_failed(
        hook,
        ReceiptKind::TickHook,
        Outcome::Trapped(TrapClass::Unreachable),
        FUEL_PER_TICK,
    );
    assert_eq!(hook.subject, everarcade_protocol::Hash::ZERO);
    // The hook wrote "t", overwrote "k" and deleted "j"; none of it stands.
    let after_inputs = map(&[(b"j", &[LATER, 1]), (b"k", &[APPLY, HOOK_TRAP])]);
    driver.assert_state(&after_inputs);
    assert_eq!(output.roots.state_root, model_root(&after_inputs));

    let output = driver.tick(&[&[APPLY, b'A']]);
    assert_eq!(output.receipts[1].outcome, Outcome::Applied);
    driver.assert_state(&map(&[(b"j", &[LATER, 1]), (b"k", &[APPLY, b'A'])]));
}

#[test]
fn out_of_fuel_tick_hook_rolls_back() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[APPLY, HOOK_LOOP]]);
    assert_failed(
        &output.receipts[1],
        ReceiptKind::TickHook,
        Outcome::OutOfFuel,
        FUEL_PER_TICK,
    );
    driver.assert_state(&map(&[(b"k", &[APPLY, HOOK_LOOP])]));
}

/// What the main fixture does with a two-byte payload: the outcome, and
/// the state change (which key takes the payload), if applied.
fn model(mode: u8) -> (Outcome, Option<&'static [u8]>) {
    let unreachable = Outcome::Trapped(TrapClass::Unreachable);
    match mode {
        APPLY | EMIT => (Outcome::Applied, Some(b"k")),
        LATER => (Outcome::Applied, Some(b"j")),
        REJECT => (Outcome::Rejected(7), None),
        SET_DELETE_REJECT => (Outcome::Rejected(9), None),
        TRAP | DELETE => (unreachable, None),
        LOOP => (Outcome::OutOfFuel, None),
        KEY_LONG => (Outcome::Trapped(TrapClass::KeyLength), None),
        EMIT_FLOOD => (Outcome::Trapped(TrapClass::EventCount), None),
        _ => unreachable!("mode {mode} is not modelled"),
    }
}

/// Any sequence of ticks of modelled inputs leaves the state equal to the
/// model's (the tick hook never changes it: it only traps or loops on "k" =
/// [_, 'T'] / [_, 'L'], and otherwise writes nothing).
#[test]
fn any_sequence_matches_the_model() {
    let modes = [
        APPLY,
        EMIT,
        LATER,
        REJECT,
        SET_DELETE_REJECT,
        TRAP,
        DELETE,
        LOOP,
        KEY_LONG,
        EMIT_FLOOD,
    ];
    let input = (
        proptest::sample::select(modes.to_vec()),
        prop_oneof![any::<u8>(), Just(HOOK_TRAP), Just(HOOK_LOOP)],
    );
    let ticks = proptest::collection::vec(proptest::collection::vec(input, 0..6), 1..5);
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let engine = Engine::new().expect("engine");
    let wat = guest();
    let result = runner.run(&ticks, |ticks| {
        let (mut world, _) = genesis(&engine, &wat).expect("genesis");
        let key = everarcade_protocol::test_signing_key("alice");
        let mut expected = map(&[(b"k", b"genesis")]);
        let mut nonce = 0;
        for inputs in ticks {
            let mut envelopes = Vec::new();
            for (mode, byte) in &inputs {
                nonce += 1;
                let envelope = everarcade_protocol::Envelope::sign(
                    &world_id(),
                    &key,
                    nonce,
                    vec![*mode, *byte],
                );
                world.admit(&envelope).expect("admitted");
                envelopes.push(envelope);
            }
            let output = world.execute_tick(&engine, &envelopes).expect("tick");
            for ((mode, byte), receipt) in inputs.iter().zip(&output.receipts) {
                let (outcome, written) = model(*mode);
                prop_assert_eq!(receipt.outcome, outcome, "mode {}", mode);
                if let Some(key) = written {
                    expected.insert(key.to_vec(), vec![*mode, *byte]);
                }
            }
            let state: Map = world
                .state()
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            prop_assert_eq!(&state, &expected);
            prop_assert_eq!(output.roots.state_root, model_root(&expected));
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    assert_eq!(engine.cached_packages(), 1);
}
