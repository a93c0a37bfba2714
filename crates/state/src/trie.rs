//! The compressed binary trie over key hashes that computes the state root.
//!
//! Only branching points are stored (a crit-bit tree): an inner node records
//! the bit at which its keys split, so the tree has exactly `n - 1` inner
//! nodes for `n` keys and its shape depends only on the set of key hashes.
//! Hashing still follows the uncompressed rule of the crate documentation:
//! between a node and its parent, every skipped level is hashed against
//! `EMPTY` (see [`extend`]).
//!
//! Updates only restructure the tree and mark the inner nodes on the touched
//! path stale; [`Trie::root_hash`] rehashes stale nodes once, bottom-up, so a
//! batch of changes costs `O(changed × depth)` hashes.

use std::sync::LazyLock;

use everarcade_protocol::{Domain, Hash};

use crate::proof::{Proof, Terminal};

/// Number of bits in a key hash; also the maximum depth of a trie leaf.
pub(crate) const KEY_HASH_BITS: u16 = 256;

/// `H(StateEmpty, "")`, the hash of an empty subtree.
static EMPTY: LazyLock<Hash> = LazyLock::new(|| Domain::StateEmpty.hash(b""));

/// The hash of an empty subtree.
pub(crate) fn empty_hash() -> Hash {
    *EMPTY
}

/// The leaf hash of a key hash and value hash.
pub(crate) fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    Domain::StateLeaf.hash_pair(key_hash, value_hash)
}

/// Bit `index` of `hash`, most significant bit of byte 0 first (0 or 1).
pub(crate) fn bit(hash: &Hash, index: u16) -> usize {
    let index = usize::from(index);
    usize::from((hash.0[index / 8] >> (7 - index % 8)) & 1)
}

/// The first bit at which `a` and `b` differ, or `None` if they are equal.
fn first_difference(a: &Hash, b: &Hash) -> Option<u16> {
    let (byte, (x, y)) =
        a.0.iter()
            .zip(b.0.iter())
            .enumerate()
            .find(|(_, (x, y))| x != y)?;
    // byte < 32 and leading_zeros < 8, so the sum is below 256.
    Some(byte as u16 * 8 + (x ^ y).leading_zeros() as u16)
}

/// One parent step of the hashing rule: the subtree hash at depth `depth`
/// whose only non-empty child, on side `side_bit`, hashes to `child`.
pub(crate) fn parent_hash(child: &Hash, sibling: &Hash, side_bit: usize) -> Hash {
    if side_bit == 0 {
        Domain::StateNode.hash_pair(child, sibling)
    } else {
        Domain::StateNode.hash_pair(sibling, child)
    }
}

/// Lifts `hash`, the subtree hash at depth `from` of a set of two or more keys
/// sharing the bits of `prefix` before `from`, to the subtree hash at depth
/// `to <= from`: each skipped level pairs it with `EMPTY`.
fn extend(mut hash: Hash, prefix: &Hash, from: u16, to: u16) -> Hash {
    let empty = empty_hash();
    for depth in (to..from).rev() {
        hash = parent_hash(&hash, &empty, bit(prefix, depth));
    }
    hash
}

/// Index of a node in the arena.
type NodeId = u32;

/// Marks an inner node's lifted-hash memo as unusable.
const NO_MEMO: u16 = u16::MAX;

#[derive(Clone, Debug)]
struct Leaf {
    key_hash: Hash,
    value_hash: Hash,
    /// `leaf_hash(key_hash, value_hash)`.
    hash: Hash,
}

#[derive(Clone, Debug)]
struct Inner {
    /// The bit at which the keys below split; every key below shares the bits
    /// of `prefix` before it.
    bit: u16,
    /// Left (bit 0) and right (bit 1) subtrees; both hold at least one key.
    children: [NodeId; 2],
    /// The key hash of some key below (only bits `< bit` are meaningful).
    prefix: Hash,
    /// The subtree hash at depth `bit`; valid only when `fresh`.
    hash: Hash,
    /// Whether `hash` (and the memo) reflect the current subtree.
    fresh: bool,
    /// Memo: the subtree hash lifted to depth `memo_depth` (or `NO_MEMO`).
    memo_depth: u16,
    memo_hash: Hash,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Leaf),
    Inner(Inner),
    /// A slot on the free list.
    Free,
}

