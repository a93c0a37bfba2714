//! The embedded transport: a follower pulls an authority's records over
//! HTTP from its node (`GET /v1/worlds/{world}/records`), so two hosts
//! replicate with nothing else installed (docs/FEDERATION.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use everarcade_client::HEAD_TICK_HEADER;
use everarcade_client::{Client, ClientError, RecordsQuery, Trust};
use everarcade_protocol::WorldId;

use crate::error::FederationError;
use crate::replicate::{DurableReports, RecordSource};
use crate::stream::decode_stream;
use crate::wire::{Position, WireRecord};

/// How long the authority may hold a pull open waiting for new records.
pub const PULL_WAIT: Duration = Duration::from_millis(1_000);
/// Framed bytes asked for per pull.
pub const PULL_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A no-answer limit per pull: the wait plus room for the transfer.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// A follower's [`RecordSource`] over HTTP.
///
/// Pipelined: as soon as a pull answers, the next one (after that batch's
/// last record) is sent, so it is already waiting at the authority while
/// this follower checks, executes and makes the batch durable; the batch's
/// durable report then goes on its own
/// (`POST /v1/worlds/{world}/records/durable`) rather than with the next
/// pull. A pull sent after a batch that was then refused is dropped, and
/// the follower pulls again from its durable head.
pub struct HttpSource {
    client: Client,
    name: String,
    head_tick: Arc<AtomicU64>,
    wait: Duration,
    /// The pull already sent: after which record, and its answer to come.
    prefetch: Option<(Position, tokio::task::JoinHandle<Fetched>)>,
    /// The newest durable record to report; a task sends the latest.
    reports: Option<DurableReports>,
}

/// One pull's answer: its records and the authority's head tick.
type Fetched = Result<(Vec<WireRecord>, Option<u64>), FederationError>;

impl Drop for HttpSource {
    fn drop(&mut self) {
        if let Some((_, task)) = self.prefetch.take() {
            task.abort();
        }
    }
}

impl HttpSource {
    /// Pulls from the node at `url` (`http://HOST:PORT`, or `https://…`
    /// trusting exactly `trust`'s certificates); `name` identifies this
    /// follower to the authority, whose `--ack replicated` counts the
    /// followers' durable records.
    pub fn new(
        url: &str,
        world: WorldId,
        name: &str,
        trust: Option<&Trust>,
    ) -> Result<HttpSource, FederationError> {
        let client = match trust {
            Some(trust) => Client::with_trust(url, world, trust),
            None if url.starts_with("https://") => {
                return Err(FederationError::Config(format!(
                    "{url}: an https:// authority needs the certificates to trust \
                     (federation.follow_ca)"
                )));
            }
            None => Client::new(url, world),
        }
        .map_err(|error| FederationError::Config(format!("{url}: {error}")))?
        .with_timeout(PULL_TIMEOUT);
        Ok(HttpSource {
            client,
            name: name.to_string(),
            head_tick: Arc::new(AtomicU64::new(0)),
            wait: PULL_WAIT,
            prefetch: None,
            reports: None,
        })
    }

    /// The client of the authority's node (its status, its checkpoint).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The authority's head tick as its last answer gave it.
    pub fn head_tick(&self) -> Arc<AtomicU64> {
        self.head_tick.clone()
    }

    /// How long the authority may hold a pull open.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// The records after `after`: the pull sent ahead for exactly that
    /// position if there is one, else a new pull; then the next pull is
    /// sent ahead, after the last record returned.
    async fn pull(&mut self, after: Position) -> Result<Vec<WireRecord>, FederationError> {
        let fetched = match self.prefetch.take() {
            Some((at, task)) if at.same_record(&after) => match task.await {
                Ok(fetched) => fetched,
                Err(error) => Err(FederationError::Unavailable(format!(
                    "the pull sent ahead failed: {error}"
                ))),
            },
            other => {
                if let Some((_, task)) = other {
                    task.abort();
                }
                self.fetch(after, None).await
            }
        };
        let records = self.accept(after, fetched)?;
        if let Some(next) = records
            .last()
            .and_then(|last| last.position_after(after.tick))
        {
            let fetch = self.fetch_task(next, after.ordinal, None);
            self.prefetch = Some((next, tokio::spawn(fetch)));
        }
        Ok(records)
    }

    /// Checks a pull's answer against the position it was asked from.
    fn accept(
        &self,
        after: Position,
        fetched: Fetched,
    ) -> Result<Vec<WireRecord>, FederationError> {
        let (records, head_tick) = fetched?;
        if let Some(tick) = head_tick {
            self.head_tick.store(tick, Ordering::SeqCst);
        }
        if let Some(first) = records.first()
            && first.ordinal != after.ordinal + 1
        {
            return Err(FederationError::Refused {
                ordinal: first.ordinal,
                reason: format!(
                    "the answer begins at record {} after {}",
                    first.ordinal, after.ordinal
                ),
            });
        }
        Ok(records)
    }

    /// One pull from `after`, reporting `after` durable (a follower asks
    /// from its durable head) and, on its last pull, a divergence.
    async fn fetch(&self, after: Position, diverged: Option<u64>) -> Fetched {
        self.fetch_task(after, after.ordinal, diverged).await
    }

    /// A pull from `after` that reports `durable`, as a task of its own.
    fn fetch_task(
        &self,
        after: Position,
        durable: u64,
        diverged: Option<u64>,
    ) -> impl Future<Output = Fetched> + Send + 'static {
        let client = self.client.clone();
        let name = self.name.clone();
        let wait_ms = if diverged.is_some() {
            0
        } else {
            self.wait.as_millis() as u64
        };
        async move {
            let checksum = after.checksum.to_hex();
            let query = RecordsQuery {
                after: after.ordinal,
                checksum: &checksum,
                wait_ms,
                max_bytes: PULL_BYTES_MAX,
                follower: Some((&name, durable)),
                diverged,
            };
            let page = client.records(&query).await.map_err(|error| match error {
                ClientError::Node {
                    status: 409,
                    message,
                    ..
                } => FederationError::Diverged(message),
                other => FederationError::Unavailable(other.to_string()),
            })?;
            Ok((decode_stream(&page.body)?, page.head_tick))
        }
    }

    /// Starts the task that reports this follower's durable record to the
    /// authority, the newest each time (reports are coalesced, never
    /// queued); it ends with this source.
    fn reporter(&self) -> tokio::sync::watch::Sender<u64> {
        let (sender, mut receiver) = tokio::sync::watch::channel(0u64);
        let (client, name) = (self.client.clone(), self.name.clone());
        tokio::spawn(async move {
            while receiver.changed().await.is_ok() {
                let durable = *receiver.borrow_and_update();
                if let Err(error) = client.report_durable(&name, durable).await {
                    // The next pull reports it too.
                    tracing::debug!(error = %error, durable, "the durable report was not taken");
                }
            }
        });
        sender
    }
}

impl RecordSource for HttpSource {
    fn next(
        &mut self,
        after: Position,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WireRecord>, FederationError>> + Send + '_>> {
        Box::pin(self.pull(after))
    }

    fn durable_reports(&mut self) -> Option<DurableReports> {
        if self.reports.is_none() {
            self.reports = Some(DurableReports(self.reporter()));
        }
        self.reports.clone()
    }

    fn report_divergence(
        &mut self,
        after: Position,
        tick: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Some((_, task)) = self.prefetch.take() {
                task.abort();
            }
            if let Err(error) = self.fetch(after, Some(tick)).await {
                tracing::warn!(error = %error, "the divergence was not reported to the authority");
            }
        })
    }
}
