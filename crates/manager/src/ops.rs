//! The lifecycle operations: start, stop, restart, patch, cleanup. Each
//! holds the world's lease, appends one `operation_log` row when it begins
//! and finishes it once, and changes a world only through its node (start
//! and stop through `everarcade_node::launch`) or, for a patch, through the
//! world library's upgrade rule while no node runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use everarcade_engine::Engine;
use everarcade_node::ApiError;
use everarcade_node::launch::{self, LaunchError, LaunchSpec};
use everarcade_package::{Package, PackageError};
use everarcade_protocol::WorldId;
use everarcade_store::keys::OperatorKeys;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, Storage, WorldDir, WorldLock};
use everarcade_world::lineage::UpgradeKind;
use everarcade_world::upgrade::{self, Allow, UpgradeInputs, UpgradeRefusal};
use everarcade_world::{DurableWorld, WorldConfig, WorldError};
use serde_json::json;

use crate::config::RestartPolicy;
use crate::db::{DbError, Record};
use crate::{Exit, Manager, Supervised};

/// Where an operation came from (`operation_log.op_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The REST API.
    AdminRest,
    /// A Redis stream job.
    Stream,
    /// The operator CLI (`fleet`, through the REST API with `X-Op-Source: cli`).
    Cli,
    /// The reconciler.
    Reconcile,
    /// The restart policy.
    Supervisor,
}

impl Source {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AdminRest => "admin_rest",
            Source::Stream => "stream",
            Source::Cli => "cli",
            Source::Reconcile => "reconcile",
            Source::Supervisor => "supervisor",
        }
    }
}

/// An operation's failure: the node's error envelope.
#[derive(Debug)]
pub struct OpError(pub ApiError);

impl OpError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OpError {
        OpError(ApiError::new(status, code, message))
    }

    /// Its code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl From<DbError> for OpError {
    fn from(error: DbError) -> OpError {
        let status = match error.code() {
            // A full disk is not cured by retrying soon: 507, as WebDAV's
            // Insufficient Storage.
            "database_full" => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        OpError::new(status, error.code(), error.to_string())
    }
}

/// Checks that the runtime root takes a page more (written, synced and
/// removed) before a start creates or recovers a world under it:
/// `runtime_root_full` (507) when the disk is full or a quota or file size
/// limit is reached, `runtime_root_unwritable` (503) otherwise.
fn check_root_writable(root: &Path) -> Result<(), OpError> {
    use std::io::Write;
    let probe = root.join(format!(".manager-write-check-{}", std::process::id()));
    let written = std::fs::File::create(&probe)
        .and_then(|mut file| file.write_all(&[0u8; 4096]).and_then(|()| file.sync_all()));
    let _ = std::fs::remove_file(&probe);
    written.map_err(|error| {
        // ENOSPC, EDQUOT, EFBIG.
        let full = matches!(error.raw_os_error(), Some(28 | 122 | 27));
        let (status, code) = match full {
            true => (StatusCode::INSUFFICIENT_STORAGE, "runtime_root_full"),
            false => (StatusCode::SERVICE_UNAVAILABLE, "runtime_root_unwritable"),
        };
        OpError::new(
            status,
            code,
            format!(
                "the runtime root {} cannot be written: {error}; nothing was started",
                root.display()
            ),
        )
    })
}

fn world_error(error: WorldError) -> OpError {
    let status = match &error {
        WorldError::PackageMismatch { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    OpError::new(status, error.code(), error.to_string())
}

fn package_error(error: PackageError, code: Option<&'static str>) -> OpError {
    OpError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code.unwrap_or(error.code()),
        format!("the package: {error}"),
    )
}

/// A validated world id.
pub fn world_id(world: &str) -> Result<WorldId, OpError> {
    WorldId::new(world)
        .map_err(|e| OpError::new(StatusCode::BAD_REQUEST, "invalid_world_id", e.to_string()))
}

fn internal(message: impl std::fmt::Display) -> OpError {
    OpError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        message.to_string(),
    )
}

/// What an operation returns: the record after it and its log row id.
pub struct Done {
    /// The record.
    pub record: Record,
    /// The operation's id.
    pub operation: i64,
}

