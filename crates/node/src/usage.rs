//! The node's usage reports: a task that, every `usage.interval_ms`, turns
//! the ticks executed since the last report into a signed report (read from
//! the journal off the actor's thread, at the head tick the actor last
//! published, which is a tick boundary) and stores it in the world's
//! backlog; and one delivery task per configured sink.
//!
//! At start the backlog is checked first: damaged report files are
//! quarantined and their windows rebuilt from the journal, and every report
//! a sink has not acknowledged is queued for it again. Reports cover the
//! lineage from tick 1 without gaps or overlaps, so the next report starts
//! right after the newest one on disk.
//!
//! Nothing here touches the world: a failed report (a full disk, say) is
//! logged as `usage_report_failed` and its window stays open, so the next
//! report covers it; the world keeps running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use everarcade_protocol::{Hash, WorldId};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{Storage, WorldDir};
use everarcade_usage::report::{REFUSAL_REASONS_MAX, valid_reason};
use everarcade_usage::{DeliveryConfig, Metadata, Pending, Producer, Sink, SinkConfig};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::actor::Live;
use crate::config::UsageConfig;

/// The reason refusals are counted under when a window saw more distinct
/// reasons than a report carries (or a label that is not a stable code).
const OTHER_REASON: &str = "other";

/// The running usage tasks; dropping this stops them (everything they
/// own is on disk: a report is durable before it is queued).
#[derive(Debug)]
pub struct UsageTasks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for UsageTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the usage tasks need of the node.
pub struct UsageWorld {
    /// The world's storage.
    pub storage: Arc<dyn Storage>,
    /// Its directory.
    pub dir: WorldDir,
    /// Its id.
    pub id: WorldId,
    /// Its operator keys.
    pub keys: Arc<OperatorKeys>,
    /// The package root and version it runs.
    pub package: (Hash, String),
    /// The live view (head tick, refusals, checkpoints, usage counters).
    pub live: Arc<Live>,
}

/// The sinks the configuration names.
pub fn sink_configs(config: &UsageConfig) -> Vec<SinkConfig> {
    let mut sinks = Vec::new();
    if let Some(url) = &config.http_url {
        sinks.push(SinkConfig::Http {
            url: url.clone(),
            ca: config.http_ca.clone(),
        });
    }
    if let Some(url) = &config.redis_url {
        sinks.push(SinkConfig::Redis {
            url: url.clone(),
            stream: config.redis_stream.clone(),
        });
    }
    if let Some(path) = &config.dir {
        sinks.push(SinkConfig::Dir { path: path.clone() });
    }
    sinks
}

