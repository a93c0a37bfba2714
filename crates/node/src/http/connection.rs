//! Serving connections: hyper's HTTP/1.1 connection with the node's limits
//! on the request head, for plain TCP and TLS alike.
//!
//! It is responsible for what happens before a request reaches the router:
//! the request head (request line and headers) is at most
//! `http.request_head_bytes_max` bytes and must arrive within
//! `http.request_timeout_ms`, the client's address reaches handlers as
//! `ConnectInfo<SocketAddr>`, and a graceful stop lets requests in flight
//! finish. It is not responsible for anything after the head (the router's
//! middleware bounds bodies, rates and concurrency).
//!
//! hyper enforces both head limits itself. An over-long head makes hyper
//! answer a bare `431` (or `414`, or `400` for an unparsable head) with no
//! body and close; [`ConnectionIo`] replaces that automatic answer with the
//! node's error envelope. A head that is still incomplete at the deadline
//! makes hyper close the connection without an answer; [`serve_connection`]
//! then writes `408 request_timeout` itself, unless the connection was idle
//! (no byte of a new request arrived since the last response), which is
//! closed silently like any idle keep-alive connection. Each such answer is
//! counted in `everarcade_rejected_total{reason}`. After such an answer
//! the node reads and discards what the client still sends, for at most
//! [`LINGER_MS`] and [`LINGER_BYTES_MAX`], so that closing with unread bytes
//! does not reset the connection before the client has read the answer.
//!
//! With a read plane ([`Serving::read_plane`], module [`super::plane`]),
//! each new connection's task reads the start of its first request line
//! and serves a page, tick-stream or state-read connection on the read
//! plane's runtime, everything else here; the limits, the refusals and
//! their counting, `ConnectInfo` and the graceful stop are the same on
//! both. Every connection is counted in
//! `everarcade_http_connections_total{plane}`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use super::plane::{self, PLANE_CHOICE_WAIT_MS, Plane, PlaneIo};
use crate::actor::Live;
use crate::config::HttpConfig;
use crate::error::ApiError;

/// After refusing a request head, read and discard the client's bytes for at
/// most this long before closing.
pub const LINGER_MS: u64 = 1_000;

/// After refusing a request head, read and discard at most this many of the
/// client's bytes before closing.
pub const LINGER_BYTES_MAX: u64 = 1 << 20;

/// Limits on a request head, from [`HttpConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Largest request head (request line and headers); beyond it 431.
    pub request_head_bytes_max: usize,
    /// A request head must arrive within this; else 408 and the connection
    /// closes. An idle keep-alive connection closes after it too.
    pub request_head_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits an [`HttpConfig`] sets.
    pub fn from_config(http: &HttpConfig) -> ConnectionLimits {
        ConnectionLimits {
            request_head_bytes_max: http.request_head_bytes_max,
            request_head_timeout: Duration::from_millis(http.request_timeout_ms),
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits::from_config(&HttpConfig::default())
    }
}

/// How connections are served: the limits on request heads, where refusals
/// and connections are counted, and the read plane.
#[derive(Clone, Default)]
pub struct Serving {
    /// Limits on a request head.
    pub limits: ConnectionLimits,
    /// Where refusals (`everarcade_rejected_total{reason}`) and connections
    /// (`everarcade_http_connections_total{plane}`) are counted; `None`
    /// counts nothing.
    pub live: Option<Arc<Live>>,
    /// The read plane's runtime; `None` serves every connection on the
    /// runtime that accepts them.
    pub read_plane: Option<Handle>,
}

