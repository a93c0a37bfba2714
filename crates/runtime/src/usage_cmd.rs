//! `usage report` (a signed usage report built offline from the journal)
//! and `usage verify` (a report's signature against the world's key
//! history and, given the world, every number the journal proves).

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_protocol::WorldId;
use everarcade_store::keys::{OperatorKeys, read_history};
use everarcade_store::storage::write_atomic;
use everarcade_store::{DiskStorage, WorldDir};
use everarcade_usage::report::{FLAG_OFFLINE, FLAG_REBUILT, REPORT_BYTES_MAX};
use everarcade_usage::{
    CountError, Metadata, ProduceError, Producer, SignedReport, count_window, journal_head,
};

use crate::WorldArgs;
use crate::exit::{BAD_SIGNATURE, FAILURE, Failure, INTEGRITY, MALFORMED, USAGE};
use crate::target::{Target, store_failure};

/// `usage report` and `usage verify`.
#[derive(clap::Args)]
pub struct UsageArgs {
    #[command(subcommand)]
    command: UsageCommand,
}

#[derive(clap::Subcommand)]
enum UsageCommand {
    /// Build a signed usage report for ticks --from..=--to from the journal (no re-execution).
    Report(ReportArgs),
    /// Check a report's signature against the key history and, given the world, recompute its numbers.
    Verify(VerifyArgs),
}

/// Options of `usage report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// The first tick of the window [default: 1].
    #[arg(long, value_name = "TICK", default_value_t = 1)]
    from: u64,
    /// The last tick of the window [default: the journal's head].
    #[arg(long, value_name = "TICK")]
    to: Option<u64>,
    /// Write the signed report (its canonical bytes, 0600) to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `usage verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The report file.
    file: PathBuf,
    /// The runtime root of the world to recompute the numbers from (with --world).
    #[arg(long, value_name = "DIR", requires = "world")]
    root: Option<PathBuf>,
    /// The world id (with --root).
    #[arg(long, value_name = "WORLD", requires = "root")]
    world: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `usage`.
pub fn run(args: UsageArgs) -> Result<(), Failure> {
    match args.command {
        UsageCommand::Report(args) => report(args),
        UsageCommand::Verify(args) => verify(args),
    }
}

fn count_failure(error: CountError) -> Failure {
    match error {
        CountError::Store(error) => store_failure(error),
        CountError::EmptyWindow { .. } | CountError::BeyondHead { .. } => {
            Failure::new(USAGE, error.code(), error.to_string())
        }
        CountError::Lineage { .. } => Failure::new(INTEGRITY, error.code(), error.to_string()),
    }
}

fn produce_failure(error: ProduceError) -> Failure {
    match error {
        ProduceError::Count(error) => count_failure(error),
        ProduceError::Store(error) => store_failure(error),
        ProduceError::WrongWorld { .. } => Failure::new(INTEGRITY, error.code(), error.to_string()),
    }
}

fn report(args: ReportArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.world_ref().require_exists()?;
    let keys = OperatorKeys::load(&DiskStorage, &target.dir)
        .map_err(store_failure)?
        .ok_or_else(|| {
            Failure::new(
                USAGE,
                "no_operator_key",
                format!(
                    "world {} has no operator key yet to sign with; it gets one when its node first starts",
                    target.id
                ),
            )
        })?;
    let last = match args.to {
        Some(last) => last,
        None => journal_head(&DiskStorage, &target.dir.journal()).map_err(count_failure)?,
    };
    let producer = Producer::new(
        Arc::new(DiskStorage),
        target.dir.clone(),
        target.id.clone(),
        Arc::new(keys),
        (
            target.package.root,
            target.package.manifest.version.to_string(),
        ),
    );
    let signed = producer
        .build(args.from, last, FLAG_OFFLINE, Metadata::default())
        .map_err(produce_failure)?;
    if let Some(out) = &args.out {
        write_atomic(&DiskStorage, out, &signed.bytes).map_err(|error| {
            Failure::new(
                FAILURE,
                "io",
                format!("cannot write {}: {error}", out.display()),
            )
        })?;
    }
    if args.json {
        let mut object = signed.to_json();
        object["file"] = serde_json::json!(args.out.as_ref().map(|p| p.display().to_string()));
        println!("{object}");
    } else {
        print_report(&signed);
        if let Some(out) = &args.out {
            println!("written          {}", out.display());
        }
    }
    Ok(())
}

