//! Catching up from an authority's checkpoint (docs/FEDERATION.md): a
//! follower far behind journals the authority's records up to the tick of
//! the authority's newest checkpoint *without executing them*, installs that
//! checkpoint, and reopens, so it resumes following from the checkpoint's
//! tick instead of re-executing every tick before it.
//!
//! What is checked, and what is trusted:
//! - every record journaled ahead is checked as far as it can be without
//!   executing it: its ordinal, framing, checksum and chain (its `prev` is
//!   the local last checksum), its one canonical encoding, ticks in order,
//!   and each tick record counting the inputs recorded for it;
//! - the checkpoint is checked before it is written: its checksum, its
//!   state rebuilt and rehashed to the state root it records, its genesis
//!   root this world's, its tick the last tick journaled, and its
//!   continuity and state roots those of that tick's record; reopening then
//!   checks it against the journal once more, as recovery always does;
//! - the signatures, nonces and roots of the ticks before the checkpoint
//!   are the authority's word: they are not re-derived here. `replay-verify`
//!   on this node re-executes every one of them from genesis.
//!
//! While records are journaled ahead the world's memory is behind its
//! journal, so it refuses every other operation (it is poisoned) until
//! [`DurableWorld::install_checkpoint`] or [`DurableWorld::reopen`]. A crash
//! in between loses nothing: recovery replays the journal, executing every
//! tick, as for any follower.

use everarcade_protocol::Tick;
use everarcade_store::Record;
use everarcade_store::checkpoint::{decode_checkpoint, prune_checkpoints, write_checkpoint};
use everarcade_store::keys::{file_digest, sign_checkpoint};

use crate::durable::{DurableWorld, Recovery};
use crate::error::WorldError;
use crate::follow::{FollowError, Head, decode};

/// Why the world refuses other work while it is ahead.
const AHEAD_REASON: &str = "records were journaled ahead of execution to catch up from a \
                            checkpoint; the checkpoint must be installed or the world reopened";

/// What journaling a batch ahead did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournaledAhead {
    /// Records journaled from the batch (a prefix of it; the rest lies past
    /// the checkpoint's tick and is followed as usual afterwards).
    pub records: usize,
    /// Right after the last record journaled, all of them durable.
    pub durable: Head,
}

impl DurableWorld {
    /// Whether records were journaled ahead of execution and the world
    /// awaits [`DurableWorld::install_checkpoint`] or a reopen.
    pub fn is_ahead(&self) -> bool {
        self.ahead
    }

    /// Journals the authority's records `(ordinal, whole record bytes)`
    /// from [`DurableWorld::durable_head`] up to and including tick
    /// `through`'s tick record, without executing them (see the module
    /// docs for what is checked); the records after it are left. One
    /// fdatasync for the batch.
    pub fn journal_ahead(
        &mut self,
        records: &[(u64, &[u8])],
        through: Tick,
    ) -> Result<JournaledAhead, FollowError> {
        if !self.ahead {
            self.check()?;
            if !self.queued.is_empty() {
                return Err(WorldError::Busy(
                    "inputs were admitted here; a follower admits none".into(),
                )
                .into());
            }
            if through <= self.roots.tick {
                return Err(WorldError::Busy(format!(
                    "tick {through} is not ahead of this world's tick {}",
                    self.roots.tick
                ))
                .into());
            }
        }
        let mut count = 0;
        let mut refused = None;
        for (ordinal, bytes) in records {
            if self.roots.tick >= through {
                break;
            }
            if let Err(error) = self.journal_one_ahead(*ordinal, bytes) {
                refused = Some(error);
                break;
            }
            count += 1;
        }
        if let Err(error) = self.writer.commit() {
            // Nothing is known durable; only a reopen can tell what is.
            return Err(FollowError::World(error.into()));
        }
        match refused {
            Some(error) => Err(error),
            None => Ok(JournaledAhead {
                records: count,
                durable: self.durable_head(),
            }),
        }
    }

