//! The wire shapes of docs/HTTP.md as this client writes and reads them:
//! request bodies for inputs, and the answers of every route. Pure
//! functions of bytes, so they are tested without a node.
//!
//! Answers are read leniently in one way only: a field this client does not
//! know is ignored (a newer node may add some). A documented field that is
//! missing, of the wrong type, or a hex string of the wrong length is
//! refused.

use everarcade_protocol::{
    Envelope, Hash, Outcome, PublicKey, Receipt, ReceiptKind, TrapClass, list_root,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How inputs travel: `application/json` (hex fields) or
/// `application/octet-stream` (version-1 envelope encodings back to back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// `{"world","sender","nonce","payload","signature"}`, or
    /// `{"envelopes":[…]}` for a batch.
    #[default]
    Json,
    /// `Envelope::encode` of each envelope, concatenated.
    Binary,
}

impl Encoding {
    /// The `Content-Type` of a body in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Binary => "application/octet-stream",
        }
    }
}

/// One envelope as JSON: lowercase hex for keys, payload and signature.
#[derive(Serialize)]
struct JsonEnvelope<'a> {
    world: &'a str,
    sender: String,
    nonce: u64,
    payload: String,
    signature: String,
}

impl<'a> From<&'a Envelope> for JsonEnvelope<'a> {
    fn from(envelope: &'a Envelope) -> JsonEnvelope<'a> {
        JsonEnvelope {
            world: envelope.world.as_str(),
            sender: hex::encode(envelope.sender),
            nonce: envelope.nonce,
            payload: hex::encode(&envelope.payload),
            signature: hex::encode(envelope.signature),
        }
    }
}

#[derive(Serialize)]
struct JsonBatch<'a> {
    envelopes: Vec<JsonEnvelope<'a>>,
}

/// The body of `POST /v1/worlds/{world}/inputs` for one envelope.
pub fn single_body(envelope: &Envelope, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => {
            serde_json::to_vec(&JsonEnvelope::from(envelope)).expect("plain data serializes")
        }
        Encoding::Binary => envelope.encode(),
    }
}

/// The body of `POST /v1/worlds/{world}/inputs` for a batch. In the binary
/// encoding a batch of one envelope is indistinguishable from a single
/// input, and the node answers it as one ([`parse_batch`] reads both).
pub fn batch_body(envelopes: &[Envelope], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => {
            let batch = JsonBatch {
                envelopes: envelopes.iter().map(JsonEnvelope::from).collect(),
            };
            serde_json::to_vec(&batch).expect("plain data serializes")
        }
        Encoding::Binary => envelopes.iter().flat_map(Envelope::encode).collect(),
    }
}

/// Where an admitted input will execute: tick `tick`, as its `seq`-th input (from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Ack {
    /// The tick the input will execute in.
    pub tick: u64,
    /// Its position among that tick's inputs, from 0.
    pub seq: u32,
}

/// The node's error body `{"error":{"code","message"}}`, or one entry of a
/// batch answer that was refused.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Refusal {
    /// The stable code, e.g. `stale_nonce`.
    pub code: String,
    /// For a human.
    pub message: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Refusal,
}

/// Parses an error body; `None` when the body is not the documented shape.
pub fn parse_error(body: &[u8]) -> Option<Refusal> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|body| body.error)
}

/// One entry of a batch answer.
#[derive(Deserialize)]
#[serde(untagged)]
enum BatchEntry {
    Ack(Ack),
    Refused(ErrorBody),
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchEntry>,
}

/// Parses the 202 answer to a batch: one result per envelope, in order. A
/// single-input answer (`{"tick","seq"}`, which the node gives to a binary
/// body holding one envelope) is read as a batch of one.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Result<Ack, Refusal>>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if value.get("results").is_some() {
        let answer: BatchAnswer = serde_json::from_value(value).map_err(|e| e.to_string())?;
        return Ok(answer
            .results
            .into_iter()
            .map(|entry| match entry {
                BatchEntry::Ack(ack) => Ok(ack),
                BatchEntry::Refused(body) => Err(body.error),
            })
            .collect());
    }
    let ack: Ack = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(vec![Ok(ack)])
}

/// Parses a JSON answer of type `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn hash<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
    let text = String::deserialize(deserializer)?;
    Hash::from_hex(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not 64 lowercase hex digits")))
}

fn hash_hex<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hash.to_hex())
}

fn public_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
    let text = String::deserialize(deserializer)?;
    hex::decode(&text)
        .ok()
        .and_then(|bytes| PublicKey::try_from(bytes).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not 64 hex digits")))
}

fn public_key_hex<S: Serializer>(key: &PublicKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(key))
}

fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    hex::decode(&text).map_err(|e| serde::de::Error::custom(format!("{text:?} is not hex: {e}")))
}

fn optional_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => hex::decode(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not hex: {e}"))),
    }
}

