//! `cargo bench -p everarcade-bench --bench console`: what the pages cost
//! the node they watch, and what their first load weighs.
//!
//! **Console cost.** A node (in this process, 2-worker tokio runtime, a
//! durable 2d-arena world under `target/bench-tmp/`) takes a steady input
//! load: `EA_BENCH_CONSOLE_RATE` single MOVE inputs a second, paced (open
//! loop) over `EA_BENCH_CONSOLE_LANES` lanes, each answered 202 once
//! durable. Each round measures the load alone and the same load with 20
//! operator consoles and 200 spectators connected (odd rounds with the pages
//! first, so that drift over the run does not favour either side),
//! each doing what its page does (on its own 1-worker runtime at nice 19,
//! so their own parsing and polling does not count as the node's): one first
//! load of the page and its assets, the tick stream (`/events`, read to the
//! end of every event), and polls: a console reads `/status` every second
//! and `/metrics` every 5 s; a spectator reads the arena's `P` and `B` with
//! their proofs twice a second (the arena viewer's `READS_PER_SECOND`;
//! `EA_BENCH_CONSOLE_SPECTATOR_READS` changes it, 0 for streams only).
//! Figures: the achieved tick rate beside the manifest's rate, and the
//! admission p99 with the pages beside the p99 without them (target: at most
//! 1.10x). Each is the median over `EA_BENCH_CONSOLE_ROUNDS` rounds.
//!
//! **First load.** The bytes a browser fetches for `/` and `/spectate`
//! (the page, every asset it references, the package's viewer), read from
//! the running node, beside the 300 KiB budget.
//!
//! Environment: `EA_BENCH_CONSOLE_SECONDS` (each measured run, default 10),
//! `EA_BENCH_CONSOLE_ROUNDS` (default 2), `EA_BENCH_CONSOLE_RATE`
//! (inputs per second, default 1000), `EA_BENCH_CONSOLE_LANES` (default 32), `EA_BENCH_CONSOLE_CONSOLES` (default 20),
//! `EA_BENCH_CONSOLE_SPECTATORS` (default 200), `EA_BENCH_CONSOLE_READ_PLANE_THREADS`
//! (the node's `http.read_plane_threads`; default the node's default, 0 turns
//! the read plane off).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use everarcade_bench::durable::fixture::Arena;
use everarcade_bench::durable::{Scratch, millis, scratch_root};
use everarcade_bench::report::{Target, count, load_average, machine_facts};
use everarcade_bench::settings;
use everarcade_client::Client;
use everarcade_node::{Node, NodeConfig, NodeSpec};
use everarcade_protocol::{Envelope, test_signing_key};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Bot players sending the load.
const BOTS: usize = 64;
/// The budget of a page's first load.
const FIRST_LOAD_BYTES_MAX: f64 = 300.0 * 1024.0;
/// The arena viewer's reads per second (runtime/games/2d-arena/viewer).
const SPECTATOR_READS_PER_SECOND: u64 = 2;
/// A console's status poll and metrics poll (crates/console/assets/console.js).
const CONSOLE_STATUS_MS: u64 = 1_000;
const CONSOLE_METRICS_MS: u64 = 5_000;
/// Every client that connects, apart from the load, gets this long to
/// settle before a measured run.
const SETTLE: Duration = Duration::from_secs(2);

struct Options {
    seconds: u64,
    rounds: u64,
    lanes: usize,
    rate: u64,
    spectator_reads: u64,
    consoles: usize,
    spectators: usize,
    read_plane_threads: usize,
}

impl Options {
    fn from_env() -> Result<Options, String> {
        Ok(Options {
            seconds: settings::positive("EA_BENCH_CONSOLE_SECONDS", 10)?.min(600),
            rounds: settings::positive("EA_BENCH_CONSOLE_ROUNDS", 2)?.min(20),
            lanes: settings::positive("EA_BENCH_CONSOLE_LANES", 32)?.min(256) as usize,
            rate: settings::positive("EA_BENCH_CONSOLE_RATE", 1000)?.min(20_000),
            spectator_reads: settings::count(
                "EA_BENCH_CONSOLE_SPECTATOR_READS",
                SPECTATOR_READS_PER_SECOND,
            )?
            .min(100),
            consoles: settings::positive("EA_BENCH_CONSOLE_CONSOLES", 20)?.min(1000) as usize,
            spectators: settings::positive("EA_BENCH_CONSOLE_SPECTATORS", 200)?.min(2000) as usize,
            read_plane_threads: settings::count(
                "EA_BENCH_CONSOLE_READ_PLANE_THREADS",
                everarcade_node::config::READ_PLANE_THREADS_DEFAULT as u64,
            )?
            .min(everarcade_node::config::READ_PLANE_THREADS_MAX as u64)
                as usize,
        })
    }
}

