//! Self-signed TLS certificates for tests of nodes that serve HTTPS.

use std::path::{Path, PathBuf};

/// Writes a self-signed certificate for `127.0.0.1` and `localhost` and its
/// key into `dir` (created if needed) as `<name>.cert.pem` and
/// `<name>.key.pem`; returns (certificate path, key path).
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).expect("rcgen signs a certificate");
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write the key");
    (cert, key)
}
