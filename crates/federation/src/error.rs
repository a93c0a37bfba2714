//! Federation errors, each with a stable code.

/// What went wrong replicating a world.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The transport could not carry records now (retry with backoff).
    #[error("replication unavailable: {0}")]
    Unavailable(String),
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
            FederationError::Framing(_) => "record_stream_malformed",
            FederationError::Diverged(_) => "peer_diverged",
        }
    }
}
