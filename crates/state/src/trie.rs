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
//!
//! A whole trie can also be built at once from leaves sorted by key hash
//! ([`Trie::from_sorted`], used when a checkpoint is loaded): one pass, every
//! node hashed once, on several threads for large tries. Leaves and inner
//! nodes live in two arenas, so the sorted leaves become the leaf arena as
//! they are.

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

/// A node: a leaf or an inner node, by its index in that kind's arena. The
/// top bit says which, so a child link is four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeRef(u32);

/// Set in a [`NodeRef`] to a leaf.
const LEAF_FLAG: u32 = 1 << 31;

/// Most nodes of one kind a trie holds: 2^31 leaves (and as many inner nodes).
const NODES_MAX: usize = LEAF_FLAG as usize;

/// A [`NodeRef`] taken apart.
enum Node {
    Leaf(usize),
    Inner(usize),
}

impl NodeRef {
    fn leaf(index: usize) -> NodeRef {
        assert!(index < NODES_MAX, "the state trie exceeds 2^31 leaves");
        NodeRef(index as u32 | LEAF_FLAG)
    }

    fn inner(index: usize) -> NodeRef {
        assert!(index < NODES_MAX, "the state trie exceeds 2^31 inner nodes");
        NodeRef(index as u32)
    }

    fn get(self) -> Node {
        if self.0 & LEAF_FLAG == 0 {
            Node::Inner(self.0 as usize)
        } else {
            Node::Leaf((self.0 & !LEAF_FLAG) as usize)
        }
    }
}

/// Marks an inner node's lifted-hash memo as unusable.
const NO_MEMO: u16 = u16::MAX;

/// A key of the trie: its key hash, value hash and leaf hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) key_hash: Hash,
    pub(crate) value_hash: Hash,
    /// `leaf_hash(key_hash, value_hash)`.
    pub(crate) hash: Hash,
}

impl Leaf {
    /// The leaf of a key hash and value hash (one hash computed).
    pub(crate) fn new(key_hash: Hash, value_hash: Hash) -> Leaf {
        Leaf {
            hash: leaf_hash(&key_hash, &value_hash),
            key_hash,
            value_hash,
        }
    }

    /// A slot to be overwritten (sorting scratch).
    pub(crate) const UNSET: Leaf = Leaf {
        key_hash: Hash::ZERO,
        value_hash: Hash::ZERO,
        hash: Hash::ZERO,
    };
}

#[derive(Clone, Debug)]
struct Inner {
    /// The bit at which the keys below split; every key below shares the bits
    /// of `prefix` before it.
    bit: u16,
    /// Left (bit 0) and right (bit 1) subtrees; both hold at least one key.
    children: [NodeRef; 2],
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

impl Inner {
    /// A node splitting at `bit`, to be hashed.
    fn stale(bit: u16, children: [NodeRef; 2], prefix: Hash) -> Inner {
        Inner {
            bit,
            children,
            prefix,
            hash: Hash::ZERO,
            fresh: false,
            memo_depth: NO_MEMO,
            memo_hash: Hash::ZERO,
        }
    }
}

/// Where a subtree hangs: at the root, or as child `side` of an inner node.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Child(usize, usize),
}

/// The crit-bit trie over key hashes, with cached subtree hashes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trie {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    /// Released slots of each arena, reused first.
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    root: Option<NodeRef>,
    /// Scratch path for `upsert` and `remove` (inner node, side taken),
    /// kept to avoid an allocation per call.
    path: Vec<(usize, usize)>,
}

impl Trie {
    /// The trie holding `leaves`, which must be sorted by key hash, strictly
    /// ascending. Every node is hashed once, bottom-up; with `threads > 1`
    /// the two halves below the root are built on two threads, recursively.
    /// The result is the same node for node whatever `threads` is.
    pub(crate) fn from_sorted(leaves: Vec<Leaf>, threads: usize) -> Trie {
        assert!(
            leaves.len() <= NODES_MAX,
            "the state trie exceeds 2^31 leaves"
        );
        let mut trie = Trie {
            leaves,
            ..Trie::default()
        };
        if trie.leaves.is_empty() {
            return trie;
        }
        let mut inners = Vec::with_capacity(trie.leaves.len() - 1);
        let root = build(&trie.leaves, 0, &mut inners, 0, threads);
        assert_eq!(inners.len(), trie.leaves.len() - 1);
        trie.inners = inners;
        trie.root = Some(root);
        trie
    }

