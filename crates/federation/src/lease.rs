//! The authority lease (docs/FEDERATION.md §The authority lease): one entry
//! per world in a JetStream key-value bucket.
//!
//! - bucket `everarcade_authority` (configurable, so tests use their own),
//!   key = world id, value = the holder as JSON (`url`, `node_id`, `tick`);
//! - the bucket's maximum age is the lease TTL: an entry nobody renews is
//!   removed by the server `ttl` after its last write;
//! - take = `create` (succeeds only if the key is absent or expired), renew
//!   = `update` on the revision the holder last wrote; both are
//!   compare-and-set on the revision, so of two contenders exactly one wins;
//! - the holder also keeps a local deadline: a lease is valid until `ttl`
//!   (less a margin) after the *sending* of its last successful take or
//!   renewal. The server's age counts from the write's *arrival*, so the
//!   holder's deadline passes before the server can let anyone else take it.
//!   A renewal that fails (another revision: someone else holds it) or that
//!   does not succeed before the deadline means the lease is lost: the
//!   holder stops admission at once ([`LeaseKeeper::is_held`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use everarcade_protocol::WorldId;
use tokio::time::Instant;

use crate::error::FederationError;
use crate::nats::{NatsConfig, check_name, connect, open_bucket, unavailable};

/// The bucket's name unless configured.
pub const BUCKET_DEFAULT: &str = "everarcade_authority";
/// The lease TTL unless configured.
pub const LEASE_TTL_DEFAULT: Duration = Duration::from_secs(6);
/// The shortest TTL accepted (the server's expiry and the renewal cadence
/// need room).
pub const LEASE_TTL_MIN: Duration = Duration::from_secs(1);
/// Renewals per TTL: the holder renews every `ttl / LEASE_RENEWALS_PER_TTL`.
pub const LEASE_RENEWALS_PER_TTL: u32 = 3;
/// The holder's deadline is `ttl - ttl / LEASE_MARGIN_DIVISOR` after a
/// successful write was sent (room for clock-rate drift between hosts).
pub const LEASE_MARGIN_DIVISOR: u32 = 10;

const _: () = assert!(LEASE_RENEWALS_PER_TTL >= 2 && LEASE_MARGIN_DIVISOR > LEASE_RENEWALS_PER_TTL);

/// Who holds a world's authority.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// The node's base URL (where clients find the authority).
    pub url: String,
    /// The node's id (its operator key or configured name).
    pub node_id: String,
    /// The last tick the holder had executed when it wrote the lease.
    pub tick: u64,
}

/// The lease bucket's settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The bucket (`[a-z0-9_]`); [`BUCKET_DEFAULT`].
    pub bucket: String,
    /// The TTL, at least [`LEASE_TTL_MIN`]; [`LEASE_TTL_DEFAULT`].
    pub ttl: Duration,
}

impl Default for LeaseConfig {
    fn default() -> LeaseConfig {
        LeaseConfig {
            bucket: BUCKET_DEFAULT.to_owned(),
            ttl: LEASE_TTL_DEFAULT,
        }
    }
}

/// A lease this node holds: the revision it last wrote and its local deadline.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The world.
    pub world: WorldId,
    /// What the entry says.
    pub holder: Holder,
    /// The entry's revision (the next renewal's compare-and-set).
    pub revision: u64,
    valid_until: Instant,
}

impl Lease {
    /// Whether the local deadline has not passed.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// The local deadline.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }
}

/// The lease bucket on JetStream.
#[derive(Clone)]
pub struct LeaseBucket {
    store: kv::Store,
    context: async_nats::jetstream::Context,
    config: LeaseConfig,
}

impl LeaseBucket {
    /// Connects and opens (creating if needed) the bucket.
    pub async fn open(
        nats: &NatsConfig,
        config: &LeaseConfig,
    ) -> Result<LeaseBucket, FederationError> {
        check_name("a lease bucket", &config.bucket, 64, "")?;
        if config.ttl < LEASE_TTL_MIN {
            return Err(FederationError::Config(format!(
                "the lease TTL is {:?}; the minimum is {LEASE_TTL_MIN:?}",
                config.ttl
            )));
        }
        let context = connect(nats).await?;
        let (store, max_age) = open_bucket(
            &context,
            &config.bucket,
            "EverArcade authority leases: world id -> holder",
            config.ttl,
        )
        .await?;
        // The holder's deadline is computed from the TTL: it must be the one
        // the server applies.
        if max_age != config.ttl {
            return Err(FederationError::Config(format!(
                "bucket {} exists with a TTL of {max_age:?}, not the configured {:?}",
                config.bucket, config.ttl
            )));
        }
        Ok(LeaseBucket {
            store,
            context,
            config: config.clone(),
        })
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.config.ttl
    }

    /// Who holds `world`'s lease now, with the entry's revision; `None` when
    /// nobody does (never taken, released, or expired).
    pub async fn current(&self, world: &WorldId) -> Result<Option<(Holder, u64)>, FederationError> {
        let entry = self.store.entry(world.as_str()).await.map_err(|error| {
            unavailable(&format!("reading the lease of {}", world.as_str()), error)
        })?;
        let Some(entry) = entry else { return Ok(None) };
        if matches!(entry.operation, Operation::Delete | Operation::Purge) {
            return Ok(None);
        }
        let holder = serde_json::from_slice(&entry.value).map_err(|error| {
            FederationError::Unavailable(format!(
                "the lease of {} (revision {}) is not a holder: {error}",
                world.as_str(),
                entry.revision
            ))
        })?;
        Ok(Some((holder, entry.revision)))
    }

