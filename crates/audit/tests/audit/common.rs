//! Shared fixtures: the 2d-arena package compiled once, durable worlds
//! driven by the package's bots in temporary runtime roots, and helpers to
//! export, re-sign and re-seal bundles.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use ed25519_dalek::{Signer, SigningKey};
use everarcade_audit::bundle::{Bundle, decode};
use everarcade_audit::export::{ExportRequest, Exported, export};
use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, Hash, PublicKey, Tick, TickRoots, WorldId, test_signing_key};
use everarcade_store::journal::JournalConfig;
use everarcade_store::keys::{OperatorKeys, Signed};
use everarcade_store::{DiskStorage, WorldDir};
use everarcade_world::{DurableWorld, WorldConfig, bind_package};

/// The sample package.
pub const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../runtime/games/2d-arena");
/// The world every test creates.
pub const WORLD: &str = "world-001";
/// Bots per match.
pub const BOTS: usize = 4;

/// The engine and the compiled sample package.
pub struct Fixture {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The sample package.
    pub package: Package,
    /// Its compilation.
    pub compiled: Arc<CompiledPackage>,
}

/// Loaded and compiled on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let package = Package::load(Path::new(PACKAGE_DIR)).expect("the sample package loads");
        let engine = Arc::new(Engine::new().expect("the engine starts"));
        let compiled = engine.compile(&package).expect("it compiles");
        Fixture {
            engine,
            package,
            compiled,
        }
    })
}

/// `world-001`.
pub fn world_id() -> WorldId {
    WorldId::new(WORLD).unwrap()
}

/// A temporary directory, removed on drop.
pub struct Temp(pub PathBuf);

impl Temp {
    /// A new empty directory.
    pub fn new(label: &str) -> Temp {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ea-audit-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Temp(path)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
    /// The bots' last nonces.
    nonces: [u64; BOTS],
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
    bind_package(&dir, &fixture.package).unwrap();
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
        nonces: [0; BOTS],
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
    let fixture = fixture();
    let keys: Vec<SigningKey> = (0..BOTS)
        .map(|i| test_signing_key(&format!("bot-{i}")))
        .collect();
    let public: Vec<PublicKey> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    for _ in 0..ticks {
        let payloads = world
            .world_mut()
            .bot_payloads(&fixture.engine, &public, built.seed)
            .unwrap();
        let mut signed = Vec::new();
        for (bot, payload) in payloads.into_iter().enumerate() {
            let Some(payload) = payload else { continue };
            built.nonces[bot] += 1;
            let envelope = Envelope::sign(&world_id(), &keys[bot], built.nonces[bot], payload);
            world.admit(envelope.clone()).unwrap();
            signed.push(envelope);
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

/// A deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform below `bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// A hash from one byte, for tampering.
pub fn other_hash(byte: u8) -> Hash {
    Hash([byte; 32])
}
