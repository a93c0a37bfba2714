//! `world.toml`.

use everarcade_protocol::profile::LIMITS_MAX;
use everarcade_protocol::{BotSeedRule, Limits, SignatureRule};
use serde::Deserialize;

use crate::PackageError;

/// The only ABI this runtime implements.
pub const ABI_V1: &str = "ea-world/1";

/// The highest tick rate a manifest may ask for, in ticks per second.
pub const TICK_RATE_HZ_MAX: u32 = 1_000;

/// A validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: semver::Version,
    /// Always [`ABI_V1`].
    pub abi: String,
    /// Relative path of the module inside the package.
    pub module: String,
    /// Ticks per second the node runs at.
    pub tick_rate_hz: u32,
    /// Execution limits.
    pub limits: Limits,
    /// The signature rule (`signatures = "strict" | "zip215"`, default
    /// `strict`): part of the determinism profile (docs/PROTOCOL.md §4.3).
    pub signatures: SignatureRule,
    /// How bots' random seeds are derived (`bot_seeds = "per-bot" | "xof"`,
    /// default `per-bot`): part of the determinism profile
    /// (docs/PROTOCOL.md §10.1).
    pub bot_seeds: BotSeedRule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    abi: String,
    module: String,
    tick_rate_hz: u32,
    #[serde(default)]
    signatures: Option<String>,
    #[serde(default)]
    bot_seeds: Option<String>,
    limits: RawLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel_per_input: u64,
    fuel_per_tick: u64,
    memory_bytes: u64,
    inputs_per_tick: u32,
    payload_bytes: u32,
    key_bytes: u32,
    value_bytes: u32,
    events_per_input: u32,
    event_bytes: u32,
}

impl Manifest {
    /// Parses and validates manifest text.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, PackageError> {
        let invalid = |message: String| PackageError::ManifestInvalid { message };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
        let raw: RawManifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.abi != ABI_V1 {
            return Err(PackageError::UnknownAbi { abi: raw.abi });
        }
        let version =
            semver::Version::parse(&raw.version).map_err(|e| PackageError::VersionNotSemver {
                version: raw.version.clone(),
                message: e.to_string(),
            })?;
        if raw.name.is_empty() || raw.name.len() > 64 {
            return Err(invalid("name must be 1..=64 bytes".to_string()));
        }
        if !module_path_is_plain(&raw.module) {
            return Err(PackageError::ModulePath { module: raw.module });
        }
        check_range(
            "tick_rate_hz",
            raw.tick_rate_hz as u64,
            TICK_RATE_HZ_MAX as u64,
        )?;
        let signatures = match raw.signatures.as_deref() {
            None => SignatureRule::Strict,
            Some(name) => SignatureRule::from_name(name).ok_or_else(|| {
                invalid(format!(
                    "signatures = {name:?}: the signature rule is \"strict\" or \"zip215\""
                ))
            })?,
        };
        let bot_seeds = match raw.bot_seeds.as_deref() {
            None => BotSeedRule::PerBot,
            Some(name) => BotSeedRule::from_name(name).ok_or_else(|| {
                invalid(format!(
                    "bot_seeds = {name:?}: the bot seed rule is \"per-bot\" or \"xof\""
                ))
            })?,
        };
        let limits = raw.limits.validate()?;
        Ok(Manifest {
            name: raw.name,
            version,
            abi: raw.abi,
            module: raw.module,
            tick_rate_hz: raw.tick_rate_hz,
            limits,
            signatures,
            bot_seeds,
        })
    }
}

impl RawLimits {
    fn validate(self) -> Result<Limits, PackageError> {
        let max = LIMITS_MAX;
        check_range("fuel_per_input", self.fuel_per_input, max.fuel_per_input)?;
        check_range("fuel_per_tick", self.fuel_per_tick, max.fuel_per_tick)?;
        check_range("memory_bytes", self.memory_bytes, max.memory_bytes)?;
        check_range(
            "inputs_per_tick",
            self.inputs_per_tick.into(),
            max.inputs_per_tick.into(),
        )?;
        check_range(
            "payload_bytes",
            self.payload_bytes.into(),
            max.payload_bytes.into(),
        )?;
        check_range("key_bytes", self.key_bytes.into(), max.key_bytes.into())?;
        check_range(
            "value_bytes",
            self.value_bytes.into(),
            max.value_bytes.into(),
        )?;
        check_range(
            "events_per_input",
            self.events_per_input.into(),
            max.events_per_input.into(),
        )?;
        check_range(
            "event_bytes",
            self.event_bytes.into(),
            max.event_bytes.into(),
        )?;
        Ok(Limits {
            fuel_per_input: self.fuel_per_input,
            fuel_per_tick: self.fuel_per_tick,
            memory_bytes: self.memory_bytes,
            inputs_per_tick: self.inputs_per_tick,
            payload_bytes: self.payload_bytes,
            key_bytes: self.key_bytes,
            value_bytes: self.value_bytes,
            events_per_input: self.events_per_input,
            event_bytes: self.event_bytes,
        })
    }
}

