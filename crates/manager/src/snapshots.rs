//! The latest health of each supervised world, kept in memory and written
//! to `health_snapshots` only when something an operator acts on changed —
//! readiness, the tick-rate band (below 90% of the manifest rate or not),
//! the probe-failure streak up to `manager.probe_failure_threshold`, the
//! last event — or when `manager.snapshot_heartbeat_ms` passed since the
//! world's last write. The writes of one worker pass go in one transaction.
//!
//! The API answers from memory, so a record's `health` is as fresh as the
//! last probe or inspection; the table lags it by at most the heartbeat
//! (and holds every change an operator acts on as it happens). A world no
//! longer supervised is written once more if its latest differs from what
//! the table holds, then dropped from memory; so is every world at
//! shutdown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::db::Snapshot;

/// What a snapshot holds that an operator acts on.
#[derive(Debug, PartialEq)]
struct Significant<'a> {
    ready: bool,
    degraded: bool,
    failures: i64,
    last_event: Option<&'a str>,
}

impl Significant<'_> {
    fn of(snapshot: &Snapshot, threshold: i64) -> Significant<'_> {
        Significant {
            ready: snapshot.ready,
            degraded: matches!(
                (snapshot.tick_rate_hz, snapshot.achieved_tick_rate_hz),
                (Some(rate), Some(achieved)) if achieved < 0.9 * rate
            ),
            failures: snapshot.consecutive_probe_failures.min(threshold),
            last_event: snapshot.last_event.as_deref(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    latest: Snapshot,
    written: Option<(Snapshot, Instant)>,
}

/// The latest snapshot of each world and what the table holds of it.
#[derive(Debug)]
pub struct Snapshots {
    heartbeat: Duration,
    threshold: i64,
    worlds: BTreeMap<String, Entry>,
}

impl Snapshots {
    /// Writes at least every `heartbeat`; failure streaks count up to
    /// `threshold`.
    pub fn new(heartbeat: Duration, threshold: u32) -> Snapshots {
        Snapshots {
            heartbeat,
            threshold: i64::from(threshold.max(1)),
            worlds: BTreeMap::new(),
        }
    }

    /// The latest snapshot of `world` seen by this manager.
    pub fn latest(&self, world: &str) -> Option<Snapshot> {
        self.worlds.get(world).map(|entry| entry.latest.clone())
    }

    /// Applies `change` to the latest snapshot of `world`; returns it when
    /// it is to be written now (the first of a world, a significant
    /// change, or the heartbeat passed), and counts it as written.
    pub fn observe(
        &mut self,
        world: &str,
        now: Instant,
        change: impl FnOnce(&mut Snapshot),
    ) -> Option<Snapshot> {
        let entry = self
            .worlds
            .entry(world.to_string())
            .or_insert_with(|| Entry {
                latest: Snapshot {
                    world: world.to_string(),
                    ..Snapshot::default()
                },
                written: None,
            });
        change(&mut entry.latest);
        let due = match &entry.written {
            None => true,
            Some((written, at)) => {
                Significant::of(written, self.threshold)
                    != Significant::of(&entry.latest, self.threshold)
                    || now.saturating_duration_since(*at) >= self.heartbeat
            }
        };
        if !due {
            return None;
        }
        entry.written = Some((entry.latest.clone(), now));
        Some(entry.latest.clone())
    }

    /// A write of these snapshots failed: the next observation of each
    /// world writes again.
    pub fn unwritten(&mut self, snapshots: &[Snapshot]) {
        for snapshot in snapshots {
            if let Some(entry) = self.worlds.get_mut(&snapshot.world) {
                entry.written = None;
            }
        }
    }

    /// Drops the worlds `keep` refuses, returning those whose latest
    /// snapshot the table does not hold yet.
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool) -> Vec<Snapshot> {
        let gone: Vec<String> = self
            .worlds
            .keys()
            .filter(|world| !keep(world))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|world| self.worlds.remove(&world))
            .filter(|entry| entry.written.as_ref().map(|(s, _)| s) != Some(&entry.latest))
            .map(|entry| entry.latest)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_on_significant_change_or_heartbeat_only() {
        let heartbeat = Duration::from_secs(60);
        let mut snapshots = Snapshots::new(heartbeat, 3);
        let t0 = Instant::now();
        let healthy = |tick: i64| {
            move |s: &mut Snapshot| {
                s.ready = true;
                s.head_tick = Some(tick);
                s.tick_rate_hz = Some(20.0);
                s.achieved_tick_rate_hz = Some(19.9);
                s.consecutive_probe_failures = 0;
            }
        };
        let first = snapshots
            .observe("w", t0, healthy(10))
            .expect("the first is written");
        assert_eq!((first.world.as_str(), first.head_tick), ("w", Some(10)));
        // The tick, the roots and the exact rate move all the time: held in
        // memory (the API shows them), not written.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(snapshots.observe("w", t1, healthy(110)), None);
        assert_eq!(snapshots.latest("w").unwrap().head_tick, Some(110));
        // The rate band changes: written at once.
        let slow = snapshots.observe("w", t1, |s| s.achieved_tick_rate_hz = Some(12.0));
        assert_eq!(slow.unwrap().achieved_tick_rate_hz, Some(12.0));
        assert_eq!(
            snapshots.observe("w", t1, healthy(120)).unwrap().head_tick,
            Some(120)
        );
        // A failure streak is written up to the threshold, then not again.
        for failures in 1..=3 {
            let failing = |s: &mut Snapshot| {
                s.ready = false;
                s.consecutive_probe_failures = failures;
            };
            assert!(snapshots.observe("w", t1, failing).is_some(), "{failures}");
        }
        assert_eq!(
            snapshots.observe("w", t1, |s| s.consecutive_probe_failures = 4),
            None
        );
        assert!(
            snapshots
                .observe("w", t1, |s| s.last_event = Some("probe_failed".into()))
                .is_some()
        );
        // The heartbeat: written although nothing significant changed.
        let t2 = t1 + heartbeat;
        assert_eq!(
            snapshots.observe("w", t2 - Duration::from_millis(1), |_| {}),
            None
        );
        assert!(
            snapshots
                .observe("w", t2, |s| s.head_tick = Some(900))
                .is_some()
        );
        // A failed write is retried at the next observation.
        let written = snapshots.observe("v", t2, healthy(1)).unwrap();
        snapshots.unwritten(&[written]);
        assert!(snapshots.observe("v", t2, healthy(2)).is_some());
    }

    #[test]
    fn forgetting_flushes_what_the_table_lacks() {
        let mut snapshots = Snapshots::new(Duration::from_secs(60), 3);
        let now = Instant::now();
        snapshots.observe("a", now, |s| s.ready = true).unwrap();
        snapshots.observe("b", now, |s| s.ready = true).unwrap();
        assert_eq!(snapshots.observe("b", now, |s| s.head_tick = Some(7)), None);
        let flushed = snapshots.forget(|world| world == "c");
        assert_eq!(flushed.len(), 1, "a is written as it is; b's tick is not");
        assert_eq!(flushed[0].world, "b");
        assert_eq!(flushed[0].head_tick, Some(7));
        assert_eq!(snapshots.latest("a"), None);
        assert!(snapshots.forget(|_| false).is_empty());
    }
}
