//! Proof bundles (`export-bundle`, `verify-bundle`), player proofs (`prove`,
//! `verify-proof`) and `archive-recover`, over `everarcade-audit`
//! (docs/BUNDLES.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use everarcade_audit::archive::{RebuildRequest, open_source, rebuild};
use everarcade_audit::bundle::BUNDLE_BYTES_MAX;
use everarcade_audit::export::{ExportRequest, StartSource, export as export_bundle};
use everarcade_audit::proof::{PROOF_BYTES_MAX, ProveRequest, prove as make_proof};
use everarcade_audit::{Claim, Class, PlayerProof, ProofQuery, VerifyOptions, verify_bundle};
use everarcade_engine::Engine;
use everarcade_protocol::{Hash, PublicKey, Tick};
use everarcade_store::DiskStorage;
use everarcade_store::keys::OperatorKeys;

use crate::WorldArgs;
use crate::exit::{
    BAD_SIGNATURE, DIVERGENCE, FAILURE, Failure, INTEGRITY, MALFORMED, PACKAGE, USAGE,
};
use crate::progress;
use crate::target::{DurabilityArgs, Target, store_failure};

/// `export-bundle` arguments.
#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// The window's first tick T1: the bundle holds the state at T1 (0: genesis).
    #[arg(long)]
    from: Tick,
    /// The window's last tick T2.
    #[arg(long)]
    to: Tick,
    /// The bundle file to write (refused if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `verify-bundle` arguments.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The bundle file.
    file: PathBuf,
    /// An operator public key (hex) the signer must descend from; repeatable.
    /// Without one, any key the bundle's own history vouches for is accepted
    /// and reported as not trusted.
    #[arg(long = "trusted-key", value_name = "HEX")]
    trusted_keys: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `prove` arguments.
#[derive(clap::Args)]
pub struct ProveArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Prove the receipt of the input with this envelope hash (hex).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["tick", "key", "head"])]
    receipt: Option<String>,
    /// Prove receipt --index of this tick.
    #[arg(long, requires = "index", conflicts_with_all = ["key", "head"])]
    tick: Option<Tick>,
    /// The receipt's position in its tick (inputs in order, then the tick hook).
    #[arg(long, requires = "tick")]
    index: Option<u32>,
    /// Prove this key's value (or absence) at the head (hex).
    #[arg(long, value_name = "HEX", conflicts_with = "head")]
    key: Option<String>,
    /// Only print the head commitment (the accumulator root a player trusts).
    #[arg(long)]
    head: bool,
    /// Write the proof to this file instead of printing it as hex.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `verify-proof` arguments.
