//! `package check <pkg> [--json] [--ticks N --bots N]`: is this package
//! ready to be a world?
//!
//! It loads the package (every manifest and module defect has its code, as
//! `Package::load` reports it), compiles it, then plays a short bot match in
//! memory (nothing is written) and measures what the game needs against
//! each of the manifest's nine limits: fuel per input and per tick (max and
//! mean), memory, inputs per tick, payload, key, value and event sizes,
//! events per input. For each it prints the headroom in percent and a
//! suggested limit.
//!
//! The match runs with the limits that only ever stop a call (fuel, key,
//! value and event sizes, event count, memory) lifted, so a limit the game
//! outgrows is measured rather than hit: fuel up to
//! [`MEASURE_FUEL_FACTOR`] times the manifest's, the others to the runtime's
//! ceilings. `inputs_per_tick` and `payload_bytes` stay as the manifest says,
//! because they shape what the bots send.
//!
//! Exit 0 when everything fits, 6 (package) when the package is invalid or a
//! limit is exceeded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use everarcade_engine::{CallTrace, Engine, GenesisOutput, TickOutput, World};
use everarcade_package::{Package, memory_maximum_bytes};
use everarcade_protocol::profile::LIMITS_MAX;
use everarcade_protocol::{
    Envelope, Limits, Outcome, Receipt, ReceiptKind, WorldId, test_signing_key,
};
use serde_json::json;

use crate::exit::{Failure, PACKAGE, USAGE};
use crate::simulate::{BOTS_MAX, bot_name};

/// Ticks of the measuring match unless `--ticks` says otherwise.
pub const CHECK_TICKS_DEFAULT: u64 = 200;
/// The most ticks `package check` plays.
pub const CHECK_TICKS_MAX: u64 = 100_000;
/// Bots of the measuring match unless `--bots` says otherwise.
pub const CHECK_BOTS_DEFAULT: u32 = 16;
/// How many times the manifest's fuel the measuring match grants a call, so
/// a call that needs more than the manifest allows is measured, not cut off.
pub const MEASURE_FUEL_FACTOR: u64 = 16;
/// A suggested limit is the measured figure times this, rounded up.
pub const SUGGEST_FACTOR: u64 = 2;
/// Significant decimal digits a suggested limit is rounded up to.
pub const SUGGEST_DIGITS: u32 = 2;
/// The world id the in-memory match runs under.
const CHECK_WORLD: &str = "package-check";

/// `package …`.
#[derive(Args)]
pub struct PackageArgs {
    #[command(subcommand)]
    command: PackageCommand,
}

#[derive(Subcommand)]
enum PackageCommand {
    /// Validate, compile, play a short bot match in memory and measure it against the manifest's limits.
    Check(CheckArgs),
}

/// Options of `package check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The world package directory (world.toml + world.wasm).
    package_path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Ticks of the measuring match.
    #[arg(long, default_value_t = CHECK_TICKS_DEFAULT)]
    ticks: u64,
    /// Bot players driven by the package's ea_bot.
    #[arg(long, default_value_t = CHECK_BOTS_DEFAULT)]
    bots: u32,
    /// Seed of the bots' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `package …`.
pub fn run(args: PackageArgs) -> Result<(), Failure> {
    match args.command {
        PackageCommand::Check(args) => check(args),
    }
}

/// A defect that makes the package unusable, with its stable code.
struct Defect {
    code: &'static str,
    message: String,
}