    /// Walks from `root` down to the leaf nearest `key_hash`, leaving the
    /// inner nodes passed and the side taken at each in `self.path`.
    fn walk(&mut self, root: NodeRef, key_hash: &Hash) -> NodeRef {
        self.path.clear();
        let mut node = root;
        while let Node::Inner(index) = node.get() {
            let inner = &self.inners[index];
            let side = bit(key_hash, inner.bit);
            self.path.push((index, side));
            node = inner.children[side];
        }
        node
    }

    /// Inserts the key or replaces its value hash.
    pub(crate) fn upsert(&mut self, key_hash: &Hash, value_hash: &Hash) {
        let Some(root) = self.root else {
            self.root = Some(self.alloc_leaf(Leaf::new(*key_hash, *value_hash)));
            return;
        };
        // One walk down to the nearest leaf, remembering the path.
        let node = self.walk(root, key_hash);
        let nearest = &self.leaves[self.leaf_index(node)];
        let split = first_difference(&nearest.key_hash, key_hash);
        if split.is_none() && nearest.value_hash == *value_hash {
            return;
        }
        // Every node above the change goes stale: the path's nodes that
        // split above `split` (all of them if the key is the leaf's). Bits
        // grow down the path, so they are a prefix of it; the change hangs
        // below the last of them.
        let limit = split.unwrap_or(KEY_HASH_BITS);
        let above = self
            .path
            .partition_point(|&(index, _)| self.inners[index].bit < limit);
        for &(index, _) in &self.path[..above] {
            self.inners[index].fresh = false;
        }
        let (link, node) = match above.checked_sub(1).map(|last| self.path[last]) {
            None => (Link::Root, root),
            Some((index, side)) => (Link::Child(index, side), self.inners[index].children[side]),
        };
        match split {
            None => {
                let Node::Leaf(index) = node.get() else {
                    unreachable!("a key hash equal to a leaf's leads to that leaf");
                };
                self.leaves[index] = Leaf::new(*key_hash, *value_hash);
            }
            Some(split) => {
                let leaf = self.alloc_leaf(Leaf::new(*key_hash, *value_hash));
                let mut children = [node, node];
                children[bit(key_hash, split)] = leaf;
                let inner = self.alloc_inner(Inner::stale(split, children, *key_hash));
                self.set_link(link, inner);
            }
        }
    }

    /// Removes the key if present; its parent collapses into the sibling.
    pub(crate) fn remove(&mut self, key_hash: &Hash) {
        let Some(root) = self.root else { return };
        let node = self.walk(root, key_hash);
        let leaf = self.leaf_index(node);
        if self.leaves[leaf].key_hash != *key_hash {
            return;
        }
        self.free_leaves.push(leaf as u32);
        let Some((parent, side)) = self.path.pop() else {
            self.root = None;
            return;
        };
        let sibling = self.inners[parent].children[1 - side];
        self.free_inners.push(parent as u32);
        let link = match self.path.last() {
            None => Link::Root,
            Some(&(grandparent, side)) => Link::Child(grandparent, side),
        };
        self.set_link(link, sibling);
        for &(ancestor, _) in &self.path {
            self.inners[ancestor].fresh = false;
        }
    }

    /// Rehashes stale nodes and returns the root: `S(0, all keys)`.
    pub(crate) fn root_hash(&mut self) -> Hash {
        self.root_hash_updating(&mut Vec::new())
    }

