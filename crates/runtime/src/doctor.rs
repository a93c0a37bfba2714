//! `doctor`: each check as PASS, WARN or FAIL with a one-line remedy, after
//! the manual's troubleshooting table.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::storage::{DIRECTORY_MODE, FILE_MODE};
use everarcade_store::{DiskStorage, JournalReader, LockState, Storage, WorldLock};
use everarcade_world::check_binding;

use crate::JsonWorldArgs;
use crate::exit::{FAILURE, Failure};
use crate::target::Target;

/// Free space below which doctor warns.
const FREE_BYTES_WARN: u64 = 1024 * 1024 * 1024;
/// Free space below which doctor fails.
const FREE_BYTES_FAIL: u64 = 64 * 1024 * 1024;
/// The most permission problems listed.
const PERMISSION_PROBLEMS_LISTED_MAX: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Pass,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    remedy: &'static str,
}

fn check(name: &'static str, level: Level, detail: String, remedy: &'static str) -> Check {
    Check {
        name,
        level,
        detail,
        remedy,
    }
}

/// Runs `doctor`.
pub fn run(args: JsonWorldArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    let checks = if target.dir.path().exists() {
        vec![
            permissions(&target),
            free_disk(&target),
            lock(&target),
            status(&target),
            package(&target),
            journal(&target),
            checkpoints(&target),
            quarantine(&target),
        ]
    } else {
        vec![check(
            "world",
            Level::Fail,
            format!("{} does not exist", target.dir.path().display()),
            "check the runtime root and world id; create the world with `simulate`",
        )]
    };
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Pass);
    if args.json {
        let list: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.name,
                    "result": label(c.level),
                    "detail": c.detail,
                    "remedy": if c.level == Level::Pass { "" } else { c.remedy },
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"world": target.id.as_str(), "result": label(worst), "checks": list})
        );
    } else {
        for c in &checks {
            println!("{:<4}  {:<12} {}", label(c.level), c.name, c.detail);
            if c.level != Level::Pass {
                println!("      {:<12} remedy: {}", "", c.remedy);
            }
        }
    }
    if worst == Level::Fail {
        return Err(Failure::new(
            FAILURE,
            "doctor_failed",
            "at least one check failed; see the remedies above",
        ));
    }
    Ok(())
}

fn label(level: Level) -> &'static str {
    match level {
        Level::Pass => "PASS",
        Level::Warn => "WARN",
        Level::Fail => "FAIL",
    }
}

fn permissions(target: &Target) -> Check {
    let uid = rustix::process::getuid().as_raw();
    let mut problems = Vec::new();
    walk(target.dir.path(), uid, &mut problems);
    let remedy = "chmod 700 on directories and 600 on files under the world; chown them to the operator user";
    if problems.is_empty() {
        return check(
            "permissions",
            Level::Pass,
            format!("directories 0700, files 0600, owned by uid {uid}"),
            remedy,
        );
    }
    let count = problems.len();
    problems.truncate(PERMISSION_PROBLEMS_LISTED_MAX);
    check(
        "permissions",
        Level::Warn,
        format!("{count} problems: {}", problems.join("; ")),
        remedy,
    )
}

fn walk(path: &Path, uid: u32, problems: &mut Vec<String>) {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    let expected = if metadata.is_dir() {
        DIRECTORY_MODE
    } else {
        FILE_MODE
    };
    if mode != expected {
        problems.push(format!(
            "{} is {mode:o}, expected {expected:o}",
            path.display()
        ));
    }
    if metadata.uid() != uid {
        problems.push(format!(
            "{} is owned by uid {}",
            path.display(),
            metadata.uid()
        ));
    }
    if metadata.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            walk(&entry.path(), uid, problems);
        }
    }
}

fn free_disk(target: &Target) -> Check {
    let remedy = "free space or move the runtime root to a larger disk; the journal stops (poisoned) when the disk is full";
    match rustix::fs::statvfs(target.dir.path()) {
        Ok(stat) => {
            let free = stat.f_bavail * stat.f_frsize;
            let level = if free < FREE_BYTES_FAIL {
                Level::Fail
            } else if free < FREE_BYTES_WARN {
                Level::Warn
            } else {
                Level::Pass
            };
            check(
                "disk",
                level,
                format!("{} MiB free", free / (1024 * 1024)),
                remedy,
            )
        }
        Err(error) => check(
            "disk",
            Level::Warn,
            format!("cannot read free space: {error}"),
            remedy,
        ),
    }
}

