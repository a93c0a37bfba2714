//! Prometheus text exposition (format 0.0.4) of the node's counters, gauges
//! and histograms. Labels are bounded by construction: route templates
//! (never raw paths), methods, status codes and the stable error codes.
//!
//! Hand-written because the set is small and fixed: atomics for the hot
//! counters, a mutex-guarded `BTreeMap` for labelled series (so the output
//! order is stable).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Series in one labelled family at most; beyond it new label sets are
/// counted under `other` (the label sets are bounded anyway; this is the
/// assertion that they stay so).
const LABELLED_SERIES_MAX: usize = 512;

/// A histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_SECONDS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(duration.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_SECONDS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// A counter family with one label.
#[derive(Debug, Default)]
pub struct LabelledCounter {
    series: Mutex<BTreeMap<String, u64>>,
}

impl LabelledCounter {
    /// Adds `n` to the series `label`.
    pub fn add(&self, label: &str, n: u64) {
        let mut series = self.series.lock().expect("metrics lock");
        let full = series.len() >= LABELLED_SERIES_MAX && !series.contains_key(label);
        let key = if full { "other" } else { label };
        *series.entry(key.to_string()).or_default() += n;
    }

    /// The value of one series (0 if never counted).
    pub fn get(&self, label: &str) -> u64 {
        let series = self.series.lock().expect("metrics lock");
        series.get(label).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, label_name: &str) {
        let series = self.series.lock().expect("metrics lock");
        for (label, value) in series.iter() {
            let _ = writeln!(out, "{name}{{{label_name}=\"{label}\"}} {value}");
        }
    }
}

/// Request latency by (route template, method, status).
#[derive(Debug, Default)]
pub struct RequestLatency {
    series: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl RequestLatency {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, duration: Duration) {
        let mut series = self.series.lock().expect("metrics lock");
        let mut key = (route.to_string(), method.to_string(), status);
        if series.len() >= LABELLED_SERIES_MAX && !series.contains_key(&key) {
            key = ("other".into(), "other".into(), 0);
        }
        series.entry(key).or_default().observe(duration);
    }

    fn render(&self, out: &mut String, name: &str) {
        let series = self.series.lock().expect("metrics lock");
        for ((route, method, status), histogram) in series.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            histogram.render(out, name, &labels);
        }
    }
}

/// Every metric the node exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Ticks executed by this process.
    pub ticks: AtomicU64,
    /// Wall time of each tick (execute + journal + commit).
    pub tick_duration: Histogram,
    /// Inputs admitted (acknowledged durable).
    pub inputs_admitted: AtomicU64,
    /// Inputs refused at admission, by reason.
    pub inputs_rejected: LabelledCounter,
    /// Every error response, by its code.
    pub rejected: LabelledCounter,
    /// Write + fdatasync of one group commit.
    pub journal_fsync: Histogram,
    /// Inputs per group commit.
    pub group_commit_inputs: AtomicU64,
    /// Group commits.
    pub group_commits: AtomicU64,
    /// Checkpoint write time.
    pub checkpoint_duration: Histogram,
    /// State entries now.
    pub state_keys: AtomicU64,
    /// State bytes (keys and values) now.
    pub state_bytes: AtomicU64,
    /// The head tick.
    pub head_tick: AtomicU64,
    /// Requests by route template, method and status.
    pub requests: RequestLatency,
}

impl Metrics {
    /// The Prometheus text exposition; `gauges` are the live readings the
    /// caller adds (admission open, ready).
    pub fn render(&self, admission_open: bool, ready: bool) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        counter(
            &mut out,
            "everarcade_ticks_total",
            "Ticks executed by this process.",
            load(&self.ticks),
        );
        histogram_header(
            &mut out,
            "everarcade_tick_duration_seconds",
            "Wall time per tick: execute, journal, fdatasync.",
        );
        self.tick_duration
            .render(&mut out, "everarcade_tick_duration_seconds", "");
        counter(
            &mut out,
            "everarcade_inputs_admitted_total",
            "Inputs admitted and durable (answered 202).",
            load(&self.inputs_admitted),
        );
        let _ = writeln!(
            out,
            "# HELP everarcade_inputs_rejected_total Inputs refused at admission, by reason.\n# TYPE everarcade_inputs_rejected_total counter"
        );
        self.inputs_rejected
            .render(&mut out, "everarcade_inputs_rejected_total", "reason");
        let _ = writeln!(
            out,
            "# HELP everarcade_rejected_total Error responses, by stable code.\n# TYPE everarcade_rejected_total counter"
        );
        self.rejected
            .render(&mut out, "everarcade_rejected_total", "reason");
        histogram_header(
            &mut out,
            "everarcade_journal_fsync_seconds",
            "Write + fdatasync of one group commit of inputs.",
        );
        self.journal_fsync
            .render(&mut out, "everarcade_journal_fsync_seconds", "");
        counter(
            &mut out,
            "everarcade_group_commits_total",
            "Group commits of inputs.",
            load(&self.group_commits),
        );
        counter(
            &mut out,
            "everarcade_group_commit_inputs_total",
            "Inputs covered by group commits.",
            load(&self.group_commit_inputs),
        );
        histogram_header(
            &mut out,
            "everarcade_checkpoint_duration_seconds",
            "Time to write one checkpoint.",
        );
        self.checkpoint_duration
            .render(&mut out, "everarcade_checkpoint_duration_seconds", "");
        gauge(
            &mut out,
            "everarcade_state_keys",
            "State entries at the head.",
            load(&self.state_keys),
        );
        gauge(
            &mut out,
            "everarcade_state_bytes",
            "State bytes (keys and values) at the head.",
            load(&self.state_bytes),
        );
        gauge(
            &mut out,
            "everarcade_head_tick",
            "The head tick.",
            load(&self.head_tick),
        );
        gauge(
            &mut out,
            "everarcade_admission_open",
            "1 while admission is open.",
            admission_open as u64,
        );
        gauge(
            &mut out,
            "everarcade_ready",
            "1 while /readyz answers 200.",
            ready as u64,
        );
        histogram_header(
            &mut out,
            "everarcade_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
        );
        self.requests
            .render(&mut out, "everarcade_http_request_duration_seconds");
        out
    }
}

fn histogram_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        let mut out = String::new();
        histogram.render(&mut out, "h", "");
        assert!(out.contains("h_bucket{le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("h_count 2\n"), "{out}");
    }

    #[test]
    fn labelled_series_are_bounded() {
        let counter = LabelledCounter::default();
        for i in 0..LABELLED_SERIES_MAX + 10 {
            counter.add(&format!("l{i}"), 1);
        }
        assert_eq!(counter.get("other"), 10);
        assert_eq!(
            counter.series.lock().unwrap().len(),
            LABELLED_SERIES_MAX + 1
        );
    }
}
