//! Proofs for a player, of log size against one head commitment (the
//! accumulator root of [`crate::mmr`]):
//!
//! - **receipt**: "receipt R happened at tick t" = R's hash is a member of
//!   tick t's receipt list (a Merkle list path to `receipt_root(t)`), and
//!   tick t's roots are leaf t of the accumulator (an MMR path to the head
//!   root);
//! - **state**: "key K holds value V now" (or "K is absent now") = a state
//!   proof against the head tick's state root, and the head tick's roots are
//!   the accumulator's last leaf.
//!
//! A player who trusts the head root (from a verified bundle, or from the
//! operator's signed status) needs nothing else. docs/BUNDLES.md §5 gives
//! the byte format.
//!
//! Making a proof ([`prove`]) reads the journal from genesis to its end once
//! (O(ticks) reads and hashes, O(log ticks) memory; no index on disk), and for
//! a state proof also replays from the newest checkpoint to the head.

use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_protocol::merkle::LIST_PROOF_DEPTH_MAX;
use everarcade_protocol::profile::LIMITS_MAX;
use everarcade_protocol::{
    Hash, RECEIPT_BYTES, Receipt, ReceiptKind, Tick, TickRoots, WorldId, list_proof,
    list_root_from_proof,
};
use everarcade_store::{Storage, WorldDir};
use everarcade_world::check_binding;
use everarcade_world::replay::{Context, ReplayOptions, Start, replay};

use crate::error::{Class, SourceError};
use crate::journal::{JournalItem, JournalTicks};
use crate::mmr::{MmrProof, MmrProver, genesis_roots, leaf_hash, read_hashes};
use everarcade_store::codec::{DecodeError, Put, Reader};

/// The magic at the start of every player proof.
pub const PROOF_MAGIC: [u8; 8] = *b"EAPROOFS";
/// The player proof format version.
pub const PROOF_VERSION: u16 = 1;
/// The largest proof file (a state proof of the largest value is ~74 KiB).
pub const PROOF_BYTES_MAX: usize = 256 * 1024;

const KIND_RECEIPT: u8 = 1;
const KIND_STATE: u8 = 2;

/// What a proof claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A receipt of tick `roots.tick`.
    Receipt {
        /// Its position among the tick's receipts.
        index: u32,
        /// How many receipts the tick has.
        count: u32,
        /// Its Merkle list path to the receipt root, bottom-up.
        path: Vec<Hash>,
        /// The receipt.
        receipt: Receipt,
    },
    /// A key's value (or absence) at the head tick `roots.tick`.
    State {
        /// The key.
        key: Vec<u8>,
        /// Its value; `None` claims absence.
        value: Option<Vec<u8>>,
        /// The state proof against `roots.state_root`.
        proof: everarcade_state::Proof,
    },
}

/// A player proof; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayerProof {
    /// The roots of the tick the claim is about.
    pub roots: TickRoots,
    /// That tick's leaf in the accumulator whose root the player trusts.
    pub accumulator: MmrProof,
    /// The claim.
    pub claim: Claim,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayerProofError {
    /// Not a well-formed proof file.
    #[error("malformed proof at byte {offset}: {what}")]
    Malformed {
        /// Byte offset.
        offset: u64,
        /// What.
        what: String,
    },
    /// Well formed, but it does not prove its claim against the head root.
    #[error("the proof does not verify: {what}")]
    Invalid {
        /// What failed.
        what: String,
    },
}

impl PlayerProofError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            PlayerProofError::Malformed { .. } => "malformed_proof",
            PlayerProofError::Invalid { .. } => "proof_invalid",
        }
    }

    /// The class.
    pub fn class(&self) -> Class {
        match self {
            PlayerProofError::Malformed { .. } => Class::Malformed,
            PlayerProofError::Invalid { .. } => Class::Integrity,
        }
    }
}

impl From<DecodeError> for PlayerProofError {
    fn from(error: DecodeError) -> PlayerProofError {
        PlayerProofError::Malformed {
            offset: error.offset as u64,
            what: error.what,
        }
    }
}

fn invalid(what: impl Into<String>) -> PlayerProofError {
    PlayerProofError::Invalid { what: what.into() }
}

