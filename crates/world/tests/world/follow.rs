//! Following an authority: a follower fed the authority's journal records
//! ends with the same journal bytes and roots; a damaged, reordered,
//! missing or forged record is refused with its ordinal and a stable code,
//! never journaled; a tampered tick record is a peer root mismatch naming
//! the tick, with its tick record never journaled.

use everarcade_protocol::Tick;
use everarcade_store::journal::{RECORD_HEADER_BYTES, encode_record};
use everarcade_store::{Record, SimStorage, Storage};
use everarcade_world::DurableWorld;
use everarcade_world::follow::FollowError;

use crate::common::{Plan, create, make_plan, open, read_journal, replay_from_genesis};

const SEED: u64 = 0xf011_0001;
const TICKS: Tick = 24;

/// Every record of the journal on `storage`: its ordinal and exact bytes.
pub(crate) fn records(storage: &SimStorage) -> Vec<(u64, Vec<u8>)> {
    let journal = read_journal(storage).expect("the journal reads");
    journal
        .records
        .iter()
        .enumerate()
        .map(|(ordinal, (raw, _))| {
            let segment = storage.read(&raw.path).expect("the segment reads");
            let start = raw.offset as usize;
            let end = start + raw.encoded_len() as usize;
            (ordinal as u64, segment[start..end].to_vec())
        })
        .collect()
}

pub(crate) fn apply(
    world: &mut DurableWorld,
    batch: &[(u64, Vec<u8>)],
) -> Result<everarcade_world::follow::Applied, FollowError> {
    let borrowed: Vec<(u64, &[u8])> = batch
        .iter()
        .map(|(ordinal, bytes)| (*ordinal, bytes.as_slice()))
        .collect();
    world.apply_records(&borrowed)
}

/// A follower of `plan`'s world that has applied its records before `upto`.
fn follower_at(plan: &Plan, upto: usize) -> (SimStorage, DurableWorld, Vec<(u64, Vec<u8>)>) {
    let wire = records(&plan.disk_copy());
    let disk = SimStorage::new();
    let mut world = create(&disk).expect("the follower's world is created");
    apply(&mut world, &wire[1..upto]).expect("the good records apply");
    (disk, world, wire)
}

/// The index of the first record of `kind` at or after `from`.
fn next_of(wire: &[(u64, Vec<u8>)], from: usize, kind: u8) -> usize {
    (from..wire.len())
        .find(|index| wire[*index].1[4] == kind)
        .expect("a record of that kind")
}

/// `record` with its body replaced by `edit`'s and re-framed after `prev`.
fn reframe(record: &[u8], prev_of: &[u8], edit: impl FnOnce(&mut Record)) -> Vec<u8> {
    let frame = everarcade_store::journal::decode_record_frame(record).expect("a good record");
    let prev = everarcade_store::journal::decode_record_frame(prev_of)
        .expect("a good record")
        .checksum;
    let mut decoded =
        everarcade_store::journal::decode_body(frame.kind, frame.body).expect("decodes");
    edit(&mut decoded);
    let mut out = Vec::new();
    encode_record(frame.kind, &decoded.encode_body(), &prev, &mut out);
    out
}

fn refused(
    result: Result<everarcade_world::follow::Applied, FollowError>,
) -> (u64, String, String) {
    match result {
        Err(FollowError::Refused {
            ordinal,
            code,
            reason,
        }) => (ordinal, code.to_string(), reason),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(applied) => panic!("expected a refusal, {} records applied", applied.records),
    }
}

