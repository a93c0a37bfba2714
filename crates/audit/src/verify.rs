//! `verify-bundle`: everything a bundle claims, checked on a machine that has
//! nothing but the bundle. In order:
//!
//! 1. structure: the checksum, then every field ([`crate::bundle::decode`]);
//!    failure is *malformed*;
//! 2. the operator signature over the body's digest, by a key of the
//!    bundle's key history whose rotations are each endorsed by the key
//!    before, and, when the verifier names trusted keys, descending from
//!    one of them; failure is *bad signature*;
//! 3. the package (its root must be the recorded one, and it must validate),
//!    `C(0)` from world id, package root and profile;
//! 4. the start: genesis run again, or the checkpoint decoded, its state
//!    root recomputed and matched with the recorded roots of the first tick;
//!    the first tick's leaf proven in the accumulator frontier;
//! 5. every tick: each input admitted again (world, size, nonce, envelope
//!    signature), the tick executed, its input, receipt, state and continuity
//!    roots and its receipts compared with the recorded ones, and its leaf
//!    appended to the accumulator. The first difference is a *divergence*
//!    naming the tick and the root.

use std::path::PathBuf;
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine, Snapshot, World};
use everarcade_package::{
    Manifest, Package, PackageError, PackageFile, package_root, validate_module,
};
use everarcade_protocol::{
    Domain, EnvelopeError, Hash, PROTOCOL_VERSION, PublicKey, Tick, TickRoots, WorldId,
    genesis_root, list_root,
};
use everarcade_store::checkpoint::{CheckpointDecodeError, decode_checkpoint};
use everarcade_store::keys::{Signed, verify, verify_history};

use crate::bundle::{Bundle, SealedBundle, StartState, decode};
use crate::error::{RootMismatch, VerifyError};
use crate::mmr::{Mmr, genesis_roots, last_peak, leaf_hash};

/// How to verify.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Operator keys the verifier trusts. Empty: any key the bundle's own
    /// history vouches for is accepted, and the report says it is not trusted.
    pub trusted_keys: Vec<PublicKey>,
    /// Called after every replayed tick.
    pub progress: Option<&'a mut dyn FnMut(Tick)>,
}

/// What a bundle that verified holds.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The world id.
    pub world: WorldId,
    /// The runtime version that exported it.
    pub runtime_version: String,
    /// The lineage's protocol version.
    pub protocol_version: u32,
    /// The package root.
    pub package_root: Hash,
    /// `C(0)`.
    pub genesis_root: Hash,
    /// The world's head when exported.
    pub head_tick: Tick,
    /// The window's first tick.
    pub from_tick: Tick,
    /// The window's last tick.
    pub to_tick: Tick,
    /// `genesis` or `checkpoint`.
    pub start: &'static str,
    /// Inputs replayed.
    pub inputs: u64,
    /// The signing key.
    pub signer: PublicKey,
    /// Whether the signer descends from a key the verifier trusts.
    pub trusted: bool,
    /// The roots of the last tick.
    pub last: TickRoots,
    /// The accumulator root over ticks `0..=to_tick` (a head commitment for
    /// player proofs when `to_tick` is the head).
    pub accumulator_root: Hash,
    /// The digest the operator signed.
    pub digest: Hash,
    /// The file's size.
    pub bytes: u64,
}

/// Verifies a bundle file's bytes; see the module docs.
pub fn verify_bundle(
    bytes: &[u8],
    engine: &Engine,
    options: VerifyOptions<'_>,
) -> Result<VerifyReport, VerifyError> {
    let sealed = decode(bytes)?;
    let trusted = check_signature(&sealed, &options.trusted_keys)?;
    replay_bundle(&sealed, engine, trusted, options.progress)
}

/// Step 2: returns whether the signer descends from a trusted key.
pub fn check_signature(sealed: &SealedBundle, trusted: &[PublicKey]) -> Result<bool, VerifyError> {
    let operator = &sealed.bundle.operator;
    let history = operator.history();
    verify_history(&history).map_err(|error| VerifyError::BadSignature {
        what: format!("the key history does not chain: {error}"),
    })?;
    verify(
        &history,
        &operator.signer,
        Signed::Bundle,
        &sealed.digest,
        &sealed.signature,
        Some(sealed.bundle.head_tick),
    )
    .map_err(|error| VerifyError::BadSignature {
        what: error.to_string(),
    })?;
    if trusted.is_empty() {
        return Ok(false);
    }
    let keys = &operator.keys;
    let signer = keys
        .iter()
        .position(|key| key.public_key == operator.signer);
    let anchor = keys
        .iter()
        .position(|key| trusted.contains(&key.public_key));
    match (anchor, signer) {
        (Some(anchor), Some(signer)) if anchor <= signer => Ok(true),
        _ => Err(VerifyError::Untrusted {
            signer: hex::encode(operator.signer),
        }),
    }
}

