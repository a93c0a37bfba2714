//! Request bodies: bounded reading, bounded decompression, and the two
//! input encodings (JSON and binary envelopes).

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use everarcade_protocol::{Envelope, WorldId};
use serde::Deserialize;

use crate::error::ApiError;

/// Hard limits on one body.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Bytes on the wire.
    pub wire_bytes_max: usize,
    /// Decompressed bytes per wire byte.
    pub decompression_ratio_max: u32,
}

/// Reads the whole body, refusing more than `wire_bytes_max` bytes, then
/// decompresses it per `Content-Encoding` within the ratio limit.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {} bytes", limits.wire_bytes_max),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.wire_bytes_max as u64) {
        return Err(too_large());
    }
    let wire = axum::body::to_bytes(body, limits.wire_bytes_max)
        .await
        .map_err(|error| {
            // `to_bytes` reports the length limit and transport errors alike.
            let text = error.to_string();
            if text.contains("length limit") {
                too_large()
            } else {
                ApiError::bad_request("malformed_body", format!("reading the body failed: {text}"))
            }
        })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(wire.to_vec()),
        Some("gzip") => inflate(
            flate2::read::GzDecoder::new(&wire[..]),
            wire.len(),
            limits,
            "gzip",
        ),
        Some("zstd") => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(&wire[..]).map_err(|error| {
                ApiError::bad_request("malformed_body", format!("zstd body: {error}"))
            })?;
            inflate(decoder, wire.len(), limits, "zstd")
        }
        Some(other) => Err(ApiError::bad_request(
            "unsupported_encoding",
            format!("Content-Encoding {other:?} is not supported; use gzip, zstd or none"),
        )),
    }
}

/// Decompresses at most `ratio × wire` bytes; one byte more is a refusal.
fn inflate(
    decoder: impl Read,
    wire_bytes: usize,
    limits: BodyLimits,
    name: &str,
) -> Result<Vec<u8>, ApiError> {
    let ratio = limits.decompression_ratio_max as usize;
    let allowed = wire_bytes.max(1).saturating_mul(ratio);
    let mut out = Vec::new();
    decoder
        .take(allowed as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| {
            ApiError::bad_request("malformed_body", format!("{name} body: {error}"))
        })?;
    if out.len() > allowed {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompression_ratio_exceeded",
            format!(
                "a {wire_bytes}-byte {name} body inflates beyond {allowed} bytes ({ratio}× its size); refused"
            ),
        ));
    }
    Ok(out)
}

/// One envelope as JSON (docs/HTTP.md).
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEnvelope {
    /// The world id.
    pub world: String,
    /// Sender public key, 64 hex digits.
    pub sender: String,
    /// Nonce.
    pub nonce: u64,
    /// Payload, hex.
    pub payload: String,
    /// Signature, 128 hex digits.
    pub signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBatch {
    envelopes: Vec<JsonEnvelope>,
}

/// Decoded inputs: one, or a batch (answered with per-input results).
#[derive(Debug)]
pub enum Inputs {
    /// A single envelope.
    One(Envelope),
    /// Two or more, or a JSON batch.
    Batch(Vec<Envelope>),
}

/// Decodes a body by its `Content-Type`.
pub fn decode_inputs(headers: &HeaderMap, bytes: &[u8]) -> Result<Inputs, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" => decode_json(bytes),
        "application/octet-stream" => decode_binary(bytes),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {other:?}: send application/json or application/octet-stream"),
        )),
    }
}

fn json_error(error: serde_json::Error) -> ApiError {
    let text = error.to_string();
    let code = if text.starts_with("unknown field") {
        "unknown_field"
    } else {
        "malformed_json"
    };
    ApiError::bad_request(code, text)
}

fn decode_json(bytes: &[u8]) -> Result<Inputs, ApiError> {
    // Most requests are one envelope: read it straight into its fields.
    // Anything else (a batch, or a body that is refused) takes the general
    // path below, whose errors name the fault.
    if let Ok(one) = serde_json::from_slice::<JsonEnvelope>(bytes) {
        return Ok(Inputs::One(one.into_envelope()?));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(json_error)?;
    let is_batch = value
        .as_object()
        .is_some_and(|object| object.contains_key("envelopes"));
    if is_batch {
        let batch: JsonBatch = serde_json::from_value(value).map_err(json_error)?;
        let envelopes = batch
            .envelopes
            .into_iter()
            .map(JsonEnvelope::into_envelope)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Inputs::Batch(envelopes));
    }
    let one: JsonEnvelope = serde_json::from_value(value).map_err(json_error)?;
    Ok(Inputs::One(one.into_envelope()?))
}

fn decode_binary(bytes: &[u8]) -> Result<Inputs, ApiError> {
    let mut envelopes = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (envelope, used) = Envelope::decode_prefix(&bytes[offset..]).map_err(|error| {
            ApiError::bad_request(
                "malformed_envelope",
                format!("envelope {} at byte {offset}: {error}", envelopes.len()),
            )
        })?;
        envelopes.push(envelope);
        offset += used;
    }
    match envelopes.len() {
        0 => Err(ApiError::bad_request(
            "malformed_envelope",
            "the body holds no envelope",
        )),
        1 => Ok(Inputs::One(envelopes.pop().expect("one envelope"))),
        _ => Ok(Inputs::Batch(envelopes)),
    }
}

fn hex_field<const N: usize>(name: &str, text: &str) -> Result<[u8; N], ApiError> {
    let bytes = hex::decode(text).map_err(|error| {
        ApiError::bad_request("malformed_envelope", format!("{name}: not hex: {error}"))
    })?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        ApiError::bad_request(
            "malformed_envelope",
            format!("{name}: {} bytes, expected {N}", bytes.len()),
        )
    })
}

impl JsonEnvelope {
    /// The envelope, with every field checked for shape (not signature).
    pub fn into_envelope(self) -> Result<Envelope, ApiError> {
        let world = WorldId::new(&self.world).map_err(|error| {
            ApiError::bad_request("malformed_envelope", format!("world: {error}"))
        })?;
        let payload = hex::decode(&self.payload).map_err(|error| {
            ApiError::bad_request("malformed_envelope", format!("payload: not hex: {error}"))
        })?;
        if payload.len() > everarcade_protocol::envelope::PAYLOAD_BYTES_MAX {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payload_too_large",
                format!(
                    "payload is {} bytes, over the wire format's limit",
                    payload.len()
                ),
            ));
        }
        Ok(Envelope {
            world,
            sender: hex_field::<32>("sender", &self.sender)?,
            nonce: self.nonce,
            payload,
            signature: hex_field::<64>("signature", &self.signature)?,
        })
    }

    /// The JSON form of an envelope.
    pub fn from_envelope(envelope: &Envelope) -> JsonEnvelope {
        JsonEnvelope {
            world: envelope.world.to_string(),
            sender: hex::encode(envelope.sender),
            nonce: envelope.nonce,
            payload: hex::encode(&envelope.payload),
            signature: hex::encode(envelope.signature),
        }
    }
}
