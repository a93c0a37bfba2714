//! Durable input throughput with group commit, and acknowledgement latency.
//!
//! The store row: for each batch size, pre-signed envelopes (3-byte MOVE
//! payloads, 256 signers) are prepared as `Record::Inputs` records outside
//! the timed loop; the loop calls [`JournalWriter::append`] then
//! [`JournalWriter::commit`] (one write, one fdatasync) per batch on
//! [`DiskStorage`]. A batch's acknowledgement latency runs from its append to
//! the return of its commit.
//!
//! The limit: the same record bytes (encoded in advance with
//! [`encode_record`]) written to a file opened for appending with
//! `write_all` + `sync_data`, one batch per iteration. The two sides take
//! turns, round after round, so that other load on the machine hits both.
//!
//! The world row goes through [`DurableWorld::admit`] (which checks the
//! signature) for each input and [`DurableWorld::commit_inputs`] per batch.
//! Each input needs a fresh nonce, so the world row signs its own envelopes
//! (outside the timed loop) and runs fewer of them. When the next batch would
//! overflow the tick's `inputs_per_tick`, the tick is executed outside the
//! timed region (its fdatasync included), so only admission and group commit
//! are timed.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use everarcade_protocol::{Envelope, Hash, WorldId, test_signing_key};
use everarcade_store::journal::{GenesisRecord, InputsRecord, RecordKind, encode_record};
use everarcade_store::storage::FILE_MODE;
use everarcade_store::{DiskStorage, JournalConfig, JournalWriter, Record, WorldDir};
use everarcade_world::WorldConfig;

use super::fixture::Arena;
use super::{Scratch, quantile};

/// How the journal figures are taken.
#[derive(Clone, Debug)]
pub struct JournalBenchConfig {
    /// Inputs per commit, one row each.
    pub batch_sizes: Vec<usize>,
    /// Rounds per side, taking turns; throughput is the fastest round.
    pub rounds: usize,
    /// Commits per round of the store row and of its raw limit.
    pub commits_per_round: usize,
    /// Distinct signers of the envelopes.
    pub signers: usize,
    /// Pre-signed envelopes the store row cycles through (the journal does
    /// not check nonces, so they may repeat).
    pub pool_envelopes: usize,
    /// At most this many inputs per round of the world row (each needs a
    /// fresh signature; commits per round shrink for large batches).
    pub world_inputs_per_round_max: usize,
    /// Commits per round of the world row, at most.
    pub world_commits_per_round_max: usize,
}

impl Default for JournalBenchConfig {
    fn default() -> JournalBenchConfig {
        JournalBenchConfig {
            batch_sizes: vec![1, 16, 64, 256],
            rounds: 3,
            commits_per_round: 400,
            signers: 256,
            pool_envelopes: 4096,
            world_inputs_per_round_max: 8192,
            world_commits_per_round_max: 200,
        }
    }
}

/// One side of one row: its rounds.
#[derive(Clone, Debug, Default)]
pub struct Side {
    /// Inputs made durable per round.
    pub inputs_per_round: u64,
    /// Commits per round.
    pub commits_per_round: u64,
    /// Wall-clock seconds of the fastest round.
    pub fastest_round_seconds: f64,
    /// Every commit's acknowledgement latency in seconds, all rounds.
    pub latencies: Vec<f64>,
    /// Seconds spent in the timed region, all rounds (for shares).
    pub total_seconds: f64,
}

impl Side {
    /// Inputs per second in the fastest round.
    pub fn inputs_per_second(&self) -> f64 {
        self.inputs_per_round as f64 / self.fastest_round_seconds
    }

    /// Commits per second in the fastest round.
    pub fn commits_per_second(&self) -> f64 {
        self.commits_per_round as f64 / self.fastest_round_seconds
    }

    /// The latency at quantile `q` over every commit of every round.
    pub fn latency(&self, q: f64) -> f64 {
        quantile(&mut self.latencies.clone(), q)
    }

    fn add_round(&mut self, seconds: f64, latencies: Vec<f64>) {
        if self.latencies.is_empty() || seconds < self.fastest_round_seconds {
            self.fastest_round_seconds = seconds;
        }
        self.total_seconds += seconds;
        self.latencies.extend(latencies);
    }
}