    /// Replaces the value hashes of keys already in the trie, `updates`
    /// `(key hash, value hash)` in any order, rehashes every stale node and
    /// returns the root. One pass from the root down serves every update:
    /// the updates are sorted by key hash and split at each node's bit, so a
    /// node above several changed keys is visited once, and nothing is
    /// walked or marked per key. A key not in the trie is inserted instead
    /// (`upsert`), so the result is the same for any `updates`. Leaves
    /// `updates` empty, its capacity kept.
    pub(crate) fn root_hash_updating(&mut self, updates: &mut Vec<(Hash, Hash)>) -> Hash {
        updates.sort_unstable_by(|a, b| key_hash_order(&a.0, &b.0));
        let Some(root) = self.root else {
            if updates.is_empty() {
                return empty_hash();
            }
            for (key_hash, value_hash) in updates.drain(..) {
                self.upsert(&key_hash, &value_hash);
            }
            return self.root_hash();
        };
        let mut missed = Vec::new();
        self.refresh(root, updates, &mut missed);
        updates.clear();
        if missed.is_empty() {
            return self.hash_at(root, 0);
        }
        for (key_hash, value_hash) in missed {
            self.upsert(&key_hash, &value_hash);
        }
        self.root_hash()
    }

    /// The proof for `key_hash`. The trie must be fresh (`root_hash` called
    /// since the last change).
    pub(crate) fn prove(&mut self, key_hash: &Hash) -> Proof {
        let mut siblings = Vec::new();
        let Some(mut node) = self.root else {
            return Proof {
                siblings,
                terminal: Terminal::Empty,
            };
        };
        let mut depth = 0;
        loop {
            let index = match node.get() {
                Node::Inner(index) => index,
                Node::Leaf(index) => {
                    let leaf = &self.leaves[index];
                    let terminal = Terminal::Leaf {
                        key_hash: leaf.key_hash,
                        value_hash: leaf.value_hash,
                    };
                    return Proof { siblings, terminal };
                }
            };
            let inner = &self.inners[index];
            debug_assert!(inner.fresh, "prove needs a fresh trie");
            let (split, children, prefix, hash) =
                (inner.bit, inner.children, inner.prefix, inner.hash);
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
            node = children[side];
            depth = split + 1;
        }
    }

    /// Recomputes the hash of `node` and every stale node below it,
    /// replacing on the way the value hashes of `updates` (sorted by key
    /// hash) that lie below it; an update whose key is not a leaf here goes
    /// to `missed`.
    fn refresh(&mut self, node: NodeRef, updates: &[(Hash, Hash)], missed: &mut Vec<(Hash, Hash)>) {
        let index = match node.get() {
            Node::Leaf(index) => {
                for (key_hash, value_hash) in updates {
                    if self.leaves[index].key_hash == *key_hash {
                        self.leaves[index] = Leaf::new(*key_hash, *value_hash);
                    } else {
                        missed.push((*key_hash, *value_hash));
                    }
                }
                return;
            }
            Node::Inner(index) => index,
        };
        let inner = &self.inners[index];
        if inner.fresh && updates.is_empty() {
            return;
        }
        let (split, children) = (inner.bit, inner.children);
        // Sorted key hashes sharing the bits before `split` have bit
        // `split` 0 first; a key foreign to this subtree may land on either
        // side, and reaches `missed` at a leaf.
        let middle = updates.partition_point(|(key_hash, _)| bit(key_hash, split) == 0);
        let parts = [&updates[..middle], &updates[middle..]];
        let mut halves = [Hash::ZERO; 2];
        for ((half, child), part) in halves.iter_mut().zip(children).zip(parts) {
            self.refresh(child, part, missed);
            *half = self.hash_at(child, split + 1);
        }
        let inner = &mut self.inners[index];
        inner.hash = Domain::StateNode.hash_pair(&halves[0], &halves[1]);
        inner.fresh = true;
        inner.memo_depth = NO_MEMO;
    }

    /// The hash of fresh subtree `node` seen from depth `depth`, memoized.
    fn hash_at(&mut self, node: NodeRef, depth: u16) -> Hash {
        match node.get() {
            Node::Leaf(index) => self.leaves[index].hash,
            Node::Inner(index) => lifted(&mut self.inners[index], depth),
        }
    }

    fn set_link(&mut self, link: Link, node: NodeRef) {
        match link {
            Link::Root => self.root = Some(node),
            Link::Child(parent, side) => self.inners[parent].children[side] = node,
        }
    }

