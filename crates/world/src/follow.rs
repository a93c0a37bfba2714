//! Following an authority (docs/FEDERATION.md): a follower receives the
//! authority's journal records after its own head, checks each as replay
//! does, re-executes every tick, and journals the authority's exact bytes,
//! so its journal's chain is the authority's chain.
//!
//! Per record, in order:
//! - its ordinal is the next one, its framing and checksum check out, its
//!   `prev` is the local last checksum, its body decodes and encodes back to
//!   the same bytes;
//! - an inputs record is for the next tick and every envelope passes
//!   admission (world, size, nonce, signature; the signatures of every
//!   inputs record of a batch checked together on every core, as replay
//!   checks them);
//! - a tick record is the next tick, counts the inputs recorded for it, and
//!   the tick executed here over those inputs reaches its four roots and
//!   receipts.
//!
//! An inputs record is journaled once its inputs are admitted, as the
//! authority journals it (so a follower can acknowledge it before its tick
//! ends: `--ack replicated` over HTTP waits for that); a tick record only
//! once the tick executed here reaches its roots, so a divergent tick's
//! record is never journaled (its inputs, which passed admission, are). A
//! batch ends with one fdatasync (and one more before each checkpoint that
//! falls in it).
//!
//! Any failure stops the batch at the record that failed; the ticks before
//! it are made durable. When memory had moved past the disk (a record
//! admitted in part, a tick executed), the world is poisoned and must be
//! reopened, which brings it back to its last durable record.

use everarcade_engine::World;
use std::collections::BTreeMap;

use everarcade_protocol::{EnvelopeError, Hash, SignatureRule, Tick};
use everarcade_store::journal::{RecordFrame, decode_body, decode_record_frame};
use everarcade_store::{Record, Storage};

use crate::diff::{StateDiff, state_diff};
use crate::durable::{CheckpointTaken, DurableWorld};
use crate::error::WorldError;
use crate::replay::{Context, ReplayOptions, Start, differing_roots, replay};

/// A place in a journal: right after the record with this ordinal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The record's ordinal: 0 for the genesis record, then consecutive.
    pub ordinal: u64,
    /// Its checksum (the next record's `prev`).
    pub checksum: Hash,
    /// The last tick whose tick record is at or before it (0 at genesis).
    pub tick: Tick,
}

/// What a batch of records did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// Right after the last record checked, all of them durable: where the
    /// next batch begins and what the follower acknowledges.
    pub durable: Head,
    /// Records checked in this batch.
    pub records: usize,
    /// Ticks executed and journaled in this batch.
    pub ticks: u64,
    /// Checkpoints taken on the follower's own schedule.
    pub checkpoints: Vec<CheckpointTaken>,
    /// Each tick executed and journaled, in order, for the node's read API.
    pub executed: Vec<ExecutedTick>,
}

/// A tick a follower executed and journaled.
#[derive(Clone, Debug)]
pub struct ExecutedTick {
    /// Its roots (equal to the authority's).
    pub roots: everarcade_protocol::TickRoots,
    /// The inputs it executed.
    pub input_count: u32,
    /// Its receipts.
    pub receipts: Vec<everarcade_protocol::Receipt>,
}

/// A tick whose roots here differ from the authority's tick record.
#[derive(Clone, Debug)]
pub struct PeerRootMismatch {
    /// The tick record's ordinal.
    pub ordinal: u64,
    /// The first divergent tick.
    pub tick: Tick,
    /// Each root that differs: (name, the authority's, this node's).
    pub roots: Vec<(&'static str, Hash, Hash)>,
    /// What the tick changed in this node's state, if it could be worked out.
    pub diff: Option<StateDiff>,
}

/// Why a follower did not apply a record.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The record is refused: it is not journaled and the follower stays on
    /// its last good record.
    #[error("record {ordinal} refused ({code}): {reason}")]
    Refused {
        /// The record's ordinal.
        ordinal: u64,
        /// `record_malformed`, `record_chain_broken`, `record_out_of_order`
        /// or `input_refused`.
        code: &'static str,
        /// Why.
        reason: String,
    },
    /// The tick executed here reached other roots than the authority's.
    #[error("{}", mismatch_message(.0))]
    PeerRootMismatch(Box<PeerRootMismatch>),
    /// The local world failed (disk, engine, poisoned).
    #[error(transparent)]
    World(#[from] WorldError),
}

impl FollowError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            FollowError::Refused { code, .. } => code,
            FollowError::PeerRootMismatch(_) => "peer_root_mismatch",
            FollowError::World(error) => error.code(),
        }
    }
}

