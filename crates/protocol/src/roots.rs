//! Per-tick roots, the continuity chain and the deterministic random seed.

use crate::hash::{Domain, Hash};
use crate::world_id::WorldId;
use crate::{PROTOCOL_VERSION, Tick};

/// The four roots a tick commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickRoots {
    /// The tick number.
    pub tick: Tick,
    /// Merkle list root over the tick's envelope hashes.
    pub input_root: Hash,
    /// Merkle list root over the tick's receipt hashes.
    pub receipt_root: Hash,
    /// State root after the tick.
    pub state_root: Hash,
    /// `C(tick)`.
    pub continuity_root: Hash,
}

/// `C(0) = H(Genesis, world_len u8 || world || package_root || profile_hash ||
/// protocol_version u32)`.
pub fn genesis_root(world: &WorldId, package_root: &Hash, profile_hash: &Hash) -> Hash {
    let mut bytes = Vec::with_capacity(1 + 63 + 32 + 32 + 4);
    world.encode_into(&mut bytes);
    bytes.extend_from_slice(&package_root.0);
    bytes.extend_from_slice(&profile_hash.0);
    bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    Domain::Genesis.hash(&bytes)
}

/// `C(t) = H(Continuity, C(t-1) || t u64 || input_root || receipt_root || state_root)`.
pub fn continuity_root(
    previous: &Hash,
    tick: Tick,
    input_root: &Hash,
    receipt_root: &Hash,
    state_root: &Hash,
) -> Hash {
    let mut hasher = Domain::Continuity.hasher();
    hasher
        .update(&previous.0)
        .update_u64(tick)
        .update(&input_root.0)
        .update(&receipt_root.0)
        .update(&state_root.0);
    hasher.finalize()
}

/// What `random_seed` writes during tick `t`: `H(Random, C(t-1) || t u64)`.
/// At genesis (t = 0) `C(t-1)` is taken to be `C(0)`.
pub fn random_seed(previous: &Hash, tick: Tick) -> Hash {
    let mut hasher = Domain::Random.hasher();
    hasher.update(&previous.0).update_u64(tick);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity_binds_every_field() {
        let zero = Hash::ZERO;
        let one = Hash([1; 32]);
        let base = continuity_root(&zero, 1, &zero, &zero, &zero);
        assert_ne!(base, continuity_root(&one, 1, &zero, &zero, &zero));
        assert_ne!(base, continuity_root(&zero, 2, &zero, &zero, &zero));
        assert_ne!(base, continuity_root(&zero, 1, &one, &zero, &zero));
        assert_ne!(base, continuity_root(&zero, 1, &zero, &one, &zero));
        assert_ne!(base, continuity_root(&zero, 1, &zero, &zero, &one));
    }

    #[test]
    fn genesis_binds_world_package_and_profile() {
        let a = WorldId::new("world-001").unwrap();
        let b = WorldId::new("world-002").unwrap();
        let one = Hash([1; 32]);
        let base = genesis_root(&a, &Hash::ZERO, &Hash::ZERO);
        assert_ne!(base, genesis_root(&b, &Hash::ZERO, &Hash::ZERO));
        assert_ne!(base, genesis_root(&a, &one, &Hash::ZERO));
        assert_ne!(base, genesis_root(&a, &Hash::ZERO, &one));
    }
}
