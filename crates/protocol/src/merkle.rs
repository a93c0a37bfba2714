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
    fn order_matters() {
        assert_ne!(
            list_root(&[item(1), item(2)]),
            list_root(&[item(2), item(1)])
        );
    }
}
