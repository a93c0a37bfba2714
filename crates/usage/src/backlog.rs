//! The on-disk backlog under the world directory:
//!
//! ```text
//! usage/reports/<first:020>-<last:020>.report   every report, 0600, written durably before it is sent
//! usage/acked/<sink>/<first:020>-<last:020>.ack  the sink's acknowledgement (JSON), 0600
//! ```
//!
//! A report is in a sink's backlog while it has no acknowledgement from
//! that sink. Nothing here is deleted: a report file that is truncated,
//! does not decode, is signed by a key that is not the world's, or whose
//! window is not its name's, moves to the world's `quarantine/`, and the
//! window is built again from the journal ([`Backlog::scan`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use everarcade_protocol::{Hash, Tick};
use everarcade_store::keys::KeyHistory;
use everarcade_store::meta::quarantine;
use everarcade_store::storage::write_atomic;
use everarcade_store::{Storage, StoreError, WorldDir};

use crate::report::{ReportError, SignedReport, parse_window_file_name};

/// A report that could not be used as found.
#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A report file is damaged.
    #[error("{}: {source}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        source: ReportError,
    },
}

impl BacklogError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            BacklogError::Store(error) => error.code(),
            BacklogError::Report { source, .. } => source.code(),
        }
    }
}

/// What [`Backlog::scan`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Valid reports by window, oldest first.
    pub windows: Vec<(Tick, Tick)>,
    /// Files moved to quarantine, with why.
    pub quarantined: Vec<(PathBuf, String)>,
    /// Windows not covered by a valid report (damaged or missing files),
    /// oldest first: the caller builds them again from the journal.
    pub gaps: Vec<(Tick, Tick)>,
}

impl Scan {
    /// The last tick a valid report or a gap covers (0 when none).
    pub fn last_tick(&self) -> Tick {
        let reports = self.windows.last().map_or(0, |w| w.1);
        let gaps = self.gaps.last().map_or(0, |w| w.1);
        reports.max(gaps)
    }
}

/// One world's usage backlog.
#[derive(Clone)]
pub struct Backlog {
    storage: Arc<dyn Storage>,
    world: WorldDir,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog").field("dir", &self.dir()).finish()
    }
}

fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    StoreError::io(op, path)
}

impl Backlog {
    /// The backlog of `world` (nothing is created until a report is written).
    pub fn new(storage: Arc<dyn Storage>, world: WorldDir) -> Backlog {
        Backlog { storage, world }
    }

    /// `usage/`.
    pub fn dir(&self) -> PathBuf {
        self.world.path().join("usage")
    }

    /// `usage/reports/`.
    pub fn reports_dir(&self) -> PathBuf {
        self.dir().join("reports")
    }

    /// `usage/acked/<sink>/`.
    pub fn acked_dir(&self, sink: &str) -> PathBuf {
        self.dir().join("acked").join(sink)
    }

    /// The path of the report named `name`.
    pub fn report_path(&self, name: &str) -> PathBuf {
        self.reports_dir().join(name)
    }

    /// Writes a report durably (temporary file, fsync, rename, fsync of
    /// the directory; 0600). Only after this returns may it be sent.
    pub fn write(&self, report: &SignedReport) -> Result<PathBuf, StoreError> {
        let dir = self.reports_dir();
        self.storage
            .create_dir_all(&dir)
            .map_err(io("create", &dir))?;
        let path = dir.join(report.report.file_name());
        write_atomic(&*self.storage, &path, &report.bytes).map_err(io("write", &path))?;
        Ok(path)
    }

    /// Reads and checks the report named `name`: it decodes, its signature
    /// verifies under a key of `history` current at its last tick, and its
    /// window is its name's.
    pub fn read(&self, name: &str, history: &KeyHistory) -> Result<SignedReport, BacklogError> {
        let path = self.report_path(name);
        let bytes = self.storage.read(&path).map_err(io("read", &path))?;
        let damaged = |source: ReportError| BacklogError::Report {
            path: path.clone(),
            source,
        };
        let report = SignedReport::decode(&bytes).map_err(damaged)?;
        report
            .check_history(history)
            .map_err(|error| damaged(ReportError::Signature(error)))?;
        let window = (report.report.first_tick, report.report.last_tick);
        if parse_window_file_name(name) != Some(window) {
            return Err(damaged(ReportError::Malformed {
                what: format!(
                    "it holds ticks {}..={}, not its name's window",
                    window.0, window.1
                ),
                offset: 0,
            }));
        }
        Ok(report)
    }

