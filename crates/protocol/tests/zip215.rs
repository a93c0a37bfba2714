//! The ZIP-215 signature rule of docs/PROTOCOL.md §4.3: the edge-case
//! vectors (every small-order key and `R`, canonical or not, with `s = 0`),
//! the vectors A–C under both rules, a torsion-shifted signature that only
//! the cofactored equation accepts, and batches: a batch accepts iff every
//! single check does, and a forged signature is found at its index with
//! the same error as a single check.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use everarcade_protocol::signature::{self, Item};
use everarcade_protocol::{Envelope, EnvelopeError, SignatureRule, WorldId, test_signing_key};
use proptest::prelude::*;
use sha2::{Digest, Sha512};

fn bytes(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn world() -> WorldId {
    WorldId::new("world-001").unwrap()
}

/// The vector-5 envelope of docs/PROTOCOL.md §11.1: alice, nonce 1, payload `01`.
fn alice_envelope() -> Envelope {
    Envelope::sign(&world(), &test_signing_key("alice"), 1, vec![0x01])
}

/// The 14 encodings of points of order dividing 8 that ZIP-215's vectors
/// use: the 8 canonical ones and the 6 non-canonical ones (`x = 0` with the
/// sign bit set for `y = 1` and `y = −1`; `y = p` and `y = p + 1`, each
/// with both sign bits). docs §4.3 lists them all.
const SMALL_ORDER_ENCODINGS: [&str; 14] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

fn small_order_signature(r: &[u8; 32]) -> [u8; 64] {
    let mut out = [0; 64];
    out[..32].copy_from_slice(r);
    out
}

#[test]
fn the_encodings_are_the_small_order_points() {
    let canonical: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|point| point.compress().to_bytes())
        .collect();
    for (index, text) in SMALL_ORDER_ENCODINGS.iter().enumerate() {
        let point = CompressedEdwardsY(bytes(text))
            .decompress()
            .unwrap_or_else(|| panic!("{text} decodes"));
        assert!(point.is_small_order(), "{text}");
        assert_eq!(canonical.contains(&bytes(text)), index < 8, "{text}");
    }
}

/// ZIP-215's 196 vectors: key and `R` each one of the 14 encodings, `s = 0`,
/// message `Zcash`. `[8][0]B = [8]R + [8][k]A` holds (both sides are the
/// identity), so ZIP-215 accepts all 196, alone and as one batch;
/// `verify_strict` refuses all 196 (step 4).
#[test]
fn zip215_accepts_all_196_small_order_vectors_and_strict_none() {
    let cases: Vec<([u8; 32], [u8; 64])> = SMALL_ORDER_ENCODINGS
        .iter()
        .flat_map(|key| {
            SMALL_ORDER_ENCODINGS
                .iter()
                .map(move |r| (bytes(key), small_order_signature(&bytes(r))))
        })
        .collect();
    assert_eq!(cases.len(), 196);
    let items: Vec<Item<'_>> = cases
        .iter()
        .map(|(sender, signature)| Item {
            sender,
            message: b"Zcash",
            signature,
        })
        .collect();
    for item in &items {
        assert!(signature::verify(SignatureRule::Zip215, *item), "{item:?}");
        assert!(!signature::verify(SignatureRule::Strict, *item), "{item:?}");
    }
    assert!(signature::verify_batch_zip215(&items));
    assert_eq!(
        signature::verify_each(SignatureRule::Zip215, &items),
        vec![true; 196]
    );
    // The same through envelopes: any message works, the equation does not
    // depend on it.
    let envelopes: Vec<Envelope> = cases
        .iter()
        .map(|(sender, signature)| Envelope {
            sender: *sender,
            signature: *signature,
            ..alice_envelope()
        })
        .collect();
    let zip215 = Envelope::verify_signatures_under(&envelopes, SignatureRule::Zip215);
    assert!(zip215.iter().all(Result::is_ok));
    let strict = Envelope::verify_signatures_under(&envelopes, SignatureRule::Strict);
    assert!(
        strict
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.code() == "bad_signature"))
    );
}

