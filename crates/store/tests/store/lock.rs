//! The world lock: one holder at a time, the holder's pid in the file, and
//! a dead holder's pid reported as a stale takeover.

use std::os::unix::fs::PermissionsExt;

use everarcade_store::{LockState, StoreError, WorldLock};

use crate::common::TempDir;

/// A pid no process has: above Linux's largest `pid_max` (2^22).
const DEAD_PID: u32 = 4_000_000_000;

fn lock_file(temp: &TempDir) -> std::path::PathBuf {
    std::fs::create_dir_all(temp.path()).unwrap();
    temp.path().join("world.lock")
}

#[test]
fn a_second_acquire_names_the_holder() {
    let temp = TempDir::new("lock-twice");
    let path = lock_file(&temp);
    let held = WorldLock::acquire(&path).unwrap();
    assert_eq!(held.path(), path);
    assert_eq!(held.stale_pid(), None);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", std::process::id()));
    // flock belongs to the open file description, so this process's second
    // open contends like another process would.
    let error = WorldLock::acquire(&path).err().unwrap();
    match &error {
        StoreError::Locked { pid, path: locked } => {
            assert_eq!(*pid, std::process::id());
            assert_eq!(locked, &path);
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert_eq!(error.code(), "world_locked");
    assert_eq!(
        WorldLock::probe(&path).unwrap(),
        LockState::Held {
            pid: std::process::id()
        }
    );
    drop(held);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "a clean release empties it"
    );
    assert_eq!(WorldLock::probe(&path).unwrap(), LockState::Free);
    let again = WorldLock::acquire(&path).unwrap();
    assert_eq!(again.stale_pid(), None);
}

#[test]
fn a_pid_left_behind_is_a_stale_takeover() {
    let temp = TempDir::new("lock-stale");
    let path = lock_file(&temp);
    std::fs::write(&path, format!("{DEAD_PID}\n")).unwrap();
    assert_eq!(
        WorldLock::probe(&path).unwrap(),
        LockState::Stale {
            pid: DEAD_PID,
            pid_alive: false
        }
    );
    let lock = WorldLock::acquire(&path).unwrap();
    assert_eq!(lock.stale_pid(), Some(DEAD_PID));
    drop(lock);
    // Our own pid written by someone who does not hold the lock: alive.
    std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
    assert_eq!(
        WorldLock::probe(&path).unwrap(),
        LockState::Stale {
            pid: std::process::id(),
            pid_alive: true
        }
    );
    let lock = WorldLock::acquire(&path).unwrap();
    assert_eq!(lock.stale_pid(), Some(std::process::id()));
}

#[test]
fn probing_a_missing_or_unreadable_lock_finds_it_free() {
    let temp = TempDir::new("lock-probe");
    let path = lock_file(&temp);
    assert_eq!(WorldLock::probe(&path).unwrap(), LockState::Free);
    assert!(!path.exists(), "probing a missing lock does not create it");
    std::fs::write(&path, "not a pid").unwrap();
    assert_eq!(WorldLock::probe(&path).unwrap(), LockState::Free);
    let lock = WorldLock::acquire(&path).unwrap();
    assert_eq!(lock.stale_pid(), None);
}

#[test]
fn the_lock_file_is_private() {
    let temp = TempDir::new("lock-mode");
    let path = lock_file(&temp);
    let _lock = WorldLock::acquire(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
