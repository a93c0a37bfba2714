//! Checkpoints: the state and nonces of a world at a tick boundary, in one
//! checksummed file written atomically (docs/FORMATS.md §Checkpoint).
//!
//! ```text
//! magic "EACHECKP" | version u16 | zero[6] | tick u64 | genesis_root[32]
//! | continuity_root[32] | state_root[32] | nonce_count u64 | entry_count u64
//! | (sender[32] nonce u64)*            senders strictly ascending
//! | (key_len u32 key value_len u32 value)*   keys strictly ascending
//! | checksum[32]                       H(Checkpoint, every byte before it)
//! ```
//!
//! Loading checks the checksum, the order and limits of every field, then
//! rebuilds the state and recomputes its root: a checkpoint is used only if
//! that root equals the one it records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use everarcade_protocol::profile::LIMITS_MAX;
use everarcade_protocol::{Domain, Hash, PublicKey, Tick};
use everarcade_state::{State, StateBuilder};

use crate::codec::{DecodeError, Put, Reader};
use crate::error::StoreError;
use crate::keys::{OperatorKeys, sign_checkpoint};
use crate::layout::{WorldDir, checkpoint_name, parse_checkpoint_name};
use crate::storage::{AppendFile, Storage, write_atomic, write_atomic_with};

/// The checkpoint magic.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"EACHECKP";
/// The checkpoint format version this runtime writes and reads.
pub const CHECKPOINT_VERSION: u16 = 1;
/// Bytes before the nonces.
pub const CHECKPOINT_HEADER_BYTES: usize = 136;
/// The smallest encoded entry: a key length, a one-byte key, a value length
/// and an empty value. Bounds what an entry count may reserve.
const ENTRY_BYTES_MIN: usize = 4 + 1 + 4;
/// Most entries reserved before decoding them (about 126 MB); a larger state
/// grows as it is decoded.
const ENTRIES_RESERVED_MAX: usize = 1 << 20;

/// A world's durable snapshot at the end of `tick`.
#[derive(Clone)]
pub struct Checkpoint {
    /// The last executed tick.
    pub tick: Tick,
    /// `C(0)`.
    pub genesis_root: Hash,
    /// `C(tick)`.
    pub continuity_root: Hash,
    /// The state root after `tick` (recomputed and checked on load).
    pub state_root: Hash,
    /// The state.
    pub state: State,
    /// The last accepted nonce of each sender.
    pub nonces: BTreeMap<PublicKey, u64>,
}

/// What a checkpoint records about itself, without the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// The last executed tick.
    pub tick: Tick,
    /// `C(0)`.
    pub genesis_root: Hash,
    /// `C(tick)`.
    pub continuity_root: Hash,
    /// The state root.
    pub state_root: Hash,
    /// The file's checksum.
    pub checksum: Hash,
    /// Number of state entries.
    pub entries: u64,
}

/// Bytes the encoder hands to the checksum at a time: a multiple of BLAKE3's
/// 1 KiB chunk, small enough to still be in cache when it is hashed, large
/// enough that waking the checksum thread per block costs little.
const CHECKSUM_BLOCK_BYTES: usize = 1 << 20;

/// Checkpoints of at least this many bytes are checksummed on a second
/// thread while they are encoded; smaller ones block by block in line.
const PARALLEL_CHECKSUM_BYTES_MIN: usize = 4 << 20;

/// Blocks waiting for the checksum thread at most (8 MiB); the encoder waits
/// when the queue is full.
const CHECKSUM_QUEUE_BLOCKS: usize = 8;

