//! The usage report: its fields, its canonical encoding (docs/FORMATS.md
//! §Usage report, byte by byte, with a vector), its digest and the
//! operator's signature over it.
//!
//! A report file is `body || public_key(32) || signature(64)`. The digest is
//! `H("ea/usage-report/v1", body)` (the protocol's keyed BLAKE3 with that
//! domain string), and the signature is the operator's ed25519 signature
//! under the context `ea/operator/usage-report/v1` over the digest. The
//! digest is what sinks deduplicate by.

use std::collections::BTreeMap;

use everarcade_protocol::{Hash, Tick, WorldId};
use everarcade_store::codec::{DecodeError, Put, Reader};
use everarcade_store::keys::{self, KeyError, KeyHistory, OperatorKeys, Signed};

/// The magic at the start of every report.
pub const REPORT_MAGIC: [u8; 8] = *b"EAUSAGE\0";
/// The encoding version this runtime writes and reads.
pub const REPORT_VERSION: u16 = 1;
/// The hashing domain of a report's digest.
pub const REPORT_DOMAIN: &str = "ea/usage-report/v1";
/// Bytes after the body: the public key and the signature.
pub const SIGNATURE_BYTES: usize = 32 + 64;
/// Distinct admission-refusal reasons one report carries at most.
pub const REFUSAL_REASONS_MAX: usize = 64;
/// Bytes of a refusal reason, a version string or a package version at most.
pub const TEXT_BYTES_MAX: usize = 64;
/// A report file is never larger than this (the body's variable parts are bounded).
pub const REPORT_BYTES_MAX: usize = 8 * 1024;

/// Flag: the report was rebuilt from the journal after its file was found
/// damaged; its metadata was not observed (zeros).
pub const FLAG_REBUILT: u16 = 1;
/// Flag: built offline by `usage report`; its metadata was not observed.
pub const FLAG_OFFLINE: u16 = 2;
const FLAGS_KNOWN: u16 = FLAG_REBUILT | FLAG_OFFLINE;

/// Receipts by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcomes {
    /// `applied`.
    pub applied: u64,
    /// `rejected` by the game's rules.
    pub rejected: u64,
    /// `trapped`.
    pub trapped: u64,
    /// `out_of_fuel`.
    pub out_of_fuel: u64,
}

/// Everything in a report that the journal proves: `usage verify`
/// recomputes each of these from the world's journal.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counted {
    /// Ticks executed in the window (`last_tick - first_tick + 1`, each with a tick record).
    pub ticks: u64,
    /// Inputs admitted and executed in the window.
    pub inputs_admitted: u64,
    /// Input receipts by outcome.
    pub input_receipts: Outcomes,
    /// Tick-hook receipts by outcome.
    pub hook_receipts: Outcomes,
    /// Fuel used by inputs.
    pub fuel_inputs: u64,
    /// Fuel used by tick hooks.
    pub fuel_hooks: u64,
    /// Events emitted (inputs and hooks).
    pub events: u64,
    /// Journal bytes of the window's records (inputs and tick records, headers and checksums included).
    pub journal_bytes: u64,
}

/// What the journal cannot prove: carried, signed, but not recomputed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Wall clock when the window began (ms since the Unix epoch; 0 = not observed).
    pub window_start_unix_ms: u64,
    /// Wall clock when the report was built (ms since the Unix epoch; 0 = not observed).
    pub window_end_unix_ms: u64,
    /// Checkpoints the node wrote during the window.
    pub checkpoints_written: u64,
    /// Bytes of those checkpoints.
    pub checkpoint_bytes: u64,
    /// Inputs refused at admission, by stable error code.
    pub refused: BTreeMap<String, u64>,
    /// The runtime version that built the report.
    pub runtime_version: String,
    /// The root of the package the world ran.
    pub package_root: Hash,
    /// That package's semver version.
    pub package_version: String,
}

/// One report, unsigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageReport {
    /// [`FLAG_REBUILT`], [`FLAG_OFFLINE`].
    pub flags: u16,
    /// The world.
    pub world: WorldId,
    /// The first tick of the window (≥ 1).
    pub first_tick: Tick,
    /// The last tick of the window (≥ `first_tick`).
    pub last_tick: Tick,
    /// `C(first_tick - 1)`: where the window starts in the lineage.
    pub start_continuity_root: Hash,
    /// `C(last_tick)`.
    pub end_continuity_root: Hash,
    /// What the journal proves.
    pub counted: Counted,
    /// What it does not.
    pub metadata: Metadata,
}

