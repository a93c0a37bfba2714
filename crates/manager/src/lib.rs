//! The runtime manager: many world nodes on one host and one runtime root,
//! each the existing `run` in its own child process, behind a lifecycle
//! REST API and Redis job streams, with a control-plane database, health
//! through three channels and a reconciler (docs/MANAGER.md).
//!
//! It is responsible for which nodes run, on which address, and for the
//! record of what it did and saw. It is not responsible for a world's
//! state, which changes only through its node: it starts, stops and
//! patches nodes through `everarcade_node::launch` and the world library,
//! exactly as the command line does.
//!
//! Architecture invariants:
//! - the database records what the manager did and saw, never world state;
//! - one manager per runtime root (`<root>/manager.lock`);
//! - the reconciler never stops or removes a node it did not start;
//! - every operation on a world holds that world's lease, so two never
//!   interleave;
//! - startup is ordered and fails fast, before any listener opens.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod api;
pub mod client;
pub mod config;
pub mod db;
pub mod health;
pub mod metrics;
pub mod ops;
pub mod snapshots;
pub mod streams;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use everarcade_store::{StoreError, WorldLock};
use tokio::sync::{broadcast, mpsc};

pub use config::{ManagerConfig, RestartPolicy};
use db::{Db, DbError, HealthEvent, Snapshot};
use metrics::Metrics;
use snapshots::Snapshots;
use streams::Redis;

/// Why the manager could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The database failed at startup.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Redis failed at startup.
    #[error("redis: {0}")]
    Redis(String),
    /// The runtime root is unusable.
    #[error("runtime root {path}: {reason}")]
    Root {
        /// The root.
        path: String,
        /// Why.
        reason: String,
    },
    /// Another manager runs on this root.
    #[error("another manager (pid {pid}) manages {root}; stop it first")]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
        /// The root.
        root: String,
    },
    /// The listener could not be bound.
    #[error("listener {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The initial reconcile failed.
    #[error("reconciler initial pass: {0}")]
    Reconcile(String),
}

impl ManagerError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ManagerError::Config(_) => "invalid_config",
            ManagerError::Database(error) => error.code(),
            ManagerError::Redis(_) => "redis_unavailable",
            ManagerError::Root { .. } => "runtime_root",
            ManagerError::AlreadyRunning { .. } => "manager_running",
            ManagerError::Listen { .. } => "listen_failed",
            ManagerError::Reconcile(_) => "reconcile_failed",
        }
    }
}

/// A node the manager supervises now.
#[derive(Clone, Debug)]
pub struct Supervised {
    /// Its pid.
    pub pid: u32,
    /// `http://127.0.0.1:<port>`, or `https://…` for a node serving TLS.
    pub endpoint: String,
    /// The certificate a TLS node recorded that it serves (trusted to
    /// reach it, as the CLI does).
    pub tls_cert: Option<PathBuf>,
    /// Whether it is this process's child (its exit is observed by
    /// `wait`); an adopted node is watched through its world lock.
    pub child: bool,
    /// Whether an operation is stopping it (its exit is expected).
    pub stopping: bool,
    /// Failed probes in a row.
    pub probe_failures: u32,
    /// Whether `probe_failed` was reported for this streak.
    pub probe_failed_reported: bool,
    /// Whether `tick_rate_degraded` was reported for this streak.
    pub degraded_reported: bool,
    /// Whether `incident` was reported.
    pub incident_reported: bool,
}

/// A child's exit, from its waiter thread or the adopted-node watch.
#[derive(Debug)]
pub struct Exit {
    /// The world.
    pub world: String,
    /// The pid that exited.
    pub pid: u32,
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
}

