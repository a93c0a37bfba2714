//! `cargo bench -p everarcade-bench --bench admission`: the node's input
//! admission over loopback HTTP, and its cold start.
//!
//! **Admission.** A node (`everarcade_node::Node`, in this process, on a
//! 2-worker tokio runtime, a durable 2d-arena world under `target/bench-tmp/`)
//! takes signed 2d-arena bot inputs from `everarcade_client::load`: a closed
//! loop of `EA_BENCH_ADMISSION_CONCURRENCY` lanes, each sending its next
//! request as soon as the previous one is answered. An input counts once the
//! node answered 202, i.e. once its journal record was fdatasynced. The limit
//! beside it, measured in the same run: the same client, lanes and envelopes
//! against an axum server on the same runtime whose handler answers 202 at
//! once (the HTTP stack and the client with nothing behind them). The world
//! itself caps admission at `inputs_per_tick × tick_rate_hz` (2d-arena:
//! 1024 × 20 = 20,480 inputs/s); inputs beyond a full tick are refused
//! `tick_full`, counted, and not retried, and the lane pauses one tick
//! period. Beside both: the latency of one `write` + `fdatasync` on the
//! same disk, the floor of every acknowledgement.
//!
//! **Cold start.** A world with `EA_BENCH_COLD_TICKS` ticks (default 100,000;
//! one bot) and a checkpoint at its last tick; the time from
//! `Node::prepare` to the first `/readyz` 200, beside its floor: compiling
//! the package on a fresh engine plus `DurableWorld::open` of the same world.
//!
//! **Federation** (`EA_BENCH_ONLY=federation`; issue 11, docs/FEDERATION.md).
//! The same load, single binary lanes, against four set-ups, each with new
//! worlds: an authority under `--ack local` alone (the reference); under
//! `--ack replicated` publishing to the machine's JetStream
//! (127.0.0.1:4222), alone, then with a JetStream follower in the same
//! process; and under `--ack replicated --ack-followers 1` with an HTTP
//! follower; and, as the ceiling one machine sets, `--ack local` with an
//! HTTP follower that re-executes every tick on the same cores but that no
//! acknowledgement waits for. Admission of each beside `--ack local`'s
//! (target ≥ 0.5), the HTTP run's beside that ceiling, and the
//! followers' lag: every 10 ms the follower's head tick, then the
//! authority's, are read and their difference kept; p50, p99 and max in
//! ticks (target p99 ≤ 2). Both nodes share this machine's two cores with
//! the load driver.
//!
//! **Catch-up** (`EA_BENCH_ONLY=catch-up`). A world of
//! `EA_BENCH_CATCH_UP_TICKS` ticks (default 100,000; `EA_BENCH_CATCH_UP_BOTS`
//! bots, default 4), with one checkpoint at its last tick, served by an
//! authority node; a new follower (`--follow http://…`, empty runtime root)
//! starts and follows it, twice: record by record (`catch_up_ticks = 0`),
//! then from the authority's checkpoint: the time from its `Node::prepare`
//! to its head reaching the world's last tick, beside `replay` from genesis
//! with signatures checked (`replay-verify`'s work) of the same journal in
//! the same run (target ≥ 0.5 of its speed).
//!
//! Environment:
//! - `EA_BENCH_ONLY`: `admission`, `cold-start`, `federation` or `catch-up`
//!   (default: all four; `federation` needs NATS with JetStream);
//! - `EA_BENCH_ADMISSION_SECONDS`: bound of each load run (default 10);
//! - `EA_BENCH_ADMISSION_INPUTS`: envelopes prepared per run (default 150000);
//! - `EA_BENCH_ADMISSION_CONCURRENCY`: lanes (default 32);
//! - `EA_BENCH_ADMISSION_BOTS`: bot players (default 256);
//! - `EA_BENCH_ADMISSION_READ_PLANE_THREADS`: the nodes' `http.read_plane_threads`
//!   (default: the node's default);
//! - `EA_BENCH_ADMISSION_RULE`: `strict` or `zip215`, the one signature rule
//!   whose node runs (default: both, the shipped 2d-arena under strict and
//!   a copy of it whose manifest says `signatures = "zip215"`);
//! - `EA_BENCH_COLD_TICKS`: ticks of the cold-start world (default 100000);
//! - `EA_BENCH_CATCH_UP_TICKS`, `EA_BENCH_CATCH_UP_BOTS`: the catch-up world.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ed25519_dalek::SigningKey;
use everarcade_bench::durable::fixture::{self, Arena, FixtureConfig};
use everarcade_bench::durable::{Scratch, millis, scratch_root};
use everarcade_bench::report::{Target, count, load_average, machine_facts};
use everarcade_bench::{settings, speed};
use everarcade_client::load::{self, Lane, LoadConfig, LoadReport};
use everarcade_client::{Client, Encoding};
use everarcade_engine::World;
use everarcade_node::{Node, NodeConfig, NodeSpec};
use everarcade_protocol::{Envelope, PublicKey, WorldId, test_signing_key};
use everarcade_store::{DiskStorage, WorldDir};
use everarcade_world::DurableWorld;

