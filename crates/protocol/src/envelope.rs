//! Signed input envelopes.
//!
//! Wire encoding, version 1 (all integers little-endian):
//!
//! ```text
//! version      u8 = 1
//! world_len    u8 (1..=63)      world id ASCII bytes
//! sender       32 bytes         ed25519 public key
//! nonce        u64
//! payload_len  u32              payload bytes
//! signature    64 bytes         ed25519 over the signing message
//! ```
//!
//! The signing message is `"ea/input/sign/v1" || 0x00 || world_len u8 || world ||
//! sender || nonce u64 || payload_len u32 || payload`. Signatures are checked with
//! ed25519-dalek's `verify_strict` (canonical `s`, no small-order keys or `R`), so
//! one message has one accepted encoding up to the signer's choice of nonce.
//! Worlds whose profile selects ZIP-215 check under that rule instead, in
//! batches ([`crate::signature`]).

use ed25519_dalek::{Signer, SigningKey};

use crate::hash::{Domain, Hash};
use crate::profile::SignatureRule;
use crate::signature;
use crate::world_id::WorldId;
use crate::{PublicKey, Tick};

/// Prefix of every signing message.
pub const SIGNING_CONTEXT: &[u8] = b"ea/input/sign/v1\0";

/// The envelope format version this runtime writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// The largest payload the wire format carries; manifests may lower it.
pub const PAYLOAD_BYTES_MAX: usize = 65_536;

/// Bytes the guest sees before the payload: sender key (32) and nonce (8).
pub const GUEST_INPUT_HEADER_BYTES: usize = 40;

/// A signed player input.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    /// The world this input is for.
    pub world: WorldId,
    /// The player's ed25519 public key.
    pub sender: PublicKey,
    /// Strictly increasing per (world, sender).
    pub nonce: u64,
    /// Game-defined bytes.
    pub payload: Vec<u8>,
    /// ed25519 signature over [`Envelope::signing_message`].
    pub signature: [u8; 64],
}

/// Why an envelope cannot be decoded or was refused at admission. Each variant
/// has a stable code (see [`EnvelopeError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not a version-1 envelope.
    #[error("malformed envelope: {reason} (at byte {offset})")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
        /// Byte offset where decoding stopped.
        offset: usize,
    },
    /// The signature does not verify under the sender key.
    #[error("bad signature for sender {sender}")]
    BadSignature {
        /// Sender key, hex.
        sender: String,
    },
    /// The envelope names another world.
    #[error("envelope is for world {got:?}, this is world {expected:?}")]
    WrongWorld {
        /// This world.
        expected: String,
        /// The envelope's world.
        got: String,
    },
    /// The nonce is not above the sender's last accepted nonce.
    #[error("nonce {nonce} is not above the last accepted nonce {last} for sender {sender}")]
    StaleNonce {
        /// Sender key, hex.
        sender: String,
        /// The refused nonce.
        nonce: u64,
        /// The last accepted nonce.
        last: u64,
    },
    /// The payload exceeds the world's `payload_bytes` limit.
    #[error("payload is {length} bytes; this world accepts at most {limit}")]
    PayloadTooLarge {
        /// Payload length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The tick already holds `inputs_per_tick` inputs.
    #[error("tick {tick} is full ({limit} inputs)")]
    TickFull {
        /// The tick.
        tick: Tick,
        /// The limit.
        limit: u32,
    },
}

/// Signatures a thread must have to check before
/// [`Envelope::verify_signatures`] starts it (a thread costs about as much
/// as one or two checks).
const PARALLEL_SIGNATURES_PER_THREAD_MIN: usize = 4;

/// The same under ZIP-215, where a thread checks its part as one batch,
/// about twice as fast per signature as single checks.
const PARALLEL_BATCH_PER_THREAD_MIN: usize = 8;

