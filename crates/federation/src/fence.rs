//! A fenced authority's journal suffix (docs/FEDERATION.md §A returning
//! authority): the records after the last one the stream holds were never
//! replicated (never acknowledged under `--ack replicated`); they are moved
//! to the world's quarantine, never deleted, and the journal is cut after
//! the last replicated record so the node can follow again. What the world
//! recorded past the cut goes with them: the checkpoints of later ticks,
//! and the package upgrades that took effect at a later tick (the ticks
//! after the cut will be executed again, by the package that ran before
//! those upgrades).
//!
//! Runs on a world that is not open (no journal writer). The steps, in
//! order, and why a crash between any two only leaves less to do:
//!
//! 1. checkpoints of ticks past the cut move (with their signatures): the
//!    world then recovers from an earlier checkpoint, a valid world;
//! 2. upgrades at ticks past the cut are undone
//!    ([`everarcade_world::upgrade::undo_transitions_after`]): the old
//!    `lineage.json` is copied to the quarantine (durable) before it is
//!    rewritten atomically, and `package/` becomes the earlier package.
//!    This comes before the cut because the suffix being there is what
//!    makes the caller run this again (the returning authority's journal
//!    still holds records the stream does not); once the journal is cut,
//!    nothing would say that an upgrade inside the suffix was still to be
//!    undone. In between, the suffix is in the journal with the earlier
//!    package bound: recovery replays it under that package and refuses
//!    to open unless it reaches the recorded roots, so nothing runs on a
//!    wrong package;
//! 3. the journal is cut: later segments move first, newest first; then
//!    the cut segment's tail is copied to the quarantine (durable) before
//!    the segment is truncated. Each of these leaves a valid, shorter
//!    journal.
//!
//! Running it again after it finished moves nothing more.

use std::path::{Path, PathBuf};

use everarcade_protocol::{Hash, Tick};
use everarcade_store::checkpoint::quarantine_after;
use everarcade_store::journal::RecordKind;
use everarcade_store::layout::parse_segment_name;
use everarcade_store::meta::{quarantine, quarantine_bytes};
use everarcade_store::{JournalReader, Storage, StoreError, WorldDir};
use everarcade_world::lineage::TransitionBody;
use everarcade_world::upgrade::undo_transitions_after;

use crate::error::FederationError;

/// What [`quarantine_suffix`] moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuffixQuarantined {
    /// The last record kept: its ordinal and checksum.
    pub kept_through: u64,
    /// Its checksum (the journal's last checksum now).
    pub kept_checksum: Hash,
    /// The last tick whose tick record was kept (0 at genesis).
    pub kept_tick: Tick,
    /// Records moved out of the journal.
    pub records: u64,
    /// Journal bytes moved (record bytes and any torn tail).
    pub bytes: u64,
    /// The package upgrades undone: those `lineage.json` recorded at a tick
    /// after `kept_tick`, in tick order (their packages stay in
    /// `packages/<root>/`).
    pub transitions_undone: Vec<TransitionBody>,
    /// Where everything went, in the order it was moved (or copied, for
    /// `lineage.json` before it was rewritten).
    pub moved: Vec<PathBuf>,
}

/// Moves the journal's records after ordinal `keep_through` (and any torn
/// tail, and the checkpoints of ticks after the last kept tick record) to
/// the world's quarantine, undoes the package upgrades recorded at ticks
/// after the last kept tick, and cuts the journal there (in the order the
/// module documentation gives). A journal that ends at or before
/// `keep_through` is left as it is (nothing to move, nothing undone).
pub fn quarantine_suffix(
    storage: &dyn Storage,
    world: &WorldDir,
    keep_through: u64,
) -> Result<SuffixQuarantined, FederationError> {
    let journal = world.journal();
    let mut reader = JournalReader::open(storage, &journal)?;
    let mut ordinal = 0u64;
    let mut cut: Option<(PathBuf, u64, Hash)> = None;
    let mut kept_tick = 0;
    let mut records = 0u64;
    while let Some(record) = reader.next()? {
        if ordinal <= keep_through {
            cut = Some((
                record.path.clone(),
                record.offset + record.encoded_len(),
                record.checksum,
            ));
            if record.kind == RecordKind::Tick {
                kept_tick = record.tick().unwrap_or(kept_tick);
            }
        } else {
            records += 1;
        }
        ordinal += 1;
    }
    let torn = reader.torn_tail().cloned();
    let Some((cut_path, cut_offset, kept_checksum)) = cut else {
        return Err(FederationError::Store(StoreError::Corrupt {
            path: journal,
            offset: 0,
            what: "the journal has no genesis record".into(),
        }));
    };
    let mut summary = SuffixQuarantined {
        kept_through: keep_through.min(ordinal.saturating_sub(1)),
        kept_checksum,
        kept_tick,
        records,
        bytes: 0,
        transitions_undone: Vec::new(),
        moved: Vec::new(),
    };
    if records == 0 && torn.is_none() {
        return Ok(summary);
    }

    summary
        .moved
        .extend(quarantine_after(storage, world, kept_tick)?);
    let undone = undo_transitions_after(storage, world, kept_tick)?;
    summary.transitions_undone = undone.transitions;
    summary.moved.extend(undone.preserved);
    cut_journal(storage, world, &cut_path, cut_offset, &mut summary)?;
    Ok(summary)
}

/// Cuts the journal after the record ending at `cut_offset` of segment
/// `cut_path`: later segments move to the quarantine whole, newest first;
/// then the cut segment's tail is copied there (durable) before the
/// segment is truncated. Adds what moved to `summary`.
fn cut_journal(
    storage: &dyn Storage,
    world: &WorldDir,
    cut_path: &Path,
    cut_offset: u64,
    summary: &mut SuffixQuarantined,
) -> Result<(), FederationError> {
    let journal = world.journal();
    let cut_index = cut_path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(parse_segment_name)
        .expect("the reader read this segment");
    let names = storage
        .list(&journal)
        .map_err(StoreError::io("list", &journal))?;
    let mut later: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|name| parse_segment_name(name).map(|index| (index, journal.join(name))))
        .filter(|(index, _)| *index > cut_index)
        .collect();
    later.sort();
    for (_, path) in later.into_iter().rev() {
        summary.bytes += storage
            .read(&path)
            .map_err(StoreError::io("read", &path))?
            .len() as u64;
        summary.moved.push(quarantine(storage, world, &path)?);
    }

    let bytes = storage
        .read(cut_path)
        .map_err(StoreError::io("read", cut_path))?;
    let cut_at = usize::try_from(cut_offset).expect("a segment fits in memory");
    if bytes.len() > cut_at {
        let label = format!("unreplicated-after-record-{}", summary.kept_through);
        summary.moved.push(quarantine_bytes(
            storage,
            world,
            cut_path,
            &label,
            &bytes[cut_at..],
        )?);
        summary.bytes += (bytes.len() - cut_at) as u64;
        storage
            .truncate(cut_path, cut_offset)
            .map_err(StoreError::io("truncate", cut_path))?;
    }
    Ok(())
}