fn main() -> ExitCode {
    let Some(options) = settings::or_report(Options::from_env()) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("scratch directory: {}", scratch_root().display());
    println!("load average before: {}", load_average());
    match run(&options) {
        Ok(()) => {
            println!("load average at end: {}", load_average());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("console benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// The simulated pages' runtime: one worker at the lowest CPU priority
/// (nice 19; on Linux a thread's own), so the pages' own work (parsing
/// events, polling) takes only what the node leaves: real spectators run on
/// their own machines, and what is measured is the node's cost of serving
/// them.
fn page_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| {
            if let Err(error) = rustix::process::setpriority_process(None, 19) {
                eprintln!("could not lower the simulated pages' priority: {error}");
            }
        })
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn run(options: &Options) -> Result<(), String> {
    let node_runtime = runtime(2)?;
    let page_runtime = page_runtime()?;
    let arena = Arena::load()?;
    let scratch = Scratch::new("console").map_err(|e| e.to_string())?;
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.local_addr().map_err(|e| e.to_string())?
    };
    let mut config = NodeConfig::default();
    config.http.addr = address;
    // Every simulated client shares 127.0.0.1: the per-client limit must not
    // be what is measured.
    config.http.rate_per_client_per_second = 1_000_000;
    config.admin.token = Some("bench-admin-token-0123456789".into());
    config.http.read_plane_threads = options.read_plane_threads;
    println!("read plane threads: {}", options.read_plane_threads);
    let spec = NodeSpec {
        runtime_root: scratch.path().to_path_buf(),
        world: Arena::world_id(),
        package: arena.package.clone(),
        config,
    };
    let tick_rate = f64::from(arena.package.manifest.tick_rate_hz);
    let node = Node::prepare(spec).map_err(|e| format!("node: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = node_runtime.spawn(async move {
        node.serve(async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| format!("node: {e}"))
    });
    let client = Client::new(&address.to_string(), Arena::world_id()).map_err(|e| e.to_string())?;
    node_runtime
        .block_on(client.wait_ready(Duration::from_secs(300)))
        .map_err(|e| format!("the node never became ready: {e}"))?;
    let result = measure(
        options,
        &node_runtime,
        &page_runtime,
        &client,
        address,
        tick_rate,
    );
    let _ = stop.send(());
    let exit = node_runtime
        .block_on(task)
        .map_err(|e| format!("node task: {e}"))?;
    exit?;
    result
}

struct Round {
    p99_micros: u64,
    acknowledged_per_second: f64,
    ticks_per_second: f64,
}

fn measure(
    options: &Options,
    node_runtime: &tokio::runtime::Runtime,
    page_runtime: &tokio::runtime::Runtime,
    client: &Client,
    address: SocketAddr,
    tick_rate: f64,
) -> Result<(), String> {
    let keys: Vec<_> = (0..BOTS)
        .map(|bot| test_signing_key(&format!("console-bench-{bot}")))
        .collect();
    let join: Vec<Envelope> = keys
        .iter()
        .map(|key| Envelope::sign(&Arena::world_id(), key, 1, vec![1]))
        .collect();
    node_runtime
        .block_on(client.submit_batch(&join))
        .map_err(|e| format!("joining the bots: {e}"))?;
    let first = first_loads(page_runtime, address)?;
    println!("first load (bytes a browser fetches, read from the node):");
    for (page, bytes) in &first {
        let ratio = *bytes as f64 / FIRST_LOAD_BYTES_MAX;
        println!(
            "  {page:<10} {:>7} bytes, {:.2}x of the 300 KiB budget {}",
            count(*bytes as f64),
            ratio,
            Target::AtMost(1.0).verdict(ratio)
        );
    }
    println!();
    let mut alone = Vec::new();
    let mut watched = Vec::new();
    let mut nonce = 2u64;
    for round in 0..options.rounds {
        // Odd rounds measure with the pages first, so that whatever drifts
        // over a run (the journal's length, the disk's cache) falls on both
        // sides alike.
        let pages_first = round % 2 == 1;
        if !pages_first {
            let lanes = prepare(&keys, options, &mut nonce);
            alone.push(load_round(node_runtime, client, lanes, options)?);
        }
        let pages = Pages::connect(page_runtime, address, options)?;
        std::thread::sleep(SETTLE);
        let lanes = prepare(&keys, options, &mut nonce);
        watched.push(load_round(node_runtime, client, lanes, options)?);
        let (streams, events, reads) = pages.stop(page_runtime);
        if pages_first {
            // The closed connections' last work is not the load's.
            std::thread::sleep(SETTLE);
            let lanes = prepare(&keys, options, &mut nonce);
            alone.push(load_round(node_runtime, client, lanes, options)?);
        }
        println!(
            "round {}: alone p99 {} ({} inputs/s, {:.2} ticks/s); with {} consoles + {} spectators ({streams} streams open, {} tick events and {} reads received) p99 {} ({} inputs/s, {:.2} ticks/s)",
            round + 1,
            millis(alone[round as usize].p99_micros as f64 / 1e6),
            count(alone[round as usize].acknowledged_per_second),
            alone[round as usize].ticks_per_second,
            options.consoles,
            options.spectators,
            count(events as f64),
            count(reads as f64),
            millis(watched[round as usize].p99_micros as f64 / 1e6),
            count(watched[round as usize].acknowledged_per_second),
            watched[round as usize].ticks_per_second,
        );
    }
    let median = |rounds: &[Round], f: fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]) / 2.0
        } else {
            values[middle]
        }
    };
    let p99 = |round: &Round| round.p99_micros as f64 / 1e6;
    let ticks = |round: &Round| round.ticks_per_second;
    let (p99_alone, p99_watched) = (median(&alone, p99), median(&watched, p99));
    let (ticks_alone, ticks_watched) = (median(&alone, ticks), median(&watched, ticks));
    println!();
    println!(
        "console cost ({} consoles, {} spectators; {} inputs/s paced over {} lanes; {} s runs, median of {} rounds):",
        options.consoles,
        options.spectators,
        options.rate,
        options.lanes,
        options.seconds,
        options.rounds
    );
    println!(
        "  tick rate with the pages  {ticks_watched:>6.2}/s, {:.3}x the manifest's {tick_rate} Hz {}",
        ticks_watched / tick_rate,
        Target::AtLeast(0.98).verdict(ticks_watched / tick_rate)
    );
    println!(
        "  tick rate without         {ticks_alone:>6.2}/s, {:.3}x the manifest's {tick_rate} Hz",
        ticks_alone / tick_rate
    );
    let ratio = p99_watched / p99_alone;
    println!(
        "  admission p99 with pages  {}, {:.2}x the p99 without them ({}) {}",
        millis(p99_watched),
        ratio,
        millis(p99_alone),
        Target::AtMost(1.10).verdict(ratio)
    );
    Ok(())
}