/// Why report bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The bytes are not a well-formed report.
    #[error("not a well-formed usage report: {what} at byte {offset}")]
    Malformed {
        /// What was wrong.
        what: String,
        /// Where.
        offset: usize,
    },
    /// A report of another version.
    #[error("usage report version {found}; this runtime reads version {REPORT_VERSION}")]
    Version {
        /// The version found.
        found: u16,
    },
    /// The signature or the key does not check out.
    #[error("{0}")]
    Signature(#[from] KeyError),
}

impl ReportError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::Malformed { .. } => "malformed_usage_report",
            ReportError::Version { .. } => "unsupported_usage_report_version",
            ReportError::Signature(error) => error.code(),
        }
    }
}

impl From<DecodeError> for ReportError {
    fn from(error: DecodeError) -> ReportError {
        ReportError::Malformed {
            what: error.what,
            offset: error.offset,
        }
    }
}

/// `H(domain, bytes)` as the protocol defines it (docs/PROTOCOL.md §Hashing):
/// BLAKE3 keyed with BLAKE3 of the domain string.
fn domain_hash(domain: &str, bytes: &[u8]) -> Hash {
    let key = blake3::hash(domain.as_bytes());
    Hash(*blake3::keyed_hash(key.as_bytes(), bytes).as_bytes())
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() <= TEXT_BYTES_MAX, "text fields are bounded");
    out.put_u8(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

fn put_outcomes(out: &mut Vec<u8>, outcomes: &Outcomes) {
    out.put_u64(outcomes.applied);
    out.put_u64(outcomes.rejected);
    out.put_u64(outcomes.trapped);
    out.put_u64(outcomes.out_of_fuel);
}

/// Whether `reason` may be a refusal reason: 1..=64 bytes of `[a-z0-9_]`.
pub fn valid_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason.len() <= TEXT_BYTES_MAX
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl UsageReport {
    /// The canonical body (everything the signature covers).
    pub fn encode_body(&self) -> Vec<u8> {
        assert!(self.first_tick >= 1 && self.first_tick <= self.last_tick);
        assert!(self.flags & !FLAGS_KNOWN == 0);
        assert!(self.metadata.refused.len() <= REFUSAL_REASONS_MAX);
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(&REPORT_MAGIC);
        out.put_u16(REPORT_VERSION);
        out.put_u16(self.flags);
        put_text(&mut out, self.world.as_str());
        out.put_u64(self.first_tick);
        out.put_u64(self.last_tick);
        out.put_hash(&self.start_continuity_root);
        out.put_hash(&self.end_continuity_root);
        let counted = &self.counted;
        out.put_u64(counted.ticks);
        out.put_u64(counted.inputs_admitted);
        put_outcomes(&mut out, &counted.input_receipts);
        put_outcomes(&mut out, &counted.hook_receipts);
        out.put_u64(counted.fuel_inputs);
        out.put_u64(counted.fuel_hooks);
        out.put_u64(counted.events);
        out.put_u64(counted.journal_bytes);
        let metadata = &self.metadata;
        out.put_u64(metadata.window_start_unix_ms);
        out.put_u64(metadata.window_end_unix_ms);
        out.put_u64(metadata.checkpoints_written);
        out.put_u64(metadata.checkpoint_bytes);
        out.put_hash(&metadata.package_root);
        put_text(&mut out, &metadata.package_version);
        put_text(&mut out, &metadata.runtime_version);
        out.put_u16(metadata.refused.len() as u16);
        for (reason, count) in &metadata.refused {
            assert!(valid_reason(reason) && *count > 0);
            put_text(&mut out, reason);
            out.put_u64(*count);
        }
        assert!(out.len() + SIGNATURE_BYTES <= REPORT_BYTES_MAX);
        out
    }

    /// `H("ea/usage-report/v1", body)`.
    pub fn digest(&self) -> Hash {
        domain_hash(REPORT_DOMAIN, &self.encode_body())
    }

    /// Signs the report with the world's current operator key.
    pub fn sign(self, keys: &OperatorKeys) -> SignedReport {
        let body = self.encode_body();
        let digest = domain_hash(REPORT_DOMAIN, &body);
        let signature = keys.sign(Signed::UsageReport, &digest);
        let mut bytes = body;
        bytes.extend_from_slice(&keys.public_key());
        bytes.extend_from_slice(&signature);
        SignedReport {
            report: self,
            digest,
            public_key: keys.public_key(),
            signature,
            bytes,
        }
    }

    /// Decodes a body; every byte must be used, every field be canonical.
    pub fn decode_body(body: &[u8]) -> Result<UsageReport, ReportError> {
        let mut reader = Reader::new(body);
        let magic: [u8; 8] = reader.array("magic")?;
        if magic != REPORT_MAGIC {
            return Err(reader.error_at(0, "bad magic").into());
        }
        let version = reader.u16("version")?;
        if version != REPORT_VERSION {
            return Err(ReportError::Version { found: version });
        }
        let flags = reader.u16("flags")?;
        if flags & !FLAGS_KNOWN != 0 {
            return Err(reader.error_at(10, "unknown flag bits").into());
        }
        let at = reader.offset();
        let world = read_text(&mut reader, "world id")?;
        let world = WorldId::new(&world).map_err(|_| reader.error_at(at, "invalid world id"))?;
        let first_tick = reader.u64("first tick")?;
        let last_tick = reader.u64("last tick")?;
        if first_tick == 0 || last_tick < first_tick {
            return Err(reader
                .error("the window is not 1 <= first_tick <= last_tick")
                .into());
        }
        let start_continuity_root = reader.hash("start continuity root")?;
        let end_continuity_root = reader.hash("end continuity root")?;
        let counted = Counted {
            ticks: reader.u64("ticks")?,
            inputs_admitted: reader.u64("inputs admitted")?,
            input_receipts: read_outcomes(&mut reader)?,
            hook_receipts: read_outcomes(&mut reader)?,
            fuel_inputs: reader.u64("fuel (inputs)")?,
            fuel_hooks: reader.u64("fuel (hooks)")?,
            events: reader.u64("events")?,
            journal_bytes: reader.u64("journal bytes")?,
        };
        let metadata = read_metadata(&mut reader)?;
        reader.finish("usage report body")?;
        Ok(UsageReport {
            flags,
            world,
            first_tick,
            last_tick,
            start_continuity_root,
            end_continuity_root,
            counted,
            metadata,
        })
    }

    /// The file name of the report in a backlog: `<first:020>-<last:020>.report`.
    pub fn file_name(&self) -> String {
        window_file_name(self.first_tick, self.last_tick)
    }
}

/// `<first:020>-<last:020>.report`.
pub fn window_file_name(first: Tick, last: Tick) -> String {
    format!("{first:020}-{last:020}.report")
}

/// The window a report file name names, if it is one.
pub fn parse_window_file_name(name: &str) -> Option<(Tick, Tick)> {
    let stem = name.strip_suffix(".report")?;
    let (first, last) = stem.split_once('-')?;
    if first.len() != 20 || last.len() != 20 {
        return None;
    }
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first >= 1 && first <= last).then_some((first, last))
}

