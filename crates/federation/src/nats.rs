//! The JetStream transport (docs/FEDERATION.md §JetStream transport): a
//! world's journal records as one JetStream stream.
//!
//! - one stream per world, `<prefix>_records_<world>`, on the one subject
//!   `<prefix>.world.<world>.records` (`prefix` is `everarcade` unless a test
//!   or an operator picks its own);
//! - record `n` (ordinal, genesis = 0) is the stream's message `n + 1`: its
//!   payload is the record's exact journal bytes, its `Nats-Msg-Id` the
//!   record checksum in hex (a retried publish is deduplicated), and it is
//!   published with `Nats-Expected-Last-Sequence: n` — the server appends it
//!   only if the stream holds exactly the records before it. That is the
//!   fencing token: of two nodes that both believe they are the authority,
//!   only one gets a PubAck for record `n`; the other is refused and learns it
//!   is fenced ([`FederationError::Fenced`]);
//! - [`NatsReplicator`] is the authority's [`Replicator`]: it resolves a
//!   batch on the PubAck of its last record (`--ack replicated`);
//! - [`NatsSource`] is a follower's [`RecordSource`]: a durable pull
//!   consumer named for the follower, which resumes from the follower's own
//!   journal head: records it already has are skipped (the one at its head
//!   must have its checksum), a gap or reorder is detected by ordinal and
//!   chain and re-fetched from the right stream sequence;
//! - a follower's divergence report is an entry of the key-value bucket
//!   `<prefix>_divergence` (key `<world>.<follower>`), so an authority that
//!   was not listening when it was written (restarting, or a new one after
//!   failover) reads it when it starts leading.
//!
//! Invariant: nothing here trusts the stream. Every record is framed and
//! checksummed and chained to the previous one before it is handed on; the
//! follower's apply path then checks it as replay does.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, Context, PublishErrorKind};
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream};
use everarcade_protocol::{Hash, WorldId};
use everarcade_store::journal::decode_record_frame;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::error::FederationError;
use crate::replicate::{RecordSource, ReplicationWait, Replicator};
use crate::wire::{Position, WireRecord};

/// The name prefix of streams and subjects unless configured.
pub const PREFIX_DEFAULT: &str = "everarcade";
/// How long a publish waits for its PubAck, and an API request for its
/// answer, before the transport counts as unavailable.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// How long a follower's fetch waits for new records before it returns none.
pub const FETCH_WAIT_DEFAULT: Duration = Duration::from_millis(500);
/// The most records one fetch brings.
pub const FETCH_RECORDS_MAX: usize = 256;
/// The most records a publisher has in flight (published, PubAck awaited).
pub const PUBLISH_IN_FLIGHT_MAX: usize = 256;
/// The most bytes of records a publisher keeps queued while JetStream is
/// away (`--ack local` keeps serving meanwhile). Past it, the publisher
/// stops and the node must restart it from its journal.
pub const PUBLISH_BACKLOG_BYTES_MAX: usize = 256 * 1024 * 1024;
/// How long the server remembers message ids for deduplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Retry delays of a publisher while JetStream is away: doubling from the
/// first to the last.
const RETRY_DELAY_FIRST: Duration = Duration::from_millis(50);
const RETRY_DELAY_LAST: Duration = Duration::from_secs(1);
/// The header carrying the record's ordinal (informative: the stream
/// sequence is what counts, and the two must agree).
pub const HEADER_ORDINAL: &str = "Everarcade-Ordinal";

const _: () = assert!(FETCH_RECORDS_MAX <= PUBLISH_IN_FLIGHT_MAX * 4);
const _: () = assert!(RETRY_DELAY_FIRST.as_millis() < RETRY_DELAY_LAST.as_millis());

/// Where and how to reach JetStream.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// The server, `nats://HOST:PORT`.
    pub url: String,
    /// The prefix of stream, subject, consumer and bucket names
    /// (`[a-z0-9_]`, 1 to 32 bytes); [`PREFIX_DEFAULT`] unless a test picks
    /// its own.
    pub prefix: String,
    /// See [`REQUEST_TIMEOUT_DEFAULT`].
    pub request_timeout: Duration,
}

impl NatsConfig {
    /// The defaults for a server URL.
    pub fn new(url: impl Into<String>) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            prefix: PREFIX_DEFAULT.to_owned(),
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
        }
    }

    fn validate(&self) -> Result<(), FederationError> {
        if !self.url.starts_with("nats://") {
            return Err(FederationError::Config(format!(
                "a JetStream URL is nats://HOST:PORT, not {:?}",
                self.url
            )));
        }
        check_name("the name prefix", &self.prefix, 32, "")?;
        if self.request_timeout.is_zero() {
            return Err(FederationError::Config(
                "the request timeout is zero".into(),
            ));
        }
        Ok(())
    }
}

