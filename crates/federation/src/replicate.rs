//! The seams between a node and a transport.

use std::future::Future;
use std::pin::Pin;

use crate::error::FederationError;
use crate::wire::{Position, WireRecord};

/// Resolves once records handed to a [`Replicator`] are replicated as its
/// acknowledgement policy asks (`--ack replicated`).
pub type ReplicationWait = Pin<Box<dyn Future<Output = Result<(), FederationError>> + Send>>;

/// Where an authority's durable records go (HTTP followers, JetStream).
pub trait Replicator: Send + Sync + 'static {
    /// Called in journal order, right after `records` became durable in the
    /// authority's own journal.
    fn replicate(&self, records: Vec<WireRecord>) -> ReplicationWait;
}

/// Where a follower's records come from (the authority over HTTP, JetStream).
pub trait RecordSource: Send + 'static {
    /// The records after `after`, the follower's durable head (all it has
    /// journaled), in order; waits a bounded time for new ones.
    fn next(
        &mut self,
        after: Position,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WireRecord>, FederationError>> + Send + '_>>;

    /// Where to tell the authority that records are durable here (what
    /// `--ack replicated` over HTTP counts), for transports that take such
    /// reports; `None` by default (JetStream counts its own
    /// acknowledgements). A source that gives one may be asked for the
    /// records after a batch before that batch is durable (the follower
    /// pulls the next batch while it applies one), and is then asked again
    /// from the durable head if the batch was refused.
    fn durable_reports(&mut self) -> Option<DurableReports> {
        None
    }

    /// Tells the authority, where the transport can, that this follower's
    /// roots differed from its tick record at `tick` and that it stopped
    /// following at `after` (over HTTP on its last pull; on JetStream in the
    /// divergence bucket, which an authority reads whenever it starts
    /// leading). Sent once and not retried: a failure is logged (the
    /// follower's own status, `/readyz` and incident record it in any
    /// case). By default nothing is sent.
    fn report_divergence(
        &mut self,
        after: Position,
        tick: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let _ = (after, tick);
        Box::pin(async {})
    }
}

/// Reports of a follower's durable record to its authority, sent by a task
/// of the source's; the newest replaces any not yet sent (never queued).
#[derive(Clone, Debug)]
pub struct DurableReports(pub(crate) tokio::sync::watch::Sender<u64>);

impl DurableReports {
    /// Every record through ordinal `durable` is durable here; returns at
    /// once.
    pub fn report(&self, durable: u64) {
        self.0.send_replace(durable);
    }
}
