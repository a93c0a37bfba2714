//! Forgery: a forger who edits a journaled record and recomputes every
//! checksum, chain link and segment header after it gets past the journal's
//! integrity checks, but not past `verify` (signatures, the continuity
//! chain) nor replay (signatures, roots), which name the forged tick.

use everarcade_engine::World;
use everarcade_protocol::{EnvelopeError, Tick};
use everarcade_store::Record;
use everarcade_store::journal::{InputsRecord, TickRecord};
use everarcade_world::{StateDiff, WorldError, state_diff};

use crate::common::{
    Plan, audit, fixture, forge, make_plan, read_journal, replay_from_genesis, world_dir, world_id,
};

const SEED: u64 = 0xf06e_0001;
const TICKS: Tick = 30;
/// The segment the forger edits (not the first, not necessarily the last).
const SEGMENT: u64 = 2;

#[test]
fn a_forged_input_fails_verify_and_replay_at_its_tick() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let journal = read_journal(&disk).expect("the journal reads");
    let segment = world_dir().segment(SEGMENT);
    // The last envelope of the largest inputs record is forged: the error
    // names its place among the tick's inputs (the record's signatures are
    // checked together; `Envelope::verify_signatures` keeps their order).
    let (raw, inputs) = journal
        .records
        .iter()
        .filter_map(|(raw, record)| match record {
            Record::Inputs(inputs) if raw.path == segment => Some((raw.clone(), inputs.clone())),
            _ => None,
        })
        .max_by_key(|(_, inputs)| inputs.envelopes.len())
        .expect("an inputs record in the segment");
    let last = inputs.envelopes.len() - 1;
    let tick = inputs.tick;
    // The forged envelope's position in its tick: after the inputs journaled
    // for the same tick by earlier records.
    let index = journal
        .records
        .iter()
        .take_while(|(other, _)| (&other.path, other.offset) != (&raw.path, raw.offset))
        .filter_map(|(_, record)| match record {
            Record::Inputs(earlier) if earlier.tick == tick => Some(earlier.envelopes.len()),
            _ => None,
        })
        .sum::<usize>()
        + last;
    forge(&disk, &mut |record| {
        if (&record.path, record.offset) != (&raw.path, raw.offset) {
            return None;
        }
        let mut forged: InputsRecord = inputs.clone();
        forged.envelopes[last].payload[0] ^= 0x01;
        Some(Record::Inputs(forged).encode_body())
    });
    let forged = read_journal(&disk).expect("the forged journal checks out byte for byte");
    assert!(forged.torn.is_none());
    assert_ne!(forged.envelope_hashes(), journal.envelope_hashes());

    match audit(&disk) {
        Err(WorldError::Lineage { path, offset, what }) => {
            assert_eq!((path, offset), (raw.path.clone(), raw.offset), "{what}");
            assert!(
                what.contains(&format!("tick {tick}: input {index}: bad signature")),
                "{what}"
            );
        }
        other => panic!("verify of a forged input: {:?}", other.map(|a| a.head)),
    }
    match replay_from_genesis(&disk) {
        Err(WorldError::InputRefused {
            tick: refused,
            index: at,
            path,
            offset,
            error,
        }) => {
            assert_eq!((refused, at), (tick, index));
            assert_eq!((path, offset), (raw.path.clone(), raw.offset));
            assert!(
                matches!(error, EnvelopeError::BadSignature { .. }),
                "{error}"
            );
        }
        other => panic!("replay of a forged input: {:?}", other.map(|r| r.last)),
    }
}

#[test]
fn a_forged_state_root_fails_verify_and_replay_with_a_state_diff() {
    let plan = make_plan(SEED, TICKS);
    let disk = plan.disk_copy();
    let journal = read_journal(&disk).expect("the journal reads");
    let segment = world_dir().segment(SEGMENT);
    let (raw, record) = journal
        .records
        .iter()
        .find_map(|(raw, record)| match record {
            Record::Tick(tick) if raw.path == segment && tick.input_count > 0 => {
                Some((raw.clone(), tick.clone()))
            }
            _ => None,
        })
        .expect("a tick record with inputs in the segment");
    let tick = record.roots.tick;
    let real = record.roots.state_root;
    let mut forged_root = real;
    forged_root.0[0] ^= 0x01;
    forge(&disk, &mut |other| {
        if (&other.path, other.offset) != (&raw.path, raw.offset) {
            return None;
        }
        let mut forged: TickRecord = record.clone();
        forged.roots.state_root = forged_root;
        Some(Record::Tick(forged).encode_body())
    });
    read_journal(&disk).expect("the forged journal checks out byte for byte");

    match audit(&disk) {
        Err(WorldError::Lineage { path, offset, what }) => {
            assert_eq!((path, offset), (raw.path.clone(), raw.offset), "{what}");
            assert!(
                what.contains(&format!("tick {tick}: C(t) does not follow")),
                "{what}"
            );
        }
        other => panic!("verify of a forged state root: {:?}", other.map(|a| a.head)),
    }
    match replay_from_genesis(&disk) {
        Err(WorldError::Divergence(divergence)) => {
            assert_eq!(divergence.tick, tick);
            assert_eq!(divergence.roots, vec![("state_root", forged_root, real)]);
            let diff = divergence.diff.expect("a state diff");
            assert_eq!(diff, expected_diff(&plan, tick));
            assert!(diff.counts.iter().sum::<usize>() > 0, "{diff:?}");
        }
        other => panic!("replay of a forged state root: {:?}", other.map(|r| r.last)),
    }
}

/// What tick `tick` of the plan changes in the state, from an in-memory run.
fn expected_diff(plan: &Plan, tick: Tick) -> StateDiff {
    let fixture = fixture();
    let (mut world, _) =
        World::genesis(&fixture.engine, world_id(), fixture.compiled.clone()).expect("genesis");
    let mut before = world.state().clone();
    for steps in &plan.ticks[..tick as usize] {
        before = world.state().clone();
        let inputs: Vec<_> = steps.iter().map(|step| step.envelope.clone()).collect();
        for envelope in &inputs {
            world.admit(envelope).expect("a planned input is admitted");
        }
        world
            .execute_tick(&fixture.engine, &inputs)
            .expect("a planned tick runs");
    }
    assert_eq!(world.tick(), tick);
    state_diff(&before, world.state())
}
