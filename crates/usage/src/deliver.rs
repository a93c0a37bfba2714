//! Producing reports into the backlog and delivering the backlog to the
//! sinks: one task per sink, batches of at most `batch_size`, capped
//! exponential backoff with jitter after a failure, and a report leaves a
//! sink's backlog only once that sink acknowledged it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use everarcade_protocol::{Hash, Tick};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{Storage, StoreError, WorldDir};
use tokio::sync::Notify;

use crate::backlog::{Backlog, BacklogError, Scan};
use crate::count::{CountError, Resume, count_window_from};
use crate::report::{FLAG_REBUILT, Metadata, SignedReport, UsageReport, window_file_name};
use crate::sink::Sink;

/// The counters the node exports as metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Reports that some configured sink has not acknowledged.
    pub backlog_reports: AtomicU64,
    /// Failed submissions (each is retried).
    pub submit_retries: AtomicU64,
    /// Reports acknowledged (once per sink).
    pub submitted: AtomicU64,
    /// Reports written to the backlog by this process.
    pub produced: AtomicU64,
}

/// Why a report could not be built or stored.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The window could not be counted from the journal.
    #[error(transparent)]
    Count(#[from] CountError),
    /// The report could not be written (a full disk, say).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal belongs to another world.
    #[error("the journal is world {found}'s, not {expected}'s")]
    WrongWorld {
        /// The world asked for.
        expected: String,
        /// The journal's.
        found: String,
    },
}

impl ProduceError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ProduceError::Count(error) => error.code(),
            ProduceError::Store(error) => error.code(),
            ProduceError::WrongWorld { .. } => "wrong_world",
        }
    }
}

/// Builds signed reports of one world from its journal.
pub struct Producer {
    storage: Arc<dyn Storage>,
    world: WorldDir,
    id: everarcade_protocol::WorldId,
    keys: Arc<OperatorKeys>,
    /// The package root and version the reports name.
    pub package: (Hash, String),
    /// Where the last window counted ended: the next one resumes there.
    resume: Mutex<Option<Resume>>,
}

impl Producer {
    /// A producer for the world `id` in `world`, signing with `keys`.
    pub fn new(
        storage: Arc<dyn Storage>,
        world: WorldDir,
        id: everarcade_protocol::WorldId,
        keys: Arc<OperatorKeys>,
        package: (Hash, String),
    ) -> Producer {
        Producer {
            storage,
            world,
            id,
            keys,
            package,
            resume: Mutex::new(None),
        }
    }

    /// The world's backlog.
    pub fn backlog(&self) -> Backlog {
        Backlog::new(self.storage.clone(), self.world.clone())
    }

    /// The operator keys.
    pub fn keys(&self) -> &OperatorKeys {
        &self.keys
    }

    /// Counts `first..=last` from the journal and signs the report.
    /// `metadata`'s package and runtime fields are filled in here.
    pub fn build(
        &self,
        first: Tick,
        last: Tick,
        flags: u16,
        mut metadata: Metadata,
    ) -> Result<SignedReport, ProduceError> {
        let resume = self.resume.lock().expect("resume lock").clone();
        let (count, ended) = count_window_from(
            &*self.storage,
            &self.world.journal(),
            first,
            last,
            resume.as_ref(),
        )?;
        *self.resume.lock().expect("resume lock") = Some(ended);
        if count.world != self.id {
            return Err(ProduceError::WrongWorld {
                expected: self.id.to_string(),
                found: count.world.to_string(),
            });
        }
        metadata.runtime_version = runtime_version();
        metadata.package_root = self.package.0;
        metadata.package_version = self.package.1.clone();
        let report = UsageReport {
            flags,
            world: count.world,
            first_tick: first,
            last_tick: last,
            start_continuity_root: count.start_continuity_root,
            end_continuity_root: count.end_continuity_root,
            counted: count.counted,
            metadata,
        };
        Ok(report.sign(&self.keys))
    }

