//! Operator key procedures: rotation of an offline world, the history with
//! its tick ranges, and the history check backups and restores rely on.

use std::sync::Arc;

use everarcade_protocol::Tick;
use everarcade_store::keys::{
    KEYS_FORMAT, KeyEntry, KeyError, KeyHistory, parse_public_key, read_history, verify_history,
};
use everarcade_store::{DiskStorage, JournalConfig, WorldDir};
use everarcade_world::{Entry, FrontDoor, Keys, Opened, WorldConfig};

use crate::error::OpsError;

/// Checks a key history as `verify` does (every rotation endorsed by the
/// key before it) and more: its format, every public key, and tick ranges
/// that follow each other (`from_tick` = the previous `to_tick` + 1, so two
/// rotations at one height leave a key with an empty range; only the last
/// key is open).
pub fn check_history(history: &KeyHistory) -> Result<(), KeyError> {
    if history.format != KEYS_FORMAT {
        return Err(KeyError::Malformed {
            what: "key history format",
        });
    }
    let Some(last) = history.keys.last() else {
        return Err(KeyError::Malformed {
            what: "key history without a key",
        });
    };
    if last.to_tick.is_some() {
        return Err(KeyError::Malformed {
            what: "key history whose last key is closed",
        });
    }
    for entry in &history.keys {
        parse_public_key(&entry.public_key)?;
    }
    let follows = history.keys.windows(2).all(|pair| {
        pair[0]
            .to_tick
            .is_some_and(|to| to.checked_add(1) == Some(pair[1].from_tick))
    });
    if !follows {
        return Err(KeyError::Malformed {
            what: "key history tick ranges",
        });
    }
    verify_history(history)
}

/// Whether `entry` (at `index` in its history) may sign for a world whose
/// head is `head`: within its range, where a key created at height `h`
/// (`from_tick = h + 1` after a rotation) may sign for `h` too, and the
/// first key for anything before it.
pub fn signs_for(entry: &KeyEntry, index: usize, head: Tick) -> bool {
    let from_ok = index == 0 || entry.from_tick <= head.saturating_add(1);
    let to_ok = entry.to_tick.is_none_or(|to| head <= to);
    from_ok && to_ok
}

/// What `keys rotate` did.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The world's height: the retired key signed up to it.
    pub height: Tick,
    /// The retired key, hex (`None` when the world had no key and one was
    /// created instead).
    pub retired: Option<String>,
    /// The new current key.
    pub current: KeyEntry,
    /// The whole history after the rotation.
    pub history: KeyHistory,
}

/// Rotates the operator key of an offline world: enters it through the
/// front door (the lock: a running node holds it) for its height, and retires the
/// current key at that height. A world without a key gets its first one.
pub fn rotate_offline(door: &FrontDoor) -> Result<Rotation, OpsError> {
    let config = WorldConfig {
        checkpoint_interval_ticks: 0,
        checkpoints_retained: usize::MAX,
        journal: JournalConfig::default(),
    };
    let entry = Entry {
        keys: Keys::LoadOrCreate,
        ..Entry::existing(config)
    };
    // The lock is held until the rotation is written.
    let Opened {
        world,
        lock: _lock,
        keys,
        key_created: created,
        ..
    } = door.open(entry)?;
    let height = world.roots().tick;
    world.close()?;
    let keys = keys.expect("the entry loads or creates the key");
    let mut keys = Arc::into_inner(keys).expect("the closed world no longer holds the key");
    if created {
        let current = keys
            .history()
            .keys
            .last()
            .cloned()
            .expect("a created history holds its key");
        return Ok(Rotation {
            height,
            retired: None,
            current,
            history: keys.history().clone(),
        });
    }
    let retired = keys.public_key_hex();
    let current = keys.rotate(&*door.storage, &door.dir, height)?;
    Ok(Rotation {
        height,
        retired: Some(retired),
        current,
        history: keys.history().clone(),
    })
}

/// A world's key history and whether it checks out.
#[derive(Clone, Debug)]
pub struct KeyListing {
    /// `operator/keys.json`.
    pub history: KeyHistory,
    /// [`check_history`]'s verdict.
    pub check: Result<(), KeyError>,
}

/// The world's key history, if it has one, and its check.
pub fn list_keys(dir: &WorldDir) -> Result<Option<KeyListing>, OpsError> {
    Ok(read_history(&DiskStorage, dir)?.map(|history| KeyListing {
        check: check_history(&history),
        history,
    }))
}
