//! Shared fixtures: the 2d-arena package compiled once, a seeded random
//! generator, a *plan* (a clean reference match: every tick's signed bot
//! inputs, where the driver group-commits, and the roots each tick must
//! reach), a driver that runs a plan on a durable world and records which
//! inputs were acknowledged, and helpers that read the journal back and
//! forge it.
//!
//! Everything is deterministic: a plan is a function of its seed, and a
//! durable run of a plan performs the same file operations (so the same
//! syncs) every time, which is what lets a crash test name "sync number n".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use everarcade_engine::CompiledPackage;
use everarcade_protocol::{Envelope, Hash, Tick, TickRoots};
use everarcade_store::journal::{
    JournalConfig, RECORD_HEADER_BYTES, RawRecord, SegmentHeader, encode_record,
};
use everarcade_store::{JournalReader, Record, SimStorage, Storage, StoreError, WorldDir};
pub use everarcade_testkit::arena::arena as fixture;
use everarcade_testkit::bots::Bots;
pub use everarcade_testkit::rng::SplitMix64 as Rng;
pub use everarcade_testkit::world_id;
use everarcade_world::repair::Repair;
use everarcade_world::replay::{Context, ReplayOptions, Replayed, Start};
use everarcade_world::{DurableWorld, Recovery, WorldConfig, WorldError};

/// Bot players per match.
pub const BOTS: usize = 8;
/// The runtime root on the simulated disk.
pub const RUNTIME_ROOT: &str = "/sim";
/// Checkpoint interval of [`config`].
pub const CHECKPOINT_INTERVAL_TICKS: u64 = 7;
/// One in this many admitted inputs is followed by a group commit.
pub const COMMIT_ONE_IN: u64 = 4;

/// The world's directory on the simulated disk.
pub fn world_dir() -> WorldDir {
    WorldDir::new(Path::new(RUNTIME_ROOT), &world_id())
}

/// Small settings so that a short match rolls segments and prunes checkpoints.
pub fn config() -> WorldConfig {
    WorldConfig {
        checkpoint_interval_ticks: CHECKPOINT_INTERVAL_TICKS,
        checkpoints_retained: 2,
        journal: JournalConfig {
            segment_bytes_max: 16 * 1024,
        },
    }
}

/// The simulated disk as the world sees it (clones share the disk).
pub fn shared(storage: &SimStorage) -> Arc<dyn Storage> {
    Arc::new(storage.clone())
}

/// Creates the world on `storage`.
pub fn create(storage: &SimStorage) -> Result<DurableWorld, WorldError> {
    let fixture = fixture();
    DurableWorld::create(
        shared(storage),
        world_dir(),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        config(),
    )
}

/// Opens the world on `storage` with the sample package.
pub fn open(storage: &SimStorage) -> Result<(DurableWorld, Recovery), WorldError> {
    open_with(storage, fixture().compiled.clone())
}

/// Opens the world on `storage` with `compiled`.
pub fn open_with(
    storage: &SimStorage,
    compiled: Arc<CompiledPackage>,
) -> Result<(DurableWorld, Recovery), WorldError> {
    DurableWorld::open(
        shared(storage),
        world_dir(),
        world_id(),
        fixture().engine.clone(),
        compiled,
        config(),
    )
}

/// Runs `recover` on `storage`.
pub fn repair(storage: &SimStorage) -> Result<Repair, WorldError> {
    let fixture = fixture();
    everarcade_world::repair::repair(
        shared(storage),
        world_dir(),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        config(),
    )
}

