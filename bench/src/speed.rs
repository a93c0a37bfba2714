//! Issue 13's figures: signature checks batched on every core against one
//! core unbatched, `simulate`'s loop as a real-time factor, and
//! `replay-verify` in ticks per second, each under both signature rules
//! (docs/PROTOCOL.md §4.3) and beside its floor measured in the same run.
//!
//! The ZIP-215 worlds run the 2d-arena's module with `signatures =
//! "zip215"` added to its manifest (a copy in a scratch directory; the
//! shipped package stays `strict`).

use std::path::Path;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use everarcade_engine::World;
use everarcade_protocol::signature::{self, Item};
use everarcade_protocol::{Envelope, PublicKey, SignatureRule, test_signing_key};

use crate::arena::package_dir;
use crate::durable::Scratch;
use crate::durable::fixture::Arena;

/// Writes the 2d-arena's manifest and module into `dir` with `signatures =
/// "zip215"` added.
pub fn zip215_arena_package(dir: &Path) -> Result<(), String> {
    let source = package_dir();
    let manifest = std::fs::read_to_string(source.join("world.toml"))
        .map_err(|e| format!("read the 2d-arena manifest: {e}"))?;
    let manifest = manifest.replacen(
        "tick_rate_hz = 20\n",
        "tick_rate_hz = 20\nsignatures = \"zip215\"\n",
        1,
    );
    if !manifest.contains("signatures = \"zip215\"") {
        return Err("the 2d-arena manifest has no `tick_rate_hz = 20` line".into());
    }
    std::fs::write(dir.join("world.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::copy(source.join("world.wasm"), dir.join("world.wasm")).map_err(|e| e.to_string())?;
    Ok(())
}

/// The 2d-arena under `rule`: the shipped package, or its ZIP-215 copy
/// (whose scratch directory the caller keeps alive).
pub fn arena_under(rule: SignatureRule) -> Result<(Arena, Option<Scratch>), String> {
    match rule {
        SignatureRule::Strict => Ok((Arena::load()?, None)),
        SignatureRule::Zip215 => {
            let scratch =
                Scratch::new("zip215-arena").map_err(|e| format!("scratch directory: {e}"))?;
            zip215_arena_package(scratch.path())?;
            let arena = Arena::load_dir(scratch.path())?;
            assert_eq!(arena.package.manifest.signatures, SignatureRule::Zip215);
            Ok((arena, Some(scratch)))
        }
    }
}

/// Checks per second of each signature path over the same envelopes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignatureSpeed {
    /// Envelopes in one pass.
    pub envelopes: usize,
    /// Cores used by the parallel paths.
    pub threads: usize,
    /// `verify_signature` (strict), one by one on one thread: today's floor
    /// of a replay before this issue, the baseline of the target.
    pub strict_single_one_core: f64,
    /// `verify_signatures_under(Strict)`: one by one, on every core.
    pub strict_all_cores: f64,
    /// `verify_signature_under(Zip215)`, one by one on one thread.
    pub zip215_single_one_core: f64,
    /// One ZIP-215 batch over every envelope, one thread (messages built
    /// in advance).
    pub zip215_batch_one_core: f64,
    /// `verify_signatures_under(Zip215)`: a batch per core, messages built
    /// inside (what replay and admission call).
    pub zip215_batch_all_cores: f64,
}

/// `signers × per_signer` envelopes with 3-byte payloads, as bots send.
pub fn signed(signers: usize, per_signer: u64) -> Vec<Envelope> {
    let world = Arena::world_id();
    let keys: Vec<SigningKey> = (0..signers)
        .map(|i| test_signing_key(&format!("bot-{i}")))
        .collect();
    let inputs: Vec<(&SigningKey, u64, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, key)| {
            (1..=per_signer).map(move |nonce| (key, nonce, vec![2, (i % 7) as u8, nonce as u8]))
        })
        .collect();
    Envelope::sign_all(&world, inputs)
}

/// Runs `pass` until `seconds_min` have gone by; items per second.
fn rate(items: usize, seconds_min: f64, mut pass: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut passes = 0u64;
    while passes == 0 || start.elapsed().as_secs_f64() < seconds_min {
        pass();
        passes += 1;
    }
    (passes * items as u64) as f64 / start.elapsed().as_secs_f64()
}

