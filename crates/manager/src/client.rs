//! A small client of the manager's API, for the operator CLI (`fleet`) and
//! tests: plain HTTP/1.1, JSON bodies, the bearer token on every call.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A call that failed before an answer, or an answer that is an error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port`.
    #[error("manager url {0:?}: want http://host:port")]
    Url(String),
    /// No answer.
    #[error("the manager at {url} did not answer: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The manager answered with its error envelope.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable code.
        code: String,
        /// The message.
        message: String,
    },
}

impl ClientError {
    /// A stable code.
    pub fn code(&self) -> String {
        match self {
            ClientError::Url(_) => "invalid_url".into(),
            ClientError::Unreachable { .. } => "manager_unreachable".into(),
            ClientError::Api { code, .. } => code.clone(),
        }
    }
}

/// A client of one manager.
#[derive(Clone)]
pub struct ManagerClient {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: Client<HttpConnector, Full<Bytes>>,
    source: Option<&'static str>,
}

impl ManagerClient {
    /// A client of the manager at `base` (`http://host:port`).
    pub fn new(base: &str, token: Option<String>) -> Result<ManagerClient, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(ClientError::Url(base));
        }
        Ok(ManagerClient {
            base,
            token,
            timeout: Duration::from_secs(120),
            http: Client::builder(TokioExecutor::new()).build_http(),
            source: None,
        })
    }

    /// Marks calls as the CLI's (`op_source = cli`).
    pub fn as_cli(mut self) -> ManagerClient {
        self.source = Some("cli");
        self
    }

    /// Bounds every call.
    pub fn with_timeout(mut self, timeout: Duration) -> ManagerClient {
        self.timeout = timeout;
        self
    }

    /// `method path` with an optional JSON body; the answer's JSON, or its
    /// error envelope as [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(source) = self.source {
            request = request.header("x-op-source", source);
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|_| ClientError::Url(url.clone()))?;
        let unreachable = |reason: String| ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        };
        let response = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| unreachable(format!("{e:?}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        };
        if status >= 400 {
            let code = value["error"]["code"].as_str().unwrap_or("http_error");
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(ClientError::Api {
                status,
                code: code.to_string(),
                message,
            });
        }
        Ok(value)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, None).await
    }
}
