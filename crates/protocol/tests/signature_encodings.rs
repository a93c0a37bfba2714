//! Which encodings of the sender key and of `R` the signature rule accepts
//! (docs/PROTOCOL.md §4.3), each built by hand: non-canonical `y ≥ p`,
//! `x = 0` with the sign bit set, the eight small-order points, and the
//! signatures whose cofactorless equation holds but which `verify_strict`
//! refuses for a small-order point. Each case states accept or refuse as
//! the document does and asserts the envelope check agrees.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use sha2::{Digest, Sha512};

fn bytes(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

/// The vector-5 envelope of docs/PROTOCOL.md §11.1: alice, nonce 1, payload `01`.
fn alice_envelope() -> Envelope {
    let world = WorldId::new("world-001").unwrap();
    Envelope::sign(&world, &test_signing_key("alice"), 1, vec![0x01])
}

/// `p + offset` little-endian, with the sign bit (bit 255) as given.
fn p_plus(offset: u8, sign: bool) -> [u8; 32] {
    let mut out = [0xff; 32];
    out[0] = 0xed + offset;
    out[31] = if sign { 0xff } else { 0x7f };
    out
}

/// The `y mod p` values in 0..19 for which a point exists (docs §4.3).
const ON_CURVE_BELOW_19: [u8; 12] = [0, 1, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18];

/// The canonical encodings of the eight points of order dividing 8.
const SMALL_ORDER: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// Whether `sender` is accepted as a key: it decodes and is not of small
/// order (steps 1 and 4). The final equation is a separate matter.
fn key_accepted(sender: &[u8; 32]) -> bool {
    VerifyingKey::from_bytes(sender).is_ok_and(|key| !key.is_weak())
}

/// Alice's envelope with `R` replaced: refused whatever `R` is unless it is
/// her own, so this checks only that nothing panics and the code is stable.
fn with_r(r: &[u8; 32]) -> Envelope {
    let mut envelope = alice_envelope();
    envelope.signature[..32].copy_from_slice(r);
    envelope
}

#[test]
fn y_at_or_above_p_decodes_modulo_p() {
    for offset in 0..19u8 {
        for sign in [false, true] {
            let encoding = p_plus(offset, sign);
            let point = CompressedEdwardsY(encoding).decompress();
            let on_curve = ON_CURVE_BELOW_19.contains(&offset);
            assert_eq!(point.is_some(), on_curve, "y = p + {offset}, sign {sign}");
            let Some(point) = point else {
                assert!(!key_accepted(&encoding));
                continue;
            };
            // The point is the one whose canonical y is `offset`; compressing
            // it never gives these bytes back.
            let canonical = point.compress().to_bytes();
            assert_eq!(canonical[0], offset);
            assert!(canonical[1..31].iter().all(|b| *b == 0));
            assert_ne!(canonical, encoding);
            // y = 0 (order 4) and y = 1 (the identity) are of small order:
            // refused as a key. The others are accepted as a key, bytes as given.
            let small = offset <= 1;
            assert_eq!(point.is_small_order(), small);
            assert_eq!(key_accepted(&encoding), !small, "y = p + {offset}");
            if !small {
                let key = VerifyingKey::from_bytes(&encoding).unwrap();
                assert_eq!(key.as_bytes(), &encoding, "not re-encoded");
            }
            // As R it is always refused: [s]B − [k]A compresses canonically.
            let refused = with_r(&encoding).verify_signature().unwrap_err();
            assert_eq!(refused.code(), "bad_signature");
        }
    }
    // The document's vector: y = p + 3 is a key, y = p + 2 is not a point.
    assert!(key_accepted(&bytes(
        "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
    )));
    assert!(!key_accepted(&bytes(
        "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
    )));
}

#[test]
fn the_eight_small_order_points_are_refused_as_keys() {
    let mut points = Vec::new();
    for text in SMALL_ORDER {
        let encoding = bytes(text);
        let point = CompressedEdwardsY(encoding).decompress().expect("a point");
        assert!(point.is_small_order(), "{text}");
        assert_eq!(point.compress().to_bytes(), encoding, "canonical: {text}");
        assert!(!key_accepted(&encoding), "{text}");
        points.push(point);
    }
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            assert_ne!(a, b, "eight distinct points");
        }
    }
}

