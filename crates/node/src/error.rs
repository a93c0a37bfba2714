//! The error envelope every non-2xx response carries, and the errors that
//! stop a node from starting.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use everarcade_protocol::EnvelopeError;
use everarcade_world::WorldError;

/// An HTTP error: status, stable code, message;
/// `{"error":{"code":"…","message":"…"}}` on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (docs/HTTP.md).
    pub code: &'static str,
    /// What happened, for a human.
    pub message: String,
    /// Seconds for `Retry-After`, on 429 and some 503s.
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    /// An error without `Retry-After`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a route that does not exist.
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {path}"),
        )
    }

    /// 503 `admission_closed`.
    pub fn admission_closed(why: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "admission_closed",
            format!("admission is closed: {why}"),
        )
        .retry_after(1)
    }

    /// 503 `journal_poisoned`.
    pub fn poisoned(reason: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_poisoned",
            format!(
                "the journal refused a write and accepts nothing more until the node restarts: {reason}"
            ),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(error: EnvelopeError) -> ApiError {
        let code = error.code();
        match error {
            EnvelopeError::Malformed { .. } => ApiError::bad_request(code, error.to_string()),
            EnvelopeError::TickFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, error.to_string()).retry_after(1)
            }
            _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The code of an error response, for the `rejected_total{reason}` metric.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// Why a node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The world could not be created, opened or recovered.
    #[error(transparent)]
    World(#[from] WorldError),
    /// The HTTP listener could not be bound or served.
    #[error("listener {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The read plane's runtime (`http.read_plane_threads`) could not start
    /// its threads.
    #[error("read plane of {threads} thread(s) could not start: {source}")]
    ReadPlane {
        /// The threads asked for.
        threads: usize,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or creating the admin token failed.
    #[error("admin token {path}: {reason}")]
    AdminToken {
        /// The token file.
        path: String,
        /// Why.
        reason: String,
    },
    /// TLS could not be configured.
    #[error("tls: {0}")]
    Tls(String),
    /// The world actor stopped unexpectedly.
    #[error("the world loop stopped: {0}")]
    Actor(String),
    /// An unresolved incident record is in the world's `incidents/`.
    #[error(
        "incident {path} is unresolved ({kind} at tick {tick}): the node does not serve a lineage under investigation; once resolved (restore, rollback, or a fixed runtime), move the record to incidents/resolved/"
    )]
    Incident {
        /// The record.
        path: String,
        /// Its kind.
        kind: String,
        /// Its tick.
        tick: u64,
    },
    /// A graceful shutdown did not finish within the deadline.
    #[error("shutdown did not finish within {0} ms")]
    ShutdownDeadline(u64),
}

impl NodeError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Config(_) => "invalid_config",
            NodeError::World(error) => error.code(),
            NodeError::Listen { .. } => "listen_failed",
            NodeError::ReadPlane { .. } => "read_plane_failed",
            NodeError::AdminToken { .. } => "admin_token",
            NodeError::Tls(_) => "tls_config",
            NodeError::Actor(_) => "world_loop_stopped",
            NodeError::ShutdownDeadline(_) => "shutdown_deadline",
            NodeError::Incident { .. } => "incident_unresolved",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_plane_that_cannot_start_is_named_apart_from_the_listener() {
        let error = NodeError::ReadPlane {
            threads: 3,
            source: std::io::Error::other("no threads left"),
        };
        assert_eq!(error.code(), "read_plane_failed");
        let message = error.to_string();
        assert!(message.contains("3 thread(s)"), "{message}");
        assert!(message.contains("no threads left"), "{message}");
    }
}
