//! The node's lifetime: a fixed startup order that fails fast before any
//! listener opens, serving, and a graceful stop with a deadline.
//!
//! Startup order (each step logs one line; docs/OPERATIONS.md lists them):
//! 1. `configuration validated`
//! 2. `world lock acquired` (skipped under amnesia)
//! 3. `module compiled`
//! 4. `world recovered` or `world created` (the package binding is checked
//!    before, or made at creation)
//! 5. `operator key ready` (its public key; created on the first start)
//! 6. `admin token ready`
//! 7. `tls configured` (only with a certificate and key)
//! 8. `listening`
//! 9. `tick loop started`
//! 10. `ready`
//!
//! Steps 4 and 5 are the world's front door
//! ([`everarcade_world::FrontDoor::open`], with the lock of step 2 already
//! held): the incident refusal, the binding, the runtime-version check,
//! recovery or creation and the operator key; each step it reports becomes
//! the log line it always was.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use everarcade_engine::Engine;
use everarcade_package::Package;
use everarcade_protocol::WorldId;
use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, SimStorage, Storage, WorldDir, WorldLock, lock_world};
use everarcade_world::replay::StartedFrom;
use everarcade_world::{DurableWorld, Entry, FrontDoor, Lock, Step, WorldConfig, WorldError};

use crate::actor::{self, ActorConfig, StopReport, WorldHandle};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::http::connection::{ConnectionLimits, Serving};
use crate::http::plane::ReadPlane;
use crate::http::{AppState, Facts, router};
use crate::registry::Registration;

/// Bytes of randomness in a generated admin token.
const ADMIN_TOKEN_BYTES: usize = 32;

/// What to run.
pub struct NodeSpec {
    /// The runtime root.
    pub runtime_root: PathBuf,
    /// The world.
    pub world: WorldId,
    /// The package given on the command line.
    pub package: Package,
    /// The effective configuration.
    pub config: NodeConfig,
}

/// A node that passed every startup step but listening.
pub struct Node {
    spec: NodeSpec,
    world: DurableWorld,
    keys: Arc<OperatorKeys>,
    audit: crate::audit::AuditTarget,
    checkpoint_tick: Option<u64>,
    admin_token: Option<String>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The world lock, or under amnesia the node registry's entry.
    _lock: Option<WorldLock>,
    registration: Option<Registration>,
    started: Instant,
}

/// How a node ended.
#[derive(Debug)]
pub struct NodeExit {
    /// What the graceful stop did.
    pub stop: StopReport,
    /// The address it served.
    pub address: SocketAddr,
    /// Whether it kept the world in memory only (its checkpoints are gone).
    pub amnesia: bool,
}

