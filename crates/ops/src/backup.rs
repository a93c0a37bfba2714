//! Writing a backup: a self-contained folder that holds everything a fresh
//! host needs to bring the world back (see [`crate::manifest`] for its
//! layout), signed by the operator and checksummed for `sha256sum -c`.
//!
//! [`write_backup`] only reads the world directory, so it may run in any
//! process, including the node that holds the world: the journal is
//! append-only, so a copy of every segment up to a durable end, and of a
//! checkpoint at or before it, is consistent whatever is appended meanwhile.
//! [`backup_offline`] is the command's path: it locks the world, recovers it,
//! takes a checkpoint of the head if the newest one is older, and calls
//! [`write_backup`].
//!
//! A backup is written into `.<name>.partial` beside its final name and
//! renamed only once every file, the manifest, its signature and
//! `SHA256SUMS` are written and fsynced: a folder with the final name is
//! always complete. Nothing existing is ever overwritten.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use everarcade_package::Package;
use everarcade_protocol::{Hash, Tick, TickRoots, WorldId};
use everarcade_store::checkpoint::{list_checkpoints, read_checkpoint_summary};
use everarcade_store::journal::{RawRecord, RecordKind};
use everarcade_store::keys::{OperatorKeys, Signed};
use everarcade_store::layout::{checkpoint_name, segment_name};
use everarcade_store::meta::{GenesisFile, read_json};
use everarcade_store::{DiskStorage, JournalConfig, JournalReader, Record, WorldDir};
use everarcade_world::lineage::Lineage;
use everarcade_world::{
    CheckpointTaken, Entry, FrontDoor, Keys, Opened, RUNTIME_VERSION, WorldConfig,
};

use crate::error::OpsError;
use crate::files::{
    FileDigest, copy_hashed, create_private_dir, host_name, rfc3339, sync_dir, unix_now, write_new,
};
use crate::manifest::{
    BACKUP_FORMAT, GENESIS_FILE, KEY_HISTORY_FILE, LINEAGE_FILE, MANIFEST_FILE, Manifest,
    ManifestCheckpoint, ManifestFile, ManifestHead, ManifestJournal, SHA256SUMS_FILE,
    SIGNATURE_FILE, classify, encode_manifest, manifest_digest, render_sha256sums,
};

/// Deepest directory nesting copied from `package/`.
const PACKAGE_DEPTH_MAX: usize = 16;

/// What to back up: a world directory, the checkpoint to ship and where the
/// durable journal ends. Another process may hold the world (the node's hot
/// backup): the caller makes sure the checkpoint exists and the journal is
/// durable up to `journal_end`.
#[derive(Clone, Debug)]
pub struct BackupSource {
    /// The world directory.
    pub world: WorldDir,
    /// The checkpoint to ship (`checkpoints/<tick:020>.ckpt`); `None` ships
    /// none, and a restore replays from genesis.
    pub checkpoint_tick: Option<Tick>,
    /// `(segment index, durable bytes in it)`, as
    /// `DurableWorld::journal_end` returns it: segments before it are
    /// copied whole, this one up to its length, later ones not at all.
    pub journal_end: (u64, u64),
}

/// What a backup wrote.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// The backup folder.
    pub path: PathBuf,
    /// `<path>/manifest.json`, to be stored elsewhere too.
    pub manifest_path: PathBuf,
    /// Plain BLAKE3 of the manifest's bytes (what the signature covers).
    pub manifest_blake3: Hash,
    /// The manifest.
    pub manifest: Manifest,
    /// Bytes of the data files (everything but the manifest, its signature
    /// and `SHA256SUMS`).
    pub data_bytes: u64,
    /// Wall-clock seconds the copy took.
    pub seconds: f64,
}