/// The manager, shared by its listener and workers.
pub struct Manager {
    /// The runtime root.
    pub root: PathBuf,
    /// The configuration.
    pub config: ManagerConfig,
    /// The database.
    pub db: Db,
    /// Redis, when configured.
    pub redis: Option<Redis>,
    /// The bearer token of mutating routes.
    pub token: String,
    /// The `everarcade-runtime` binary worlds run under.
    pub binary: PathBuf,
    /// This manager's lease holder name.
    pub holder: String,
    /// Metrics.
    pub metrics: Metrics,
    /// The nodes supervised now, by world.
    pub worlds: Mutex<BTreeMap<String, Supervised>>,
    /// Health events as they happen (the SSE stream).
    pub events: broadcast::Sender<HealthEvent>,
    /// Where child waiters report exits.
    pub exits: mpsc::UnboundedSender<Exit>,
    /// Restart attempts under `on-failure`, by world.
    pub attempts: Mutex<BTreeMap<String, u32>>,
    /// Whether the last reconcile pass found nodes running but not ready.
    pub reconcile_pending: AtomicBool,
    /// The latest health of each world, written when it changes.
    pub snapshots: Mutex<Snapshots>,
    _lock: WorldLock,
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Manager {
    /// The supervised nodes now.
    pub fn supervised(&self) -> BTreeMap<String, Supervised> {
        lock(&self.worlds).clone()
    }

    /// Changes the supervised entry of `world`, if any.
    pub fn update_supervised(&self, world: &str, change: impl FnOnce(&mut Supervised)) {
        if let Some(entry) = lock(&self.worlds).get_mut(world) {
            change(entry);
        }
    }

    fn supervise(&self, world: &str, entry: Supervised) {
        lock(&self.worlds).insert(world.to_string(), entry);
    }

    fn unsupervise(&self, world: &str, pid: u32) -> Option<Supervised> {
        let mut worlds = lock(&self.worlds);
        match worlds.get(world) {
            Some(entry) if entry.pid == pid => worlds.remove(world),
            _ => None,
        }
    }

    /// The latest health snapshot of `world`: this manager's last
    /// observation, else the table's.
    pub async fn latest_snapshot(&self, world: &str) -> Option<Snapshot> {
        let held = lock(&self.snapshots).latest(world);
        match held {
            Some(snapshot) => Some(snapshot),
            None => self.db.snapshot(world).await.ok().flatten(),
        }
    }

    /// Writes the snapshots one worker pass made due, in one transaction;
    /// on failure each is written again at its world's next observation.
    pub async fn write_snapshots(&self, snapshots: Vec<Snapshot>) {
        if let Err(error) = self.db.put_snapshots(&snapshots).await {
            tracing::warn!(%error, worlds = snapshots.len(), "health snapshots not written");
            lock(&self.snapshots).unwritten(&snapshots);
        }
    }

    /// Records a health event: the database, the SSE stream, Redis.
    pub async fn emit(&self, world: &str, event_type: &str, details: serde_json::Value) {
        self.metrics.event(event_type);
        match self.db.insert_event(world, event_type, &details).await {
            Ok(event) => {
                if let Some(redis) = &self.redis
                    && let Err(error) = redis.publish_event(&self.config, &event).await
                {
                    tracing::warn!(%error, world, event_type, "health event not published to redis");
                }
                let _ = self.events.send(event);
            }
            Err(error) => tracing::error!(%error, world, event_type, "health event not recorded"),
        }
        tracing::info!(world, event_type, %details, "health event");
    }
}

/// Reads the admin token of the root (`<root>/admin.token`), creating it
/// (0600, 32 random bytes as hex) when absent, as the node does.
fn root_token(root: &Path) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = root.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| e.to_string())?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{}: mode {:o} lets others read it; run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ));
            }
            let token = text.trim().to_string();
            if token.len() < 16 {
                return Err(format!("{}: shorter than 16 characters", path.display()));
            }
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut random = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut file| file.read_exact(&mut random))
                .map_err(|e| format!("reading /dev/urandom: {e}"))?;
            let token = hex::encode(random);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(token)
        }
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Checks the runtime root and takes `<root>/manager.lock`.
fn check_root(root: &Path) -> Result<WorldLock, ManagerError> {
    let fail = |reason: String| ManagerError::Root {
        path: root.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(root.join("worlds")).map_err(|e| fail(e.to_string()))?;
    let probe = root.join(".manager-write-check");
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    WorldLock::acquire(&root.join("manager.lock")).map_err(|error| match error {
        StoreError::Locked { pid, .. } => ManagerError::AlreadyRunning {
            pid,
            root: root.display().to_string(),
        },
        other => fail(other.to_string()),
    })
}

/// Runs the manager until `shutdown` resolves: the startup sequence of
/// docs/MANAGER.md (each step logged, any failure returned before the
/// listener opens), then the listener and workers; then a graceful stop
/// within `shutdown_timeout_ms`. World nodes keep running across a manager
/// restart (the next start adopts them).
pub async fn run(
    root: PathBuf,
    config: ManagerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ManagerError> {
    config
        .validate()
        .map_err(|e| ManagerError::Config(e.to_string()))?;
    let url = config.database_url_for(&root);
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&root).map_err(|e| ManagerError::Root {
            path: root.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    // 1. The database opens and migrations apply.
    let schema = Some(config.database_schema.as_str()).filter(|s| !s.is_empty());
    let db = Db::connect(&url, schema).await?;
    let applied = db.migrate().await?;
    tracing::info!(?applied, backend = ?db.backend(), "migrations applied");
    // 2. A database round trip.
    db.ping().await?;
    tracing::info!("database ping ok");
    // 3. Redis, when configured.
    let redis = match config.redis_url.is_empty() {
        true => None,
        false => {
            let redis = Redis::connect(&config.redis_url)
                .await
                .map_err(|e| ManagerError::Redis(e.to_string()))?;
            redis
                .ping()
                .await
                .map_err(|e| ManagerError::Redis(e.to_string()))?;
            tracing::info!("redis ping ok");
            Some(redis)
        }
    };
    // 4. The runtime root: writable, ours alone, its token.
    let manager_lock = check_root(&root)?;
    let token = match config.admin_token.is_empty() {
        false => config.admin_token.clone(),
        true => root_token(&root).map_err(|reason| ManagerError::Root {
            path: root.display().to_string(),
            reason,
        })?,
    };
    let binary = config
        .node_binary()
        .map_err(|e| ManagerError::Config(format!("finding the node binary: {e}")))?;
    if !binary.is_file() {
        return Err(ManagerError::Config(format!(
            "manager.node_binary {} is not a file",
            binary.display()
        )));
    }
    db.clear_leases().await?;
    if let Some(redis) = &redis {
        redis
            .clear_leases(&config)
            .await
            .map_err(|e| ManagerError::Redis(e.to_string()))?;
    }
    tracing::info!(root = %root.display(), "runtime root ok");
    // 5. The listener.
    let listener = tokio::net::TcpListener::bind(&config.http_addr)
        .await
        .map_err(|source| ManagerError::Listen {
            addr: config.http_addr.clone(),
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| ManagerError::Listen {
            addr: config.http_addr.clone(),
            source,
        })?;
    tracing::info!(%address, "internal http listening");
    let (exits, exit_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(1024);
    let snapshots = Snapshots::new(
        Duration::from_millis(config.snapshot_heartbeat_ms),
        config.probe_failure_threshold,
    );
    let manager = Arc::new(Manager {
        holder: format!("manager-{}", std::process::id()),
        root,
        config,
        db,
        redis,
        token,
        binary,
        metrics: Metrics::default(),
        worlds: Mutex::new(BTreeMap::new()),
        events,
        exits,
        attempts: Mutex::new(BTreeMap::new()),
        reconcile_pending: AtomicBool::new(false),
        snapshots: Mutex::new(snapshots),
        _lock: manager_lock,
    });
    // 6. The reconciler, once, before any worker.
    health::interrupted_operations(&manager)
        .await
        .map_err(|e| ManagerError::Reconcile(e.to_string()))?;
    let drift = health::reconcile(&manager)
        .await
        .map_err(|e| ManagerError::Reconcile(e.to_string()))?;
    tracing::info!(
        adopted = drift.adopted,
        disposed = drift.disposed,
        observed_exited = drift.observed_exited,
        "reconciler initial pass completed"
    );
    // 7. The workers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    workers.push(tokio::spawn(health::exit_worker(
        manager.clone(),
        exit_rx,
        stop_rx.clone(),
    )));
    tracing::info!(worker = "exits", "worker started");
    workers.push(tokio::spawn(health::probe_worker(
        manager.clone(),
        stop_rx.clone(),
    )));
    tracing::info!(worker = "probe", "worker started");
    workers.push(tokio::spawn(health::inspect_worker(
        manager.clone(),
        stop_rx.clone(),
    )));
    tracing::info!(worker = "inspect", "worker started");
    workers.push(tokio::spawn(health::reconcile_worker(
        manager.clone(),
        stop_rx.clone(),
    )));
    tracing::info!(worker = "reconcile", "worker started");
    if manager.redis.is_some() {
        for stream in [
            manager.config.start_jobs_stream.clone(),
            manager.config.stop_jobs_stream.clone(),
        ] {
            workers.push(tokio::spawn(streams::intake_worker(
                manager.clone(),
                stream.clone(),
                stop_rx.clone(),
            )));
            tracing::info!(worker = "intake", %stream, "worker started");
        }
    }
    let app = api::router(manager.clone());
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped(&mut http_stop).await })
            .await
    });
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let budget = Duration::from_millis(manager.config.shutdown_timeout_ms);
    if tokio::time::timeout(budget, server).await.is_err() {
        tracing::warn!("the listener did not drain within manager.shutdown_timeout_ms");
    } else {
        tracing::info!("internal http closed");
    }
    for worker in workers {
        match tokio::time::timeout(budget, worker).await {
            Ok(_) => {}
            Err(_) => tracing::warn!("a worker did not stop within manager.shutdown_timeout_ms"),
        }
    }
    tracing::info!("workers stopped");
    let unwritten = lock(&manager.snapshots).forget(|_| false);
    manager.write_snapshots(unwritten).await;
    manager.db.close().await;
    tracing::info!("manager stopped; world nodes keep running");
    Ok(())
}
