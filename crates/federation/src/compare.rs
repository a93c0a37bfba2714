//! Comparing a local journal with a peer's record stream
//! (`federation compare`, docs/FEDERATION.md §Recovery commands).
//!
//! Both sides are walked in step (the caller reads its journal only as far
//! as the peer's stream has come), so what is held is one page of the
//! stream plus the ticks one side is ahead of the other, whatever the
//! journals' length. Compared:
//! - the record checksums at every common ordinal (both are hash chains:
//!   the first ordinal where they differ is where the histories part);
//! - the four roots of every common tick (or of every `sample`-th tick, the
//!   last common tick and the tick of the first differing record always
//!   included), matched by tick number, not ordinal, since two histories
//!   that parted may hold different numbers of inputs records.
//!
//! The peer's records are checked before they are compared (framing,
//! checksum, chain from the genesis record both sides share, a body that
//! decodes): a record that does not check out is refused, not reported as
//! a divergence. The local journal is read with the journal reader, which
//! checks the same.
//!
//! Not responsible for fetching (the binary pages the stream over HTTP) or
//! for re-executing anything: a comparison trusts each side's recorded
//! roots; `replay-verify` checks the local ones.

use std::collections::VecDeque;

use everarcade_protocol::{Hash, Tick, TickRoots};
use everarcade_store::Record;
use everarcade_store::journal::{RecordKind, decode_body, decode_record_frame};
use everarcade_world::replay::differing_roots;

use crate::error::FederationError;
use crate::wire::WireRecord;

/// What a record contributes to a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Its ordinal.
    pub ordinal: u64,
    /// Its checksum.
    pub checksum: Hash,
    /// The tick it belongs to (0 for the genesis record).
    pub tick: Tick,
    /// A tick record's roots.
    pub roots: Option<TickRoots>,
}

impl Summary {
    /// The summary of a decoded record.
    pub fn of(ordinal: u64, checksum: Hash, record: &Record) -> Summary {
        let (tick, roots) = match record {
            Record::Genesis(_) => (0, None),
            Record::Inputs(inputs) => (inputs.tick, None),
            Record::Tick(tick) => (tick.roots.tick, Some(tick.roots)),
        };
        Summary {
            ordinal,
            checksum,
            tick,
            roots,
        }
    }
}

/// The first place two histories differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The first common ordinal whose checksums differ (`None` when every
    /// common record is equal but a tick's roots are not, which the chain
    /// rules out for records that check out).
    pub ordinal: Option<u64>,
    /// The peer's and our checksum at [`Divergence::ordinal`].
    pub checksums: Option<(Hash, Hash)>,
    /// The tick our record at [`Divergence::ordinal`] belongs to.
    pub record_tick: Option<Tick>,
    /// The first compared tick whose roots differ, if one was found.
    pub tick: Option<Tick>,
    /// Each root that differs at [`Divergence::tick`]: (name, the peer's, ours).
    pub roots: Vec<(&'static str, Hash, Hash)>,
}

/// What a comparison found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Common records whose checksums were compared (the genesis record included).
    pub records_compared: u64,
    /// Common ticks whose roots were compared.
    pub ticks_compared: u64,
    /// The last common record and tick walked: (ordinal, tick).
    pub last_common: (u64, Tick),
    /// The last record of ours read: (ordinal, tick).
    pub local_head: (u64, Tick),
    /// The last record of the peer's read: (ordinal, tick).
    pub peer_head: (u64, Tick),
    /// The first divergence, if any.
    pub divergence: Option<Divergence>,
}

/// A comparison in progress: feed both sides in ordinal order, then
/// [`Comparison::finish`].
#[derive(Debug)]
pub struct Comparison {
    sample_ticks: u64,
    local: VecDeque<Summary>,
    peer: VecDeque<Summary>,
    local_ticks: VecDeque<(Tick, TickRoots)>,
    peer_ticks: VecDeque<(Tick, TickRoots)>,
    peer_last: Hash,
    local_head: (u64, Tick),
    peer_head: (u64, Tick),
    records_compared: u64,
    ticks_compared: u64,
    last_common: (u64, Tick),
    last_tick_pair: Option<(Tick, TickRoots, TickRoots, bool)>,
    divergence: Option<Divergence>,
}

impl Comparison {
    /// A comparison of two journals that share the genesis record with
    /// checksum `genesis` (the peer confirmed it by answering its stream
    /// after it), comparing the roots of every `sample_ticks`-th tick
    /// (at least 1).
    pub fn new(genesis: Hash, sample_ticks: u64) -> Comparison {
        Comparison {
            sample_ticks: sample_ticks.max(1),
            local: VecDeque::new(),
            peer: VecDeque::new(),
            local_ticks: VecDeque::new(),
            peer_ticks: VecDeque::new(),
            peer_last: genesis,
            local_head: (0, 0),
            peer_head: (0, 0),
            records_compared: 1,
            ticks_compared: 0,
            last_common: (0, 0),
            last_tick_pair: None,
            divergence: None,
        }
    }

