//! A durable world: the engine's [`World`] whose every admitted input and
//! executed tick is journaled, with checkpoints every N ticks, recovered on
//! open from the newest checkpoint that verifies plus the journal after it.
//!
//! The write path, per tick:
//! 1. [`DurableWorld::admit`] checks an input (world, size, nonce, signature,
//!    room in the tick) and queues it;
//! 2. [`DurableWorld::commit_inputs`] journals the queued inputs as one
//!    record and fdatasyncs: from then on they are acknowledged;
//! 3. [`DurableWorld::execute_tick`] journals any inputs still queued,
//!    executes the tick over every acknowledged input, journals the tick
//!    record, commits, and takes a checkpoint when one is due.
//!
//! Any failure after the in-memory world has moved poisons this value: the
//! memory may be ahead of the disk, so the only way on is to reopen, which
//! recovers from what is durable.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine, TickOutput, World};
use everarcade_protocol::{Envelope, EnvelopeError, TickRoots, Verified, WorldId};
use everarcade_store::checkpoint::{prune_checkpoints, write_checkpoint_of};
use everarcade_store::journal::{GenesisRecord, InputsRecord, JournalConfig, TickRecord};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::meta::{GenesisFile, META_FORMAT, StatusFile, write_json};
use everarcade_store::{JournalWriter, Record, Storage, StoreError, WorldDir};

use crate::error::WorldError;
use crate::replay::{Context, ReplayProfile, StartedFrom, replay};

/// Durability settings.
#[derive(Clone, Copy, Debug)]
pub struct WorldConfig {
    /// A checkpoint is taken after every tick divisible by this. Default 1000;
    /// 0 turns periodic checkpoints off.
    pub checkpoint_interval_ticks: u64,
    /// Checkpoints kept; older ones are removed (the journal is whole, so they
    /// are redundant). At least 1. Default 3.
    pub checkpoints_retained: usize,
    /// Journal settings.
    pub journal: JournalConfig,
}

impl Default for WorldConfig {
    fn default() -> WorldConfig {
        WorldConfig {
            checkpoint_interval_ticks: 1000,
            checkpoints_retained: 3,
            journal: JournalConfig::default(),
        }
    }
}

/// What opening a world did to recover it.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// Where replay began.
    pub started_from: StartedFrom,
    /// Checkpoints passed over, with the reason.
    pub skipped_checkpoints: Vec<(PathBuf, String)>,
    /// Ticks replayed after the starting point.
    pub ticks_replayed: u64,
    /// Acknowledged inputs found after the last tick, queued for the next one.
    pub pending_inputs: usize,
    /// The recovered roots; they equal the journal's record of them.
    pub roots: TickRoots,
}

/// What a checkpoint did.
#[derive(Clone, Debug)]
pub struct CheckpointTaken {
    /// The file written.
    pub path: PathBuf,
    /// Its tick.
    pub tick: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Older checkpoints removed by retention.
    pub pruned: Vec<PathBuf>,
}

/// See the module docs.
pub struct DurableWorld {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) dir: WorldDir,
    pub(crate) engine: Arc<Engine>,
    pub(crate) world: World,
    pub(crate) writer: JournalWriter,
    pub(crate) config: WorldConfig,
    pub(crate) genesis: GenesisRecord,
    /// Admitted, not yet journaled.
    pub(crate) queued: Vec<Envelope>,
    /// Journaled for the next tick (durable once committed).
    pub(crate) journaled: Vec<Envelope>,
    pub(crate) roots: TickRoots,
    pub(crate) poisoned: Option<String>,
    /// Whether records were journaled ahead of execution to catch up from
    /// a checkpoint (`crate::catch_up`): memory is behind the journal
    /// until the checkpoint is installed and the world reopened.
    pub(crate) ahead: bool,
    /// Signs checkpoints when the world has an operator key.
    pub(crate) operator: Option<Arc<OperatorKeys>>,
}

/// What a node records in `status.json` about how to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listening {
    /// Whether admission is open.
    pub admission_open: bool,
    /// The addresses it listens on (`host:port`).
    pub addresses: Vec<String>,
    /// The certificate chain it serves TLS with (absolute path), if any.
    pub tls_cert: Option<String>,
}

