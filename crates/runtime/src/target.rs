//! The world a command names: its id, directory and package, validated once,
//! and the one mapping from library errors to exit codes.

use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;
use everarcade_protocol::{Hash, WorldId};
use everarcade_store::{DiskStorage, Storage, StoreError, WorldDir, WorldLock, lock_world};
use everarcade_world::{
    Entry, ErrorClass, FrontDoor, Opened, Step, WorldConfig, WorldError, bound_package,
    check_binding, world_exists,
};

use crate::WorldArgs;
use crate::exit::{DIVERGENCE, FAILURE, Failure, INTEGRITY, PACKAGE, USAGE};

/// A validated world target.
pub struct Target {
    /// The world id.
    pub id: WorldId,
    /// Its directory.
    pub dir: WorldDir,
    /// The package given on the command line, else the world's bound copy.
    pub package: Package,
}

/// A world named on the command line before its package is loaded: enough
/// to find its node.
pub struct WorldRef {
    /// The world id.
    pub id: WorldId,
    /// Its directory.
    pub dir: WorldDir,
}

impl WorldRef {
    /// Validates the id.
    pub fn resolve(args: &WorldArgs) -> Result<WorldRef, Failure> {
        let id = WorldId::new(&args.world_id)
            .map_err(|e| Failure::new(USAGE, "invalid_world_id", e.to_string()))?;
        let dir = WorldDir::new(&args.runtime_root, &id);
        Ok(WorldRef { id, dir })
    }

    /// Whether the world has been created: the front door's one rule
    /// ([`world_exists`]). A directory that cannot be read counts as a
    /// world, so that opening it reports why.
    pub fn exists(&self) -> bool {
        world_exists(&DiskStorage, &self.dir).unwrap_or(true)
    }

    /// Refuses a world that has not been created.
    pub fn require_exists(&self) -> Result<(), Failure> {
        match self.exists() {
            true => Ok(()),
            false => Err(self.missing()),
        }
    }

    /// Loads the package given on the command line, if any, and refuses it
    /// when the world on disk runs another.
    pub fn given_package(&self, args: &WorldArgs) -> Result<Option<Package>, Failure> {
        let Some(path) = args.package_given() else {
            return Ok(None);
        };
        let package = load_package(path)?;
        if self.exists() {
            check_binding(&DiskStorage, &self.dir, &package).map_err(world_failure)?;
        }
        Ok(Some(package))
    }

    /// The world with `given`, else with the package it runs now (its own
    /// bound copy, which needs the world to exist).
    pub fn with_package(self, given: Option<Package>) -> Result<Target, Failure> {
        let package = match given {
            Some(package) => package,
            None => {
                self.require_exists()?;
                bound_package(&self.dir).map_err(world_failure)?
            }
        };
        Ok(Target {
            id: self.id,
            dir: self.dir,
            package,
        })
    }

    fn missing(&self) -> Failure {
        Failure::new(
            FAILURE,
            "world_missing",
            format!(
                "no world {} under {} (create it with `simulate` or `start`, giving its package)",
                self.id,
                self.dir.runtime_root().display()
            ),
        )
    }
}

impl Target {
    /// Validates the id and loads the package given, or, when none is
    /// given (or `-`), the package the world runs now from its own copy.
    pub fn resolve(args: &WorldArgs) -> Result<Target, Failure> {
        let world = WorldRef::resolve(args)?;
        let given = args.package_given().map(load_package).transpose()?;
        world.with_package(given)
    }

    /// Whether the world has been created (it has a journal).
    pub fn exists(&self) -> bool {
        self.world_ref().exists()
    }

    /// The world without its package.
    pub fn world_ref(&self) -> WorldRef {
        WorldRef {
            id: self.id.clone(),
            dir: self.dir.clone(),
        }
    }

    /// Refuses a world that does not exist, or a package not bound at its genesis.
    pub fn require_bound(&self) -> Result<(), Failure> {
        self.world_ref().require_exists()?;
        check_binding(&DiskStorage, &self.dir, &self.package).map_err(world_failure)
    }

