//! Admission refuses bad envelopes, each with its own code, and records
//! nothing for them; `execute_tick` refuses more inputs than a tick takes.

use everarcade_engine::EngineError;
use everarcade_protocol::{Envelope, SignatureRule, WorldId, test_signing_key};

use crate::common::*;

/// Admits `envelope` into `world`; returns the refusal code or "admitted".
fn admit(driver: &mut Driver, envelope: &Envelope) -> &'static str {
    match driver.world.admit(envelope) {
        Ok(()) => "admitted",
        Err(error) => error.code(),
    }
}

#[test]
fn bad_envelopes_are_refused_with_their_codes() {
    let mut driver = Driver::new(&guest());
    let key = test_signing_key("alice");
    let sender = key.verifying_key().to_bytes();
    let sign =
        |nonce: u64, payload: &[u8]| Envelope::sign(&world_id(), &key, nonce, payload.to_vec());

    let mut forged = sign(10, b"x");
    forged.signature[0] ^= 1;
    let mut tampered = sign(10, b"x");
    tampered.payload[0] ^= 1;
    let other_world = Envelope::sign(&WorldId::new("world-002").unwrap(), &key, 10, b"x".to_vec());
    let cases = [
        (sign(5, b"a"), "admitted"),
        (forged, "bad_signature"),
        (tampered, "bad_signature"),
        (other_world, "wrong_world"),
        (sign(5, b"b"), "stale_nonce"),
        (sign(3, b"c"), "stale_nonce"),
        (sign(0, b"d"), "stale_nonce"),
        (sign(6, &[0; PAYLOAD_BYTES + 1]), "payload_too_large"),
        (sign(6, &[0; PAYLOAD_BYTES]), "admitted"),
        (sign(7, b""), "admitted"),
    ];
    for (envelope, code) in &cases {
        assert_eq!(
            admit(&mut driver, envelope),
            *code,
            "nonce {} payload {:?}",
            envelope.nonce,
            envelope.payload
        );
    }
    // Refused envelopes (some with nonce 10) recorded nothing.
    assert_eq!(driver.world.nonces().get(&sender), Some(&7));
    assert_eq!(driver.world.nonces().len(), 1);
}

#[test]
fn admit_all_stops_at_the_first_refusal_with_admits_error() {
    let key = test_signing_key("alice");
    let sign = |nonce: u64| Envelope::sign(&world_id(), &key, nonce, b"x".to_vec());
    // Enough envelopes for the signatures to be checked on several threads.
    let good: Vec<Envelope> = (1..=40).map(sign).collect();
    let mut driver = Driver::new(&guest());
    driver.world.admit_all(&good).unwrap();
    let sender = key.verifying_key().to_bytes();
    assert_eq!(driver.world.nonces().get(&sender), Some(&40));

    // A bad signature at 29 on an envelope that is also for another world:
    // admission names the world first, as `admit` does.
    let mut batch: Vec<Envelope> = (41..=80).map(sign).collect();
    batch[29].world = WorldId::new("world-002").unwrap();
    let mut one_by_one = Driver::new(&guest());
    one_by_one.world.admit_all(&good).unwrap();
    let expected = batch
        .iter()
        .enumerate()
        .find_map(|(index, envelope)| {
            one_by_one
                .world
                .admit(envelope)
                .err()
                .map(|error| (index, error))
        })
        .unwrap();
    let refused = driver.world.admit_all(&batch).unwrap_err();
    assert_eq!(refused, expected);
    assert_eq!((refused.0, refused.1.code()), (29, "wrong_world"));
    assert_eq!(
        driver.world.nonces().get(&sender),
        Some(&69),
        "those before it stay"
    );

    // A forged signature alone is a bad signature at its index.
    let mut forged: Vec<Envelope> = (70..=90).map(sign).collect();
    forged[12].signature[3] ^= 1;
    let refused = driver.world.admit_all(&forged).unwrap_err();
    assert_eq!((refused.0, refused.1.code()), (12, "bad_signature"));
}

#[test]
fn nonces_are_per_sender() {
    let mut driver = Driver::new(&guest());
    for name in ["alice", "bob"] {
        let envelope = Envelope::sign(&world_id(), &test_signing_key(name), 1, b"x".to_vec());
        assert_eq!(admit(&mut driver, &envelope), "admitted", "{name}");
    }
    let replay = Envelope::sign(&world_id(), &test_signing_key("bob"), 1, b"x".to_vec());
    assert_eq!(admit(&mut driver, &replay), "stale_nonce");
}

