//! Prometheus text exposition (format 0.0.4) of the node's counters, gauges
//! and histograms. Labels are bounded by construction: route templates
//! (never raw paths, [`crate::http::ROUTE_LABELS`]), the methods of
//! [`METHOD_LABELS`] (any other method is `other`), status codes and the
//! stable error codes; all of them `&'static str` fixed at compile time.
//! The `process_*` family is read from `/proc/self` on Linux (absent
//! elsewhere), and `everarcade_build_info` names the build.
//!
//! Hand-written because the set is small and fixed: atomics for the hot
//! counters, a mutex-guarded `BTreeMap` for labelled series (so the output
//! order is stable).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::signatures::GatheredChecks;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Series in one labelled family at most; beyond it new label sets are
/// counted under `other` (the label sets are bounded anyway; this is the
/// assertion that they stay so).
const LABELLED_SERIES_MAX: usize = 512;

/// The request methods that are labels of their own; every other method is
/// counted as `other`.
pub const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "other",
];

/// The label of a request method: itself if it is in [`METHOD_LABELS`],
/// else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    METHOD_LABELS
        .iter()
        .find(|label| **label == method.as_str())
        .copied()
        .unwrap_or("other")
}

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

    /// Every series and its value.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.series.lock().expect("metrics lock").clone()
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
    series: Mutex<BTreeMap<(&'static str, &'static str, u16), Histogram>>,
}

impl RequestLatency {
    /// Records one request. `route` and `method` are labels fixed at
    /// compile time ([`crate::http::route_label`], [`method_label`]).
    pub fn observe(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        duration: Duration,
    ) {
        let mut series = self.series.lock().expect("metrics lock");
        let mut key = (route, method, status);
        if series.len() >= LABELLED_SERIES_MAX && !series.contains_key(&key) {
            key = ("other", "other", 0);
        }
        series.entry(key).or_default().observe(duration);
    }

    /// The method labels with at least one series.
    pub fn methods(&self) -> std::collections::BTreeSet<&'static str> {
        let series = self.series.lock().expect("metrics lock");
        series.keys().map(|(_, method, _)| *method).collect()
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
    /// Gathered signature checks of single-input requests (ZIP-215
    /// worlds), counted by the gathering thread.
    pub signature_batches: Arc<GatheredChecks>,
    /// Checkpoint write time.
    pub checkpoint_duration: Histogram,
    /// Checkpoints written by this process.
    pub checkpoints_written: AtomicU64,
    /// Bytes of those checkpoints.
    pub checkpoint_bytes_written: AtomicU64,
    /// Usage reports: backlog, retries, submissions.
    pub usage: std::sync::Arc<everarcade_usage::Counters>,
    /// State entries now.
    pub state_keys: AtomicU64,
    /// State bytes (keys and values) now.
    pub state_bytes: AtomicU64,
    /// The head tick.
    pub head_tick: AtomicU64,
    /// Requests by route template, method and status.
    pub requests: RequestLatency,
    /// Connections accepted, by the plane that serves them (`main`,
    /// `read`; docs/HTTP.md, "Connections").
    pub connections: LabelledCounter,
    /// A follower: records from the authority checked and applied.
    pub records_applied: AtomicU64,
    /// A follower: batches of records refused (never journaled).
    pub records_refused: AtomicU64,
    /// A follower: peer root mismatches found (each stops following).
    pub peer_root_mismatches: AtomicU64,
    /// A follower: the authority's head tick minus this node's.
    pub lag_ticks: AtomicU64,
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
        let _ = writeln!(
            out,
            "# HELP everarcade_http_connections_total Connections accepted, by the plane (runtime) that serves them.\n# TYPE everarcade_http_connections_total counter"
        );
        self.connections
            .render(&mut out, "everarcade_http_connections_total", "plane");
        histogram_header(
            &mut out,
            "everarcade_journal_fsync_seconds",
            "Write + fdatasync of one group commit of inputs.",
        );
        self.journal_fsync
            .render(&mut out, "everarcade_journal_fsync_seconds", "");
        counter(
            &mut out,
            "everarcade_follower_records_applied_total",
            "Records from the authority checked, executed and journaled (followers).",
            load(&self.records_applied),
        );
        counter(
            &mut out,
            "everarcade_follower_records_refused_total",
            "Batches of the authority's records refused, never journaled (followers).",
            load(&self.records_refused),
        );
        counter(
            &mut out,
            "everarcade_peer_root_mismatches_total",
            "Ticks whose roots here differed from the authority's (each stops following).",
            load(&self.peer_root_mismatches),
        );
        gauge(
            &mut out,
            "everarcade_follower_lag_ticks",
            "The authority's head tick minus this follower's, as last heard.",
            load(&self.lag_ticks),
        );
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
        counter(
            &mut out,
            "everarcade_signature_batches_total",
            "Gathered signature checks of single-input requests (ZIP-215 worlds).",
            load(&self.signature_batches.batches),
        );
        counter(
            &mut out,
            "everarcade_signature_batch_inputs_total",
            "Inputs whose signatures gathered checks covered.",
            load(&self.signature_batches.inputs),
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
            "everarcade_usage_backlog_reports",
            "Usage reports some configured sink has not acknowledged.",
            load(&self.usage.backlog_reports),
        );
        counter(
            &mut out,
            "everarcade_usage_submit_retries_total",
            "Failed usage report submissions (each is retried).",
            load(&self.usage.submit_retries),
        );
        counter(
            &mut out,
            "everarcade_usage_submitted_total",
            "Usage reports acknowledged by a sink (once per sink).",
            load(&self.usage.submitted),
        );
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
        let _ = writeln!(
            out,
            "# HELP everarcade_build_info The build: runtime and protocol version.\n# TYPE everarcade_build_info gauge\neverarcade_build_info{{version=\"{}\",runtime=\"{}\",protocol=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            everarcade_world::RUNTIME_VERSION,
            everarcade_protocol::PROTOCOL_VERSION,
        );
        if let Some(process) = ProcessStats::read() {
            process.render(&mut out);
        }
        out
    }
}

