//! The world actor: the one thread that owns the [`DurableWorld`].
//!
//! It paces ticks at the manifest's rate and, between ticks, admits inputs
//! in the order their messages arrive. Admission is group-committed: the
//! actor takes every admission message already waiting, admits each input,
//! journals them as one record with one `fdatasync`, and only then answers
//! each with `{tick, seq}`. While that fdatasync runs, the next group
//! gathers in the channel.
//!
//! HTTP handlers hold a [`WorldHandle`]: a channel to the actor and the
//! shared [`Live`] view (status, readiness inputs, metrics, tick events),
//! which they read without waiting for the actor.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use everarcade_federation::stream::DurableEnd;
use everarcade_federation::{Position, Role, WireRecord};
use everarcade_protocol::{Outcome, Receipt, Tick, TickRoots, Verified};
use everarcade_world::follow::{Applied, CheckedSignatures, FollowError};
use everarcade_world::incident::{Incident, record_incident};
use everarcade_world::{Divergence, DurableWorld, Listening, WorldError};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::signatures::SignatureChecks;

/// Executed ticks kept in memory for `GET …/ticks/{tick}`.
pub const TICKS_RETAINED_MAX: usize = 4096;
/// Messages waiting for the actor at most; beyond it senders wait.
pub const REQUESTS_QUEUED_MAX: usize = 65_536;
/// Admission messages folded into one group commit at most.
pub const GROUP_COMMIT_MESSAGES_MAX: usize = 4096;
/// Tick events buffered per stream subscriber before it is told it lagged.
pub const TICK_EVENTS_BUFFERED_MAX: usize = 1024;
/// `status.json` is rewritten at least this often while ticks run.
/// Guest `log` lines written to the node's log per tick (at `debug`); the
/// rest are counted in one line. The engine keeps at most
/// [`everarcade_engine::LOG_LINES_MAX`] a tick.
pub const GUEST_LOG_LINES_PER_TICK_MAX: usize = 16;
/// Bytes of one guest `log` line written to the node's log; longer lines are cut.
pub const GUEST_LOG_LINE_BYTES_MAX: usize = 200;
const _: () = assert!(GUEST_LOG_LINE_BYTES_MAX <= everarcade_engine::LOG_LINE_BYTES_MAX);
const STATUS_WRITE_INTERVAL: Duration = Duration::from_secs(5);
/// Ticks the achieved-rate window spans.
const RATE_WINDOW_TICKS: usize = 100;
/// Under `--ack replicated`, how long an admission waits for its record to
/// be replicated before it is answered 503 `replication_unavailable`.
pub const REPLICATION_WAIT_MAX: Duration = Duration::from_secs(3);

/// Where an admitted input will execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    /// The tick it executes in.
    pub tick: Tick,
    /// Its position among that tick's inputs, from 0.
    pub seq: u32,
}

/// One executed tick as kept in memory.
#[derive(Clone, Debug)]
pub struct TickView {
    /// Its roots.
    pub roots: TickRoots,
    /// Inputs it executed.
    pub input_count: u32,
    /// One receipt per input, then the tick hook's.
    pub receipts: Vec<Receipt>,
    /// The tick's event stream data, made once for every subscriber.
    pub event_data: std::sync::OnceLock<String>,
}

impl TickView {
    /// Receipts of inputs with this outcome.
    pub fn count(&self, outcome: fn(&Outcome) -> bool) -> usize {
        self.receipts
            .iter()
            .take(self.input_count as usize)
            .filter(|receipt| outcome(&receipt.outcome))
            .count()
    }
}

/// What a resuming event stream replays: the ticks after the one it last
/// saw that the node still holds (the most recent [`TICKS_RETAINED_MAX`]).
#[derive(Clone, Debug)]
pub struct Replay {
    /// The head when asked.
    pub head: Tick,
    /// The held ticks after the one asked for, oldest first.
    pub ticks: Vec<Arc<TickView>>,
}

impl Replay {
    /// The ticks `(from, to)` after `after`, up to the head, that are no
    /// longer held, if any.
    pub fn gap(&self, after: Tick) -> Option<(Tick, Tick)> {
        let first_missing = after.checked_add(1)?;
        let first_held = self
            .ticks
            .first()
            .map_or(self.head.saturating_add(1), |view| view.roots.tick);
        (first_missing < first_held && first_missing <= self.head)
            .then(|| (first_missing, first_held - 1))
    }
}

/// A state value with its proof against the head's state root.
#[derive(Clone, Debug)]
pub struct StateView {
    /// The head tick.
    pub tick: Tick,
    /// The value, if present.
    pub value: Option<Vec<u8>>,
    /// The state root at `tick`.
    pub state_root: everarcade_protocol::Hash,
    /// `Proof::encode()` of membership or absence.
    pub proof: Vec<u8>,
}

/// A page of the key space at the head tick, in key order.
#[derive(Clone, Debug)]
pub struct KeysView {
    /// The head tick.
    pub tick: Tick,
    /// The state root at `tick`.
    pub state_root: everarcade_protocol::Hash,
    /// Keys in the whole state.
    pub total: usize,
    /// `(key, value)` of the page's entries.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether keys follow the page.
    pub more: bool,
}

/// A checkpoint taken on request.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckpointView {
    /// Its tick.
    pub tick: Tick,
    /// The file (inside the runtime root, or in memory under amnesia).
    pub path: String,
    /// Its size.
    pub bytes: u64,
}

/// A tick boundary a hot backup copies: its checkpoint and where the
/// journal ended right after it.
#[derive(Clone, Debug)]
pub struct BackupPoint {
    /// The checkpoint taken at the boundary.
    pub checkpoint: CheckpointView,
    /// `(segment, durable length)` of the journal then.
    pub journal_end: (u64, u64),
}

/// What a graceful stop did.
#[derive(Clone, Debug)]
pub struct StopReport {
    /// The last executed tick.
    pub tick: Tick,
    /// Inputs that were acknowledged and executed in the final tick.
    pub final_tick_inputs: usize,
    /// The checkpoint written on the way out, if one was needed.
    pub checkpoint: Option<CheckpointView>,
    /// Why the world could not be stopped cleanly, if it could not.
    pub error: Option<String>,
}

/// The head and its counters, readable without the actor.
#[derive(Clone, Debug)]
pub struct LiveStatus {
    /// Roots of the head tick.
    pub roots: TickRoots,
    /// Inputs admitted for the next tick.
    pub pending_inputs: usize,
    /// The newest checkpoint's tick.
    pub checkpoint_tick: Option<Tick>,
    /// Ticks per second over the last ticks.
    pub achieved_tick_rate_hz: f64,
}