fn read_text(reader: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let at = reader.offset();
    let length = reader.u8(what)? as usize;
    if length > TEXT_BYTES_MAX {
        return Err(reader.error_at(at, format!("{what} is over {TEXT_BYTES_MAX} bytes")));
    }
    let bytes = reader.take(length, what)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| reader.error_at(at, format!("{what} is not UTF-8")))
}

fn read_outcomes(reader: &mut Reader<'_>) -> Result<Outcomes, DecodeError> {
    Ok(Outcomes {
        applied: reader.u64("applied")?,
        rejected: reader.u64("rejected")?,
        trapped: reader.u64("trapped")?,
        out_of_fuel: reader.u64("out_of_fuel")?,
    })
}

fn read_metadata(reader: &mut Reader<'_>) -> Result<Metadata, DecodeError> {
    let window_start_unix_ms = reader.u64("window start")?;
    let window_end_unix_ms = reader.u64("window end")?;
    let checkpoints_written = reader.u64("checkpoints written")?;
    let checkpoint_bytes = reader.u64("checkpoint bytes")?;
    let package_root = reader.hash("package root")?;
    let package_version = read_text(reader, "package version")?;
    let runtime_version = read_text(reader, "runtime version")?;
    let at = reader.offset();
    let count = reader.u16("refusal reason count")? as usize;
    if count > REFUSAL_REASONS_MAX {
        return Err(reader.error_at(at, "more refusal reasons than a report may carry"));
    }
    let mut refused = BTreeMap::new();
    let mut previous: Option<String> = None;
    for _ in 0..count {
        let at = reader.offset();
        let reason = read_text(reader, "refusal reason")?;
        let value = reader.u64("refusal count")?;
        if !valid_reason(&reason) || value == 0 {
            return Err(reader.error_at(at, "a refusal reason is not [a-z0-9_]+ with a count > 0"));
        }
        if previous.as_ref().is_some_and(|p| *p >= reason) {
            return Err(reader.error_at(at, "refusal reasons are not in strictly ascending order"));
        }
        previous = Some(reason.clone());
        refused.insert(reason, value);
    }
    Ok(Metadata {
        window_start_unix_ms,
        window_end_unix_ms,
        checkpoints_written,
        checkpoint_bytes,
        refused,
        runtime_version,
        package_root,
        package_version,
    })
}