/// `GET /readyz` and `GET /healthz`: `{"status":"ready"}` / `{"status":"alive"}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Probe {
    /// `ready` or `alive`.
    pub status: String,
}

/// `GET /version`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// The runtime's version, e.g. `0.1.0`.
    pub runtime: String,
    /// The protocol version (1).
    pub protocol: u32,
    /// The package root of the world the node runs.
    #[serde(deserialize_with = "hash")]
    pub package_root: Hash,
    /// The world id.
    pub world: String,
    /// Optional features and whether they are on.
    pub features: Features,
    /// The operator key that signs this node's checkpoints and attestations.
    #[serde(deserialize_with = "public_key")]
    pub operator_public_key: PublicKey,
}

/// The features named by `GET /version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Features {
    /// Whether the node keeps everything in memory.
    pub amnesia: bool,
    /// Whether the node serves TLS.
    pub tls: bool,
}

/// `GET /v1/worlds/{world}/status`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Status {
    /// The world id.
    pub world: String,
    /// The last executed tick (`height` from nodes before the rename).
    #[serde(alias = "height")]
    pub head_tick: u64,
    /// The state root at `head_tick`.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub state_root: Hash,
    /// The input root at `head_tick`.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub input_root: Hash,
    /// The receipt root at `head_tick`.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub receipt_root: Hash,
    /// `C(head_tick)`.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub continuity_root: Hash,
    /// `C(0)`.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub genesis_root: Hash,
    /// The package root.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub package_root: Hash,
    /// `open` or `closed`.
    pub admission: String,
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
    /// The first failing readiness check, when not ready.
    pub not_ready_reason: Option<String>,
    /// The node's process id.
    pub pid: u32,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// The manifest's tick rate.
    pub tick_rate_hz: f64,
    /// Ticks per second actually executed lately.
    pub achieved_tick_rate_hz: f64,
    /// Admitted inputs not yet executed.
    pub pending_inputs: u64,
    /// The newest checkpoint's tick, if any.
    pub checkpoint_tick: Option<u64>,
    /// The address the node listens on.
    pub address: String,
    /// Whether the node keeps everything in memory.
    pub amnesia: bool,
    /// The operator key that signs this node's checkpoints and attestations.
    #[serde(deserialize_with = "public_key", serialize_with = "public_key_hex")]
    pub operator_public_key: PublicKey,
    /// The divergence or integrity incident that stopped the world, if one
    /// stands (admission is closed and the lineage unpublished until an
    /// operator resolves it).
    pub incident: Option<Incident>,
    /// `authority`, `follower`, `standby` or `diverged` (docs/FEDERATION.md);
    /// `authority` from nodes before federation.
    #[serde(default = "authority_role")]
    pub role: String,
    /// The authority's URL (this node's own when it is the authority).
    #[serde(default)]
    pub authority: Option<String>,
    /// A follower's distance behind the authority's head, in ticks, when known.
    #[serde(default)]
    pub lag_ticks: Option<u64>,
    /// A follower: why following fails now, if it does.
    #[serde(default)]
    pub follow_error: Option<String>,
    /// The HTTP followers this node has heard from.
    #[serde(default)]
    pub followers: Vec<FollowerSeen>,
    /// A follower that caught up from its authority's checkpoint since it
    /// started: that checkpoint's tick (the ticks up to it were journaled,
    /// not executed, here; `replay-verify` re-executes them).
    #[serde(default)]
    pub caught_up_from_checkpoint: Option<u64>,
    /// Whether this answer comes from the live node (always, over HTTP).
    pub live: bool,
}

fn authority_role() -> String {
    "authority".into()
}

/// `GET /v1/worlds/{world}/authority`: who admits inputs for a world.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Authority {
    /// The world id.
    pub world: String,
    /// This node's role: `authority`, `follower`, `standby` or `diverged`.
    pub role: String,
    /// Where the authority is (`http://HOST:PORT`, or `nats://…` for a
    /// JetStream follower that has not learnt the authority's URL).
    pub authority: Option<String>,
    /// The JetStream lease's revision, where a lease is held.
    pub lease_revision: Option<u64>,
}

/// An HTTP follower as the node it follows last heard from it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct FollowerSeen {
    /// The name it pulls under.
    pub name: String,
    /// Its journal's last durable record.
    pub durable_record: u64,
    /// The tick at which it reported its roots differed, if it did.
    pub diverged_at_tick: Option<u64>,
}

/// An incident named by the status (docs/OPERATIONS.md, "Incidents").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Incident {
    /// `divergence` or `integrity`.
    pub kind: String,
    /// The first tick involved.
    pub tick: u64,
    /// Its record under the world's `incidents/`.
    pub record: String,
    /// What happened.
    pub message: String,
}

