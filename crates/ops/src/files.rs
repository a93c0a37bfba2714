//! File plumbing shared by backup and restore: private directories (0700)
//! and files (0600) created new, never over anything; one streaming pass
//! that copies and hashes (BLAKE3 and SHA-256 together); directory fsyncs;
//! the host's name and the wall-clock stamps a manifest records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use everarcade_store::storage::{DIRECTORY_MODE, FILE_MODE};
use sha2::Digest;

use crate::error::OpsError;

/// Size of one read in a streaming copy or hash.
pub const COPY_BUFFER_BYTES: usize = 1 << 20;

/// A file's length and hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// Plain BLAKE3 of the contents (what `b3sum` prints).
    pub blake3: [u8; 32],
    /// SHA-256 of the contents (what `sha256sum` prints).
    pub sha256: [u8; 32],
}

/// Both hashes over one stream of bytes.
struct Hashers {
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    bytes: u64,
}

impl Hashers {
    fn new() -> Hashers {
        Hashers {
            blake3: blake3::Hasher::new(),
            sha256: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.blake3.update(chunk);
        self.sha256.update(chunk);
        self.bytes += chunk.len() as u64;
    }

    fn finish(self) -> FileDigest {
        FileDigest {
            bytes: self.bytes,
            blake3: *self.blake3.finalize().as_bytes(),
            sha256: self.sha256.finalize().into(),
        }
    }
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), OpsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(dir)
        .map_err(OpsError::io("create", dir))
}

/// Opens `path` as a new file (0600); an existing file is an error.
fn create_new(path: &Path) -> Result<File, OpsError> {
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(OpsError::io("create", path))
}

/// Writes `bytes` to the new file `path` (0600) and fsyncs it.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<FileDigest, OpsError> {
    let mut file = create_new(path)?;
    file.write_all(bytes).map_err(OpsError::io("write", path))?;
    file.sync_all().map_err(OpsError::io("fsync", path))?;
    let mut hashers = Hashers::new();
    hashers.update(bytes);
    Ok(hashers.finish())
}

/// Copies the first `length` bytes of `from` (all of it when `None`) into the
/// new file `to` (0600), hashing what it writes, and fsyncs `to`. A source
/// shorter than `length` is an error: the caller asked for bytes that are
/// not there.
pub fn copy_hashed(from: &Path, to: &Path, length: Option<u64>) -> Result<FileDigest, OpsError> {
    let source = File::open(from).map_err(OpsError::io("open", from))?;
    let size = source.metadata().map_err(OpsError::io("stat", from))?.len();
    let mut out = create_new(to)?;
    let mut reader: Box<dyn Read> = match length {
        Some(length) => Box::new(source.take(length)),
        None => Box::new(source),
    };
    let digest = stream(&mut reader, from, length.unwrap_or(size), |chunk| {
        out.write_all(chunk).map_err(OpsError::io("write", to))
    })?;
    if let Some(length) = length
        && digest.bytes != length
    {
        return Err(OpsError::SourceInconsistent {
            path: from.to_path_buf(),
            what: format!(
                "{length} bytes were to be copied, but the file holds only {}",
                digest.bytes
            ),
        });
    }
    out.sync_all().map_err(OpsError::io("fsync", to))?;
    Ok(digest)
}

/// Length and hashes of a whole file, streamed.
pub fn hash_file(path: &Path) -> Result<FileDigest, OpsError> {
    let mut file = File::open(path).map_err(OpsError::io("open", path))?;
    let size = file.metadata().map_err(OpsError::io("stat", path))?.len();
    stream(&mut file, path, size, |_| Ok(()))
}

/// Files of at least this many bytes have their SHA-256 computed on a
/// second thread while this one reads, computes BLAKE3 and writes.
const PARALLEL_HASH_BYTES_MIN: u64 = 4 << 20;
/// Chunks queued for the SHA-256 thread at most (4 MiB); the reader waits
/// when the queue is full.
const HASH_QUEUE_CHUNKS: usize = 4;