impl DurableWorld {
    /// Creates a new world: runs genesis, writes `genesis.json` and the
    /// journal's first segment. The package must already be bound. A
    /// low-level step: commands and nodes create a world through
    /// [`crate::front_door::FrontDoor::open`].
    pub fn create(
        storage: Arc<dyn Storage>,
        dir: WorldDir,
        id: WorldId,
        engine: Arc<Engine>,
        compiled: Arc<CompiledPackage>,
        config: WorldConfig,
    ) -> Result<DurableWorld, WorldError> {
        if crate::front_door::world_exists(&*storage, &dir)? {
            return Err(WorldError::Exists {
                path: dir.path().to_path_buf(),
            });
        }
        for directory in dir.directories() {
            storage
                .create_dir_all(&directory)
                .map_err(StoreError::io("create", &directory))?;
        }
        let (mut world, output) = World::genesis(&engine, id.clone(), compiled.clone())?;
        let package = &compiled.package;
        let genesis = GenesisRecord {
            world: id,
            package_root: package.root,
            profile_hash: package.profile().hash(),
            genesis_root: output.genesis_root,
            state_root: output.state_root,
            receipt: output.receipt,
        };
        write_json(&*storage, &dir.genesis(), &genesis_file(&genesis))?;
        let writer =
            JournalWriter::create(storage.clone(), &dir.journal(), &genesis, config.journal)?;
        let empty = everarcade_protocol::list_root(&[]);
        let roots = TickRoots {
            tick: 0,
            input_root: empty,
            receipt_root: empty,
            state_root: world.state_root(),
            continuity_root: world.continuity_root(),
        };
        let mut durable = DurableWorld {
            storage,
            dir,
            engine,
            world,
            writer,
            config,
            genesis,
            queued: Vec::new(),
            journaled: Vec::new(),
            roots,
            poisoned: None,
            ahead: false,
            operator: None,
        };
        durable.write_status("stopped")?;
        Ok(durable)
    }

