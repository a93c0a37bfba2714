//! The control-plane database: one code path (`sqlx::Any`) for the embedded
//! SQLite default (`<runtime-root>/manager.db`) and PostgreSQL.
//!
//! Tables (docs/MANAGER.md, "Database"): `runtime_records` (one row per
//! world), `operation_log` (append-only; a row is written when an operation
//! begins and finished once, never deleted), `health_snapshots` (latest per
//! world), `health_events`, `leases` (per-world, when Redis is not
//! configured) and `manager_migrations`.
//!
//! Invariant: the database records what the manager did and saw, never
//! world state; a world's state changes only through its node.

use std::time::SystemTime;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// Which server the URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or refused a statement.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration {version} ({description}): {source}")]
    Migration {
        /// Its version.
        version: i64,
        /// What it does.
        description: &'static str,
        /// The failure.
        source: sqlx::Error,
    },
    /// The database holds migrations newer than this binary knows.
    #[error(
        "the database is at migration {found}, newer than this manager's {known}: use the newer manager"
    )]
    TooNew {
        /// The newest applied.
        found: i64,
        /// The newest known.
        known: i64,
    },
}

impl DbError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::Sql(error) if is_full(error) => "database_full",
            DbError::Sql(_) => "database_unavailable",
            DbError::Migration { .. } => "migration_failed",
            DbError::TooNew { .. } => "database_too_new",
        }
    }
}

/// Whether the database refused a write for want of space: SQLite's
/// `SQLITE_FULL` (13), PostgreSQL's `disk_full` (53100), or `ENOSPC` on
/// the way.
fn is_full(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => matches!(error.code().as_deref(), Some("13" | "53100")),
        sqlx::Error::Io(error) => error.raw_os_error() == Some(ENOSPC),
        _ => false,
    }
}

/// `ENOSPC` on Linux.
const ENOSPC: i32 = 28;

/// One migration, in both dialects.
struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static [&'static str],
    postgres: &'static [&'static str],
}

const COMMON_V1: &[&str] = &[
    "CREATE TABLE runtime_records (
        world TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        pid BIGINT,
        engine_endpoint TEXT,
        package_path TEXT,
        package_root TEXT,
        package_version TEXT,
        restart_policy TEXT NOT NULL,
        started_by_manager BIGINT NOT NULL DEFAULT 0,
        restart_count BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        started_at TEXT,
        stopped_at TEXT
    )",
    "CREATE TABLE health_snapshots (
        world TEXT PRIMARY KEY,
        ready BIGINT NOT NULL,
        head_tick BIGINT,
        state_root TEXT,
        continuity_root TEXT,
        tick_rate_hz DOUBLE PRECISION,
        achieved_tick_rate_hz DOUBLE PRECISION,
        consecutive_probe_failures BIGINT NOT NULL DEFAULT 0,
        last_event TEXT,
        last_probe_at TEXT,
        updated_at TEXT NOT NULL
    )",
    "CREATE TABLE leases (
        world TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL
    )",
];

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "runtime records, operation log, health, leases",
    sqlite: &[
        "CREATE TABLE operation_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            world TEXT NOT NULL,
            op_kind TEXT NOT NULL,
            op_source TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error_code TEXT,
            job_id TEXT UNIQUE,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            details TEXT NOT NULL
        )",
        "CREATE TABLE health_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            world TEXT NOT NULL,
            event_type TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at TEXT NOT NULL
        )",
    ],
    postgres: &[
        "CREATE TABLE operation_log (
            id BIGSERIAL PRIMARY KEY,
            world TEXT NOT NULL,
            op_kind TEXT NOT NULL,
            op_source TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error_code TEXT,
            job_id TEXT UNIQUE,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            details TEXT NOT NULL
        )",
        "CREATE TABLE health_events (
            id BIGSERIAL PRIMARY KEY,
            world TEXT NOT NULL,
            event_type TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at TEXT NOT NULL
        )",
    ],
}];

/// Statements of migration 1 common to both dialects, then the indexes.
const TAIL_V1: &[&str] = &[
    "CREATE INDEX operation_log_world ON operation_log (world, id)",
    "CREATE INDEX health_events_world ON health_events (world, id)",
];

