//! Reading the journal back: every segment header, record checksum and chain
//! link is checked, one segment in memory at a time.

use std::path::{Path, PathBuf};

use everarcade_protocol::{Domain, Hash, Tick};

use super::record::body_tick;
use super::{
    HeaderError, JOURNAL_VERSION, RECORD_BODY_BYTES_MAX, RECORD_HEADER_BYTES, RECORD_TRAILER_BYTES,
    Record, RecordKind, SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::error::StoreError;
use crate::layout::{parse_segment_name, segment_name};
use crate::storage::Storage;

/// One record as read: checked, not yet decoded.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The kind byte.
    pub kind: RecordKind,
    /// The body bytes.
    pub body: Vec<u8>,
    /// The record's checksum (the next record's `prev`).
    pub checksum: Hash,
    /// The segment file.
    pub path: PathBuf,
    /// Byte offset of the record in its segment.
    pub offset: u64,
}

impl RawRecord {
    /// Decodes the body; a body that does not decode is corruption at this record.
    pub fn decode(&self) -> Result<Record, StoreError> {
        Record::decode_body(self.kind, &self.body).map_err(|error| StoreError::Corrupt {
            path: self.path.clone(),
            offset: self.offset + (RECORD_HEADER_BYTES + error.offset) as u64,
            what: format!("{:?} record: {}", self.kind, error.what),
        })
    }

    /// The tick of an inputs or tick record.
    pub fn tick(&self) -> Option<Tick> {
        match self.kind {
            RecordKind::Genesis => None,
            RecordKind::Inputs | RecordKind::Tick => body_tick(&self.body),
        }
    }

    /// Bytes the record takes in its segment.
    pub fn encoded_len(&self) -> u64 {
        (RECORD_HEADER_BYTES + self.body.len() + RECORD_TRAILER_BYTES) as u64
    }
}

/// Where the valid journal ends: what a writer resumes after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEnd {
    /// The newest segment's index.
    pub segment: u64,
    /// Valid bytes in it (a torn tail comes after).
    pub length: u64,
    /// The last record's checksum (`C(0)` before any record).
    pub last_checksum: Hash,
    /// Records read in all.
    pub records: u64,
    /// Segments read.
    pub segments: u64,
}

/// Where reading stood right after a record: enough to resume reading
/// there ([`JournalReader::resume`]) without reading the segments before it.
/// The records before it are not checked again: the position must come from
/// a reader that checked them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalPosition {
    /// The segment index.
    pub segment: u64,
    /// The byte offset right after the record in that segment.
    pub offset: u64,
    /// The record's checksum (the next record's `prev`).
    pub checksum: Hash,
    /// `C(0)` of the journal.
    pub genesis_root: Hash,
}

/// The torn end of the newest segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Valid bytes before it.
    pub offset: u64,
    /// Bytes after the last complete record.
    pub bytes: u64,
}

impl TornTail {
    /// As an error, for callers that refuse to go on.
    pub fn to_error(&self) -> StoreError {
        StoreError::TornTail {
            path: self.path.clone(),
            offset: self.offset,
            bytes: self.bytes,
        }
    }
}

struct Segment {
    index: u64,
    path: PathBuf,
    bytes: Vec<u8>,
    offset: usize,
    last: bool,
}

/// Reads records in order; see the module docs.
pub struct JournalReader<'a> {
    storage: &'a dyn Storage,
    dir: PathBuf,
    indexes: Vec<u64>,
    next_segment: usize,
    current: Option<Segment>,
    genesis_root: Option<Hash>,
    prev: Hash,
    end: JournalEnd,
    torn: Option<TornTail>,
    /// Set by [`JournalReader::resume`]: where to start in the first segment read.
    resume_offset: Option<u64>,
    resumed: bool,
}