/// Seed of the bots' choices.
const SEED: u64 = 1;
/// Envelopes per request in the batch rows.
const BATCH_ROW_LANES_DIVISOR: u32 = 4;
/// How long a node may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(300);
/// Cold starts measured (the fastest is the figure).
const COLD_ROUNDS: usize = 3;
/// Requests per second per client the node allows here: one client IP sends
/// everything, so the per-client limit must not be the bottleneck.
const RATE_PER_CLIENT: u32 = 1_000_000;

/// The section `EA_BENCH_ONLY` names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    Admission,
    ColdStart,
    Federation,
    CatchUp,
}

struct Options {
    only: Option<Only>,
    seconds: u64,
    inputs: u64,
    concurrency: u32,
    bots: u32,
    /// Only this signature rule's node (`strict` or `zip215`); both if unset.
    rules: Option<String>,
    cold_ticks: u64,
    catch_up_ticks: u64,
    catch_up_bots: u64,
}

impl Options {
    fn runs(&self, section: Only) -> bool {
        self.only.is_none_or(|only| only == section)
    }

    fn from_env() -> Result<Options, String> {
        let only = settings::only(&[
            ("admission", Only::Admission),
            ("cold-start", Only::ColdStart),
            ("federation", Only::Federation),
            ("catch-up", Only::CatchUp),
        ])?;
        let small = |name: &str, default: u64, max: u64| -> Result<u32, String> {
            let value = settings::positive(name, default)?;
            if value > max {
                return Err(format!("{name} is at most {max}"));
            }
            Ok(value as u32)
        };
        Ok(Options {
            only,
            seconds: settings::positive("EA_BENCH_ADMISSION_SECONDS", 10)?,
            inputs: settings::positive("EA_BENCH_ADMISSION_INPUTS", 150_000)?.min(2_000_000),
            concurrency: small("EA_BENCH_ADMISSION_CONCURRENCY", 32, 512)?,
            bots: small("EA_BENCH_ADMISSION_BOTS", 256, 4096)?,
            rules: match std::env::var("EA_BENCH_ADMISSION_RULE") {
                Err(_) => None,
                Ok(rule) if rule == "strict" || rule == "zip215" => Some(rule),
                Ok(other) => {
                    return Err(format!(
                        "EA_BENCH_ADMISSION_RULE is strict or zip215, not {other:?}"
                    ));
                }
            },
            cold_ticks: settings::positive("EA_BENCH_COLD_TICKS", 100_000)?,
            catch_up_ticks: settings::positive("EA_BENCH_CATCH_UP_TICKS", 100_000)?,
            catch_up_bots: settings::positive("EA_BENCH_CATCH_UP_BOTS", 4)?.min(1024),
        })
    }
}

fn main() -> ExitCode {
    let Some(options) = settings::or_report(Options::from_env()) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("scratch directory: {}", scratch_root().display());
    println!();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let sections: [(Only, &str, Section); 4] = [
        (Only::Admission, "admission", admission_section),
        (Only::ColdStart, "cold start", cold_start_section),
        (Only::Federation, "federation", federation_section),
        (Only::CatchUp, "catch-up", catch_up_section),
    ];
    for (section, name, run) in sections {
        if !options.runs(section) {
            continue;
        }
        println!("load average before {name}: {}", load_average());
        if let Err(message) = run(&options, &runtime) {
            eprintln!("{name} benchmark failed: {message}");
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            return ExitCode::FAILURE;
        }
        println!();
    }
    println!("load average at end: {}", load_average());
    // Tasks of stopped nodes' clients (NATS connections) may linger.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    ExitCode::SUCCESS
}

/// How long the benchmark's runtime waits for lingering tasks at the end.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

type Section = fn(&Options, &tokio::runtime::Runtime) -> Result<(), String>;

/// The bots' payloads, tick by tick: `(bot, payload)` in bot order.
struct Match {
    ticks: Vec<Vec<(usize, Vec<u8>)>>,
    keys: Vec<SigningKey>,
}

impl Match {
    fn inputs(&self) -> u64 {
        self.ticks.iter().map(|tick| tick.len() as u64).sum()
    }

    /// Signs every payload (bot `b`'s input of tick `t` gets nonce
    /// `nonce_base + t`) and deals the envelopes into `lanes` lanes (bot `b`
    /// into lane `b % lanes`): one request per envelope, or with `batch`
    /// one request per tick per lane.
    fn lanes(&self, id: &WorldId, lanes: u32, batch: bool, nonce_base: u64) -> Vec<Lane> {
        let mut out: Vec<Lane> = vec![Vec::new(); lanes as usize];
        for (index, tick) in self.ticks.iter().enumerate() {
            let mut per_lane: Vec<Vec<Envelope>> = vec![Vec::new(); lanes as usize];
            for (bot, payload) in tick {
                let nonce = nonce_base + index as u64 + 1;
                let envelope = Envelope::sign(id, &self.keys[*bot], nonce, payload.clone());
                per_lane[bot % lanes as usize].push(envelope);
            }
            for (lane, envelopes) in out.iter_mut().zip(per_lane) {
                if envelopes.is_empty() {
                } else if batch {
                    lane.push(envelopes);
                } else {
                    lane.extend(envelopes.into_iter().map(|envelope| vec![envelope]));
                }
            }
        }
        out
    }
}

