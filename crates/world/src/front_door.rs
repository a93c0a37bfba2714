//! The front door: the one way into a world, for its node, every offline
//! command, restore, archive rebuild and the manager.
//!
//! A [`FrontDoor`] is where a world lives (storage, directory, id) and what
//! runs it (engine, compiled package). [`FrontDoor::open`] owns the whole
//! way in, in this order:
//! 1. **exists**: the one rule ([`world_exists`]): the world has a first
//!    journal segment or a checkpoint. An entry that never creates refuses a
//!    missing world here (`world_missing`), before the lock would create its
//!    directory;
//! 2. **lock**: takes the world lock ([`lock_world`], the one helper), or
//!    checks that this process already holds it, or (a world in memory, a
//!    private staging directory) takes none;
//! 3. **incidents**: refuses a world with an unresolved incident
//!    (`incident_unresolved`), when the entry asks;
//! 4. **binding**, through [`Storage`]: an existing world's package must be
//!    the one it runs now (`package_mismatch`), and a missing copy in
//!    `package/` is made; a new world's package is bound
//!    ([`bind_package`]);
//! 5. **runtime version**: when another runtime version last verified the
//!    lineage, it is replayed from genesis ([`ReplayProfile::VerifyFromGenesis`])
//!    before anything else; a divergence records an incident and refuses
//!    (`divergence`);
//! 6. **recover or create**: an existing world is recovered
//!    ([`ReplayProfile::Recovery`], or `recover`'s repairs first); a new one
//!    runs genesis. With incidents on, a divergence during recovery is
//!    recorded as an incident too;
//! 7. **operator keys**, loaded once (or created, when the entry asks), and
//!    set to sign the world's checkpoints.
//!
//! Architecture invariant: a world's state changes only through its node or
//! through a holder of an [`Opened`] world that took (or holds) its lock.
//! Only a world in memory or a private staging directory is entered without
//! the lock.

use std::path::Path;
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_protocol::{Hash, Tick, WorldId};
use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::lock::held_by_this_process;
use everarcade_store::{Storage, StoreError, WorldDir, WorldLock, lock_world};

use crate::binding::{Bound, bind_package, check_binding, copy_absent};
use crate::durable::{DurableWorld, Recovery, WorldConfig};
use crate::error::WorldError;
use crate::incident::{
    Incident, list_incidents, record_incident, record_runtime, verified_runtime,
};
use crate::repair::{Action, repair};
use crate::replay::{Context, ReplayProfile, replay};

/// Where a world lives and what runs it; see the module docs.
#[derive(Clone)]
pub struct FrontDoor {
    /// The file system the world is on (the disk, or a simulated one).
    pub storage: Arc<dyn Storage>,
    /// The world's directory.
    pub dir: WorldDir,
    /// The world id.
    pub id: WorldId,
    /// The engine.
    pub engine: Arc<Engine>,
    /// The package the world runs now, compiled.
    pub compiled: Arc<CompiledPackage>,
}

/// How [`FrontDoor::open`] treats the world lock.
#[derive(Debug)]
pub enum Lock {
    /// Take it ([`lock_world`]); the [`Opened`] world holds it.
    Take,
    /// This process holds it already (taken with [`lock_world`] before,
    /// e.g. to fail fast before compiling, or across several opens); it is
    /// checked, not taken again.
    AlreadyHeld,
    /// No lock: a world in memory, or a private staging directory no other
    /// process can name.
    None,
}

/// Whether [`FrontDoor::open`] may create the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Only an existing world is opened; a missing one is `world_missing`.
    Never,
    /// A missing world is created at genesis (its package bound first).
    IfMissing,
}

/// Which operator key the opened world signs its checkpoints with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// The world's key, if it has one.
    Load,
    /// The world's key, created (at the head tick) if it has none.
    LoadOrCreate,
}

/// How recovery proceeds for an existing world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Recovery as is: a torn tail or corruption refuses.
    Recover,
    /// `recover`: repairs first (torn tail truncated, bad checkpoints
    /// quarantined, each stated), then a recovery that uses no suspect file.
    Repair,
}