#[test]
fn a_follower_ends_with_the_authoritys_journal_bytes_and_roots() {
    let plan = make_plan(SEED, TICKS);
    let wire = records(&plan.disk_copy());
    let disk = SimStorage::new();
    let mut world = create(&disk).expect("the follower's world is created");
    assert_eq!(
        records(&disk)[0],
        wire[0],
        "the same package and world make the same genesis record"
    );
    // Batches of every size from 1, so that batches end inside ticks.
    let mut next = 1;
    let mut size = 1;
    while next < wire.len() {
        let end = (next + size).min(wire.len());
        let applied = apply(&mut world, &wire[next..end]).expect("the authority's records apply");
        assert_eq!(applied.records, end - next);
        // Every record checked is durable once the batch returns, the
        // inputs records of a tick not ended yet included.
        assert_eq!(applied.durable.ordinal, end as u64 - 1);
        next = end;
        size += 1;
        // Reopen halfway: the follower resumes from its durable head (an
        // inputs record at its end is the tick in progress, as on the
        // authority).
        if size == 5 {
            let durable = world.durable_head();
            drop(world);
            world = open(&disk).expect("the follower reopens").0;
            assert_eq!(world.durable_head(), durable);
            next = durable.ordinal as usize + 1;
        }
    }
    assert_eq!(world.roots(), plan.roots[TICKS as usize]);
    assert_eq!(records(&disk), wire, "the journals are the same records");
    replay_from_genesis(&disk).expect("replay-verify passes on the follower");
    let checkpoints = everarcade_store::checkpoint::list_checkpoints(
        &disk as &dyn Storage,
        &crate::common::world_dir(),
    )
    .expect("list the follower's checkpoints");
    assert!(
        !checkpoints.checkpoints.is_empty(),
        "the follower takes checkpoints on its own schedule"
    );
}

#[test]
fn damaged_reordered_and_missing_records_are_refused_and_not_journaled() {
    let plan = make_plan(SEED, 8);
    let upto = 12;
    let (disk, mut world, wire) = follower_at(&plan, upto);
    let head = world.durable_head();
    let durable = records(&disk);

    let mut flipped = wire[upto].clone();
    flipped.1[RECORD_HEADER_BYTES + 3] ^= 0x10;
    let (ordinal, code, reason) = refused(apply(&mut world, &[flipped]));
    assert_eq!((ordinal, code.as_str()), (upto as u64, "record_malformed"));
    assert!(reason.contains("checksum"), "{reason}");

    let (ordinal, code, _) = refused(apply(&mut world, &[wire[upto + 1].clone()]));
    assert_eq!(
        (ordinal, code.as_str()),
        (upto as u64 + 1, "record_out_of_order")
    );

    // The next record's bytes under the expected ordinal: its prev is not
    // the follower's last checksum.
    let relabelled = (upto as u64, wire[upto + 1].1.clone());
    let (ordinal, code, _) = refused(apply(&mut world, &[relabelled]));
    assert_eq!(
        (ordinal, code.as_str()),
        (upto as u64, "record_chain_broken")
    );

    assert_eq!(
        world.durable_head(),
        head,
        "the follower stays on its last good record"
    );
    assert_eq!(records(&disk), durable, "nothing refused is journaled");
    apply(&mut world, &wire[upto..]).expect("the good records still apply");
    assert_eq!(world.roots(), plan.roots[8]);
    assert_eq!(records(&disk), wire);
}

#[test]
fn forged_signatures_and_replayed_nonces_are_refused() {
    let plan = make_plan(SEED, 8);
    let wire = records(&plan.disk_copy());
    // An inputs record after the first tick, so an earlier input exists.
    let first_tick = next_of(&wire, 1, 3);
    let at = next_of(&wire, first_tick + 1, 2);

    let (disk, mut world, _) = follower_at(&plan, at);
    let forged = reframe(&wire[at].1, &wire[at - 1].1, |record| {
        let Record::Inputs(inputs) = record else {
            unreachable!()
        };
        inputs.envelopes[0].payload[0] ^= 0x01;
    });
    let (ordinal, code, reason) = refused(apply(&mut world, &[(at as u64, forged)]));
    assert_eq!((ordinal, code.as_str()), (at as u64, "input_refused"));
    assert!(reason.contains("signature"), "{reason}");
    assert_eq!(records(&disk), wire[..records(&disk).len()].to_vec());
    apply(&mut world, &wire[at..]).expect("the good records still apply");
    assert_eq!(world.roots(), plan.roots[8]);

    let (_, mut world, _) = follower_at(&plan, at);
    let earlier = read_journal(&plan.disk_copy()).expect("reads").inputs[&1][0].clone();
    let replayed = reframe(&wire[at].1, &wire[at - 1].1, |record| {
        let Record::Inputs(inputs) = record else {
            unreachable!()
        };
        inputs.envelopes.insert(0, earlier);
    });
    let (ordinal, code, reason) = refused(apply(&mut world, &[(at as u64, replayed)]));
    assert_eq!((ordinal, code.as_str()), (at as u64, "input_refused"));
    assert!(reason.contains("nonce"), "{reason}");
}