/// Plays the bots' match in a local world until it holds `inputs` payloads
/// (bots that send nothing in a tick send nothing).
fn play(arena: &Arena, bots: u32, inputs: u64) -> Result<Match, String> {
    let (mut world, _) = World::genesis(&arena.engine, Arena::world_id(), arena.compiled.clone())
        .map_err(|e| e.to_string())?;
    let keys: Vec<SigningKey> = (0..bots)
        .map(|i| test_signing_key(&format!("bot-{i}")))
        .collect();
    let public: Vec<PublicKey> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let limit = world.limits().inputs_per_tick as usize;
    let mut played = Match {
        ticks: Vec::new(),
        keys,
    };
    let mut total = 0u64;
    while total < inputs {
        let payloads = world
            .bot_payloads(&arena.engine, &public, SEED)
            .map_err(|e| e.to_string())?;
        let tick_number = played.ticks.len() as u64 + 1;
        let mut tick = Vec::new();
        let mut admitted = Vec::new();
        for (bot, payload) in payloads.into_iter().enumerate() {
            let Some(payload) = payload else { continue };
            let envelope = Envelope::sign(
                &Arena::world_id(),
                &played.keys[bot],
                tick_number,
                payload.clone(),
            );
            if admitted.len() < limit && world.admit(&envelope).is_ok() {
                admitted.push(envelope);
            }
            tick.push((bot, payload));
        }
        world
            .execute_tick(&arena.engine, &admitted)
            .map_err(|e| e.to_string())?;
        total += tick.len() as u64;
        played.ticks.push(tick);
        if played.ticks.len() > 1_000_000 {
            return Err("the bots send almost nothing; no load to prepare".into());
        }
    }
    Ok(played)
}

fn free_address() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// A node over the world under `root`, serving until `stop` fires.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<everarcade_node::server::NodeExit, String>>,
    client: Client,
    address: SocketAddr,
    /// From `Node::prepare` to the first `/readyz` 200.
    ready_seconds: f64,
}

fn start_node(
    runtime: &tokio::runtime::Runtime,
    arena: &Arena,
    root: &std::path::Path,
) -> Result<Running, String> {
    start_node_with(runtime, arena, root, |_| {})
}

/// [`start_node`] with `configure` applied to the node's configuration.
fn start_node_with(
    runtime: &tokio::runtime::Runtime,
    arena: &Arena,
    root: &std::path::Path,
    configure: impl FnOnce(&mut NodeConfig),
) -> Result<Running, String> {
    let address = free_address()?;
    let mut config = NodeConfig::default();
    config.http.addr = address;
    config.http.rate_per_client_per_second = RATE_PER_CLIENT;
    config.admin.token = Some("bench-admin-token-0123456789".into());
    config.http.read_plane_threads = settings::count(
        "EA_BENCH_ADMISSION_READ_PLANE_THREADS",
        everarcade_node::config::READ_PLANE_THREADS_DEFAULT as u64,
    )?
    .min(everarcade_node::config::READ_PLANE_THREADS_MAX as u64)
        as usize;
    configure(&mut config);
    let spec = NodeSpec {
        runtime_root: root.to_path_buf(),
        world: Arena::world_id(),
        package: arena.package.clone(),
        config,
    };
    let started = Instant::now();
    let node = Node::prepare(spec).map_err(|e| format!("node: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        node.serve(async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| format!("node: {e}"))
    });
    let client = Client::new(&address.to_string(), Arena::world_id()).map_err(|e| e.to_string())?;
    runtime
        .block_on(client.wait_ready(READY_WITHIN))
        .map_err(|e| format!("the node never became ready: {e}"))?;
    let ready_seconds = started.elapsed().as_secs_f64();
    Ok(Running {
        stop,
        task,
        client,
        address,
        ready_seconds,
    })
}

fn stop_node(runtime: &tokio::runtime::Runtime, running: Running) -> Result<(), String> {
    let _ = running.stop.send(());
    let exit = runtime
        .block_on(running.task)
        .map_err(|e| format!("node task: {e}"))??;
    match exit.stop.error {
        None => Ok(()),
        Some(error) => Err(format!("the node stopped with an error: {error}")),
    }
}

