//! Health through three channels and the reconciler.
//!
//! - The exit channel: a waiter thread per child reports its exit status;
//!   an adopted node (not this process's child) is watched through its
//!   world lock. An exit no operation asked for is `process_exited` (exit
//!   code or signal), the record becomes `failed`, and under `on-failure`
//!   a restart follows after a capped exponential backoff.
//! - The probe worker: each supervised node's `/readyz`; `probe_failed`
//!   after `manager.probe_failure_threshold` failures in a row.
//! - The inspect worker: each node's status; `tick_rate_degraded` below
//!   90% of the manifest rate, `incident` when the node reports one.
//!
//! The reconciler runs once before the workers start and then every
//! `manager.reconcile_interval_ms`: it adopts a node that runs a world of
//! this root without being supervised, disposes of a `running` record whose
//! world is gone, and marks `observed_exited` a record whose node exited.
//! It never stops or removes a node.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use everarcade_client::{Client, Trust};
use everarcade_protocol::WorldId;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, WorldDir};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::config::RestartPolicy;
use crate::db::{DbError, Record, Snapshot};
use crate::ops::{Source, world_exists};
use crate::{Exit, Manager, Supervised};

/// Waits `period` or until `stop` turns true; false when stopping.
async fn tick(stop: &mut watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => {}
        _ = crate::stopped(stop) => {}
    }
    !*stop.borrow()
}

/// Marks operations a dead manager left `in_progress` as failed
/// (`manager_interrupted`): their outcome is unknown, and a stream job
/// that has a row is never run again.
pub async fn interrupted_operations(manager: &Manager) -> Result<(), DbError> {
    for operation in manager.db.unfinished_operations().await? {
        manager
            .db
            .finish_operation(
                operation.id,
                "failed",
                Some("manager_interrupted"),
                &json!({"error": "the manager stopped before this operation finished; the reconciler records what runs"}),
            )
            .await?;
    }
    Ok(())
}

/// The exit channel.
pub async fn exit_worker(
    manager: Arc<Manager>,
    mut exits: mpsc::UnboundedReceiver<Exit>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            exit = exits.recv() => match exit {
                Some(exit) => handle_exit(&manager, exit).await,
                None => return,
            },
            _ = crate::stopped(&mut stop) => return,
        }
    }
}

async fn handle_exit(manager: &Arc<Manager>, exit: Exit) {
    let Some(entry) = manager.unsupervise(&exit.world, exit.pid) else {
        return;
    };
    if entry.stopping {
        // The stop operation records the outcome.
        return;
    }
    let details = json!({"pid": exit.pid, "exit_code": exit.code, "signal": exit.signal,
                         "child": entry.child});
    let write = crate::lock(&manager.snapshots).observe(&exit.world, Instant::now(), |snapshot| {
        snapshot.ready = false;
        snapshot.last_event = Some("process_exited".into());
    });
    manager.write_snapshots(write.into_iter().collect()).await;
    manager
        .emit(&exit.world, "process_exited", details.clone())
        .await;
    let Ok(Some(mut record)) = manager.db.record(&exit.world).await else {
        return;
    };
    if record.pid != Some(i64::from(exit.pid)) {
        return;
    }
    record.status = "failed".into();
    record.last_error = Some(match (exit.code, exit.signal) {
        (Some(code), _) => format!("process_exited: exit code {code}"),
        (None, Some(signal)) => format!("process_exited: signal {signal}"),
        (None, None) => "process_exited".to_string(),
    });
    record.stopped_at = Some(crate::db::now());
    if let Err(error) = manager.db.put_record(&record).await {
        tracing::error!(%error, world = %exit.world, "record not updated after an exit");
    }
    if RestartPolicy::parse(&record.restart_policy) == Some(RestartPolicy::OnFailure) {
        schedule_restart(manager.clone(), exit.world);
    }
}