/// Encodes a checkpoint. `state_root` must be `state`'s root.
///
/// The bytes go straight into one buffer of the exact size, and the checksum
/// follows the encoder a block behind (on a second thread for large
/// checkpoints), so the bytes are hashed while still in cache.
pub fn encode_checkpoint(
    tick: Tick,
    genesis_root: &Hash,
    continuity_root: &Hash,
    state_root: &Hash,
    state: &State,
    nonces: &BTreeMap<PublicKey, u64>,
) -> Vec<u8> {
    let roots = [genesis_root, continuity_root, state_root];
    let header = encode_header(tick, roots, state, nonces);
    let size = CHECKPOINT_HEADER_BYTES
        + nonces.len() * 40
        + state.len() * 8
        + state.value_bytes() as usize
        + 32;
    // Zeroed memory costs nothing until it is written, and is written once.
    let mut out = vec![0u8; size];
    let (body, checksum) = out.split_at_mut(size - 32);
    let digest = if size < PARALLEL_CHECKSUM_BYTES_MIN {
        let mut hasher = Domain::Checkpoint.hasher();
        encode_body(body, &header, state, nonces, |block| {
            hasher.update(block);
        });
        hasher.finalize()
    } else {
        std::thread::scope(|scope| {
            let (sender, blocks) = std::sync::mpsc::sync_channel::<&[u8]>(CHECKSUM_QUEUE_BLOCKS);
            let hasher = scope.spawn(move || {
                let mut hasher = Domain::Checkpoint.hasher();
                for block in blocks {
                    hasher.update(block);
                }
                hasher.finalize()
            });
            encode_body(body, &header, state, nonces, move |block| {
                sender
                    .send(block)
                    .expect("the checksum thread runs until the last block is sent");
            });
            hasher
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    };
    checksum.copy_from_slice(&digest.0);
    out
}

/// The header; `roots` are `C(0)`, `C(tick)` and the state root.
fn encode_header(
    tick: Tick,
    roots: [&Hash; 3],
    state: &State,
    nonces: &BTreeMap<PublicKey, u64>,
) -> Vec<u8> {
    let [genesis_root, continuity_root, state_root] = roots;
    let mut header = Vec::with_capacity(CHECKPOINT_HEADER_BYTES);
    header.extend_from_slice(&CHECKPOINT_MAGIC);
    header.put_u16(CHECKPOINT_VERSION);
    header.extend_from_slice(&[0; 6]);
    header.put_u64(tick);
    header.put_hash(genesis_root);
    header.put_hash(continuity_root);
    header.put_hash(state_root);
    header.put_u64(nonces.len() as u64);
    header.put_u64(state.len() as u64);
    assert_eq!(header.len(), CHECKPOINT_HEADER_BYTES);
    header
}

/// A checkpoint written by [`write_checkpoint_of`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenCheckpoint {
    /// Its file.
    pub path: PathBuf,
    /// The file's length.
    pub bytes: u64,
    /// [`crate::keys::file_digest`] of the file (what the operator signs).
    pub file_digest: Hash,
}

/// Bytes a streamed checkpoint writes between fdatasyncs.
const SYNC_EVERY_BYTES: usize = 8 << 20;

/// Blocks on their way to the file at most; the encoder waits when they
/// are all in flight (about 4 MiB).
const WRITE_QUEUE_BLOCKS: usize = 4;

/// Encodes the checkpoint of `tick` straight into its file, atomically
/// (temp, fdatasync, rename, fsync of the directory): the same bytes as
/// [`encode_checkpoint`], without holding them all in memory. The encoder
/// fills blocks of about 1 MiB; a second thread hashes each (checksum and
/// file digest) and writes it while the next is encoded. `roots` are
/// `C(0)`, `C(tick)` and the state root, which must be `state`'s root.
///
/// With `signer`, the operator signature of the file digest is written
/// before the checkpoint is renamed into place, so a reader that lists a
/// checkpoint always finds its signature (a crash in between leaves only a
/// signature of a checkpoint that never appeared).
pub fn write_checkpoint_of(
    storage: &dyn Storage,
    world: &WorldDir,
    tick: Tick,
    roots: [&Hash; 3],
    state: &State,
    nonces: &BTreeMap<PublicKey, u64>,
    signer: Option<&OperatorKeys>,
) -> Result<WrittenCheckpoint, StoreError> {
    let header = encode_header(tick, roots, state, nonces);
    let path = world.checkpoint(tick);
    let mut streamed = (0, Hash::ZERO);
    let mut signing = None;
    write_atomic_with(storage, &path, |file| {
        streamed = stream(file, &header, state, nonces)?;
        if let Some(keys) = signer
            && let Err(error) = sign_checkpoint(storage, world, keys, tick, &streamed.1)
        {
            signing = Some(error);
            return Err(std::io::Error::other(
                "the checkpoint's signature was not written",
            ));
        }
        Ok(())
    })
    .map_err(|error| {
        signing
            .take()
            .unwrap_or_else(|| StoreError::io("write", &path)(error))
    })?;
    let (bytes, file_digest) = streamed;
    Ok(WrittenCheckpoint {
        path,
        bytes,
        file_digest,
    })
}

/// Streams the body in blocks to a writer thread that hashes and appends
/// them, then the checksum; returns the length and the file digest.
fn stream(
    file: &mut dyn AppendFile,
    header: &[u8],
    state: &State,
    nonces: &BTreeMap<PublicKey, u64>,
) -> std::io::Result<(u64, Hash)> {
    let (full, blocks) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE_BLOCKS);
    let (recycle, emptied) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<(u64, Hash)> {
            let mut checksum = Domain::Checkpoint.hasher();
            let mut digest = blake3::Hasher::new();
            let mut length = 0u64;
            let mut unsynced = 0;
            for block in blocks {
                checksum.update(&block);
                digest.update(&block);
                file.write_all(&block)?;
                length += block.len() as u64;
                // Syncing as it goes overlaps the disk's work with encoding
                // what follows, instead of leaving it all to the last sync.
                unsynced += block.len();
                if unsynced >= SYNC_EVERY_BYTES {
                    file.sync_data()?;
                    unsynced = 0;
                }
                // Fails once the encoder is done; the block is then dropped.
                let _ = recycle.send(block);
            }
            let checksum = checksum.finalize();
            digest.update(&checksum.0);
            file.write_all(&checksum.0)?;
            Ok((length + 32, Hash(*digest.finalize().as_bytes())))
        });
        let mut out = Blocks {
            block: Vec::with_capacity(BLOCK_CAPACITY),
            full,
            emptied,
        };
        out.block.extend_from_slice(header);
        // Stops early only when the writer stopped on an error; dropping
        // `out` closes the channel, and the join returns the writer's result.
        let _ = encode_into(&mut out, state, nonces);
        drop(out);
        writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A block's capacity: a full block plus room for the entry that crosses