/// The limit: an axum server on the same runtime that answers every
/// submission 202 at once, with one acknowledgement per envelope of a
/// JSON batch (counted by its `"signature"` fields).
fn trivial_server(
    runtime: &tokio::runtime::Runtime,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    async fn accept(body: Bytes) -> impl IntoResponse {
        let text = body.as_ref();
        let answer = if text.starts_with(b"{\"envelopes\"") {
            let needle = b"\"signature\"";
            let n = text.windows(needle.len()).filter(|w| w == needle).count();
            let results = vec![serde_json::json!({"tick": 0, "seq": 0}); n];
            serde_json::json!({ "results": results })
        } else {
            serde_json::json!({"tick": 0, "seq": 0})
        };
        (StatusCode::ACCEPTED, axum::Json(answer))
    }
    let app = Router::new().route("/v1/worlds/{world}/inputs", axum::routing::post(accept));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let task = runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((address, task))
}

/// One row: the node and the trivial server with the same lanes.
struct Row {
    name: String,
    node: LoadReport,
    limit: LoadReport,
    /// Ticks the node executed per second during its run.
    ticks_per_second: f64,
    /// Inputs of each tick executed during the run, sorted.
    tick_inputs: Vec<u64>,
}

fn print_row(row: &Row, cap_per_second: f64, inputs_per_tick: u64) {
    let quantile = |report: &LoadReport, q: f64| {
        report
            .latency_quantile_micros(q)
            .map_or("-".into(), |micros| millis(micros as f64 / 1e6))
    };
    let node_rate = row.node.acknowledged_per_second();
    let limit_rate = row.limit.acknowledged_per_second();
    let ratio = node_rate / limit_rate;
    let cap_ratio = node_rate / cap_per_second;
    println!(
        "{}: node {} inputs/s admitted ({} of {} sent in {:.1} s, {} requests; refused {:?}), ack p50 {} p99 {} | trivial axum 202 {} inputs/s, p50 {} p99 {} | ratio {ratio:.3} {} | world cap {} inputs/s: {:.0}%; the node ran {:.1} ticks/s ({:.0} admitted per tick)",
        row.name,
        count(node_rate),
        row.node.acknowledged,
        row.node.sent,
        row.node.elapsed_seconds,
        row.node.requests,
        row.node.refused,
        quantile(&row.node, 0.5),
        quantile(&row.node, 0.99),
        count(limit_rate),
        quantile(&row.limit, 0.5),
        quantile(&row.limit, 0.99),
        Target::None.verdict(ratio),
        count(cap_per_second),
        100.0 * cap_ratio,
        row.ticks_per_second,
        row.node.acknowledged as f64 / (row.ticks_per_second * row.node.elapsed_seconds).max(1.0),
    );
    let ticks = &row.tick_inputs;
    if let (Some(min), Some(max)) = (ticks.first(), ticks.last()) {
        println!(
            "    inputs per executed tick: min {min} p50 {} max {max}; {} of {} ticks full ({inputs_per_tick})",
            ticks[ticks.len() / 2],
            ticks.iter().filter(|n| **n >= inputs_per_tick).count(),
            ticks.len()
        );
    }
}

/// The inputs of every tick in `first..=last` the node still holds.
async fn tick_inputs(client: &Client, first: u64, last: u64) -> Vec<u64> {
    let mut counts = Vec::new();
    for tick in first..=last {
        if let Ok(info) = client.tick(tick).await {
            counts.push(info.input_count);
        }
    }
    counts.sort_unstable();
    counts
}

/// `write` of 256 bytes + `fdatasync` on the scratch directory's file
/// system, `rounds` times: the latency floor of one group commit.
fn fdatasync_seconds(dir: &std::path::Path, rounds: usize) -> Result<Vec<f64>, String> {
    use std::io::Write;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        file.write_all(&[7u8; 256]).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        samples.push(started.elapsed().as_secs_f64());
    }
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

