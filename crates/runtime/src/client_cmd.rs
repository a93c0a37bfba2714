//! `submit` (sign and send inputs to a running node) and `load` (drive a
//! running node with the package's bots over HTTP, bounded in count and time).
//!
//! Both talk to the node through `everarcade-client`. The node's address is
//! `--addr` if given, else the address the world's running node recorded
//! (`status.json`, or the node registry for an amnesia node), over TLS when
//! the node serves TLS, else `127.0.0.1:8080`. Before sending anything both check, with `GET /version`,
//! that the node runs this world with this package.
//!
//! Nonces: the node only requires each sender's nonces to increase, and
//! offers no endpoint to ask for the last one. `--nonce` chooses it; without
//! it the first nonce is the current Unix time in microseconds, which exceeds
//! any nonce an earlier run of `submit`, `load` or `simulate` used unless that
//! run sent more than one input per microsecond since. The clock only picks
//! nonces; it never reaches a root.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use ed25519_dalek::SigningKey;
use everarcade_client::load::{self, Lane, LoadConfig, LoadReport};
use everarcade_client::{BlockingClient, Client, ClientError, Encoding};
use everarcade_engine::World;
use everarcade_protocol::{Envelope, WorldId, test_signing_key};

use crate::WorldArgs;
use crate::exit::{FAILURE, Failure, NOT_RUNNING, PACKAGE, USAGE};
use crate::inputs::{ScriptedInput, read_inputs};
use crate::probe;
use crate::target::{Target, store_failure};

/// The address used when neither `--addr` nor `status.json` gives one.
pub const ADDR_DEFAULT: &str = "127.0.0.1:8080";
/// Bots one `load` drives (as `simulate`).
pub const LOAD_BOTS_MAX: u32 = 4_096;
/// Envelopes one `load` prepares (`--bots` × `--ticks`, at most).
pub const LOAD_INPUTS_MAX: u64 = 2_000_000;
/// `load --duration-secs` default.
pub const LOAD_DURATION_SECONDS_DEFAULT: u64 = 30;
/// Concurrent requests of `load` unless `--concurrency` says otherwise.
pub const LOAD_CONCURRENCY_DEFAULT: u32 = 16;
/// The most concurrent requests of `load`.
pub const LOAD_CONCURRENCY_MAX: u32 = 512;
/// How long `submit --inputs` waits for the node to reach a scripted tick.
pub const SCRIPT_TICK_WAIT: Duration = Duration::from_secs(60);

