//! What can go wrong talking to a node: the node refused (with its HTTP
//! status and stable code), the node could not be reached or did not answer
//! in time, it answered something this client does not understand, or a
//! state proof does not verify.

use everarcade_protocol::Hash;
use everarcade_state::ProofError;

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address given to [`Client::new`](crate::Client::new) is not `host:port`.
    #[error("invalid node address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
    /// An `https://` address without certificates to trust, or a trust file
    /// that cannot be used.
    #[error("TLS trust {origin}: {reason}")]
    Trust {
        /// The file (or what was given) that names the trusted certificates.
        origin: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The node answered with a non-2xx status and the documented error body
    /// `{"error":{"code","message"}}` (docs/HTTP.md).
    #[error("{method} {path}: the node answered {status} {code}: {message}")]
    Node {
        /// The request method.
        method: &'static str,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The node's stable error code, e.g. `stale_nonce` or `tick_full`.
        code: String,
        /// The node's message for a human.
        message: String,
        /// `Retry-After` in seconds, when the node sent one (429 answers).
        retry_after_seconds: Option<u64>,
    },
    /// No connection, or the connection broke before a whole answer arrived.
    #[error("{method} {path}: cannot reach the node at {address}: {reason}")]
    Unreachable {
        /// The request method.
        method: &'static str,
        /// The request path.
        path: String,
        /// The node's address.
        address: String,
        /// What the transport said.
        reason: String,
    },
    /// No whole answer within the client's timeout.
    #[error("{method} {path}: no answer from {address} within {timeout_ms} ms")]
    Timeout {
        /// The request method.
        method: &'static str,
        /// The request path.
        path: String,
        /// The node's address.
        address: String,
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// The node answered, but not in the shape docs/HTTP.md documents (a
    /// non-JSON body, a missing field, a hex field of the wrong length, an
    /// error status without the error body, or a body over the size limit).
    #[error("{method} {path}: unexpected answer with status {status}: {reason}")]
    Unexpected {
        /// The request method.
        method: &'static str,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// What did not match.
        reason: String,
    },
    /// A state answer whose proof does not verify against the state root it
    /// came with: the node (or something between) is lying or broken.
    #[error("the proof for key {key} does not verify against state root {state_root}: {source}")]
    Proof {
        /// The key, hex.
        key: String,
        /// The state root the answer named.
        state_root: Hash,
        /// Why the proof was refused.
        #[source]
        source: Box<ProofError>,
    },
    /// A tick answer whose receipts do not hash to the receipt root it came with.
    #[error(
        "tick {tick}: the receipts fold to {computed}, but the answer names receipt root {expected}"
    )]
    ReceiptRoot {
        /// The tick.
        tick: u64,
        /// The receipt root the answer named.
        expected: Hash,
        /// The root of the receipts as sent.
        computed: Hash,
    },
    /// An admin call on a client without a bearer token.
    #[error(
        "{path} is an admin route: give the client the node's admin token (Client::with_admin_token)"
    )]
    NoAdminToken {
        /// The admin path.
        path: String,
    },
    /// [`Client::submit_batch`](crate::Client::submit_batch) with no envelope.
    #[error("a batch needs at least one envelope")]
    EmptyBatch,
    /// A batch holding envelopes of another world than the client's.
    #[error("envelope {index} of the batch is for world {got:?}, the client talks to {expected:?}")]
    MixedWorlds {
        /// Index of the first such envelope.
        index: usize,
        /// The client's world.
        expected: String,
        /// The envelope's world.
        got: String,
    },
}

impl ClientError {
    /// A stable machine-readable code: the node's own code for
    /// [`ClientError::Node`], else one naming the client-side failure.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Address { .. } => "invalid_address",
            ClientError::Trust { .. } => "tls_trust",
            ClientError::Node { code, .. } => code,
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Timeout { .. } => "timeout",
            ClientError::Unexpected { .. } => "unexpected_response",
            ClientError::Proof { .. } => "proof_invalid",
            ClientError::ReceiptRoot { .. } => "receipt_root_mismatch",
            ClientError::NoAdminToken { .. } => "no_admin_token",
            ClientError::EmptyBatch => "empty_batch",
            ClientError::MixedWorlds { .. } => "mixed_worlds",
        }
    }

    /// The HTTP status of the node's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Node { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Whether the node was never heard from (nothing listens, the connection
    /// broke, or no answer in time): the caller may not know whether a
    /// submitted input was admitted.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::Timeout { .. }
        )
    }
}
