//! The determinism profile: the execution rules and limits a world is sealed
//! with at genesis. Its hash is bound into `C(0)`.

use crate::hash::{Domain, Hash};

/// Per-world limits from the manifest's `[limits]` table. Units are in the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for one `ea_input` call (and for one `ea_bot` call).
    pub fuel_per_input: u64,
    /// Fuel for the `ea_tick` hook (and for `ea_genesis`).
    pub fuel_per_tick: u64,
    /// The largest linear memory a module may declare, in bytes.
    pub memory_bytes: u64,
    /// The most inputs one tick takes.
    pub inputs_per_tick: u32,
    /// The largest input payload, in bytes.
    pub payload_bytes: u32,
    /// The longest state key, in bytes (at least 1).
    pub key_bytes: u32,
    /// The longest state value, in bytes.
    pub value_bytes: u32,
    /// The most events one call may emit.
    pub events_per_input: u32,
    /// The longest event, in bytes.
    pub event_bytes: u32,
}

/// The runtime's hard ceilings on manifest limits; a manifest above them is refused.
pub const LIMITS_MAX: Limits = Limits {
    fuel_per_input: 1_000_000_000,
    fuel_per_tick: 10_000_000_000,
    memory_bytes: 256 * 1024 * 1024,
    inputs_per_tick: 65_536,
    payload_bytes: 65_536,
    key_bytes: 256,
    value_bytes: 65_536,
    events_per_input: 1_024,
    event_bytes: 65_536,
};

/// Flags of the v1 profile. The first seven are always set in this
/// runtime; [`flags::SIGNATURES_ZIP215`] is set by worlds whose manifest
/// asks for the ZIP-215 signature rule (docs/PROTOCOL.md §4.3).
pub mod flags {
    /// Execution is metered in fuel.
    pub const FUEL_METERING: u32 = 1 << 0;
    /// Every NaN produced by float arithmetic is canonical.
    pub const NAN_CANONICALIZATION: u32 = 1 << 1;
    /// No threads or shared memory.
    pub const NO_THREADS: u32 = 1 << 2;
    /// No relaxed SIMD.
    pub const NO_RELAXED_SIMD: u32 = 1 << 3;
    /// No WASI or any import outside module `ea`.
    pub const NO_WASI: u32 = 1 << 4;
    /// No clock of any kind.
    pub const NO_CLOCK: u32 = 1 << 5;
    /// Memory has a fixed declared maximum.
    pub const FIXED_MEMORY_MAXIMUM: u32 = 1 << 6;
    /// Everything above.
    pub const ALL_V1: u32 = FUEL_METERING
        | NAN_CANONICALIZATION
        | NO_THREADS
        | NO_RELAXED_SIMD
        | NO_WASI
        | NO_CLOCK
        | FIXED_MEMORY_MAXIMUM;
    /// Input signatures are checked under ZIP-215 (cofactored equation,
    /// batchable) instead of `verify_strict`. Not part of [`ALL_V1`]: a
    /// profile without it is a `verify_strict` world, as every world made
    /// before this flag existed.
    pub const SIGNATURES_ZIP215: u32 = 1 << 7;
    /// Bots' random seeds come from one BLAKE3 XOF per tick instead of one
    /// hash per bot (docs/PROTOCOL.md §10.1). Not part of [`ALL_V1`]: a
    /// profile without it derives one seed per bot, as every world made
    /// before this flag existed.
    pub const BOT_SEEDS_XOF: u32 = 1 << 8;
}

/// How `bot_payloads` derives each bot's 32 random bytes (docs/PROTOCOL.md
/// §10.1). Part of the determinism profile: bot seeds decide bot payloads,
/// and so the inputs (and roots) of every simulated world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BotSeedRule {
    /// One keyed BLAKE3 per bot: `H(ea/bot-random/v1, seed ‖ player ‖ t ‖
    /// C(t−1))`.
    #[default]
    PerBot,
    /// One BLAKE3 XOF per tick, `H(ea/bot-random/xof/v1, seed ‖ t ‖
    /// C(t−1))` read as a stream: bot `i` gets output bytes `32i..32i+32`.
    Xof,
}

impl BotSeedRule {
    /// The manifest spelling: `"per-bot"` or `"xof"`.
    pub fn name(self) -> &'static str {
        match self {
            BotSeedRule::PerBot => "per-bot",
            BotSeedRule::Xof => "xof",
        }
    }

    /// Parses the manifest spelling.
    pub fn from_name(name: &str) -> Option<BotSeedRule> {
        match name {
            "per-bot" => Some(BotSeedRule::PerBot),
            "xof" => Some(BotSeedRule::Xof),
            _ => None,
        }
    }
}

/// Which set of ed25519 signatures a world accepts (docs/PROTOCOL.md §4.3).
/// Part of the determinism profile, so bound into `C(0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignatureRule {
    /// ed25519-dalek's `verify_strict`: canonical `s`, no small-order key
    /// or `R`, cofactorless equation. Checked one signature at a time.
    #[default]
    Strict,
    /// ZIP-215: canonical `s`, any decodable key and `R` (small order and
    /// non-canonical encodings included), cofactored equation. Single and
    /// batch checks accept exactly the same set, so it is checked in batches.
    Zip215,
}