    /// Opens an existing world: recovery from the newest checkpoint that
    /// verifies plus the journal after it; the recovered roots must equal the
    /// recorded ones. A torn tail or any corruption refuses to open.
    ///
    /// A low-level step: it checks no lock, binding or incident, and loads
    /// the operator key if there is one. Commands and nodes enter a world
    /// through [`crate::front_door::FrontDoor::open`].
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: WorldDir,
        id: WorldId,
        engine: Arc<Engine>,
        compiled: Arc<CompiledPackage>,
        config: WorldConfig,
    ) -> Result<(DurableWorld, Recovery), WorldError> {
        let (mut durable, recovery) =
            DurableWorld::recover(storage, dir, id, engine, compiled, config)?;
        // A world that has an operator key signs every checkpoint it writes.
        if let Some(keys) = OperatorKeys::load(&*durable.storage, &durable.dir)? {
            durable.operator = Some(Arc::new(keys));
        }
        Ok((durable, recovery))
    }

    /// [`DurableWorld::open`] without the operator key: the front door
    /// loads it once, as its entry asks.
    pub(crate) fn recover(
        storage: Arc<dyn Storage>,
        dir: WorldDir,
        id: WorldId,
        engine: Arc<Engine>,
        compiled: Arc<CompiledPackage>,
        config: WorldConfig,
    ) -> Result<(DurableWorld, Recovery), WorldError> {
        let context_package = compiled.clone();
        let context = Context {
            storage: &*storage,
            dir: &dir,
            id: &id,
            engine: &engine,
            compiled,
            schedule: None,
        };
        let options = ReplayProfile::Recovery.options();
        let replayed = replay(&context, &options, &mut |_| {})?;
        if let Some(torn) = &replayed.torn {
            return Err(torn.to_error().into());
        }
        let writer = JournalWriter::resume(
            storage.clone(),
            &dir.journal(),
            replayed.genesis.genesis_root,
            &replayed.end,
            config.journal,
        )?;
        let recovery = Recovery {
            started_from: replayed.started_from,
            skipped_checkpoints: replayed.skipped_checkpoints,
            ticks_replayed: replayed.ticks_replayed,
            pending_inputs: replayed.pending.len(),
            roots: replayed.last,
        };
        let mut world = replayed.world;
        // The current package runs every tick from here on (a transition
        // recorded by an upgrade starts at the tick after the head).
        world.set_package(context_package);
        let durable = DurableWorld {
            storage,
            dir,
            engine,
            world,
            writer,
            config,
            genesis: replayed.genesis,
            queued: Vec::new(),
            journaled: replayed.pending,
            roots: replayed.last,
            poisoned: None,
            ahead: false,
            operator: None,
        };
        Ok((durable, recovery))
    }

    /// Signs checkpoints from now on with `keys`.
    pub fn set_operator(&mut self, keys: Arc<OperatorKeys>) {
        self.operator = Some(keys);
    }

    /// The operator key that signs this world's checkpoints, if it has one.
    pub fn operator(&self) -> Option<&Arc<OperatorKeys>> {
        self.operator.as_ref()
    }

    /// The engine world (read only).
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The engine world, for reads that fold the state root.
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The world directory.
    pub fn dir(&self) -> &WorldDir {
        &self.dir
    }

    /// The genesis record.
    pub fn genesis(&self) -> &GenesisRecord {
        &self.genesis
    }

    /// The roots of the last executed tick.
    pub fn roots(&self) -> TickRoots {
        self.roots
    }

    /// Where the durable journal ends: `(segment index, durable bytes in it)`.
    pub fn journal_end(&self) -> (u64, u64) {
        self.writer.durable_end()
    }

    /// The storage this world writes through.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Inputs admitted for the next tick (queued and journaled).
    pub fn pending_inputs(&self) -> usize {
        self.queued.len() + self.journaled.len()
    }

    /// Checks an input and queues it for the next tick. Not acknowledged
    /// until [`DurableWorld::commit_inputs`] (or the next tick) returns `Ok`.
    pub fn admit(&mut self, envelope: Envelope) -> Result<(), EnvelopeError> {
        let tick = self.world.tick() + 1;
        let limit = self.world.limits().inputs_per_tick;
        if self.pending_inputs() >= limit as usize {
            return Err(EnvelopeError::TickFull { tick, limit });
        }
        self.world.admit(&envelope)?;
        self.queued.push(envelope);
        Ok(())
    }

    /// [`DurableWorld::admit`] for an envelope whose signature was checked
    /// already (off this thread). Returns its position in the next tick.
    pub fn admit_verified(&mut self, verified: Verified) -> Result<u32, EnvelopeError> {
        let tick = self.world.tick() + 1;
        let limit = self.world.limits().inputs_per_tick;
        let seq = self.pending_inputs();
        if seq >= limit as usize {
            return Err(EnvelopeError::TickFull { tick, limit });
        }
        self.world.admit_verified(&verified)?;
        self.queued.push(verified.into_envelope());
        Ok(seq as u32)
    }

    /// Why this world refuses work, if it does: the first failure that
    /// poisoned it.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Journals the queued inputs and fdatasyncs: they are journaled when
    /// this returns `Ok`. Returns how many were journaled.
    pub fn commit_inputs(&mut self) -> Result<usize, WorldError> {
        self.check()?;
        let count = self.queued.len();
        self.journal_queued()?;
        if let Err(error) = self.writer.commit() {
            return Err(self.poison(error.into()));
        }
        Ok(count)
    }

    /// Executes the next tick over every admitted input; see the module docs.
    pub fn execute_tick(&mut self) -> Result<TickOutput, WorldError> {
        self.check()?;
        self.journal_queued()?;
        let inputs = std::mem::take(&mut self.journaled);
        let output = match self.world.execute_tick(&self.engine, &inputs) {
            Ok(output) => output,
            Err(error) => return Err(self.poison(error.into())),
        };
        let record = Record::Tick(TickRecord {
            roots: output.roots,
            input_count: inputs.len() as u32,
            receipts: output.receipts.clone(),
        });
        if let Err(error) = self
            .writer
            .append(&record)
            .and_then(|_| self.writer.commit())
        {
            return Err(self.poison(error.into()));
        }
        self.roots = output.roots;
        let interval = self.config.checkpoint_interval_ticks;
        if interval > 0 && output.roots.tick % interval == 0 {
            self.checkpoint()?;
        }
        Ok(output)
    }

    /// Takes a checkpoint of the current tick now. Refused while inputs are
    /// admitted for the next tick (their nonces are not part of this tick).
    pub fn checkpoint(&mut self) -> Result<CheckpointTaken, WorldError> {
        self.check()?;
        if self.pending_inputs() > 0 {
            return Err(WorldError::Busy(format!(
                "{} inputs are admitted for tick {}; checkpoint after it",
                self.pending_inputs(),
                self.world.tick() + 1
            )));
        }
        let tick = self.world.tick();
        let roots = [
            &self.world.genesis_root(),
            &self.world.continuity_root(),
            &self.world.state_root(),
        ];
        let retained = self.config.checkpoints_retained.max(1);
        let operator = self.operator.clone();
        let written = write_checkpoint_of(
            &*self.storage,
            &self.dir,
            tick,
            roots,
            self.world.state(),
            self.world.nonces(),
            operator.as_deref(),
        )
        .and_then(|written| {
            prune_checkpoints(&*self.storage, &self.dir, retained).map(|pruned| (written, pruned))
        });
        // A failed fsync is never retried (the kernel may have dropped what
        // it was asked to keep), so a failure here poisons too.
        let (written, pruned) = match written {
            Ok(written) => written,
            Err(error) => return Err(self.poison(error.into())),
        };
        Ok(CheckpointTaken {
            path: written.path,
            tick,
            bytes: written.bytes,
            pruned,
        })
    }

    /// Commits anything queued and writes `status.json` as stopped.
    pub fn close(mut self) -> Result<TickRoots, WorldError> {
        self.commit_inputs()?;
        self.write_status("stopped")?;
        Ok(self.roots)
    }

    /// Writes `status.json` with this process's view.
    pub fn write_status(&mut self, state: &str) -> Result<(), WorldError> {
        self.write_live_status(state, &Listening::default())
    }

    /// Writes `status.json` as a node sees it: state, admission and where
    /// it listens.
    pub fn write_live_status(
        &mut self,
        state: &str,
        listening: &Listening,
    ) -> Result<(), WorldError> {
        self.check()?;
        let checkpoint_tick =
            everarcade_store::checkpoint::list_checkpoints(&*self.storage, &self.dir)?
                .checkpoints
                .last()
                .map(|(tick, _)| *tick);
        let status = StatusFile {
            format: META_FORMAT,
            state: state.to_string(),
            pid: (state == "running").then(std::process::id),
            head_tick: self.roots.tick,
            state_root: self.roots.state_root.to_hex(),
            input_root: self.roots.input_root.to_hex(),
            receipt_root: self.roots.receipt_root.to_hex(),
            continuity_root: self.roots.continuity_root.to_hex(),
            admission: if listening.admission_open {
                "open"
            } else {
                "closed"
            }
            .into(),
            addresses: listening.addresses.clone(),
            checkpoint_tick,
            tls_cert: listening.tls_cert.clone(),
        };
        write_json(&*self.storage, &self.dir.status(), &status)?;
        Ok(())
    }

    fn journal_queued(&mut self) -> Result<(), WorldError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let envelopes = std::mem::take(&mut self.queued);
        let record = Record::Inputs(InputsRecord {
            tick: self.world.tick() + 1,
            envelopes,
        });
        if let Err(error) = self.writer.append(&record) {
            return Err(self.poison(error.into()));
        }
        let Record::Inputs(inputs) = record else {
            unreachable!()
        };
        self.journaled.extend(inputs.envelopes);
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<(), WorldError> {
        match &self.poisoned {
            Some(reason) => Err(WorldError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&mut self, error: WorldError) -> WorldError {
        self.poisoned = Some(error.to_string());
        error
    }
}

/// `genesis.json` for a genesis record.
pub fn genesis_file(genesis: &GenesisRecord) -> GenesisFile {
    GenesisFile {
        format: META_FORMAT,
        world: genesis.world.to_string(),
        package_root: genesis.package_root.to_hex(),
        profile_hash: genesis.profile_hash.to_hex(),
        genesis_root: genesis.genesis_root.to_hex(),
        state_root: genesis.state_root.to_hex(),
        protocol_version: everarcade_protocol::PROTOCOL_VERSION,
        runtime_version: crate::RUNTIME_VERSION.to_string(),
    }
}
