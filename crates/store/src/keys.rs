//! The operator's identity: an ed25519 key per world, created on first use,
//! kept 0600 and never printed, and the history of every key the world has
//! had with the tick range each one signed.
//!
//! Layout (under the world directory, see [`WorldDir::operator`]):
//!
//! ```text
//! operator/key             current secret seed, 64 hex digits + newline (0600)
//! operator/keys.json       the history: [{public_key, from_tick, to_tick}]
//! operator/retired/<public key>.key   secret seeds of rotated keys (0600), kept, never deleted
//! ```
//!
//! What the operator signs is a 32-byte digest under a signing context
//! ([`Signed`]), so a signature over a checkpoint can never pass for one over
//! a backup: the message is `"ea/operator/<kind>/v1" || digest`.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use everarcade_protocol::{Hash, Tick};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::layout::WorldDir;
use crate::meta::{read_json, write_json};
use crate::storage::{Storage, write_atomic};

/// Version of `keys.json`.
pub const KEYS_FORMAT: u32 = 1;

/// What an operator signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signed {
    /// A checkpoint file's BLAKE3 digest.
    Checkpoint,
    /// A backup manifest's digest.
    Backup,
    /// A proof bundle's digest.
    Bundle,
    /// A status attestation's digest.
    Status,
    /// A key rotation: the new public key, signed by the old key.
    Rotation,
    /// An upgrade record.
    Upgrade,
    /// A usage report's digest (`everarcade-usage`, docs/FORMATS.md §Usage report).
    UsageReport,
}

impl Signed {
    /// The signing context string.
    pub fn context(self) -> &'static str {
        match self {
            Signed::Checkpoint => "ea/operator/checkpoint/v1",
            Signed::Backup => "ea/operator/backup/v1",
            Signed::Bundle => "ea/operator/bundle/v1",
            Signed::Status => "ea/operator/status/v1",
            Signed::Rotation => "ea/operator/rotation/v1",
            Signed::Upgrade => "ea/operator/upgrade/v1",
            Signed::UsageReport => "ea/operator/usage-report/v1",
        }
    }

    /// The signed message: context || digest.
    pub fn message(self, digest: &Hash) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.context().len() + 32);
        out.extend_from_slice(self.context().as_bytes());
        out.extend_from_slice(&digest.0);
        out
    }
}

/// One key of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Public key, 64 hex digits.
    pub public_key: String,
    /// The first tick it signed for (the world's height when it was created).
    pub from_tick: Tick,
    /// The last tick it signed for; `None` for the current key.
    pub to_tick: Option<Tick>,
    /// The retiring key's signature over this key ([`Signed::Rotation`]),
    /// hex; `None` for the first key.
    pub endorsed_by_previous: Option<String>,
}

/// `keys.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHistory {
    /// Always [`KEYS_FORMAT`].
    pub format: u32,
    /// Oldest first; the last one is current.
    pub keys: Vec<KeyEntry>,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The signing key is not in the history.
    #[error("the signing key {public_key} is not one of this world's operator keys")]
    UnknownKey {
        /// The key, hex.
        public_key: String,
    },
    /// The key did not sign at that tick.
    #[error("operator key {public_key} signed ticks {from}..={to}, not tick {tick}")]
    OutOfRange {
        /// The key, hex.
        public_key: String,
        /// Its first tick.
        from: Tick,
        /// Its last tick (or "now").
        to: String,
        /// The tick claimed.
        tick: Tick,
    },
    /// The signature does not verify.
    #[error("bad operator signature by {public_key} over a {context} digest")]
    BadSignature {
        /// The key, hex.
        public_key: String,
        /// The signing context.
        context: &'static str,
    },
    /// A key or signature is not hex of the right length.
    #[error("malformed {what}")]
    Malformed {
        /// What.
        what: &'static str,
    },
}

impl KeyError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::UnknownKey { .. } => "unknown_operator_key",
            KeyError::OutOfRange { .. } => "operator_key_out_of_range",
            KeyError::BadSignature { .. } => "bad_operator_signature",
            KeyError::Malformed { .. } => "malformed_operator_signature",
        }
    }
}

/// The world's current operator key and its history.
pub struct OperatorKeys {
    current: SigningKey,
    history: KeyHistory,
}

impl std::fmt::Debug for OperatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("OperatorKeys")
            .field("public_key", &self.public_key_hex())
            .field("keys", &self.history.keys.len())
            .finish()
    }
}

