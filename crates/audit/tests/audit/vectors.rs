//! The accumulator and bundle vectors printed in docs/BUNDLES.md §8.

use everarcade_audit::bundle::{Bundle, BundleFile, Operator, OperatorKey, StartState};
use everarcade_audit::mmr::{Mmr, MmrProver, genesis_roots, leaf_hash};
use everarcade_protocol::{Hash, TickRoots, WorldId, test_signing_key};
use everarcade_store::keys::Signed;

fn check(name: &str, actual: impl AsRef<[u8]>, expected: &str) {
    let actual = hex::encode(actual);
    println!("{name}: {actual}");
    assert_eq!(actual, expected, "vector {name}");
}

/// Tick `t`'s synthetic roots: every byte of every root is `t`.
fn roots(t: u8) -> TickRoots {
    TickRoots {
        tick: t as u64,
        input_root: Hash([t; 32]),
        receipt_root: Hash([t; 32]),
        state_root: Hash([t; 32]),
        continuity_root: Hash([t; 32]),
    }
}

#[test]
fn accumulator_vectors() {
    check("leaf(1)", leaf_hash(&roots(1)).0, V[0]);
    let mut mmr = Mmr::new();
    let mut seen = Vec::new();
    for t in 0..7u8 {
        mmr.append(leaf_hash(&roots(t)));
        seen.push(mmr.root());
    }
    check("root(1 leaf)", seen[0].0, V[1]);
    check("root(2 leaves)", seen[1].0, V[2]);
    check("root(3 leaves)", seen[2].0, V[3]);
    check("root(7 leaves)", seen[6].0, V[4]);
    let mut prover = MmrProver::new();
    for t in 0..7u8 {
        prover.append(leaf_hash(&roots(t)), t == 4);
    }
    let proof = prover.proof().unwrap();
    let mut bytes = Vec::new();
    proof.encode_into(&mut bytes);
    check("proof of leaf 4 of 7", &bytes, V[5]);
    assert_eq!(proof.root_for(&leaf_hash(&roots(4))), Some(seen[6]));
}

#[test]
fn bundle_vector() {
    let operator = test_signing_key("operator");
    let public = operator.verifying_key().to_bytes();
    let genesis = Hash([0x22; 32]);
    let state = Hash([0x33; 32]);
    let anchor = genesis_roots(&genesis, &state);
    let bundle = Bundle {
        world: WorldId::new("world-001").unwrap(),
        runtime_version: "0.1.0".into(),
        protocol_version: 1,
        package_root: Hash([0x11; 32]),
        genesis_root: genesis,
        head_tick: 0,
        from_tick: 0,
        to_tick: 0,
        package: vec![BundleFile {
            path: "world.toml".into(),
            bytes: b"x".to_vec(),
        }],
        genesis_state_root: state,
        genesis_receipt: None,
        start: StartState::Genesis,
        anchor,
        frontier: vec![leaf_hash(&anchor)],
        anchor_path: Vec::new(),
        ticks: Vec::new(),
        operator: Operator {
            signer: public,
            keys: vec![OperatorKey {
                public_key: public,
                from_tick: 0,
                to_tick: None,
                endorsement: None,
            }],
        },
    };
    let bytes = bundle.sign_and_seal(|digest| {
        use ed25519_dalek::Signer;
        operator.sign(&Signed::Bundle.message(digest)).to_bytes()
    });
    check("bundle file", &bytes, V[6]);
    let sealed = everarcade_audit::bundle::decode(&bytes).unwrap();
    check("bundle digest", sealed.digest.0, V[7]);
    assert_eq!(sealed.bundle, bundle);
    everarcade_audit::verify::check_signature(&sealed, &[public]).unwrap();
}

const V: [&str; 8] = [
    "66cdf72176e26901185393315c9e279b33d6d6da17fe630f0f1d81505771fe3d",
    "eba6b584f953215e5f0441eb6d35d78e0a250c5f09e0ae9ef0d01f186ab161f5",
    "d04d47e1bfca54aba942ed0f1c0a7959929e044dffce72f9be728838c61eb833",
    "4b80ab03fa59722f17b473fd6c0c52a20e341c5a10899d4bdcdf1f0ff51356e5",
    "bfb783ec3712afc1624d63954a25edcfd4f7c8458604c92b256abc801c4d8fcc",
    "0700000000000000040000000000000001ed23586bcba64f4b2933762ce667a3b2986c4f76d49dc235775dd6e32c8065cf02cbd1d764227fc43d6be417a486fa53dccc360cdf65dd2ed6e0b61174074d0cc2251b210913a3103bdc43585e1fb5fc9c6d5f0c7a0a877bb3cbfd7eb379575e52",
    "454142554e444c4501000000000000000100000009776f726c642d30303105302e312e3011111111111111111111111111111111111111111111111111111111111111112222222222222222222222222222222222222222222222222222222222222222000000000000000000000000000000000000000000000000010000000a00776f726c642e746f6d6c01000000000000007833333333333333333333333333333333333333333333333333333333333333330000000000000000000015db4715fc5f5531b63b59748b375865d7896ab5b431696dd77e32b57990fa6015db4715fc5f5531b63b59748b375865d7896ab5b431696dd77e32b57990fa60333333333333333333333333333333333333333333333333333333333333333322222222222222222222222222222222222222222222222222222222222222220186e32cf587905acddba23c7bc48b30c9f216bf9caf139bc40419ead2962717e30000000000000000009f8075b77f87cd95a712f9781e7a39e30258f54950b561c9550f02b25ab0a2f401009f8075b77f87cd95a712f9781e7a39e30258f54950b561c9550f02b25ab0a2f40000000000000000000007ea2b808282d5081337054276feb9f29d0d1544b204272136c3d9fe44a4c23354b7b30484c8ddf17ed892779c71fce4d771e02c2451a088166d52582c717e049969283417e3f6ed7e173eeb114ac21f211fe20628a7d591e4380d035a0a5357",
    "435b3c3fe6145f31a7e944e093e270ba9a91623cf4f7d6166c07946d97425c8b",
];
