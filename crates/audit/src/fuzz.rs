//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz) for the files this
//! crate reads from outside: proof bundles (`verify-bundle FILE`, on any
//! machine) and player proofs. They are kept here so that a stable-toolchain
//! test can replay the committed corpus through exactly the same code
//! (`tests/audit/fuzz_corpus.rs`).
//!
//! Each function takes arbitrary bytes and must never panic: a panic is a
//! finding. Besides "no panic", they assert properties that hold for every
//! input: a file that does not decode is *malformed* (and `verify-bundle`
//! refuses it with the same error), whatever decodes re-encodes to exactly
//! the same bytes (both formats have one encoding), a signature check fails
//! only as a bad signature, replay never reports a structural error, and a
//! proof verifies against no root but the one its own path leads to.
//!
//! A bundle's checksum stops a fuzzer at the first hash and its operator
//! signature at the second, so [`bundle`] also runs a *resealed* copy (the
//! checksum recomputed), which lets mutations reach the body decoder, and a
//! *re-signed* copy (the decoded body signed by a fixed fuzzing key, under a
//! key history of that key alone), which lets them reach replay: a dishonest
//! operator can sign anything, so replay must not panic either.
//!
//! Replay needs an [`Engine`] and nothing else: no runtime root, no disk.
//! One engine is made per process; it caches only packages whose root the
//! bundle records, so a long fuzzing run compiles the corpus's few packages
//! and no others.

use std::path::Path;
use std::sync::OnceLock;

use everarcade_engine::Engine;
use everarcade_protocol::{Hash, PublicKey, WorldId, list_root_from_proof, test_signing_key};
use everarcade_store::keys::{KEYS_FORMAT, KeyEntry, KeyHistory, OperatorKeys, Signed};
use everarcade_store::meta::write_json;
use everarcade_store::{SimStorage, Storage, WorldDir};

use crate::bundle::{
    BUNDLE_TRAILER_BYTES, Bundle, BundleError, Operator, OperatorKey, SealedBundle, StartState,
    body_digest, decode,
};
use crate::error::{Class, VerifyError};
use crate::mmr::{Mmr, leaf_hash};
use crate::proof::{Claim, PlayerProof};
use crate::verify::{VerifyOptions, check_signature, replay_bundle, verify_bundle};

/// How far one input got: the deepest any copy of it reached. Tests use it
/// to check that fuzzing gets past the hashes; the fuzz targets ignore it.
/// (A bundle that decodes is re-signed, so [`bundle`] never returns
/// [`Depth::Decoded`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Depth {
    /// Refused by the decoder.
    Refused,
    /// Decoded, but (a bundle) its signature does not verify or (a proof)
    /// it does not prove its claim against the root its path leads to.
    Decoded,
    /// A bundle whose signature verified but whose replay failed.
    Signed,
    /// A bundle that replayed to every recorded root, or a proof that
    /// verified.
    Verified,
}

/// Which copy of a bundle input a check runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The input as given.
    Input,
    /// The input with its checksum recomputed.
    Resealed,
    /// The decoded body re-signed by the fuzzing key.
    Resigned,
}

/// Target `bundle`: `data` as a bundle file, decoded, its signature checked
/// and, if that verifies, replayed; then the same for the resealed copy (if
/// the input did not decode) and for the re-signed copy (if either decoded).
pub fn bundle(data: &[u8]) -> Depth {
    let (mut depth, mut sealed) = check_bundle(data, Variant::Input);
    if sealed.is_none()
        && let Some(resealed) = reseal(data).filter(|resealed| resealed != data)
    {
        let (reached, decoded) = check_bundle(&resealed, Variant::Resealed);
        depth = depth.max(reached);
        sealed = decoded;
    }
    if let Some(sealed) = sealed {
        let resigned = resign(&sealed.bundle);
        if resigned != data {
            depth = depth.max(check_bundle(&resigned, Variant::Resigned).0);
        }
    }
    depth
}

/// Target `player_proof`: `data` as a player proof, decoded and verified
/// against a root nothing leads to and against the root its own accumulator
/// path leads to; then the same for a copy whose roots are repaired to
/// match its claim, which must verify whenever it is a receipt claim.
pub fn player_proof(data: &[u8]) -> Depth {
    let proof = match PlayerProof::decode(data) {
        Ok(proof) => proof,
        Err(error) => {
            assert_eq!(error.class(), Class::Malformed, "{error}");
            return Depth::Refused;
        }
    };
    assert_eq!(proof.encode(), data, "a proof re-encodes differently");
    let mut depth = check_proof(&proof);
    if let Some(repaired) = repair_proof(&proof).filter(|repaired| *repaired != proof) {
        let bytes = repaired.encode();
        assert_eq!(PlayerProof::decode(&bytes).as_ref(), Ok(&repaired));
        let reached = check_proof(&repaired);
        if matches!(repaired.claim, Claim::Receipt { .. }) {
            assert_eq!(reached, Depth::Verified, "a repaired receipt proof fails");
        }
        depth = depth.max(reached);
    }
    depth
}