impl PlayerProof {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&PROOF_MAGIC);
        out.put_u16(PROOF_VERSION);
        out.put_u8(match self.claim {
            Claim::Receipt { .. } => KIND_RECEIPT,
            Claim::State { .. } => KIND_STATE,
        });
        self.accumulator.encode_into(&mut out);
        out.put_u64(self.roots.tick);
        out.put_hash(&self.roots.input_root);
        out.put_hash(&self.roots.receipt_root);
        out.put_hash(&self.roots.state_root);
        out.put_hash(&self.roots.continuity_root);
        match &self.claim {
            Claim::Receipt {
                index,
                count,
                path,
                receipt,
            } => {
                out.put_u32(*index);
                out.put_u32(*count);
                out.put_u8(path.len() as u8);
                path.iter().for_each(|hash| out.put_hash(hash));
                out.extend_from_slice(&receipt.encode());
            }
            Claim::State { key, value, proof } => {
                out.put_u16(key.len() as u16);
                out.extend_from_slice(key);
                match value {
                    None => out.put_u8(0),
                    Some(value) => {
                        out.put_u8(1);
                        out.put_u32(value.len() as u32);
                        out.extend_from_slice(value);
                    }
                }
                let proof = proof.encode();
                out.put_u32(proof.len() as u32);
                out.extend_from_slice(&proof);
            }
        }
        out
    }

    /// Parses a proof file; never panics.
    pub fn decode(bytes: &[u8]) -> Result<PlayerProof, PlayerProofError> {
        if bytes.len() > PROOF_BYTES_MAX {
            return Err(PlayerProofError::Malformed {
                offset: PROOF_BYTES_MAX as u64,
                what: format!("the proof is over {PROOF_BYTES_MAX} bytes"),
            });
        }
        let mut reader = Reader::new(bytes);
        if reader.array::<8>("magic")? != PROOF_MAGIC {
            return Err(reader.error_at(0, "not a player proof (bad magic)").into());
        }
        let version = reader.u16("version")?;
        if version != PROOF_VERSION {
            return Err(reader
                .error_at(
                    8,
                    format!("proof format version {version} is not supported"),
                )
                .into());
        }
        let kind = reader.u8("kind")?;
        let accumulator = MmrProof::decode(&mut reader)?;
        let tick = reader.u64("tick")?;
        let roots = TickRoots {
            tick,
            input_root: reader.hash("input root")?,
            receipt_root: reader.hash("receipt root")?,
            state_root: reader.hash("state root")?,
            continuity_root: reader.hash("continuity root")?,
        };
        let claim = match kind {
            KIND_RECEIPT => decode_receipt_claim(&mut reader)?,
            KIND_STATE => decode_state_claim(&mut reader)?,
            _ => {
                return Err(reader
                    .error_at(10, format!("unknown proof kind {kind}"))
                    .into());
            }
        };
        reader.finish("proof")?;
        Ok(PlayerProof {
            roots,
            accumulator,
            claim,
        })
    }

    /// Checks the proof against the head root the player trusts; on success
    /// returns the head tick it was proven against.
    pub fn verify(&self, head_root: &Hash) -> Result<Tick, PlayerProofError> {
        let accumulator = &self.accumulator;
        if accumulator.index != self.roots.tick {
            return Err(invalid(format!(
                "the accumulator leaf is at position {}, the roots are of tick {}",
                accumulator.index, self.roots.tick
            )));
        }
        let reached = accumulator.root_for(&leaf_hash(&self.roots));
        if reached != Some(*head_root) {
            return Err(invalid(format!(
                "tick {}'s roots lead to accumulator root {}, not the trusted head root {head_root}",
                self.roots.tick,
                reached.map_or("(none)".into(), |root| root.to_hex()),
            )));
        }
        let head = accumulator.count - 1;
        match &self.claim {
            Claim::Receipt {
                index,
                count,
                path,
                receipt,
            } => {
                let reached =
                    list_root_from_proof(&receipt.hash(), *index as u64, *count as u64, path);
                if reached != Some(self.roots.receipt_root) {
                    return Err(invalid(format!(
                        "the receipt is not receipt {index} of tick {}'s receipt root {}",
                        self.roots.tick, self.roots.receipt_root
                    )));
                }
            }
            Claim::State { key, value, proof } => {
                if self.roots.tick != head {
                    return Err(invalid(format!(
                        "a state proof must be of the head tick {head}, not tick {}",
                        self.roots.tick
                    )));
                }
                proof
                    .verify(&self.roots.state_root, key, value.as_deref())
                    .map_err(|error| invalid(format!("state proof: {error}")))?;
            }
        }
        Ok(head)
    }
}

