//! The determinism profile: the execution rules and limits a world is sealed
//! with at genesis. Its hash is bound into `C(0)`.

use crate::hash::{Domain, Hash};

/// Per-world limits from the manifest's `[limits]` table. Units are in the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for one `ea_input` call (and for one `ea_bot` call).
    pub fuel_per_input: u64,
    /// Fuel for the `ea_tick` hook (and for `ea_genesis`).
    pub fuel_per_tick: u64,
    /// The largest linear memory a module may declare, in bytes.
    pub memory_bytes: u64,
    /// The most inputs one tick takes.
    pub inputs_per_tick: u32,
    /// The largest input payload, in bytes.
    pub payload_bytes: u32,
    /// The longest state key, in bytes (at least 1).
    pub key_bytes: u32,
    /// The longest state value, in bytes.
    pub value_bytes: u32,
    /// The most events one call may emit.
    pub events_per_input: u32,
    /// The longest event, in bytes.
    pub event_bytes: u32,
}

/// The runtime's hard ceilings on manifest limits; a manifest above them is refused.
pub const LIMITS_MAX: Limits = Limits {
    fuel_per_input: 1_000_000_000,
    fuel_per_tick: 10_000_000_000,
    memory_bytes: 256 * 1024 * 1024,
    inputs_per_tick: 65_536,
    payload_bytes: 65_536,
    key_bytes: 256,
    value_bytes: 65_536,
    events_per_input: 1_024,
    event_bytes: 65_536,
};

/// Flags of the v1 profile; all are always set in this runtime.
pub mod flags {
    /// Execution is metered in fuel.
    pub const FUEL_METERING: u32 = 1 << 0;
    /// Every NaN produced by float arithmetic is canonical.
    pub const NAN_CANONICALIZATION: u32 = 1 << 1;
    /// No threads or shared memory.
    pub const NO_THREADS: u32 = 1 << 2;
    /// No relaxed SIMD.
    pub const NO_RELAXED_SIMD: u32 = 1 << 3;
    /// No WASI or any import outside module `ea`.
    pub const NO_WASI: u32 = 1 << 4;
    /// No clock of any kind.
    pub const NO_CLOCK: u32 = 1 << 5;
    /// Memory has a fixed declared maximum.
    pub const FIXED_MEMORY_MAXIMUM: u32 = 1 << 6;
    /// Everything above.
    pub const ALL_V1: u32 = FUEL_METERING
        | NAN_CANONICALIZATION
        | NO_THREADS
        | NO_RELAXED_SIMD
        | NO_WASI
        | NO_CLOCK
        | FIXED_MEMORY_MAXIMUM;
}

/// A determinism profile: the v1 flags plus the world's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Profile flags (`flags::ALL_V1`).
    pub flags: u32,
    /// The manifest limits.
    pub limits: Limits,
}

impl Profile {
    /// The v1 profile with the given limits.
    pub fn v1(limits: Limits) -> Profile {
        Profile {
            flags: flags::ALL_V1,
            limits,
        }
    }

    /// `version u8 (1) || flags u32 || fuel_per_input u64 || fuel_per_tick u64 ||
    /// memory_bytes u64 || inputs_per_tick u32 || payload_bytes u32 || key_bytes u32 ||
    /// value_bytes u32 || events_per_input u32 || event_bytes u32`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let l = &self.limits;
        let mut out = Vec::with_capacity(53);
        out.push(1);
        out.extend_from_slice(&self.flags.to_le_bytes());
        for value in [l.fuel_per_input, l.fuel_per_tick, l.memory_bytes] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for value in [
            l.inputs_per_tick,
            l.payload_bytes,
            l.key_bytes,
            l.value_bytes,
            l.events_per_input,
            l.event_bytes,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// `H(Profile, encode())`.
    pub fn hash(&self) -> Hash {
        Domain::Profile.hash(&self.encode())
    }
}