/// A key history without `operator/key` is what a creation that lost power
/// between its two writes leaves (the key is the commit point, so nothing
/// was ever signed with it): it is moved to `quarantine/`. A history with
/// more than its first key cannot be that and is refused as corrupt.
fn set_aside_interrupted_creation(storage: &dyn Storage, dir: &WorldDir) -> Result<(), StoreError> {
    if !storage.exists(&dir.operator_keys()) {
        return Ok(());
    }
    let interrupted = match read_history(storage, dir) {
        Ok(Some(history)) => {
            history.keys.len() == 1 && history.keys[0].endorsed_by_previous.is_none()
        }
        // A history that does not parse is not one anything was signed under.
        Ok(None) | Err(_) => true,
    };
    if !interrupted {
        return Err(StoreError::Corrupt {
            path: dir.operator_keys(),
            offset: 0,
            what: "it holds rotated keys but operator/key is missing".into(),
        });
    }
    crate::meta::quarantine(storage, dir, &dir.operator_keys())?;
    Ok(())
}

fn random_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    Ok(seed)
}

fn read_seed(storage: &dyn Storage, path: &Path) -> Result<SigningKey, StoreError> {
    let bytes = storage.read(path).map_err(StoreError::io("read", path))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        what: "not a 64-hex-digit operator key seed".into(),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

impl OperatorKeys {
    /// Loads the world's operator key, or creates it (at `height`) if the
    /// world has none. Returns whether it was created.
    pub fn load_or_create(
        storage: &dyn Storage,
        dir: &WorldDir,
        height: Tick,
    ) -> Result<(OperatorKeys, bool), StoreError> {
        if let Some(keys) = OperatorKeys::load(storage, dir)? {
            return Ok((keys, false));
        }
        let operator = dir.operator();
        storage
            .create_dir_all(&operator)
            .map_err(StoreError::io("create", &operator))?;
        set_aside_interrupted_creation(storage, dir)?;
        let seed = random_seed().map_err(StoreError::io("read", "/dev/urandom"))?;
        let key = SigningKey::from_bytes(&seed);
        let history = KeyHistory {
            format: KEYS_FORMAT,
            keys: vec![KeyEntry {
                public_key: hex::encode(key.verifying_key().to_bytes()),
                from_tick: height,
                to_tick: None,
                endorsed_by_previous: None,
            }],
        };
        // The history first and the key last: `operator/key` is the commit
        // point. Power lost between the two leaves a history without a key,
        // which nothing has signed with; the next creation sets it aside.
        write_json(storage, &dir.operator_keys(), &history)?;
        write_atomic(
            storage,
            &dir.operator_key(),
            format!("{}\n", hex::encode(seed)).as_bytes(),
        )
        .map_err(StoreError::io("write", dir.operator_key()))?;
        Ok((
            OperatorKeys {
                current: key,
                history,
            },
            true,
        ))
    }

    /// Loads the key and history, if the world has them; checks that the
    /// secret matches the history's current key.
    pub fn load(storage: &dyn Storage, dir: &WorldDir) -> Result<Option<OperatorKeys>, StoreError> {
        if !storage.exists(&dir.operator_key()) {
            return Ok(None);
        }
        let current = read_seed(storage, &dir.operator_key())?;
        let history = read_history(storage, dir)?.ok_or_else(|| StoreError::Corrupt {
            path: dir.operator_keys(),
            offset: 0,
            what: "missing while operator/key exists".into(),
        })?;
        let public = hex::encode(current.verifying_key().to_bytes());
        let last = history.keys.last().map(|entry| entry.public_key.as_str());
        if last != Some(public.as_str()) || history.keys.last().is_some_and(|e| e.to_tick.is_some())
        {
            return Err(StoreError::Corrupt {
                path: dir.operator_keys(),
                offset: 0,
                what: format!("its current key is not operator/key's public key {public}"),
            });
        }
        Ok(Some(OperatorKeys { current, history }))
    }

    /// The current public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.current.verifying_key().to_bytes()
    }

    /// The current public key, hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// The history.
    pub fn history(&self) -> &KeyHistory {
        &self.history
    }

    /// Signs `digest` under `kind`'s context with the current key.
    pub fn sign(&self, kind: Signed, digest: &Hash) -> [u8; 64] {
        self.current.sign(&kind.message(digest)).to_bytes()
    }

    /// Retires the current key at `height` (it signed up to `height`) and
    /// starts a new one from `height + 1`, endorsed by the old one. The old
    /// secret moves to `operator/retired/`; nothing is deleted.
    pub fn rotate(
        &mut self,
        storage: &dyn Storage,
        dir: &WorldDir,
        height: Tick,
    ) -> Result<KeyEntry, StoreError> {
        let seed = random_seed().map_err(StoreError::io("read", "/dev/urandom"))?;
        let next = SigningKey::from_bytes(&seed);
        let endorsement = self.sign(Signed::Rotation, &Hash(next.verifying_key().to_bytes()));
        let retired = dir.operator().join("retired");
        storage
            .create_dir_all(&retired)
            .map_err(StoreError::io("create", &retired))?;
        let old_path = retired.join(format!("{}.key", self.public_key_hex()));
        write_atomic(
            storage,
            &old_path,
            format!("{}\n", hex::encode(self.current.to_bytes())).as_bytes(),
        )
        .map_err(StoreError::io("write", &old_path))?;
        let mut history = self.history.clone();
        if let Some(last) = history.keys.last_mut() {
            last.to_tick = Some(height);
        }
        let entry = KeyEntry {
            public_key: hex::encode(next.verifying_key().to_bytes()),
            from_tick: height + 1,
            to_tick: None,
            endorsed_by_previous: Some(hex::encode(endorsement)),
        };
        history.keys.push(entry.clone());
        // The history first: a crash between the two writes leaves a
        // history whose current key is not `operator/key`, which `load`
        // reports instead of signing with a key nobody can verify.
        write_json(storage, &dir.operator_keys(), &history)?;
        write_atomic(
            storage,
            &dir.operator_key(),
            format!("{}\n", hex::encode(seed)).as_bytes(),
        )
        .map_err(StoreError::io("write", dir.operator_key()))?;
        self.current = next;
        self.history = history;
        Ok(entry)
    }
}