#[derive(clap::Args)]
pub struct VerifyProofArgs {
    /// The proof file (binary, or its hex as `prove` prints it).
    file: PathBuf,
    /// The head commitment the player trusts (accumulator root, hex).
    #[arg(long, value_name = "HEX")]
    head_root: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `archive-recover` arguments.
#[derive(clap::Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Archived material: bundle files, and directories holding a journal
    /// (backups, copies of world directories); in any order.
    #[arg(long, required = true, num_args = 1.., value_name = "BACKUP_DIR_OR_BUNDLE")]
    from: Vec<PathBuf>,
    /// An operator public key (hex) every bundle's signer must descend from; repeatable.
    #[arg(long = "trusted-key", value_name = "HEX")]
    trusted_keys: Vec<String>,
    #[command(flatten)]
    durability: DurabilityArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The exit status of an audit error class.
pub(crate) fn exit_of(class: Class) -> u8 {
    match class {
        Class::Operational => FAILURE,
        Class::Usage => USAGE,
        Class::Integrity => INTEGRITY,
        Class::Divergence => DIVERGENCE,
        Class::Package => PACKAGE,
        Class::Malformed => MALFORMED,
        Class::BadSignature => BAD_SIGNATURE,
    }
}

fn parse_hash(flag: &str, text: &str) -> Result<Hash, Failure> {
    Hash::from_hex(text).ok_or_else(|| {
        Failure::new(
            USAGE,
            "invalid_hex",
            format!("{flag} takes 64 hex digits, not {text:?}"),
        )
    })
}

fn parse_keys(texts: &[String]) -> Result<Vec<PublicKey>, Failure> {
    texts
        .iter()
        .map(|text| parse_hash("--trusted-key", text).map(|hash| hash.0))
        .collect()
}

fn engine() -> Result<Engine, Failure> {
    Engine::new().map_err(|e| Failure::new(FAILURE, e.code(), e.to_string()))
}

/// Writes `bytes` to a new file `path` (temporary file, fsync, rename).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if path.exists() {
        return Err(Failure::new(
            USAGE,
            "out_exists",
            format!("{} exists; choose another path", path.display()),
        ));
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let io = |e: std::io::Error| {
        Failure::new(
            FAILURE,
            "io",
            format!("cannot write {}: {e}", path.display()),
        )
    };
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// The world's operator keys, which sign the bundle. Export is read-only on
/// the world, so a world without a key is refused rather than given one.
fn operator_keys(world: &WorldArgs, target: &Target) -> Result<OperatorKeys, Failure> {
    let loaded = OperatorKeys::load(&DiskStorage, &target.dir).map_err(store_failure)?;
    loaded.ok_or_else(|| {
        let message = format!(
            "world {} has no operator key to sign the bundle with, and export-bundle writes nothing to the world; \
             create one with `everarcade-runtime keys rotate {} {} {}` (offline), \
             or start the node once (it creates one), then export again",
            target.id,
            world.runtime_root.display(),
            world.world_id,
            target.package.dir.display()
        );
        Failure::new(FAILURE, "operator_key_missing", message)
    })
}

/// Runs `export-bundle`.
pub fn export(args: ExportArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let mut keys = Some(operator_keys(&args.world, &target)?);
    let (engine, compiled) = target.compile()?;
    let mut operator =
        |_head: Tick| Ok(keys.take().expect("export asks for the operator keys once"));
    let request = ExportRequest {
        storage: &DiskStorage,
        dir: &target.dir,
        id: &target.id,
        engine: &engine,
        compiled,
        from_tick: args.from,
        to_tick: args.to,
        runtime_version: env!("CARGO_PKG_VERSION"),
    };
    let exported = export_bundle(&request, &mut operator)
        .map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
    write_new(&args.out, &exported.bytes)?;
    let start = match exported.start {
        StartSource::Genesis => "genesis".to_string(),
        StartSource::Checkpoint => "checkpoint".to_string(),
        StartSource::Replayed { from } => format!("replayed from tick {from}"),
    };
    let last = exported.last;
    if args.json {
        let object = serde_json::json!({
            "out": args.out.display().to_string(),
            "bytes": exported.bytes.len(),
            "world": target.id.as_str(),
            "from": args.from,
            "to": args.to,
            "head_tick": exported.head_tick,
            "ticks": args.to - args.from,
            "inputs": exported.inputs,
            "start": start,
            "digest": exported.digest.to_hex(),
            "operator_key": hex::encode(exported.signer),
            "state_root": last.state_root.to_hex(),
            "continuity_root": last.continuity_root.to_hex(),
            "accumulator_root": exported.accumulator_root.to_hex(),
        });
        println!("{object}");
        return Ok(());
    }
    println!(
        "wrote {} ({} bytes): world {} ticks {}..={} ({} ticks, {} inputs), head {}",
        args.out.display(),
        exported.bytes.len(),
        target.id,
        args.from,
        args.to,
        args.to - args.from,
        exported.inputs,
        exported.head_tick
    );
    println!("state at tick {}: {start}", args.from);
    println!(
        "tick {}: C(t) {}  accumulator {}",
        last.tick, last.continuity_root, exported.accumulator_root
    );
    println!(
        "signed by operator key {} (digest {})",
        hex::encode(exported.signer),
        exported.digest
    );
    Ok(())
}

/// Reads a file of at most `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64, exit: u8) -> Result<Vec<u8>, Failure> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| Failure::new(USAGE, "file_unreadable", format!("{}: {e}", path.display())))?;
    if metadata.len() > max {
        return Err(Failure::new(
            exit,
            "file_too_large",
            format!(
                "{} is {} bytes, over the {max}-byte limit",
                path.display(),
                metadata.len()
            ),
        ));
    }
    std::fs::read(path)
        .map_err(|e| Failure::new(USAGE, "file_unreadable", format!("{}: {e}", path.display())))
}

