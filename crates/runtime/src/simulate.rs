//! `simulate`: drives a world without a network, from the package's bots and/or
//! a file of scripted inputs, and prints its roots.
//!
//! By default the world is durable: it is created under the runtime root (or
//! recovered and continued if it exists there), every tick is journaled and
//! checkpoints are taken, through the same path a node uses. `--amnesia`
//! keeps everything in memory and writes nothing. `--verify` replays the
//! journal from genesis (signatures and nonces re-checked) and requires
//! identical roots at every tick; with `--amnesia` it replays the ticks of
//! this run in a second, fresh world.
//!
//! `--trace` prints, per tick, each receipt (outcome, code, fuel, events)
//! and the guest's `log` lines on stderr, as text or (with `--json`) as JSON
//! lines; stdout keeps the summary. The log lines are diagnostics that no
//! root covers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ed25519_dalek::SigningKey;
use everarcade_engine::{CompiledPackage, Engine, TickOutput, World};
use everarcade_protocol::{
    Envelope, EnvelopeError, Hash, Receipt, ReceiptKind, Tick, TickRoots, Verified, WorldId,
    test_signing_key,
};
use everarcade_store::WorldLock;
use everarcade_world::replay::{Context, ReplayProfile, ReplayedTick, replay};
use everarcade_world::{DurableWorld, Entry, FrontDoor, Keys};
use indicatif::ProgressBar;

use crate::WorldArgs;
use crate::exit::{DIVERGENCE, FAILURE, Failure, PACKAGE, USAGE};
use crate::inputs::{ScriptedInput, read_inputs};
use crate::progress;
use crate::target::{DurabilityArgs, Target, disk, open, world_failure};

/// Ticks run when neither `--ticks` nor an inputs file says otherwise.
pub const TICKS_DEFAULT: u64 = 100;
/// The most ticks one simulation runs.
pub const TICKS_MAX: u64 = 10_000_000;
/// The most bots one simulation drives.
pub const BOTS_MAX: u32 = 4_096;

/// Options of `simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Ticks to run [default: the last tick of --inputs, else 100].
    #[arg(long)]
    ticks: Option<u64>,
    /// Bot players driven by the package's ea_bot.
    #[arg(long, default_value_t = 0)]
    bots: u32,
    /// Seed of the bots' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// JSON lines {"tick": 1, "player": "alice", "payload": "<hex>"}, ticks ascending;
    /// tick 1 is the first tick this run executes.
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Print the final state as JSON lines {"key": "<hex>", "value": "<hex>"}, sorted by key.
    #[arg(long)]
    dump_state: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Replay and require identical roots at every tick (from the journal, or in memory with --amnesia).
    #[arg(long)]
    verify: bool,
    /// Keep the world in memory only; write nothing under the runtime root.
    #[arg(long)]
    amnesia: bool,
    /// Per tick, each receipt (outcome, code, fuel, events) and the guest's log lines, on stderr
    /// (JSON lines with --json).
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    durability: DurabilityArgs,
}

/// A player the simulation signs for: its key and next nonce.
struct Player {
    key: SigningKey,
    next_nonce: u64,
}

/// Counts of what happened, for the summary.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<&'static str, u64>,
    refused: BTreeMap<&'static str, u64>,
    inputs: u64,
}

/// The world being driven: in memory, or durable.
// One driver lives per process, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Driver {
    Memory {
        world: World,
        admitted: Vec<Envelope>,
        history: Vec<(Vec<Envelope>, TickRoots)>,
        keep_history: bool,
    },
    Durable(Box<DurableWorld>),
}

impl Driver {
    fn world(&self) -> &World {
        match self {
            Driver::Memory { world, .. } => world,
            Driver::Durable(durable) => durable.world(),
        }
    }

    fn world_mut(&mut self) -> &mut World {
        match self {
            Driver::Memory { world, .. } => world,
            Driver::Durable(durable) => durable.world_mut(),
        }
    }

    /// [`Driver::admit`] of each envelope in order, their signatures
    /// already checked under the world's rule
    /// ([`Envelope::sign_and_verify_all`]). An envelope whose signature
    /// failed goes through `admit`, so its error is admit's.
    #[allow(clippy::result_large_err)]
    fn admit_checked(
        &mut self,
        checked: Vec<Result<Verified, (EnvelopeError, Envelope)>>,
    ) -> Vec<Result<(), EnvelopeError>> {
        checked
            .into_iter()
            .map(|checked| match checked {
                Ok(verified) => self.admit_verified(verified),
                Err((_, envelope)) => self.admit(envelope),
            })
            .collect()
    }