/// How one caller enters a world: which steps of [`FrontDoor::open`] apply.
/// Start from a preset ([`Entry::node`], [`Entry::existing`]) and change
/// fields with struct update syntax.
#[derive(Debug)]
pub struct Entry {
    /// The lock.
    pub lock: Lock,
    /// Whether a missing world is created.
    pub create: Create,
    /// Refuse a world with an unresolved incident, and record an incident
    /// when recovery diverges.
    pub incidents: bool,
    /// Replay from genesis first when another runtime version verified the
    /// lineage last; record this runtime's version when creating.
    pub runtime_check: bool,
    /// Recovery as is, or with repairs first.
    pub way: Way,
    /// The operator key.
    pub keys: Keys,
    /// Durability settings of the opened world.
    pub config: WorldConfig,
}

impl Entry {
    /// A node's entry: takes the lock, creates a missing world, refuses
    /// incidents, checks the runtime version, creates the operator key.
    pub fn node(config: WorldConfig) -> Entry {
        Entry {
            lock: Lock::Take,
            create: Create::IfMissing,
            incidents: true,
            runtime_check: true,
            way: Way::Recover,
            keys: Keys::LoadOrCreate,
            config,
        }
    }

    /// An offline command's entry into an existing world: takes the lock,
    /// never creates, loads the operator key if there is one.
    pub fn existing(config: WorldConfig) -> Entry {
        Entry {
            lock: Lock::Take,
            create: Create::Never,
            incidents: false,
            runtime_check: false,
            way: Way::Recover,
            keys: Keys::Load,
            config,
        }
    }
}

/// How the world was entered.
#[derive(Clone, Debug)]
pub enum Arrival {
    /// Created at genesis.
    Created,
    /// Recovered.
    Recovered(Recovery),
    /// Repaired, then recovered.
    Repaired {
        /// The repairs, in order.
        actions: Vec<Action>,
        /// The recovery after them.
        recovery: Recovery,
    },
}

impl Arrival {
    /// The recovery, unless the world was created.
    pub fn recovery(&self) -> Option<&Recovery> {
        match self {
            Arrival::Created => None,
            Arrival::Recovered(recovery) | Arrival::Repaired { recovery, .. } => Some(recovery),
        }
    }
}

/// An open world and what entering it did.
pub struct Opened {
    /// The world.
    pub world: DurableWorld,
    /// The lock, when this entry took it (released on drop).
    pub lock: Option<WorldLock>,
    /// Created, recovered or repaired.
    pub arrival: Arrival,
    /// What binding wrote, when it wrote (a new world, or a missing copy).
    pub bound: Option<Bound>,
    /// The operator key the world signs checkpoints with, if any.
    pub keys: Option<Arc<OperatorKeys>>,
    /// Whether this entry created the operator key.
    pub key_created: bool,
}

/// Each step of [`FrontDoor::open`] as it happens, for logs and notes.
#[derive(Debug)]
pub enum Step<'a> {
    /// The lock was taken; `stale_pid` is a dead holder it took over from.
    LockTaken {
        /// The lock file.
        path: &'a Path,
        /// The pid of a dead holder whose lock was taken over.
        stale_pid: Option<u32>,
    },
    /// Another runtime version verified the lineage last: replaying it from
    /// genesis now.
    VerifyingForNewRuntime {
        /// That version.
        verified_by: &'a str,
    },
    /// The lineage replayed to its recorded roots under this runtime.
    RuntimeVerified {
        /// The head tick replayed to.
        ticks: Tick,
    },
    /// An incident was recorded, and the open refuses.
    IncidentRecorded {
        /// The record.
        path: &'a Path,
        /// The first divergent tick.
        tick: Tick,
        /// `recovery` or `startup replay-verify`.
        detected_by: &'a str,
    },
    /// The world was created at genesis.
    Created {
        /// `C(0)`.
        genesis_root: Hash,
    },
    /// The world was recovered (after any repairs).
    Recovered(&'a Recovery),
    /// The operator key is ready.
    KeyReady {
        /// Its public key, hex.
        public_key: String,
        /// Whether it was created now.
        created: bool,
    },
}

