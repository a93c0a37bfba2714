//! `verify`: every check that needs no execution. Every segment header,
//! record checksum and chain link; every record decodes; ticks and inputs are
//! in order; every envelope's signature, world and nonce; every tick's input
//! root and receipt root recomputed from what it records, and the continuity
//! chain `C(t)` recomputed link by link; every checkpoint loads (checksum and
//! recomputed state root) and agrees with the journal; `genesis.json`, the
//! journal's genesis record and the bound package agree with the package given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use everarcade_package::Package;
use everarcade_protocol::{
    Envelope, EnvelopeError, Hash, PublicKey, Receipt, Tick, continuity_root, genesis_root,
    list_root,
};
use everarcade_store::checkpoint::{list_checkpoints, parse_checkpoint};
use everarcade_store::journal::{GenesisRecord, TickRecord};
use everarcade_store::keys::{
    CheckpointSigning, check_checkpoint_signature, read_history, verify_history,
};
use everarcade_store::meta::{GenesisFile, read_json};
use everarcade_store::{JournalReader, Record, Storage, StoreError, WorldDir};

use crate::durable::genesis_file;
use crate::error::WorldError;
use crate::lineage::{load_stored, read_lineage};

/// What `verify` checked, for the report.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    /// Journal segments read.
    pub segments: u64,
    /// Records whose checksum and chain link were checked.
    pub records: u64,
    /// Ticks whose roots were recomputed.
    pub ticks: u64,
    /// Envelopes whose signature, world and nonce were checked.
    pub envelopes: u64,
    /// Acknowledged inputs after the last tick (pending for the next).
    pub pending_inputs: u64,
    /// Checkpoints that loaded and agree with the journal: (tick, path).
    pub checkpoints: Vec<(Tick, PathBuf)>,
    /// The last tick's continuity root.
    pub head: Option<(Tick, Hash)>,
    /// The package root bound at genesis.
    pub package_root: Hash,
    /// Things worth a look that are not failures (stray files).
    pub warnings: Vec<String>,
    /// Checkpoints whose operator signature verified in the key history.
    pub signed_checkpoints: usize,
    /// Operator keys in the history (every rotation endorsement checked).
    pub operator_keys: usize,
}

/// A group of checks that has passed, in the order `audit` finishes them.
/// The [`Audit`] handed along with it holds that group's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditPhase {
    /// `genesis.json`, the journal's genesis record and the bound package
    /// agree with the package given (`package_root` is set).
    Package,
    /// Every record's checksum and chain link, every tick's roots and every
    /// envelope (`segments`, `records`, `ticks`, `envelopes`,
    /// `pending_inputs` and `head` are set).
    Journal,
    /// Every checkpoint (`checkpoints` and `signed_checkpoints` are set).
    Checkpoints,
    /// The operator key history (`operator_keys` is set); reported last,
    /// once the checkpoints' signatures are counted.
    Operator,
}

/// Watches an audit as it goes, for progress reports; it cannot change
/// what the audit finds.
pub trait AuditObserver {
    /// A record whose checksum and chain link were checked and which was
    /// decoded; it ends `end_bytes` into the segment file `segment`.
    fn record(&mut self, segment: &Path, end_bytes: u64, audit: &Audit) {
        let _ = (segment, end_bytes, audit);
    }

    /// A group of checks passed.
    fn passed(&mut self, phase: AuditPhase, audit: &Audit) {
        let _ = (phase, audit);
    }
}

/// The observer of [`audit`]: sees nothing.
struct Unobserved;

impl AuditObserver for Unobserved {}

struct Chain {
    world: everarcade_protocol::WorldId,
    continuity: Hash,
    tick: Tick,
    nonces: BTreeMap<PublicKey, u64>,
    inputs: Vec<Envelope>,
    /// Continuity and state root of every tick that has a checkpoint.
    at_checkpoints: BTreeMap<Tick, (Hash, Hash)>,
}

/// Runs every check; the first failure is returned as the error.
pub fn audit(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
) -> Result<Audit, WorldError> {
    audit_observed(storage, dir, package, &mut Unobserved)
}

