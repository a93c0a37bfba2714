//! Restoring a world from a backup folder, the operator manual's procedure
//! automated, in an order that never leaves the runtime root worse off:
//!
//! 1. lock the current world, if there is one (a running node holds the
//!    lock: refused);
//! 2. verify the backup completely ([`crate::verify`]); a refusal changes
//!    nothing anywhere. Unless the caller names trusted keys, the current
//!    world's key history (when there is one) is the trust anchor: the
//!    backup must be signed by one of its keys or a key they endorsed;
//! 3. stage: copy every listed file into `<root>/restoring/<world>-<n>/`
//!    (re-hashing each as it is copied), and give the world its operator
//!    key (below);
//! 4. prove the staged world: the package binding; recovery (the checkpoint
//!    plus the journal after it) reaching the manifest's head roots;
//!    `verify`'s audit (every record, chain link, envelope signature,
//!    checkpoint and checkpoint signature); replay verification (from
//!    genesis by default: every input re-admitted and re-executed; the
//!    audit has checked the signatures) reaching the same roots. A failure
//!    leaves the
//!    current world untouched and the staged copy in place for inspection;
//! 5. move the current world directory (if any) aside to
//!    `<root>/quarantine/<world>-<UTC stamp>-<n>/`, whole and unchanged,
//!    and move the staged world into its place.
//!
//! Nothing is deleted: the old world is in quarantine, the backup is only
//! read.
//!
//! The operator key: a backup carries public keys only. The restored world
//! keeps the backup's key history and current key when that key's secret is
//! at hand: a key file the operator gives, or the current world's
//! `operator/key` or `operator/retired/<key>.key` on this host. Otherwise
//! (a fresh host without the secret) nothing can sign for the old key, so
//! the restored world starts a new operator identity: a new key whose
//! history begins at the head tick, as a key created at that height does.
//! The backup's history is kept beside it as
//! `operator/keys.before-restore.json`, and the checkpoint's old signature
//! is left out (the new history cannot verify it; the checkpoint is at or
//! before the new key's first tick, so `verify` does not require one).
//! Backups taken afterwards are signed by the new key; an old key does not
//! vouch for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;
use everarcade_protocol::{Hash, Tick, TickRoots, WorldId};
use everarcade_store::keys::{
    KEYS_FORMAT, KeyEntry, KeyHistory, OperatorKeys, parse_public_key, read_history,
};
use everarcade_store::meta::write_json;
use everarcade_store::{DiskStorage, JournalConfig, WorldDir, lock_world};
use everarcade_world::audit::audit;
use everarcade_world::replay::{Context, ReplayOptions, Start, StartedFrom, replay};
use everarcade_world::{Arrival, Entry, FrontDoor, Lock, WorldConfig};

use crate::error::OpsError;
use crate::files::{compact_stamp, copy_hashed, create_private_dir, sync_dir, unix_now, write_new};
use crate::manifest::{FileRole, KEY_HISTORY_FILE, MANIFEST_FILE, Manifest, classify};

/// Where a restore that starts a new operator identity keeps the backup's
/// key history, under `operator/`.
pub const PREVIOUS_HISTORY_FILE: &str = "keys.before-restore.json";
use crate::verify::{VerifiedBackup, VerifyOptions, verify_backup};

/// Where replay verification of the restored world begins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Genesis: every tick of the journal re-executed (the default).
    #[default]
    Genesis,
    /// The backup's checkpoint: only the ticks after it (faster on long
    /// journals; `verify` still checks every record and signature).
    Checkpoint,
}

/// Options of a restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// How the backup is verified.
    pub verify: VerifyOptions,
    /// Where replay verification begins.
    pub replay_from: ReplayFrom,
    /// A file holding the backup's current operator key's secret seed (64
    /// hex digits, as in `operator/key`).
    pub operator_key_file: Option<PathBuf>,
}

/// What to restore where.
pub struct RestoreRequest<'a> {
    /// The runtime root (created if missing).
    pub runtime_root: &'a Path,
    /// The world id.
    pub id: &'a WorldId,
    /// The package given; it must be the one the backup's world is bound to.
    pub package: &'a Package,
    /// The engine.
    pub engine: &'a Arc<Engine>,
    /// The package, compiled.
    pub compiled: &'a Arc<CompiledPackage>,
    /// The backup folder.
    pub backup: &'a Path,
    /// Options.
    pub options: RestoreOptions,
}