/// The names of a world's records and divergence reports on JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordNames {
    /// `<prefix>_records_<world>`.
    pub stream: String,
    /// `<prefix>.world.<world>.records`.
    pub subject: String,
    /// `<prefix>_divergence`: the key-value bucket (shared by the prefix's
    /// worlds) where followers leave their peer root mismatch reports.
    pub divergence_bucket: String,
    /// `<world>.*`: the keys of this world's reports in that bucket, one
    /// per follower (`<world>.<follower>`, [`RecordNames::divergence_key`]).
    pub divergence_keys: String,
}

impl RecordNames {
    /// The names for `world` under `prefix`.
    pub fn new(prefix: &str, world: &WorldId) -> RecordNames {
        RecordNames {
            stream: format!("{prefix}_records_{}", world.as_str()),
            subject: format!("{prefix}.world.{}.records", world.as_str()),
            divergence_bucket: format!("{prefix}_divergence"),
            divergence_keys: format!("{}.*", world.as_str()),
        }
    }

    /// The key of `follower`'s divergence report: `<world>.<follower>`
    /// (world ids and follower names are valid key tokens).
    pub fn divergence_key(&self, follower: &str) -> String {
        let world = self
            .divergence_keys
            .strip_suffix('*')
            .expect("the key filter ends in *");
        format!("{world}{follower}")
    }
}

/// Connects to JetStream (one connection; it reconnects by itself).
pub async fn connect(config: &NatsConfig) -> Result<Context, FederationError> {
    config.validate()?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(config.request_timeout)
        .request_timeout(Some(config.request_timeout))
        .connect(config.url.as_str())
        .await
        .map_err(|error| unavailable(&format!("connecting to {}", config.url), error))?;
    Ok(jetstream::ContextBuilder::new()
        .timeout(config.request_timeout)
        .build(client))
}

/// Checks a name the NATS server will see: 1 to `max` bytes of
/// `[a-z0-9_]` and the bytes of `extra`; else a `Config` error naming `what`.
pub(crate) fn check_name(
    what: &str,
    name: &str,
    max: usize,
    extra: &str,
) -> Result<(), FederationError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || byte == b'_'
                || extra.as_bytes().contains(&byte)
        });
    if ok {
        return Ok(());
    }
    Err(FederationError::Config(format!(
        "{what} is 1 to {max} of [a-z0-9_{extra}], not {name:?}"
    )))
}

pub(crate) fn unavailable(what: &str, error: impl std::fmt::Display) -> FederationError {
    FederationError::Unavailable(format!("JetStream: {what}: {error}"))
}

/// A follower's report that its roots differed from a tick record of the
/// stream: JSON, the value of its key in [`RecordNames::divergence_bucket`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DivergenceReport {
    /// The follower's node id (its durable consumer's name).
    pub follower: String,
    /// Its journal's last durable record.
    pub durable_record: u64,
    /// The first tick whose roots differed.
    pub tick: u64,
}

/// The stream's last record: where a publisher must continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHead {
    /// Its ordinal.
    pub ordinal: u64,
    /// Its checksum.
    pub checksum: Hash,
}

/// Opens (creating if needed) the key-value bucket `bucket`, with entries
/// removed `max_age` after their last write (zero: kept), one value per
/// key. Returns the store and the maximum age the server applies (an
/// existing bucket keeps the one it was created with).
pub(crate) async fn open_bucket(
    context: &Context,
    bucket: &str,
    description: &str,
    max_age: Duration,
) -> Result<(kv::Store, Duration), FederationError> {
    // The bucket's stream as async-nats' `create_key_value` makes it, made
    // here: that call first reads the account's API level, whose answer a
    // 2.9 server words differently.
    let stream = context
        .get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(description.to_owned()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|error| unavailable(&format!("opening bucket {bucket}"), error))?;
    let max_age = stream.cached_info().config.max_age;
    let store = context
        .get_key_value(bucket)
        .await
        .map_err(|error| unavailable(&format!("opening bucket {bucket}"), error))?;
    Ok((store, max_age))
}

/// A world's record stream on JetStream, and its followers' divergence
/// reports.
#[derive(Clone)]
pub struct RecordLog {
    context: Context,
    stream: stream::Stream,
    names: RecordNames,
    /// The divergence bucket, opened on first use (only a follower that
    /// diverged and a leading authority need it).
    reports: Arc<tokio::sync::OnceCell<kv::Store>>,
}

