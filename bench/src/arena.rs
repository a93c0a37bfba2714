//! The 2d-arena match on the real engine: `World::bot_payloads`, envelopes,
//! `World::execute_tick`, tick after tick, exactly as `simulate` drives it
//! minus signing and admission (signatures are checked once at admission,
//! never in the tick loop; [`crate::signatures`] measures them).
//!
//! A second pass over the same match ([`WasmArena::breakdown`]) measures what
//! the engine's hashing and state root cost per tick, by recomputing the same
//! hashes with the same public functions, and what an instance costs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use everarcade_engine::{
    CompiledPackage, Engine, EngineError, TickOutput, World, bot_random_seeds,
};
use everarcade_package::Package;
use everarcade_protocol::{
    Envelope, Hash, Outcome, PublicKey, Receipt, ReceiptKind, WorldId, events_hash, list_root,
};
use everarcade_state::State;

use crate::{MatchConfig, MatchReport};

/// The world id of every benchmark world.
pub const WORLD_ID: &str = "bench-world";

/// Calls of `bot_payloads` with a single bot used to price one instance.
pub const INSTANCE_PROBE_CALLS: u32 = 2_000;

/// The shipped package directory, `runtime/games/2d-arena`.
pub fn package_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runtime/games/2d-arena"
    ))
}

/// What the engine spends, per tick, on work other than running the guest,
/// measured by redoing that work outside the timed loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Breakdown {
    /// Envelope hashes, receipt hashes, events hashes and the two list roots,
    /// recomputed from each tick's output, summed over all ticks.
    pub protocol_hash_seconds: f64,
    /// `State::root` after applying a tick's writes to a copy of the state
    /// from before the tick, summed over all ticks.
    pub state_root_seconds: f64,
    /// Bytes of the values the ticks changed (hashed again by `root`), summed.
    pub state_changed_value_bytes: u64,
    /// `bot_random_seeds` under the world's rule (one BLAKE3 per bot, or one
    /// XOF per tick) for every tick, as `bot_payloads` derives them, summed
    /// over all ticks.
    pub bot_seed_seconds: f64,
    /// One `bot_payloads` call with a single bot (one instance, one `ea_bot`).
    pub single_bot_call_seconds: f64,
}

/// The compiled 2d-arena package on a fresh engine.
pub struct WasmArena {
    engine: Engine,
    compiled: Arc<CompiledPackage>,
}

impl WasmArena {
    /// Loads and compiles `runtime/games/2d-arena`.
    pub fn load() -> Result<WasmArena, String> {
        WasmArena::load_dir(&package_dir())
    }

    /// The 2d-arena's module under its manifest with `bot_seeds = "xof"`
    /// added (docs/PROTOCOL.md §10.1; a copy in a scratch directory, the
    /// shipped package keeps the per-bot rule).
    pub fn load_xof() -> Result<WasmArena, String> {
        let scratch = crate::durable::Scratch::new("xof-arena")
            .map_err(|e| format!("scratch directory: {e}"))?;
        package_copy_with(scratch.path(), "bot_seeds = \"xof\"")?;
        let arena = WasmArena::load_dir(scratch.path())?;
        assert_eq!(
            arena.compiled.package.manifest.bot_seeds,
            everarcade_protocol::BotSeedRule::Xof
        );
        Ok(arena)
    }

    fn load_dir(dir: &Path) -> Result<WasmArena, String> {
        let package =
            Package::load(dir).map_err(|e| format!("{}: [{}] {e}", dir.display(), e.code()))?;
        let engine = Engine::new().map_err(|e| e.to_string())?;
        let compiled = engine.compile(&package).map_err(|e| e.to_string())?;
        Ok(WasmArena { engine, compiled })
    }

    /// The manifest's tick rate.
    pub fn tick_rate_hz(&self) -> u32 {
        self.compiled.package.manifest.tick_rate_hz
    }

