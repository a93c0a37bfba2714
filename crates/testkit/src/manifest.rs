//! The manifest (`world.toml`) of a small package written by a test, with
//! limits small enough that a test reaches each of them.

/// `fuel_per_input` of [`small_manifest`].
pub const FUEL_PER_INPUT: u64 = 100_000;
/// `fuel_per_tick` of [`small_manifest`].
pub const FUEL_PER_TICK: u64 = 1_000_000;
/// `inputs_per_tick` of [`small_manifest`].
pub const INPUTS_PER_TICK: usize = 16;
/// `payload_bytes` of [`small_manifest`].
pub const PAYLOAD_BYTES: usize = 64;

/// A manifest for package `name` at `version` whose module is `world.wasm`,
/// ticking at 20 Hz, with a memory of `memory_bytes` (a multiple of the
/// 64 KiB wasm page) and the small limits above. Each limit stands on a line
/// of its own (`payload_bytes = 64`), so a test can replace one.
pub fn small_manifest(name: &str, version: &str, memory_bytes: u64) -> String {
    format!(
        r#"name = "{name}"
version = "{version}"
abi = "ea-world/1"
module = "world.wasm"
tick_rate_hz = 20

[limits]
fuel_per_input = {FUEL_PER_INPUT}
fuel_per_tick = {FUEL_PER_TICK}
memory_bytes = {memory_bytes}
inputs_per_tick = {INPUTS_PER_TICK}
payload_bytes = {PAYLOAD_BYTES}
key_bytes = 32
value_bytes = 128
events_per_input = 4
event_bytes = 32
"#
    )
}
