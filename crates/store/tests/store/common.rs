//! Shared helpers: temporary directories, a seeded random source, a
//! deterministic world history, and reading a journal back whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use everarcade_protocol::{
    Domain, Envelope, Hash, Outcome, Receipt, ReceiptKind, TickRoots, WorldId, continuity_root,
    genesis_root, list_root, test_signing_key,
};
use everarcade_store::journal::{
    GenesisRecord, InputsRecord, JournalEnd, RawRecord, Record, TickRecord, TornTail,
};
use everarcade_store::{JournalConfig, JournalReader, JournalWriter, Storage, StoreError};

/// A directory under the system temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, unique, not yet existing path (the code under test creates it).
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "everarcade-store-test-{}-{label}-{count}",
            std::process::id()
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// xorshift64*: tiny, seeded, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    /// A generator; any seed works (zero is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The world every test history belongs to.
pub fn world() -> WorldId {
    WorldId::new("world-001").unwrap()
}

/// The genesis record of `world`, with a genesis-hook receipt.
pub fn genesis_of(world: &WorldId) -> GenesisRecord {
    let package_root = Domain::Package.hash(b"test package");
    let profile_hash = Domain::Profile.hash(b"test profile");
    GenesisRecord {
        world: world.clone(),
        package_root,
        profile_hash,
        genesis_root: genesis_root(world, &package_root, &profile_hash),
        state_root: Domain::StateEmpty.hash(b""),
        receipt: Some(Receipt {
            kind: ReceiptKind::GenesisHook,
            subject: Hash::ZERO,
            outcome: Outcome::Applied,
            fuel_used: 1234,
            events_hash: Domain::Events.hash(b""),
            event_count: 0,
        }),
    }
}

/// A deterministic history: genesis, then per tick an inputs record of
/// `inputs_per_tick` envelopes signed by the test keys and a tick record
/// whose roots are computed from them as the protocol does.
pub struct History {
    /// Genesis first, then inputs/tick pairs.
    pub records: Vec<Record>,
}

impl History {
    /// Ticks `1..=ticks` of `world`.
    pub fn new(world: &WorldId, ticks: u64, inputs_per_tick: usize) -> History {
        let genesis = genesis_of(world);
        let mut previous = genesis.genesis_root;
        let mut records = vec![Record::Genesis(genesis)];
        let players = ["alice", "bob", "carol"];
        for tick in 1..=ticks {
            let envelopes: Vec<Envelope> = (0..inputs_per_tick)
                .map(|n| {
                    let key = test_signing_key(players[n % players.len()]);
                    let nonce = tick * 100 + n as u64;
                    let payload = format!("move {tick} {n}").into_bytes();
                    Envelope::sign(world, &key, nonce, payload)
                })
                .collect();
            let tick_record = tick_of(tick, &previous, &envelopes);
            previous = tick_record.roots.continuity_root;
            records.push(Record::Inputs(InputsRecord { tick, envelopes }));
            records.push(Record::Tick(tick_record));
        }
        History { records }
    }

    /// The genesis record.
    pub fn genesis(&self) -> &GenesisRecord {
        match &self.records[0] {
            Record::Genesis(genesis) => genesis,
            other => panic!("the first record is {:?}", other.kind()),
        }
    }
}

/// The tick record sealing `envelopes`: one receipt per input (every third
/// rejected), then the tick hook's.
pub fn tick_of(tick: u64, previous: &Hash, envelopes: &[Envelope]) -> TickRecord {
    let mut receipts: Vec<Receipt> = envelopes
        .iter()
        .enumerate()
        .map(|(n, envelope)| Receipt {
            kind: ReceiptKind::Input,
            subject: envelope.hash(),
            outcome: if n % 3 == 2 {
                Outcome::Rejected(7)
            } else {
                Outcome::Applied
            },
            fuel_used: 1000 + n as u64,
            events_hash: Domain::Events.hash(&[n as u8]),
            event_count: 1,
        })
        .collect();
    receipts.push(Receipt {
        kind: ReceiptKind::TickHook,
        subject: Hash::ZERO,
        outcome: Outcome::Applied,
        fuel_used: 50,
        events_hash: Domain::Events.hash(b""),
        event_count: 0,
    });
    let input_hashes: Vec<Hash> = envelopes.iter().map(Envelope::hash).collect();
    let receipt_hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
    let input_root = list_root(&input_hashes);
    let receipt_root = list_root(&receipt_hashes);
    let state_root = Domain::StateEmpty.hash(&tick.to_le_bytes());
    TickRecord {
        roots: TickRoots {
            tick,
            input_root,
            receipt_root,
            state_root,
            continuity_root: continuity_root(
                previous,
                tick,
                &input_root,
                &receipt_root,
                &state_root,
            ),
        },
        input_count: envelopes.len() as u32,
        receipts,
    }
}

