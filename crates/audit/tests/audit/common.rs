//! Shared fixtures: the 2d-arena package compiled once, durable worlds
//! driven by the package's bots in temporary runtime roots, and helpers to
//! export, re-sign and re-seal bundles.

use ed25519_dalek::{Signer, SigningKey};
use everarcade_audit::bundle::{Bundle, decode};
use everarcade_audit::export::{ExportRequest, Exported, export};
use everarcade_protocol::{Envelope, Hash, Tick, TickRoots};
use everarcade_store::journal::JournalConfig;
use everarcade_store::keys::{OperatorKeys, Signed};
use everarcade_store::{DiskStorage, WorldDir};
pub use everarcade_testkit::arena::arena as fixture;
use everarcade_testkit::bots::Bots;
pub use everarcade_testkit::rng::SplitMix64 as Rng;
pub use everarcade_testkit::temp::TempDir as Temp;
pub use everarcade_testkit::world_id;
use everarcade_world::{DurableWorld, WorldConfig, bind_package};
use std::sync::Arc;

/// Bots per match.
pub const BOTS: usize = 4;

/// A durable world of a bot match, closed.
pub struct Built {
    /// Its runtime root (removed on drop).
    _root: Temp,
    /// Its directory.
    pub dir: WorldDir,
    /// Every tick's roots, `roots[t]` for tick t (tick 0: genesis).
    pub roots: Vec<TickRoots>,
    /// Every tick's inputs, `inputs[t - 1]`.
    pub inputs: Vec<Vec<Envelope>>,
    /// The bots' seed.
    seed: u64,
    /// The durability settings.
    config: WorldConfig,
}

impl Built {
    /// The head's roots.
    pub fn head(&self) -> TickRoots {
        *self.roots.last().unwrap()
    }
}

/// Runs `ticks` ticks of a `BOTS`-bot match with `seed`, checkpointing every
/// `interval` ticks, in a new runtime root.
pub fn build(label: &str, seed: u64, ticks: Tick, interval: u64) -> Built {
    let root = Temp::new(label);
    let dir = WorldDir::new(root.path(), &world_id());
    let fixture = fixture();
    bind_package(&DiskStorage, &dir, &fixture.package).unwrap();
    let config = WorldConfig {
        checkpoint_interval_ticks: interval,
        checkpoints_retained: 100,
        journal: JournalConfig {
            segment_bytes_max: 64 * 1024,
        },
    };
    let world = DurableWorld::create(
        Arc::new(DiskStorage),
        dir.clone(),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        config,
    )
    .unwrap();
    let mut built = Built {
        _root: root,
        dir,
        roots: vec![world.roots()],
        inputs: Vec::new(),
        seed,
        config,
    };
    run(&mut built, world, ticks);
    built
}

/// Opens the world again and runs `ticks` more ticks.
pub fn extend(built: &mut Built, ticks: Tick) {
    let fixture = fixture();
    let (world, _) = DurableWorld::open(
        Arc::new(DiskStorage),
        built.dir.clone(),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        built.config,
    )
    .unwrap();
    run(built, world, ticks);
}

fn run(built: &mut Built, mut world: DurableWorld, ticks: Tick) {
    let bots = Bots::new(BOTS);
    for _ in 0..ticks {
        let signed = bots
            .inputs(world.world_mut(), &fixture().engine, built.seed)
            .unwrap();
        for envelope in &signed {
            world.admit(envelope.clone()).unwrap();
        }
        let output = world.execute_tick().unwrap();
        built.roots.push(output.roots);
        built.inputs.push(signed);
    }
    world.close().unwrap();
}

/// The world's operator key (created at its head on first use).
pub fn operator(built: &Built) -> OperatorKeys {
    OperatorKeys::load_or_create(&DiskStorage, &built.dir, built.head().tick)
        .unwrap()
        .0
}

/// Exports ticks `from..=to` of `built`.
pub fn export_window(built: &Built, from: Tick, to: Tick) -> Exported {
    let fixture = fixture();
    let request = ExportRequest {
        storage: &DiskStorage,
        dir: &built.dir,
        id: &world_id(),
        engine: &fixture.engine,
        compiled: fixture.compiled.clone(),
        from_tick: from,
        to_tick: to,
        runtime_version: "0.1.0",
    };
    export(&request, &mut |head| {
        Ok(OperatorKeys::load_or_create(&DiskStorage, &built.dir, head)?.0)
    })
    .unwrap()
}

/// Decodes a bundle (it must be well formed).
pub fn contents(bytes: &[u8]) -> Bundle {
    decode(bytes).unwrap().bundle
}

/// Re-signs `bundle` with the world's real operator key.
pub fn resign(built: &Built, bundle: &Bundle) -> Vec<u8> {
    let keys = operator(built);
    bundle.sign_and_seal(|digest| keys.sign(Signed::Bundle, digest))
}

/// Signs `bundle` with another key (a forger's).
pub fn forge(bundle: &Bundle, key: &SigningKey) -> Vec<u8> {
    bundle.sign_and_seal(|digest| key.sign(&Signed::Bundle.message(digest)).to_bytes())
}

/// A hash from one byte, for tampering.
pub fn other_hash(byte: u8) -> Hash {
    Hash([byte; 32])
}
