//! Archive recovery: a new world rebuilt from archived material, across
//! windows as long as the material covers: a base that begins at genesis (a
//! backup or any copy of a world's journal, or a bundle whose window starts
//! at tick 0), then later bundles or journals.
//!
//! 1. **Plan** (reads only): every bundle's structure and operator signature
//!    are checked; sources are ordered by their first tick; each must link to
//!    the lineage so far: its `C(0)` is the world's (the id and package given),
//!    and at the tick where the lineage so far ends it records the same
//!    continuity root. The first source that does not link is refused with
//!    the tick where the chain breaks, before anything is written.
//! 2. **Rebuild**: a new durable world in a staging directory under the
//!    runtime root, fed through the ordinary write path: every input
//!    admitted again (signature, nonce, world, size), every tick executed,
//!    journaled and checkpointed; each tick's roots and receipts must equal the
//!    recorded ones (else divergence). Staging writes are not synced one by
//!    one; the whole tree is synced once at the end.
//! 3. **Publish**: the staging world is renamed to `worlds/<id>`, reopened
//!    (recovery from its newest checkpoint), and its roots compared with the
//!    lineage's end.
//!
//! A world that already exists is never touched, and nothing is deleted: a
//! failed rebuild leaves its staging directory in place and names it.
//!
//! Why the base must begin at genesis: the version-1 journal (docs/FORMATS.md)
//! always starts with the genesis record followed by every tick; a bundle
//! whose window starts at a checkpoint can extend a lineage, never seed one.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_ops::manifest::MANIFEST_FILE;
use everarcade_ops::{OpsError, verify_backup};
use everarcade_package::Package;
use everarcade_protocol::{
    Envelope, EnvelopeError, Hash, PublicKey, Receipt, Tick, TickRoots, WorldId, genesis_root,
    list_root,
};
use everarcade_store::journal::GenesisRecord;
use everarcade_store::storage::{DIRECTORY_MODE, DiskStorage, StagingDisk, sync_tree};
use everarcade_store::{StoreError, WorldDir};
use everarcade_world::replay::differing_roots;
use everarcade_world::{
    Create, DurableWorld, Entry, ErrorClass, FrontDoor, WorldConfig, WorldError,
};

use crate::bundle::{BUNDLE_BYTES_MAX, SealedBundle, StartState, decode};
use crate::error::{Class, RootMismatch, SourceError, VerifyError, world_class};
use crate::journal::{JournalItem, JournalTicks};
use crate::mmr::genesis_roots;
use crate::verify::check_signature;

/// Why archive recovery refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A path given is neither a bundle nor a directory holding a journal.
    #[error("{}: not a proof bundle, a backup or a journal ({what})", path.display())]
    Unrecognized {
        /// The path.
        path: PathBuf,
        /// Why.
        what: String,
    },
    /// A bundle is malformed or its signature does not verify.
    #[error("{}: {error}", path.display())]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// Why.
        error: Box<VerifyError>,
    },
    /// A backup folder does not verify (manifest, signature, checksums).
    #[error("{}: {error}", path.display())]
    Backup {
        /// The backup folder.
        path: PathBuf,
        /// Why.
        error: Box<OpsError>,
    },
    /// A journal could not be read.
    #[error("{}: {error}", path.display())]
    Source {
        /// The source.
        path: PathBuf,
        /// Why.
        error: SourceError,
    },
    /// The material does not chain to the lineage.
    #[error("the chain breaks at tick {tick}: {}: {what}", path.display())]
    ChainBroken {
        /// The first tick that does not link.
        tick: Tick,
        /// The source that does not link.
        path: PathBuf,
        /// How.
        what: String,
    },
    /// A recorded input is refused on admission.
    #[error("{}: tick {tick}, input {index}: refused on replay: {error}", path.display())]
    InputRefused {
        /// The source.
        path: PathBuf,
        /// The tick.
        tick: Tick,
        /// The input's position.
        index: usize,
        /// Why.
        error: Box<EnvelopeError>,
    },
    /// Replay reached other roots than the source records.
    #[error("{}: {mismatch}", path.display())]
    Divergence {
        /// The source.
        path: PathBuf,
        /// The first root that differs.
        mismatch: Box<RootMismatch>,
    },
    /// The world already exists.
    #[error("world {} already exists; archive recovery builds a new world and never touches an existing one", path.display())]
    Exists {
        /// The world directory.
        path: PathBuf,
    },
    /// The rebuilt world failed (I/O, engine, recovery).
    #[error("{error} (the staging world is left at {})", staging.display())]
    World {
        /// Why.
        error: Box<WorldError>,
        /// The staging directory, left in place.
        staging: PathBuf,
    },
}

