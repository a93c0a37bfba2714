//! JetStream in the node (docs/FEDERATION.md): the authority publishes its
//! durable records to the world's stream and holds the authority lease;
//! followers consume the stream and take the lease when it expires, once
//! they have applied every record on the stream; a node that was the
//! authority and finds the stream or the lease another's quarantines its
//! unreplicated journal suffix before it opens the world, and follows.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use everarcade_federation::fence::SuffixQuarantined;
use everarcade_federation::lease::{Holder, LeaseBucket, LeaseConfig};
use everarcade_federation::nats::{NatsConfig, RecordLog};
use everarcade_federation::{FederationError, Position, Replicator, Role, stream};
use everarcade_protocol::WorldId;
use everarcade_store::journal::decode_record_frame;
use everarcade_store::{DiskStorage, Storage, WorldDir};

use crate::actor::WorldHandle;
use crate::config::{FederationConfig, NodeConfig};

/// Framed bytes the publisher reads from the journal per batch.
const PUBLISH_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How often the leader checks its lease and the follower the lease holder.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Where JetStream is and the names this node uses on it.
#[derive(Clone)]
pub struct Settings {
    /// The server and name prefix.
    pub nats: NatsConfig,
    /// The lease bucket and TTL.
    pub lease: LeaseConfig,
    /// The world.
    pub world: WorldId,
    /// This node's id in the lease (stable for a runtime root).
    pub node_id: String,
}

impl Settings {
    /// The settings for the JetStream at `url`.
    pub fn new(config: &FederationConfig, url: &str, world: &WorldId, root: &Path) -> Settings {
        let mut nats = NatsConfig::new(url);
        nats.prefix = config.nats_prefix.clone();
        let bucket = if config.nats_prefix == everarcade_federation::nats::PREFIX_DEFAULT {
            everarcade_federation::lease::BUCKET_DEFAULT.to_string()
        } else {
            format!("{}_authority", config.nats_prefix)
        };
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let digest = blake3::hash(format!("{}\n{}", root.display(), world.as_str()).as_bytes());
        Settings {
            nats,
            lease: LeaseConfig {
                bucket,
                ttl: Duration::from_millis(config.lease_ttl_ms),
            },
            world: world.clone(),
            node_id: format!("n{}", &digest.to_hex()[..16]),
        }
    }

    /// The JetStream URL this node uses, if it uses one.
    pub fn url(config: &FederationConfig) -> Option<&str> {
        config
            .replicate
            .as_deref()
            .or(config.follow.as_deref())
            .filter(|url| url.starts_with("nats://"))
    }
}

/// Before the world opens: a node asked to be the authority (`--replicate`)
/// stays it only if the stream's head is a record of its journal and nobody
/// holds the lease. Otherwise it is a *returning authority*: the journal's
/// suffix the stream does not hold (never replicated, never acknowledged
/// under `--ack replicated`) goes to the quarantine, and the node follows
/// the stream (taking the lease later, once it is free and the node has
/// caught up). Returns what was quarantined, if anything: when it undid a
/// package upgrade, the world runs its earlier package again, which the
/// caller must open it with.
pub async fn preflight(
    config: &mut NodeConfig,
    root: &Path,
    world: &WorldId,
) -> Result<Option<SuffixQuarantined>, FederationError> {
    let Some(url) = config.federation.replicate.clone() else {
        return Ok(None);
    };
    let settings = Settings::new(&config.federation, &url, world, root);
    let log = RecordLog::open(&settings.nats, world).await?;
    let bucket = LeaseBucket::open(&settings.nats, &settings.lease).await?;
    let holder = bucket.current(world).await?;
    let head = log.head().await?;
    let dir = WorldDir::new(root, world);
    let local = if DiskStorage.exists(&dir.journal()) {
        stream::checksums(&DiskStorage, &dir.journal())?
    } else {
        Vec::new()
    };
    let consistent = match head {
        None => true,
        Some(head) => local.get(head.ordinal as usize).map(|(_, c)| *c) == Some(head.checksum),
    };
    if holder.is_none() && consistent {
        return Ok(None);
    }
    let why = match &holder {
        Some((holder, revision)) => format!(
            "the authority lease is held by {} ({}, revision {revision})",
            holder.url, holder.node_id
        ),
        None => "the stream holds records this journal does not".to_string(),
    };
    let mut report = None;
    if head.is_some() && !local.is_empty() {
        let shared = log.last_shared(&local).await?.ok_or_else(|| {
            FederationError::Diverged(format!(
                "this journal shares not even its genesis record with stream {}: another world",
                log.names().stream
            ))
        })?;
        if (shared as usize) + 1 < local.len() {
            let moved =
                everarcade_federation::fence::quarantine_suffix(&DiskStorage, &dir, shared)?;
            tracing::warn!(text = %describe(&moved), "returning authority: journal suffix quarantined");
            report = Some(moved);
        }
    }
    tracing::warn!(
        reason = %why,
        "not the authority: following the stream; the lease is taken once it is free and every record is applied"
    );
    config.federation.follow = Some(url);
    config.federation.replicate = None;
    Ok(report)
}

