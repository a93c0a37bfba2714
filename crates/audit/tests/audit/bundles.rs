//! Bundles: exported windows verify with nothing but themselves; every
//! flipped byte is malformed; a resealed change or another key is a bad
//! signature; altered and re-signed records diverge at their tick and root.

use ed25519_dalek::SigningKey;
use everarcade_audit::bundle::{
    BundleError, Operator, OperatorKey, StartState, body_digest, decode, seal,
};
use everarcade_audit::export::StartSource;
use everarcade_audit::{Class, VerifyError, VerifyOptions, verify_bundle};
use everarcade_protocol::Tick;

use crate::common::{
    Built, Rng, build, contents, export_window, fixture, forge, other_hash, resign,
};

fn verify(bytes: &[u8]) -> Result<everarcade_audit::VerifyReport, VerifyError> {
    verify_bundle(bytes, &fixture().engine, VerifyOptions::default())
}

fn check_window(built: &Built, from: Tick, to: Tick) -> StartSource {
    let exported = export_window(built, from, to);
    let report = verify(&exported.bytes).unwrap_or_else(|e| panic!("{from}..={to}: {e}"));
    assert_eq!(report.last, built.roots[to as usize]);
    assert_eq!(report.from_tick, from);
    assert_eq!(report.to_tick, to);
    assert_eq!(report.head_tick, built.head().tick);
    assert_eq!(report.accumulator_root, exported.accumulator_root);
    assert_eq!(report.digest, exported.digest);
    let inputs: usize = built.inputs[from as usize..to as usize]
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(report.inputs, inputs as u64);
    assert!(!report.trusted);
    exported.start
}

#[test]
fn windows_from_genesis_checkpoints_and_replays_verify() {
    let built = build("windows", 1, 30, 7);
    assert_eq!(check_window(&built, 0, 30), StartSource::Genesis);
    assert_eq!(check_window(&built, 14, 30), StartSource::Checkpoint);
    assert_eq!(
        check_window(&built, 10, 20),
        StartSource::Replayed { from: 7 }
    );
    assert_eq!(
        check_window(&built, 3, 5),
        StartSource::Replayed { from: 0 }
    );
    assert_eq!(
        check_window(&built, 30, 30),
        StartSource::Replayed { from: 28 }
    );
    assert_eq!(check_window(&built, 0, 0), StartSource::Genesis);
    // The accumulator root of a window ending at the head is the head commitment.
    let whole = export_window(&built, 21, 30);
    let tail = export_window(&built, 0, 30);
    assert_eq!(whole.accumulator_root, tail.accumulator_root);
}

#[test]
fn windows_beyond_the_journal_are_refused() {
    let built = build("beyond", 2, 5, 0);
    let fixture = fixture();
    for (from, to) in [(0, 6), (6, 7), (4, 3)] {
        let request = everarcade_audit::export::ExportRequest {
            storage: &everarcade_store::DiskStorage,
            dir: &built.dir,
            id: &crate::common::world_id(),
            engine: &fixture.engine,
            compiled: fixture.compiled.clone(),
            from_tick: from,
            to_tick: to,
            runtime_version: "0.1.0",
        };
        let error =
            everarcade_audit::export::export(&request, &mut |_| unreachable!("refused first"))
                .err()
                .unwrap_or_else(|| panic!("{from}..={to} exported"));
        assert_eq!(error.class(), Class::Usage, "{error}");
    }
}