/// A journal config whose segments roll after `bytes`.
pub fn segments_of(bytes: u64) -> JournalConfig {
    JournalConfig {
        segment_bytes_max: bytes,
    }
}

/// Writes `history` as a new journal in `dir`, committing each inputs/tick
/// pair together; returns the writer.
pub fn write_history(
    storage: Arc<dyn Storage>,
    dir: &Path,
    history: &History,
    config: JournalConfig,
) -> JournalWriter {
    let mut writer = JournalWriter::create(storage, dir, history.genesis(), config).unwrap();
    append_all(&mut writer, &history.records[1..]);
    writer
}

/// Appends `records`, committing after every tick record.
pub fn append_all(writer: &mut JournalWriter, records: &[Record]) {
    for record in records {
        writer.append(record).unwrap();
        if matches!(record, Record::Tick(_)) {
            writer.commit().unwrap();
        }
    }
    writer.commit().unwrap();
}

/// Everything a full read of a journal reports.
pub struct Reading {
    /// The records read, checked but not decoded.
    pub records: Vec<RawRecord>,
    /// Where the valid journal ends.
    pub end: JournalEnd,
    /// The torn tail, if any.
    pub torn: Option<TornTail>,
}

impl Reading {
    /// Every record decoded.
    pub fn decoded(&self) -> Vec<Record> {
        self.records
            .iter()
            .map(|raw| raw.decode().unwrap())
            .collect()
    }
}

/// Reads the whole journal in `dir`.
pub fn read_journal(storage: &dyn Storage, dir: &Path) -> Result<Reading, StoreError> {
    read_journal_partially(storage, dir).map_err(|(error, _)| error)
}

/// Reads the whole journal; on an error, also returns the records read before it.
pub fn read_journal_partially(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Reading, (StoreError, Vec<RawRecord>)> {
    let mut reader = JournalReader::open(storage, dir).map_err(|error| (error, Vec::new()))?;
    let mut records = Vec::new();
    loop {
        match reader.next() {
            Ok(Some(record)) => records.push(record),
            Ok(None) => break,
            Err(error) => return Err((error, records)),
        }
    }
    Ok(Reading {
        records,
        end: reader.end().clone(),
        torn: reader.torn_tail().cloned(),
    })
}

/// Segment files with their bytes, in order.
pub type Segments = Vec<(PathBuf, Vec<u8>)>;

/// The segment files of `dir` with their bytes, in order.
pub fn segment_files(storage: &dyn Storage, dir: &Path) -> Segments {
    storage
        .list(dir)
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".seg"))
        .map(|name| {
            let path = dir.join(name);
            let bytes = storage.read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// A simulated disk holding exactly `segments`, durable.
pub fn sim_with(segments: &[(PathBuf, Vec<u8>)]) -> everarcade_store::SimStorage {
    let storage = everarcade_store::SimStorage::new();
    for (path, bytes) in segments {
        storage.write_synced(path, bytes).unwrap();
        storage.sync_dir(path.parent().unwrap()).unwrap();
    }
    storage
}

/// The journal directory used on simulated disks.
pub fn sim_journal() -> PathBuf {
    PathBuf::from("/runtime/worlds/world-001/journal")
}

/// Asserts that `error` is `Corrupt` about `path` at `offset`, naming `what`.
#[track_caller]
pub fn check_corrupt(error: &StoreError, path: &Path, offset: u64, what: &str) {
    match error {
        StoreError::Corrupt {
            path: found_path,
            offset: found_offset,
            what: found_what,
        } => {
            assert_eq!(found_path, path, "{error}");
            assert_eq!(*found_offset, offset, "{error}");
            assert!(found_what.contains(what), "{error} does not say {what:?}");
        }
        other => panic!(
            "expected Corrupt at {offset} of {}, got {other}",
            path.display()
        ),
    }
}
