//! The proof bundle file: one versioned binary file holding everything
//! another machine needs to replay and audit a window of ticks
//! (docs/BUNDLES.md §3 is the byte-by-byte specification).
//!
//! ```text
//! bundle := body signature[64] checksum[32]
//! body   := header package genesis start accumulator ticks operator
//! digest   = H(Bundle, body)                      what the operator signs
//! checksum = H(BundleChecksum, body ‖ signature)  what a damaged file fails
//! ```
//!
//! Decoding checks the checksum first, then every count, length, order and
//! limit as it reads; it never panics and never allocates from a count the
//! remaining bytes cannot back. It does not verify the signature, decode the
//! checkpoint, validate the package or replay anything: that is
//! [`crate::verify`].

use everarcade_protocol::profile::LIMITS_MAX;
use everarcade_protocol::{
    Domain, Envelope, Hash, PublicKey, RECEIPT_BYTES, Receipt, Tick, TickRoots, WorldId,
};
use everarcade_store::keys::{
    KEYS_FORMAT, KeyEntry, KeyHistory, parse_public_key, parse_signature,
};

use crate::mmr::read_hashes;
use everarcade_store::codec::{DecodeError, Put, Reader};

/// The magic at the start of every bundle.
pub const BUNDLE_MAGIC: [u8; 8] = *b"EABUNDLE";
/// The bundle format version this runtime writes and reads.
pub const BUNDLE_VERSION: u16 = 1;
/// The largest bundle this runtime reads or writes; export a shorter window
/// when a window would exceed it.
pub const BUNDLE_BYTES_MAX: u64 = 1 << 30;
/// Bytes after the body: the signature and the checksum.
pub const BUNDLE_TRAILER_BYTES: usize = 64 + 32;
/// The longest runtime version string.
pub const RUNTIME_VERSION_BYTES_MAX: usize = 64;
/// The most files a bundled package may hold (as `everarcade-package` allows).
pub const PACKAGE_FILES_MAX: usize = 4_096;
/// The most bytes a bundled package may hold, all files together.
pub const PACKAGE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The longest path of a bundled package file.
pub const PACKAGE_PATH_BYTES_MAX: usize = 1_024;
/// The deepest directory nesting of a bundled package file.
pub const PACKAGE_DEPTH_MAX: usize = 16;
/// The most operator keys a bundle's key history may hold.
pub const OPERATOR_KEYS_MAX: usize = 1_024;
/// The smallest checkpoint file (docs/FORMATS.md §3).
pub const CHECKPOINT_BYTES_MIN: u64 = 168;
/// The longest envelope encoding (PROTOCOL §4.1).
const ENVELOPE_BYTES_MAX: usize = 110 + 63 + 65_536;
/// The shortest envelope encoding.
const ENVELOPE_BYTES_MIN: usize = 110 + 1;
/// The fewest bytes one tick takes: tick, input count, four roots, receipt count.
const TICK_BYTES_MIN: usize = 8 + 4 + 128 + 4;

const _: () = assert!(PACKAGE_BYTES_MAX < BUNDLE_BYTES_MAX);

/// One file of the bundled package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// The world state the window starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartState {
    /// Tick 0: the verifier runs `ea_genesis` itself.
    Genesis,
    /// A version-1 checkpoint file (docs/FORMATS.md §3) of tick `from_tick`.
    Checkpoint(Vec<u8>),
}

/// One tick of the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleTick {
    /// The recorded roots (the tick number is `roots.tick`).
    pub roots: TickRoots,
    /// The admitted envelopes, in admission order.
    pub inputs: Vec<Envelope>,
    /// The recorded receipts: one per input, then the tick hook's.
    pub receipts: Vec<Receipt>,
}

/// One key of the operator's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorKey {
    /// The ed25519 public key.
    pub public_key: PublicKey,
    /// The first tick it signed for.
    pub from_tick: Tick,
    /// The last tick it signed for; `None` for the current key.
    pub to_tick: Option<Tick>,
    /// The previous key's endorsement of this one; `None` for the first key.
    pub endorsement: Option<[u8; 64]>,
}

/// Who signed the bundle, with the key history that vouches for the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The signing key.
    pub signer: PublicKey,
    /// The world's operator keys, oldest first.
    pub keys: Vec<OperatorKey>,
}

