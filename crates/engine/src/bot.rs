//! The package's own bots (`ea_bot`), for simulations and load tests. Bots
//! read the state but never write it, and are never part of the lineage.

use everarcade_protocol::{BotSeedRule, Domain, Hash, PublicKey, Tick};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::world::World;

/// What `random_seed` gives bot `player` deciding its input for `tick`:
/// `H(BotRandom, seed u64 || player u32 || tick u64 || C(tick-1))`.
pub fn bot_random_seed(seed: u64, player: u32, tick: Tick, previous: &Hash) -> Hash {
    let mut hasher = Domain::BotRandom.hasher();
    hasher
        .update_u64(seed)
        .update_u32(player)
        .update_u64(tick)
        .update(&previous.0);
    hasher.finalize()
}

/// The random seeds of bots `0..count` for `tick` under `rule`
/// (docs/PROTOCOL.md §10.1): [`bot_random_seed`] per bot, or under
/// [`BotSeedRule::Xof`] the first `32 × count` bytes of the XOF of
/// `H(BotRandomXof, seed u64 || tick u64 || C(tick-1))`, bot `i` taking
/// bytes `32i..32i+32` (one hash setup per tick, and the output blocks
/// computed many at a time).
pub fn bot_random_seeds(
    rule: BotSeedRule,
    seed: u64,
    count: usize,
    tick: Tick,
    previous: &Hash,
) -> Vec<[u8; 32]> {
    match rule {
        BotSeedRule::PerBot => (0..count)
            .map(|player| bot_random_seed(seed, player as u32, tick, previous).0)
            .collect(),
        BotSeedRule::Xof => {
            let mut hasher = Domain::BotRandomXof.hasher();
            hasher.update_u64(seed).update_u64(tick).update(&previous.0);
            let mut seeds = vec![[0u8; 32]; count];
            hasher.finalize_xof().fill(seeds.as_flattened_mut());
            seeds
        }
    }
}

impl World {
    /// Asks the package's bot for each of `bots` (bot `i` has public key
    /// `bots[i]`) what it sends in the next tick. Returns one optional payload
    /// per bot; a bot that traps or misbehaves sends nothing. Without an
    /// `ea_bot` export every entry is `None`.
    pub fn bot_payloads(
        &mut self,
        engine: &Engine,
        bots: &[PublicKey],
        seed: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, EngineError> {
        if !self.compiled().exports.bot || bots.is_empty() {
            return Ok(vec![None; bots.len()]);
        }
        let tick = self.tick() + 1;
        let previous = self.continuity_root();
        let limits = self.limits();
        let capacity = (limits.payload_bytes as usize).max(32);
        let rule = self.compiled().package.manifest.bot_seeds;
        let seeds = bot_random_seeds(rule, seed, bots.len(), tick, &previous);
        let mut payloads = Vec::with_capacity(bots.len());
        while payloads.len() < bots.len() {
            // One read-only instance serves every bot until one traps; then a fresh one.
            let mut session = self.session(engine, [0; 32], true)?;
            while payloads.len() < bots.len() {
                let player = payloads.len();
                session.context().random = seeds[player];
                let (payload, usable) =
                    session.call_bot(player as u32, tick as i64, &bots[player], capacity);
                payloads.push(payload);
                if !usable {
                    break;
                }
            }
            self.put_state(session.into_context().state);
        }
        Ok(payloads)
    }
}