/// Where a subtree hangs: at the root, or as child `side` of an inner node.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Child(NodeId, usize),
}

/// The crit-bit trie over key hashes, with cached subtree hashes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    root: Option<NodeId>,
    /// Scratch path for `remove`, kept to avoid an allocation per call.
    path: Vec<(NodeId, usize)>,
}

impl Trie {
    /// Inserts the key or replaces its value hash.
    pub(crate) fn upsert(&mut self, key_hash: &Hash, value_hash: &Hash) {
        let Some(root) = self.root else {
            self.root = Some(self.alloc_leaf(key_hash, value_hash));
            return;
        };
        let nearest = self.nearest_leaf(root, key_hash);
        let split = first_difference(&nearest.key_hash, key_hash);
        if split.is_none() && nearest.value_hash == *value_hash {
            return;
        }
        // Walk down again, staling every node above the change, to the first
        // node that does not split above `split` (the leaf itself if equal).
        let limit = split.unwrap_or(KEY_HASH_BITS);
        let (mut link, mut id) = (Link::Root, root);
        while let Node::Inner(inner) = &mut self.nodes[id as usize] {
            if inner.bit >= limit {
                break;
            }
            inner.fresh = false;
            let side = bit(key_hash, inner.bit);
            link = Link::Child(id, side);
            id = inner.children[side];
        }
        match split {
            None => {
                let Node::Leaf(leaf) = &mut self.nodes[id as usize] else {
                    unreachable!("a key hash equal to a leaf's leads to that leaf");
                };
                leaf.value_hash = *value_hash;
                leaf.hash = leaf_hash(key_hash, value_hash);
            }
            Some(split) => {
                let leaf = self.alloc_leaf(key_hash, value_hash);
                let mut children = [id, id];
                children[bit(key_hash, split)] = leaf;
                let inner = self.alloc(Node::Inner(Inner {
                    bit: split,
                    children,
                    prefix: *key_hash,
                    hash: Hash::ZERO,
                    fresh: false,
                    memo_depth: NO_MEMO,
                    memo_hash: Hash::ZERO,
                }));
                self.set_link(link, inner);
            }
        }
    }

    /// Removes the key if present; its parent collapses into the sibling.
    pub(crate) fn remove(&mut self, key_hash: &Hash) {
        let Some(root) = self.root else { return };
        self.path.clear();
        let mut id = root;
        while let Node::Inner(inner) = &self.nodes[id as usize] {
            let side = bit(key_hash, inner.bit);
            self.path.push((id, side));
            id = inner.children[side];
        }
        if self.leaf(id).key_hash != *key_hash {
            return;
        }
        self.release(id);
        let Some((parent, side)) = self.path.pop() else {
            self.root = None;
            return;
        };
        let sibling = self.inner_mut(parent).children[1 - side];
        self.release(parent);
        let link = match self.path.last() {
            None => Link::Root,
            Some(&(grandparent, side)) => Link::Child(grandparent, side),
        };
        self.set_link(link, sibling);
        for index in 0..self.path.len() {
            let (ancestor, _) = self.path[index];
            self.inner_mut(ancestor).fresh = false;
        }
    }

    /// Rehashes stale nodes and returns the root: `S(0, all keys)`.
    pub(crate) fn root_hash(&mut self) -> Hash {
        match self.root {
            None => empty_hash(),
            Some(root) => {
                self.refresh(root);
                self.hash_at(root, 0)
            }
        }
    }