fn print_report(signed: &SignedReport) {
    let r = &signed.report;
    let c = &r.counted;
    println!("usage report for world {}", r.world);
    println!(
        "window           ticks {}..={} ({} ticks)",
        r.first_tick, r.last_tick, c.ticks
    );
    println!("start C(t-1)     {}", r.start_continuity_root);
    println!("end C(t)         {}", r.end_continuity_root);
    println!("inputs admitted  {}", c.inputs_admitted);
    println!(
        "input receipts   applied {} rejected {} trapped {} out_of_fuel {}",
        c.input_receipts.applied,
        c.input_receipts.rejected,
        c.input_receipts.trapped,
        c.input_receipts.out_of_fuel
    );
    println!(
        "hook receipts    applied {} rejected {} trapped {} out_of_fuel {}",
        c.hook_receipts.applied,
        c.hook_receipts.rejected,
        c.hook_receipts.trapped,
        c.hook_receipts.out_of_fuel
    );
    println!(
        "fuel             inputs {} hooks {}",
        c.fuel_inputs, c.fuel_hooks
    );
    println!("events           {}", c.events);
    println!("journal bytes    {}", c.journal_bytes);
    let m = &r.metadata;
    if r.flags & (FLAG_OFFLINE | FLAG_REBUILT) != 0 {
        println!("metadata         not observed (built from the journal alone)");
    } else {
        println!(
            "wall clock       {}..{} ms since the epoch",
            m.window_start_unix_ms, m.window_end_unix_ms
        );
        println!("refused          {:?}", m.refused);
        println!(
            "checkpoints      {} ({} bytes)",
            m.checkpoints_written, m.checkpoint_bytes
        );
    }
    println!(
        "package          {} ({})",
        m.package_root, m.package_version
    );
    println!("runtime          {}", m.runtime_version);
    println!("digest           {}", signed.digest);
    println!("signed by        {}", hex::encode(signed.public_key));
}

fn read_report(path: &PathBuf) -> Result<SignedReport, Failure> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| {
        Failure::new(
            USAGE,
            "unreadable_file",
            format!("{}: {error}", path.display()),
        )
    })?;
    let mut bytes = Vec::new();
    file.take(REPORT_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| {
            Failure::new(
                USAGE,
                "unreadable_file",
                format!("{}: {error}", path.display()),
            )
        })?;
    SignedReport::decode(&bytes).map_err(|error| {
        let exit = match &error {
            everarcade_usage::ReportError::Signature(_) => BAD_SIGNATURE,
            _ => MALFORMED,
        };
        Failure::new(exit, error.code(), format!("{}: {error}", path.display()))
    })
}

/// The first field whose value differs, and every differing field.
fn differences(
    report: &SignedReport,
    count: &everarcade_usage::WindowCount,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut check = |field: &str, said: String, found: String| {
        if said != found {
            out.push((field.to_string(), said, found));
        }
    };
    let r = &report.report;
    check("world", r.world.to_string(), count.world.to_string());
    check(
        "start_continuity_root",
        r.start_continuity_root.to_hex(),
        count.start_continuity_root.to_hex(),
    );
    check(
        "end_continuity_root",
        r.end_continuity_root.to_hex(),
        count.end_continuity_root.to_hex(),
    );
    let said = serde_json::to_value(&r.counted).expect("serializes");
    let found = serde_json::to_value(&count.counted).expect("serializes");
    flatten("counted", &said, &found, &mut check);
    out
}

