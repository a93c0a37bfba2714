//! Fixtures and helpers shared by the engine tests: temporary packages built
//! from WAT, a driver that signs and admits inputs, a state model, and the
//! `check` helper for inputs that must leave the state untouched.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use everarcade_engine::{Engine, EngineError, GenesisOutput, TickOutput, World};
use everarcade_package::{Package, PackageError};
use everarcade_protocol::{
    Envelope, Hash, Outcome, Receipt, ReceiptKind, events_hash, test_signing_key,
};
use everarcade_state::State;

use everarcade_testkit::manifest::small_manifest;
pub use everarcade_testkit::manifest::{
    FUEL_PER_INPUT, FUEL_PER_TICK, INPUTS_PER_TICK, PAYLOAD_BYTES,
};
use everarcade_testkit::temp::TempDir;
pub use everarcade_testkit::world_id;

/// `memory_bytes` of the fixture manifest: the modules declare 1..=2 pages,
/// exactly this.
const MEMORY_BYTES: u64 = 131_072;

/// Every `ea` import, named `$state_get` … `$log`; unused ones are harmless.
const IMPORTS: &str = r#"
  (import "ea" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "ea" "state_set" (func $state_set (param i32 i32 i32 i32)))
  (import "ea" "state_del" (func $state_del (param i32 i32)))
  (import "ea" "emit" (func $emit (param i32 i32)))
  (import "ea" "random_seed" (func $random_seed (param i32)))
  (import "ea" "log" (func $log (param i32 i32)))
"#;

/// A module with every `ea` import and a 1..=2 page exported memory around `body`.
pub fn module(body: &str) -> String {
    format!("(module {IMPORTS} (memory (export \"memory\") 1 2) {body})")
}

/// Where every fixture's `ea_alloc` puts the input.
pub const ALLOC: &str = r#"(func (export "ea_alloc") (param i32) (result i32) (i32.const 1024))"#;

// Modes of the main fixture, chosen by payload[0].
/// Writes "k" = payload; applied.
pub const APPLY: u8 = 0;
/// Writes "k" = payload; rejected with code 7.
pub const REJECT: u8 = 1;
/// Writes "k" = payload; `unreachable`.
pub const TRAP: u8 = 2;
/// Writes "k" = payload; loops forever.
pub const LOOP: u8 = 3;
/// Deletes "k" (without writing it first); `unreachable`.
pub const DELETE: u8 = 4;
/// Writes "j" = payload (not "k"); applied.
pub const LATER: u8 = 5;
/// Writes "r" = random_seed; applied.
pub const RANDOM: u8 = 6;
/// Writes "k" = payload, emits the payload and "hook"; applied.
pub const EMIT: u8 = 7;
/// Writes "k" = payload, emits the payload; rejected with code 7.
pub const EMIT_REJECT: u8 = 8;
/// Writes "k" = payload, deletes "k"; rejected with code 9.
pub const SET_DELETE_REJECT: u8 = 9;
/// Grows memory to its maximum, fails to grow past it, stores past the end.
pub const GROW: u8 = 10;
/// `state_set` with a 33-byte key (key_bytes is 32).
pub const KEY_LONG: u8 = 11;
/// `state_set` with the 32-byte sender key as key and the payload as value; applied.
pub const KEY_MAX: u8 = 12;
/// `state_set` with an empty key.
pub const KEY_EMPTY: u8 = 13;
/// `state_set` "k" with a 129-byte value (value_bytes is 128).
pub const VALUE_LONG: u8 = 14;
/// `state_set` "k" with the 128 bytes at address 0; applied.
pub const VALUE_MAX: u8 = 15;
/// `state_set` with a value straddling the end of memory.
pub const POINTER_SET: u8 = 16;
/// `state_get` of the absent "t" into a buffer straddling the end of memory.
pub const POINTER_GET: u8 = 17;
/// `emit` from one byte past the end of memory.
pub const POINTER_EMIT: u8 = 18;
/// `random_seed` into 32 bytes straddling the end of memory.
pub const POINTER_RANDOM: u8 = 19;
/// `emit` one byte forever (events_per_input is 4).
pub const EMIT_FLOOD: u8 = 20;
/// `emit` 33 bytes (event_bytes is 32).
pub const EVENT_LONG: u8 = 21;
/// `emit` 32 bytes from address 0; applied.
pub const EVENT_MAX: u8 = 22;
/// Returns -1.
pub const BAD_RETURN: u8 = 23;
/// Divides by payload[1] (send 0).
pub const DIVIDE: u8 = 24;
/// Recurses without end.
pub const RECURSE: u8 = 25;
/// `state_del` with a key one byte past the end of memory.
pub const POINTER_KEY: u8 = 26;
/// Writes "c" = [calls], the number of `ea_input` calls this instance has
/// served (a global, so it counts instances); applied.
pub const COUNT: u8 = 27;
/// Emits payload[1] one-byte events, the bytes at addresses 0, 1, …; applied.
pub const EMIT_MANY: u8 = 28;
/// `state_set` "k" with the last two bytes of memory; applied.
pub const POINTER_EDGE: u8 = 29;
/// Logs "hook" payload[1] times, then returns payload[2] (0 applies, > 0 rejects).
pub const LOG: u8 = 30;
/// `log` from one byte past the end of memory.
pub const POINTER_LOG: u8 = 31;
/// `state_get` of the key at address payload[2] ("k" at 0, the absent "t" at
/// 2) into 8 zeroed bytes with capacity payload[1]; writes "j" = the result
/// (i32 LE) followed by those 8 bytes; applied.
pub const GET: u8 = 32;