/// `bundle` signed by the fuzzing key, under a key history of that key
/// alone: the whole file. Tests use it to make seeds whose signature the
/// `bundle` target's re-signed copy reproduces byte for byte.
pub fn resign(bundle: &Bundle) -> Vec<u8> {
    let keys = fuzzing_key();
    let mut bundle = bundle.clone();
    bundle.operator = Operator {
        signer: keys.public_key(),
        keys: vec![OperatorKey {
            public_key: keys.public_key(),
            from_tick: 0,
            to_tick: None,
            endorsement: None,
        }],
    };
    bundle.sign_and_seal(|digest| keys.sign(Signed::Bundle, digest))
}

/// `data` with its trailing checksum recomputed; `None` if it is too short
/// to have one.
pub fn reseal(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < BUNDLE_TRAILER_BYTES {
        return None;
    }
    let checksum_at = data.len() - 32;
    let mut out = data.to_vec();
    let checksum = everarcade_protocol::Domain::BundleChecksum.hash(&out[..checksum_at]);
    out[checksum_at..].copy_from_slice(&checksum.0);
    Some(out)
}

/// The engine replay runs on, made on first use.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().expect("the engine starts"))
}

/// The fuzzing operator key: a fixed test key, loaded through the store's
/// operator files on a simulated disk (the only way to sign with it here).
fn fuzzing_key() -> &'static OperatorKeys {
    static KEYS: OnceLock<OperatorKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = test_signing_key("fuzz-operator");
        let public: PublicKey = key.verifying_key().to_bytes();
        let storage = SimStorage::new();
        let id = WorldId::new("fuzz").expect("a valid world id");
        let dir = WorldDir::new(Path::new("/fuzz"), &id);
        storage
            .write_synced(&dir.operator_key(), hex::encode(key.to_bytes()).as_bytes())
            .expect("the simulated disk takes any bytes");
        let history = KeyHistory {
            format: KEYS_FORMAT,
            keys: vec![KeyEntry {
                public_key: hex::encode(public),
                from_tick: 0,
                to_tick: None,
                endorsed_by_previous: None,
            }],
        };
        write_json(&storage, &dir.operator_keys(), &history).expect("the simulated disk");
        let keys = OperatorKeys::load(&storage, &dir)
            .expect("the key files just written")
            .expect("they exist");
        assert_eq!(keys.public_key(), public);
        keys
    })
}

/// Decodes `bytes` and checks what the decoder, the signature check and
/// replay report; returns how far it got and the decoded bundle.
fn check_bundle(bytes: &[u8], variant: Variant) -> (Depth, Option<SealedBundle>) {
    let sealed = match decode(bytes) {
        Ok(sealed) => sealed,
        Err(error) => {
            check_refusal(bytes, variant, error);
            return (Depth::Refused, None);
        }
    };
    check_encoding(bytes, &sealed);
    let depth = match check_signature(&sealed, &[]) {
        Ok(trusted) => {
            assert!(!trusted, "trusted with no trusted keys");
            // The signer descends from itself.
            let pinned = check_signature(&sealed, &[sealed.bundle.operator.signer]);
            assert!(matches!(pinned, Ok(true)), "{pinned:?}");
            check_replay(&sealed)
        }
        Err(error) => {
            assert_ne!(
                variant,
                Variant::Resigned,
                "the fuzzing key's signature: {error}"
            );
            assert_eq!(error.class(), Class::BadSignature, "{error}");
            Depth::Decoded
        }
    };
    (depth, Some(sealed))
}

/// A refused file is malformed, `verify-bundle` refuses it with the same
/// error, and a resealed or re-signed copy never fails its checksum.
fn check_refusal(bytes: &[u8], variant: Variant, error: BundleError) {
    assert_ne!(
        variant,
        Variant::Resigned,
        "a re-signed bundle does not decode"
    );
    if variant == Variant::Resealed {
        assert_ne!(error, BundleError::Checksum, "the resealed checksum");
    }
    match verify_bundle(bytes, engine(), VerifyOptions::default()) {
        Err(VerifyError::Bundle(refused)) => assert_eq!(refused, error),
        other => panic!("decode refused it ({error}), verify-bundle: {other:?}"),
    }
    assert_eq!(VerifyError::Bundle(error).class(), Class::Malformed);
}