impl ArchiveError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::Unrecognized { .. } => "archive_source_unrecognized",
            ArchiveError::Bundle { error, .. } => error.code(),
            ArchiveError::Source { error, .. } => error.code(),
            ArchiveError::Backup { error, .. } => error.code(),
            ArchiveError::ChainBroken { .. } => "chain_broken",
            ArchiveError::InputRefused { .. } => "input_refused_at_replay",
            ArchiveError::Divergence { .. } => "divergence",
            ArchiveError::Exists { .. } => "world_exists",
            ArchiveError::World { error, .. } => error.code(),
        }
    }

    /// The class.
    pub fn class(&self) -> Class {
        match self {
            ArchiveError::Unrecognized { .. } | ArchiveError::Exists { .. } => Class::Usage,
            ArchiveError::Bundle { error, .. } => error.class(),
            ArchiveError::Source { error, .. } => error.class(),
            ArchiveError::Backup { error, .. } => match error.class() {
                ErrorClass::Operational => Class::Operational,
                ErrorClass::Integrity => Class::Integrity,
                ErrorClass::Divergence => Class::Divergence,
                ErrorClass::Package => Class::Package,
            },
            ArchiveError::ChainBroken { .. } | ArchiveError::InputRefused { .. } => {
                Class::Integrity
            }
            ArchiveError::Divergence { .. } => Class::Divergence,
            ArchiveError::World { error, .. } => world_class(error),
        }
    }
}

/// One piece of archived material.
pub enum SourceKind {
    /// A proof bundle, decoded and its signature checked.
    Bundle(Box<SealedBundle>),
    /// A journal directory (of a backup, or of a world's copy).
    Journal {
        /// The `journal/` directory.
        journal: PathBuf,
        /// Its genesis record.
        genesis: Box<GenesisRecord>,
        /// Its last tick.
        last: Tick,
        /// `C(last)`.
        last_continuity: Hash,
    },
}

/// A source and where it came from.
pub struct Source {
    /// The path given.
    pub path: PathBuf,
    /// What it is.
    pub kind: SourceKind,
}

impl Source {
    /// The first tick it holds the state of.
    pub fn start(&self) -> Tick {
        match &self.kind {
            SourceKind::Bundle(sealed) => sealed.bundle.from_tick,
            SourceKind::Journal { .. } => 0,
        }
    }

    /// Its last tick.
    pub fn end(&self) -> Tick {
        match &self.kind {
            SourceKind::Bundle(sealed) => sealed.bundle.to_tick,
            SourceKind::Journal { last, .. } => *last,
        }
    }

    fn genesis_root(&self) -> Hash {
        match &self.kind {
            SourceKind::Bundle(sealed) => sealed.bundle.genesis_root,
            SourceKind::Journal { genesis, .. } => genesis.genesis_root,
        }
    }

    fn source_error(&self, error: SourceError) -> ArchiveError {
        ArchiveError::Source {
            path: self.path.clone(),
            error,
        }
    }