/// What a returning authority quarantined and undid, for its log.
fn describe(moved: &SuffixQuarantined) -> String {
    let paths = moved
        .moved
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "{} unreplicated records after record {} (tick {}) moved to the quarantine: {paths}",
        moved.records, moved.kept_through, moved.kept_tick,
    );
    if !moved.transitions_undone.is_empty() {
        let upgrades = moved
            .transitions_undone
            .iter()
            .map(|upgrade| {
                format!(
                    "{} -> {} from tick {}",
                    upgrade.previous_version, upgrade.version, upgrade.from_tick
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "; package upgrades undone, the ticks after {} run on the earlier package again: {upgrades}",
            moved.kept_tick
        ));
    }
    text
}

/// Runs this node's part on JetStream for its life: leading while it is
/// the authority, following (and taking over when the lease is free)
/// otherwise.
pub fn spawn(
    handle: WorldHandle,
    settings: Settings,
    node_url: String,
    world_dir: WorldDir,
    lead_now: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = run(&handle, &settings, &node_url, &world_dir, lead_now).await {
            tracing::error!(error = %error, code = error.code(), "JetStream federation stopped");
            *handle.live.follow_error.lock().expect("follow error lock") =
                Some(format!("{error} ({})", error.code()));
        }
    })
}

async fn run(
    handle: &WorldHandle,
    settings: &Settings,
    node_url: &str,
    world_dir: &WorldDir,
    lead_now: bool,
) -> Result<(), FederationError> {
    let log = RecordLog::open(&settings.nats, &settings.world).await?;
    let bucket = LeaseBucket::open(&settings.nats, &settings.lease).await?;
    let holder = |tick| Holder {
        url: node_url.to_string(),
        node_id: settings.node_id.clone(),
        tick,
    };
    if lead_now {
        let tick = handle.live.status().roots.tick;
        let lease = bucket.take(&settings.world, holder(tick)).await?;
        return lead(handle, &log, &bucket, lease, world_dir).await;
    }
    // Following: the records come through the follower task's source; here
    // the lease is watched, and taken once free and caught up.
    let mut roles = handle.live.role.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.lease.ttl / 3) => {}
            changed = roles.changed() => if changed.is_err() { return Ok(()); },
        }
        if handle.is_closed() {
            return Ok(());
        }
        if !matches!(*handle.live.role.borrow(), Role::Follower { .. }) {
            return Ok(());
        }
        let current = match bucket.current(&settings.world).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(error = %error, "reading the authority lease");
                continue;
            }
        };
        if let Some((holder, _)) = current {
            *handle.live.authority_url.lock().expect("authority lock") = Some(holder.url);
            handle
                .live
                .authority_tick
                .store(holder.tick, Ordering::SeqCst);
            continue;
        }
        // Free: take it only with every record on the stream applied.
        let Ok(applied) = handle.durable_head().await else {
            return Ok(());
        };
        let caught_up = match log.head().await {
            Ok(Some(head)) => head.ordinal == applied.ordinal && head.checksum == applied.checksum,
            Ok(None) => false,
            Err(_) => false,
        };
        if !caught_up {
            continue;
        }
        match bucket.take(&settings.world, holder(applied.tick)).await {
            Ok(lease) => {
                tracing::warn!(
                    revision = lease.revision,
                    "took the authority lease: promoting"
                );
                if let Err(error) = handle.promote().await {
                    tracing::error!(message = %error.message, "promotion failed; releasing the lease");
                    let _ = bucket.release(lease).await;
                    continue;
                }
                return lead(handle, &log, &bucket, lease, world_dir).await;
            }
            Err(FederationError::LeaseHeld { .. }) => continue,
            Err(error) => tracing::warn!(error = %error, "taking the authority lease"),
        }
    }
}