/// Each lane's inputs: one MOVE per request, bots spread over the lanes,
/// nonces above every nonce used before.
fn prepare(
    keys: &[ed25519_dalek::SigningKey],
    options: &Options,
    nonce: &mut u64,
) -> Vec<Vec<Envelope>> {
    // Every bot sends rate / BOTS inputs a second; 50% to spare.
    let per_bot = (options.seconds * options.rate * 3 / 2 / BOTS as u64).max(10);
    let mut lanes: Vec<Vec<Envelope>> = vec![Vec::new(); options.lanes];
    for step in 0..per_bot {
        for (bot, key) in keys.iter().enumerate() {
            let velocity = ((step as i64 + bot as i64) % 9 - 4) as i8;
            let payload = vec![2, velocity as u8, (-velocity) as u8];
            let envelope = Envelope::sign(&Arena::world_id(), key, *nonce + step, payload);
            lanes[bot % options.lanes].push(envelope);
        }
    }
    *nonce += per_bot;
    lanes
}

/// A paced (open-loop) load: each lane sends one input every
/// `lanes / rate` seconds on a fixed schedule, whatever the answers, so the
/// latency measured is what a player sees at that load, not a queue the
/// driver builds itself. A late answer delays only its own lane's next send.
fn load_round(
    node_runtime: &tokio::runtime::Runtime,
    client: &Client,
    lanes: Vec<Vec<Envelope>>,
    options: &Options,
) -> Result<Round, String> {
    let before = node_runtime
        .block_on(client.status())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let duration = Duration::from_secs(options.seconds);
    let interval = Duration::from_secs_f64(options.lanes as f64 / options.rate as f64);
    let tasks: Vec<_> = lanes
        .into_iter()
        .enumerate()
        .map(|(index, lane)| {
            let client = client.clone();
            let lanes = options.lanes as u32;
            node_runtime.spawn(async move {
                // Lanes start spread over one interval.
                let offset = interval * index as u32 / lanes;
                let mut latencies = Vec::new();
                let mut refused = 0u64;
                let mut next = tokio::time::Instant::now() + offset;
                let end = tokio::time::Instant::now() + duration;
                for envelope in lane {
                    tokio::time::sleep_until(next).await;
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    let sent = Instant::now();
                    match client.submit(&envelope).await {
                        Ok(_) => latencies.push(sent.elapsed().as_micros() as u64),
                        Err(_) => refused += 1,
                    }
                    next += interval;
                }
                (latencies, refused)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (lane, lane_refused) = node_runtime.block_on(task).map_err(|e| e.to_string())?;
        latencies.extend(lane);
        refused += lane_refused;
    }
    let after = node_runtime
        .block_on(client.status())
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    if latencies.is_empty() {
        return Err("no input was acknowledged".into());
    }
    if refused > 0 {
        println!("  ({refused} inputs refused in this run)");
    }
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len());
    Ok(Round {
        p99_micros: latencies[rank - 1],
        acknowledged_per_second: latencies.len() as f64 / elapsed,
        ticks_per_second: (after.head_tick - before.head_tick) as f64 / elapsed,
    })
}

/// One keep-alive HTTP/1.1 connection that GETs bodies with a
/// `Content-Length` (every answer of the node but the event stream).
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(address: SocketAddr) -> std::io::Result<Connection> {
        Ok(Connection {
            stream: BufReader::new(TcpStream::connect(address).await?),
        })
    }

    async fn get(&mut self, path: &str) -> std::io::Result<Vec<u8>> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut length = None;
        let mut status = String::new();
        self.stream.read_line(&mut status).await?;
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length =
            length.ok_or_else(|| std::io::Error::other(format!("{path}: no Content-Length")))?;
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        if !status.contains(" 200 ") {
            return Err(std::io::Error::other(format!("{path}: {}", status.trim())));
        }
        Ok(body)
    }
}