/// Writes a backup of `source` into the new folder `out` (its parent is
/// created if needed; `out` must not exist), signed by `keys`; see the
/// module docs.
pub fn write_backup(
    source: &BackupSource,
    out: &Path,
    keys: &OperatorKeys,
) -> Result<BackupReport, OpsError> {
    let started = Instant::now();
    let partial = partial_path(out)?;
    let parent = partial.parent().unwrap_or(Path::new(".")).to_path_buf();
    create_private_dir(&parent)?;
    fs::DirBuilder::new()
        .mode_private()
        .create(&partial)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => OpsError::BackupExists {
                path: partial.clone(),
            },
            _ => OpsError::io("create", &partial)(error),
        })?;
    let mut copied = copy_world_files(source, &partial)?;
    let mut history = serde_json::to_vec_pretty(keys.history()).expect("a key history serializes");
    history.push(b'\n');
    create_private_dir(&partial.join("operator"))?;
    let digest = write_new(&partial.join(KEY_HISTORY_FILE), &history)?;
    copied.push((KEY_HISTORY_FILE.to_string(), digest));
    copied.sort_by(|a, b| a.0.cmp(&b.0));

    let facts = check_copy(source, &partial)?;
    let manifest = build_manifest(keys, &facts, &copied);
    let bytes = encode_manifest(&manifest);
    let manifest_blake3 = manifest_digest(&bytes);
    let manifest_file = write_new(&partial.join(MANIFEST_FILE), &bytes)?;
    let signature = keys.sign(Signed::Backup, &manifest_blake3);
    let signature_file = write_new(
        &partial.join(SIGNATURE_FILE),
        format!("{}\n", hex::encode(signature)).as_bytes(),
    )?;
    let mut sums: Vec<(String, [u8; 32])> = copied
        .iter()
        .map(|(path, digest)| (path.clone(), digest.sha256))
        .collect();
    sums.push((MANIFEST_FILE.to_string(), manifest_file.sha256));
    sums.push((SIGNATURE_FILE.to_string(), signature_file.sha256));
    write_new(
        &partial.join(SHA256SUMS_FILE),
        render_sha256sums(&sums).as_bytes(),
    )?;
    sync_tree_dirs(&partial)?;
    if out.exists() {
        return Err(OpsError::BackupExists {
            path: out.to_path_buf(),
        });
    }
    fs::rename(&partial, out).map_err(OpsError::io("rename into place", &partial))?;
    sync_dir(&parent)?;
    Ok(BackupReport {
        path: out.to_path_buf(),
        manifest_path: out.join(MANIFEST_FILE),
        manifest_blake3,
        data_bytes: copied.iter().map(|(_, digest)| digest.bytes).sum(),
        manifest,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `<parent>/.<name>.partial` for the backup folder `out`.
fn partial_path(out: &Path) -> Result<PathBuf, OpsError> {
    if out.exists() {
        return Err(OpsError::BackupExists {
            path: out.to_path_buf(),
        });
    }
    let name = out
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| OpsError::SourceInconsistent {
            path: out.to_path_buf(),
            what: "a backup folder needs a name".into(),
        })?;
    let parent = out.parent().unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{name}.partial")))
}

trait PrivateDirBuilder {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateDirBuilder for fs::DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(everarcade_store::storage::DIRECTORY_MODE)
    }
}

/// Copies genesis, the checkpoint, the journal prefix and the package.
fn copy_world_files(
    source: &BackupSource,
    partial: &Path,
) -> Result<Vec<(String, FileDigest)>, OpsError> {
    let world = &source.world;
    let mut copied = Vec::new();
    let mut copy = |relative: String, from: &Path, length: Option<u64>| {
        let to = partial.join(&relative);
        if let Some(parent) = to.parent() {
            create_private_dir(parent)?;
        }
        let digest = copy_hashed(from, &to, length)?;
        copied.push((relative, digest));
        Ok::<(), OpsError>(())
    };
    copy(GENESIS_FILE.to_string(), &world.genesis(), None)?;
    if let Some(tick) = source.checkpoint_tick {
        let name = checkpoint_name(tick);
        copy(format!("checkpoints/{name}"), &world.checkpoint(tick), None)?;
        let signature = world.checkpoint_signature(tick);
        if signature.is_file() {
            copy(format!("signatures/{name}.sig"), &signature, None)?;
        }
    }
    if world.lineage().is_file() {
        copy(LINEAGE_FILE.to_string(), &world.lineage(), None)?;
    }
    let (last, length) = source.journal_end;
    if last == 0 {
        return Err(OpsError::SourceInconsistent {
            path: world.journal(),
            what: "the journal end names segment 0; segments count from 1".into(),
        });
    }
    for index in 1..=last {
        let limit = (index == last).then_some(length);
        copy(
            format!("journal/{}", segment_name(index)),
            &world.segment(index),
            limit,
        )?;
    }
    let stored = world.path().join("packages");
    for (prefix, dir) in [("package", world.package()), ("packages", stored)] {
        if prefix == "packages" && !dir.is_dir() {
            continue;
        }
        for relative in list_tree(&dir, "", 0)? {
            let path = format!("{prefix}/{relative}");
            classify(&path).map_err(|what| OpsError::SourceInconsistent {
                path: dir.join(&relative),
                what: format!("the path {what}"),
            })?;
            copy(path, &dir.join(&relative), None)?;
        }
    }
    Ok(copied)
}

