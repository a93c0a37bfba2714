//! Replaying a world's journal: from genesis or a checkpoint, every tick's
//! inputs are admitted again (nonces always, signatures when asked) and
//! executed, and the roots reached must equal the roots recorded.
//!
//! Recovery on open and `replay-verify` are the same walk with different
//! options, so whatever recovery accepts, replay verification re-checks.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine, Snapshot, TickOutput, World};
use everarcade_protocol::{
    Envelope, EnvelopeError, Hash, SignatureRule, Tick, TickRoots, WorldId, list_root,
};
use everarcade_store::checkpoint::{list_checkpoints, load_checkpoint};
use everarcade_store::journal::TornTail;
use everarcade_store::journal::{GenesisRecord, InputsRecord, JournalEnd, RawRecord, TickRecord};
use everarcade_store::{JournalReader, Record, Storage, WorldDir};

use crate::diff::state_diff;
use crate::error::{Divergence, WorldError};
use crate::lineage::Schedule;

/// Everything replay needs to find and run a world.
pub struct Context<'a> {
    /// The file system.
    pub storage: &'a dyn Storage,
    /// The world's directory.
    pub dir: &'a WorldDir,
    /// The world id.
    pub id: &'a WorldId,
    /// The engine.
    pub engine: &'a Engine,
    /// The package the world must be bound to.
    pub compiled: Arc<CompiledPackage>,
    /// Which package executes which tick; `None`: the world's own lineage
    /// (`lineage.json` and `packages/`). An upgrade passes a schedule to
    /// replay history under a candidate package.
    pub schedule: Option<&'a Schedule>,
}

/// Where replay begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From genesis: `ea_genesis` runs again.
    Genesis,
    /// From the newest checkpoint that verifies and agrees with the journal,
    /// falling back to older ones and finally to genesis.
    NewestCheckpoint,
    /// From the checkpoint of exactly this tick.
    Checkpoint(Tick),
}

/// How to replay.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Where to begin.
    pub start: Start,
    /// Stop after this tick (default: the end of the journal).
    pub stop_after: Option<Tick>,
    /// Re-check every envelope signature (replay verification) or trust the
    /// journal's checksums for them (recovery).
    pub verify_signatures: bool,
    /// On divergence, replay again to the tick before and report a state diff.
    pub diff_on_divergence: bool,
}

/// Where a replay actually began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartedFrom {
    /// Genesis.
    Genesis,
    /// A checkpoint file.
    Checkpoint {
        /// Its tick.
        tick: Tick,
        /// Its path.
        path: PathBuf,
    },
}

/// One replayed tick, as observers see it.
pub struct ReplayedTick<'a> {
    /// What was recorded.
    pub record: &'a TickRecord,
    /// What replay produced (its roots equal the record's).
    pub output: &'a TickOutput,
    /// The segment file that holds the tick record.
    pub segment: &'a std::path::Path,
    /// Where the tick record ends in its segment, in bytes: with the
    /// segments' sizes, how far through the journal replay is.
    pub end_bytes: u64,
}

/// The outcome of a replay that matched the record throughout.
pub struct Replayed {
    /// The world at the last replayed tick.
    pub world: World,
    /// The journal's genesis record.
    pub genesis: GenesisRecord,
    /// Where replay began.
    pub started_from: StartedFrom,
    /// Checkpoints passed over, with the reason.
    pub skipped_checkpoints: Vec<(PathBuf, String)>,
    /// The roots at the last replayed tick (tick 0: genesis).
    pub last: TickRoots,
    /// Ticks executed.
    pub ticks_replayed: u64,
    /// Acknowledged inputs recorded after the last tick record: they belong
    /// to the next tick and are admitted already. Empty with `stop_after`.
    pub pending: Vec<Envelope>,
    /// Where the valid journal ends.
    pub end: JournalEnd,
    /// A torn tail after it, if any.
    pub torn: Option<TornTail>,
}

