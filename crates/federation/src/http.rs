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
use crate::replicate::RecordSource;
use crate::stream::decode_stream;
use crate::wire::{Position, WireRecord};

/// How long the authority may hold a pull open waiting for new records.
pub const PULL_WAIT: Duration = Duration::from_millis(1_000);
/// Framed bytes asked for per pull.
pub const PULL_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A no-answer limit per pull: the wait plus room for the transfer.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// A follower's [`RecordSource`] over HTTP.
pub struct HttpSource {
    client: Client,
    name: String,
    head_tick: Arc<AtomicU64>,
    wait: Duration,
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

    async fn pull(&mut self, after: Position) -> Result<Vec<WireRecord>, FederationError> {
        self.pull_reporting(after, None).await
    }

    /// A pull that also reports a divergence at `diverged` (the follower's
    /// last one).
    async fn pull_reporting(
        &mut self,
        after: Position,
        diverged: Option<u64>,
    ) -> Result<Vec<WireRecord>, FederationError> {
        let checksum = after.checksum.to_hex();
        let query = RecordsQuery {
            after: after.ordinal,
            checksum: &checksum,
            wait_ms: if diverged.is_some() {
                0
            } else {
                self.wait.as_millis() as u64
            },
            max_bytes: PULL_BYTES_MAX,
            // A follower asks from its durable head: the record it reports
            // durable, which `--ack replicated` counts.
            follower: Some((&self.name, after.ordinal)),
            diverged,
        };
        let page = self
            .client
            .records(&query)
            .await
            .map_err(|error| match error {
                ClientError::Node {
                    status: 409,
                    message,
                    ..
                } => FederationError::Diverged(message),
                other => FederationError::Unavailable(other.to_string()),
            })?;
        if let Some(tick) = page.head_tick {
            self.head_tick.store(tick, Ordering::SeqCst);
        }
        let records = decode_stream(&page.body)?;
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
}

impl RecordSource for HttpSource {
    fn next(
        &mut self,
        after: Position,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WireRecord>, FederationError>> + Send + '_>> {
        Box::pin(self.pull(after))
    }

    fn report_divergence(
        &mut self,
        after: Position,
        tick: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Err(error) = self.pull_reporting(after, Some(tick)).await {
                tracing::warn!(error = %error, "the divergence was not reported to the authority");
            }
        })
    }
}
