//! Shared fixtures: the 2d-arena package compiled once, runtime roots in
//! the temp directory (removed with their backups when dropped), worlds
//! driven by the package's bots on the real disk, and the library calls
//! every test makes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use ed25519_dalek::SigningKey;
use everarcade_engine::{CompiledPackage, Engine};
use everarcade_ops::{
    OfflineBackup, OfflineBackupReport, OpsError, RestoreOptions, RestoreReport, RestoreRequest,
    backup_offline, restore,
};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, PublicKey, TickRoots, WorldId, test_signing_key};
use everarcade_store::{DiskStorage, JournalConfig, WorldDir};
use everarcade_world::replay::{Context, ReplayOptions, Replayed, Start};
use everarcade_world::{DurableWorld, WorldConfig, WorldError, bind_package};

/// The sample package.
pub const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../runtime/games/2d-arena");
/// The world every test uses.
pub const WORLD: &str = "world-001";
/// Bot players.
pub const BOTS: usize = 6;
/// Seed of the bots' choices.
pub const SEED: u64 = 7;

/// The engine and the compiled sample package, shared by every test.
pub struct Fixture {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The package.
    pub package: Package,
    /// Its compilation.
    pub compiled: Arc<CompiledPackage>,
}

/// The fixture, compiled on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let package = Package::load(Path::new(PACKAGE_DIR)).expect("the sample package loads");
        let engine = Arc::new(Engine::new().expect("the engine starts"));
        let compiled = engine.compile(&package).expect("the package compiles");
        Fixture {
            engine,
            package,
            compiled,
        }
    })
}

/// `world-001`.
pub fn world_id() -> WorldId {
    WorldId::new(WORLD).expect("a valid id")
}

/// Checkpoints every 10 ticks, all kept.
pub fn config() -> WorldConfig {
    WorldConfig {
        checkpoint_interval_ticks: 10,
        checkpoints_retained: 100,
        journal: JournalConfig {
            // Small segments, so that backups copy several.
            segment_bytes_max: 8 * 1024,
        },
    }
}

/// A runtime root in the temp directory, removed with `<root>-backups` and
/// any `extra` directories when dropped.
pub struct Root {
    /// `<tmp>/ea-ops-<pid>-<n>/root`.
    pub path: PathBuf,
    base: PathBuf,
}

impl Root {
    /// A fresh, empty root.
    pub fn new() -> Root {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("ea-ops-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("create the test directory");
        Root {
            path: base.join("root"),
            base,
        }
    }

    /// A directory beside the root (removed with it).
    pub fn beside(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    /// The world's directory.
    pub fn dir(&self) -> WorldDir {
        WorldDir::new(&self.path, &world_id())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Opens the world of `root`.
pub fn open(root: &Root) -> Result<DurableWorld, WorldError> {
    let fixture = fixture();
    DurableWorld::open(
        Arc::new(DiskStorage),
        root.dir(),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        config(),
    )
    .map(|(world, _)| world)
}

/// Runs `ticks` ticks of bot inputs on `world`; returns the last roots.
pub fn play(world: &mut DurableWorld, ticks: u64) -> TickRoots {
    let fixture = fixture();
    let keys: Vec<SigningKey> = (0..BOTS)
        .map(|i| test_signing_key(&format!("bot-{i}")))
        .collect();
    let public: Vec<PublicKey> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    for _ in 0..ticks {
        let payloads = world
            .world_mut()
            .bot_payloads(&fixture.engine, &public, SEED)
            .expect("bots decide");
        for (bot, payload) in payloads.into_iter().enumerate() {
            let Some(payload) = payload else { continue };
            let last = world.world().nonces().get(&public[bot]).copied();
            let envelope = Envelope::sign(&world_id(), &keys[bot], last.unwrap_or(0) + 1, payload);
            world.admit(envelope).expect("a bot input is admitted");
        }
        world.execute_tick().expect("a tick executes");
    }
    world.roots()
}

/// Creates the world in `root` and plays `ticks` ticks; returns the roots.
pub fn make_world(root: &Root, ticks: u64) -> TickRoots {
    let fixture = fixture();
    let dir = root.dir();
    std::fs::create_dir_all(dir.path()).expect("create the world directory");
    bind_package(&dir, &fixture.package).expect("bind the package");
    let mut world = DurableWorld::create(
        Arc::new(DiskStorage),
        dir,
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        config(),
    )
    .expect("create the world");
    play(&mut world, ticks);
    world.close().expect("close the world")
}

/// Opens the world, plays `ticks` more ticks and closes it.
pub fn continue_world(root: &Root, ticks: u64) -> TickRoots {
    let mut world = open(root).expect("the world opens");
    play(&mut world, ticks);
    world.close().expect("close the world")
}

/// An offline backup into the folder `out` (default: beside the root).
pub fn backup(root: &Root, out: Option<PathBuf>) -> Result<OfflineBackupReport, OpsError> {
    let fixture = fixture();
    backup_offline(&OfflineBackup {
        dir: &root.dir(),
        id: &world_id(),
        engine: &fixture.engine,
        compiled: &fixture.compiled,
        out,
    })
}

/// Restores `backup` into `root`.
pub fn restore_into(
    root: &Root,
    backup: &Path,
    options: RestoreOptions,
) -> Result<RestoreReport, OpsError> {
    let fixture = fixture();
    restore(&RestoreRequest {
        runtime_root: &root.path,
        id: &world_id(),
        package: &fixture.package,
        engine: &fixture.engine,
        compiled: &fixture.compiled,
        backup,
        options,
    })
}

/// Replay verification from genesis (every signature re-checked).
pub fn replay_verify(root: &Root) -> Result<Replayed, WorldError> {
    let fixture = fixture();
    let dir = root.dir();
    let id = world_id();
    let context = Context {
        storage: &DiskStorage,
        dir: &dir,
        id: &id,
        engine: &fixture.engine,
        compiled: fixture.compiled.clone(),
        schedule: None,
    };
    let options = ReplayOptions {
        start: Start::Genesis,
        stop_after: None,
        verify_signatures: true,
        diff_on_divergence: true,
    };
    everarcade_world::replay::replay(&context, &options, &mut |_| {})
}

/// `verify`'s audit of the world in `root`.
pub fn audit(root: &Root) -> Result<everarcade_world::audit::Audit, WorldError> {
    everarcade_world::audit::audit(&DiskStorage, &root.dir(), &fixture().package)
}

/// Every regular file under `dir`, relative path → bytes.
pub fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().expect("stat");
            if kind.is_dir() {
                walk(&entry.path(), &relative, out);
            } else {
                out.insert(relative, std::fs::read(entry.path()).expect("read"));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// Copies a directory tree (for tampering with a copy of a backup).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for (relative, bytes) in files(from) {
        let path = to.join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create");
        std::fs::write(path, bytes).expect("write");
    }
}