/// One batch size: the store beside its raw limit.
#[derive(Clone, Debug)]
pub struct JournalRow {
    /// Inputs per commit.
    pub batch: usize,
    /// Bytes written per commit (one record).
    pub bytes_per_commit: usize,
    /// `JournalWriter::append` + `commit`.
    pub store: Side,
    /// `write_all` + `sync_data` of the same bytes.
    pub raw: Side,
}

/// One batch size through `DurableWorld::admit` + `commit_inputs`.
#[derive(Clone, Debug)]
pub struct WorldRow {
    /// Inputs per commit.
    pub batch: usize,
    /// The timed admissions and commits.
    pub world: Side,
    /// `Envelope::verify_signature` over one round's envelopes, in seconds
    /// (what admission spends on signatures, measured apart).
    pub signature_seconds_per_round: f64,
}

/// Envelopes signed by `signers` keys in turn, each key's nonces counting up.
pub struct Signer {
    id: WorldId,
    keys: Vec<SigningKey>,
    nonces: Vec<u64>,
    next: usize,
}

impl Signer {
    /// Keys `bench-signer-0 ..`; nonces start at 1.
    pub fn new(id: WorldId, signers: usize) -> Signer {
        Signer {
            id,
            keys: (0..signers)
                .map(|index| test_signing_key(&format!("bench-signer-{index}")))
                .collect(),
            nonces: vec![0; signers],
            next: 0,
        }
    }

    /// The next envelope: a 2d-arena MOVE (`02 vx vy`), 3 bytes.
    pub fn sign(&mut self) -> Envelope {
        let signer = self.next;
        self.next = (self.next + 1) % self.keys.len();
        self.nonces[signer] += 1;
        let nonce = self.nonces[signer];
        let payload = vec![0x02, (nonce % 7) as u8, (signer % 5) as u8];
        Envelope::sign(&self.id, &self.keys[signer], nonce, payload)
    }
}

/// The store rows for every batch size, in a scratch directory.
pub fn store_rows(config: &JournalBenchConfig) -> Result<Vec<JournalRow>, String> {
    let scratch = Scratch::new("journal").map_err(|e| e.to_string())?;
    let mut signer = Signer::new(Arena::world_id(), config.signers);
    let pool: Vec<Envelope> = (0..config.pool_envelopes).map(|_| signer.sign()).collect();
    let mut rows = Vec::new();
    for &batch in &config.batch_sizes {
        rows.push(store_row(config, scratch.path(), &pool, batch)?);
    }
    Ok(rows)
}