fn admission_section(options: &Options, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    let arena = Arena::load()?;
    let started = Instant::now();
    let played = play(&arena, options.bots, options.inputs)?;
    let manifest = &arena.package.manifest;
    let cap = f64::from(manifest.limits.inputs_per_tick) * f64::from(manifest.tick_rate_hz);
    println!(
        "== admission over loopback HTTP/1.1 (keep-alive): {} 2d-arena bot inputs of {} bots over {} ticks, prepared in {:.1} s; {} lanes, closed loop; each run bounded by {} s; node: durable world, default limits but rate_per_client_per_second {}",
        played.inputs(),
        options.bots,
        played.ticks.len(),
        started.elapsed().as_secs_f64(),
        options.concurrency,
        options.seconds,
        RATE_PER_CLIENT
    );
    let scratch = Scratch::new("admission").map_err(|e| e.to_string())?;
    let fsync = fdatasync_seconds(scratch.path(), 200)?;
    let fsync_p50 = fsync[fsync.len() / 2];
    println!(
        "  write 256 B + fdatasync on this disk: p50 {} p99 {}; a closed loop of {} single-input lanes that waits one fdatasync per request cannot exceed {} inputs/s",
        millis(fsync_p50),
        millis(fsync[fsync.len() * 99 / 100]),
        options.concurrency,
        count(f64::from(options.concurrency) / fsync_p50)
    );
    let id = Arena::world_id();
    let config = LoadConfig {
        duration: Duration::from_secs(options.seconds),
        pause_after_full: Duration::from_secs_f64(1.0 / f64::from(manifest.tick_rate_hz)),
    };
    let (limit_address, limit_task) = trivial_server(runtime)?;
    let limit_client =
        Client::new(&limit_address.to_string(), id.clone()).map_err(|e| e.to_string())?;
    // The same match under each signature rule: the shipped 2d-arena
    // (strict, every existing world's path) and a copy whose manifest says
    // `signatures = "zip215"` (what `everarcade-runtime new` writes), where
    // single-input requests are checked together (crates/node/src/signatures.rs).
    let zip215_package = Scratch::new("admission-zip215").map_err(|e| e.to_string())?;
    speed::zip215_arena_package(zip215_package.path())?;
    let rules: [(&str, Arena); 2] = [
        ("strict", arena),
        ("zip215", Arena::load_dir(zip215_package.path())?),
    ];
    for (rule, arena) in rules {
        if options.rules.as_deref().is_some_and(|only| only != rule) {
            continue;
        }
        println!("  -- signature rule {rule}:");
        let root = scratch.path().join(rule);
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        admission_rows(
            options,
            runtime,
            &arena,
            &played,
            &root,
            &limit_client,
            config,
            cap,
        )?;
    }
    limit_task.abort();
    Ok(())
}

/// The three rows (single JSON, single binary, JSON batches) against a new
/// node of `arena`'s package under `root`, each beside the trivial server.
#[allow(clippy::too_many_arguments)]
fn admission_rows(
    options: &Options,
    runtime: &tokio::runtime::Runtime,
    arena: &Arena,
    played: &Match,
    root: &std::path::Path,
    limit_client: &Client,
    config: LoadConfig,
    cap: f64,
) -> Result<(), String> {
    let id = Arena::world_id();
    let manifest = &arena.package.manifest;
    let running = start_node(runtime, arena, root)?;
    let batch_lanes = (options.concurrency / BATCH_ROW_LANES_DIVISOR).max(1);
    let variants: [(&str, Encoding, bool, u32); 3] = [
        ("single JSON  ", Encoding::Json, false, options.concurrency),
        (
            "single binary",
            Encoding::Binary,
            false,
            options.concurrency,
        ),
        ("batch JSON   ", Encoding::Json, true, batch_lanes),
    ];
    let ticks = played.ticks.len() as u64;
    let mut rows = Vec::new();
    for (index, (name, encoding, batch, lanes)) in variants.into_iter().enumerate() {
        // Each run signs with nonces above the previous run's.
        let prepared = played.lanes(&id, lanes, batch, index as u64 * ticks);
        let limit = runtime.block_on(load::run(
            &limit_client.clone().with_encoding(encoding),
            prepared.clone(),
            config,
        ));
        let before = runtime
            .block_on(running.client.status())
            .map_err(|e| e.to_string())?;
        let node = runtime.block_on(load::run(
            &running.client.clone().with_encoding(encoding),
            prepared,
            config,
        ));
        let after = runtime
            .block_on(running.client.status())
            .map_err(|e| e.to_string())?;
        let ticks_per_second = (after.head_tick - before.head_tick) as f64 / node.elapsed_seconds;
        let tick_inputs = runtime.block_on(tick_inputs(
            &running.client,
            before.head_tick + 1,
            after.head_tick,
        ));
        let name = if batch {
            let per_request = node.sent as f64 / node.requests.max(1) as f64;
            format!("{name} ({lanes} lanes, {per_request:.1} inputs/request)")
        } else {
            format!("{name} ({lanes} lanes, 1 input/request)")
        };
        let row = Row {
            name,
            node,
            limit,
            ticks_per_second,
            tick_inputs,
        };
        print_row(&row, cap, u64::from(manifest.limits.inputs_per_tick));
        rows.push(row);
    }
    let status = runtime
        .block_on(running.client.status())
        .map_err(|e| e.to_string())?;
    println!(
        "  node after the runs: head tick {}, achieved tick rate {:.2} Hz (target {} Hz), pending inputs {}",
        status.head_tick, status.achieved_tick_rate_hz, status.tick_rate_hz, status.pending_inputs
    );
    let metrics = runtime
        .block_on(running.client.metrics())
        .map_err(|e| e.to_string())?;
    let gathered = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (batches, inputs) = (
        gathered("everarcade_signature_batches_total "),
        gathered("everarcade_signature_batch_inputs_total "),
    );
    if batches > 0.0 {
        println!(
            "  single-input requests' signatures checked together: {} checks of {:.1} inputs on average",
            count(batches),
            inputs / batches
        );
    }
    stop_node(runtime, running)?;
    Ok(())
}