/// Where the restored world's operator key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The key file the operator gave.
    Given(PathBuf),
    /// The current world on this host held it (the file it was copied from,
    /// which stays in quarantine too).
    Host(PathBuf),
    /// No secret was at hand: a new operator identity from the head tick.
    New,
}

/// Seconds each phase took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Verifying the backup folder.
    pub verify: f64,
    /// Copying it into the staging directory.
    pub copy: f64,
    /// Recovering the staged world.
    pub open: f64,
    /// `verify`'s audit of the staged world.
    pub audit: f64,
    /// Replay verification.
    pub replay: f64,
    /// Everything.
    pub total: f64,
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The restored world's directory.
    pub world_dir: PathBuf,
    /// Where the previous world directory went, if there was one.
    pub quarantined: Option<PathBuf>,
    /// The verified backup.
    pub backup: VerifiedBackup,
    /// The checkpoint recovery started from (`None`: genesis).
    pub recovered_from: Option<Tick>,
    /// Ticks recovery replayed after it.
    pub recovered_ticks: u64,
    /// Ticks and envelopes `verify` checked.
    pub audited_ticks: u64,
    /// Envelopes whose signatures `verify` checked.
    pub audited_envelopes: u64,
    /// Where replay verification began (`None`: genesis) and how many ticks it ran.
    pub replayed_from: Option<Tick>,
    /// Ticks replay verification executed.
    pub replayed_ticks: u64,
    /// The restored head: equal to the manifest's, by every check above.
    pub roots: TickRoots,
    /// The restored world's operator key, hex.
    pub operator_key: String,
    /// Where it came from.
    pub key_source: KeySource,
    /// Timings.
    pub phases: Phases,
}

/// Restores; see the module docs.
pub fn restore(request: &RestoreRequest<'_>) -> Result<RestoreReport, OpsError> {
    restore_observed(request, &mut |_| {})
}

/// A step of a restore, in order; each is timed in [`Phases`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePhase {
    /// Verifying the backup folder.
    Verify,
    /// Copying it into the staging directory.
    Copy,
    /// Recovering the staged world.
    Open,
    /// `verify`'s audit of the staged world.
    Audit,
    /// Replay verification.
    Replay,
}

impl RestorePhase {
    /// Every phase, in order.
    pub const ALL: [RestorePhase; 5] = [
        RestorePhase::Verify,
        RestorePhase::Copy,
        RestorePhase::Open,
        RestorePhase::Audit,
        RestorePhase::Replay,
    ];

    /// What an operator reads: `verifying the backup`, ….
    pub fn describe(self) -> &'static str {
        match self {
            RestorePhase::Verify => "verifying the backup",
            RestorePhase::Copy => "copying into staging",
            RestorePhase::Open => "recovering the staged world",
            RestorePhase::Audit => "auditing the staged world",
            RestorePhase::Replay => "replaying the staged world",
        }
    }
}

/// [`restore`], calling `on_phase` as each phase begins, for progress
/// reports. The result and the errors are `restore`'s.
pub fn restore_observed(
    request: &RestoreRequest<'_>,
    on_phase: &mut dyn FnMut(RestorePhase),
) -> Result<RestoreReport, OpsError> {
    let started = Instant::now();
    let mut phases = Phases::default();
    let root = request.runtime_root;
    let target = WorldDir::new(root, request.id);
    let current = target.path().to_path_buf();
    let had_world = fs::symlink_metadata(&current).is_ok();
    let _lock = if had_world {
        Some(lock_world(&target)?)
    } else {
        None
    };

    let mut verify = request.options.verify.clone();
    if verify.trusted_keys.is_empty() {
        verify.trusted_keys = host_keys(&target)?;
    }
    on_phase(RestorePhase::Verify);
    let verified = verify_backup(request.backup, &verify)?;
    phases.verify = started.elapsed().as_secs_f64();
    check_identity(request, &verified.manifest)?;

    create_private_dir(&root.join("worlds"))?;
    let staging_root = free_dir(&root.join("restoring"), request.id.as_str())?;
    let staged = WorldDir::new(&staging_root, request.id);
    let staged_result =
        stage_and_prove(request, &verified, &target, &staged, &mut phases, on_phase);
    let proven = staged_result.map_err(|source| OpsError::Staged {
        staging: staging_root.clone(),
        source: Box::new(source),
    })?;

    let quarantined = if had_world {
        let quarantine = root.join("quarantine");
        create_private_dir(&quarantine)?;
        let stamp = compact_stamp(unix_now());
        let destination = free_name(&quarantine, &format!("{}-{stamp}", request.id));
        fs::rename(&current, &destination).map_err(OpsError::io("move to quarantine", &current))?;
        sync_dir(&quarantine)?;
        sync_dir(&root.join("worlds"))?;
        Some(destination)
    } else {
        None
    };
    fs::rename(staged.path(), &current).map_err(OpsError::io("move into place", staged.path()))?;
    sync_dir(&root.join("worlds"))?;
    // The staging directories are empty now; an empty directory we made
    // holds nothing to keep. `remove_dir` refuses anything that is not empty.
    let _ = fs::remove_dir(staging_root.join("worlds"));
    let _ = fs::remove_dir(&staging_root);
    let _ = fs::remove_dir(root.join("restoring"));
    phases.total = started.elapsed().as_secs_f64();
    Ok(RestoreReport {
        world_dir: current,
        quarantined,
        backup: verified,
        phases,
        ..proven
    })
}

