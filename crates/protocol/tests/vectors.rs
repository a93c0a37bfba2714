//! The test vectors printed in docs/PROTOCOL.md. A second implementation
//! checks itself against the same literals.

use everarcade_protocol::profile::LIMITS_MAX;
use everarcade_protocol::{
    Domain, Envelope, Hash, Limits, Outcome, Profile, Receipt, ReceiptKind, TrapClass, WorldId,
    continuity_root, events_hash, genesis_root, list_root, random_seed, test_signing_key,
};

fn check(name: &str, actual: impl AsRef<[u8]>, expected_hex: &str) {
    let actual = hex::encode(actual);
    println!("{name}: {actual}");
    assert_eq!(actual, expected_hex, "vector {name}");
}

fn world() -> WorldId {
    WorldId::new("world-001").unwrap()
}

#[test]
fn domain_hash_vectors() {
    check(
        "H(ea/receipt/v1, \"\")",
        Domain::Receipt.hash(b"").0,
        VECTORS[0],
    );
    check(
        "H(ea/events/v1, \"abc\")",
        Domain::Events.hash(b"abc").0,
        VECTORS[1],
    );
}

#[test]
fn test_key_vectors() {
    let alice = test_signing_key("alice");
    check("alice secret seed", alice.to_bytes(), VECTORS[2]);
    check(
        "alice public key",
        alice.verifying_key().to_bytes(),
        VECTORS[3],
    );
}

#[test]
fn envelope_vectors() {
    let envelope = Envelope::sign(&world(), &test_signing_key("alice"), 1, vec![0x01]);
    check("envelope encoding", envelope.encode(), VECTORS[4]);
    check("envelope hash", envelope.hash().0, VECTORS[5]);
    envelope.verify_signature().unwrap();
}

#[test]
fn receipt_vectors() {
    let envelope = Envelope::sign(&world(), &test_signing_key("alice"), 1, vec![0x01]);
    let applied = Receipt {
        kind: ReceiptKind::Input,
        subject: envelope.hash(),
        outcome: Outcome::Applied,
        fuel_used: 1234,
        events_hash: events_hash([b"joined".as_slice()]),
        event_count: 1,
    };
    check(
        "events_hash([\"joined\"])",
        applied.events_hash.0,
        VECTORS[6],
    );
    check("applied receipt hash", applied.hash().0, VECTORS[7]);
    let trapped = Receipt {
        kind: ReceiptKind::TickHook,
        subject: Hash::ZERO,
        outcome: Outcome::Trapped(TrapClass::Unreachable),
        fuel_used: 5,
        events_hash: events_hash([]),
        event_count: 0,
    };
    check(
        "trapped hook receipt encoding",
        trapped.encode(),
        VECTORS[8],
    );
}

#[test]
fn list_root_vectors() {
    let items: Vec<Hash> = (0u8..3).map(|i| Domain::Envelope.hash(&[i])).collect();
    check("list_root([])", list_root(&[]).0, VECTORS[9]);
    check("list_root(3 items)", list_root(&items).0, VECTORS[10]);
}

#[test]
fn profile_genesis_and_continuity_vectors() {
    let limits = Limits {
        memory_bytes: 2_097_152,
        ..LIMITS_MAX
    };
    let profile = Profile::v1(limits);
    check("profile hash", profile.hash().0, VECTORS[11]);
    let package_root = Hash([0x11; 32]);
    let c0 = genesis_root(&world(), &package_root, &profile.hash());
    check("C(0)", c0.0, VECTORS[12]);
    let c1 = continuity_root(&c0, 1, &Hash([1; 32]), &Hash([2; 32]), &Hash([3; 32]));
    check("C(1)", c1.0, VECTORS[13]);
    check("random_seed(C(0), 1)", random_seed(&c0, 1).0, VECTORS[14]);
}