#[test]
fn too_many_inputs_is_an_error_and_changes_nothing() {
    let mut driver = Driver::new(&guest());
    let envelopes: Vec<Envelope> = (0..=INPUTS_PER_TICK)
        .map(|i| driver.envelope(&[APPLY, i as u8]))
        .collect();
    let root = driver.world.state_root();
    let continuity = driver.world.continuity_root();
    match driver.world.execute_tick(&driver.engine, &envelopes) {
        Err(EngineError::TooManyInputs { tick, count, limit }) => {
            assert_eq!(
                (tick, count, limit as usize),
                (1, INPUTS_PER_TICK + 1, INPUTS_PER_TICK)
            );
        }
        Err(error) => panic!("unexpected error {error}"),
        Ok(_) => panic!("a tick took {} inputs", envelopes.len()),
    }
    assert_eq!(driver.world.tick(), 0);
    assert_eq!(driver.world.continuity_root(), continuity);
    assert_eq!(driver.world.state_root(), root);
    // Exactly the limit is fine, and the tick then executes every input.
    let output = driver
        .world
        .execute_tick(&driver.engine, &envelopes[..INPUTS_PER_TICK])
        .expect("tick");
    assert_eq!(output.receipts.len(), INPUTS_PER_TICK + 1);
    assert_eq!(
        driver.world.state().get(b"k"),
        Some([APPLY, INPUTS_PER_TICK as u8 - 1].as_slice())
    );
}

#[test]
fn oversize_payload_that_skipped_admission_is_an_error() {
    let mut driver = Driver::new(&guest());
    let key = test_signing_key("alice");
    let oversize = Envelope::sign(&world_id(), &key, 1, vec![APPLY; PAYLOAD_BYTES + 1]);
    let error = driver
        .world
        .execute_tick(&driver.engine, &[oversize])
        .expect_err("refused");
    assert_eq!(error.code(), "payload_too_large");
    assert_eq!(driver.world.tick(), 0);
}

/// A world whose manifest says `signatures = "zip215"`: its profile (so
/// `C(0)`) differs from `strict`'s, which is the default's; it admits a
/// signature only the cofactored equation accepts (a small-order key and
/// `R` with `s = 0`), which a strict world refuses; and `admit_all` finds a
/// forgery in a batch at its index with `admit`'s error.
#[test]
fn a_zip215_world_checks_under_zip215_in_batches() {
    let engine = everarcade_engine::Engine::new().unwrap();
    let open = |rule_line: &str| {
        let package = package_with(
            &guest(),
            &[(
                "tick_rate_hz = 20",
                &format!("tick_rate_hz = 20\n{rule_line}"),
            )],
        )
        .unwrap();
        let compiled = engine.compile(&package).unwrap();
        everarcade_engine::World::genesis(&engine, world_id(), compiled)
            .unwrap()
            .0
    };
    let mut zip215 = open("signatures = \"zip215\"");
    let mut strict = open("signatures = \"strict\"");
    let mut default = Driver::new(&guest()).world;
    assert_eq!(zip215.signature_rule(), SignatureRule::Zip215);
    assert_eq!(strict.signature_rule(), SignatureRule::Strict);
    let profile = |world: &everarcade_engine::World| world.compiled().package.profile();
    assert_eq!(profile(&strict), profile(&default), "strict is the default");
    assert_eq!(profile(&strict).flags, 0x7F);
    assert_eq!(
        profile(&zip215).flags,
        0xFF,
        "the rule is in the profile, so in C(0)"
    );
    assert_ne!(profile(&zip215).hash(), profile(&strict).hash());

    // Identity key and identity `R`, `s = 0`: `[8]([0]B − R − [k]A)` is the identity.
    let mut small_order = Envelope::sign(&world_id(), &test_signing_key("x"), 1, b"x".to_vec());
    small_order.sender = [0; 32];
    small_order.sender[0] = 1;
    small_order.signature = [0; 64];
    small_order.signature[0] = 1;
    assert_eq!(
        strict.admit(&small_order).unwrap_err().code(),
        "bad_signature"
    );
    assert_eq!(
        default.admit(&small_order).unwrap_err().code(),
        "bad_signature"
    );
    zip215.admit(&small_order).unwrap();

    let key = test_signing_key("alice");
    let sign = |nonce: u64| Envelope::sign(&world_id(), &key, nonce, b"x".to_vec());
    let good: Vec<Envelope> = (1..=40).map(sign).collect();
    zip215.admit_all(&good).unwrap();
    let mut forged: Vec<Envelope> = (41..=90).map(sign).collect();
    forged[33].signature[40] ^= 2;
    let refused = zip215.admit_all(&forged).unwrap_err();
    assert_eq!((refused.0, refused.1.code()), (33, "bad_signature"));
    let sender = key.verifying_key().to_bytes();
    assert_eq!(
        zip215.nonces().get(&sender),
        Some(&73),
        "those before it stay"
    );
}
