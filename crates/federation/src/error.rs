//! Federation errors, each with a stable code.

/// What went wrong replicating a world.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The transport could not carry records now (retry with backoff).
    #[error("replication unavailable: {0}")]
    Unavailable(String),
}

impl FederationError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            FederationError::Unavailable(_) => "replication_unavailable",
        }
    }
}
