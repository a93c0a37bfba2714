//! Package upgrades and rollback (issue 5; the operator manual's "Upgrade
//! Runtime" and "Roll Back Runtime").
//!
//! The semver rule: a patch (same major and minor, higher patch) must
//! replay the whole history to the recorded roots under the new package
//! (genesis stays the old package's; every tick after runs the new code);
//! a minor or major version is a protocol transition, allowed only with
//! `--allow-minor` / `--allow-major`, and recorded in `lineage.json` at the
//! tick after the head, so history keeps replaying under the old package.
//!
//! An upgrade keeps its rollback artifacts under `upgrade/` (the pre-upgrade
//! lineage, the journal's end and roots at the upgrade) until it is
//! accepted. Rollback preserves the whole world directory in quarantine,
//! moves the post-upgrade journal and checkpoints to quarantine, restores
//! the previous package and lineage, and recovers to the pre-upgrade roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;
use everarcade_protocol::{Tick, TickRoots, WorldId};
use everarcade_store::checkpoint::quarantine_after;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::layout::{parse_segment_name, segment_name};
use everarcade_store::meta::{free_name, quarantine, quarantine_bytes, read_json, write_json};
use everarcade_store::{Storage, StoreError, WorldDir};
use serde::{Deserialize, Serialize};

use crate::error::WorldError;
use crate::lineage::{Lineage, Schedule, TransitionBody, UpgradeKind, read_lineage, write_lineage};
use crate::replay::{Context, ReplayProfile, replay};

/// Flags that allow protocol transitions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allow {
    /// `--allow-minor`.
    pub minor: bool,
    /// `--allow-major`.
    pub major: bool,
}

/// Why an upgrade is refused before anything changes.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeRefusal {
    /// The new version is not above the old one.
    #[error("{new} is not an upgrade of {old}")]
    NotNewer {
        /// Old version.
        old: String,
        /// New version.
        new: String,
    },
    /// A minor or major upgrade without its flag.
    #[error(
        "{old} -> {new} is a {kind:?} upgrade: a protocol transition; pass --allow-{flag} to record it at the next tick"
    )]
    NeedsFlag {
        /// Old version.
        old: String,
        /// New version.
        new: String,
        /// The kind.
        kind: UpgradeKind,
        /// The flag's name.
        flag: &'static str,
    },
    /// Another game's package.
    #[error("the new package is {new:?}, the world runs {old:?}: not an upgrade of the same game")]
    OtherGame {
        /// Old name.
        old: String,
        /// New name.
        new: String,
    },
    /// An upgrade is pending already.
    #[error(
        "an upgrade to {to} is pending since tick {tick}: accept it (`upgrade --accept`) or `rollback` first"
    )]
    Pending {
        /// The pending package root.
        to: String,
        /// Its transition tick.
        tick: Tick,
    },
}

impl UpgradeRefusal {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            UpgradeRefusal::NotNewer { .. } => "upgrade_not_newer",
            UpgradeRefusal::NeedsFlag { .. } => "upgrade_needs_flag",
            UpgradeRefusal::OtherGame { .. } => "upgrade_other_game",
            UpgradeRefusal::Pending { .. } => "upgrade_pending",
        }
    }
}

/// The semver rule.
pub fn classify(old: &Package, new: &Package, allow: Allow) -> Result<UpgradeKind, UpgradeRefusal> {
    let (o, n) = (&old.manifest.version, &new.manifest.version);
    if old.manifest.name != new.manifest.name {
        return Err(UpgradeRefusal::OtherGame {
            old: old.manifest.name.clone(),
            new: new.manifest.name.clone(),
        });
    }
    if n <= o {
        return Err(UpgradeRefusal::NotNewer {
            old: o.to_string(),
            new: n.to_string(),
        });
    }
    let kind = if n.major != o.major {
        UpgradeKind::Major
    } else if n.minor != o.minor {
        UpgradeKind::Minor
    } else {
        UpgradeKind::Patch
    };
    let missing = match kind {
        UpgradeKind::Major if !allow.major => Some("major"),
        UpgradeKind::Minor if !(allow.minor || allow.major) => Some("minor"),
        _ => None,
    };
    if let Some(flag) = missing {
        return Err(UpgradeRefusal::NeedsFlag {
            old: o.to_string(),
            new: n.to_string(),
            kind,
            flag,
        });
    }
    Ok(kind)
}

