//! Divergence incidents: when replay reaches other roots than the lineage
//! records, the runtime never repairs anything. It records what happened in
//! `incidents/<n>.json` (what, when, the first divergent tick, the roots,
//! the runtime and package versions), preserves every artifact, and refuses
//! to serve (or, in a running node, closes admission and stops publishing
//! the lineage).
//!
//! It also keeps `runtime.json`: the last runtime version that replay-
//! verified the whole lineage. A node whose binary is another version
//! replay-verifies from genesis before it serves.

use std::path::PathBuf;

use everarcade_protocol::Tick;
use everarcade_store::meta::{read_json, write_json};
use everarcade_store::{Storage, StoreError, WorldDir};
use serde::{Deserialize, Serialize};

use crate::error::{Divergence, WorldError};

/// Version of the incident and runtime record formats.
pub const INCIDENT_FORMAT: u32 = 1;

/// One incident record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Always [`INCIDENT_FORMAT`].
    pub format: u32,
    /// `divergence`.
    pub kind: String,
    /// What found it: `startup replay-verify`, `self-audit`, …
    pub detected_by: String,
    /// Wall-clock time, milliseconds since the Unix epoch (informational;
    /// it feeds no root).
    pub time_unix_ms: u64,
    /// The first divergent tick.
    pub tick: Tick,
    /// `[root name, recorded, replayed]` for each root that differs.
    pub roots: Vec<[String; 3]>,
    /// The runtime that replayed.
    pub runtime_version: String,
    /// The package root it replayed with (the world's current package).
    pub package_root: String,
    /// The full message.
    pub message: String,
}

impl Incident {
    /// An incident for a divergence.
    pub fn divergence(divergence: &Divergence, detected_by: &str, package_root: &str) -> Incident {
        let time_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        Incident {
            format: INCIDENT_FORMAT,
            kind: "divergence".into(),
            detected_by: detected_by.into(),
            time_unix_ms,
            tick: divergence.tick,
            roots: divergence
                .roots
                .iter()
                .map(|(name, recorded, replayed)| {
                    [name.to_string(), recorded.to_hex(), replayed.to_hex()]
                })
                .collect(),
            runtime_version: crate::RUNTIME_VERSION.into(),
            package_root: package_root.into(),
            message: WorldError::Divergence(Box::new(divergence.clone())).to_string(),
        }
    }
}

/// Writes `incidents/<n>.json` (the next free number); returns its path.
pub fn record_incident(
    storage: &dyn Storage,
    dir: &WorldDir,
    incident: &Incident,
) -> Result<PathBuf, WorldError> {
    let incidents = dir.incidents();
    storage
        .create_dir_all(&incidents)
        .map_err(StoreError::io("create", &incidents))?;
    let taken = list_incidents(storage, dir)?.len();
    let mut n = taken + 1;
    let path = loop {
        let candidate = incidents.join(format!("{n:06}.json"));
        if !storage.exists(&candidate) {
            break candidate;
        }
        n += 1;
    };
    write_json(storage, &path, incident)?;
    Ok(path)
}

/// Every incident record, oldest first.
pub fn list_incidents(
    storage: &dyn Storage,
    dir: &WorldDir,
) -> Result<Vec<(PathBuf, Incident)>, WorldError> {
    let incidents = dir.incidents();
    let mut names = match storage.list(&incidents) {
        Ok(names) => names,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StoreError::io("list", &incidents)(error).into()),
    };
    names.retain(|name| name.ends_with(".json") && !name.starts_with('.'));
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = incidents.join(&name);
        let incident: Incident = read_json(storage, &path)?;
        out.push((path, incident));
    }
    Ok(out)
}

/// `runtime.json`: the last runtime that replay-verified the whole lineage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeRecord {
    /// Always [`INCIDENT_FORMAT`].
    pub format: u32,
    /// The runtime version.
    pub runtime_version: String,
    /// The head it verified to.
    pub verified_through_tick: Tick,
    /// `C(head)` it reached (hex).
    pub continuity_root: String,
}

/// The runtime version that last verified the lineage: `runtime.json`, else
/// the one that created the world (`genesis.json`).
pub fn verified_runtime(storage: &dyn Storage, dir: &WorldDir) -> Result<String, WorldError> {
    if storage.exists(&dir.runtime_record()) {
        let record: RuntimeRecord = read_json(storage, &dir.runtime_record())?;
        return Ok(record.runtime_version);
    }
    let genesis: everarcade_store::meta::GenesisFile = read_json(storage, &dir.genesis())?;
    Ok(genesis.runtime_version)
}

/// Records that this runtime verified the lineage to `tick`.
pub fn record_runtime(
    storage: &dyn Storage,
    dir: &WorldDir,
    tick: Tick,
    continuity_root: &everarcade_protocol::Hash,
) -> Result<(), WorldError> {
    let record = RuntimeRecord {
        format: INCIDENT_FORMAT,
        runtime_version: crate::RUNTIME_VERSION.into(),
        verified_through_tick: tick,
        continuity_root: continuity_root.to_hex(),
    };
    write_json(storage, &dir.runtime_record(), &record)?;
    Ok(())
}
