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
    let mut out = create_new(to)?;
    let mut hashers = Hashers::new();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let mut reader: Box<dyn Read> = match length {
        Some(length) => Box::new(source.take(length)),
        None => Box::new(source),
    };
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(OpsError::io("read", from)(error)),
        };
        hashers.update(&buffer[..read]);
        out.write_all(&buffer[..read])
            .map_err(OpsError::io("write", to))?;
    }
    if let Some(length) = length
        && hashers.bytes != length
    {
        return Err(OpsError::SourceInconsistent {
            path: from.to_path_buf(),
            what: format!(
                "{length} bytes were to be copied, but the file holds only {}",
                hashers.bytes
            ),
        });
    }
    out.sync_all().map_err(OpsError::io("fsync", to))?;
    Ok(hashers.finish())
}

/// Length and hashes of a whole file, streamed.
pub fn hash_file(path: &Path) -> Result<FileDigest, OpsError> {
    let mut file = File::open(path).map_err(OpsError::io("open", path))?;
    let mut hashers = Hashers::new();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hashers.finish()),
            Ok(read) => hashers.update(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(OpsError::io("read", path)(error)),
        }
    }
}

/// fsyncs a directory, so that the entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), OpsError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(OpsError::io("fsync the directory", dir))
}

/// The host's name: the kernel's, else `/etc/hostname`, else `uname -n`,
/// else `unknown`.
pub fn host_identity() -> String {
    let from_file = |path: &str| {
        fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|name| !name.is_empty())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| {
            std::process::Command::new("uname")
                .arg("-n")
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `(year, month, day, hour, minute, second)` in UTC.
fn civil(unix: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (unix / 86_400) as i64;
    let seconds = (unix % 86_400) as u32;
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
    )
}

/// RFC 3339 in UTC: `2026-11-01T12:00:00Z`.
pub fn rfc3339(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A compact UTC stamp for directory names: `20261101T120000Z`.
pub fn compact_stamp(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(compact_stamp(1_700_000_000), "20231114T221320Z");
    }
}
