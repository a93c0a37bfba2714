//! The accumulator of ticks: a Merkle mountain range (MMR) over one leaf per
//! tick, genesis included, so that "tick t had these roots" is provable
//! against one 32-byte head commitment with O(log n) hashes.
//!
//! ```text
//! leaf(t)      = H(MmrLeaf, t u64 ‖ input_root ‖ receipt_root ‖ state_root ‖ C(t))
//! node(l, r)   = H(MmrNode, l ‖ r)
//! root(n)      = H(MmrRoot, n u64 ‖ peak_1 ‖ … ‖ peak_k)
//! ```
//!
//! Leaf `t` sits at position `t` (tick 0 is genesis, with the empty list root
//! for its input and receipt roots, the state root after `ea_genesis` and
//! `C(0)`). The `n` leaves form one perfect binary tree per set bit of `n`,
//! highest first (left to right); those trees' roots are the peaks. The root
//! commits to `n` and every peak, so a proof also fixes the head tick `n − 1`.
//! docs/BUNDLES.md §2 is the normative text, with vectors.

use everarcade_protocol::{Domain, Hash, TickRoots, list_root};

use everarcade_store::codec::{DecodeError, Put, Reader};

/// The most peaks an accumulator can have (one per bit of the count).
pub const MMR_PEAKS_MAX: usize = 64;
/// The longest path inside one peak.
pub const MMR_PATH_MAX: usize = 63;

/// The leaf of one tick.
pub fn leaf_hash(roots: &TickRoots) -> Hash {
    let mut hasher = Domain::MmrLeaf.hasher();
    hasher
        .update_u64(roots.tick)
        .update(&roots.input_root.0)
        .update(&roots.receipt_root.0)
        .update(&roots.state_root.0)
        .update(&roots.continuity_root.0);
    hasher.finalize()
}

/// The roots of tick 0: no inputs, no receipts, the state after `ea_genesis`, `C(0)`.
pub fn genesis_roots(genesis_root: &Hash, genesis_state_root: &Hash) -> TickRoots {
    let empty = list_root(&[]);
    TickRoots {
        tick: 0,
        input_root: empty,
        receipt_root: empty,
        state_root: *genesis_state_root,
        continuity_root: *genesis_root,
    }
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Domain::MmrNode.hash_pair(left, right)
}

/// `H(MmrRoot, count u64 ‖ peaks…)`.
pub fn root_of(count: u64, peaks: &[Hash]) -> Hash {
    let mut hasher = Domain::MmrRoot.hasher();
    hasher.update_u64(count);
    for peak in peaks {
        hasher.update(&peak.0);
    }
    hasher.finalize()
}

/// An accumulator as its frontier: the leaf count and the peaks, left to
/// right. O(log n) memory; appending costs amortized two hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mmr {
    count: u64,
    peaks: Vec<Hash>,
}

impl Mmr {
    /// No leaves.
    pub fn new() -> Mmr {
        Mmr::default()
    }

    /// The frontier of `count` leaves; `None` unless there is exactly one
    /// peak per set bit of `count`.
    pub fn from_peaks(count: u64, peaks: Vec<Hash>) -> Option<Mmr> {
        (peaks.len() == count.count_ones() as usize).then_some(Mmr { count, peaks })
    }

    /// Leaves appended.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The peaks, left (highest) to right.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends one leaf.
    pub fn append(&mut self, leaf: Hash) {
        assert!(self.count < u64::MAX, "accumulator full");
        let mut hash = leaf;
        for _ in 0..self.count.trailing_ones() {
            let left = self.peaks.pop().expect("one peak per set bit");
            hash = node(&left, &hash);
        }
        self.peaks.push(hash);
        self.count += 1;
    }

    /// The root over every leaf so far.
    pub fn root(&self) -> Hash {
        root_of(self.count, &self.peaks)
    }
}

/// Where leaf `index` of `count` lies: its peak's position among the peaks
/// (left to right), the peak's height, and the leaf's index inside it.
fn locate(count: u64, index: u64) -> Option<(usize, u32, u64)> {
    if index >= count {
        return None;
    }
    let mut start = 0u64;
    let mut position = 0usize;
    for height in (0..64u32).rev() {
        if count >> height & 1 == 0 {
            continue;
        }
        let size = 1u64 << height;
        if index - start < size {
            return Some((position, height, index - start));
        }
        start += size;
        position += 1;
    }
    None
}