    fn journal_one_ahead(&mut self, ordinal: u64, bytes: &[u8]) -> Result<(), FollowError> {
        let refused = |code: &'static str, reason: String| FollowError::Refused {
            ordinal,
            code,
            reason,
        };
        let (frame, record) = self
            .check_carried(ordinal, decode(bytes))
            .map_err(|(code, reason)| refused(code, reason))?;
        let next = self.roots.tick + 1;
        match &record {
            Record::Genesis(_) => {
                return Err(refused(
                    "record_out_of_order",
                    "a genesis record after the journal's first".into(),
                ));
            }
            Record::Inputs(inputs) => {
                if inputs.tick != next {
                    return Err(refused(
                        "record_out_of_order",
                        format!("inputs for tick {} where tick {next} is next", inputs.tick),
                    ));
                }
            }
            Record::Tick(tick) => {
                if tick.roots.tick != next {
                    return Err(refused(
                        "record_out_of_order",
                        format!("tick {} where tick {next} is next", tick.roots.tick),
                    ));
                }
                if tick.input_count as usize != self.journaled.len() {
                    return Err(refused(
                        "record_out_of_order",
                        format!(
                            "tick {next} records {} inputs, but {} were recorded for it",
                            tick.input_count,
                            self.journaled.len()
                        ),
                    ));
                }
            }
        }
        // From the first record on, memory is behind the journal.
        self.ahead = true;
        self.poisoned = Some(AHEAD_REASON.into());
        self.append_carried(&record, &frame.checksum, &format!("record {ordinal}"))?;
        match record {
            Record::Inputs(inputs) => self.journaled.extend(inputs.envelopes),
            Record::Tick(tick) => {
                self.journaled.clear();
                self.roots = tick.roots;
            }
            Record::Genesis(_) => unreachable!("refused above"),
        }
        Ok(())
    }

    /// Installs the authority's checkpoint `bytes` of the last tick
    /// journaled ahead, after checking it (see the module docs), and
    /// reopens the world from it. A refused checkpoint is not written: the
    /// error names why, and the world must then be reopened with
    /// [`DurableWorld::reopen`], which executes the records journaled ahead.
    pub fn install_checkpoint(&mut self, bytes: &[u8]) -> Result<Recovery, FollowError> {
        let head = self.durable_head();
        let refused = |reason: String| FollowError::Refused {
            ordinal: head.ordinal,
            code: "checkpoint_refused",
            reason,
        };
        if !self.ahead {
            return Err(WorldError::Busy(
                "no records were journaled ahead: there is no tick to install a checkpoint at"
                    .into(),
            )
            .into());
        }
        if !self.journaled.is_empty() {
            return Err(refused(format!(
                "the journal ends inside tick {}, not at a tick boundary",
                head.tick + 1
            )));
        }
        let checkpoint = decode_checkpoint(bytes).map_err(|error| refused(error.to_string()))?;
        let expected = [
            ("tick", checkpoint.tick == head.tick),
            (
                "genesis root",
                checkpoint.genesis_root == self.genesis.genesis_root,
            ),
            (
                "continuity root",
                checkpoint.continuity_root == self.roots.continuity_root,
            ),
            ("state root", checkpoint.state_root == self.roots.state_root),
        ];
        if let Some((what, _)) = expected.iter().find(|(_, equal)| !equal) {
            return Err(refused(format!(
                "its {what} is not the journal's at tick {} (the checkpoint is of tick {})",
                head.tick, checkpoint.tick
            )));
        }
        drop(checkpoint);
        // Signed with this node's operator key like its own checkpoints,
        // and, as for those, the signature first: a listed checkpoint
        // always has its signature.
        if let Some(keys) = &self.operator {
            sign_checkpoint(
                &*self.storage,
                &self.dir,
                keys,
                head.tick,
                &file_digest(bytes),
            )
            .map_err(|error| FollowError::World(error.into()))?;
        }
        let retained = self.config.checkpoints_retained.max(1);
        write_checkpoint(&*self.storage, &self.dir, head.tick, bytes)
            .and_then(|_| prune_checkpoints(&*self.storage, &self.dir, retained))
            .map_err(|error| FollowError::World(error.into()))?;
        let recovery = self.reopen()?;
        if recovery.roots != self.roots || recovery.roots.tick != head.tick {
            return Err(refused(format!(
                "reopened at tick {}, not at the checkpoint's tick {}",
                recovery.roots.tick, head.tick
            )));
        }
        Ok(recovery)
    }

    /// Reopens the world from its files: recovery from the newest
    /// checkpoint that verifies plus the journal after it, as at start.
    /// What a poisoned world, or one left ahead by a refused checkpoint,
    /// needs.
    pub fn reopen(&mut self) -> Result<Recovery, WorldError> {
        let (mut reopened, recovery) = DurableWorld::recover(
            self.storage.clone(),
            self.dir.clone(),
            self.genesis.world.clone(),
            self.engine.clone(),
            self.world.compiled().clone(),
            self.config,
        )?;
        reopened.operator = self.operator.clone();
        *self = reopened;
        Ok(recovery)
    }
}