impl Node {
    /// Steps 1–7: everything before the listener. Any failure returns here,
    /// before a socket is opened.
    pub fn prepare(spec: NodeSpec) -> Result<Node, NodeError> {
        let started = Instant::now();
        let config = &spec.config;
        config
            .validate()
            .map_err(|error| NodeError::Config(error.to_string()))?;
        tracing::info!(
            addr = %config.http.addr,
            amnesia = config.amnesia,
            tls = config.tls(),
            world = %spec.world,
            package_root = %spec.package.root,
            "configuration validated"
        );
        let dir = WorldDir::new(&spec.runtime_root, &spec.world);
        let registration = if config.amnesia {
            let registration = Registration::acquire(&spec.runtime_root, &spec.world)
                .map_err(WorldError::Store)?;
            tracing::info!(
                registry = %crate::registry::paths(&spec.runtime_root, &spec.world).lock.display(),
                "amnesia: no lock and no files under the runtime root; the world lives in memory only"
            );
            Some(registration)
        } else {
            None
        };
        // The lock before compiling: a second node fails fast. The front
        // door below checks it is held rather than taking it again.
        let lock = if config.amnesia {
            None
        } else {
            let lock = lock_world(&dir).map_err(WorldError::Store)?;
            if let Some(pid) = lock.stale_pid() {
                tracing::warn!(pid, "took over a stale world lock left by a dead process");
            }
            tracing::info!(path = %dir.lock().display(), pid = std::process::id(), "world lock acquired");
            Some(lock)
        };
        let engine = Arc::new(Engine::new().map_err(|e| NodeError::World(WorldError::Engine(e)))?);
        let compiled = engine
            .compile(&spec.package)
            .map_err(|e| NodeError::World(WorldError::Engine(e)))?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "module compiled"
        );
        let storage: Arc<dyn Storage> = if config.amnesia {
            Arc::new(SimStorage::new())
        } else {
            Arc::new(DiskStorage)
        };
        let door = FrontDoor {
            storage: storage.clone(),
            dir: dir.clone(),
            id: spec.world.clone(),
            engine,
            compiled,
        };
        let opened = door
            .open_observed(node_entry(config), &mut log_step())
            .map_err(|error| match error {
                WorldError::Incident { path, kind, tick } => NodeError::Incident {
                    path: path.display().to_string(),
                    kind,
                    tick,
                },
                other => NodeError::World(other),
            })?;
        let world = opened.world;
        let keys = opened
            .keys
            .expect("the node's entry loads or creates the key");
        let checkpoint_tick = list_checkpoints(&*storage, &dir)
            .map_err(WorldError::Store)?
            .checkpoints
            .last()
            .map(|(tick, _)| *tick);
        let admin_token = admin_token(config, &dir)?;
        for sink in crate::usage::sink_configs(&config.usage) {
            everarcade_usage::Sink::new(&sink)
                .map_err(|error| NodeError::Config(error.to_string()))?;
        }
        let tls = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = crate::tls::server_config(cert, key)
                    .map_err(|error| NodeError::Tls(error.to_string()))?;
                tracing::info!(cert = %cert.display(), "tls configured");
                Some(tls)
            }
            _ => None,
        };
        let audit = crate::audit::AuditTarget {
            storage: door.storage,
            dir: door.dir,
            id: door.id,
            engine: door.engine,
            compiled: door.compiled,
        };
        Ok(Node {
            spec,
            world,
            keys,
            audit,
            checkpoint_tick,
            admin_token,
            tls,
            _lock: lock,
            registration,
            started,
        })
    }

    /// Steps 8–10, then serves until `shutdown` resolves; then stops
    /// gracefully within the configured deadline.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<NodeExit, NodeError> {
        let config = self.spec.config.clone();
        let addr = config.http.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| NodeError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: addr.to_string(),
            source,
        })?;
        let read_plane = match config.http.read_plane_threads {
            0 => None,
            threads => Some(
                ReadPlane::start(threads)
                    .map_err(|source| NodeError::ReadPlane { threads, source })?,
            ),
        };
        tracing::info!(
            addr = %address,
            tls = config.tls(),
            read_plane_threads = config.http.read_plane_threads,
            read_plane_nice = read_plane.as_ref().map(ReadPlane::nice),
            "listening"
        );
        if let Some(registration) = &self.registration {
            registration
                .publish(vec![address.to_string()], tls_cert_path(&config))
                .map_err(WorldError::Store)?;
        }
        let registration = self.registration;
        let tick_rate_hz = self.world.world().compiled().package.manifest.tick_rate_hz;
        let facts = Facts {
            world: self.spec.world.clone(),
            package_root: self.spec.package.root,
            genesis_root: self.world.genesis().genesis_root,
            tick_rate_hz,
            address: address.to_string(),
            pid: std::process::id(),
            started: self.started,
            amnesia: config.amnesia,
            tls: config.tls(),
            disk_root: (!config.amnesia).then(|| self.spec.runtime_root.clone()),
            world_dir: self.audit.dir.clone(),
            disk_free_bytes_min: config.world.disk_free_bytes_min,
            operator: self.keys.clone(),
        };
        let signature_rule = self.world.world().signature_rule();
        let (handle, thread) = actor::spawn(
            self.world,
            self.checkpoint_tick,
            ActorConfig {
                tick_rate_hz,
                checkpoint_interval_ticks: config.world.checkpoint_interval_ticks,
                addresses: vec![address.to_string()],
                tls_cert: tls_cert_path(&config),
                amnesia: config.amnesia,
                admission_open: true,
                role: match &config.federation.follow {
                    Some(url) => everarcade_federation::Role::Follower {
                        authority: url.trim_end_matches('/').to_string(),
                    },
                    None => everarcade_federation::Role::Authority,
                },
                ack_replicated: config.federation.ack == crate::config::AckPolicy::Replicated,
                ack_followers: config.federation.ack_followers as usize,
            },
        )
        .map_err(|error| NodeError::Actor(error.to_string()))?;
        match &config.federation.follow {
            Some(url) => {
                tracing::info!(authority = %url, "follower: replicating the authority's records; admitting none")
            }
            None => tracing::info!(tick_rate_hz, ack = ?config.federation.ack, "tick loop started"),
        }
        // The follower task runs on every node: a node promoted, left or
        // rejoined changes role without a restart.
        let follower_name = format!("{}-{}", address.port(), std::process::id());
        let jetstream = crate::jetstream::Settings::url(&config.federation).map(|url| {
            crate::jetstream::Settings::new(
                &config.federation,
                url,
                &self.spec.world,
                &self.spec.runtime_root,
            )
        });
        let trust = match &config.federation.follow_ca {
            Some(path) => Some(
                everarcade_client::Trust::from_pem_file(path).map_err(|error| {
                    NodeError::Config(format!("federation.follow_ca {}: {error}", path.display()))
                })?,
            ),
            None => None,
        };
        let _follower = crate::follow::spawn(
            handle.clone(),
            crate::follow::Settings {
                world: self.spec.world.clone(),
                name: follower_name,
                jetstream: jetstream.clone(),
                trust,
                catch_up_ticks: config.federation.catch_up_ticks,
                signature_rule,
            },
        );
        let _jetstream = jetstream.map(|settings| {
            let scheme = if config.tls() { "https" } else { "http" };
            crate::jetstream::spawn(
                handle.clone(),
                settings,
                format!("{scheme}://{address}"),
                self.audit.dir.clone(),
                config.federation.replicate.is_some(),
            )
        });
        let _usage = match config.amnesia {
            true => {
                tracing::info!("usage reports off: amnesia writes nothing to disk");
                None
            }
            false => crate::usage::spawn(
                &config.usage,
                crate::usage::UsageWorld {
                    storage: self.audit.storage.clone(),
                    dir: self.audit.dir.clone(),
                    id: self.spec.world.clone(),
                    keys: self.keys.clone(),
                    package: (
                        self.spec.package.root,
                        self.spec.package.manifest.version.to_string(),
                    ),
                    live: handle.live.clone(),
                },
            )
            .map_err(|error| NodeError::Config(error.to_string()))?,
        };
        let auditor = crate::audit::spawn(
            self.audit,
            handle.clone(),
            tokio::runtime::Handle::current(),
        )
        .map_err(|error| NodeError::Actor(error.to_string()))?;
        let state = AppState::new(handle.clone(), facts, &config.http, self.admin_token)
            .with_audit(auditor);
        // The pages (operator console, spectator page, the package's viewer)
        // beside the API; they read only the documented API.
        let pages =
            everarcade_console::node_router(everarcade_console::Viewer::load(&self.spec.package));
        let app = router(state).merge(pages);
        let (close, closed) = tokio::sync::oneshot::channel::<()>();
        let serving = Serving {
            limits: ConnectionLimits::from_config(&config.http),
            live: Some(handle.live.clone()),
            read_plane: read_plane.as_ref().map(ReadPlane::handle),
        };
        let server = tokio::spawn(serve_http(listener, app, self.tls, serving, closed));
        tracing::info!(
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "ready"
        );
        shutdown.await;
        let deadline = Duration::from_millis(config.world.shutdown_deadline_ms);
        let exit = stop(handle, deadline, close, server, address, config.amnesia).await;
        // Every connection has closed (or the deadline passed): the read
        // plane's threads exit.
        if let Some(read_plane) = read_plane {
            read_plane.shutdown().await;
        }
        let _ = thread.join();
        // Only now may `status` stop seeing this node.
        drop(registration);
        exit
    }
}