    fn alloc_leaf(&mut self, leaf: Leaf) -> NodeRef {
        if let Some(index) = self.free_leaves.pop() {
            self.leaves[index as usize] = leaf;
            return NodeRef::leaf(index as usize);
        }
        self.leaves.push(leaf);
        NodeRef::leaf(self.leaves.len() - 1)
    }

    fn alloc_inner(&mut self, inner: Inner) -> NodeRef {
        if let Some(index) = self.free_inners.pop() {
            self.inners[index as usize] = inner;
            return NodeRef::inner(index as usize);
        }
        self.inners.push(inner);
        NodeRef::inner(self.inners.len() - 1)
    }

    fn leaf_index(&self, node: NodeRef) -> usize {
        match node.get() {
            Node::Leaf(index) => index,
            Node::Inner(index) => unreachable!("trie invariant: inner node {index} is a leaf"),
        }
    }
}

/// Key hashes in the trie's order (bytewise, so bit 0 first): the first
/// eight bytes as one number decide but for about one pair in 2^64.
fn key_hash_order(a: &Hash, b: &Hash) -> std::cmp::Ordering {
    let head = |hash: &Hash| u64::from_be_bytes(hash.0[..8].try_into().expect("8 bytes"));
    head(a).cmp(&head(b)).then_with(|| a.0.cmp(&b.0))
}

/// The hash of fresh inner node `inner` seen from depth `depth`, memoized.
fn lifted(inner: &mut Inner, depth: u16) -> Hash {
    // Seen from its own depth (no skipped level above it): its hash.
    if depth == inner.bit {
        return inner.hash;
    }
    if inner.memo_depth != depth {
        inner.memo_hash = extend(inner.hash, &inner.prefix, inner.bit, depth);
        inner.memo_depth = depth;
    }
    inner.memo_hash
}

/// Subtrees of at least this many leaves are split between two threads by
/// [`build`] when it has more than one; below it, a thread costs more than
/// it saves.
const PARALLEL_LEAVES_MIN: usize = 1 << 14;

/// Builds the subtree of `leaves` (sorted, strictly ascending), the leaves
/// at indices `leaf_base..` of the trie. Its inner nodes are appended to
/// `out`, whose element `k` is inner node `out_base + k` of the trie; a
/// subtree of `n` leaves has exactly `n - 1`, so where each part goes is
/// known before it is built. Returns the subtree's top node, fresh, whose
/// memo is left to its parent.
fn build(
    leaves: &[Leaf],
    leaf_base: usize,
    out: &mut Vec<Inner>,
    out_base: usize,
    threads: usize,
) -> NodeRef {
    if threads < 2 || leaves.len() < PARALLEL_LEAVES_MIN {
        return build_sequential(leaves, leaf_base, out, out_base);
    }
    let first = leaves[0].key_hash;
    let split = first_difference(&first, &leaves[leaves.len() - 1].key_hash)
        .expect("leaves are sorted by key hash, strictly ascending");
    let middle = leaves.partition_point(|leaf| bit(&leaf.key_hash, split) == 0);
    let (left_leaves, right_leaves) = leaves.split_at(middle);
    // The left part's inner nodes go into `out` now, the right part's are
    // built aside and numbered after them, then the top node.
    let right_base = out_base + out.len() + left_leaves.len() - 1;
    let right_threads = threads / 2;
    let (left, (right, mut right_out)) = std::thread::scope(|scope| {
        let right = scope.spawn(move || {
            let mut right_out = Vec::with_capacity(right_leaves.len() - 1);
            let top = build(
                right_leaves,
                leaf_base + middle,
                &mut right_out,
                right_base,
                right_threads,
            );
            (top, right_out)
        });
        let left = build(
            left_leaves,
            leaf_base,
            out,
            out_base,
            threads - right_threads,
        );
        let right = right
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (left, right)
    });
    assert_eq!(out_base + out.len(), right_base);
    out.append(&mut right_out);
    let top = push_inner(out, out_base, Inner::stale(split, [left, right], first));
    finalize(leaves, leaf_base, out, out_base, top);
    NodeRef::inner(top)
}