/// payload[1] of an applied input that makes `ea_tick` write "t", overwrite
/// "k", delete "j" and then trap (when "k" is exactly two bytes).
pub const HOOK_TRAP: u8 = b'T';
/// payload[1] of an applied input that makes `ea_tick` loop forever.
pub const HOOK_LOOP: u8 = b'L';

/// Modes that run before the unconditional write of "k" = payload.
const BEFORE_WRITE: &[(u8, &str)] = &[
    (
        DELETE,
        "(call $state_del (i32.const 0) (i32.const 1)) (unreachable)",
    ),
    (
        LATER,
        "(call $state_set (i32.const 1) (i32.const 1) (local.get $payload) (local.get $size)) (return (i32.const 0))",
    ),
    (
        RANDOM,
        "(call $random_seed (i32.const 2048)) (call $state_set (i32.const 3) (i32.const 1) (i32.const 2048) (i32.const 32)) (return (i32.const 0))",
    ),
    (
        COUNT,
        "(i32.store8 (i32.const 2100) (global.get $calls)) (call $state_set (i32.const 200) (i32.const 1) (i32.const 2100) (i32.const 1)) (return (i32.const 0))",
    ),
];

/// Modes that run after "k" = payload was written.
const AFTER_WRITE: &[(u8, &str)] = &[
    (APPLY, "(return (i32.const 0))"),
    (REJECT, "(return (i32.const 7))"),
    (TRAP, "(unreachable)"),
    (LOOP, "(loop $forever (br $forever))"),
    (EMIT, "(call $emit (local.get $payload) (local.get $size)) (call $emit (i32.const 16) (i32.const 4)) (return (i32.const 0))"),
    (EMIT_REJECT, "(call $emit (local.get $payload) (local.get $size)) (return (i32.const 7))"),
    (SET_DELETE_REJECT, "(call $state_del (i32.const 0) (i32.const 1)) (return (i32.const 9))"),
    (GROW, "(if (i32.ne (memory.grow (i32.const 1)) (i32.const 1)) (then (return (i32.const 90))))
            (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (return (i32.const 91))))
            (i32.store (i32.const 131072) (i32.const 1)) (return (i32.const 92))"),
    (KEY_LONG, "(call $state_set (local.get $ptr) (i32.const 33) (local.get $payload) (local.get $size)) (return (i32.const 0))"),
    (KEY_MAX, "(call $state_set (local.get $ptr) (i32.const 32) (local.get $payload) (local.get $size)) (return (i32.const 0))"),
    (KEY_EMPTY, "(call $state_set (local.get $ptr) (i32.const 0) (local.get $payload) (local.get $size)) (return (i32.const 0))"),
    (VALUE_LONG, "(call $state_set (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 129)) (return (i32.const 0))"),
    (VALUE_MAX, "(call $state_set (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 128)) (return (i32.const 0))"),
    (POINTER_SET, "(call $state_set (i32.const 0) (i32.const 1) (i32.const 65535) (i32.const 2)) (return (i32.const 0))"),
    (POINTER_GET, "(drop (call $state_get (i32.const 2) (i32.const 1) (i32.const 65500) (i32.const 100))) (return (i32.const 0))"),
    (POINTER_EMIT, "(call $emit (i32.const 65536) (i32.const 1)) (return (i32.const 0))"),
    (POINTER_RANDOM, "(call $random_seed (i32.const 65520)) (return (i32.const 0))"),
    (POINTER_EDGE, "(call $state_set (i32.const 0) (i32.const 1) (i32.const 65534) (i32.const 2)) (return (i32.const 0))"),
    (EMIT_MANY, "(block $done (loop $next
              (br_if $done (i32.ge_u (local.get $index) (i32.load8_u offset=1 (local.get $payload))))
              (call $emit (local.get $index) (i32.const 1))
              (local.set $index (i32.add (local.get $index) (i32.const 1)))
              (br $next)))
            (return (i32.const 0))"),
    (LOG, "(block $done (loop $next
              (br_if $done (i32.ge_u (local.get $index) (i32.load8_u offset=1 (local.get $payload))))
              (call $log (i32.const 16) (i32.const 4))
              (local.set $index (i32.add (local.get $index) (i32.const 1)))
              (br $next)))
            (return (i32.load8_u offset=2 (local.get $payload)))"),
    (POINTER_LOG, "(call $log (i32.const 65536) (i32.const 1)) (return (i32.const 0))"),
    (GET, "(i64.store (i32.const 2204) (i64.const 0))
            (i32.store (i32.const 2200)
              (call $state_get (i32.load8_u offset=2 (local.get $payload)) (i32.const 1)
                (i32.const 2204) (i32.load8_u offset=1 (local.get $payload))))
            (call $state_set (i32.const 1) (i32.const 1) (i32.const 2200) (i32.const 12))
            (return (i32.const 0))"),
    (POINTER_KEY, "(call $state_del (i32.const 65536) (i32.const 1)) (return (i32.const 0))"),
    (EMIT_FLOOD, "(loop $flood (call $emit (i32.const 0) (i32.const 1)) (br $flood))"),
    (EVENT_LONG, "(call $emit (i32.const 0) (i32.const 33)) (return (i32.const 0))"),
    (EVENT_MAX, "(call $emit (i32.const 0) (i32.const 32)) (return (i32.const 0))"),
    (BAD_RETURN, "(return (i32.const -1))"),
    (DIVIDE, "(drop (i32.div_s (i32.const 1) (i32.load8_u offset=1 (local.get $payload)))) (return (i32.const 0))"),
    (RECURSE, "(call $recurse) (return (i32.const 0))"),
];