/// The current world's operator keys on this host, if it has a history:
/// a backup restored over it must be signed by one of them or a key they
/// endorsed.
/// A history that does not read (a damaged world is what restores are for)
/// anchors nothing.
fn host_keys(target: &WorldDir) -> Result<Vec<[u8; 32]>, OpsError> {
    let Ok(Some(history)) = read_history(&DiskStorage, target) else {
        return Ok(Vec::new());
    };
    Ok(history
        .keys
        .iter()
        .filter_map(|entry| parse_public_key(&entry.public_key).ok())
        .collect())
}

/// The backup's world and package are the ones named.
fn check_identity(request: &RestoreRequest<'_>, manifest: &Manifest) -> Result<(), OpsError> {
    if manifest.world != request.id.as_str() {
        return Err(OpsError::WrongWorld {
            backup: manifest.world.clone(),
            given: request.id.to_string(),
        });
    }
    let backup_root = Hash::from_hex(&manifest.package_root).unwrap_or(Hash::ZERO);
    if backup_root != request.package.root {
        return Err(OpsError::PackageMismatch {
            backup: backup_root,
            given: request.package.root,
        });
    }
    Ok(())
}

/// `<parent>/<prefix>-<n>` for the first n from 1 that does not exist,
/// created (0700).
fn free_dir(parent: &Path, prefix: &str) -> Result<PathBuf, OpsError> {
    use std::os::unix::fs::DirBuilderExt;
    create_private_dir(parent)?;
    let mut n = 1u64;
    loop {
        let candidate = parent.join(format!("{prefix}-{n}"));
        let created = fs::DirBuilder::new()
            .mode(everarcade_store::storage::DIRECTORY_MODE)
            .create(&candidate);
        match created {
            Ok(()) => return Ok(candidate),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(error) => return Err(OpsError::io("create", &candidate)(error)),
        }
    }
}

/// `<parent>/<prefix>-<n>` for the first n from 1 that does not exist (not created).
pub fn free_name(parent: &Path, prefix: &str) -> PathBuf {
    let mut n = 1u64;
    loop {
        let candidate = parent.join(format!("{prefix}-{n}"));
        if fs::symlink_metadata(&candidate).is_err() {
            return candidate;
        }
        n += 1;
    }
}

/// The manifest's head as roots.
pub fn manifest_head(manifest: &Manifest) -> TickRoots {
    let hash = |text: &str| Hash::from_hex(text).unwrap_or(Hash::ZERO);
    TickRoots {
        tick: manifest.head.tick,
        input_root: hash(&manifest.head.input_root),
        receipt_root: hash(&manifest.head.receipt_root),
        state_root: hash(&manifest.head.state_root),
        continuity_root: hash(&manifest.head.continuity_root),
    }
}