fn decode_receipt_claim(reader: &mut Reader<'_>) -> Result<Claim, PlayerProofError> {
    let index = reader.u32("receipt index")?;
    let at = reader.offset();
    let count = reader.u32("receipt count")?;
    if index >= count || count > LIMITS_MAX.inputs_per_tick + 1 {
        return Err(reader
            .error_at(at, format!("receipt {index} of {count}"))
            .into());
    }
    let at = reader.offset();
    let length = reader.u8("path length")? as usize;
    if length > LIST_PROOF_DEPTH_MAX {
        return Err(reader.error_at(at, "a list path longer than 64").into());
    }
    let path = read_hashes(reader, length, "receipt path")?;
    let at = reader.offset();
    let bytes: [u8; RECEIPT_BYTES] = reader.array("receipt")?;
    let receipt = Receipt::decode(&bytes)
        .ok_or_else(|| reader.error_at(at, "the receipt has an unknown kind, outcome or code"))?;
    Ok(Claim::Receipt {
        index,
        count,
        path,
        receipt,
    })
}

fn decode_state_claim(reader: &mut Reader<'_>) -> Result<Claim, PlayerProofError> {
    let at = reader.offset();
    let length = reader.u16("key length")? as usize;
    if length == 0 || length > LIMITS_MAX.key_bytes as usize {
        return Err(reader
            .error_at(at, format!("a key of {length} bytes"))
            .into());
    }
    let key = reader.take(length, "key")?.to_vec();
    let at = reader.offset();
    let value = match reader.u8("value flag")? {
        0 => None,
        1 => {
            let at = reader.offset();
            let length = reader.u32("value length")? as usize;
            if length > LIMITS_MAX.value_bytes as usize {
                return Err(reader
                    .error_at(at, format!("a value of {length} bytes"))
                    .into());
            }
            Some(reader.take(length, "value")?.to_vec())
        }
        _ => {
            return Err(reader
                .error_at(at, "the value flag is neither 0 nor 1")
                .into());
        }
    };
    let at = reader.offset();
    let length = reader.u32("state proof length")? as usize;
    let bytes = reader.take(length, "state proof")?;
    let proof = everarcade_state::Proof::decode(bytes)
        .map_err(|error| reader.error_at(at + 4, format!("state proof: {error}")))?;
    Ok(Claim::State { key, value, proof })
}

/// What to prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofQuery {
    /// The receipt of the input whose envelope hash this is.
    Receipt(Hash),
    /// Receipt `index` of tick `tick` (input receipts, then the hook's).
    TickReceipt {
        /// The tick.
        tick: Tick,
        /// The receipt's position.
        index: u32,
    },
    /// A key's value (or absence) at the head.
    Key(Vec<u8>),
    /// Nothing: only the head commitment.
    Head,
}

/// Where to prove it.
pub struct ProveRequest<'a> {
    /// The file system.
    pub storage: &'a dyn Storage,
    /// The world's directory.
    pub dir: &'a WorldDir,
    /// The world id.
    pub id: &'a WorldId,
    /// The engine (state proofs replay to the head).
    pub engine: &'a Engine,
    /// The bound package.
    pub compiled: Arc<CompiledPackage>,
}

/// A proof and the head it was made against.
#[derive(Clone, Debug)]
pub struct Proven {
    /// The proof (none for [`ProofQuery::Head`]).
    pub proof: Option<PlayerProof>,
    /// The head tick's roots.
    pub head: TickRoots,
    /// The accumulator root over ticks `0..=head`: the head commitment.
    pub head_root: Hash,
}