impl RecordLog {
    /// Connects and opens (creating if needed) the world's stream.
    pub async fn open(config: &NatsConfig, world: &WorldId) -> Result<RecordLog, FederationError> {
        let context = connect(config).await?;
        let names = RecordNames::new(&config.prefix, world);
        let stream = context
            .get_or_create_stream(stream::Config {
                name: names.stream.clone(),
                subjects: vec![names.subject.clone()],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                // A follower far behind needs every record: no limits, and a
                // stream that is full refuses rather than forgets.
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|error| unavailable(&format!("opening stream {}", names.stream), error))?;
        Ok(RecordLog {
            context,
            stream,
            names,
            reports: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// The divergence bucket, opened (created if needed) on first use.
    async fn reports(&self) -> Result<&kv::Store, FederationError> {
        self.reports
            .get_or_try_init(|| async {
                let (store, _) = open_bucket(
                    &self.context,
                    &self.names.divergence_bucket,
                    "EverArcade divergence reports: <world>.<follower> -> report",
                    Duration::ZERO,
                )
                .await?;
                Ok(store)
            })
            .await
    }

    /// Writes a follower's divergence report to the bucket: once this
    /// returns `Ok` the report is in JetStream (a PubAck), and every
    /// authority that leads this world from now on reads it
    /// ([`RecordLog::divergences`]). A newer report of the same follower
    /// replaces it.
    pub async fn report_divergence(
        &self,
        report: &DivergenceReport,
    ) -> Result<(), FederationError> {
        let key = self.names.divergence_key(&report.follower);
        let payload = serde_json::to_vec(report).expect("a report encodes");
        self.reports()
            .await?
            .put(key.as_str(), payload.into())
            .await
            .map(|_| ())
            .map_err(|error| unavailable(&format!("writing divergence report {key}"), error))
    }

    /// `follower`'s divergence report, if the bucket holds one.
    pub async fn divergence_report(
        &self,
        follower: &str,
    ) -> Result<Option<DivergenceReport>, FederationError> {
        let key = self.names.divergence_key(follower);
        let entry = self
            .reports()
            .await?
            .entry(key.as_str())
            .await
            .map_err(|error| unavailable(&format!("reading divergence report {key}"), error))?;
        Ok(entry.and_then(|entry| report_of(&entry)))
    }

    /// Removes `follower`'s divergence report (it follows past that tick
    /// again).
    pub async fn clear_divergence(&self, follower: &str) -> Result<(), FederationError> {
        let key = self.names.divergence_key(follower);
        self.reports()
            .await?
            .delete(key.as_str())
            .await
            .map_err(|error| unavailable(&format!("removing divergence report {key}"), error))
    }

    /// Every divergence report of this world the bucket holds now, then
    /// each one written from now on; entries that do not decode (or whose
    /// follower is not their key's) and removals are skipped.
    pub async fn divergences(
        &self,
    ) -> Result<
        impl futures_util::stream::Stream<Item = DivergenceReport> + Send + use<>,
        FederationError,
    > {
        let keys = self.names.divergence_keys.clone();
        let watch = self
            .reports()
            .await?
            .watch_with_history(keys.as_str())
            .await
            .map_err(|error| unavailable("reading divergence reports", error))?;
        Ok(StreamExt::filter_map(watch, |entry| async move {
            match entry {
                Ok(entry) => report_of(&entry),
                Err(error) => {
                    tracing::warn!(%error, "reading divergence reports");
                    None
                }
            }
        }))
    }

    /// Deletes the divergence bucket, every world's reports in it (tests
    /// clean up after themselves).
    pub async fn delete_divergences(&self) -> Result<(), FederationError> {
        let bucket = &self.names.divergence_bucket;
        self.context
            .delete_key_value(bucket)
            .await
            .map(|_| ())
            .map_err(|error| unavailable(&format!("deleting bucket {bucket}"), error))
    }

    /// The stream and subject names.
    pub fn names(&self) -> &RecordNames {
        &self.names
    }

    /// The stream's last record, if any.
    pub async fn head(&self) -> Result<Option<StreamHead>, FederationError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|error| unavailable("reading the stream's state", error))?;
        let last = info.state.last_sequence;
        if last == 0 {
            return Ok(None);
        }
        let record = self
            .record(last - 1)
            .await?
            .ok_or_else(|| FederationError::Refused {
                ordinal: last - 1,
                reason: "the stream's last message is gone".into(),
            })?;
        let checksum = decode_record_frame(&record.bytes)
            .map_err(|reason| FederationError::Refused {
                ordinal: record.ordinal,
                reason,
            })?
            .checksum;
        Ok(Some(StreamHead {
            ordinal: record.ordinal,
            checksum,
        }))
    }

    /// The record with `ordinal`, if the stream holds it.
    pub async fn record(&self, ordinal: u64) -> Result<Option<WireRecord>, FederationError> {
        match self.stream.get_raw_message(ordinal + 1).await {
            Ok(message) => {
                let kind = decode_record_frame(&message.payload)
                    .map_err(|reason| FederationError::Refused { ordinal, reason })?
                    .kind;
                Ok(Some(WireRecord {
                    ordinal,
                    kind,
                    bytes: message.payload.to_vec(),
                }))
            }
            Err(error) => match error.kind() {
                stream::RawMessageErrorKind::NoMessageFound => Ok(None),
                _ => Err(unavailable(&format!("reading record {ordinal}"), error)),
            },
        }
    }

    /// The last of `local` (a journal's records as ordinal and checksum,
    /// ascending) that the stream holds as is: where a returning
    /// authority's journal and the stream part (both are hash chains, so
    /// they agree on everything before it). `None`: not even the first.
    pub async fn last_shared(&self, local: &[(u64, Hash)]) -> Result<Option<u64>, FederationError> {
        for (ordinal, checksum) in local.iter().rev() {
            let stream = match self.record(*ordinal).await {
                Ok(record) => record,
                // A foreign message there is not ours either.
                Err(FederationError::Refused { .. }) => continue,
                Err(error) => return Err(error),
            };
            let shared = stream.is_some_and(|record| {
                decode_record_frame(&record.bytes).is_ok_and(|frame| frame.checksum == *checksum)
            });
            if shared {
                return Ok(Some(*ordinal));
            }
        }
        Ok(None)
    }

    /// Starts the authority's publisher. `head` is the stream's head as the
    /// node checked it against its own journal (see [`RecordLog::head`]):
    /// the node then hands every journal record after it, in order.
    pub fn replicator(&self, head: Option<StreamHead>) -> NatsReplicator {
        NatsReplicator::spawn(self.clone(), head)
    }

    /// A follower's record source through the durable consumer `durable`
    /// (`[a-z0-9_-]`, unique per follower).
    pub fn source(&self, durable: &str) -> Result<NatsSource, FederationError> {
        check_name("a consumer name", durable, 64, "-")?;
        Ok(NatsSource {
            log: self.clone(),
            durable: durable.to_owned(),
            consumer: None,
            pending_acks: VecDeque::new(),
            delivered_end: 0,
            wait: FETCH_WAIT_DEFAULT,
            report_checked: false,
        })
    }

    /// Deletes the world's stream (tests clean up after themselves).
    pub async fn delete(self) -> Result<(), FederationError> {
        self.context
            .delete_stream(&self.names.stream)
            .await
            .map(|_| ())
            .map_err(|error| unavailable(&format!("deleting stream {}", self.names.stream), error))
    }

    /// Publishes one record with the fencing token and message id; answers
    /// the PubAck's outcome.
    async fn publish(
        &self,
        record: &WireRecord,
        checksum: &Hash,
    ) -> Result<jetstream::context::PublishAckFuture, FederationError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", checksum.to_hex().as_str());
        headers.insert(
            "Nats-Expected-Last-Sequence",
            record.ordinal.to_string().as_str(),
        );
        if record.ordinal > 0 {
            // The record's `prev` is the previous record's checksum, that
            // is, the message id the stream must end with: with the
            // sequence, the fencing token. The sequence alone would let a
            // fenced publisher's *next* pipelined record land on another
            // writer's record at the same length.
            headers.insert(
                "Nats-Expected-Last-Msg-Id",
                prev_of(&record.bytes).to_hex().as_str(),
            );
        }
        headers.insert(HEADER_ORDINAL, record.ordinal.to_string().as_str());
        self.context
            .publish_with_headers(
                self.names.subject.clone(),
                headers,
                record.bytes.clone().into(),
            )
            .await
            .map_err(|error| {
                if error.kind() == PublishErrorKind::MaxPayloadExceeded {
                    // Retrying cannot help: say what to change.
                    FederationError::Config(format!(
                        "record {} is {} bytes, over the NATS server's max_payload; \
                         raise max_payload in the server's configuration",
                        record.ordinal,
                        record.bytes.len()
                    ))
                } else {
                    unavailable(&format!("publishing record {}", record.ordinal), error)
                }
            })
    }
}

/// One batch handed to the publisher, with who waits for it.
struct Job {
    records: Vec<WireRecord>,
    done: oneshot::Sender<Result<(), FederationError>>,
}

/// Where a publisher stands, shared with the node.
#[derive(Debug, Default)]
pub struct PublisherState {
    /// Records acknowledged by JetStream: the ordinal after the last one.
    pub replicated_end: AtomicU64,
    /// Another writer appended to the stream: this node is fenced.
    pub fenced: AtomicBool,
    /// The publisher stopped: its backlog overflowed while JetStream was
    /// away, or a record is over the server's `max_payload`. Restart it from
    /// the journal (after raising the limit).
    pub stalled: AtomicBool,
}

/// The authority's [`Replicator`] on JetStream: one task publishes the
/// queued records in journal order, a window of them in flight, and answers
/// each batch on its last record's PubAck.
pub struct NatsReplicator {
    jobs: mpsc::UnboundedSender<Job>,
    state: Arc<PublisherState>,
}

impl NatsReplicator {
    fn spawn(log: RecordLog, head: Option<StreamHead>) -> NatsReplicator {
        let state = Arc::new(PublisherState::default());
        let start = head.map_or(0, |head| head.ordinal + 1);
        state.replicated_end.store(start, Ordering::SeqCst);
        let (jobs, receiver) = mpsc::unbounded_channel();
        let publisher = Publisher {
            log,
            state: state.clone(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next: start,
            prev: head.map(|head| head.checksum),
        };
        tokio::spawn(publisher.run(receiver));
        NatsReplicator { jobs, state }
    }

    /// The publisher's state (replicated end, fenced, stalled).
    pub fn state(&self) -> &Arc<PublisherState> {
        &self.state
    }
}

impl Replicator for NatsReplicator {
    fn replicate(&self, records: Vec<WireRecord>) -> ReplicationWait {
        let (done, answer) = oneshot::channel();
        let sent = self.jobs.send(Job { records, done });
        Box::pin(async move {
            if sent.is_err() {
                return Err(FederationError::Unavailable(
                    "the JetStream publisher stopped".into(),
                ));
            }
            answer.await.unwrap_or_else(|_| {
                Err(FederationError::Unavailable(
                    "the JetStream publisher stopped".into(),
                ))
            })
        })
    }
}

/// A queued record: its checksum, and the batch that waits for it when it is
/// the batch's last.
struct Queued {
    record: WireRecord,
    checksum: Hash,
    done: Option<oneshot::Sender<Result<(), FederationError>>>,
}

struct Publisher {
    log: RecordLog,
    state: Arc<PublisherState>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// The ordinal the stream needs next.
    next: u64,
    /// The checksum the next record must chain to (unknown before genesis).
    prev: Option<Hash>,
}

impl Publisher {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut delay = RETRY_DELAY_FIRST;
        loop {
            if self.queue.is_empty() {
                let Some(job) = jobs.recv().await else { return };
                self.enqueue(job);
            }
            while let Ok(job) = jobs.try_recv() {
                self.enqueue(job);
            }
            match self.publish_window().await {
                Ok(()) => delay = RETRY_DELAY_FIRST,
                Err(error @ FederationError::Fenced(_)) => {
                    tracing::error!(code = error.code(), %error, "JetStream publisher fenced");
                    self.state.fenced.store(true, Ordering::SeqCst);
                    self.fail_all(&error);
                    // Every later batch is answered fenced at once.
                    while let Some(job) = jobs.recv().await {
                        let _ = job
                            .done
                            .send(Err(FederationError::Fenced(error.to_string())));
                    }
                    return;
                }
                Err(error @ FederationError::Config(_)) => {
                    tracing::error!(code = error.code(), %error, "JetStream publisher stopped");
                    self.state.stalled.store(true, Ordering::SeqCst);
                    self.fail_all(&error);
                    while let Some(job) = jobs.recv().await {
                        let _ = job
                            .done
                            .send(Err(FederationError::Unavailable(error.to_string())));
                    }
                    return;
                }
                Err(error) => {
                    // JetStream away: answer who waits now (503 under
                    // `--ack replicated`), keep the records, retry. A retried
                    // record carries the same message id: no duplicates.
                    tracing::warn!(code = error.code(), %error, "JetStream publish failed; retrying");
                    for queued in &mut self.queue {
                        if let Some(done) = queued.done.take() {
                            let _ = done.send(Err(FederationError::Unavailable(error.to_string())));
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_DELAY_LAST);
                }
            }
        }
    }