#[test]
fn x_zero_with_the_sign_bit_set_decodes_but_is_of_small_order() {
    // (0, 1) and (0, −1) with bit 255 set: RFC 8032 would refuse the
    // encodings; curve25519-dalek decodes them to the canonical points.
    for (signed, canonical) in [
        (
            "0100000000000000000000000000000000000000000000000000000000000080",
            "0100000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
    ] {
        let point = CompressedEdwardsY(bytes(signed)).decompress().unwrap();
        assert_eq!(point.compress().to_bytes(), bytes(canonical));
        assert!(point.is_small_order());
        assert!(!key_accepted(&bytes(signed)));
        let refused = with_r(&bytes(signed)).verify_signature().unwrap_err();
        assert_eq!(refused.code(), "bad_signature");
    }
}

/// Vector A of docs §4.3: sender `(0, 1)` with the sign bit, `R` = the
/// identity, `s` = 0. `[0]B − [k]·identity` is the identity, so the
/// cofactorless equation holds for every message; only step 4 refuses it.
#[test]
fn a_small_order_sender_is_refused_although_the_equation_holds() {
    let mut envelope = alice_envelope();
    envelope.sender = bytes("0100000000000000000000000000000000000000000000000000000000000080");
    envelope.signature = [0; 64];
    envelope.signature[0] = 0x01;
    let key = VerifyingKey::from_bytes(&envelope.sender).expect("decodes");
    let signature = Signature::from_bytes(&envelope.signature);
    key.verify(&envelope.signing_message(), &signature)
        .expect("the equation holds: plain verify accepts");
    let refused = envelope.verify_signature().unwrap_err();
    assert_eq!(refused.code(), "bad_signature");
}

/// Vector B of docs §4.3: alice's key, `R` = the identity and
/// `s = k · a mod ℓ`, so `[s]B − [k]A` is the identity: the equation holds,
/// and only step 4 (R of small order) refuses it.
#[test]
fn a_small_order_r_is_refused_although_the_equation_holds() {
    let alice = test_signing_key("alice");
    let mut envelope = alice_envelope();
    let identity = bytes("0100000000000000000000000000000000000000000000000000000000000000");
    let k = Sha512::new()
        .chain_update(identity)
        .chain_update(envelope.sender)
        .chain_update(envelope.signing_message())
        .finalize();
    let k = Scalar::from_bytes_mod_order_wide(&k.into());
    let s = k * alice.to_scalar();
    envelope.signature[..32].copy_from_slice(&identity);
    envelope.signature[32..].copy_from_slice(s.as_bytes());
    assert_eq!(
        hex::encode(s.as_bytes()),
        VECTOR_B_S,
        "the s printed in docs §4.3"
    );
    let key = VerifyingKey::from_bytes(&envelope.sender).unwrap();
    key.verify(
        &envelope.signing_message(),
        &Signature::from_bytes(&envelope.signature),
    )
    .expect("the equation holds: plain verify accepts");
    let refused = envelope.verify_signature().unwrap_err();
    assert_eq!(refused.code(), "bad_signature");
}

/// `s` of vector B.
const VECTOR_B_S: &str = "e250db23b46e2b531927ed9538de0704d61dccb730382425476d65cbbeeb240e";

/// Vector C of docs §4.3: alice's valid vector-5 signature with `s + ℓ`
/// in place of `s` is refused (step 2), though it is the same scalar mod ℓ.
#[test]
fn a_non_canonical_s_is_refused() {
    let mut envelope = alice_envelope();
    envelope.verify_signature().expect("vector 5 verifies");
    let s: [u8; 32] = envelope.signature[32..].try_into().unwrap();
    let ell = bytes("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut sum = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let total = s[i] as u16 + ell[i] as u16 + carry;
        sum[i] = total as u8;
        carry = total >> 8;
    }
    assert_eq!(carry, 0, "s + ℓ < 2^256");
    envelope.signature[32..].copy_from_slice(&sum);
    assert_eq!(
        hex::encode(sum),
        VECTOR_C_S,
        "the s + ℓ printed in docs §4.3"
    );
    let refused = envelope.verify_signature().unwrap_err();
    assert_eq!(refused.code(), "bad_signature");
}

/// `s + ℓ` of vector C.
const VECTOR_C_S: &str = "4e9c53a96c941bda95dc85b37f8a377fdcd9b75208d1d169471c93a09f99b71d";