#[test]
fn every_flipped_byte_is_malformed() {
    let built = build("flips", 3, 12, 5);
    let bytes = export_window(&built, 5, 12).bytes;
    verify(&bytes).unwrap();
    let mut flipped = bytes.clone();
    for position in 0..bytes.len() {
        for bit in [0u8, 7] {
            flipped[position] ^= 1 << bit;
            let error = verify(&flipped).expect_err("a flipped bundle verified");
            assert_eq!(error.class(), Class::Malformed, "byte {position}: {error}");
            flipped[position] = bytes[position];
        }
    }
    // Truncated and extended files too.
    for length in [0, 9, 10, 95, 96, 200, bytes.len() - 1] {
        let error = verify(&bytes[..length]).expect_err("a truncated bundle verified");
        assert_eq!(error.class(), Class::Malformed, "length {length}: {error}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(verify(&longer).unwrap_err().class(), Class::Malformed);
}

#[test]
fn resealed_changes_and_other_keys_are_bad_signatures() {
    let built = build("signatures", 4, 10, 0);
    let bytes = export_window(&built, 0, 10).bytes;
    let sealed = decode(&bytes).unwrap();
    // A change with the checksum recomputed but the signature kept.
    let mut bundle = sealed.bundle.clone();
    bundle.ticks[3].roots.state_root = other_hash(1);
    let altered = seal(bundle.encode_body(), &sealed.signature);
    let error = verify(&altered).unwrap_err();
    assert_eq!(error.class(), Class::BadSignature, "{error}");
    // The same body signed by a forger's key, under the world's key history.
    let forger = SigningKey::from_bytes(&[7; 32]);
    let forged = forge(&sealed.bundle, &forger);
    assert_eq!(verify(&forged).unwrap_err().class(), Class::BadSignature);
    // The forger names itself as signer: not in the history.
    let mut bundle = sealed.bundle.clone();
    bundle.operator.signer = forger.verifying_key().to_bytes();
    assert_eq!(
        verify(&forge(&bundle, &forger)).unwrap_err().class(),
        Class::BadSignature
    );
    // A history of its own passes on its own terms, but not against the
    // operator's pinned key.
    bundle.operator = Operator {
        signer: forger.verifying_key().to_bytes(),
        keys: vec![OperatorKey {
            public_key: forger.verifying_key().to_bytes(),
            from_tick: 0,
            to_tick: None,
            endorsement: None,
        }],
    };
    let forged = forge(&bundle, &forger);
    assert!(!verify(&forged).unwrap().trusted);
    let pinned = VerifyOptions {
        trusted_keys: vec![sealed.bundle.operator.signer],
        progress: None,
    };
    let error = verify_bundle(&forged, &fixture().engine, pinned).unwrap_err();
    assert_eq!(error.code(), "untrusted_operator_key");
    assert_eq!(error.class(), Class::BadSignature);
    let pinned = VerifyOptions {
        trusted_keys: vec![sealed.bundle.operator.signer],
        progress: None,
    };
    assert!(
        verify_bundle(&bytes, &fixture().engine, pinned)
            .unwrap()
            .trusted
    );
}

fn divergence(bytes: &[u8]) -> (Tick, &'static str) {
    match verify(bytes) {
        Err(VerifyError::Divergence { first, .. }) => (first.tick, first.root),
        other => panic!("expected a divergence, got {other:?}"),
    }
}

#[test]
fn altered_and_re_signed_records_diverge_at_their_tick_and_root() {
    let built = build("divergence", 5, 12, 4);
    for from in [0, 4, 6] {
        let bundle = contents(&export_window(&built, from, 12).bytes);
        let first = from + 1;
        let mut altered = bundle.clone();
        altered.ticks[2].roots.state_root = other_hash(2);
        assert_eq!(
            divergence(&resign(&built, &altered)),
            (first + 2, "state_root")
        );
        let mut altered = bundle.clone();
        altered.ticks[0].roots.continuity_root = other_hash(3);
        assert_eq!(
            divergence(&resign(&built, &altered)),
            (first, "continuity_root")
        );
        let mut altered = bundle.clone();
        altered.ticks[4].roots.receipt_root = other_hash(4);
        assert_eq!(
            divergence(&resign(&built, &altered)),
            (first + 4, "receipt_root")
        );
        let mut altered = bundle.clone();
        let receipt = &mut altered.ticks[1].receipts[0];
        receipt.fuel_used += 1;
        assert_eq!(
            divergence(&resign(&built, &altered)),
            (first + 1, "receipts")
        );
        // A dropped input changes the input root first.
        let mut altered = bundle.clone();
        let tick = altered
            .ticks
            .iter_mut()
            .find(|t| !t.inputs.is_empty())
            .unwrap();
        let number = tick.roots.tick;
        tick.inputs.pop();
        tick.receipts.remove(tick.inputs.len());
        assert_eq!(
            divergence(&resign(&built, &altered)),
            (number, "input_root")
        );
        // The state the window starts from.
        let mut altered = bundle.clone();
        altered.anchor.state_root = other_hash(5);
        let (tick, root) = divergence(&resign(&built, &altered));
        assert_eq!(tick, from);
        assert!(
            root == "state_root" || root == "genesis_state_root",
            "{root}"
        );
        let mut altered = bundle.clone();
        let last = altered.frontier.len() - 1;
        altered.frontier[last] = other_hash(6);
        assert_eq!(divergence(&resign(&built, &altered)), (from, "accumulator"));
        let mut altered = bundle.clone();
        altered.package_root = other_hash(7);
        assert_eq!(divergence(&resign(&built, &altered)), (0, "package_root"));
    }
}

#[test]
fn tampered_inputs_are_refused_on_replay() {
    let built = build("inputs", 6, 8, 0);
    let bundle = contents(&export_window(&built, 0, 8).bytes);
    let mut altered = bundle.clone();
    let tick = altered
        .ticks
        .iter_mut()
        .find(|t| !t.inputs.is_empty())
        .unwrap();
    let number = tick.roots.tick;
    tick.inputs[0].payload.push(0);
    match verify(&resign(&built, &altered)) {
        Err(VerifyError::InputRefused { tick, index, error }) => {
            assert_eq!((tick, index), (number, 0));
            assert_eq!(error.code(), "bad_signature");
        }
        other => panic!("{other:?}"),
    }
    let mut altered = bundle;
    let tick = altered
        .ticks
        .iter_mut()
        .rev()
        .find(|t| !t.inputs.is_empty())
        .unwrap();
    let replayed = tick.inputs[0].clone();
    tick.inputs.push(replayed);
    let error = verify(&resign(&built, &altered)).unwrap_err();
    assert_eq!(error.code(), "input_refused_at_replay");
    assert_eq!(error.class(), Class::Integrity);
}

#[test]
fn a_checkpoint_that_lies_is_caught() {
    let built = build("checkpoint", 7, 10, 5);
    let bundle = contents(&export_window(&built, 5, 10).bytes);
    let StartState::Checkpoint(bytes) = &bundle.start else {
        panic!("a window from tick 5 starts at a checkpoint")
    };
    // A damaged checkpoint is malformed even when signed.
    let mut altered = bundle.clone();
    let mut damaged = bytes.clone();
    damaged[200] ^= 1;
    altered.start = StartState::Checkpoint(damaged);
    let error = verify(&resign(&built, &altered)).unwrap_err();
    assert_eq!(error.class(), Class::Malformed, "{error}");
    // A checkpoint of another tick of the same world.
    let other = contents(&export_window(&built, 6, 10).bytes);
    let mut altered = bundle.clone();
    altered.start = other.start.clone();
    assert_eq!(
        verify(&resign(&built, &altered)).unwrap_err().class(),
        Class::Malformed
    );
}

#[test]
fn resealed_fuzz_never_panics() {
    let built = build("fuzz", 8, 6, 3);
    let bytes = export_window(&built, 3, 6).bytes;
    let sealed = decode(&bytes).unwrap();
    let body = sealed.bundle.encode_body();
    assert_eq!(body_digest(&body), sealed.digest);
    let mut rng = Rng(8);
    for _ in 0..3000 {
        let mut body = body.clone();
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let at = rng.below(body.len() as u64) as usize;
            body[at] = rng.next_u64() as u8;
        }
        if rng.below(4) == 0 {
            let cut = rng.below(body.len() as u64) as usize;
            body.truncate(cut);
        }
        let resealed = seal(body, &sealed.signature);
        match decode(&resealed) {
            Ok(decoded) => {
                // Whatever decodes has exactly one encoding.
                let body = &resealed[..resealed.len() - 96];
                assert_eq!(decoded.bundle.encode_body(), body);
                assert_eq!(decoded.digest, body_digest(body));
            }
            Err(
                BundleError::Malformed { .. }
                | BundleError::NotABundle
                | BundleError::UnsupportedVersion { .. },
            ) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
}
