//! The two signature rules of docs/PROTOCOL.md §4.3 over raw bytes, and
//! batch verification under ZIP-215.
//!
//! `Strict` is ed25519-dalek's `verify_strict`, one signature at a time.
//! `Zip215` is ed25519-zebra's rule: single and batch checks accept exactly
//! the same set, so a batch that passes proves every signature in it passes
//! alone, and a batch that fails is re-checked one by one to find which.
//!
//! A batch check draws one 128-bit coefficient per signature. They come from
//! a BLAKE3 XOF seeded with everything in the batch (keys, signatures,
//! messages), not from the OS: the result never depends on randomness, and
//! nobody can choose a forgery after seeing the coefficients it will meet.

use std::convert::Infallible;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::PublicKey;
use crate::hash::Domain;
use crate::profile::SignatureRule;

/// One signature to check: sender key, signing message, signature bytes.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    /// The ed25519 public key as it travels (not re-encoded).
    pub sender: &'a PublicKey,
    /// The signed message.
    pub message: &'a [u8],
    /// `R ‖ s`.
    pub signature: &'a [u8; 64],
}

/// Whether `item` verifies under `rule`.
pub fn verify(rule: SignatureRule, item: Item<'_>) -> bool {
    match rule {
        SignatureRule::Strict => {
            let Some(key) = strict_key(item.sender) else {
                return false;
            };
            let signature = Signature::from_bytes(item.signature);
            key.verify_strict(item.message, &signature).is_ok()
        }
        SignatureRule::Zip215 => {
            let Ok(key) = ed25519_zebra::VerificationKey::try_from(*item.sender) else {
                return false;
            };
            let signature = ed25519_zebra::Signature::from_bytes(item.signature);
            key.verify(&signature, item.message).is_ok()
        }
    }
}

/// Shards of [`STRICT_KEYS`].
const KEY_CACHE_SHARDS: usize = 16;
/// Keys kept per shard; a full shard is emptied (it is only a cache).
const KEY_CACHE_SHARD_KEYS_MAX: usize = 1024;

/// A shard of decompressed keys; `None` until its first key.
type KeyShard = std::sync::Mutex<Option<std::collections::HashMap<PublicKey, VerifyingKey>>>;

/// Decompressed public keys by their bytes. `VerifyingKey::from_bytes`
/// decompresses the point (a field exponentiation); the same players sign
/// again and again, so a node, a follower and a replay find most senders
/// here. A pure function of the bytes is cached, so results are exactly
/// those of decompressing each time; only keys that decompress are kept.
static STRICT_KEYS: [KeyShard; KEY_CACHE_SHARDS] =
    [const { std::sync::Mutex::new(None) }; KEY_CACHE_SHARDS];

/// The sender's key for a strict check, decompressed once per process (up
/// to the cache's bound); `None` if the bytes are not a curve point.
fn strict_key(sender: &PublicKey) -> Option<VerifyingKey> {
    let shard = &STRICT_KEYS[sender[0] as usize % KEY_CACHE_SHARDS];
    // A poisoned shard only means another thread panicked mid-insert; the
    // map is still a valid cache.
    let cached = shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .and_then(|keys| keys.get(sender).copied());
    if let Some(key) = cached {
        return Some(key);
    }
    let key = VerifyingKey::from_bytes(sender).ok()?;
    let mut keys = shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let keys = keys.get_or_insert_with(std::collections::HashMap::new);
    if keys.len() >= KEY_CACHE_SHARD_KEYS_MAX {
        keys.clear();
    }
    keys.insert(*sender, key);
    Some(key)
}

/// One ZIP-215 batch check over every item: true iff every item verifies
/// alone under ZIP-215 (up to a 2^-125 chance that a batch holding a bad
/// signature passes; the coefficients are fixed by the batch's bytes, so
/// that chance cannot be improved by retrying the same batch). An empty
/// batch passes.
pub fn verify_batch_zip215(items: &[Item<'_>]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut seed = Domain::SignatureBatch.hasher();
    seed.update_u64(items.len() as u64);
    for item in items {
        seed.update(item.sender)
            .update(item.signature)
            .update_u64(item.message.len() as u64)
            .update(item.message);
    }
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for item in items {
        let key = ed25519_zebra::VerificationKeyBytes::from(*item.sender);
        let signature = ed25519_zebra::Signature::from_bytes(item.signature);
        batch.queue((key, signature, item.message));
    }
    batch.verify(Coefficients(seed.finalize_xof())).is_ok()
}

/// Checks every item under `rule`, in order: one result per item. Under
/// ZIP-215 the items are checked as one batch first and one by one only if
/// the batch fails; under `Strict` one by one. The result is exactly that
/// of [`verify`] on each item.
pub fn verify_each(rule: SignatureRule, items: &[Item<'_>]) -> Vec<bool> {
    if rule == SignatureRule::Zip215 && items.len() > 1 && verify_batch_zip215(items) {
        return vec![true; items.len()];
    }
    items.iter().map(|item| verify(rule, *item)).collect()
}

/// The batch coefficients' source: a BLAKE3 XOF (a CSPRNG once seeded).
struct Coefficients(blake3::OutputReader);

impl rand_core::TryRng for Coefficients {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Coefficients {}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn key(index: u32) -> SigningKey {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&index.to_le_bytes());
        SigningKey::from_bytes(&seed)
    }

    /// The key cache changes no answer: every key, first decompressed and
    /// then found cached (enough keys to fill and empty every shard), gives
    /// a good signature true and another key's false; bytes that are not a
    /// point are never cached and always false.
    #[test]
    fn cached_keys_give_the_answers_of_decompressing_each_time() {
        let message = b"a cached key";
        let count = (KEY_CACHE_SHARDS * KEY_CACHE_SHARD_KEYS_MAX + 64) as u32;
        let mut previous: Option<([u8; 32], [u8; 64])> = None;
        for round in 0..2 {
            for index in (0..count).step_by(if round == 0 { 1 } else { 97 }) {
                let signing = key(index);
                let sender = signing.verifying_key().to_bytes();
                let signature = signing.sign(message).to_bytes();
                let item = Item {
                    sender: &sender,
                    message,
                    signature: &signature,
                };
                assert!(verify(SignatureRule::Strict, item), "key {index}");
                assert!(verify(SignatureRule::Strict, item), "key {index} again");
                if let Some((other, _)) = previous {
                    let forged = Item {
                        sender: &other,
                        message,
                        signature: &signature,
                    };
                    assert!(!verify(SignatureRule::Strict, forged), "key {index}");
                }
                previous = Some((sender, signature));
            }
        }
        let not_a_point = (0u8..=255)
            .map(|first| {
                let mut bytes = [0u8; 32];
                bytes[0] = first;
                bytes[1] = 1;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("about half of all y are not on the curve");
        let (_, signature) = previous.unwrap();
        for _ in 0..2 {
            assert!(strict_key(&not_a_point).is_none());
            let item = Item {
                sender: &not_a_point,
                message,
                signature: &signature,
            };
            assert!(!verify(SignatureRule::Strict, item));
        }
    }
}
