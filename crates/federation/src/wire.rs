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