/// Reads `keys.json`, if present.
pub fn read_history(
    storage: &dyn Storage,
    dir: &WorldDir,
) -> Result<Option<KeyHistory>, StoreError> {
    if !storage.exists(&dir.operator_keys()) {
        return Ok(None);
    }
    read_json(storage, &dir.operator_keys()).map(Some)
}

/// Parses a hex public key.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], KeyError> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).map_err(|_| KeyError::Malformed { what: "public key" })?;
    Ok(key)
}

/// Parses a hex signature.
pub fn parse_signature(text: &str) -> Result<[u8; 64], KeyError> {
    let mut signature = [0u8; 64];
    hex::decode_to_slice(text, &mut signature)
        .map_err(|_| KeyError::Malformed { what: "signature" })?;
    Ok(signature)
}

/// Checks one signature: the key must be in `history` and, when `tick` is
/// given, must have been the key for that tick.
pub fn verify(
    history: &KeyHistory,
    public_key: &[u8; 32],
    kind: Signed,
    digest: &Hash,
    signature: &[u8; 64],
    tick: Option<Tick>,
) -> Result<(), KeyError> {
    let hex_key = hex::encode(public_key);
    let entry = history
        .keys
        .iter()
        .find(|entry| entry.public_key == hex_key)
        .ok_or_else(|| KeyError::UnknownKey {
            public_key: hex_key.clone(),
        })?;
    if let Some(tick) = tick {
        let within = tick >= entry.from_tick && entry.to_tick.is_none_or(|to| tick <= to);
        // A key may sign for ticks before its own `from_tick` only when it is
        // the first key (a world keyed after it began).
        let first = history.keys.first() == Some(entry);
        let before_first_key = first && tick < entry.from_tick;
        if !(within || before_first_key) {
            return Err(KeyError::OutOfRange {
                public_key: hex_key,
                from: entry.from_tick,
                to: entry.to_tick.map_or("now".into(), |to| to.to_string()),
                tick,
            });
        }
    }
    verify_signature(public_key, kind, digest, signature)
}

/// Checks a signature by a given key, without a history.
pub fn verify_signature(
    public_key: &[u8; 32],
    kind: Signed,
    digest: &Hash,
    signature: &[u8; 64],
) -> Result<(), KeyError> {
    let bad = || KeyError::BadSignature {
        public_key: hex::encode(public_key),
        context: kind.context(),
    };
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| bad())?;
    key.verify_strict(&kind.message(digest), &Signature::from_bytes(signature))
        .map_err(|_| bad())
}

/// Checks that every rotation in the history was endorsed by the key before it.
pub fn verify_history(history: &KeyHistory) -> Result<(), KeyError> {
    for pair in history.keys.windows(2) {
        let previous = parse_public_key(&pair[0].public_key)?;
        let next = parse_public_key(&pair[1].public_key)?;
        let endorsement = pair[1]
            .endorsed_by_previous
            .as_deref()
            .ok_or(KeyError::Malformed {
                what: "rotation endorsement",
            })?;
        verify_signature(
            &previous,
            Signed::Rotation,
            &Hash(next),
            &parse_signature(endorsement)?,
        )?;
    }
    Ok(())
}