/// The authority's loop: keeps the lease, publishes every durable record in
/// journal order, moves the replicated end on each PubAck; stops admission
/// the moment the lease is lost or the publisher is fenced.
async fn lead(
    handle: &WorldHandle,
    log: &RecordLog,
    bucket: &LeaseBucket,
    lease: everarcade_federation::lease::Lease,
    world_dir: &WorldDir,
) -> Result<(), FederationError> {
    let live = handle.live.clone();
    let tick = Arc::new(AtomicU64::new(live.status().roots.tick));
    let keeper = Arc::new(bucket.keep(lease, tick.clone()));
    *live.lease.lock().expect("lease lock") = Some(keeper.clone());
    *live.authority_url.lock().expect("authority lock") = None;
    let head = log.head().await?;
    let replicator = log.replicator(head);
    let journal = world_dir.journal();
    let storage: Arc<dyn Storage> = live.storage.clone();
    let position = match head {
        Some(head) => Position {
            ordinal: head.ordinal,
            checksum: head.checksum,
            tick: 0,
        },
        None => {
            let genesis = stream::read_genesis(&*storage, &journal)?;
            let checksum = checksum_of(&genesis)?;
            replicator.replicate(vec![genesis]).await?;
            Position {
                ordinal: 0,
                checksum,
                tick: 0,
            }
        }
    };
    let mut tail = {
        let (storage, dir, end) = (storage.clone(), journal.clone(), *live.durable.borrow());
        tokio::task::spawn_blocking(move || {
            stream::JournalTail::after(&*storage, &dir, position.ordinal, &position.checksum, end)
        })
        .await
        .map_err(reader_failed)??
    };
    // Followers' divergence reports go where the HTTP followers' do: the
    // status's `followers`. The bucket keeps them, so those written while
    // no authority listened (a restart, the failover that made this node
    // the authority) come first.
    let _listening = match log.divergences().await {
        Ok(reports) => {
            let listener = live.clone();
            Some(AbortOnDrop(tokio::spawn(async move {
                let mut reports = std::pin::pin!(reports);
                while let Some(report) = futures_util::StreamExt::next(&mut reports).await {
                    tracing::error!(
                        follower = %report.follower,
                        tick = report.tick,
                        "a follower reports a peer root mismatch with this node's tick record"
                    );
                    listener.replication.follower_durable(
                        &report.follower,
                        report.durable_record,
                        Some(report.tick),
                    );
                }
                tracing::warn!(
                    "the divergence reports' watch ended: reports written from now on are read when this node next leads"
                );
            })))
        }
        Err(error) => {
            tracing::warn!(error = %error, "not listening for divergence reports");
            None
        }
    };
    let mut durable = live.durable.subscribe();
    tracing::info!(stream = %log.names().stream, from = position.ordinal, "publishing records to JetStream");
    loop {
        if !keeper.is_held() || replicator.state().fenced.load(Ordering::SeqCst) {
            let why = if keeper.is_held() {
                "fenced: another node appended to the stream"
            } else {
                "the authority lease is lost"
            };
            tracing::error!(
                why,
                "admission stopped: this node is no longer the authority; restart it to rejoin as a follower (its unreplicated suffix is quarantined then)"
            );
            live.role.send_replace(Role::Standby);
            return Ok(());
        }
        tick.store(live.status().roots.tick, Ordering::SeqCst);
        let end = *durable.borrow_and_update();
        let reader_storage = storage.clone();
        let (read, records) = tokio::task::spawn_blocking(move || {
            let records = tail.read(&*reader_storage, end, PUBLISH_BATCH_BYTES);
            (tail, records)
        })
        .await
        .map_err(reader_failed)?;
        tail = read;
        let records = records?;
        let Some(last) = records.last() else {
            // Once the world actor has ended and everything it made durable
            // is published, there is nothing more to publish.
            if handle.is_closed() {
                return Ok(());
            }
            let _ = tokio::time::timeout(WATCH_INTERVAL, durable.changed()).await;
            continue;
        };
        let through = last.ordinal;
        let wait = replicator.replicate(records);
        let waiter = live.clone();
        tokio::spawn(async move {
            match wait.await {
                Ok(()) => {
                    waiter.replication.replicated.send_if_modified(|current| {
                        let moved = through > *current;
                        *current = (*current).max(through);
                        moved
                    });
                }
                Err(FederationError::Fenced(why)) => {
                    tracing::error!(why = %why, "fenced: admission stopped");
                    waiter.role.send_replace(Role::Standby);
                }
                Err(error) => {
                    tracing::warn!(error = %error, code = error.code(), "records not replicated yet")
                }
            }
        });
    }
}

/// A journal read on the blocking pool that panicked or was cancelled.
fn reader_failed(error: tokio::task::JoinError) -> FederationError {
    FederationError::Unavailable(format!("the journal reader failed: {error}"))
}

/// Stops a task when the leader's loop ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn checksum_of(
    record: &everarcade_federation::WireRecord,
) -> Result<everarcade_protocol::Hash, FederationError> {
    decode_record_frame(&record.bytes)
        .map(|frame| frame.checksum)
        .map_err(|reason| FederationError::Refused {
            ordinal: record.ordinal,
            reason,
        })
}