fn dispatch(modes: &[(u8, &str)]) -> String {
    let arms = modes.iter().map(|(mode, body)| {
        format!("(if (i32.eq (local.get $mode) (i32.const {mode})) (then {body}))")
    });
    arms.collect::<Vec<_>>().join("\n    ")
}

/// The main fixture. Memory: keys "k", "j", "t", "r" at 0..4, "hook" at 16,
/// "genesis" at 32, key "c" at 200, the input at 1024. Genesis writes "k" = "genesis".
/// `ea_input` switches on payload[0] (see the mode constants; an unknown mode
/// is rejected with 99). `ea_tick` misbehaves only when "k" is [_, HOOK_TRAP]
/// or [_, HOOK_LOOP].
pub fn guest() -> String {
    let before = dispatch(BEFORE_WRITE);
    let after = dispatch(AFTER_WRITE);
    module(&format!(
        r#"
  (data (i32.const 0) "kjtr")
  (data (i32.const 16) "hook")
  (data (i32.const 32) "genesis")
  (data (i32.const 200) "c")
  (global $calls (mut i32) (i32.const 0))
  {ALLOC}
  (func $recurse (call $recurse))
  (func (export "ea_genesis")
    (call $state_set (i32.const 0) (i32.const 1) (i32.const 32) (i32.const 7)))
  (func (export "ea_input") (param $ptr i32) (param $len i32) (result i32)
    (local $payload i32) (local $size i32) (local $mode i32) (local $index i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $payload (i32.add (local.get $ptr) (i32.const 40)))
    (local.set $size (i32.sub (local.get $len) (i32.const 40)))
    (local.set $mode (i32.load8_u (local.get $payload)))
    {before}
    (call $state_set (i32.const 0) (i32.const 1) (local.get $payload) (local.get $size))
    {after}
    (i32.const 99))
  (func (export "ea_tick") (param $tick i64)
    (if (i32.ne (call $state_get (i32.const 0) (i32.const 1) (i32.const 3000) (i32.const 64)) (i32.const 2))
      (then (return)))
    (if (i32.eq (i32.load8_u (i32.const 3001)) (i32.const {HOOK_LOOP}))
      (then (loop $forever (br $forever))))
    (if (i32.ne (i32.load8_u (i32.const 3001)) (i32.const {HOOK_TRAP}))
      (then (return)))
    (call $state_set (i32.const 2) (i32.const 1) (i32.const 16) (i32.const 4))
    (call $state_set (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 4))
    (call $state_del (i32.const 1) (i32.const 1))
    (unreachable))
"#
    ))
}