    /// Moves a damaged or stray file of the backlog to quarantine.
    pub fn quarantine(&self, path: &std::path::Path) -> Result<PathBuf, StoreError> {
        quarantine(&*self.storage, &self.world, path)
    }

    /// Checks every report file; moves what does not check out (and stray
    /// temporary files) to quarantine; returns the valid windows and the
    /// windows from tick 1 on that no valid report covers.
    pub fn scan(&self, history: &KeyHistory) -> Result<Scan, StoreError> {
        let dir = self.reports_dir();
        let mut scan = Scan::default();
        if !self.storage.exists(&dir) {
            return Ok(scan);
        }
        let names = self.storage.list(&dir).map_err(io("list", &dir))?;
        let mut claimed: BTreeSet<(Tick, Tick)> = BTreeSet::new();
        for name in names {
            let path = dir.join(&name);
            let window = parse_window_file_name(&name);
            let why = match (window, self.read(&name, history)) {
                (Some(window), Ok(_)) => {
                    scan.windows.push(window);
                    continue;
                }
                (Some(window), Err(error)) => {
                    claimed.insert(window);
                    error.to_string()
                }
                (None, _) => "not a report file name".to_string(),
            };
            let moved = self.quarantine(&path)?;
            scan.quarantined.push((moved, why));
        }
        scan.windows.sort_unstable();
        let overlaps = |a: &(Tick, Tick), b: &(Tick, Tick)| a.0 <= b.1 && b.0 <= a.1;
        // A damaged file's window is rebuilt as it was named, unless a
        // valid report (or another damaged one) already covers part of it.
        let mut covered = scan.windows.clone();
        for window in claimed {
            if !covered.iter().any(|valid| overlaps(valid, &window)) {
                covered.push(window);
                scan.gaps.push(window);
            }
        }
        covered.sort_unstable();
        let mut next = 1;
        for (first, last) in &covered {
            if *first > next {
                scan.gaps.push((next, first - 1));
            }
            next = next.max(last + 1);
        }
        scan.gaps.sort_unstable();
        Ok(scan)
    }

    /// Whether `sink` acknowledged the report named `name`.
    pub fn acked(&self, sink: &str, name: &str) -> bool {
        self.storage
            .exists(&self.acked_dir(sink).join(ack_name(name)))
    }

    /// Records durably that `sink` acknowledged the report `name` (digest
    /// `digest`) with `answer`.
    pub fn ack(
        &self,
        sink: &str,
        name: &str,
        digest: &Hash,
        answer: &str,
    ) -> Result<(), StoreError> {
        let dir = self.acked_dir(sink);
        self.storage
            .create_dir_all(&dir)
            .map_err(io("create", &dir))?;
        let path = dir.join(ack_name(name));
        let record = serde_json::json!({
            "format": 1,
            "report": name,
            "digest": digest.to_hex(),
            "sink": sink,
            "answer": answer,
        });
        let mut bytes = serde_json::to_vec(&record).expect("JSON values serialize");
        bytes.push(b'\n');
        write_atomic(&*self.storage, &path, &bytes).map_err(io("write", &path))
    }

    /// The valid report names `sink` has not acknowledged, oldest first.
    pub fn pending(&self, sink: &str, windows: &[(Tick, Tick)]) -> Vec<String> {
        windows
            .iter()
            .map(|(first, last)| crate::report::window_file_name(*first, *last))
            .filter(|name| !self.acked(sink, name))
            .collect()
    }
}

fn ack_name(report: &str) -> String {
    format!("{}.ack", report.trim_end_matches(".report"))
}
