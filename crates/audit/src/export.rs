//! `export-bundle`: a window `T1..=T2` of a world, read from its journal and
//! checkpoints, signed by the operator key. Read-only on the world: it takes
//! no lock, and reads the journal up to its durable end (the journal is
//! append-only, so a running node may keep appending).
//!
//! The state at T1 is a checkpoint of exactly T1: the world's own
//! `checkpoints/<T1>.ckpt` when it exists and agrees with the journal,
//! otherwise one made by replaying the journal from the newest checkpoint at
//! or before T1 (at most one checkpoint interval of ticks), whose every root
//! is compared with the record on the way. T1 = 0 means genesis.
//!
//! Cost: one pass over the journal from genesis to its end (to fold the
//! accumulator up to T1 and learn the head), plus that replay; memory holds
//! the window's records and the bundle.

use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_protocol::{Hash, Tick, TickRoots, WorldId};
use everarcade_store::checkpoint::{encode_checkpoint, load_checkpoint};
use everarcade_store::journal::GenesisRecord;
use everarcade_store::keys::{OperatorKeys, Signed};
use everarcade_store::{Storage, WorldDir};
use everarcade_world::check_binding;
use everarcade_world::lineage::read_lineage;
use everarcade_world::replay::{Context, ReplayOptions, Start, replay};

use crate::bundle::{
    BUNDLE_BYTES_MAX, BUNDLE_VERSION, Bundle, BundleFile, BundleTick, Operator, StartState,
    body_digest,
};
use crate::error::SourceError;
use crate::journal::{JournalItem, JournalTicks};
use crate::mmr::{Mmr, MmrProver, genesis_roots, leaf_hash};

/// What to export.
pub struct ExportRequest<'a> {
    /// The file system.
    pub storage: &'a dyn Storage,
    /// The world's directory.
    pub dir: &'a WorldDir,
    /// The world id.
    pub id: &'a WorldId,
    /// The engine (to replay up to T1 when no checkpoint of T1 exists).
    pub engine: &'a Engine,
    /// The package the world is bound to.
    pub compiled: Arc<CompiledPackage>,
    /// T1.
    pub from_tick: Tick,
    /// T2.
    pub to_tick: Tick,
    /// This runtime's version.
    pub runtime_version: &'a str,
}

/// How the state at T1 was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartSource {
    /// T1 = 0.
    Genesis,
    /// The world's checkpoint of T1, copied.
    Checkpoint,
    /// Replayed from an earlier checkpoint (or genesis) to T1.
    Replayed {
        /// Where the replay began.
        from: Tick,
    },
}

/// An exported bundle.
pub struct Exported {
    /// The bundle file's bytes.
    pub bytes: Vec<u8>,
    /// The digest the operator signed.
    pub digest: Hash,
    /// The world's head when exported.
    pub head_tick: Tick,
    /// The roots of T2.
    pub last: TickRoots,
    /// The accumulator root over ticks `0..=T2`.
    pub accumulator_root: Hash,
    /// Inputs in the window.
    pub inputs: u64,
    /// How the state at T1 was obtained.
    pub start: StartSource,
    /// The signing key.
    pub signer: [u8; 32],
}

/// What one pass over the journal gathers.
struct Gathered {
    genesis: GenesisRecord,
    anchor: TickRoots,
    frontier: Vec<Hash>,
    anchor_path: Vec<Hash>,
    ticks: Vec<BundleTick>,
    accumulator: Mmr,
    head: Tick,
}