/// Where and how to reach the node.
#[derive(Args, Clone)]
pub struct NodeAddress {
    /// The node's address, `host:port`, `http://host:port` or `https://host:port`
    /// [default: the running node's recorded address, else 127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    addr: Option<String>,
    /// Send envelopes in the binary encoding (application/octet-stream) instead of JSON.
    #[arg(long)]
    binary: bool,
    /// Seconds one request may take before it counts as unanswered.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

/// `submit` arguments.
#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    world: WorldArgs,
    #[command(flatten)]
    node: NodeAddress,
    /// The player; signs with its deterministic test key (docs/PROTOCOL.md §3.3).
    #[arg(long, required_unless_present = "inputs", requires = "payload")]
    player: Option<String>,
    /// The payload, hex.
    #[arg(long, requires = "player")]
    payload: Option<String>,
    /// The (first) nonce [default: the Unix time in microseconds].
    #[arg(long)]
    nonce: Option<u64>,
    /// JSON lines {"tick": 1, "player": "alice", "payload": "<hex>"} as for `simulate`;
    /// tick k is sent once the node has executed k-1 ticks since this command began,
    /// each tick's lines as one batch; each player's nonces count up from the first nonce.
    #[arg(long, conflicts_with_all = ["player", "payload"])]
    inputs: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `load` arguments.
#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    world: WorldArgs,
    #[command(flatten)]
    node: NodeAddress,
    /// Bot players driven by the package's ea_bot (keys of bot-0, bot-1, … as in `simulate`).
    #[arg(long)]
    bots: u32,
    /// Ticks' worth of bot inputs to prepare and send, at most.
    #[arg(long)]
    ticks: u64,
    /// Seconds after which no request starts.
    #[arg(long, default_value_t = LOAD_DURATION_SECONDS_DEFAULT)]
    duration_secs: u64,
    /// Seed of the bots' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One request per tick per lane holding its bots' envelopes, instead of one per envelope.
    #[arg(long)]
    batch: bool,
    /// Requests in flight at once (each bot always in the same lane, so its nonces stay in order)
    /// [default: the smaller of --bots and 16].
    #[arg(long)]
    concurrency: Option<u32>,
    /// Start sending at this wall-clock time (Unix milliseconds) once the inputs are prepared,
    /// so that several drivers send together; a time already past starts at once.
    #[arg(long, value_name = "UNIX_MS")]
    start_at: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// A command-line failure from a client error: no node is `NOT_RUNNING`.
fn client_failure(error: ClientError) -> Failure {
    let exit = if error.is_transport() {
        NOT_RUNNING
    } else {
        FAILURE
    };
    Failure::new(exit, error.code(), error.to_string())
}

/// The node to talk to: `--addr`, else the world's running node (its
/// recorded address and TLS certificate), else the default address.
fn make_client(node: &NodeAddress, target: &Target) -> Result<Client, Failure> {
    let world = target.world_ref();
    let running = probe::running_node(&world).map_err(store_failure)?;
    let recorded_cert = running.as_ref().and_then(|n| n.tls_cert.clone());
    let url = match (
        &node.addr,
        running.as_ref().and_then(probe::RunningNode::url),
    ) {
        (Some(address), _) => address.clone(),
        (None, Some(url)) => url,
        (None, None) => ADDR_DEFAULT.to_string(),
    };
    let encoding = if node.binary {
        Encoding::Binary
    } else {
        Encoding::Json
    };
    let timeout = Duration::from_secs(node.timeout_secs.max(1));
    let client = probe::client_at(&url, &world, recorded_cert.as_deref(), timeout)
        .map_err(probe::client_setup_failure)?;
    Ok(client.with_encoding(encoding))
}

/// Refuses a node that runs another world or another package.
fn check_node(client: &BlockingClient, target: &Target) -> Result<(), Failure> {
    let version = client.version().map_err(client_failure)?;
    if version.world != target.id.as_str() {
        let message = format!(
            "the node at {} runs world {}, not {}",
            client.client().address(),
            version.world,
            target.id
        );
        return Err(Failure::new(FAILURE, "unknown_world", message));
    }
    if version.package_root != target.package.root {
        let message = format!(
            "the node at {} runs package root {}, but {} has package root {}",
            client.client().address(),
            version.package_root,
            target.package.dir.display(),
            target.package.root
        );
        return Err(Failure::new(PACKAGE, "package_mismatch", message));
    }
    Ok(())
}

fn clock_nonce() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(1)
        .max(1)
}

fn decode_payload(text: &str) -> Result<Vec<u8>, Failure> {
    hex::decode(text).map_err(|e| {
        Failure::new(
            USAGE,
            "payload_invalid",
            format!("--payload is not hex: {e}"),
        )
    })
}

/// Runs `submit`.
pub fn submit(args: SubmitArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    let client = BlockingClient::new(make_client(&args.node, &target)?);
    let first_nonce = args.nonce.unwrap_or_else(clock_nonce);
    if first_nonce == 0 {
        return Err(Failure::new(
            USAGE,
            "nonce_invalid",
            "--nonce 0 is never admissible",
        ));
    }
    if let Some(path) = &args.inputs {
        let lines = read_inputs(path)?;
        check_node(&client, &target)?;
        return submit_script(&client, &target.id, lines, first_nonce, args.json);
    }
    let (Some(player), Some(payload)) = (&args.player, &args.payload) else {
        unreachable!("clap requires --player and --payload without --inputs");
    };
    let payload = decode_payload(payload)?;
    check_node(&client, &target)?;
    let key = test_signing_key(player);
    let envelope = Envelope::sign(&target.id, &key, first_nonce, payload);
    let ack = client.submit(&envelope).map_err(client_failure)?;
    if args.json {
        let object = serde_json::json!({
            "tick": ack.tick,
            "seq": ack.seq,
            "player": player,
            "sender": hex::encode(envelope.sender),
            "nonce": envelope.nonce,
            "envelope_hash": envelope.hash().to_hex(),
        });
        println!("{object}");
    } else {
        println!(
            "admitted: tick {} seq {} (player {player}, sender {}, nonce {}, envelope {}); durable in the journal",
            ack.tick,
            ack.seq,
            hex::encode(envelope.sender),
            envelope.nonce,
            envelope.hash()
        );
    }
    Ok(())
}