/// [`audit`], telling `observer` of every record read and every group of
/// checks passed. The result and the errors are `audit`'s.
pub fn audit_observed(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
    observer: &mut dyn AuditObserver,
) -> Result<Audit, WorldError> {
    let mut audit = Audit::default();
    let listing = list_checkpoints(storage, dir)?;
    for stray in &listing.strays {
        audit.warnings.push(format!(
            "stray file {} (recover moves it to quarantine)",
            stray.display()
        ));
    }
    let checkpoint_ticks: Vec<Tick> = listing.checkpoints.iter().map(|(tick, _)| *tick).collect();
    let mut reader = JournalReader::open(storage, &dir.journal())?;
    let mut chain: Option<Chain> = None;
    while let Some(raw) = reader.next()? {
        let lineage = |what: String| WorldError::Lineage {
            path: raw.path.clone(),
            offset: raw.offset,
            what,
        };
        match raw.decode()? {
            Record::Genesis(genesis) => {
                check_genesis(storage, dir, package, &genesis)?;
                audit.package_root = genesis.package_root;
                observer.passed(AuditPhase::Package, &audit);
                chain = Some(Chain {
                    world: genesis.world.clone(),
                    continuity: genesis.genesis_root,
                    tick: 0,
                    nonces: BTreeMap::new(),
                    inputs: Vec::new(),
                    at_checkpoints: BTreeMap::new(),
                });
                if checkpoint_ticks.contains(&0) {
                    let chain = chain.as_mut().expect("just set");
                    chain
                        .at_checkpoints
                        .insert(0, (genesis.genesis_root, genesis.state_root));
                }
            }
            Record::Inputs(inputs) => {
                let chain = chain.as_mut().expect("the reader puts genesis first");
                if inputs.tick != chain.tick + 1 {
                    return Err(lineage(format!(
                        "inputs for tick {} where tick {} is next",
                        inputs.tick,
                        chain.tick + 1
                    )));
                }
                let signatures = Envelope::verify_signatures_under(
                    &inputs.envelopes,
                    package.manifest.signatures,
                );
                for (envelope, signature) in inputs.envelopes.into_iter().zip(signatures) {
                    check_envelope(chain, &envelope, signature).map_err(|what| {
                        lineage(format!(
                            "tick {}: input {}: {what}",
                            inputs.tick,
                            chain.inputs.len()
                        ))
                    })?;
                    chain.inputs.push(envelope);
                    audit.envelopes += 1;
                }
            }
            Record::Tick(record) => {
                let chain = chain.as_mut().expect("the reader puts genesis first");
                check_tick(chain, &record).map_err(lineage)?;
                if checkpoint_ticks.contains(&record.roots.tick) {
                    chain.at_checkpoints.insert(
                        record.roots.tick,
                        (record.roots.continuity_root, record.roots.state_root),
                    );
                }
                audit.ticks += 1;
                audit.head = Some((record.roots.tick, record.roots.continuity_root));
            }
        }
        observer.record(&raw.path, raw.offset + raw.encoded_len(), &audit);
    }
    if let Some(torn) = reader.torn_tail() {
        return Err(torn.to_error().into());
    }
    let chain = chain.expect("the reader refuses a journal without genesis");
    audit.segments = reader.end().segments;
    audit.records = reader.end().records;
    audit.pending_inputs = chain.inputs.len() as u64;
    observer.passed(AuditPhase::Journal, &audit);
    let history = read_history(storage, dir)?;
    if let Some(history) = &history {
        verify_history(history).map_err(|e| {
            WorldError::OperatorSignature(format!("{}: {e}", dir.operator_keys().display()))
        })?;
        audit.operator_keys = history.keys.len();
    }
    for (tick, path) in listing.checkpoints {
        // A running node's retention may remove a listed checkpoint (and
        // its signature) at any moment: one that is gone when it is read,
        // or once its check failed, was removed, not damaged.
        let vanished = |audit: &mut Audit| {
            audit.warnings.push(format!(
                "checkpoint of tick {tick} was removed while it was being verified (a running node's retention); not checked"
            ));
        };
        let bytes = match storage.read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                vanished(&mut audit);
                continue;
            }
            Err(error) => return Err(StoreError::io("read", &path)(error).into()),
        };
        let checkpoint = parse_checkpoint(&path, &bytes)?;
        match check_checkpoint_signature(storage, dir, history.as_ref(), tick, &bytes) {
            Ok(CheckpointSigning::Signed(_)) => audit.signed_checkpoints += 1,
            Ok(CheckpointSigning::Unsigned) => {}
            Err(_) if !storage.exists(&path) => {
                vanished(&mut audit);
                continue;
            }
            Err(reason) => return Err(WorldError::OperatorSignature(reason)),
        }
        let Some((continuity, state)) = chain.at_checkpoints.get(&tick) else {
            return Err(WorldError::Lineage {
                path,
                offset: 0,
                what: format!(
                    "the checkpoint is of tick {tick}, beyond the journal's last tick {}",
                    chain.tick
                ),
            });
        };
        if checkpoint.continuity_root != *continuity || checkpoint.state_root != *state {
            return Err(WorldError::Lineage {
                path,
                offset: 0,
                what: format!("the checkpoint contradicts the journal's roots at tick {tick}"),
            });
        }
        audit.checkpoints.push((tick, path));
    }
    observer.passed(AuditPhase::Checkpoints, &audit);
    observer.passed(AuditPhase::Operator, &audit);
    Ok(audit)
}

