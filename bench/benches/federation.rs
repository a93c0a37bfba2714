//! `cargo bench -p everarcade-bench --bench federation`: the JetStream
//! transport's share of `--ack replicated` (docs/FEDERATION.md), each figure
//! beside its floor measured in the same run against the machine's NATS
//! server (127.0.0.1:4222, JetStream on).
//!
//! 1. **PubAck latency of one group commit.** One record of
//!    `EA_BENCH_FED_RECORD_BYTES` (default 4096: an inputs record of ~16
//!    envelopes) handed to the authority's publisher and awaited, one after
//!    the other: p50 and p99. Floor: a core NATS request of the same payload
//!    to a subject nobody subscribes to, which the server answers itself
//!    (no responders): one round trip through the server, no storage. Beside it, for the `--ack local` side: an
//!    append and `fdatasync` of the same bytes on this disk (the local group
//!    commit's floor).
//! 2. **Pipelined throughput.** `EA_BENCH_FED_RECORDS` records (default
//!    20,000) handed in batches of 16 without waiting, then all awaited:
//!    records/s and MB/s. Floor: core NATS publishes of the same payloads
//!    (no acknowledgement), then a flush: the server's raw ingestion.
//!
//! Environment: `EA_BENCH_FED_ROUNDS` (default 2000, section 1).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use everarcade_bench::report::{load_average, machine_facts};
use everarcade_bench::settings;
use everarcade_federation::nats::{NatsConfig, RecordLog};
use everarcade_federation::{Replicator, WireRecord};
use everarcade_protocol::{Hash, WorldId};
use everarcade_store::journal::{RecordKind, encode_record};

const NATS_URL: &str = "nats://127.0.0.1:4222";
const BATCH_RECORDS: usize = 16;