/// Relative paths of the regular files under `dir`, sorted; symlinks and
/// special files are refused (the package loader refuses them too).
fn list_tree(dir: &Path, prefix: &str, depth: usize) -> Result<Vec<String>, OpsError> {
    if depth > PACKAGE_DEPTH_MAX {
        return Err(OpsError::SourceInconsistent {
            path: dir.to_path_buf(),
            what: format!("directories nest deeper than {PACKAGE_DEPTH_MAX}"),
        });
    }
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .and_then(|entries| entries.collect())
        .map_err(OpsError::io("list", dir))?;
    entries.sort_by_key(|entry| entry.file_name());
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| OpsError::SourceInconsistent {
                path: path.clone(),
                what: "the file name is not UTF-8".into(),
            })?;
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = fs::symlink_metadata(&path)
            .map_err(OpsError::io("stat", &path))?
            .file_type();
        if kind.is_dir() {
            files.extend(list_tree(&path, &relative, depth + 1)?);
        } else if kind.is_file() {
            files.push(relative);
        } else {
            return Err(OpsError::SourceInconsistent {
                path,
                what: "is not a regular file or directory".into(),
            });
        }
    }
    Ok(files)
}

/// What reading the copied journal back established.
struct CopyFacts {
    /// The package root the world runs now.
    package_root: Hash,
    genesis: GenesisFile,
    head: TickRoots,
    checkpoint: Option<ManifestCheckpoint>,
    segments: u64,
    last_segment_bytes: u64,
    bytes: u64,
    records: u64,
    pending_inputs: u64,
}