/// Writes `wat` (compiled to wasm) and the fixture manifest into a temp
/// package and loads it.
pub fn package(wat: &str) -> Result<Package, PackageError> {
    package_with(wat, &[])
}

/// [`package`] with manifest lines replaced, e.g. `("payload_bytes = 64",
/// "payload_bytes = 16")`.
pub fn package_with(wat: &str, replacements: &[(&str, &str)]) -> Result<Package, PackageError> {
    let mut manifest = small_manifest("hostile", "0.1.0", MEMORY_BYTES);
    for (line, replacement) in replacements {
        assert!(manifest.contains(line), "the manifest has no line {line:?}");
        manifest = manifest.replace(line, replacement);
    }
    let wasm = wat::parse_str(wat).expect("fixture WAT parses");
    let dir = TempDir::new("engine-test");
    std::fs::write(dir.join("world.toml"), manifest).expect("write world.toml");
    std::fs::write(dir.join("world.wasm"), wasm).expect("write world.wasm");
    Package::load(dir.path())
}

/// Loads and compiles `wat` and runs genesis as world "world-001".
pub fn genesis(engine: &Engine, wat: &str) -> Result<(World, GenesisOutput), EngineError> {
    let package = package(wat).expect("fixture package loads");
    let compiled = engine.compile(&package)?;
    World::genesis(engine, world_id(), compiled)
}

/// A fresh engine and world "world-001" running `wat`, after genesis.
pub fn world(wat: &str) -> (Engine, World) {
    let engine = Engine::new().expect("engine");
    let (world, _) = genesis(&engine, wat).expect("genesis");
    (engine, world)
}

/// The state as a sorted map.
pub type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The root a state holding exactly `map` has.
pub fn model_root(map: &Map) -> Hash {
    let mut state = State::new();
    for (key, value) in map {
        state.set(key, value);
    }
    state.root()
}

/// `events_hash` of no events.
pub fn no_events() -> Hash {
    events_hash([])
}

/// An engine, a world, and player "alice" who signs and admits inputs.
pub struct Driver {
    pub engine: Engine,
    pub world: World,
    pub key: SigningKey,
    nonce: u64,
}

