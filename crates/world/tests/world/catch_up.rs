//! Catching up from an authority's checkpoint: a follower far behind
//! journals the authority's records up to the checkpoint's tick without
//! executing them, installs the checkpoint and resumes from it, ending with
//! the authority's journal bytes and roots; a checkpoint that contradicts
//! the journal, or damaged bytes, is refused by name and never written,
//! and a reopen then executes the records journaled ahead.

use everarcade_protocol::Tick;
use everarcade_store::checkpoint::list_checkpoints;
use everarcade_store::keys::{CheckpointSigning, OperatorKeys, check_checkpoint_signature};
use everarcade_store::{SimStorage, Storage};
use everarcade_world::DurableWorld;
use everarcade_world::catch_up::JournaledAhead;
use everarcade_world::follow::FollowError;
use everarcade_world::replay::StartedFrom;

use crate::common::{Plan, create, make_plan, replay_from_genesis, world_dir};
use crate::follow::{apply, records};

const SEED: u64 = 0xca7c_0001;
const TICKS: Tick = 24;

/// The authority's checkpoint files on its disk: `(tick, bytes)`, ascending.
fn checkpoints(disk: &SimStorage) -> Vec<(Tick, Vec<u8>)> {
    let listing = list_checkpoints(disk as &dyn Storage, &world_dir()).expect("list checkpoints");
    listing
        .checkpoints
        .into_iter()
        .map(|(tick, path)| (tick, disk.read(&path).expect("the checkpoint reads")))
        .collect()
}

/// Journals `wire` from the follower's head up to tick `through` in
/// batches of `size`, as pulls would hand it over.
fn journal_ahead_in_batches(
    world: &mut DurableWorld,
    wire: &[(u64, Vec<u8>)],
    through: Tick,
    size: usize,
) -> JournaledAhead {
    loop {
        let next = world.durable_head().ordinal as usize + 1;
        let end = (next + size).min(wire.len());
        let batch: Vec<(u64, &[u8])> = wire[next..end]
            .iter()
            .map(|(ordinal, bytes)| (*ordinal, bytes.as_slice()))
            .collect();
        let ahead = world
            .journal_ahead(&batch, through)
            .expect("the records journal ahead");
        if ahead.durable.tick == through {
            return ahead;
        }
        assert_eq!(
            ahead.records,
            batch.len(),
            "a batch before the tick is taken whole"
        );
    }
}

/// A follower of `plan` that applied (executed) its records up to tick 3.
fn follower(plan: &Plan) -> (SimStorage, DurableWorld, Vec<(u64, Vec<u8>)>) {
    let wire = records(&plan.disk_copy());
    let disk = SimStorage::new();
    let mut world = create(&disk).expect("the follower's world is created");
    let tick_3 = wire
        .iter()
        .position(|(_, bytes)| {
            bytes[4] == 3 && {
                let frame = everarcade_store::journal::decode_record_frame(bytes).unwrap();
                let body = everarcade_store::journal::decode_body(frame.kind, frame.body).unwrap();
                matches!(body, everarcade_store::Record::Tick(t) if t.roots.tick == 3)
            }
        })
        .expect("tick 3's record");
    apply(&mut world, &wire[1..=tick_3]).expect("the first ticks apply");
    assert_eq!(world.roots(), plan.roots[3]);
    (disk, world, wire)
}