    fn enqueue(&mut self, job: Job) {
        if self.state.stalled.load(Ordering::SeqCst) {
            let _ = job.done.send(Err(stalled()));
            return;
        }
        let mut queued = Vec::with_capacity(job.records.len());
        for record in job.records {
            let checksum = match decode_record_frame(&record.bytes) {
                Ok(frame) => frame.checksum,
                // The node hands its own durable records: a bad one is a bug.
                Err(reason) => panic!(
                    "record {} handed to the publisher does not frame: {reason}",
                    record.ordinal
                ),
            };
            queued.push(Queued {
                record,
                checksum,
                done: None,
            });
        }
        match queued.last_mut() {
            Some(last) => last.done = Some(job.done),
            None => {
                let _ = job.done.send(Ok(()));
                return;
            }
        }
        let bytes: usize = queued.iter().map(|queued| queued.record.bytes.len()).sum();
        if self.queued_bytes + bytes > PUBLISH_BACKLOG_BYTES_MAX {
            self.state.stalled.store(true, Ordering::SeqCst);
            let error = stalled();
            self.fail_all(&error);
            for queued in queued {
                if let Some(done) = queued.done {
                    let _ = done.send(Err(stalled()));
                }
            }
            return;
        }
        self.queued_bytes += bytes;
        self.queue.extend(queued);
    }