fn store_row(
    config: &JournalBenchConfig,
    scratch: &Path,
    pool: &[Envelope],
    batch: usize,
) -> Result<JournalRow, String> {
    let journal_dir = scratch.join(format!("store-{batch}"));
    std::fs::create_dir_all(&journal_dir).map_err(|e| e.to_string())?;
    let raw_path = scratch.join(format!("raw-{batch}.seg"));
    let genesis = GenesisRecord {
        world: Arena::world_id(),
        package_root: Hash([1; 32]),
        profile_hash: Hash([2; 32]),
        genesis_root: Hash([3; 32]),
        state_root: Hash([4; 32]),
        receipt: None,
    };
    let mut writer = JournalWriter::create(
        Arc::new(DiskStorage),
        &journal_dir,
        &genesis,
        JournalConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut raw_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(&raw_path)
        .map_err(|e| format!("{}: {e}", raw_path.display()))?;
    let mut cursor = 0usize;
    let mut row = JournalRow {
        batch,
        bytes_per_commit: 0,
        store: Side::default(),
        raw: Side::default(),
    };
    for _ in 0..config.rounds {
        let records: Vec<Record> = (0..config.commits_per_round)
            .map(|_| {
                let envelopes = (0..batch)
                    .map(|i| pool[(cursor + i) % pool.len()].clone())
                    .collect();
                cursor = (cursor + batch) % pool.len();
                Record::Inputs(InputsRecord { tick: 1, envelopes })
            })
            .collect();
        let encoded = encode_records(&records);
        row.bytes_per_commit = encoded[0].len();
        let inputs = (batch * records.len()) as u64;

        let mut latencies = Vec::with_capacity(records.len());
        let started = Instant::now();
        for record in &records {
            let begin = Instant::now();
            writer.append(record).map_err(|e| e.to_string())?;
            writer.commit().map_err(|e| e.to_string())?;
            latencies.push(begin.elapsed().as_secs_f64());
        }
        row.store
            .add_round(started.elapsed().as_secs_f64(), latencies);
        row.store.inputs_per_round = inputs;
        row.store.commits_per_round = records.len() as u64;

        let mut latencies = Vec::with_capacity(encoded.len());
        let started = Instant::now();
        for bytes in &encoded {
            let begin = Instant::now();
            raw_file.write_all(bytes).map_err(|e| e.to_string())?;
            raw_file.sync_data().map_err(|e| e.to_string())?;
            latencies.push(begin.elapsed().as_secs_f64());
        }
        row.raw
            .add_round(started.elapsed().as_secs_f64(), latencies);
        row.raw.inputs_per_round = inputs;
        row.raw.commits_per_round = encoded.len() as u64;
    }
    assert_eq!(
        writer.segment(),
        1,
        "the bench sizes rounds to stay in one segment"
    );
    Ok(row)
}

/// Each record as the journal writes it (header, body, checksum), chained.
fn encode_records(records: &[Record]) -> Vec<Vec<u8>> {
    let mut prev = Hash([3; 32]);
    records
        .iter()
        .map(|record| {
            let mut out = Vec::new();
            prev = encode_record(RecordKind::Inputs, &record.encode_body(), &prev, &mut out);
            out
        })
        .collect()
}

/// The world rows for every batch size: a fresh 2d-arena world each.
pub fn world_rows(config: &JournalBenchConfig, arena: &Arena) -> Result<Vec<WorldRow>, String> {
    let scratch = Scratch::new("journal-world").map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for &batch in &config.batch_sizes {
        let dir = WorldDir::new(
            &scratch.path().join(format!("b{batch}")),
            &Arena::world_id(),
        );
        rows.push(world_row(config, arena, &dir, batch)?);
    }
    Ok(rows)
}

fn world_row(
    config: &JournalBenchConfig,
    arena: &Arena,
    dir: &WorldDir,
    batch: usize,
) -> Result<WorldRow, String> {
    let world_config = WorldConfig {
        checkpoint_interval_ticks: 0,
        ..WorldConfig::default()
    };
    let mut world = arena.create(Arc::new(DiskStorage), dir, world_config)?;
    let per_tick = world.world().limits().inputs_per_tick as usize;
    assert!(batch <= per_tick, "a batch must fit in one tick");
    let commits =
        (config.world_inputs_per_round_max / batch).clamp(1, config.world_commits_per_round_max);
    let mut signer = Signer::new(Arena::world_id(), config.signers);
    let mut row = WorldRow {
        batch,
        world: Side::default(),
        signature_seconds_per_round: f64::INFINITY,
    };
    for _ in 0..config.rounds {
        let batches: Vec<Vec<Envelope>> = (0..commits)
            .map(|_| (0..batch).map(|_| signer.sign()).collect())
            .collect();
        let started = Instant::now();
        for envelope in batches.iter().flatten() {
            envelope.verify_signature().map_err(|e| e.to_string())?;
        }
        row.signature_seconds_per_round = row
            .signature_seconds_per_round
            .min(started.elapsed().as_secs_f64());

        let mut latencies = Vec::with_capacity(commits);
        let mut timed = 0.0;
        for envelopes in batches {
            if world.pending_inputs() + batch > per_tick {
                world.execute_tick().map_err(|e| e.to_string())?;
            }
            let begin = Instant::now();
            for envelope in envelopes {
                world.admit(envelope).map_err(|e| e.to_string())?;
            }
            let count = world.commit_inputs().map_err(|e| e.to_string())?;
            let seconds = begin.elapsed().as_secs_f64();
            assert_eq!(count, batch);
            timed += seconds;
            latencies.push(seconds);
        }
        row.world.add_round(timed, latencies);
        row.world.inputs_per_round = (commits * batch) as u64;
        row.world.commits_per_round = commits as u64;
    }
    world.close().map_err(|e| e.to_string())?;
    Ok(row)
}