/// What handlers read without waiting for the actor.
pub struct Live {
    /// The head.
    pub status: RwLock<LiveStatus>,
    /// Every metric.
    pub metrics: Metrics,
    /// Whether admission is open.
    pub admission_open: AtomicBool,
    /// Why the journal or world refuses work, once it does.
    pub poisoned: Mutex<Option<String>>,
    /// Whether a stop has begun.
    pub stopping: AtomicBool,
    /// Executed ticks, for the event stream.
    pub events: broadcast::Sender<Arc<TickView>>,
    /// Set once the world stopped: event streams end.
    pub stopped: watch::Sender<bool>,
    /// A divergence (or corruption) the self-audit found: admission is
    /// closed, ticks stop and the lineage is no longer published.
    pub incident: Mutex<Option<IncidentView>>,
    /// State reads answered at the head tick, so a key many viewers read
    /// costs the actor one read a tick, not one per viewer.
    pub state_reads: Mutex<StateReads>,
    /// Where the journal is durable, moved after every fdatasync: the
    /// record stream serves up to here and long-polls on it.
    pub durable: watch::Sender<DurableEnd>,
    /// The storage the journal is on, for the record stream's reads.
    pub storage: Arc<dyn everarcade_store::Storage>,
    /// This node's role for the world (docs/FEDERATION.md); the follower
    /// task watches it.
    pub role: watch::Sender<Role>,
    /// Replication as the authority sees it.
    pub replication: Replication,
    /// A follower: the authority's head tick as last heard (for `lag_ticks`).
    pub authority_tick: std::sync::atomic::AtomicU64,
    /// A follower: why following fails now, if it does (shown by status and
    /// `/readyz`).
    pub follow_error: Mutex<Option<String>>,
    /// The JetStream authority lease this node holds, while it holds one:
    /// admission asks it before every acknowledgement.
    pub lease: Mutex<Option<Arc<everarcade_federation::lease::LeaseKeeper>>>,
    /// A JetStream follower: the authority's URL as its lease names it.
    pub authority_url: Mutex<Option<String>>,
    /// Where the last pulls of `/records` ended, so that the next pull of a
    /// follower reads only the journal after it (at most
    /// [`RECORD_TAILS_KEPT`], the most recent last).
    pub record_tails: Mutex<Vec<everarcade_federation::stream::JournalTail>>,
    /// The authority's checkpoint this follower caught up from, if it did
    /// since it started: the ticks up to it were journaled here, not
    /// executed (docs/FEDERATION.md, catch-up).
    pub caught_up_from: Mutex<Option<Tick>>,
}

/// Journal positions of recent `/records` pulls kept for the next ones.
pub const RECORD_TAILS_KEPT: usize = 16;

/// What the authority knows of its records' replication.
pub struct Replication {
    /// Whether 202 waits for replication (`--ack replicated`).
    pub ack_replicated: bool,
    /// HTTP followers that must hold a record first.
    pub ack_followers: usize,
    /// What each HTTP follower last said, by its name.
    pub followers: Mutex<std::collections::BTreeMap<String, FollowerSeen>>,
    /// Records through this ordinal count as replicated.
    pub replicated: watch::Sender<u64>,
}

/// What an HTTP follower told the authority with its last pull.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowerSeen {
    /// Its journal's last durable record.
    pub durable_record: u64,
    /// The tick at which its roots differed from this node's, if it
    /// reported one (it stopped following then).
    pub diverged_at_tick: Option<u64>,
}

impl Replication {
    /// A follower reported its durable record (and, on its last pull, a
    /// divergence): records through the `ack_followers`-th highest durable
    /// ordinal of the followers that have not diverged are replicated.
    pub fn follower_durable(&self, name: &str, durable: u64, diverged: Option<u64>) {
        let mut followers = self.followers.lock().expect("followers lock");
        let known = followers.entry(name.to_string()).or_default();
        known.durable_record = known.durable_record.max(durable);
        if diverged.is_some() {
            known.diverged_at_tick = diverged;
        }
        let mut ordinals: Vec<u64> = followers
            .values()
            .filter(|seen| seen.diverged_at_tick.is_none())
            .map(|seen| seen.durable_record)
            .collect();
        ordinals.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&through) = ordinals.get(self.ack_followers.saturating_sub(1)) {
            self.replicated.send_if_modified(|current| {
                let moved = through > *current;
                *current = (*current).max(through);
                moved
            });
        }
    }
}

/// Keys read at one tick, with their values and proofs: a state value at
/// an executed tick never changes, so every reader of that key at that
/// tick can be given the same answer without asking the actor again.
/// Bounded by [`STATE_READS_CACHED_MAX`] keys and
/// [`STATE_READS_CACHED_BYTES_MAX`] bytes; emptied when the head moves.
#[derive(Debug, Default)]
pub struct StateReads {
    tick: Tick,
    bytes: usize,
    views: std::collections::HashMap<Vec<u8>, StateView>,
}

/// Keys kept in [`StateReads`] at most.
pub const STATE_READS_CACHED_MAX: usize = 1024;
/// Bytes of keys, values and proofs kept in [`StateReads`] at most.
pub const STATE_READS_CACHED_BYTES_MAX: usize = 8 * 1024 * 1024;

impl StateReads {
    /// The answer for `key` at `tick`, if one was kept.
    pub fn get(&self, tick: Tick, key: &[u8]) -> Option<StateView> {
        (self.tick == tick).then(|| self.views.get(key).cloned())?
    }

    /// Keeps `view` for `key`; a view of a newer tick replaces every older
    /// one, a view of an older tick than those kept is not kept.
    pub fn keep(&mut self, key: Vec<u8>, view: &StateView) {
        if view.tick > self.tick {
            *self = StateReads {
                tick: view.tick,
                ..StateReads::default()
            };
        }
        let bytes = key.len() + view.value.as_ref().map_or(0, Vec::len) + view.proof.len();
        if view.tick < self.tick
            || self.views.len() >= STATE_READS_CACHED_MAX
            || self.bytes + bytes > STATE_READS_CACHED_BYTES_MAX
            || self.views.contains_key(&key)
        {
            return;
        }
        self.bytes += bytes;
        self.views.insert(key, view.clone());
    }
}

/// What `status` and `/readyz` show of an incident.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IncidentView {
    /// `divergence` or `integrity`.
    pub kind: String,
    /// The first tick involved.
    pub tick: Tick,
    /// The record under `incidents/`.
    pub record: String,
    /// The message.
    pub message: String,
}

impl Live {
    /// The poison reason, if any.
    pub fn poison_reason(&self) -> Option<String> {
        self.poisoned.lock().expect("poison lock").clone()
    }

    /// Why an input would be refused before admission now, if it would:
    /// a poisoned journal, or closed admission (and who closed it).
    pub fn admission_refusal(&self) -> Option<ApiError> {
        if let Some(reason) = self.poison_reason() {
            return Some(ApiError::poisoned(&reason));
        }
        let lost = self
            .lease
            .lock()
            .expect("lease lock")
            .as_ref()
            .is_some_and(|keeper| !keeper.is_held());
        if lost {
            return Some(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "lease_lost",
                    "this node's authority lease is lost: it admits nothing more \
                     (GET /v1/worlds/{world}/authority names the authority)",
                )
                .retry_after(1),
            );
        }
        let role = self.role.borrow().clone();
        if !role.admits() {
            let whom = match role.authority() {
                Some(url) => format!("submit to the authority at {url}"),
                None => "no authority is known here".to_string(),
            };
            return Some(ApiError::new(
                StatusCode::CONFLICT,
                "not_authority",
                format!(
                    "this node is a {} of the world and admits no inputs; {whom} \
                     (GET /v1/worlds/{{world}}/authority on any node names it)",
                    role.name()
                ),
            ));
        }
        if self.admission_open.load(Ordering::SeqCst) {
            return None;
        }
        let why = if self.stopping.load(Ordering::SeqCst) {
            "the node is stopping"
        } else if self.incident().is_some() {
            "an incident stands (see status)"
        } else {
            "closed by the operator"
        };
        Some(ApiError::admission_closed(why))
    }

    /// The incident, if one was found.
    pub fn incident(&self) -> Option<IncidentView> {
        self.incident.lock().expect("incident lock").clone()
    }

    /// A copy of the head.
    pub fn status(&self) -> LiveStatus {
        self.status.read().expect("status lock").clone()
    }
}

/// The per-input answers of an admission, and the ordinal of the record
/// that journaled them (if any was admitted).
type AdmitAnswer = (Vec<Result<Ack, ApiError>>, Option<u64>);

/// Inputs to admit and where to send the answers.
type AdmitRequest = (Vec<Verified>, oneshot::Sender<AdmitAnswer>);