    /// Builds and durably stores a report; returns it once it is on disk.
    pub fn produce(
        &self,
        first: Tick,
        last: Tick,
        flags: u16,
        metadata: Metadata,
    ) -> Result<SignedReport, ProduceError> {
        let report = self.build(first, last, flags, metadata)?;
        self.backlog().write(&report)?;
        Ok(report)
    }

    /// Checks the backlog (quarantining what does not check out) and
    /// rebuilds every window no valid report covers, flagged
    /// [`FLAG_REBUILT`]. Returns the scan as it is after the rebuild.
    pub fn recover_backlog(&self) -> Result<Scan, ProduceError> {
        let backlog = self.backlog();
        let mut scan = backlog.scan(self.keys.history())?;
        for (path, why) in &scan.quarantined {
            tracing::warn!(path = %path.display(), why = %why, "usage_report_quarantined");
        }
        for (first, last) in std::mem::take(&mut scan.gaps) {
            match self.produce(first, last, FLAG_REBUILT, Metadata::default()) {
                Ok(_) => {}
                // A damaged file named a window the journal does not hold
                // (yet): nothing to rebuild; the next report starts at the
                // last valid one.
                Err(ProduceError::Count(CountError::BeyondHead { head, .. })) => {
                    tracing::warn!(
                        first,
                        last,
                        head,
                        "usage_report_not_rebuilt: beyond the journal's head"
                    );
                    break;
                }
                Err(error) => return Err(error),
            }
            tracing::warn!(first, last, "usage_report_rebuilt from the journal");
            scan.windows.push((first, last));
        }
        scan.windows.sort_unstable();
        Ok(scan)
    }
}

/// The runtime version the reports carry (this crate's, which is the workspace's).
pub fn runtime_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Delivery settings.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryConfig {
    /// Reports per submission at most.
    pub batch_size: usize,
    /// One submission's bound.
    pub submit_timeout: Duration,
    /// The first retry's delay.
    pub retry_initial: Duration,
    /// The longest delay between retries.
    pub retry_max: Duration,
}

/// What every sink still owes: report name → sinks that have not acknowledged it.
#[derive(Debug, Default)]
pub struct Pending {
    reports: Mutex<BTreeMap<String, BTreeSet<&'static str>>>,
    counters: Arc<Counters>,
}

impl Pending {
    /// An empty table that keeps `counters.backlog_reports` current.
    pub fn new(counters: Arc<Counters>) -> Pending {
        Pending {
            reports: Mutex::default(),
            counters,
        }
    }

    /// Adds `report` as owed by `sinks`.
    pub fn add(&self, report: &str, sinks: impl IntoIterator<Item = &'static str>) {
        let mut reports = self.reports.lock().expect("pending lock");
        let owed: BTreeSet<&'static str> = sinks.into_iter().collect();
        if !owed.is_empty() {
            reports.entry(report.to_string()).or_default().extend(owed);
        }
        self.counters
            .backlog_reports
            .store(reports.len() as u64, Ordering::Relaxed);
    }

