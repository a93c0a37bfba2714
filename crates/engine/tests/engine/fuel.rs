//! The fuel a receipt reports for the smallest calls, as docs/PROTOCOL.md
//! §6.6 states it: entering a WebAssembly function costs 1 (charged before
//! the entry check), `call` costs 1, `end` costs 0, and a host function costs
//! nothing beyond its `call`. So an empty export costs 1 and a call of an
//! empty function 3.

use everarcade_engine::Engine;
use everarcade_engine::World;
use everarcade_protocol::{Envelope, Outcome, Receipt, ReceiptKind, test_signing_key};

use crate::common::*;

/// A module with `ea_alloc` (`i32.const 1024`: entry 1 + 1 = 2) and
/// `ea_input` (`i32.const 0`: entry 1 + 1 = 2) around `body`.
fn minimal(body: &str) -> String {
    module(&format!(
        r#"{ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  {body}"#
    ))
}

/// The tick hook's receipt of tick 1 (no inputs) of a world running `wat`
/// with `fuel_per_tick` replaced by `budget`.
fn hook_receipt(wat: &str, budget: u64) -> Receipt {
    let replacement = format!("fuel_per_tick = {budget}");
    let package = package_with(
        wat,
        &[(&format!("fuel_per_tick = {FUEL_PER_TICK}"), &replacement)],
    )
    .expect("fixture package loads");
    let engine = Engine::new().expect("engine");
    let compiled = engine.compile(&package).expect("compiles");
    let (mut world, _) = World::genesis(&engine, world_id(), compiled).expect("genesis");
    let output = world.execute_tick(&engine, &[]).expect("tick executes");
    assert_eq!(output.receipts.len(), 1, "only the hook's receipt");
    assert_eq!(output.receipts[0].kind, ReceiptKind::TickHook);
    output.receipts[0]
}

#[test]
fn an_empty_export_costs_one() {
    let wat = minimal(
        r#"(func (export "ea_genesis"))
  (func (export "ea_tick") (param i64))"#,
    );
    let engine = Engine::new().expect("engine");
    let (mut world, genesis) = genesis(&engine, &wat).expect("genesis");
    let genesis = genesis.receipt.expect("ea_genesis is exported");
    assert_eq!((genesis.outcome, genesis.fuel_used), (Outcome::Applied, 1));

    let envelope = Envelope::sign(&world_id(), &test_signing_key("alice"), 1, Vec::new());
    world.admit(&envelope).expect("admitted");
    let output = world
        .execute_tick(&engine, &[envelope])
        .expect("tick executes");
    // ea_alloc (2) + ea_input (2) under one budget.
    assert_eq!(
        (output.receipts[0].outcome, output.receipts[0].fuel_used),
        (Outcome::Applied, 4)
    );
    assert_eq!(
        (output.receipts[1].outcome, output.receipts[1].fuel_used),
        (Outcome::Applied, 1)
    );
}

#[test]
fn a_call_of_an_empty_function_costs_three_and_a_host_call_one() {
    let calls = hook_receipt(
        &minimal(
            r#"(func $empty)
  (func (export "ea_tick") (param i64) (call $empty))"#,
        ),
        FUEL_PER_TICK,
    );
    // Entry 1 + `call` 1 + the callee's entry 1.
    assert_eq!((calls.outcome, calls.fuel_used), (Outcome::Applied, 3));

    let host = hook_receipt(
        &minimal(
            r#"(func (export "ea_tick") (param i64) (call $log (i32.const 0) (i32.const 0)))"#,
        ),
        FUEL_PER_TICK,
    );
    // Entry 1 + two `i32.const` + `call` 1; the host function adds nothing.
    assert_eq!((host.outcome, host.fuel_used), (Outcome::Applied, 4));
}

#[test]
fn the_entry_check_runs_after_the_entry_cost() {
    let empty = minimal(r#"(func (export "ea_tick") (param i64))"#);
    // Budget 1: consumption 1 ≥ budget at the entry check.
    let starved = hook_receipt(&empty, 1);
    assert_eq!(
        (starved.outcome, starved.fuel_used),
        (Outcome::OutOfFuel, 1)
    );
    let fed = hook_receipt(&empty, 2);
    assert_eq!((fed.outcome, fed.fuel_used), (Outcome::Applied, 1));
    // Budget 3 for a call of an empty function: the callee's entry check
    // sees consumption 3 ≥ 3.
    let calling = minimal(
        r#"(func $empty)
  (func (export "ea_tick") (param i64) (call $empty))"#,
    );
    let starved = hook_receipt(&calling, 3);
    assert_eq!(
        (starved.outcome, starved.fuel_used),
        (Outcome::OutOfFuel, 3)
    );
    let fed = hook_receipt(&calling, 4);
    assert_eq!((fed.outcome, fed.fuel_used), (Outcome::Applied, 3));
}
