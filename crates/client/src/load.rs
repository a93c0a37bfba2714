//! A bounded load generator: signed envelopes, prepared beforehand, sent to a
//! node as fast as it acknowledges them, over a fixed number of concurrent
//! lanes.
//!
//! Each [`Lane`] is sent strictly in order, one request at a time, and the
//! lanes run concurrently. Put all of one sender's envelopes in one lane, in
//! nonce order: the node requires each sender's nonces to increase, so two
//! lanes sharing a sender would refuse each other's inputs as `stale_nonce`.
//!
//! It is bounded twice: by the envelopes given (each is sent at most once,
//! refusals are counted, not retried) and by [`LoadConfig::duration`], after
//! which no lane starts another request. A request in flight at the deadline
//! still finishes, within the client's timeout.
//!
//! A lane told to come back later (429: `tick_full`, or `rate_limited` with
//! `Retry-After`) pauses before its next request, as a well-behaved client
//! does: otherwise the quick refusals of a full tick would burn through the
//! prepared envelopes in a tight loop until the tick executes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use everarcade_protocol::Envelope;

use crate::client::Client;
use crate::error::ClientError;

/// One request: a single envelope, or a batch.
pub type Request = Vec<Envelope>;

/// Requests sent in order, one at a time.
pub type Lane = Vec<Request>;

/// How a load run is bounded.
#[derive(Clone, Copy, Debug)]
pub struct LoadConfig {
    /// No request starts after this much time.
    pub duration: Duration,
    /// How long a lane pauses after a `tick_full` refusal (one tick period
    /// of the world is right), and after a 429 without `Retry-After`.
    pub pause_after_full: Duration,
}

/// What a load run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Envelopes in requests that were sent.
    pub sent: u64,
    /// Envelopes the node acknowledged (202, durable).
    pub acknowledged: u64,
    /// Envelopes refused, by the node's code (or the client's, such as
    /// `unreachable` or `timeout`, for requests that got no answer).
    pub refused: BTreeMap<String, u64>,
    /// Requests sent.
    pub requests: u64,
    /// From the first request to the last answer, in seconds.
    pub elapsed_seconds: f64,
    /// Latency of every request that was answered 202, in microseconds, sorted.
    pub latencies_micros: Vec<u64>,
    /// Whether the deadline stopped the run before every envelope was sent.
    pub stopped_by_deadline: bool,
}

impl LoadReport {
    /// Acknowledged envelopes per second.
    pub fn acknowledged_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.acknowledged as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }

    /// The `q`-quantile (0..=1) of acknowledgement latency, in microseconds
    /// (nearest rank); `None` without an acknowledged request.
    pub fn latency_quantile_micros(&self, q: f64) -> Option<u64> {
        assert!((0.0..=1.0).contains(&q), "a quantile is within 0..=1");
        if self.latencies_micros.is_empty() {
            return None;
        }
        let rank = (q * self.latencies_micros.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_micros.len()) - 1;
        Some(self.latencies_micros[index])
    }

    /// Envelopes refused, all codes together.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    fn merge(&mut self, other: LoadReport) {
        self.sent += other.sent;
        self.acknowledged += other.acknowledged;
        self.requests += other.requests;
        for (code, count) in other.refused {
            *self.refused.entry(code).or_default() += count;
        }
        self.latencies_micros.extend(other.latencies_micros);
        self.stopped_by_deadline |= other.stopped_by_deadline;
    }

    /// One JSON object: counts, rate and latency quantiles.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "requests": self.requests,
            "elapsed_seconds": self.elapsed_seconds,
            "acknowledged_per_second": self.acknowledged_per_second(),
            "latency_p50_micros": self.latency_quantile_micros(0.5),
            "latency_p99_micros": self.latency_quantile_micros(0.99),
            "stopped_by_deadline": self.stopped_by_deadline,
        })
    }
}

/// Sends every lane concurrently on the current tokio runtime and reports.
/// Single-envelope requests go through [`Client::submit`], longer ones
/// through [`Client::submit_batch`].
pub async fn run(client: &Client, lanes: Vec<Lane>, config: LoadConfig) -> LoadReport {
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut tasks = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let client = client.clone();
        tasks.push(tokio::spawn(run_lane(client, lane, config, deadline)));
    }
    let mut report = LoadReport::default();
    for task in tasks {
        let lane = task.await.expect("a lane never panics");
        report.merge(lane);
    }
    report.elapsed_seconds = start.elapsed().as_secs_f64();
    report.latencies_micros.sort_unstable();
    report
}

async fn run_lane(client: Client, lane: Lane, config: LoadConfig, deadline: Instant) -> LoadReport {
    let mut report = LoadReport::default();
    for request in lane {
        if Instant::now() >= deadline {
            report.stopped_by_deadline = true;
            break;
        }
        let count = request.len() as u64;
        report.sent += count;
        report.requests += 1;
        let sent_at = Instant::now();
        let pause = if let [envelope] = request.as_slice() {
            match client.submit(envelope).await {
                Ok(_) => {
                    report.acknowledged += 1;
                    report.latencies_micros.push(micros(sent_at));
                    None
                }
                Err(error) => {
                    refuse(&mut report, &error, 1);
                    pause_for(&error, &config)
                }
            }
        } else {
            match client.submit_batch(&request).await {
                Ok(results) => {
                    report.latencies_micros.push(micros(sent_at));
                    let mut full = false;
                    for result in results {
                        match result {
                            Ok(_) => report.acknowledged += 1,
                            Err(refusal) => {
                                full |= refusal.code == "tick_full";
                                *report.refused.entry(refusal.code).or_default() += 1;
                            }
                        }
                    }
                    full.then_some(config.pause_after_full)
                }
                Err(error) => {
                    refuse(&mut report, &error, count);
                    pause_for(&error, &config)
                }
            }
        };
        if let Some(pause) = pause {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(left)).await;
        }
    }
    report
}

/// How long to wait after a refusal that says "later" (429).
fn pause_for(error: &ClientError, config: &LoadConfig) -> Option<Duration> {
    match error {
        ClientError::Node {
            status: 429,
            code,
            retry_after_seconds,
            ..
        } => Some(match retry_after_seconds {
            Some(seconds) if code != "tick_full" => Duration::from_secs(*seconds),
            _ => config.pause_after_full,
        }),
        _ => None,
    }
}

fn refuse(report: &mut LoadReport, error: &ClientError, count: u64) {
    *report.refused.entry(error.code().to_string()).or_default() += count;
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let report = LoadReport {
            latencies_micros: (1..=100).collect(),
            ..LoadReport::default()
        };
        assert_eq!(report.latency_quantile_micros(0.5), Some(50));
        assert_eq!(report.latency_quantile_micros(0.99), Some(99));
        assert_eq!(report.latency_quantile_micros(1.0), Some(100));
        assert_eq!(report.latency_quantile_micros(0.0), Some(1));
        assert_eq!(LoadReport::default().latency_quantile_micros(0.5), None);
    }
}
