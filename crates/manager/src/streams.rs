//! Redis: job intake from `runtime:start_jobs` and `runtime:stop_jobs`,
//! results to `runtime:job_results`, health events to
//! `runtime:health_events`, persisted offsets and per-world leases
//! (docs/MANAGER.md, "Redis streams").
//!
//! Exactly once: a job's stream entry id is the `job_id` of its
//! `operation_log` row (unique), written before the job runs; its result and
//! the consumer's new offset are written in one `MULTI`. A job whose row
//! exists is never run again (after a crash its result is published from
//! the row), and the offset never passes a job that was not answered.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use tokio::sync::watch;

use crate::Manager;
use crate::config::{ManagerConfig, RestartPolicy};
use crate::db::HealthEvent;
use crate::ops::{Done, OpError, Source};

/// A Redis client and its shared connection, opened again after a failure
/// (a multiplexed connection does not reconnect by itself).
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
}

const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl Redis {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> redis::RedisResult<Redis> {
        let client = redis::Client::open(url)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Redis {
            client,
            conn: Arc::new(tokio::sync::Mutex::new(Some(conn))),
        })
    }

    /// The shared connection, opened again if the last call failed.
    async fn shared(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = &*slot {
            return Ok(conn.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `call` on the shared connection; a failure drops it, so the
    /// next call reconnects.
    async fn with<T, F, Fut>(&self, call: F) -> redis::RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = call(self.shared().await?).await;
        if result.is_err() {
            *self.conn.lock().await = None;
        }
        result
    }

    /// A fresh `PING`.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        self.with(|mut conn| async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }

    /// A connection of its own (a blocking `XREAD` must not hold up the
    /// shared one).
    async fn dedicated(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn lease_key(config: &ManagerConfig, world: &str) -> String {
        format!("{}world_lease:{world}", config.redis_key_prefix)
    }

    /// `SET <prefix>world_lease:<world> <holder> NX PX <ttl>`.
    pub async fn acquire_lease(
        &self,
        config: &ManagerConfig,
        world: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> redis::RedisResult<bool> {
        let key = Redis::lease_key(config, world);
        self.with(|mut conn| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await?;
            Ok(set.is_some())
        })
        .await
    }

    /// Deletes the lease if `holder` still holds it.
    pub async fn release_lease(
        &self,
        config: &ManagerConfig,
        world: &str,
        holder: &str,
    ) -> redis::RedisResult<()> {
        let key = Redis::lease_key(config, world);
        self.with(|mut conn| async move {
            let _: i64 = redis::cmd("EVAL")
                .arg(RELEASE_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(holder)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Deletes every lease under the prefix (at startup: the manager
    /// before this one on the root is gone, and so are its operations).
    pub async fn clear_leases(&self, config: &ManagerConfig) -> redis::RedisResult<usize> {
        let mut conn = self.shared().await?;
        let pattern = format!("{}world_lease:*", config.redis_key_prefix);
        let mut cursor = 0u64;
        let mut cleared = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                cleared += keys.len();
                let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            }
            if next == 0 {
                return Ok(cleared);
            }
            cursor = next;
        }
    }

    /// `XADD runtime:health_events`.
    pub async fn publish_event(
        &self,
        config: &ManagerConfig,
        event: &HealthEvent,
    ) -> redis::RedisResult<()> {
        self.with(|mut conn| async move {
            let _: String = redis::cmd("XADD")
                .arg(&config.health_events_stream)
                .arg("*")
                .arg("world")
                .arg(&event.world)
                .arg("event_type")
                .arg(&event.event_type)
                .arg("details")
                .arg(event.details.to_string())
                .arg("event_id")
                .arg(event.id)
                .arg("created_at")
                .arg(&event.created_at)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }
}

/// The key of a stream's persisted offset.
pub fn offset_key(config: &ManagerConfig, stream: &str) -> String {
    format!("{}stream_offsets:{stream}", config.redis_key_prefix)
}

/// Consumes `stream` until `stop`; reconnects after a Redis failure
/// without advancing the offset.
pub async fn intake_worker(manager: Arc<Manager>, stream: String, mut stop: watch::Receiver<bool>) {
    let Some(redis) = manager.redis.clone() else {
        return;
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let outcome = tokio::select! {
            outcome = consume(&manager, &redis, &stream, stop.clone()) => outcome,
            _ = crate::stopped(&mut stop) => return,
        };
        match outcome {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%stream, %error, "job intake paused: redis failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = crate::stopped(&mut stop) => return,
                }
            }
        }
    }
}

async fn consume(
    manager: &Arc<Manager>,
    redis: &Redis,
    stream: &str,
    stop: watch::Receiver<bool>,
) -> redis::RedisResult<()> {
    let mut conn = redis.dedicated().await?;
    let key = offset_key(&manager.config, stream);
    let mut offset: String = redis::cmd("GET")
        .arg(&key)
        .query_async::<Option<String>>(&mut conn)
        .await?
        .unwrap_or_else(|| "0-0".into());
    while !*stop.borrow() {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(16)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(stream)
            .arg(&offset)
            .query_async(&mut conn)
            .await?;
        let entries: Vec<_> = reply
            .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
            .unwrap_or_default();
        for entry in entries {
            let field = |name: &str| -> Option<String> { entry.get(name) };
            let job = Job {
                id: entry.id.clone(),
                world: field("world").unwrap_or_default(),
                package: field("package"),
                reason: field("reason"),
                restart_policy: field("restart_policy"),
            };
            let result = loop {
                match run_job(manager, stream, &job).await {
                    Retry::Done(result) => break result,
                    Retry::Later(why) => {
                        tracing::warn!(job = %job.id, %why, "job deferred");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if *stop.borrow() {
                            return Ok(());
                        }
                    }
                }
            };
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("XADD")
                .arg(&manager.config.job_results_stream)
                .arg("*");
            for (name, value) in &result {
                pipe.arg(name).arg(value);
            }
            pipe.ignore().cmd("SET").arg(&key).arg(&job.id).ignore();
            pipe.query_async::<()>(&mut conn).await?;
            offset = job.id.clone();
        }
        let lag: Vec<redis::Value> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(format!("({offset}"))
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        manager.metrics.stream_lag(stream, lag.len() as u64);
    }
    Ok(())
}

struct Job {
    id: String,
    world: String,
    package: Option<String>,
    reason: Option<String>,
    restart_policy: Option<String>,
}

enum Retry {
    Done(Vec<(String, String)>),
    Later(String),
}

async fn run_job(manager: &Arc<Manager>, stream: &str, job: &Job) -> Retry {
    let op_kind = match stream == manager.config.stop_jobs_stream {
        true => "stop",
        false => "start",
    };
    let mut fields = vec![
        ("job_id".to_string(), job.id.clone()),
        ("stream".to_string(), stream.to_string()),
        ("world".to_string(), job.world.clone()),
        ("op_kind".to_string(), op_kind.to_string()),
    ];
    // Logged already: it ran (or a dead manager was running it): answer from the row.
    match manager.db.operation_of_job(&job.id).await {
        Ok(Some(operation)) => {
            fields.push(("outcome".into(), operation.outcome.clone()));
            fields.push((
                "error_code".into(),
                operation.error_code.clone().unwrap_or_default(),
            ));
            fields.push(("operation_id".into(), operation.id.to_string()));
            fields.push(("replayed".into(), "true".into()));
            // What runs now (an interrupted start may have been adopted).
            if let Ok(Some(record)) = manager.db.record(&job.world).await {
                fields.push(("status".into(), record.status));
            }
            return Retry::Done(fields);
        }
        Ok(None) => {}
        Err(error) => return Retry::Later(error.to_string()),
    }
    let result: Result<Done, OpError> = match op_kind {
        "stop" => {
            let reason = job.reason.clone().unwrap_or_else(|| "stop_job".into());
            manager
                .stop(&job.world, &reason, Source::Stream, Some(&job.id))
                .await
        }
        _ => {
            let policy = match job.restart_policy.as_deref().map(RestartPolicy::parse) {
                Some(None) => {
                    fields.push(("outcome".into(), "failed".into()));
                    fields.push(("error_code".into(), "invalid_restart_policy".into()));
                    return Retry::Done(fields);
                }
                Some(policy) => policy,
                None => None,
            };
            manager
                .start(
                    &job.world,
                    job.package.clone().map(Into::into),
                    policy,
                    Source::Stream,
                    Some(&job.id),
                )
                .await
        }
    };
    match result {
        Ok(done) => {
            fields.push(("outcome".into(), "ok".into()));
            fields.push(("status".into(), done.record.status.clone()));
            fields.push((
                "engine_endpoint".into(),
                done.record.engine_endpoint.clone().unwrap_or_default(),
            ));
            fields.push(("operation_id".into(), done.operation.to_string()));
            Retry::Done(fields)
        }
        Err(error)
            if matches!(
                error.code(),
                "operation_in_progress" | "database_unavailable" | "redis_unavailable"
            ) =>
        {
            Retry::Later(format!("{}: {}", error.code(), error.message()))
        }
        Err(error) => {
            fields.push(("outcome".into(), "failed".into()));
            fields.push(("error_code".into(), error.code().to_string()));
            fields.push(("message".into(), error.message().to_string()));
            Retry::Done(fields)
        }
    }
}
