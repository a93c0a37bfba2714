//! Printing: machine facts, and each figure beside its limit as a ratio with
//! the target it is held to.

use std::fmt::Write as _;

/// How a ratio is judged against its target.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The ratio must be at most this (a slowdown against a floor).
    AtMost(f64),
    /// The ratio must be at least this (a speed-up, e.g. real-time factor).
    AtLeast(f64),
    /// Reported for transparency only.
    None,
}

impl Target {
    /// `met`, `MISSED, N% over` (or `short`), or a note that there is none.
    pub fn verdict(self, ratio: f64) -> String {
        match self {
            Target::AtMost(limit) if ratio <= limit => format!("(target <= {limit}x: met)"),
            Target::AtMost(limit) => {
                let over = 100.0 * (ratio / limit - 1.0);
                format!("(target <= {limit}x: MISSED, {over:.1}% over)")
            }
            Target::AtLeast(limit) if ratio >= limit => format!("(target >= {limit}x: met)"),
            Target::AtLeast(limit) => {
                let short = 100.0 * (1.0 - ratio / limit);
                format!("(target >= {limit}x: MISSED, {short:.1}% short)")
            }
            Target::None => "(no target; for transparency)".to_owned(),
        }
    }
}

/// A rate or count: whole numbers from 100 up, one decimal below.
pub fn count(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Microseconds with one decimal.
pub fn micros(seconds: f64) -> String {
    format!("{:.1} us", seconds * 1e6)
}

/// Machine facts: logical CPUs, CPU model, load average, build of the floor.
pub fn machine_facts() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let mut out = String::new();
    let _ = writeln!(out, "machine: nproc {cpus}, cpu {model}");
    let _ = writeln!(out, "load average at start: {}", load_average());
    let _ = writeln!(
        out,
        "native floor compiled by: {}",
        env!("EA_BENCH_NATIVE_CC")
    );
    out
}

/// The 1-, 5- and 15-minute load averages, as the kernel reports them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}