fn flatten(
    prefix: &str,
    said: &serde_json::Value,
    found: &serde_json::Value,
    check: &mut impl FnMut(&str, String, String),
) {
    match (said, found) {
        (serde_json::Value::Object(said), serde_json::Value::Object(found)) => {
            for (key, value) in said {
                let other = found.get(key).cloned().unwrap_or(serde_json::Value::Null);
                flatten(&format!("{prefix}.{key}"), value, &other, check);
            }
        }
        _ => check(prefix, said.to_string(), found.to_string()),
    }
}

fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let signed = read_report(&args.file)?;
    let r = &signed.report;
    let mut object = serde_json::json!({
        "file": args.file.display().to_string(),
        "digest": signed.digest.to_hex(),
        "world": r.world.as_str(),
        "first_tick": r.first_tick,
        "last_tick": r.last_tick,
        "public_key": hex::encode(signed.public_key),
        "signature_valid": true,
    });
    let (Some(root), Some(world)) = (&args.root, &args.world) else {
        object["recomputed"] = serde_json::json!(false);
        if args.json {
            println!("{object}");
        } else {
            println!(
                "usage report {} (world {}, ticks {}..={}): the signature verifies under key {}",
                signed.digest,
                r.world,
                r.first_tick,
                r.last_tick,
                hex::encode(signed.public_key)
            );
            println!(
                "not checked: whether that key is the world's, and the numbers (give --root and --world)"
            );
        }
        return Ok(());
    };
    let id = WorldId::new(world)
        .map_err(|error| Failure::new(USAGE, "invalid_world_id", error.to_string()))?;
    if id != r.world {
        return Err(Failure::new(
            INTEGRITY,
            "usage_report_mismatch",
            format!("field world: the report is world {}'s, not {id}'s", r.world),
        )
        .with_details(object));
    }
    let dir = WorldDir::new(root, &id);
    let history = read_history(&DiskStorage, &dir)
        .map_err(store_failure)?
        .ok_or_else(|| {
            Failure::new(
                USAGE,
                "no_operator_key",
                format!(
                    "world {id} has no operator key history ({})",
                    dir.operator_keys().display()
                ),
            )
        })?;
    signed.check_history(&history).map_err(|error| {
        Failure::new(
            BAD_SIGNATURE,
            error.code(),
            format!("{error}: the report was not signed by this world's operator"),
        )
    })?;
    let count = count_window(&DiskStorage, &dir.journal(), r.first_tick, r.last_tick)
        .map_err(count_failure)?;
    let differing = differences(&signed, &count);
    if let Some((field, said, found)) = differing.first() {
        object["differences"] = serde_json::json!(
            differing
                .iter()
                .map(|(f, s, j)| serde_json::json!({"field": f, "report": s, "journal": j}))
                .collect::<Vec<_>>()
        );
        return Err(Failure::new(
            INTEGRITY,
            "usage_report_mismatch",
            format!(
                "field {field}: the report says {said}, the journal says {found}{}",
                match differing.len() {
                    1 => String::new(),
                    n => format!(" ({} more fields differ)", n - 1),
                }
            ),
        )
        .with_details(object));
    }
    object["recomputed"] = serde_json::json!(true);
    if args.json {
        println!("{object}");
    } else {
        println!(
            "usage report {} verified: signed by operator key {} of world {}, current at tick {}",
            signed.digest,
            hex::encode(signed.public_key),
            id,
            r.last_tick
        );
        println!(
            "recomputed from the journal: ticks {}..={}, both continuity roots, inputs, receipts, fuel, events, journal bytes",
            r.first_tick, r.last_tick
        );
        println!(
            "not recomputable (signed metadata): wall clock, admission refusals, checkpoints written, package and runtime versions"
        );
    }
    Ok(())
}