/// The rollback artifacts of a pending upgrade: `upgrade/pending.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingUpgrade {
    /// The transition it recorded.
    pub transition: TransitionBody,
    /// The head when it was made (the last accepted pre-upgrade tick).
    pub head_tick: Tick,
    /// The roots at that head (hex): state, input, receipt, continuity.
    pub head_roots: [String; 4],
    /// Where the journal ended then: segment index and durable length.
    pub journal_end: (u64, u64),
    /// The lineage before the upgrade.
    pub previous_lineage: Lineage,
    /// The backup taken before it, if any.
    pub backup: Option<String>,
}

/// Reads `upgrade/pending.json`, if an upgrade is pending.
pub fn pending(
    storage: &dyn Storage,
    dir: &WorldDir,
) -> Result<Option<PendingUpgrade>, WorldError> {
    let path = dir.upgrades().join("pending.json");
    if !storage.exists(&path) {
        return Ok(None);
    }
    Ok(Some(read_json(storage, &path)?))
}

fn roots_hex(roots: &TickRoots) -> [String; 4] {
    [
        roots.state_root.to_hex(),
        roots.input_root.to_hex(),
        roots.receipt_root.to_hex(),
        roots.continuity_root.to_hex(),
    ]
}

/// What the world is being upgraded from and to.
pub struct UpgradeInputs<'a> {
    /// The file system.
    pub storage: &'a dyn Storage,
    /// The world.
    pub dir: &'a WorldDir,
    /// Its id.
    pub id: &'a WorldId,
    /// The engine.
    pub engine: &'a Engine,
    /// The current package, compiled.
    pub current: Arc<CompiledPackage>,
    /// The new package, compiled.
    pub new: Arc<CompiledPackage>,
}

/// Replays the whole journal with `schedule`; `Ok(roots at the head)`.
fn replay_with(
    inputs: &UpgradeInputs<'_>,
    schedule: Option<&Schedule>,
) -> Result<TickRoots, WorldError> {
    let context = Context {
        storage: inputs.storage,
        dir: inputs.dir,
        id: inputs.id,
        engine: inputs.engine,
        compiled: inputs.current.clone(),
        schedule,
    };
    let options = ReplayProfile::VerifyFromGenesis.options();
    Ok(replay(&context, &options, &mut |_| {})?.last)
}

/// Replay-verifies the lineage as it is (the old package).
pub fn verify_current(inputs: &UpgradeInputs<'_>) -> Result<TickRoots, WorldError> {
    replay_with(inputs, None)
}

/// Replays history with the new package for every tick after genesis; a
/// patch must reach every recorded state root and receipt outcome (its
/// fuel use may differ; see [`Schedule::compatibility`]).
pub fn replay_history_under_new(inputs: &UpgradeInputs<'_>) -> Result<TickRoots, WorldError> {
    let current = Schedule::load(inputs.storage, inputs.dir, inputs.engine, &inputs.current)?;
    let schedule = Schedule::compatibility(vec![
        (0, current.genesis_package().clone()),
        (1, inputs.new.clone()),
    ]);
    replay_with(inputs, Some(&schedule))
}