    fn admit_verified(&mut self, verified: Verified) -> Result<(), EnvelopeError> {
        match self {
            Driver::Memory {
                world, admitted, ..
            } => {
                let limit = world.limits().inputs_per_tick;
                if admitted.len() >= limit as usize {
                    return Err(EnvelopeError::TickFull {
                        tick: world.tick() + 1,
                        limit,
                    });
                }
                world.admit_verified(&verified)?;
                admitted.push(verified.into_envelope());
                Ok(())
            }
            Driver::Durable(durable) => durable.admit_verified(verified).map(|_| ()),
        }
    }

    fn admit(&mut self, envelope: Envelope) -> Result<(), EnvelopeError> {
        match self {
            Driver::Memory {
                world, admitted, ..
            } => {
                let limit = world.limits().inputs_per_tick;
                if admitted.len() >= limit as usize {
                    return Err(EnvelopeError::TickFull {
                        tick: world.tick() + 1,
                        limit,
                    });
                }
                world.admit(&envelope)?;
                admitted.push(envelope);
                Ok(())
            }
            Driver::Durable(durable) => durable.admit(envelope),
        }
    }

    fn execute(&mut self, engine: &Engine) -> Result<TickOutput, Failure> {
        match self {
            Driver::Memory {
                world,
                admitted,
                history,
                keep_history,
            } => {
                let inputs = std::mem::take(admitted);
                let output = world
                    .execute_tick(engine, &inputs)
                    .map_err(engine_failure)?;
                if *keep_history {
                    history.push((inputs, output.roots));
                }
                Ok(output)
            }
            Driver::Durable(durable) => durable.execute_tick().map_err(world_failure),
        }
    }
}

/// Runs `simulate`.
pub fn run(args: SimulateArgs) -> Result<(), Failure> {
    if args.bots > BOTS_MAX {
        return Err(Failure::new(
            USAGE,
            "too_many_bots",
            format!("--bots is at most {BOTS_MAX}"),
        ));
    }
    let scripted = match &args.inputs {
        Some(path) => read_inputs(path)?,
        None => Vec::new(),
    };
    let ticks = tick_count(args.ticks, &scripted)?;
    let target = Target::resolve(&args.world)?;
    let door = target.door()?;
    let (engine, compiled) = (door.engine.clone(), door.compiled.clone());
    let _lock;
    let (mut driver, note) = if args.amnesia {
        let (world, _) = World::genesis(&engine, target.id.clone(), compiled.clone())
            .map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))?;
        let driver = Driver::Memory {
            world,
            admitted: Vec::new(),
            history: Vec::new(),
            keep_history: args.verify,
        };
        let note = format!(
            "--amnesia: the world lived in memory; nothing was written under {}",
            args.world.runtime_root.display()
        );
        (driver, note)
    } else {
        let (mut driver, note, lock) = open_or_create(&target, &door, &args.durability)?;
        _lock = lock;
        if let Driver::Durable(durable) = &mut driver {
            durable.write_status("running").map_err(world_failure)?;
        }
        (driver, note)
    };
    let first_tick = driver.world().tick() + 1;
    let mut players = players_for(&scripted, args.bots, driver.world());
    let bot_keys: Vec<[u8; 32]> = (0..args.bots)
        .map(|i| players[&bot_name(i)].key.verifying_key().to_bytes())
        .collect();
    let mut tally = Tally::default();
    let mut last = current_roots(&mut driver);
    let mut script = scripted.iter().peekable();
    let visible = progress::visible(args.json);
    let bar = progress::counter(visible, "simulate", ticks, "ticks");
    for run_tick in 1..=ticks {
        let mut payloads: Vec<(String, Vec<u8>)> = Vec::new();
        while let Some(input) = script.next_if(|input| input.tick == run_tick) {
            payloads.push((input.player.clone(), input.payload.clone()));
        }
        let bot_payloads = driver
            .world_mut()
            .bot_payloads(&engine, &bot_keys, args.seed)
            .map_err(engine_failure)?;
        for (i, payload) in bot_payloads.into_iter().enumerate() {
            if let Some(payload) = payload {
                payloads.push((bot_name(i as u32), payload));
            }
        }
        let senders = admit_all(&mut driver, &target.id, &mut players, payloads, &mut tally);
        let output = driver.execute(&engine)?;
        if args.trace {
            bar.suspend(|| print_trace(&output, &senders, args.json));
        }
        count_outcomes(&output.receipts, &mut tally);
        last = output.roots;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verified = finish(&mut driver, &target, &engine, &compiled, &args, visible)?;
    let summary = Summary {
        world: driver.world_mut(),
        last,
        tally,
        players: &players,
        first_tick,
        note,
        verified,
    };
    print_summary(summary, &args);
    if args.dump_state {
        dump_state(driver.world());
    }
    if let Driver::Durable(durable) = driver {
        durable.close().map_err(world_failure)?;
    }
    Ok(())
}