/// Signatures checked ahead count only for the very record they were
/// checked for: a forged record offered with the genuine record's results
/// is checked again and refused; the genuine record's own results apply.
#[test]
fn signatures_checked_ahead_count_only_for_the_same_record() {
    use everarcade_world::follow::check_signatures;

    let plan = make_plan(SEED, 8);
    let wire = records(&plan.disk_copy());
    let first_tick = next_of(&wire, 1, 3);
    let at = next_of(&wire, first_tick + 1, 2);
    let genuine_refs: Vec<(u64, &[u8])> = vec![(at as u64, wire[at].1.as_slice())];

    let (disk, mut world, _) = follower_at(&plan, at);
    let rule = world.world().signature_rule();
    let forged = reframe(&wire[at].1, &wire[at - 1].1, |record| {
        let Record::Inputs(inputs) = record else {
            unreachable!()
        };
        inputs.envelopes[0].payload[0] ^= 0x01;
    });
    let forged_refs: Vec<(u64, &[u8])> = vec![(at as u64, forged.as_slice())];
    let (applied, error) = world
        .apply_checked_until_refused(&forged_refs, Some(check_signatures(&genuine_refs, rule)));
    assert_eq!(applied.records, 0);
    let (ordinal, code, reason) = refused(Err(error.expect("the forged record is refused")));
    assert_eq!((ordinal, code.as_str()), (at as u64, "input_refused"));
    assert!(reason.contains("signature"), "{reason}");
    assert_eq!(records(&disk), wire[..records(&disk).len()].to_vec());

    // The genuine record with its own results, then the rest, checked here.
    let (applied, error) = world
        .apply_checked_until_refused(&genuine_refs, Some(check_signatures(&genuine_refs, rule)));
    assert!(error.is_none(), "{error:?}");
    assert_eq!(applied.records, 1);
    apply(&mut world, &wire[at + 1..]).expect("the rest applies");
    assert_eq!(world.roots(), plan.roots[8]);
}

#[test]
fn a_tampered_tick_record_is_a_peer_root_mismatch_naming_the_tick() {
    let plan = make_plan(SEED, 8);
    let wire = records(&plan.disk_copy());
    let tick_at = next_of(&wire, next_of(&wire, 1, 3) + 1, 3);
    let (disk, mut world, _) = follower_at(&plan, tick_at - 1);
    let before = world.durable_head();
    let mut batch = vec![wire[tick_at - 1].clone()];
    let tampered = reframe(&wire[tick_at].1, &wire[tick_at - 1].1, |record| {
        let Record::Tick(tick) = record else {
            unreachable!()
        };
        tick.roots.state_root.0[0] ^= 0x01;
    });
    batch.push((tick_at as u64, tampered));
    batch.extend(wire[tick_at + 1..].iter().cloned());
    let frame = everarcade_store::journal::decode_record_frame(&wire[tick_at].1).expect("good");
    let Ok(Record::Tick(record)) = everarcade_store::journal::decode_body(frame.kind, frame.body)
    else {
        unreachable!("a tick record")
    };
    let tick = record.roots.tick;
    let last_tick_before = (1..tick_at).rev().find(|i| wire[*i].1[4] == 3).unwrap_or(0);
    match apply(&mut world, &batch) {
        Err(FollowError::PeerRootMismatch(mismatch)) => {
            assert_eq!(mismatch.tick, tick);
            assert_eq!(mismatch.ordinal, tick_at as u64);
            let names: Vec<_> = mismatch.roots.iter().map(|(name, _, _)| *name).collect();
            assert_eq!(names, ["state_root"]);
            assert!(mismatch.diff.is_some(), "the tick's state diff is reported");
        }
        Err(other) => panic!("expected a peer root mismatch, got {other}"),
        Ok(_) => panic!("a tampered tick record applied"),
    }
    assert!(before.ordinal <= last_tick_before as u64);
    assert_eq!(
        records(&disk),
        wire[..tick_at].to_vec(),
        "the divergent tick's record is not journaled; the inputs records before it, which passed admission, are"
    );
    assert!(world.poisoned().is_some(), "the follower stops");
    let err =
        apply(&mut world, &wire[tick_at - 1..]).expect_err("a stopped follower applies nothing");
    assert_eq!(err.code(), "world_poisoned");
}