/// Copies the backup into the staged world, keys it, and proves it.
fn stage_and_prove(
    request: &RestoreRequest<'_>,
    verified: &VerifiedBackup,
    target: &WorldDir,
    staged: &WorldDir,
    phases: &mut Phases,
    on_phase: &mut dyn FnMut(RestorePhase),
) -> Result<RestoreReport, OpsError> {
    on_phase(RestorePhase::Copy);
    let began = Instant::now();
    for directory in staged.directories() {
        create_private_dir(&directory)?;
    }
    create_private_dir(&staged.operator())?;
    let current = verified
        .history
        .keys
        .last()
        .map(|entry| entry.public_key.clone())
        .unwrap_or_default();
    let secret = find_secret(request, target, &current)?;
    for file in &verified.manifest.files {
        // An old key's signature means nothing to a new identity.
        let role = classify(&file.path).map_err(|what| OpsError::ManifestMalformed {
            path: verified.dir.join(MANIFEST_FILE),
            what: format!("path {:?} {what}", file.path),
        })?;
        if secret.is_none() && matches!(role, FileRole::CheckpointSignature(_)) {
            continue;
        }
        let to = staged.path().join(&file.path);
        if let Some(parent) = to.parent() {
            create_private_dir(parent)?;
        }
        let digest = copy_hashed(&verified.dir.join(&file.path), &to, None)?;
        // Checked again as copied: the folder may have changed since it was
        // verified.
        if hex::encode(digest.blake3) != file.blake3 || digest.bytes != file.bytes {
            return Err(OpsError::FileChanged {
                path: file.path.clone(),
                what: "it changed while it was being restored".into(),
            });
        }
    }
    sync_dir(&staged.journal())?;
    sync_dir(&staged.checkpoints())?;
    let (operator_key, key_source) = key_the_world(verified, staged, secret)?;
    sync_dir(staged.path())?;
    phases.copy = began.elapsed().as_secs_f64();
    let key = (operator_key, key_source);
    prove(request, verified, staged, phases, key, on_phase)
}

/// Recovery, audit and replay of the staged world, each reaching the
/// manifest's head.
fn prove(
    request: &RestoreRequest<'_>,
    verified: &VerifiedBackup,
    staged: &WorldDir,
    phases: &mut Phases,
    // The restored world's operator key, and where it came from.
    (operator_key, key_source): (String, KeySource),
    on_phase: &mut dyn FnMut(RestorePhase),
) -> Result<RestoreReport, OpsError> {
    let manifest = &verified.manifest;
    let expected = manifest_head(manifest);
    let mismatch = |what: String| OpsError::RestoredRootsMismatch {
        what,
        expected: format!(
            "tick {} with C(t) {}",
            expected.tick, expected.continuity_root
        ),
    };
    on_phase(RestorePhase::Open);
    let began = Instant::now();
    let config = WorldConfig {
        checkpoint_interval_ticks: 0,
        checkpoints_retained: usize::MAX,
        journal: JournalConfig::default(),
    };
    // The staged copy is private to this restore (the target's lock is
    // held): entered without a lock; the front door checks the package
    // against its genesis and makes its `package/` copy.
    let door = FrontDoor {
        storage: Arc::new(DiskStorage),
        dir: staged.clone(),
        id: request.id.clone(),
        engine: request.engine.clone(),
        compiled: request.compiled.clone(),
    };
    let entry = Entry {
        lock: Lock::None,
        ..Entry::existing(config)
    };
    let opened = door.open(entry)?;
    let world = opened.world;
    let recovery = match opened.arrival {
        Arrival::Recovered(recovery) => recovery,
        other => unreachable!("an existing world is recovered, not {other:?}"),
    };
    let recovered_from = match &recovery.started_from {
        StartedFrom::Genesis => None,
        StartedFrom::Checkpoint { tick, .. } => Some(*tick),
    };
    let checkpoint_tick = manifest.checkpoint.as_ref().map(|c| c.tick);
    if recovered_from != checkpoint_tick {
        let reasons: Vec<String> = recovery
            .skipped_checkpoints
            .iter()
            .map(|(path, why)| format!("{}: {why}", path.display()))
            .collect();
        return Err(mismatch(format!(
            "a recovery that did not start from the backup's checkpoint ({})",
            reasons.join("; ")
        )));
    }
    if recovery.roots != expected {
        return Err(mismatch(format!(
            "tick {} with C(t) {} on recovery",
            recovery.roots.tick, recovery.roots.continuity_root
        )));
    }
    world.close()?;
    phases.open = began.elapsed().as_secs_f64();

    on_phase(RestorePhase::Audit);
    let began = Instant::now();
    let audited = audit(&DiskStorage, staged, request.package)?;
    if let Some((tick, continuity)) = audited.head
        && (tick, continuity) != (expected.tick, expected.continuity_root)
    {
        return Err(mismatch(format!(
            "tick {tick} with C(t) {continuity} in the audit"
        )));
    }
    phases.audit = began.elapsed().as_secs_f64();

    on_phase(RestorePhase::Replay);
    let began = Instant::now();
    let start = match (request.options.replay_from, checkpoint_tick) {
        (ReplayFrom::Checkpoint, Some(tick)) => Start::Checkpoint(tick),
        _ => Start::Genesis,
    };
    let context = Context {
        storage: &DiskStorage,
        dir: staged,
        id: request.id,
        engine: request.engine,
        compiled: request.compiled.clone(),
        schedule: None,
    };
    // The audit just checked every envelope's signature in these same
    // files; replay re-admits every input (world, nonce, size) and
    // re-executes, so checking the signatures twice would double the
    // dominant cost of a restore and prove nothing more.
    let options = ReplayOptions {
        start,
        stop_after: None,
        verify_signatures: false,
        diff_on_divergence: true,
    };
    let replayed = replay(&context, &options, &mut |_| {})?;
    if replayed.last != expected {
        return Err(mismatch(format!(
            "tick {} with C(t) {} on replay verification",
            replayed.last.tick, replayed.last.continuity_root
        )));
    }
    phases.replay = began.elapsed().as_secs_f64();
    Ok(RestoreReport {
        world_dir: PathBuf::new(),
        quarantined: None,
        backup: verified.clone(),
        recovered_from,
        recovered_ticks: recovery.ticks_replayed,
        audited_ticks: audited.ticks,
        audited_envelopes: audited.envelopes,
        replayed_from: match start {
            Start::Checkpoint(tick) => Some(tick),
            _ => None,
        },
        replayed_ticks: replayed.ticks_replayed,
        roots: replayed.last,
        operator_key,
        key_source,
        phases: Phases::default(),
    })
}

