//! Counting a window of ticks from the journal: the part of a report the
//! journal proves. It reads, it never re-executes: every record's checksum
//! and chain link is checked by the store's reader, records before the
//! window are skipped by their tick number, and only the window's tick
//! records are decoded.

use std::path::{Path, PathBuf};

use everarcade_protocol::{Hash, Outcome, ReceiptKind, Tick, WorldId};
use everarcade_store::journal::{JournalPosition, RecordKind};
use everarcade_store::{JournalReader, Record, Storage, StoreError};

use crate::report::{Counted, Outcomes};

/// What the journal says about a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowCount {
    /// The world named by the genesis record.
    pub world: WorldId,
    /// `C(first - 1)`.
    pub start_continuity_root: Hash,
    /// `C(last)`.
    pub end_continuity_root: Hash,
    /// The counts.
    pub counted: Counted,
}

/// Where a counted window ended in the journal: the next window's count
/// resumes there instead of reading the journal from its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The world.
    pub world: WorldId,
    /// The window's last tick.
    pub tick: Tick,
    /// `C(tick)`.
    pub continuity_root: Hash,
    /// Right after that tick's record.
    pub position: JournalPosition,
}

/// Why a window could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    /// The journal does not read (corruption, a missing segment, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The window is not `1 <= first <= last`.
    #[error("the window {first}..={last} is empty or starts before tick 1")]
    EmptyWindow {
        /// First tick asked.
        first: Tick,
        /// Last tick asked.
        last: Tick,
    },
    /// The journal ends before the window does.
    #[error("the journal's head is tick {head}; the window ends at tick {last}")]
    BeyondHead {
        /// The last tick asked.
        last: Tick,
        /// The last tick the journal holds.
        head: Tick,
    },
    /// Records out of tick order, or a tick whose input count does not match.
    #[error("{}: {what}", path.display())]
    Lineage {
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

impl CountError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            CountError::Store(error) => error.code(),
            CountError::EmptyWindow { .. } => "invalid_window",
            CountError::BeyondHead { .. } => "window_beyond_head",
            CountError::Lineage { .. } => "journal_lineage",
        }
    }
}

fn add_outcome(outcomes: &mut Outcomes, outcome: &Outcome) {
    match outcome {
        Outcome::Applied => outcomes.applied += 1,
        Outcome::Rejected(_) => outcomes.rejected += 1,
        Outcome::Trapped(_) => outcomes.trapped += 1,
        Outcome::OutOfFuel => outcomes.out_of_fuel += 1,
    }
}

/// Counts ticks `first..=last` of the journal in `journal_dir`, reading it
/// from its start.
pub fn count_window(
    storage: &dyn Storage,
    journal_dir: &Path,
    first: Tick,
    last: Tick,
) -> Result<WindowCount, CountError> {
    count_window_from(storage, journal_dir, first, last, None).map(|(count, _)| count)
}

/// Counts ticks `first..=last`, resuming after `resume` when it ended at
/// tick `first - 1` (else reading from the start); returns where the
/// window ended too.
pub fn count_window_from(
    storage: &dyn Storage,
    journal_dir: &Path,
    first: Tick,
    last: Tick,
    resume: Option<&Resume>,
) -> Result<(WindowCount, Resume), CountError> {
    if first == 0 || last < first {
        return Err(CountError::EmptyWindow { first, last });
    }
    let resume = resume.filter(|resume| resume.tick + 1 == first);
    let mut reader = match resume {
        Some(resume) => JournalReader::resume(storage, journal_dir, &resume.position)?,
        None => JournalReader::open(storage, journal_dir)?,
    };
    let mut world = resume.map(|resume| resume.world.clone());
    let mut start = resume.map(|resume| resume.continuity_root);
    let mut counted = Counted::default();
    // The next tick a record may be for, and the inputs journaled for it.
    let mut next: Tick = resume.map_or(0, |resume| resume.tick + 1);
    let mut pending_inputs: u64 = 0;
    let lineage = |path: &Path, what: String| CountError::Lineage {
        path: path.to_path_buf(),
        what,
    };
    while let Some(raw) = reader.next()? {
        if raw.kind == RecordKind::Genesis {
            let Record::Genesis(genesis) = raw.decode()? else {
                unreachable!("kind checked")
            };
            if world.is_some() {
                return Err(lineage(&raw.path, "a second genesis record".into()));
            }
            if first == 1 {
                start = Some(genesis.genesis_root);
            }
            world = Some(genesis.world);
            next = 1;
            continue;
        }
        let tick = raw.tick().unwrap_or(0);
        if world.is_none() || tick != next {
            let what = format!(
                "a {:?} record for tick {tick} at byte {} where tick {next} is next",
                raw.kind, raw.offset
            );
            return Err(lineage(&raw.path, what));
        }
        let inside = tick >= first;
        if raw.kind == RecordKind::Inputs {
            let count = raw.body.get(8..12).map_or(0, |bytes| {
                u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
            });
            pending_inputs += u64::from(count);
            if inside {
                counted.journal_bytes += raw.encoded_len();
            }
            continue;
        }
        // A tick record: decoded only at the window's edge and inside it.
        next += 1;
        let journaled = std::mem::take(&mut pending_inputs);
        if tick + 1 < first {
            continue;
        }
        let Record::Tick(record) = raw.decode()? else {
            unreachable!("kind checked")
        };
        if u64::from(record.input_count) != journaled {
            let what = format!(
                "tick {tick} records {} inputs, but {journaled} were journaled for it",
                record.input_count
            );
            return Err(lineage(&raw.path, what));
        }
        if !inside {
            start = Some(record.roots.continuity_root);
            continue;
        }
        counted.ticks += 1;
        counted.inputs_admitted += journaled;
        counted.journal_bytes += raw.encoded_len();
        for receipt in &record.receipts {
            counted.events += u64::from(receipt.event_count);
            if receipt.kind == ReceiptKind::Input {
                add_outcome(&mut counted.input_receipts, &receipt.outcome);
                counted.fuel_inputs += receipt.fuel_used;
            } else {
                add_outcome(&mut counted.hook_receipts, &receipt.outcome);
                counted.fuel_hooks += receipt.fuel_used;
            }
        }
        if tick == last {
            let (Some(world), Some(start)) = (world, start) else {
                unreachable!("genesis and the tick before the window were read")
            };
            let position = reader.position().expect("a record was just read");
            let ended = Resume {
                world: world.clone(),
                tick: last,
                continuity_root: record.roots.continuity_root,
                position,
            };
            let count = WindowCount {
                world,
                start_continuity_root: start,
                end_continuity_root: record.roots.continuity_root,
                counted,
            };
            return Ok((count, ended));
        }
    }
    Err(CountError::BeyondHead {
        last,
        head: next.saturating_sub(1),
    })
}

/// The last tick with a tick record in the journal (0 when only genesis):
/// where a report may end. Reads every record's header and checksum.
pub fn journal_head(storage: &dyn Storage, journal_dir: &Path) -> Result<Tick, CountError> {
    let mut reader = JournalReader::open(storage, journal_dir)?;
    let mut head = 0;
    while let Some(raw) = reader.next()? {
        if raw.kind == RecordKind::Tick {
            head = raw.tick().unwrap_or(head);
        }
    }
    Ok(head)
}