/// `work` over `items` split in order across the machine's cores, at
/// least [`PARALLEL_SIGNATURES_PER_THREAD_MIN`] items a thread (the calling
/// thread takes the first part); the results in the items' order.
fn on_every_core<T: Send, R: Send>(
    items: Vec<T>,
    work: impl Fn(Vec<T>) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / PARALLEL_SIGNATURES_PER_THREAD_MIN);
    if threads <= 1 {
        return work(items);
    }
    let size = items.len().div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    loop {
        let part: Vec<T> = rest.by_ref().take(size).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let first = parts.remove(0);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        let mut done = work(first);
        for worker in workers {
            let part = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            done.extend(part);
        }
        done
    })
}

/// Each envelope as [`Verified`] where its check passed, else beside its
/// error.
#[allow(clippy::type_complexity, clippy::result_large_err)]
fn verified_beside(
    envelopes: Vec<Envelope>,
    checked: Vec<Result<(), EnvelopeError>>,
) -> Vec<Result<Verified, (EnvelopeError, Envelope)>> {
    envelopes
        .into_iter()
        .zip(checked)
        .map(|(envelope, checked)| match checked {
            Ok(()) => Ok(Verified(envelope)),
            Err(error) => Err((error, envelope)),
        })
        .collect()
}

/// An envelope whose signature verified. Only [`Envelope::into_verified`]
/// makes one, so holding a `Verified` proves the check ran.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verified(Envelope);

impl Verified {
    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.0
    }

    /// The envelope, unwrapped.
    pub fn into_envelope(self) -> Envelope {
        self.0
    }
}

impl EnvelopeError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::Malformed { .. } => "malformed_envelope",
            EnvelopeError::BadSignature { .. } => "bad_signature",
            EnvelopeError::WrongWorld { .. } => "wrong_world",
            EnvelopeError::StaleNonce { .. } => "stale_nonce",
            EnvelopeError::PayloadTooLarge { .. } => "payload_too_large",
            EnvelopeError::TickFull { .. } => "tick_full",
        }
    }
}

impl Envelope {
    /// Builds and signs an envelope.
    pub fn sign(world: &WorldId, key: &SigningKey, nonce: u64, payload: Vec<u8>) -> Envelope {
        let mut envelope = Envelope {
            world: world.clone(),
            sender: key.verifying_key().to_bytes(),
            nonce,
            payload,
            signature: [0; 64],
        };
        envelope.signature = key.sign(&envelope.signing_message()).to_bytes();
        envelope
    }

    /// [`Envelope::sign`] of each `(key, nonce, payload)`, in order, split
    /// across the machine's cores when there are enough (signers are
    /// independent; the result is the same as signing one by one). What
    /// `simulate` and `load` use for their bots.
    pub fn sign_all(world: &WorldId, inputs: Vec<(&SigningKey, u64, Vec<u8>)>) -> Vec<Envelope> {
        on_every_core(inputs, |part| {
            part.into_iter()
                .map(|(key, nonce, payload)| Envelope::sign(world, key, nonce, payload))
                .collect()
        })
    }

