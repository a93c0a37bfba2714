//! Progress bars for the long commands, on stderr, drawn only on a terminal:
//! off one (stderr not a TTY), or with `--json`, a bar is hidden and writes
//! nothing at all.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use everarcade_store::WorldDir;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a visible bar is redrawn, at most, per second.
const REDRAWS_PER_SECOND_MAX: u8 = 10;
/// How often a bar whose position does not move (a restore's phase) is
/// redrawn, so its elapsed time keeps counting.
const TICK_INTERVAL: Duration = Duration::from_millis(250);

/// Whether bars are drawn: on a terminal, without `--json`.
pub fn visible(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

fn bar(visible: bool, total: u64, template: &str) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND_MAX)
    } else {
        ProgressDrawTarget::hidden()
    };
    let style = ProgressStyle::with_template(template)
        .expect("the bar templates are valid")
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(total), target).with_style(style)
}

/// A bar over `total` counted things (`unit`: `ticks`, …): position, total,
/// rate and ETA.
pub fn counter(visible: bool, label: &str, total: u64, unit: &str) -> ProgressBar {
    let template =
        format!("{label} [{{bar:24}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}");
    bar(visible, total, &template)
}

/// A counter without a total, for work whose end is not known before it is
/// reached: the position (`unit` reached) and the rate.
pub fn open_ended(visible: bool, label: &str, unit: &str) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND_MAX)
    } else {
        ProgressDrawTarget::hidden()
    };
    let template = format!("{label} {{spinner}} {unit} {{pos}} ({{per_sec}}, {{elapsed}})");
    let style = ProgressStyle::with_template(&template).expect("the bar templates are valid");
    ProgressBar::with_draw_target(None, target).with_style(style)
}

/// A bar over the journal's bytes (the ticks to come are not known before
/// it is read): position, total, rate, ETA, and the tick reached in its
/// message.
pub fn journal(visible: bool, label: &str, journal: &JournalBytes) -> ProgressBar {
    let template = format!(
        "{label} [{{bar:24}}] {{bytes}}/{{total_bytes}} of journal ({{bytes_per_sec}}, ETA {{eta}}) {{msg}}"
    );
    bar(visible, journal.total(), &template)
}

/// A bar over a command's phases (its position is the number of the phase
/// running), with the current one and the time spent.
pub fn phases(visible: bool, label: &str, total: u64) -> ProgressBar {
    let template = format!("{label} [{{bar:24}}] phase {{pos}}/{{len}} ({{elapsed}}) {{msg}}");
    let bar = bar(visible, total, &template);
    bar.enable_steady_tick(TICK_INTERVAL);
    bar
}

/// The journal's segment files and their sizes, so that a record's place
/// (segment, end offset) is a position in bytes through the whole journal.
pub struct JournalBytes {
    /// Bytes of the segments before each segment file.
    before: BTreeMap<PathBuf, u64>,
    total: u64,
}

impl JournalBytes {
    /// The segments of `dir` as they are now (a live journal may grow past
    /// the total; positions are then capped at it).
    pub fn measure(dir: &WorldDir) -> JournalBytes {
        let mut before = BTreeMap::new();
        let mut total = 0;
        for index in 1.. {
            let path = dir.segment(index);
            let Ok(metadata) = std::fs::metadata(&path) else {
                break;
            };
            before.insert(path, total);
            total += metadata.len();
        }
        JournalBytes { before, total }
    }

    /// Bytes of all segments.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How far through the journal a record ending `end_bytes` into
    /// `segment` is.
    pub fn position(&self, segment: &Path, end_bytes: u64) -> u64 {
        let before = self.before.get(segment).copied().unwrap_or(self.total);
        (before + end_bytes).min(self.total)
    }
}
