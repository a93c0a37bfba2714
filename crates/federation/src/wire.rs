//! A journal record as carried between hosts.

use everarcade_protocol::{Hash, Tick};
use everarcade_store::journal::RecordKind;

/// Where a journal stands: right after the record with this ordinal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The record's ordinal: 0 for the genesis record, then consecutive.
    pub ordinal: u64,
    /// Its checksum (the next record's `prev`).
    pub checksum: Hash,
    /// The last tick whose tick record is at or before it (0 at genesis).
    pub tick: Tick,
}

impl Position {
    /// Whether both are right after the same record (ordinal and
    /// checksum; the tick is not compared).
    pub fn same_record(&self, other: &Position) -> bool {
        self.ordinal == other.ordinal && self.checksum == other.checksum
    }
}

/// One journal record: its exact bytes in the journal (header, body,
/// checksum; docs/FORMATS.md §Journal) and its ordinal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRecord {
    /// See [`Position::ordinal`].
    pub ordinal: u64,
    /// The record's kind.
    pub kind: RecordKind,
    /// The whole encoded record.
    pub bytes: Vec<u8>,
}

impl WireRecord {
    /// Right after this record, as its bytes say: its ordinal and the
    /// checksum its trailer carries, not checked here (applying the record
    /// checks it), with `tick` as given; `None` if it is too short to hold
    /// a checksum. Where the next pull begins if this record applies.
    pub fn position_after(&self, tick: Tick) -> Option<Position> {
        let start = self
            .bytes
            .len()
            .checked_sub(everarcade_store::journal::RECORD_TRAILER_BYTES)?;
        Some(Position {
            ordinal: self.ordinal,
            checksum: Hash(self.bytes[start..].try_into().ok()?),
            tick,
        })
    }
}
