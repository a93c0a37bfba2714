//! The self-audit: a thread that replays the journal from the newest
//! checkpoint to the head, every [`SELF_AUDIT_INTERVAL`] and on request
//! (`POST /admin/audit`), and compares every tick's roots with the record.
//! A divergence (or corruption) becomes an incident: the actor closes
//! admission, stops ticking and the lineage stops being published.
//!
//! It reads the journal while the actor appends: the journal is append-only
//! and checkpoints appear by rename, so a torn end (a record being written)
//! is simply where this audit stops.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use everarcade_engine::{CompiledPackage, Engine};
use everarcade_protocol::{Tick, WorldId};
use everarcade_store::{Storage, WorldDir};
use everarcade_world::WorldError;
use everarcade_world::incident::Incident;
use everarcade_world::replay::{Context, ReplayOptions, Start, replay};

use crate::actor::{IncidentView, WorldHandle};

/// How often the node audits itself.
pub const SELF_AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// What one audit found.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Every replayed tick matched.
    Matched {
        /// The first tick replayed (after the checkpoint it started from).
        from_tick: Tick,
        /// The last tick replayed.
        to_tick: Tick,
        /// Milliseconds it took.
        elapsed_ms: u64,
    },
    /// An incident was recorded.
    Incident(IncidentView),
    /// The audit could not run (I/O), which is not an incident.
    Failed {
        /// Why.
        message: String,
    },
}

/// What the audit thread needs of the world.
pub struct AuditTarget {
    /// The storage the world writes through.
    pub storage: Arc<dyn Storage>,
    /// The world's directory.
    pub dir: WorldDir,
    /// The world.
    pub id: WorldId,
    /// The engine.
    pub engine: Arc<Engine>,
    /// The current package.
    pub compiled: Arc<CompiledPackage>,
}

/// A request for an audit now; the answer comes back on the sender.
pub type AuditRequest = tokio::sync::oneshot::Sender<AuditOutcome>;

/// Starts the audit thread. It ends when every request sender is gone.
pub fn spawn(
    target: AuditTarget,
    world: WorldHandle,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<mpsc::Sender<AuditRequest>> {
    let (sender, requests) = mpsc::channel::<AuditRequest>();
    std::thread::Builder::new()
        .name("self-audit".into())
        .spawn(move || {
            loop {
                let reply = match requests.recv_timeout(SELF_AUDIT_INTERVAL) {
                    Ok(reply) => Some(reply),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                };
                if world.live.incident().is_some() {
                    if let Some(reply) = reply {
                        let view = world.live.incident().expect("checked");
                        let _ = reply.send(AuditOutcome::Incident(view));
                    }
                    continue;
                }
                let outcome = audit_once(&target, &world, &runtime);
                if let AuditOutcome::Failed { message } = &outcome {
                    tracing::warn!(%message, "self-audit could not run");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
        })?;
    Ok(sender)
}

fn audit_once(
    target: &AuditTarget,
    world: &WorldHandle,
    runtime: &tokio::runtime::Handle,
) -> AuditOutcome {
    let started = Instant::now();
    let context = Context {
        storage: &*target.storage,
        dir: &target.dir,
        id: &target.id,
        engine: &target.engine,
        compiled: target.compiled.clone(),
        schedule: None,
    };
    let options = ReplayOptions {
        start: Start::NewestCheckpoint,
        stop_after: None,
        verify_signatures: false,
        diff_on_divergence: false,
    };
    let (kind, tick, message) = match replay(&context, &options, &mut |_| {}) {
        Ok(replayed) => {
            let from_tick = match &replayed.started_from {
                everarcade_world::replay::StartedFrom::Genesis => 1,
                everarcade_world::replay::StartedFrom::Checkpoint { tick, .. } => tick + 1,
            };
            return AuditOutcome::Matched {
                from_tick,
                to_tick: replayed.last.tick,
                elapsed_ms: started.elapsed().as_millis() as u64,
            };
        }
        Err(WorldError::Divergence(divergence)) => {
            let root = target.compiled.package.root.to_hex();
            let incident = Incident::divergence(&divergence, "self-audit", &root);
            return record(world, runtime, incident);
        }
        Err(error) if error.class() == everarcade_world::ErrorClass::Integrity => {
            ("integrity", 0, error.to_string())
        }
        Err(error) => {
            return AuditOutcome::Failed {
                message: error.to_string(),
            };
        }
    };
    let incident = Incident {
        format: everarcade_world::incident::INCIDENT_FORMAT,
        kind: kind.into(),
        detected_by: "self-audit".into(),
        time_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64),
        tick,
        roots: Vec::new(),
        runtime_version: everarcade_world::RUNTIME_VERSION.into(),
        package_root: target.compiled.package.root.to_hex(),
        message,
    };
    record(world, runtime, incident)
}

fn record(
    world: &WorldHandle,
    runtime: &tokio::runtime::Handle,
    incident: Incident,
) -> AuditOutcome {
    match runtime.block_on(world.incident(incident)) {
        Ok(view) => AuditOutcome::Incident(view),
        Err(error) => AuditOutcome::Failed {
            message: error.message,
        },
    }
}