/// Makes a proof from a world's journal; see the module docs.
pub fn prove(request: &ProveRequest<'_>, query: &ProofQuery) -> Result<Proven, SourceError> {
    check_binding(request.storage, request.dir, &request.compiled.package)?;
    let mut state_claim = None;
    let mut stop_after = None;
    if let ProofQuery::Key(key) = query {
        let context = Context {
            storage: request.storage,
            dir: request.dir,
            id: request.id,
            engine: request.engine,
            compiled: request.compiled.clone(),
            schedule: None,
        };
        let options = ReplayOptions {
            start: Start::NewestCheckpoint,
            stop_after: None,
            verify_signatures: false,
            diff_on_divergence: false,
        };
        let mut replayed = replay(&context, &options, &mut |_| {})?;
        let world = &mut replayed.world;
        let proof = world.prove(key);
        let value = world.state().get(key).map(<[u8]>::to_vec);
        stop_after = Some(replayed.last.tick);
        state_claim = Some(Claim::State {
            key: key.clone(),
            value,
            proof,
        });
    }
    let mut walk = JournalTicks::open(request.storage, &request.dir.journal())?;
    let mut prover = MmrProver::new();
    let mut head = None;
    let mut found: Option<(TickRoots, Claim)> = None;
    while let Some(item) = walk.next(false)? {
        let (roots, receipts) = match item {
            JournalItem::Genesis(genesis) => (
                genesis_roots(&genesis.genesis_root, &genesis.state_root),
                Vec::new(),
            ),
            JournalItem::Tick(record, _) => (record.roots, record.receipts),
        };
        let claim = match found {
            None => receipt_claim(query, &roots, &receipts)?,
            Some(_) => None,
        };
        let head_target = matches!(query, ProofQuery::Key(_)) && stop_after == Some(roots.tick);
        let target = claim.is_some() || head_target;
        if let Some(claim) = claim {
            found = Some((roots, claim));
        }
        prover.append(leaf_hash(&roots), target);
        head = Some(roots);
        if stop_after == Some(roots.tick) {
            break;
        }
    }
    let head = head.expect("a journal that read has a genesis record");
    if stop_after.is_some_and(|stop| stop != head.tick) {
        return Err(SourceError::request(
            "head_moved",
            "the journal ends before the head replay reached; try again",
        ));
    }
    let head_root = prover.mmr().root();
    let proof = match (query, found, state_claim) {
        (ProofQuery::Head, ..) => None,
        (ProofQuery::Key(_), _, Some(claim)) => prover_proof(&prover, head, claim),
        (_, Some((roots, claim)), _) => prover_proof(&prover, roots, claim),
        (ProofQuery::Receipt(hash), None, _) => {
            return Err(SourceError::request(
                "receipt_not_found",
                format!(
                    "no input with envelope hash {hash} is in the journal up to tick {}",
                    head.tick
                ),
            ));
        }
        (ProofQuery::TickReceipt { tick, .. }, None, _) => {
            return Err(SourceError::request(
                "tick_beyond_journal",
                format!(
                    "tick {tick} is beyond the journal, which ends at tick {}",
                    head.tick
                ),
            ));
        }
        (ProofQuery::Key(_), _, None) => unreachable!("a key query makes its claim first"),
    };
    Ok(Proven {
        proof,
        head,
        head_root,
    })
}

fn prover_proof(prover: &MmrProver, roots: TickRoots, claim: Claim) -> Option<PlayerProof> {
    let accumulator = prover.proof().expect("the target leaf was appended");
    Some(PlayerProof {
        roots,
        accumulator,
        claim,
    })
}

/// The receipt claim of `query` in this tick, if the query targets it.
fn receipt_claim(
    query: &ProofQuery,
    roots: &TickRoots,
    receipts: &[Receipt],
) -> Result<Option<Claim>, SourceError> {
    let index = match query {
        ProofQuery::Receipt(hash) => receipts
            .iter()
            .position(|r| r.kind == ReceiptKind::Input && r.subject == *hash),
        ProofQuery::TickReceipt { tick, index } if *tick == roots.tick => {
            if *index as usize >= receipts.len() {
                return Err(SourceError::request(
                    "receipt_not_found",
                    format!(
                        "tick {tick} has {} receipts, no receipt {index}",
                        receipts.len()
                    ),
                ));
            }
            Some(*index as usize)
        }
        _ => None,
    };
    let Some(index) = index else {
        return Ok(None);
    };
    let hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
    Ok(Some(Claim::Receipt {
        index: index as u32,
        count: receipts.len() as u32,
        path: list_proof(&hashes, index).expect("index in range"),
        receipt: receipts[index],
    }))
}
