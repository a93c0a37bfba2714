//! Hostile packages: each misbehaviour ends in a clear outcome or a load or
//! genesis error, never a panic or a hang, and never touches the state.

use everarcade_engine::{Engine, EngineError, World, bot_random_seed, bot_random_seeds};
use everarcade_protocol::{BotSeedRule, Domain, Outcome, ReceiptKind, TrapClass};

use crate::common::*;
use everarcade_testkit::bots::Bots;

fn trapped(class: TrapClass) -> Outcome {
    Outcome::Trapped(class)
}

#[test]
fn memory_growth_past_the_maximum_fails_then_traps_out_of_bounds() {
    check(
        &mut Driver::new(&guest()),
        &[GROW],
        trapped(TrapClass::MemoryOutOfBounds),
    );
}

#[test]
fn key_over_key_bytes_traps() {
    check(
        &mut Driver::new(&guest()),
        &[KEY_LONG],
        trapped(TrapClass::KeyLength),
    );
}

#[test]
fn empty_key_traps() {
    check(
        &mut Driver::new(&guest()),
        &[KEY_EMPTY],
        trapped(TrapClass::KeyLength),
    );
}

#[test]
fn key_of_exactly_key_bytes_applies() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[KEY_MAX, 1]]);
    assert_eq!(output.receipts[0].outcome, Outcome::Applied);
    let sender = driver.key.verifying_key().to_bytes();
    assert_eq!(
        driver.world.state().get(&sender),
        Some([KEY_MAX, 1].as_slice())
    );
}

#[test]
fn value_over_value_bytes_traps() {
    check(
        &mut Driver::new(&guest()),
        &[VALUE_LONG],
        trapped(TrapClass::ValueLength),
    );
}

#[test]
fn value_of_exactly_value_bytes_applies() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[VALUE_MAX]]);
    assert_eq!(output.receipts[0].outcome, Outcome::Applied);
    let mut memory = vec![0u8; 128];
    memory[..4].copy_from_slice(b"kjtr");
    memory[16..20].copy_from_slice(b"hook");
    memory[32..39].copy_from_slice(b"genesis");
    assert_eq!(driver.world.state().get(b"k"), Some(memory.as_slice()));
}

#[test]
fn host_pointers_out_of_bounds_trap() {
    let mut driver = Driver::new(&guest());
    for mode in [
        POINTER_SET,
        POINTER_GET,
        POINTER_EMIT,
        POINTER_RANDOM,
        POINTER_KEY,
    ] {
        check(&mut driver, &[mode], trapped(TrapClass::HostPointer));
    }
}

#[test]
fn host_pointers_up_to_the_end_of_memory_are_fine() {
    let mut driver = Driver::new(&guest());
    assert_eq!(
        driver.tick(&[&[POINTER_EDGE]]).receipts[0].outcome,
        Outcome::Applied
    );
    assert_eq!(driver.world.state().get(b"k"), Some([0, 0].as_slice()));
}

#[test]
fn state_get_copies_at_most_its_capacity_and_returns_the_full_length() {
    let mut driver = Driver::new(&guest());
    // (payload, result, bytes copied): "k" is the payload itself (5 bytes);
    // key address 2 is the absent "t".
    let cases: [(&[u8], i32, &[u8]); 4] = [
        (&[GET, 3, 0, 9, 9], 5, &[GET, 3, 0]),
        (&[GET, 8, 0, 9, 9], 5, &[GET, 8, 0, 9, 9]),
        (&[GET, 0, 0, 9, 9], 5, &[]),
        (&[GET, 8, 2, 9, 9], -1, &[]),
    ];
    for (payload, length, copied) in cases {
        let output = driver.tick(&[payload]);
        assert_eq!(output.receipts[0].outcome, Outcome::Applied);
        let mut expected = length.to_le_bytes().to_vec();
        expected.extend_from_slice(copied);
        expected.resize(12, 0);
        assert_eq!(
            driver.world.state().get(b"j"),
            Some(expected.as_slice()),
            "{payload:?}"
        );
    }
}

#[test]
fn emit_flood_traps_event_count() {
    check(
        &mut Driver::new(&guest()),
        &[EMIT_FLOOD],
        trapped(TrapClass::EventCount),
    );
}

