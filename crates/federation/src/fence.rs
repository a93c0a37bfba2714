//! A fenced authority's journal suffix (docs/FEDERATION.md §A returning
//! authority): the records after the last one the stream holds were never
//! replicated (never acknowledged under `--ack replicated`); they are moved
//! to the world's quarantine, never deleted, and the journal is cut after
//! the last replicated record so the node can follow again.
//!
//! Runs on a world that is not open (no journal writer). Each step leaves a
//! journal that reads as a valid, shorter journal, so a crash in the middle
//! only leaves less to do: later segments move first, newest first; then the
//! cut segment's tail is copied to the quarantine (durable) before the
//! segment is truncated; then checkpoints of ticks past the cut move.

use std::path::PathBuf;

use everarcade_protocol::{Hash, Tick};
use everarcade_store::journal::RecordKind;
use everarcade_store::layout::{parse_checkpoint_name, parse_segment_name};
use everarcade_store::meta::{quarantine, quarantine_bytes};
use everarcade_store::{JournalReader, Storage, StoreError, WorldDir};

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
    /// Where everything went, in the order it was moved.
    pub moved: Vec<PathBuf>,
}

/// Moves the journal's records after ordinal `keep_through` (and any torn
/// tail, and the checkpoints of ticks after the last kept tick record) to
/// the world's quarantine and cuts the journal there. A journal that ends
/// at or before `keep_through` is left as it is (nothing to move).
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
        moved: Vec::new(),
    };
    if records == 0 && torn.is_none() {
        return Ok(summary);
    }

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
        .read(&cut_path)
        .map_err(StoreError::io("read", &cut_path))?;
    let cut_at = usize::try_from(cut_offset).expect("a segment fits in memory");
    if bytes.len() > cut_at {
        let label = format!("unreplicated-after-record-{}", summary.kept_through);
        summary.moved.push(quarantine_bytes(
            storage,
            world,
            &cut_path,
            &label,
            &bytes[cut_at..],
        )?);
        summary.bytes += (bytes.len() - cut_at) as u64;
        storage
            .truncate(&cut_path, cut_offset)
            .map_err(StoreError::io("truncate", &cut_path))?;
    }

    let checkpoints = world.checkpoints();
    let names = match storage.list(&checkpoints) {
        Ok(names) => names,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(StoreError::io("list", &checkpoints)(error).into()),
    };
    for name in names {
        if parse_checkpoint_name(&name).is_some_and(|tick| tick > kept_tick) {
            summary
                .moved
                .push(quarantine(storage, world, &checkpoints.join(&name))?);
        }
    }
    Ok(summary)
}