/// Restarts `world` after `initial * 2^attempt`, capped.
fn schedule_restart(manager: Arc<Manager>, world: String) {
    let attempt = {
        let mut attempts = crate::lock(&manager.attempts);
        let attempt = attempts.entry(world.clone()).or_default();
        *attempt += 1;
        *attempt
    };
    let initial = manager.config.restart_backoff_initial_ms;
    let delay = initial
        .saturating_mul(1u64 << (attempt - 1).min(20))
        .min(manager.config.restart_backoff_max_ms);
    tokio::spawn(async move {
        manager
            .emit(
                &world,
                "restarting",
                json!({"attempt": attempt, "delay_ms": delay}),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        match manager.restart_after_failure(&world).await {
            Ok(_) => {
                tracing::info!(%world, attempt, "restarted under on-failure");
            }
            Err(error) => {
                tracing::warn!(%world, attempt, code = error.code(), "restart under on-failure failed");
                if error.code() != "already_running" && error.code() != "operation_in_progress" {
                    schedule_restart(manager, world);
                }
            }
        }
    });
}

/// One pass of a worker over the supervised nodes not being stopped:
/// `visit` each with its client (kept across passes); the snapshots the
/// visits made due, and those of worlds no longer supervised, are written
/// in one transaction.
async fn pass<F, Fut>(manager: &Arc<Manager>, clients: &mut Clients, mut visit: F)
where
    F: FnMut(String, Supervised, Client) -> Fut,
    Fut: std::future::Future<Output = Option<Snapshot>>,
{
    let supervised = manager.supervised();
    clients.retain(&supervised);
    let mut writes = crate::lock(&manager.snapshots).forget(|world| supervised.contains_key(world));
    for (world, entry) in supervised {
        if entry.stopping {
            continue;
        }
        let Some(client) = clients.get(&world, &entry) else {
            continue;
        };
        writes.extend(visit(world, entry, client).await);
    }
    manager.write_snapshots(writes).await;
}

/// The probe channel (and the watch of adopted nodes' exits).
pub async fn probe_worker(manager: Arc<Manager>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(manager.config.probe_interval_ms);
    let mut clients = Clients::default();
    while tick(&mut stop, period).await {
        // An adopted node is not our child: its exit shows as its world
        // lock released (or taken by another process).
        for (world, entry) in manager.supervised() {
            if entry.child || entry.stopping {
                continue;
            }
            let alive = WorldId::new(&world).ok().is_some_and(|id| {
                manager
                    .node_of(&id)
                    .ok()
                    .flatten()
                    .is_some_and(|node| node.pid == entry.pid)
            });
            if !alive {
                let exit = Exit {
                    world,
                    pid: entry.pid,
                    code: None,
                    signal: None,
                };
                handle_exit(&manager, exit).await;
            }
        }
        pass(&manager, &mut clients, |world, _, client| {
            probe_one(&manager, world, client)
        })
        .await;
    }
}

/// One client per supervised node, kept across passes (its connection is
/// reused), dropped when the node or its endpoint changes.
#[derive(Default)]
struct Clients(std::collections::BTreeMap<String, (u32, Client)>);

impl Clients {
    fn retain(&mut self, supervised: &std::collections::BTreeMap<String, Supervised>) {
        self.0
            .retain(|world, (pid, _)| supervised.get(world).is_some_and(|entry| entry.pid == *pid));
    }

    fn get(&mut self, world: &str, entry: &Supervised) -> Option<Client> {
        if let Some((pid, client)) = self.0.get(world)
            && *pid == entry.pid
        {
            return Some(client.clone());
        }
        let id = WorldId::new(world).ok()?;
        let client = node_client(&entry.endpoint, id, entry.tls_cert.as_deref()).ok()?;
        self.0
            .insert(world.to_string(), (entry.pid, client.clone()));
        Some(client)
    }
}

/// A client of the node at `endpoint`; over `https://`, trusting the
/// certificate the node recorded that it serves (as the CLI does).
pub(crate) fn node_client(
    endpoint: &str,
    id: WorldId,
    tls_cert: Option<&std::path::Path>,
) -> Result<Client, everarcade_client::ClientError> {
    let client = match tls_cert {
        Some(cert) => Client::with_trust(endpoint, id, &Trust::from_pem_file(cert)?)?,
        None => Client::new(endpoint, id)?,
    };
    Ok(client.with_timeout(Duration::from_secs(2)))
}

/// Probes one node; returns its snapshot when it is to be written.
async fn probe_one(manager: &Arc<Manager>, world: String, client: Client) -> Option<Snapshot> {
    let result = client.readyz().await.map_err(|e| e.to_string());
    let threshold = manager.config.probe_failure_threshold;
    let mut report = None;
    let mut failures = 0;
    manager.update_supervised(&world, |now| {
        match &result {
            Ok(()) => {
                if now.probe_failed_reported {
                    report = Some((
                        "probe_recovered",
                        json!({"after_failures": now.probe_failures}),
                    ));
                }
                now.probe_failures = 0;
                now.probe_failed_reported = false;
            }
            Err(reason) => {
                now.probe_failures += 1;
                if now.probe_failures >= threshold && !now.probe_failed_reported {
                    now.probe_failed_reported = true;
                    report = Some((
                        "probe_failed",
                        json!({"failures": now.probe_failures, "reason": reason}),
                    ));
                }
            }
        }
        failures = now.probe_failures;
    });
    let write = crate::lock(&manager.snapshots).observe(&world, Instant::now(), |snapshot| {
        snapshot.ready = result.is_ok();
        snapshot.consecutive_probe_failures = i64::from(failures);
        snapshot.last_probe_at = Some(crate::db::now());
        if let Some((event, _)) = &report {
            snapshot.last_event = Some(event.to_string());
        }
    });
    if let Some((event, details)) = report {
        manager.emit(&world, event, details).await;
    }
    write
}

/// The inspect channel.
pub async fn inspect_worker(manager: Arc<Manager>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(manager.config.inspect_interval_ms);
    let mut clients = Clients::default();
    while tick(&mut stop, period).await {
        pass(&manager, &mut clients, |world, _, client| {
            inspect_one(&manager, world, client)
        })
        .await;
    }
}

/// Inspects one node's status; returns its snapshot when it is to be
/// written.
async fn inspect_one(manager: &Arc<Manager>, world: String, client: Client) -> Option<Snapshot> {
    let status = client.status().await.ok()?;
    let mut events = Vec::new();
    // A node needs a few seconds of ticks before its rate means anything.
    let warm = status.uptime_ms >= 5_000;
    let degraded = warm && status.achieved_tick_rate_hz < 0.9 * status.tick_rate_hz;
    manager.update_supervised(&world, |now| {
        if degraded && !now.degraded_reported {
            now.degraded_reported = true;
            events.push((
                "tick_rate_degraded",
                json!({"tick_rate_hz": status.tick_rate_hz,
                       "achieved_tick_rate_hz": status.achieved_tick_rate_hz}),
            ));
        } else if !degraded && warm {
            now.degraded_reported = false;
        }
        if let Some(incident) = &status.incident
            && !now.incident_reported
        {
            now.incident_reported = true;
            events.push((
                "incident",
                serde_json::to_value(incident).unwrap_or_default(),
            ));
        }
    });
    let write = crate::lock(&manager.snapshots).observe(&world, Instant::now(), |snapshot| {
        snapshot.head_tick = Some(status.head_tick as i64);
        snapshot.state_root = Some(status.state_root.to_hex());
        snapshot.continuity_root = Some(status.continuity_root.to_hex());
        snapshot.tick_rate_hz = Some(status.tick_rate_hz);
        snapshot.achieved_tick_rate_hz = Some(status.achieved_tick_rate_hz);
        snapshot.ready = status.ready;
        snapshot.last_probe_at = Some(crate::db::now());
        if let Some((event, _)) = events.last() {
            snapshot.last_event = Some(event.to_string());
        }
    });
    for (event, details) in events {
        manager.emit(&world, event, details).await;
    }
    write
}

/// The periodic reconciler.
pub async fn reconcile_worker(manager: Arc<Manager>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(manager.config.reconcile_interval_ms);
    let soon = Duration::from_millis(manager.config.probe_interval_ms).min(interval);
    // A node found running but not ready yet (recovering) is looked at
    // again soon rather than at the next interval.
    let mut period = match manager.reconcile_pending.load(Ordering::Relaxed) {
        true => soon,
        false => interval,
    };
    while tick(&mut stop, period).await {
        let result = reconcile(&manager).await;
        period = match &result {
            Ok(drift) if drift.pending > 0 => soon,
            _ => interval,
        };
        match result {
            Ok(drift) if drift.total() > 0 => tracing::info!(
                adopted = drift.adopted,
                disposed = drift.disposed,
                observed_exited = drift.observed_exited,
                "reconcile pass corrected drift"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reconcile pass failed"),
        }
    }
}

/// What one reconcile pass corrected.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drift {
    /// Nodes adopted.
    pub adopted: u32,
    /// Records disposed of.
    pub disposed: u32,
    /// Records whose node was seen exited.
    pub observed_exited: u32,
    /// Nodes running but not ready yet: the next pass comes soon.
    pub pending: u32,
}

impl Drift {
    fn total(&self) -> u32 {
        self.adopted + self.disposed + self.observed_exited
    }
}

/// One reconcile pass.
pub async fn reconcile(manager: &Arc<Manager>) -> Result<Drift, DbError> {
    let mut drift = Drift::default();
    let supervised = manager.supervised();
    // Adopt: a node running a world of this root that is not supervised.
    let worlds_dir = manager.root.join("worlds");
    let mut names: Vec<String> = std::fs::read_dir(&worlds_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for name in names {
        if supervised.contains_key(&name) {
            continue;
        }
        let Ok(id) = WorldId::new(&name) else {
            continue;
        };
        let Ok(Some(node)) = manager.node_of(&id) else {
            continue;
        };
        // Over https:// for a node serving TLS, trusting the certificate
        // it recorded (as the CLI does).
        let Some(endpoint) = node.url() else {
            drift.pending += 1;
            continue;
        };
        let ready = match node_client(&endpoint, id.clone(), node.tls_cert.as_deref()) {
            Ok(client) => client.readyz().await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(reason) = ready {
            tracing::debug!(world = %id, %reason, "a node of this root is not ready yet");
            drift.pending += 1;
            continue;
        }
        adopt(manager, &id, node.pid, endpoint, node.tls_cert).await?;
        drift.adopted += 1;
    }
    // Dispose or observed_exited: an active record whose node is gone.
    let supervised = manager.supervised();
    for record in manager.db.records().await? {
        if !matches!(record.status.as_str(), "running" | "starting" | "stopping") {
            continue;
        }
        if supervised.contains_key(&record.world) {
            continue;
        }
        let Ok(id) = WorldId::new(&record.world) else {
            continue;
        };
        if manager.node_of(&id).ok().flatten().is_some() {
            // Running but not ready (recovering): the next pass looks again.
            drift.pending += 1;
            continue;
        }
        let dir = WorldDir::new(&manager.root, &id);
        match world_exists(&dir) {
            true => {
                observed_exited(manager, record, &dir).await?;
                drift.observed_exited += 1;
            }
            false => {
                dispose(manager, record).await?;
                drift.disposed += 1;
            }
        }
    }
    manager
        .reconcile_pending
        .store(drift.pending > 0, Ordering::Relaxed);
    Ok(drift)
}

async fn reconcile_row(
    manager: &Manager,
    world: &str,
    kind: &str,
    details: serde_json::Value,
) -> Result<(), DbError> {
    if let Some(id) = manager
        .db
        .begin_operation(world, kind, Source::Reconcile.as_str(), None, &details)
        .await?
    {
        manager
            .db
            .finish_operation(id, "ok", None, &json!({}))
            .await?;
    }
    manager
        .metrics
        .operation(kind, "ok", Duration::from_millis(0));
    Ok(())
}

async fn adopt(
    manager: &Arc<Manager>,
    id: &WorldId,
    pid: u32,
    endpoint: String,
    tls_cert: Option<std::path::PathBuf>,
) -> Result<(), DbError> {
    let world = id.as_str().to_string();
    let existing = manager.db.record(&world).await?;
    let dir = WorldDir::new(&manager.root, id);
    let package = everarcade_world::bound_package(&dir).ok();
    let now = crate::db::now();
    let record = Record {
        world: world.clone(),
        status: "running".into(),
        pid: Some(i64::from(pid)),
        engine_endpoint: Some(endpoint.clone()),
        package_path: existing.as_ref().and_then(|r| r.package_path.clone()),
        package_root: package.as_ref().map(|p| p.root.to_hex()),
        package_version: package.as_ref().map(|p| p.manifest.version.to_string()),
        restart_policy: existing
            .as_ref()
            .map_or(manager.config.restart_policy.clone(), |r| {
                r.restart_policy.clone()
            }),
        // A node an earlier manager started stays "ours"; one an operator
        // started by hand is adopted, never started by us.
        started_by_manager: existing
            .as_ref()
            .is_some_and(|r| r.started_by_manager && r.pid == Some(i64::from(pid))),
        restart_count: existing.as_ref().map_or(0, |r| r.restart_count),
        last_error: None,
        created_at: now.clone(),
        updated_at: now,
        started_at: existing.as_ref().and_then(|r| r.started_at.clone()),
        stopped_at: existing.as_ref().and_then(|r| r.stopped_at.clone()),
    };
    manager.db.put_record(&record).await?;
    manager.supervise(
        &world,
        Supervised {
            pid,
            endpoint: endpoint.clone(),
            tls_cert,
            child: false,
            stopping: false,
            probe_failures: 0,
            probe_failed_reported: false,
            degraded_reported: false,
            incident_reported: false,
        },
    );
    manager.metrics.drift("adopt");
    reconcile_row(
        manager,
        &world,
        "reconcile_adopt",
        json!({"pid": pid, "engine_endpoint": endpoint,
               "previous_status": existing.map(|r| r.status)}),
    )
    .await?;
    manager
        .emit(
            &world,
            "adopted",
            json!({"pid": pid, "engine_endpoint": endpoint}),
        )
        .await;
    Ok(())
}

async fn observed_exited(
    manager: &Arc<Manager>,
    mut record: Record,
    dir: &WorldDir,
) -> Result<(), DbError> {
    let status: Option<StatusFile> = read_json(&DiskStorage, &dir.status()).ok();
    let clean = status.as_ref().is_some_and(|s| s.state == "stopped");
    let previous = std::mem::replace(
        &mut record.status,
        match clean {
            true => "stopped".into(),
            false => "failed".into(),
        },
    );
    record.last_error = (!clean).then(|| "process_exited: observed by the reconciler".into());
    record.stopped_at = Some(crate::db::now());
    let world = record.world.clone();
    let pid = record.pid;
    manager.db.put_record(&record).await?;
    manager.metrics.drift("observed_exited");
    reconcile_row(
        manager,
        &world,
        "reconcile_observed_exited",
        json!({"pid": pid, "previous_status": previous, "status": record.status}),
    )
    .await?;
    manager
        .emit(
            &world,
            "process_exited",
            json!({"pid": pid, "observed_by": "reconciler", "clean": clean}),
        )
        .await;
    Ok(())
}

async fn dispose(manager: &Arc<Manager>, mut record: Record) -> Result<(), DbError> {
    let previous = std::mem::replace(&mut record.status, "removed".into());
    let world = record.world.clone();
    manager.db.put_record(&record).await?;
    manager.metrics.drift("dispose");
    reconcile_row(
        manager,
        &world,
        "reconcile_dispose",
        json!({"pid": record.pid, "previous_status": previous}),
    )
    .await?;
    manager
        .emit(&world, "disappeared", json!({"pid": record.pid}))
        .await;
    Ok(())
}