/// The bytes of a page's first load: the page and every asset it names,
/// transitively, and the package viewer for `/spectate`.
fn first_loads(
    page_runtime: &tokio::runtime::Runtime,
    address: SocketAddr,
) -> Result<Vec<(&'static str, usize)>, String> {
    page_runtime.block_on(async move {
        let mut connection = Connection::open(address).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (name, page) in [("/", "/"), ("/spectate", "/spectate")] {
            let mut queue = vec![page.to_string()];
            let mut seen = queue.clone();
            let mut bytes = 0;
            while let Some(path) = queue.pop() {
                let body = connection.get(&path).await.map_err(|e| e.to_string())?;
                bytes += body.len();
                let text = String::from_utf8_lossy(&body).into_owned();
                let base = path
                    .rsplit_once('/')
                    .map_or("", |(base, _)| base)
                    .to_string();
                for referenced in references(&text, &base, page == "/spectate") {
                    if !seen.contains(&referenced) {
                        seen.push(referenced.clone());
                        queue.push(referenced);
                    }
                }
            }
            out.push((name, bytes));
        }
        Ok(out)
    })
}

/// Absolute asset paths named in a page or module: `"/console/assets/…"`,
/// `'./x.js'` relative to `base`, and the viewer the spectator page imports.
/// Every quoted run on one line is a candidate (apostrophes in comments do
/// not throw the pairing off: only exact patterns count).
fn references(text: &str, base: &str, spectate: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        for (start, quote) in line.char_indices().filter(|(_, c)| *c == '"' || *c == '\'') {
            let rest = &line[start + 1..];
            let Some(end) = rest.find(quote) else {
                continue;
            };
            let piece = &rest[..end];
            let found = if piece.starts_with("/console/assets/") && piece.len() > 16 {
                Some(piece.to_string())
            } else if let Some(name) = piece
                .strip_prefix("./")
                .filter(|name| name.ends_with(".js"))
            {
                Some(format!("{base}/{name}"))
            } else if spectate && piece == "/spectate/viewer/viewer.js" {
                Some(piece.to_string())
            } else {
                None
            };
            if let Some(found) = found.filter(|found| !out.contains(found)) {
                out.push(found);
            }
        }
    }
    out
}

