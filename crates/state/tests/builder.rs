//! `StateBuilder` / `State::from_sorted` against the model: a state built at
//! once from sorted entries is the same state as one written key by key, root,
//! contents, proofs and later updates included.

mod common;

use common::{Model, build, reference_root};
use everarcade_state::{BuildError, State, StateBuilder};
use everarcade_testkit::rng::SplitMix64;
use proptest::prelude::*;

/// Keys of 1 to 70 bytes (inline and heap-stored alike), from a small space.
fn key() -> impl Strategy<Value = Vec<u8>> {
    (0u8..60).prop_map(|i| match i % 3 {
        0 => vec![i; 1 + usize::from(i)],
        _ => format!("k{i}").into_bytes(),
    })
}

/// Values of 0 to 99 bytes (inline up to 46, heap beyond).
fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..100)
}

fn from_model(model: &Model) -> State {
    State::from_sorted(model.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .expect("a model iterates in ascending key order")
}

proptest! {
    #[test]
    fn a_built_state_is_the_written_state(
        contents in proptest::collection::btree_map(key(), value(), 0..60),
        later in proptest::collection::vec((key(), proptest::option::of(value())), 0..40),
    ) {
        let mut built = from_model(&contents);
        let mut written = build(contents.iter().rev());
        let mut model = contents.clone();
        prop_assert_eq!(built.len(), model.len());
        prop_assert_eq!(built.value_bytes(), written.value_bytes());
        prop_assert!(built.iter().eq(written.iter()));
        let root = built.root();
        prop_assert_eq!(root, reference_root(&model));
        prop_assert_eq!(root, written.root());
        for (key, _) in contents.iter().take(10) {
            prop_assert_eq!(built.prove(key), written.prove(key));
            prop_assert!(built.prove(key).verify(&root, key, model.get(key).map(Vec::as_slice)).is_ok());
        }
        // Writes after the build: same returns, same roots.
        for (key, value) in &later {
            match value {
                Some(value) => {
                    prop_assert_eq!(built.set(key, value), written.set(key, value));
                    model.insert(key.clone(), value.clone());
                }
                None => {
                    prop_assert_eq!(built.delete(key), written.delete(key));
                    model.remove(key);
                }
            }
        }
        prop_assert_eq!(built.root(), reference_root(&model));
        prop_assert_eq!(built.root(), written.root());
    }
}

#[test]
fn the_protocol_vectors_hold_for_built_states() {
    let hex = |state: &mut State| state.root().to_hex();
    assert_eq!(
        hex(&mut State::from_sorted([]).unwrap()),
        "1f388647f225b598a1cfeb29ddbd014628b67e1da91e47db6ddab375191d043f"
    );
    assert_eq!(
        hex(&mut State::from_sorted([(&b"a"[..], &b"1"[..])]).unwrap()),
        "7f3a22619d40e6b51e8118baee87cc42a571f336cada51d5aa24a5e9f72fabac"
    );
    let three = [
        (&b"alpha"[..], &b"1"[..]),
        (&b"beta"[..], &b"2"[..]),
        (&b"gamma"[..], &b"3"[..]),
    ];
    assert_eq!(
        hex(&mut State::from_sorted(three).unwrap()),
        "a8cec6b26d1ba814fa0d661858e779c3dd2c247a4dc4e370d0dee3b459b564ec"
    );
}

/// Large enough for the builder to split the work between threads (on a
/// machine with more than one core).
#[test]
fn a_large_built_state_matches_the_definition() {
    let mut random = SplitMix64(11);
    let mut model = Model::new();
    while model.len() < 50_000 {
        let key = random.next_u64().to_be_bytes()[..1 + random.below(8) as usize].to_vec();
        let value = vec![random.below(256) as u8; random.below(70) as usize];
        model.insert(key, value);
    }
    let mut built = from_model(&model);
    assert_eq!(built.root(), reference_root(&model));
    assert_eq!(built.root(), build(model.iter()).root());
}

#[test]
fn entries_out_of_order_are_refused() {
    let mut builder = StateBuilder::with_capacity(3);
    builder.push(b"m", b"").unwrap();
    assert_eq!(
        builder.push(b"a", b""),
        Err(BuildError::NotAscending { index: 1 })
    );
    assert_eq!(
        builder.push(b"m", b"again"),
        Err(BuildError::NotAscending { index: 1 })
    );
    assert_eq!(builder.len(), 1);
    let duplicate = [(&b"k"[..], &b"1"[..]), (&b"k"[..], &b"2"[..])];
    assert_eq!(
        State::from_sorted(duplicate).err(),
        Some(BuildError::NotAscending { index: 1 })
    );
}