impl Operator {
    /// From the store's key history; `None` if a key or endorsement there is not hex.
    pub fn from_history(signer: PublicKey, history: &KeyHistory) -> Option<Operator> {
        let keys = history
            .keys
            .iter()
            .map(|entry| {
                Some(OperatorKey {
                    public_key: parse_public_key(&entry.public_key).ok()?,
                    from_tick: entry.from_tick,
                    to_tick: entry.to_tick,
                    endorsement: match &entry.endorsed_by_previous {
                        None => None,
                        Some(text) => Some(parse_signature(text).ok()?),
                    },
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Operator { signer, keys })
    }

    /// As the store's key history, for `everarcade_store::keys::verify`.
    pub fn history(&self) -> KeyHistory {
        KeyHistory {
            format: KEYS_FORMAT,
            keys: self
                .keys
                .iter()
                .map(|key| KeyEntry {
                    public_key: hex::encode(key.public_key),
                    from_tick: key.from_tick,
                    to_tick: key.to_tick,
                    endorsed_by_previous: key.endorsement.map(hex::encode),
                })
                .collect(),
        }
    }
}

/// A proof bundle's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The world id.
    pub world: WorldId,
    /// The runtime version that exported it.
    pub runtime_version: String,
    /// The protocol version of the lineage.
    pub protocol_version: u32,
    /// The package root bound at genesis.
    pub package_root: Hash,
    /// `C(0)`.
    pub genesis_root: Hash,
    /// The world's last tick when the bundle was exported (the tick the
    /// operator key signed at).
    pub head_tick: Tick,
    /// The window's first tick T1: the state the window starts from.
    pub from_tick: Tick,
    /// The window's last tick T2.
    pub to_tick: Tick,
    /// The package's files, sorted by path bytes.
    pub package: Vec<BundleFile>,
    /// The state root after `ea_genesis` (the genesis record's).
    pub genesis_state_root: Hash,
    /// The genesis hook's receipt, if the package exports `ea_genesis`.
    pub genesis_receipt: Option<Receipt>,
    /// The state at `from_tick`.
    pub start: StartState,
    /// The recorded roots of `from_tick`.
    pub anchor: TickRoots,
    /// The accumulator's peaks over ticks `0..=from_tick`.
    pub frontier: Vec<Hash>,
    /// The anchor's leaf proven inside the frontier's last peak.
    pub anchor_path: Vec<Hash>,
    /// Ticks `from_tick + 1 ..= to_tick`.
    pub ticks: Vec<BundleTick>,
    /// The operator.
    pub operator: Operator,
}

/// A decoded bundle file with what seals it.
#[derive(Clone, Debug)]
pub struct SealedBundle {
    /// The contents.
    pub bundle: Bundle,
    /// `H(Bundle, body)`.
    pub digest: Hash,
    /// The operator's signature over the digest (`Signed::Bundle`).
    pub signature: [u8; 64],
    /// The file's size.
    pub bytes: u64,
}

/// Why bytes are not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Over [`BUNDLE_BYTES_MAX`].
    #[error("the bundle is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The magic is not `EABUNDLE`.
    #[error("not a proof bundle (the file does not start with EABUNDLE)")]
    NotABundle,
    /// A version this runtime does not read.
    #[error(
        "bundle format version {found} is not supported (this runtime reads version {BUNDLE_VERSION})"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// The checksum does not match: the file was damaged or altered.
    #[error("the bundle checksum does not match its bytes: the file is damaged or was altered")]
    Checksum,
    /// A field is out of range, out of order or truncated.
    #[error("malformed bundle at byte {offset}: {what}")]
    Malformed {
        /// Byte offset of the field.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

impl BundleError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::TooLarge { .. } => "bundle_too_large",
            BundleError::NotABundle => "not_a_bundle",
            BundleError::UnsupportedVersion { .. } => "unsupported_bundle_version",
            BundleError::Checksum => "bundle_checksum",
            BundleError::Malformed { .. } => "malformed_bundle",
        }
    }
}

impl From<DecodeError> for BundleError {
    fn from(error: DecodeError) -> BundleError {
        BundleError::Malformed {
            offset: error.offset as u64,
            what: error.what,
        }
    }
}