    /// One of our records after the genesis record, in order.
    pub fn push_local(&mut self, summary: Summary) {
        assert_eq!(
            summary.ordinal,
            self.local_head.0 + 1,
            "local records in order"
        );
        self.local_head = (summary.ordinal, summary.tick);
        if let Some(roots) = summary.roots {
            self.local_ticks.push_back((summary.tick, roots));
        }
        self.local.push_back(summary);
        self.settle();
    }

    /// The peer's records, in order, checked first: framing, checksum,
    /// chain and body. A record that does not check out is refused
    /// (`record_refused`) and nothing of it is compared.
    pub fn push_peer(&mut self, records: &[WireRecord]) -> Result<(), FederationError> {
        for record in records {
            let summary = self.check_peer(record)?;
            self.peer_last = summary.checksum;
            self.peer_head = (summary.ordinal, summary.tick);
            if let Some(roots) = summary.roots {
                self.peer_ticks.push_back((summary.tick, roots));
            }
            self.peer.push_back(summary);
        }
        self.settle();
        Ok(())
    }

    fn check_peer(&self, record: &WireRecord) -> Result<Summary, FederationError> {
        let refused = |reason: String| FederationError::Refused {
            ordinal: record.ordinal,
            reason,
        };
        if record.ordinal != self.peer_head.0 + 1 {
            return Err(refused(format!(
                "the peer sent record {} after record {}",
                record.ordinal, self.peer_head.0
            )));
        }
        let frame = decode_record_frame(&record.bytes).map_err(refused)?;
        if frame.prev != self.peer_last {
            return Err(refused(format!(
                "it chains to {}, not to the peer's record before it ({})",
                frame.prev, self.peer_last
            )));
        }
        if frame.kind == RecordKind::Genesis {
            return Err(refused("a genesis record after the first".into()));
        }
        let body = decode_body(frame.kind, frame.body).map_err(refused)?;
        Ok(Summary::of(record.ordinal, frame.checksum, &body))
    }

    /// Whether walking further can change the outcome: false once no common
    /// tick is left to find (our journal is read to its end and the peer is
    /// past our last tick) or the first divergent tick is known.
    pub fn wants_more(&self, local_done: bool) -> bool {
        let tick_known = self
            .divergence
            .as_ref()
            .is_some_and(|divergence| divergence.tick.is_some());
        let past_us = local_done && self.peer_head.1 > self.local_head.1;
        !(tick_known || past_us)
    }

    /// The peer's last record read: the position to ask its stream after.
    pub fn peer_position(&self) -> (u64, Hash) {
        (self.peer_head.0, self.peer_last)
    }

    /// The ordinal of our last record read.
    pub fn local_ordinal(&self) -> u64 {
        self.local_head.0
    }

    /// Compares what both sides have.
    fn settle(&mut self) {
        while let (Some(local), Some(peer)) = (self.local.front(), self.peer.front()) {
            let (local, peer) = (*local, *peer);
            self.local.pop_front();
            self.peer.pop_front();
            self.records_compared += 1;
            self.last_common = (local.ordinal, local.tick.min(peer.tick));
            if local.checksum != peer.checksum && self.divergence.is_none() {
                self.divergence = Some(Divergence {
                    ordinal: Some(local.ordinal),
                    checksums: Some((peer.checksum, local.checksum)),
                    record_tick: Some(local.tick),
                    tick: None,
                    roots: Vec::new(),
                });
            }
        }
        self.settle_ticks();
    }

    fn settle_ticks(&mut self) {
        while let (Some(&(local_tick, ours)), Some(&(peer_tick, theirs))) =
            (self.local_ticks.front(), self.peer_ticks.front())
        {
            // Both sides hold one tick record per tick, in tick order.
            if local_tick < peer_tick {
                self.local_ticks.pop_front();
                continue;
            }
            if peer_tick < local_tick {
                self.peer_ticks.pop_front();
                continue;
            }
            self.local_ticks.pop_front();
            self.peer_ticks.pop_front();
            let divergent_record_tick = self.divergence.as_ref().is_some_and(|d| d.tick.is_none());
            let sampled = local_tick % self.sample_ticks == 0 || divergent_record_tick;
            if sampled {
                self.compare_tick(local_tick, &theirs, &ours);
            }
            self.last_tick_pair = Some((local_tick, theirs, ours, sampled));
        }
    }