/// Sends each scripted tick as one batch; prints one result per line. The
/// first scripted tick goes at once; each later one once the node has
/// executed enough ticks since the tick the first batch was admitted for,
/// so a script's spacing holds however long the first batch took (on a
/// busy machine the node may tick while it is in flight).
fn submit_script(
    client: &BlockingClient,
    world: &WorldId,
    lines: Vec<ScriptedInput>,
    first_nonce: u64,
    json: bool,
) -> Result<(), Failure> {
    let start_height = client.status().map_err(client_failure)?.head_tick;
    // The tick before the one the first scripted tick's inputs were
    // admitted for, once known; the head at the start until then.
    let mut anchor: Option<u64> = None;
    let first_tick = lines.first().map_or(1, |line| line.tick);
    let mut keys: BTreeMap<String, (SigningKey, u64)> = BTreeMap::new();
    let mut results = Vec::with_capacity(lines.len());
    let mut refused = 0u64;
    let mut index = 0;
    while index < lines.len() {
        let tick = lines[index].tick;
        let group_end = lines[index..]
            .iter()
            .position(|line| line.tick != tick)
            .map_or(lines.len(), |offset| index + offset);
        match anchor {
            Some(anchor) => wait_for_height(client, anchor + tick - first_tick)?,
            None => wait_for_height(client, start_height + tick - 1)?,
        }
        let envelopes: Vec<Envelope> = lines[index..group_end]
            .iter()
            .map(|line| {
                let (key, nonce) = keys
                    .entry(line.player.clone())
                    .or_insert_with(|| (test_signing_key(&line.player), first_nonce));
                let envelope = Envelope::sign(world, key, *nonce, line.payload.clone());
                *nonce += 1;
                envelope
            })
            .collect();
        let answers = client.submit_batch(&envelopes).map_err(client_failure)?;
        for ((line, envelope), answer) in
            lines[index..group_end].iter().zip(&envelopes).zip(answers)
        {
            let mut object = serde_json::json!({
                "script_tick": line.tick,
                "player": line.player,
                "nonce": envelope.nonce,
                "envelope_hash": envelope.hash().to_hex(),
            });
            match answer {
                Ok(ack) => {
                    if tick == first_tick {
                        let before = ack.tick.saturating_sub(1);
                        anchor = Some(anchor.map_or(before, |anchor| anchor.min(before)));
                    }
                    object["tick"] = ack.tick.into();
                    object["seq"] = ack.seq.into();
                }
                Err(refusal) => {
                    refused += 1;
                    object["error"] =
                        serde_json::json!({"code": refusal.code, "message": refusal.message});
                }
            }
            results.push(object);
        }
        index = group_end;
    }
    print_script_results(&results, json);
    if refused > 0 {
        let message = format!("the node refused {refused} of {} inputs", results.len());
        return Err(Failure::new(FAILURE, "inputs_refused", message));
    }
    Ok(())
}

fn print_script_results(results: &[serde_json::Value], json: bool) {
    if json {
        println!("{}", serde_json::json!({ "results": results }));
        return;
    }
    for result in results {
        let who = format!(
            "{} nonce {}",
            result["player"].as_str().unwrap_or("?"),
            result["nonce"]
        );
        match result.get("error") {
            Some(error) => println!("refused  {who}: {}: {}", error["code"], error["message"]),
            None => println!(
                "admitted {who}: tick {} seq {}",
                result["tick"], result["seq"]
            ),
        }
    }
}