/// Recovers and continues the world if it exists, else binds the package
/// and creates it: the front door as a node enters (lock, incidents, the
/// binding, the runtime version), except that simulate creates no operator
/// key (it signs checkpoints only with a key the world has).
fn open_or_create(
    target: &Target,
    door: &FrontDoor,
    durability: &DurabilityArgs,
) -> Result<(Driver, String, Option<WorldLock>), Failure> {
    let entry = Entry {
        keys: Keys::Load,
        ..Entry::node(durability.config())
    };
    let opened = open(door, entry)?;
    let path = target.dir.path().display();
    let note = match opened.arrival.recovery() {
        None => format!("created the world under {path}; every tick is journaled"),
        Some(recovery) => format!(
            "continued the world under {path}: recovered tick {} ({} ticks replayed from {}), roots match the journal",
            recovery.roots.tick,
            recovery.ticks_replayed,
            match &recovery.started_from {
                everarcade_world::replay::StartedFrom::Genesis => "genesis".to_string(),
                everarcade_world::replay::StartedFrom::Checkpoint { tick, .. } =>
                    format!("the checkpoint of tick {tick}"),
            }
        ),
    };
    Ok((Driver::Durable(Box::new(opened.world)), note, opened.lock))
}

/// `--verify`: replays and compares; returns whether it ran.
fn finish(
    driver: &mut Driver,
    target: &Target,
    engine: &Arc<Engine>,
    compiled: &Arc<CompiledPackage>,
    args: &SimulateArgs,
    visible: bool,
) -> Result<bool, Failure> {
    if !args.verify {
        return Ok(false);
    }
    match driver {
        Driver::Memory { history, .. } => {
            let bar = progress::counter(visible, "verify", history.len() as u64, "ticks");
            verify_history(engine, &target.id, compiled.clone(), history, &bar)?;
            bar.finish_and_clear();
        }
        Driver::Durable(durable) => {
            durable.commit_inputs().map_err(world_failure)?;
            let storage = disk();
            let context = Context {
                storage: &*storage,
                dir: &target.dir,
                id: &target.id,
                engine,
                compiled: compiled.clone(),
                schedule: None,
            };
            let options = ReplayProfile::VerifyFromGenesis.options();
            let journal = progress::JournalBytes::measure(&target.dir);
            let bar = progress::journal(visible, "verify", &journal);
            let mut observe = |tick: ReplayedTick<'_>| {
                bar.set_position(journal.position(tick.segment, tick.end_bytes));
                bar.set_message(format!("tick {}", tick.record.roots.tick));
            };
            let replayed = replay(&context, &options, &mut observe);
            bar.finish_and_clear();
            let replayed = replayed.map_err(world_failure)?;
            if replayed.last != durable.roots() {
                let message = format!(
                    "replay from the journal reached tick {} continuity {}, but the world is at tick {} continuity {}",
                    replayed.last.tick,
                    replayed.last.continuity_root,
                    durable.roots().tick,
                    durable.roots().continuity_root
                );
                return Err(Failure::new(DIVERGENCE, "divergence", message));
            }
        }
    }
    Ok(true)
}

fn engine_failure(error: everarcade_engine::EngineError) -> Failure {
    Failure::new(FAILURE, error.code(), error.to_string())
}

/// The name (and test key seed) of bot `index`: `bot-<index>`.
pub(crate) fn bot_name(index: u32) -> String {
    format!("bot-{index}")
}

fn tick_count(ticks: Option<u64>, scripted: &[ScriptedInput]) -> Result<u64, Failure> {
    let last_scripted = scripted.last().map(|input| input.tick);
    let ticks = ticks.unwrap_or(last_scripted.unwrap_or(TICKS_DEFAULT));
    if ticks > TICKS_MAX {
        return Err(Failure::new(
            USAGE,
            "too_many_ticks",
            format!("--ticks is at most {TICKS_MAX}"),
        ));
    }
    if let Some(last) = last_scripted
        && last > ticks
    {
        let message =
            format!("the inputs file has an input for tick {last}, beyond --ticks {ticks}");
        return Err(Failure::new(USAGE, "inputs_beyond_ticks", message));
    }
    Ok(ticks)
}

