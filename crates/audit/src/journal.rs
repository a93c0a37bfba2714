//! Reading a world's journal as a sequence of ticks: the genesis record,
//! then each tick record with (when asked) the inputs journaled for it.
//! Every checksum and chain link is checked by the store's reader; this adds
//! the tick order and the input counts. Read-only: a torn or still-growing
//! end simply ends the walk, so it is safe beside a running node (the
//! journal is append-only).

use std::path::{Path, PathBuf};

use everarcade_protocol::{Envelope, Tick};
use everarcade_store::journal::{GenesisRecord, RecordKind, TickRecord};
use everarcade_store::{JournalReader, Record, Storage};

use crate::error::SourceError;

/// One step of the walk.
#[derive(Debug)]
pub enum JournalItem {
    /// The first record.
    Genesis(GenesisRecord),
    /// A tick, with its inputs when they were asked for (else empty).
    Tick(TickRecord, Vec<Envelope>),
}

/// A walk over a journal's ticks; see the module docs.
pub struct JournalTicks<'a> {
    reader: JournalReader<'a>,
    path: PathBuf,
    last: Option<Tick>,
    inputs: Vec<Envelope>,
    input_count: u64,
}

impl<'a> JournalTicks<'a> {
    /// Opens the journal directory `journal`.
    pub fn open(storage: &'a dyn Storage, journal: &Path) -> Result<JournalTicks<'a>, SourceError> {
        Ok(JournalTicks {
            reader: JournalReader::open(storage, journal)?,
            path: journal.to_path_buf(),
            last: None,
            inputs: Vec::new(),
            input_count: 0,
        })
    }

    /// The last tick returned (0 after genesis).
    pub fn last(&self) -> Option<Tick> {
        self.last
    }

    fn lineage(&self, path: &Path, what: String) -> SourceError {
        SourceError::Lineage {
            path: path.to_path_buf(),
            what,
        }
    }

    /// The next item; `with_inputs` says whether the next tick's envelopes
    /// are decoded and returned (else they are only counted).
    pub fn next(&mut self, with_inputs: bool) -> Result<Option<JournalItem>, SourceError> {
        while let Some(raw) = self.reader.next()? {
            match raw.kind {
                RecordKind::Genesis => {
                    let Record::Genesis(genesis) = raw.decode()? else {
                        unreachable!("kind checked")
                    };
                    self.last = Some(0);
                    return Ok(Some(JournalItem::Genesis(genesis)));
                }
                RecordKind::Inputs => {
                    let expected = self.last.map_or(0, |last| last + 1);
                    if raw.tick() != Some(expected) {
                        let what = format!(
                            "inputs at byte {} are for tick {:?} where tick {expected} is next",
                            raw.offset,
                            raw.tick()
                        );
                        return Err(self.lineage(&raw.path, what));
                    }
                    if with_inputs {
                        let Record::Inputs(inputs) = raw.decode()? else {
                            unreachable!("kind checked")
                        };
                        self.input_count += inputs.envelopes.len() as u64;
                        self.inputs.extend(inputs.envelopes);
                    } else {
                        let count = raw.body.get(8..12).map_or(0, |bytes| {
                            u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
                        });
                        self.input_count += u64::from(count);
                    }
                }
                RecordKind::Tick => {
                    let Record::Tick(record) = raw.decode()? else {
                        unreachable!("kind checked")
                    };
                    let expected = self.last.map_or(0, |last| last + 1);
                    if record.roots.tick != expected {
                        let what = format!(
                            "tick {} at byte {} where tick {expected} is next",
                            record.roots.tick, raw.offset
                        );
                        return Err(self.lineage(&raw.path, what));
                    }
                    if u64::from(record.input_count) != self.input_count {
                        let what = format!(
                            "tick {expected} records {} inputs, but {} were journaled for it",
                            record.input_count, self.input_count
                        );
                        return Err(self.lineage(&raw.path, what));
                    }
                    self.last = Some(expected);
                    self.input_count = 0;
                    let inputs = std::mem::take(&mut self.inputs);
                    return Ok(Some(JournalItem::Tick(record, inputs)));
                }
            }
        }
        if self.last.is_none() {
            return Err(self.lineage(
                &self.path.clone(),
                "the journal has no genesis record".into(),
            ));
        }
        Ok(None)
    }
}