    /// `C(tick)` as this source records it (`start() <= tick <= end()`).
    fn continuity_at(&self, tick: Tick) -> Result<Hash, ArchiveError> {
        match &self.kind {
            SourceKind::Bundle(sealed) => {
                let bundle = &sealed.bundle;
                assert!(tick >= bundle.from_tick && tick <= bundle.to_tick);
                Ok(match tick - bundle.from_tick {
                    0 => bundle.anchor.continuity_root,
                    offset => bundle.ticks[offset as usize - 1].roots.continuity_root,
                })
            }
            SourceKind::Journal {
                journal,
                genesis,
                last,
                last_continuity,
            } => {
                if tick == *last {
                    return Ok(*last_continuity);
                }
                if tick == 0 {
                    return Ok(genesis.genesis_root);
                }
                let mut walk = JournalTicks::open(&DiskStorage, journal)
                    .map_err(|error| self.source_error(error))?;
                while let Some(item) = walk.next(false).map_err(|error| self.source_error(error))? {
                    if let JournalItem::Tick(record, _) = item
                        && record.roots.tick == tick
                    {
                        return Ok(record.roots.continuity_root);
                    }
                }
                Err(self.source_error(SourceError::request(
                    "tick_beyond_journal",
                    format!("the journal no longer holds tick {tick}"),
                )))
            }
        }
    }
}

/// Reads one source: a bundle file, or a directory holding `journal/`
/// (a backup or a world directory) or journal segments. A backup folder
/// (it has `manifest.json`) is verified first: manifest, signature (against
/// `trusted` when given) and every file's checksum.
pub fn open_source(path: &Path, trusted: &[PublicKey]) -> Result<Source, ArchiveError> {
    let unrecognized = |what: String| ArchiveError::Unrecognized {
        path: path.to_path_buf(),
        what,
    };
    let metadata = fs::metadata(path).map_err(|error| unrecognized(error.to_string()))?;
    if metadata.is_file() {
        if metadata.len() > BUNDLE_BYTES_MAX {
            return Err(unrecognized(format!("over {BUNDLE_BYTES_MAX} bytes")));
        }
        let bytes = fs::read(path).map_err(|error| unrecognized(error.to_string()))?;
        let bundle_error = |error: VerifyError| ArchiveError::Bundle {
            path: path.to_path_buf(),
            error: Box::new(error),
        };
        let sealed = decode(&bytes).map_err(|error| bundle_error(error.into()))?;
        check_signature(&sealed, trusted).map_err(bundle_error)?;
        return Ok(Source {
            path: path.to_path_buf(),
            kind: SourceKind::Bundle(Box::new(sealed)),
        });
    }
    if path.join(MANIFEST_FILE).is_file() {
        let options = everarcade_ops::VerifyOptions {
            trusted_keys: trusted.to_vec(),
        };
        verify_backup(path, &options).map_err(|error| ArchiveError::Backup {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
    }
    let journal = if path.join("journal").is_dir() {
        path.join("journal")
    } else {
        path.to_path_buf()
    };
    let source_error = |error: SourceError| ArchiveError::Source {
        path: path.to_path_buf(),
        error,
    };
    let mut walk = JournalTicks::open(&DiskStorage, &journal).map_err(source_error)?;
    let mut genesis = None;
    let mut last = None;
    while let Some(item) = walk.next(false).map_err(source_error)? {
        match item {
            JournalItem::Genesis(record) => {
                last = Some(genesis_roots(&record.genesis_root, &record.state_root));
                genesis = Some(record);
            }
            JournalItem::Tick(record, _) => last = Some(record.roots),
        }
    }
    let (Some(genesis), Some(last)) = (genesis, last) else {
        return Err(unrecognized("the journal holds no genesis record".into()));
    };
    Ok(Source {
        path: path.to_path_buf(),
        kind: SourceKind::Journal {
            journal,
            genesis: Box::new(genesis),
            last: last.tick,
            last_continuity: last.continuity_root,
        },
    })
}

/// One source's part of the lineage: its ticks after `after` up to `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into the sources.
    pub source: usize,
    /// The lineage's last tick before this step (`None`: genesis comes from it).
    pub after: Option<Tick>,
    /// Its last tick.
    pub until: Tick,
}

/// How the sources chain.
#[derive(Debug, Default)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Sources that chain but add nothing (their ticks are covered already).
    pub redundant: Vec<usize>,
}