/// Records the transition and switches the bound package; the world must
/// be closed (no writer). Returns the pending upgrade written.
pub fn apply(
    inputs: &UpgradeInputs<'_>,
    keys: &OperatorKeys,
    kind: UpgradeKind,
    head: TickRoots,
    journal_end: (u64, u64),
    history_replayed: bool,
    backup: Option<String>,
) -> Result<PendingUpgrade, WorldError> {
    let (storage, dir) = (inputs.storage, inputs.dir);
    let old = &inputs.current.package;
    let new = &inputs.new.package;
    let previous_lineage = read_lineage(storage, dir)?;
    let body = TransitionBody {
        from_tick: head.tick + 1,
        package_root: new.root.to_hex(),
        version: new.manifest.version.to_string(),
        previous_root: old.root.to_hex(),
        previous_version: old.manifest.version.to_string(),
        kind,
        continuity_root: head.continuity_root.to_hex(),
        history_replayed,
    };
    let pending = PendingUpgrade {
        transition: body.clone(),
        head_tick: head.tick,
        head_roots: roots_hex(&head),
        journal_end,
        previous_lineage: previous_lineage.clone(),
        backup,
    };
    storage
        .create_dir_all(&dir.upgrades())
        .map_err(StoreError::io("create", dir.upgrades()))?;
    write_json(storage, &dir.upgrades().join("pending.json"), &pending)?;
    store_package(storage, dir, old)?;
    store_package(storage, dir, new)?;
    replace_bound_package(storage, dir, new)?;
    let mut lineage = previous_lineage;
    lineage.transitions.push(body.sign(keys));
    write_lineage(storage, dir, &lineage)?;
    Ok(pending)
}

/// Copies a package into `packages/<root>/` unless it is there.
fn store_package(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
) -> Result<(), WorldError> {
    let target = dir.package_store(&package.root.to_hex());
    if storage.exists(&target) {
        return Ok(());
    }
    copy_package(storage, package, &target)
}

fn copy_package(storage: &dyn Storage, package: &Package, target: &Path) -> Result<(), WorldError> {
    for file in &package.files {
        let source = package.dir.join(&file.path);
        let destination = target.join(&file.path);
        if let Some(parent) = destination.parent() {
            storage
                .create_dir_all(parent)
                .map_err(StoreError::io("create", parent))?;
        }
        let bytes = storage
            .read(&source)
            .map_err(StoreError::io("read", &source))?;
        storage
            .write_synced(&destination, &bytes)
            .map_err(StoreError::io("write", &destination))?;
    }
    let parent = target.parent().unwrap_or(target);
    storage
        .sync_dir(parent)
        .map_err(StoreError::io("fsync the directory", parent))?;
    Ok(())
}

/// `package/` becomes `package`'s copy; the old `package/` moves to
/// `upgrade/` (nothing is deleted).
fn replace_bound_package(
    storage: &dyn Storage,
    dir: &WorldDir,
    package: &Package,
) -> Result<(), WorldError> {
    let staged = dir.upgrades().join("package.next");
    if storage.exists(&staged) {
        let _ = quarantine(storage, dir, &staged)?;
    }
    copy_package(storage, package, &staged)?;
    let bound = dir.package();
    if storage.exists(&bound) {
        let aside = free_name(storage, &dir.upgrades(), "package.previous");
        storage
            .rename(&bound, &aside)
            .map_err(StoreError::io("move aside", &bound))?;
    }
    storage
        .rename(&staged, &bound)
        .map_err(StoreError::io("rename", &staged))?;
    storage
        .sync_dir(dir.path())
        .map_err(StoreError::io("fsync the directory", dir.path()))?;
    Ok(())
}

/// Marks the pending upgrade accepted: `pending.json` moves to
/// `upgrade/accepted-<tick>.json`. Returns it.
pub fn accept(storage: &dyn Storage, dir: &WorldDir) -> Result<Option<PendingUpgrade>, WorldError> {
    let Some(pending) = pending(storage, dir)? else {
        return Ok(None);
    };
    let from = dir.upgrades().join("pending.json");
    let to = free_name(
        storage,
        &dir.upgrades(),
        &format!("accepted-{}.json", pending.transition.from_tick),
    );
    storage
        .rename(&from, &to)
        .map_err(StoreError::io("rename", &from))?;
    storage
        .sync_dir(&dir.upgrades())
        .map_err(StoreError::io("fsync the directory", dir.upgrades()))?;
    Ok(Some(pending))
}