fn mismatch_message(mismatch: &PeerRootMismatch) -> String {
    let roots: Vec<String> = mismatch
        .roots
        .iter()
        .map(|(name, authority, local)| format!("{name} authority {authority}, here {local}"))
        .collect();
    format!(
        "peer root mismatch at tick {} (record {}): {}",
        mismatch.tick,
        mismatch.ordinal,
        roots.join("; ")
    )
}

/// Inside a batch: what stopped it.
enum Stop {
    Refused(&'static str, String),
    Mismatch(Box<PeerRootMismatch>, Vec<everarcade_protocol::Envelope>),
    World(WorldError),
}

impl From<WorldError> for Stop {
    fn from(error: WorldError) -> Stop {
        Stop::World(error)
    }
}

/// A carried record's framing (length, kind, checksum) and then its body,
/// each decoded or why not: checked in that order by
/// [`DurableWorld::apply_one`], the chain between the two.
pub(crate) type Decoded<'a> = Result<(RecordFrame<'a>, Result<Record, String>), String>;

pub(crate) fn decode(bytes: &[u8]) -> Decoded<'_> {
    let frame = decode_record_frame(bytes)?;
    Ok((frame, decode_body(frame.kind, frame.body)))
}

/// The signatures of a batch's inputs records, checked together on every
/// core (as replay checks them) by [`check_signatures`].
#[derive(Debug)]
pub struct CheckedSignatures {
    /// The rule they were checked under.
    rule: SignatureRule,
    /// By ordinal: the record's checksum and one result per envelope.
    by_record: BTreeMap<u64, (Hash, Vec<Result<(), EnvelopeError>>)>,
}