/// Whether a world exists: it has a first journal segment or a checkpoint.
/// A world whose creation was interrupted before its journal began does not
/// exist, and is created again. The one rule every caller uses.
pub fn world_exists(storage: &dyn Storage, dir: &WorldDir) -> Result<bool, WorldError> {
    if storage.exists(&dir.segment(1)) {
        return Ok(true);
    }
    Ok(!list_checkpoints(storage, dir)?.checkpoints.is_empty())
}

/// `world_missing` for `dir`.
pub fn missing(dir: &WorldDir) -> WorldError {
    WorldError::Store(StoreError::Missing {
        path: dir.path().to_path_buf(),
        what: "it has no journal and no checkpoint (it was never created)".into(),
    })
}

impl FrontDoor {
    /// Enters the world; see the module docs for the steps.
    pub fn open(&self, entry: Entry) -> Result<Opened, WorldError> {
        self.open_observed(entry, &mut |_| {})
    }

    /// [`FrontDoor::open`], telling `observe` each step as it happens.
    pub fn open_observed(
        &self,
        entry: Entry,
        observe: &mut dyn FnMut(Step<'_>),
    ) -> Result<Opened, WorldError> {
        let storage = &*self.storage;
        if entry.create == Create::Never && !world_exists(storage, &self.dir)? {
            return Err(missing(&self.dir));
        }
        let lock = self.lock(&entry.lock, observe)?;
        let exists = world_exists(storage, &self.dir)?;
        if !exists && entry.create == Create::Never {
            return Err(missing(&self.dir));
        }
        if entry.incidents {
            self.refuse_incidents()?;
        }
        let package = &self.compiled.package;
        let bound = if exists {
            check_binding(storage, &self.dir, package)?;
            match copy_absent(storage, &self.dir)? {
                true => Some(bind_package(storage, &self.dir, package)?),
                false => None,
            }
        } else {
            Some(bind_package(storage, &self.dir, package)?)
        };
        let (world, arrival) = if exists {
            if entry.runtime_check {
                self.verify_for_new_runtime(observe)?;
            }
            self.recover(&entry, observe)?
        } else {
            self.create(&entry, observe)?
        };
        let mut opened = Opened {
            world,
            lock,
            arrival,
            bound,
            keys: None,
            key_created: false,
        };
        self.load_keys(&entry, &mut opened, observe)?;
        Ok(opened)
    }

    fn lock(
        &self,
        lock: &Lock,
        observe: &mut dyn FnMut(Step<'_>),
    ) -> Result<Option<WorldLock>, WorldError> {
        match lock {
            Lock::Take => {
                let lock = lock_world(&self.dir)?;
                observe(Step::LockTaken {
                    path: lock.path(),
                    stale_pid: lock.stale_pid(),
                });
                Ok(Some(lock))
            }
            Lock::AlreadyHeld => {
                assert!(
                    held_by_this_process(&self.dir)?,
                    "Lock::AlreadyHeld for {}, whose lock this process does not hold",
                    self.dir.path().display()
                );
                Ok(None)
            }
            Lock::None => Ok(None),
        }
    }

    fn refuse_incidents(&self) -> Result<(), WorldError> {
        match list_incidents(&*self.storage, &self.dir)?.pop() {
            Some((path, incident)) => Err(WorldError::Incident {
                path,
                kind: incident.kind,
                tick: incident.tick,
            }),
            None => Ok(()),
        }
    }

    /// Records a divergence as an incident, tells `observe`, and returns
    /// the error to refuse with.
    fn divergence_incident(
        &self,
        error: WorldError,
        detected_by: &str,
        observe: &mut dyn FnMut(Step<'_>),
    ) -> WorldError {
        let WorldError::Divergence(divergence) = error else {
            return error;
        };
        let root = self.compiled.package.root.to_hex();
        let incident = Incident::divergence(&divergence, detected_by, &root);
        match record_incident(&*self.storage, &self.dir, &incident) {
            Ok(path) => observe(Step::IncidentRecorded {
                path: &path,
                tick: divergence.tick,
                detected_by,
            }),
            Err(record_error) => return record_error,
        }
        WorldError::Divergence(divergence)
    }

    /// A binary of another runtime version than the one that last verified
    /// the lineage replay-verifies it from genesis before anything else.
    fn verify_for_new_runtime(&self, observe: &mut dyn FnMut(Step<'_>)) -> Result<(), WorldError> {
        let storage = &*self.storage;
        let verified = verified_runtime(storage, &self.dir)?;
        if verified == crate::RUNTIME_VERSION {
            return Ok(());
        }
        observe(Step::VerifyingForNewRuntime {
            verified_by: &verified,
        });
        let context = self.context();
        let options = ReplayProfile::VerifyFromGenesis.options();
        match replay(&context, &options, &mut |_| {}) {
            Ok(replayed) => {
                let head = replayed.last;
                record_runtime(storage, &self.dir, head.tick, &head.continuity_root)?;
                observe(Step::RuntimeVerified { ticks: head.tick });
                Ok(())
            }
            Err(error) => Err(self.divergence_incident(error, "startup replay-verify", observe)),
        }
    }

    fn recover(
        &self,
        entry: &Entry,
        observe: &mut dyn FnMut(Step<'_>),
    ) -> Result<(DurableWorld, Arrival), WorldError> {
        let (world, arrival) = match entry.way {
            Way::Recover => {
                let opened = DurableWorld::recover(
                    self.storage.clone(),
                    self.dir.clone(),
                    self.id.clone(),
                    self.engine.clone(),
                    self.compiled.clone(),
                    entry.config,
                );
                let (world, recovery) = match opened {
                    Err(error) if entry.incidents => {
                        return Err(self.divergence_incident(error, "recovery", observe));
                    }
                    other => other?,
                };
                (world, Arrival::Recovered(recovery))
            }
            Way::Repair => {
                let repaired = repair(
                    self.storage.clone(),
                    self.dir.clone(),
                    self.id.clone(),
                    self.engine.clone(),
                    self.compiled.clone(),
                    entry.config,
                )?;
                let arrival = Arrival::Repaired {
                    actions: repaired.actions,
                    recovery: repaired.recovery,
                };
                (repaired.world, arrival)
            }
        };
        if let Some(recovery) = arrival.recovery() {
            observe(Step::Recovered(recovery));
        }
        Ok((world, arrival))
    }

    fn create(
        &self,
        entry: &Entry,
        observe: &mut dyn FnMut(Step<'_>),
    ) -> Result<(DurableWorld, Arrival), WorldError> {
        let world = DurableWorld::create(
            self.storage.clone(),
            self.dir.clone(),
            self.id.clone(),
            self.engine.clone(),
            self.compiled.clone(),
            entry.config,
        )?;
        let genesis_root = world.genesis().genesis_root;
        observe(Step::Created { genesis_root });
        if entry.runtime_check {
            record_runtime(&*self.storage, &self.dir, 0, &genesis_root)?;
        }
        Ok((world, Arrival::Created))
    }

    fn load_keys(
        &self,
        entry: &Entry,
        opened: &mut Opened,
        observe: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), WorldError> {
        let storage = &*self.storage;
        let (keys, created) = match entry.keys {
            Keys::Load => match OperatorKeys::load(storage, &self.dir)? {
                Some(keys) => (keys, false),
                None => return Ok(()),
            },
            Keys::LoadOrCreate => {
                let head = opened.world.roots().tick;
                OperatorKeys::load_or_create(storage, &self.dir, head)?
            }
        };
        observe(Step::KeyReady {
            public_key: keys.public_key_hex(),
            created,
        });
        let keys = Arc::new(keys);
        opened.world.set_operator(keys.clone());
        opened.keys = Some(keys);
        opened.key_created = created;
        Ok(())
    }

    /// The replay context of this world under its own lineage.
    pub fn context(&self) -> Context<'_> {
        Context {
            storage: &*self.storage,
            dir: &self.dir,
            id: &self.id,
            engine: &self.engine,
            compiled: self.compiled.clone(),
            schedule: None,
        }
    }
}