/// Every named player's key; nonces continue after the world's last accepted one.
fn players_for(scripted: &[ScriptedInput], bots: u32, world: &World) -> BTreeMap<String, Player> {
    let names = scripted
        .iter()
        .map(|input| input.player.clone())
        .chain((0..bots).map(bot_name));
    names
        .map(|name| {
            let key = test_signing_key(&name);
            let last = world.nonces().get(&key.verifying_key().to_bytes());
            let next_nonce = last.map_or(1, |nonce| nonce + 1);
            (name, Player { key, next_nonce })
        })
        .collect()
}

/// Signs (on every core) and admits each payload in order; refusals are
/// tallied, not fatal. Returns the sender of each admitted envelope, by
/// envelope hash.
fn admit_all(
    driver: &mut Driver,
    world_id: &WorldId,
    players: &mut BTreeMap<String, Player>,
    payloads: Vec<(String, Vec<u8>)>,
    tally: &mut Tally,
) -> BTreeMap<Hash, String> {
    let mut nonces = Vec::with_capacity(payloads.len());
    for (name, _) in &payloads {
        let player = players.get_mut(name).expect("every named player has a key");
        nonces.push(player.next_nonce);
        player.next_nonce += 1;
    }
    let (names, to_sign): (Vec<String>, Vec<_>) = payloads
        .into_iter()
        .zip(nonces)
        .map(|((name, payload), nonce)| {
            let key = &players[&name].key;
            (name, (key, nonce, payload))
        })
        .unzip();
    // Signed and checked in one pass per core; admitted in order.
    let rule = driver.world().signature_rule();
    let checked = Envelope::sign_and_verify_all(world_id, to_sign, rule);
    tally.inputs += checked.len() as u64;
    let hashes: Vec<Hash> = checked
        .iter()
        .map(|checked| match checked {
            Ok(verified) => verified.envelope().hash(),
            Err((_, envelope)) => envelope.hash(),
        })
        .collect();
    let mut senders = BTreeMap::new();
    let admitted = driver.admit_checked(checked);
    for ((name, hash), admitted) in names.into_iter().zip(hashes).zip(admitted) {
        match admitted {
            Ok(()) => {
                senders.insert(hash, name);
            }
            Err(error) => *tally.refused.entry(error.code()).or_default() += 1,
        }
    }
    senders
}

/// `--trace`: one entry per receipt of the tick, with the call's log lines, on stderr.
fn print_trace(output: &TickOutput, senders: &BTreeMap<Hash, String>, json: bool) {
    let tick = output.roots.tick;
    if !json {
        eprintln!(
            "trace tick {tick}: {} receipts, {} log lines",
            output.receipts.len(),
            output.logs.len()
        );
    }
    for (index, receipt) in output.receipts.iter().enumerate() {
        let (kind, player) = match receipt.kind {
            ReceiptKind::Input => ("input", senders.get(&receipt.subject).map(String::as_str)),
            ReceiptKind::TickHook => ("tick_hook", None),
            ReceiptKind::GenesisHook => ("genesis_hook", None),
        };
        let logs = output.call_logs(index);
        if json {
            let line = serde_json::json!({
                "trace": "receipt",
                "tick": tick,
                "index": index,
                "kind": kind,
                "player": player,
                "subject": receipt.subject.to_hex(),
                "outcome": receipt.outcome.name(),
                "code": receipt.outcome.code(),
                "fuel": receipt.fuel_used,
                "events": receipt.event_count,
                "logs": logs,
            });
            eprintln!("{line}");
            continue;
        }
        eprintln!(
            "  {index:>4} {kind:<9} {:<10} {:<11} code {:<3} fuel {:>10} events {}",
            player.unwrap_or("-"),
            receipt.outcome.name(),
            receipt.outcome.code(),
            receipt.fuel_used,
            receipt.event_count
        );
        for line in logs {
            eprintln!("         log: {}", line.escape_debug());
        }
    }
}

fn count_outcomes(receipts: &[Receipt], tally: &mut Tally) {
    for receipt in receipts {
        *tally.outcomes.entry(receipt.outcome.name()).or_default() += 1;
    }
}