enum Request {
    Admit {
        inputs: Vec<Verified>,
        reply: oneshot::Sender<AdmitAnswer>,
    },
    Tick {
        tick: Tick,
        reply: oneshot::Sender<Option<TickView>>,
    },
    TicksAfter {
        after: Tick,
        reply: oneshot::Sender<Replay>,
    },
    State {
        key: Vec<u8>,
        reply: oneshot::Sender<StateView>,
    },
    Keys {
        after: Option<Vec<u8>>,
        limit: usize,
        reply: oneshot::Sender<KeysView>,
    },
    Admission {
        open: bool,
        reply: oneshot::Sender<()>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<CheckpointView, ApiError>>,
    },
    BackupPoint {
        reply: oneshot::Sender<Result<BackupPoint, ApiError>>,
    },
    Drain {
        reply: oneshot::Sender<Result<Tick, ApiError>>,
    },
    Stop {
        reply: oneshot::Sender<StopReport>,
    },
    Incident {
        incident: Box<Incident>,
        reply: oneshot::Sender<IncidentView>,
    },
    /// A follower's records from its authority, with their signatures if
    /// the follower checked them already.
    Apply {
        records: Vec<WireRecord>,
        checked: Option<CheckedSignatures>,
        reply: oneshot::Sender<Result<Applied, ApiError>>,
    },
    /// A follower far behind: records journaled, not executed, up to the
    /// tick of the authority's checkpoint.
    JournalAhead {
        records: Vec<WireRecord>,
        through: Tick,
        reply: oneshot::Sender<Result<Position, ApiError>>,
    },
    /// A follower far behind: the authority's checkpoint, installed.
    InstallCheckpoint {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Tick, ApiError>>,
    },
    /// A follower's durable head: where its next batch begins.
    DurableHead {
        reply: oneshot::Sender<Position>,
    },
    /// Become the authority (`federation promote`).
    Promote {
        reply: oneshot::Sender<Result<Tick, ApiError>>,
    },
    /// Leave input authority (`federation leave`).
    Leave {
        reply: oneshot::Sender<Result<Tick, ApiError>>,
    },
    /// Follow `authority` (`federation rejoin`).
    Rejoin {
        authority: String,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
}

/// A handle on the world actor; cheap to clone.
#[derive(Clone)]
pub struct WorldHandle {
    requests: mpsc::Sender<Request>,
    /// The shared live view.
    pub live: Arc<Live>,
    /// How inputs' signatures are checked before admission, under the
    /// rule of the world's profile (docs/PROTOCOL.md §4.3).
    pub signatures: SignatureChecks,
}

fn gone() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopping",
        "the world loop has stopped",
    )
}

impl WorldHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(make(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// Whether the world actor has ended (stopped, or its thread gone):
    /// every request now fails, and tasks serving it should end too.
    pub fn is_closed(&self) -> bool {
        self.requests.is_closed()
    }

    /// Admits inputs; answers once they are durable (or refused).
    pub async fn admit(
        &self,
        inputs: Vec<Verified>,
    ) -> Result<Vec<Result<Ack, ApiError>>, ApiError> {
        let (mut answers, ordinal) = self.ask(|reply| Request::Admit { inputs, reply }).await?;
        let replication = &self.live.replication;
        if let (true, Some(ordinal)) = (replication.ack_replicated, ordinal) {
            let mut replicated = replication.replicated.subscribe();
            let waited = tokio::time::timeout(
                REPLICATION_WAIT_MAX,
                replicated.wait_for(|through| *through >= ordinal),
            )
            .await;
            if !matches!(waited, Ok(Ok(_))) {
                for answer in &mut answers {
                    if let Ok(ack) = answer {
                        *answer = Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "replication_unavailable",
                            format!(
                                "admitted and durable on this node for tick {} seq {}, but not \
                                 replicated within {} ms (--ack replicated); it will execute here, \
                                 but survives the loss of this host only once replicated; do not \
                                 resubmit it (its nonce is used)",
                                ack.tick,
                                ack.seq,
                                REPLICATION_WAIT_MAX.as_millis()
                            ),
                        )
                        .retry_after(1));
                    }
                }
            }
        }
        Ok(answers)
    }

    /// Applies a follower's records from its authority; `checked`, their
    /// signatures if checked already (`stream::check_signatures`).
    pub async fn apply(
        &self,
        records: Vec<WireRecord>,
        checked: Option<CheckedSignatures>,
    ) -> Result<Applied, ApiError> {
        self.ask(|reply| Request::Apply {
            records,
            checked,
            reply,
        })
        .await?
    }

    /// A follower far behind: journals `records` without executing them,
    /// up to tick `through`'s record (the tick of the authority's
    /// checkpoint); returns the durable head.
    pub async fn journal_ahead(
        &self,
        records: Vec<WireRecord>,
        through: Tick,
    ) -> Result<Position, ApiError> {
        self.ask(|reply| Request::JournalAhead {
            records,
            through,
            reply,
        })
        .await?
    }

    /// A follower far behind: installs the authority's checkpoint of the
    /// last tick journaled ahead and resumes from it; returns its tick.
    pub async fn install_checkpoint(&self, bytes: Vec<u8>) -> Result<Tick, ApiError> {
        self.ask(|reply| Request::InstallCheckpoint { bytes, reply })
            .await?
    }

    /// A follower's durable head: where its next batch begins.
    pub async fn durable_head(&self) -> Result<Position, ApiError> {
        self.ask(|reply| Request::DurableHead { reply }).await
    }

    /// Makes this follower (or standby) the authority; returns the head tick.
    pub async fn promote(&self) -> Result<Tick, ApiError> {
        self.ask(|reply| Request::Promote { reply }).await?
    }

    /// Leaves input authority: admission stops, pending inputs execute,
    /// ticks stop; returns the head tick.
    pub async fn leave(&self) -> Result<Tick, ApiError> {
        self.ask(|reply| Request::Leave { reply }).await?
    }

    /// Follows `authority` from this node's head.
    pub async fn rejoin(&self, authority: String) -> Result<(), ApiError> {
        self.ask(|reply| Request::Rejoin { authority, reply })
            .await?
    }

    /// An executed tick still held in memory.
    pub async fn tick(&self, tick: Tick) -> Result<Option<TickView>, ApiError> {
        self.ask(|reply| Request::Tick { tick, reply }).await
    }

    /// The ticks after `after` that are still held in memory, for an event
    /// stream that resumes.
    pub async fn ticks_after(&self, after: Tick) -> Result<Replay, ApiError> {
        self.ask(|reply| Request::TicksAfter { after, reply }).await
    }

    /// A state value with its proof at the head tick. A key already read
    /// at the head is answered from [`Live::state_reads`], without the
    /// actor.
    pub async fn state(&self, key: Vec<u8>) -> Result<StateView, ApiError> {
        let head = self.live.status.read().expect("status lock").roots.tick;
        let kept = self
            .live
            .state_reads
            .lock()
            .expect("state reads lock")
            .get(head, &key);
        if let Some(view) = kept {
            return Ok(view);
        }
        let view = self
            .ask(|reply| Request::State {
                key: key.clone(),
                reply,
            })
            .await?;
        self.live
            .state_reads
            .lock()
            .expect("state reads lock")
            .keep(key, &view);
        Ok(view)
    }

    /// Up to `limit` keys after `after` (from the first key for `None`)
    /// with their values, at the head tick.
    pub async fn keys(&self, after: Option<Vec<u8>>, limit: usize) -> Result<KeysView, ApiError> {
        self.ask(|reply| Request::Keys {
            after,
            limit,
            reply,
        })
        .await
    }

    /// Opens or closes admission (and records it in `status.json`).
    pub async fn set_admission(&self, open: bool) -> Result<(), ApiError> {
        self.ask(|reply| Request::Admission { open, reply }).await
    }

    /// A checkpoint at the next tick boundary with no inputs pending.
    pub async fn checkpoint(&self) -> Result<CheckpointView, ApiError> {
        self.ask(|reply| Request::Checkpoint { reply }).await?
    }

    /// A checkpoint at the next tick boundary with no inputs pending, and
    /// the journal's end right after it: what a hot backup copies.
    pub async fn backup_point(&self) -> Result<BackupPoint, ApiError> {
        self.ask(|reply| Request::BackupPoint { reply }).await?
    }

    /// Closes admission and waits until every acknowledged input executed.
    pub async fn drain(&self) -> Result<Tick, ApiError> {
        self.ask(|reply| Request::Drain { reply }).await?
    }

    /// Records an incident the self-audit found: closes admission, stops
    /// ticks and publishing, writes `incidents/<n>.json`.
    pub async fn incident(&self, incident: Incident) -> Result<IncidentView, ApiError> {
        let incident = Box::new(incident);
        self.ask(|reply| Request::Incident { incident, reply })
            .await
    }

    /// Graceful stop: close admission, finish the tick, checkpoint, write
    /// `status.json`, end the actor.
    pub async fn stop(&self) -> Result<StopReport, ApiError> {
        self.live.stopping.store(true, Ordering::SeqCst);
        self.live.admission_open.store(false, Ordering::SeqCst);
        self.ask(|reply| Request::Stop { reply }).await
    }
}

