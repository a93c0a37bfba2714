//! Middleware: per-client rate limits, the in-flight bound, the request
//! deadline, request metrics and admin authentication. Each refusal is an
//! [`ApiError`] envelope.
//!
//! The rate limit is `governor`'s keyed GCRA limiter (one cell per request,
//! a burst as large as the rate per second); the in-flight bound is tower's
//! global concurrency limit behind its load shedder (see [`overloaded`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter as Governor};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::AppState;
use crate::error::{ApiError, ErrorCode};

/// The tracked clients are swept of entries that are back at a full burst
/// at most this often.
pub const RATE_SWEEP_INTERVAL_MS: u64 = 1_000;

/// Addresses read from `X-Forwarded-For` at most (right to left); a longer
/// chain is cut there.
pub const FORWARDED_ADDRESSES_MAX: usize = 32;

/// Who a request is charged to: a client address, or, while the table of
/// clients is full, everyone beyond it together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Charged {
    Client(IpAddr),
    Overflow,
}

/// A GCRA bucket per client IP (`governor`), at most `clients_max` of them.
/// Entries back at a full burst are swept every
/// [`RATE_SWEEP_INTERVAL_MS`]; while the table is still full, clients not
/// in it share one bucket (so memory stays bounded and a flood of new
/// addresses is still limited).
pub struct RateLimiter<C: Clock + Clone = DefaultClock> {
    rate_per_second: u32,
    clients_max: usize,
    clock: C,
    clients: Governor<Charged, DashMapStateStore<Charged>, C, NoOpMiddleware<C::Instant>>,
    /// When the last sweep ran, in nanoseconds since `clock`'s start.
    swept_nanos: AtomicU64,
    start: C::Instant,
}

impl RateLimiter<DefaultClock> {
    /// `rate_per_second` requests per second with a burst of the same size,
    /// for at most `clients_max` clients at once.
    pub fn new(rate_per_second: NonZeroU32, clients_max: usize) -> RateLimiter {
        RateLimiter::with_clock(rate_per_second, clients_max, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// [`RateLimiter::new`] with another clock (tests use a fake one).
    pub fn with_clock(rate_per_second: NonZeroU32, clients_max: usize, clock: C) -> RateLimiter<C> {
        assert!(clients_max > 0);
        let quota = Quota::per_second(rate_per_second);
        RateLimiter {
            rate_per_second: rate_per_second.get(),
            clients_max,
            start: clock.now(),
            clients: Governor::dashmap_with_clock(quota, clock.clone()),
            clock,
            swept_nanos: AtomicU64::new(0),
        }
    }

    /// Takes one request for `client`, or says how many whole seconds until
    /// one is allowed again (at least 1).
    pub fn take(&self, client: IpAddr) -> Result<(), u64> {
        self.sweep();
        let charged = if self.clients.len() >= self.clients_max {
            Charged::Overflow
        } else {
            Charged::Client(client)
        };
        self.clients
            .check_key(&charged)
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
            .map_err(|seconds| seconds.max(1))
    }

    /// Forgets clients back at a full burst, at most once per
    /// [`RATE_SWEEP_INTERVAL_MS`].
    fn sweep(&self) {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let last = self.swept_nanos.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= RATE_SWEEP_INTERVAL_MS * 1_000_000 || last == 0;
        if due
            && self
                .swept_nanos
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // The table's capacity stays at its peak, at most `clients_max`
            // entries and the overflow bucket: no shrinking needed.
            self.clients.retain_recent();
        }
    }

    /// Clients with a bucket now.
    pub fn clients_tracked(&self) -> usize {
        self.clients.len()
    }
}

/// The client a request is charged to: the TCP peer, or, when the peer is
/// one of `trusted_proxies`, the right-most address in `X-Forwarded-For`
/// that is not (the proxies append the address they were connected from,
/// so every entry left of the last trusted one was written by someone who
/// could write anything). A header that names only trusted proxies, or an
/// entry that is not an address before an untrusted one is found, leaves
/// the peer.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.contains(&ip.to_canonical());
    let peer = peer.to_canonical();
    if !trusted(&peer) {
        return peer;
    }
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for entry in entries.iter().rev().take(FORWARDED_ADDRESSES_MAX) {
        let Some(ip) = forwarded_address(entry.trim()) else {
            return peer;
        };
        if !trusted(&ip) {
            return ip;
        }
    }
    peer
}

/// An `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, or either with a
/// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|address| address.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

