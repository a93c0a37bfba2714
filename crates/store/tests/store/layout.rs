//! The runtime root on the real disk: every directory the store creates is
//! 0700 and every file 0600, whatever the umask lets through.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use everarcade_store::checkpoint::write_checkpoint;
use everarcade_store::meta::write_json;
use everarcade_store::storage::write_atomic;
use everarcade_store::{DiskStorage, JournalConfig, Storage, WorldDir, WorldLock};

use crate::checkpoints::sample_checkpoint;
use crate::common::{History, TempDir, world, write_history};
use crate::meta::sample_status;

#[track_caller]
fn check_mode(path: &Path, expected: u32) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, expected, "{:o} on {}", mode, path.display());
}

#[test]
fn directories_are_0700_and_files_0600() {
    let temp = TempDir::new("layout");
    let world_dir = WorldDir::new(&temp.path().join("runtime"), &world());
    for dir in world_dir.directories() {
        DiskStorage.create_dir_all(&dir).unwrap();
    }
    let history = History::new(&world(), 2, 1);
    write_history(
        Arc::new(DiskStorage),
        &world_dir.journal(),
        &history,
        JournalConfig::default(),
    );
    write_checkpoint(&DiskStorage, &world_dir, 42, &sample_checkpoint().bytes).unwrap();
    write_json(&DiskStorage, &world_dir.status(), &sample_status()).unwrap();
    write_atomic(&DiskStorage, &world_dir.genesis(), b"{}\n").unwrap();
    let _lock = WorldLock::acquire(&world_dir.lock()).unwrap();

    let mut directories = vec![
        temp.path().join("runtime"),
        temp.path().join("runtime/worlds"),
    ];
    directories.extend(world_dir.directories());
    for dir in &directories {
        check_mode(dir, 0o700);
    }
    for file in [
        world_dir.segment(1),
        world_dir.checkpoint(42),
        world_dir.status(),
        world_dir.genesis(),
        world_dir.lock(),
    ] {
        check_mode(&file, 0o600);
    }
    assert_eq!(
        world_dir.segment(1),
        temp.path()
            .join("runtime/worlds/world-001/journal/0000000001.seg")
    );
}