/// Whether `path` may name a package file: relative, `/`-separated, every
/// part non-empty and not `.` or `..`, no `\` or NUL, at most
/// [`PACKAGE_DEPTH_MAX`] directories deep.
pub fn valid_package_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= PACKAGE_PATH_BYTES_MAX
        && !path.contains(['\\', '\0'])
        && path.split('/').count() <= PACKAGE_DEPTH_MAX + 1
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn put_roots(out: &mut Vec<u8>, roots: &TickRoots) {
    out.put_u64(roots.tick);
    out.put_hash(&roots.input_root);
    out.put_hash(&roots.receipt_root);
    out.put_hash(&roots.state_root);
    out.put_hash(&roots.continuity_root);
}

impl Bundle {
    /// The body: every byte the operator's signature covers.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_header(&mut out);
        out.put_u32(self.package.len() as u32);
        for file in &self.package {
            out.put_u16(file.path.len() as u16);
            out.extend_from_slice(file.path.as_bytes());
            out.put_u64(file.bytes.len() as u64);
            out.extend_from_slice(&file.bytes);
        }
        out.put_hash(&self.genesis_state_root);
        match &self.genesis_receipt {
            None => out.put_u8(0),
            Some(receipt) => {
                out.put_u8(1);
                out.extend_from_slice(&receipt.encode());
            }
        }
        match &self.start {
            StartState::Genesis => out.put_u8(0),
            StartState::Checkpoint(bytes) => {
                out.put_u8(1);
                out.put_u64(bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
        }
        put_roots(&mut out, &self.anchor);
        out.put_u8(self.frontier.len() as u8);
        self.frontier.iter().for_each(|hash| out.put_hash(hash));
        out.put_u8(self.anchor_path.len() as u8);
        self.anchor_path.iter().for_each(|hash| out.put_hash(hash));
        out.put_u64(self.ticks.len() as u64);
        for tick in &self.ticks {
            encode_tick(&mut out, tick);
        }
        self.encode_operator(&mut out);
        out
    }

    fn encode_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&BUNDLE_MAGIC);
        out.put_u16(BUNDLE_VERSION);
        out.extend_from_slice(&[0; 6]);
        out.put_u32(self.protocol_version);
        self.world.encode_into(out);
        out.put_u8(self.runtime_version.len() as u8);
        out.extend_from_slice(self.runtime_version.as_bytes());
        out.put_hash(&self.package_root);
        out.put_hash(&self.genesis_root);
        out.put_u64(self.head_tick);
        out.put_u64(self.from_tick);
        out.put_u64(self.to_tick);
    }

    fn encode_operator(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.operator.signer);
        out.put_u16(self.operator.keys.len() as u16);
        for key in &self.operator.keys {
            out.extend_from_slice(&key.public_key);
            out.put_u64(key.from_tick);
            match key.to_tick {
                None => out.put_u8(0),
                Some(tick) => {
                    out.put_u8(1);
                    out.put_u64(tick);
                }
            }
            match &key.endorsement {
                None => out.put_u8(0),
                Some(signature) => {
                    out.put_u8(1);
                    out.extend_from_slice(signature);
                }
            }
        }
    }

    /// Encodes, has `sign` sign the digest, and seals: the whole file.
    pub fn sign_and_seal(&self, sign: impl FnOnce(&Hash) -> [u8; 64]) -> Vec<u8> {
        let body = self.encode_body();
        let signature = sign(&body_digest(&body));
        seal(body, &signature)
    }
}

fn encode_tick(out: &mut Vec<u8>, tick: &BundleTick) {
    out.put_u64(tick.roots.tick);
    out.put_u32(tick.inputs.len() as u32);
    for envelope in &tick.inputs {
        let bytes = envelope.encode();
        out.put_u32(bytes.len() as u32);
        out.extend_from_slice(&bytes);
    }
    out.put_hash(&tick.roots.input_root);
    out.put_hash(&tick.roots.receipt_root);
    out.put_hash(&tick.roots.state_root);
    out.put_hash(&tick.roots.continuity_root);
    out.put_u32(tick.receipts.len() as u32);
    for receipt in &tick.receipts {
        out.extend_from_slice(&receipt.encode());
    }
}

/// `H(Bundle, body)`: the digest the operator signs.
pub fn body_digest(body: &[u8]) -> Hash {
    Domain::Bundle.hash(body)
}

