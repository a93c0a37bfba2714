//! Journal record bodies: genesis, a batch of admitted inputs, a sealed tick.
//! The byte layout is specified in docs/FORMATS.md.

use everarcade_protocol::{Envelope, Hash, RECEIPT_BYTES, Receipt, Tick, TickRoots, WorldId};

use crate::codec::{DecodeError, Put, Reader};

/// The kind byte of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The first record of the journal: what the world is.
    Genesis = 1,
    /// Admitted input envelopes for a tick, in admission order.
    Inputs = 2,
    /// A tick executed: its roots and receipts.
    Tick = 3,
}

impl RecordKind {
    /// The kind with this byte, if any.
    pub fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Genesis),
            2 => Some(RecordKind::Inputs),
            3 => Some(RecordKind::Tick),
            _ => None,
        }
    }
}

/// What the world is; also kept in `genesis.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisRecord {
    /// The world id.
    pub world: WorldId,
    /// The package root bound at genesis.
    pub package_root: Hash,
    /// The package's profile hash.
    pub profile_hash: Hash,
    /// `C(0)`.
    pub genesis_root: Hash,
    /// The state root after `ea_genesis`.
    pub state_root: Hash,
    /// The genesis hook's receipt, if the package exports `ea_genesis`.
    pub receipt: Option<Receipt>,
}

/// Admitted inputs for tick `tick`, in admission order. A tick's inputs may
/// span several such records (one per group commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputsRecord {
    /// The tick these inputs execute in.
    pub tick: Tick,
    /// The envelopes.
    pub envelopes: Vec<Envelope>,
}

/// A tick that executed: it seals every input recorded for it since the
/// previous tick record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickRecord {
    /// The roots (the tick number is `roots.tick`).
    pub roots: TickRoots,
    /// How many inputs the tick executed.
    pub input_count: u32,
    /// One receipt per input in order, then the tick hook's.
    pub receipts: Vec<Receipt>,
}

/// A decoded record body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// See [`GenesisRecord`].
    Genesis(GenesisRecord),
    /// See [`InputsRecord`].
    Inputs(InputsRecord),
    /// See [`TickRecord`].
    Tick(TickRecord),
}

impl Record {
    /// The kind byte.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Genesis(_) => RecordKind::Genesis,
            Record::Inputs(_) => RecordKind::Inputs,
            Record::Tick(_) => RecordKind::Tick,
        }
    }

    /// The body bytes.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Genesis(genesis) => {
                genesis.world.encode_into(&mut out);
                out.put_hash(&genesis.package_root);
                out.put_hash(&genesis.profile_hash);
                out.put_hash(&genesis.genesis_root);
                out.put_hash(&genesis.state_root);
                match &genesis.receipt {
                    None => out.put_u8(0),
                    Some(receipt) => {
                        out.put_u8(1);
                        out.extend_from_slice(&receipt.encode());
                    }
                }
            }
            Record::Inputs(inputs) => {
                out.put_u64(inputs.tick);
                out.put_u32(inputs.envelopes.len() as u32);
                for envelope in &inputs.envelopes {
                    let bytes = envelope.encode();
                    out.put_u32(bytes.len() as u32);
                    out.extend_from_slice(&bytes);
                }
            }
            Record::Tick(tick) => {
                let roots = &tick.roots;
                out.reserve(8 + 4 + 128 + 4 + tick.receipts.len() * RECEIPT_BYTES);
                out.put_u64(roots.tick);
                out.put_u32(tick.input_count);
                out.put_hash(&roots.input_root);
                out.put_hash(&roots.receipt_root);
                out.put_hash(&roots.state_root);
                out.put_hash(&roots.continuity_root);
                out.put_u32(tick.receipts.len() as u32);
                for receipt in &tick.receipts {
                    out.extend_from_slice(&receipt.encode());
                }
            }
        }
        out
    }

    /// Decodes a body of the given kind. Never panics; every byte must be used.
    pub(crate) fn decode_body(kind: RecordKind, body: &[u8]) -> Result<Record, DecodeError> {
        let mut reader = Reader::new(body);
        let record = match kind {
            RecordKind::Genesis => Record::Genesis(decode_genesis(&mut reader)?),
            RecordKind::Inputs => Record::Inputs(decode_inputs(&mut reader)?),
            RecordKind::Tick => Record::Tick(decode_tick(&mut reader)?),
        };
        reader.finish("record body")?;
        Ok(record)
    }
}

/// The tick number of a tick or inputs body, read without decoding the rest.
pub(crate) fn body_tick(body: &[u8]) -> Option<Tick> {
    Some(u64::from_le_bytes(body.get(..8)?.try_into().ok()?))
}

fn decode_genesis(reader: &mut Reader<'_>) -> Result<GenesisRecord, DecodeError> {
    let length = reader.u8("world id length")? as usize;
    let text = reader.take(length, "world id")?;
    let world = std::str::from_utf8(text)
        .ok()
        .and_then(|text| WorldId::new(text).ok())
        .ok_or_else(|| reader.error("world id is not a valid world id"))?;
    let package_root = reader.hash("package root")?;
    let profile_hash = reader.hash("profile hash")?;
    let genesis_root = reader.hash("genesis root")?;
    let state_root = reader.hash("state root")?;
    let receipt = match reader.u8("receipt flag")? {
        0 => None,
        1 => Some(decode_receipt(reader)?),
        _ => return Err(reader.error("receipt flag is neither 0 nor 1")),
    };
    Ok(GenesisRecord {
        world,
        package_root,
        profile_hash,
        genesis_root,
        state_root,
        receipt,
    })
}

fn decode_inputs(reader: &mut Reader<'_>) -> Result<InputsRecord, DecodeError> {
    let tick = reader.u64("tick")?;
    let count = reader.u32("envelope count")? as usize;
    // Each envelope takes at least its 4-byte length, so a count larger than
    // the bytes left is refused before any allocation.
    if count > reader.remaining() / 4 {
        return Err(reader.error("envelope count exceeds the record"));
    }
    let mut envelopes = Vec::with_capacity(count);
    for _ in 0..count {
        let length = reader.u32("envelope length")? as usize;
        let at = reader.offset();
        let bytes = reader.take(length, "envelope")?;
        let envelope = Envelope::decode(bytes).map_err(|error| DecodeError {
            what: format!("envelope: {error}"),
            offset: at,
        })?;
        envelopes.push(envelope);
    }
    Ok(InputsRecord { tick, envelopes })
}

fn decode_tick(reader: &mut Reader<'_>) -> Result<TickRecord, DecodeError> {
    let tick = reader.u64("tick")?;
    let input_count = reader.u32("input count")?;
    let roots = TickRoots {
        tick,
        input_root: reader.hash("input root")?,
        receipt_root: reader.hash("receipt root")?,
        state_root: reader.hash("state root")?,
        continuity_root: reader.hash("continuity root")?,
    };
    let count = reader.u32("receipt count")? as usize;
    if count > reader.remaining() / RECEIPT_BYTES {
        return Err(reader.error("receipt count exceeds the record"));
    }
    let mut receipts = Vec::with_capacity(count);
    for _ in 0..count {
        receipts.push(decode_receipt(reader)?);
    }
    Ok(TickRecord {
        roots,
        input_count,
        receipts,
    })
}

fn decode_receipt(reader: &mut Reader<'_>) -> Result<Receipt, DecodeError> {
    let at = reader.offset();
    let bytes: [u8; RECEIPT_BYTES] = reader.array("receipt")?;
    Receipt::decode(&bytes).ok_or(DecodeError {
        what: "receipt has an unknown kind, outcome or code".into(),
        offset: at,
    })
}