/// Every path over `envelopes`, `rounds` rounds taking turns; each figure
/// is its fastest round.
pub fn signature_speed(envelopes: &[Envelope], rounds: usize, seconds: f64) -> SignatureSpeed {
    let count = envelopes.len();
    let messages: Vec<Vec<u8>> = envelopes.iter().map(Envelope::signing_message).collect();
    let items: Vec<Item<'_>> = envelopes
        .iter()
        .zip(&messages)
        .map(|(e, message)| Item {
            sender: &e.sender,
            message,
            signature: &e.signature,
        })
        .collect();
    let mut paths: [Box<dyn FnMut() + '_>; 5] = [
        Box::new(|| {
            for e in envelopes {
                e.verify_signature().expect("valid");
            }
        }),
        Box::new(|| {
            let checked = Envelope::verify_signatures_under(envelopes, SignatureRule::Strict);
            assert!(checked.iter().all(Result::is_ok));
        }),
        Box::new(|| {
            for e in envelopes {
                e.verify_signature_under(SignatureRule::Zip215)
                    .expect("valid");
            }
        }),
        Box::new(|| assert!(signature::verify_batch_zip215(&items))),
        Box::new(|| {
            let checked = Envelope::verify_signatures_under(envelopes, SignatureRule::Zip215);
            assert!(checked.iter().all(Result::is_ok));
        }),
    ];
    let mut best = [0.0f64; 5];
    for _ in 0..rounds {
        for (best, path) in best.iter_mut().zip(paths.iter_mut()) {
            *best = best.max(rate(count, seconds, path));
        }
    }
    SignatureSpeed {
        envelopes: count,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        strict_single_one_core: best[0],
        strict_all_cores: best[1],
        zip215_single_one_core: best[2],
        zip215_batch_one_core: best[3],
        zip215_batch_all_cores: best[4],
    }
}

/// Seconds of each phase of `simulate`'s loop over a match.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulateSpeed {
    /// Ticks played.
    pub ticks: u64,
    /// Inputs signed and admitted.
    pub inputs: u64,
    /// `bot_payloads`.
    pub bots: f64,
    /// `Envelope::sign_and_verify_all` under the world's rule (every
    /// core signs and checks its part in one pass).
    pub sign: f64,
    /// `admit_verified` in order.
    pub admit: f64,
    /// `execute_tick`.
    pub execute: f64,
}

impl SimulateSpeed {
    /// The whole loop.
    pub fn seconds(&self) -> f64 {
        self.bots + self.sign + self.admit + self.execute
    }

    /// Ticks per second over the tick rate: the real-time factor.
    pub fn real_time_factor(&self, tick_rate_hz: f64) -> f64 {
        self.ticks as f64 / self.seconds() / tick_rate_hz
    }

    /// The floor: the engine alone (bots and execution), no signatures.
    pub fn engine_real_time_factor(&self, tick_rate_hz: f64) -> f64 {
        self.ticks as f64 / (self.bots + self.execute) / tick_rate_hz
    }
}

/// `simulate --amnesia`'s loop (crates/runtime/src/simulate.rs) over `ticks`
/// ticks of `bots` bots: ask the bots, sign on every core, check every
/// signature together under the world's rule and admit in order (at most
/// `inputs_per_tick`), execute the tick.
pub fn simulate_speed(arena: &Arena, bots: usize, ticks: u64) -> Result<SimulateSpeed, String> {
    let id = Arena::world_id();
    let (mut world, _) = World::genesis(&arena.engine, id.clone(), arena.compiled.clone())
        .map_err(|e| e.to_string())?;
    let keys: Vec<SigningKey> = (0..bots)
        .map(|i| test_signing_key(&format!("bot-{i}")))
        .collect();
    let public: Vec<PublicKey> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let mut nonces = vec![0u64; bots];
    let limit = world.limits().inputs_per_tick as usize;
    let rule = world.signature_rule();
    let mut speed = SimulateSpeed {
        ticks,
        ..SimulateSpeed::default()
    };
    for _ in 0..ticks {
        let begin = Instant::now();
        let payloads = world
            .bot_payloads(&arena.engine, &public, 7)
            .map_err(|e| e.to_string())?;
        let asked = Instant::now();
        let to_sign: Vec<(&SigningKey, u64, Vec<u8>)> = payloads
            .into_iter()
            .enumerate()
            .filter_map(|(bot, payload)| {
                payload.map(|payload| {
                    nonces[bot] += 1;
                    (&keys[bot], nonces[bot], payload)
                })
            })
            .collect();
        // Signed and checked in one pass per core, as `simulate` does.
        let checked = Envelope::sign_and_verify_all(&id, to_sign, rule);
        let signed_at = Instant::now();
        let mut admitted = Vec::with_capacity(checked.len());
        for checked in checked {
            let verified = checked.map_err(|(error, _)| error.to_string())?;
            if admitted.len() < limit && world.admit_verified(&verified).is_ok() {
                admitted.push(verified.into_envelope());
            }
        }
        let admitted_at = Instant::now();
        world
            .execute_tick(&arena.engine, &admitted)
            .map_err(|e| e.to_string())?;
        let executed = Instant::now();
        speed.inputs += admitted.len() as u64;
        speed.bots += (asked - begin).as_secs_f64();
        speed.sign += (signed_at - asked).as_secs_f64();
        speed.admit += (admitted_at - signed_at).as_secs_f64();
        speed.execute += (executed - admitted_at).as_secs_f64();
    }
    Ok(speed)
}
