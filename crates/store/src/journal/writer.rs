//! Appending to the journal with group commit: records are encoded into a
//! buffer by [`JournalWriter::append`] and made durable together by one
//! write and one fdatasync in [`JournalWriter::commit`]. Nothing appended
//! counts as acknowledged until `commit` returns `Ok`.
//!
//! A failed write or fsync poisons the writer: the kernel may have dropped
//! the dirty pages, so retrying could report durable what is not. Every later
//! call fails with [`StoreError::Poisoned`]; the world must be reopened, which
//! recovers from what is really on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use everarcade_protocol::Hash;

use super::{
    GenesisRecord, JournalEnd, RECORD_BODY_BYTES_MAX, Record, SEGMENT_HEADER_BYTES, SegmentHeader,
    encode_record,
};
use crate::error::StoreError;
use crate::layout::segment_name;
use crate::storage::{AppendFile, Storage};

/// Journal settings.
#[derive(Clone, Copy, Debug)]
pub struct JournalConfig {
    /// A segment is closed, and a new one begun, once it holds at least this
    /// many bytes (checked after each commit). Default 64 MiB.
    pub segment_bytes_max: u64,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            segment_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// The one writer of a world's journal.
pub struct JournalWriter {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: JournalConfig,
    genesis_root: Hash,
    file: Box<dyn AppendFile>,
    segment: u64,
    /// Bytes of the current segment made durable.
    segment_length: u64,
    /// The last appended record's checksum.
    prev: Hash,
    buffer: Vec<u8>,
    poisoned: Option<String>,
    commits: u64,
    /// Records appended in all, the genesis record included.
    records: u64,
}

impl JournalWriter {
    /// Creates the journal of a new world: segment 1 holding the genesis record, durable.
    pub fn create(
        storage: Arc<dyn Storage>,
        dir: &Path,
        genesis: &GenesisRecord,
        config: JournalConfig,
    ) -> Result<JournalWriter, StoreError> {
        let path = dir.join(segment_name(1));
        if storage.exists(&path) {
            return Err(StoreError::Corrupt {
                path,
                offset: 0,
                what: "a journal already exists here; refusing to overwrite it".into(),
            });
        }
        let genesis_root = genesis.genesis_root;
        let file = open_segment(&*storage, dir, 1, &genesis_root, &genesis_root)?;
        let mut writer = JournalWriter {
            storage,
            dir: dir.to_path_buf(),
            config,
            genesis_root,
            file,
            segment: 1,
            segment_length: SEGMENT_HEADER_BYTES as u64,
            prev: genesis_root,
            buffer: Vec::new(),
            poisoned: None,
            commits: 0,
            records: 0,
        };
        writer.append(&Record::Genesis(genesis.clone()))?;
        writer.commit()?;
        Ok(writer)
    }

    /// Resumes after a fully read journal that ended at `end` with no torn tail.
    pub fn resume(
        storage: Arc<dyn Storage>,
        dir: &Path,
        genesis_root: Hash,
        end: &JournalEnd,
        config: JournalConfig,
    ) -> Result<JournalWriter, StoreError> {
        assert!(end.segment >= 1, "resume needs a journal that was read");
        let path = dir.join(segment_name(end.segment));
        let file = storage
            .append(&path)
            .map_err(StoreError::io("open for append", &path))?;
        Ok(JournalWriter {
            storage,
            dir: dir.to_path_buf(),
            config,
            genesis_root,
            file,
            segment: end.segment,
            segment_length: end.length,
            prev: end.last_checksum,
            buffer: Vec::new(),
            poisoned: None,
            commits: 0,
            records: end.records,
        })
    }

