//! The follower task: while this node's role is `follower` of an
//! `http://` authority, it pulls the authority's durable records and hands
//! them to the world actor, which checks, executes and journals them
//! (docs/FEDERATION.md). It watches the role: a promotion, a divergence or a
//! rejoin elsewhere ends or restarts it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use everarcade_client::{Client, Trust};
use everarcade_federation::http::HttpSource;
use everarcade_federation::{FederationError, Position, RecordSource, Role, WireRecord};
use everarcade_protocol::{SignatureRule, WorldId};
use everarcade_world::follow::CheckedSignatures;
use tokio::sync::watch;

use crate::actor::WorldHandle;

/// The first wait after a failed pull or a refused batch; it doubles up to
/// [`RETRY_MAX`].
const RETRY_INITIAL: Duration = Duration::from_millis(50);
/// The longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// A no-answer limit for the authority's status and checkpoint file in a
/// catch-up (a checkpoint may be hundreds of megabytes).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// What the follower task needs besides the world.
pub struct Settings {
    /// The world followed.
    pub world: WorldId,
    /// This follower's name to an HTTP authority.
    pub name: String,
    /// JetStream, when the node has it.
    pub jetstream: Option<crate::jetstream::Settings>,
    /// The certificates trusted for an `https://` authority.
    pub trust: Option<Trust>,
    /// `federation.catch_up_ticks`: catch up from the authority's
    /// checkpoint when at least this far behind it; 0 never.
    pub catch_up_ticks: u64,
    /// The world's signature rule, under which a batch pulled ahead is
    /// checked.
    pub signature_rule: SignatureRule,
}