    /// [`Envelope::sign_all`] then [`Envelope::all_into_verified`] under
    /// `rule`, in one pass per core: each core signs its part and checks
    /// it at once (one batch under ZIP-215), so the cores meet once instead
    /// of twice. The result is exactly `all_into_verified(sign_all(…))`:
    /// every signature is checked as admission checks it. What `simulate`
    /// does for its bots each tick.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn sign_and_verify_all(
        world: &WorldId,
        inputs: Vec<(&SigningKey, u64, Vec<u8>)>,
        rule: SignatureRule,
    ) -> Vec<Result<Verified, (EnvelopeError, Envelope)>> {
        on_every_core(inputs, |part| {
            let signed: Vec<Envelope> = part
                .into_iter()
                .map(|(key, nonce, payload)| Envelope::sign(world, key, nonce, payload))
                .collect();
            let checked = Envelope::check_part(&signed, rule);
            verified_beside(signed, checked)
        })
    }

    /// The bytes the sender signs.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNING_CONTEXT.len() + 110 + self.payload.len());
        out.extend_from_slice(SIGNING_CONTEXT);
        self.encode_body(&mut out);
        out
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        self.world.encode_into(out);
        out.extend_from_slice(&self.sender);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Checks the signature with `verify_strict` (the `Strict` rule).
    pub fn verify_signature(&self) -> Result<(), EnvelopeError> {
        self.verify_signature_under(SignatureRule::Strict)
    }

    /// Checks the signature under `rule` (docs/PROTOCOL.md §4.3).
    pub fn verify_signature_under(&self, rule: SignatureRule) -> Result<(), EnvelopeError> {
        let message = self.signing_message();
        if signature::verify(rule, self.signature_item(&message)) {
            Ok(())
        } else {
            Err(self.bad_signature())
        }
    }

    fn signature_item<'a>(&'a self, message: &'a [u8]) -> signature::Item<'a> {
        signature::Item {
            sender: &self.sender,
            message,
            signature: &self.signature,
        }
    }

    fn bad_signature(&self) -> EnvelopeError {
        EnvelopeError::BadSignature {
            sender: hex::encode(self.sender),
        }
    }

    /// Checks the signature of every envelope with `verify_strict`, in
    /// order: [`Envelope::verify_signatures_under`] with `Strict`.
    pub fn verify_signatures(envelopes: &[Envelope]) -> Vec<Result<(), EnvelopeError>> {
        Envelope::verify_signatures_under(envelopes, SignatureRule::Strict)
    }

    /// Checks the signature of every envelope under `rule`, in order; the
    /// result is exactly one [`Envelope::verify_signature_under`] per
    /// envelope. A replay spends most of its time here, so a long enough
    /// slice is split across the machine's cores; under ZIP-215 each core
    /// checks its part as one batch, and one by one only if that batch
    /// fails (so a forged signature is still found at its index).
    pub fn verify_signatures_under(
        envelopes: &[Envelope],
        rule: SignatureRule,
    ) -> Vec<Result<(), EnvelopeError>> {
        let per_thread = match rule {
            SignatureRule::Strict => PARALLEL_SIGNATURES_PER_THREAD_MIN,
            SignatureRule::Zip215 => PARALLEL_BATCH_PER_THREAD_MIN,
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(envelopes.len() / per_thread);
        let check = |part: &[Envelope]| Envelope::check_part(part, rule);
        if threads <= 1 {
            return check(envelopes);
        }
        let mut parts = envelopes.chunks(envelopes.len().div_ceil(threads));
        let first = parts.next().unwrap_or_default();
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts.map(|part| scope.spawn(move || check(part))).collect();
            let mut results = check(first);
            for worker in workers {
                let checked = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                results.extend(checked);
            }
            results
        })
    }

    /// One core's part of [`Envelope::verify_signatures_under`]: one batch
    /// under ZIP-215 (one by one only if it fails), one by one under strict.
    fn check_part(part: &[Envelope], rule: SignatureRule) -> Vec<Result<(), EnvelopeError>> {
        let messages: Vec<Vec<u8>> = part.iter().map(Envelope::signing_message).collect();
        let items: Vec<signature::Item<'_>> = part
            .iter()
            .zip(&messages)
            .map(|(envelope, message)| envelope.signature_item(message))
            .collect();
        signature::verify_each(rule, &items)
            .into_iter()
            .zip(part)
            .map(|(good, envelope)| {
                if good {
                    Ok(())
                } else {
                    Err(envelope.bad_signature())
                }
            })
            .collect()
    }

    /// Checks the signature with `verify_strict` and, if it verifies, wraps
    /// the envelope as [`Verified`], so admission off the signing thread
    /// can skip re-checking.
    pub fn into_verified(self) -> Result<Verified, EnvelopeError> {
        self.into_verified_under(SignatureRule::Strict)
    }

    /// [`Envelope::into_verified`] under `rule`.
    pub fn into_verified_under(self, rule: SignatureRule) -> Result<Verified, EnvelopeError> {
        self.verify_signature_under(rule)?;
        Ok(Verified(self))
    }

    /// [`Envelope::into_verified_under`] of each envelope, in order, checked
    /// together by [`Envelope::verify_signatures_under`]. A refused
    /// envelope comes back beside its error.
    // The refused envelope comes back whole, so that a caller can run
    // admission's other checks on it first (as `World::admit_all` does).
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn all_into_verified(
        envelopes: Vec<Envelope>,
        rule: SignatureRule,
    ) -> Vec<Result<Verified, (EnvelopeError, Envelope)>> {
        let checked = Envelope::verify_signatures_under(&envelopes, rule);
        verified_beside(envelopes, checked)
    }

    /// The version-1 wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 64 + 110 + self.payload.len());
        out.push(ENVELOPE_VERSION);
        self.encode_body(&mut out);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes one envelope that spans exactly `bytes`. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut reader = Reader { bytes, offset: 0 };
        let envelope = reader.envelope()?;
        if reader.offset != bytes.len() {
            return Err(reader.malformed("trailing bytes after the signature"));
        }
        Ok(envelope)
    }

    /// Decodes one envelope from the front of `bytes`; returns it and the bytes used.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Envelope, usize), EnvelopeError> {
        let mut reader = Reader { bytes, offset: 0 };
        let envelope = reader.envelope()?;
        Ok((envelope, reader.offset))
    }

    /// `H(Envelope, encode())`.
    pub fn hash(&self) -> Hash {
        Domain::Envelope.hash(&self.encode())
    }

    /// Length of the bytes the guest receives in `ea_input`.
    pub fn guest_input_len(&self) -> usize {
        GUEST_INPUT_HEADER_BYTES + self.payload.len()
    }

    /// Writes `sender || nonce u64 || payload` into `out`, which must be exactly
    /// [`Envelope::guest_input_len`] bytes.
    pub fn write_guest_input(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.guest_input_len());
        out[..32].copy_from_slice(&self.sender);
        out[32..40].copy_from_slice(&self.nonce.to_le_bytes());
        out[40..].copy_from_slice(&self.payload);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn malformed(&self, reason: &'static str) -> EnvelopeError {
        EnvelopeError::Malformed {
            reason,
            offset: self.offset,
        }
    }

    fn take(&mut self, length: usize, reason: &'static str) -> Result<&[u8], EnvelopeError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| self.malformed(reason))?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn envelope(&mut self) -> Result<Envelope, EnvelopeError> {
        let version = self.take(1, "missing version")?[0];
        if version != ENVELOPE_VERSION {
            self.offset -= 1;
            return Err(self.malformed("unknown envelope version"));
        }
        let world_len = self.take(1, "missing world length")?[0] as usize;
        let world_bytes = self.take(world_len, "truncated world id")?;
        let world = std::str::from_utf8(world_bytes)
            .ok()
            .and_then(|text| WorldId::new(text).ok())
            .ok_or(EnvelopeError::Malformed {
                reason: "invalid world id",
                offset: 1,
            })?;
        let sender: PublicKey = self
            .take(32, "truncated sender key")?
            .try_into()
            .expect("32 bytes");
        let nonce = u64::from_le_bytes(
            self.take(8, "truncated nonce")?
                .try_into()
                .expect("8 bytes"),
        );
        let payload_len = u32::from_le_bytes(
            self.take(4, "truncated payload length")?
                .try_into()
                .expect("4"),
        );
        if payload_len as usize > PAYLOAD_BYTES_MAX {
            self.offset -= 4;
            return Err(self.malformed("payload length over 65536"));
        }
        let payload = self
            .take(payload_len as usize, "truncated payload")?
            .to_vec();
        let signature: [u8; 64] = self
            .take(64, "truncated signature")?
            .try_into()
            .expect("64");
        Ok(Envelope {
            world,
            sender,
            nonce,
            payload,
            signature,
        })
    }
}

