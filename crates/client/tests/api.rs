//! The wire shapes without a node: request bodies, answer parsing, error
//! bodies, and proof and receipt-root checks on real states and receipts.

use everarcade_client::api::{self, Encoding, StateAnswer};
use everarcade_client::{Ack, ClientError, Refusal, Status, TickInfo, verify_state_answer};
use everarcade_protocol::{
    Envelope, Hash, Outcome, Receipt, ReceiptKind, WorldId, list_root, test_signing_key,
};
use everarcade_state::{ProofError, State};
use serde_json::{Value, json};

fn envelope(name: &str, nonce: u64, payload: &[u8]) -> Envelope {
    let world = WorldId::new("world-001").unwrap();
    Envelope::sign(&world, &test_signing_key(name), nonce, payload.to_vec())
}

fn hex_of(byte: u8) -> String {
    hex::encode([byte; 32])
}

#[test]
fn json_envelope_has_exactly_the_five_documented_fields() {
    let e = envelope("alice", 7, &[0xAB, 0x01]);
    let body: Value = serde_json::from_slice(&api::single_body(&e, Encoding::Json)).unwrap();
    let expected = json!({
        "world": "world-001",
        "sender": hex::encode(e.sender),
        "nonce": 7,
        "payload": "ab01",
        "signature": hex::encode(e.signature),
    });
    assert_eq!(body, expected);
    assert_eq!(body["signature"].as_str().unwrap().len(), 128);
    assert_eq!(body["sender"].as_str().unwrap().len(), 64);
}

#[test]
fn json_batch_wraps_envelopes_in_order() {
    let batch = [envelope("alice", 1, b"a"), envelope("bob", 1, b"")];
    let body: Value = serde_json::from_slice(&api::batch_body(&batch, Encoding::Json)).unwrap();
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 1, "only `envelopes`");
    let envelopes = body["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 2);
    assert_eq!(envelopes[0]["sender"], hex::encode(batch[0].sender));
    assert_eq!(envelopes[1]["payload"], "");
    assert_eq!(
        envelopes[1],
        serde_json::from_slice::<Value>(&api::single_body(&batch[1], Encoding::Json)).unwrap()
    );
}

#[test]
fn binary_bodies_are_envelope_encodings_back_to_back() {
    let batch = [
        envelope("alice", 1, b"x"),
        envelope("bob", 9, &[0; 300]),
        envelope("carol", 2, b""),
    ];
    assert_eq!(
        api::single_body(&batch[0], Encoding::Binary),
        batch[0].encode()
    );
    let body = api::batch_body(&batch, Encoding::Binary);
    let mut rest = body.as_slice();
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        let (envelope, used) = Envelope::decode_prefix(rest).unwrap();
        decoded.push(envelope);
        rest = &rest[used..];
    }
    assert_eq!(decoded, batch);
    assert_eq!(Encoding::Binary.content_type(), "application/octet-stream");
    assert_eq!(Encoding::Json.content_type(), "application/json");
}