/// Vectors A and B of docs §4.3 (refused by `verify_strict` for a small-order
/// key or `R`) are accepted under ZIP-215; vector C (`s + ℓ`) is refused
/// under both, as are a key that does not decode and a corrupted signature.
#[test]
fn vectors_a_b_c_under_both_rules() {
    let mut a = alice_envelope();
    a.sender = bytes("0100000000000000000000000000000000000000000000000000000000000080");
    a.signature = small_order_signature(&bytes(SMALL_ORDER_ENCODINGS[0]));

    let alice = test_signing_key("alice");
    let mut b = alice_envelope();
    let identity = bytes(SMALL_ORDER_ENCODINGS[0]);
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(identity)
            .chain_update(b.sender)
            .chain_update(b.signing_message())
            .finalize()
            .into(),
    );
    b.signature[..32].copy_from_slice(&identity);
    b.signature[32..].copy_from_slice((k * alice.to_scalar()).as_bytes());
    assert_eq!(
        hex::encode(&b.signature[32..]),
        "e250db23b46e2b531927ed9538de0704d61dccb730382425476d65cbbeeb240e"
    );

    let mut c = alice_envelope();
    c.signature[32..].copy_from_slice(&bytes(
        "4e9c53a96c941bda95dc85b37f8a377fdcd9b75208d1d169471c93a09f99b71d",
    ));

    let mut undecodable = alice_envelope();
    undecodable.sender = [0xff; 32];
    undecodable.sender[0] = 0xef; // y = p + 2: no point (docs §4.3)
    let mut corrupted = alice_envelope();
    corrupted.signature[3] ^= 1;

    for (name, envelope, strict, zip215) in [
        ("A", &a, false, true),
        ("B", &b, false, true),
        ("C", &c, false, false),
        ("y = p + 2 key", &undecodable, false, false),
        ("corrupted R", &corrupted, false, false),
        ("vector 5", &alice_envelope(), true, true),
    ] {
        for (rule, expected) in [
            (SignatureRule::Strict, strict),
            (SignatureRule::Zip215, zip215),
        ] {
            let got = envelope.verify_signature_under(rule);
            assert_eq!(got.is_ok(), expected, "{name} under {rule:?}");
            if let Err(error) = got {
                assert_eq!(error.code(), "bad_signature");
            }
        }
    }
}

/// Alice signs with `R = [r]B + T`, `T` of order 8: the cofactorless
/// equation is off by `T`, so `verify_strict` (and dalek's batch, which
/// multiplies by the cofactor) disagree; under ZIP-215 the single check
/// and the batch both accept.
fn torsion_shifted(nonce: u64, torsion: usize) -> Envelope {
    let alice = test_signing_key("alice");
    let mut envelope = Envelope::sign(&world(), &alice, nonce, vec![nonce as u8]);
    let r = Scalar::from(1_000_003u64 + nonce);
    let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[torsion])
        .compress()
        .to_bytes();
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(big_r)
            .chain_update(envelope.sender)
            .chain_update(envelope.signing_message())
            .finalize()
            .into(),
    );
    let s = r + k * alice.to_scalar();
    envelope.signature[..32].copy_from_slice(&big_r);
    envelope.signature[32..].copy_from_slice(s.as_bytes());
    envelope
}

#[test]
fn a_torsion_shifted_r_passes_zip215_alone_and_in_a_batch_but_not_strict() {
    for torsion in 1..8 {
        let envelope = torsion_shifted(torsion as u64, torsion);
        assert!(
            envelope
                .verify_signature_under(SignatureRule::Zip215)
                .is_ok()
        );
        assert!(
            envelope
                .verify_signature_under(SignatureRule::Strict)
                .is_err()
        );
    }
    // With no torsion it is an ordinary valid signature under both.
    let plain = torsion_shifted(9, 0);
    assert!(plain.verify_signature_under(SignatureRule::Strict).is_ok());
    let batch: Vec<Envelope> = (0..40)
        .map(|i| torsion_shifted(i, i as usize % 8))
        .collect();
    let checked = Envelope::verify_signatures_under(&batch, SignatureRule::Zip215);
    assert!(checked.iter().all(Result::is_ok));
}