    /// The manifest's limits.
    pub fn limits(&self) -> everarcade_protocol::Limits {
        self.compiled.package.manifest.limits
    }

    /// A world after genesis.
    pub fn genesis(&self) -> Result<World, EngineError> {
        let id = WorldId::new(WORLD_ID).expect("a valid world id");
        Ok(World::genesis(&self.engine, id, self.compiled.clone())?.0)
    }

    /// Runs a match: each tick `bot_payloads`, unsigned envelopes,
    /// `execute_tick`, with nothing else in the loop but the clock reads.
    pub fn run(
        &self,
        config: &MatchConfig,
        keys: &[PublicKey],
    ) -> Result<MatchReport, EngineError> {
        assert_eq!(keys.len(), config.bots);
        let mut world = self.genesis()?;
        let mut nonces = vec![0u64; config.bots];
        let mut report = MatchReport {
            ticks: config.ticks,
            ..MatchReport::default()
        };
        for _ in 0..config.ticks {
            let start = Instant::now();
            let payloads = world.bot_payloads(&self.engine, keys, config.seed)?;
            let bots_done = Instant::now();
            let envelopes = envelopes(world.id(), keys, &mut nonces, payloads);
            let envelopes_done = Instant::now();
            let output = world.execute_tick(&self.engine, &envelopes)?;
            let execute_done = Instant::now();
            report.bot_seconds += (bots_done - start).as_secs_f64();
            report.envelope_seconds += (envelopes_done - bots_done).as_secs_f64();
            report.execute_seconds += (execute_done - envelopes_done).as_secs_f64();
            report.inputs += envelopes.len() as u64;
            report.applied += applied_inputs(&output.receipts);
        }
        report.state_keys = world.state().len();
        Ok(report)
    }

    /// Replays the same match (same seed, so the same ticks) in a fresh world,
    /// and around each tick redoes, timed, the hashing the engine does besides
    /// running the guest: the bots' seeds, the receipts' and lists' hashes and
    /// the state root. The sums are comparable with [`WasmArena::run`]'s phases.
    pub fn breakdown(
        &self,
        config: &MatchConfig,
        keys: &[PublicKey],
    ) -> Result<Breakdown, EngineError> {
        let mut world = self.genesis()?;
        let mut nonces = vec![0u64; config.bots];
        let mut breakdown = Breakdown::default();
        for _ in 0..config.ticks {
            breakdown.bot_seed_seconds += bot_seed_seconds(&world, config);
            let payloads = world.bot_payloads(&self.engine, keys, config.seed)?;
            let envelopes = envelopes(world.id(), keys, &mut nonces, payloads);
            let before = world.state().clone();
            let output = world.execute_tick(&self.engine, &envelopes)?;
            breakdown.protocol_hash_seconds += protocol_hash_seconds(&envelopes, &output);
            let (seconds, bytes) = state_root_seconds(before, world.state());
            breakdown.state_root_seconds += seconds;
            breakdown.state_changed_value_bytes += bytes;
        }
        breakdown.single_bot_call_seconds =
            self.single_bot_call_seconds(&mut world, keys, config.seed)?;
        Ok(breakdown)
    }

    /// The mean time of `bot_payloads` for one bot: an instance, one call, its teardown.
    fn single_bot_call_seconds(
        &self,
        world: &mut World,
        keys: &[PublicKey],
        seed: u64,
    ) -> Result<f64, EngineError> {
        let one = &keys[..1];
        world.bot_payloads(&self.engine, one, seed)?;
        let start = Instant::now();
        for _ in 0..INSTANCE_PROBE_CALLS {
            std::hint::black_box(world.bot_payloads(&self.engine, one, seed)?);
        }
        Ok(start.elapsed().as_secs_f64() / f64::from(INSTANCE_PROBE_CALLS))
    }
}

