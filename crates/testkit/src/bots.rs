//! Bot players: the deterministic test keys `bot-0`, `bot-1`, … that
//! `simulate --bots` also uses, and (feature `arena`) the inputs they sign
//! for a tick.

use ed25519_dalek::SigningKey;
use everarcade_protocol::{PublicKey, test_signing_key};

/// The keys of bots `bot-0 .. bot-{count-1}`.
pub struct Bots {
    /// `keys[i]`: bot `i`'s signing key.
    pub keys: Vec<SigningKey>,
    /// `public[i]`: bot `i`'s public key.
    pub public: Vec<PublicKey>,
}

impl Bots {
    /// `count` bots.
    pub fn new(count: usize) -> Bots {
        let keys: Vec<SigningKey> = (0..count)
            .map(|i| test_signing_key(&format!("bot-{i}")))
            .collect();
        let public = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        Bots { keys, public }
    }

    /// Asks every bot what it sends in `world`'s next tick (with the bots'
    /// `seed`) and signs each payload with that bot's next nonce (one above
    /// the last `world` accepted). Returns the envelopes in bot order; a bot
    /// with nothing to send has none. Nothing is admitted.
    #[cfg(feature = "arena")]
    pub fn inputs(
        &self,
        world: &mut everarcade_engine::World,
        engine: &everarcade_engine::Engine,
        seed: u64,
    ) -> Result<Vec<everarcade_protocol::Envelope>, everarcade_engine::EngineError> {
        let payloads = world.bot_payloads(engine, &self.public, seed)?;
        let id = world.id().clone();
        let mut envelopes = Vec::with_capacity(payloads.len());
        for (bot, payload) in payloads.into_iter().enumerate() {
            let Some(payload) = payload else { continue };
            let last = world.nonces().get(&self.public[bot]).copied();
            let nonce = last.unwrap_or(0) + 1;
            envelopes.push(everarcade_protocol::Envelope::sign(
                &id,
                &self.keys[bot],
                nonce,
                payload,
            ));
        }
        Ok(envelopes)
    }
}