/// Orders the sources and checks that each links to the lineage; see the
/// module docs. `sources` is sorted in place.
pub fn plan(sources: &mut [Source], genesis: &Hash) -> Result<Plan, ArchiveError> {
    sources.sort_by_key(|source| (source.start(), std::cmp::Reverse(source.end())));
    let mut plan = Plan::default();
    let mut end: Option<(Tick, Hash)> = None;
    for index in 0..sources.len() {
        let source = &sources[index];
        let broken = |tick: Tick, what: String| ArchiveError::ChainBroken {
            tick,
            path: source.path.clone(),
            what,
        };
        if source.genesis_root() != *genesis {
            return Err(broken(
                0,
                format!(
                    "it belongs to genesis {}, not this world's {genesis} (another world id or package)",
                    source.genesis_root()
                ),
            ));
        }
        let Some((lineage_end, lineage_continuity)) = end else {
            if source.start() != 0 {
                return Err(broken(
                    1,
                    format!(
                        "no source holds ticks 1..={}: the lineage must begin at genesis, and the earliest source starts from a checkpoint of tick {}",
                        source.start(),
                        source.start()
                    ),
                ));
            }
            plan.steps.push(Step {
                source: index,
                after: None,
                until: source.end(),
            });
            end = Some((source.end(), source.continuity_at(source.end())?));
            continue;
        };
        if source.start() > lineage_end {
            return Err(broken(
                lineage_end + 1,
                format!(
                    "no source holds tick {}: the lineage ends at tick {lineage_end} and this source starts at tick {}",
                    lineage_end + 1,
                    source.start()
                ),
            ));
        }
        let junction = lineage_end.min(source.end());
        let ours = if junction == lineage_end {
            lineage_continuity
        } else {
            lineage_continuity_at(sources, &plan, junction)?
        };
        let theirs = source.continuity_at(junction)?;
        if ours != theirs {
            return Err(broken(
                junction,
                format!(
                    "it records continuity root {theirs} at tick {junction}, the lineage {ours}: it is another history"
                ),
            ));
        }
        if source.end() > lineage_end {
            plan.steps.push(Step {
                source: index,
                after: Some(lineage_end),
                until: source.end(),
            });
            end = Some((source.end(), source.continuity_at(source.end())?));
        } else {
            plan.redundant.push(index);
        }
    }
    Ok(plan)
}

fn lineage_continuity_at(
    sources: &[Source],
    plan: &Plan,
    tick: Tick,
) -> Result<Hash, ArchiveError> {
    let step = plan
        .steps
        .iter()
        .find(|step| step.until >= tick)
        .expect("the tick is inside the lineage");
    sources[step.source].continuity_at(tick)
}

/// What to rebuild.
pub struct RebuildRequest<'a> {
    /// The runtime root the world is created under.
    pub runtime_root: &'a Path,
    /// The world id.
    pub id: &'a WorldId,
    /// The package (its root and the id give `C(0)`).
    pub package: &'a Package,
    /// The engine.
    pub engine: Arc<Engine>,
    /// The compiled package.
    pub compiled: Arc<CompiledPackage>,
    /// Durability settings of the rebuilt world.
    pub config: WorldConfig,
}

/// A rebuilt world.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    /// The world directory.
    pub dir: PathBuf,
    /// The roots at its head, as recovery on reopen reached them.
    pub roots: TickRoots,
    /// Ticks executed.
    pub ticks: u64,
    /// Inputs admitted.
    pub inputs: u64,
    /// Per step: the source path and the ticks it contributed.
    pub contributions: Vec<(PathBuf, Tick, Tick)>,
    /// Sources that chained but added nothing.
    pub redundant: Vec<PathBuf>,
}

/// `C(0)` of the world the request names.
pub fn expected_genesis(id: &WorldId, package: &Package) -> Hash {
    genesis_root(id, &package.root, &package.profile().hash())
}