    /// Publishes up to [`PUBLISH_IN_FLIGHT_MAX`] queued records, then awaits
    /// their PubAcks in order; each acknowledged record leaves the queue.
    async fn publish_window(&mut self) -> Result<(), FederationError> {
        let count = self.queue.len().min(PUBLISH_IN_FLIGHT_MAX);
        let mut acks = Vec::with_capacity(count);
        for queued in self.queue.iter().take(count) {
            if queued.record.ordinal != self.next + acks.len() as u64 {
                // Records reach the publisher in journal order from the
                // stream's head; anything else is a bug in the caller.
                panic!(
                    "record {} handed to the publisher, the stream needs {}",
                    queued.record.ordinal,
                    self.next + acks.len() as u64
                );
            }
            acks.push(self.log.publish(&queued.record, &queued.checksum).await?);
        }
        for ack in acks {
            let front = self.queue.front().expect("a record per ack");
            match ack.await {
                Ok(ack) if ack.sequence == front.record.ordinal + 1 => {}
                Ok(ack) => {
                    return Err(FederationError::Fenced(format!(
                        "record {} was acknowledged at stream sequence {}, not {}",
                        front.record.ordinal,
                        ack.sequence,
                        front.record.ordinal + 1
                    )));
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                    ) =>
                {
                    self.confirm_own(front).await?;
                }
                Err(error) => {
                    return Err(unavailable(
                        &format!("the PubAck of record {}", front.record.ordinal),
                        error,
                    ));
                }
            }
            let front = self.queue.pop_front().expect("a record per ack");
            if let Some(prev) = self.prev {
                assert_eq!(
                    prev_of(&front.record.bytes),
                    prev,
                    "the publisher's records chain"
                );
            }
            self.queued_bytes -= front.record.bytes.len();
            self.next = front.record.ordinal + 1;
            self.prev = Some(front.checksum);
            self.state.replicated_end.store(self.next, Ordering::SeqCst);
            if let Some(done) = front.done {
                let _ = done.send(Ok(()));
            }
        }
        Ok(())
    }

