//! Receipts and the roots that commit to them.

use everarcade_protocol::{
    Hash, Outcome, Receipt, ReceiptKind, TrapClass, continuity_root, events_hash, genesis_root,
    list_root,
};

use crate::common::*;

#[test]
fn applied_receipt_hashes_its_events() {
    let mut driver = Driver::new(&guest());
    let payload = [EMIT, 1, 2, 3];
    let at_limit = [EVENT_MAX];
    let output = driver.tick(&[&payload, &at_limit]);

    let emitted: [&[u8]; 2] = [&payload, b"hook"];
    assert_eq!(output.events[0], emitted);
    let receipt = output.receipts[0];
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert_eq!(receipt.events_hash, events_hash(emitted));
    assert_eq!(receipt.event_count, 2);

    // One event of exactly event_bytes: the first 32 bytes of memory.
    let mut memory = vec![0u8; 32];
    memory[..4].copy_from_slice(b"kjtr");
    memory[16..20].copy_from_slice(b"hook");
    assert_eq!(output.events[1], [memory.clone()]);
    assert_eq!(
        output.receipts[1].events_hash,
        events_hash([memory.as_slice()])
    );
    assert_eq!(output.receipts[1].event_count, 1);
    assert_ne!(output.receipts[1].events_hash, no_events());
}

#[test]
fn events_per_input_is_exact() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[EMIT_MANY, 4], &[EMIT_MANY, 5], &[EMIT_MANY, 0]]);
    let four: [&[u8]; 4] = [b"k", b"j", b"t", b"r"];
    assert_eq!(output.receipts[0].outcome, Outcome::Applied);
    assert_eq!(output.events[0], four);
    assert_eq!(
        (
            output.receipts[0].events_hash,
            output.receipts[0].event_count
        ),
        (events_hash(four), 4)
    );
    assert_failed(
        &output.receipts[1],
        ReceiptKind::Input,
        Outcome::Trapped(TrapClass::EventCount),
        FUEL_PER_INPUT,
    );
    // An applied input without events has the empty events hash too.
    assert_eq!(output.receipts[2].outcome, Outcome::Applied);
    assert_eq!(
        (
            output.receipts[2].events_hash,
            output.receipts[2].event_count
        ),
        (no_events(), 0)
    );
    assert_eq!(
        driver.world.state().get(b"k"),
        Some([EMIT_MANY, 0].as_slice())
    );
}

#[test]
fn failed_receipts_carry_the_empty_events_hash() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[EMIT_REJECT, 1], &[EMIT_FLOOD], &[EVENT_LONG]]);
    let expected = [
        Outcome::Rejected(7),
        Outcome::Trapped(TrapClass::EventCount),
        Outcome::Trapped(TrapClass::EventLength),
    ];
    for (index, outcome) in expected.into_iter().enumerate() {
        assert_failed(
            &output.receipts[index],
            ReceiptKind::Input,
            outcome,
            FUEL_PER_INPUT,
        );
        assert!(output.events[index].is_empty());
    }
}

#[test]
fn tick_roots_commit_to_inputs_receipts_and_state() {
    let mut driver = Driver::new(&guest());
    let previous = driver.world.continuity_root();
    let envelopes = [driver.envelope(&[APPLY, 1]), driver.envelope(&[REJECT, 2])];
    let output = driver
        .world
        .execute_tick(&driver.engine, &envelopes)
        .expect("tick");

    assert_eq!(output.receipts.len(), 3);
    for (receipt, envelope) in output.receipts.iter().zip(&envelopes) {
        assert_eq!(
            (receipt.kind, receipt.subject),
            (ReceiptKind::Input, envelope.hash())
        );
    }
    let hook = output.receipts[2];
    assert_eq!(
        (hook.kind, hook.subject, hook.outcome),
        (ReceiptKind::TickHook, Hash::ZERO, Outcome::Applied)
    );
    assert_eq!(hook.events_hash, no_events());

    let roots = output.roots;
    let envelope_hashes: Vec<Hash> = envelopes.iter().map(|envelope| envelope.hash()).collect();
    let receipt_hashes: Vec<Hash> = output.receipts.iter().map(Receipt::hash).collect();
    assert_eq!(roots.tick, 1);
    assert_eq!(roots.input_root, list_root(&envelope_hashes));
    assert_eq!(roots.receipt_root, list_root(&receipt_hashes));
    assert_eq!(
        roots.state_root,
        model_root(&[(b"k".to_vec(), vec![APPLY, 1])].into())
    );
    let chained = continuity_root(
        &previous,
        1,
        &roots.input_root,
        &roots.receipt_root,
        &roots.state_root,
    );
    assert_eq!(roots.continuity_root, chained);
    assert_eq!(driver.world.continuity_root(), chained);
}

#[test]
fn empty_tick_still_advances_the_chain() {
    let mut driver = Driver::new(&guest());
    let previous = driver.world.continuity_root();
    let output = driver.tick(&[]);
    assert_eq!(output.receipts.len(), 1, "only the hook's receipt");
    assert_eq!(output.roots.input_root, list_root(&[]));
    assert_ne!(output.roots.continuity_root, previous);
    assert_eq!(driver.world.tick(), 1);
}

#[test]
fn genesis_receipt_and_root() {
    let engine = everarcade_engine::Engine::new().expect("engine");
    let loaded = package(&guest()).expect("loads");
    let (world, output) = genesis(&engine, &guest()).expect("genesis");
    let expected_root = genesis_root(&world_id(), &loaded.root, &loaded.profile().hash());
    assert_eq!(output.genesis_root, expected_root);
    assert_eq!(world.genesis_root(), expected_root);
    assert_eq!(world.continuity_root(), expected_root);
    assert_eq!(
        output.state_root,
        model_root(&[(b"k".to_vec(), b"genesis".to_vec())].into())
    );
    let receipt = output.receipt.expect("ea_genesis is exported");
    assert_eq!(
        (receipt.kind, receipt.subject, receipt.outcome),
        (ReceiptKind::GenesisHook, Hash::ZERO, Outcome::Applied)
    );
    assert!(receipt.fuel_used > 0 && receipt.fuel_used < FUEL_PER_TICK);

    // Without ea_genesis there is no genesis receipt and the state is empty.
    let bare = module(&format!(
        "{ALLOC} (func (export \"ea_input\") (param i32 i32) (result i32) (i32.const 0))"
    ));
    let (_, output) = genesis(&engine, &bare).expect("genesis");
    assert!(output.receipt.is_none());
    assert_eq!(output.state_root, model_root(&Map::new()));
}
