//! Signature checks per second: the protocol's `Envelope::verify_signature`
//! (ed25519-dalek `verify_strict` after decoding the key and building the
//! signing message) on one thread and on two, against ed25519-dalek's own
//! `VerifyingKey::verify` on the same messages with the keys already decoded
//! and the messages already built: the floor.
//!
//! The two-thread figure is `std::thread::scope` over `verify_signature`,
//! built here. (Issue 13's batched ZIP-215 paths are measured by the
//! `speed` bench, `bench/src/speed.rs`.)
//! ed25519-dalek's `verify_batch` needs its `batch` feature, which the
//! workspace does not enable, so it is reported as skipped.

use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use everarcade_protocol::{Envelope, WorldId, test_signing_key};

use crate::arena::WORLD_ID;

/// The shape of the benchmark.
#[derive(Clone, Copy, Debug)]
pub struct SignatureConfig {
    /// Distinct signers.
    pub signers: usize,
    /// Envelopes per signer (nonces 1..=n).
    pub envelopes_per_signer: usize,
    /// Rounds; in each, every path runs in turn for `round_seconds_min`, and
    /// each figure is its fastest round, so other load hits all paths alike.
    pub rounds: usize,
    /// Each path repeats full passes over the envelopes for at least this long per round.
    pub round_seconds_min: f64,
    /// Threads of the parallel figure.
    pub threads: usize,
}

impl Default for SignatureConfig {
    fn default() -> SignatureConfig {
        SignatureConfig {
            signers: 256,
            envelopes_per_signer: 4,
            rounds: 4,
            round_seconds_min: 0.25,
            threads: 2,
        }
    }
}

/// Checks per second of each path.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignatureReport {
    /// Envelopes in one pass.
    pub envelopes: usize,
    /// `Envelope::verify_signature`, one thread.
    pub ours_single: f64,
    /// `Envelope::verify_signature` over `threads` threads.
    pub ours_parallel: f64,
    /// ed25519-dalek `verify_strict`, keys decoded and messages built in advance.
    pub dalek_verify_strict: f64,
    /// ed25519-dalek `verify`, keys decoded and messages built in advance: the floor.
    pub dalek_verify: f64,
    /// The same floor over `threads` threads.
    pub dalek_verify_parallel: f64,
}

/// An envelope's check reduced to the crypto: decoded key, built message.
type Prepared = (VerifyingKey, Vec<u8>, Signature);

/// Signed 3-byte MOVE-like payloads, as the 2d-arena bots send.
pub fn signed_envelopes(config: &SignatureConfig) -> Vec<Envelope> {
    let world = WorldId::new(WORLD_ID).expect("a valid world id");
    let mut envelopes = Vec::with_capacity(config.signers * config.envelopes_per_signer);
    for signer in 0..config.signers {
        let key = test_signing_key(&format!("bot-{signer}"));
        for nonce in 1..=config.envelopes_per_signer as u64 {
            let payload = vec![2, (signer % 7) as u8, (nonce % 5) as u8];
            envelopes.push(Envelope::sign(&world, &key, nonce, payload));
        }
    }
    envelopes
}

/// Runs `pass` until `seconds_min` have gone by; returns items per second.
fn rate(items_per_pass: usize, seconds_min: f64, mut pass: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut passes = 0u64;
    while passes == 0 || start.elapsed().as_secs_f64() < seconds_min {
        pass();
        passes += 1;
    }
    (passes * items_per_pass as u64) as f64 / start.elapsed().as_secs_f64()
}

fn verify_all(envelopes: &[Envelope]) {
    for envelope in envelopes {
        envelope.verify_signature().expect("a valid signature");
    }
}

fn dalek_verify_all(prepared: &[Prepared]) {
    for (key, message, signature) in prepared {
        ed25519_dalek::Verifier::verify(key, message, signature).expect("a valid signature");
    }
}

/// Runs `check` over `items` split into `threads` parts, one thread each.
fn in_parallel<T: Sync>(items: &[T], threads: usize, check: fn(&[T])) {
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for part in items.chunks(chunk) {
            scope.spawn(move || check(part));
        }
    });
}

/// Measures every path on the same envelopes.
pub fn run(config: &SignatureConfig) -> SignatureReport {
    assert!(config.threads >= 1);
    let envelopes = signed_envelopes(config);
    let count = envelopes.len();
    let (seconds, threads) = (config.round_seconds_min, config.threads);
    let prepared: Vec<Prepared> = envelopes
        .iter()
        .map(|envelope| {
            let key = VerifyingKey::from_bytes(&envelope.sender).expect("a valid key");
            let signature = Signature::from_bytes(&envelope.signature);
            (key, envelope.signing_message(), signature)
        })
        .collect();
    let mut paths: [Box<dyn FnMut()>; 5] = [
        Box::new(|| verify_all(&envelopes)),
        Box::new(|| in_parallel(&envelopes, threads, verify_all)),
        Box::new(|| {
            for (key, message, signature) in &prepared {
                key.verify_strict(message, signature)
                    .expect("a valid signature");
            }
        }),
        Box::new(|| dalek_verify_all(&prepared)),
        Box::new(|| in_parallel(&prepared, threads, dalek_verify_all)),
    ];
    let mut best = [0.0f64; 5];
    for _ in 0..config.rounds {
        for (best, path) in best.iter_mut().zip(paths.iter_mut()) {
            *best = best.max(rate(count, seconds, path));
        }
    }
    let [
        ours_single,
        ours_parallel,
        dalek_verify_strict,
        dalek_verify,
        dalek_verify_parallel,
    ] = best;
    SignatureReport {
        envelopes: count,
        ours_single,
        ours_parallel,
        dalek_verify_strict,
        dalek_verify,
        dalek_verify_parallel,
    }
}