/// The TLS certificate as `status.json` records it: absolute, so a tool
/// started elsewhere finds it.
fn tls_cert_path(config: &NodeConfig) -> Option<String> {
    let cert = config.http.tls_cert.as_ref()?;
    let absolute = std::path::absolute(cert).unwrap_or_else(|_| cert.clone());
    Some(absolute.display().to_string())
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    serving: Serving,
    closed: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let shutdown = async move {
        let _ = closed.await;
    };
    match tls {
        Some(tls) => crate::tls::serve_tls_with(listener, app, tls, serving, shutdown)
            .await
            .map_err(std::io::Error::other),
        None => crate::http::connection::serve_with(listener, app, serving, shutdown).await,
    }
}

async fn stop(
    handle: WorldHandle,
    deadline: Duration,
    close: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    address: SocketAddr,
    amnesia: bool,
) -> Result<NodeExit, NodeError> {
    let started = Instant::now();
    tracing::info!("stopping: admission closed, finishing the tick");
    let stopped = tokio::time::timeout(deadline, handle.stop()).await;
    let report = match stopped {
        Err(_) => return Err(NodeError::ShutdownDeadline(deadline.as_millis() as u64)),
        Ok(Err(error)) => return Err(NodeError::Actor(error.message)),
        Ok(Ok(report)) => report,
    };
    if amnesia {
        tracing::info!(
            tick = report.tick,
            final_tick_inputs = report.final_tick_inputs,
            "world stopped; amnesia: nothing was written, the world is gone"
        );
    } else {
        tracing::info!(
            tick = report.tick,
            final_tick_inputs = report.final_tick_inputs,
            checkpoint_tick = report.checkpoint.as_ref().map(|c| c.tick),
            "world stopped; status.json says stopped"
        );
    }
    // Ends event streams, then lets in-flight requests finish.
    let _ = handle.live.stopped.send(true);
    let _ = close.send(());
    let left = deadline.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, server).await {
        Err(_) => return Err(NodeError::ShutdownDeadline(deadline.as_millis() as u64)),
        Ok(Ok(Err(source))) => {
            return Err(NodeError::Listen {
                addr: address.to_string(),
                source,
            });
        }
        Ok(_) => {}
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "listener closed; lock released on exit"
    );
    Ok(NodeExit {
        stop: report,
        address,
        amnesia,
    })
}