/// A report with its signature, as stored and sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReport {
    /// The report.
    pub report: UsageReport,
    /// `H("ea/usage-report/v1", body)`.
    pub digest: Hash,
    /// The signing key.
    pub public_key: [u8; 32],
    /// The ed25519 signature over `"ea/operator/usage-report/v1" || digest`.
    pub signature: [u8; 64],
    /// The whole file: body, public key, signature.
    pub bytes: Vec<u8>,
}

impl SignedReport {
    /// Decodes a report file and checks that the signature verifies under
    /// the key it names (not yet that the key is the world's: [`SignedReport::check_history`]).
    pub fn decode(bytes: &[u8]) -> Result<SignedReport, ReportError> {
        if bytes.len() > REPORT_BYTES_MAX {
            return Err(ReportError::Malformed {
                what: format!(
                    "{} bytes, over the {REPORT_BYTES_MAX}-byte bound",
                    bytes.len()
                ),
                offset: 0,
            });
        }
        let Some(split) = bytes.len().checked_sub(SIGNATURE_BYTES) else {
            return Err(ReportError::Malformed {
                what: "shorter than its signature".into(),
                offset: 0,
            });
        };
        let (body, tail) = bytes.split_at(split);
        let report = UsageReport::decode_body(body)?;
        let public_key: [u8; 32] = tail[..32].try_into().expect("32 bytes");
        let signature: [u8; 64] = tail[32..].try_into().expect("64 bytes");
        let digest = domain_hash(REPORT_DOMAIN, body);
        keys::verify_signature(&public_key, Signed::UsageReport, &digest, &signature)?;
        Ok(SignedReport {
            report,
            digest,
            public_key,
            signature,
            bytes: bytes.to_vec(),
        })
    }

    /// Checks that the signing key is one of the world's operator keys (its
    /// history endorsed link by link) and was current at the window's last tick.
    pub fn check_history(&self, history: &KeyHistory) -> Result<(), KeyError> {
        keys::verify_history(history)?;
        keys::verify(
            history,
            &self.public_key,
            Signed::UsageReport,
            &self.digest,
            &self.signature,
            Some(self.report.last_tick),
        )
    }

    /// The report as JSON (what `usage report --json` prints and the HTTP sink sends).
    pub fn to_json(&self) -> serde_json::Value {
        let report = &self.report;
        serde_json::json!({
            "format": "everarcade-usage-report/v1",
            "digest": self.digest.to_hex(),
            "world": report.world.as_str(),
            "first_tick": report.first_tick,
            "last_tick": report.last_tick,
            "start_continuity_root": report.start_continuity_root.to_hex(),
            "end_continuity_root": report.end_continuity_root.to_hex(),
            "rebuilt": report.flags & FLAG_REBUILT != 0,
            "offline": report.flags & FLAG_OFFLINE != 0,
            "counted": report.counted,
            "metadata": {
                "window_start_unix_ms": report.metadata.window_start_unix_ms,
                "window_end_unix_ms": report.metadata.window_end_unix_ms,
                "checkpoints_written": report.metadata.checkpoints_written,
                "checkpoint_bytes": report.metadata.checkpoint_bytes,
                "refused": report.metadata.refused,
                "runtime_version": report.metadata.runtime_version,
                "package_root": report.metadata.package_root.to_hex(),
                "package_version": report.metadata.package_version,
            },
            "public_key": hex::encode(self.public_key),
            "signature": hex::encode(self.signature),
            "bytes": hex::encode(&self.bytes),
        })
    }
}