    /// A publish was refused because the stream's last sequence is not the
    /// record's ordinal. It is still ours if the stream holds exactly this
    /// record there (an earlier attempt landed and its PubAck was lost);
    /// otherwise another writer appended: fenced.
    async fn confirm_own(&self, queued: &Queued) -> Result<(), FederationError> {
        let ordinal = queued.record.ordinal;
        match self.log.record(ordinal).await {
            Ok(Some(record)) if record.bytes == queued.record.bytes => Ok(()),
            Ok(Some(_)) => Err(FederationError::Fenced(format!(
                "the stream holds another writer's record {ordinal}: this node is not the authority"
            ))),
            Ok(None) => Err(FederationError::Fenced(format!(
                "the stream does not end where this node's journal does (record {ordinal} refused)"
            ))),
            Err(FederationError::Refused { reason, .. }) => Err(FederationError::Fenced(format!(
                "the stream holds a foreign message at record {ordinal}: {reason}"
            ))),
            Err(error) => Err(error),
        }
    }

    fn fail_all(&mut self, error: &FederationError) {
        for queued in self.queue.drain(..) {
            if let Some(done) = queued.done {
                let _ = done.send(Err(match error {
                    FederationError::Fenced(reason) => FederationError::Fenced(reason.clone()),
                    other => FederationError::Unavailable(other.to_string()),
                }));
            }
        }
        self.queued_bytes = 0;
    }
}

/// The report an entry of the divergence bucket holds: `None` for a
/// removal, a value that does not decode, or a report whose follower is
/// not the one its key names.
fn report_of(entry: &kv::Entry) -> Option<DivergenceReport> {
    if entry.operation != Operation::Put {
        return None;
    }
    let report: DivergenceReport = serde_json::from_slice(&entry.value).ok()?;
    let follower = entry.key.rsplit_once('.').map(|(_, follower)| follower);
    (follower == Some(report.follower.as_str())).then_some(report)
}

/// The `prev` field of a framed record.
fn prev_of(bytes: &[u8]) -> Hash {
    Hash(bytes[8..40].try_into().expect("a framed record"))
}

fn stalled() -> FederationError {
    FederationError::Unavailable(format!(
        "over {PUBLISH_BACKLOG_BYTES_MAX} bytes of records queued while JetStream was away; \
         the publisher must be restarted from the journal"
    ))
}

/// A follower's [`RecordSource`] on JetStream: a durable pull consumer that
/// acknowledges (cumulatively) what the follower has journaled.
pub struct NatsSource {
    log: RecordLog,
    durable: String,
    consumer: Option<jetstream::consumer::Consumer<pull::Config>>,
    /// Delivered messages not yet acknowledged, by ordinal.
    pending_acks: VecDeque<(u64, jetstream::Message)>,
    /// The ordinal the consumer delivers next (after what it delivered).
    delivered_end: u64,
    wait: Duration,
    /// Whether this follower's own divergence report was looked at (once
    /// per source: see [`NatsSource::clear_stale_report`]).
    report_checked: bool,
}

impl NatsSource {
    /// How long one fetch waits for new records (default
    /// [`FETCH_WAIT_DEFAULT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// (Re)creates the durable consumer so that it delivers from `ordinal`
    /// (the follower's head: it is delivered again and must be the
    /// follower's own record).
    async fn start_at(&mut self, ordinal: u64) -> Result<(), FederationError> {
        let stream = &self.log.stream;
        let _ = stream.delete_consumer(&self.durable).await;
        self.pending_acks.clear();
        self.delivered_end = ordinal;
        let consumer = stream
            .create_consumer(self.consumer_config(ordinal))
            .await
            .map_err(|error| unavailable(&format!("creating consumer {}", self.durable), error))?;
        self.consumer = Some(consumer);
        Ok(())
    }

