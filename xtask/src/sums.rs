//! SHA-256 helpers and the `SHA256SUMS` file.
//!
//! `SHA256SUMS` has one line per file, `<64 lowercase hex>  <file name>`
//! (two spaces: GNU coreutils' text mode, which `sha256sum -c` reads), sorted
//! by file name, each ending in `\n`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// The name of the checksum file in a release directory.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// Bytes read at a time while hashing a file.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of a file's contents (lowercase hex) and its length, read in chunks.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut length = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        length += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), length))
}

/// The text of a `SHA256SUMS` file over `(file name, sha256 hex)` pairs.
pub fn render(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort();
    let mut text = String::new();
    for (name, hash) in sorted {
        assert!(!name.contains(['/', '\n']), "a release file name: {name:?}");
        assert_eq!(hash.len(), 64, "a sha256 in hex");
        text.push_str(&format!("{hash}  {name}\n"));
    }
    text
}