fn check_range(name: &'static str, value: u64, max: u64) -> Result<(), PackageError> {
    if value == 0 || value > max {
        return Err(PackageError::LimitOutOfRange { name, value, max });
    }
    Ok(())
}

/// `a/b.wasm` yes; `/abs`, `../x`, `a/./b`, `a//b`, `a\b` no.
fn module_path_is_plain(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
name = "t"
version = "1.2.3"
abi = "ea-world/1"
module = "world.wasm"
tick_rate_hz = 20
[limits]
fuel_per_input = 1000
fuel_per_tick = 1000
memory_bytes = 131072
inputs_per_tick = 16
payload_bytes = 64
key_bytes = 32
value_bytes = 1024
events_per_input = 4
event_bytes = 64
"#;

    fn parse(text: &str) -> Result<Manifest, PackageError> {
        Manifest::parse(text.as_bytes())
    }

    #[test]
    fn good_manifest_parses() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.version, semver::Version::new(1, 2, 3));
        assert_eq!(manifest.limits.key_bytes, 32);
        assert_eq!(manifest.signatures, SignatureRule::Strict);
    }

    #[test]
    fn signature_rule_is_read_and_checked() {
        let zip215 = GOOD.replace(
            "tick_rate_hz = 20",
            "tick_rate_hz = 20\nsignatures = \"zip215\"",
        );
        assert_eq!(parse(&zip215).unwrap().signatures, SignatureRule::Zip215);
        let strict = GOOD.replace(
            "tick_rate_hz = 20",
            "tick_rate_hz = 20\nsignatures = \"strict\"",
        );
        assert_eq!(parse(&strict).unwrap().signatures, SignatureRule::Strict);
        let other = GOOD.replace(
            "tick_rate_hz = 20",
            "tick_rate_hz = 20\nsignatures = \"batch\"",
        );
        let error = parse(&other).unwrap_err();
        assert_eq!(error.code(), "manifest_invalid");
        assert!(error.to_string().contains("zip215"), "{error}");
    }

    #[test]
    fn bot_seed_rule_is_read_and_checked() {
        assert_eq!(parse(GOOD).unwrap().bot_seeds, BotSeedRule::PerBot);
        let with =
            |line: &str| GOOD.replace("tick_rate_hz = 20", &format!("tick_rate_hz = 20\n{line}"));
        assert_eq!(
            parse(&with("bot_seeds = \"xof\"")).unwrap().bot_seeds,
            BotSeedRule::Xof
        );
        assert_eq!(
            parse(&with("bot_seeds = \"per-bot\"")).unwrap().bot_seeds,
            BotSeedRule::PerBot
        );
        let error = parse(&with("bot_seeds = \"XOF\"")).unwrap_err();
        assert_eq!(error.code(), "manifest_invalid");
        assert!(error.to_string().contains("per-bot"), "{error}");
    }

    #[test]
    fn each_defect_has_its_code() {
        let cases = [
            ("name = ", "manifest_invalid"),
            (&GOOD.replace("tick_rate_hz = 20", ""), "manifest_invalid"),
            (&format!("{GOOD}\nextra = 1"), "manifest_invalid"),
            (&GOOD.replace("ea-world/1", "ea-world/2"), "abi_unknown"),
            (&GOOD.replace("1.2.3", "1.2"), "version_not_semver"),
            (
                &GOOD.replace("key_bytes = 32", "key_bytes = 257"),
                "limit_out_of_range",
            ),
            (
                &GOOD.replace("fuel_per_tick = 1000", "fuel_per_tick = 0"),
                "limit_out_of_range",
            ),
            (
                &GOOD.replace("\"world.wasm\"", "\"../world.wasm\""),
                "module_path_invalid",
            ),
            (
                &GOOD.replace("\"world.wasm\"", "\"/etc/passwd\""),
                "module_path_invalid",
            ),
        ];
        for (text, code) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code(), code, "{error}");
        }
    }
}