/// `body ‖ signature ‖ H(BundleChecksum, body ‖ signature)`.
pub fn seal(mut body: Vec<u8>, signature: &[u8; 64]) -> Vec<u8> {
    body.extend_from_slice(signature);
    let checksum = Domain::BundleChecksum.hash(&body);
    body.put_hash(&checksum);
    body
}

/// Decodes and checks a bundle file's structure; see the module docs.
pub fn decode(bytes: &[u8]) -> Result<SealedBundle, BundleError> {
    let size = bytes.len() as u64;
    if size > BUNDLE_BYTES_MAX {
        return Err(BundleError::TooLarge {
            size,
            max: BUNDLE_BYTES_MAX,
        });
    }
    if bytes.len() < 10 || bytes[..8] != BUNDLE_MAGIC {
        return Err(BundleError::NotABundle);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != BUNDLE_VERSION {
        return Err(BundleError::UnsupportedVersion { found: version });
    }
    let Some(body_end) = bytes.len().checked_sub(BUNDLE_TRAILER_BYTES) else {
        return Err(BundleError::Checksum);
    };
    let (sealed, checksum) = bytes.split_at(bytes.len() - 32);
    if Domain::BundleChecksum.hash(sealed).0[..] != checksum[..] {
        return Err(BundleError::Checksum);
    }
    let body = &bytes[..body_end];
    let signature: [u8; 64] = bytes[body_end..body_end + 64].try_into().expect("64 bytes");
    let mut reader = Reader::new(body);
    let bundle = decode_body(&mut reader)?;
    reader.finish("bundle body")?;
    Ok(SealedBundle {
        bundle,
        digest: body_digest(body),
        signature,
        bytes: size,
    })
}

fn malformed(reader: &Reader<'_>, at: usize, what: impl Into<String>) -> BundleError {
    reader.error_at(at, what).into()
}

struct Header {
    world: WorldId,
    runtime_version: String,
    protocol_version: u32,
    package_root: Hash,
    genesis_root: Hash,
    head_tick: Tick,
    from_tick: Tick,
    to_tick: Tick,
}

fn decode_header(reader: &mut Reader<'_>) -> Result<Header, BundleError> {
    reader.take(10, "magic and version")?;
    let at = reader.offset();
    if reader.array::<6>("reserved")? != [0; 6] {
        return Err(malformed(reader, at, "reserved bytes are not zero"));
    }
    let protocol_version = reader.u32("protocol version")?;
    let at = reader.offset();
    let length = reader.u8("world id length")? as usize;
    let world = std::str::from_utf8(reader.take(length, "world id")?)
        .ok()
        .and_then(|text| WorldId::new(text).ok())
        .ok_or_else(|| malformed(reader, at, "the world id is not a valid world id"))?;
    let at = reader.offset();
    let length = reader.u8("runtime version length")? as usize;
    let text = reader.take(length, "runtime version")?;
    if length == 0
        || length > RUNTIME_VERSION_BYTES_MAX
        || !text.iter().all(|byte| byte.is_ascii_graphic())
    {
        return Err(malformed(
            reader,
            at,
            "the runtime version is not 1..=64 printable ASCII characters",
        ));
    }
    let runtime_version = String::from_utf8(text.to_vec()).expect("ASCII");
    let package_root = reader.hash("package root")?;
    let genesis_root = reader.hash("genesis root")?;
    let at = reader.offset();
    let head_tick = reader.u64("head tick")?;
    let from_tick = reader.u64("from tick")?;
    let to_tick = reader.u64("to tick")?;
    if from_tick > to_tick || to_tick > head_tick || from_tick == u64::MAX {
        return Err(malformed(
            reader,
            at,
            format!("window {from_tick}..={to_tick} with head {head_tick} is not ordered"),
        ));
    }
    Ok(Header {
        world,
        runtime_version,
        protocol_version,
        package_root,
        genesis_root,
        head_tick,
        from_tick,
        to_tick,
    })
}

fn decode_package(reader: &mut Reader<'_>) -> Result<Vec<BundleFile>, BundleError> {
    let at = reader.offset();
    let count = reader.u32("package file count")? as usize;
    if count == 0 || count > PACKAGE_FILES_MAX {
        return Err(malformed(
            reader,
            at,
            format!("{count} package files (1..={PACKAGE_FILES_MAX} allowed)"),
        ));
    }
    let count = reader.count(count as u64, 2 + 1 + 8, "package file count")?;
    let mut files: Vec<BundleFile> = Vec::with_capacity(count);
    let mut total = 0u64;
    for _ in 0..count {
        let at = reader.offset();
        let length = reader.u16("path length")? as usize;
        let path = std::str::from_utf8(reader.take(length, "path")?)
            .ok()
            .filter(|path| valid_package_path(path))
            .ok_or_else(|| malformed(reader, at, "a package path is not a plain relative path"))?
            .to_string();
        if files
            .last()
            .is_some_and(|last| last.path.as_bytes() >= path.as_bytes())
        {
            return Err(malformed(
                reader,
                at,
                "package paths are not strictly ascending",
            ));
        }
        let at = reader.offset();
        let size = reader.u64("file length")?;
        total = total.saturating_add(size);
        if total > PACKAGE_BYTES_MAX {
            return Err(malformed(
                reader,
                at,
                format!("the package holds over {PACKAGE_BYTES_MAX} bytes"),
            ));
        }
        let bytes = reader.take(size as usize, "file bytes")?.to_vec();
        files.push(BundleFile { path, bytes });
    }
    Ok(files)
}

fn decode_receipt(reader: &mut Reader<'_>) -> Result<Receipt, BundleError> {
    let at = reader.offset();
    let bytes: [u8; RECEIPT_BYTES] = reader.array("receipt")?;
    Receipt::decode(&bytes)
        .ok_or_else(|| malformed(reader, at, "a receipt has an unknown kind, outcome or code"))
}

fn decode_roots(reader: &mut Reader<'_>, tick: Tick) -> Result<TickRoots, BundleError> {
    Ok(TickRoots {
        tick,
        input_root: reader.hash("input root")?,
        receipt_root: reader.hash("receipt root")?,
        state_root: reader.hash("state root")?,
        continuity_root: reader.hash("continuity root")?,
    })
}

fn decode_tick(reader: &mut Reader<'_>, expected: Tick) -> Result<BundleTick, BundleError> {
    let at = reader.offset();
    let tick = reader.u64("tick")?;
    if tick != expected {
        return Err(malformed(
            reader,
            at,
            format!("tick {tick} where tick {expected} is next"),
        ));
    }
    let at = reader.offset();
    let count = reader.u32("input count")?;
    if count > LIMITS_MAX.inputs_per_tick {
        return Err(malformed(
            reader,
            at,
            format!("tick {tick} holds {count} inputs"),
        ));
    }
    let count = reader.count(count as u64, 4 + ENVELOPE_BYTES_MIN, "input count")?;
    let mut inputs = Vec::with_capacity(count);
    for _ in 0..count {
        let at = reader.offset();
        let length = reader.u32("envelope length")? as usize;
        if length > ENVELOPE_BYTES_MAX {
            return Err(malformed(
                reader,
                at,
                "an envelope is longer than any v1 envelope",
            ));
        }
        let bytes = reader.take(length, "envelope")?;
        let envelope = Envelope::decode(bytes)
            .map_err(|error| malformed(reader, at + 4, format!("tick {tick}: {error}")))?;
        inputs.push(envelope);
    }
    let roots = decode_roots(reader, tick)?;
    let at = reader.offset();
    let receipts = reader.u32("receipt count")? as usize;
    if receipts < inputs.len() || receipts > inputs.len() + 1 {
        return Err(malformed(
            reader,
            at,
            format!(
                "tick {tick} has {receipts} receipts for {} inputs",
                inputs.len()
            ),
        ));
    }
    let receipts = reader.count(receipts as u64, RECEIPT_BYTES, "receipt count")?;
    let receipts = (0..receipts)
        .map(|_| decode_receipt(reader))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BundleTick {
        roots,
        inputs,
        receipts,
    })
}