/// Writes the 2d-arena's manifest, with `line` added after its tick rate,
/// and its module into `dir`.
pub fn package_copy_with(dir: &Path, line: &str) -> Result<(), String> {
    let source = package_dir();
    let manifest = std::fs::read_to_string(source.join("world.toml"))
        .map_err(|e| format!("read the 2d-arena manifest: {e}"))?;
    let changed = manifest.replacen(
        "tick_rate_hz = 20\n",
        &format!("tick_rate_hz = 20\n{line}\n"),
        1,
    );
    if changed == manifest {
        return Err("the 2d-arena manifest has no `tick_rate_hz = 20` line".into());
    }
    std::fs::write(dir.join("world.toml"), changed).map_err(|e| e.to_string())?;
    std::fs::copy(source.join("world.wasm"), dir.join("world.wasm")).map_err(|e| e.to_string())?;
    Ok(())
}

/// Redoes the seed derivation of the coming tick's `bot_payloads`.
fn bot_seed_seconds(world: &World, config: &MatchConfig) -> f64 {
    let (tick, previous) = (world.tick() + 1, world.continuity_root());
    let rule = world.compiled().package.manifest.bot_seeds;
    let start = Instant::now();
    std::hint::black_box(bot_random_seeds(
        rule,
        config.seed,
        config.bots,
        tick,
        &previous,
    ));
    start.elapsed().as_secs_f64()
}

/// One unsigned envelope per payload, nonces counting up per bot.
fn envelopes(
    world: &WorldId,
    keys: &[PublicKey],
    nonces: &mut [u64],
    payloads: Vec<Option<Vec<u8>>>,
) -> Vec<Envelope> {
    let mut envelopes = Vec::with_capacity(payloads.len());
    for (player, payload) in payloads.into_iter().enumerate() {
        let Some(payload) = payload else { continue };
        nonces[player] += 1;
        let (sender, nonce) = (keys[player], nonces[player]);
        // Unsigned: the engine loop never looks at the signature.
        envelopes.push(Envelope {
            world: world.clone(),
            sender,
            nonce,
            payload,
            signature: [0; 64],
        });
    }
    envelopes
}

fn applied_inputs(receipts: &[Receipt]) -> u64 {
    let applied = |receipt: &&Receipt| {
        receipt.kind == ReceiptKind::Input && receipt.outcome == Outcome::Applied
    };
    receipts.iter().filter(applied).count() as u64
}

/// Redoes the hashing `execute_tick` does around the guest calls (except the
/// state root and the two fixed-size chain hashes): envelope hashes, events
/// hashes, receipt hashes and the input and receipt list roots.
fn protocol_hash_seconds(envelopes: &[Envelope], output: &TickOutput) -> f64 {
    let start = Instant::now();
    let envelope_hashes: Vec<Hash> = envelopes.iter().map(Envelope::hash).collect();
    for events in &output.events {
        std::hint::black_box(events_hash(events.iter().map(Vec::as_slice)));
    }
    let receipt_hashes: Vec<Hash> = output.receipts.iter().map(Receipt::hash).collect();
    std::hint::black_box((list_root(&envelope_hashes), list_root(&receipt_hashes)));
    start.elapsed().as_secs_f64()
}

/// Applies the difference between `before` and `after` to `before` and times
/// its `root()`: the state-root work of that tick. Returns the seconds and the
/// bytes of the values that changed.
fn state_root_seconds(mut before: State, after: &State) -> (f64, u64) {
    let mut changed_bytes = 0u64;
    let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for (key, value) in after.iter() {
        if before.get(key) != Some(value) {
            changed_bytes += value.len() as u64;
            writes.push((key.to_vec(), Some(value.to_vec())));
        }
    }
    for (key, _) in before.iter() {
        if after.get(key).is_none() {
            writes.push((key.to_vec(), None));
        }
    }
    for (key, value) in &writes {
        match value {
            Some(value) => before.set(key, value),
            None => before.delete(key),
        };
    }
    let start = Instant::now();
    std::hint::black_box(before.root());
    (start.elapsed().as_secs_f64(), changed_bytes)
}