/// Whatever decodes is exactly the encoding of what it decoded to.
fn check_encoding(bytes: &[u8], sealed: &SealedBundle) {
    let body_end = bytes.len() - BUNDLE_TRAILER_BYTES;
    let body = &bytes[..body_end];
    assert_eq!(
        sealed.bundle.encode_body(),
        body,
        "a bundle re-encodes differently"
    );
    assert_eq!(sealed.digest, body_digest(body));
    assert_eq!(sealed.signature[..], bytes[body_end..body_end + 64]);
    assert_eq!(sealed.bytes, bytes.len() as u64);
}

/// Replays a bundle whose signature verified: it reaches every recorded
/// root, or fails with something other than a structural or signature error.
fn check_replay(sealed: &SealedBundle) -> Depth {
    let bundle = &sealed.bundle;
    let report = match replay_bundle(sealed, engine(), false, None) {
        Ok(report) => report,
        Err(error) => {
            assert!(
                !matches!(error, VerifyError::Bundle(_)) && error.class() != Class::BadSignature,
                "replay after decode and signature: {error}"
            );
            return Depth::Signed;
        }
    };
    let last = bundle.ticks.last().map_or(bundle.anchor, |tick| tick.roots);
    let inputs: usize = bundle.ticks.iter().map(|tick| tick.inputs.len()).sum();
    let mut accumulator = Mmr::from_peaks(bundle.from_tick + 1, bundle.frontier.clone())
        .expect("decode checked the peak count");
    for tick in &bundle.ticks {
        accumulator.append(leaf_hash(&tick.roots));
    }
    assert_eq!(report.world, bundle.world);
    assert_eq!(
        (report.from_tick, report.to_tick, report.head_tick),
        (bundle.from_tick, bundle.to_tick, bundle.head_tick)
    );
    assert_eq!(report.last, last);
    assert_eq!(report.inputs, inputs as u64);
    assert_eq!(report.accumulator_root, accumulator.root());
    assert_eq!((report.digest, report.bytes), (sealed.digest, sealed.bytes));
    assert_eq!(report.signer, bundle.operator.signer);
    let start = match bundle.start {
        StartState::Genesis => "genesis",
        StartState::Checkpoint(_) => "checkpoint",
    };
    assert_eq!(report.start, start);
    Depth::Verified
}

/// Verifies a decoded proof against a root nothing leads to and against the
/// root its accumulator path leads to.
fn check_proof(proof: &PlayerProof) -> Depth {
    let reached = proof.accumulator.root_for(&leaf_hash(&proof.roots));
    if reached != Some(Hash::ZERO) {
        let error = proof
            .verify(&Hash::ZERO)
            .expect_err("a proof verifies against a root it does not lead to");
        assert_eq!(error.class(), Class::Integrity, "{error}");
    }
    let Some(root) = reached else {
        return Depth::Decoded;
    };
    match proof.verify(&root) {
        Ok(head) => {
            assert_eq!(head, proof.accumulator.count - 1);
            assert_eq!(proof.accumulator.index, proof.roots.tick);
            Depth::Verified
        }
        Err(error) => {
            assert_eq!(error.class(), Class::Integrity, "{error}");
            Depth::Decoded
        }
    }
}

/// `proof` with its tick set to its accumulator leaf's position and its
/// receipt or state root set to the root its claim folds to; `None` if the
/// claim folds to no root.
fn repair_proof(proof: &PlayerProof) -> Option<PlayerProof> {
    let mut repaired = proof.clone();
    repaired.roots.tick = proof.accumulator.index;
    match &proof.claim {
        Claim::Receipt {
            index,
            count,
            path,
            receipt,
        } => {
            repaired.roots.receipt_root =
                list_root_from_proof(&receipt.hash(), *index as u64, *count as u64, path)?;
        }
        Claim::State { key, value, proof } => {
            // The state proof reports the root it folds to when it is not
            // the one asked for.
            match proof.verify(&Hash::ZERO, key, value.as_deref()) {
                Err(everarcade_state::ProofError::RootMismatch { computed, .. }) => {
                    repaired.roots.state_root = computed;
                }
                _ => return None,
            }
        }
    }
    Some(repaired)
}
