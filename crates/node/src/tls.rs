//! HTTPS for the node's listener: rustls (ring provider) over tokio, served
//! by the same [`crate::http::connection::serve`] as plain HTTP, so head
//! limits, timeouts, graceful shutdown and `ConnectInfo<SocketAddr>` behave
//! identically with and without TLS. The read plane is chosen after the
//! handshake, from the first decrypted bytes (`http::plane`); the socket
//! under the TLS session then moves to the read plane's runtime.
//!
//! TLS handshakes run in tasks of their own, at most
//! [`HANDSHAKES_IN_FLIGHT_MAX`] at once and each within
//! [`HANDSHAKE_TIMEOUT_MS`], so a client that stalls its handshake delays
//! nobody else. Only HTTP/1.1 is offered (ALPN `http/1.1`).
//!
//! Architecture invariant: the certificate and key are read and checked
//! once, by [`server_config`], before the listener serves anything; a
//! missing or unusable file is an error naming it (code `tls_config`), never
//! a listener that fails every handshake.

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::http::connection::Serving;
use crate::http::plane::Socket;

/// A handshake must complete within this, or the connection is dropped.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Handshakes in progress at once; further connections wait in the kernel's
/// accept queue.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;

/// Completed handshakes waiting for the HTTP server to pick them up.
pub const HANDSHAKES_QUEUED_MAX: usize = 64;

/// A PEM file larger than this is refused unread.
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// TLS could not be set up. Every variant has the stable code `tls_config`
/// ([`TlsError::code`]) except [`TlsError::Serve`].
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no certificate.
    #[error("TLS certificate {}: {reason}", path.display())]
    Certificate {
        /// The file (`http.tls_cert`).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file is missing, unreadable or holds no private key.
    #[error("TLS private key {}: {reason}", path.display())]
    Key {
        /// The file (`http.tls_key`).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("TLS certificate {} with key {}: {reason}", certificate.display(), key.display())]
    Pair {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The HTTP server stopped with an I/O error.
    #[error("TLS listener: {0}")]
    Serve(#[from] std::io::Error),
}

impl TlsError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Serve(_) => "listen_failed",
            _ => "tls_config",
        }
    }
}

