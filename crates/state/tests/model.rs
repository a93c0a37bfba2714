//! The store against a `BTreeMap` model, and the root against the definition
//! applied naively (`common::reference_root`).

mod common;

use common::{Model, build, reference_root};
use everarcade_state::State;
use everarcade_testkit::rng::SplitMix64;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Set(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Root,
}

/// Keys from a small space (so overwrites and deletes of present keys are
/// common), of lengths 1 to 241 bytes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    (0u8..40).prop_map(|i| match i % 4 {
        0 => vec![i; 1 + usize::from(i) * 6],
        _ => format!("k{i}").into_bytes(),
    })
}

/// Values from a tiny space (so equal rewrites happen) or arbitrary bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u8..3).prop_map(|v| vec![v]),
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (key(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        3 => key().prop_map(Op::Delete),
        1 => Just(Op::Root),
    ]
}

/// Applies `op` to both, checking the return values agree.
fn apply(state: &mut State, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Set(key, value) => {
            prop_assert_eq!(
                state.set(key, value).map(|v| v.into_vec()),
                model.insert(key.clone(), value.clone())
            );
            prop_assert_eq!(state.get(key), Some(value.as_slice()));
        }
        Op::Delete(key) => {
            prop_assert_eq!(state.delete(key).map(|v| v.into_vec()), model.remove(key));
            prop_assert_eq!(state.get(key), None);
        }
        Op::Root => {
            state.root();
        }
    }
    Ok(())
}

/// Full comparison of contents and root.
fn check_against_model(state: &mut State, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(state.len(), model.len());
    prop_assert_eq!(state.is_empty(), model.is_empty());
    let bytes: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    prop_assert_eq!(state.value_bytes(), bytes);
    let contents: Vec<(&[u8], &[u8])> = state.iter().collect();
    let expected: Vec<(&[u8], &[u8])> = model
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    prop_assert_eq!(&contents, &expected);
    // A page after any key (present or not) is the model's tail after it.
    prop_assert_eq!(state.iter_after(None).collect::<Vec<_>>(), expected.clone());
    for (probe, _) in expected.iter().take(4) {
        for after in [probe.to_vec(), [*probe, &[0u8][..]].concat()] {
            let page: Vec<(&[u8], &[u8])> = state.iter_after(Some(&after)).collect();
            let tail: Vec<(&[u8], &[u8])> = expected
                .iter()
                .copied()
                .filter(|(key, _)| *key > after.as_slice())
                .collect();
            prop_assert_eq!(page, tail);
        }
    }
    let root = state.root();
    prop_assert_eq!(root, reference_root(model));
    prop_assert_eq!(root, build(model.iter()).root());
    prop_assert_eq!(root, build(model.iter().rev()).root());
    // Asking again without changes gives the same answer.
    prop_assert_eq!(state.root(), root);
    Ok(())
}

proptest! {
    #[test]
    fn store_matches_btreemap_model(
        ops in proptest::collection::vec(op(), 0..150),
        every in 1usize..12,
    ) {
        let mut state = State::new();
        let mut model = Model::new();
        for (step, op) in ops.iter().enumerate() {
            apply(&mut state, &mut model, op)?;
            if step % every == 0 {
                check_against_model(&mut state, &model)?;
            }
        }
        check_against_model(&mut state, &model)?;
    }

    #[test]
    fn same_contents_give_same_root_whatever_the_history(
        history_a in proptest::collection::vec(op(), 0..80),
        history_b in proptest::collection::vec(op(), 0..80),
        target in proptest::collection::btree_map(key(), value(), 0..30),
    ) {
        let mut roots = Vec::new();
        for history in [&history_a, &history_b] {
            let mut state = State::new();
            let mut model = Model::new();
            for op in history {
                apply(&mut state, &mut model, op)?;
            }
            for key in model.keys().filter(|key| !target.contains_key(*key)) {
                state.delete(key);
            }
            for (key, value) in target.iter().rev() {
                state.set(key, value);
            }
            roots.push(state.root());
        }
        prop_assert_eq!(roots[0], roots[1]);
        prop_assert_eq!(roots[0], reference_root(&target));
    }

    #[test]
    fn undoing_a_batch_restores_the_root(
        initial in proptest::collection::btree_map(key(), value(), 0..30),
        batch in proptest::collection::vec(op(), 0..60),
    ) {
        let mut state = build(initial.iter());
        let before = state.root();
        let mut undo = Vec::new();
        for op in &batch {
            match op {
                Op::Set(key, value) => undo.push((key.clone(), state.set(key, value))),
                Op::Delete(key) => undo.push((key.clone(), state.delete(key))),
                Op::Root => { state.root(); }
            }
        }
        for (key, previous) in undo.into_iter().rev() {
            match previous {
                Some(value) => state.set(&key, &value),
                None => state.delete(&key),
            };
        }
        prop_assert_eq!(state.root(), before);
        let contents: Vec<(&[u8], &[u8])> = state.iter().collect();
        let expected: Vec<(&[u8], &[u8])> =
            initial.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        prop_assert_eq!(contents, expected);
    }
}

/// Engine-shaped load: a few thousand keys, 256 changes per tick, one root
/// per tick, every root checked against the definition.
#[test]
fn incremental_roots_over_many_ticks_match_the_definition() {
    let mut random = SplitMix64(7);
    let mut state = State::new();
    let mut model = Model::new();
    for i in 0..4000u32 {
        let (key, value) = (i.to_le_bytes().to_vec(), vec![i as u8; (i % 17) as usize]);
        state.set(&key, &value);
        model.insert(key, value);
    }
    assert_eq!(state.root(), reference_root(&model));
    for tick in 0..40 {
        for _ in 0..256 {
            let key = (random.below(6000) as u32).to_le_bytes().to_vec();
            if random.below(3) == 0 {
                assert_eq!(state.delete(&key).map(|v| v.into_vec()), model.remove(&key));
            } else {
                let value = random.next_u64().to_le_bytes()[..random.below(9) as usize].to_vec();
                assert_eq!(
                    state.set(&key, &value).map(|v| v.into_vec()),
                    model.insert(key, value)
                );
            }
        }
        assert_eq!(state.root(), reference_root(&model), "tick {tick}");
    }
    assert_eq!(state.root(), build(model.iter().rev()).root());
}

#[test]
fn clones_are_independent() {
    let mut original = State::new();
    original.set(b"a", b"1");
    original.set(b"b", b"2");
    let mut copy = original.clone();
    copy.set(b"a", b"changed");
    copy.delete(b"b");
    assert_eq!(original.get(b"a"), Some(&b"1"[..]));
    assert_eq!(original.get(b"b"), Some(&b"2"[..]));
    assert_ne!(original.root(), copy.root());
    assert_eq!(
        copy.root(),
        build([(&b"a".to_vec(), &b"changed".to_vec())]).root()
    );
}

#[test]
fn rewriting_a_value_or_deleting_an_absent_key_changes_nothing() {
    let mut state = State::new();
    assert_eq!(state.delete(b"missing"), None);
    state.set(b"key", b"value");
    let root = state.root();
    assert_eq!(
        state.set(b"key", b"value").map(|v| v.into_vec()),
        Some(b"value".to_vec())
    );
    assert_eq!(state.delete(b"missing"), None);
    assert_eq!(state.root(), root);
    assert_eq!(state.value_bytes(), 8);
    let debug = format!("{state:?}");
    assert!(debug.contains("len: 1"), "{debug}");
}