/// Runs for the node's life on its runtime.
pub fn spawn(handle: WorldHandle, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut roles = handle.live.role.subscribe();
        loop {
            // The role outlives the world actor (the shared view does): once
            // the actor has ended there is nothing to follow for, and every
            // attempt would fail at once, round and round.
            if handle.is_closed() {
                return;
            }
            let role = roles.borrow_and_update().clone();
            match role {
                Role::Follower { authority } if authority.starts_with("http") => {
                    follow_http(&handle, &settings, &authority, &mut roles).await;
                }
                Role::Follower { authority } if authority.starts_with("nats://") => {
                    match &settings.jetstream {
                        Some(jetstream) => {
                            follow_nats(&handle, &settings, jetstream, &authority, &mut roles).await
                        }
                        None => {
                            let error = FederationError::Config(format!(
                                "{authority}: no JetStream settings on this node"
                            ));
                            cannot_follow(&handle, &error, &mut roles).await;
                        }
                    }
                }
                _ => {
                    if roles.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Follows `authority` over HTTP until the role changes: first from its
/// checkpoint when far behind it, then record by record.
async fn follow_http(
    handle: &WorldHandle,
    settings: &Settings,
    authority: &str,
    roles: &mut watch::Receiver<Role>,
) {
    let source = HttpSource::new(
        authority,
        settings.world.clone(),
        &settings.name,
        settings.trust.as_ref(),
    );
    match source {
        Ok(mut source) => {
            if settings.catch_up_ticks > 0 {
                let client = source.client().clone().with_timeout(CATCH_UP_TIMEOUT);
                tokio::select! {
                    _ = roles.changed() => return,
                    _ = catch_up(handle, &client, &mut source, settings.catch_up_ticks) => {}
                }
            }
            let head_tick = Some(source.head_tick());
            follow(
                handle,
                &mut source,
                head_tick,
                authority,
                roles,
                settings.signature_rule,
            )
            .await;
        }
        Err(error) => cannot_follow(handle, &error, roles).await,
    }
}

/// Catches up from the authority's newest checkpoint when this node is at
/// least `min_ticks` behind it (docs/FEDERATION.md, catch-up): the records
/// up to its tick, from `source`, are journaled without executing them,
/// then the checkpoint, from the authority's node at `authority`, is
/// installed. Any failure leaves following record by record to go on from
/// wherever this stopped (the world executes what it journaled ahead when
/// it reopens), so it is logged and not retried.
async fn catch_up(
    handle: &WorldHandle,
    authority: &Client,
    source: &mut dyn RecordSource,
    min_ticks: u64,
) {
    let Ok(head) = handle.durable_head().await else {
        return;
    };
    let status = match authority.status().await {
        Ok(status) => status,
        Err(error) => {
            tracing::warn!(error = %error, "catch-up: the authority's status is unavailable; following record by record");
            return;
        }
    };
    let Some(tick) = status.checkpoint_tick else {
        return;
    };
    if tick < head.tick.saturating_add(min_ticks) {
        return;
    }
    tracing::info!(
        from_tick = head.tick,
        checkpoint_tick = tick,
        "catching up from the authority's checkpoint"
    );
    let file = match authority.checkpoint_file().await {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(error = %error, "catch-up: the authority's checkpoint is unavailable; following record by record");
            return;
        }
    };
    // Its newest may be newer than the status said; what matters is the file's.
    let through = file.tick;
    if through < head.tick.saturating_add(min_ticks) {
        return;
    }
    loop {
        let Ok(position) = handle.durable_head().await else {
            return;
        };
        if position.tick >= through {
            break;
        }
        let records = match source.next(position).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(error = %error, "catch-up: pulling records failed; following record by record");
                set_error(handle, Some(describe(&error, position)));
                return;
            }
        };
        if records.is_empty() {
            continue;
        }
        if let Err(error) = handle.journal_ahead(records, through).await {
            tracing::warn!(code = %error.code, message = %error.message, "catch-up: a record was refused; following record by record");
            set_error(handle, Some(format!("{} ({})", error.message, error.code)));
            return;
        }
    }
    match handle.install_checkpoint(file.bytes.to_vec()).await {
        Ok(tick) => tracing::info!(tick, "caught up from the authority's checkpoint"),
        Err(error) => {
            tracing::warn!(code = %error.code, message = %error.message, "catch-up: the checkpoint was refused; the world executed the records instead");
            set_error(handle, Some(format!("{} ({})", error.message, error.code)));
        }
    }
}

/// Follows the world's JetStream stream until the role changes: first
/// from the authority's checkpoint when far behind it (fetched from the
/// node the authority lease names), then record by record.
async fn follow_nats(
    handle: &WorldHandle,
    settings: &Settings,
    jetstream: &crate::jetstream::Settings,
    url: &str,
    roles: &mut watch::Receiver<Role>,
) {
    let log = match everarcade_federation::nats::RecordLog::open(&jetstream.nats, &jetstream.world)
        .await
    {
        Ok(log) => log,
        Err(error) => return cannot_follow(handle, &error, roles).await,
    };
    // The durable consumer is this runtime root's, so a restart resumes it.
    match log.source(&jetstream.node_id) {
        Ok(mut source) => {
            if settings.catch_up_ticks > 0
                && let Some(authority) = lease_holder(settings, jetstream).await
            {
                tokio::select! {
                    _ = roles.changed() => return,
                    _ = catch_up(handle, &authority, &mut source, settings.catch_up_ticks) => {}
                }
            }
            follow(
                handle,
                &mut source,
                None,
                url,
                roles,
                settings.signature_rule,
            )
            .await;
        }
        Err(error) => cannot_follow(handle, &error, roles).await,
    }
}

/// A client of the node that holds the world's authority lease, if one
/// does and it can be reached as configured (`federation.follow_ca` for
/// an `https://` holder).
async fn lease_holder(
    settings: &Settings,
    jetstream: &crate::jetstream::Settings,
) -> Option<Client> {
    let bucket = everarcade_federation::lease::LeaseBucket::open(&jetstream.nats, &jetstream.lease)
        .await
        .ok()?;
    let (holder, _) = bucket.current(&jetstream.world).await.ok()??;
    let client = match &settings.trust {
        Some(trust) => Client::with_trust(&holder.url, settings.world.clone(), trust),
        None => Client::new(&holder.url, settings.world.clone()),
    };
    match client {
        Ok(client) => Some(client.with_timeout(CATCH_UP_TIMEOUT)),
        Err(error) => {
            tracing::warn!(authority = %holder.url, error = %error, "catch-up: the lease holder's node cannot be reached; following record by record");
            None
        }
    }
}

async fn cannot_follow(
    handle: &WorldHandle,
    error: &FederationError,
    roles: &mut watch::Receiver<Role>,
) {
    set_error(handle, Some(format!("{} ({})", error, error.code())));
    tracing::error!(error = %error, code = error.code(), "cannot follow");
    let _ = roles.changed().await;
}

/// Pulls from `source` and applies until the role changes.
///
/// Over a source that takes durable reports (HTTP), the follower works on
/// two batches at once: while the world actor checks, executes and makes
/// one batch durable, the next is pulled and its signatures checked on
/// this runtime's blocking threads; the durable record is reported the
/// moment the actor answers. A batch pulled ahead of one that was then
/// refused is dropped.
async fn follow(
    handle: &WorldHandle,
    source: &mut dyn RecordSource,
    head_tick: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    authority: &str,
    roles: &mut watch::Receiver<Role>,
    rule: SignatureRule,
) {
    let mut retry = RETRY_INITIAL;
    tracing::info!(authority, "following");
    let reports = source.durable_reports();
    // Where the next pull begins: the durable head, as the last batch left
    // it, or asked of the world again after a failure.
    let mut known: Option<Position> = None;
    // The batch pulled (and checked) ahead while the one before it was
    // applied: the position it follows and what its pull gave.
    let mut ready: Option<(Position, Result<Ahead, FederationError>)> = None;
    loop {
        let position = match known.take() {
            Some(position) => position,
            None => match handle.durable_head().await {
                Ok(position) => position,
                Err(_) => return,
            },
        };
        let pulled = match ready.take() {
            Some((after, pulled)) if after.same_record(&position) => pulled,
            _ => tokio::select! {
                _ = roles.changed() => return,
                pulled = source.next(position) => pulled.map(|records| (records, None)),
            },
        };
        let failure = match pulled {
            Ok((records, _)) if records.is_empty() => {
                known = Some(position);
                None
            }
            Ok((records, checked)) => {
                // The tick after the batch is not known until it is
                // applied; positions are matched by record.
                let end = match (&reports, records.last()) {
                    (Some(_), Some(last)) => last.position_after(position.tick),
                    _ => None,
                };
                let applied = {
                    let apply = handle.apply(records, checked);
                    tokio::pin!(apply);
                    let ahead = async {
                        match end {
                            Some(end) => Some((end, pull_checked(source, end, rule).await)),
                            None => None,
                        }
                    };
                    tokio::pin!(ahead);
                    // The next batch is pulled and checked while the actor
                    // works. The apply is not raced with the role: the
                    // actor answers every batch, and a divergence changes
                    // the role before it answers.
                    let mut pulled_ahead = None;
                    let applied = loop {
                        tokio::select! {
                            biased;
                            applied = &mut apply => break applied,
                            pulled = &mut ahead, if pulled_ahead.is_none() => {
                                pulled_ahead = Some(pulled);
                            }
                        }
                    };
                    if let Ok(applied) = &applied {
                        // `--ack replicated` hears of it now, not with the
                        // next pull.
                        if let Some(reports) = &reports {
                            reports.report(applied.durable.ordinal);
                        }
                        ready = match pulled_ahead {
                            Some(pulled) => pulled,
                            None => tokio::select! {
                                _ = roles.changed() => return,
                                pulled = &mut ahead => pulled,
                            },
                        };
                    }
                    applied
                };
                match applied {
                    Ok(applied) => {
                        known = Some(Position {
                            ordinal: applied.durable.ordinal,
                            checksum: applied.durable.checksum,
                            tick: applied.durable.tick,
                        });
                        None
                    }
                    Err(error) if error.code == "peer_root_mismatch" => {
                        tracing::error!(message = %error.message, "peer root mismatch: following stopped");
                        set_error(handle, Some(format!("{} ({})", error.message, error.code)));
                        // The actor made the role `diverged`; the authority
                        // hears of it where the transport can tell it.
                        let diverged = match &*handle.live.role.borrow() {
                            Role::Diverged { tick, .. } => Some(*tick),
                            _ => None,
                        };
                        if let (Some(tick), Ok(head)) = (diverged, handle.durable_head().await) {
                            source.report_divergence(head, tick).await;
                        }
                        return;
                    }
                    Err(error) => Some(format!("{} ({})", error.message, error.code)),
                }
            }
            Err(error) => Some(describe(&error, position)),
        };
        let authority_tick = match &head_tick {
            Some(tick) => tick.load(Ordering::SeqCst),
            None => handle.live.authority_tick.load(Ordering::SeqCst),
        };
        lag(handle, authority_tick);
        match failure {
            None => {
                set_error(handle, None);
                retry = RETRY_INITIAL;
            }
            Some(reason) => {
                tracing::warn!(reason = %reason, retry_ms = retry.as_millis() as u64, "following: retrying");
                set_error(handle, Some(reason));
                tokio::select! {
                    _ = roles.changed() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// A batch pulled ahead: its records and their signatures, checked.
type Ahead = (Vec<WireRecord>, Option<CheckedSignatures>);

/// The records after `after` with their signatures checked on a blocking
/// thread (every core), beside the world's work on the batch before.
async fn pull_checked(
    source: &mut dyn RecordSource,
    after: Position,
    rule: SignatureRule,
) -> Result<Ahead, FederationError> {
    let records = source.next(after).await?;
    if records.is_empty() {
        return Ok((records, None));
    }
    tokio::task::spawn_blocking(move || {
        let checked = everarcade_federation::stream::check_signatures(&records, rule);
        (records, Some(checked))
    })
    .await
    .map_err(|error| {
        FederationError::Unavailable(format!("checking signatures ahead failed: {error}"))
    })
}

fn describe(error: &FederationError, position: Position) -> String {
    match error {
        FederationError::Diverged(_) => format!(
            "{error} (peer_diverged): this node's record {} is not the authority's; its journal \
             is not a prefix of the authority's (docs/FEDERATION.md, recovery)",
            position.ordinal
        ),
        other => format!("{other} ({})", other.code()),
    }
}

fn lag(handle: &WorldHandle, authority_tick: u64) {
    let live = &handle.live;
    live.authority_tick.store(authority_tick, Ordering::SeqCst);
    let own = live.status.read().expect("status lock").roots.tick;
    live.metrics
        .lag_ticks
        .store(authority_tick.saturating_sub(own), Ordering::Relaxed);
}

fn set_error(handle: &WorldHandle, reason: Option<String>) {
    *handle.live.follow_error.lock().expect("follow error lock") = reason;
}