#[test]
fn event_over_event_bytes_traps() {
    check(
        &mut Driver::new(&guest()),
        &[EVENT_LONG],
        trapped(TrapClass::EventLength),
    );
}

#[test]
fn negative_return_traps_bad_return() {
    check(
        &mut Driver::new(&guest()),
        &[BAD_RETURN],
        trapped(TrapClass::BadReturn),
    );
}

#[test]
fn division_by_zero_traps_arithmetic() {
    check(
        &mut Driver::new(&guest()),
        &[DIVIDE, 0],
        trapped(TrapClass::Arithmetic),
    );
}

#[test]
fn unbounded_recursion_traps_stack_overflow() {
    check(
        &mut Driver::new(&guest()),
        &[RECURSE],
        trapped(TrapClass::StackOverflow),
    );
}

#[test]
fn unknown_modes_are_rejected_by_the_fixture() {
    // Guards the fixture itself: a mode it does not know must not pass for applied.
    check(&mut Driver::new(&guest()), &[200], Outcome::Rejected(99));
}

/// A module whose `ea_alloc` writes "g" and then returns `pointer`.
fn bad_alloc(pointer: i32) -> String {
    module(&format!(
        r#"
  (data (i32.const 32) "g")
  (func (export "ea_alloc") (param i32) (result i32)
    (call $state_set (i32.const 32) (i32.const 1) (i32.const 32) (i32.const 1))
    (i32.const {pointer}))
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
"#
    ))
}

#[test]
fn allocation_outside_memory_traps_bad_allocation() {
    // Past the end, straddling the end (inputs are 41 bytes), negative, null.
    for pointer in [131_072, 65_536 - 20, -1, 0] {
        let mut driver = Driver::new(&bad_alloc(pointer));
        check_alone(&mut driver, &[APPLY], trapped(TrapClass::BadAllocation));
        driver.assert_state(&Map::new());
    }
    // The same module with a good pointer applies, so the refusals are the pointer's.
    let mut driver = Driver::new(&bad_alloc(1024));
    assert_eq!(
        driver.tick(&[&[APPLY]]).receipts[0].outcome,
        Outcome::Applied
    );
    assert_eq!(driver.world.state().get(b"g"), Some(b"g".as_slice()));
}

#[test]
fn allocation_in_memory_that_ea_alloc_grew_is_fine() {
    // The buffer is checked against the memory size after ea_alloc returned.
    let wat = module(
        r#"
  (func (export "ea_alloc") (param i32) (result i32) (drop (memory.grow (i32.const 1))) (i32.const 65536))
  (func (export "ea_input") (param $ptr i32) (param $len i32) (result i32)
    (call $state_set (i32.add (local.get $ptr) (i32.const 40)) (i32.const 1) (local.get $ptr) (i32.const 32))
    (i32.const 0))
"#,
    );
    let mut driver = Driver::new(&wat);
    let output = driver.tick(&[b"a", b"b"]);
    assert_eq!(output.receipts[0].outcome, Outcome::Applied);
    assert_eq!(output.receipts[1].outcome, Outcome::Applied);
    let sender = driver.key.verifying_key().to_bytes();
    assert_eq!(driver.world.state().get(b"b"), Some(sender.as_slice()));
}

#[test]
fn alloc_loop_runs_out_of_fuel() {
    let wat = module(
        r#"
  (func (export "ea_alloc") (param i32) (result i32) (loop $forever (br $forever)) (i32.const 1024))
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  (func (export "ea_bot") (param i32 i64 i32 i32) (result i32) (i32.const 0))
"#,
    );
    let mut driver = Driver::new(&wat);
    check_alone(&mut driver, &[APPLY], Outcome::OutOfFuel);
    let bots = Bots::new(2).public;
    let payloads = driver
        .world
        .bot_payloads(&driver.engine, &bots, 7)
        .expect("bot payloads");
    assert_eq!(payloads, [None, None]);
}

#[test]
fn input_loop_runs_out_of_fuel() {
    check(&mut Driver::new(&guest()), &[LOOP], Outcome::OutOfFuel);
}