fn cold_start_section(options: &Options, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    let arena = Arena::load()?;
    let config = FixtureConfig {
        bots: 1,
        ticks: options.cold_ticks,
        seed: SEED,
        checkpoint_interval_ticks: options.cold_ticks,
    };
    let fixture = fixture::build(&arena, &config, "cold-start", &mut |_| {})?;
    println!(
        "== cold start to ready: a world of {} ticks (1 bot, {} inputs, journal {:.1} MB, checkpoint at tick {}), built in {:.1} s; page cache warm",
        config.ticks,
        fixture.input_count(),
        fixture.journal_bytes as f64 / 1e6,
        config.ticks,
        fixture.build_seconds
    );
    let root = fixture.scratch.path().to_path_buf();
    let mut best: Option<(f64, f64, f64)> = None;
    for round in 1..=COLD_ROUNDS {
        let (compile, open) = floor(&arena, &fixture.dir)?;
        let running = start_node(runtime, &arena, &root)?;
        let ready = running.ready_seconds;
        stop_node(runtime, running)?;
        println!(
            "  round {round}: Node::prepare to /readyz 200 {} | floor: compile on a fresh engine {} + DurableWorld::open {} = {}",
            millis(ready),
            millis(compile),
            millis(open),
            millis(compile + open)
        );
        if best.is_none_or(|(fastest, _, _)| ready < fastest) {
            best = Some((ready, compile, open));
        }
    }
    let (ready, compile, open) = best.expect("at least one round");
    let ratio = ready / (compile + open);
    println!(
        "cold start ({} ticks, checkpointed): ready in {} (fastest of {COLD_ROUNDS}) | compile + open {} | ratio {ratio:.2} {}",
        config.ticks,
        millis(ready),
        millis(compile + open),
        Target::None.verdict(ratio)
    );
    Ok(())
}

/// Compiling the package on a fresh engine, and opening (recovering) the
/// world, each timed alone: what any start must do.
fn floor(arena: &Arena, dir: &WorldDir) -> Result<(f64, f64), String> {
    let started = Instant::now();
    let engine = Arc::new(everarcade_engine::Engine::new().map_err(|e| e.to_string())?);
    let compiled = engine.compile(&arena.package).map_err(|e| e.to_string())?;
    let compile = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (world, _) = DurableWorld::open(
        Arc::new(DiskStorage),
        dir.clone(),
        Arena::world_id(),
        engine,
        compiled,
        everarcade_world::WorldConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let open = started.elapsed().as_secs_f64();
    drop(world);
    Ok((compile, open))
}

/// The machine's NATS server with JetStream (the federation section).
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// How often the lag sampler reads both heads.
const LAG_SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// How an authority replicates in one federation run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replication {
    /// `--ack local`, no followers.
    Local,
    /// `--replicate nats://… --ack replicated`.
    JetStream { follower: bool },
    /// `--ack replicated --ack-followers 1`, one `--follow http://…` node.
    Http,
    /// `--ack local` with one `--follow http://…` node on the same cores:
    /// what sharing the machine with a follower leaves, waiting for none.
    LocalWithHttpFollower,
}

impl Replication {
    fn name(self) -> &'static str {
        match self {
            Replication::Local => "--ack local, no follower",
            Replication::JetStream { follower: false } => {
                "--ack replicated, JetStream, no follower"
            }
            Replication::JetStream { follower: true } => {
                "--ack replicated, JetStream, one JetStream follower"
            }
            Replication::Http => "--ack replicated --ack-followers 1, one HTTP follower",
            Replication::LocalWithHttpFollower => "--ack local, one HTTP follower",
        }
    }
}

/// One federation run's figures.
struct FederationRow {
    replication: Replication,
    load: LoadReport,
    ticks_per_second: f64,
    /// Authority head − follower head, one sample per [`LAG_SAMPLE_EVERY`], sorted.
    lag: Vec<u64>,
}

/// Deletes a run's JetStream stream and lease bucket.
fn delete_jetstream(runtime: &tokio::runtime::Runtime, prefix: &str) {
    use everarcade_federation::lease::{LeaseBucket, LeaseConfig};
    use everarcade_federation::nats::{NatsConfig, RecordLog};
    runtime.block_on(async {
        let mut nats = NatsConfig::new(NATS_URL);
        nats.prefix = prefix.to_string();
        if let Ok(log) = RecordLog::open(&nats, &Arena::world_id()).await {
            let _ = log.delete().await;
        }
        let lease = LeaseConfig {
            bucket: format!("{prefix}_authority"),
            ttl: Duration::from_millis(NodeConfig::default().federation.lease_ttl_ms),
        };
        if let Ok(bucket) = LeaseBucket::open(&nats, &lease).await {
            let _ = bucket.delete().await;
        }
    });
}

