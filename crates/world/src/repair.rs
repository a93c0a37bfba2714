//! `recover`: the repair actions, each stated, then a recovery that proves the
//! roots match the lineage.
//!
//! - a torn journal tail is copied to `quarantine/` and truncated (a segment
//!   torn in its header is moved to `quarantine/` whole);
//! - a checkpoint that does not load, or contradicts the journal, is moved to
//!   `quarantine/` so recovery falls back to an older one (or to genesis);
//! - a stray temporary file in `checkpoints/` is moved to `quarantine/`;
//! - corruption anywhere else in the journal cannot be repaired here: it is
//!   reported with its file and offset and recovery stops.
//!
//! Nothing is deleted.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_protocol::WorldId;
use everarcade_store::checkpoint::{list_checkpoints, load_checkpoint};
use everarcade_store::meta::{quarantine, quarantine_bytes};
use everarcade_store::{JournalReader, Storage, StoreError, WorldDir};

use crate::durable::{DurableWorld, Recovery, WorldConfig};
use crate::error::WorldError;

/// One repair action taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Bytes cut from the end of a segment; a copy is in quarantine.
    TruncatedTornTail {
        /// The segment.
        path: PathBuf,
        /// Its new length.
        offset: u64,
        /// Bytes removed.
        bytes: u64,
        /// Where the removed bytes were kept.
        copy: PathBuf,
    },
    /// A file moved to quarantine.
    Quarantined {
        /// Where it was.
        from: PathBuf,
        /// Where it is now.
        to: PathBuf,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::TruncatedTornTail {
                path,
                offset,
                bytes,
                copy,
            } => write!(
                f,
                "truncated {} to {offset} bytes: removed a torn record of {bytes} bytes (copy kept at {})",
                path.display(),
                copy.display()
            ),
            Action::Quarantined { from, to, reason } => {
                write!(f, "moved {} to {}: {reason}", from.display(), to.display())
            }
        }
    }
}

/// What `recover` did and what it proved.
pub struct Repair {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// The recovery that followed.
    pub recovery: Recovery,
    /// The recovered world (closed by the caller).
    pub world: DurableWorld,
}

/// Repairs what can be repaired, then recovers; see the module docs.
pub fn repair(
    storage: Arc<dyn Storage>,
    dir: WorldDir,
    id: WorldId,
    engine: Arc<Engine>,
    compiled: Arc<CompiledPackage>,
    config: WorldConfig,
) -> Result<Repair, WorldError> {
    let mut actions = Vec::new();
    repair_journal(&*storage, &dir, &mut actions)?;
    repair_checkpoints(&*storage, &dir, &mut actions)?;
    loop {
        let opened = DurableWorld::recover(
            storage.clone(),
            dir.clone(),
            id.clone(),
            engine.clone(),
            compiled.clone(),
            config,
        );
        let (world, recovery) = opened?;
        if recovery.skipped_checkpoints.is_empty() {
            return Ok(Repair {
                actions,
                recovery,
                world,
            });
        }
        // Checkpoints that contradict the journal: quarantine, then recover again
        // so the final recovery is one that used no suspect file.
        drop(world);
        for (path, reason) in recovery.skipped_checkpoints {
            let to = quarantine(&*storage, &dir, &path)?;
            actions.push(Action::Quarantined {
                from: path,
                to,
                reason,
            });
        }
    }
}

fn repair_journal(
    storage: &dyn Storage,
    dir: &WorldDir,
    actions: &mut Vec<Action>,
) -> Result<(), WorldError> {
    let mut reader = JournalReader::open(storage, &dir.journal())?;
    while reader.next()?.is_some() {}
    let Some(torn) = reader.torn_tail().cloned() else {
        return Ok(());
    };
    let bytes = storage
        .read(&torn.path)
        .map_err(StoreError::io("read", &torn.path))?;
    let tail = &bytes[torn.offset as usize..];
    if torn.offset == 0 {
        let to = quarantine(storage, dir, &torn.path)?;
        actions.push(Action::Quarantined {
            from: torn.path,
            to,
            reason: format!("a segment torn in its header ({} bytes)", torn.bytes),
        });
        return Ok(());
    }
    let label = format!("torn-at-{}", torn.offset);
    let copy = quarantine_bytes(storage, dir, &torn.path, &label, tail)?;
    storage
        .truncate(&torn.path, torn.offset)
        .map_err(StoreError::io("truncate", &torn.path))?;
    actions.push(Action::TruncatedTornTail {
        path: torn.path,
        offset: torn.offset,
        bytes: torn.bytes,
        copy,
    });
    Ok(())
}

fn repair_checkpoints(
    storage: &dyn Storage,
    dir: &WorldDir,
    actions: &mut Vec<Action>,
) -> Result<(), WorldError> {
    let listing = list_checkpoints(storage, dir)?;
    for stray in listing.strays {
        let to = quarantine(storage, dir, &stray)?;
        actions.push(Action::Quarantined {
            from: stray,
            to,
            reason: "not a checkpoint (a temporary file left by an interrupted write)".into(),
        });
    }
    for (_, path) in listing.checkpoints {
        if let Err(error) = load_checkpoint(storage, &path) {
            let to = quarantine(storage, dir, &path)?;
            actions.push(Action::Quarantined {
                from: path,
                to,
                reason: error.to_string(),
            });
        }
    }
    Ok(())
}