fn gather(request: &ExportRequest<'_>) -> Result<Gathered, SourceError> {
    let (from, to) = (request.from_tick, request.to_tick);
    let mut walk = JournalTicks::open(request.storage, &request.dir.journal())?;
    let mut prover = MmrProver::new();
    let mut gathered: Option<Gathered> = None;
    let mut genesis: Option<GenesisRecord> = None;
    let mut ticks = Vec::new();
    let mut estimated_bytes = 0u64;
    loop {
        let next = walk.last().map_or(0, |last| last + 1);
        let with_inputs = next > from && next <= to;
        let Some(item) = walk.next(with_inputs)? else {
            break;
        };
        let roots = match &item {
            JournalItem::Genesis(record) => genesis_roots(&record.genesis_root, &record.state_root),
            JournalItem::Tick(record, _) => record.roots,
        };
        if let Some(gathered) = &mut gathered {
            gathered.head = roots.tick;
            if roots.tick <= to {
                gathered.accumulator.append(leaf_hash(&roots));
            }
        } else {
            prover.append(leaf_hash(&roots), roots.tick == from);
        }
        match item {
            JournalItem::Genesis(record) => genesis = Some(record),
            JournalItem::Tick(record, inputs) if roots.tick > from && roots.tick <= to => {
                estimated_bytes += 144
                    + inputs
                        .iter()
                        .map(|e| 4 + e.encode().len() as u64)
                        .sum::<u64>()
                    + 82 * record.receipts.len() as u64;
                if estimated_bytes > BUNDLE_BYTES_MAX {
                    return Err(SourceError::request(
                        "window_too_large",
                        format!(
                            "ticks {from}..={} alone take over {BUNDLE_BYTES_MAX} bytes; export shorter windows",
                            roots.tick
                        ),
                    ));
                }
                ticks.push(BundleTick {
                    roots,
                    inputs,
                    receipts: record.receipts,
                });
            }
            JournalItem::Tick(..) => {}
        }
        if roots.tick == from {
            let proof = prover.proof().expect("the anchor was just appended");
            gathered = Some(Gathered {
                genesis: genesis.clone().expect("genesis comes first"),
                anchor: roots,
                frontier: prover.mmr().peaks().to_vec(),
                anchor_path: proof.path,
                ticks: Vec::new(),
                accumulator: prover.mmr().clone(),
                head: from,
            });
        }
    }
    let Some(mut gathered) = gathered else {
        return Err(beyond(from, walk.last().unwrap_or(0)));
    };
    if gathered.head < to {
        return Err(beyond(to, gathered.head));
    }
    gathered.ticks = ticks;
    Ok(gathered)
}

fn beyond(tick: Tick, head: Tick) -> SourceError {
    SourceError::request(
        "tick_beyond_journal",
        format!("tick {tick} is beyond the journal, which ends at tick {head}"),
    )
}

/// The checkpoint of `anchor.tick`, copied or made by replay.
fn start_state(
    request: &ExportRequest<'_>,
    anchor: &TickRoots,
) -> Result<(StartState, StartSource), SourceError> {
    let tick = anchor.tick;
    if tick == 0 {
        return Ok((StartState::Genesis, StartSource::Genesis));
    }
    let path = request.dir.checkpoint(tick);
    if request.storage.exists(&path)
        && let Ok(checkpoint) = load_checkpoint(request.storage, &path)
        && checkpoint.state_root == anchor.state_root
        && checkpoint.continuity_root == anchor.continuity_root
        && let Ok(bytes) = request.storage.read(&path)
    {
        return Ok((StartState::Checkpoint(bytes), StartSource::Checkpoint));
    }
    let context = Context {
        storage: request.storage,
        dir: request.dir,
        id: request.id,
        engine: request.engine,
        compiled: request.compiled.clone(),
        schedule: None,
    };
    let options = ReplayOptions {
        start: Start::NewestCheckpoint,
        stop_after: Some(tick),
        verify_signatures: false,
        diff_on_divergence: false,
    };
    let mut replayed = replay(&context, &options, &mut |_| {})?;
    let began = match &replayed.started_from {
        everarcade_world::replay::StartedFrom::Genesis => 0,
        everarcade_world::replay::StartedFrom::Checkpoint { tick, .. } => *tick,
    };
    if replayed.last != *anchor {
        return Err(SourceError::Lineage {
            path: request.dir.journal(),
            what: format!(
                "replay to tick {tick} reached tick {} with other roots than the journal records",
                replayed.last.tick
            ),
        });
    }
    let world = &mut replayed.world;
    let state_root = world.state_root();
    let bytes = encode_checkpoint(
        tick,
        &world.genesis_root(),
        &world.continuity_root(),
        &state_root,
        world.state(),
        world.nonces(),
    );
    Ok((
        StartState::Checkpoint(bytes),
        StartSource::Replayed { from: began },
    ))
}