/// `signatures/<tick>.ckpt.sig`: the operator's signature over one checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSignature {
    /// Always [`KEYS_FORMAT`].
    pub format: u32,
    /// The checkpoint's tick.
    pub tick: Tick,
    /// BLAKE3 of the checkpoint file's bytes, hex.
    pub digest: String,
    /// The signing key, hex.
    pub public_key: String,
    /// `Signed::Checkpoint` signature over the digest, hex.
    pub signature: String,
}

/// The digest an operator signs for a file: plain BLAKE3 of its bytes (the
/// signing context keeps it apart from every other use).
pub fn file_digest(bytes: &[u8]) -> Hash {
    Hash(*blake3::hash(bytes).as_bytes())
}

/// Signs the checkpoint of `tick` whose file has [`file_digest`] `digest`
/// (computed as it was written: `checkpoint::write_checkpoint_of`) and
/// writes `signatures/<tick>.ckpt.sig` atomically.
pub fn sign_checkpoint(
    storage: &dyn Storage,
    dir: &WorldDir,
    keys: &OperatorKeys,
    tick: Tick,
    digest: &Hash,
) -> Result<(), StoreError> {
    let signatures = dir.signatures();
    storage
        .create_dir_all(&signatures)
        .map_err(StoreError::io("create", &signatures))?;
    let digest = *digest;
    let file = CheckpointSignature {
        format: KEYS_FORMAT,
        tick,
        digest: digest.to_hex(),
        public_key: keys.public_key_hex(),
        signature: hex::encode(keys.sign(Signed::Checkpoint, &digest)),
    };
    write_json(storage, &dir.checkpoint_signature(tick), &file)
}

/// What the operator's signature of one checkpoint says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointSigning {
    /// Signed by this key (hex), and the signature verifies in the history.
    Signed(String),
    /// No signature, and none was due: the world had no operator key yet.
    Unsigned,
}