fn peer_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// 429 `rate_limited` beyond the client's rate.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let guards = &state.guards;
    let client = client_ip(
        peer_ip(&request),
        request.headers(),
        &guards.trusted_proxies,
    );
    if let Err(seconds) = guards.rate.take(client) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests per second from this client",
                guards.rate.rate_per_second
            ),
        )
        .retry_after(seconds)
        .into_response();
    }
    next.run(request).await
}

/// The answer when `in_flight_max` requests are in flight already: tower's
/// load shedder (in front of its global concurrency limit, see
/// [`super::router`]) refuses at once instead of queueing.
pub fn overloaded(in_flight_max: usize) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        format!("{in_flight_max} requests are in flight already"),
    )
    .retry_after(1)
    .into_response()
}

/// 408 `request_timeout` past the request deadline.
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
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
        .map_or("unmatched", |path| super::route_label(path.as_str()));
    let method = crate::metrics::method_label(request.method());
    let response = next.run(request).await;
    let metrics = &state.world.live.metrics;
    metrics
        .requests
        .observe(route, method, response.status().as_u16(), started.elapsed());
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
        // Constant time in the contents (only the lengths' equality shows).
        (Some(token), Some(presented)) => bool::from(token.as_bytes().ct_eq(presented.as_bytes())),
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

/// The guards' shared state.
pub struct Guards {
    /// Per-client rate limits.
    pub rate: RateLimiter,
    /// Permits for requests in flight (tower's global concurrency limit).
    pub in_flight: std::sync::Arc<Semaphore>,
    /// Requests in flight at most.
    pub in_flight_max: usize,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// The request deadline.
    pub request_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(
        rate: u32,
        clients_max: usize,
    ) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limiter =
            RateLimiter::with_clock(NonZeroU32::new(rate).unwrap(), clients_max, clock.clone());
        (limiter, clock)
    }

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let (limiter, clock) = limiter(2, 4);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(limiter.take(ip), Ok(()));
        assert_eq!(limiter.take(ip), Ok(()));
        assert_eq!(limiter.take(ip), Err(1));
        clock.advance(Duration::from_millis(500));
        assert_eq!(limiter.take(ip), Ok(()));
        assert!(limiter.take(ip).is_err());
    }

    #[test]
    fn the_limit_applies_per_client() {
        let (limiter, _clock) = limiter(1, 16);
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        );
        assert_eq!(limiter.take(a), Ok(()));
        assert!(limiter.take(a).is_err());
        assert_eq!(limiter.take(b), Ok(()), "another client has its own bucket");
    }

    #[test]
    fn the_client_table_stays_bounded() {
        let (limiter, clock) = limiter(1, 3);
        for i in 0..10u8 {
            let _ = limiter.take(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)));
        }
        // Three clients and the shared bucket of everyone beyond them.
        assert!(
            limiter.clients_tracked() <= 4,
            "{}",
            limiter.clients_tracked()
        );
        // Clients beyond the table share one bucket: the flood is limited.
        assert!(
            limiter
                .take(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
                .is_err()
        );
        // Once the buckets are full again a sweep forgets them.
        clock.advance(Duration::from_secs(2));
        assert_eq!(limiter.take(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1))), Ok(()));
        assert!(
            limiter.clients_tracked() <= 2,
            "{}",
            limiter.clients_tracked()
        );
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        let trusted = [proxy, inner];
        let headers = forwarded("203.0.113.66, 192.0.2.7, 10.0.0.2");
        // From the proxy: the right-most untrusted entry, not the spoofable left one.
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        // From anyone else the header is ignored.
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(stranger, &headers, &[]), stranger);
        // Ports, IPv6 and IPv4-mapped peers.
        assert_eq!(
            client_ip(proxy, &forwarded("[2001:db8::5]:4711"), &trusted),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &forwarded("192.0.2.8:80"), &trusted),
            "192.0.2.8".parse::<IpAddr>().unwrap()
        );
        // Junk, or only proxies: the peer.
        assert_eq!(
            client_ip(proxy, &forwarded("nonsense, 10.0.0.2"), &trusted),
            proxy
        );
        assert_eq!(client_ip(proxy, &forwarded("10.0.0.2"), &trusted), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn token_comparison() {
        let eq = |a: &[u8], b: &[u8]| bool::from(a.ct_eq(b));
        assert!(eq(b"secret-token-123", b"secret-token-123"));
        assert!(!eq(b"secret-token-123", b"secret-token-124"));
        assert!(!eq(b"secret-token-123", b"secret"));
    }
}