impl<'a> JournalReader<'a> {
    /// Opens `dir` to read the records after `position` (from a reader of
    /// the same journal that checked everything before it): the segments
    /// before `position.segment` are not read, and the first record read
    /// must chain to `position.checksum`.
    pub fn resume(
        storage: &'a dyn Storage,
        dir: &Path,
        position: &JournalPosition,
    ) -> Result<JournalReader<'a>, StoreError> {
        let mut reader = JournalReader::open(storage, dir)?;
        let at = reader
            .indexes
            .iter()
            .position(|index| *index == position.segment)
            .ok_or_else(|| StoreError::Missing {
                path: dir.join(segment_name(position.segment)),
                what: "the segment to resume reading in is gone".into(),
            })?;
        reader.next_segment = at;
        reader.genesis_root = Some(position.genesis_root);
        reader.prev = position.checksum;
        reader.end.last_checksum = position.checksum;
        reader.resume_offset = Some(position.offset);
        reader.resumed = true;
        Ok(reader)
    }

    /// The position right after the last record returned, if any was.
    pub fn position(&self) -> Option<JournalPosition> {
        let genesis_root = self.genesis_root?;
        (self.end.records > 0 || self.resumed).then_some(JournalPosition {
            segment: self.end.segment,
            offset: self.end.length,
            checksum: self.prev,
            genesis_root,
        })
    }

    /// Lists the segments of `dir`; they must be numbered 1, 2, … without gaps.
    pub fn open(storage: &'a dyn Storage, dir: &Path) -> Result<JournalReader<'a>, StoreError> {
        let names = storage.list(dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::Missing {
                    path: dir.to_path_buf(),
                    what: "the journal directory does not exist".into(),
                }
            } else {
                StoreError::Io {
                    op: "list",
                    path: dir.to_path_buf(),
                    source,
                }
            }
        })?;
        let mut indexes: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        indexes.sort_unstable();
        if indexes.is_empty() {
            return Err(StoreError::Missing {
                path: dir.to_path_buf(),
                what: "the journal has no segment".into(),
            });
        }
        for (position, index) in indexes.iter().enumerate() {
            if *index != position as u64 + 1 {
                return Err(StoreError::Corrupt {
                    path: dir.join(segment_name(position as u64 + 1)),
                    offset: 0,
                    what: format!(
                        "segment {} is missing (found segment {index})",
                        position + 1
                    ),
                });
            }
        }
        Ok(JournalReader {
            storage,
            dir: dir.to_path_buf(),
            indexes,
            next_segment: 0,
            current: None,
            genesis_root: None,
            prev: Hash::ZERO,
            end: JournalEnd {
                segment: 0,
                length: 0,
                last_checksum: Hash::ZERO,
                records: 0,
                segments: 0,
            },
            torn: None,
            resume_offset: None,
            resumed: false,
        })
    }

    /// `C(0)` from the first segment header, once it has been read.
    pub fn genesis_root(&self) -> Option<Hash> {
        self.genesis_root
    }

    /// Where the valid journal ends (complete once `next` returned `None`).
    pub fn end(&self) -> &JournalEnd {
        &self.end
    }

    /// The torn tail found at the end, if any (known once `next` returned `None`).
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The next checked record, or `None` at the end of the journal.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<RawRecord>, StoreError> {
        loop {
            if self.current.is_none() {
                if self.next_segment == self.indexes.len() || self.torn.is_some() {
                    self.check_creation_finished();
                    return Ok(None);
                }
                self.open_segment()?;
                continue;
            }
            match self.next_in_segment()? {
                Some(record) => return Ok(Some(record)),
                None => self.current = None,
            }
        }
    }

    /// A journal of one segment without one complete record, not even the
    /// genesis record, is a world whose creation a crash interrupted: the
    /// segment is torn as a whole, like a newest segment torn in its header,
    /// so `recover` moves it aside and the world can be created again.
    fn check_creation_finished(&mut self) {
        if self.end.records != 0 || self.indexes.len() != 1 || self.resumed {
            return;
        }
        let length = match &self.torn {
            Some(torn) => torn.offset + torn.bytes,
            None => self.end.length,
        };
        self.torn = Some(TornTail {
            path: self.dir.join(segment_name(self.indexes[0])),
            offset: 0,
            bytes: length,
        });
    }

    fn open_segment(&mut self) -> Result<(), StoreError> {
        let index = self.indexes[self.next_segment];
        self.next_segment += 1;
        let last = self.next_segment == self.indexes.len();
        let path = self.dir.join(segment_name(index));
        let bytes = self
            .storage
            .read(&path)
            .map_err(StoreError::io("read", &path))?;
        let corrupt = |offset: usize, what: String| StoreError::Corrupt {
            path: path.clone(),
            offset: offset as u64,
            what,
        };
        if last && (bytes.len() < SEGMENT_HEADER_BYTES || bytes.iter().all(|b| *b == 0)) {
            // A crash while the segment was being created.
            self.torn = Some(TornTail {
                path,
                offset: 0,
                bytes: bytes.len() as u64,
            });
            return Ok(());
        }
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(corrupt(0, "segment is shorter than its header".into()));
        }
        let header = match SegmentHeader::decode(&bytes[..SEGMENT_HEADER_BYTES]) {
            Ok(header) => header,
            Err(HeaderError::Version(found)) => {
                return Err(StoreError::UnsupportedVersion {
                    path,
                    found,
                    supported: JOURNAL_VERSION,
                });
            }
            Err(HeaderError::Bad(error)) => return Err(corrupt(error.offset, error.what)),
        };
        if header.index != index {
            return Err(corrupt(16, format!("header says segment {}", header.index)));
        }
        let genesis = *self.genesis_root.get_or_insert(header.genesis_root);
        if header.genesis_root != genesis {
            return Err(StoreError::WrongLineage {
                path,
                expected: genesis,
                found: header.genesis_root,
            });
        }
        let start = match self.resume_offset.take() {
            // Resuming mid-segment: the chain continues from the position.
            Some(offset)
                if offset >= SEGMENT_HEADER_BYTES as u64 && offset <= bytes.len() as u64 =>
            {
                offset as usize
            }
            Some(offset) => {
                return Err(corrupt(
                    0,
                    format!(
                        "cannot resume at byte {offset}: the segment is {} bytes",
                        bytes.len()
                    ),
                ));
            }
            None => SEGMENT_HEADER_BYTES,
        };
        if self.resumed && self.end.segments == 0 {
            // The first segment of a resumed read: the position vouches for
            // the chain up to its offset.
        } else if index == 1 {
            if header.prev != genesis {
                return Err(corrupt(64, "the first segment's prev is not C(0)".into()));
            }
            self.prev = genesis;
            self.end.last_checksum = genesis;
        } else if header.prev != self.prev {
            return Err(corrupt(
                64,
                "chain broken: prev does not match the previous segment's last record".into(),
            ));
        }
        self.end.segment = index;
        self.end.length = start as u64;
        self.end.segments += 1;
        self.current = Some(Segment {
            index,
            path,
            bytes,
            offset: start,
            last,
        });
        Ok(())
    }

    fn next_in_segment(&mut self) -> Result<Option<RawRecord>, StoreError> {
        let segment = self.current.as_mut().expect("a segment is open");
        let rest = &segment.bytes[segment.offset..];
        if rest.is_empty() {
            return Ok(None);
        }
        let offset = segment.offset;
        let corrupt = |what: String| StoreError::Corrupt {
            path: segment.path.clone(),
            offset: offset as u64,
            what,
        };
        let torn = TornTail {
            path: segment.path.clone(),
            offset: offset as u64,
            bytes: rest.len() as u64,
        };
        if segment.last && rest.iter().all(|b| *b == 0) {
            self.torn = Some(torn);
            return Ok(None);
        }
        if rest.len() < RECORD_HEADER_BYTES {
            if segment.last {
                self.torn = Some(torn);
                return Ok(None);
            }
            return Err(corrupt("segment ends inside a record header".into()));
        }
        let body_length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let kind = RecordKind::from_byte(rest[4])
            .ok_or_else(|| corrupt(format!("unknown record kind {}", rest[4])))?;
        if rest[5..8] != [0, 0, 0] {
            return Err(corrupt("reserved record bytes are not zero".into()));
        }
        if body_length > RECORD_BODY_BYTES_MAX {
            return Err(corrupt(format!(
                "record body length {body_length} is over the limit"
            )));
        }
        let prev = Hash(rest[8..40].try_into().expect("32 bytes"));
        if prev != self.prev {
            return Err(corrupt(
                "chain broken: prev does not match the previous record's checksum".into(),
            ));
        }
        let body_end = RECORD_HEADER_BYTES + body_length as usize;
        let total = body_end + RECORD_TRAILER_BYTES;
        if rest.len() < total {
            if !segment.last {
                return Err(corrupt("segment ends inside a record".into()));
            }
            if let Some(length) = complete_body_length(rest) {
                return Err(corrupt(format!(
                    "the length field says {body_length} body bytes, but a complete record \
                     of {length} body bytes is here: the length field is damaged"
                )));
            }
            self.torn = Some(torn);
            return Ok(None);
        }
        let checksum = Hash(rest[body_end..total].try_into().expect("32 bytes"));
        if Domain::JournalRecord.hash(&rest[..body_end]) != checksum {
            return Err(corrupt("record checksum does not match".into()));
        }
        let first = self.end.records == 0 && !self.resumed;
        if first != (kind == RecordKind::Genesis) {
            let what = if first {
                "the first record is not the genesis record"
            } else {
                "a second genesis record"
            };
            return Err(corrupt(what.into()));
        }
        let record = RawRecord {
            kind,
            body: rest[RECORD_HEADER_BYTES..body_end].to_vec(),
            checksum,
            path: segment.path.clone(),
            offset: offset as u64,
        };
        segment.offset += total;
        self.prev = checksum;
        self.end.last_checksum = checksum;
        self.end.length = segment.offset as u64;
        self.end.records += 1;
        debug_assert_eq!(self.end.segment, segment.index);
        Ok(Some(record))
    }
}