/// Waits, bounded by [`SCRIPT_TICK_WAIT`], until the node's head tick reaches `height`.
fn wait_for_height(client: &BlockingClient, height: u64) -> Result<(), Failure> {
    let start = Instant::now();
    loop {
        let now = client.status().map_err(client_failure)?.head_tick;
        if now >= height {
            return Ok(());
        }
        if start.elapsed() > SCRIPT_TICK_WAIT {
            let message = format!(
                "the node stayed at tick {now} for {} s; waiting for tick {height}",
                SCRIPT_TICK_WAIT.as_secs()
            );
            return Err(Failure::new(FAILURE, "node_stalled", message));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What `load` prepared: the lanes and how long that took.
struct Prepared {
    lanes: Vec<Lane>,
    envelopes: u64,
    seconds: f64,
}

/// Plays `ticks` ticks of the bots' match in a local in-memory world from
/// genesis, signing each bot payload with nonce `first_nonce + tick - 1`, and
/// deals the envelopes into lanes (bot `i` into lane `i % lanes`).
///
/// The local world follows only the bots' own inputs, not the node's other
/// inputs: the payloads are the bots' choices in that world, which is all a
/// load needs (bots are never part of a lineage).
fn prepare(
    target: &Target,
    args: &LoadArgs,
    lanes: u32,
    first_nonce: u64,
) -> Result<Prepared, Failure> {
    let started = Instant::now();
    let (engine, compiled) = target.compile()?;
    let (mut world, _) = World::genesis(&engine, target.id.clone(), compiled)
        .map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))?;
    let keys: Vec<SigningKey> = (0..args.bots)
        .map(|i| test_signing_key(&format!("bot-{i}")))
        .collect();
    let public: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let limit = world.limits().inputs_per_tick as usize;
    let mut out: Vec<Lane> = vec![Vec::new(); lanes as usize];
    let mut envelopes = 0u64;
    let engine_failure =
        |e: everarcade_engine::EngineError| Failure::new(FAILURE, e.code(), e.to_string());
    for tick in 1..=args.ticks {
        let payloads = world
            .bot_payloads(&engine, &public, args.seed)
            .map_err(engine_failure)?;
        let mut admitted = Vec::new();
        let mut per_lane: Vec<Vec<Envelope>> = vec![Vec::new(); lanes as usize];
        // Signed and checked on every core; admitted in bot order.
        let (bots, to_sign): (Vec<usize>, Vec<_>) = payloads
            .into_iter()
            .enumerate()
            .filter_map(|(bot, payload)| {
                payload.map(|payload| (bot, (&keys[bot], first_nonce + tick - 1, payload)))
            })
            .unzip();
        let signed = Envelope::sign_all(&target.id, to_sign);
        let checked = Envelope::all_into_verified(signed, world.signature_rule());
        for (bot, checked) in bots.into_iter().zip(checked) {
            let envelope = match checked {
                Ok(verified) => {
                    if admitted.len() < limit && world.admit_verified(&verified).is_ok() {
                        admitted.push(verified.envelope().clone());
                    }
                    verified.into_envelope()
                }
                Err((_, envelope)) => envelope,
            };
            per_lane[bot % lanes as usize].push(envelope);
            envelopes += 1;
        }
        world
            .execute_tick(&engine, &admitted)
            .map_err(engine_failure)?;
        for (lane, tick_envelopes) in out.iter_mut().zip(per_lane) {
            if tick_envelopes.is_empty() {
                continue;
            }
            if args.batch {
                lane.push(tick_envelopes);
            } else {
                lane.extend(tick_envelopes.into_iter().map(|envelope| vec![envelope]));
            }
        }
    }
    Ok(Prepared {
        lanes: out,
        envelopes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn validate_load(args: &LoadArgs) -> Result<u32, Failure> {
    let usage = |code: &str, message: String| Err(Failure::new(USAGE, code, message));
    if args.bots == 0 || args.bots > LOAD_BOTS_MAX {
        return usage("too_many_bots", format!("--bots is 1 to {LOAD_BOTS_MAX}"));
    }
    if args.ticks == 0 || u64::from(args.bots).saturating_mul(args.ticks) > LOAD_INPUTS_MAX {
        let message =
            format!("--ticks is at least 1 and --bots × --ticks at most {LOAD_INPUTS_MAX}");
        return usage("load_too_large", message);
    }
    if args.duration_secs == 0 {
        return usage("duration_invalid", "--duration-secs is at least 1".into());
    }
    let concurrency = args
        .concurrency
        .unwrap_or(LOAD_CONCURRENCY_DEFAULT.min(args.bots));
    if concurrency == 0 || concurrency > LOAD_CONCURRENCY_MAX {
        return usage(
            "concurrency_invalid",
            format!("--concurrency is 1 to {LOAD_CONCURRENCY_MAX}"),
        );
    }
    Ok(concurrency.min(args.bots))
}

/// Runs `load`.
pub fn load(args: LoadArgs) -> Result<(), Failure> {
    let lanes = validate_load(&args)?;
    let target = Target::resolve(&args.world)?;
    let client = make_client(&args.node, &target)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(FAILURE, "runtime", e.to_string()))?;
    let before = runtime.block_on(async {
        let version = client.version().await?;
        let status = client.status().await?;
        Ok::<_, ClientError>((version, status))
    });
    let (version, before) = before.map_err(client_failure)?;
    if version.package_root != target.package.root || version.world != target.id.as_str() {
        let message = format!(
            "the node at {} runs world {} with package root {}; this is world {} with package root {}",
            client.address(),
            version.world,
            version.package_root,
            target.id,
            target.package.root
        );
        return Err(Failure::new(PACKAGE, "package_mismatch", message));
    }
    let prepared = prepare(&target, &args, lanes, clock_nonce())?;
    if let Some(start_at) = args.start_at {
        let wait = start_at.saturating_sub(unix_millis());
        std::thread::sleep(Duration::from_millis(wait));
    }
    let send_started = unix_millis();
    // After a full tick, a lane waits one tick period before its next request.
    let config = LoadConfig {
        duration: Duration::from_secs(args.duration_secs),
        pause_after_full: Duration::from_secs_f64(1.0 / before.tick_rate_hz.max(1.0)),
    };
    let report = runtime.block_on(load::run(&client, prepared.lanes, config));
    let after = runtime
        .block_on(client.status())
        .ok()
        .map(|status| status.head_tick);
    print_load(
        &args,
        &client,
        lanes,
        prepared.envelopes,
        prepared.seconds,
        send_started,
        &report,
        before.head_tick,
        after,
    );
    Ok(())
}

/// The wall clock in Unix milliseconds (0 before 1970).
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[allow(clippy::too_many_arguments)]
fn print_load(
    args: &LoadArgs,
    client: &Client,
    lanes: u32,
    prepared: u64,
    prepare_seconds: f64,
    send_started: u64,
    report: &LoadReport,
    height_before: u64,
    height_after: Option<u64>,
) {
    let p50 = report.latency_quantile_micros(0.5);
    let p99 = report.latency_quantile_micros(0.99);
    if args.json {
        let mut object = report.to_json();
        object["address"] = client.address().into();
        object["bots"] = args.bots.into();
        object["ticks"] = args.ticks.into();
        object["batch"] = args.batch.into();
        object["encoding"] = if client.encoding() == Encoding::Binary {
            "binary"
        } else {
            "json"
        }
        .into();
        object["concurrency"] = lanes.into();
        object["prepared"] = prepared.into();
        object["prepare_seconds"] = prepare_seconds.into();
        object["send_started_unix_millis"] = send_started.into();
        object["head_tick_before"] = height_before.into();
        object["head_tick_after"] = height_after.into();
        println!("{object}");
        return;
    }
    let millis = |micros: Option<u64>| {
        micros.map_or("-".to_string(), |m| format!("{:.2} ms", m as f64 / 1000.0))
    };
    println!(
        "node             {} ({} lanes, {})",
        client.address(),
        lanes,
        if args.batch {
            "one batch per tick per lane"
        } else {
            "one envelope per request"
        }
    );
    println!(
        "prepared         {prepared} envelopes from {} bots × {} ticks in {prepare_seconds:.2} s",
        args.bots, args.ticks
    );
    println!(
        "sent             {} envelopes in {} requests over {:.2} s{}",
        report.sent,
        report.requests,
        report.elapsed_seconds,
        if report.stopped_by_deadline {
            " (stopped by --duration-secs)"
        } else {
            ""
        }
    );
    println!(
        "acknowledged     {} (202, durable): {:.0} inputs/s",
        report.acknowledged,
        report.acknowledged_per_second()
    );
    println!(
        "refused          {} {:?}",
        report.refused_total(),
        report.refused
    );
    println!(
        "latency          p50 {} p99 {} (per request, until the 202)",
        millis(p50),
        millis(p99)
    );
    match height_after {
        Some(after) => println!("node ticks       {height_before} -> {after}"),
        None => println!("node ticks       {height_before} -> (no status after the run)"),
    }
}