/// Replays `history` in a fresh world and compares every tick's roots.
fn verify_history(
    engine: &Engine,
    world_id: &WorldId,
    compiled: Arc<CompiledPackage>,
    history: &[(Vec<Envelope>, TickRoots)],
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let (mut replica, _) =
        World::genesis(engine, world_id.clone(), compiled).map_err(engine_failure)?;
    for (inputs, recorded) in history {
        for envelope in inputs {
            replica.admit(envelope).map_err(|e| {
                let message = format!("replay refused an input of tick {}: {e}", recorded.tick);
                Failure::new(DIVERGENCE, "divergence", message)
            })?;
        }
        let replayed = replica
            .execute_tick(engine, inputs)
            .map_err(engine_failure)?
            .roots;
        if replayed != *recorded {
            let message = format!(
                "replay diverged at tick {}: recorded continuity {} but replay reached {}",
                recorded.tick, recorded.continuity_root, replayed.continuity_root
            );
            return Err(Failure::new(DIVERGENCE, "divergence", message));
        }
        bar.inc(1);
    }
    Ok(())
}

struct Summary<'a> {
    world: &'a mut World,
    last: TickRoots,
    tally: Tally,
    players: &'a BTreeMap<String, Player>,
    first_tick: Tick,
    note: String,
    verified: bool,
}

/// The roots of the world's last tick, for a world that has executed none
/// in this run: genesis's for a new world.
fn current_roots(driver: &mut Driver) -> TickRoots {
    match driver {
        Driver::Durable(durable) => durable.roots(),
        Driver::Memory { world, .. } => {
            let empty = everarcade_protocol::list_root(&[]);
            TickRoots {
                tick: world.tick(),
                input_root: empty,
                receipt_root: empty,
                state_root: world.state_root(),
                continuity_root: world.continuity_root(),
            }
        }
    }
}

fn print_summary(summary: Summary<'_>, args: &SimulateArgs) {
    let world = summary.world;
    let roots = summary.last;
    let genesis_root = world.genesis_root();
    let players: BTreeMap<&str, String> = summary
        .players
        .iter()
        .map(|(name, player)| {
            (
                name.as_str(),
                hex::encode(player.key.verifying_key().to_bytes()),
            )
        })
        .collect();
    let mut receipts: BTreeMap<&str, u64> = ["applied", "rejected", "trapped", "out_of_fuel"]
        .into_iter()
        .map(|name| (name, 0))
        .collect();
    receipts.extend(summary.tally.outcomes);
    if args.json {
        let object = serde_json::json!({
            "world": world.id().as_str(),
            "package_root": world.compiled().package.root.to_hex(),
            "genesis_root": genesis_root.to_hex(),
            "head_tick": roots.tick,
            "state_root": roots.state_root.to_hex(),
            "input_root": roots.input_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "players": players,
            "receipts": receipts,
            "inputs": summary.tally.inputs,
            "refused": summary.tally.refused,
            "state_keys": world.state().len(),
            "verified": summary.verified,
            "persisted": !args.amnesia,
            "first_tick": summary.first_tick,
        });
        println!("{object}");
        return;
    }
    println!("world            {}", world.id());
    println!("package root     {}", world.compiled().package.root);
    println!("genesis C(0)     {genesis_root}");
    println!(
        "tick             {} (this run: ticks {}..={})",
        roots.tick, summary.first_tick, roots.tick
    );
    println!("state root       {}", roots.state_root);
    println!("input root       {}", roots.input_root);
    println!("receipt root     {}", roots.receipt_root);
    println!("continuity C(t)  {}", roots.continuity_root);
    println!("players          {} ({} bots)", players.len(), args.bots);
    println!(
        "inputs           {} signed, refused at admission: {:?}",
        summary.tally.inputs, summary.tally.refused
    );
    println!("receipts         {receipts:?}");
    println!(
        "state            {} keys, {} bytes",
        world.state().len(),
        world.state().value_bytes()
    );
    if summary.verified && args.amnesia {
        println!("verified         replayed this run's ticks in a fresh world: every root matches");
    } else if summary.verified {
        println!(
            "verified         replayed the journal from genesis (signatures and nonces re-checked): every root matches"
        );
    }
    println!("note             {}", summary.note);
}

fn dump_state(world: &World) {
    for (key, value) in world.state().iter() {
        println!(
            "{}",
            serde_json::json!({"key": hex::encode(key), "value": hex::encode(value)})
        );
    }
}