/// its end (a larger entry grows the block).
const BLOCK_CAPACITY: usize = CHECKSUM_BLOCK_BYTES + (64 << 10);

/// The encoder's side of [`stream`]: the block being filled, the channel to
/// the writer, and the blocks it has written, for reuse.
struct Blocks {
    block: Vec<u8>,
    full: std::sync::mpsc::SyncSender<Vec<u8>>,
    emptied: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Blocks {
    /// Hands the block to the writer once it holds a block's worth (or
    /// `force`); `Err` once the writer has stopped.
    fn hand_over(&mut self, force: bool) -> Result<(), ()> {
        if self.block.len() < CHECKSUM_BLOCK_BYTES && !force {
            return Ok(());
        }
        let mut next = self
            .emptied
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK_CAPACITY));
        next.clear();
        self.full
            .send(std::mem::replace(&mut self.block, next))
            .map_err(|_| ())
    }
}

fn encode_into(
    out: &mut Blocks,
    state: &State,
    nonces: &BTreeMap<PublicKey, u64>,
) -> Result<(), ()> {
    for (sender, nonce) in nonces {
        out.block.extend_from_slice(sender);
        out.block.extend_from_slice(&nonce.to_le_bytes());
        out.hand_over(false)?;
    }
    for (key, value) in state.iter() {
        out.block
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.block.extend_from_slice(key);
        out.block
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.block.extend_from_slice(value);
        out.hand_over(false)?;
    }
    out.hand_over(true)
}

/// Writes the header, nonces and entries into `body`, handing each completed
/// stretch of blocks to `sink` (the checksum), in order.
fn encode_body<'a>(
    body: &'a mut [u8],
    header: &[u8],
    state: &State,
    nonces: &BTreeMap<PublicKey, u64>,
    sink: impl FnMut(&'a [u8]),
) {
    let mut writer = BodyWriter::new(body, sink);
    writer.put(header);
    for (sender, nonce) in nonces {
        writer.put(sender);
        writer.put(&nonce.to_le_bytes());
    }
    for (key, value) in state.iter() {
        writer.put(&(key.len() as u32).to_le_bytes());
        writer.put(key);
        writer.put(&(value.len() as u32).to_le_bytes());
        writer.put(value);
        writer.hand_over_blocks();
    }
    writer.finish();
}