    /// The proof for `key_hash`. The trie must be fresh (`root_hash` called
    /// since the last change).
    pub(crate) fn prove(&mut self, key_hash: &Hash) -> Proof {
        let mut siblings = Vec::new();
        let Some(mut id) = self.root else {
            return Proof {
                siblings,
                terminal: Terminal::Empty,
            };
        };
        let mut depth = 0;
        loop {
            let (split, children, prefix, hash) = match &self.nodes[id as usize] {
                Node::Inner(inner) => {
                    debug_assert!(inner.fresh, "prove needs a fresh trie");
                    (inner.bit, inner.children, inner.prefix, inner.hash)
                }
                Node::Leaf(leaf) => {
                    let terminal = Terminal::Leaf {
                        key_hash: leaf.key_hash,
                        value_hash: leaf.value_hash,
                    };
                    return Proof { siblings, terminal };
                }
                Node::Free => unreachable!("a free slot is never linked"),
            };
            for level in depth..split {
                if bit(key_hash, level) == bit(&prefix, level) {
                    siblings.push(empty_hash());
                } else {
                    // The key leaves this subtree's path: its side is empty.
                    siblings.push(extend(hash, &prefix, split, level + 1));
                    return Proof {
                        siblings,
                        terminal: Terminal::Empty,
                    };
                }
            }
            let side = bit(key_hash, split);
            siblings.push(self.hash_at(children[1 - side], split + 1));
            id = children[side];
            depth = split + 1;
        }
    }

    /// Follows `key_hash`'s bits at each branching point down to a leaf.
    fn nearest_leaf(&self, root: NodeId, key_hash: &Hash) -> &Leaf {
        let mut id = root;
        while let Node::Inner(inner) = &self.nodes[id as usize] {
            id = inner.children[bit(key_hash, inner.bit)];
        }
        self.leaf(id)
    }

    /// Recomputes the hash of `id` and every stale node below it.
    fn refresh(&mut self, id: NodeId) {
        let (split, children) = match &self.nodes[id as usize] {
            Node::Inner(inner) if !inner.fresh => (inner.bit, inner.children),
            _ => return,
        };
        let mut halves = [Hash::ZERO; 2];
        for (half, child) in halves.iter_mut().zip(children) {
            self.refresh(child);
            *half = self.hash_at(child, split + 1);
        }
        let inner = self.inner_mut(id);
        inner.hash = Domain::StateNode.hash_pair(&halves[0], &halves[1]);
        inner.fresh = true;
        inner.memo_depth = NO_MEMO;
    }

    /// The hash of fresh subtree `id` seen from depth `depth`, memoized.
    fn hash_at(&mut self, id: NodeId, depth: u16) -> Hash {
        match &mut self.nodes[id as usize] {
            Node::Leaf(leaf) => leaf.hash,
            Node::Inner(inner) => {
                if inner.memo_depth != depth {
                    inner.memo_hash = extend(inner.hash, &inner.prefix, inner.bit, depth);
                    inner.memo_depth = depth;
                }
                inner.memo_hash
            }
            Node::Free => unreachable!("a free slot is never linked"),
        }
    }

    fn set_link(&mut self, link: Link, id: NodeId) {
        match link {
            Link::Root => self.root = Some(id),
            Link::Child(parent, side) => self.inner_mut(parent).children[side] = id,
        }
    }

    fn alloc_leaf(&mut self, key_hash: &Hash, value_hash: &Hash) -> NodeId {
        self.alloc(Node::Leaf(Leaf {
            key_hash: *key_hash,
            value_hash: *value_hash,
            hash: leaf_hash(key_hash, value_hash),
        }))
    }