/// What `/proc/self` says about this process (Linux only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory size in bytes.
    pub virtual_memory_bytes: u64,
    /// User and system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` where it is not there (not Linux).
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time_seconds = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse::<u64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| parse_max_open_files(&limits));
        let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
        let page_bytes = rustix::param::page_size() as u64;
        parse_stat(&stat, ticks_per_second, page_bytes, boot_time_seconds).map(|parsed| {
            ProcessStats {
                open_fds,
                max_fds,
                ..parsed
            }
        })
    }

    fn render(&self, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds.to_string(),
        );
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.to_string(),
        );
        if let Some(max) = self.max_fds {
            metric(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max.to_string(),
            );
        }
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_memory_bytes.to_string(),
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_memory_bytes.to_string(),
        );
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds.to_string(),
        );
    }
}

/// The fields of `/proc/self/stat` this needs (proc(5)): after the
/// parenthesised command name, utime (14), stime (15), starttime (22),
/// vsize (23) and rss (24), counting from 1.
fn parse_stat(
    stat: &str,
    ticks_per_second: f64,
    page_bytes: u64,
    boot_time_seconds: u64,
) -> Option<ProcessStats> {
    // The command name may hold spaces and parentheses: split at the last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    let (utime, stime) = (field(14)?, field(15)?);
    let start_ticks = field(22)?;
    Some(ProcessStats {
        resident_memory_bytes: field(24)?.saturating_mul(page_bytes),
        virtual_memory_bytes: field(23)?,
        cpu_seconds: (utime + stime) as f64 / ticks_per_second,
        open_fds: 0,
        max_fds: None,
        start_time_seconds: boot_time_seconds as f64 + start_ticks as f64 / ticks_per_second,
    })
}

/// The soft limit in the `Max open files` line of `/proc/self/limits`.
fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
    fn proc_stat_fields() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 104857600 2560 18446744073709551615";
        let parsed = parse_stat(stat, 100.0, 4096, 1_700_000_000).expect("parses");
        assert_eq!(parsed.cpu_seconds, 3.0);
        assert_eq!(parsed.virtual_memory_bytes, 104_857_600);
        assert_eq!(parsed.resident_memory_bytes, 2560 * 4096);
        assert_eq!(parsed.start_time_seconds, 1_700_000_010.0);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let latency = RequestLatency::default();
        for i in 0..600 {
            let method = axum::http::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            latency.observe(
                "/healthz",
                method_label(&method),
                200,
                Duration::from_micros(1),
            );
        }
        latency.observe(
            "/healthz",
            method_label(&axum::http::Method::GET),
            200,
            Duration::from_micros(1),
        );
        assert_eq!(
            latency.methods().into_iter().collect::<Vec<_>>(),
            ["GET", "other"]
        );
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
