//! Shared fixtures: the 2d-arena package compiled once, runtime roots in
//! the temp directory (removed with their backups when dropped), worlds
//! driven by the package's bots on the real disk, and the library calls
//! every test makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use everarcade_ops::{
    OfflineBackup, OfflineBackupReport, OpsError, RestoreOptions, RestoreReport, RestoreRequest,
    backup_offline, restore,
};
use everarcade_protocol::TickRoots;
use everarcade_store::{DiskStorage, JournalConfig, WorldDir};
pub use everarcade_testkit::arena::arena as fixture;
use everarcade_testkit::bots::Bots;
use everarcade_testkit::temp::TempDir;
pub use everarcade_testkit::world_id;
use everarcade_world::replay::{Context, ReplayOptions, Replayed, Start};
use everarcade_world::{DurableWorld, FrontDoor, WorldConfig, WorldError, bind_package};

/// Bot players.
pub const BOTS: usize = 6;
/// Seed of the bots' choices.
pub const SEED: u64 = 7;

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
    base: TempDir,
}

impl Root {
    /// A fresh, empty root.
    pub fn new() -> Root {
        let base = TempDir::new("ops");
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
    let bots = Bots::new(BOTS);
    for _ in 0..ticks {
        let envelopes = bots
            .inputs(world.world_mut(), &fixture().engine, SEED)
            .expect("bots decide");
        for envelope in envelopes {
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
    bind_package(&DiskStorage, &dir, &fixture.package).expect("bind the package");
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
    backup_offline(&OfflineBackup {
        door: &door(root),
        out,
    })
}

/// The world's front door, on the disk, with the sample package.
pub fn door(root: &Root) -> FrontDoor {
    let fixture = fixture();
    FrontDoor {
        storage: Arc::new(DiskStorage),
        dir: root.dir(),
        id: world_id(),
        engine: fixture.engine.clone(),
        compiled: fixture.compiled.clone(),
    }
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