/// How the actor runs.
#[derive(Clone, Debug)]
pub struct ActorConfig {
    /// Ticks per second (the manifest's `tick_rate_hz`).
    pub tick_rate_hz: u32,
    /// Periodic checkpoints; 0 only on demand.
    pub checkpoint_interval_ticks: u64,
    /// Addresses to record in `status.json`.
    pub addresses: Vec<String>,
    /// The TLS certificate to record in `status.json` (absolute), if any.
    pub tls_cert: Option<String>,
    /// Whether the world lives in memory only (its log then names no file).
    pub amnesia: bool,
    /// Whether admission opens at start.
    pub admission_open: bool,
    /// The role at start: the authority, or a follower of a URL.
    pub role: Role,
    /// `--ack replicated`, and the HTTP followers it needs.
    pub ack_replicated: bool,
    /// See [`Replication::ack_followers`].
    pub ack_followers: usize,
}

/// Starts the actor on its own thread.
pub fn spawn(
    world: DurableWorld,
    checkpoint_tick: Option<Tick>,
    config: ActorConfig,
) -> std::io::Result<(WorldHandle, std::thread::JoinHandle<()>)> {
    let (requests, receiver) = mpsc::channel(REQUESTS_QUEUED_MAX);
    let (events, _) = broadcast::channel(TICK_EVENTS_BUFFERED_MAX);
    let live = Arc::new(Live {
        status: RwLock::new(LiveStatus {
            roots: world.roots(),
            pending_inputs: world.pending_inputs(),
            checkpoint_tick,
            achieved_tick_rate_hz: 0.0,
        }),
        metrics: Metrics::default(),
        admission_open: AtomicBool::new(config.admission_open),
        state_reads: Mutex::new(StateReads::default()),
        poisoned: Mutex::new(None),
        stopping: AtomicBool::new(false),
        events,
        stopped: watch::channel(false).0,
        incident: Mutex::new(None),
        durable: watch::channel(durable_end(&world)).0,
        storage: world.storage().clone(),
        role: watch::channel(config.role.clone()).0,
        replication: Replication {
            ack_replicated: config.ack_replicated,
            ack_followers: config.ack_followers.max(1),
            followers: Mutex::new(std::collections::BTreeMap::new()),
            replicated: watch::channel(0).0,
        },
        authority_tick: std::sync::atomic::AtomicU64::new(0),
        follow_error: Mutex::new(None),
        lease: Mutex::new(None),
        authority_url: Mutex::new(None),
        record_tails: Mutex::new(Vec::new()),
        caught_up_from: Mutex::new(None),
    });
    let signatures = SignatureChecks::start(
        world.world().signature_rule(),
        live.metrics.signature_batches.clone(),
    )?;
    let actor = Actor {
        world,
        live: live.clone(),
        config,
        ticks: VecDeque::new(),
        tick_instants: VecDeque::new(),
        checkpoint_waiters: Vec::new(),
        backup_waiters: Vec::new(),
        drain_waiters: Vec::new(),
        checkpoint_tick,
        status_written: None,
    };
    actor.refresh_gauges();
    let thread = std::thread::Builder::new()
        .name("world".into())
        .spawn(move || actor.run(receiver))?;
    Ok((
        WorldHandle {
            requests,
            live,
            signatures,
        },
        thread,
    ))
}

/// Whether the actor goes on after a request.
#[derive(PartialEq, Eq)]
enum Served {
    Going,
    Stopped,
}

struct Actor {
    world: DurableWorld,
    live: Arc<Live>,
    config: ActorConfig,
    /// The most recent ticks, oldest first, shared with event streams.
    ticks: VecDeque<Arc<TickView>>,
    tick_instants: VecDeque<Instant>,
    checkpoint_waiters: Vec<oneshot::Sender<Result<CheckpointView, ApiError>>>,
    backup_waiters: Vec<oneshot::Sender<Result<BackupPoint, ApiError>>>,
    drain_waiters: Vec<oneshot::Sender<Result<Tick, ApiError>>>,
    checkpoint_tick: Option<Tick>,
    status_written: Option<Instant>,
}