/// Writes a checkpoint body front to back into a buffer of its exact size,
/// handing each completed stretch of whole blocks to the checksum.
struct BodyWriter<'a, F: FnMut(&'a [u8])> {
    /// From the first byte not yet handed over to the end of the body.
    rest: &'a mut [u8],
    /// Bytes written at the start of `rest`.
    written: usize,
    sink: F,
}

impl<'a, F: FnMut(&'a [u8])> BodyWriter<'a, F> {
    fn new(body: &'a mut [u8], sink: F) -> BodyWriter<'a, F> {
        BodyWriter {
            rest: body,
            written: 0,
            sink,
        }
    }

    /// Appends `bytes`; the body's size was computed exactly, so running
    /// past its end is a bug (and panics).
    fn put(&mut self, bytes: &[u8]) {
        self.rest[self.written..self.written + bytes.len()].copy_from_slice(bytes);
        self.written += bytes.len();
    }

    /// Hands over the whole blocks written so far.
    fn hand_over_blocks(&mut self) {
        if self.written < CHECKSUM_BLOCK_BYTES {
            return;
        }
        let whole = self.written - self.written % CHECKSUM_BLOCK_BYTES;
        let (done, rest) = std::mem::take(&mut self.rest).split_at_mut(whole);
        (self.sink)(done);
        self.rest = rest;
        self.written -= whole;
    }

    /// Hands over the rest, which must be exactly what was written.
    fn finish(mut self) {
        assert_eq!(
            self.written,
            self.rest.len(),
            "a checkpoint body fills its computed size exactly"
        );
        let rest = std::mem::take(&mut self.rest);
        (self.sink)(rest);
    }
}

/// Why checkpoint bytes were refused (before a path is attached).
#[derive(Debug)]
pub enum CheckpointDecodeError {
    /// Version not supported.
    Version(u16),
    /// Damaged or malformed, at this offset.
    Corrupt {
        /// What did not check out.
        what: String,
        /// Byte offset.
        offset: u64,
    },
}

impl std::fmt::Display for CheckpointDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointDecodeError::Version(found) => write!(
                f,
                "checkpoint format version {found} is not supported (this runtime reads {CHECKPOINT_VERSION})"
            ),
            CheckpointDecodeError::Corrupt { what, offset } => write!(f, "{what} (byte {offset})"),
        }
    }
}

impl From<DecodeError> for CheckpointDecodeError {
    fn from(error: DecodeError) -> CheckpointDecodeError {
        CheckpointDecodeError::Corrupt {
            what: error.what,
            offset: error.offset as u64,
        }
    }
}

/// Decodes and fully verifies checkpoint bytes: checksum, structure, then the
/// recomputed state root. Never panics.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, CheckpointDecodeError> {
    let (summary, mut reader) = decode_header(bytes)?;
    let nonce_count = reader.u64("nonce count")?;
    let entry_count = reader.u64("entry count")?;
    let mut nonces = BTreeMap::new();
    let mut last_sender: Option<PublicKey> = None;
    for _ in 0..nonce_count {
        let sender: PublicKey = reader.array("sender")?;
        let nonce = reader.u64("nonce")?;
        if last_sender.is_some_and(|last| last >= sender) {
            return Err(reader.error("senders are not strictly ascending").into());
        }
        last_sender = Some(sender);
        nonces.insert(sender, nonce);
    }
    // The count is not trusted: no more entries than the bytes left can hold.
    let capacity = usize::try_from(entry_count)
        .unwrap_or(usize::MAX)
        .min(reader.remaining() / ENTRY_BYTES_MIN)
        .min(ENTRIES_RESERVED_MAX);
    let mut builder = StateBuilder::with_capacity(capacity);
    for _ in 0..entry_count {
        let key_length = reader.u32("key length")? as usize;
        if key_length == 0 || key_length > LIMITS_MAX.key_bytes as usize {
            return Err(reader
                .error(format!("key length {key_length} is out of range"))
                .into());
        }
        let key = reader.take(key_length, "key")?;
        let value_length = reader.u32("value length")? as usize;
        if value_length > LIMITS_MAX.value_bytes as usize {
            return Err(reader
                .error(format!("value length {value_length} is out of range"))
                .into());
        }
        let value = reader.take(value_length, "value")?;
        if builder.push(key, value).is_err() {
            return Err(reader.error("keys are not strictly ascending").into());
        }
    }
    reader.take(32, "checksum")?;
    reader.finish("checkpoint")?;
    // Rebuilds the trie from scratch: every key, value and node is hashed.
    let mut state = builder.finish();
    let root = state.root();
    if root != summary.state_root {
        return Err(CheckpointDecodeError::Corrupt {
            what: format!(
                "the state it holds has root {root}, but it records {}",
                summary.state_root
            ),
            offset: 88,
        });
    }
    Ok(Checkpoint {
        tick: summary.tick,
        genesis_root: summary.genesis_root,
        continuity_root: summary.continuity_root,
        state_root: summary.state_root,
        state,
        nonces,
    })
}