/// Plans, rebuilds and publishes; see the module docs. `progress` sees every
/// executed tick.
pub fn rebuild(
    request: &RebuildRequest<'_>,
    mut sources: Vec<Source>,
    progress: &mut dyn FnMut(Tick),
) -> Result<Rebuilt, ArchiveError> {
    let genesis = expected_genesis(request.id, request.package);
    let plan = plan(&mut sources, &genesis)?;
    let target = WorldDir::new(request.runtime_root, request.id);
    if target.path().exists() {
        return Err(ArchiveError::Exists {
            path: target.path().to_path_buf(),
        });
    }
    let staging_root = request.runtime_root.join(format!(
        ".archive-recover-{}-{}",
        request.id,
        std::process::id()
    ));
    let staging = WorldDir::new(&staging_root, request.id);
    let world_error = |error: WorldError| ArchiveError::World {
        error: Box::new(error),
        staging: staging.path().to_path_buf(),
    };
    let io_error = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        let staging = staging.path().to_path_buf();
        move |source: io::Error| ArchiveError::World {
            error: Box::new(WorldError::Store(StoreError::Io { op, path, source })),
            staging,
        }
    };
    if staging_root.exists() {
        return Err(ArchiveError::Exists { path: staging_root });
    }
    // The staging world is built without syncs and made durable as a whole
    // by `sync_tree` before it is published; it is entered like any world
    // (its lock, the package bound, created at genesis), with no operator
    // key (archive recovery signs nothing).
    let staged = FrontDoor {
        storage: Arc::new(StagingDisk),
        dir: staging.clone(),
        id: request.id.clone(),
        engine: request.engine.clone(),
        compiled: request.compiled.clone(),
    };
    let entry = Entry {
        create: Create::IfMissing,
        ..Entry::existing(request.config)
    };
    let opened = staged.open(entry).map_err(world_error)?;
    let (mut world, lock) = (opened.world, opened.lock);
    let mut rebuilt = Rebuilt {
        dir: target.path().to_path_buf(),
        roots: world.roots(),
        ticks: 0,
        inputs: 0,
        contributions: Vec::new(),
        redundant: plan
            .redundant
            .iter()
            .map(|index| sources[*index].path.clone())
            .collect(),
    };
    for step in &plan.steps {
        let source = &sources[step.source];
        let mut feed = Feed {
            world: &mut world,
            path: &source.path,
            rebuilt: &mut rebuilt,
            progress,
            staging: staging.path(),
        };
        feed.step(source, step)?;
        rebuilt.contributions.push((
            source.path.clone(),
            step.after.map_or(0, |a| a + 1),
            step.until,
        ));
    }
    let expected = world.roots();
    world.close().map_err(world_error)?;
    sync_tree(staging.path()).map_err(io_error("fsync", staging.path()))?;
    publish(&staging, &target).map_err(io_error("rename", staging.path()))?;
    drop(lock);
    let published = FrontDoor {
        storage: Arc::new(DiskStorage),
        dir: target.clone(),
        ..staged
    };
    let reopened = published
        .open(Entry::existing(request.config))
        .map_err(|error| ArchiveError::World {
            error: Box::new(error),
            staging: target.path().to_path_buf(),
        })?;
    let roots = reopened.world.roots();
    reopened
        .world
        .close()
        .map_err(|error| ArchiveError::World {
            error: Box::new(error),
            staging: target.path().to_path_buf(),
        })?;
    assert_eq!(
        roots, expected,
        "a reopened world recovers the roots it closed with"
    );
    rebuilt.roots = roots;
    let _ = fs::remove_dir(staging_root.join("worlds"));
    let _ = fs::remove_dir(&staging_root);
    Ok(rebuilt)
}

/// Moves the staged world to its place (both under the runtime root, so
/// one rename) and syncs both directories.
fn publish(staging: &WorldDir, target: &WorldDir) -> io::Result<()> {
    let parent = target.path().parent().expect("worlds/ is a parent");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(parent)?;
    fs::rename(staging.path(), target.path())?;
    File::open(parent)?.sync_all()?;
    if let Some(old) = staging.path().parent() {
        File::open(old)?.sync_all()?;
    }
    Ok(())
}