/// That one leaf is in the accumulator of `count` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmrProof {
    /// Leaves in the accumulator (the head tick is `count − 1`).
    pub count: u64,
    /// The leaf's position (its tick).
    pub index: u64,
    /// Siblings from the leaf up to its peak, bottom-up.
    pub path: Vec<Hash>,
    /// Every other peak, left to right.
    pub peaks: Vec<Hash>,
}

impl MmrProof {
    /// The accumulator root that `leaf` and this proof lead to, or `None` if
    /// the proof's shape does not fit `count` and `index`. The leaf is proven
    /// iff the result equals the trusted root.
    pub fn root_for(&self, leaf: &Hash) -> Option<Hash> {
        let (position, height, local) = locate(self.count, self.index)?;
        if self.path.len() != height as usize
            || self.peaks.len() + 1 != self.count.count_ones() as usize
        {
            return None;
        }
        let peak = fold_path(leaf, local, &self.path);
        let mut peaks = Vec::with_capacity(self.peaks.len() + 1);
        peaks.extend_from_slice(&self.peaks[..position]);
        peaks.push(peak);
        peaks.extend_from_slice(&self.peaks[position..]);
        Some(root_of(self.count, &peaks))
    }

    /// `count u64 ‖ index u64 ‖ path_len u8 ‖ path ‖ peak_count u8 ‖ peaks`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        assert!(self.path.len() <= MMR_PATH_MAX && self.peaks.len() < MMR_PEAKS_MAX);
        out.put_u64(self.count);
        out.put_u64(self.index);
        out.put_u8(self.path.len() as u8);
        for hash in &self.path {
            out.put_hash(hash);
        }
        out.put_u8(self.peaks.len() as u8);
        for hash in &self.peaks {
            out.put_hash(hash);
        }
    }

    pub(crate) fn decode(reader: &mut Reader<'_>) -> Result<MmrProof, DecodeError> {
        let count = reader.u64("accumulator leaf count")?;
        let index = reader.u64("accumulator leaf index")?;
        let at = reader.offset();
        let Some((_, height, _)) = locate(count, index) else {
            return Err(reader.error_at(at, format!("leaf {index} is not among {count} leaves")));
        };
        let path_len = reader.u8("path length")? as usize;
        if path_len != height as usize {
            return Err(reader.error_at(
                at,
                format!("path of {path_len} hashes where leaf {index} of {count} needs {height}"),
            ));
        }
        let path = read_hashes(reader, path_len, "path")?;
        let at = reader.offset();
        let peak_count = reader.u8("peak count")? as usize;
        if peak_count + 1 != count.count_ones() as usize {
            return Err(reader.error_at(
                at,
                format!(
                    "{peak_count} other peaks where {count} leaves have {}",
                    count.count_ones()
                ),
            ));
        }
        let peaks = read_hashes(reader, peak_count, "peaks")?;
        Ok(MmrProof {
            count,
            index,
            path,
            peaks,
        })
    }
}

/// Folds a leaf at `local` inside a perfect tree with its bottom-up path.
fn fold_path(leaf: &Hash, local: u64, path: &[Hash]) -> Hash {
    let mut hash = *leaf;
    for (level, sibling) in path.iter().enumerate() {
        hash = if local >> level & 1 == 1 {
            node(sibling, &hash)
        } else {
            node(&hash, sibling)
        };
    }
    hash
}

/// The peak that the last of `count` leaves and its `path` inside its peak
/// fold to; `None` if the path's length does not fit. A bundle uses it to
/// tie its first tick to the frontier it carries.
pub fn last_peak(count: u64, leaf: &Hash, path: &[Hash]) -> Option<Hash> {
    if count == 0 {
        return None;
    }
    let height = count.trailing_zeros();
    let local = (1u64 << height) - 1;
    (path.len() == height as usize).then(|| fold_path(leaf, local, path))
}

/// Whether `leaf` is the last leaf of `frontier`, by its path inside the last peak.
pub fn last_leaf_in_frontier(frontier: &Mmr, leaf: &Hash, path: &[Hash]) -> bool {
    last_peak(frontier.count, leaf, path).is_some_and(|peak| frontier.peaks.last() == Some(&peak))
}

pub(crate) fn read_hashes(
    reader: &mut Reader<'_>,
    count: usize,
    what: &str,
) -> Result<Vec<Hash>, DecodeError> {
    let count = reader.count(count as u64, 32, what)?;
    (0..count).map(|_| reader.hash(what)).collect()
}

/// Builds an accumulator and, for one leaf chosen while appending, its
/// proof, in one pass with O(log n) memory: the leaf need not be known
/// before the pass starts, only before it is appended.
#[derive(Clone, Debug, Default)]
pub struct MmrProver {
    mmr: Mmr,
    target: Option<u64>,
    /// The position among the peaks of the peak holding the target.
    target_peak: Option<usize>,
    path: Vec<Hash>,
}