/// The bundled package, built in memory exactly as `Package::load` builds one
/// from a directory.
pub fn bundled_package(bundle: &Bundle) -> Result<Package, PackageError> {
    let dir = PathBuf::from(format!("<bundle of {}>", bundle.world));
    let files: Vec<PackageFile> = bundle
        .package
        .iter()
        .map(|file| PackageFile {
            path: file.path.clone(),
            length: file.bytes.len() as u64,
            hash: Domain::PackageFile.hash(&file.bytes),
        })
        .collect();
    let find = |path: &str| bundle.package.iter().find(|file| file.path == path);
    let manifest =
        find(everarcade_package::MANIFEST_FILE).ok_or_else(|| PackageError::ManifestMissing {
            path: dir.join(everarcade_package::MANIFEST_FILE),
        })?;
    let manifest = Manifest::parse(&manifest.bytes)?;
    let wasm = find(&manifest.module)
        .ok_or_else(|| PackageError::ModuleMissing {
            path: dir.join(&manifest.module),
        })?
        .bytes
        .clone();
    let exports = validate_module(&wasm, &manifest.limits)?;
    let root = package_root(&files);
    Ok(Package {
        dir,
        manifest,
        wasm,
        exports,
        files,
        root,
    })
}

fn mismatch(
    tick: Tick,
    root: &'static str,
    recorded: Hash,
    replayed: Hash,
) -> Option<RootMismatch> {
    (recorded != replayed).then_some(RootMismatch {
        tick,
        root,
        recorded,
        replayed,
    })
}

fn diverge_if(
    mismatches: impl IntoIterator<Item = Option<RootMismatch>>,
) -> Result<(), VerifyError> {
    let found: Vec<RootMismatch> = mismatches.into_iter().flatten().collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::divergence(found))
    }
}

/// The four roots of a tick, compared in the order the protocol computes them.
fn compare_roots(recorded: &TickRoots, replayed: &TickRoots) -> Result<(), VerifyError> {
    let tick = recorded.tick;
    diverge_if([
        mismatch(tick, "input_root", recorded.input_root, replayed.input_root),
        mismatch(
            tick,
            "receipt_root",
            recorded.receipt_root,
            replayed.receipt_root,
        ),
        mismatch(tick, "state_root", recorded.state_root, replayed.state_root),
        mismatch(
            tick,
            "continuity_root",
            recorded.continuity_root,
            replayed.continuity_root,
        ),
    ])
}