/// Feeds one step's ticks into the rebuilt world.
struct Feed<'a> {
    world: &'a mut DurableWorld,
    path: &'a Path,
    rebuilt: &'a mut Rebuilt,
    progress: &'a mut dyn FnMut(Tick),
    staging: &'a Path,
}

impl Feed<'_> {
    fn step(&mut self, source: &Source, step: &Step) -> Result<(), ArchiveError> {
        match &source.kind {
            SourceKind::Bundle(sealed) => {
                let bundle = &sealed.bundle;
                if step.after.is_none() {
                    assert_eq!(bundle.start, StartState::Genesis);
                    self.genesis(&bundle.genesis_state_root, &bundle.genesis_receipt)?;
                }
                let after = step.after.unwrap_or(0);
                for tick in bundle.ticks.iter().filter(|t| t.roots.tick > after) {
                    self.tick(&tick.inputs, &tick.roots, &tick.receipts)?;
                }
                Ok(())
            }
            SourceKind::Journal { journal, .. } => {
                let source_error = |error| source.source_error(error);
                let mut walk = JournalTicks::open(&DiskStorage, journal).map_err(source_error)?;
                let after = step.after.unwrap_or(0);
                loop {
                    let next = walk.last().map_or(0, |last| last + 1);
                    let Some(item) = walk.next(next > after).map_err(source_error)? else {
                        break;
                    };
                    match item {
                        JournalItem::Genesis(genesis) if step.after.is_none() => {
                            self.genesis(&genesis.state_root, &genesis.receipt)?;
                        }
                        JournalItem::Genesis(_) => {}
                        JournalItem::Tick(record, inputs) if record.roots.tick > after => {
                            self.tick(&inputs, &record.roots, &record.receipts)?;
                            if record.roots.tick == step.until {
                                break;
                            }
                        }
                        JournalItem::Tick(..) => {}
                    }
                }
                Ok(())
            }
        }
    }

    fn diverged(
        &self,
        tick: Tick,
        root: &'static str,
        recorded: Hash,
        replayed: Hash,
    ) -> ArchiveError {
        ArchiveError::Divergence {
            path: self.path.to_path_buf(),
            mismatch: Box::new(RootMismatch {
                tick,
                root,
                recorded,
                replayed,
            }),
        }
    }

    fn genesis(
        &mut self,
        state_root: &Hash,
        receipt: &Option<Receipt>,
    ) -> Result<(), ArchiveError> {
        let ours = self.world.genesis().clone();
        if ours.state_root != *state_root {
            return Err(self.diverged(0, "genesis_state_root", *state_root, ours.state_root));
        }
        let hash = |receipt: &Option<Receipt>| receipt.as_ref().map_or(Hash::ZERO, Receipt::hash);
        if ours.receipt != *receipt {
            return Err(self.diverged(0, "genesis_receipt", hash(receipt), hash(&ours.receipt)));
        }
        Ok(())
    }

    fn tick(
        &mut self,
        inputs: &[Envelope],
        recorded: &TickRoots,
        receipts: &[Receipt],
    ) -> Result<(), ArchiveError> {
        let tick = recorded.tick;
        for (index, envelope) in inputs.iter().enumerate() {
            self.world
                .admit(envelope.clone())
                .map_err(|error| ArchiveError::InputRefused {
                    path: self.path.to_path_buf(),
                    tick,
                    index,
                    error: Box::new(error),
                })?;
        }
        let output = self
            .world
            .execute_tick()
            .map_err(|error| ArchiveError::World {
                error: Box::new(error),
                staging: self.staging.to_path_buf(),
            })?;
        let replayed = output.roots;
        if let Some(&(root, a, b)) = differing_roots(recorded, &replayed).first() {
            return Err(self.diverged(tick, root, a, b));
        }
        if output.receipts != receipts {
            let hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
            return Err(self.diverged(tick, "receipts", list_root(&hashes), replayed.receipt_root));
        }
        self.rebuilt.ticks += 1;
        self.rebuilt.inputs += inputs.len() as u64;
        (self.progress)(tick);
        Ok(())
    }
}