/// Sets the sinks up (failing fast on a bad URL or CA file) and starts the
/// tasks; `None` when `usage.interval_ms` is 0.
pub fn spawn(
    config: &UsageConfig,
    world: UsageWorld,
) -> Result<Option<UsageTasks>, everarcade_usage::sink::SinkSetupError> {
    if config.interval_ms == 0 {
        tracing::info!("usage reports off (usage.interval_ms = 0)");
        return Ok(None);
    }
    let sinks = sink_configs(config)
        .iter()
        .map(Sink::new)
        .collect::<Result<Vec<Sink>, _>>()?;
    let delivery = DeliveryConfig {
        batch_size: config.batch_size,
        submit_timeout: Duration::from_millis(config.submit_timeout_ms),
        retry_initial: Duration::from_millis(config.retry_initial_ms),
        retry_max: Duration::from_millis(config.retry_max_ms),
    };
    let interval = Duration::from_millis(config.interval_ms);
    let task = tokio::spawn(run(world, sinks, delivery, interval));
    Ok(Some(UsageTasks { tasks: vec![task] }))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// What the node had counted when the current window opened.
struct Baseline {
    unix_ms: u64,
    refused: BTreeMap<String, u64>,
    checkpoints: u64,
    checkpoint_bytes: u64,
}

impl Baseline {
    fn now(live: &Live) -> Baseline {
        let metrics = &live.metrics;
        Baseline {
            unix_ms: now_unix_ms(),
            refused: metrics.inputs_rejected.snapshot(),
            checkpoints: metrics.checkpoints_written.load(Ordering::Relaxed),
            checkpoint_bytes: metrics.checkpoint_bytes_written.load(Ordering::Relaxed),
        }
    }

    /// The metadata of the window from `self` to `now`.
    fn metadata(&self, now: &Baseline) -> Metadata {
        let mut refused: BTreeMap<String, u64> = BTreeMap::new();
        for (reason, count) in &now.refused {
            let delta = count.saturating_sub(self.refused.get(reason).copied().unwrap_or(0));
            if delta == 0 {
                continue;
            }
            let known = valid_reason(reason)
                && (refused.contains_key(reason) || refused.len() < REFUSAL_REASONS_MAX - 1);
            let key = if known { reason.as_str() } else { OTHER_REASON };
            *refused.entry(key.to_string()).or_default() += delta;
        }
        Metadata {
            window_start_unix_ms: self.unix_ms,
            window_end_unix_ms: now.unix_ms,
            checkpoints_written: now.checkpoints.saturating_sub(self.checkpoints),
            checkpoint_bytes: now.checkpoint_bytes.saturating_sub(self.checkpoint_bytes),
            refused,
            ..Metadata::default()
        }
    }
}

async fn run(world: UsageWorld, sinks: Vec<Sink>, delivery: DeliveryConfig, interval: Duration) {
    let live = world.live.clone();
    let counters = live.metrics.usage.clone();
    let producer = Arc::new(Producer::new(
        world.storage,
        world.dir,
        world.id,
        world.keys,
        world.package,
    ));
    let names: Vec<&'static str> = sinks.iter().map(Sink::name).collect();
    let checked = {
        let producer = producer.clone();
        tokio::task::spawn_blocking(move || producer.recover_backlog()).await
    };
    let scan = match checked {
        Ok(Ok(scan)) => scan,
        Ok(Err(error)) => {
            tracing::error!(code = error.code(), error = %error, "usage_report_failed: the backlog could not be checked; usage reports are off until the node restarts");
            return;
        }
        Err(error) => {
            tracing::error!(error = %error, "usage_report_failed: the backlog check stopped");
            return;
        }
    };
    let pending = Arc::new(Pending::new(counters.clone()));
    let backlog = producer.backlog();
    for name in &names {
        for report in backlog.pending(name, &scan.windows) {
            pending.add(&report, [*name]);
        }
    }
    tracing::info!(
        reports = scan.windows.len(),
        backlog = pending.len(),
        quarantined = scan.quarantined.len(),
        sinks = ?names,
        next_tick = scan.last_tick() + 1,
        "usage backlog checked"
    );
    let mut wakes = Vec::new();
    let mut tasks = Vec::new();
    for sink in sinks {
        let wake = Arc::new(Notify::new());
        wakes.push(wake.clone());
        tasks.push(DeliveryTask(tokio::spawn(everarcade_usage::deliver(
            sink,
            producer.clone(),
            pending.clone(),
            wake,
            delivery,
        ))));
    }
    let mut next_first = scan.last_tick() + 1;
    let mut baseline = Baseline::now(&live);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let head = live.metrics.head_tick.load(Ordering::Relaxed);
        if head < next_first {
            continue;
        }
        let now = Baseline::now(&live);
        let metadata = baseline.metadata(&now);
        let built = {
            let producer = producer.clone();
            tokio::task::spawn_blocking(move || producer.produce(next_first, head, 0, metadata))
                .await
        };
        match built {
            Ok(Ok(report)) => {
                tracing::info!(
                    first_tick = next_first,
                    last_tick = head,
                    digest = %report.digest,
                    "usage report written"
                );
                counters.produced.fetch_add(1, Ordering::Relaxed);
                pending.add(&report.report.file_name(), names.iter().copied());
                for wake in &wakes {
                    wake.notify_one();
                }
                next_first = head + 1;
                baseline = now;
            }
            Ok(Err(error)) => tracing::warn!(
                code = error.code(),
                error = %error,
                first_tick = next_first,
                last_tick = head,
                "usage_report_failed: the window stays open; the next report covers it"
            ),
            Err(error) => tracing::warn!(error = %error, "usage_report_failed"),
        }
    }
}

/// A delivery task, aborted when the producer task ends (or is aborted).
struct DeliveryTask(JoinHandle<()>);

impl Drop for DeliveryTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
