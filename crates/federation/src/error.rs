//! Federation errors, each with a stable code.

/// What went wrong replicating a world.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The transport could not carry records now (retry with backoff).
    #[error("replication unavailable: {0}")]
    Unavailable(String),
    /// A transport setting is invalid (a NATS URL, a name prefix).
    #[error("federation configuration: {0}")]
    Config(String),
    /// A record from the transport does not check out (framing, checksum,
    /// chain, ordinal); it is never journaled.
    #[error("record {ordinal} refused: {reason}")]
    Refused {
        /// The ordinal the record claimed or was delivered at.
        ordinal: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The stream skips records: `expected` is missing and re-fetching from
    /// it did not bring it back.
    #[error("replication gap: record {expected} is missing (the stream went on at {found})")]
    Gap {
        /// The ordinal the follower needs next.
        expected: u64,
        /// The ordinal the stream delivered instead.
        found: u64,
    },
    /// Another writer appended to the world's stream: this node is not the
    /// authority any more and must stop admitting inputs.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The authority lease is held by another node.
    #[error("the authority lease of {world} is held by {holder} (revision {revision})")]
    LeaseHeld {
        /// The world.
        world: String,
        /// The holder's node URL.
        holder: String,
        /// The lease entry's revision.
        revision: u64,
    },
    /// The authority lease was lost (a renewal failed, or it expired
    /// locally before one succeeded): stop admission at once.
    #[error("the authority lease of {world} is lost: {reason}")]
    LeaseLost {
        /// The world.
        world: String,
        /// Why.
        reason: String,
    },
    /// The world's files (reading or cutting the journal, quarantining).
    #[error(transparent)]
    Store(#[from] everarcade_store::StoreError),
    /// The world's package files (`lineage.json`, `package/`, a stored
    /// package) while a fenced authority's upgrades are undone.
    #[error(transparent)]
    World(#[from] everarcade_world::WorldError),
    /// A record stream's framing does not check out (docs/FORMATS.md
    /// §Record stream): nothing of it is applied.
    #[error("record stream: {0}")]
    Framing(String),
    /// The follower's position is not on the authority's chain.
    #[error("peer diverged: {0}")]
    Diverged(String),
}

impl FederationError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            FederationError::Unavailable(_) => "replication_unavailable",
            FederationError::Config(_) => "federation_config",
            FederationError::Refused { .. } => "record_refused",
            FederationError::Gap { .. } => "replication_gap",
            FederationError::Fenced(_) => "fenced",
            FederationError::LeaseHeld { .. } => "lease_held",
            FederationError::LeaseLost { .. } => "lease_lost",
            FederationError::Store(error) => error.code(),
            FederationError::World(error) => error.code(),
            FederationError::Framing(_) => "record_stream_malformed",
            FederationError::Diverged(_) => "peer_diverged",
        }
    }
}