impl Driver {
    /// A driver for a fresh world running `wat`.
    pub fn new(wat: &str) -> Driver {
        let (engine, world) = world(wat);
        Driver {
            engine,
            world,
            key: test_signing_key("alice"),
            nonce: 0,
        }
    }

    /// Signs `payload` with the next nonce and admits it.
    pub fn envelope(&mut self, payload: &[u8]) -> Envelope {
        self.nonce += 1;
        let envelope = Envelope::sign(&world_id(), &self.key, self.nonce, payload.to_vec());
        self.world.admit(&envelope).expect("admitted");
        envelope
    }

    /// Executes the next tick over one admitted input per payload.
    pub fn tick(&mut self, payloads: &[&[u8]]) -> TickOutput {
        let envelopes: Vec<Envelope> = payloads
            .iter()
            .map(|payload| self.envelope(payload))
            .collect();
        self.world
            .execute_tick(&self.engine, &envelopes)
            .expect("tick executes")
    }

    /// The state as a map.
    pub fn snapshot(&self) -> Map {
        self.world
            .state()
            .iter()
            .map(|(key, value)| (key.to_vec(), value.to_vec()))
            .collect()
    }

    /// Asserts the state holds exactly `expected` and has its root.
    pub fn assert_state(&mut self, expected: &Map) {
        assert_eq!(&self.snapshot(), expected, "state entries");
        assert_eq!(self.world.state_root(), model_root(expected), "state root");
    }
}

/// Asserts a receipt of `kind` ended `expected` with no events, and its fuel:
/// the whole `budget` when out of fuel, else some but not all of it.
pub fn assert_failed(receipt: &Receipt, kind: ReceiptKind, expected: Outcome, budget: u64) {
    assert_eq!(receipt.kind, kind);
    assert_eq!(receipt.outcome, expected);
    assert_eq!(
        receipt.events_hash,
        no_events(),
        "{expected:?} keeps no events"
    );
    assert_eq!(receipt.event_count, 0);
    if expected == Outcome::OutOfFuel {
        assert_eq!(
            receipt.fuel_used, budget,
            "out of fuel uses the whole budget"
        );
    } else {
        assert!(
            receipt.fuel_used > 0 && receipt.fuel_used < budget,
            "fuel_used {}",
            receipt.fuel_used
        );
    }
}

/// Runs an input with `payload` alone in a tick; it must end `expected` and
/// leave every key and the root exactly as before.
pub fn check_alone(driver: &mut Driver, payload: &[u8], expected: Outcome) {
    let before = driver.snapshot();
    let root_before = driver.world.state_root();
    let output = driver.tick(&[payload]);
    assert_failed(
        &output.receipts[0],
        ReceiptKind::Input,
        expected,
        FUEL_PER_INPUT,
    );
    assert!(output.events[0].is_empty());
    assert_eq!(
        output.roots.state_root, root_before,
        "{expected:?} moved the state root"
    );
    driver.assert_state(&before);
}

/// [`check_alone`], then the same failure followed in the same tick by an
/// input writing "j": that one applies (on a fresh instance after a trap) and
/// its write is the only change.
pub fn check(driver: &mut Driver, payload: &[u8], expected: Outcome) {
    check_alone(driver, payload, expected);
    let mut after = driver.snapshot();
    let later = [LATER, driver.world.tick() as u8, 0xee];
    let output = driver.tick(&[payload, &later]);
    assert_failed(
        &output.receipts[0],
        ReceiptKind::Input,
        expected,
        FUEL_PER_INPUT,
    );
    assert_eq!(
        output.receipts[1].outcome,
        Outcome::Applied,
        "the later input applies"
    );
    let hook = output.receipts.last().expect("hook receipt");
    assert_eq!(
        (hook.kind, hook.outcome),
        (ReceiptKind::TickHook, Outcome::Applied)
    );
    after.insert(b"j".to_vec(), later.to_vec());
    driver.assert_state(&after);
}
