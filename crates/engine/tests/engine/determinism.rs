//! Determinism at the engine level: same package and inputs, same roots;
//! randomness only from the continuity chain; one compilation per package.

use std::collections::BTreeSet;
use std::sync::Arc;

use everarcade_engine::Engine;
use everarcade_protocol::{Envelope, random_seed};

use crate::common::*;

/// A small deterministic generator (64-bit LCG), so the script needs no
/// randomness of its own.
struct Script(u64);

impl Script {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn independent_worlds_agree_every_tick() {
    let modes = [
        APPLY,
        REJECT,
        TRAP,
        LOOP,
        DELETE,
        LATER,
        RANDOM,
        EMIT,
        EMIT_REJECT,
        EMIT_FLOOD,
        KEY_LONG,
    ];
    let mut first = Driver::new(&guest());
    let mut second = Driver::new(&guest());
    assert_eq!(
        first.world.continuity_root(),
        second.world.continuity_root()
    );
    let mut script = Script(1);
    let mut outcomes = BTreeSet::new();
    for tick in 1..=30u64 {
        let count = script.next(6) as usize;
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let mode = modes[script.next(modes.len() as u64) as usize];
                let second_byte = [b'T', b'L', b'x', b'y'][script.next(4) as usize];
                vec![mode, second_byte, tick as u8]
            })
            .collect();
        let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let a = first.tick(&payloads);
        let b = second.tick(&payloads);
        assert_eq!(a.roots.tick, tick);
        assert_eq!(a.roots, b.roots, "tick {tick}");
        assert_eq!(a.receipts, b.receipts, "tick {tick}");
        assert_eq!(a.events, b.events, "tick {tick}");
        outcomes.extend(a.receipts.iter().map(|receipt| receipt.outcome.name()));
    }
    assert_eq!(first.snapshot(), second.snapshot());
    // The script exercised every kind of outcome.
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
}

#[test]
fn random_seed_follows_the_continuity_chain() {
    let mut driver = Driver::new(&guest());
    let mut seen = BTreeSet::new();
    for tick in 1..=5 {
        let previous = driver.world.continuity_root();
        let output = driver.tick(&[&[RANDOM]]);
        let seed = driver.world.state().get(b"r").expect("r written").to_vec();
        assert_eq!(seed, random_seed(&previous, tick).0.to_vec(), "tick {tick}");
        assert_eq!(output.roots.continuity_root, driver.world.continuity_root());
        assert!(seen.insert(seed), "tick {tick} repeated a seed");
    }
    // Two inputs of one tick see the same seed.
    let previous = driver.world.continuity_root();
    let output = driver.tick(&[&[RANDOM], &[TRAP], &[RANDOM]]);
    assert_eq!(
        output.receipts[2].outcome,
        everarcade_protocol::Outcome::Applied
    );
    assert_eq!(
        driver.world.state().get(b"r"),
        Some(random_seed(&previous, 6).0.as_slice())
    );
}

#[test]
fn a_different_package_gives_a_different_chain() {
    // The same inputs on a package that differs by one byte give another chain.
    let mut first = Driver::new(&guest());
    let mut second = Driver::new(&guest().replace("\"genesis\")", "\"genesiz\")"));
    assert_ne!(first.world.genesis_root(), second.world.genesis_root());
    let a = first.tick(&[&[APPLY, 1]]);
    let b = second.tick(&[&[APPLY, 1]]);
    assert_eq!(a.roots.input_root, b.roots.input_root);
    assert_ne!(a.roots.continuity_root, b.roots.continuity_root);
}

#[test]
fn compiled_package_is_cached() {
    let engine = Engine::new().expect("engine");
    // Two loads from two directories of the same bytes: one package root.
    let first = package(&guest()).expect("loads");
    let second = package(&guest()).expect("loads");
    assert_eq!(first.root, second.root);
    let a = engine.compile(&first).expect("compiles");
    let b = engine.compile(&second).expect("compiles");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(engine.cached_packages(), 1);
    let other = package(&module(&format!(
        "{ALLOC} (func (export \"ea_input\") (param i32 i32) (result i32) (i32.const 0))"
    )))
    .expect("loads");
    let c = engine.compile(&other).expect("compiles");
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(engine.cached_packages(), 2);
    // A world made from the cached compilation runs it.
    let envelope = Envelope::sign(
        &world_id(),
        &everarcade_protocol::test_signing_key("alice"),
        1,
        vec![APPLY],
    );
    let (mut world, _) =
        everarcade_engine::World::genesis(&engine, world_id(), b).expect("genesis");
    world.admit(&envelope).expect("admitted");
    world.execute_tick(&engine, &[envelope]).expect("tick");
    assert_eq!(world.state().get(b"k"), Some([APPLY].as_slice()));
    assert_eq!(engine.cached_packages(), 2);
}