#[test]
fn batch_answers_mix_acks_and_refusals() {
    let body = br#"{"results":[{"tick":5,"seq":0},{"error":{"code":"stale_nonce","message":"nonce 1 is not above 3"}},{"tick":5,"seq":1}]}"#;
    let results = api::parse_batch(body).unwrap();
    assert_eq!(
        results,
        vec![
            Ok(Ack { tick: 5, seq: 0 }),
            Err(Refusal {
                code: "stale_nonce".into(),
                message: "nonce 1 is not above 3".into()
            }),
            Ok(Ack { tick: 5, seq: 1 }),
        ]
    );
    assert_eq!(
        api::parse_batch(br#"{"tick":9,"seq":3}"#).unwrap(),
        vec![Ok(Ack { tick: 9, seq: 3 })]
    );
    for bad in [
        &b"not json"[..],
        br#"{"results":[{"tick":"x"}]}"#,
        br#"{"tick":1}"#,
        br#"[]"#,
    ] {
        assert!(
            api::parse_batch(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn error_bodies_parse_only_in_the_documented_shape() {
    let refusal = api::parse_error(
        br#"{"error":{"code":"tick_full","message":"tick 8 is full (1024 inputs)"}}"#,
    )
    .unwrap();
    assert_eq!(refusal.code, "tick_full");
    assert_eq!(refusal.message, "tick 8 is full (1024 inputs)");
    assert_eq!(api::parse_error(br#"{"code":"tick_full"}"#), None);
    assert_eq!(api::parse_error(b"<html>502</html>"), None);
    assert_eq!(
        api::parse_error(br#"{"error":{"code":"x"}}"#),
        None,
        "message is required"
    );
}

fn status_json() -> Value {
    json!({"world":"world-001","head_tick":1234,"state_root":hex_of(1),"input_root":hex_of(2),"receipt_root":hex_of(3),
     "continuity_root":hex_of(4),"genesis_root":hex_of(5),"package_root":hex_of(6),"admission":"open",
     "ready":true,"not_ready_reason":null,"pid":4242,"uptime_ms":60512,"tick_rate_hz":20,
     "achieved_tick_rate_hz":19.98,"pending_inputs":3,"checkpoint_tick":1000,
     "address":"127.0.0.1:8080","amnesia":false,"operator_public_key":hex_of(7),"incident":null,
     "role":"authority","authority":"http://127.0.0.1:8080","lag_ticks":0,"follow_error":null,"followers":[],"caught_up_from_checkpoint":null,"live":true})
}

#[test]
fn status_parses_the_documented_example() {
    let status: Status = api::parse(status_json().to_string().as_bytes()).unwrap();
    assert_eq!(status.head_tick, 1234);
    assert_eq!(status.state_root, Hash([1; 32]));
    assert_eq!(status.package_root, Hash([6; 32]));
    assert_eq!(status.tick_rate_hz, 20.0);
    assert_eq!(status.checkpoint_tick, Some(1000));
    assert_eq!(status.not_ready_reason, None);
    assert_eq!(status.operator_public_key, [7; 32]);
    assert_eq!(status.incident, None);
    let mut extra = status_json();
    extra["future_field"] = json!("ignored");
    assert!(
        api::parse::<Status>(extra.to_string().as_bytes()).is_ok(),
        "unknown answer fields are ignored"
    );
    let mut short = status_json();
    short["state_root"] = json!("abcd");
    let error = api::parse::<Status>(short.to_string().as_bytes()).unwrap_err();
    assert!(error.contains("64"), "{error}");
    let mut missing = status_json();
    let head_tick = missing
        .as_object_mut()
        .unwrap()
        .remove("head_tick")
        .unwrap();
    assert!(api::parse::<Status>(missing.to_string().as_bytes()).is_err());
    missing["height"] = head_tick;
    let old: Status = api::parse(missing.to_string().as_bytes()).unwrap();
    assert_eq!(
        old.head_tick, 1234,
        "a node from before the rename sends `height`"
    );
    let mut short_key = status_json();
    short_key["operator_public_key"] = json!("07");
    let error = api::parse::<Status>(short_key.to_string().as_bytes()).unwrap_err();
    assert!(error.contains("64 hex digits"), "{error}");
}

#[test]
fn status_names_a_standing_incident_and_reencodes_as_the_node_sent_it() {
    let mut stopped = status_json();
    stopped["tick_rate_hz"] = json!(20.0); // the node sends a float
    stopped["ready"] = json!(false);
    stopped["not_ready_reason"] = json!("incident");
    stopped["incident"] = json!({"kind": "divergence", "tick": 77,
        "record": "incidents/0000000077-divergence.json", "message": "state root differs"});
    let status: Status = api::parse(stopped.to_string().as_bytes()).unwrap();
    let incident = status.incident.as_ref().expect("the incident is read");
    assert_eq!((incident.kind.as_str(), incident.tick), ("divergence", 77));
    // `status --json` prints the typed status again: every field as sent.
    assert_eq!(serde_json::to_value(&status).unwrap(), stopped);
    let mut bad = stopped;
    bad["incident"]["tick"] = json!("soon");
    assert!(api::parse::<Status>(bad.to_string().as_bytes()).is_err());
}

fn receipt_json(receipt: &Receipt) -> Value {
    let kind = match receipt.kind {
        ReceiptKind::Input => "input",
        ReceiptKind::TickHook => "tick_hook",
        ReceiptKind::GenesisHook => "genesis_hook",
    };
    json!({"kind": kind, "subject": receipt.subject.to_hex(), "outcome": receipt.outcome.name(),
           "code": receipt.outcome.code(), "fuel_used": receipt.fuel_used,
           "events_hash": receipt.events_hash.to_hex(), "event_count": receipt.event_count})
}

fn receipts() -> Vec<Receipt> {
    let input = |subject: u8, outcome: Outcome| Receipt {
        kind: ReceiptKind::Input,
        subject: Hash([subject; 32]),
        outcome,
        fuel_used: 1234 + u64::from(subject),
        events_hash: Hash([9; 32]),
        event_count: u32::from(subject),
    };
    vec![
        input(1, Outcome::Applied),
        input(2, Outcome::Rejected(7)),
        input(
            3,
            Outcome::Trapped(everarcade_protocol::TrapClass::Unreachable),
        ),
        input(4, Outcome::OutOfFuel),
        Receipt {
            kind: ReceiptKind::TickHook,
            subject: Hash::ZERO,
            outcome: Outcome::Applied,
            fuel_used: 99,
            events_hash: Hash([8; 32]),
            event_count: 0,
        },
    ]
}

#[test]
fn tick_receipts_fold_to_the_protocol_receipt_root() {
    let receipts = receipts();
    let root = list_root(&receipts.iter().map(Receipt::hash).collect::<Vec<_>>());
    let body = json!({"tick":7,"input_root":hex_of(1),"receipt_root":root.to_hex(),"state_root":hex_of(2),
        "continuity_root":hex_of(3),"input_count":4,"receipts":receipts.iter().map(receipt_json).collect::<Vec<_>>()});
    let info: TickInfo = api::parse(body.to_string().as_bytes()).unwrap();
    assert_eq!(info.computed_receipt_root(), Some(root));
    for (view, receipt) in info.receipts.iter().zip(&receipts) {
        assert_eq!(view.to_receipt(), Some(*receipt));
    }
    let mut tampered = info.clone();
    tampered.receipts[1].fuel_used += 1;
    assert_ne!(tampered.computed_receipt_root(), Some(root));
    let mut unknown = info.clone();
    unknown.receipts[0].outcome = "exploded".into();
    assert_eq!(unknown.computed_receipt_root(), None);
    let mut bad_code = info;
    bad_code.receipts[1].code = 0;
    assert_eq!(
        bad_code.computed_receipt_root(),
        None,
        "rejected with code 0 is not a receipt"
    );
}

/// A state with a few keys and the node's answer for `key`, as JSON.
fn state_answer(state: &mut State, key: &[u8]) -> StateAnswer {
    let proof = state.prove(key);
    let body = json!({"tick": 7, "key": hex::encode(key), "value": state.get(key).map(hex::encode),
        "state_root": state.root().to_hex(), "proof": hex::encode(proof.encode())});
    api::parse(body.to_string().as_bytes()).unwrap()
}

fn sample_state() -> State {
    let mut state = State::new();
    for i in 0u32..200 {
        state.set(format!("key-{i}").as_bytes(), &i.to_le_bytes());
    }
    state
}

fn proof_source(error: ClientError) -> ProofError {
    match error {
        ClientError::Proof { source, .. } => *source,
        other => panic!("expected a proof error, got {other}"),
    }
}

#[test]
fn state_proofs_verify_presence_and_absence() {
    let mut state = sample_state();
    let present = verify_state_answer(b"key-42", state_answer(&mut state, b"key-42")).unwrap();
    assert_eq!(present.value, Some(42u32.to_le_bytes().to_vec()));
    assert_eq!(present.state_root, state.root());
    let absent = verify_state_answer(b"nope", state_answer(&mut state, b"nope")).unwrap();
    assert_eq!(absent.value, None);
}

#[test]
fn a_tampered_proof_is_refused() {
    let mut state = sample_state();
    let answer = state_answer(&mut state, b"key-42");
    assert!(answer.proof.len() > 67, "a proof with siblings");
    for position in [2, answer.proof.len() / 2, answer.proof.len() - 1] {
        let mut tampered = answer.clone();
        tampered.proof[position] ^= 0x01;
        let error = verify_state_answer(b"key-42", tampered).unwrap_err();
        assert_eq!(error.code(), "proof_invalid");
        assert!(
            matches!(proof_source(error), ProofError::RootMismatch { .. }),
            "flipping byte {position}"
        );
    }
    let mut truncated = answer.clone();
    truncated.proof.pop();
    assert!(matches!(
        proof_source(verify_state_answer(b"key-42", truncated).unwrap_err()),
        ProofError::Truncated { .. }
    ));
}

#[test]
fn a_lying_value_or_root_is_refused() {
    let mut state = sample_state();
    let answer = state_answer(&mut state, b"key-42");
    let mut wrong_value = answer.clone();
    wrong_value.value = Some(43u32.to_le_bytes().to_vec());
    assert!(matches!(
        proof_source(verify_state_answer(b"key-42", wrong_value).unwrap_err()),
        ProofError::WrongValue { .. }
    ));
    let mut hidden = answer.clone();
    hidden.value = None;
    assert_eq!(
        proof_source(verify_state_answer(b"key-42", hidden).unwrap_err()),
        ProofError::KeyPresent
    );
    let mut other_root = answer.clone();
    other_root.state_root = Hash([7; 32]);
    assert!(matches!(
        proof_source(verify_state_answer(b"key-42", other_root).unwrap_err()),
        ProofError::RootMismatch { .. }
    ));
    let absent = state_answer(&mut state, b"nope");
    let mut invented = absent;
    invented.value = Some(b"gold".to_vec());
    assert_eq!(
        proof_source(verify_state_answer(b"nope", invented).unwrap_err()),
        ProofError::KeyAbsent
    );
    let error = verify_state_answer(b"key-41", answer).unwrap_err();
    assert_eq!(
        error.code(),
        "unexpected_response",
        "an answer for another key"
    );
}