impl Actor {
    fn run(mut self, mut receiver: mpsc::Receiver<Request>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime with timers");
        let period = Duration::from_secs_f64(1.0 / f64::from(self.config.tick_rate_hz.max(1)));
        self.write_status("running");
        runtime.block_on(async move {
            let mut next = tokio::time::Instant::now() + period;
            loop {
                let ticking = self.live.role.borrow().admits();
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep_until(next), if ticking => {
                        self.tick();
                        next += period;
                        let now = tokio::time::Instant::now();
                        // Behind (a long tick, a long group commit, a stalled
                        // disk): no burst of empty catch-up ticks; the next
                        // tick is one period away, and the achieved-rate
                        // metric shows the shortfall.
                        if next <= now {
                            next = now + period;
                        }
                    }
                    request = receiver.recv() => match request {
                        None => {
                            // Every handle is gone: stop as if asked.
                            self.stop();
                            return;
                        }
                        Some(request) => {
                            if self.serve(request, &mut receiver) == Served::Stopped {
                                return;
                            }
                        }
                    }
                }
            }
        });
    }

    /// Serves one request; an admission also takes every admission already
    /// waiting (the group commit).
    fn serve(&mut self, first: Request, receiver: &mut mpsc::Receiver<Request>) -> Served {
        let Request::Admit { inputs, reply } = first else {
            return self.serve_other(first);
        };
        let mut group = vec![(inputs, reply)];
        let mut others = Vec::new();
        while group.len() < GROUP_COMMIT_MESSAGES_MAX {
            match receiver.try_recv() {
                Ok(Request::Admit { inputs, reply }) => group.push((inputs, reply)),
                // A stop waits for the group, then comes first.
                Ok(other) => others.push(other),
                Err(_) => break,
            }
        }
        self.admit_group(group);
        for other in others {
            if self.serve_other(other) == Served::Stopped {
                return Served::Stopped;
            }
        }
        Served::Going
    }

    fn admit_group(&mut self, group: Vec<AdmitRequest>) {
        let live = self.live.clone();
        let metrics = &live.metrics;
        let tick = self.world.roots().tick + 1;
        let mut answers: Vec<Vec<Result<Ack, ApiError>>> = Vec::with_capacity(group.len());
        let mut admitted = 0u64;
        let mut replies = Vec::with_capacity(group.len());
        let mut ordinal = None;
        for (inputs, reply) in group {
            let mut answer = Vec::with_capacity(inputs.len());
            for input in inputs {
                answer.push(self.admit_one(input, tick));
            }
            admitted += answer.iter().filter(|a| a.is_ok()).count() as u64;
            answers.push(answer);
            replies.push(reply);
        }
        if admitted > 0 {
            let started = Instant::now();
            let committed = self.world.commit_inputs();
            metrics.journal_fsync.observe(started.elapsed());
            if committed.is_ok() {
                self.live.durable.send_replace(durable_end(&self.world));
                ordinal = Some(self.world.durable_head().ordinal);
            }
            if let Err(error) = committed {
                self.poison(&error);
                let refused = ApiError::poisoned(&error.to_string());
                for answer in &mut answers {
                    for result in answer.iter_mut().filter(|r| r.is_ok()) {
                        *result = Err(refused.clone());
                    }
                }
                admitted = 0;
            }
            metrics.group_commits.fetch_add(1, Ordering::Relaxed);
            metrics
                .group_commit_inputs
                .fetch_add(admitted, Ordering::Relaxed);
        }
        metrics
            .inputs_admitted
            .fetch_add(admitted, Ordering::Relaxed);
        for answer in &answers {
            for error in answer.iter().filter_map(|r| r.as_ref().err()) {
                metrics.inputs_rejected.add(error.code, 1);
            }
        }
        self.live
            .status
            .write()
            .expect("status lock")
            .pending_inputs = self.world.pending_inputs();
        let ordinal = ordinal.filter(|_| admitted > 0);
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send((answer, ordinal));
        }
    }

    fn admit_one(&mut self, input: Verified, tick: Tick) -> Result<Ack, ApiError> {
        if let Some(reason) = self.world.poisoned() {
            return Err(ApiError::poisoned(reason));
        }
        if let Some(refusal) = self.live.admission_refusal() {
            return Err(refusal);
        }
        let seq = self.world.admit_verified(input)?;
        Ok(Ack { tick, seq })
    }

    fn serve_other(&mut self, request: Request) -> Served {
        match request {
            Request::Admit { inputs, reply } => self.admit_group(vec![(inputs, reply)]),
            Request::Stop { reply } => {
                let _ = reply.send(self.stop());
                return Served::Stopped;
            }
            Request::Tick { tick, reply } => {
                let view = self
                    .ticks
                    .iter()
                    .find(|view| view.roots.tick == tick)
                    .map(|view| TickView::clone(view));
                let _ = reply.send(view);
            }
            Request::TicksAfter { after, reply } => {
                // Ticks are held in order: find the first after `after`;
                // the replay shares them (no copy of their receipts).
                let first = self.ticks.partition_point(|view| view.roots.tick <= after);
                let _ = reply.send(Replay {
                    head: self.world.roots().tick,
                    ticks: self.ticks.range(first..).cloned().collect(),
                });
            }
            Request::Keys {
                after,
                limit,
                reply,
            } => {
                let world = self.world.world_mut();
                let state_root = world.state_root();
                let state = world.state();
                let mut page = state.iter_after(after.as_deref());
                let entries = page
                    .by_ref()
                    .take(limit)
                    .map(|(key, value)| (key.to_vec(), value.to_vec()))
                    .collect();
                let more = page.next().is_some();
                let _ = reply.send(KeysView {
                    tick: world.tick(),
                    state_root,
                    total: state.len(),
                    entries,
                    more,
                });
            }
            Request::State { key, reply } => {
                let world = self.world.world_mut();
                let state_root = world.state_root();
                let proof = world.prove(&key).encode();
                let value = world.state().get(&key).map(<[u8]>::to_vec);
                let tick = world.tick();
                let _ = reply.send(StateView {
                    tick,
                    value,
                    state_root,
                    proof,
                });
            }
            Request::Admission { open, reply } => {
                if !(open && self.live.stopping.load(Ordering::SeqCst)) {
                    self.live.admission_open.store(open, Ordering::SeqCst);
                }
                tracing::info!(
                    admission = if open { "open" } else { "closed" },
                    "admission changed by the operator"
                );
                self.write_status("running");
                let _ = reply.send(());
            }
            Request::Checkpoint { reply } => {
                if self.world.pending_inputs() == 0 {
                    let _ = reply.send(self.checkpoint("requested"));
                } else {
                    self.checkpoint_waiters.push(reply);
                }
            }
            Request::Incident { incident, reply } => {
                let _ = reply.send(self.record_incident(*incident));
            }
            Request::Apply {
                records,
                checked,
                reply,
            } => {
                let _ = reply.send(self.apply(records, checked));
            }
            Request::JournalAhead {
                records,
                through,
                reply,
            } => {
                let _ = reply.send(self.journal_ahead(records, through));
            }
            Request::InstallCheckpoint { bytes, reply } => {
                let _ = reply.send(self.install_checkpoint(&bytes));
            }
            Request::DurableHead { reply } => {
                let _ = reply.send(self.world.durable_head().into());
            }
            Request::Promote { reply } => {
                let _ = reply.send(self.promote());
            }
            Request::Leave { reply } => {
                let _ = reply.send(self.leave());
            }
            Request::Rejoin { authority, reply } => {
                let _ = reply.send(self.rejoin(authority));
            }
            Request::BackupPoint { reply } => {
                if self.world.pending_inputs() == 0 {
                    let _ = reply.send(self.backup_point());
                } else {
                    self.backup_waiters.push(reply);
                }
            }
            Request::Drain { reply } => {
                self.live.admission_open.store(false, Ordering::SeqCst);
                tracing::info!(
                    "draining: admission closed until every acknowledged input executes"
                );
                // A follower acknowledged nothing: nothing of its own to drain.
                if self.world.pending_inputs() == 0 || !self.live.role.borrow().admits() {
                    let _ = reply.send(Ok(self.world.roots().tick));
                } else {
                    self.drain_waiters.push(reply);
                }
            }
        }
        Served::Going
    }

    fn tick(&mut self) {
        if self.world.poisoned().is_some() || self.live.incident().is_some() {
            return;
        }
        let started = Instant::now();
        // Every admitted input runs in this tick.
        let input_count = self.world.pending_inputs() as u32;
        let output = match self.world.execute_tick() {
            Ok(output) => output,
            Err(error) => {
                self.poison(&error);
                return;
            }
        };
        self.live.durable.send_replace(durable_end(&self.world));
        log_guest_lines(&output);
        self.live.metrics.tick_duration.observe(started.elapsed());
        self.publish_tick(output.roots, input_count, output.receipts);
        let tick = output.roots.tick;
        let interval = self.config.checkpoint_interval_ticks;
        let due = interval > 0 && tick % interval == 0;
        if due || !self.checkpoint_waiters.is_empty() {
            let taken = self.checkpoint(if due { "periodic" } else { "requested" });
            for waiter in self.checkpoint_waiters.drain(..) {
                let _ = waiter.send(taken.clone());
            }
        }
        for waiter in std::mem::take(&mut self.backup_waiters) {
            let _ = waiter.send(self.backup_point());
        }
        for waiter in self.drain_waiters.drain(..) {
            let _ = waiter.send(Ok(tick));
        }
        self.refresh_and_write_status();
    }

    /// Keeps an executed tick for the read API and tells the event streams.
    fn publish_tick(&mut self, roots: TickRoots, input_count: u32, receipts: Vec<Receipt>) {
        self.live.metrics.ticks.fetch_add(1, Ordering::Relaxed);
        let view = Arc::new(TickView {
            roots,
            input_count,
            receipts,
            event_data: std::sync::OnceLock::new(),
        });
        if self.ticks.len() == TICKS_RETAINED_MAX {
            self.ticks.pop_front();
        }
        self.ticks.push_back(view.clone());
        self.record_rate();
        // The live view moves before anyone hears of the tick.
        self.refresh_gauges();
        let _ = self.live.events.send(view);
    }

    /// A follower's batch: checked, executed, journaled (docs/FEDERATION.md).
    fn apply(
        &mut self,
        records: Vec<WireRecord>,
        checked: Option<CheckedSignatures>,
    ) -> Result<Applied, ApiError> {
        let role = self.live.role.borrow().clone();
        let Role::Follower { authority } = role else {
            return Err(not_follower(&role));
        };
        let started = Instant::now();
        let (applied, error) = everarcade_federation::stream::apply_checked_until_refused(
            &mut self.world,
            &records,
            checked,
        );
        self.live.durable.send_replace(durable_end(&self.world));
        // The ticks journaled ahead of a refused record are the world's all
        // the same: the read API shows them.
        self.publish_applied(&applied, started);
        match error {
            None => {}
            Some(FollowError::PeerRootMismatch(mismatch)) => {
                let divergence = Divergence {
                    tick: mismatch.tick,
                    roots: mismatch.roots.clone(),
                    diff: mismatch.diff.clone(),
                };
                let package_root = self.world.world().compiled().package.root.to_hex();
                let mut incident = Incident::divergence(
                    &divergence,
                    &format!("peer root comparison (following {authority})"),
                    &package_root,
                );
                incident.kind = "peer_root_mismatch".into();
                incident.message = format!(
                    "{}; this follower stopped following {authority}",
                    FollowError::PeerRootMismatch(mismatch.clone())
                );
                self.record_incident(incident);
                self.live.role.send_replace(Role::Diverged {
                    authority,
                    tick: mismatch.tick,
                });
                self.live
                    .metrics
                    .peer_root_mismatches
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "peer_root_mismatch",
                    FollowError::PeerRootMismatch(mismatch).to_string(),
                ));
            }
            Some(error) => {
                if let FollowError::World(world) = &error
                    && self.world.poisoned().is_some()
                {
                    self.poison(world);
                }
                self.live
                    .metrics
                    .records_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    error.code(),
                    error.to_string(),
                ));
            }
        }
        Ok(applied)
    }

    /// A follower far behind: records journaled ahead of execution
    /// (`everarcade_world::catch_up`). A refused record leaves the world
    /// reopened at its last good record, every tick journaled executed.
    fn journal_ahead(
        &mut self,
        records: Vec<WireRecord>,
        through: Tick,
    ) -> Result<Position, ApiError> {
        let role = self.live.role.borrow().clone();
        if !matches!(role, Role::Follower { .. }) {
            return Err(not_follower(&role));
        }
        let borrowed: Vec<(u64, &[u8])> = records
            .iter()
            .map(|record| (record.ordinal, record.bytes.as_slice()))
            .collect();
        let result = self.world.journal_ahead(&borrowed, through);
        self.live.durable.send_replace(durable_end(&self.world));
        match result {
            Ok(ahead) => {
                self.live
                    .metrics
                    .records_applied
                    .fetch_add(ahead.records as u64, Ordering::Relaxed);
                Ok(ahead.durable.into())
            }
            Err(error) => {
                self.live
                    .metrics
                    .records_refused
                    .fetch_add(1, Ordering::Relaxed);
                self.reopen_if_ahead("a record was refused");
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    error.code(),
                    error.to_string(),
                ))
            }
        }
    }

    /// A follower far behind: the authority's checkpoint, checked and
    /// installed; the world resumes from it. A refused checkpoint is not
    /// written, and the world reopens executing what was journaled ahead.
    fn install_checkpoint(&mut self, bytes: &[u8]) -> Result<Tick, ApiError> {
        let role = self.live.role.borrow().clone();
        if !matches!(role, Role::Follower { .. }) {
            return Err(not_follower(&role));
        }
        match self.world.install_checkpoint(bytes) {
            Ok(recovery) => {
                let tick = recovery.roots.tick;
                tracing::info!(
                    tick,
                    "caught up from the authority's checkpoint: the ticks before it were                      journaled here, not executed (replay-verify re-executes them)"
                );
                *self.live.caught_up_from.lock().expect("caught-up lock") = Some(tick);
                self.after_reopen();
                Ok(tick)
            }
            Err(error) => {
                self.reopen_if_ahead("the checkpoint was refused");
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    error.code(),
                    error.to_string(),
                ))
            }
        }
    }

    /// After a failed catch-up: the records journaled ahead are executed
    /// by reopening (recovery), so nothing journaled is lost.
    fn reopen_if_ahead(&mut self, why: &str) {
        if !self.world.is_ahead() {
            return;
        }
        tracing::warn!(
            why,
            "catch-up from a checkpoint stopped; reopening the world, which executes the records journaled ahead"
        );
        match self.world.reopen() {
            Ok(_) => self.after_reopen(),
            Err(error) => self.poison(&error),
        }
    }

    /// The live view after the world was reopened at another head.
    fn after_reopen(&mut self) {
        self.ticks.clear();
        self.checkpoint_tick = everarcade_store::checkpoint::list_checkpoints(
            &**self.world.storage(),
            self.world.dir(),
        )
        .ok()
        .and_then(|listing| listing.checkpoints.last().map(|(tick, _)| *tick));
        self.live.durable.send_replace(durable_end(&self.world));
        self.refresh_and_write_status();
    }

    /// What a follower's batch journaled, to the read API, the metrics and
    /// the waiters for a tick boundary.
    fn publish_applied(&mut self, applied: &Applied, started: Instant) {
        self.live
            .metrics
            .records_applied
            .fetch_add(applied.records as u64, Ordering::Relaxed);
        if !applied.executed.is_empty() {
            self.live
                .metrics
                .tick_duration
                .observe(started.elapsed() / applied.executed.len() as u32);
        }
        for tick in applied.executed.iter().cloned() {
            self.publish_tick(tick.roots, tick.input_count, tick.receipts);
        }
        if let Some(taken) = applied.checkpoints.last() {
            self.checkpoint_tick = Some(taken.tick);
        }
        // Waiters for a tick boundary with nothing pending.
        if self.world.pending_inputs() == 0 && !applied.executed.is_empty() {
            if !self.checkpoint_waiters.is_empty() {
                let taken = self.checkpoint("requested");
                for waiter in self.checkpoint_waiters.drain(..) {
                    let _ = waiter.send(taken.clone());
                }
            }
            for waiter in std::mem::take(&mut self.backup_waiters) {
                let _ = waiter.send(self.backup_point());
            }
        }
        self.refresh_and_write_status();
    }

    /// A follower or standby becomes the authority at its head: the tick
    /// in progress is sealed with exactly the inputs its records held.
    fn promote(&mut self) -> Result<Tick, ApiError> {
        let role = self.live.role.borrow().clone();
        match role {
            Role::Follower { .. } | Role::Standby => {}
            Role::Authority => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "already_authority",
                    "this node is already the world's authority",
                ));
            }
            Role::Diverged { tick, .. } => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "world_diverged",
                    format!(
                        "this node's roots differed from its authority's at tick {tick}; \
                         recover it (docs/FEDERATION.md) before it can be promoted"
                    ),
                ));
            }
        }
        if let Some(reason) = self.world.poisoned() {
            return Err(ApiError::poisoned(reason));
        }
        let sealed = match self.world.take_authority() {
            Ok(sealed) => sealed,
            Err(error) => {
                self.poison(&error);
                return Err(ApiError::poisoned(&error.to_string()));
            }
        };
        self.live.durable.send_replace(durable_end(&self.world));
        if let Some(output) = sealed {
            let inputs = output
                .receipts
                .iter()
                .filter(|r| r.kind == everarcade_protocol::ReceiptKind::Input)
                .count() as u32;
            self.publish_tick(output.roots, inputs, output.receipts);
        }
        self.live.role.send_replace(Role::Authority);
        *self.live.follow_error.lock().expect("follow error lock") = None;
        let tick = self.world.roots().tick;
        tracing::warn!(
            tick,
            "promoted: this node is now the world's authority; inputs it admits go to tick {}",
            tick + 1
        );
        self.write_status("running");
        Ok(tick)
    }

    /// The authority leaves input authority: admission stops, inputs
    /// already acknowledged execute in a last tick, ticks stop.
    fn leave(&mut self) -> Result<Tick, ApiError> {
        let role = self.live.role.borrow().clone();
        if role != Role::Authority {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_authority",
                format!("this node is a {}, not the authority", role.name()),
            ));
        }
        self.live.role.send_replace(Role::Standby);
        if self.world.pending_inputs() > 0 {
            self.tick();
        }
        if let Some(reason) = self.world.poisoned() {
            return Err(ApiError::poisoned(reason));
        }
        let tick = self.world.roots().tick;
        tracing::warn!(
            tick,
            "left input authority: standby, admitting nothing and ticking no more"
        );
        self.write_status("running");
        Ok(tick)
    }

    /// A standby (or follower) follows `authority` from its own head.
    fn rejoin(&mut self, authority: String) -> Result<(), ApiError> {
        let role = self.live.role.borrow().clone();
        match role {
            Role::Standby | Role::Follower { .. } => {}
            other => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_standby",
                    format!(
                        "this node is a {}; only a standby or a follower rejoins \
                         (`federation leave` first)",
                        other.name()
                    ),
                ));
            }
        }
        // A standby's own admitted inputs must execute first; a follower's
        // pending inputs are its authority's, journaled for the tick in
        // progress.
        if role == Role::Standby && self.world.pending_inputs() > 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "inputs_pending",
                "inputs admitted here have not executed; drain before rejoining",
            ));
        }
        tracing::info!(authority = %authority, "rejoining as a follower");
        self.live.role.send_replace(Role::Follower { authority });
        self.write_status("running");
        Ok(())
    }

    fn checkpoint(&mut self, why: &str) -> Result<CheckpointView, ApiError> {
        let started = Instant::now();
        match self.world.checkpoint() {
            Ok(taken) => {
                let metrics = &self.live.metrics;
                metrics.checkpoint_duration.observe(started.elapsed());
                metrics.checkpoints_written.fetch_add(1, Ordering::Relaxed);
                metrics
                    .checkpoint_bytes_written
                    .fetch_add(taken.bytes, Ordering::Relaxed);
                self.checkpoint_tick = Some(taken.tick);
                self.live
                    .status
                    .write()
                    .expect("status lock")
                    .checkpoint_tick = Some(taken.tick);
                if self.config.amnesia {
                    tracing::info!(
                        tick = taken.tick,
                        bytes = taken.bytes,
                        why,
                        "checkpoint kept in memory (amnesia)"
                    );
                } else {
                    tracing::info!(
                        tick = taken.tick,
                        bytes = taken.bytes,
                        why,
                        "checkpoint written"
                    );
                }
                Ok(CheckpointView {
                    tick: taken.tick,
                    path: taken.path.display().to_string(),
                    bytes: taken.bytes,
                })
            }
            Err(error) => {
                if self.world.poisoned().is_some() {
                    self.poison(&error);
                }
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    error.code(),
                    format!("checkpoint failed: {error}"),
                ))
            }
        }
    }

    /// Closes admission, executes a final tick for inputs already
    /// acknowledged, checkpoints if the head is newer than the newest
    /// checkpoint, and records `stopped`.
    /// Checkpoints the head (unless it is checkpointed) and notes the
    /// journal's end: called only at a tick boundary with nothing pending.
    fn backup_point(&mut self) -> Result<BackupPoint, ApiError> {
        let tick = self.world.roots().tick;
        let checkpoint = if self.checkpoint_tick == Some(tick) {
            CheckpointView {
                tick,
                path: self.world.dir().checkpoint(tick).display().to_string(),
                bytes: 0,
            }
        } else {
            self.checkpoint("backup")?
        };
        Ok(BackupPoint {
            checkpoint,
            journal_end: self.world.journal_end(),
        })
    }

    fn stop(&mut self) -> StopReport {
        self.live.stopping.store(true, Ordering::SeqCst);
        self.live.admission_open.store(false, Ordering::SeqCst);
        let final_tick_inputs = self.world.pending_inputs();
        let mut report = StopReport {
            tick: self.world.roots().tick,
            final_tick_inputs,
            checkpoint: None,
            error: None,
        };
        if let Some(reason) = self.world.poisoned() {
            report.error = Some(format!("the world is poisoned: {reason}"));
            return report;
        }
        // A follower's journaled inputs of the tick in progress wait for
        // the authority's tick record: it never executes a tick of its own,
        // and a checkpoint is taken only between ticks (recovery replays
        // those inputs records from the journal).
        let admits = self.live.role.borrow().admits();
        if final_tick_inputs > 0 && admits {
            self.tick();
        }
        let mid_tick = final_tick_inputs > 0 && !admits;
        report.tick = self.world.roots().tick;
        // Under an incident nothing is added or pruned: every artifact stays.
        let incident = self.live.incident().is_some();
        if self.checkpoint_tick != Some(report.tick)
            && self.world.poisoned().is_none()
            && !incident
            && !mid_tick
        {
            match self.checkpoint("stop") {
                Ok(view) => report.checkpoint = Some(view),
                Err(error) => report.error = Some(error.message),
            }
        }
        self.refresh_gauges();
        if let Err(error) = self.world.write_status("stopped") {
            report.error.get_or_insert(error.to_string());
        }
        for waiter in self.drain_waiters.drain(..) {
            let _ = waiter.send(Ok(report.tick));
        }
        report
    }

    fn poison(&mut self, error: &WorldError) {
        tracing::error!(error = %error, code = error.code(), "the world refuses further work; admission closed, readiness failed");
        *self.live.poisoned.lock().expect("poison lock") = Some(error.to_string());
        self.live.admission_open.store(false, Ordering::SeqCst);
        let refused = ApiError::poisoned(&error.to_string());
        for waiter in self.checkpoint_waiters.drain(..) {
            let _ = waiter.send(Err(refused.clone()));
        }
        for waiter in self.drain_waiters.drain(..) {
            let _ = waiter.send(Err(refused.clone()));
        }
        for waiter in self.backup_waiters.drain(..) {
            let _ = waiter.send(Err(refused.clone()));
        }
    }

    fn record_incident(&mut self, incident: Incident) -> IncidentView {
        self.live.admission_open.store(false, Ordering::SeqCst);
        let storage = self.world.storage().clone();
        let record = match record_incident(&*storage, self.world.dir(), &incident) {
            Ok(path) => path.display().to_string(),
            Err(error) => format!("(not written: {error})"),
        };
        let view = IncidentView {
            kind: incident.kind.clone(),
            tick: incident.tick,
            record,
            message: incident.message.clone(),
        };
        tracing::error!(
            kind = %view.kind,
            tick = view.tick,
            record = %view.record,
            "incident: admission closed, ticks stopped, the lineage is no longer published; every artifact is kept"
        );
        *self.live.incident.lock().expect("incident lock") = Some(view.clone());
        self.write_status("incident");
        view
    }

    fn record_rate(&mut self) {
        let now = Instant::now();
        if self.tick_instants.len() == RATE_WINDOW_TICKS {
            self.tick_instants.pop_front();
        }
        self.tick_instants.push_back(now);
    }

    fn achieved_rate(&self) -> f64 {
        match (self.tick_instants.front(), self.tick_instants.back()) {
            (Some(first), Some(last)) if self.tick_instants.len() > 1 => {
                let span = last.duration_since(*first).as_secs_f64();
                if span > 0.0 {
                    (self.tick_instants.len() - 1) as f64 / span
                } else {
                    0.0
                }
            }
            _ => 0.0,
        }
    }

    fn refresh_gauges(&self) {
        let world = self.world.world();
        let metrics = &self.live.metrics;
        let state = world.state();
        metrics
            .state_keys
            .store(state.len() as u64, Ordering::Relaxed);
        metrics
            .state_bytes
            .store(state.value_bytes(), Ordering::Relaxed);
        metrics
            .head_tick
            .store(self.world.roots().tick, Ordering::Relaxed);
        let mut status = self.live.status.write().expect("status lock");
        status.roots = self.world.roots();
        status.pending_inputs = self.world.pending_inputs();
        status.checkpoint_tick = self.checkpoint_tick;
        status.achieved_tick_rate_hz = self.achieved_rate();
    }

    /// The live view, and `status.json` when it is older than
    /// [`STATUS_WRITE_INTERVAL`].
    fn refresh_and_write_status(&mut self) {
        self.refresh_gauges();
        let stale = self
            .status_written
            .is_none_or(|at| at.elapsed() >= STATUS_WRITE_INTERVAL);
        if stale {
            self.write_status("running");
        }
    }

    fn write_status(&mut self, state: &str) {
        let listening = Listening {
            admission_open: self.live.admission_open.load(Ordering::SeqCst),
            addresses: self.config.addresses.clone(),
            tls_cert: self.config.tls_cert.clone(),
        };
        match self.world.write_live_status(state, &listening) {
            Ok(()) => self.status_written = Some(Instant::now()),
            Err(error) => {
                // status.json is advisory; the journal is the truth. A
                // failed write is logged, and poisons only if the world says so.
                tracing::warn!(error = %error, "status.json not written");
                if self.world.poisoned().is_some() {
                    self.poison(&error);
                }
            }
        }
    }
}