/// Reads the copy back: every journal checksum and chain link, the end
/// exactly where it was asked to be, genesis.json agreeing with the
/// journal's genesis record, the checkpoint agreeing with the tick record of
/// its tick, the package copy having the bound root.
fn check_copy(source: &BackupSource, partial: &Path) -> Result<CopyFacts, OpsError> {
    let inconsistent = |path: PathBuf, what: String| OpsError::SourceInconsistent { path, what };
    let genesis: GenesisFile = read_json(&DiskStorage, &partial.join(GENESIS_FILE))?;
    let journal = partial.join("journal");
    let mut reader = JournalReader::open(&DiskStorage, &journal)?;
    let mut head: Option<TickRoots> = None;
    let mut at_checkpoint: Option<(Hash, Hash)> = None;
    let mut pending_inputs = 0u64;
    let mut last_tick: Option<RawRecord> = None;
    while let Some(raw) = reader.next()? {
        match raw.kind {
            RecordKind::Genesis => {
                let Record::Genesis(record) = raw.decode()? else {
                    unreachable!("the kind says genesis")
                };
                let agrees = record.world.as_str() == genesis.world
                    && record.package_root.to_hex() == genesis.package_root
                    && record.genesis_root.to_hex() == genesis.genesis_root;
                if !agrees {
                    return Err(inconsistent(
                        source.world.genesis(),
                        "genesis.json does not agree with the journal's genesis record".into(),
                    ));
                }
                let empty = everarcade_protocol::list_root(&[]);
                head = Some(TickRoots {
                    tick: 0,
                    input_root: empty,
                    receipt_root: empty,
                    state_root: record.state_root,
                    continuity_root: record.genesis_root,
                });
                if source.checkpoint_tick == Some(0) {
                    at_checkpoint = Some((record.genesis_root, record.state_root));
                }
            }
            RecordKind::Inputs => {
                // The envelope count: u32 little-endian at body offset 8
                // (docs/FORMATS.md §2.4); the reader checked the record.
                let count = raw
                    .body
                    .get(8..12)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                pending_inputs += u64::from(count);
            }
            RecordKind::Tick => {
                // Only the checkpoint's tick and the last tick are decoded;
                // the reader has checked every record's checksum and link.
                if raw.tick().is_some() && raw.tick() == source.checkpoint_tick {
                    let roots = tick_roots(&raw)?;
                    at_checkpoint = Some((roots.continuity_root, roots.state_root));
                }
                last_tick = Some(raw);
                pending_inputs = 0;
            }
        }
    }
    if let Some(raw) = &last_tick {
        head = Some(tick_roots(raw)?);
    }
    let (last, length) = source.journal_end;
    if let Some(torn) = reader.torn_tail() {
        return Err(inconsistent(
            source.world.segment(last),
            format!(
                "the journal end ({last}, {length}) is not a record boundary: {} bytes from byte {} are not a complete record",
                torn.bytes, torn.offset
            ),
        ));
    }
    let end = reader.end().clone();
    if (end.segment, end.length) != (last, length) {
        return Err(inconsistent(
            source.world.journal(),
            format!(
                "the copied journal ends at ({}, {}), not at ({last}, {length})",
                end.segment, end.length
            ),
        ));
    }
    let head = head.ok_or_else(|| {
        inconsistent(
            source.world.journal(),
            "the journal holds no genesis record".into(),
        )
    })?;
    let checkpoint = match source.checkpoint_tick {
        None => None,
        Some(tick) => Some(check_checkpoint(source, partial, tick, at_checkpoint)?),
    };
    let package_root = check_package(source, partial, &genesis)?;
    let bytes = (1..=last)
        .map(|index| {
            fs::metadata(journal.join(segment_name(index))).map_or(0, |metadata| metadata.len())
        })
        .sum();
    Ok(CopyFacts {
        package_root,
        genesis,
        head,
        checkpoint,
        segments: last,
        last_segment_bytes: length,
        bytes,
        records: end.records,
        pending_inputs,
    })
}

/// The roots of a tick record.
fn tick_roots(raw: &RawRecord) -> Result<TickRoots, OpsError> {
    match raw.decode()? {
        Record::Tick(record) => Ok(record.roots),
        _ => unreachable!("the kind says tick"),
    }
}

fn check_checkpoint(
    source: &BackupSource,
    partial: &Path,
    tick: Tick,
    at_checkpoint: Option<(Hash, Hash)>,
) -> Result<ManifestCheckpoint, OpsError> {
    let file = format!("checkpoints/{}", checkpoint_name(tick));
    let copy = partial.join(&file);
    let summary = read_checkpoint_summary(&DiskStorage, &copy)?;
    let Some((continuity, state)) = at_checkpoint else {
        return Err(OpsError::SourceInconsistent {
            path: source.world.checkpoint(tick),
            what: format!("the journal up to the end given has no tick {tick}"),
        });
    };
    if (summary.continuity_root, summary.state_root) != (continuity, state) {
        return Err(OpsError::SourceInconsistent {
            path: source.world.checkpoint(tick),
            what: format!("its roots are not the journal's roots of tick {tick}"),
        });
    }
    Ok(ManifestCheckpoint {
        file,
        tick,
        // Filled in from the copy's digest by `build_manifest`.
        blake3: String::new(),
        continuity_root: continuity.to_hex(),
        state_root: state.to_hex(),
    })
}

/// The copied `package/` loads and has the root the world runs now: the
/// last upgrade's (`lineage.json`), else the one bound at genesis. Returns it.
fn check_package(
    source: &BackupSource,
    partial: &Path,
    genesis: &GenesisFile,
) -> Result<Hash, OpsError> {
    let inconsistent = |what: String| OpsError::SourceInconsistent {
        path: source.world.package(),
        what,
    };
    let genesis_root = Hash::from_hex(&genesis.package_root)
        .ok_or_else(|| inconsistent("genesis.json's package_root is not a hash".into()))?;
    let lineage = partial.join(LINEAGE_FILE);
    let current = if lineage.is_file() {
        read_json::<Lineage>(&DiskStorage, &lineage)?.current_root(genesis_root)
    } else {
        genesis_root
    };
    let copy = partial.join("package");
    let package = Package::load(&copy)
        .map_err(|error| inconsistent(format!("the bound package does not load: {error}")))?;
    if package.root != current {
        return Err(inconsistent(format!(
            "the bound package has root {}, not the root {current} the world runs",
            package.root
        )));
    }
    Ok(current)
}