fn main() -> ExitCode {
    let options = (|| {
        Ok::<_, String>((
            settings::positive("EA_BENCH_FED_RECORD_BYTES", 4096)? as usize,
            settings::positive("EA_BENCH_FED_ROUNDS", 2000)? as usize,
            settings::positive("EA_BENCH_FED_RECORDS", 20_000)? as usize,
        ))
    })();
    let Some((record_bytes, rounds, records)) = settings::or_report(options) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("load average before: {}", load_average());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(run(record_bytes, rounds, records));
    println!("load average at end: {}", load_average());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("federation benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `count` chained records of `size` bytes each (bodies of filler bytes: the
/// transport never decodes them).
fn chain(first_ordinal: u64, count: usize, size: usize, mut prev: Hash) -> Vec<WireRecord> {
    let body = vec![0x5a; size.saturating_sub(72).max(1)];
    (0..count as u64)
        .map(|index| {
            let mut bytes = Vec::with_capacity(size);
            prev = encode_record(RecordKind::Inputs, &body, &prev, &mut bytes);
            WireRecord {
                ordinal: first_ordinal + index,
                kind: RecordKind::Inputs,
                bytes,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn micros(duration: Duration) -> String {
    format!("{:.1} us", duration.as_secs_f64() * 1e6)
}

async fn run(record_bytes: usize, rounds: usize, records: usize) -> Result<(), String> {
    let mut config = NatsConfig::new(NATS_URL);
    config.prefix = format!("bench{}", std::process::id());
    let world = WorldId::new("bench-federation").map_err(|error| error.to_string())?;
    let log = RecordLog::open(&config, &world).await.map_err(|error| {
        format!("{error}; start NATS with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log")
    })?;
    let all = chain(0, rounds + records, record_bytes, Hash([0; 32]));
    let replicator = log.replicator(None);
    println!(
        "record: {} bytes; section 1: {rounds} rounds; section 2: {records} records in batches of {BATCH_RECORDS}",
        all[0].bytes.len()
    );

    // Section 1: PubAck latency, one record at a time.
    let mut published = Vec::with_capacity(rounds);
    for record in &all[..rounds] {
        let started = Instant::now();
        replicator
            .replicate(vec![record.clone()])
            .await
            .map_err(|error| error.to_string())?;
        published.push(started.elapsed());
    }
    let floor = request_reply_floor(&all[0].bytes, rounds).await?;
    let fsync = fsync_floor(&all[0].bytes, rounds.min(500))?;
    published.sort();
    println!();
    println!("1. one group commit's record, handed to the publisher and its PubAck awaited");
    for (name, fraction) in [("p50", 0.5), ("p99", 0.99)] {
        let measured = percentile(&published, fraction);
        let round_trip = percentile(&floor, fraction);
        println!(
            "   {name}: {}  beside the server's own answer to a request of the same bytes: {}  ratio {:.2}x the floor",
            micros(measured),
            micros(round_trip),
            measured.as_secs_f64() / round_trip.as_secs_f64()
        );
    }
    println!(
        "   the local group commit's floor (append + fdatasync of the same bytes here): p50 {}, p99 {}",
        micros(percentile(&fsync, 0.5)),
        micros(percentile(&fsync, 0.99))
    );
    let local = percentile(&fsync, 0.5).as_secs_f64();
    let replicated = local + percentile(&published, 0.5).as_secs_f64();
    println!(
        "   a serial `--ack replicated` commit (fdatasync then PubAck) at p50: {}, {:.2} of `--ack local`'s rate (target >= 0.5)",
        micros(Duration::from_secs_f64(replicated)),
        local / replicated
    );

    // Section 2: pipelined throughput.
    let started = Instant::now();
    let mut waits = Vec::with_capacity(records / BATCH_RECORDS + 1);
    for batch in all[rounds..].chunks(BATCH_RECORDS) {
        waits.push(replicator.replicate(batch.to_vec()));
    }
    for wait in waits {
        wait.await.map_err(|error| error.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let floor = publish_floor(&all[rounds..]).await?;
    let bytes: usize = all[rounds..].iter().map(|record| record.bytes.len()).sum();
    println!();
    println!("2. pipelined: {records} records, every PubAck awaited");
    println!(
        "   {:.0} records/s, {:.1} MB/s  beside core NATS publishes of the same bytes (no ack): {:.0} records/s  ratio {:.2} of the floor",
        records as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        records as f64 / floor,
        floor / elapsed
    );
    log.delete().await.map_err(|error| error.to_string())
}

/// Round trips of `payload` through the server: a core NATS request to a
/// subject nobody subscribes to, which the server itself answers at once
/// with a no-responders status. One round trip, no storage, no second
/// client.
async fn request_reply_floor(payload: &[u8], rounds: usize) -> Result<Vec<Duration>, String> {
    let client = async_nats::connect(NATS_URL)
        .await
        .map_err(|error| error.to_string())?;
    let subject = format!("bench{}.nobody", std::process::id());
    let mut times = Vec::with_capacity(rounds);
    let payload = payload.to_vec();
    for _ in 0..rounds {
        let started = Instant::now();
        match client
            .request(subject.clone(), payload.clone().into())
            .await
        {
            Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
            other => {
                return Err(format!(
                    "expected the server's no-responders answer, got {other:?}"
                ));
            }
        }
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

/// Seconds to publish every record with no acknowledgement, then flush.
async fn publish_floor(records: &[WireRecord]) -> Result<f64, String> {
    let client = async_nats::connect(NATS_URL)
        .await
        .map_err(|error| error.to_string())?;
    let subject = format!("bench{}.sink", std::process::id());
    let started = Instant::now();
    for record in records {
        client
            .publish(subject.clone(), record.bytes.clone().into())
            .await
            .map_err(|error| error.to_string())?;
    }
    client.flush().await.map_err(|error| error.to_string())?;
    Ok(started.elapsed().as_secs_f64())
}

/// Appends of `payload` to a file on the disk the repository lives on (where
/// a world's journal would be), each followed by `fdatasync`.
fn fsync_floor(payload: &[u8], rounds: usize) -> Result<Vec<Duration>, String> {
    let dir =
        tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).map_err(|error| error.to_string())?;
    let path = dir.path().join("fsync-floor");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|error| error.to_string())?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        file.write_all(payload).map_err(|error| error.to_string())?;
        file.sync_data().map_err(|error| error.to_string())?;
        times.push(started.elapsed());
    }
    drop(file);
    times.sort();
    Ok(times)
}