/// Replays; see the module docs. `observe` sees every replayed tick.
pub fn replay(
    context: &Context<'_>,
    options: &ReplayOptions,
    observe: &mut dyn FnMut(ReplayedTick<'_>),
) -> Result<Replayed, WorldError> {
    let (world, started_from, skipped) = match options.start {
        Start::Genesis => (None, StartedFrom::Genesis, Vec::new()),
        Start::Checkpoint(tick) => {
            let path = context.dir.checkpoint(tick);
            let world = resume(context, &path)?;
            (
                Some(world),
                StartedFrom::Checkpoint { tick, path },
                Vec::new(),
            )
        }
        Start::NewestCheckpoint => return replay_newest(context, options, observe),
    };
    let mut replayed = walk(context, options, world, started_from, observe)?;
    replayed.skipped_checkpoints = skipped;
    Ok(replayed)
}

/// Tries checkpoints newest first; one that fails to load or contradicts the
/// journal is passed over (and reported), never used.
fn replay_newest(
    context: &Context<'_>,
    options: &ReplayOptions,
    observe: &mut dyn FnMut(ReplayedTick<'_>),
) -> Result<Replayed, WorldError> {
    let listing = list_checkpoints(context.storage, context.dir)?;
    let mut skipped = Vec::new();
    for (tick, path) in listing.checkpoints.into_iter().rev() {
        if options.stop_after.is_some_and(|stop| tick > stop) {
            continue;
        }
        let world = match resume(context, &path) {
            Ok(world) => world,
            Err(error) => {
                skipped.push((path, error.to_string()));
                continue;
            }
        };
        let from = StartedFrom::Checkpoint {
            tick,
            path: path.clone(),
        };
        match walk(context, options, Some(world), from, observe) {
            Ok(mut replayed) => {
                replayed.skipped_checkpoints = skipped;
                return Ok(replayed);
            }
            Err(WorldError::Lineage {
                path: bad, what, ..
            }) if bad == path => {
                skipped.push((path, what));
            }
            Err(error) => return Err(error),
        }
    }
    let mut replayed = walk(context, options, None, StartedFrom::Genesis, observe)?;
    replayed.skipped_checkpoints = skipped;
    Ok(replayed)
}

fn resume(context: &Context<'_>, path: &std::path::Path) -> Result<World, WorldError> {
    let checkpoint = load_checkpoint(context.storage, path)?;
    let snapshot = Snapshot {
        tick: checkpoint.tick,
        genesis_root: checkpoint.genesis_root,
        continuity_root: checkpoint.continuity_root,
        state: checkpoint.state,
        nonces: checkpoint.nonces,
    };
    World::resume(context.id.clone(), context.compiled.clone(), snapshot).map_err(|error| {
        WorldError::Lineage {
            path: path.to_path_buf(),
            offset: 0,
            what: error.to_string(),
        }
    })
}

/// The state of one walk over the journal.
struct Walk<'c, 'o> {
    context: &'c Context<'c>,
    options: &'c ReplayOptions,
    observe: &'o mut dyn FnMut(ReplayedTick<'_>),
    world: Option<World>,
    /// The checkpoint replay began from, until its tick record is checked.
    checkpoint: Option<(Tick, PathBuf)>,
    genesis: Option<GenesisRecord>,
    last: Option<TickRoots>,
    inputs: Vec<Envelope>,
    ticks_replayed: u64,
    /// Which package executes each tick (upgrades, `lineage.json`).
    schedule: Schedule,
}

fn walk(
    context: &Context<'_>,
    options: &ReplayOptions,
    world: Option<World>,
    started_from: StartedFrom,
    observe: &mut dyn FnMut(ReplayedTick<'_>),
) -> Result<Replayed, WorldError> {
    let schedule = match context.schedule {
        Some(schedule) => schedule.clone(),
        None => Schedule::load(
            context.storage,
            context.dir,
            context.engine,
            &context.compiled,
        )?,
    };
    let mut reader = JournalReader::open(context.storage, &context.dir.journal())?;
    let checkpoint = match &started_from {
        StartedFrom::Checkpoint { tick, path } => Some((*tick, path.clone())),
        StartedFrom::Genesis => None,
    };
    let mut walk = Walk {
        context,
        options,
        observe,
        world,
        checkpoint,
        genesis: None,
        last: None,
        inputs: Vec::new(),
        ticks_replayed: 0,
        schedule,
    };
    let mut ahead = ReadAhead::new(options);
    while let Some((raw, prechecked)) = ahead.next(&mut reader, &walk)? {
        if walk.step(&raw, prechecked)? {
            break;
        }
    }
    if let Some((tick, path)) = &walk.checkpoint {
        let last = walk.last.map_or(0, |roots| roots.tick);
        return Err(WorldError::Lineage {
            path: path.clone(),
            offset: 0,
            what: format!(
                "the checkpoint is of tick {tick}, beyond the journal's last tick {last}"
            ),
        });
    }
    let Some(genesis) = walk.genesis else {
        // A crash while the world was being created tears its only segment.
        if let Some(torn) = reader.torn_tail() {
            return Err(torn.to_error().into());
        }
        return Err(WorldError::Lineage {
            path: context.dir.journal(),
            offset: 0,
            what: "the journal has no genesis record".into(),
        });
    };
    let stopped_early = options
        .stop_after
        .is_some_and(|stop| walk.last.is_none_or(|l| l.tick >= stop));
    let pending = if stopped_early {
        Vec::new()
    } else {
        walk.inputs
    };
    Ok(Replayed {
        world: walk.world.expect("a genesis record creates the world"),
        genesis,
        started_from,
        skipped_checkpoints: Vec::new(),
        last: walk.last.expect("genesis sets the roots"),
        ticks_replayed: walk.ticks_replayed,
        pending,
        end: reader.end().clone(),
        torn: reader.torn_tail().cloned(),
    })
}

/// Signature checks of one inputs record made ahead of its admission, and
/// the rule they were made under.
type Prechecked = Option<(SignatureRule, Vec<Result<(), EnvelopeError>>)>;

/// Records read ahead of the walk, so that the signatures of many inputs
/// records are checked together, on every core and (under ZIP-215) in large
/// batches, instead of a few per record. Only when replay re-checks
/// signatures and walks to the end (with `stop_after` the reader must stop
/// exactly where the walk does, so nothing is read ahead).
struct ReadAhead {
    enabled: bool,
    records: VecDeque<(RawRecord, Prechecked)>,
    /// A read error met while reading ahead: returned once the records
    /// read before it are handled, as if read one by one.
    error: Option<WorldError>,
    done: bool,
}

/// Records read ahead at most, and inputs whose signatures are checked
/// together at most (about 64 ticks of a 256-bot match).
const READ_AHEAD_RECORDS_MAX: usize = 256;
const READ_AHEAD_ENVELOPES_MAX: usize = 4096;

impl ReadAhead {
    fn new(options: &ReplayOptions) -> ReadAhead {
        ReadAhead {
            enabled: options.verify_signatures && options.stop_after.is_none(),
            records: VecDeque::new(),
            error: None,
            done: false,
        }
    }

    fn next(
        &mut self,
        reader: &mut JournalReader,
        walk: &Walk<'_, '_>,
    ) -> Result<Option<(RawRecord, Prechecked)>, WorldError> {
        if !self.enabled {
            return Ok(reader.next()?.map(|raw| (raw, None)));
        }
        if self.records.is_empty() && !self.done {
            self.fill(reader, walk);
        }
        match self.records.pop_front() {
            Some(next) => Ok(Some(next)),
            None => match self.error.take() {
                Some(error) => Err(error),
                None => Ok(None),
            },
        }
    }

    fn fill(&mut self, reader: &mut JournalReader, walk: &Walk<'_, '_>) {
        // Before genesis or the checkpoint's tick there is nothing to check
        // ahead with: one record at a time, as without reading ahead.
        let ready = walk.world.is_some() && walk.checkpoint.is_none();
        let records_max = if ready { READ_AHEAD_RECORDS_MAX } else { 1 };
        let mut envelopes = 0;
        while self.records.len() < records_max && envelopes < READ_AHEAD_ENVELOPES_MAX {
            match reader.next() {
                Ok(Some(raw)) => {
                    if raw.kind == everarcade_store::journal::RecordKind::Inputs {
                        // About 110 bytes per envelope of a small payload.
                        envelopes += raw.body.len() / 110 + 1;
                    }
                    self.records.push_back((raw, None));
                }
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(error) => {
                    self.error = Some(error.into());
                    self.done = true;
                    break;
                }
            }
        }
        // Checked under the rule of the package in force now; a record
        // admitted under another rule (after an upgrade) is checked again
        // at admission.
        let Some(world) = walk.world.as_ref().filter(|_| ready) else {
            return;
        };
        let rule = world.signature_rule();
        let mut decoded: Vec<(usize, usize)> = Vec::new();
        let mut all: Vec<Envelope> = Vec::new();
        for (index, (raw, _)) in self.records.iter().enumerate() {
            if raw.kind != everarcade_store::journal::RecordKind::Inputs {
                continue;
            }
            // A record that does not decode is left to the walk, which
            // reports it in order.
            if let Ok(Record::Inputs(inputs)) = raw.decode() {
                decoded.push((index, inputs.envelopes.len()));
                all.extend(inputs.envelopes);
            }
        }
        let mut checked = Envelope::verify_signatures_under(&all, rule).into_iter();
        for (index, count) in decoded {
            let part: Vec<_> = checked.by_ref().take(count).collect();
            self.records[index].1 = Some((rule, part));
        }
    }
}

impl Walk<'_, '_> {
    /// Handles one record; returns whether to stop. `prechecked` holds the
    /// signature checks of an inputs record made ahead.
    fn step(&mut self, raw: &RawRecord, prechecked: Prechecked) -> Result<bool, WorldError> {
        let lineage = |what: String| WorldError::Lineage {
            path: raw.path.clone(),
            offset: raw.offset,
            what,
        };
        // Until the checkpoint's own tick record is reached, everything up
        // to the checkpoint is skipped.
        let current = match &self.checkpoint {
            Some((tick, _)) => *tick,
            None => self.last.map_or(0, |roots| roots.tick),
        };
        if let Some(tick) = raw.tick()
            && tick <= current
        {
            // Before the checkpoint replay resumed from: the chain and
            // checksums were checked by the reader; only the checkpoint's
            // own tick record is compared, below.
            if raw.kind == everarcade_store::journal::RecordKind::Tick
                && let Some((checkpoint_tick, path)) = self.checkpoint.clone()
                && tick == checkpoint_tick
            {
                let Record::Tick(record) = raw.decode()? else {
                    unreachable!("kind checked")
                };
                self.check_checkpoint(&record, &path)?;
            }
            return Ok(false);
        }
        match raw.decode()? {
            Record::Genesis(genesis) => self.genesis(genesis, raw)?,
            Record::Inputs(inputs) => self.inputs(inputs, raw, prechecked)?,
            Record::Tick(record) => {
                if let Some((tick, _)) = &self.checkpoint {
                    return Err(lineage(format!(
                        "tick {} follows tick {current}, but the checkpoint replay began from is of tick {tick}",
                        record.roots.tick
                    )));
                }
                self.tick(record, raw)?;
                return Ok(self
                    .options
                    .stop_after
                    .is_some_and(|stop| self.last.is_some_and(|l| l.tick >= stop)));
            }
        }
        Ok(false)
    }

    fn check_checkpoint(
        &mut self,
        record: &TickRecord,
        path: &std::path::Path,
    ) -> Result<(), WorldError> {
        let world = self.world.as_mut().expect("resumed from the checkpoint");
        let state_root = world.state_root();
        if record.roots.continuity_root != world.continuity_root()
            || record.roots.state_root != state_root
        {
            return Err(WorldError::Lineage {
                path: path.to_path_buf(),
                offset: 0,
                what: format!(
                    "the checkpoint contradicts the journal at tick {}: it holds continuity {} and state {}, the journal records {} and {}",
                    record.roots.tick,
                    world.continuity_root(),
                    state_root,
                    record.roots.continuity_root,
                    record.roots.state_root
                ),
            });
        }
        self.last = Some(record.roots);
        self.checkpoint = None;
        Ok(())
    }

    fn genesis(&mut self, genesis: GenesisRecord, raw: &RawRecord) -> Result<(), WorldError> {
        let context = self.context;
        let genesis_package = self.schedule.genesis_package().clone();
        let package = &genesis_package.package;
        if genesis.package_root != package.root {
            return Err(WorldError::PackageMismatch {
                bound: genesis.package_root,
                given: package.root,
            });
        }
        if &genesis.world != context.id {
            return Err(WorldError::Lineage {
                path: raw.path.clone(),
                offset: raw.offset,
                what: format!(
                    "the journal is of world {}, not {}",
                    genesis.world, context.id
                ),
            });
        }
        let empty = list_root(&[]);
        match &mut self.world {
            Some(world) => {
                if world.genesis_root() != genesis.genesis_root {
                    return Err(WorldError::Lineage {
                        path: raw.path.clone(),
                        offset: raw.offset,
                        what: "the checkpoint belongs to another genesis".into(),
                    });
                }
            }
            None => {
                let (mut world, output) =
                    World::genesis(context.engine, context.id.clone(), genesis_package.clone())?;
                let replayed = [
                    ("genesis_root", genesis.genesis_root, output.genesis_root),
                    ("state_root", genesis.state_root, output.state_root),
                ];
                let differing: Vec<_> = replayed.into_iter().filter(|(_, a, b)| a != b).collect();
                if !differing.is_empty() || output.receipt != genesis.receipt {
                    return Err(WorldError::Divergence(Box::new(Divergence {
                        tick: 0,
                        roots: differing,
                        diff: None,
                    })));
                }
                self.last = Some(TickRoots {
                    tick: 0,
                    input_root: empty,
                    receipt_root: empty,
                    state_root: world.state_root(),
                    continuity_root: world.continuity_root(),
                });
                self.world = Some(world);
            }
        }
        // A checkpoint of tick 0 has no tick record to be compared with:
        // the genesis record holds its roots.
        if let Some((0, path)) = self.checkpoint.clone() {
            let roots = TickRoots {
                tick: 0,
                input_root: empty,
                receipt_root: empty,
                state_root: genesis.state_root,
                continuity_root: genesis.genesis_root,
            };
            let record = TickRecord {
                roots,
                input_count: 0,
                receipts: Vec::new(),
            };
            self.check_checkpoint(&record, &path)?;
        }
        self.genesis = Some(genesis);
        Ok(())
    }

    fn inputs(
        &mut self,
        inputs: InputsRecord,
        raw: &RawRecord,
        prechecked: Prechecked,
    ) -> Result<(), WorldError> {
        let expected = self.last.map_or(0, |roots| roots.tick) + 1;
        if inputs.tick != expected {
            return Err(WorldError::Lineage {
                path: raw.path.clone(),
                offset: raw.offset,
                what: format!(
                    "inputs for tick {} where tick {expected} is next",
                    inputs.tick
                ),
            });
        }
        let world = self.world.as_mut().expect("genesis comes first");
        let admitted = if self.options.verify_signatures {
            match prechecked {
                Some((rule, signatures))
                    if rule == world.signature_rule()
                        && signatures.len() == inputs.envelopes.len() =>
                {
                    world.admit_all_checked(&inputs.envelopes, signatures)
                }
                _ => world.admit_all(&inputs.envelopes),
            }
        } else {
            inputs
                .envelopes
                .iter()
                .enumerate()
                .try_for_each(|(index, envelope)| {
                    world.readmit(envelope).map_err(|error| (index, error))
                })
        };
        admitted.map_err(|(index, error)| WorldError::InputRefused {
            tick: expected,
            index: self.inputs.len() + index,
            path: raw.path.clone(),
            offset: raw.offset,
            error,
        })?;
        self.inputs.extend(inputs.envelopes);
        Ok(())
    }

    fn tick(&mut self, record: TickRecord, raw: &RawRecord) -> Result<(), WorldError> {
        let lineage = |what: String| WorldError::Lineage {
            path: raw.path.clone(),
            offset: raw.offset,
            what,
        };
        let expected = self.last.map_or(0, |roots| roots.tick) + 1;
        let tick = record.roots.tick;
        if tick != expected {
            return Err(lineage(format!(
                "tick {tick} where tick {expected} is next"
            )));
        }
        if record.input_count as usize != self.inputs.len() {
            return Err(lineage(format!(
                "tick {tick} records {} inputs, but {} were journaled for it",
                record.input_count,
                self.inputs.len()
            )));
        }
        let world = self.world.as_mut().expect("genesis comes first");
        if self.inputs.len() > world.limits().inputs_per_tick as usize {
            return Err(lineage(format!(
                "tick {tick} holds more inputs than inputs_per_tick"
            )));
        }
        let package = self.schedule.package_for(tick);
        if !Arc::ptr_eq(world.compiled(), package) {
            world.set_package(package.clone());
        }
        let inputs = std::mem::take(&mut self.inputs);
        let mut output = world.execute_tick(self.context.engine, &inputs)?;
        if self.schedule.outcomes_only() {
            if output.roots.state_root != record.roots.state_root
                || !same_outcomes(&output.receipts, &record.receipts)
            {
                return Err(self.diverged(&record.roots, &output.roots, &inputs));
            }
            world.set_continuity_root(record.roots.continuity_root);
            output.roots = record.roots;
            output.receipts = record.receipts.clone();
        }
        if output.roots != record.roots {
            return Err(self.diverged(&record.roots, &output.roots, &inputs));
        }
        if output.receipts != record.receipts {
            return Err(lineage(format!(
                "tick {tick}: the recorded receipts do not match the recorded receipt root"
            )));
        }
        self.last = Some(output.roots);
        self.ticks_replayed += 1;
        (self.observe)(ReplayedTick {
            record: &record,
            output: &output,
            segment: &raw.path,
            end_bytes: raw.offset + raw.encoded_len(),
        });
        Ok(())
    }

    fn diverged(
        &self,
        recorded: &TickRoots,
        replayed: &TickRoots,
        inputs: &[Envelope],
    ) -> WorldError {
        let roots = differing_roots(recorded, replayed);
        let diff = if self.options.diff_on_divergence {
            self.diff_at(recorded.tick, inputs)
        } else {
            None
        };
        WorldError::Divergence(Box::new(Divergence {
            tick: recorded.tick,
            roots,
            diff,
        }))
    }

    /// Replays again to the tick before `tick` and diffs what `tick` changes.
    fn diff_at(&self, tick: Tick, inputs: &[Envelope]) -> Option<crate::diff::StateDiff> {
        let options = ReplayOptions {
            stop_after: Some(tick - 1),
            diff_on_divergence: false,
            verify_signatures: false,
            ..*self.options
        };
        let start = match &self.options.start {
            Start::Genesis => Start::Genesis,
            _ => Start::NewestCheckpoint,
        };
        let options = ReplayOptions { start, ..options };
        let mut before = replay(self.context, &options, &mut |_| {}).ok()?.world;
        before.set_package(self.schedule.package_for(tick).clone());
        let state = before.state().clone();
        for envelope in inputs {
            before.readmit(envelope).ok()?;
        }
        before.execute_tick(self.context.engine, inputs).ok()?;
        Some(state_diff(&state, before.state()))
    }
}

/// Receipts equal in everything but fuel.
fn same_outcomes(
    replayed: &[everarcade_protocol::Receipt],
    recorded: &[everarcade_protocol::Receipt],
) -> bool {
    replayed.len() == recorded.len()
        && replayed.iter().zip(recorded).all(|(a, b)| {
            (a.kind, a.subject, a.outcome, a.events_hash, a.event_count)
                == (b.kind, b.subject, b.outcome, b.events_hash, b.event_count)
        })
}

/// The named ways a world is replayed on its way in ([`crate::front_door`])
/// and by the commands that verify it; each is one fixed [`ReplayOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayProfile {
    /// What opening a world does: from the newest checkpoint that verifies,
    /// trusting the journal's checksums for signatures, to the end of the
    /// journal.
    Recovery,
    /// What a new runtime version and `replay-verify` do: from genesis,
    /// every signature re-checked, to the end of the journal.
    VerifyFromGenesis,
}

impl ReplayProfile {
    /// The options of this profile. Both report a state diff on divergence.
    pub fn options(self) -> ReplayOptions {
        match self {
            ReplayProfile::Recovery => ReplayOptions {
                start: Start::NewestCheckpoint,
                stop_after: None,
                verify_signatures: false,
                diff_on_divergence: true,
            },
            ReplayProfile::VerifyFromGenesis => ReplayOptions {
                start: Start::Genesis,
                stop_after: None,
                verify_signatures: true,
                diff_on_divergence: true,
            },
        }
    }

    /// The name logs and reports use: `recovery`, `verify from genesis`.
    pub fn name(self) -> &'static str {
        match self {
            ReplayProfile::Recovery => "recovery",
            ReplayProfile::VerifyFromGenesis => "verify from genesis",
        }
    }
}

/// Each root of a tick that differs between the recorded roots and these,
/// in the order input, receipt, state, continuity: `(name, recorded, here)`.
pub fn differing_roots(recorded: &TickRoots, here: &TickRoots) -> Vec<(&'static str, Hash, Hash)> {
    [
        ("input_root", recorded.input_root, here.input_root),
        ("receipt_root", recorded.receipt_root, here.receipt_root),
        ("state_root", recorded.state_root, here.state_root),
        (
            "continuity_root",
            recorded.continuity_root,
            here.continuity_root,
        ),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .collect()
}