/// Serves `app` on every connection `listener` accepts until `shutdown`
/// resolves; then stops accepting, asks every connection to finish its
/// request in flight, and returns once all have closed.
/// Refusals of request heads are counted in `live`'s
/// `everarcade_rejected_total{reason}` when given. No read plane: see
/// [`serve_with`].
pub async fn serve<L>(
    listener: L,
    app: Router,
    limits: ConnectionLimits,
    live: Option<Arc<Live>>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: PlaneIo,
{
    let serving = Serving {
        limits,
        live,
        read_plane: None,
    };
    serve_with(listener, app, serving, shutdown).await
}

/// [`serve`] with a read plane: a connection whose first request is a read
/// of the pages, a tick stream or the state ([`plane::plane_of`]) is served
/// by a task on `serving.read_plane`; the graceful stop waits for the
/// connections of both planes.
pub async fn serve_with<L>(
    mut listener: L,
    app: Router,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: PlaneIo,
{
    let (close, closing) = watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once the
    // last one ended.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (io, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (app, closing, open) = (app.clone(), closing.clone(), open.clone());
        let serving = serving.clone();
        tokio::spawn(async move {
            dispatch(io, remote, app, serving, closing).await;
            drop(open);
        });
    }
    drop(listener);
    let _ = close.send(true);
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}

/// Chooses a new connection's plane and serves it there until it closes.
/// Runs in the connection's own task on the main runtime, so a client slow
/// to send its request line delays only itself.
async fn dispatch<S: PlaneIo>(
    io: S,
    remote: SocketAddr,
    app: Router,
    serving: Serving,
    closing: watch::Receiver<bool>,
) {
    let Serving {
        limits,
        live,
        read_plane,
    } = serving;
    let count = |plane: Plane| {
        if let Some(live) = &live {
            live.metrics.connections.add(plane.label(), 1);
        }
    };
    let Some(read_plane) = read_plane else {
        count(Plane::Main);
        serve_connection(io, remote, app, limits, live, closing, None).await;
        return;
    };
    let wait = Duration::from_millis(PLANE_CHOICE_WAIT_MS).min(limits.request_head_timeout);
    let (plane, io) = plane::first_line(io, wait).await;
    count(plane);
    if plane == Plane::Main {
        serve_connection(io, remote, app, limits, live, closing, None).await;
        return;
    }
    let main = Handle::current();
    let served = read_plane.spawn(async move {
        match io.rebind() {
            Ok(io) => serve_connection(io, remote, app, limits, live, closing, Some(main)).await,
            Err(error) => tracing::debug!(%remote, %error, "moving a connection to the read plane failed; closed"),
        }
    });
    // Cancelled only when the read plane stopped first; the connection is
    // closed either way.
    let _ = served.await;
}

/// Serves one connection until it closes, or until `closing` turns true and
/// its request in flight is answered. A refused request head is counted in
/// `live`'s `everarcade_rejected_total{reason}` (before it is answered).
/// With `main` (the connection is on the read plane), a request of the main
/// plane (an input, the admin API, `/status`…) has its handler run on that
/// runtime: admission never runs at the read plane's priority.
pub async fn serve_connection<S>(
    io: S,
    remote: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    live: Option<Arc<Live>>,
    mut closing: watch::Receiver<bool>,
    main: Option<Handle>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        io: Mutex::new(io),
        read_since_write_bytes: AtomicU64::new(0),
        refused: Mutex::new(None),
        live,
    });
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let request = request.map(Body::new);
        let app = app.clone();
        let hop = main
            .as_ref()
            .filter(|_| {
                let method = request.method().as_str().as_bytes();
                plane::plane_of(method, request.uri().path().as_bytes()) == Plane::Main
            })
            .cloned();
        async move {
            let Some(main) = hop else {
                return app.oneshot(request).await;
            };
            match main.spawn(app.oneshot(request)).await {
                Ok(answer) => answer,
                Err(error) => Ok(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stopping",
                    format!("the request's task on the main runtime ended: {error}"),
                )
                .into_response()),
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_head_timeout)
        .max_header_size(limits.request_head_bytes_max);
    let io = ConnectionIo {
        shared: shared.clone(),
        replacement: None,
    };
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        closed = closing.wait_for(|closing| *closing) => {
            drop(closed);
            None
        }
    };
    let result = match finished {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    let Err(error) = result else { return };
    if error.is_timeout() {
        if shared.read_since_write_bytes.load(Ordering::SeqCst) == 0 {
            // An idle keep-alive connection: nothing to answer.
            return;
        }
        let answer = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request head did not arrive within {} ms",
                limits.request_head_timeout.as_millis()
            ),
        );
        tracing::debug!(%remote, "request head timed out; answered 408");
        shared.count(answer.code);
        if shared.write_all(&envelope_response(&answer)).await.is_ok() {
            let _ = shared.shutdown().await;
            shared.linger().await;
        }
    } else if shared.refused.lock().expect("connection lock").is_some() {
        tracing::debug!(%remote, %error, "request head refused");
        // hyper answered (ConnectionIo turned its answer into the envelope).
        shared.linger().await;
    }
}