fn lock(target: &Target) -> Check {
    let remedy = "a stale lock is taken over by the next writer; run `recover` to take it over now";
    match WorldLock::probe(&target.dir.lock()) {
        Ok(LockState::Free) => check(
            "lock",
            Level::Pass,
            "free: no process writes this world".into(),
            remedy,
        ),
        Ok(LockState::Held { pid }) => check(
            "lock",
            Level::Pass,
            format!("held by live pid {pid}"),
            remedy,
        ),
        Ok(LockState::Stale { pid, pid_alive }) => check(
            "lock",
            Level::Warn,
            format!(
                "stale: pid {pid} wrote it and died without releasing it{}",
                if pid_alive {
                    " (that pid now belongs to another process)"
                } else {
                    ""
                }
            ),
            remedy,
        ),
        Err(error) => check(
            "lock",
            Level::Fail,
            error.to_string(),
            "check the permissions of world.lock",
        ),
    }
}

fn status(target: &Target) -> Check {
    let remedy = "status.json is rewritten by the next writer; run `recover` to rewrite it now";
    match read_json::<StatusFile>(&DiskStorage, &target.dir.status()) {
        Ok(status) if status.format != 1 => check(
            "status",
            Level::Fail,
            format!("unknown format {}", status.format),
            remedy,
        ),
        Ok(status)
            if status.state == "running"
                && !matches!(
                    WorldLock::probe(&target.dir.lock()),
                    Ok(LockState::Held { .. })
                ) =>
        {
            check(
                "status",
                Level::Warn,
                format!(
                    "says running (pid {:?}) but no process holds the lock: the last process died",
                    status.pid
                ),
                remedy,
            )
        }
        Ok(status) => check(
            "status",
            Level::Pass,
            format!("{} at tick {}", status.state, status.head_tick),
            remedy,
        ),
        Err(error) => check("status", Level::Fail, error.to_string(), remedy),
    }
}

fn package(target: &Target) -> Check {
    match check_binding(&DiskStorage, &target.dir, &target.package) {
        Ok(()) => check(
            "package",
            Level::Pass,
            format!("{} is the package bound at genesis", target.package.root),
            "",
        ),
        Err(error) => check(
            "package",
            Level::Fail,
            error.to_string(),
            "pass the package the world was created with (its bound copy is in package/)",
        ),
    }
}

fn journal(target: &Target) -> Check {
    let remedy_torn = "run `recover`: it truncates the torn record (keeping a copy in quarantine/)";
    let reader = JournalReader::open(&DiskStorage, &target.dir.journal());
    let mut reader = match reader {
        Ok(reader) => reader,
        Err(error) => {
            return check(
                "journal",
                Level::Fail,
                error.to_string(),
                "restore the world from a backup",
            );
        }
    };
    loop {
        match reader.next() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                return check(
                    "journal",
                    Level::Fail,
                    error.to_string(),
                    "stop; preserve the world directory; restore from a backup (recover does not repair corruption)",
                );
            }
        }
    }
    let end = reader.end().clone();
    match reader.torn_tail() {
        Some(torn) => check(
            "journal",
            Level::Fail,
            torn.to_error().to_string(),
            remedy_torn,
        ),
        None => check(
            "journal",
            Level::Pass,
            format!(
                "{} segments, {} records, every checksum and chain link",
                end.segments, end.records
            ),
            remedy_torn,
        ),
    }
}

fn checkpoints(target: &Target) -> Check {
    let remedy =
        "run `checkpoint`; `recover` moves stray or damaged checkpoint files to quarantine/";
    match list_checkpoints(&DiskStorage, &target.dir) {
        Ok(listing) if !listing.strays.is_empty() => check(
            "checkpoints",
            Level::Warn,
            format!(
                "{} checkpoints and {} stray files",
                listing.checkpoints.len(),
                listing.strays.len()
            ),
            remedy,
        ),
        Ok(listing) if listing.checkpoints.is_empty() => check(
            "checkpoints",
            Level::Warn,
            "none: recovery replays from genesis".into(),
            remedy,
        ),
        Ok(listing) => {
            let ticks: Vec<u64> = listing.checkpoints.iter().map(|(t, _)| *t).collect();
            check(
                "checkpoints",
                Level::Pass,
                format!(
                    "{} present, ticks {ticks:?} (verify checks their contents)",
                    ticks.len()
                ),
                remedy,
            )
        }
        Err(error) => check("checkpoints", Level::Fail, error.to_string(), remedy),
    }
}

fn quarantine(target: &Target) -> Check {
    let count = DiskStorage
        .list(&target.dir.quarantine())
        .map(|names| names.len())
        .unwrap_or(0);
    if count == 0 {
        return check("quarantine", Level::Pass, "empty".into(), "");
    }
    check(
        "quarantine",
        Level::Warn,
        format!("{count} files held in quarantine/"),
        "inspect them, keep them with the incident record; nothing there is used",
    )
}