/// Waits until the node at `client` is its world's authority and, under
/// JetStream, holds the lease: before that it refuses inputs.
async fn wait_authority(client: &Client, lease: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = client.authority().await;
        if let Ok(authority) = &answer
            && authority.role == "authority"
            && (!lease || authority.lease_revision.is_some())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the node never became the authority: {answer:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Samples authority head − follower head until `stop` is set.
async fn sample_lag(
    authority: Client,
    follower: Client,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<u64> {
    let mut lag = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // The follower first: its head can only be older than the
        // authority's read after it, so the lag is never understated.
        if let Ok(following) = follower.status().await
            && let Ok(leading) = authority.status().await
        {
            lag.push(leading.head_tick.saturating_sub(following.head_tick));
        }
        tokio::time::sleep(LAG_SAMPLE_EVERY).await;
    }
    lag.sort_unstable();
    lag
}

fn federation_run(
    options: &Options,
    runtime: &tokio::runtime::Runtime,
    arena: &Arena,
    played: &Match,
    index: usize,
    replication: Replication,
) -> Result<FederationRow, String> {
    let id = Arena::world_id();
    let prefix = format!("bench_{}_{index}", std::process::id());
    let scratch =
        Scratch::new(&format!("federation-{index}-authority")).map_err(|e| e.to_string())?;
    let follower_scratch =
        Scratch::new(&format!("federation-{index}-follower")).map_err(|e| e.to_string())?;
    delete_jetstream(runtime, &prefix);
    let authority = start_node_with(runtime, arena, scratch.path(), |config| {
        let federation = &mut config.federation;
        federation.nats_prefix = prefix.clone();
        match replication {
            Replication::Local | Replication::LocalWithHttpFollower => {}
            Replication::JetStream { .. } => {
                federation.replicate = Some(NATS_URL.into());
                federation.ack = everarcade_node::config::AckPolicy::Replicated;
            }
            Replication::Http => {
                federation.ack = everarcade_node::config::AckPolicy::Replicated;
                federation.ack_followers = 1;
            }
        }
    })?;
    runtime.block_on(wait_authority(
        &authority.client,
        matches!(replication, Replication::JetStream { .. }),
    ))?;
    let follow = match replication {
        Replication::Local | Replication::JetStream { follower: false } => None,
        Replication::JetStream { follower: true } => Some(NATS_URL.to_string()),
        Replication::Http | Replication::LocalWithHttpFollower => {
            Some(format!("http://{}", authority.address))
        }
    };
    let follower = match follow {
        None => None,
        Some(url) => Some(start_node_with(
            runtime,
            arena,
            follower_scratch.path(),
            |config| {
                config.federation.nats_prefix = prefix.clone();
                config.federation.follow = Some(url);
            },
        )?),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = follower.as_ref().map(|follower| {
        runtime.spawn(sample_lag(
            authority.client.clone(),
            follower.client.clone(),
            stop.clone(),
        ))
    });
    let manifest = &arena.package.manifest;
    let config = LoadConfig {
        duration: Duration::from_secs(options.seconds),
        pause_after_full: Duration::from_secs_f64(1.0 / f64::from(manifest.tick_rate_hz)),
    };
    let before = runtime
        .block_on(authority.client.status())
        .map_err(|e| e.to_string())?;
    let load = runtime.block_on(load::run(
        &authority.client.clone().with_encoding(Encoding::Binary),
        played.lanes(&id, options.concurrency, false, 0),
        config,
    ));
    let after = runtime
        .block_on(authority.client.status())
        .map_err(|e| e.to_string())?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lag = match sampler {
        Some(task) => runtime.block_on(task).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    if let Some(follower) = follower {
        stop_node(runtime, follower)?;
    }
    stop_node(runtime, authority)?;
    delete_jetstream(runtime, &prefix);
    Ok(FederationRow {
        replication,
        ticks_per_second: (after.head_tick - before.head_tick) as f64 / load.elapsed_seconds,
        load,
        lag,
    })
}

fn federation_section(options: &Options, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    let arena = Arena::load()?;
    let played = play(&arena, options.bots, options.inputs)?;
    println!(
        "== federation: {} 2d-arena bot inputs of {} bots, {} single binary lanes, each run bounded by {} s; JetStream at {NATS_URL}; the lag sampled every {} ms",
        played.inputs(),
        options.bots,
        options.concurrency,
        options.seconds,
        LAG_SAMPLE_EVERY.as_millis()
    );
    let runs = [
        Replication::Local,
        Replication::JetStream { follower: false },
        Replication::JetStream { follower: true },
        Replication::Http,
        Replication::LocalWithHttpFollower,
    ];
    let mut rows = Vec::new();
    for (index, replication) in runs.into_iter().enumerate() {
        let row = federation_run(options, runtime, &arena, &played, index, replication)?;
        let quantile = |q: f64| {
            row.load
                .latency_quantile_micros(q)
                .map_or("-".into(), |micros| millis(micros as f64 / 1e6))
        };
        println!(
            "{}: {} inputs/s admitted ({} of {} sent, refused {:?}), ack p50 {} p99 {}, {:.1} ticks/s",
            row.replication.name(),
            count(row.load.acknowledged_per_second()),
            row.load.acknowledged,
            row.load.sent,
            row.load.refused,
            quantile(0.5),
            quantile(0.99),
            row.ticks_per_second,
        );
        rows.push(row);
    }
    let local = rows[0].load.acknowledged_per_second();
    for row in &rows[1..] {
        if row.replication == Replication::LocalWithHttpFollower {
            continue;
        }
        let ratio = row.load.acknowledged_per_second() / local;
        println!(
            "admission {} beside --ack local: ratio {ratio:.2} {}",
            row.replication.name(),
            Target::AtLeast(0.5).verdict(ratio)
        );
        let lag = &row.lag;
        if let Some(max) = lag.last() {
            let p99 = lag[(lag.len() * 99 / 100).min(lag.len() - 1)] as f64;
            println!(
                "follower lag {}: p50 {} p99 {p99} max {max} ticks over {} samples {}",
                row.replication.name(),
                lag[lag.len() / 2],
                lag.len(),
                Target::AtMost(2.0).verdict(p99)
            );
        }
    }
    // On one machine the follower re-executes every tick on the same two
    // cores: `--ack local` beside a follower that nobody waits for is the
    // ceiling `--ack replicated` over HTTP can reach here.
    let shared = rows
        .iter()
        .find(|row| row.replication == Replication::LocalWithHttpFollower)
        .map(|row| row.load.acknowledged_per_second());
    let http = rows
        .iter()
        .find(|row| row.replication == Replication::Http)
        .map(|row| row.load.acknowledged_per_second());
    if let (Some(shared), Some(http)) = (shared, http) {
        println!(
            "ceiling on one machine: --ack local with an HTTP follower on the same cores {} inputs/s = {:.2} of --ack local alone; --ack replicated over HTTP is {:.2} of it",
            count(shared),
            shared / local,
            http / shared
        );
    }
    Ok(())
}

fn catch_up_section(options: &Options, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    let arena = Arena::load()?;
    let config = FixtureConfig {
        bots: options.catch_up_bots as usize,
        ticks: options.catch_up_ticks,
        seed: SEED,
        // One checkpoint, at the last tick: what a follower far behind can
        // catch up from (replay-verify below starts from genesis all the same).
        checkpoint_interval_ticks: options.catch_up_ticks,
    };
    let fixture = fixture::build(&arena, &config, "catch-up", &mut |_| {})?;
    println!(
        "== catch-up: a world of {} ticks ({} bots, {} inputs, journal {:.1} MB), built in {:.1} s; page cache warm",
        config.ticks,
        config.bots,
        fixture.input_count(),
        fixture.journal_bytes as f64 / 1e6,
        fixture.build_seconds
    );
    let verify = everarcade_bench::durable::replay::replay_once(&arena, &fixture, true)?;
    let authority = start_node(runtime, &arena, fixture.scratch.path())?;
    // Record by record (`catch_up_ticks = 0`), then from the checkpoint.
    let mut seconds = Vec::new();
    for (label, catch_up_ticks) in [("record-by-record", 0), ("checkpoint", 1)] {
        let scratch =
            Scratch::new(&format!("catch-up-follower-{label}")).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let follower = start_node_with(runtime, &arena, scratch.path(), |node| {
            node.federation.follow = Some(format!("http://{}", authority.address));
            node.federation.catch_up_ticks = catch_up_ticks;
        })?;
        let caught_up = runtime.block_on(async {
            loop {
                match follower.client.status().await {
                    Ok(status) if status.head_tick >= config.ticks => {
                        return Ok((started.elapsed().as_secs_f64(), status));
                    }
                    Ok(status) if status.follow_error.is_some() => {
                        return Err(format!("the follower stopped: {:?}", status.follow_error));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })?;
        stop_node(runtime, follower)?;
        let (elapsed, status) = caught_up;
        let from_checkpoint = status.caught_up_from_checkpoint.is_some();
        if from_checkpoint != (catch_up_ticks > 0) {
            return Err(format!(
                "the {label} follower caught up from a checkpoint: {from_checkpoint}"
            ));
        }
        seconds.push((label, elapsed));
    }
    stop_node(runtime, authority)?;
    let speed = |seconds: f64| config.ticks as f64 / seconds;
    for (label, caught_up) in seconds {
        let ratio = speed(caught_up) / speed(verify);
        println!(
            "catch-up over HTTP ({label}) of {} ticks from an empty root: {} ({} ticks/s) | replay-verify of the same journal {} ({} ticks/s) | ratio {ratio:.2} {}",
            config.ticks,
            millis(caught_up),
            count(speed(caught_up)),
            millis(verify),
            count(speed(verify)),
            Target::AtLeast(0.5).verdict(ratio)
        );
    }
    Ok(())
}