    fn consumer_config(&self, ordinal: u64) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: ordinal + 1,
            },
            ack_policy: AckPolicy::All,
            ..Default::default()
        }
    }

    /// The durable consumer, opened (or created at `ordinal`) on first use:
    /// after a restart it resumes where it was acknowledged.
    async fn consumer(&mut self, ordinal: u64) -> Result<(), FederationError> {
        if self.consumer.is_some() {
            return Ok(());
        }
        match self.log.stream.consumer_info(&self.durable).await {
            Ok(info) => {
                // The last message delivered had stream sequence s: ordinal
                // s - 1; the next is ordinal s.
                self.delivered_end = info.delivered.stream_sequence;
                let consumer = self
                    .log
                    .stream
                    .get_consumer::<pull::Config>(&self.durable)
                    .await
                    .map_err(|error| {
                        unavailable(&format!("opening consumer {}", self.durable), error)
                    })?;
                self.consumer = Some(consumer);
                Ok(())
            }
            Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => {
                self.start_at(ordinal).await
            }
            Err(error) => Err(unavailable(
                &format!("opening consumer {}", self.durable),
                error,
            )),
        }
    }

    /// Acknowledges every delivered message the follower has journaled
    /// (`ordinal <= head`), with one cumulative ack.
    async fn acknowledge(&mut self, head: u64) {
        let mut last = None;
        while let Some((ordinal, _)) = self.pending_acks.front() {
            if *ordinal > head {
                break;
            }
            last = self.pending_acks.pop_front();
        }
        if let Some((_, message)) = last {
            // A lost ack only means a redelivery, which is skipped.
            if let Err(error) = message.ack().await {
                tracing::debug!(%error, "JetStream ack failed");
            }
        }
    }

    /// What the stream has for the consumer now (up to
    /// [`FETCH_RECORDS_MAX`]); with nothing there, waits up to the fetch
    /// wait for the first new record and returns it with whatever came
    /// after it. (A batch that waited to fill up would hold every record
    /// back for the whole wait: a follower would trail by that much.)
    async fn fetch(&mut self) -> Result<Vec<jetstream::Message>, FederationError> {
        let mut messages = self.fetch_now(FETCH_RECORDS_MAX).await?;
        if !messages.is_empty() {
            return Ok(messages);
        }
        let consumer = self.consumer.as_ref().expect("the consumer is open");
        let mut first = consumer
            .batch()
            .max_messages(1)
            .expires(self.wait)
            .messages()
            .await
            .map_err(|error| unavailable("fetching records", error))?;
        while let Some(message) = first.next().await {
            messages.push(message.map_err(|error| unavailable("fetching records", error))?);
        }
        if !messages.is_empty() {
            messages.extend(self.fetch_now(FETCH_RECORDS_MAX - 1).await?);
        }
        Ok(messages)
    }

    /// Up to `most` records the stream holds for the consumer, not waiting.
    async fn fetch_now(&self, most: usize) -> Result<Vec<jetstream::Message>, FederationError> {
        let consumer = self.consumer.as_ref().expect("the consumer is open");
        let mut batch = consumer
            .fetch()
            .max_messages(most)
            .messages()
            .await
            .map_err(|error| unavailable("fetching records", error))?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.map_err(|error| unavailable("fetching records", error))?);
        }
        Ok(messages)
    }

    /// Removes this follower's divergence report once its journal holds
    /// the tick record of the tick the report names: it follows past that
    /// tick again (a diverged follower's journal ends before it), so the
    /// report no longer says anything true. Checked once per source; a
    /// failure is logged and checked again on the next call.
    async fn clear_stale_report(&mut self, after: Position) {
        let cleared = match self.log.divergence_report(&self.durable).await {
            Ok(Some(report)) if after.tick >= report.tick => {
                let cleared = self.log.clear_divergence(&self.durable).await;
                if cleared.is_ok() {
                    tracing::info!(
                        tick = report.tick,
                        "this follower's journal holds the tick it once diverged at: its divergence report is removed"
                    );
                }
                cleared
            }
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        match cleared {
            Ok(()) => self.report_checked = true,
            Err(error) => tracing::debug!(%error, "checking this follower's divergence report"),
        }
    }

    async fn next_records(&mut self, after: Position) -> Result<Vec<WireRecord>, FederationError> {
        if !self.report_checked {
            self.clear_stale_report(after).await;
        }
        self.consumer(after.ordinal).await?;
        if self.delivered_end > after.ordinal + 1 {
            // The consumer went past the follower's head: it delivered (and
            // perhaps acknowledged) records the follower never journaled, or
            // the last fetch stopped at a gap. Deliver from the head again.
            self.start_at(after.ordinal).await?;
        }
        self.acknowledge(after.ordinal).await;
        let messages = self.fetch().await?;
        match self.check(after, messages)? {
            Checked::Records(records) => Ok(records),
            Checked::Gap { found } => {
                // The consumer is past the follower's head (acknowledged
                // records the follower never journaled) or the stream
                // skipped: re-fetch from the record the follower needs.
                self.start_at(after.ordinal).await?;
                let messages = self.fetch().await?;
                match self.check(after, messages)? {
                    Checked::Records(records) => Ok(records),
                    Checked::Gap { found: again } => Err(FederationError::Gap {
                        expected: after.ordinal + 1,
                        found: again.max(found),
                    }),
                }
            }
        }
    }

    /// Checks delivered messages against the follower's head: skips what it
    /// has (the record at its head must be its own), keeps the consecutive
    /// records that chain on, and stops at a gap.
    fn check(
        &mut self,
        after: Position,
        messages: Vec<jetstream::Message>,
    ) -> Result<Checked, FederationError> {
        let mut records = Vec::new();
        let mut prev = after.checksum;
        let mut next = after.ordinal + 1;
        for message in messages {
            let sequence = message
                .info()
                .map_err(|error| unavailable("reading a message's metadata", error))?
                .stream_sequence;
            let ordinal = sequence - 1;
            self.delivered_end = self.delivered_end.max(sequence);
            let (record, record_prev, checksum) = delivered_record(ordinal, &message)?;
            self.pending_acks.push_back((ordinal, message));
            if ordinal == after.ordinal && checksum != after.checksum {
                return Err(FederationError::Diverged(format!(
                    "record {ordinal} on the stream has checksum {checksum}, this journal's {}",
                    after.checksum
                )));
            }
            if ordinal < next {
                continue; // already journaled (a redelivery or a resume)
            }
            if ordinal > next {
                if records.is_empty() {
                    return Ok(Checked::Gap { found: ordinal });
                }
                break; // hand on what chains; the next call re-fetches
            }
            if record_prev != prev {
                return Err(FederationError::Refused {
                    ordinal,
                    reason: format!(
                        "it does not chain to record {} (prev {} != {})",
                        ordinal - 1,
                        record_prev,
                        prev
                    ),
                });
            }
            prev = checksum;
            next += 1;
            records.push(record);
        }
        Ok(Checked::Records(records))
    }
}

