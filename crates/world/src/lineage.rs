//! Package transitions: a world runs its genesis package until an upgrade
//! records, at a tick, that another package runs from then on.
//!
//! `lineage.json` lists the transitions, each signed by the operator
//! ([`Signed::Upgrade`]); `packages/<root>/` keeps every package the world
//! has run, so replay from genesis executes each tick with the package that
//! executed it ([`Schedule`]). `package/` is always the current package.
//!
//! Without `lineage.json` the world has one package, bound at genesis.

use std::path::Path;
use std::sync::Arc;

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_package::Package;
use everarcade_protocol::{Hash, Tick};
use everarcade_store::keys::{
    KeyHistory, OperatorKeys, Signed, file_digest, parse_public_key, parse_signature, verify,
};
use everarcade_store::meta::{read_json, write_json};
use everarcade_store::{Storage, WorldDir};
use serde::{Deserialize, Serialize};

use crate::error::WorldError;

/// Version of `lineage.json`.
pub const LINEAGE_FORMAT: u32 = 1;

/// What an upgrade changes, by the semver of the package versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeKind {
    /// Same major and minor: history must replay identically under it.
    Patch,
    /// A minor version: a protocol transition, allowed with `--allow-minor`.
    Minor,
    /// A major version: a protocol transition, allowed with `--allow-major`.
    Major,
}

/// The signed facts of one transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// The first tick the new package executes.
    pub from_tick: Tick,
    /// The new package root (hex).
    pub package_root: String,
    /// The new package's manifest version.
    pub version: String,
    /// The package it replaces (hex).
    pub previous_root: String,
    /// The replaced package's version.
    pub previous_version: String,
    /// Patch, minor or major.
    pub kind: UpgradeKind,
    /// The continuity root `C(from_tick - 1)` the transition starts from.
    pub continuity_root: String,
    /// Whether the whole history replayed identically under the new package.
    pub history_replayed: bool,
}

/// One transition with the operator's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// What it records.
    #[serde(flatten)]
    pub body: TransitionBody,
    /// The signing operator key (hex).
    pub public_key: String,
    /// `Signed::Upgrade` over BLAKE3 of the body's JSON (hex).
    pub signature: String,
}

/// `lineage.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// Always [`LINEAGE_FORMAT`].
    pub format: u32,
    /// In order of `from_tick`.
    pub transitions: Vec<Transition>,
}

impl TransitionBody {
    /// The digest the operator signs.
    pub fn digest(&self) -> Hash {
        file_digest(&serde_json::to_vec(self).expect("a transition serializes"))
    }

    /// Signs it.
    pub fn sign(self, keys: &OperatorKeys) -> Transition {
        let signature = hex::encode(keys.sign(Signed::Upgrade, &self.digest()));
        Transition {
            body: self,
            public_key: keys.public_key_hex(),
            signature,
        }
    }
}

/// Reads `lineage.json`; an absent file is an empty lineage.
pub fn read_lineage(storage: &dyn Storage, dir: &WorldDir) -> Result<Lineage, WorldError> {
    if !storage.exists(&dir.lineage()) {
        return Ok(Lineage {
            format: LINEAGE_FORMAT,
            transitions: Vec::new(),
        });
    }
    let lineage: Lineage = read_json(storage, &dir.lineage())?;
    let bad = |what: String| WorldError::Lineage {
        path: dir.lineage(),
        offset: 0,
        what,
    };
    if lineage.format != LINEAGE_FORMAT {
        return Err(bad(format!(
            "format {} is not {LINEAGE_FORMAT}",
            lineage.format
        )));
    }
    for pair in lineage.transitions.windows(2) {
        if pair[1].body.from_tick <= pair[0].body.from_tick
            || pair[1].body.previous_root != pair[0].body.package_root
        {
            return Err(bad(format!(
                "the transition at tick {} does not follow the one at tick {}",
                pair[1].body.from_tick, pair[0].body.from_tick
            )));
        }
    }
    Ok(lineage)
}

/// Writes `lineage.json` atomically.
pub fn write_lineage(
    storage: &dyn Storage,
    dir: &WorldDir,
    lineage: &Lineage,
) -> Result<(), WorldError> {
    write_json(storage, &dir.lineage(), lineage)?;
    Ok(())
}

impl Lineage {
    /// The package root that runs now, given the genesis package root.
    pub fn current_root(&self, genesis_root: Hash) -> Hash {
        self.transitions
            .last()
            .and_then(|t| Hash::from_hex(&t.body.package_root))
            .unwrap_or(genesis_root)
    }