/// The deterministic test key of a named player (`simulate --inputs`, bots):
/// the ed25519 secret seed is `H(TestKey, name as UTF-8)`.
///
/// These keys are public knowledge; they exist for tests and simulations only.
pub fn test_signing_key(name: &str) -> SigningKey {
    SigningKey::from_bytes(&Domain::TestKey.hash(name.as_bytes()).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn world() -> WorldId {
        WorldId::new("world-001").unwrap()
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = test_signing_key("alice");
        let envelope = Envelope::sign(&world(), &key, 1, vec![1, 2, 3]);
        envelope.verify_signature().unwrap();
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.hash(), envelope.hash());
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let key = test_signing_key("alice");
        let good = Envelope::sign(&world(), &key, 7, b"move".to_vec());
        let mut tampered = vec![good.clone(), good.clone(), good.clone(), good.clone()];
        tampered[0].nonce = 8;
        tampered[1].payload[0] ^= 1;
        tampered[2].world = WorldId::new("world-002").unwrap();
        tampered[3].signature[5] ^= 1;
        for envelope in tampered {
            let error = envelope.verify_signature().unwrap_err();
            assert_eq!(error.code(), "bad_signature");
        }
    }

    #[test]
    fn many_signatures_checked_at_once_keep_their_order() {
        let key = test_signing_key("carol");
        for count in [0, 1, 7, 8, 9, 33, 100] {
            let mut envelopes: Vec<Envelope> = (0..count)
                .map(|nonce| Envelope::sign(&world(), &key, nonce + 1, vec![nonce as u8]))
                .collect();
            let broken: Vec<usize> = (0..count as usize).filter(|i| i % 7 == 3).collect();
            for &i in &broken {
                envelopes[i].signature[0] ^= 1;
            }
            let checked = Envelope::verify_signatures(&envelopes);
            assert_eq!(checked.len(), envelopes.len());
            let failed: Vec<usize> = (0..checked.len())
                .filter(|&i| checked[i].is_err())
                .collect();
            assert_eq!(failed, broken, "{count} envelopes");
            let one_by_one: Vec<_> = envelopes.iter().map(Envelope::verify_signature).collect();
            assert_eq!(checked, one_by_one);
        }
    }

    #[test]
    fn signing_and_checking_in_one_pass_equals_the_two_passes() {
        let keys: Vec<SigningKey> = (0..40)
            .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect();
        for rule in [SignatureRule::Strict, SignatureRule::Zip215] {
            for count in [0, 1, 3, 8, 9, 40] {
                let inputs = |count: usize| -> Vec<(&SigningKey, u64, Vec<u8>)> {
                    keys.iter()
                        .take(count)
                        .enumerate()
                        .map(|(i, key)| (key, i as u64 + 1, vec![i as u8; i % 7]))
                        .collect()
                };
                let fused = Envelope::sign_and_verify_all(&world(), inputs(count), rule);
                let apart =
                    Envelope::all_into_verified(Envelope::sign_all(&world(), inputs(count)), rule);
                assert_eq!(fused, apart, "{rule:?} {count}");
                assert_eq!(fused.len(), count);
                assert!(fused.iter().all(Result::is_ok));
            }
        }
    }

    #[test]
    fn signing_in_parallel_equals_signing_one_by_one() {
        let keys: Vec<SigningKey> = (0..5).map(|i| test_signing_key(&format!("k{i}"))).collect();
        for count in [0, 1, 3, 8, 9, 50] {
            let inputs: Vec<(&SigningKey, u64, Vec<u8>)> = (0..count)
                .map(|i| (&keys[i % 5], i as u64 + 1, vec![i as u8; i % 4]))
                .collect();
            let one_by_one: Vec<Envelope> = inputs
                .iter()
                .map(|(key, nonce, payload)| Envelope::sign(&world(), key, *nonce, payload.clone()))
                .collect();
            assert_eq!(Envelope::sign_all(&world(), inputs), one_by_one, "{count}");
        }
    }

    #[test]
    fn decode_refuses_bad_bytes() {
        let envelope = Envelope::sign(&world(), &test_signing_key("bob"), 1, vec![9; 10]);
        let bytes = envelope.encode();
        for cut in 0..bytes.len() {
            let error = Envelope::decode(&bytes[..cut]).unwrap_err();
            assert_eq!(error.code(), "malformed_envelope", "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Envelope::decode(&trailing).is_err());
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(Envelope::decode(&version).is_err());
        let mut world_byte = bytes;
        world_byte[2] = b'A';
        assert!(Envelope::decode(&world_byte).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}