fn check(args: CheckArgs) -> Result<(), Failure> {
    if args.ticks == 0 || args.ticks > CHECK_TICKS_MAX {
        let message = format!("--ticks is 1..={CHECK_TICKS_MAX}");
        return Err(Failure::new(USAGE, "too_many_ticks", message));
    }
    if args.bots > BOTS_MAX {
        let message = format!("--bots is at most {BOTS_MAX}");
        return Err(Failure::new(USAGE, "too_many_bots", message));
    }
    let package = match Package::load(&args.package_path) {
        Ok(package) => package,
        Err(error) => {
            let defect = Defect {
                code: error.code(),
                message: error.to_string(),
            };
            return report_defect(&args, None, defect);
        }
    };
    let measured = match measure(&package, &args) {
        Ok(measured) => measured,
        Err(defect) => return report_defect(&args, Some(&package), defect),
    };
    let rows = rows(&package, &measured);
    print_report(&args, &package, &measured, &rows);
    let exceeded: Vec<&str> = rows
        .iter()
        .filter(|row| !row.fits)
        .map(|r| r.name)
        .collect();
    if exceeded.is_empty() {
        return Ok(());
    }
    let message = format!(
        "the game needs more than the manifest allows: {}; raise them in world.toml (see the suggested column)",
        rows.iter()
            .filter(|row| !row.fits)
            .map(|row| format!(
                "{} (measured {}, limit {})",
                row.name, row.measured, row.limit
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Err(Failure::new(PACKAGE, "limit_exceeded", message))
}

fn report_defect(
    args: &CheckArgs,
    package: Option<&Package>,
    defect: Defect,
) -> Result<(), Failure> {
    if args.json {
        let object = json!({
            "package": package.map(package_json),
            "ok": false,
            "defects": [{"code": defect.code, "message": defect.message}],
            "limits": [],
            "exceeded": [],
        });
        println!("{object}");
    }
    Err(Failure::new(PACKAGE, defect.code, defect.message))
}

/// What the measuring match saw. Fuel figures are per call.
#[derive(Default)]
struct Measured {
    ticks: u64,
    fuel_input: Stat,
    fuel_tick: Stat,
    fuel_genesis: Option<u64>,
    memory_bytes: u64,
    memory_declared_bytes: u64,
    key_bytes: u64,
    value_bytes: u64,
    events_per_input: Stat,
    event_bytes: u64,
    inputs_per_tick: u64,
    payload_bytes: u64,
    outcomes: BTreeMap<&'static str, u64>,
    refused: BTreeMap<&'static str, u64>,
    bot_inputs: u64,
    out_of_fuel_inputs: u64,
    out_of_fuel_hooks: u64,
    log_lines: u64,
}

/// A maximum and a mean.
#[derive(Default)]
struct Stat {
    max: u64,
    sum: u128,
    count: u64,
}

impl Stat {
    fn add(&mut self, value: u64) {
        self.max = self.max.max(value);
        self.sum += u128::from(value);
        self.count += 1;
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

impl Measured {
    fn call(&mut self, trace: &CallTrace) {
        self.memory_bytes = self.memory_bytes.max(trace.memory_bytes);
        self.key_bytes = self.key_bytes.max(trace.key_bytes_max.into());
        self.value_bytes = self.value_bytes.max(trace.value_bytes_max.into());
    }

    fn genesis(&mut self, output: &GenesisOutput) {
        if let (Some(receipt), Some(trace)) = (&output.receipt, &output.trace) {
            self.fuel_genesis = Some(receipt.fuel_used);
            self.call(trace);
        }
        self.log_lines += output.logs.len() as u64;
    }

    fn tick(&mut self, output: &TickOutput) {
        self.ticks += 1;
        self.log_lines += output.logs.len() as u64;
        let mut inputs = 0;
        for (receipt, trace) in output.receipts.iter().zip(&output.calls) {
            self.receipt(receipt);
            self.call(trace);
            inputs += u64::from(receipt.kind == ReceiptKind::Input);
        }
        self.inputs_per_tick = self.inputs_per_tick.max(inputs);
        for event in output.events.iter().flatten() {
            self.event_bytes = self.event_bytes.max(event.len() as u64);
        }
    }

    fn receipt(&mut self, receipt: &Receipt) {
        *self.outcomes.entry(receipt.outcome.name()).or_default() += 1;
        let out_of_fuel = receipt.outcome == Outcome::OutOfFuel;
        // `events_per_input` binds every call, hooks included.
        self.events_per_input.add(receipt.event_count.into());
        if receipt.kind == ReceiptKind::Input {
            self.fuel_input.add(receipt.fuel_used);
            self.out_of_fuel_inputs += u64::from(out_of_fuel);
        } else {
            self.fuel_tick.add(receipt.fuel_used);
            self.out_of_fuel_hooks += u64::from(out_of_fuel);
        }
    }
}

/// The package with the limits that only stop calls lifted (see the module doc).
fn measuring_package(package: &Package) -> Package {
    let limits = package.manifest.limits;
    let lifted = Limits {
        fuel_per_input: limits
            .fuel_per_input
            .saturating_mul(MEASURE_FUEL_FACTOR)
            .min(LIMITS_MAX.fuel_per_input),
        fuel_per_tick: limits
            .fuel_per_tick
            .saturating_mul(MEASURE_FUEL_FACTOR)
            .min(LIMITS_MAX.fuel_per_tick),
        inputs_per_tick: limits.inputs_per_tick,
        payload_bytes: limits.payload_bytes,
        ..LIMITS_MAX
    };
    let mut measuring = package.clone();
    measuring.manifest.limits = lifted;
    measuring
}

/// Compiles the package and plays the match in memory.
fn measure(package: &Package, args: &CheckArgs) -> Result<Measured, Defect> {
    let engine_defect = |error: everarcade_engine::EngineError| Defect {
        code: error.code(),
        message: error.to_string(),
    };
    let engine = Engine::new().map_err(engine_defect)?;
    // One engine serves only this package, so its compile cache (keyed by
    // the package root) never hands out the manifest's limits instead.
    let compiled = engine
        .compile(&measuring_package(package))
        .map_err(engine_defect)?;
    let id = WorldId::new(CHECK_WORLD).expect("a valid world id");
    let (mut world, genesis) =
        World::genesis(&engine, id.clone(), Arc::clone(&compiled)).map_err(engine_defect)?;
    let mut measured = Measured {
        memory_declared_bytes: memory_maximum_bytes(&package.wasm).unwrap_or(0),
        ..Measured::default()
    };
    measured.genesis(&genesis);
    let keys: Vec<_> = (0..args.bots)
        .map(|index| test_signing_key(&bot_name(index)))
        .collect();
    let public: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let mut nonce = 1;
    for _ in 0..args.ticks {
        let payloads = world
            .bot_payloads(&engine, &public, args.seed)
            .map_err(engine_defect)?;
        let mut admitted = Vec::new();
        for (key, payload) in keys.iter().zip(payloads) {
            let Some(payload) = payload else { continue };
            measured.bot_inputs += 1;
            measured.payload_bytes = measured.payload_bytes.max(payload.len() as u64);
            if admitted.len() >= world.limits().inputs_per_tick as usize {
                *measured.refused.entry("tick_full").or_default() += 1;
                continue;
            }
            // Every bot sends at most once a tick, so one nonce serves all.
            let envelope = Envelope::sign(&id, key, nonce, payload);
            match world.admit(&envelope) {
                Ok(()) => admitted.push(envelope),
                Err(error) => *measured.refused.entry(error.code()).or_default() += 1,
            }
        }
        nonce += 1;
        let output = world
            .execute_tick(&engine, &admitted)
            .map_err(engine_defect)?;
        measured.tick(&output);
    }
    Ok(measured)
}

/// One limit: what the match needed against what the manifest allows.
struct Row {
    name: &'static str,
    measured: u64,
    mean: Option<f64>,
    limit: u64,
    suggested: u64,
    fits: bool,
    note: Option<String>,
}

impl Row {
    /// `(limit - measured) / limit` in percent; negative when over.
    fn headroom_percent(&self) -> f64 {
        (self.limit as f64 - self.measured as f64) * 100.0 / self.limit as f64
    }
}

/// `value × SUGGEST_FACTOR` rounded up to [`SUGGEST_DIGITS`] significant
/// digits, at least 1 and at least `value`, at most `ceiling` (unless
/// `value` itself is above it).
fn suggest(value: u64, ceiling: u64) -> u64 {
    let doubled = value.saturating_mul(SUGGEST_FACTOR).max(1);
    let mut unit = 1u64;
    while doubled / unit >= 10u64.pow(SUGGEST_DIGITS) {
        unit = unit.saturating_mul(10);
    }
    let rounded = doubled.div_ceil(unit).saturating_mul(unit);
    rounded.min(ceiling).max(value)
}

fn rows(package: &Package, measured: &Measured) -> Vec<Row> {
    let limits = package.manifest.limits;
    let max = LIMITS_MAX;
    let fuel_tick_max = measured
        .fuel_tick
        .max
        .max(measured.fuel_genesis.unwrap_or(0));
    let mut rows = vec![
        fuel_row(
            "fuel_per_input",
            &measured.fuel_input,
            measured.fuel_input.max,
            limits.fuel_per_input,
            max.fuel_per_input,
            measured.out_of_fuel_inputs,
        ),
        fuel_row(
            "fuel_per_tick",
            &measured.fuel_tick,
            fuel_tick_max,
            limits.fuel_per_tick,
            max.fuel_per_tick,
            measured.out_of_fuel_hooks,
        ),
        memory_row(measured, limits.memory_bytes),
    ];
    let sized = [
        (
            "inputs_per_tick",
            measured.inputs_per_tick,
            None,
            u64::from(limits.inputs_per_tick),
            u64::from(max.inputs_per_tick),
        ),
        (
            "payload_bytes",
            measured.payload_bytes,
            None,
            u64::from(limits.payload_bytes),
            u64::from(max.payload_bytes),
        ),
        (
            "key_bytes",
            measured.key_bytes,
            None,
            u64::from(limits.key_bytes),
            u64::from(max.key_bytes),
        ),
        (
            "value_bytes",
            measured.value_bytes,
            None,
            u64::from(limits.value_bytes),
            u64::from(max.value_bytes),
        ),
        (
            "events_per_input",
            measured.events_per_input.max,
            measured.events_per_input.mean(),
            u64::from(limits.events_per_input),
            u64::from(max.events_per_input),
        ),
        (
            "event_bytes",
            measured.event_bytes,
            None,
            u64::from(limits.event_bytes),
            u64::from(max.event_bytes),
        ),
    ];
    for (name, value, mean, limit, ceiling) in sized {
        rows.push(Row {
            name,
            measured: value,
            mean,
            limit,
            suggested: suggest(value, ceiling),
            fits: value <= limit,
            note: None,
        });
    }
    let refused_full = measured.refused.get("tick_full").copied().unwrap_or(0);
    for row in &mut rows {
        if row.name == "inputs_per_tick" && refused_full > 0 {
            row.fits = false;
            row.note = Some(format!("{refused_full} bot inputs did not fit in a tick"));
        }
        if row.name == "inputs_per_tick" || row.name == "payload_bytes" {
            row.note.get_or_insert_with(|| {
                "measured from the bots; size it for your real players".to_string()
            });
        }
    }
    rows
}

fn fuel_row(
    name: &'static str,
    stat: &Stat,
    max: u64,
    limit: u64,
    ceiling: u64,
    out_of_fuel: u64,
) -> Row {
    // A call that uses the whole budget runs out of fuel, so fuel fits only below the limit.
    let note = (out_of_fuel > 0).then(|| {
        format!(
            "{out_of_fuel} calls ran out of fuel even at {MEASURE_FUEL_FACTOR}x the limit; the need is higher"
        )
    });
    Row {
        name,
        measured: max,
        mean: stat.mean(),
        limit,
        suggested: suggest(max, ceiling),
        fits: max < limit && out_of_fuel == 0,
        note,
    }
}

/// Memory: what the calls used, and the module's declared maximum, which
/// is what `memory_bytes` bounds (a smaller limit refuses the package).
fn memory_row(measured: &Measured, limit: u64) -> Row {
    let used = measured.memory_bytes;
    let declared = measured.memory_declared_bytes;
    Row {
        name: "memory_bytes",
        measured: used,
        mean: None,
        limit,
        suggested: declared.max(used),
        fits: used <= limit && declared <= limit,
        note: Some(format!(
            "{} of {} pages used; the module declares {} pages (suggested: the declared maximum)",
            used.div_ceil(everarcade_package::WASM_PAGE_BYTES),
            limit / everarcade_package::WASM_PAGE_BYTES,
            declared / everarcade_package::WASM_PAGE_BYTES
        )),
    }
}

fn package_json(package: &Package) -> serde_json::Value {
    json!({
        "name": package.manifest.name,
        "version": package.manifest.version.to_string(),
        "root": package.root.to_hex(),
        "dir": package.dir.display().to_string(),
    })
}

fn print_report(args: &CheckArgs, package: &Package, measured: &Measured, rows: &[Row]) {
    let exceeded: Vec<&str> = rows
        .iter()
        .filter(|row| !row.fits)
        .map(|r| r.name)
        .collect();
    if args.json {
        let limits: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                json!({
                    "name": row.name,
                    "measured": row.measured,
                    "mean": row.mean,
                    "limit": row.limit,
                    "headroom_percent": row.headroom_percent(),
                    "suggested": row.suggested,
                    "fits": row.fits,
                    "note": row.note,
                })
            })
            .collect();
        let object = json!({
            "package": package_json(package),
            "ok": exceeded.is_empty(),
            "defects": [],
            "match": {
                "ticks": measured.ticks,
                "bots": args.bots,
                "seed": args.seed,
                "bot_inputs": measured.bot_inputs,
                "receipts": measured.outcomes,
                "refused": measured.refused,
                "genesis_fuel": measured.fuel_genesis,
                "memory_declared_bytes": measured.memory_declared_bytes,
                "log_lines": measured.log_lines,
                "persisted": false,
            },
            "limits": limits,
            "exceeded": exceeded,
        });
        println!("{object}");
        return;
    }
    print_text(args, package, measured, rows, &exceeded);
}

fn print_text(
    args: &CheckArgs,
    package: &Package,
    measured: &Measured,
    rows: &[Row],
    exceeded: &[&str],
) {
    let manifest = &package.manifest;
    println!(
        "package   {} {} (root {})",
        manifest.name, manifest.version, package.root
    );
    println!("valid     manifest and module load; the module compiles");
    println!(
        "match     {} ticks, {} bots, seed {}, in memory (nothing written): {} bot inputs, receipts {:?}, refused {:?}",
        measured.ticks,
        args.bots,
        args.seed,
        measured.bot_inputs,
        measured.outcomes,
        measured.refused
    );
    println!(
        "\n{:<17} {:>14} {:>14} {:>14} {:>9} {:>14}",
        "limit", "measured max", "mean", "limit", "headroom", "suggested"
    );
    for row in rows {
        let mean = row
            .mean
            .map_or("-".to_string(), |mean| format!("{mean:.0}"));
        let flag = if row.fits { "" } else { "  EXCEEDED" };
        println!(
            "{:<17} {:>14} {:>14} {:>14} {:>8.1}% {:>14}{flag}",
            row.name,
            row.measured,
            mean,
            row.limit,
            row.headroom_percent(),
            row.suggested
        );
        if let Some(note) = &row.note {
            println!("{:<17} {note}", "");
        }
    }
    println!();
    if exceeded.is_empty() {
        println!("result    every limit fits");
    } else {
        println!("result    exceeded: {}", exceeded.join(", "));
    }
}