    /// Takes `world`'s lease if nobody holds it (compare-and-set on "absent").
    pub async fn take(&self, world: &WorldId, holder: Holder) -> Result<Lease, FederationError> {
        let sent = Instant::now();
        let value = serde_json::to_vec(&holder).expect("a holder serializes");
        match self.store.create(world.as_str(), value.into()).await {
            Ok(revision) => Ok(self.lease(world, holder, revision, sent)),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                let (current, revision) = self
                    .current(world)
                    .await?
                    .map_or((String::from("(just expired)"), 0), |(holder, revision)| {
                        (holder.url, revision)
                    });
                Err(FederationError::LeaseHeld {
                    world: world.as_str().to_owned(),
                    holder: current,
                    revision,
                })
            }
            Err(error) => Err(unavailable(
                &format!("taking the lease of {}", world.as_str()),
                error,
            )),
        }
    }

    /// Renews `lease` (compare-and-set on its revision), recording `tick`.
    /// [`FederationError::LeaseLost`] when another revision is there or the
    /// local deadline passed; [`FederationError::Unavailable`] when JetStream
    /// did not answer but the deadline has not passed yet.
    pub async fn renew(&self, lease: &mut Lease, tick: u64) -> Result<(), FederationError> {
        if !lease.is_valid() {
            return Err(lost(
                &lease.world,
                "its deadline passed before a renewal succeeded",
            ));
        }
        let sent = Instant::now();
        let holder = Holder {
            tick,
            ..lease.holder.clone()
        };
        let value = serde_json::to_vec(&holder).expect("a holder serializes");
        let update = self
            .store
            .update(lease.world.as_str(), value.into(), lease.revision);
        match tokio::time::timeout_at(lease.valid_until, update).await {
            Ok(Ok(revision)) => {
                *lease = self.lease(&lease.world, holder, revision, sent);
                Ok(())
            }
            Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => Err(lost(
                &lease.world,
                &format!(
                    "revision {} is no longer the entry's (expired or taken)",
                    lease.revision
                ),
            )),
            Ok(Err(error)) if lease.is_valid() => Err(unavailable(
                &format!("renewing the lease of {}", lease.world.as_str()),
                error,
            )),
            Ok(Err(error)) => Err(lost(
                &lease.world,
                &format!("no renewal before its deadline: {error}"),
            )),
            Err(_) => Err(lost(&lease.world, "no renewal before its deadline")),
        }
    }

    /// Gives `lease` up (compare-and-set on its revision), so a follower need
    /// not wait for the TTL.
    pub async fn release(&self, lease: Lease) -> Result<(), FederationError> {
        self.store
            .delete_expect_revision(lease.world.as_str(), Some(lease.revision))
            .await
            .map_err(|error| {
                unavailable(
                    &format!("releasing the lease of {}", lease.world.as_str()),
                    error,
                )
            })
    }

    /// Deletes the bucket (tests clean up after themselves).
    pub async fn delete(self) -> Result<(), FederationError> {
        self.context
            .delete_key_value(&self.config.bucket)
            .await
            .map(|_| ())
            .map_err(|error| unavailable(&format!("deleting bucket {}", self.config.bucket), error))
    }

    /// Keeps `lease` renewed in a task until it is lost or the keeper is
    /// dropped; `tick` is read at each renewal.
    pub fn keep(&self, lease: Lease, tick: Arc<AtomicU64>) -> LeaseKeeper {
        let shared = Arc::new(KeeperState {
            lost: AtomicBool::new(false),
            valid_until: Mutex::new(lease.valid_until),
            revision: AtomicU64::new(lease.revision),
        });
        let task = tokio::spawn(keep_renewing(self.clone(), lease, tick, shared.clone()));
        LeaseKeeper { shared, task }
    }

    fn lease(&self, world: &WorldId, holder: Holder, revision: u64, sent: Instant) -> Lease {
        let ttl = self.config.ttl;
        Lease {
            world: world.clone(),
            holder,
            revision,
            valid_until: sent + ttl - ttl / LEASE_MARGIN_DIVISOR,
        }
    }
}

fn lost(world: &WorldId, reason: &str) -> FederationError {
    FederationError::LeaseLost {
        world: world.as_str().to_owned(),
        reason: reason.to_owned(),
    }
}

struct KeeperState {
    lost: AtomicBool,
    valid_until: Mutex<Instant>,
    revision: AtomicU64,
}

/// A lease kept renewed in the background. Admission asks
/// [`LeaseKeeper::is_held`] before every acknowledgement.
pub struct LeaseKeeper {
    shared: Arc<KeeperState>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Whether the lease is still this node's: no renewal failed and the
    /// local deadline has not passed (checked now, not when the task last ran).
    pub fn is_held(&self) -> bool {
        !self.shared.lost.load(Ordering::SeqCst)
            && Instant::now() < *self.shared.valid_until.lock().expect("the keeper's lock")
    }

    /// The revision last written.
    pub fn revision(&self) -> u64 {
        self.shared.revision.load(Ordering::SeqCst)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep_renewing(
    bucket: LeaseBucket,
    mut lease: Lease,
    tick: Arc<AtomicU64>,
    shared: Arc<KeeperState>,
) {
    let interval = bucket.ttl() / LEASE_RENEWALS_PER_TTL;
    loop {
        tokio::time::sleep(interval).await;
        match bucket.renew(&mut lease, tick.load(Ordering::SeqCst)).await {
            Ok(()) => {
                *shared.valid_until.lock().expect("the keeper's lock") = lease.valid_until;
                shared.revision.store(lease.revision, Ordering::SeqCst);
            }
            Err(error @ FederationError::LeaseLost { .. }) => {
                tracing::error!(code = error.code(), %error, "authority lease lost: admission stops");
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                // Try again at the next interval; the deadline decides.
                tracing::warn!(code = error.code(), %error, "authority lease renewal failed; retrying");
            }
        }
    }
}