fn decode_operator(reader: &mut Reader<'_>) -> Result<Operator, BundleError> {
    let signer: PublicKey = reader.array("signer public key")?;
    let at = reader.offset();
    let count = reader.u16("operator key count")? as usize;
    if count == 0 || count > OPERATOR_KEYS_MAX {
        return Err(malformed(reader, at, format!("{count} operator keys")));
    }
    let count = reader.count(count as u64, 32 + 8 + 2, "operator key count")?;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        let public_key: PublicKey = reader.array("operator public key")?;
        let from_tick = reader.u64("key from tick")?;
        let at = reader.offset();
        let to_tick = match reader.u8("key to-tick flag")? {
            0 => None,
            1 => Some(reader.u64("key to tick")?),
            _ => return Err(malformed(reader, at, "a flag is neither 0 nor 1")),
        };
        let at = reader.offset();
        let endorsement = match reader.u8("endorsement flag")? {
            0 => None,
            1 => Some(reader.array::<64>("endorsement")?),
            _ => return Err(malformed(reader, at, "a flag is neither 0 nor 1")),
        };
        keys.push(OperatorKey {
            public_key,
            from_tick,
            to_tick,
            endorsement,
        });
    }
    Ok(Operator { signer, keys })
}

fn decode_body(reader: &mut Reader<'_>) -> Result<Bundle, BundleError> {
    let header = decode_header(reader)?;
    let package = decode_package(reader)?;
    let genesis_state_root = reader.hash("genesis state root")?;
    let at = reader.offset();
    let genesis_receipt = match reader.u8("genesis receipt flag")? {
        0 => None,
        1 => Some(decode_receipt(reader)?),
        _ => return Err(malformed(reader, at, "a flag is neither 0 nor 1")),
    };
    let at = reader.offset();
    let start = match (reader.u8("start kind")?, header.from_tick) {
        (0, 0) => StartState::Genesis,
        (1, from) if from > 0 => {
            let at = reader.offset();
            let length = reader.u64("checkpoint length")?;
            if length < CHECKPOINT_BYTES_MIN || length > reader.remaining() as u64 {
                return Err(malformed(
                    reader,
                    at,
                    format!("a checkpoint of {length} bytes"),
                ));
            }
            StartState::Checkpoint(reader.take(length as usize, "checkpoint")?.to_vec())
        }
        (kind, from) => {
            return Err(malformed(
                reader,
                at,
                format!(
                    "start kind {kind} for a window from tick {from} (0 from genesis, 1 from a checkpoint)"
                ),
            ));
        }
    };
    let at = reader.offset();
    let anchor_tick = reader.u64("anchor tick")?;
    if anchor_tick != header.from_tick {
        return Err(malformed(
            reader,
            at,
            format!("the anchor is tick {anchor_tick}, not the window's first tick"),
        ));
    }
    let anchor = decode_roots(reader, anchor_tick)?;
    let leaves = header.from_tick + 1;
    let at = reader.offset();
    let peaks = reader.u8("frontier peak count")? as usize;
    if peaks != leaves.count_ones() as usize {
        return Err(malformed(
            reader,
            at,
            format!("{peaks} peaks for {leaves} leaves"),
        ));
    }
    let frontier = read_hashes(reader, peaks, "frontier")?;
    let at = reader.offset();
    let path = reader.u8("anchor path length")? as usize;
    if path != leaves.trailing_zeros() as usize {
        return Err(malformed(
            reader,
            at,
            format!("an anchor path of {path} hashes"),
        ));
    }
    let anchor_path = read_hashes(reader, path, "anchor path")?;
    let at = reader.offset();
    let count = reader.u64("tick count")?;
    if count != header.to_tick - header.from_tick {
        return Err(malformed(
            reader,
            at,
            format!(
                "{count} ticks in a window of {}",
                header.to_tick - header.from_tick
            ),
        ));
    }
    let count = reader.count(count, TICK_BYTES_MIN, "tick count")?;
    let mut ticks = Vec::with_capacity(count);
    for offset in 0..count as u64 {
        ticks.push(decode_tick(reader, header.from_tick + 1 + offset)?);
    }
    let operator = decode_operator(reader)?;
    Ok(Bundle {
        world: header.world,
        runtime_version: header.runtime_version,
        protocol_version: header.protocol_version,
        package_root: header.package_root,
        genesis_root: header.genesis_root,
        head_tick: header.head_tick,
        from_tick: header.from_tick,
        to_tick: header.to_tick,
        package,
        genesis_state_root,
        genesis_receipt,
        start,
        anchor,
        frontier,
        anchor_path,
        ticks,
        operator,
    })
}