enum Checked {
    Records(Vec<WireRecord>),
    Gap { found: u64 },
}

/// A delivered message as a record (with its `prev` and checksum): framed,
/// and its ordinal header (if any) agreeing with its stream sequence.
fn delivered_record(
    ordinal: u64,
    message: &jetstream::Message,
) -> Result<(WireRecord, Hash, Hash), FederationError> {
    if let Some(header) = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(HEADER_ORDINAL))
        && header.as_str() != ordinal.to_string()
    {
        return Err(FederationError::Refused {
            ordinal,
            reason: format!("its ordinal header says {}", header.as_str()),
        });
    }
    let frame = decode_record_frame(&message.payload)
        .map_err(|reason| FederationError::Refused { ordinal, reason })?;
    Ok((
        WireRecord {
            ordinal,
            kind: frame.kind,
            bytes: message.payload.to_vec(),
        },
        frame.prev,
        frame.checksum,
    ))
}

impl RecordSource for NatsSource {
    fn next(
        &mut self,
        after: Position,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WireRecord>, FederationError>> + Send + '_>> {
        Box::pin(self.next_records(after))
    }

    fn report_divergence(
        &mut self,
        after: Position,
        tick: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let report = DivergenceReport {
            follower: self.durable.clone(),
            durable_record: after.ordinal,
            tick,
        };
        Box::pin(async move {
            if let Err(error) = self.log.report_divergence(&report).await {
                tracing::warn!(error = %error, "the divergence was not reported to the authority");
            }
            // Its journal now ends before the reported tick: the report
            // stays until it follows past that tick.
            self.report_checked = true;
        })
    }
}