impl Manager {
    async fn lease(&self, world: &str) -> Result<(), OpError> {
        let ttl = self.config.lease_ttl_ms;
        let taken = match &self.redis {
            Some(redis) => redis
                .acquire_lease(&self.config, world, &self.holder, ttl)
                .await
                .map_err(|e| {
                    OpError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "redis_unavailable",
                        e.to_string(),
                    )
                })?,
            None => self.db.acquire_lease(world, &self.holder, ttl).await?,
        };
        match taken {
            true => Ok(()),
            false => Err(OpError::new(
                StatusCode::CONFLICT,
                "operation_in_progress",
                format!("another operation on world {world} is in progress; try again"),
            )),
        }
    }

    async fn release(&self, world: &str) {
        let result = match &self.redis {
            Some(redis) => redis
                .release_lease(&self.config, world, &self.holder)
                .await
                .map_err(|e| e.to_string()),
            None => self
                .db
                .release_lease(world, &self.holder)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(world, %error, "lease not released; it expires by its TTL");
        }
    }

    /// Runs `body` as operation `kind` on `world`: lease, log row,
    /// latency, outcome. With a `job_id` already logged the body does not
    /// run (`duplicate_job`, 409).
    async fn operate<F, Fut>(
        self: &Arc<Self>,
        world: &str,
        kind: &str,
        source: Source,
        job_id: Option<&str>,
        details: serde_json::Value,
        body: F,
    ) -> Result<Done, OpError>
    where
        F: FnOnce(i64) -> Fut,
        Fut: std::future::Future<Output = Result<(Record, serde_json::Value), OpError>>,
    {
        self.lease(world).await?;
        let begun = self
            .db
            .begin_operation(world, kind, source.as_str(), job_id, &details)
            .await;
        let id = match begun {
            Ok(Some(id)) => id,
            Ok(None) => {
                self.release(world).await;
                return Err(OpError::new(
                    StatusCode::CONFLICT,
                    "duplicate_job",
                    format!("job {} was run already", job_id.unwrap_or_default()),
                ));
            }
            Err(error) => {
                self.release(world).await;
                return Err(error.into());
            }
        };
        let started = Instant::now();
        let result = body(id).await;
        let took = started.elapsed();
        let (outcome, code, extra) = match &result {
            Ok((_, extra)) => ("ok", None, extra.clone()),
            Err(error) => (
                "failed",
                Some(error.code()),
                json!({"error": error.message()}),
            ),
        };
        let mut extra = extra;
        if let Some(map) = extra.as_object_mut() {
            map.insert("duration_ms".into(), json!(took.as_millis() as u64));
        }
        self.metrics.operation(kind, outcome, took);
        let finished = self.db.finish_operation(id, outcome, code, &extra).await;
        self.release(world).await;
        finished?;
        result.map(|(record, _)| Done {
            record,
            operation: id,
        })
    }

    /// The record of `world`, or 404 `unknown_world`.
    pub async fn known(&self, world: &str) -> Result<Record, OpError> {
        self.db.record(world).await?.ok_or_else(|| {
            OpError::new(
                StatusCode::NOT_FOUND,
                "unknown_world",
                format!("the manager has no world {world}"),
            )
        })
    }

    /// The node that runs `world` now, if any.
    pub fn node_of(&self, id: &WorldId) -> Result<Option<launch::RunningNode>, OpError> {
        launch::running_node(&self.root, id)
            .map_err(|e| OpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string()))
    }

    /// `start`: creates the world at genesis or recovers it, in a new
    /// child process on an address the manager allocates; answers once
    /// `/readyz` is green. Without a package, the world's bound copy.
    pub async fn start(
        self: &Arc<Self>,
        world: &str,
        package: Option<PathBuf>,
        policy: Option<RestartPolicy>,
        source: Source,
        job_id: Option<&str>,
    ) -> Result<Done, OpError> {
        let id = world_id(world)?;
        let details = json!({"package": package.as_ref().map(|p| p.display().to_string())});
        let this = self.clone();
        self.operate(world, "start", source, job_id, details, |_| async move {
            this.start_locked(&id, package, policy, false).await
        })
        .await
    }

    /// The body of a start, with the lease held.
    async fn start_locked(
        self: &Arc<Self>,
        id: &WorldId,
        package: Option<PathBuf>,
        policy: Option<RestartPolicy>,
        automatic: bool,
    ) -> Result<(Record, serde_json::Value), OpError> {
        let world = id.as_str().to_string();
        let existing = self.db.record(&world).await?;
        if let Some(node) = self.node_of(id)? {
            return Err(OpError::new(
                StatusCode::CONFLICT,
                "already_running",
                format!("a node (pid {}) already runs world {world}", node.pid),
            ));
        }
        let dir = WorldDir::new(&self.root, id);
        {
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || check_root_writable(&root))
                .await
                .map_err(internal)??;
        }
        let exists = world_exists(&dir);
        let package_path = match package {
            Some(path) => Some(path),
            None if exists => None,
            None => {
                return Err(OpError::new(
                    StatusCode::BAD_REQUEST,
                    "package_required",
                    format!("world {world} does not exist yet: give its package"),
                ));
            }
        };
        let loaded = {
            let path = package_path.clone();
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || -> Result<Package, OpError> {
                let package = match &path {
                    Some(path) => Package::load(path).map_err(|e| package_error(e, None))?,
                    None => everarcade_world::bound_package(&dir).map_err(world_error)?,
                };
                if path.is_some() && world_exists(&dir) {
                    everarcade_world::check_binding(&DiskStorage, &dir, &package)
                        .map_err(world_error)?;
                }
                Ok(package)
            })
            .await
            .map_err(internal)??
        };
        let policy = policy
            .or_else(|| {
                existing
                    .as_ref()
                    .and_then(|r| RestartPolicy::parse(&r.restart_policy))
            })
            .unwrap_or_else(|| self.config.restart_policy());
        let port = free_port().map_err(|e| {
            OpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_free_port",
                e.to_string(),
            )
        })?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let now = crate::db::now();
        let mut record = Record {
            world: world.clone(),
            status: "starting".into(),
            pid: None,
            engine_endpoint: Some(endpoint.clone()),
            package_path: package_path
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                .map(|p| p.display().to_string())
                .or_else(|| existing.as_ref().and_then(|r| r.package_path.clone())),
            package_root: Some(loaded.root.to_hex()),
            package_version: Some(loaded.manifest.version.to_string()),
            restart_policy: policy.as_str().into(),
            started_by_manager: true,
            restart_count: match automatic {
                true => existing.as_ref().map_or(0, |r| r.restart_count) + 1,
                false => 0,
            },
            last_error: None,
            created_at: now.clone(),
            updated_at: now.clone(),
            started_at: Some(now),
            stopped_at: existing.as_ref().and_then(|r| r.stopped_at.clone()),
        };
        self.db.put_record(&record).await?;
        let mut args = vec![
            "run".to_string(),
            self.root.display().to_string(),
            world.clone(),
            match &package_path {
                Some(path) => path.display().to_string(),
                None => "-".into(),
            },
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(self.config.node_args.iter().cloned());
        let spec = LaunchSpec {
            binary: self.binary.clone(),
            args,
            log: dir.node_log(),
        };
        let root = self.root.clone();
        let timeout = Duration::from_millis(self.config.ready_timeout_ms);
        let wait_id = id.clone();
        let launched = tokio::task::spawn_blocking(move || {
            DiskStorage
                .create_dir_all(dir.path())
                .map_err(|source| LaunchError::Io {
                    what: dir.path().display().to_string(),
                    source,
                })?;
            let mut launched = launch::spawn_detached(&spec)?;
            let ready = launch::wait_ready(&mut launched, &root, &wait_id, timeout, |node| {
                let address = node.address.ok_or("no address recorded")?;
                launch::http_readyz(address, Duration::from_secs(2))
                    .map(|()| format!("http://{address}"))
            });
            Ok::<_, LaunchError>((launched, ready))
        })
        .await
        .map_err(internal)?;
        let (launched, ready) = match launched {
            Ok(pair) => pair,
            Err(error) => return self.start_failed(record, error).await,
        };
        let launch::Launched { mut child, pid, .. } = launched;
        let ready = match ready {
            Ok(ready) => ready,
            Err(error) => {
                // Reap it in the background (it was sent SIGTERM on a timeout).
                std::thread::spawn(move || child.wait());
                return self.start_failed(record, error).await;
            }
        };
        // The node listens where it was told; keep what it recorded.
        record.engine_endpoint = Some(ready.url.clone());
        record.pid = Some(i64::from(pid));
        record.status = "running".into();
        self.supervise(
            &world,
            Supervised {
                pid,
                endpoint: ready.url.clone(),
                tls_cert: None,
                child: true,
                stopping: false,
                probe_failures: 0,
                probe_failed_reported: false,
                degraded_reported: false,
                incident_reported: false,
            },
        );
        let exits = self.exits.clone();
        let waiter_world = world.clone();
        std::thread::spawn(move || {
            use std::os::unix::process::ExitStatusExt;
            let status = child.wait().ok();
            let _ = exits.send(Exit {
                world: waiter_world,
                pid,
                code: status.and_then(|s| s.code()),
                signal: status.and_then(|s| s.signal()),
            });
        });
        let record = self.db.put_record(&record).await?;
        self.emit(
            &world,
            "started",
            json!({"pid": pid, "engine_endpoint": ready.url, "ready_ms": ready.elapsed.as_millis() as u64,
                   "package_version": record.package_version}),
        )
        .await;
        let extra = json!({"pid": pid, "engine_endpoint": record.engine_endpoint,
            "package_root": record.package_root, "package_version": record.package_version,
            "ready_ms": ready.elapsed.as_millis() as u64});
        Ok((record, extra))
    }

    async fn start_failed(
        &self,
        mut record: Record,
        error: LaunchError,
    ) -> Result<(Record, serde_json::Value), OpError> {
        let code = error.code();
        record.status = "failed".into();
        record.last_error = Some(format!("{code}: {error}"));
        record.stopped_at = Some(crate::db::now());
        self.db.put_record(&record).await?;
        Err(OpError::new(
            StatusCode::BAD_GATEWAY,
            code,
            error.to_string(),
        ))
    }

    /// `stop`: SIGTERM to the node (admission closes, the tick finishes, a
    /// checkpoint is written, the lock released), waiting up to
    /// `manager.stop_timeout_ms`.
    pub async fn stop(
        self: &Arc<Self>,
        world: &str,
        reason: &str,
        source: Source,
        job_id: Option<&str>,
    ) -> Result<Done, OpError> {
        let id = world_id(world)?;
        self.known(world).await?;
        let this = self.clone();
        let details = json!({"reason": reason});
        self.operate(world, "stop", source, job_id, details, |_| async move {
            this.stop_locked(&id).await
        })
        .await
    }

    async fn stop_locked(&self, id: &WorldId) -> Result<(Record, serde_json::Value), OpError> {
        let world = id.as_str().to_string();
        let mut record = self.known(&world).await?;
        let Some(node) = self.node_of(id)? else {
            return Err(OpError::new(
                StatusCode::CONFLICT,
                "not_running",
                format!("no node runs world {world}; nothing to stop"),
            ));
        };
        self.update_supervised(&world, |entry| entry.stopping = true);
        record.status = "stopping".into();
        self.db.put_record(&record).await?;
        let root = self.root.clone();
        let timeout = Duration::from_millis(self.config.stop_timeout_ms);
        let stop_id = id.clone();
        let pid = node.pid;
        let stopped =
            tokio::task::spawn_blocking(move || launch::stop_node(&root, &stop_id, node, timeout))
                .await
                .map_err(internal)?;
        match stopped {
            Ok(stopped) => {
                self.unsupervise(&world, pid);
                let dir = WorldDir::new(&self.root, id);
                let status: Option<StatusFile> = read_json(&DiskStorage, &dir.status()).ok();
                record.status = "stopped".into();
                record.stopped_at = Some(crate::db::now());
                let record = self.db.put_record(&record).await?;
                let details = json!({
                    "pid": pid, "stopped_ms": stopped.elapsed.as_millis() as u64,
                    "head_tick": status.as_ref().map(|s| s.head_tick),
                    "state_root": status.as_ref().map(|s| s.state_root.clone()),
                    "continuity_root": status.as_ref().map(|s| s.continuity_root.clone()),
                    "checkpoint_tick": status.as_ref().and_then(|s| s.checkpoint_tick),
                });
                self.emit(&world, "stopped", details.clone()).await;
                Ok((record, details))
            }
            Err(error) => {
                self.update_supervised(&world, |entry| entry.stopping = false);
                record.status = "running".into();
                record.last_error = Some(format!("{}: {error}", error.code()));
                self.db.put_record(&record).await?;
                Err(OpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error.code(),
                    error.to_string(),
                ))
            }
        }
    }

    /// `restart`: stop (if a node runs), then start with the bound package.
    pub async fn restart(
        self: &Arc<Self>,
        world: &str,
        source: Source,
        job_id: Option<&str>,
    ) -> Result<Done, OpError> {
        let id = world_id(world)?;
        self.known(world).await?;
        let this = self.clone();
        self.operate(
            world,
            "restart",
            source,
            job_id,
            json!({}),
            |_| async move {
                if this.node_of(&id)?.is_some() {
                    this.stop_locked(&id).await?;
                }
                this.start_locked(&id, None, None, false).await
            },
        )
        .await
    }

    /// An automatic restart under `on-failure` (no operator lease wait:
    /// it skips when another operation holds the world).
    pub async fn restart_after_failure(self: &Arc<Self>, world: &str) -> Result<Done, OpError> {
        let id = world_id(world)?;
        let this = self.clone();
        self.operate(
            world,
            "restart",
            Source::Supervisor,
            None,
            json!({"reason": "restart_policy on-failure"}),
            |_| async move { this.start_locked(&id, None, None, true).await },
        )
        .await
    }

    /// `patch`: semver patch only, through the world's upgrade rule (the
    /// new package must replay all history to the recorded roots); the
    /// node is stopped, the package switched and accepted, the node
    /// started again if it ran.
    pub async fn patch(
        self: &Arc<Self>,
        world: &str,
        package: PathBuf,
        source: Source,
        job_id: Option<&str>,
    ) -> Result<Done, OpError> {
        let id = world_id(world)?;
        let before = self.known(world).await?;
        let this = self.clone();
        let details = json!({
            "package": package.display().to_string(),
            "old_version": before.package_version, "old_root": before.package_root,
        });
        self.operate(world, "patch", source, job_id, details, |_| async move {
            let dir = WorldDir::new(&this.root, &id);
            let path = package.clone();
            let checked = tokio::task::spawn_blocking(move || check_patch(&dir, &path))
                .await
                .map_err(internal)??;
            let ran = this.node_of(&id)?.is_some();
            if ran {
                this.stop_locked(&id).await?;
            }
            let dir = WorldDir::new(&this.root, &id);
            let (old, new) = checked;
            let (old_root, new_root) = (old.root.to_hex(), new.root.to_hex());
            let (old_version, new_version) = (
                old.manifest.version.to_string(),
                new.manifest.version.to_string(),
            );
            let applied = tokio::task::spawn_blocking(move || apply_patch(&dir, old, new))
                .await
                .map_err(internal)?;
            let head_tick = match applied {
                Ok(tick) => tick,
                Err(error) => {
                    if ran {
                        // The package is unchanged: the node runs again as it was.
                        let _ = this.start_locked(&id, None, None, false).await;
                    }
                    return Err(error);
                }
            };
            let record = match ran {
                true => this.start_locked(&id, Some(package), None, false).await?.0,
                false => {
                    let mut record = this.known(id.as_str()).await?;
                    record.package_path = Some(
                        std::path::absolute(&package)
                            .unwrap_or(package)
                            .display()
                            .to_string(),
                    );
                    record.package_root = Some(new_root.clone());
                    record.package_version = Some(new_version.clone());
                    this.db.put_record(&record).await?
                }
            };
            let extra = json!({
                "old_version": old_version, "new_version": new_version,
                "old_root": old_root, "new_root": new_root, "from_tick": head_tick + 1,
                "restarted": ran,
            });
            Ok((record, extra))
        })
        .await
    }

    /// `cleanup`: refuses a running world (409 `world_running`); marks the
    /// record `removed`. The world's directory (journal, checkpoints) stays.
    pub async fn cleanup(
        self: &Arc<Self>,
        world: &str,
        source: Source,
        job_id: Option<&str>,
    ) -> Result<Done, OpError> {
        let id = world_id(world)?;
        self.known(world).await?;
        let this = self.clone();
        self.operate(world, "cleanup", source, job_id, json!({}), |_| async move {
            let mut record = this.known(id.as_str()).await?;
            if let Some(node) = this.node_of(&id)? {
                return Err(OpError::new(
                    StatusCode::CONFLICT,
                    "world_running",
                    format!(
                        "world {id} runs (pid {}): stop it first; cleanup never removes a running world",
                        node.pid
                    ),
                ));
            }
            record.status = "removed".into();
            record.pid = None;
            let record = this.db.put_record(&record).await?;
            let dir = WorldDir::new(&this.root, &id);
            Ok((
                record,
                json!({"world_dir_kept": dir.path().display().to_string()}),
            ))
        })
        .await
    }
}