    /// An engine and the compiled package.
    pub fn compile(&self) -> Result<(Arc<Engine>, Arc<CompiledPackage>), Failure> {
        let engine = Engine::new().map_err(|e| Failure::new(FAILURE, e.code(), e.to_string()))?;
        let compiled = engine
            .compile(&self.package)
            .map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))?;
        Ok((Arc::new(engine), compiled))
    }

    /// The world's front door on the disk, its package compiled.
    pub fn door(&self) -> Result<FrontDoor, Failure> {
        let (engine, compiled) = self.compile()?;
        Ok(FrontDoor {
            storage: disk(),
            dir: self.dir.clone(),
            id: self.id.clone(),
            engine,
            compiled,
        })
    }

    /// Takes the world lock ([`lock_world`]) for a command that holds it
    /// across several entries (`Lock::AlreadyHeld`); says so on stderr when
    /// it takes over a stale lock.
    pub fn lock(&self) -> Result<WorldLock, Failure> {
        let lock = lock_world(&self.dir).map_err(store_failure)?;
        note_stale_lock(lock.stale_pid());
        Ok(lock)
    }
}

/// Enters a world through its front door; says on stderr when the lock
/// taken was a dead process's.
pub fn open(door: &FrontDoor, entry: Entry) -> Result<Opened, Failure> {
    let mut observe = |step: Step<'_>| {
        if let Step::LockTaken { stale_pid, .. } = step {
            note_stale_lock(stale_pid);
        }
    };
    door.open_observed(entry, &mut observe)
        .map_err(world_failure)
}

fn note_stale_lock(stale_pid: Option<u32>) {
    if let Some(pid) = stale_pid {
        eprintln!("note: took over a stale world lock left by pid {pid}, which no longer holds it");
    }
}

/// Loads a package directory.
fn load_package(path: &std::path::Path) -> Result<Package, Failure> {
    Package::load(path).map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))
}

/// `package_mismatch`: the world (or its node) runs `bound`, not the
/// package given.
pub fn package_mismatch(bound: Hash, given: Hash) -> Failure {
    world_failure(WorldError::PackageMismatch { bound, given })
}

/// The disk, shared.
pub fn disk() -> Arc<dyn Storage> {
    Arc::new(DiskStorage)
}

/// Durability settings from the command line.
#[derive(clap::Args, Clone, Copy)]
pub struct DurabilityArgs {
    /// Take a checkpoint after every tick divisible by this (0: only on demand).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_interval: u64,
    /// Checkpoints to keep (at least 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoints_retained: u64,
}

impl DurabilityArgs {
    /// The defaults the flags have.
    pub fn defaults() -> DurabilityArgs {
        DurabilityArgs {
            checkpoint_interval: 1000,
            checkpoints_retained: 3,
        }
    }

    /// As a world config.
    pub fn config(&self) -> WorldConfig {
        WorldConfig {
            checkpoint_interval_ticks: self.checkpoint_interval,
            checkpoints_retained: self.checkpoints_retained as usize,
            ..WorldConfig::default()
        }
    }
}

/// What to do when a world is bound to another package (any edit to a
/// package, a README included, changes its root).
pub const PACKAGE_MISMATCH_REMEDY: &str = "\nremedy: a world keeps the package it was created with (any change to a package file changes its root). \
To try the changed package, use a new world id, or `simulate … --amnesia` for an experiment that writes nothing; \
to move this world to it under the semver rule, `upgrade <runtime-root> <world-id> <current package> --to <pkg>`";

/// The exit status and code of a world error.
pub fn world_failure(error: WorldError) -> Failure {
    let exit = match error.class() {
        ErrorClass::Operational => FAILURE,
        ErrorClass::Integrity => INTEGRITY,
        ErrorClass::Divergence => DIVERGENCE,
        ErrorClass::Package => PACKAGE,
    };
    let mut message = error.to_string();
    if let WorldError::Divergence(divergence) = &error
        && let Some(diff) = &divergence.diff
    {
        message.push_str(&format!(
            "\nstate diff at tick {} (what replay changed): {} added, {} changed, {} removed",
            divergence.tick, diff.counts[0], diff.counts[1], diff.counts[2]
        ));
        for (key, value) in &diff.added {
            message.push_str(&format!("\n  + {key} = {value}"));
        }
        for (key, old, new) in &diff.changed {
            message.push_str(&format!("\n  ~ {key}: {old} -> {new}"));
        }
        for (key, value) in &diff.removed {
            message.push_str(&format!("\n  - {key} (was {value})"));
        }
    }
    if let WorldError::PackageMismatch { .. } = &error {
        message.push_str(PACKAGE_MISMATCH_REMEDY);
    }
    if let WorldError::Store(StoreError::Corrupt { .. }) = &error {
        message.push_str(
            "\nremedy: stop, preserve the world directory, and restore from a backup; `recover` does not repair corruption inside the journal",
        );
    }
    Failure::new(exit, error.code(), message)
}

/// The exit status and code of a store error.
pub fn store_failure(error: StoreError) -> Failure {
    world_failure(WorldError::Store(error))
}
