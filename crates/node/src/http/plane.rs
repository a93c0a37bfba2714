//! The read plane: the connections of the pages (operator console,
//! spectator page, viewer), their tick streams and their state reads,
//! served by a second tokio runtime whose threads run at a lower CPU
//! priority than the runtime that admits inputs.
//!
//! It is responsible for choosing a connection's plane from its first
//! request line ([`plane_of`], [`first_line`]), for the read plane's runtime
//! ([`ReadPlane`]: its threads, their priority, its shutdown) and for moving
//! a connection's socket to it ([`PlaneIo::rebind`]). It is not responsible
//! for answering anything: the same router serves both planes, so any
//! request on any connection is answered the same; only the priority of the
//! thread doing the work differs. A request of the main plane that arrives
//! on a read-plane connection (an input submitted on a connection that
//! first loaded a page) runs its handler on the main runtime
//! (`connection::serve_connection`), so admission never waits for a
//! low-priority thread.
//!
//! Why a priority and not only a runtime: the node's cores are shared. 220
//! tick streams and a thousand state reads a second are mostly hyper framing
//! and writing; on the workers that admit inputs they add to admission's
//! latency, and on other threads of equal priority they still take the
//! cores from them. Each read-plane thread therefore runs under Linux's
//! `SCHED_IDLE` policy: a thread of the node's normal policy that wakes
//! (an admission worker, the world's thread) takes the core from it at
//! once. A lower nice value alone is not enough: Linux's EEVDF scheduler
//! lets a running thread of any nice value finish its time slice (about
//! 1.5 ms on 2 cores) before a waking thread preempts it, which is the
//! size of the admission latency the read plane exists to remove
//! (docs/BENCHMARKS.md). The thread also sets nice
//! +[`READ_PLANE_NICE_OFFSET`], which is what remains where `SCHED_IDLE`
//! is refused or absent (other systems).
//!
//! Architecture invariants:
//! - the plane is chosen once per connection, from its first request line,
//!   inside the connection's own task (never in the accept loop), within at
//!   most [`PLANE_CHOICE_WAIT_MS`]; a connection whose line is late, too
//!   long or not HTTP is served on the main plane, as before;
//! - nothing that admits inputs, changes the world or answers the operator
//!   (`/status`, `/readyz`, `/metrics`, the admin API, federation records)
//!   is ever a read-plane request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::{Handle, Runtime};

use crate::config::READ_PLANE_THREADS_MAX;

/// How much the read plane's threads lower their CPU priority: their nice
/// value is the node's plus this (at most 19). 10 weighs a read-plane
/// thread about a tenth of an admission worker (Linux CFS/EEVDF weights
/// 1024 at nice 0, 110 at nice 10) while leaving room below it for
/// anything an operator runs at lower priority still (nice 19).
pub const READ_PLANE_NICE_OFFSET: i32 = 10;

/// The highest nice value.
const NICE_MAX: i32 = 19;

/// How long a new connection's task waits for its first request line to
/// choose the plane (at most `http.request_timeout_ms`). Browsers send the
/// request with (or right after) the handshake; a connection still silent
/// after this is served on the main plane.
pub const PLANE_CHOICE_WAIT_MS: u64 = 200;

/// The first bytes read to find the request's method and path; a longer
/// method plus target is served on the main plane. A state key is at most
/// 256 bytes (512 hex digits), so every read-plane target fits.
pub const FIRST_LINE_BYTES_MAX: usize = 1024;

/// How long a stopping node waits for the read plane's threads to exit.
pub const READ_PLANE_SHUTDOWN_MS: u64 = 5_000;

/// The read plane's thread name (at most 15 bytes: Linux's `comm`).
pub const READ_PLANE_THREAD_NAME: &str = "everarcade-read";

/// Which runtime serves a connection or a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    /// The runtime that admits inputs and serves everything else.
    Main,
    /// The lower-priority runtime of pages, tick streams and state reads.
    Read,
}

impl Plane {
    /// The `plane` label of `everarcade_http_connections_total`.
    pub fn label(self) -> &'static str {
        match self {
            Plane::Main => "main",
            Plane::Read => "read",
        }
    }
}