/// Steps 3 to 5.
pub fn replay_bundle(
    sealed: &SealedBundle,
    engine: &Engine,
    trusted: bool,
    mut progress: Option<&mut dyn FnMut(Tick)>,
) -> Result<VerifyReport, VerifyError> {
    let bundle = &sealed.bundle;
    if bundle.protocol_version != PROTOCOL_VERSION {
        return Err(VerifyError::Protocol {
            found: bundle.protocol_version,
            supported: PROTOCOL_VERSION,
        });
    }
    let package = bundled_package(bundle)?;
    diverge_if([mismatch(
        0,
        "package_root",
        bundle.package_root,
        package.root,
    )])?;
    let compiled = engine.compile(&package)?;
    let c0 = genesis_root(&bundle.world, &package.root, &package.profile().hash());
    diverge_if([mismatch(0, "genesis_root", bundle.genesis_root, c0)])?;
    let mut world = start_world(bundle, engine, compiled)?;
    let mut accumulator = Mmr::from_peaks(bundle.from_tick + 1, bundle.frontier.clone())
        .expect("decode checked the peak count");
    let folded = last_peak(
        accumulator.count(),
        &leaf_hash(&bundle.anchor),
        &bundle.anchor_path,
    )
    .expect("decode checked the path length");
    let last_peak_recorded = *accumulator.peaks().last().expect("at least one peak");
    diverge_if([mismatch(
        bundle.from_tick,
        "accumulator",
        last_peak_recorded,
        folded,
    )])?;
    let mut inputs = 0u64;
    let mut last = bundle.anchor;
    for tick in &bundle.ticks {
        let number = tick.roots.tick;
        let limit = world.limits().inputs_per_tick;
        if tick.inputs.len() > limit as usize {
            return Err(VerifyError::InputRefused {
                tick: number,
                index: limit as usize,
                error: EnvelopeError::TickFull {
                    tick: number,
                    limit,
                },
            });
        }
        world
            .admit_all(&tick.inputs)
            .map_err(|(index, error)| VerifyError::InputRefused {
                tick: number,
                index,
                error,
            })?;
        let output = world.execute_tick(engine, &tick.inputs)?;
        compare_roots(&tick.roots, &output.roots)?;
        if output.receipts != tick.receipts {
            let hashes: Vec<Hash> = tick.receipts.iter().map(|receipt| receipt.hash()).collect();
            diverge_if([Some(RootMismatch {
                tick: number,
                root: "receipts",
                recorded: list_root(&hashes),
                replayed: output.roots.receipt_root,
            })])?;
        }
        accumulator.append(leaf_hash(&output.roots));
        inputs += tick.inputs.len() as u64;
        last = output.roots;
        if let Some(progress) = progress.as_deref_mut() {
            progress(number);
        }
    }
    Ok(VerifyReport {
        world: bundle.world.clone(),
        runtime_version: bundle.runtime_version.clone(),
        protocol_version: bundle.protocol_version,
        package_root: bundle.package_root,
        genesis_root: bundle.genesis_root,
        head_tick: bundle.head_tick,
        from_tick: bundle.from_tick,
        to_tick: bundle.to_tick,
        start: match bundle.start {
            StartState::Genesis => "genesis",
            StartState::Checkpoint(_) => "checkpoint",
        },
        inputs,
        signer: bundle.operator.signer,
        trusted,
        last,
        accumulator_root: accumulator.root(),
        digest: sealed.digest,
        bytes: sealed.bytes,
    })
}

/// The world at the window's first tick, checked against the anchor.
fn start_world(
    bundle: &Bundle,
    engine: &Engine,
    compiled: Arc<CompiledPackage>,
) -> Result<World, VerifyError> {
    let anchor = &bundle.anchor;
    match &bundle.start {
        StartState::Genesis => {
            let (world, output) = World::genesis(engine, bundle.world.clone(), compiled)?;
            let receipt_hash = |receipt: &Option<everarcade_protocol::Receipt>| {
                receipt
                    .as_ref()
                    .map_or(Hash::ZERO, |receipt| receipt.hash())
            };
            diverge_if([
                mismatch(
                    0,
                    "genesis_state_root",
                    bundle.genesis_state_root,
                    output.state_root,
                ),
                mismatch(
                    0,
                    "genesis_receipt",
                    receipt_hash(&bundle.genesis_receipt),
                    receipt_hash(&output.receipt),
                ),
            ])?;
            compare_roots(
                anchor,
                &genesis_roots(&output.genesis_root, &output.state_root),
            )?;
            Ok(world)
        }
        StartState::Checkpoint(bytes) => {
            let checkpoint = decode_checkpoint(bytes).map_err(|error| VerifyError::Part {
                what: match error {
                    CheckpointDecodeError::Version(found) => {
                        format!("the checkpoint is format version {found}")
                    }
                    CheckpointDecodeError::Corrupt { what, offset } => {
                        format!("the checkpoint, at its byte {offset}: {what}")
                    }
                },
            })?;
            if checkpoint.tick != bundle.from_tick {
                return Err(VerifyError::Part {
                    what: format!(
                        "the checkpoint is of tick {}, the window starts at tick {}",
                        checkpoint.tick, bundle.from_tick
                    ),
                });
            }
            let tick = checkpoint.tick;
            diverge_if([
                mismatch(
                    tick,
                    "genesis_root",
                    bundle.genesis_root,
                    checkpoint.genesis_root,
                ),
                mismatch(tick, "state_root", anchor.state_root, checkpoint.state_root),
                mismatch(
                    tick,
                    "continuity_root",
                    anchor.continuity_root,
                    checkpoint.continuity_root,
                ),
            ])?;
            let snapshot = Snapshot {
                tick,
                genesis_root: checkpoint.genesis_root,
                continuity_root: checkpoint.continuity_root,
                state: checkpoint.state,
                nonces: checkpoint.nonces,
            };
            Ok(World::resume(bundle.world.clone(), compiled, snapshot)?)
        }
    }
}