#[test]
fn a_follower_far_behind_resumes_from_the_authoritys_checkpoint() {
    let plan = make_plan(SEED, TICKS);
    let (tick, bytes) = checkpoints(&plan.disk_copy()).pop().expect("a checkpoint");
    assert!(
        tick > 3 && tick < TICKS,
        "the newest checkpoint is mid-match: {tick}"
    );
    let (disk, mut world, wire) = follower(&plan);

    let ahead = journal_ahead_in_batches(&mut world, &wire, tick, 5);
    assert!(world.is_ahead());
    assert_eq!(ahead.durable.tick, tick);
    assert!(
        ahead.records < 5 || records(&disk).len() < wire.len(),
        "records past the checkpoint's tick are left for following"
    );
    // Memory is behind the journal: nothing else runs until the install.
    let next = ahead.durable.ordinal as usize + 1;
    match apply(&mut world, &wire[next..next + 1]) {
        Err(FollowError::World(error)) => assert_eq!(error.code(), "world_poisoned"),
        other => panic!("expected the world to refuse while ahead, got {other:?}"),
    }

    // The follower's own operator key signs the checkpoint it installs.
    let (keys, _) = OperatorKeys::load_or_create(&disk, &world_dir(), 0).expect("a key");
    let history = keys.history().clone();
    world.set_operator(std::sync::Arc::new(keys));
    let recovery = world
        .install_checkpoint(&bytes)
        .expect("the checkpoint installs");
    assert!(!world.is_ahead());
    assert!(
        matches!(
            check_checkpoint_signature(&disk, &world_dir(), Some(&history), tick, &bytes),
            Ok(CheckpointSigning::Signed(_))
        ),
        "the installed checkpoint is signed"
    );
    assert!(
        matches!(recovery.started_from, StartedFrom::Checkpoint { tick: from, .. } if from == tick),
        "{:?}",
        recovery.started_from
    );
    assert_eq!(recovery.ticks_replayed, 0, "no tick before it is executed");
    assert_eq!(world.roots(), plan.roots[tick as usize]);

    apply(&mut world, &wire[next..]).expect("following resumes after the checkpoint");
    assert_eq!(world.roots(), plan.roots[TICKS as usize]);
    assert_eq!(records(&disk), wire, "the journals are the same records");
    // What the catch-up took on the authority's word, replay re-derives.
    replay_from_genesis(&disk).expect("replay-verify passes on the follower");
}

#[test]
fn a_checkpoint_that_contradicts_the_journal_is_refused_and_never_written() {
    let plan = make_plan(SEED, TICKS);
    let mut files = checkpoints(&plan.disk_copy());
    let (tick, bytes) = files.pop().expect("a checkpoint");
    let (older_tick, older) = files.pop().expect("two checkpoints");
    let (disk, mut world, wire) = follower(&plan);
    journal_ahead_in_batches(&mut world, &wire, tick, 64);
    let written = |disk: &SimStorage| checkpoints(disk).iter().any(|(t, _)| *t == tick);

    let refusal = |result: Result<_, FollowError>| match result {
        Err(FollowError::Refused { code, reason, .. }) => {
            assert_eq!(code, "checkpoint_refused");
            reason
        }
        other => panic!("expected checkpoint_refused, got {other:?}"),
    };
    let reason = refusal(world.install_checkpoint(&older));
    assert!(
        reason.contains(&format!("of tick {older_tick}")),
        "{reason}"
    );
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    let reason = refusal(world.install_checkpoint(&damaged));
    assert!(reason.contains("checksum"), "{reason}");
    assert!(!written(&disk), "a refused checkpoint is never written");
    assert!(world.is_ahead());

    // Reopening executes what was journaled ahead: slower, same roots.
    let recovery = world.reopen().expect("the world reopens");
    assert!(!world.is_ahead());
    assert_eq!(recovery.roots, plan.roots[tick as usize]);
    assert!(recovery.ticks_replayed > 0);
    let next = world.durable_head().ordinal as usize + 1;
    apply(&mut world, &wire[next..]).expect("following resumes");
    assert_eq!(world.roots(), plan.roots[TICKS as usize]);
}

#[test]
fn a_broken_chain_ahead_is_refused_and_not_journaled() {
    let plan = make_plan(SEED, TICKS);
    let (tick, _) = checkpoints(&plan.disk_copy()).pop().expect("a checkpoint");
    let (disk, mut world, wire) = follower(&plan);
    let head = world.durable_head();
    let journal = records(&disk);
    let next = head.ordinal as usize + 1;
    // The record after next, under next's ordinal: its prev is not the head.
    let relabelled = [(next as u64, wire[next + 1].1.as_slice())];
    match world.journal_ahead(&relabelled, tick) {
        Err(FollowError::Refused { ordinal, code, .. }) => {
            assert_eq!((ordinal, code), (next as u64, "record_chain_broken"))
        }
        other => panic!("expected record_chain_broken, got {other:?}"),
    }
    assert_eq!(
        world.durable_head(),
        head,
        "the follower stays on its last good record"
    );
    assert_eq!(records(&disk), journal, "nothing refused is journaled");
    // A tick that is not ahead is no catch-up.
    let mut fresh = create(&SimStorage::new()).expect("another follower");
    match fresh.journal_ahead(&[], 0) {
        Err(FollowError::World(error)) => assert_eq!(error.code(), "busy"),
        other => panic!("expected busy, got {other:?}"),
    }
}
