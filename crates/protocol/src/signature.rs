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
            let Ok(key) = VerifyingKey::from_bytes(item.sender) else {
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