/// Now, RFC 3339 with milliseconds (UTC).
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Milliseconds since the epoch, for lease expiry.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A world's record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// The world id.
    pub world: String,
    /// `starting|running|stopping|stopped|failed|removed`.
    pub status: String,
    /// The node's pid while it runs (or last ran).
    pub pid: Option<i64>,
    /// `http://127.0.0.1:<port>`, allocated by the manager.
    pub engine_endpoint: Option<String>,
    /// The package directory given at start or patch.
    pub package_path: Option<String>,
    /// The package root (hex).
    pub package_root: Option<String>,
    /// The package version.
    pub package_version: Option<String>,
    /// `never` or `on-failure`.
    pub restart_policy: String,
    /// Whether this manager (or an earlier one on this root) started the
    /// node, as opposed to adopting it.
    pub started_by_manager: bool,
    /// Restarts under `on-failure` since the last operator start.
    pub restart_count: i64,
    /// The last failure's code and message.
    pub last_error: Option<String>,
    /// When the record was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// When the node was last started.
    pub started_at: Option<String>,
    /// When it last stopped or exited.
    pub stopped_at: Option<String>,
}

impl Record {
    fn from_row(row: &AnyRow) -> Result<Record, sqlx::Error> {
        Ok(Record {
            world: row.try_get("world")?,
            status: row.try_get("status")?,
            pid: row.try_get("pid")?,
            engine_endpoint: row.try_get("engine_endpoint")?,
            package_path: row.try_get("package_path")?,
            package_root: row.try_get("package_root")?,
            package_version: row.try_get("package_version")?,
            restart_policy: row.try_get("restart_policy")?,
            started_by_manager: row.try_get::<i64, _>("started_by_manager")? != 0,
            restart_count: row.try_get("restart_count")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            started_at: row.try_get("started_at")?,
            stopped_at: row.try_get("stopped_at")?,
        })
    }
}

/// One row of `operation_log`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operation {
    /// Its id.
    pub id: i64,
    /// The world.
    pub world: String,
    /// `start|stop|restart|patch|cleanup|reconcile_adopt|reconcile_dispose|reconcile_observed_exited`.
    pub op_kind: String,
    /// `admin_rest|stream|cli|reconcile`.
    pub op_source: String,
    /// `in_progress`, `ok` or `failed`.
    pub outcome: String,
    /// The failure's code.
    pub error_code: Option<String>,
    /// The stream entry id of a job.
    pub job_id: Option<String>,
    /// When it began.
    pub started_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Details (JSON).
    pub details: serde_json::Value,
}