/// The plane of a request: [`Plane::Read`] for a `GET` or `HEAD` of a page,
/// an asset, a viewer file, `/version`, or a world's tick stream
/// (`events`), state (`state/{key}`, `keys`), ticks (`ticks/{tick}`) or
/// attestation; [`Plane::Main`] for anything else.
pub fn plane_of(method: &[u8], path: &[u8]) -> Plane {
    if method != b"GET" && method != b"HEAD" {
        return Plane::Main;
    }
    let read = match path {
        b"/" | b"/spectate" | b"/version" => true,
        _ if path.starts_with(b"/console/assets/") || path.starts_with(b"/spectate/viewer/") => {
            true
        }
        _ => world_read(path),
    };
    if read { Plane::Read } else { Plane::Main }
}

/// Whether `path` is `/v1/worlds/{world}/` followed by one of the world's
/// read routes.
fn world_read(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/v1/worlds/") else {
        return false;
    };
    let Some(slash) = rest.iter().position(|byte| *byte == b'/') else {
        return false;
    };
    if slash == 0 {
        return false;
    }
    let route = &rest[slash + 1..];
    let single = |name: &[u8]| {
        route
            .strip_prefix(name)
            .is_some_and(|key| !key.is_empty() && !key.contains(&b'/'))
    };
    matches!(route, b"events" | b"keys" | b"attestation") || single(b"state/") || single(b"ticks/")
}

/// The plane of a request line's start (`METHOD SP target SP …`), or `None`
/// while the target is not complete in `bytes`. A line that is not HTTP is
/// [`Plane::Main`] (hyper answers it there).
pub fn plane_of_line(bytes: &[u8]) -> Option<Plane> {
    let Some(method_end) = bytes.iter().position(|byte| *byte == b' ') else {
        return (bytes.len() > 16 || bytes.contains(&b'\n')).then_some(Plane::Main);
    };
    let target = &bytes[method_end + 1..];
    let end = target
        .iter()
        .position(|byte| *byte == b' ' || *byte == b'\r' || *byte == b'\n')?;
    let target = &target[..end];
    let path = target
        .iter()
        .position(|byte| *byte == b'?')
        .map_or(target, |query| &target[..query]);
    Some(plane_of(&bytes[..method_end], path))
}

/// Reads the start of a connection's first request until its plane is
/// known, at most [`FIRST_LINE_BYTES_MAX`] bytes and `wait`. Returns the
/// plane ([`Plane::Main`] when undecided) and the connection with the bytes
/// read put back in front of it.
pub async fn first_line<S>(mut io: S, wait: Duration) -> (Plane, Replay<S>)
where
    S: AsyncRead + Unpin,
{
    let mut read = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let decide = async {
        loop {
            if let Some(plane) = plane_of_line(&read) {
                return plane;
            }
            if read.len() >= FIRST_LINE_BYTES_MAX {
                return Plane::Main;
            }
            let room = (FIRST_LINE_BYTES_MAX - read.len()).min(chunk.len());
            match io.read(&mut chunk[..room]).await {
                Ok(0) | Err(_) => return Plane::Main,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
            }
        }
    };
    // An error or the end of the stream is seen again by hyper, which
    // reads on after the replayed bytes.
    let plane = tokio::time::timeout(wait, decide)
        .await
        .unwrap_or(Plane::Main);
    (plane, Replay::new(read, io))
}