/// Reads `reader` to its end in chunks, handing each to `sink`, and hashes
/// it both ways. `size` (expected bytes) only picks the way.
fn stream(
    reader: &mut dyn Read,
    from: &Path,
    size: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), OpsError>,
) -> Result<FileDigest, OpsError> {
    if size < PARALLEL_HASH_BYTES_MIN {
        let mut hashers = Hashers::new();
        let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
        loop {
            let read = read_some(reader, &mut buffer, from)?;
            if read == 0 {
                return Ok(hashers.finish());
            }
            hashers.update(&buffer[..read]);
            sink(&buffer[..read])?;
        }
    }
    std::thread::scope(|scope| {
        let (chunks, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE_CHUNKS);
        let sha256 = scope.spawn(move || {
            let mut hasher = sha2::Sha256::new();
            for chunk in queue {
                hasher.update(&chunk);
            }
            <[u8; 32]>::from(hasher.finalize())
        });
        let mut blake3 = blake3::Hasher::new();
        let mut bytes = 0u64;
        let streamed = loop {
            let mut chunk = vec![0u8; COPY_BUFFER_BYTES];
            let read = match read_some(reader, &mut chunk, from) {
                Ok(0) => break Ok(()),
                Ok(read) => read,
                Err(error) => break Err(error),
            };
            chunk.truncate(read);
            blake3.update(&chunk);
            if let Err(error) = sink(&chunk) {
                break Err(error);
            }
            bytes += read as u64;
            chunks
                .send(chunk)
                .expect("the SHA-256 thread runs until the last chunk is sent");
        };
        drop(chunks);
        let sha256 = sha256
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        streamed.map(|()| FileDigest {
            bytes,
            blake3: *blake3.finalize().as_bytes(),
            sha256,
        })
    })
}

/// One `read`, retried when interrupted.
fn read_some(reader: &mut dyn Read, buffer: &mut [u8], from: &Path) -> Result<usize, OpsError> {
    loop {
        match reader.read(buffer) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other.map_err(OpsError::io("read", from)),
        }
    }
}

/// fsyncs a directory, so that the entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), OpsError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(OpsError::io("fsync the directory", dir))
}

/// The longest host name recorded (Linux's `HOST_NAME_MAX` is 64; POSIX
/// allows 255).
pub const HOST_NAME_BYTES_MAX: usize = 255;

/// The host's name, as the kernel reports it (`uname(2)`'s node name), or
/// `unknown` when it is empty, longer than [`HOST_NAME_BYTES_MAX`], not
/// UTF-8 or holds a control character.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().unwrap_or("").trim();
    if name.is_empty() || name.len() > HOST_NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return "unknown".to_string();
    }
    name.to_string()
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The last second RFC 3339 can write with a four-digit year:
/// 9999-12-31T23:59:59Z.
pub const RFC3339_UNIX_SECONDS_MAX: u64 = 253_402_300_799;

/// RFC 3339 in UTC, to the second: `2026-11-01T12:00:00Z`. A time past
/// [`RFC3339_UNIX_SECONDS_MAX`] is written as that second.
pub fn rfc3339(unix: u64) -> String {
    let seconds = unix.min(RFC3339_UNIX_SECONDS_MAX);
    let time = UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A compact UTC stamp for directory names: `20261101T120000Z`.
pub fn compact_stamp(unix: u64) -> String {
    rfc3339(unix).replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_of_hashing_agree_with_the_hashes_of_the_bytes() {
        let dir = std::env::temp_dir().join(format!("ea-ops-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_private_dir(&dir).unwrap();
        // Below and above PARALLEL_HASH_BYTES_MIN, not a multiple of a chunk.
        for size in [3 * COPY_BUFFER_BYTES + 17, 9 * COPY_BUFFER_BYTES + 5] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let from = dir.join(format!("from-{size}"));
            fs::write(&from, &bytes).unwrap();
            let expect = |bytes: &[u8]| FileDigest {
                bytes: bytes.len() as u64,
                blake3: *blake3::hash(bytes).as_bytes(),
                sha256: sha2::Sha256::digest(bytes).into(),
            };
            assert_eq!(hash_file(&from).unwrap(), expect(&bytes));
            let to = dir.join(format!("to-{size}"));
            assert_eq!(copy_hashed(&from, &to, None).unwrap(), expect(&bytes));
            assert_eq!(fs::read(&to).unwrap(), bytes);
            let cut = size as u64 - 1000;
            let prefix = dir.join(format!("prefix-{size}"));
            let digest = copy_hashed(&from, &prefix, Some(cut)).unwrap();
            assert_eq!(digest, expect(&bytes[..cut as usize]));
            let longer = copy_hashed(
                &from,
                &dir.join(format!("long-{size}")),
                Some(size as u64 + 1),
            );
            assert_eq!(longer.unwrap_err().code(), "backup_source_inconsistent");
            let again = copy_hashed(&from, &to, None).unwrap_err();
            assert_eq!(again.code(), "io", "never over an existing file");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(RFC3339_UNIX_SECONDS_MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(compact_stamp(1_700_000_000), "20231114T221320Z");
    }

    #[test]
    fn the_host_name_is_the_kernels() {
        let name = host_name();
        assert!(!name.is_empty() && name.len() <= HOST_NAME_BYTES_MAX);
        let kernel = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(name, kernel.trim());
    }
}
