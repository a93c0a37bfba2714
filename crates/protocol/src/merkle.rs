//! The Merkle list root used for a tick's input root and receipt root.
//!
//! The shape is RFC 6962's: the root of `n` item hashes is
//! - `H(MerkleEmpty, "")` for `n = 0`,
//! - the item hash itself for `n = 1`,
//! - `H(MerkleNode, root(items[..k]) || root(items[k..]))` for `n > 1`, where `k`
//!   is the largest power of two strictly less than `n`.
//!
//! Items are already domain-separated hashes (envelope or receipt hashes), and
//! inner nodes use their own domain, so a leaf can never pass for a node.

use crate::hash::{Domain, Hash};

/// The Merkle root of an ordered list of item hashes.
pub fn list_root(items: &[Hash]) -> Hash {
    match items.len() {
        0 => Domain::MerkleEmpty.hash(b""),
        1 => items[0],
        n => {
            let split = split_point(n);
            let left = list_root(&items[..split]);
            let right = list_root(&items[split..]);
            Domain::MerkleNode.hash_pair(&left, &right)
        }
    }
}

/// The longest membership path a list of at most `u64::MAX` items can have.
pub const LIST_PROOF_DEPTH_MAX: usize = 64;

/// The membership path of `items[index]` in [`list_root`]`(items)`: the
/// sibling subtree roots from the item up to the root (RFC 6962's audit
/// path, with this crate's domains). `None` if `index` is out of range.
pub fn list_proof(items: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= items.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut items, mut index) = (items, index);
    // Top-down, then reversed: the verifier folds bottom-up.
    while items.len() > 1 {
        let split = split_point(items.len());
        if index < split {
            path.push(list_root(&items[split..]));
            items = &items[..split];
        } else {
            path.push(list_root(&items[..split]));
            items = &items[split..];
            index -= split;
        }
    }
    path.reverse();
    Some(path)
}

/// The list root that `item` at `index` of a list of `count` items and its
/// membership `path` (from [`list_proof`]) lead to; `None` if the shape is
/// impossible (`index >= count`, or a path of the wrong length). The item
/// is proven a member iff the result equals the trusted root.
pub fn list_root_from_proof(item: &Hash, index: u64, count: u64, path: &[Hash]) -> Option<Hash> {
    if index >= count || path.len() > LIST_PROOF_DEPTH_MAX {
        return None;
    }
    // The subtree sizes on the way down decide, at each level, whether the
    // sibling is on the left or the right; walk down first, fold up after.
    let mut sides = Vec::with_capacity(path.len());
    let (mut size, mut index) = (count, index);
    while size > 1 {
        let split = split_point_u64(size);
        if index < split {
            sides.push(false);
            size = split;
        } else {
            sides.push(true);
            index -= split;
            size -= split;
        }
    }
    if sides.len() != path.len() {
        return None;
    }
    let mut hash = *item;
    for (sibling, sibling_is_left) in path.iter().zip(sides.iter().rev()) {
        hash = if *sibling_is_left {
            Domain::MerkleNode.hash_pair(sibling, &hash)
        } else {
            Domain::MerkleNode.hash_pair(&hash, sibling)
        };
    }
    Some(hash)
}

fn split_point_u64(n: u64) -> u64 {
    assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: u8) -> Hash {
        Domain::Envelope.hash(&[i])
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
    }

    #[test]
    fn small_lists_by_hand() {
        let (a, b, c) = (item(1), item(2), item(3));
        assert_eq!(list_root(&[]), Domain::MerkleEmpty.hash(b""));
        assert_eq!(list_root(&[a]), a);
        let ab = Domain::MerkleNode.hash_pair(&a, &b);
        assert_eq!(list_root(&[a, b]), ab);
        assert_eq!(list_root(&[a, b, c]), Domain::MerkleNode.hash_pair(&ab, &c));
    }

    #[test]
    fn every_membership_proof_verifies_and_no_other() {
        for count in 1..=33usize {
            let items: Vec<Hash> = (0..count).map(|i| item(i as u8)).collect();
            let root = list_root(&items);
            for index in 0..count {
                let path = list_proof(&items, index).unwrap();
                let n = count as u64;
                let at = index as u64;
                assert_eq!(
                    list_root_from_proof(&items[index], at, n, &path),
                    Some(root)
                );
                let other = item(200);
                assert_ne!(list_root_from_proof(&other, at, n, &path), Some(root));
                if count > 1 {
                    let moved = (at + 1) % n;
                    assert_ne!(
                        list_root_from_proof(&items[index], moved, n, &path),
                        Some(root)
                    );
                }
                assert_eq!(list_root_from_proof(&items[index], n, n, &path), None);
            }
            assert!(list_proof(&items, count).is_none());
        }
        assert_eq!(list_root_from_proof(&item(0), 0, 2, &[]), None);
    }

    #[test]
    fn order_matters() {
        assert_ne!(
            list_root(&[item(1), item(2)]),
            list_root(&[item(2), item(1)])
        );
    }
}