/// [`build`] on one thread, in one pass over the sorted leaves: the crit-bit
/// tree of sorted keys is built left to right, keeping the inner nodes whose
/// right subtree is still growing on a stack (their bits increase upwards,
/// so it holds at most 256). A node is hashed when it leaves the stack, once
/// both its subtrees are complete.
fn build_sequential(
    leaves: &[Leaf],
    leaf_base: usize,
    out: &mut Vec<Inner>,
    out_base: usize,
) -> NodeRef {
    let mut spine: Vec<usize> = Vec::with_capacity(usize::from(KEY_HASH_BITS));
    let mut tail = NodeRef::leaf(leaf_base);
    for (offset, pair) in leaves.windows(2).enumerate() {
        let (previous, next) = (&pair[0].key_hash, &pair[1].key_hash);
        // Ascending: the first differing bit is 0 in `previous`, 1 in `next`.
        let split = first_difference(previous, next)
            .filter(|&split| bit(next, split) == 1)
            .expect("leaves are sorted by key hash, strictly ascending");
        while let Some(&top) = spine.last()
            && out[top - out_base].bit > split
        {
            out[top - out_base].children[1] = tail;
            finalize(leaves, leaf_base, out, out_base, top);
            tail = NodeRef::inner(top);
            spine.pop();
        }
        let index = push_inner(out, out_base, Inner::stale(split, [tail, tail], *next));
        spine.push(index);
        tail = NodeRef::leaf(leaf_base + offset + 1);
    }
    while let Some(top) = spine.pop() {
        out[top - out_base].children[1] = tail;
        finalize(leaves, leaf_base, out, out_base, top);
        tail = NodeRef::inner(top);
    }
    tail
}

/// Appends `inner` to `out` (numbered from `out_base`); returns its index.
fn push_inner(out: &mut Vec<Inner>, out_base: usize, inner: Inner) -> usize {
    out.push(inner);
    out_base + out.len() - 1
}

