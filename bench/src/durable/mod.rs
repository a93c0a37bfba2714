//! The durable side of a world, measured on the disk the repository lives on:
//! group-committed journal appends ([`journal`]), checkpoint write and load
//! ([`checkpoint`]), replay verification against in-memory execution and
//! recovery of a long journal ([`replay`]).
//!
//! Every file goes under [`Scratch`], a directory in `target/bench-tmp/`
//! (the same file system as the repository), removed when it is dropped.
//!
//! The limits are the raw file system calls the store itself makes
//! (`write` + `fdatasync`, `write` + `fsync`, `read`) over the same number of
//! bytes, and in-memory execution with `everarcade_engine::World`.

pub mod checkpoint;
pub mod fixture;
pub mod journal;
pub mod replay;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The parent of every scratch directory: `target/bench-tmp` of the workspace.
pub fn scratch_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-tmp"))
}

/// A fresh directory under [`scratch_root`], removed (with everything in it)
/// when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `target/bench-tmp/durable-<pid>-<name>`, replacing a leftover one.
    pub fn new(name: &str) -> io::Result<Scratch> {
        let path = scratch_root().join(format!("durable-{}-{name}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(Scratch { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        // Removes `bench-tmp` itself once the last scratch directory is gone.
        let _ = fs::remove_dir(scratch_root());
    }
}

/// The file system with every sync a no-op, used only to *build* the worlds
/// the replay and recovery figures read back, so that a 100,000-tick fixture
/// costs CPU time rather than 200,000 fdatasyncs; [`sync_tree`] makes it
/// durable once at the end. Never used for a timed figure.
pub use everarcade_store::storage::{StagingDisk as UnsyncedDisk, sync_tree};

/// Total bytes of the regular files directly in `dir`.
pub fn directory_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            total += metadata.len();
        }
    }
    Ok(total)
}

/// The value at quantile `q` (0..=1) of `samples`, nearest rank; sorts them.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    assert!(!samples.is_empty(), "a quantile of no samples");
    assert!((0.0..=1.0).contains(&q));
    samples.sort_by(f64::total_cmp);
    let rank = (q * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Megabytes (10^6 bytes) per second.
pub fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Milliseconds with two decimals.
pub fn millis(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

/// Keeps the smaller of two measurements.
pub fn fastest(best: Option<f64>, seconds: f64) -> Option<f64> {
    Some(best.map_or(seconds, |best| best.min(seconds)))
}