/// A connection with bytes already read from it put back in front.
pub struct Replay<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Replay<S> {
    /// `inner`, whose next bytes are `prefix`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Replay<S> {
        Replay {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.prefix.len() {
            let this = &mut *self;
            let left = &this.prefix[this.offset..];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.offset += n;
            if this.offset == this.prefix.len() {
                this.prefix = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection the node can serve on either plane.
pub trait PlaneIo: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// The same connection, its socket registered with the I/O driver of
    /// the runtime this is called on (so the read plane's threads, not the
    /// main runtime's, wait for its readiness).
    fn rebind(self) -> io::Result<Self>;
}

impl PlaneIo for TcpStream {
    fn rebind(self) -> io::Result<TcpStream> {
        TcpStream::from_std(self.into_std()?)
    }
}

impl<S: PlaneIo> PlaneIo for Replay<S> {
    fn rebind(self) -> io::Result<Replay<S>> {
        Ok(Replay {
            inner: self.inner.rebind()?,
            ..self
        })
    }
}

/// A TCP socket that can move to another runtime in place, under a
/// wrapper (TLS) that does not give its socket back.
pub struct Socket {
    /// Always present but while [`Socket::rebind_in_place`] runs.
    stream: Option<TcpStream>,
}

impl Socket {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream) -> Socket {
        Socket {
            stream: Some(stream),
        }
    }

    /// Registers the socket with the calling runtime's I/O driver; on an
    /// error the socket is closed and every later operation fails.
    pub fn rebind_in_place(&mut self) -> io::Result<()> {
        let stream = self.stream.take().ok_or_else(Socket::gone)?;
        self.stream = Some(stream.rebind()?);
        Ok(())
    }

    fn gone() -> io::Error {
        io::Error::new(
            io::ErrorKind::NotConnected,
            "the socket could not move to the read plane",
        )
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream.as_mut().map(Pin::new).ok_or_else(Socket::gone)
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl PlaneIo for tokio_rustls::server::TlsStream<Socket> {
    fn rebind(mut self) -> io::Result<Self> {
        self.get_mut().0.rebind_in_place()?;
        Ok(self)
    }
}

/// Puts the calling thread under `SCHED_IDLE`: it runs only on a core no
/// thread of the normal policy wants, and yields it as soon as one wakes.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn schedule_idle() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is an initialized
    // `sched_param` (priority 0, the only one SCHED_IDLE takes) that lives
    // across the call, which only reads it. An unprivileged thread may
    // always move itself to SCHED_IDLE (Linux 2.6.39 and later).
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// No `SCHED_IDLE` elsewhere: the nice value is all.
#[cfg(not(target_os = "linux"))]
fn schedule_idle() -> io::Result<()> {
    Ok(())
}

/// The read plane's runtime. Dropped without [`ReadPlane::shutdown`], it
/// stops its threads without waiting for them.
pub struct ReadPlane {
    runtime: Option<Runtime>,
    handle: Handle,
    nice: i32,
}

impl ReadPlane {
    /// Starts `threads` worker threads (1 to [`READ_PLANE_THREADS_MAX`]),
    /// each at the calling thread's nice value plus
    /// [`READ_PLANE_NICE_OFFSET`]. A thread that cannot lower its priority
    /// logs a warning and serves at the priority it has.
    pub fn start(threads: usize) -> io::Result<ReadPlane> {
        assert!(
            (1..=READ_PLANE_THREADS_MAX).contains(&threads),
            "read plane threads {threads} outside 1..={READ_PLANE_THREADS_MAX}"
        );
        let base = rustix::process::getpriority_process(None).unwrap_or(0);
        let nice = (base + READ_PLANE_NICE_OFFSET).min(NICE_MAX);
        let warned = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(READ_PLANE_THREAD_NAME)
            // Every thread of the runtime, its blocking pool's too.
            .on_thread_start(move || {
                let lowered = rustix::process::setpriority_process(None, nice)
                    .map_err(io::Error::from)
                    .and_then(|()| schedule_idle());
                if let Err(error) = lowered
                    && !warned.swap(true, Ordering::SeqCst)
                {
                    tracing::warn!(
                        %error,
                        nice,
                        "a read-plane thread could not lower its CPU priority fully; it serves at the priority it has"
                    );
                }
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(ReadPlane {
            runtime: Some(runtime),
            handle,
            nice,
        })
    }

    /// Where read-plane connections are spawned.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The nice value its threads set.
    pub fn nice(&self) -> i32 {
        self.nice
    }

    /// Stops the runtime: its tasks are dropped and its threads exit,
    /// waited for at most [`READ_PLANE_SHUTDOWN_MS`] (on the blocking pool
    /// of the calling runtime, so no worker blocks).
    pub async fn shutdown(mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let wait = Duration::from_millis(READ_PLANE_SHUTDOWN_MS);
        let joined = tokio::task::spawn_blocking(move || runtime.shutdown_timeout(wait)).await;
        if let Err(error) = joined {
            tracing::warn!(%error, "stopping the read plane failed");
        }
    }
}

impl Drop for ReadPlane {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Option<Plane> {
        plane_of_line(text.as_bytes())
    }

    #[test]
    fn pages_streams_and_state_reads_are_the_read_plane() {
        for read in [
            "GET / HTTP/1.1\r\n",
            "GET /spectate HTTP/1.1\r\n",
            "HEAD /spectate HTTP/1.1\r\n",
            "GET /spectate/viewer/viewer.js HTTP/1.1\r\n",
            "GET /console/assets/console.js HTTP/1.1\r\n",
            "GET /version HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/events HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/state/50 HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/state/50?x=1 HTTP/1.1\r\n",
            "GET /v1/worlds/w/ticks/12 HTTP/1.1\r\n",
            "GET /v1/worlds/w/keys?limit=5 HTTP/1.1\r\n",
            "GET /v1/worlds/w/attestation HTTP/1.1\r\n",
        ] {
            assert_eq!(line(read), Some(Plane::Read), "{read:?}");
        }
        for main in [
            "POST /v1/worlds/world-001/inputs HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/inputs HTTP/1.1\r\n",
            "POST /v1/worlds/world-001/events HTTP/1.1\r\n",
            "POST / HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/status HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/records?after=0 HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/checkpoint HTTP/1.1\r\n",
            "GET /v1/worlds/world-001/authority HTTP/1.1\r\n",
            "GET /healthz HTTP/1.1\r\n",
            "GET /readyz HTTP/1.1\r\n",
            "GET /metrics HTTP/1.1\r\n",
            "POST /admin/checkpoint HTTP/1.1\r\n",
            "GET /v1/worlds//events HTTP/1.1\r\n",
            "GET /v1/worlds/w/state/ HTTP/1.1\r\n",
            "GET /v1/worlds/w/state/1/2 HTTP/1.1\r\n",
            "GET /v1/worlds/w/events/x HTTP/1.1\r\n",
            "GET /spectates HTTP/1.1\r\n",
            "GET http://host/ HTTP/1.1\r\n",
            "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}not http at all\n",
        ] {
            assert_eq!(line(main), Some(Plane::Main), "{main:?}");
        }
        // Undecided until the target ends.
        assert_eq!(line(""), None);
        assert_eq!(line("GET"), None);
        assert_eq!(line("GET /v1/worlds/w/sta"), None);
        assert_eq!(line("GET /v1/worlds/w/state/50 "), Some(Plane::Read));
    }

    #[tokio::test]
    async fn the_first_line_is_replayed_whole() {
        let request = b"GET /spectate HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let (plane, mut replay) = first_line(&request[..], Duration::from_secs(1)).await;
        assert_eq!(plane, Plane::Read);
        let mut again = Vec::new();
        replay.read_to_end(&mut again).await.unwrap();
        assert_eq!(again, request);

        // A stream that ends early, and one longer than the bound.
        let (plane, _) = first_line(&b"GET /spec"[..], Duration::from_secs(1)).await;
        assert_eq!(plane, Plane::Main);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(4 * FIRST_LINE_BYTES_MAX));
        let (plane, mut replay) = first_line(long.as_bytes(), Duration::from_secs(1)).await;
        assert_eq!(plane, Plane::Main);
        let mut again = Vec::new();
        replay.read_to_end(&mut again).await.unwrap();
        assert_eq!(again, long.as_bytes());
    }

    #[tokio::test]
    async fn a_silent_connection_is_the_main_plane_after_the_wait() {
        let (client, server) = tokio::io::duplex(64);
        let started = std::time::Instant::now();
        let (plane, _) = first_line(server, Duration::from_millis(50)).await;
        assert_eq!(plane, Plane::Main);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(client);
    }

    /// Linux's number of the SCHED_IDLE policy.
    const SCHED_IDLE_POLICY: u32 = 5;

    /// A thread's scheduling policy: field 41 of its `stat`.
    fn policy(task: &std::path::Path) -> u32 {
        let stat = std::fs::read_to_string(task.join("stat")).expect("stat");
        // Fields after the command name (which may hold spaces) start at 3.
        let after = &stat[stat.rfind(')').expect("a command name") + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields[41 - 3].parse().expect("a policy")
    }

    /// `/proc/<pid>/task/<tid>` of the calling thread.
    fn own_task() -> std::path::PathBuf {
        let relative = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        std::path::Path::new("/proc").join(relative)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn read_plane_threads_run_at_a_lower_priority_and_exit_at_shutdown() {
        let base = rustix::process::getpriority_process(None).expect("own priority");
        let plane = ReadPlane::start(2).expect("a read plane");
        assert_eq!(plane.nice(), (base + READ_PLANE_NICE_OFFSET).min(NICE_MAX));
        let (name, nice, task) = plane
            .handle()
            .spawn(async {
                (
                    std::thread::current().name().map(str::to_string),
                    rustix::process::getpriority_process(None).expect("priority"),
                    own_task(),
                )
            })
            .await
            .expect("ran on the read plane");
        assert_eq!(name.as_deref(), Some(READ_PLANE_THREAD_NAME));
        assert_eq!(nice, plane.nice());
        assert!(task.exists(), "{}", task.display());
        assert_eq!(policy(&task), SCHED_IDLE_POLICY);
        // The caller's priority is untouched.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), base);
        assert_eq!(policy(&own_task()), 0, "SCHED_OTHER");
        plane.shutdown().await;
        assert!(!task.exists(), "{} still runs", task.display());
    }
}