fn build_manifest(
    keys: &OperatorKeys,
    facts: &CopyFacts,
    copied: &[(String, FileDigest)],
) -> Manifest {
    let head = &facts.head;
    let checkpoint = facts.checkpoint.clone().map(|mut checkpoint| {
        if let Some((_, digest)) = copied.iter().find(|(path, _)| *path == checkpoint.file) {
            checkpoint.blake3 = hex::encode(digest.blake3);
        }
        checkpoint
    });
    Manifest {
        format: BACKUP_FORMAT,
        world: facts.genesis.world.clone(),
        created_at: rfc3339(unix_now()),
        host: host_name(),
        runtime_version: RUNTIME_VERSION.to_string(),
        protocol_version: everarcade_protocol::PROTOCOL_VERSION,
        package_root: facts.package_root.to_hex(),
        genesis_root: facts.genesis.genesis_root.clone(),
        checkpoint,
        head: ManifestHead {
            tick: head.tick,
            input_root: head.input_root.to_hex(),
            receipt_root: head.receipt_root.to_hex(),
            state_root: head.state_root.to_hex(),
            continuity_root: head.continuity_root.to_hex(),
        },
        journal: ManifestJournal {
            segments: facts.segments,
            last_segment_bytes: facts.last_segment_bytes,
            bytes: facts.bytes,
            records: facts.records,
            pending_inputs: facts.pending_inputs,
        },
        operator_public_key: keys.public_key_hex(),
        files: copied
            .iter()
            .map(|(path, digest)| ManifestFile {
                path: path.clone(),
                bytes: digest.bytes,
                blake3: hex::encode(digest.blake3),
            })
            .collect(),
    }
}

/// fsyncs every directory under `dir` and `dir` itself (the files were
/// fsynced as they were written).
fn sync_tree_dirs(dir: &Path) -> Result<(), OpsError> {
    for entry in fs::read_dir(dir).map_err(OpsError::io("list", dir))? {
        let entry = entry.map_err(OpsError::io("list", dir))?;
        if entry
            .file_type()
            .map_err(OpsError::io("stat", entry.path()))?
            .is_dir()
        {
            sync_tree_dirs(&entry.path())?;
        }
    }
    sync_dir(dir)
}

/// The default parent of backups: `<parent of the runtime root>/<root
/// name>-backups`, beside the root and so outside it.
pub fn default_backup_parent(runtime_root: &Path) -> Result<PathBuf, OpsError> {
    let root = absolute(runtime_root)?;
    match (root.parent(), root.file_name()) {
        (Some(parent), Some(name)) => {
            Ok(parent.join(format!("{}-backups", name.to_string_lossy())))
        }
        _ => Err(OpsError::BackupDirInsideRoot {
            dir: root.clone(),
            root,
        }),
    }
}

/// The first free `<parent>/<world>-<tick>-<n>` (n from 1), counting a
/// leftover `.partial` twin as taken.
pub fn next_backup_dir(parent: &Path, world: &WorldId, tick: Tick) -> PathBuf {
    let mut n = 1u64;
    loop {
        let name = format!("{world}-{tick}-{n}");
        let candidate = parent.join(&name);
        if !candidate.exists() && !parent.join(format!(".{name}.partial")).exists() {
            return candidate;
        }
        n += 1;
    }
}

/// `path` made absolute without requiring it to exist: the longest existing
/// ancestor is canonicalized (symlinks resolved) and the rest appended.
pub fn absolute(path: &Path) -> Result<PathBuf, OpsError> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(OpsError::io("read the current directory", path))?
            .join(path)
    };
    let mut existing = joined.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(joined),
        }
    }
}