/// What a rollback moved aside.
#[derive(Clone, Debug, Default)]
pub struct RollbackReport {
    /// Where the whole world directory was copied first.
    pub preserved: Vec<PathBuf>,
    /// Journal bytes after the upgrade point moved to quarantine.
    pub journal_bytes_moved: u64,
    /// Checkpoints (and signatures) after the upgrade moved to quarantine.
    pub checkpoints_moved: Vec<PathBuf>,
}

/// Rolls back the pending upgrade (the world must be closed): quarantines
/// the post-upgrade journal and checkpoints, restores the previous package
/// and lineage. The caller then opens the world with the previous package
/// and checks the roots against `pending.head_roots`.
pub fn roll_back(
    storage: &dyn Storage,
    dir: &WorldDir,
    pending: &PendingUpgrade,
) -> Result<RollbackReport, WorldError> {
    let mut report = RollbackReport::default();
    let (segment, length) = pending.journal_end;
    let journal = dir.journal();
    let names = storage
        .list(&journal)
        .map_err(StoreError::io("list", &journal))?;
    let mut later: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|index| (index, name)))
        .filter(|(index, _)| *index > segment)
        .collect();
    later.sort();
    for (_, name) in later.iter().rev() {
        let path = journal.join(name);
        report.journal_bytes_moved += storage.read(&path).map(|b| b.len() as u64).unwrap_or(0);
        report.preserved.push(quarantine(storage, dir, &path)?);
    }
    let current = journal.join(segment_name(segment));
    let bytes = storage
        .read(&current)
        .map_err(StoreError::io("read", &current))?;
    if bytes.len() as u64 > length {
        let tail = &bytes[length as usize..];
        report.journal_bytes_moved += tail.len() as u64;
        report.preserved.push(quarantine_bytes(
            storage,
            dir,
            &current,
            &format!("after-upgrade-at-{length}"),
            tail,
        )?);
        storage
            .truncate(&current, length)
            .map_err(StoreError::io("truncate", &current))?;
    }
    report.checkpoints_moved = quarantine_after(storage, dir, pending.head_tick)?;
    let previous = dir.package_store(&pending.transition.previous_root);
    let package = crate::lineage::load_stored(&previous, &pending.transition.previous_root)?;
    replace_bound_package(storage, dir, &package)?;
    write_lineage(storage, dir, &pending.previous_lineage)?;
    let from = dir.upgrades().join("pending.json");
    let to = free_name(
        storage,
        &dir.upgrades(),
        &format!("rolled-back-{}.json", pending.transition.from_tick),
    );
    storage
        .rename(&from, &to)
        .map_err(StoreError::io("rename", &from))?;
    Ok(report)
}

/// What [`undo_transitions_after`] undid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransitionsUndone {
    /// The transitions taken out of `lineage.json`, in tick order.
    pub transitions: Vec<TransitionBody>,
    /// Where what they replaced went, all under `quarantine/`, in order: the
    /// copy of the old `lineage.json`, a pending upgrade's `pending.json`,
    /// the old `package/`.
    pub preserved: Vec<PathBuf>,
}