/// Runs `verify-bundle`.
pub fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let trusted_keys = parse_keys(&args.trusted_keys)?;
    let bytes = read_bounded(&args.file, BUNDLE_BYTES_MAX, MALFORMED)?;
    let engine = engine()?;
    // The window, for the bar's total; a bundle that does not decode is
    // refused by verify_bundle below, with its code.
    let (from, to) = everarcade_audit::bundle::decode(&bytes).map_or((0, 0), |sealed| {
        (sealed.bundle.from_tick, sealed.bundle.to_tick)
    });
    let visible = progress::visible(args.json);
    let bar = progress::counter(visible, "verify-bundle", to.saturating_sub(from), "ticks");
    let began = Instant::now();
    let mut progress = |tick: Tick| {
        bar.set_position(tick.saturating_sub(from));
    };
    let options = VerifyOptions {
        trusted_keys,
        progress: Some(&mut progress),
    };
    let report = verify_bundle(&bytes, &engine, options);
    bar.finish_and_clear();
    let report = report.map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
    let seconds = began.elapsed().as_secs_f64();
    let ticks = report.to_tick - report.from_tick;
    let ours = env!("CARGO_PKG_VERSION");
    if report.runtime_version != ours {
        eprintln!(
            "note: the bundle was exported by runtime {}, this is {ours}; fuel accounting belongs to the runtime version",
            report.runtime_version
        );
    }
    let last = report.last;
    if args.json {
        let object = serde_json::json!({
            "verified": true,
            "world": report.world.as_str(),
            "from": report.from_tick,
            "to": report.to_tick,
            "head_tick": report.head_tick,
            "ticks": ticks,
            "inputs": report.inputs,
            "start": report.start,
            "runtime_version": report.runtime_version,
            "protocol_version": report.protocol_version,
            "package_root": report.package_root.to_hex(),
            "genesis_root": report.genesis_root.to_hex(),
            "operator_key": hex::encode(report.signer),
            "operator_key_trusted": report.trusted,
            "digest": report.digest.to_hex(),
            "input_root": last.input_root.to_hex(),
            "receipt_root": last.receipt_root.to_hex(),
            "state_root": last.state_root.to_hex(),
            "continuity_root": last.continuity_root.to_hex(),
            "accumulator_root": report.accumulator_root.to_hex(),
            "seconds": seconds,
            "ticks_per_second": ticks as f64 / seconds.max(1e-9),
        });
        println!("{object}");
        return Ok(());
    }
    println!(
        "PASS  structure  {} bytes, checksum and every field",
        report.bytes
    );
    println!(
        "PASS  signature  operator key {} ({})",
        hex::encode(report.signer),
        if report.trusted {
            "descends from a trusted key"
        } else {
            "vouched for by the bundle's own key history; not pinned with --trusted-key"
        }
    );
    println!(
        "PASS  package    {} (world {}, C(0) {})",
        report.package_root, report.world, report.genesis_root
    );
    println!(
        "PASS  replay     ticks {}..={} from {} ({ticks} ticks, {} inputs, {:.0} ticks/s): every input, receipt, state and continuity root",
        report.from_tick,
        report.to_tick,
        report.start,
        report.inputs,
        ticks as f64 / seconds.max(1e-9)
    );
    println!(
        "tick {}: state {}  C(t) {}",
        last.tick, last.state_root, last.continuity_root
    );
    println!(
        "accumulator root over ticks 0..={}: {}",
        last.tick, report.accumulator_root
    );
    Ok(())
}