    fn next_batch(&self, sink: &'static str, size: usize) -> Vec<String> {
        let reports = self.reports.lock().expect("pending lock");
        reports
            .iter()
            .filter(|(_, sinks)| sinks.contains(sink))
            .take(size)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn done(&self, report: &str, sink: &'static str) {
        let mut reports = self.reports.lock().expect("pending lock");
        if let Some(sinks) = reports.get_mut(report) {
            sinks.remove(sink);
            if sinks.is_empty() {
                reports.remove(report);
            }
        }
        self.counters
            .backlog_reports
            .store(reports.len() as u64, Ordering::Relaxed);
    }

    /// Reports some sink still owes.
    pub fn len(&self) -> usize {
        self.reports.lock().expect("pending lock").len()
    }

    /// Whether every sink acknowledged every report.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The delay before retry number `attempt` (from 0): `initial × 2^attempt`
/// capped at `max`, then jittered to between half of it and all of it.
/// The jitter comes from the OS's randomness; it feeds nothing deterministic.
pub fn backoff(config: &DeliveryConfig, attempt: u32) -> Duration {
    let base = config
        .retry_initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(config.retry_max);
    let half = base / 2;
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    let spread = half.as_nanos().max(1) as u64;
    half + Duration::from_nanos(random % spread)
}

/// Delivers the backlog to one sink until the task is dropped: whenever
/// `wake` is notified or a retry is due.
pub async fn deliver(
    mut sink: Sink,
    producer: Arc<Producer>,
    pending: Arc<Pending>,
    wake: Arc<Notify>,
    config: DeliveryConfig,
) {
    let name = sink.name();
    let mut attempt: u32 = 0;
    loop {
        let batch = pending.next_batch(name, config.batch_size);
        if batch.is_empty() {
            wake.notified().await;
            continue;
        }
        let result = submit_batch(&mut sink, &producer, &pending, &batch, &config).await;
        let Err((code, reason)) = result else {
            attempt = 0;
            continue;
        };
        let delay = backoff(&config, attempt);
        attempt = attempt.saturating_add(1);
        pending
            .counters
            .submit_retries
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            sink = name,
            code,
            reason = %reason,
            reports = batch.len(),
            retry_in_ms = delay.as_millis() as u64,
            "usage_submit_failed"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Reads the batch from the backlog (a damaged file is quarantined and
/// rebuilt first), submits it, records each acknowledgement durably.
async fn submit_batch(
    sink: &mut Sink,
    producer: &Arc<Producer>,
    pending: &Pending,
    names: &[String],
    config: &DeliveryConfig,
) -> Result<(), (&'static str, String)> {
    let reports = {
        let producer = producer.clone();
        let names = names.to_vec();
        tokio::task::spawn_blocking(move || load_batch(&producer, &names))
            .await
            .map_err(|e| ("usage_task_failed", e.to_string()))?
            .map_err(|e| (e.code(), e.to_string()))?
    };
    let acked = sink
        .submit(&reports, config.submit_timeout)
        .await
        .map_err(|e| (e.code, e.reason))?;
    let name = sink.name();
    let backlog = producer.backlog();
    let mut recorded = 0;
    for report in &reports {
        let Some(ack) = acked.iter().find(|ack| ack.digest == report.digest) else {
            continue;
        };
        let file = report.report.file_name();
        backlog
            .ack(name, &file, &report.digest, &ack.answer)
            .map_err(|e| (e.code(), e.to_string()))?;
        pending.done(&file, name);
        pending.counters.submitted.fetch_add(1, Ordering::Relaxed);
        recorded += 1;
    }
    if recorded < reports.len() {
        return Err((
            "sink_partial",
            format!(
                "the sink acknowledged {recorded} of {} reports",
                reports.len()
            ),
        ));
    }
    Ok(())
}

fn load_batch(producer: &Producer, names: &[String]) -> Result<Vec<SignedReport>, ProduceError> {
    let backlog = producer.backlog();
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        match backlog.read(name, producer.keys.history()) {
            Ok(report) => reports.push(report),
            Err(BacklogError::Store(error)) => return Err(error.into()),
            Err(error @ BacklogError::Report { .. }) => {
                let path = backlog.report_path(name);
                let moved = backlog.quarantine(&path)?;
                tracing::warn!(path = %moved.display(), why = %error, "usage_report_quarantined");
                let (first, last) = crate::report::parse_window_file_name(name)
                    .expect("pending names are window names");
                let report = producer.produce(first, last, FLAG_REBUILT, Metadata::default())?;
                tracing::warn!(first, last, "usage_report_rebuilt from the journal");
                reports.push(report);
            }
        }
    }
    Ok(reports)
}

/// The name of a window's report (re-exported for callers that track names).
pub fn report_name(first: Tick, last: Tick) -> String {
    window_file_name(first, last)
}