/// One envelope of a generated batch: a valid signature by one of a few
/// signers, possibly spoilt in one of several ways.
#[derive(Clone, Copy, Debug)]
enum Case {
    Valid,
    TorsionShifted,
    SmallOrder,
    FlippedSignatureBit(u8),
    FlippedPayload,
    NonCanonicalS,
    UndecodableKey,
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        6 => Just(Case::Valid),
        1 => Just(Case::TorsionShifted),
        1 => Just(Case::SmallOrder),
        1 => (0u8..64).prop_map(Case::FlippedSignatureBit),
        1 => Just(Case::FlippedPayload),
        1 => Just(Case::NonCanonicalS),
        1 => Just(Case::UndecodableKey),
    ]
}

fn build(index: usize, case: Case) -> Envelope {
    let key = test_signing_key(&format!("signer-{}", index % 5));
    let mut envelope = Envelope::sign(&world(), &key, index as u64 + 1, vec![index as u8; 3]);
    match case {
        Case::Valid => {}
        Case::TorsionShifted => envelope = torsion_shifted(index as u64 + 1, 1 + index % 7),
        Case::SmallOrder => {
            envelope.sender = bytes(SMALL_ORDER_ENCODINGS[index % 14]);
            envelope.signature =
                small_order_signature(&bytes(SMALL_ORDER_ENCODINGS[(index * 5) % 14]));
        }
        Case::FlippedSignatureBit(bit) => envelope.signature[bit as usize] ^= 1 << (index % 8),
        Case::FlippedPayload => envelope.payload[0] ^= 0x80,
        Case::NonCanonicalS => envelope.signature[63] |= 0xf0,
        Case::UndecodableKey => {
            envelope.sender = [0xff; 32];
            envelope.sender[0] = 0xef;
        }
    }
    envelope
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A batch accepts iff every single check accepts, and the checked
    /// results (batch, then singles to locate a failure, on every core)
    /// are exactly the single checks, error for error.
    #[test]
    fn batch_accepts_iff_all_singles_accept(cases in proptest::collection::vec(case(), 0..40)) {
        let envelopes: Vec<Envelope> =
            cases.iter().enumerate().map(|(i, case)| build(i, *case)).collect();
        let singles: Vec<Result<(), EnvelopeError>> = envelopes
            .iter()
            .map(|e| e.verify_signature_under(SignatureRule::Zip215))
            .collect();
        let messages: Vec<Vec<u8>> = envelopes.iter().map(Envelope::signing_message).collect();
        let items: Vec<Item<'_>> = envelopes
            .iter()
            .zip(&messages)
            .map(|(e, message)| Item { sender: &e.sender, message, signature: &e.signature })
            .collect();
        prop_assert_eq!(
            signature::verify_batch_zip215(&items),
            singles.iter().all(Result::is_ok)
        );
        prop_assert_eq!(
            Envelope::verify_signatures_under(&envelopes, SignatureRule::Zip215),
            singles
        );
    }
}

/// A forged signature anywhere in a batch is found at its index, with the
/// error a single check gives.
#[test]
fn a_forgery_is_found_at_its_index() {
    let envelopes: Vec<Envelope> = (0..64).map(|i| build(i, Case::Valid)).collect();
    for forged_at in [0, 1, 31, 32, 33, 63] {
        let mut batch = envelopes.clone();
        batch[forged_at].signature[40] ^= 4;
        let checked = Envelope::verify_signatures_under(&batch, SignatureRule::Zip215);
        for (index, result) in checked.iter().enumerate() {
            if index == forged_at {
                let expected = batch[index].verify_signature().unwrap_err();
                assert_eq!(result.as_ref().unwrap_err(), &expected);
                assert_eq!(expected.code(), "bad_signature");
            } else {
                assert!(
                    result.is_ok(),
                    "index {index} with a forgery at {forged_at}"
                );
            }
        }
    }
}