/// Whether the world has been created (a journal or a genesis file).
pub fn world_exists(dir: &WorldDir) -> bool {
    DiskStorage.exists(&dir.segment(1)) || DiskStorage.exists(&dir.genesis())
}

/// A loopback port free at the time of the call.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The manifest's `version` as written, when it is not semver.
fn version_not_semver(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path.join("world.toml")).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let version = table.get("version")?.as_str()?.to_string();
    semver::Version::parse(&version).is_err().then_some(version)
}

/// The checks a patch makes before anything changes: both versions semver
/// (`package_version_not_semver`), the same game, newer, and the same
/// major and minor (`semver_patch_only`). Returns (current, new).
fn check_patch(dir: &WorldDir, path: &Path) -> Result<(Package, Package), OpError> {
    if !world_exists(dir) {
        return Err(OpError::new(
            StatusCode::CONFLICT,
            "world_missing",
            format!(
                "world {} has no journal yet: start it first",
                dir.path().display()
            ),
        ));
    }
    if let Some(version) = version_not_semver(path) {
        return Err(OpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "package_version_not_semver",
            format!("the new package's version {version:?} is not semver"),
        ));
    }
    let new = Package::load(path).map_err(|e| {
        let code = matches!(e, PackageError::VersionNotSemver { .. })
            .then_some("package_version_not_semver");
        package_error(e, code)
    })?;
    let current = everarcade_world::bound_package(dir).map_err(world_error)?;
    match upgrade::classify(&current, &new, Allow::default()) {
        Ok(_) => Ok((current, new)),
        Err(refusal @ UpgradeRefusal::NeedsFlag { .. }) => Err(OpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "semver_patch_only",
            format!("{refusal}; the manager patches only within a minor version"),
        )),
        Err(refusal) => Err(OpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            refusal.code(),
            refusal.to_string(),
        )),
    }
}