/// The genesis package and the current one: without upgrades both are the
/// package given; after upgrades the genesis package is the stored copy of
/// the first transition's previous package, and the package given must be
/// the last transition's.
fn lineage_packages(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
) -> Result<Package, WorldError> {
    let lineage = read_lineage(storage, dir)?;
    let Some(first) = lineage.transitions.first() else {
        return Ok(package.clone());
    };
    let current = lineage.current_root(package.root);
    if current != package.root {
        return Err(WorldError::PackageMismatch {
            bound: current,
            given: package.root,
        });
    }
    lineage.verify(read_history(storage, dir)?.as_ref())?;
    for transition in &lineage.transitions {
        let root = &transition.body.package_root;
        load_stored(&dir.package_store(root), root)?;
    }
    let root = &first.body.previous_root;
    load_stored(&dir.package_store(root), root)
}

fn check_genesis(
    storage: &dyn Storage,
    dir: &WorldDir,
    given: &Package,
    genesis: &GenesisRecord,
) -> Result<(), WorldError> {
    let genesis_package = lineage_packages(storage, dir, given)?;
    let package = &genesis_package;
    if genesis.package_root != package.root {
        return Err(WorldError::PackageMismatch {
            bound: genesis.package_root,
            given: package.root,
        });
    }
    let expected = genesis_root(&genesis.world, &genesis.package_root, &genesis.profile_hash);
    let journal = dir.segment(1);
    if expected != genesis.genesis_root {
        return Err(WorldError::Lineage {
            path: journal,
            offset: 128,
            what: format!(
                "the genesis record's C(0) {} is not the one its fields give, {expected}",
                genesis.genesis_root
            ),
        });
    }
    if genesis.profile_hash != package.profile().hash() {
        return Err(WorldError::Lineage {
            path: journal,
            offset: 128,
            what: "the genesis record's profile hash is not the package's".into(),
        });
    }
    let file: GenesisFile = read_json(storage, &dir.genesis())?;
    let recorded = genesis_file(genesis);
    if (
        &file.world,
        &file.package_root,
        &file.profile_hash,
        &file.genesis_root,
        &file.state_root,
    ) != (
        &recorded.world,
        &recorded.package_root,
        &recorded.profile_hash,
        &recorded.genesis_root,
        &recorded.state_root,
    ) {
        return Err(WorldError::Lineage {
            path: dir.genesis(),
            offset: 0,
            what: "genesis.json disagrees with the journal's genesis record".into(),
        });
    }
    if storage.exists(&dir.package()) {
        let bound = Package::load(&dir.package()).map_err(|error| WorldError::Lineage {
            path: dir.package(),
            offset: 0,
            what: format!("the bound package copy does not load: {error}"),
        })?;
        if bound.root != given.root {
            return Err(WorldError::PackageMismatch {
                bound: bound.root,
                given: given.root,
            });
        }
    }
    Ok(())
}

/// Checks an envelope in order: its world, its signature (checked already,
/// with the rest of its record: `signature`), its nonce.
fn check_envelope(
    chain: &mut Chain,
    envelope: &Envelope,
    signature: Result<(), EnvelopeError>,
) -> Result<(), String> {
    if envelope.world != chain.world {
        return Err(format!("envelope is for world {}", envelope.world));
    }
    signature.map_err(|error| error.to_string())?;
    let last = chain.nonces.get(&envelope.sender).copied().unwrap_or(0);
    if envelope.nonce <= last {
        return Err(format!("nonce {} is not above {last}", envelope.nonce));
    }
    chain.nonces.insert(envelope.sender, envelope.nonce);
    Ok(())
}

fn check_tick(chain: &mut Chain, record: &TickRecord) -> Result<(), String> {
    let roots = &record.roots;
    let tick = chain.tick + 1;
    if roots.tick != tick {
        return Err(format!("tick {} where tick {tick} is next", roots.tick));
    }
    if record.input_count as usize != chain.inputs.len() {
        return Err(format!(
            "tick {tick} records {} inputs, but {} were journaled for it",
            record.input_count,
            chain.inputs.len()
        ));
    }
    let envelope_hashes: Vec<Hash> = chain.inputs.iter().map(Envelope::hash).collect();
    if list_root(&envelope_hashes) != roots.input_root {
        return Err(format!(
            "tick {tick}: the input root is not the root of its inputs"
        ));
    }
    let subjects: Vec<Hash> = record
        .receipts
        .iter()
        .filter(|receipt| receipt.kind == everarcade_protocol::ReceiptKind::Input)
        .map(|receipt| receipt.subject)
        .collect();
    if subjects != envelope_hashes {
        return Err(format!(
            "tick {tick}: the receipts are not one per input, in order"
        ));
    }
    let receipt_hashes: Vec<Hash> = record.receipts.iter().map(Receipt::hash).collect();
    if list_root(&receipt_hashes) != roots.receipt_root {
        return Err(format!(
            "tick {tick}: the receipt root is not the root of its receipts"
        ));
    }
    let continuity = continuity_root(
        &chain.continuity,
        tick,
        &roots.input_root,
        &roots.receipt_root,
        &roots.state_root,
    );
    if continuity != roots.continuity_root {
        return Err(format!(
            "tick {tick}: C(t) does not follow from C(t-1) and the tick's roots"
        ));
    }
    chain.continuity = continuity;
    chain.tick = tick;
    chain.inputs.clear();
    Ok(())
}