/// Refuses a backup directory inside the runtime root.
pub fn check_outside_root(dir: &Path, runtime_root: &Path) -> Result<(), OpsError> {
    let dir = absolute(dir)?;
    let root = absolute(runtime_root)?;
    if dir.starts_with(&root) {
        return Err(OpsError::BackupDirInsideRoot { dir, root });
    }
    Ok(())
}

/// An offline backup: the world's lock is taken here, so no node may run.
pub struct OfflineBackup<'a> {
    /// The world: where it lives and what runs it.
    pub door: &'a FrontDoor,
    /// The backup folder to create (it must not exist, and must lie outside
    /// the runtime root); `None`: `<`[`default_backup_parent`]`>/<world>-<tick>-<n>`.
    pub out: Option<PathBuf>,
}

/// What an offline backup did besides writing the backup.
#[derive(Debug)]
pub struct OfflineBackupReport {
    /// The backup.
    pub backup: BackupReport,
    /// The checkpoint taken first, if the head was past the newest one.
    pub checkpoint_taken: Option<CheckpointTaken>,
    /// Why no checkpoint of the head could be taken, if none was.
    pub checkpoint_note: Option<String>,
    /// Whether the operator key was created by this backup.
    pub key_created: bool,
    /// Ticks recovery replayed to open the world.
    pub recovered_ticks: u64,
}

/// Locks the world, recovers it, checkpoints the head if the newest
/// checkpoint is older (and no input waits for the next tick), closes it,
/// and writes the backup while still holding the lock.
pub fn backup_offline(request: &OfflineBackup<'_>) -> Result<OfflineBackupReport, OpsError> {
    let dir = &request.door.dir;
    let chosen = match &request.out {
        Some(out) => {
            check_outside_root(out, dir.runtime_root())?;
            if out.exists() {
                return Err(OpsError::BackupExists { path: out.clone() });
            }
            Some(out.clone())
        }
        None => {
            check_outside_root(
                &default_backup_parent(dir.runtime_root())?,
                dir.runtime_root(),
            )?;
            None
        }
    };
    // No periodic checkpoints and no retention: a backup never removes one.
    let config = WorldConfig {
        checkpoint_interval_ticks: 0,
        checkpoints_retained: usize::MAX,
        journal: JournalConfig::default(),
    };
    // The key is created if missing, so that the checkpoint below is
    // signed by it. The lock is held until the backup is written.
    let entry = Entry {
        keys: Keys::LoadOrCreate,
        ..Entry::existing(config)
    };
    let Opened {
        mut world,
        lock: _lock,
        arrival,
        keys,
        key_created,
        ..
    } = request.door.open(entry)?;
    let keys = keys.expect("the entry loads or creates the key");
    let recovered_ticks = arrival
        .recovery()
        .map_or(0, |recovery| recovery.ticks_replayed);
    let head = world.roots().tick;
    let newest = list_checkpoints(&DiskStorage, dir)?
        .checkpoints
        .last()
        .map(|(tick, _)| *tick);
    let mut checkpoint_taken = None;
    let mut checkpoint_note = None;
    if newest != Some(head) {
        if world.pending_inputs() == 0 {
            checkpoint_taken = Some(world.checkpoint()?);
        } else {
            checkpoint_note = Some(format!(
                "{} acknowledged inputs wait for tick {}, so no checkpoint of tick {head} was taken; the backup ships {} and the journal after it",
                world.pending_inputs(),
                head + 1,
                newest.map_or("no checkpoint".to_string(), |tick| format!(
                    "checkpoint {tick}"
                ))
            ));
        }
    }
    let checkpoint_tick = checkpoint_taken.as_ref().map(|taken| taken.tick).or(newest);
    let journal_end = world.journal_end();
    world.close()?;
    let source = BackupSource {
        world: dir.clone(),
        checkpoint_tick,
        journal_end,
    };
    let out = match chosen {
        Some(out) => out,
        None => next_backup_dir(
            &default_backup_parent(dir.runtime_root())?,
            &request.door.id,
            head,
        ),
    };
    let backup = write_backup(&source, &out, &keys)?;
    Ok(OfflineBackupReport {
        backup,
        checkpoint_taken,
        checkpoint_note,
        key_created,
        recovered_ticks,
    })
}