/// Reads a PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1)
/// and builds the rustls server configuration (TLS 1.2 and 1.3, ring,
/// no client authentication, ALPN `http/1.1`).
pub fn server_config(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certificate_error = |reason: String| TlsError::Certificate {
        path: certificate.to_owned(),
        reason,
    };
    let key_error = |reason: String| TlsError::Key {
        path: key.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read_pem(certificate).map_err(certificate_error)?)
            .collect::<Result<_, _>>()
            .map_err(|e| certificate_error(format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(certificate_error("no CERTIFICATE block".into()));
    }
    let private = PrivateKeyDer::from_pem_slice(&read_pem(key).map_err(key_error)?)
        .map_err(|e| key_error(format!("no usable private key block: {e}")))?;
    let pair_error = |e: tokio_rustls::rustls::Error| TlsError::Pair {
        certificate: certificate.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(pair_error)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(pair_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(PEM_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(format!("larger than {PEM_FILE_BYTES_MAX} bytes"));
    }
    Ok(bytes)
}

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then
/// lets in-flight requests finish (like `axum::serve(…)
/// .with_graceful_shutdown(…)`). Handlers see the client's address through
/// `ConnectInfo<SocketAddr>`. Fails before serving if the files are unusable.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    certificate: &Path,
    key: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TlsError> {
    let config = server_config(certificate, key)?;
    serve_tls_with(listener, app, config, Serving::default(), shutdown).await
}

/// [`serve_tls`] with a configuration already built by [`server_config`],
/// the request-head limits, where to count refusals and connections, and
/// the read plane.
pub async fn serve_tls_with(
    listener: TcpListener,
    app: Router,
    config: Arc<ServerConfig>,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TlsError> {
    let listener = TlsListener::new(listener, TlsAcceptor::from(config))?;
    crate::http::connection::serve_with(listener, app, serving, shutdown).await?;
    Ok(())
}

/// An `axum::serve::Listener` yielding connections whose TLS handshake has
/// completed. A background task accepts and handshakes; dropping the
/// listener (at shutdown) stops it and closes the socket.
struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<Socket>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(HANDSHAKES_QUEUED_MAX);
        let acceptor = tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(TlsListener {
            local_addr,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<Socket>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop never ends while this receiver lives; if it
            // died anyway (a panic), serve nothing more rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<Socket>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(error).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let timeout = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
            let handshake =
                tokio::time::timeout(timeout, acceptor.accept(Socket::new(stream))).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    // Fails only when the server stopped; the connection closes.
                    let _ = ready.send((tls, remote)).await;
                }
                Ok(Err(error)) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

/// Errors of one connection are ignored; others (such as running out of
/// file descriptors) are logged and retried after a pause, as axum does.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    struct Files {
        dir: PathBuf,
        certificate: PathBuf,
        key: PathBuf,
        der: CertificateDer<'static>,
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A self-signed certificate for `localhost` and its key, as PEM files.
    fn self_signed(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("ea-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let certificate = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&certificate, generated.cert.pem()).expect("write cert");
        std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
        Files {
            dir,
            certificate,
            key,
            der: generated.cert.der().clone(),
        }
    }

    fn connector(trusted: &CertificateDer<'static>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(trusted.clone()).expect("a root");
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    async fn get_over_tls(
        addr: SocketAddr,
        connector: &TlsConnector,
        path: &str,
    ) -> std::io::Result<String> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("a name");
        let mut tls = connector.connect(name, tcp).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response)
    }

    fn app() -> Router {
        Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
    }

    #[tokio::test]
    async fn serves_https_and_shows_the_client_address() {
        let files = self_signed("serve");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let (certificate, key) = (files.certificate.clone(), files.key.clone());
            async move {
                serve_tls(listener, app(), &certificate, &key, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        let connector = connector(&files.der);

        let response = get_over_tls(addr, &connector, "/peer")
            .await
            .expect("a response");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).expect("a body");
        let peer: SocketAddr = body.parse().expect("the peer address");
        assert_eq!(peer.ip(), addr.ip());
        assert_ne!(peer.port(), addr.port());

        // A plain-HTTP client gets no answer, and the server keeps serving.
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        plain
            .write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP/1.1 200"));
        let again = get_over_tls(addr, &connector, "/peer")
            .await
            .expect("a response");
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");

        stop.send(()).expect("server alive");
        let result = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("stops in time")
            .expect("no panic");
        result.expect("a clean stop");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the socket is closed"
        );
    }

    #[tokio::test]
    async fn a_client_that_does_not_trust_the_certificate_is_refused() {
        let files = self_signed("untrusted");
        let other = self_signed("other");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = server_config(&files.certificate, &files.key).expect("config");
        let server = tokio::spawn(serve_tls_with(
            listener,
            app(),
            config,
            Serving::default(),
            std::future::pending(),
        ));
        let error = get_over_tls(addr, &connector(&other.der), "/peer").await;
        assert!(error.is_err(), "{error:?}");
        server.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_over_tls_is_served_by_the_read_plane() {
        let files = self_signed("planes");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = server_config(&files.certificate, &files.key).expect("config");
        let plane = crate::http::plane::ReadPlane::start(1).expect("a read plane");
        let app = app().route(
            "/spectate",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                let thread = std::thread::current().name().unwrap_or("").to_string();
                format!("{thread} {}", peer.ip())
            }),
        );
        let serving = Serving {
            read_plane: Some(plane.handle()),
            ..Serving::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_tls_with(listener, app, config, serving, async {
            let _ = stopped.await;
        }));
        let connector = connector(&files.der);
        let body = |response: String| response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();

        let page = get_over_tls(addr, &connector, "/spectate")
            .await
            .expect("a page");
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        let expected = format!(
            "{} {}",
            crate::http::plane::READ_PLANE_THREAD_NAME,
            addr.ip()
        );
        assert_eq!(body(page), expected);
        let peer = get_over_tls(addr, &connector, "/peer")
            .await
            .expect("a peer");
        assert!(peer.starts_with("HTTP/1.1 200 OK\r\n"), "{peer}");

        stop.send(()).expect("server alive");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("stops in time")
            .expect("no panic")
            .expect("a clean stop");
        plane.shutdown().await;
    }

    #[test]
    fn unusable_files_name_the_file() {
        let files = self_signed("files");
        let missing = files.dir.join("missing.pem");
        let garbage = files.dir.join("garbage.pem");
        std::fs::write(&garbage, "not a pem file\n").expect("write");

        let error = server_config(&missing, &files.key).unwrap_err();
        assert_eq!(error.code(), "tls_config");
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let error = server_config(&files.certificate, &missing).unwrap_err();
        assert!(matches!(error, TlsError::Key { .. }), "{error}");
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let error = server_config(&garbage, &files.key).unwrap_err();
        assert!(
            error.to_string().contains("no CERTIFICATE block"),
            "{error}"
        );
        assert!(error.to_string().contains("garbage.pem"), "{error}");

        // A certificate given as the key holds no private key.
        let error = server_config(&files.certificate, &files.certificate).unwrap_err();
        assert!(matches!(error, TlsError::Key { .. }), "{error}");

        // A key that does not match the certificate.
        let other = self_signed("files-other");
        let error = server_config(&files.certificate, &other.key).unwrap_err();
        assert!(matches!(error, TlsError::Pair { .. }), "{error}");
        assert_eq!(error.code(), "tls_config");

        server_config(&files.certificate, &files.key).expect("a valid pair");
    }
}