    fn compare_tick(&mut self, tick: Tick, theirs: &TickRoots, ours: &TickRoots) {
        self.ticks_compared += 1;
        let roots = differing_roots(theirs, ours);
        if roots.is_empty() {
            return;
        }
        let divergence = self.divergence.get_or_insert(Divergence {
            ordinal: None,
            checksums: None,
            record_tick: None,
            tick: None,
            roots: Vec::new(),
        });
        if divergence.tick.is_none() {
            divergence.tick = Some(tick);
            divergence.roots = roots;
        }
    }

    /// The outcome; the last common tick's roots are compared now if the
    /// sampling skipped them.
    pub fn finish(mut self) -> Outcome {
        if let Some((tick, theirs, ours, false)) = self.last_tick_pair.take() {
            self.compare_tick(tick, &theirs, &ours);
        }
        Outcome {
            records_compared: self.records_compared,
            ticks_compared: self.ticks_compared,
            last_common: self.last_common,
            local_head: self.local_head,
            peer_head: self.peer_head,
            divergence: self.divergence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use everarcade_store::journal::TickRecord;
    use everarcade_store::journal::encode_record;

    fn roots(tick: Tick, state: u8) -> TickRoots {
        TickRoots {
            tick,
            input_root: Hash([1; 32]),
            receipt_root: Hash([2; 32]),
            state_root: Hash([state; 32]),
            continuity_root: Hash([4; 32]),
        }
    }

    /// A journal of `ticks` empty ticks after a genesis checksum, each
    /// tick's state root `state(tick)`: its records as the peer sends them
    /// and as our reader summarizes them.
    fn journal(ticks: Tick, state: impl Fn(Tick) -> u8) -> (Vec<WireRecord>, Vec<Summary>) {
        let mut prev = Hash([9; 32]);
        let (mut wire, mut summaries) = (Vec::new(), Vec::new());
        for tick in 1..=ticks {
            let record = Record::Tick(TickRecord {
                roots: roots(tick, state(tick)),
                input_count: 0,
                receipts: Vec::new(),
            });
            let mut bytes = Vec::new();
            let checksum =
                encode_record(RecordKind::Tick, &record.encode_body(), &prev, &mut bytes);
            wire.push(WireRecord {
                ordinal: tick,
                kind: RecordKind::Tick,
                bytes,
            });
            summaries.push(Summary::of(tick, checksum, &record));
            prev = checksum;
        }
        (wire, summaries)
    }

    fn compare(ours: &[Summary], theirs: &[WireRecord], sample: u64) -> Outcome {
        let mut comparison = Comparison::new(Hash([9; 32]), sample);
        comparison.push_peer(theirs).unwrap();
        for summary in ours {
            comparison.push_local(*summary);
        }
        comparison.finish()
    }

    #[test]
    fn equal_journals_compare_every_tick_through_the_shorter() {
        let (wire, _) = journal(10, |_| 3);
        let (_, ours) = journal(7, |_| 3);
        let outcome = compare(&ours, &wire, 1);
        assert_eq!(outcome.divergence, None);
        assert_eq!(outcome.last_common, (7, 7));
        assert_eq!((outcome.records_compared, outcome.ticks_compared), (8, 7));
    }

    #[test]
    fn sampling_keeps_the_last_common_tick() {
        let (wire, ours) = journal(10, |_| 3);
        let outcome = compare(&ours[..9], &wire, 4);
        // Ticks 4 and 8, then 9 (the last common one).
        assert_eq!(outcome.ticks_compared, 3);
        assert_eq!(outcome.divergence, None);
    }

    #[test]
    fn the_first_divergent_record_and_tick_are_named() {
        let (wire, _) = journal(10, |_| 3);
        let (_, ours) = journal(10, |tick| if tick >= 6 { 5 } else { 3 });
        let outcome = compare(&ours, &wire, 100);
        let divergence = outcome.divergence.expect("a divergence");
        assert_eq!((divergence.ordinal, divergence.tick), (Some(6), Some(6)));
        assert_eq!(
            divergence.roots,
            vec![("state_root", Hash([3; 32]), Hash([5; 32]))]
        );
    }

    #[test]
    fn a_peer_record_that_does_not_chain_is_refused() {
        let (mut wire, _) = journal(3, |_| 3);
        wire.remove(1);
        wire[1].ordinal = 2;
        let mut comparison = Comparison::new(Hash([9; 32]), 1);
        let error = comparison.push_peer(&wire).unwrap_err();
        assert_eq!(error.code(), "record_refused");
        let (mut wire, _) = journal(3, |_| 3);
        let last = wire[2].bytes.len() - 1;
        wire[2].bytes[last] ^= 1;
        let error = Comparison::new(Hash([9; 32]), 1)
            .push_peer(&wire)
            .unwrap_err();
        assert!(error.to_string().contains("record 3 refused"), "{error}");
    }
}
