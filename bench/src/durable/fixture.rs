//! Durable 2d-arena worlds for the replay and recovery figures, built the way
//! `simulate` builds them: each tick the bots `bot-0 .. bot-{n-1}` decide,
//! each payload is signed with the bot's next nonce, admitted through
//! [`DurableWorld::admit`], and [`DurableWorld::execute_tick`] journals and
//! executes the tick.
//!
//! The build runs on [`UnsyncedDisk`] (syncs are no-ops; the tree is fsynced
//! once at the end), so that its cost is CPU time; the bytes on disk are the
//! ones a synced run writes. The signed inputs of every tick are kept in
//! memory for the in-memory execution limit.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, PublicKey, TickRoots, WorldId, test_signing_key};
use everarcade_store::{JournalConfig, Storage, WorldDir};
use everarcade_world::{DurableWorld, WorldConfig, bind_package};

use super::{Scratch, UnsyncedDisk, directory_bytes, sync_tree};
use crate::arena::{WORLD_ID, package_dir};

/// The engine and the compiled 2d-arena package, shared by every figure.
pub struct Arena {
    /// The engine (shared with the durable worlds it drives).
    pub engine: Arc<Engine>,
    /// `runtime/games/2d-arena`.
    pub package: Package,
    /// Its compilation.
    pub compiled: Arc<CompiledPackage>,
}

impl Arena {
    /// Loads and compiles `runtime/games/2d-arena`.
    pub fn load() -> Result<Arena, String> {
        let dir = package_dir();
        let package =
            Package::load(&dir).map_err(|e| format!("{}: [{}] {e}", dir.display(), e.code()))?;
        let engine = Arc::new(Engine::new().map_err(|e| e.to_string())?);
        let compiled = engine.compile(&package).map_err(|e| e.to_string())?;
        Ok(Arena {
            engine,
            package,
            compiled,
        })
    }

    /// The world id every benchmark world uses.
    pub fn world_id() -> WorldId {
        WorldId::new(WORLD_ID).expect("a valid world id")
    }

    /// Creates a fresh durable world in `dir` (package bound, genesis journaled).
    pub fn create(
        &self,
        storage: Arc<dyn Storage>,
        dir: &WorldDir,
        config: WorldConfig,
    ) -> Result<DurableWorld, String> {
        bind_package(&*storage, dir, &self.package).map_err(|e| e.to_string())?;
        DurableWorld::create(
            storage,
            dir.clone(),
            Arena::world_id(),
            self.engine.clone(),
            self.compiled.clone(),
            config,
        )
        .map_err(|e| e.to_string())
    }
}

/// What world to build.
#[derive(Clone, Copy, Debug)]
pub struct FixtureConfig {
    /// Bot players, each asked for an input every tick.
    pub bots: usize,
    /// Ticks executed after genesis.
    pub ticks: u64,
    /// Seed of the bots' choices.
    pub seed: u64,
    /// Checkpoint interval in ticks (0: none, so recovery replays from genesis).
    pub checkpoint_interval_ticks: u64,
}

impl FixtureConfig {
    /// The durability settings of the built world (default journal segments).
    pub fn world_config(&self) -> WorldConfig {
        WorldConfig {
            checkpoint_interval_ticks: self.checkpoint_interval_ticks,
            checkpoints_retained: 3,
            journal: JournalConfig::default(),
        }
    }
}

/// A built world on disk, closed and fsynced.
pub struct Fixture {
    /// Holds the runtime root; dropping it removes the world.
    pub scratch: Scratch,
    /// The world's directory.
    pub dir: WorldDir,
    /// How it was built.
    pub config: FixtureConfig,
    /// `inputs[t - 1]`: the signed inputs of tick `t`, in admission order.
    pub inputs: Vec<Vec<Envelope>>,
    /// The roots after the last tick.
    pub roots: TickRoots,
    /// Bytes of the journal segments.
    pub journal_bytes: u64,
    /// Wall-clock seconds the build took (signing, admission, bots, ticks).
    pub build_seconds: f64,
}

impl Fixture {
    /// Inputs over all ticks.
    pub fn input_count(&self) -> u64 {
        self.inputs.iter().map(|tick| tick.len() as u64).sum()
    }
}

/// Builds a world in a new scratch directory named `name`; see the module docs.
/// `progress` is called every 10,000 ticks with the ticks done.
pub fn build(
    arena: &Arena,
    config: &FixtureConfig,
    name: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Fixture, String> {
    let started = Instant::now();
    let scratch = Scratch::new(name).map_err(|e| format!("scratch directory: {e}"))?;
    let dir = WorldDir::new(scratch.path(), &Arena::world_id());
    let mut world = arena.create(Arc::new(UnsyncedDisk), &dir, config.world_config())?;
    let keys: Vec<SigningKey> = (0..config.bots)
        .map(|index| test_signing_key(&format!("bot-{index}")))
        .collect();
    let public: Vec<PublicKey> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let mut nonces = vec![0u64; config.bots];
    let mut inputs = Vec::with_capacity(config.ticks as usize);
    let id = Arena::world_id();
    for tick in 1..=config.ticks {
        let payloads = world
            .world_mut()
            .bot_payloads(&arena.engine, &public, config.seed)
            .map_err(|e| e.to_string())?;
        let mut signed = Vec::with_capacity(payloads.len());
        for (bot, payload) in payloads.into_iter().enumerate() {
            let Some(payload) = payload else { continue };
            nonces[bot] += 1;
            let envelope = Envelope::sign(&id, &keys[bot], nonces[bot], payload);
            world
                .admit(envelope.clone())
                .map_err(|e| format!("tick {tick}: a bot input is refused: {e}"))?;
            signed.push(envelope);
        }
        world.execute_tick().map_err(|e| e.to_string())?;
        inputs.push(signed);
        if tick % 10_000 == 0 {
            progress(tick);
        }
    }
    let roots = world.close().map_err(|e| e.to_string())?;
    sync_tree(dir.path()).map_err(|e| format!("fsync {}: {e}", dir.path().display()))?;
    let journal_bytes = directory_bytes(&dir.journal()).map_err(|e| e.to_string())?;
    Ok(Fixture {
        scratch,
        dir,
        config: *config,
        inputs,
        roots,
        journal_bytes,
        build_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads every journal segment of `dir` with `fs::read` (the raw-read limit).
pub fn read_segments(journal: &Path) -> Result<u64, String> {
    let mut total = 0u64;
    let mut entries: Vec<_> = std::fs::read_dir(journal)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        total += bytes.len() as u64;
    }
    Ok(total)
}
