//! The difference between two states, reported when replay diverges.

use everarcade_state::State;

/// The most keys listed per kind of change; the counts are always exact.
pub const DIFF_KEYS_LISTED_MAX: usize = 32;

/// Keys added, changed and removed from `before` to `after` (hex).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDiff {
    /// `(key, value)` present only after.
    pub added: Vec<(String, String)>,
    /// `(key, before, after)`.
    pub changed: Vec<(String, String, String)>,
    /// `(key, value)` present only before.
    pub removed: Vec<(String, String)>,
    /// Exact counts: added, changed, removed.
    pub counts: [usize; 3],
}

/// Merges the two ordered key sets in one pass.
pub fn state_diff(before: &State, after: &State) -> StateDiff {
    let mut diff = StateDiff::default();
    let mut left = before.iter().peekable();
    let mut right = after.iter().peekable();
    loop {
        let order = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (key, value) = left.next().expect("peeked");
                diff.counts[2] += 1;
                if diff.removed.len() < DIFF_KEYS_LISTED_MAX {
                    diff.removed.push((hex::encode(key), hex::encode(value)));
                }
            }
            std::cmp::Ordering::Greater => {
                let (key, value) = right.next().expect("peeked");
                diff.counts[0] += 1;
                if diff.added.len() < DIFF_KEYS_LISTED_MAX {
                    diff.added.push((hex::encode(key), hex::encode(value)));
                }
            }
            std::cmp::Ordering::Equal => {
                let (key, old) = left.next().expect("peeked");
                let (_, new) = right.next().expect("peeked");
                if old != new {
                    diff.counts[1] += 1;
                    if diff.changed.len() < DIFF_KEYS_LISTED_MAX {
                        diff.changed
                            .push((hex::encode(key), hex::encode(old), hex::encode(new)));
                    }
                }
            }
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_added_changed_removed() {
        let mut before = State::new();
        before.set(b"a", b"1");
        before.set(b"b", b"2");
        before.set(b"c", b"3");
        let mut after = State::new();
        after.set(b"b", b"2");
        after.set(b"c", b"4");
        after.set(b"d", b"5");
        let diff = state_diff(&before, &after);
        assert_eq!(diff.counts, [1, 1, 1]);
        assert_eq!(diff.added, vec![(hex::encode("d"), hex::encode("5"))]);
        assert_eq!(
            diff.changed,
            vec![(hex::encode("c"), hex::encode("3"), hex::encode("4"))]
        );
        assert_eq!(diff.removed, vec![(hex::encode("a"), hex::encode("1"))]);
        assert_eq!(state_diff(&after, &after), StateDiff::default());
    }
}