    /// Encodes `record` into the commit buffer; returns its checksum. Not
    /// durable until [`JournalWriter::commit`].
    pub fn append(&mut self, record: &Record) -> Result<Hash, StoreError> {
        self.check()?;
        let body = record.encode_body();
        if body.len() > RECORD_BODY_BYTES_MAX as usize {
            // Only an input batch can be this large; split it.
            if let Record::Inputs(inputs) = record
                && inputs.envelopes.len() > 1
            {
                let (left, right) = inputs.envelopes.split_at(inputs.envelopes.len() / 2);
                for half in [left, right] {
                    let part = super::InputsRecord {
                        tick: inputs.tick,
                        envelopes: half.to_vec(),
                    };
                    self.append(&Record::Inputs(part))?;
                }
                return Ok(self.prev);
            }
            panic!(
                "a {:?} record of {} bytes is over the limit",
                record.kind(),
                body.len()
            );
        }
        self.prev = encode_record(record.kind(), &body, &self.prev, &mut self.buffer);
        self.records += 1;
        Ok(self.prev)
    }

    /// Writes the buffer and fdatasyncs: everything appended so far is durable
    /// when this returns `Ok`. Rolls to a new segment when the current one is full.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.check()?;
        if !self.buffer.is_empty() {
            let path = self.segment_path();
            if let Err(error) = self.file.write_all(&self.buffer) {
                return Err(self.poison("write", &path, error));
            }
            if let Err(error) = self.file.sync_data() {
                return Err(self.poison("fdatasync", &path, error));
            }
            self.segment_length += self.buffer.len() as u64;
            self.buffer.clear();
            self.commits += 1;
        }
        if self.segment_length >= self.config.segment_bytes_max {
            self.roll()?;
        }
        Ok(())
    }

    /// Whether records are appended but not yet committed.
    pub fn has_uncommitted(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The last appended record's checksum.
    pub fn last_checksum(&self) -> Hash {
        self.prev
    }

    /// Records appended in all (committed or not), the genesis record
    /// included: the next record's ordinal. Counted from the journal read
    /// when resumed.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The current segment's index.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Where the durable journal ends: the current segment and how many of
    /// its bytes are durable. Segments before it are complete. A copy of
    /// every segment up to this point is a consistent journal (it is
    /// append-only), whatever is appended after.
    pub fn durable_end(&self) -> (u64, u64) {
        (self.segment, self.segment_length)
    }

    /// Successful commits that wrote something.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Why the writer is poisoned, if it is.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    fn segment_path(&self) -> PathBuf {
        self.dir.join(segment_name(self.segment))
    }

    fn check(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, op: &str, path: &Path, error: std::io::Error) -> StoreError {
        let reason = format!("{op} of {} failed: {error}", path.display());
        self.poisoned = Some(reason.clone());
        StoreError::Poisoned { reason }
    }

    fn roll(&mut self) -> Result<(), StoreError> {
        let next = self.segment + 1;
        match open_segment(
            &*self.storage,
            &self.dir,
            next,
            &self.genesis_root,
            &self.prev,
        ) {
            Ok(file) => {
                self.file = file;
                self.segment = next;
                self.segment_length = SEGMENT_HEADER_BYTES as u64;
                Ok(())
            }
            Err(error) => {
                let reason = format!("starting segment {next} failed: {error}");
                self.poisoned = Some(reason.clone());
                Err(StoreError::Poisoned { reason })
            }
        }
    }
}

/// Creates segment `index` with its header, durable along with its directory entry.
fn open_segment(
    storage: &dyn Storage,
    dir: &Path,
    index: u64,
    genesis_root: &Hash,
    prev: &Hash,
) -> Result<Box<dyn AppendFile>, StoreError> {
    let path = dir.join(segment_name(index));
    let header = SegmentHeader {
        index,
        genesis_root: *genesis_root,
        prev: *prev,
    };
    let mut file = storage
        .append(&path)
        .map_err(StoreError::io("create", &path))?;
    file.write_all(&header.encode())
        .map_err(StoreError::io("write", &path))?;
    file.sync_data()
        .map_err(StoreError::io("fdatasync", &path))?;
    storage
        .sync_dir(dir)
        .map_err(StoreError::io("fsync the directory", dir))?;
    Ok(file)
}