fn query(args: &ProveArgs) -> Result<ProofQuery, Failure> {
    if let Some(text) = &args.receipt {
        return Ok(ProofQuery::Receipt(parse_hash("--receipt", text)?));
    }
    if let (Some(tick), Some(index)) = (args.tick, args.index) {
        return Ok(ProofQuery::TickReceipt { tick, index });
    }
    if let Some(text) = &args.key {
        let key = hex::decode(text).map_err(|_| {
            Failure::new(
                USAGE,
                "invalid_hex",
                format!("--key takes hex, not {text:?}"),
            )
        })?;
        if key.is_empty() || key.len() > 256 {
            return Err(Failure::new(
                USAGE,
                "invalid_key",
                "a state key is 1 to 256 bytes",
            ));
        }
        return Ok(ProofQuery::Key(key));
    }
    if args.head {
        return Ok(ProofQuery::Head);
    }
    Err(Failure::new(
        USAGE,
        "usage",
        "prove needs one of --receipt HEX, --tick T --index I, --key HEX or --head",
    ))
}

fn claim_json(proof: &PlayerProof) -> serde_json::Value {
    match &proof.claim {
        Claim::Receipt {
            index,
            count,
            receipt,
            ..
        } => serde_json::json!({
            "kind": "receipt",
            "tick": proof.roots.tick,
            "index": index,
            "count": count,
            "receipt": {
                "kind": format!("{:?}", receipt.kind),
                "subject": receipt.subject.to_hex(),
                "outcome": receipt.outcome.name(),
                "code": receipt.outcome.code(),
                "fuel_used": receipt.fuel_used,
                "events_hash": receipt.events_hash.to_hex(),
                "event_count": receipt.event_count,
            },
        }),
        Claim::State { key, value, .. } => serde_json::json!({
            "kind": "state",
            "tick": proof.roots.tick,
            "key": hex::encode(key),
            "value": value.as_ref().map(hex::encode),
            "present": value.is_some(),
        }),
    }
}

fn claim_text(proof: &PlayerProof) -> String {
    match &proof.claim {
        Claim::Receipt {
            index,
            count,
            receipt,
            ..
        } => format!(
            "receipt {index} of {count} at tick {}: {:?} {} {}, fuel {}",
            proof.roots.tick,
            receipt.kind,
            receipt.subject,
            receipt.outcome.name(),
            receipt.fuel_used
        ),
        Claim::State { key, value, .. } => match value {
            Some(value) => format!(
                "key {} holds {} at tick {}",
                hex::encode(key),
                hex::encode(value),
                proof.roots.tick
            ),
            None => format!(
                "key {} is absent at tick {}",
                hex::encode(key),
                proof.roots.tick
            ),
        },
    }
}

/// Runs `prove`.
pub fn prove(args: ProveArgs) -> Result<(), Failure> {
    let query = query(&args)?;
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let (engine, compiled) = target.compile()?;
    let request = ProveRequest {
        storage: &DiskStorage,
        dir: &target.dir,
        id: &target.id,
        engine: &engine,
        compiled,
    };
    let proven = make_proof(&request, &query)
        .map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
    let bytes = proven.proof.as_ref().map(PlayerProof::encode);
    if let (Some(out), Some(bytes)) = (&args.out, &bytes) {
        write_new(out, bytes)?;
    }
    let head = proven.head;
    if args.json {
        let mut object = serde_json::json!({
            "world": target.id.as_str(),
            "head_tick": head.tick,
            "head_root": proven.head_root.to_hex(),
            "head_continuity_root": head.continuity_root.to_hex(),
            "head_state_root": head.state_root.to_hex(),
        });
        if let (Some(proof), Some(bytes)) = (&proven.proof, &bytes) {
            object["claim"] = claim_json(proof);
            object["proof_bytes"] = bytes.len().into();
            match &args.out {
                Some(out) => object["out"] = out.display().to_string().into(),
                None => object["proof"] = hex::encode(bytes).into(),
            }
        }
        println!("{object}");
        return Ok(());
    }
    println!(
        "head tick {}: accumulator root {}  C(t) {}",
        head.tick, proven.head_root, head.continuity_root
    );
    if let (Some(proof), Some(bytes)) = (&proven.proof, &bytes) {
        println!("{} ({} bytes)", claim_text(proof), bytes.len());
        match &args.out {
            Some(out) => println!("wrote {}", out.display()),
            None => println!("{}", hex::encode(bytes)),
        }
    }
    Ok(())
}

