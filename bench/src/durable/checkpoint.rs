//! Checkpoint write and load for a large state, beside raw sequential file
//! bandwidth.
//!
//! The state: `keys` entries of 16-byte keys (`mix64(i)` then `i`, both
//! big-endian, so keys arrive in no particular order) and 32-byte random
//! values, built with [`State::set`] and folded once with [`State::root`]
//! before anything is timed.
//!
//! - write: [`write_checkpoint_of`] (encoded straight into a temporary
//!   file, hashed and written block by block on a second thread, fdatasync,
//!   rename, fsync of the directory) on [`DiskStorage`]; limit: a new file,
//!   `write_all` + `sync_all` of as many bytes. For the breakdown,
//!   [`encode_checkpoint`] into memory alone.
//! - load: [`load_checkpoint`] (read, checksum, decode, rebuild the state,
//!   recompute its root); limit: `fs::read` of the same file. Both read the
//!   file from the page cache (it was just written, and the bench cannot drop
//!   the cache), so the read limit is memory bandwidth, not the disk's.
//!
//! Nothing a round builds is freed before the last round ends. glibc defers
//! much of the work of freeing a million small allocations (consolidating
//! them) to the next large allocation, so a step timed right after dropping
//! a state pays for freeing it. The raw `fs::read` used to come right after
//! `drop(loaded)` and took 174–375 ms instead of 23–41 ms for 56 MB
//! (`malloc_consolidate` and `_int_malloc` in its profile): the read limit
//! was understated about sevenfold.
//!
//! The breakdown redoes each step on its own with the same public functions:
//! the checksum is `Domain::Checkpoint.hash` over the same bytes; decode +
//! rebuild walks the bytes, pushes each entry into a [`StateBuilder`] and
//! finishes it, as `decode_checkpoint` does; the root recompute is
//! [`State::root`] on that rebuilt state (the builder already hashed the trie,
//! so it only reads the root).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use everarcade_protocol::{Domain, Hash, PublicKey};
use everarcade_state::{State, StateBuilder};
use everarcade_store::checkpoint::{
    CHECKPOINT_HEADER_BYTES, encode_checkpoint, load_checkpoint, write_checkpoint_of,
};
use everarcade_store::storage::FILE_MODE;
use everarcade_store::{DiskStorage, Storage, WorldDir};

use super::fixture::Arena;
use super::{Scratch, fastest};
use crate::{SplitMix64, mix64};

/// How the checkpoint figures are taken.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointBenchConfig {
    /// State entries.
    pub keys: u64,
    /// Bytes of each value.
    pub value_bytes: usize,
    /// Rounds per side, taking turns; each figure is its fastest round.
    pub rounds: usize,
}

impl Default for CheckpointBenchConfig {
    fn default() -> CheckpointBenchConfig {
        CheckpointBenchConfig {
            keys: 1_000_000,
            value_bytes: 32,
            rounds: 3,
        }
    }
}

/// Fastest seconds of each measured step.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckpointReport {
    /// Bytes of the checkpoint file.
    pub bytes: u64,
    /// Building the state (`set` × keys, then the first `root`), once.
    pub build_seconds: f64,
    /// `encode_checkpoint` into memory (its checksum included): breakdown.
    pub encode_seconds: f64,
    /// `write_checkpoint_of`: the figure held against the raw write.
    pub write_seconds: f64,
    /// Raw limit: `write_all` + `sync_all` of as many bytes to a new file.
    pub raw_write_seconds: f64,
    /// `load_checkpoint`.
    pub load_seconds: f64,
    /// Raw limit: `fs::read` of the checkpoint file.
    pub raw_read_seconds: f64,
    /// Breakdown: `Domain::Checkpoint.hash` over the bytes before the checksum
    /// (one core: the floor the parallel checksum is held against).
    pub checksum_seconds: f64,
    /// Breakdown: the same checksum on every core
    /// (`Domain::hash_on_threads`), what `load_checkpoint` does.
    pub checksum_parallel_seconds: f64,
    /// Threads the parallel checksum used.
    pub checksum_threads: usize,
    /// Breakdown: walking the entries into a `StateBuilder` and finishing it.
    pub rebuild_seconds: f64,
    /// Breakdown: `State::root` of the rebuilt state.
    pub root_seconds: f64,
}

/// The state of the module docs, and its root.
pub fn build_state(config: &CheckpointBenchConfig) -> (State, Hash) {
    let mut state = State::new();
    let mut random = SplitMix64(0x00C0_FFEE);
    let mut value = vec![0u8; config.value_bytes];
    for index in 0..config.keys {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&mix64(index).to_be_bytes());
        key[8..].copy_from_slice(&index.to_be_bytes());
        for chunk in value.chunks_mut(8) {
            let bytes = random.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        state.set(&key, &value);
    }
    let root = state.root();
    (state, root)
}

