//! Middleware: per-client rate limits, the in-flight bound, the request
//! deadline, request metrics and admin authentication. Each refusal is an
//! [`ApiError`] envelope.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::{ApiError, ErrorCode};

/// A token bucket per client IP. The map is bounded: when full, the bucket
/// seen least recently is forgotten (which only ever forgives a client).
pub struct RateLimiter {
    rate_per_second: f64,
    clients_max: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// `rate_per_second` requests per second with a burst of the same size.
    pub fn new(rate_per_second: u32, clients_max: usize) -> RateLimiter {
        assert!(rate_per_second > 0 && clients_max > 0);
        RateLimiter {
            rate_per_second: f64::from(rate_per_second),
            clients_max,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`, or says how many seconds until one is there.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= self.clients_max && !buckets.contains_key(&client) {
            // The iteration order does not matter here: any choice only
            // forgives one client its debt. Nothing here reaches a root.
            let oldest = buckets
                .iter()
                .min_by_key(|(_, bucket)| bucket.refilled)
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                buckets.remove(&ip);
            }
        }
        let burst = self.rate_per_second;
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate_per_second).min(burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate_per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// 429 `rate_limited` beyond the client's rate.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(seconds) = state.guards.rate.take(client_ip(&request), Instant::now()) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests per second from this client",
                state.guards.rate.rate_per_second
            ),
        )
        .retry_after(seconds)
        .into_response();
    }
    next.run(request).await
}

/// Counts requests in flight.
pub struct InFlight {
    now: AtomicUsize,
    max: usize,
}

impl InFlight {
    /// At most `max` at once.
    pub fn new(max: usize) -> InFlight {
        InFlight {
            now: AtomicUsize::new(0),
            max,
        }
    }
}

struct InFlightSlot<'a>(&'a InFlight);

impl Drop for InFlightSlot<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 503 `overloaded` beyond `in_flight_max`; 408 `request_timeout` past the deadline.
pub async fn bound(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let in_flight = &state.guards.in_flight;
    if in_flight.now.fetch_add(1, Ordering::SeqCst) >= in_flight.max {
        in_flight.now.fetch_sub(1, Ordering::SeqCst);
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("{} requests are in flight already", in_flight.max),
        )
        .retry_after(1)
        .into_response();
    }
    let _slot = InFlightSlot(in_flight);
    let deadline = state.guards.request_timeout;
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request did not finish within {} ms",
                deadline.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Records latency by route template and counts error codes.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    let metrics = &state.world.live.metrics;
    metrics.requests.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        metrics.rejected.add(code, 1);
    }
    response
}

/// 401 `unauthorized` unless `Authorization: Bearer <the admin token>`.
pub async fn admin_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let authorized = match (&state.admin_token, presented) {
        (Some(token), Some(presented)) => constant_time_eq(token.as_bytes(), presented.as_bytes()),
        _ => false,
    };
    if !authorized {
        let message = if state.admin_token.is_none() {
            "the admin API is off: no admin token is configured (amnesia mode)"
        } else {
            "admin routes need Authorization: Bearer <token> (see admin.token in the runtime root)"
        };
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    }
    next.run(request).await
}

/// Compares without an early exit, so timing does not reveal a matching
/// prefix (only whether the lengths match).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The guards' shared state.
pub struct Guards {
    /// Per-client rate limits.
    pub rate: RateLimiter,
    /// The in-flight bound.
    pub in_flight: InFlight,
    /// The request deadline.
    pub request_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let limiter = RateLimiter::new(2, 4);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let start = Instant::now();
        assert_eq!(limiter.take(ip, start), Ok(()));
        assert_eq!(limiter.take(ip, start), Ok(()));
        assert_eq!(limiter.take(ip, start), Err(1));
        assert_eq!(limiter.take(ip, start + Duration::from_millis(500)), Ok(()));
        assert!(
            limiter
                .take(ip, start + Duration::from_millis(500))
                .is_err()
        );
    }

    #[test]
    fn the_client_map_stays_bounded() {
        let limiter = RateLimiter::new(1, 3);
        let now = Instant::now();
        for i in 0..10u8 {
            let _ = limiter.take(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), now);
        }
        assert_eq!(limiter.buckets.lock().unwrap().len(), 3);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret"));
    }
}