/// Applies a patch to a stopped world: executes acknowledged inputs,
/// checkpoints the head, replay-verifies the lineage, requires the new
/// package to replay all history to the recorded roots, switches and
/// accepts. Returns the head tick.
fn apply_patch(dir: &WorldDir, current: Package, new: Package) -> Result<u64, OpError> {
    let storage: Arc<dyn Storage> = Arc::new(DiskStorage);
    let id = WorldId::new(
        dir.path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default(),
    )
    .map_err(internal)?;
    if let Some(pending) = upgrade::pending(&*storage, dir).map_err(world_error)? {
        let refusal = UpgradeRefusal::Pending {
            to: pending.transition.package_root,
            tick: pending.transition.from_tick,
        };
        return Err(OpError::new(
            StatusCode::CONFLICT,
            refusal.code(),
            refusal.to_string(),
        ));
    }
    let _lock = WorldLock::acquire(&dir.lock())
        .map_err(|e| OpError::new(StatusCode::CONFLICT, e.code(), e.to_string()))?;
    let engine = Arc::new(Engine::new().map_err(internal)?);
    let compile = |package: &Package| {
        engine
            .compile(package)
            .map_err(|e| OpError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))
    };
    let compiled_current = compile(&current)?;
    let compiled_new = compile(&new)?;
    let (mut world, _) = DurableWorld::open(
        storage.clone(),
        dir.clone(),
        id.clone(),
        engine.clone(),
        compiled_current.clone(),
        WorldConfig::default(),
    )
    .map_err(world_error)?;
    if world.pending_inputs() > 0 {
        world.execute_tick().map_err(world_error)?;
    }
    world.checkpoint().map_err(world_error)?;
    let head = world.roots();
    let journal_end = world.journal_end();
    world.close().map_err(world_error)?;
    let (keys, _) = OperatorKeys::load_or_create(&*storage, dir, head.tick)
        .map_err(|e| OpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string()))?;
    let inputs = UpgradeInputs {
        storage: &*storage,
        dir,
        id: &id,
        engine: &engine,
        current: compiled_current,
        new: compiled_new,
    };
    upgrade::verify_current(&inputs).map_err(world_error)?;
    upgrade::replay_history_under_new(&inputs).map_err(|error| {
        OpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "upgrade_history_diverges",
            format!("a patch must replay all history to the recorded roots: {error}"),
        )
    })?;
    upgrade::apply(
        &inputs,
        &keys,
        UpgradeKind::Patch,
        head,
        journal_end,
        true,
        None,
    )
    .map_err(world_error)?;
    upgrade::accept(&*storage, dir).map_err(world_error)?;
    Ok(head.tick)
}