/// Checks the signature of the checkpoint of `tick` whose file holds
/// `bytes`. A checkpoint after the first key's creation tick must be signed.
pub fn check_checkpoint_signature(
    storage: &dyn Storage,
    dir: &WorldDir,
    history: Option<&KeyHistory>,
    tick: Tick,
    bytes: &[u8],
) -> Result<CheckpointSigning, String> {
    let path = dir.checkpoint_signature(tick);
    let Some(history) = history else {
        return Ok(CheckpointSigning::Unsigned);
    };
    if !storage.exists(&path) {
        let since = history.keys.first().map_or(0, |entry| entry.from_tick);
        if tick > since {
            return Err(format!(
                "the checkpoint of tick {tick} is not signed, but the world has had an operator key since tick {since}"
            ));
        }
        return Ok(CheckpointSigning::Unsigned);
    }
    let file: CheckpointSignature = read_json(storage, &path).map_err(|e| e.to_string())?;
    let digest = file_digest(bytes);
    if file.tick != tick || file.digest != digest.to_hex() {
        return Err(format!(
            "{} signs another file (tick {}, digest {}), not this checkpoint (digest {digest})",
            path.display(),
            file.tick,
            file.digest
        ));
    }
    let key = parse_public_key(&file.public_key).map_err(|e| e.to_string())?;
    let signature = parse_signature(&file.signature).map_err(|e| e.to_string())?;
    verify(
        history,
        &key,
        Signed::Checkpoint,
        &digest,
        &signature,
        Some(tick),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(CheckpointSigning::Signed(file.public_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;
    use everarcade_protocol::WorldId;

    fn dir() -> WorldDir {
        WorldDir::new(Path::new("/root"), &WorldId::new("world-001").unwrap())
    }

    #[test]
    fn a_key_is_created_once_and_signs() {
        let disk = SimStorage::new();
        let (keys, created) = OperatorKeys::load_or_create(&disk, &dir(), 0).unwrap();
        assert!(created);
        let (again, created) = OperatorKeys::load_or_create(&disk, &dir(), 5).unwrap();
        assert!(!created);
        assert_eq!(keys.public_key(), again.public_key());
        let digest = Hash([7; 32]);
        let signature = keys.sign(Signed::Checkpoint, &digest);
        let history = keys.history();
        verify(
            history,
            &keys.public_key(),
            Signed::Checkpoint,
            &digest,
            &signature,
            Some(3),
        )
        .unwrap();
        let other = verify(
            history,
            &keys.public_key(),
            Signed::Backup,
            &digest,
            &signature,
            None,
        );
        assert!(
            matches!(other, Err(KeyError::BadSignature { .. })),
            "contexts differ"
        );
        assert!(!format!("{keys:?}").contains(&hex::encode(keys.current.to_bytes())));
    }

    #[test]
    fn a_creation_that_loses_power_at_any_sync_is_created_again() {
        let clean = SimStorage::new();
        OperatorKeys::load_or_create(&clean, &dir(), 0).unwrap();
        let syncs = clean.syncs();
        assert!(syncs >= 2, "a creation syncs the history and the key");
        for n in 1..=syncs {
            for reboot in [
                crate::sim::Reboot::LoseUnsynced,
                crate::sim::Reboot::TornUnsynced { seed: n },
            ] {
                let disk = SimStorage::new();
                disk.crash_at_sync(n);
                assert!(OperatorKeys::load_or_create(&disk, &dir(), 0).is_err());
                let after = disk.reboot(reboot);
                let (keys, _) = OperatorKeys::load_or_create(&after, &dir(), 0)
                    .unwrap_or_else(|e| panic!("sync {n}, {reboot:?}: {e}"));
                let loaded = OperatorKeys::load(&after, &dir()).unwrap().unwrap();
                assert_eq!(loaded.public_key(), keys.public_key(), "sync {n}");
            }
        }
    }

    #[test]
    fn a_rotated_history_without_its_key_is_corrupt_not_replaced() {
        let disk = SimStorage::new();
        let (mut keys, _) = OperatorKeys::load_or_create(&disk, &dir(), 0).unwrap();
        keys.rotate(&disk, &dir(), 10).unwrap();
        disk.remove_file(&dir().operator_key()).unwrap();
        let refused = OperatorKeys::load_or_create(&disk, &dir(), 20);
        assert!(
            matches!(&refused, Err(StoreError::Corrupt { what, .. }) if what.contains("rotated")),
            "{refused:?}"
        );
        assert_eq!(read_history(&disk, &dir()).unwrap().unwrap().keys.len(), 2);
    }

    #[test]
    fn rotation_keeps_old_signatures_valid_in_their_range() {
        let disk = SimStorage::new();
        let (mut keys, _) = OperatorKeys::load_or_create(&disk, &dir(), 0).unwrap();
        let old = keys.public_key();
        let digest = Hash([1; 32]);
        let old_signature = keys.sign(Signed::Checkpoint, &digest);
        keys.rotate(&disk, &dir(), 100).unwrap();
        let reloaded = OperatorKeys::load(&disk, &dir()).unwrap().unwrap();
        assert_eq!(reloaded.public_key(), keys.public_key());
        assert_ne!(keys.public_key(), old);
        let history = reloaded.history();
        verify_history(history).unwrap();
        verify(
            history,
            &old,
            Signed::Checkpoint,
            &digest,
            &old_signature,
            Some(100),
        )
        .unwrap();
        let late = verify(
            history,
            &old,
            Signed::Checkpoint,
            &digest,
            &old_signature,
            Some(101),
        );
        assert!(matches!(late, Err(KeyError::OutOfRange { .. })), "{late:?}");
        let new_signature = keys.sign(Signed::Checkpoint, &digest);
        verify(
            history,
            &keys.public_key(),
            Signed::Checkpoint,
            &digest,
            &new_signature,
            Some(101),
        )
        .unwrap();
        let stranger = SigningKey::from_bytes(&[9; 32]);
        let forged = stranger
            .sign(&Signed::Checkpoint.message(&digest))
            .to_bytes();
        let unknown = verify(
            history,
            &stranger.verifying_key().to_bytes(),
            Signed::Checkpoint,
            &digest,
            &forged,
            None,
        );
        assert!(matches!(unknown, Err(KeyError::UnknownKey { .. })));
        assert!(
            disk.exists(
                &dir()
                    .operator()
                    .join("retired")
                    .join(format!("{}.key", hex::encode(old)))
            )
        );
    }

    #[test]
    fn a_tampered_history_is_refused() {
        let disk = SimStorage::new();
        let (mut keys, _) = OperatorKeys::load_or_create(&disk, &dir(), 0).unwrap();
        keys.rotate(&disk, &dir(), 10).unwrap();
        let mut history = keys.history().clone();
        history.keys[1].endorsed_by_previous = Some("00".repeat(64));
        assert!(verify_history(&history).is_err());
    }
}