impl SignatureRule {
    /// The manifest spelling: `"strict"` or `"zip215"`.
    pub fn name(self) -> &'static str {
        match self {
            SignatureRule::Strict => "strict",
            SignatureRule::Zip215 => "zip215",
        }
    }

    /// Parses the manifest spelling.
    pub fn from_name(name: &str) -> Option<SignatureRule> {
        match name {
            "strict" => Some(SignatureRule::Strict),
            "zip215" => Some(SignatureRule::Zip215),
            _ => None,
        }
    }
}

/// A determinism profile: the v1 flags (plus the signature rule's) and the
/// world's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Profile flags (`flags::ALL_V1`).
    pub flags: u32,
    /// The manifest limits.
    pub limits: Limits,
}

impl Profile {
    /// The v1 profile with the given limits (signature rule `Strict`).
    pub fn v1(limits: Limits) -> Profile {
        Profile {
            flags: flags::ALL_V1,
            limits,
        }
    }

    /// The v1 profile with the given limits and signature rule. With
    /// `Strict` it is exactly [`Profile::v1`] (same encoding, same hash).
    pub fn with_signatures(limits: Limits, rule: SignatureRule) -> Profile {
        let extra = match rule {
            SignatureRule::Strict => 0,
            SignatureRule::Zip215 => flags::SIGNATURES_ZIP215,
        };
        Profile {
            flags: flags::ALL_V1 | extra,
            limits,
        }
    }

    /// This profile with bot seeds derived under `rule`. With
    /// [`BotSeedRule::PerBot`] the flags are unchanged (same encoding, same
    /// hash).
    pub fn with_bot_seeds(self, rule: BotSeedRule) -> Profile {
        let flags = match rule {
            BotSeedRule::PerBot => self.flags & !flags::BOT_SEEDS_XOF,
            BotSeedRule::Xof => self.flags | flags::BOT_SEEDS_XOF,
        };
        Profile { flags, ..self }
    }

    /// The bot seed rule this profile's flags select.
    pub fn bot_seed_rule(&self) -> BotSeedRule {
        if self.flags & flags::BOT_SEEDS_XOF != 0 {
            BotSeedRule::Xof
        } else {
            BotSeedRule::PerBot
        }
    }

    /// The signature rule this profile's flags select.
    pub fn signature_rule(&self) -> SignatureRule {
        if self.flags & flags::SIGNATURES_ZIP215 != 0 {
            SignatureRule::Zip215
        } else {
            SignatureRule::Strict
        }
    }

    /// `version u8 (1) || flags u32 || fuel_per_input u64 || fuel_per_tick u64 ||
    /// memory_bytes u64 || inputs_per_tick u32 || payload_bytes u32 || key_bytes u32 ||
    /// value_bytes u32 || events_per_input u32 || event_bytes u32`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let l = &self.limits;
        let mut out = Vec::with_capacity(53);
        out.push(1);
        out.extend_from_slice(&self.flags.to_le_bytes());
        for value in [l.fuel_per_input, l.fuel_per_tick, l.memory_bytes] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for value in [
            l.inputs_per_tick,
            l.payload_bytes,
            l.key_bytes,
            l.value_bytes,
            l.events_per_input,
            l.event_bytes,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// `H(Profile, encode())`.
    pub fn hash(&self) -> Hash {
        Domain::Profile.hash(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_rule_is_a_flag_of_the_profile() {
        let strict = Profile::with_signatures(LIMITS_MAX, SignatureRule::Strict);
        assert_eq!(strict, Profile::v1(LIMITS_MAX));
        assert_eq!(strict.hash(), Profile::v1(LIMITS_MAX).hash());
        assert_eq!(strict.signature_rule(), SignatureRule::Strict);
        let zip215 = Profile::with_signatures(LIMITS_MAX, SignatureRule::Zip215);
        assert_eq!(zip215.flags, 0xFF);
        assert_eq!(zip215.signature_rule(), SignatureRule::Zip215);
        assert_ne!(zip215.hash(), strict.hash());
        for rule in [SignatureRule::Strict, SignatureRule::Zip215] {
            assert_eq!(SignatureRule::from_name(rule.name()), Some(rule));
        }
        assert_eq!(SignatureRule::from_name("Zip215"), None);
    }

    #[test]
    fn the_bot_seed_rule_is_a_flag_of_the_profile() {
        let per_bot = Profile::v1(LIMITS_MAX).with_bot_seeds(BotSeedRule::PerBot);
        assert_eq!(
            per_bot,
            Profile::v1(LIMITS_MAX),
            "the default changes nothing"
        );
        assert_eq!(per_bot.bot_seed_rule(), BotSeedRule::PerBot);
        let xof = Profile::with_signatures(LIMITS_MAX, SignatureRule::Zip215)
            .with_bot_seeds(BotSeedRule::Xof);
        assert_eq!(xof.flags, 0x1FF);
        assert_eq!(xof.bot_seed_rule(), BotSeedRule::Xof);
        assert_eq!(xof.signature_rule(), SignatureRule::Zip215);
        assert_eq!(&xof.encode()[1..5], &[0xFF, 0x01, 0, 0]);
        assert_ne!(
            xof.hash(),
            Profile::with_signatures(LIMITS_MAX, SignatureRule::Zip215).hash()
        );
        assert_eq!(xof.with_bot_seeds(BotSeedRule::PerBot).flags, 0xFF);
        for rule in [BotSeedRule::PerBot, BotSeedRule::Xof] {
            assert_eq!(BotSeedRule::from_name(rule.name()), Some(rule));
        }
        assert_eq!(BotSeedRule::from_name("XOF"), None);
    }
}