/// The node's entry through the front door: it holds the lock already
/// (taken before compiling); under amnesia the world is in memory, with no
/// lock, no incidents and no runtime record.
fn node_entry(config: &NodeConfig) -> Entry {
    let world_config = WorldConfig {
        // The actor takes periodic checkpoints itself, to time them.
        checkpoint_interval_ticks: 0,
        checkpoints_retained: config.world.checkpoints_retained,
        ..WorldConfig::default()
    };
    if config.amnesia {
        return Entry {
            lock: Lock::None,
            incidents: false,
            runtime_check: false,
            ..Entry::node(world_config)
        };
    }
    Entry {
        lock: Lock::AlreadyHeld,
        ..Entry::node(world_config)
    }
}

/// The startup log lines of the front door's steps (docs/OPERATIONS.md).
fn log_step() -> impl FnMut(Step<'_>) {
    let mut replay_started = None;
    move |step| match step {
        Step::LockTaken { .. } => {}
        Step::VerifyingForNewRuntime { verified_by } => {
            replay_started = Some(Instant::now());
            tracing::warn!(
                verified_by = %verified_by,
                runtime = everarcade_world::RUNTIME_VERSION,
                "another runtime version verified this lineage: replay-verifying it from genesis before serving"
            );
        }
        Step::RuntimeVerified { ticks } => tracing::info!(
            ticks,
            elapsed_ms =
                replay_started.map_or(0, |started: Instant| started.elapsed().as_millis() as u64),
            "the lineage replays to its recorded roots under this runtime"
        ),
        Step::IncidentRecorded {
            path,
            tick,
            detected_by,
        } => {
            if detected_by == "recovery" {
                tracing::error!(tick, incident = %path.display(), "divergence during recovery; refusing to serve");
            } else {
                tracing::error!(
                    tick,
                    incident = %path.display(),
                    "divergence: this runtime does not reproduce the lineage; refusing to serve"
                );
            }
        }
        Step::Created { genesis_root } => {
            tracing::info!(genesis_root = %genesis_root, "world created")
        }
        Step::Recovered(recovery) => {
            let (from, from_tick, from_path) = match &recovery.started_from {
                StartedFrom::Genesis => ("genesis", None, None),
                StartedFrom::Checkpoint { tick, path } => {
                    ("checkpoint", Some(*tick), Some(path.display().to_string()))
                }
            };
            // An `Option` field is recorded only when present.
            tracing::info!(
                tick = recovery.roots.tick,
                ticks_replayed = recovery.ticks_replayed,
                from,
                from_tick,
                from_path,
                pending_inputs = recovery.pending_inputs,
                continuity_root = %recovery.roots.continuity_root,
                "world recovered; roots match the journal"
            );
        }
        Step::KeyReady {
            public_key,
            created,
        } => tracing::info!(public_key = %public_key, created, "operator key ready"),
    }
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed
/// when this is called (inside the runtime), so call it before the node
/// serves: a signal that arrives as soon as `/readyz` is green stops the
/// node gracefully instead of killing it.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        }
    })
}

/// The configured token, else `<root>/admin.token`, created (0600) if absent.
/// Under amnesia without a configured token the admin API is off.
fn admin_token(config: &NodeConfig, dir: &WorldDir) -> Result<Option<String>, NodeError> {
    if let Some(token) = &config.admin.token {
        tracing::info!(source = "configuration", "admin token ready");
        return Ok(Some(token.clone()));
    }
    if config.amnesia {
        tracing::warn!("admin API off: amnesia mode and no admin.token configured");
        return Ok(None);
    }
    let path = dir.admin_token();
    let token = read_or_create_token(&path).map_err(|reason| NodeError::AdminToken {
        path: path.display().to_string(),
        reason,
    })?;
    tracing::info!(path = %path.display(), "admin token ready");
    Ok(Some(token))
}

fn read_or_create_token(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map_err(|e| e.to_string())?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "mode {:o} lets others read it; run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                ));
            }
            let token = text.trim().to_string();
            if token.len() < 16 {
                return Err("shorter than 16 characters".into());
            }
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut random = [0u8; ADMIN_TOKEN_BYTES];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut random))
                .map_err(|e| format!("reading /dev/urandom: {e}"))?;
            let token = hex::encode(random);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("creating: {e}"))?;
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| format!("writing: {e}"))?;
            Ok(token)
        }
        Err(error) => Err(error.to_string()),
    }
}