/// 409 `not_follower`.
fn not_follower(role: &Role) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_follower",
        format!("this node is a {}, not a follower", role.name()),
    )
}

/// Writes the tick's guest `log` lines to the node's log at `debug`, bounded
/// by [`GUEST_LOG_LINES_PER_TICK_MAX`] and [`GUEST_LOG_LINE_BYTES_MAX`]. The
/// lines are diagnostics: no root covers them.
/// Where `world`'s journal is durable.
fn durable_end(world: &DurableWorld) -> DurableEnd {
    let (segment, length) = world.journal_end();
    DurableEnd { segment, length }
}

fn log_guest_lines(output: &everarcade_engine::TickOutput) {
    if output.logs.is_empty() || !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let tick = output.roots.tick;
    let (lines, dropped) = guest_log_lines(output);
    for (call, line) in lines {
        tracing::debug!(tick, call, line, "guest log");
    }
    if dropped > 0 {
        tracing::debug!(tick, dropped, "guest log lines not written (per-tick cap)");
    }
}

/// The lines [`log_guest_lines`] writes, each with the index of the call
/// (receipt) that logged it and cut to [`GUEST_LOG_LINE_BYTES_MAX`], and
/// how many lines the per-tick cap leaves out.
fn guest_log_lines(output: &everarcade_engine::TickOutput) -> (Vec<(usize, &str)>, usize) {
    let mut lines = Vec::new();
    for (call, trace) in output.calls.iter().enumerate() {
        for line in output.logs.get(trace.logs.clone()).unwrap_or(&[]) {
            if lines.len() == GUEST_LOG_LINES_PER_TICK_MAX {
                break;
            }
            let end = floor_char_boundary(line, GUEST_LOG_LINE_BYTES_MAX);
            lines.push((call, &line[..end]));
        }
    }
    let dropped = output.logs.len() - lines.len();
    (lines, dropped)
}