    fn alloc(&mut self, node: Node) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = node;
            return id;
        }
        let id = NodeId::try_from(self.nodes.len()).expect("state trie exceeds 2^32 nodes");
        self.nodes.push(node);
        id
    }

    fn release(&mut self, id: NodeId) {
        self.nodes[id as usize] = Node::Free;
        self.free.push(id);
    }

    fn leaf(&self, id: NodeId) -> &Leaf {
        match &self.nodes[id as usize] {
            Node::Leaf(leaf) => leaf,
            _ => unreachable!("trie invariant: node {id} is a leaf"),
        }
    }

    fn inner_mut(&mut self, id: NodeId) -> &mut Inner {
        match &mut self.nodes[id as usize] {
            Node::Inner(inner) => inner,
            _ => unreachable!("trie invariant: node {id} is an inner node"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hashing rule applied naively to a list of (key hash, value hash).
    fn reference(leaves: &[(Hash, Hash)], depth: u16) -> Hash {
        match leaves {
            [] => empty_hash(),
            [(key, value)] => leaf_hash(key, value),
            _ => {
                let (left, right): (Vec<_>, Vec<_>) =
                    leaves.iter().partition(|(key, _)| bit(key, depth) == 0);
                let left = reference(&left, depth + 1);
                let right = reference(&right, depth + 1);
                Domain::StateNode.hash_pair(&left, &right)
            }
        }
    }

    impl Trie {
        /// Checks the structural invariants and returns the leaves below `id`.
        fn check(&self, id: NodeId, depth: u16, out: &mut Vec<(Hash, Hash)>) {
            match &self.nodes[id as usize] {
                Node::Leaf(leaf) => {
                    assert_eq!(leaf.hash, leaf_hash(&leaf.key_hash, &leaf.value_hash));
                    out.push((leaf.key_hash, leaf.value_hash));
                }
                Node::Inner(inner) => {
                    assert!(inner.bit >= depth && inner.bit < KEY_HASH_BITS);
                    assert!(inner.fresh);
                    let start = out.len();
                    for (side, &child) in inner.children.iter().enumerate() {
                        let before = out.len();
                        self.check(child, inner.bit + 1, out);
                        assert!(out.len() > before, "empty child");
                        for (key, _) in &out[before..] {
                            assert_eq!(bit(key, inner.bit), side);
                        }
                    }
                    for (key, _) in &out[start..] {
                        let shared = first_difference(key, &inner.prefix).unwrap_or(KEY_HASH_BITS);
                        assert!(shared >= inner.bit, "key outside the node's prefix");
                    }
                    assert_eq!(inner.hash, reference(&out[start..], inner.bit));
                }
                Node::Free => panic!("free slot {id} is linked"),
            }
        }

        fn check_all(&self) -> Vec<(Hash, Hash)> {
            let mut leaves = Vec::new();
            if let Some(root) = self.root {
                self.check(root, 0, &mut leaves);
            }
            let linked = leaves.len() + leaves.len().saturating_sub(1);
            assert_eq!(linked + self.free.len(), self.nodes.len());
            leaves
        }
    }

    fn key(index: u8) -> Hash {
        Domain::StateKey.hash(&[index])
    }

    fn value(index: u8) -> Hash {
        Domain::StateValue.hash(&[index])
    }

    #[test]
    fn bits_are_msb_first() {
        let mut hash = Hash::ZERO;
        hash.0[0] = 0b1000_0000;
        hash.0[31] = 0b0000_0001;
        assert_eq!(bit(&hash, 0), 1);
        assert_eq!(bit(&hash, 1), 0);
        assert_eq!(bit(&hash, 255), 1);
        assert_eq!(bit(&hash, 254), 0);
        assert_eq!(first_difference(&hash, &hash), None);
        assert_eq!(first_difference(&hash, &Hash::ZERO), Some(0));
        let mut other = hash;
        other.0[31] = 0;
        assert_eq!(first_difference(&hash, &other), Some(255));
    }

    #[test]
    fn deepest_split_hashes_every_level() {
        // Two keys differing only in the last bit: 255 levels of EMPTY pairs.
        let a = Hash::ZERO;
        let mut b = Hash::ZERO;
        b.0[31] = 1;
        let mut trie = Trie::default();
        trie.upsert(&a, &value(1));
        trie.upsert(&b, &value(2));
        let leaves = [(a, value(1)), (b, value(2))];
        assert_eq!(trie.root_hash(), reference(&leaves, 0));
        let proof = trie.prove(&b);
        assert_eq!(proof.siblings.len(), 256);
    }

    proptest! {
        #[test]
        fn trie_matches_reference_under_random_ops(
            ops in proptest::collection::vec((0u8..24, proptest::option::of(0u8..4)), 0..120),
            every in 1usize..8,
        ) {
            let mut trie = Trie::default();
            let mut model = std::collections::BTreeMap::new();
            for (step, (k, v)) in ops.into_iter().enumerate() {
                match v {
                    Some(v) => { trie.upsert(&key(k), &value(v)); model.insert(key(k), value(v)); }
                    None => { trie.remove(&key(k)); model.remove(&key(k)); }
                }
                if step % every == 0 {
                    let leaves: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
                    prop_assert_eq!(trie.root_hash(), reference(&leaves, 0));
                    let mut found = trie.check_all();
                    found.sort();
                    prop_assert_eq!(found, leaves);
                }
            }
        }
    }
}