/// Replays the whole journal from genesis, re-checking every signature.
pub fn replay_from_genesis(storage: &SimStorage) -> Result<Replayed, WorldError> {
    let fixture = fixture();
    let dir = world_dir();
    let id = world_id();
    let context = Context {
        storage: storage as &dyn Storage,
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

/// Runs `verify` on `storage`.
pub fn audit(storage: &SimStorage) -> Result<everarcade_world::audit::Audit, WorldError> {
    everarcade_world::audit::audit(storage, &world_dir(), &fixture().package)
}

/// One planned input and whether the driver group-commits right after
/// admitting it.
#[derive(Clone)]
pub struct Step {
    /// The signed input.
    pub envelope: Envelope,
    /// Call `commit_inputs` after admitting it.
    pub commit_after: bool,
}

/// A clean reference match; see the module docs.
pub struct Plan {
    /// The seed it was made from (bots and commit points).
    pub seed: u64,
    /// `ticks[t - 1]`: the inputs of tick `t`, in admission order.
    pub ticks: Vec<Vec<Step>>,
    /// `roots[t]`: the roots after tick `t` (`roots[0]`: genesis).
    pub roots: Vec<TickRoots>,
    /// Syncs a clean durable run of the plan performs, create to close.
    pub syncs: u64,
    /// The disk the clean run left (closed, everything durable).
    pub disk: SimStorage,
}

impl Plan {
    /// The last tick.
    pub fn last_tick(&self) -> Tick {
        self.ticks.len() as Tick
    }

    /// Number of inputs over the whole match.
    pub fn inputs(&self) -> usize {
        self.ticks.iter().map(Vec::len).sum()
    }

    /// A fresh copy of the clean run's disk.
    pub fn disk_copy(&self) -> SimStorage {
        self.disk.reboot(everarcade_store::Reboot::LoseUnsynced)
    }
}

/// Makes the plan of `ticks` ticks for `seed` by running it, durably, on a
/// fresh simulated disk.
pub fn make_plan(seed: u64, ticks: Tick) -> Plan {
    let bots = Bots::new(BOTS);
    let disk = SimStorage::new();
    let mut world = create(&disk).expect("create on a clean disk");
    let mut rng = Rng::new(seed);
    let mut plan = Plan {
        seed,
        ticks: Vec::new(),
        roots: vec![world.roots()],
        syncs: 0,
        disk: disk.clone(),
    };
    let mut driver = Driver::new();
    for _ in 0..ticks {
        let envelopes = bots
            .inputs(world.world_mut(), &fixture().engine, seed)
            .expect("bots decide");
        let steps: Vec<Step> = envelopes
            .into_iter()
            .map(|envelope| Step {
                envelope,
                commit_after: rng.below(COMMIT_ONE_IN) == 0,
            })
            .collect();
        let roots = match driver.tick(&mut world, &steps) {
            Ok(roots) => roots,
            Err(halt) => panic!("seed {seed}: the clean run failed: {halt:?}"),
        };
        plan.ticks.push(steps);
        plan.roots.push(roots);
    }
    world.close().expect("close the clean run");
    plan.syncs = disk.syncs();
    plan
}

/// Why a driven run stopped early.
#[derive(Debug)]
pub enum Halt {
    /// The operation budget ran out (the process "died").
    Stopped,
    /// A world call failed.
    Failed(WorldError),
}

impl From<WorldError> for Halt {
    fn from(error: WorldError) -> Halt {
        Halt::Failed(error)
    }
}

/// Runs plans on a durable world and keeps the books: an input is
/// acknowledged exactly when the `commit_inputs` or `execute_tick` call that
/// covered it returned `Ok`.
#[derive(Default)]
pub struct Driver {
    /// Envelope hashes acknowledged.
    pub acknowledged: BTreeSet<Hash>,
    /// Envelope hashes ever admitted.
    pub admitted: BTreeSet<Hash>,
    /// Admitted, not yet covered by a successful call.
    in_flight: Vec<Hash>,
    /// The highest tick whose `execute_tick` returned `Ok`.
    pub executed: Tick,
    /// Calls made so far (admit, commit_inputs, execute_tick, close).
    pub operations: u64,
    /// Stop (as if the process died) before call number `stop_at + 1`.
    pub stop_at: Option<u64>,
}

impl Driver {
    /// A driver with no budget limit.
    pub fn new() -> Driver {
        Driver::default()
    }

    /// Counts a call about to be made, or stops if the budget is spent.
    fn operation(&mut self) -> Result<(), Halt> {
        if self.stop_at == Some(self.operations) {
            return Err(Halt::Stopped);
        }
        self.operations += 1;
        Ok(())
    }

    /// Admits `steps` (skipping as many as are already pending, which a
    /// recovery leaves as a prefix of the tick's inputs), group-commits where
    /// planned, and executes the tick.
    pub fn tick(&mut self, world: &mut DurableWorld, steps: &[Step]) -> Result<TickRoots, Halt> {
        let pending = world.pending_inputs();
        assert!(pending <= steps.len(), "more pending inputs than planned");
        for step in &steps[pending..] {
            self.operation()?;
            let hash = step.envelope.hash();
            if let Err(error) = world.admit(step.envelope.clone()) {
                panic!("a planned input is refused: {error}");
            }
            self.admitted.insert(hash);
            self.in_flight.push(hash);
            if step.commit_after {
                self.operation()?;
                world.commit_inputs()?;
                self.acknowledged.extend(self.in_flight.drain(..));
            }
        }
        self.operation()?;
        let output = world.execute_tick()?;
        self.acknowledged.extend(self.in_flight.drain(..));
        self.executed = output.roots.tick;
        Ok(output.roots)
    }

    /// Plays the plan from the world's next tick to its end, checking every
    /// tick's roots against it.
    pub fn play(&mut self, plan: &Plan, world: &mut DurableWorld) -> Result<(), Halt> {
        while world.world().tick() < plan.last_tick() {
            let tick = world.world().tick() + 1;
            let roots = self.tick(world, &plan.ticks[tick as usize - 1])?;
            assert_eq!(
                roots, plan.roots[tick as usize],
                "seed {:#x}: tick {tick} reached other roots than the plan",
                plan.seed
            );
        }
        Ok(())
    }

    /// [`Driver::play`], then closes the world; returns the last roots.
    pub fn run(&mut self, plan: &Plan, mut world: DurableWorld) -> Result<TickRoots, Halt> {
        self.play(plan, &mut world)?;
        self.operation()?;
        Ok(world.close()?)
    }

    /// Inputs admitted but not acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// What the drivers of every life of one world saw, for the checks after
/// each recovery.
#[derive(Default)]
pub struct Ledger {
    /// Envelope hashes acknowledged in any life.
    pub acknowledged: BTreeSet<Hash>,
    /// Envelope hashes admitted in any life.
    pub admitted: BTreeSet<Hash>,
    /// The highest tick acknowledged in any life.
    pub executed: Tick,
}

impl Ledger {
    /// Adds what `driver` saw.
    pub fn absorb(&mut self, driver: &Driver) {
        self.acknowledged
            .extend(driver.acknowledged.iter().copied());
        self.admitted.extend(driver.admitted.iter().copied());
        self.executed = self.executed.max(driver.executed);
    }
}

/// The journal read back and decoded.
#[derive(Default)]
pub struct Journal {
    /// Every inputs record's envelopes, by the tick they are for, in order.
    pub inputs: BTreeMap<Tick, Vec<Envelope>>,
    /// Every tick record's roots, in order.
    pub ticks: Vec<TickRoots>,
    /// Every record, as read, with its decoding.
    pub records: Vec<(RawRecord, Record)>,
    /// Segments read.
    pub segments: u64,
    /// A torn tail, if any.
    pub torn: Option<everarcade_store::journal::TornTail>,
}

impl Journal {
    /// Hashes of every journaled envelope.
    pub fn envelope_hashes(&self) -> BTreeSet<Hash> {
        self.inputs.values().flatten().map(Envelope::hash).collect()
    }
}

/// Reads and decodes the whole journal.
pub fn read_journal(storage: &dyn Storage) -> Result<Journal, StoreError> {
    let mut reader = JournalReader::open(storage, &world_dir().journal())?;
    let mut journal = Journal::default();
    while let Some(raw) = reader.next()? {
        let record = raw.decode()?;
        match &record {
            Record::Genesis(_) => {}
            Record::Inputs(inputs) => journal
                .inputs
                .entry(inputs.tick)
                .or_default()
                .extend(inputs.envelopes.iter().cloned()),
            Record::Tick(tick) => journal.ticks.push(tick.roots),
        }
        journal.records.push((raw, record));
    }
    journal.segments = reader.end().segments;
    journal.torn = reader.torn_tail().cloned();
    Ok(journal)
}

/// Rewrites the whole journal as a forger would: `edit` may replace any
/// record's body, and every checksum, chain link and segment header after it
/// is recomputed so that the bytes check out.
pub fn forge(storage: &SimStorage, edit: &mut dyn FnMut(&RawRecord) -> Option<Vec<u8>>) {
    let journal = read_journal(storage).expect("the journal reads before forging");
    let genesis_root = match &journal.records[0].1 {
        Record::Genesis(genesis) => genesis.genesis_root,
        _ => unreachable!("the reader puts genesis first"),
    };
    let mut segments: BTreeMap<PathBuf, Vec<&RawRecord>> = BTreeMap::new();
    for (raw, _) in &journal.records {
        segments.entry(raw.path.clone()).or_default().push(raw);
    }
    let dir = world_dir();
    let mut prev = genesis_root;
    for index in 1..=journal.segments {
        let path = dir.segment(index);
        let header = SegmentHeader {
            index,
            genesis_root,
            prev,
        };
        let mut bytes = header.encode();
        for raw in segments.remove(&path).unwrap_or_default() {
            assert_eq!(raw.offset as usize, bytes.len(), "records are contiguous");
            let body = edit(raw).unwrap_or_else(|| raw.body.clone());
            prev = encode_record(raw.kind, &body, &prev, &mut bytes);
        }
        storage.overwrite(&path, bytes).expect("rewrite a segment");
    }
}

/// Flips one bit of byte `offset` of `path`.
pub fn flip_byte(storage: &SimStorage, path: &Path, offset: usize) {
    let mut bytes = storage.read(path).expect("read the file to damage");
    bytes[offset] ^= 0x10;
    storage
        .overwrite(path, bytes)
        .expect("write the damaged file");
}

/// Every file under the world directory with its bytes (the listing is the
/// union of `journal/`, `checkpoints/`, `quarantine/` and the world's own).
pub fn snapshot(storage: &SimStorage) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = world_dir();
    let mut files = BTreeMap::new();
    for directory in [
        dir.path().to_path_buf(),
        dir.journal(),
        dir.checkpoints(),
        dir.quarantine(),
    ] {
        for name in storage.list(&directory).unwrap_or_default() {
            let path = directory.join(name);
            let bytes = storage.read(&path).expect("a listed file reads");
            files.insert(path, bytes);
        }
    }
    files
}

/// Byte offset, inside its record, of the body.
pub const BODY_OFFSET: usize = RECORD_HEADER_BYTES;