/// The connection's stream, shared between hyper and the code that answers
/// after hyper gave up on the connection.
struct Shared<S> {
    io: Mutex<S>,
    /// Bytes read since hyper last wrote: nonzero when a request head began.
    read_since_write_bytes: AtomicU64,
    /// The code of the envelope that replaced hyper's automatic answer.
    refused: Mutex<Option<&'static str>>,
    /// Where refusals are counted.
    live: Option<Arc<Live>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Shared<S> {
    /// Counts a refused head in `everarcade_rejected_total{reason}`.
    fn count(&self, code: &'static str) {
        if let Some(live) = &self.live {
            live.metrics.rejected.add(code, 1);
        }
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut io = self.io.lock().expect("connection lock");
        Pin::new(&mut *io).poll_read(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut io = self.io.lock().expect("connection lock");
        Pin::new(&mut *io).poll_write(cx, buf)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut io = self.io.lock().expect("connection lock");
        Pin::new(&mut *io).poll_flush(cx)
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut io = self.io.lock().expect("connection lock");
        Pin::new(&mut *io).poll_shutdown(cx)
    }

    async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let written = std::future::poll_fn(|cx| self.poll_write(cx, bytes)).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[written..];
        }
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    async fn shutdown(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_shutdown(cx)).await
    }

    /// Reads and discards until the client closes, [`LINGER_BYTES_MAX`]
    /// or [`LINGER_MS`].
    async fn linger(&self) {
        let drain = async {
            let mut discarded = 0u64;
            let mut scratch = vec![0u8; 16 * 1024];
            while discarded < LINGER_BYTES_MAX {
                let mut buf = ReadBuf::new(&mut scratch);
                let read = std::future::poll_fn(|cx| self.poll_read(cx, &mut buf)).await;
                match read {
                    Ok(()) if !buf.filled().is_empty() => discarded += buf.filled().len() as u64,
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(LINGER_MS), drain).await;
    }
}

/// What hyper reads from and writes to: the shared stream, with hyper's
/// automatic error answers replaced by the node's envelope.
struct ConnectionIo<S> {
    shared: Arc<Shared<S>>,
    /// The envelope being written in place of hyper's automatic answer, and
    /// how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnectionIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = self.shared.poll_read(cx, buf);
        let bytes = (buf.filled().len() - before) as u64;
        self.shared
            .read_since_write_bytes
            .fetch_add(bytes, Ordering::SeqCst);
        read
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnectionIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.shared
            .read_since_write_bytes
            .store(0, Ordering::SeqCst);
        if self.replacement.is_none()
            && let Some(answer) = automatic_answer(buf)
        {
            *self.shared.refused.lock().expect("connection lock") = Some(answer.code);
            self.shared.count(answer.code);
            self.replacement = Some((envelope_response(&answer), 0));
        }
        let this = &mut *self;
        let Some((bytes, written)) = &mut this.replacement else {
            return this.shared.poll_write(cx, buf);
        };
        // hyper's answer is the last thing it writes on this connection:
        // everything it writes from now on is taken as written.
        while *written < bytes.len() {
            match this.shared.poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.poll_shutdown(cx)
    }
}

/// The envelope for hyper's automatic answer to a head it refused, when
/// `written` is one.
///
/// hyper answers a refused head (and only that) with a response head alone:
/// a status, `content-length: 0` and no `content-type`. Every response of
/// the router has a `content-type`, and no body the router sends starts
/// with `HTTP/1.1 `, so the match cannot take one of the router's answers.
fn automatic_answer(written: &[u8]) -> Option<ApiError> {
    let head_end = written.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&written[..head_end]).ok()?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let lower = head.to_ascii_lowercase();
    if lower.contains("\r\ncontent-type:") || !lower.contains("\r\ncontent-length: 0") {
        return None;
    }
    let answer = match status {
        "431" => ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_head_too_large",
            "the request line and headers are larger than http.request_head_bytes_max",
        ),
        "414" => ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "the request target is too long",
        ),
        "400" => ApiError::bad_request(
            "malformed_request",
            "the request line or headers are not valid HTTP/1.1",
        ),
        _ => return None,
    };
    Some(answer)
}

/// A whole HTTP/1.1 response carrying `error`'s envelope, closing the
/// connection.
fn envelope_response(error: &ApiError) -> Vec<u8> {
    let body = error.body().to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        error.status.as_u16(),
        error.status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_automatic_answers_are_replaced() {
        let automatic = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n";
        let answer = automatic_answer(automatic).expect("replaced");
        assert_eq!(answer.code, "request_head_too_large");
        let ours = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_answer(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_answer(ok).is_none());
        assert!(automatic_answer(b"{\"status\":\"alive\"}").is_none());
        let response = String::from_utf8(envelope_response(&answer)).unwrap();
        assert!(response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["error"]["code"], "request_head_too_large");
    }
}