/// The bound package's files, read back and checked against its listing.
fn package_files(compiled: &CompiledPackage) -> Result<Vec<BundleFile>, SourceError> {
    let package = &compiled.package;
    package
        .files
        .iter()
        .map(|file| {
            let path = package.dir.join(&file.path);
            let bytes = std::fs::read(&path).map_err(|source| SourceError::PackageFile {
                path: path.clone(),
                source,
            })?;
            if everarcade_protocol::Domain::PackageFile.hash(&bytes) != file.hash {
                return Err(SourceError::request(
                    "package_changed",
                    format!("{} changed while the bundle was exported", path.display()),
                ));
            }
            Ok(BundleFile {
                path: file.path.clone(),
                bytes,
            })
        })
        .collect()
}

/// Exports and signs; see the module docs.
/// `operator` gives the operator keys once the head is known; it is asked
/// once. (The command refuses a world without a key before exporting, so
/// nothing is written to the world.)
pub fn export(
    request: &ExportRequest<'_>,
    operator: &mut dyn FnMut(Tick) -> Result<OperatorKeys, SourceError>,
) -> Result<Exported, SourceError> {
    if request.from_tick > request.to_tick {
        return Err(SourceError::request(
            "invalid_window",
            format!(
                "--from {} is after --to {}",
                request.from_tick, request.to_tick
            ),
        ));
    }
    check_binding(request.storage, request.dir, &request.compiled.package)?;
    let lineage = read_lineage(request.storage, request.dir)?;
    if let Some(transition) = lineage.transitions.first() {
        return Err(SourceError::request(
            "upgraded_world_unsupported",
            format!(
                "the world changed package at tick {} (lineage.json); bundle format {BUNDLE_VERSION} carries one package, the genesis one, so it cannot hold this world's windows yet",
                transition.body.from_tick
            ),
        ));
    }
    let gathered = gather(request)?;
    let (start, start_source) = start_state(request, &gathered.anchor)?;
    let package = package_files(&request.compiled)?;
    let keys = operator(gathered.head)?;
    let operator = Operator::from_history(keys.public_key(), keys.history()).ok_or_else(|| {
        SourceError::request(
            "operator_keys_invalid",
            "the world's operator key history holds a key or endorsement that is not hex",
        )
    })?;
    let last = gathered
        .ticks
        .last()
        .map_or(gathered.anchor, |tick| tick.roots);
    let inputs = gathered
        .ticks
        .iter()
        .map(|tick| tick.inputs.len() as u64)
        .sum();
    let bundle = Bundle {
        world: request.id.clone(),
        runtime_version: request.runtime_version.to_string(),
        protocol_version: everarcade_protocol::PROTOCOL_VERSION,
        package_root: gathered.genesis.package_root,
        genesis_root: gathered.genesis.genesis_root,
        head_tick: gathered.head,
        from_tick: request.from_tick,
        to_tick: request.to_tick,
        package,
        genesis_state_root: gathered.genesis.state_root,
        genesis_receipt: gathered.genesis.receipt,
        start,
        anchor: gathered.anchor,
        frontier: gathered.frontier,
        anchor_path: gathered.anchor_path,
        ticks: gathered.ticks,
        operator,
    };
    let body = bundle.encode_body();
    if body.len() as u64 + 96 > BUNDLE_BYTES_MAX {
        return Err(SourceError::request(
            "window_too_large",
            format!("the bundle would be over {BUNDLE_BYTES_MAX} bytes; export shorter windows"),
        ));
    }
    let digest = body_digest(&body);
    let signature = keys.sign(Signed::Bundle, &digest);
    let bytes = crate::bundle::seal(body, &signature);
    Ok(Exported {
        bytes,
        digest,
        head_tick: gathered.head,
        last,
        accumulator_root: gathered.accumulator.root(),
        inputs,
        start: start_source,
        signer: keys.public_key(),
    })
}