#[test]
fn tick_hook_loop_runs_out_of_fuel() {
    let wat = module(&format!(
        r#"
  {ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  (func (export "ea_tick") (param i64) (loop $forever (br $forever)))
"#
    ));
    let mut driver = Driver::new(&wat);
    let output = driver.tick(&[&[APPLY]]);
    assert_eq!(output.receipts[0].outcome, Outcome::Applied);
    assert_failed(
        &output.receipts[1],
        ReceiptKind::TickHook,
        Outcome::OutOfFuel,
        FUEL_PER_TICK,
    );
    assert_eq!(driver.world.tick(), 1);
}

#[test]
fn genesis_loop_fails_genesis() {
    let wat = module(&format!(
        r#"
  {ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  (func (export "ea_genesis") (loop $forever (br $forever)))
"#
    ));
    let engine = Engine::new().expect("engine");
    match genesis(&engine, &wat) {
        Err(EngineError::GenesisFailed { outcome }) => assert_eq!(outcome, Outcome::OutOfFuel),
        Err(error) => panic!("unexpected error {error}"),
        Ok(_) => panic!("genesis of a looping ea_genesis succeeded"),
    }
}

#[test]
fn genesis_trap_fails_genesis() {
    let wat = module(&format!(
        r#"
  {ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  (func (export "ea_genesis") (call $state_set (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
"#
    ));
    let engine = Engine::new().expect("engine");
    let error = genesis(&engine, &wat).err().expect("genesis fails");
    assert_eq!(error.code(), "genesis_failed");
    assert!(matches!(
        error,
        EngineError::GenesisFailed {
            outcome: Outcome::Trapped(TrapClass::KeyLength)
        }
    ));
}

/// Bots 0..=5 misbehave in turn: loop, write, delete, trap, return more than
/// the capacity, return -1. Bot 6 returns [key[0], player, tick]; bot 7 its
/// random seed. Each write would also return a payload, so a bot whose write
/// stood would be seen.
fn bot_guest() -> String {
    module(&format!(
        r#"
  (data (i32.const 32) "genesis")
  {ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  (func (export "ea_genesis") (call $state_set (i32.const 32) (i32.const 1) (i32.const 32) (i32.const 7)))
  (func (export "ea_bot") (param $player i32) (param $tick i64) (param $out i32) (param $capacity i32) (result i32)
    (if (i32.eq (local.get $player) (i32.const 0)) (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $player) (i32.const 1))
      (then (call $state_set (i32.const 32) (i32.const 1) (i32.const 33) (i32.const 1)) (return (i32.const 1))))
    (if (i32.eq (local.get $player) (i32.const 2))
      (then (call $state_del (i32.const 32) (i32.const 1)) (return (i32.const 1))))
    (if (i32.eq (local.get $player) (i32.const 3)) (then (unreachable)))
    (if (i32.eq (local.get $player) (i32.const 4))
      (then (return (i32.add (local.get $capacity) (i32.const 1)))))
    (if (i32.eq (local.get $player) (i32.const 5)) (then (return (i32.const -1))))
    (if (i32.eq (local.get $player) (i32.const 7))
      (then (call $random_seed (local.get $out)) (return (i32.const 32))))
    (i32.store8 offset=1 (local.get $out) (local.get $player))
    (i32.store8 offset=2 (local.get $out) (i32.wrap_i64 (local.get $tick)))
    (i32.const 3))
"#
    ))
}

#[test]
fn misbehaving_bots_send_nothing_and_never_write() {
    let (engine, mut world) = world(&bot_guest());
    let root = world.state_root();
    let bots = Bots::new(8).public;
    let seed = 42;
    let payloads = world
        .bot_payloads(&engine, &bots, seed)
        .expect("bot payloads");
    let random = bot_random_seed(seed, 7, 1, &world.continuity_root())
        .0
        .to_vec();
    let expected = [
        None,
        None,
        None,
        None,
        None,
        None,
        Some(vec![bots[6][0], 6, 1]),
        Some(random),
    ];
    assert_eq!(payloads, expected);
    assert_eq!(world.state().get(b"g"), Some(b"genesis".as_slice()));
    assert_eq!(world.state_root(), root);
    assert_eq!(world.tick(), 0);
    // Bots are deterministic: asked again, they answer the same.
    assert_eq!(
        world
            .bot_payloads(&engine, &bots, seed)
            .expect("bot payloads"),
        expected
    );
}

/// Under `bot_seeds = "xof"` bot `i` gets bytes `32i..32i+32` of one XOF per
/// tick (PROTOCOL §10.1), also after the instance was replaced (bots 0 and
/// 3 trap); the profile, so `C(0)`, differs from the per-bot world's.
#[test]
fn xof_bot_seeds_are_read_from_one_stream_per_tick() {
    let engine = Engine::new().expect("engine");
    let open = |line: &str| {
        let replacement = format!("tick_rate_hz = 20\n{line}");
        let package =
            package_with(&bot_guest(), &[("tick_rate_hz = 20", &replacement)]).expect("loads");
        let compiled = engine.compile(&package).expect("compiles");
        World::genesis(&engine, world_id(), compiled)
            .expect("genesis")
            .0
    };
    let mut xof = open("bot_seeds = \"xof\"");
    let per_bot = open("bot_seeds = \"per-bot\"");
    let (_, default) = world(&bot_guest());
    let profile = |world: &World| world.compiled().package.profile();
    assert_eq!(
        profile(&per_bot),
        profile(&default),
        "per-bot is the default"
    );
    assert_eq!(profile(&xof).flags, 0x17F);
    assert_ne!(xof.genesis_root(), default.genesis_root());

    let (seed, previous) = (42u64, xof.continuity_root());
    // The stream, computed here from its definition with BLAKE3 itself.
    let key = blake3::hash(b"ea/bot-random/xof/v1");
    let mut preimage = seed.to_le_bytes().to_vec();
    preimage.extend_from_slice(&1u64.to_le_bytes());
    preimage.extend_from_slice(&previous.0);
    let mut stream = [0u8; 32 * 8];
    blake3::Hasher::new_keyed(key.as_bytes())
        .update(&preimage)
        .finalize_xof()
        .fill(&mut stream);
    assert_eq!(Domain::BotRandomXof.as_str(), "ea/bot-random/xof/v1");
    let seeds = bot_random_seeds(BotSeedRule::Xof, seed, 8, 1, &previous);
    assert_eq!(seeds.as_flattened(), &stream[..]);
    // A shorter read is a prefix of a longer one: bot i's seed never
    // depends on how many bots there are.
    assert_eq!(
        bot_random_seeds(BotSeedRule::Xof, seed, 3, 1, &previous),
        seeds[..3]
    );
    assert_eq!(
        bot_random_seeds(BotSeedRule::PerBot, seed, 8, 1, &previous)[7],
        bot_random_seed(seed, 7, 1, &previous).0
    );

    let bots = Bots::new(8).public;
    let payloads = xof
        .bot_payloads(&engine, &bots, seed)
        .expect("bot payloads");
    assert_eq!(payloads[7], Some(stream[7 * 32..].to_vec()));
    assert_eq!(payloads[6], Some(vec![bots[6][0], 6, 1]));
    assert!(payloads[..6].iter().all(Option::is_none));
}

#[test]
fn bots_cannot_send_more_than_payload_bytes() {
    // With payload_bytes = 16 the buffer is still 32 bytes; bot i returns i.
    let wat = module(&format!(
        r#"
  {ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))
  (func (export "ea_bot") (param $player i32) (param i64) (param i32) (param i32) (result i32)
    (local.get $player))
"#
    ));
    let engine = Engine::new().expect("engine");
    let package =
        package_with(&wat, &[("payload_bytes = 64", "payload_bytes = 16")]).expect("loads");
    let compiled = engine.compile(&package).expect("compiles");
    let (mut world, _) = World::genesis(&engine, world_id(), compiled).expect("genesis");
    let bots = Bots::new(18).public;
    let payloads = world.bot_payloads(&engine, &bots, 1).expect("bot payloads");
    for (player, payload) in payloads.iter().enumerate() {
        let expected = (player <= 16).then(|| bots[player][..player].to_vec());
        assert_eq!(payload, &expected, "bot {player}");
    }
}

#[test]
fn log_pointer_is_checked_before_the_rate_limit() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[LOG, 70, 0], &[POINTER_LOG], &[LOG, 1, 0]]);
    assert_eq!(output.receipts[0].outcome, Outcome::Applied);
    assert_failed(
        &output.receipts[1],
        ReceiptKind::Input,
        trapped(TrapClass::HostPointer),
        FUEL_PER_INPUT,
    );
    assert_eq!(output.receipts[2].outcome, Outcome::Applied);
    assert_eq!(output.logs, vec!["hook"; 64], "64 lines kept per tick");
    check(&mut driver, &[POINTER_LOG], trapped(TrapClass::HostPointer));
}

#[test]
fn log_lines_are_counted_per_tick_across_rollbacks_and_fresh_instances() {
    let mut driver = Driver::new(&guest());
    // 10 lines of a rejected call and 20 of a trapped instance's call still count.
    let output = driver.tick(&[&[LOG, 10, 7], &[LOG, 20, 0], &[TRAP], &[LOG, 40, 0]]);
    assert_eq!(output.receipts[0].outcome, Outcome::Rejected(7));
    assert_eq!(output.logs.len(), 64);
    // The next tick starts counting again; the log is in no root.
    let output = driver.tick(&[&[LOG, 3, 0]]);
    assert_eq!(output.logs.len(), 3);
}

#[test]
fn each_call_traces_its_log_lines_memory_and_sizes() {
    let mut driver = Driver::new(&guest());
    let output = driver.tick(&[&[LOG, 2, 0], &[KEY_MAX, 1, 2, 3], &[GROW], &[LOG, 1, 7]]);
    assert_eq!(
        output.calls.len(),
        output.receipts.len(),
        "a trace per receipt"
    );
    assert_eq!(output.call_logs(0), ["hook", "hook"]);
    assert!(output.call_logs(1).is_empty());
    assert!(output.call_logs(2).is_empty());
    // After the trap a fresh instance serves the call; its lines still count.
    assert_eq!(
        output.call_logs(3),
        ["hook"],
        "a rejected call's lines are kept"
    );
    assert!(output.call_logs(4).is_empty(), "the tick hook logs nothing");
    assert!(output.call_logs(5).is_empty(), "past the receipts: nothing");
    let sizes: Vec<(u32, u32)> = output
        .calls
        .iter()
        .map(|call| (call.key_bytes_max, call.value_bytes_max))
        .collect();
    // "k" = payload first; KEY_MAX also writes the 32-byte sender key; the hook reads "k".
    assert_eq!(sizes, [(1, 3), (32, 4), (1, 1), (1, 3), (1, 0)]);
    let memory: Vec<u64> = output.calls.iter().map(|call| call.memory_bytes).collect();
    assert_eq!(
        memory,
        [65_536, 65_536, 131_072, 65_536, 65_536],
        "GROW grew one page"
    );
}

#[test]
fn forbidden_imports_are_refused_at_load() {
    let body = format!(
        "(memory (export \"memory\") 1 2) {ALLOC} (func (export \"ea_input\") (param i32 i32) (result i32) (i32.const 0))"
    );
    let imports = [
        r#"(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))"#,
        r#"(import "ea" "clock" (func (result i64)))"#,
    ];
    for import in imports {
        let error = package(&format!("(module {import} {body})")).expect_err("refused");
        assert_eq!(error.code(), "import_forbidden", "{import}: {error}");
    }
}

#[test]
fn missing_exports_are_refused_at_load() {
    let input = r#"(func (export "ea_input") (param i32 i32) (result i32) (i32.const 0))"#;
    let memory = r#"(memory (export "memory") 1 2)"#;
    let modules = [
        format!("(module {memory} {ALLOC})"),
        format!("(module {memory} {input})"),
        format!("(module (memory 1 2) {ALLOC} {input})"),
    ];
    for wat in modules {
        let error = package(&wat).expect_err("refused");
        assert_eq!(error.code(), "export_missing", "{wat}: {error}");
    }
    // The complete module loads, so each refusal is the missing export's.
    package(&format!("(module {memory} {ALLOC} {input})")).expect("loads");
}
