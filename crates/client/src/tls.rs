//! HTTPS to a node: which certificates the client trusts.
//!
//! A node serves TLS with a certificate chain of the operator's choosing,
//! most often a self-signed certificate or one from a private CA, so the
//! client trusts exactly what it is given ([`Trust`]): no system root store
//! is consulted. A self-signed end-entity certificate given as the trust
//! anchor verifies itself; its subject alternative names must still name the
//! host the client connects to.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::error::ClientError;

/// A PEM file larger than this is refused unread (the node's own bound).
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// The certificates a client trusts for `https://` nodes.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("certificates", &self.roots.len())
            .finish()
    }
}

impl Trust {
    /// Trusts every certificate in the PEM file at `path` (a CA bundle, or
    /// the node's own self-signed certificate).
    pub fn from_pem_file(path: &Path) -> Result<Trust, ClientError> {
        let origin = path.display().to_string();
        let bad = |reason: String| ClientError::Trust {
            origin: origin.clone(),
            reason,
        };
        let length = std::fs::metadata(path)
            .map_err(|e| bad(e.to_string()))?
            .len();
        if length > PEM_FILE_BYTES_MAX {
            return Err(bad(format!(
                "{length} bytes, over the {PEM_FILE_BYTES_MAX}-byte bound of a PEM file"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        Trust::from_pem(&bytes, &origin)
    }

    /// Trusts every certificate in `pem`; `origin` names it in errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Trust, ClientError> {
        let bad = |reason: String| ClientError::Trust {
            origin: origin.to_string(),
            reason,
        };
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| bad(format!("not PEM: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| bad(format!("not a usable certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad("holds no CERTIFICATE block".to_string()));
        }
        Ok(Trust {
            roots: Arc::new(roots),
        })
    }

    /// Trusts nothing: the configuration a plain-HTTP client carries unused.
    pub(crate) fn empty() -> Trust {
        Trust {
            roots: Arc::new(RootCertStore::empty()),
        }
    }

    /// The rustls configuration: ring, TLS 1.2 and 1.3 (the connector
    /// offers HTTP/1.1 by ALPN, all the node speaks).
    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth()
    }
}