/// One receipt of `GET /v1/worlds/{world}/ticks/{tick}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReceiptView {
    /// `input`, `tick_hook` or `genesis_hook`.
    pub kind: String,
    /// The envelope hash (zero for hooks).
    #[serde(deserialize_with = "hash")]
    pub subject: Hash,
    /// `applied`, `rejected`, `trapped` or `out_of_fuel`.
    pub outcome: String,
    /// The game's rejection code or the trap class; else 0.
    pub code: u32,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Hash of the emitted events.
    #[serde(deserialize_with = "hash")]
    pub events_hash: Hash,
    /// Number of emitted events.
    pub event_count: u32,
}

impl ReceiptView {
    /// The protocol receipt this view describes; `None` if a kind, outcome
    /// or code is not one the protocol defines.
    pub fn to_receipt(&self) -> Option<Receipt> {
        let kind = match self.kind.as_str() {
            "input" => ReceiptKind::Input,
            "tick_hook" | "tick" => ReceiptKind::TickHook,
            "genesis_hook" | "genesis" => ReceiptKind::GenesisHook,
            _ => return None,
        };
        let outcome = match (self.outcome.as_str(), self.code) {
            ("applied", 0) => Outcome::Applied,
            ("rejected", code) if code > 0 => Outcome::Rejected(code),
            ("trapped", code) => Outcome::Trapped(TrapClass::from_code(code)?),
            ("out_of_fuel", 0) => Outcome::OutOfFuel,
            _ => return None,
        };
        Some(Receipt {
            kind,
            subject: self.subject,
            outcome,
            fuel_used: self.fuel_used,
            events_hash: self.events_hash,
            event_count: self.event_count,
        })
    }
}

/// `GET /v1/worlds/{world}/ticks/{tick}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TickInfo {
    /// The tick.
    pub tick: u64,
    /// Its input root.
    #[serde(deserialize_with = "hash")]
    pub input_root: Hash,
    /// Its receipt root.
    #[serde(deserialize_with = "hash")]
    pub receipt_root: Hash,
    /// Its state root.
    #[serde(deserialize_with = "hash")]
    pub state_root: Hash,
    /// `C(tick)`.
    #[serde(deserialize_with = "hash")]
    pub continuity_root: Hash,
    /// Inputs executed in the tick.
    pub input_count: u64,
    /// Every receipt of the tick, in receipt-root order.
    pub receipts: Vec<ReceiptView>,
}

impl TickInfo {
    /// The Merkle list root of the receipts as sent (docs/PROTOCOL.md §8.1),
    /// `None` if one of them is not a protocol receipt.
    pub fn computed_receipt_root(&self) -> Option<Hash> {
        let hashes: Option<Vec<Hash>> = self
            .receipts
            .iter()
            .map(|view| view.to_receipt().map(|receipt| receipt.hash()))
            .collect();
        hashes.map(|hashes| list_root(&hashes))
    }
}

/// The raw answer of `GET /v1/worlds/{world}/state/{key}`, before its proof is checked.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StateAnswer {
    /// The head tick the value is read at.
    pub tick: u64,
    /// The key, hex.
    #[serde(deserialize_with = "bytes")]
    pub key: Vec<u8>,
    /// The value, or `None` when the key is absent.
    #[serde(deserialize_with = "optional_bytes")]
    pub value: Option<Vec<u8>>,
    /// The state root the proof is against.
    #[serde(deserialize_with = "hash")]
    pub state_root: Hash,
    /// `Proof::encode`, hex.
    #[serde(deserialize_with = "bytes")]
    pub proof: Vec<u8>,
}

/// `POST /admin/admission/open` and `/close`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Admission {
    /// `open` or `closed`.
    pub admission: String,
}

/// `POST /admin/checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct CheckpointTaken {
    /// The tick of the checkpoint.
    pub tick: u64,
    /// Its path on the node's disk.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// `POST /admin/backup`: a hot backup, consistent at a tick boundary.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct BackupTaken {
    /// The backup folder on the node's disk.
    pub path: String,
    /// Its signed manifest (store a copy off the host).
    pub manifest: String,
    /// The manifest's BLAKE3.
    #[serde(deserialize_with = "hash", serialize_with = "hash_hex")]
    pub manifest_blake3: Hash,
    /// The tick of the checkpoint it holds.
    pub tick: u64,
    /// Bytes copied.
    pub data_bytes: u64,
    /// How long it took.
    pub seconds: f64,
}

/// `POST /admin/drain`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Drained {
    /// `closed`.
    pub admission: String,
    /// The tick that executed the last acknowledged input.
    pub tick: u64,
}

/// `POST /admin/federation/{promote,leave,rejoin}`: the node's role after
/// the change (docs/FEDERATION.md §Recovery commands).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct RoleChange {
    /// `authority`, `standby` or `follower`.
    pub role: String,
    /// The node's head tick after the change (a promoted node admits
    /// inputs for the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<u64>,
    /// The authority a rejoined node follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}
