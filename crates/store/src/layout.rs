//! Every path under the runtime root (docs/OPERATIONS.md, "The world
//! directory"; formats in docs/FORMATS.md), in one place:
//!
//! ```text
//! <runtime-root>/worlds/<world-id>/
//!   world.lock      held by the one process that may write this world
//!   status.json     state, pid, height, roots, admission, addresses
//!   genesis.json    world id, package root, profile, C(0)
//!   package/        the bound copy of the world package
//!   journal/        segment files <index:010>.seg
//!   checkpoints/    <tick:020>.ckpt files
//!   quarantine/     suspect artifacts, moved not deleted
//!   node.log        when started in the background
//! ```
//!
//! Receipts live inside the journal's tick records, so there is no
//! `receipts/` directory.

use std::path::{Path, PathBuf};

use everarcade_protocol::{Tick, WorldId};

/// Suffix of journal segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of checkpoint files.
pub const CHECKPOINT_SUFFIX: &str = ".ckpt";

/// The directory of one world and the names of everything in it.
#[derive(Clone, Debug)]
pub struct WorldDir {
    root: PathBuf,
    dir: PathBuf,
}

impl WorldDir {
    /// The directory of world `id` under `runtime_root`.
    pub fn new(runtime_root: &Path, id: &WorldId) -> WorldDir {
        WorldDir {
            root: runtime_root.to_path_buf(),
            dir: runtime_root.join("worlds").join(id.as_str()),
        }
    }

    /// The runtime root.
    pub fn runtime_root(&self) -> &Path {
        &self.root
    }

    /// `<root>/admin.token`: the node's admin bearer token (0600), one per
    /// runtime root.
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// `<root>/worlds/<id>`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `world.lock`.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("world.lock")
    }

    /// `status.json`.
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// `genesis.json`.
    pub fn genesis(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }

    /// `package/`.
    pub fn package(&self) -> PathBuf {
        self.dir.join("package")
    }

    /// `journal/`.
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// `journal/<index:010>.seg`.
    pub fn segment(&self, index: u64) -> PathBuf {
        self.journal().join(segment_name(index))
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// `checkpoints/<tick:020>.ckpt`.
    pub fn checkpoint(&self, tick: Tick) -> PathBuf {
        self.checkpoints().join(checkpoint_name(tick))
    }

    /// `quarantine/`.
    pub fn quarantine(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// `operator/`: the world's operator keys (see `keys`).
    pub fn operator(&self) -> PathBuf {
        self.dir.join("operator")
    }

    /// `operator/key`: the current operator key's secret seed (0600).
    pub fn operator_key(&self) -> PathBuf {
        self.operator().join("key")
    }

    /// `operator/keys.json`: every operator key with the ticks it signed.
    pub fn operator_keys(&self) -> PathBuf {
        self.operator().join("keys.json")
    }

    /// `lineage.json`: the package transitions (upgrades) after genesis.
    pub fn lineage(&self) -> PathBuf {
        self.dir.join("lineage.json")
    }

    /// `packages/<package root>/`: every package the world has run, kept
    /// so that replay from genesis can use each for its ticks.
    pub fn package_store(&self, root: &str) -> PathBuf {
        self.dir.join("packages").join(root)
    }

    /// `upgrade/`: rollback artifacts of a pending upgrade and the records
    /// of accepted ones.
    pub fn upgrades(&self) -> PathBuf {
        self.dir.join("upgrade")
    }

    /// `runtime.json`: the last runtime version that replay-verified the
    /// whole lineage.
    pub fn runtime_record(&self) -> PathBuf {
        self.dir.join("runtime.json")
    }

    /// `incidents/`: divergence incident records.
    pub fn incidents(&self) -> PathBuf {
        self.dir.join("incidents")
    }

    /// `signatures/`: operator signatures of checkpoints.
    pub fn signatures(&self) -> PathBuf {
        self.dir.join("signatures")
    }

    /// `signatures/<tick>.ckpt.sig`.
    pub fn checkpoint_signature(&self, tick: Tick) -> PathBuf {
        self.signatures()
            .join(format!("{}.sig", checkpoint_name(tick)))
    }

    /// `node.log`.
    pub fn node_log(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// The directories a world needs, in creation order.
    pub fn directories(&self) -> [PathBuf; 5] {
        [
            self.dir.clone(),
            self.package(),
            self.journal(),
            self.checkpoints(),
            self.quarantine(),
        ]
    }
}

/// `<index:010>.seg`.
pub fn segment_name(index: u64) -> String {
    format!("{index:010}{SEGMENT_SUFFIX}")
}

/// The index of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `<tick:020>.ckpt`.
pub fn checkpoint_name(tick: Tick) -> String {
    format!("{tick:020}{CHECKPOINT_SUFFIX}")
}

/// The tick of a checkpoint file name, if it is one.
pub fn parse_checkpoint_name(name: &str) -> Option<Tick> {
    let digits = name.strip_suffix(CHECKPOINT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_refuse_strangers() {
        assert_eq!(segment_name(7), "0000000007.seg");
        assert_eq!(parse_segment_name("0000000007.seg"), Some(7));
        assert_eq!(parse_segment_name("7.seg"), None);
        assert_eq!(parse_segment_name("000000000x.seg"), None);
        assert_eq!(checkpoint_name(1000), "00000000000000001000.ckpt");
        assert_eq!(
            parse_checkpoint_name(&checkpoint_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(
            parse_checkpoint_name(".00000000000000001000.ckpt.tmp"),
            None
        );
        let id = WorldId::new("world-001").unwrap();
        let dir = WorldDir::new(Path::new("/r"), &id);
        assert_eq!(
            dir.segment(1),
            Path::new("/r/worlds/world-001/journal/0000000001.seg")
        );
    }
}