/// Checks the signatures of every inputs record among `records` (each
/// `(ordinal, whole record bytes)`) at once on every core, under `rule`
/// (the world's `signature_rule`). A record that does not decode is left
/// out: applying it refuses it. Pure: no world needed, so a follower runs
/// it beside the world's work on the batch before.
pub fn check_signatures(records: &[(u64, &[u8])], rule: SignatureRule) -> CheckedSignatures {
    let decoded: Vec<(u64, Decoded<'_>)> = records
        .iter()
        .map(|(ordinal, bytes)| (*ordinal, decode(bytes)))
        .collect();
    signatures_of(&decoded, rule)
}

fn signatures_of(records: &[(u64, Decoded<'_>)], rule: SignatureRule) -> CheckedSignatures {
    let mut envelopes = Vec::new();
    let mut counts = Vec::new();
    for (ordinal, decoded) in records {
        if let Ok((frame, Ok(Record::Inputs(inputs)))) = decoded {
            counts.push((*ordinal, frame.checksum, inputs.envelopes.len()));
            envelopes.extend(inputs.envelopes.iter().cloned());
        }
    }
    let mut checked =
        everarcade_protocol::Envelope::verify_signatures_under(&envelopes, rule).into_iter();
    let by_record = counts
        .into_iter()
        .map(|(ordinal, checksum, count)| {
            (ordinal, (checksum, checked.by_ref().take(count).collect()))
        })
        .collect();
    CheckedSignatures { rule, by_record }
}

impl DurableWorld {
    /// Right after the last durable record: where the next batch begins,
    /// and what the follower acknowledges (after a batch, every record
    /// checked is durable).
    pub fn durable_head(&self) -> Head {
        Head {
            ordinal: self.writer.records() - 1,
            checksum: self.writer.last_checksum(),
            tick: self.roots.tick,
        }
    }

    /// Makes this follower the authority: the tick in progress, whose
    /// inputs records were journaled but whose tick record never came, is
    /// sealed at once with exactly those inputs, so the inputs of one tick
    /// all come from one authority (docs/FEDERATION.md, fencing step 4).
    /// Returns the sealed tick, if inputs were recorded for it. Afterwards
    /// the world admits and ticks as an authority's does.
    pub fn take_authority(&mut self) -> Result<Option<everarcade_engine::TickOutput>, WorldError> {
        self.check()?;
        if self.journaled.is_empty() {
            return Ok(None);
        }
        if let Err(error) = self.writer.commit() {
            return Err(self.poison(error.into()));
        }
        self.execute_tick().map(Some)
    }

    /// Applies an authority's records, each `(ordinal, whole record bytes)`,
    /// in order from [`DurableWorld::durable_head`]; see the module docs.
    /// A batch that stops at a refused record is an error; the ticks before
    /// it were journaled all the same ([`DurableWorld::durable_head`]), and
    /// [`DurableWorld::apply_records_until_refused`] reports them.
    pub fn apply_records(&mut self, records: &[(u64, &[u8])]) -> Result<Applied, FollowError> {
        match self.apply_records_until_refused(records) {
            (applied, None) => Ok(applied),
            (_, Some(error)) => Err(error),
        }
    }

    /// [`DurableWorld::apply_records`] that also reports what the batch did
    /// before a refused record: the ticks executed and journaled ahead of it
    /// (a node publishes them to its read API), and the error that stopped it.
    pub fn apply_records_until_refused(
        &mut self,
        records: &[(u64, &[u8])],
    ) -> (Applied, Option<FollowError>) {
        self.apply_checked_until_refused(records, None)
    }

    /// [`DurableWorld::apply_records_until_refused`] with the batch's
    /// signatures already checked ([`check_signatures`], off this thread:
    /// a follower checks the next batch's while this one is made durable).
    /// A record's results are used only if they were checked under this
    /// world's signature rule, for the same record (its checksum) and
    /// with one result per envelope; otherwise it is checked here.
    pub fn apply_checked_until_refused(
        &mut self,
        records: &[(u64, &[u8])],
        checked: Option<CheckedSignatures>,
    ) -> (Applied, Option<FollowError>) {
        let mut executed = Vec::new();
        let mut checkpoints = Vec::new();
        let mut count = 0;
        let mut stop = match self.check() {
            Err(error) => Some((0, Stop::World(error))),
            Ok(()) if !self.queued.is_empty() => Some((
                0,
                Stop::World(WorldError::Busy(
                    "inputs were admitted here; a follower admits none".into(),
                )),
            )),
            Ok(()) => None,
        };
        if stop.is_none() {
            // Each record decoded once; its signatures checked with the
            // whole batch's.
            let decoded: Vec<(u64, Decoded<'_>)> = records
                .iter()
                .map(|(ordinal, bytes)| (*ordinal, decode(bytes)))
                .collect();
            let rule = self.world.signature_rule();
            let mut signatures = match checked {
                Some(checked) if checked.rule == rule => checked,
                _ => signatures_of(&decoded, rule),
            };
            for (ordinal, record) in decoded {
                let checked = signatures
                    .by_record
                    .remove(&ordinal)
                    .filter(|(checksum, _)| {
                        matches!(&record, Ok((frame, _)) if frame.checksum == *checksum)
                    })
                    .map(|(_, results)| results);
                if let Err(error) =
                    self.apply_one(ordinal, record, checked, &mut executed, &mut checkpoints)
                {
                    stop = Some((ordinal, error));
                    break;
                }
                count += 1;
            }
            // One fdatasync for every tick the batch verified.
            if let Err(error) = self.writer.commit() {
                // Nothing of the batch is known durable.
                executed.clear();
                checkpoints.clear();
                stop = Some((0, Stop::World(self.poison(error.into()))));
            }
        }
        let error = stop.map(|(ordinal, stop)| match stop {
            Stop::Refused(code, reason) => FollowError::Refused {
                ordinal,
                code,
                reason,
            },
            Stop::World(error) => error.into(),
            Stop::Mismatch(mut mismatch, inputs) => {
                mismatch.diff = self.diff_of(mismatch.tick, &inputs);
                FollowError::PeerRootMismatch(mismatch)
            }
        });
        let applied = Applied {
            durable: self.durable_head(),
            records: count,
            ticks: executed.len() as u64,
            checkpoints,
            executed,
        };
        (applied, error)
    }

    fn apply_one(
        &mut self,
        ordinal: u64,
        decoded: Decoded<'_>,
        signatures: Option<Vec<Result<(), EnvelopeError>>>,
        executed: &mut Vec<ExecutedTick>,
        checkpoints: &mut Vec<CheckpointTaken>,
    ) -> Result<(), Stop> {
        let (frame, record) = self
            .check_carried(ordinal, decoded)
            .map_err(|(code, reason)| Stop::Refused(code, reason))?;
        let next = self.world.tick() + 1;
        match &record {
            Record::Genesis(_) => Err(Stop::Refused(
                "record_out_of_order",
                "a genesis record after the journal's first".into(),
            )),
            Record::Inputs(inputs) => {
                if inputs.tick != next {
                    return Err(Stop::Refused(
                        "record_out_of_order",
                        format!("inputs for tick {} where tick {next} is next", inputs.tick),
                    ));
                }
                let limit = self.world.limits().inputs_per_tick;
                if self.journaled.len() + inputs.envelopes.len() > limit as usize {
                    let error = EnvelopeError::TickFull { tick: next, limit };
                    return Err(Stop::Refused("input_refused", error.to_string()));
                }
                let before = self.journaled.len();
                let admitted = match signatures {
                    Some(checked) if checked.len() == inputs.envelopes.len() => {
                        self.world.admit_all_checked(&inputs.envelopes, checked)
                    }
                    _ => self.world.admit_all(&inputs.envelopes),
                };
                if let Err((index, error)) = admitted {
                    // Those before it are admitted in memory.
                    if index > 0 {
                        self.poisoned = Some(format!(
                            "record {ordinal} was admitted in part before input {index} was refused"
                        ));
                    }
                    return Err(Stop::Refused(
                        "input_refused",
                        format!("input {} of tick {next}: {error}", before + index),
                    ));
                }
                if let Err(error) =
                    self.append_carried(&record, &frame.checksum, &format!("record {ordinal}"))
                {
                    return Err(self.poison(error).into());
                }
                self.journaled.extend(inputs.envelopes.iter().cloned());
                Ok(())
            }
            Record::Tick(tick) => {
                let recorded = tick.roots;
                if recorded.tick != next {
                    return Err(Stop::Refused(
                        "record_out_of_order",
                        format!("tick {} where tick {next} is next", recorded.tick),
                    ));
                }
                if tick.input_count as usize != self.journaled.len() {
                    return Err(Stop::Refused(
                        "record_out_of_order",
                        format!(
                            "tick {next} records {} inputs, but {} were recorded for it",
                            tick.input_count,
                            self.journaled.len()
                        ),
                    ));
                }
                let inputs = std::mem::take(&mut self.journaled);
                let output = match self.world.execute_tick(&self.engine, &inputs) {
                    Ok(output) => output,
                    Err(error) => return Err(self.poison(error.into()).into()),
                };
                if output.roots != recorded {
                    let roots = differing_roots(&recorded, &output.roots);
                    self.poisoned = Some(format!("peer root mismatch at tick {next}"));
                    let mismatch = PeerRootMismatch {
                        ordinal,
                        tick: next,
                        roots,
                        diff: None,
                    };
                    return Err(Stop::Mismatch(Box::new(mismatch), inputs));
                }
                if output.receipts != tick.receipts {
                    self.poisoned = Some(format!("tick {next}'s record is inconsistent"));
                    return Err(Stop::Refused(
                        "record_malformed",
                        format!(
                            "tick {next}: the recorded receipts do not match the recorded receipt root"
                        ),
                    ));
                }
                if let Err(error) =
                    self.append_carried(&record, &frame.checksum, &format!("tick {next}"))
                {
                    return Err(self.poison(error).into());
                }
                self.roots = output.roots;
                executed.push(ExecutedTick {
                    roots: output.roots,
                    input_count: inputs.len() as u32,
                    receipts: output.receipts,
                });
                let interval = self.config.checkpoint_interval_ticks;
                if interval > 0 && next.is_multiple_of(interval) {
                    if let Err(error) = self.writer.commit() {
                        return Err(self.poison(error.into()).into());
                    }
                    checkpoints.push(self.checkpoint()?);
                }
                Ok(())
            }
        }
    }

    /// The checks of a carried record that need neither admission nor
    /// execution, in order: its ordinal is the next one, its framing and
    /// checksum check out, its `prev` is the local last checksum, its body
    /// decodes and encodes back to the same bytes. Returns its frame and
    /// body, or the refusal's code and reason. Shared by following and by
    /// journaling ahead (`crate::catch_up`).
    pub(crate) fn check_carried<'a>(
        &self,
        ordinal: u64,
        decoded: Decoded<'a>,
    ) -> Result<(RecordFrame<'a>, Record), (&'static str, String)> {
        let head = self.durable_head();
        if ordinal != head.ordinal + 1 {
            return Err((
                "record_out_of_order",
                format!("record {ordinal} where record {} is next", head.ordinal + 1),
            ));
        }
        let (frame, body) = decoded.map_err(|what| ("record_malformed", what))?;
        if frame.prev != head.checksum {
            return Err((
                "record_chain_broken",
                format!(
                    "its prev {} is not the checksum {} of record {}",
                    frame.prev, head.checksum, head.ordinal
                ),
            ));
        }
        let record = body.map_err(|what| ("record_malformed", what))?;
        if record.encode_body() != frame.body {
            return Err((
                "record_malformed",
                "the body is not in its one canonical encoding".into(),
            ));
        }
        Ok((frame, record))
    }

    /// Appends a carried record (`what` names it in an error): the
    /// checksum it gets here must be the authority's, `checksum`, or the
    /// journal's chain here is not the authority's. The caller decides
    /// whether a failure poisons the world.
    pub(crate) fn append_carried(
        &mut self,
        record: &Record,
        checksum: &Hash,
        what: &str,
    ) -> Result<(), WorldError> {
        match self.writer.append(record) {
            Ok(appended) if appended == *checksum => Ok(()),
            Ok(_) => Err(WorldError::Busy(format!(
                "{what}: the journal's chain here is not the authority's"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// What tick `tick` changes in the state, from this node's durable
    /// journal (which ends before it) replayed to the tick before.
    fn diff_of(&self, tick: Tick, inputs: &[everarcade_protocol::Envelope]) -> Option<StateDiff> {
        let context = Context {
            storage: &*self.storage as &dyn Storage,
            dir: &self.dir,
            id: &self.genesis.world,
            engine: &self.engine,
            compiled: self.world.compiled().clone(),
            schedule: None,
        };
        let options = ReplayOptions {
            start: Start::NewestCheckpoint,
            stop_after: Some(tick - 1),
            verify_signatures: false,
            diff_on_divergence: false,
        };
        let mut before: World = replay(&context, &options, &mut |_| {}).ok()?.world;
        let state = before.state().clone();
        for envelope in inputs {
            before.readmit(envelope).ok()?;
        }
        before.execute_tick(&self.engine, inputs).ok()?;
        Some(state_diff(&state, before.state()))
    }
}