impl MmrProver {
    /// No leaves.
    pub fn new() -> MmrProver {
        MmrProver::default()
    }

    /// The accumulator so far.
    pub fn mmr(&self) -> &Mmr {
        &self.mmr
    }

    /// Appends one leaf; `target` marks the leaf to prove (a later target
    /// replaces an earlier one).
    pub fn append(&mut self, leaf: Hash, target: bool) {
        assert!(self.mmr.count < u64::MAX, "accumulator full");
        let mut hash = leaf;
        let mut carrying = target;
        if target {
            self.target = Some(self.mmr.count);
            self.target_peak = None;
            self.path.clear();
        }
        for _ in 0..self.mmr.count.trailing_ones() {
            let left = self.mmr.peaks.pop().expect("one peak per set bit");
            if carrying {
                self.path.push(left);
            } else if self.target_peak == Some(self.mmr.peaks.len()) {
                self.path.push(hash);
                self.target_peak = None;
                carrying = true;
            }
            hash = node(&left, &hash);
        }
        self.mmr.peaks.push(hash);
        if carrying {
            self.target_peak = Some(self.mmr.peaks.len() - 1);
        }
        self.mmr.count += 1;
    }

    /// The proof of the target leaf against the accumulator so far.
    pub fn proof(&self) -> Option<MmrProof> {
        let index = self.target?;
        let position = self.target_peak?;
        let mut peaks = self.mmr.peaks.clone();
        peaks.remove(position);
        Some(MmrProof {
            count: self.mmr.count,
            index,
            path: self.path.clone(),
            peaks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u64) -> Hash {
        Domain::MmrLeaf.hash(&i.to_le_bytes())
    }

    /// The root by definition: perfect trees over the leaves, split by the
    /// set bits of the count.
    fn reference_root(leaves: &[Hash]) -> Hash {
        fn tree(leaves: &[Hash]) -> Hash {
            if leaves.len() == 1 {
                return leaves[0];
            }
            let half = leaves.len() / 2;
            node(&tree(&leaves[..half]), &tree(&leaves[half..]))
        }
        let count = leaves.len() as u64;
        let mut peaks = Vec::new();
        let mut start = 0usize;
        for height in (0..64u32).rev() {
            if count >> height & 1 == 1 {
                let size = 1usize << height;
                peaks.push(tree(&leaves[start..start + size]));
                start += size;
            }
        }
        root_of(count, &peaks)
    }

    #[test]
    fn roots_match_the_definition_and_every_leaf_proves() {
        let leaves: Vec<Hash> = (0..70).map(leaf).collect();
        for count in 1..=leaves.len() {
            let mut mmr = Mmr::new();
            for hash in &leaves[..count] {
                mmr.append(*hash);
            }
            let root = reference_root(&leaves[..count]);
            assert_eq!(mmr.root(), root, "count {count}");
            for target in 0..count {
                let mut prover = MmrProver::new();
                for (i, hash) in leaves[..count].iter().enumerate() {
                    prover.append(*hash, i == target);
                }
                let proof = prover.proof().expect("a target");
                assert_eq!(proof.root_for(&leaves[target]), Some(root));
                assert_ne!(proof.root_for(&leaf(999)), Some(root));
                let mut bytes = Vec::new();
                proof.encode_into(&mut bytes);
                let mut reader = Reader::new(&bytes);
                assert_eq!(MmrProof::decode(&mut reader).unwrap(), proof);
                reader.finish("proof").unwrap();
                if count > 1 {
                    let moved = MmrProof {
                        index: (proof.index + 1) % proof.count,
                        ..proof.clone()
                    };
                    assert_ne!(moved.root_for(&leaves[target]), Some(root));
                }
            }
        }
    }

    #[test]
    fn the_last_leaf_is_tied_to_its_frontier() {
        let leaves: Vec<Hash> = (0..40).map(leaf).collect();
        for count in 1..=leaves.len() {
            let mut prover = MmrProver::new();
            for (i, hash) in leaves[..count].iter().enumerate() {
                prover.append(*hash, i + 1 == count);
            }
            let proof = prover.proof().unwrap();
            let frontier = prover.mmr();
            assert!(last_leaf_in_frontier(
                frontier,
                &leaves[count - 1],
                &proof.path
            ));
            assert!(!last_leaf_in_frontier(frontier, &leaf(500), &proof.path));
        }
        assert!(!last_leaf_in_frontier(&Mmr::new(), &leaf(0), &[]));
    }
}