impl Operation {
    fn from_row(row: &AnyRow) -> Result<Operation, sqlx::Error> {
        let details: String = row.try_get("details")?;
        Ok(Operation {
            id: row.try_get("id")?,
            world: row.try_get("world")?,
            op_kind: row.try_get("op_kind")?,
            op_source: row.try_get("op_source")?,
            outcome: row.try_get("outcome")?,
            error_code: row.try_get("error_code")?,
            job_id: row.try_get("job_id")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// One row of `health_events`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthEvent {
    /// Its id.
    pub id: i64,
    /// The world.
    pub world: String,
    /// `started`, `stopped`, `process_exited`, `probe_failed`,
    /// `probe_recovered`, `tick_rate_degraded`, `incident`, `restarting`,
    /// `disappeared`.
    pub event_type: String,
    /// Details (JSON).
    pub details: serde_json::Value,
    /// When it was recorded.
    pub created_at: String,
}

impl HealthEvent {
    fn from_row(row: &AnyRow) -> Result<HealthEvent, sqlx::Error> {
        let details: String = row.try_get("details")?;
        Ok(HealthEvent {
            id: row.try_get("id")?,
            world: row.try_get("world")?,
            event_type: row.try_get("event_type")?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            created_at: row.try_get("created_at")?,
        })
    }
}

/// The latest health of a world.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// The world.
    pub world: String,
    /// Whether the last probe passed.
    pub ready: bool,
    /// The head tick last inspected.
    pub head_tick: Option<i64>,
    /// Its state root.
    pub state_root: Option<String>,
    /// Its continuity root.
    pub continuity_root: Option<String>,
    /// The manifest's tick rate.
    pub tick_rate_hz: Option<f64>,
    /// The achieved tick rate.
    pub achieved_tick_rate_hz: Option<f64>,
    /// Failed probes in a row.
    pub consecutive_probe_failures: i64,
    /// The last event's type.
    pub last_event: Option<String>,
    /// When it was last probed.
    pub last_probe_at: Option<String>,
}

impl Snapshot {
    fn from_row(row: &AnyRow) -> Result<Snapshot, sqlx::Error> {
        Ok(Snapshot {
            world: row.try_get("world")?,
            ready: row.try_get::<i64, _>("ready")? != 0,
            head_tick: row.try_get("head_tick")?,
            state_root: row.try_get("state_root")?,
            continuity_root: row.try_get("continuity_root")?,
            tick_rate_hz: row.try_get("tick_rate_hz")?,
            achieved_tick_rate_hz: row.try_get("achieved_tick_rate_hz")?,
            consecutive_probe_failures: row.try_get("consecutive_probe_failures")?,
            last_event: row.try_get("last_event")?,
            last_probe_at: row.try_get("last_probe_at")?,
        })
    }
}

/// The control-plane database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url` (without migrating). With `schema` (PostgreSQL
    /// only), the schema is created if absent and every connection's
    /// `search_path` set to it.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = match url.starts_with("postgres") {
            true => Backend::Postgres,
            false => Backend::Sqlite,
        };
        let mut options = AnyPoolOptions::new();
        if let (Backend::Postgres, Some(schema)) = (backend, schema) {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut conn)
            .await?;
            let _ = sqlx::Connection::close(conn).await;
            let set = format!("SET search_path TO \"{schema}\"");
            options = options.after_connect(move |conn, _| {
                let set = set.clone();
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(set)).execute(conn).await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Db { pool, backend })
    }

    /// Which server this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the embedded migrations not applied yet, each in one
    /// transaction; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, DbError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS manager_migrations (
                version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM manager_migrations")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>("version"))
            .collect::<Result<_, _>>()?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some(&found) = applied.iter().max()
            && found > known
        {
            return Err(DbError::TooNew { found, known });
        }
        let mut done = Vec::new();
        for migration in MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            let fail = |source| DbError::Migration {
                version: migration.version,
                description: migration.description,
                source,
            };
            let mut tx = self.pool.begin().await.map_err(fail)?;
            let dialect = match self.backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            let statements = COMMON_V1.iter().chain(dialect).chain(TAIL_V1);
            for statement in statements {
                sqlx::query(*statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            sqlx::query(
                "INSERT INTO manager_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            done.push(migration.version);
        }
        Ok(done)
    }

    /// A fresh round trip.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // Records.

    /// The record of `world`.
    pub async fn record(&self, world: &str) -> Result<Option<Record>, DbError> {
        let row = sqlx::query("SELECT * FROM runtime_records WHERE world = $1")
            .bind(world)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Record::from_row).transpose()?)
    }

    /// Every record, by world id.
    pub async fn records(&self) -> Result<Vec<Record>, DbError> {
        let rows = sqlx::query("SELECT * FROM runtime_records ORDER BY world")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(Record::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces `record` (its `updated_at` set to now; the
    /// original `created_at` kept).
    pub async fn put_record(&self, record: &Record) -> Result<Record, DbError> {
        let now = now();
        sqlx::query(
            "INSERT INTO runtime_records (world, status, pid, engine_endpoint, package_path,
                package_root, package_version, restart_policy, started_by_manager, restart_count,
                last_error, created_at, updated_at, started_at, stopped_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (world) DO UPDATE SET status = excluded.status, pid = excluded.pid,
                engine_endpoint = excluded.engine_endpoint, package_path = excluded.package_path,
                package_root = excluded.package_root, package_version = excluded.package_version,
                restart_policy = excluded.restart_policy,
                started_by_manager = excluded.started_by_manager,
                restart_count = excluded.restart_count, last_error = excluded.last_error,
                updated_at = excluded.updated_at, started_at = excluded.started_at,
                stopped_at = excluded.stopped_at",
        )
        .bind(&record.world)
        .bind(&record.status)
        .bind(record.pid)
        .bind(&record.engine_endpoint)
        .bind(&record.package_path)
        .bind(&record.package_root)
        .bind(&record.package_version)
        .bind(&record.restart_policy)
        .bind(i64::from(record.started_by_manager))
        .bind(record.restart_count)
        .bind(&record.last_error)
        .bind(&now)
        .bind(&now)
        .bind(&record.started_at)
        .bind(&record.stopped_at)
        .execute(&self.pool)
        .await?;
        self.record(&record.world)
            .await?
            .ok_or_else(|| DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// Counts of records by status.
    pub async fn status_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM runtime_records GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    // The operation log.

    /// Appends an operation that begins now (`in_progress`); with a
    /// `job_id` already logged, returns `None` (the job ran or runs).
    pub async fn begin_operation(
        &self,
        world: &str,
        op_kind: &str,
        op_source: &str,
        job_id: Option<&str>,
        details: &serde_json::Value,
    ) -> Result<Option<i64>, DbError> {
        let result = sqlx::query(
            "INSERT INTO operation_log (world, op_kind, op_source, outcome, job_id, started_at, details)
             VALUES ($1, $2, $3, 'in_progress', $4, $5, $6)
             ON CONFLICT (job_id) DO NOTHING RETURNING id",
        )
        .bind(world)
        .bind(op_kind)
        .bind(op_source)
        .bind(job_id)
        .bind(now())
        .bind(details.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(result.map(|row| row.try_get("id")).transpose()?)
    }

    /// Finishes operation `id` with `outcome` (`ok` or `failed`), merging
    /// `details` into what it began with.
    pub async fn finish_operation(
        &self,
        id: i64,
        outcome: &str,
        error_code: Option<&str>,
        details: &serde_json::Value,
    ) -> Result<(), DbError> {
        let row = sqlx::query("SELECT details FROM operation_log WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        let mut merged: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("details")?)
                .unwrap_or_else(|_| serde_json::json!({}));
        if let (Some(target), Some(extra)) = (merged.as_object_mut(), details.as_object()) {
            for (key, value) in extra {
                target.insert(key.clone(), value.clone());
            }
        }
        sqlx::query(
            "UPDATE operation_log SET outcome = $1, error_code = $2, finished_at = $3, details = $4
             WHERE id = $5",
        )
        .bind(outcome)
        .bind(error_code)
        .bind(now())
        .bind(merged.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An operation by its id.
    pub async fn operation(&self, id: i64) -> Result<Option<Operation>, DbError> {
        let row = sqlx::query("SELECT * FROM operation_log WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Operation::from_row).transpose()?)
    }

    /// The operation of a stream job, if it was logged.
    pub async fn operation_of_job(&self, job_id: &str) -> Result<Option<Operation>, DbError> {
        let row = sqlx::query("SELECT * FROM operation_log WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Operation::from_row).transpose()?)
    }

    /// The newest `limit` operations of `world` (all worlds when `None`),
    /// newest first.
    pub async fn operations(
        &self,
        world: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Operation>, DbError> {
        let rows = match world {
            Some(world) => {
                sqlx::query(
                    "SELECT * FROM operation_log WHERE world = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(world)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query("SELECT * FROM operation_log ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(Operation::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Operations still `in_progress` (left by a manager that died).
    pub async fn unfinished_operations(&self) -> Result<Vec<Operation>, DbError> {
        let rows =
            sqlx::query("SELECT * FROM operation_log WHERE outcome = 'in_progress' ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(Operation::from_row)
            .collect::<Result<_, _>>()?)
    }

    // Health.

    /// Records a health event.
    pub async fn insert_event(
        &self,
        world: &str,
        event_type: &str,
        details: &serde_json::Value,
    ) -> Result<HealthEvent, DbError> {
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO health_events (world, event_type, details, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(world)
        .bind(event_type)
        .bind(details.to_string())
        .bind(&created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(HealthEvent {
            id: row.try_get("id")?,
            world: world.to_string(),
            event_type: event_type.to_string(),
            details: details.clone(),
            created_at,
        })
    }

    /// Events after id `after` (of `world`, or all), oldest first.
    pub async fn events(
        &self,
        world: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<HealthEvent>, DbError> {
        let rows =
            match world {
                Some(world) => sqlx::query(
                    "SELECT * FROM health_events WHERE id > $1 AND world = $2 ORDER BY id LIMIT $3",
                )
                .bind(after)
                .bind(world)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query("SELECT * FROM health_events WHERE id > $1 ORDER BY id LIMIT $2")
                        .bind(after)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?
                }
            };
        Ok(rows
            .iter()
            .map(HealthEvent::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The snapshot of `world`.
    pub async fn snapshot(&self, world: &str) -> Result<Option<Snapshot>, DbError> {
        let row = sqlx::query("SELECT * FROM health_snapshots WHERE world = $1")
            .bind(world)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Snapshot::from_row).transpose()?)
    }

    /// Replaces the snapshot of `snapshot.world`.
    pub async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), DbError> {
        self.put_snapshots(std::slice::from_ref(snapshot)).await
    }

    /// Replaces the snapshots of their worlds, all in one transaction (one
    /// commit, one fsync on SQLite, for a whole pass of the workers).
    pub async fn put_snapshots(&self, snapshots: &[Snapshot]) -> Result<(), DbError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let updated_at = now();
        let mut tx = self.pool.begin().await?;
        for snapshot in snapshots {
            sqlx::query(
                "INSERT INTO health_snapshots (world, ready, head_tick, state_root, continuity_root,
                    tick_rate_hz, achieved_tick_rate_hz, consecutive_probe_failures, last_event,
                    last_probe_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (world) DO UPDATE SET ready = excluded.ready,
                    head_tick = excluded.head_tick, state_root = excluded.state_root,
                    continuity_root = excluded.continuity_root,
                    tick_rate_hz = excluded.tick_rate_hz,
                    achieved_tick_rate_hz = excluded.achieved_tick_rate_hz,
                    consecutive_probe_failures = excluded.consecutive_probe_failures,
                    last_event = excluded.last_event, last_probe_at = excluded.last_probe_at,
                    updated_at = excluded.updated_at",
            )
            .bind(&snapshot.world)
            .bind(i64::from(snapshot.ready))
            .bind(snapshot.head_tick)
            .bind(&snapshot.state_root)
            .bind(&snapshot.continuity_root)
            .bind(snapshot.tick_rate_hz)
            .bind(snapshot.achieved_tick_rate_hz)
            .bind(snapshot.consecutive_probe_failures)
            .bind(&snapshot.last_event)
            .bind(&snapshot.last_probe_at)
            .bind(&updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // Leases.

    /// Takes the lease of `world` for `holder` unless another holder's
    /// lease is unexpired.
    pub async fn acquire_lease(
        &self,
        world: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO leases (world, holder, expires_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (world) DO UPDATE SET holder = excluded.holder,
                expires_at_ms = excluded.expires_at_ms
             WHERE leases.expires_at_ms < $4",
        )
        .bind(world)
        .bind(holder)
        .bind(now + ttl_ms as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Releases the lease of `world` if `holder` holds it.
    pub async fn release_lease(&self, world: &str, holder: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM leases WHERE world = $1 AND holder = $2")
            .bind(world)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops every lease (at startup: one manager per database, and the
    /// one before it is gone).
    pub async fn clear_leases(&self) -> Result<(), DbError> {
        sqlx::query("DELETE FROM leases")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(world: &str) -> Record {
        Record {
            world: world.into(),
            status: "running".into(),
            pid: Some(42),
            engine_endpoint: Some("http://127.0.0.1:1".into()),
            package_path: None,
            package_root: Some("ab".into()),
            package_version: Some("0.1.0".into()),
            restart_policy: "never".into(),
            started_by_manager: true,
            restart_count: 0,
            last_error: None,
            created_at: now(),
            updated_at: now(),
            started_at: None,
            stopped_at: None,
        }
    }

    /// Every table through the one code path.
    async fn exercise(db: &Db) {
        assert_eq!(db.migrate().await.unwrap(), vec![1]);
        assert!(db.migrate().await.unwrap().is_empty(), "applied once");
        db.ping().await.unwrap();
        let first = db.put_record(&record("w1")).await.unwrap();
        let mut changed = record("w1");
        changed.status = "stopped".into();
        changed.pid = None;
        let second = db.put_record(&changed).await.unwrap();
        assert_eq!(second.status, "stopped");
        assert_eq!(second.pid, None);
        assert_eq!(second.created_at, first.created_at, "created_at is kept");
        db.put_record(&record("w0")).await.unwrap();
        let worlds: Vec<String> = db
            .records()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.world)
            .collect();
        assert_eq!(worlds, ["w0", "w1"]);
        assert_eq!(
            db.status_counts().await.unwrap(),
            vec![("running".to_string(), 1), ("stopped".to_string(), 1)]
        );
        let details = serde_json::json!({"reason": "r"});
        let id = db
            .begin_operation("w1", "stop", "stream", Some("1-0"), &details)
            .await
            .unwrap()
            .expect("logged");
        assert_eq!(
            db.begin_operation("w1", "stop", "stream", Some("1-0"), &details)
                .await
                .unwrap(),
            None,
            "a job is logged once"
        );
        assert_eq!(db.unfinished_operations().await.unwrap().len(), 1);
        db.finish_operation(id, "ok", None, &serde_json::json!({"tick": 7}))
            .await
            .unwrap();
        let operation = db.operation_of_job("1-0").await.unwrap().unwrap();
        assert_eq!(operation.outcome, "ok");
        assert_eq!(
            operation.details,
            serde_json::json!({"reason": "r", "tick": 7})
        );
        assert!(operation.finished_at.is_some());
        assert!(db.unfinished_operations().await.unwrap().is_empty());
        assert_eq!(db.operations(Some("w1"), 10).await.unwrap().len(), 1);
        assert!(db.operations(Some("w0"), 10).await.unwrap().is_empty());
        assert!(db.acquire_lease("w1", "a", 60_000).await.unwrap());
        assert!(!db.acquire_lease("w1", "b", 60_000).await.unwrap(), "held");
        db.release_lease("w1", "b").await.unwrap();
        assert!(
            !db.acquire_lease("w1", "b", 60_000).await.unwrap(),
            "only the holder releases"
        );
        db.release_lease("w1", "a").await.unwrap();
        assert!(db.acquire_lease("w1", "b", 1).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(
            db.acquire_lease("w1", "c", 60_000).await.unwrap(),
            "an expired lease is taken over"
        );
        let event = db
            .insert_event("w1", "probe_failed", &serde_json::json!({"failures": 3}))
            .await
            .unwrap();
        db.insert_event("w0", "started", &serde_json::json!({}))
            .await
            .unwrap();
        let events = db.events(Some("w1"), 0, 10).await.unwrap();
        assert_eq!(events, vec![event.clone()]);
        assert_eq!(db.events(None, event.id, 10).await.unwrap().len(), 1);
        let snapshot = Snapshot {
            world: "w1".into(),
            ready: true,
            head_tick: Some(12),
            achieved_tick_rate_hz: Some(19.5),
            ..Snapshot::default()
        };
        db.put_snapshot(&snapshot).await.unwrap();
        db.put_snapshot(&snapshot).await.unwrap();
        assert_eq!(db.snapshot("w1").await.unwrap(), Some(snapshot.clone()));
        let batch = [
            Snapshot {
                head_tick: Some(40),
                ..snapshot.clone()
            },
            Snapshot {
                world: "w0".into(),
                ready: false,
                consecutive_probe_failures: 2,
                ..Snapshot::default()
            },
        ];
        db.put_snapshots(&batch).await.unwrap();
        assert_eq!(db.snapshot("w1").await.unwrap().as_ref(), Some(&batch[0]));
        assert_eq!(db.snapshot("w0").await.unwrap().as_ref(), Some(&batch[1]));
    }

    #[tokio::test]
    async fn sqlite_control_plane() {
        let dir = everarcade_testkit::temp::TempDir::new("manager-db");
        let url = format!("sqlite://{}?mode=rwc", dir.join("manager.db").display());
        let db = Db::connect(&url, None).await.unwrap();
        assert_eq!(db.backend(), Backend::Sqlite);
        exercise(&db).await;
    }

    #[tokio::test]
    async fn postgres_control_plane_in_its_own_schema() {
        let url = std::env::var("EVERARCADE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("manager_db_test_{}", std::process::id());
        let db = Db::connect(&url, Some(&schema))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL is not reachable at {url} ({error}); start it with: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                )
            });
        assert_eq!(db.backend(), Backend::Postgres);
        exercise(&db).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&db.pool)
        .await
        .unwrap();
    }
}