/// Undoes every package transition recorded at a tick after `kept_tick`
/// (the world must be closed): for a journal cut back to `kept_tick`,
/// whose ticks after it will be executed again by the package that ran
/// before those transitions. Nothing is deleted, and each step can be
/// repeated after a crash:
///
/// 1. the old `lineage.json` is copied to `quarantine/` (durable);
/// 2. a pending upgrade of an undone transition (`upgrade/pending.json`,
///    its rollback artifacts) moves to `quarantine/`;
/// 3. `package/` becomes the package that runs again (from
///    `packages/<root>/`; the old `package/` moves to `quarantine/`);
/// 4. `lineage.json` is rewritten without them, atomically.
///
/// The undone packages stay in `packages/<root>/`. Returns nothing undone
/// when no transition is after `kept_tick`.
pub fn undo_transitions_after(
    storage: &dyn Storage,
    dir: &WorldDir,
    kept_tick: Tick,
) -> Result<TransitionsUndone, WorldError> {
    let lineage = read_lineage(storage, dir)?;
    let keep = lineage
        .transitions
        .partition_point(|transition| transition.body.from_tick <= kept_tick);
    let mut undone = TransitionsUndone::default();
    let Some(first) = lineage.transitions.get(keep) else {
        return Ok(undone);
    };
    let path = dir.lineage();
    let bytes = storage.read(&path).map_err(StoreError::io("read", &path))?;
    let label = format!("undone-after-tick-{kept_tick}");
    undone
        .preserved
        .push(quarantine_bytes(storage, dir, &path, &label, &bytes)?);
    if let Some(pending) = pending(storage, dir)?
        && pending.transition.from_tick > kept_tick
    {
        let path = dir.upgrades().join("pending.json");
        undone.preserved.push(quarantine(storage, dir, &path)?);
    }
    let root = &first.body.previous_root;
    let bound = dir.package();
    if crate::lineage::load_stored(&bound, root).is_err() {
        let package = crate::lineage::load_stored(&dir.package_store(root), root)?;
        if storage.exists(&bound) {
            undone.preserved.push(quarantine(storage, dir, &bound)?);
        }
        replace_bound_package(storage, dir, &package)?;
    }
    let kept = Lineage {
        format: lineage.format,
        transitions: lineage.transitions[..keep].to_vec(),
    };
    write_lineage(storage, dir, &kept)?;
    undone.transitions = lineage.transitions[keep..]
        .iter()
        .map(|transition| transition.body.clone())
        .collect();
    Ok(undone)
}

/// Whether replayed roots equal the recorded pre-upgrade roots.
pub fn matches_head(pending: &PendingUpgrade, roots: &TickRoots) -> bool {
    roots.tick == pending.head_tick && roots_hex(roots) == pending.head_roots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str) -> Package {
        let dir = std::env::temp_dir().join(format!(
            "ea-classify-{}-{name}-{version}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime/games/2d-arena");
        let manifest = std::fs::read_to_string(source.join("world.toml"))
            .unwrap()
            .replace("name = \"2d-arena\"", &format!("name = \"{name}\""))
            .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
        std::fs::write(dir.join("world.toml"), manifest).unwrap();
        std::fs::copy(source.join("world.wasm"), dir.join("world.wasm")).unwrap();
        let loaded = Package::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        loaded
    }

    #[test]
    fn the_semver_rule() {
        let old = package("arena", "1.2.3");
        let none = Allow::default();
        assert_eq!(
            classify(&old, &package("arena", "1.2.4"), none).unwrap(),
            UpgradeKind::Patch
        );
        let minor = classify(&old, &package("arena", "1.3.0"), none).unwrap_err();
        assert_eq!(minor.code(), "upgrade_needs_flag");
        let allow_minor = Allow {
            minor: true,
            major: false,
        };
        assert_eq!(
            classify(&old, &package("arena", "1.3.0"), allow_minor).unwrap(),
            UpgradeKind::Minor
        );
        assert!(classify(&old, &package("arena", "2.0.0"), allow_minor).is_err());
        let allow_major = Allow {
            minor: false,
            major: true,
        };
        assert_eq!(
            classify(&old, &package("arena", "2.0.0"), allow_major).unwrap(),
            UpgradeKind::Major
        );
        assert_eq!(
            classify(&old, &package("arena", "1.2.3"), none)
                .unwrap_err()
                .code(),
            "upgrade_not_newer"
        );
        assert_eq!(
            classify(&old, &package("arena", "1.2.2"), none)
                .unwrap_err()
                .code(),
            "upgrade_not_newer"
        );
        assert_eq!(
            classify(&old, &package("other", "1.2.4"), none)
                .unwrap_err()
                .code(),
            "upgrade_other_game"
        );
    }
}
