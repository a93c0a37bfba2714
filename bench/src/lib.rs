//! Benchmarks of the EverArcade runtime, each measured beside its physical
//! limit in the same run, so a figure is always read as a ratio to what the
//! machine can do at all (`cargo bench -p everarcade-bench`; results and their
//! explanation in `docs/BENCHMARKS.md`).
//!
//! This crate *is* responsible for driving the public APIs of the engine, the
//! state store and the protocol exactly as the runtime does, and for the
//! floors they are compared against: the 2d-arena rules compiled natively
//! (`build.rs`, [`native`]), raw BLAKE3 over the same preimages
//! ([`state_root`]) and ed25519-dalek on the same messages ([`signatures`]).
//!
//! It is *not* a test suite (it checks no roots; the other crates' tests do),
//! it writes nothing to disk except under `target/bench-tmp/` ([`durable`],
//! removed afterwards) and it never changes what it measures: every engine,
//! store and world call goes through the same public functions `simulate` uses.
//!
//! Unlike the engine, the benchmarks read the clock (`std::time::Instant`).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod arena;
pub mod durable;
pub mod native;
pub mod report;
pub mod settings;
pub mod signatures;
pub mod speed;
pub mod state_root;

use everarcade_protocol::{PublicKey, test_signing_key};

/// How a 2d-arena match is driven, for the wasm engine and the native floor alike.
#[derive(Clone, Copy, Debug)]
pub struct MatchConfig {
    /// Bot players; each is asked for an input every tick.
    pub bots: usize,
    /// Ticks run after genesis.
    pub ticks: u64,
    /// Seed of the bots' choices.
    pub seed: u64,
}

/// What one match cost and did. Times are wall-clock seconds of each phase,
/// summed over all ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatchReport {
    /// Ticks run.
    pub ticks: u64,
    /// Inputs the bots sent (one `ea_input` call each).
    pub inputs: u64,
    /// Inputs that ended `applied`.
    pub applied: u64,
    /// State keys at the end of the match.
    pub state_keys: usize,
    /// Asking every bot for its input (`ea_bot`).
    pub bot_seconds: f64,
    /// Turning payloads into envelopes (wasm only; the native floor passes raw bytes).
    pub envelope_seconds: f64,
    /// Running the inputs and `ea_tick`, with everything the engine does around them.
    pub execute_seconds: f64,
}

impl MatchReport {
    /// Wall-clock seconds of the whole loop.
    pub fn total_seconds(&self) -> f64 {
        self.bot_seconds + self.envelope_seconds + self.execute_seconds
    }

    /// Ticks per second over the whole loop.
    pub fn ticks_per_second(&self) -> f64 {
        self.ticks as f64 / self.total_seconds()
    }

    /// Inputs per second over the whole loop.
    pub fn inputs_per_second(&self) -> f64 {
        self.inputs as f64 / self.total_seconds()
    }
}

/// The public keys of bots `bot-0 .. bot-{count-1}`, the same test keys
/// `simulate --bots` uses.
pub fn bot_keys(count: usize) -> Vec<PublicKey> {
    (0..count)
        .map(|index| {
            test_signing_key(&format!("bot-{index}"))
                .verifying_key()
                .to_bytes()
        })
        .collect()
}

/// SplitMix64: a tiny deterministic generator for benchmark data (not crypto).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        // `mix64` adds the golden-ratio increment itself, so a counter suffices.
        self.0 = self.0.wrapping_add(1);
        mix64(self.0)
    }

    /// A value in `0..bound` (`bound > 0`); the slight bias is irrelevant here.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

/// The SplitMix64 finaliser, bit-identical to `ea_mix64` in the C SDK.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