/// Checks the checksum and reads the header; the reader is left at the nonce count.
fn decode_header(bytes: &[u8]) -> Result<(CheckpointSummary, Reader<'_>), CheckpointDecodeError> {
    let mut reader = Reader::new(bytes);
    let magic: [u8; 8] = reader.array("magic")?;
    if magic != CHECKPOINT_MAGIC {
        return Err(reader.error("not a checkpoint (bad magic)").into());
    }
    let version = reader.u16("version")?;
    if version != CHECKPOINT_VERSION {
        return Err(CheckpointDecodeError::Version(version));
    }
    if bytes.len() < CHECKPOINT_HEADER_BYTES + 32 {
        return Err(reader.error("shorter than a checkpoint header").into());
    }
    let body_end = bytes.len() - 32;
    let checksum = Hash(bytes[body_end..].try_into().expect("32 bytes"));
    if Domain::Checkpoint.hash_on_threads(&bytes[..body_end], checksum_threads(body_end))
        != checksum
    {
        return Err(CheckpointDecodeError::Corrupt {
            what: "checkpoint checksum does not match".into(),
            offset: body_end as u64,
        });
    }
    if reader.array::<6>("reserved")? != [0; 6] {
        return Err(reader.error("reserved bytes are not zero").into());
    }
    let tick = reader.u64("tick")?;
    let genesis_root = reader.hash("genesis root")?;
    let continuity_root = reader.hash("continuity root")?;
    let state_root = reader.hash("state root")?;
    let entries = u64::from_le_bytes(bytes[128..136].try_into().expect("8 bytes"));
    let summary = CheckpointSummary {
        tick,
        genesis_root,
        continuity_root,
        state_root,
        checksum,
        entries,
    };
    Ok((summary, reader))
}

/// Checkpoints of at least this many bytes are checksummed on every core
/// when loaded; below it a thread costs more than it saves.
const PARALLEL_CHECKSUM_LOAD_BYTES_MIN: usize = 4 << 20;

/// Most threads the checksum of a loaded checkpoint uses.
const CHECKSUM_THREADS_MAX: usize = 8;

/// Threads to checksum `bytes` bytes of a checkpoint with.
fn checksum_threads(bytes: usize) -> usize {
    if bytes < PARALLEL_CHECKSUM_LOAD_BYTES_MIN {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(CHECKSUM_THREADS_MAX)
}

fn attach(path: &Path, error: CheckpointDecodeError) -> StoreError {
    match error {
        CheckpointDecodeError::Version(found) => StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: CHECKPOINT_VERSION,
        },
        CheckpointDecodeError::Corrupt { what, offset } => StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
            what,
        },
    }
}

/// Reads and fully verifies the checkpoint at `path`; its file name must
/// match the tick it records.
pub fn load_checkpoint(storage: &dyn Storage, path: &Path) -> Result<Checkpoint, StoreError> {
    let bytes = storage.read(path).map_err(StoreError::io("read", path))?;
    parse_checkpoint(path, &bytes)
}

/// Decodes the bytes read from the checkpoint file at `path` and checks
/// that its name says its tick: [`load_checkpoint`] for a caller that needs
/// the bytes too (to check their signature).
pub fn parse_checkpoint(path: &Path, bytes: &[u8]) -> Result<Checkpoint, StoreError> {
    let checkpoint = decode_checkpoint(bytes).map_err(|error| attach(path, error))?;
    check_name(path, checkpoint.tick)?;
    Ok(checkpoint)
}