/// Most candidate ends [`complete_body_length`] verifies with a hash, so that
/// crafted payloads cannot make reading a torn tail quadratic.
const LENGTH_CANDIDATES_MAX: usize = 16;

/// A record that runs past the end of the newest segment is torn only if it is
/// really the last thing written. If `rest` (the record and everything after
/// it) holds a complete record under another body length, the length field is
/// damaged instead: its checksum verifies (with that length) either right at
/// the end of the file, or just before a record header whose `prev` repeats
/// it. Returns that body length. A record torn by a crash cannot pass: it
/// would have to contain a checksum of its own prefix.
fn complete_body_length(rest: &[u8]) -> Option<usize> {
    let verifies = |body_end: usize| {
        let mut hasher = Domain::JournalRecord.hasher();
        hasher
            .update_u32((body_end - RECORD_HEADER_BYTES) as u32)
            .update(&rest[4..body_end]);
        hasher.finalize().0[..] == rest[body_end..body_end + RECORD_TRAILER_BYTES]
    };
    let at_end = rest.len().checked_sub(RECORD_TRAILER_BYTES)?;
    if at_end >= RECORD_HEADER_BYTES && verifies(at_end) {
        return Some(at_end - RECORD_HEADER_BYTES);
    }
    // A following record: its kind is inputs or tick, its reserved bytes are
    // zero, and its prev (bytes 8..40) repeats the checksum before it.
    let followed = |body_end: usize| {
        let next = &rest[body_end + RECORD_TRAILER_BYTES..];
        matches!(next[4], 2 | 3)
            && next[5..8] == [0, 0, 0]
            && next[8..RECORD_HEADER_BYTES] == rest[body_end..body_end + RECORD_TRAILER_BYTES]
    };
    let last_end = rest
        .len()
        .checked_sub(RECORD_TRAILER_BYTES + RECORD_HEADER_BYTES)?;
    (RECORD_HEADER_BYTES..=last_end)
        .filter(|body_end| followed(*body_end))
        .take(LENGTH_CANDIDATES_MAX)
        .find(|body_end| verifies(*body_end))
        .map(|body_end| body_end - RECORD_HEADER_BYTES)
}