/// Runs every step `rounds` times; see the module docs.
pub fn run(config: &CheckpointBenchConfig) -> Result<CheckpointReport, String> {
    let started = Instant::now();
    let (state, state_root) = build_state(config);
    let mut report = CheckpointReport {
        build_seconds: started.elapsed().as_secs_f64(),
        ..CheckpointReport::default()
    };
    let scratch = Scratch::new("checkpoint").map_err(|e| e.to_string())?;
    let dir = WorldDir::new(scratch.path(), &Arena::world_id());
    DiskStorage
        .create_dir_all(&dir.checkpoints())
        .map_err(|e| e.to_string())?;
    let nonces: BTreeMap<PublicKey, u64> = BTreeMap::new();
    let (genesis_root, continuity_root) = (Hash([1; 32]), Hash([2; 32]));
    let mut best = Best::default();
    // Every state a round builds, kept until the end (see the module docs).
    let mut kept: Vec<State> = Vec::new();
    for round in 0..config.rounds {
        let tick = 1000 * (round as u64 + 1);
        let begin = Instant::now();
        let roots = [&genesis_root, &continuity_root, &state_root];
        let written = write_checkpoint_of(&DiskStorage, &dir, tick, roots, &state, &nonces, None)
            .map_err(|e| e.to_string())?;
        best.write = fastest(best.write, begin.elapsed().as_secs_f64());
        let path = written.path;
        let begin = Instant::now();
        let bytes = encode_checkpoint(
            tick,
            &genesis_root,
            &continuity_root,
            &state_root,
            &state,
            &nonces,
        );
        best.encode = fastest(best.encode, begin.elapsed().as_secs_f64());
        assert_eq!(written.bytes, bytes.len() as u64);
        report.bytes = bytes.len() as u64;

        let raw_path = scratch.path().join(format!("raw-{round}.bin"));
        let begin = Instant::now();
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(FILE_MODE)
            .open(&raw_path)
            .map_err(|e| e.to_string())?;
        file.write_all(&bytes).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        best.raw_write = fastest(best.raw_write, begin.elapsed().as_secs_f64());
        drop(bytes);

        let begin = Instant::now();
        let loaded = load_checkpoint(&DiskStorage, &path).map_err(|e| e.to_string())?;
        best.load = fastest(best.load, begin.elapsed().as_secs_f64());
        assert_eq!(loaded.state_root, state_root);
        assert_eq!(loaded.state.len() as u64, config.keys);
        kept.push(loaded.state);

        let begin = Instant::now();
        let read = std::fs::read(&path).map_err(|e| e.to_string())?;
        best.raw_read = fastest(best.raw_read, begin.elapsed().as_secs_f64());
        kept.push(breakdown(&read, &state_root, &mut best));
        drop(read);
        // Keep the disk as fresh for the next round as for this one.
        std::fs::remove_file(&path).map_err(|e| e.to_string())?;
        std::fs::remove_file(&raw_path).map_err(|e| e.to_string())?;
    }
    best.fill(&mut report);
    drop(kept);
    Ok(report)
}

/// The fastest of each step so far.
#[derive(Default)]
struct Best {
    encode: Option<f64>,
    write: Option<f64>,
    raw_write: Option<f64>,
    load: Option<f64>,
    raw_read: Option<f64>,
    checksum: Option<f64>,
    checksum_parallel: Option<f64>,
    rebuild: Option<f64>,
    root: Option<f64>,
}

impl Best {
    fn fill(&self, report: &mut CheckpointReport) {
        let get = |value: Option<f64>| value.expect("at least one round");
        report.encode_seconds = get(self.encode);
        report.write_seconds = get(self.write);
        report.raw_write_seconds = get(self.raw_write);
        report.load_seconds = get(self.load);
        report.raw_read_seconds = get(self.raw_read);
        report.checksum_seconds = get(self.checksum);
        report.checksum_parallel_seconds = get(self.checksum_parallel);
        report.checksum_threads = checksum_threads();
        report.rebuild_seconds = get(self.rebuild);
        report.root_seconds = get(self.root);
    }
}

/// The cores the parallel checksum runs on (as `load_checkpoint`'s).
fn checksum_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Redoes the load's steps one by one on `bytes` (a checkpoint with no
/// nonces); returns the rebuilt state, for the caller to free later.
fn breakdown(bytes: &[u8], state_root: &Hash, best: &mut Best) -> State {
    let body_end = bytes.len() - 32;
    let begin = Instant::now();
    let checksum = Domain::Checkpoint.hash(&bytes[..body_end]);
    best.checksum = fastest(best.checksum, begin.elapsed().as_secs_f64());
    assert_eq!(checksum.0, bytes[body_end..]);
    let begin = Instant::now();
    let parallel = Domain::Checkpoint.hash_on_threads(&bytes[..body_end], checksum_threads());
    best.checksum_parallel = fastest(best.checksum_parallel, begin.elapsed().as_secs_f64());
    assert_eq!(parallel, checksum);

    let begin = Instant::now();
    let entries = u64::from_le_bytes(bytes[128..136].try_into().expect("8 bytes"));
    let mut builder = StateBuilder::with_capacity(entries as usize);
    let mut offset = CHECKPOINT_HEADER_BYTES;
    let u32_at = |offset: &mut usize| {
        let value = u32::from_le_bytes(bytes[*offset..*offset + 4].try_into().expect("4 bytes"));
        *offset += 4;
        value as usize
    };
    for _ in 0..entries {
        let key_length = u32_at(&mut offset);
        let key = &bytes[offset..offset + key_length];
        offset += key_length;
        let value_length = u32_at(&mut offset);
        let value = &bytes[offset..offset + value_length];
        offset += value_length;
        builder.push(key, value).expect("keys ascend");
    }
    assert_eq!(offset, body_end);
    let mut state = builder.finish();
    best.rebuild = fastest(best.rebuild, begin.elapsed().as_secs_f64());

    let begin = Instant::now();
    let root = state.root();
    best.root = fastest(best.root, begin.elapsed().as_secs_f64());
    assert_eq!(&root, state_root);
    state
}