/// The largest index at most `max` that starts a character of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use everarcade_engine::{CallTrace, TickOutput};
    use everarcade_protocol::{Hash, TickRoots};

    use super::*;

    fn view(tick: Tick, value: &[u8]) -> StateView {
        StateView {
            tick,
            value: Some(value.to_vec()),
            state_root: Hash::ZERO,
            proof: vec![7; 64],
        }
    }

    #[test]
    fn state_reads_answer_only_the_tick_they_were_read_at_and_stay_bounded() {
        let mut reads = StateReads::default();
        reads.keep(b"P".to_vec(), &view(5, b"five"));
        assert_eq!(reads.get(5, b"P").unwrap().value.unwrap(), b"five");
        assert!(reads.get(6, b"P").is_none(), "another tick is not answered");
        assert!(
            reads.get(5, b"B").is_none(),
            "an unread key is not answered"
        );

        // A newer tick replaces every view of the older one.
        reads.keep(b"B".to_vec(), &view(6, b"six"));
        assert!(reads.get(5, b"P").is_none());
        assert_eq!(reads.get(6, b"B").unwrap().value.unwrap(), b"six");
        // A late answer of an older tick is not kept.
        reads.keep(b"P".to_vec(), &view(5, b"late"));
        assert!(reads.get(5, b"P").is_none() && reads.get(6, b"P").is_none());

        for key in 0..STATE_READS_CACHED_MAX + 10 {
            reads.keep(key.to_be_bytes().to_vec(), &view(6, b"v"));
        }
        assert_eq!(reads.views.len(), STATE_READS_CACHED_MAX);
        let big = StateView {
            proof: vec![0; STATE_READS_CACHED_BYTES_MAX],
            ..view(7, b"v")
        };
        reads.keep(b"huge".to_vec(), &big);
        assert!(reads.get(7, b"huge").is_none(), "over the byte bound");
    }

    fn output(lines_per_call: &[usize], line: &str) -> TickOutput {
        let mut logs = Vec::new();
        let mut calls = Vec::new();
        for count in lines_per_call {
            let start = logs.len();
            logs.extend(std::iter::repeat_n(line.to_string(), *count));
            calls.push(CallTrace {
                logs: start..logs.len(),
                ..CallTrace::default()
            });
        }
        TickOutput {
            roots: TickRoots {
                tick: 7,
                input_root: Hash::ZERO,
                receipt_root: Hash::ZERO,
                state_root: Hash::ZERO,
                continuity_root: Hash::ZERO,
            },
            receipts: Vec::new(),
            events: Vec::new(),
            logs,
            calls,
        }
    }

    #[test]
    fn guest_log_lines_name_their_call_and_are_bounded() {
        let few = output(&[2, 0, 1], "hello");
        let (lines, dropped) = guest_log_lines(&few);
        assert_eq!(lines, [(0, "hello"), (0, "hello"), (2, "hello")]);
        assert_eq!(dropped, 0);

        let many = output(&[10, 10], "x");
        let (lines, dropped) = guest_log_lines(&many);
        assert_eq!(lines.len(), GUEST_LOG_LINES_PER_TICK_MAX);
        assert_eq!(lines[GUEST_LOG_LINES_PER_TICK_MAX - 1].0, 1);
        assert_eq!(dropped, 20 - GUEST_LOG_LINES_PER_TICK_MAX);

        // 'é' is two bytes: a cut never splits a character.
        let long = output(&[1], &"é".repeat(GUEST_LOG_LINE_BYTES_MAX));
        let (lines, _) = guest_log_lines(&long);
        assert_eq!(lines[0].1.len(), GUEST_LOG_LINE_BYTES_MAX);
        let odd = output(&[1], &format!("a{}", "é".repeat(GUEST_LOG_LINE_BYTES_MAX)));
        let (lines, _) = guest_log_lines(&odd);
        assert_eq!(lines[0].1.len(), GUEST_LOG_LINE_BYTES_MAX - 1);
    }
}
