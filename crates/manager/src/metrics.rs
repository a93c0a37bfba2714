//! The manager's `/metrics` (Prometheus text format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Bucket bounds of the operation latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every status a record can have, so each gauge series exists from the start.
pub const STATUSES: [&str; 6] = [
    "starting", "running", "stopping", "stopped", "failed", "removed",
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The manager's counters and histograms (the runtime gauge is read from
/// the database at scrape time).
#[derive(Default)]
pub struct Metrics {
    latency: Mutex<BTreeMap<String, Histogram>>,
    operations: Mutex<BTreeMap<(String, String), u64>>,
    drift: Mutex<BTreeMap<String, u64>>,
    events: Mutex<BTreeMap<String, u64>>,
    lag: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// Records one operation.
    pub fn operation(&self, op_kind: &str, outcome: &str, took: Duration) {
        let mut latency = lock(&self.latency);
        let histogram = latency.entry(op_kind.to_string()).or_default();
        let seconds = took.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
        *lock(&self.operations)
            .entry((op_kind.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    /// Counts one reconcile drift of `kind` (`adopt`, `dispose`, `observed_exited`).
    pub fn drift(&self, kind: &str) {
        *lock(&self.drift).entry(kind.to_string()).or_default() += 1;
    }

    /// The drift count of `kind`.
    pub fn drift_count(&self, kind: &str) -> u64 {
        lock(&self.drift).get(kind).copied().unwrap_or(0)
    }

    /// Counts one health event.
    pub fn event(&self, event_type: &str) {
        *lock(&self.events)
            .entry(event_type.to_string())
            .or_default() += 1;
    }

    /// Sets the entries of `stream` not consumed yet.
    pub fn stream_lag(&self, stream: &str, lag: u64) {
        lock(&self.lag).insert(stream.to_string(), lag);
    }

    /// The text exposition, with the runtime counts by status.
    pub fn render(&self, by_status: &[(String, i64)], database_up: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_runtimes World records by status.\n# TYPE everarcade_manager_runtimes gauge"
        );
        for status in STATUSES {
            let n = by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(
                out,
                "everarcade_manager_runtimes{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_database_up Whether the last scrape reached the database.\n# TYPE everarcade_manager_database_up gauge\neverarcade_manager_database_up {}",
            u8::from(database_up)
        );
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_operation_duration_seconds Lifecycle operation latency.\n# TYPE everarcade_manager_operation_duration_seconds histogram"
        );
        for (kind, histogram) in lock(&self.latency).iter() {
            let name = "everarcade_manager_operation_duration_seconds";
            for (bucket, bound) in histogram.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{op_kind=\"{kind}\",le=\"{bound}\"}} {bucket}"
                );
            }
            let count = histogram.count;
            let _ = writeln!(
                out,
                "{name}_bucket{{op_kind=\"{kind}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{op_kind=\"{kind}\"}} {}", histogram.sum);
            let _ = writeln!(out, "{name}_count{{op_kind=\"{kind}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_operations_total Lifecycle operations by kind and outcome.\n# TYPE everarcade_manager_operations_total counter"
        );
        for ((kind, outcome), n) in lock(&self.operations).iter() {
            let _ = writeln!(
                out,
                "everarcade_manager_operations_total{{op_kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_reconcile_drift_total Records the reconciler corrected, by kind.\n# TYPE everarcade_manager_reconcile_drift_total counter"
        );
        let drift = lock(&self.drift);
        for kind in ["adopt", "dispose", "observed_exited"] {
            let n = drift.get(kind).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "everarcade_manager_reconcile_drift_total{{kind=\"{kind}\"}} {n}"
            );
        }
        drop(drift);
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_health_events_total Health events by type.\n# TYPE everarcade_manager_health_events_total counter"
        );
        for (event_type, n) in lock(&self.events).iter() {
            let _ = writeln!(
                out,
                "everarcade_manager_health_events_total{{event_type=\"{event_type}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP everarcade_manager_stream_lag Stream entries not consumed yet.\n# TYPE everarcade_manager_stream_lag gauge"
        );
        for (stream, n) in lock(&self.lag).iter() {
            let _ = writeln!(
                out,
                "everarcade_manager_stream_lag{{stream=\"{stream}\"}} {n}"
            );
        }
        out
    }
}