/// Runs `verify-proof`.
pub fn verify_proof(args: VerifyProofArgs) -> Result<(), Failure> {
    let head_root = parse_hash("--head-root", &args.head_root)?;
    let raw = read_bounded(&args.file, 2 * PROOF_BYTES_MAX as u64 + 2, MALFORMED)?;
    // Binary, or the hex `prove` prints (alone or on the last line of its text).
    let magic = &everarcade_audit::proof::PROOF_MAGIC;
    let bytes = if raw.starts_with(magic) {
        raw
    } else {
        String::from_utf8_lossy(&raw)
            .lines()
            .filter_map(|line| hex::decode(line.trim()).ok())
            .find(|bytes| bytes.starts_with(magic))
            .ok_or_else(|| {
                Failure::new(
                    MALFORMED,
                    "malformed_proof",
                    format!("{} holds neither a proof nor its hex", args.file.display()),
                )
            })?
    };
    let proof = PlayerProof::decode(&bytes)
        .map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
    let head = proof
        .verify(&head_root)
        .map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
    if args.json {
        let mut object = claim_json(&proof);
        object["verified"] = true.into();
        object["head_tick"] = head.into();
        object["head_root"] = head_root.to_hex().into();
        println!("{object}");
        return Ok(());
    }
    println!("PASS  {}", claim_text(&proof));
    println!("      proven against head tick {head}, accumulator root {head_root}");
    Ok(())
}

/// Runs `archive-recover`.
pub fn archive_recover(args: ArchiveArgs) -> Result<(), Failure> {
    let trusted = parse_keys(&args.trusted_keys)?;
    let target = Target::resolve(&args.world)?;
    let (engine, compiled) = target.compile()?;
    let mut sources = Vec::with_capacity(args.from.len());
    for path in &args.from {
        let source = open_source(path, &trusted)
            .map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
        sources.push(source);
    }
    let request = RebuildRequest {
        runtime_root: &args.world.runtime_root,
        id: &target.id,
        package: &target.package,
        engine,
        compiled,
        config: args.durability.config(),
    };
    let began = Instant::now();
    let bar = progress::open_ended(progress::visible(args.json), "archive-recover", "tick");
    let mut progress = |tick: Tick| bar.set_position(tick);
    let rebuilt = rebuild(&request, sources, &mut progress);
    bar.finish_and_clear();
    let rebuilt = rebuilt.map_err(|e| Failure::new(exit_of(e.class()), e.code(), e.to_string()))?;
    let roots = rebuilt.roots;
    if args.json {
        let sources: Vec<serde_json::Value> = rebuilt
            .contributions
            .iter()
            .map(|(path, from, to)| {
                serde_json::json!({"path": path.display().to_string(), "from": from, "to": to})
            })
            .collect();
        let redundant: Vec<String> = rebuilt
            .redundant
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "dir": rebuilt.dir.display().to_string(),
            "head_tick": roots.tick,
            "ticks": rebuilt.ticks,
            "inputs": rebuilt.inputs,
            "sources": sources,
            "redundant": redundant,
            "input_root": roots.input_root.to_hex(),
            "receipt_root": roots.receipt_root.to_hex(),
            "state_root": roots.state_root.to_hex(),
            "continuity_root": roots.continuity_root.to_hex(),
            "seconds": began.elapsed().as_secs_f64(),
        });
        println!("{object}");
        return Ok(());
    }
    for (path, from, to) in &rebuilt.contributions {
        println!("ticks {from}..={to} from {}", path.display());
    }
    for path in &rebuilt.redundant {
        println!(
            "skipped {} (chains, but its ticks are covered)",
            path.display()
        );
    }
    println!(
        "rebuilt world {} at {}: {} ticks, {} inputs replayed and verified",
        target.id,
        rebuilt.dir.display(),
        rebuilt.ticks,
        rebuilt.inputs
    );
    println!(
        "recovered on reopen: tick {}  state {}  C(t) {}",
        roots.tick, roots.state_root, roots.continuity_root
    );
    Ok(())
}