const VECTORS: [&str; 15] = [
    "bd1343e7c049cc765d74252dbbfc60c0a2c15f9fca79ff9e26eae634819d55b8",
    "b6c9352d5128f65da7677465cdfcacb545d5060b204e2376f6664e58ef008c3e",
    "700e56f4ed8627c1d5cd7d0197785fc9bda2101074804ab51d1b5668440eb2cc",
    "03cb466f68b4668b9b61731e9f2a8537acf7f9a65f3bb709ce64a14c50b99d20",
    "0109776f726c642d30303103cb466f68b4668b9b61731e9f2a8537acf7f9a65f3bb709ce64a14c50b99d2001000000000000000100000001c9178a5cfb4236c783c44b534c0d9d8c59438b32cc65f22f37c0537b5b57762461c85d4c52310982bf3f8e10a190586adcd9b75208d1d169471c93a09f99b70d",
    "47e8d070310e5a62546171df4d537fe431a21bebc6a206b7fddc02c991223123",
    "603865c7b53f23cdc878999e54e4ef7cfa1304aaaaf425f3c2769746229a9433",
    "491d0c34303ad0dc3f830fdeb5e4d41e61b9d45d609ea789df8c84752263432c",
    "01000000000000000000000000000000000000000000000000000000000000000002020000000500000000000000a7c7b9ac173d2b3fd1727131f08067c86fab06bee2091b95a37386e196d2a04700000000",
    "15db4715fc5f5531b63b59748b375865d7896ab5b431696dd77e32b57990fa60",
    "7d6a66fff91c93f9e3056ca91f5fb6c936f5579cb25989680ee1929f21e8e38a",
    "093c8e54a89965381d45698d12fe59c3a910c66252f101b908e82658d2502d9c",
    "78ee4d96d9c46478768f41a340e6e47448da3eef17a5c142da6e72c09f1c53a7",
    "be92b49f8d5fb0c00bf6ea2b45f8e09708cc1cf8ebe741a3864b7af62df0eb03",
    "d93efbf32eaa633917b39cb7be9cc0abbf0ff460214a9e4d4146cca80f3b0817",
];

/// The audit domains and the Merkle list membership path (PROTOCOL §11.4).
#[test]
fn audit_domain_and_list_proof_vectors() {
    let domains = [
        Domain::MmrLeaf,
        Domain::MmrNode,
        Domain::MmrRoot,
        Domain::Bundle,
        Domain::BundleChecksum,
    ];
    for (domain, expected) in domains.iter().zip(AUDIT_VECTORS) {
        check(domain.as_str(), domain.hash(b"abc").0, expected);
    }
    let items: Vec<Hash> = (0u8..3).map(|i| Domain::Envelope.hash(&[i])).collect();
    let root = list_root(&items);
    let path = everarcade_protocol::list_proof(&items, 0).unwrap();
    check(
        "list path of item 0 of 3",
        path.concat_bytes(),
        AUDIT_VECTORS[5],
    );
    let path2 = everarcade_protocol::list_proof(&items, 2).unwrap();
    check(
        "list path of item 2 of 3",
        path2.concat_bytes(),
        AUDIT_VECTORS[6],
    );
    for (index, path) in [(0u64, &path), (2, &path2)] {
        let found =
            everarcade_protocol::list_root_from_proof(&items[index as usize], index, 3, path);
        assert_eq!(found, Some(root));
    }
}

trait ConcatBytes {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl ConcatBytes for Vec<Hash> {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|hash| hash.0).collect()
    }
}

const AUDIT_VECTORS: [&str; 7] = [
    "69c30fecd27c357cb86f356d1512c4753670ef60f1f15bf28ba02a764c57803d",
    "fc8eb275290666d96b9a7d5cf95ed56f5c791ada1fd5e24cc021ef15dd129be1",
    "119e7323bf78bf9f1a27d540891d9e9947d0c69371e86c6e26aa1912a8c760be",
    "753c71d1739b7b095aca51649c2d675113856807a7604587788ed20c098a79d3",
    "a14830073ac453e54333c4572923f1efc96701db7a3f2b28529607f1476c2170",
    "c140bf47be5cd467ddb2db9bfd31e0770768c275e33c718d2247069eeb58b4dd10cdcee22a306422923003f3e8603b4765fb46b8f09e64b74376f6455c8d7a26",
    "8b25e89bb32ff47bb641de744c129c18831a1601d7ac51ce51716691dfbfe1eb",
];
