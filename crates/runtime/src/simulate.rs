//! `simulate`: drives a world without a network, from the package's bots and/or
//! a file of scripted inputs, and prints its roots.
//!
//! For now the world lives in memory only; nothing is written under the
//! runtime root. `--verify` replays every recorded tick in a second, fresh
//! world (signatures and nonces re-checked) and requires identical roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use ed25519_dalek::SigningKey;
use everarcade_engine::{CompiledPackage, Engine, World};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, Hash, Receipt, Tick, TickRoots, WorldId, test_signing_key};
use serde::Deserialize;

use crate::WorldArgs;
use crate::exit::{DIVERGENCE, FAILURE, Failure, PACKAGE, USAGE};

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
    /// JSON lines {"tick": 1, "player": "alice", "payload": "<hex>"}, ticks ascending.
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Print the final state as JSON lines {"key": "<hex>", "value": "<hex>"}, sorted by key.
    #[arg(long)]
    dump_state: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Replay the recorded inputs in a fresh world and require identical roots at every tick.
    #[arg(long)]
    verify: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    tick: Tick,
    player: String,
    payload: String,
}

/// A scripted input, with its player's name.
struct Scripted {
    tick: Tick,
    player: String,
    payload: Vec<u8>,
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

/// Runs `simulate`.
pub fn run(args: SimulateArgs) -> Result<(), Failure> {
    let world_id = WorldId::new(&args.world.world_id)
        .map_err(|e| Failure::new(USAGE, "invalid_world_id", e.to_string()))?;
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
    let package = Package::load(&args.world.package_path)
        .map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))?;
    let engine = Engine::new().map_err(|e| Failure::new(FAILURE, e.code(), e.to_string()))?;
    let compiled = engine
        .compile(&package)
        .map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))?;
    let (mut world, genesis) = World::genesis(&engine, world_id.clone(), compiled.clone())
        .map_err(|e| Failure::new(PACKAGE, e.code(), e.to_string()))?;

    let mut players = players_for(&scripted, args.bots);
    let bot_keys: Vec<[u8; 32]> = (0..args.bots)
        .map(|i| players[&bot_name(i)].key.verifying_key().to_bytes())
        .collect();
    let mut tally = Tally::default();
    let mut history: Vec<(Vec<Envelope>, TickRoots)> = Vec::new();
    let mut last = None;
    let mut script = scripted.iter().peekable();
    for _ in 0..ticks {
        let tick = world.tick() + 1;
        let mut payloads: Vec<(String, Vec<u8>)> = Vec::new();
        while let Some(input) = script.next_if(|input| input.tick == tick) {
            payloads.push((input.player.clone(), input.payload.clone()));
        }
        let bot_payloads = world
            .bot_payloads(&engine, &bot_keys, args.seed)
            .map_err(engine_failure)?;
        for (i, payload) in bot_payloads.into_iter().enumerate() {
            if let Some(payload) = payload {
                payloads.push((bot_name(i as u32), payload));
            }
        }
        let admitted = admit_all(&mut world, &world_id, &mut players, payloads, &mut tally);
        let output = world
            .execute_tick(&engine, &admitted)
            .map_err(engine_failure)?;
        count_outcomes(&output.receipts, &mut tally);
        if args.verify {
            history.push((admitted, output.roots));
        }
        last = Some(output.roots);
    }
    if args.verify {
        verify_history(&engine, &world_id, compiled, &history)?;
    }
    let summary = Summary {
        world: &mut world,
        genesis_root: genesis.genesis_root,
        last,
        tally,
        players: &players,
    };
    print_summary(summary, &args);
    if args.dump_state {
        dump_state(&world);
    }
    Ok(())
}

fn engine_failure(error: everarcade_engine::EngineError) -> Failure {
    Failure::new(FAILURE, error.code(), error.to_string())
}

fn bot_name(index: u32) -> String {
    format!("bot-{index}")
}