/// Reads a checkpoint's header and checks its checksum, without rebuilding the state.
pub fn read_checkpoint_summary(
    storage: &dyn Storage,
    path: &Path,
) -> Result<CheckpointSummary, StoreError> {
    let bytes = storage.read(path).map_err(StoreError::io("read", path))?;
    let (summary, _) = decode_header(&bytes).map_err(|error| attach(path, error))?;
    check_name(path, summary.tick)?;
    Ok(summary)
}

fn check_name(path: &Path, tick: Tick) -> Result<(), StoreError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if parse_checkpoint_name(name) != Some(tick) {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset: 16,
            what: format!("it records tick {tick}, which its file name does not say"),
        });
    }
    Ok(())
}

/// Writes checkpoint bytes for `tick` atomically (temp, fsync, rename, fsync dir).
pub fn write_checkpoint(
    storage: &dyn Storage,
    world: &WorldDir,
    tick: Tick,
    bytes: &[u8],
) -> Result<PathBuf, StoreError> {
    let path = world.checkpoint(tick);
    write_atomic(storage, &path, bytes).map_err(StoreError::io("write", &path))?;
    Ok(path)
}

/// The checkpoint files and the strays (anything else) in `checkpoints/`.
#[derive(Clone, Debug, Default)]
pub struct CheckpointListing {
    /// `(tick, path)`, ascending by tick.
    pub checkpoints: Vec<(Tick, PathBuf)>,
    /// Files that are not checkpoints (e.g. a `.tmp` left by a crash).
    pub strays: Vec<PathBuf>,
}

/// Lists `checkpoints/` (empty if it does not exist).
pub fn list_checkpoints(
    storage: &dyn Storage,
    world: &WorldDir,
) -> Result<CheckpointListing, StoreError> {
    let dir = world.checkpoints();
    let names = match storage.list(&dir) {
        Ok(names) => names,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(StoreError::io("list", &dir)(error)),
    };
    let mut listing = CheckpointListing::default();
    for name in names {
        match parse_checkpoint_name(&name) {
            Some(tick) => listing
                .checkpoints
                .push((tick, dir.join(checkpoint_name(tick)))),
            None => listing.strays.push(dir.join(name)),
        }
    }
    listing.checkpoints.sort();
    Ok(listing)
}

/// Moves the checkpoints of ticks after `tick` to the world's quarantine,
/// each followed by its signature when it has one; returns where each
/// went, in tick order. For a journal cut back to `tick` (a rolled-back
/// upgrade, a fenced authority's suffix), whose later checkpoints no
/// longer match it.
pub fn quarantine_after(
    storage: &dyn Storage,
    world: &WorldDir,
    tick: Tick,
) -> Result<Vec<PathBuf>, StoreError> {
    let mut moved = Vec::new();
    for (checkpoint_tick, path) in list_checkpoints(storage, world)?.checkpoints {
        if checkpoint_tick <= tick {
            continue;
        }
        moved.push(crate::meta::quarantine(storage, world, &path)?);
        let signature = world.checkpoint_signature(checkpoint_tick);
        if storage.exists(&signature) {
            moved.push(crate::meta::quarantine(storage, world, &signature)?);
        }
    }
    Ok(moved)
}

/// Removes all but the newest `keep` checkpoints (`keep` ≥ 1, so the only
/// one is never removed); returns the removed paths. Older checkpoints are
/// redundant: the journal from genesis is kept whole.
pub fn prune_checkpoints(
    storage: &dyn Storage,
    world: &WorldDir,
    keep: usize,
) -> Result<Vec<PathBuf>, StoreError> {
    assert!(keep >= 1, "retention must keep at least one checkpoint");
    let listing = list_checkpoints(storage, world)?;
    let excess = listing.checkpoints.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, path) in listing.checkpoints.into_iter().take(excess) {
        storage
            .remove_file(&path)
            .map_err(StoreError::io("remove", &path))?;
        removed.push(path);
    }
    if !removed.is_empty() {
        let dir = world.checkpoints();
        storage
            .sync_dir(&dir)
            .map_err(StoreError::io("fsync the directory", &dir))?;
    }
    Ok(removed)
}