    /// Checks every transition's signature against the key history (the key
    /// must have been the operator's at the transition's tick).
    pub fn verify(&self, history: Option<&KeyHistory>) -> Result<(), WorldError> {
        for transition in &self.transitions {
            let tick = transition.body.from_tick;
            let bad = |reason: String| {
                WorldError::OperatorSignature(format!(
                    "lineage.json, transition at tick {tick}: {reason}"
                ))
            };
            let history =
                history.ok_or_else(|| bad("the world has no operator key history".into()))?;
            let key = parse_public_key(&transition.public_key).map_err(|e| bad(e.to_string()))?;
            let signature =
                parse_signature(&transition.signature).map_err(|e| bad(e.to_string()))?;
            verify(
                history,
                &key,
                Signed::Upgrade,
                &transition.body.digest(),
                &signature,
                Some(tick.saturating_sub(1)),
            )
            .map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }
}

/// Which package executes which ticks.
#[derive(Clone)]
pub struct Schedule {
    /// `(first tick, package)`, ascending; the first starts at genesis.
    entries: Vec<(Tick, Arc<CompiledPackage>)>,
    /// A compatibility check (see [`Schedule::compatibility`]).
    outcomes_only: bool,
}

impl Schedule {
    /// One package for every tick.
    pub fn single(compiled: Arc<CompiledPackage>) -> Schedule {
        Schedule {
            entries: vec![(0, compiled)],
            outcomes_only: false,
        }
    }

    /// A schedule from `(first tick, package)` entries; the first must start at 0.
    pub fn from_entries(entries: Vec<(Tick, Arc<CompiledPackage>)>) -> Schedule {
        assert!(entries.first().is_some_and(|(from, _)| *from == 0));
        assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0));
        Schedule {
            entries,
            outcomes_only: false,
        }
    }

    /// A schedule for a compatibility check: replay compares each tick's
    /// state root and every receipt but its fuel (another package's code
    /// uses other amounts of fuel, which changes receipt roots), and
    /// continues from the recorded continuity root, so that the world's
    /// randomness stays the recorded one.
    pub fn compatibility(entries: Vec<(Tick, Arc<CompiledPackage>)>) -> Schedule {
        Schedule {
            outcomes_only: true,
            ..Schedule::from_entries(entries)
        }
    }

    /// Whether this is a compatibility check.
    pub fn outcomes_only(&self) -> bool {
        self.outcomes_only
    }

    /// The schedule of the world in `dir`, whose current package is
    /// `current`: earlier packages load from `packages/<root>/` and compile.
    pub fn load(
        storage: &dyn Storage,
        dir: &WorldDir,
        engine: &Engine,
        current: &Arc<CompiledPackage>,
    ) -> Result<Schedule, WorldError> {
        let lineage = read_lineage(storage, dir)?;
        let Some(last) = lineage.transitions.last() else {
            return Ok(Schedule::single(current.clone()));
        };
        if last.body.package_root != current.package.root.to_hex() {
            return Err(WorldError::PackageMismatch {
                bound: Hash::from_hex(&last.body.package_root).unwrap_or_default(),
                given: current.package.root,
            });
        }
        let mut entries = Vec::with_capacity(lineage.transitions.len() + 1);
        let first_root = &lineage.transitions[0].body.previous_root;
        entries.push((0, stored_package(dir, engine, first_root, current)?));
        for transition in &lineage.transitions {
            let compiled = stored_package(dir, engine, &transition.body.package_root, current)?;
            entries.push((transition.body.from_tick, compiled));
        }
        Ok(Schedule {
            entries,
            outcomes_only: false,
        })
    }

    /// The package that executes `tick` (tick 0: genesis).
    pub fn package_for(&self, tick: Tick) -> &Arc<CompiledPackage> {
        let index = self.entries.partition_point(|(from, _)| *from <= tick);
        &self.entries[index.max(1) - 1].1
    }

    /// The genesis package.
    pub fn genesis_package(&self) -> &Arc<CompiledPackage> {
        &self.entries[0].1
    }
}

/// Loads and compiles `packages/<root>/` (or reuses `current` for its root).
fn stored_package(
    dir: &WorldDir,
    engine: &Engine,
    root: &str,
    current: &Arc<CompiledPackage>,
) -> Result<Arc<CompiledPackage>, WorldError> {
    if current.package.root.to_hex() == root {
        return Ok(current.clone());
    }
    let path = dir.package_store(root);
    let package = load_stored(&path, root)?;
    Ok(engine.compile(&package)?)
}

/// Loads a stored package and checks its root is its directory's name.
pub fn load_stored(path: &Path, root: &str) -> Result<Package, WorldError> {
    let package = Package::load(path).map_err(|error| WorldError::Lineage {
        path: path.to_path_buf(),
        offset: 0,
        what: format!("a package of the lineage does not load: {error}"),
    })?;
    if package.root.to_hex() != root {
        return Err(WorldError::Lineage {
            path: path.to_path_buf(),
            offset: 0,
            what: format!("holds package root {}, not {root}", package.root),
        });
    }
    Ok(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_digests_cover_every_field() {
        let body = TransitionBody {
            from_tick: 10,
            package_root: "aa".repeat(32),
            version: "0.1.1".into(),
            previous_root: "bb".repeat(32),
            previous_version: "0.1.0".into(),
            kind: UpgradeKind::Patch,
            continuity_root: "cc".repeat(32),
            history_replayed: true,
        };
        let mut other = body.clone();
        other.from_tick = 11;
        assert_ne!(body.digest(), other.digest());
        let mut other = body.clone();
        other.kind = UpgradeKind::Minor;
        assert_ne!(body.digest(), other.digest());
    }
}