fn tick_count(ticks: Option<u64>, scripted: &[Scripted]) -> Result<u64, Failure> {
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

fn read_inputs(path: &Path) -> Result<Vec<Scripted>, Failure> {
    let bad = |line: usize, message: String| {
        Failure::new(
            USAGE,
            "inputs_invalid",
            format!("{}:{line}: {message}", path.display()),
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            USAGE,
            "inputs_unreadable",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut inputs: Vec<Scripted> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: InputLine =
            serde_json::from_str(line).map_err(|e| bad(number, e.to_string()))?;
        if parsed.tick == 0 {
            return Err(bad(
                number,
                "tick must be at least 1 (tick 0 is genesis)".into(),
            ));
        }
        if inputs
            .last()
            .is_some_and(|previous| previous.tick > parsed.tick)
        {
            return Err(bad(
                number,
                format!(
                    "tick {} comes after a later tick; ticks must ascend",
                    parsed.tick
                ),
            ));
        }
        if parsed.player.is_empty() || parsed.player.starts_with("bot-") {
            return Err(bad(
                number,
                "player must be non-empty and not start with \"bot-\" (reserved for bots)".into(),
            ));
        }
        let payload = hex::decode(&parsed.payload)
            .map_err(|e| bad(number, format!("payload is not hex: {e}")))?;
        inputs.push(Scripted {
            tick: parsed.tick,
            player: parsed.player,
            payload,
        });
    }
    Ok(inputs)
}

fn players_for(scripted: &[Scripted], bots: u32) -> BTreeMap<String, Player> {
    let names = scripted
        .iter()
        .map(|input| input.player.clone())
        .chain((0..bots).map(bot_name));
    names
        .map(|name| {
            let key = test_signing_key(&name);
            (name, Player { key, next_nonce: 1 })
        })
        .collect()
}

/// Signs and admits each payload in order; refusals are tallied, not fatal.
fn admit_all(
    world: &mut World,
    world_id: &WorldId,
    players: &mut BTreeMap<String, Player>,
    payloads: Vec<(String, Vec<u8>)>,
    tally: &mut Tally,
) -> Vec<Envelope> {
    let limit = world.limits().inputs_per_tick as usize;
    let mut admitted = Vec::with_capacity(payloads.len());
    for (name, payload) in payloads {
        let player = players
            .get_mut(&name)
            .expect("every named player has a key");
        let envelope = Envelope::sign(world_id, &player.key, player.next_nonce, payload);
        player.next_nonce += 1;
        tally.inputs += 1;
        if admitted.len() >= limit {
            *tally.refused.entry("tick_full").or_default() += 1;
            continue;
        }
        match world.admit(&envelope) {
            Ok(()) => admitted.push(envelope),
            Err(error) => *tally.refused.entry(error.code()).or_default() += 1,
        }
    }
    admitted
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
    }
    Ok(())
}

struct Summary<'a> {
    world: &'a mut World,
    genesis_root: Hash,
    last: Option<TickRoots>,
    tally: Tally,
    players: &'a BTreeMap<String, Player>,
}

fn print_summary(summary: Summary<'_>, args: &SimulateArgs) {
    let world = summary.world;
    let state_root = world.state_root();
    // With zero ticks the roots are genesis's: no inputs, and the state after ea_genesis.
    let empty = everarcade_protocol::list_root(&[]);
    let roots = summary.last.unwrap_or(TickRoots {
        tick: 0,
        input_root: empty,
        receipt_root: empty,
        state_root,
        continuity_root: world.continuity_root(),
    });
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
            "genesis_root": summary.genesis_root.to_hex(),
            "tick": roots.tick,
            "state_root": roots.state_root.to_hex(),
            "input_root": roots.input_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "players": players,
            "receipts": receipts,
            "inputs": summary.tally.inputs,
            "refused": summary.tally.refused,
            "state_keys": world.state().len(),
            "verified": args.verify,
        });
        println!("{object}");
        return;
    }
    println!("world            {}", world.id());
    println!("package root     {}", world.compiled().package.root);
    println!("genesis C(0)     {}", summary.genesis_root);
    println!("tick             {}", roots.tick);
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
    if args.verify {
        println!(
            "verified         replayed {} ticks in a fresh world: every root matches",
            roots.tick
        );
    }
    println!(
        "note             simulate runs in memory; nothing was written under {}",
        args.world.runtime_root.display()
    );
}

fn dump_state(world: &World) {
    for (key, value) in world.state().iter() {
        println!(
            "{}",
            serde_json::json!({"key": hex::encode(key), "value": hex::encode(value)})
        );
    }
}