/// Reads a secret seed file (64 hex digits).
fn read_seed(path: &Path) -> Result<SigningKey, OpsError> {
    let text = fs::read_to_string(path).map_err(OpsError::io("read", path))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| OpsError::OperatorKey {
        what: format!("{} does not hold a 64-hex-digit key seed", path.display()),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The secret of the backup's current key, if it is at hand.
fn find_secret(
    request: &RestoreRequest<'_>,
    target: &WorldDir,
    current: &str,
) -> Result<Option<(SigningKey, KeySource)>, OpsError> {
    let public = |key: &SigningKey| hex::encode(key.verifying_key().to_bytes());
    if let Some(path) = &request.options.operator_key_file {
        let key = read_seed(path)?;
        if public(&key) != current {
            return Err(OpsError::OperatorKey {
                what: format!(
                    "{} holds key {}, but the backup's current operator key is {current}",
                    path.display(),
                    public(&key)
                ),
            });
        }
        return Ok(Some((key, KeySource::Given(path.clone()))));
    }
    let candidates = [
        target.operator_key(),
        target
            .operator()
            .join("retired")
            .join(format!("{current}.key")),
    ];
    for path in candidates {
        if path.is_file()
            && let Ok(key) = read_seed(&path)
            && public(&key) == current
        {
            return Ok(Some((key, KeySource::Host(path))));
        }
    }
    Ok(None)
}

/// Gives the staged world its operator key; see the module docs.
fn key_the_world(
    verified: &VerifiedBackup,
    staged: &WorldDir,
    secret: Option<(SigningKey, KeySource)>,
) -> Result<(String, KeySource), OpsError> {
    let (key, source) = match secret {
        Some(found) => found,
        None => {
            let key = SigningKey::from_bytes(&random_seed()?);
            let fresh = KeyHistory {
                format: KEYS_FORMAT,
                keys: vec![KeyEntry {
                    public_key: hex::encode(key.verifying_key().to_bytes()),
                    from_tick: verified.manifest.head.tick,
                    to_tick: None,
                    endorsed_by_previous: None,
                }],
            };
            let history = staged.path().join(KEY_HISTORY_FILE);
            fs::rename(&history, staged.operator().join(PREVIOUS_HISTORY_FILE))
                .map_err(OpsError::io("rename", &history))?;
            write_json(&DiskStorage, &history, &fresh)?;
            (key, KeySource::New)
        }
    };
    write_new(
        &staged.operator_key(),
        format!("{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )?;
    sync_dir(&staged.operator())?;
    // The staged key and history must load as a world's keys do.
    let keys = OperatorKeys::load(&DiskStorage, staged)?.ok_or_else(|| OpsError::OperatorKey {
        what: "the restored world's key does not load".into(),
    })?;
    Ok((keys.public_key_hex(), source))
}

fn random_seed() -> Result<[u8; 32], OpsError> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut seed))
        .map_err(OpsError::io("read", "/dev/urandom"))?;
    Ok(seed)
}