/// The simulated pages, on their own runtime.
struct Pages {
    stop: Arc<AtomicBool>,
    streams: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pages {
    fn connect(
        page_runtime: &tokio::runtime::Runtime,
        address: SocketAddr,
        options: &Options,
    ) -> Result<Pages, String> {
        let pages = Pages {
            stop: Arc::new(AtomicBool::new(false)),
            streams: Arc::new(AtomicU64::new(0)),
            events: Arc::new(AtomicU64::new(0)),
            reads: Arc::new(AtomicU64::new(0)),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        let world = Arena::world_id().as_str().to_string();
        let reads_per_second = options.spectator_reads;
        for index in 0..options.consoles + options.spectators {
            let spectator = index >= options.consoles;
            let (stop, streams, events, reads) = (
                pages.stop.clone(),
                pages.streams.clone(),
                pages.events.clone(),
                pages.reads.clone(),
            );
            let world = world.clone();
            tasks.push(page_runtime.spawn(async move {
                let stream = tokio::spawn(event_stream(
                    address,
                    world.clone(),
                    stop.clone(),
                    streams,
                    events,
                ));
                let polls = if spectator {
                    spectate(address, &world, &stop, &reads, reads_per_second).await
                } else {
                    operate(address, &world, &stop, &reads).await
                };
                if let Err(error) = polls {
                    eprintln!("a simulated page failed: {error}");
                }
                let _ = stream.await;
            }));
        }
        Ok(Pages { tasks, ..pages })
    }

    /// Stops every page; the streams that were open, events and reads seen.
    fn stop(self, page_runtime: &tokio::runtime::Runtime) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = page_runtime.block_on(task);
        }
        (
            self.streams.load(Ordering::SeqCst),
            self.events.load(Ordering::SeqCst),
            self.reads.load(Ordering::SeqCst),
        )
    }
}

async fn event_stream(
    address: SocketAddr,
    world: String,
    stop: Arc<AtomicBool>,
    streams: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
) {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return;
    };
    let request = format!(
        "GET /v1/worlds/{world}/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    streams.fetch_add(1, Ordering::SeqCst);
    let mut buffer = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await;
        match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                let seen = buffer[..n]
                    .windows(11)
                    .filter(|w| w == b"event: tick")
                    .count();
                events.fetch_add(seen as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn page_load(connection: &mut Connection, paths: &[&str]) -> std::io::Result<()> {
    for path in paths {
        connection.get(path).await?;
    }
    Ok(())
}

async fn operate(
    address: SocketAddr,
    world: &str,
    stop: &AtomicBool,
    reads: &AtomicU64,
) -> std::io::Result<()> {
    let mut connection = Connection::open(address).await?;
    page_load(
        &mut connection,
        &[
            "/",
            "/console/assets/console.css",
            "/console/assets/console.js",
            "/console/assets/everarcade.js",
            "/console/assets/blake3.js",
            "/console/assets/charts.js",
            "/version",
        ],
    )
    .await?;
    let status = format!("/v1/worlds/{world}/status");
    let mut next_metrics = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        connection.get(&status).await?;
        if Instant::now() >= next_metrics {
            connection.get("/metrics").await?;
            next_metrics += Duration::from_millis(CONSOLE_METRICS_MS);
        }
        reads.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(CONSOLE_STATUS_MS)).await;
    }
    Ok(())
}

async fn spectate(
    address: SocketAddr,
    world: &str,
    stop: &AtomicBool,
    reads: &AtomicU64,
    reads_per_second: u64,
) -> std::io::Result<()> {
    let mut connection = Connection::open(address).await?;
    page_load(
        &mut connection,
        &[
            "/spectate",
            "/console/assets/console.css",
            "/console/assets/spectate.js",
            "/console/assets/everarcade.js",
            "/console/assets/blake3.js",
            "/console/assets/generic.js",
            "/spectate/viewer/viewer.js",
            "/version",
        ],
    )
    .await?;
    let players = format!("/v1/worlds/{world}/state/50");
    let projectiles = format!("/v1/worlds/{world}/state/42");
    if reads_per_second == 0 {
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return Ok(());
    }
    let period = Duration::from_millis(1000 / reads_per_second);
    while !stop.load(Ordering::SeqCst) {
        connection.get(&players).await?;
        connection.get(&projectiles).await?;
        reads.fetch_add(2, Ordering::Relaxed);
        tokio::time::sleep(period).await;
    }
    Ok(())
}