/// Hashes inner node `index`, whose children are complete and fresh: lifts
/// each child to depth `bit + 1` (filling an inner child's memo, which is
/// exactly what its parent will ask for) and hashes the pair.
fn finalize(leaves: &[Leaf], leaf_base: usize, out: &mut [Inner], out_base: usize, index: usize) {
    let inner = &out[index - out_base];
    let (depth, children) = (inner.bit + 1, inner.children);
    let mut halves = [Hash::ZERO; 2];
    for (half, child) in halves.iter_mut().zip(children) {
        *half = match child.get() {
            Node::Leaf(leaf) => leaves[leaf - leaf_base].hash,
            Node::Inner(child) => lifted(&mut out[child - out_base], depth),
        };
    }
    let inner = &mut out[index - out_base];
    inner.hash = Domain::StateNode.hash_pair(&halves[0], &halves[1]);
    inner.fresh = true;
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
        /// Checks the structural invariants and returns the leaves below `node`.
        fn check(&self, node: NodeRef, depth: u16, out: &mut Vec<(Hash, Hash)>) {
            match node.get() {
                Node::Leaf(index) => {
                    let leaf = &self.leaves[index];
                    assert!(
                        !self.free_leaves.contains(&(index as u32)),
                        "free leaf linked"
                    );
                    assert_eq!(leaf.hash, leaf_hash(&leaf.key_hash, &leaf.value_hash));
                    out.push((leaf.key_hash, leaf.value_hash));
                }
                Node::Inner(index) => {
                    let inner = &self.inners[index];
                    assert!(
                        !self.free_inners.contains(&(index as u32)),
                        "free node linked"
                    );
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
                    if inner.memo_depth != NO_MEMO {
                        let lifted = extend(inner.hash, &inner.prefix, inner.bit, inner.memo_depth);
                        assert_eq!(inner.memo_hash, lifted, "stale memo");
                    }
                }
            }
        }

        fn check_all(&self) -> Vec<(Hash, Hash)> {
            let mut leaves = Vec::new();
            if let Some(root) = self.root {
                self.check(root, 0, &mut leaves);
            }
            assert_eq!(leaves.len() + self.free_leaves.len(), self.leaves.len());
            let linked = leaves.len().saturating_sub(1);
            assert_eq!(linked + self.free_inners.len(), self.inners.len());
            leaves
        }
    }

    /// Sorted, distinct leaves of the key and value hashes of `0..count`.
    fn sorted_leaves(count: u32) -> Vec<Leaf> {
        let mut leaves: Vec<Leaf> = (0..count)
            .map(|i| {
                Leaf::new(
                    Domain::StateKey.hash(&i.to_le_bytes()),
                    Domain::StateValue.hash(&i.to_be_bytes()),
                )
            })
            .collect();
        leaves.sort_by_key(|leaf| leaf.key_hash);
        leaves
    }

    /// Updates in one pass from the root, new keys among them included
    /// (they go the `upsert` way), give the trie that upserts one by one
    /// give, in any order and in an empty trie too.
    #[test]
    fn updates_in_one_pass_equal_upserts() {
        for count in [0u32, 1, 2, 40] {
            let leaves = sorted_leaves(count);
            let mut updated = Trie::from_sorted(leaves.clone(), 1);
            let mut upserted = Trie::from_sorted(leaves.clone(), 1);
            updated.root_hash();
            upserted.root_hash();
            // New values for every other key, plus keys not in the trie,
            // unsorted.
            let mut updates: Vec<(Hash, Hash)> = leaves
                .iter()
                .step_by(2)
                .map(|leaf| (leaf.key_hash, Domain::StateValue.hash(&leaf.hash.0)))
                .chain((count..count + 3).map(|i| {
                    (
                        Domain::StateKey.hash(&i.to_le_bytes()),
                        Domain::StateValue.hash(b"new"),
                    )
                }))
                .rev()
                .collect();
            for (key_hash, value_hash) in &updates {
                upserted.upsert(key_hash, value_hash);
            }
            let root = updated.root_hash_updating(&mut updates);
            assert!(updates.is_empty());
            assert_eq!(root, upserted.root_hash(), "{count} keys");
            assert_eq!(updated.check_all(), upserted.check_all());
        }
    }

    #[test]
    fn bulk_build_equals_upserts_whatever_the_threads() {
        for count in [0, 1, 2, 3, 17, 1000, PARALLEL_LEAVES_MIN as u32 * 2 + 77] {
            let leaves = sorted_leaves(count);
            let mut incremental = Trie::default();
            for leaf in &leaves {
                incremental.upsert(&leaf.key_hash, &leaf.value_hash);
            }
            let expected = incremental.root_hash();
            for threads in [1, 2, 3, 8] {
                let mut bulk = Trie::from_sorted(leaves.clone(), threads);
                let found = bulk.check_all();
                assert_eq!(found.len(), leaves.len());
                assert_eq!(
                    bulk.root_hash(),
                    expected,
                    "{count} leaves, {threads} threads"
                );
                if count <= 1000 {
                    let pairs: Vec<_> = leaves.iter().map(|l| (l.key_hash, l.value_hash)).collect();
                    assert_eq!(expected, reference(&pairs, 0));
                }
            }
        }
    }

    #[test]
    fn a_bulk_built_trie_takes_updates_and_proofs() {
        let leaves = sorted_leaves(300);
        let mut bulk = Trie::from_sorted(leaves.clone(), 1);
        let mut incremental = Trie::default();
        for leaf in &leaves {
            incremental.upsert(&leaf.key_hash, &leaf.value_hash);
        }
        for (index, leaf) in leaves.iter().enumerate().step_by(7) {
            for trie in [&mut bulk, &mut incremental] {
                if index % 2 == 0 {
                    trie.remove(&leaf.key_hash);
                } else {
                    trie.upsert(&leaf.key_hash, &value(index as u8));
                }
                trie.upsert(&key(index as u8), &value(3));
            }
        }
        assert_eq!(bulk.root_hash(), incremental.root_hash());
        bulk.check_all();
        for leaf in leaves.iter().take(40) {
            assert_eq!(
                bulk.prove(&leaf.key_hash),
                incremental.prove(&leaf.key_hash)
            );
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
