//! A torn tail: the final segment cut short inside its last record. `open`
//! refuses with `TornTail` naming the file, offset and byte count; `recover`
//! truncates exactly those bytes (a copy goes to quarantine) and the world
//! recovers to the tick before and plays on.

use everarcade_protocol::Tick;
use everarcade_store::journal::{RECORD_HEADER_BYTES, RECORD_TRAILER_BYTES};
use everarcade_store::{Record, Storage, StoreError};
use everarcade_world::WorldError;
use everarcade_world::repair::Action;

use crate::check::play_on;
use crate::common::{make_plan, open, read_journal, repair, world_dir};

const SEED: u64 = 0x7042_0001;
const TICKS: Tick = 30;

#[test]
fn a_torn_final_record_is_truncated_and_quarantined() {
    let plan = make_plan(SEED, TICKS);
    let journal = read_journal(&plan.disk).expect("the journal reads");
    let (last, record) = journal.records.last().expect("records");
    let Record::Tick(tick) = record else {
        panic!("the journal ends with a {:?} record", last.kind)
    };
    assert_eq!(tick.roots.tick, TICKS);
    assert_eq!(last.path, world_dir().segment(journal.segments));
    let length = last.encoded_len();
    let body_end = (RECORD_HEADER_BYTES + last.body.len()) as u64;
    let cuts = [
        1,
        RECORD_HEADER_BYTES as u64 - 1,
        RECORD_HEADER_BYTES as u64,
        RECORD_HEADER_BYTES as u64 + 1,
        body_end / 2,
        body_end,
        length - RECORD_TRAILER_BYTES as u64 / 2,
        length - 1,
    ];
    for kept in cuts {
        let case = format!("seed {SEED:#x}, last record cut to {kept} of {length} bytes");
        let disk = plan.disk_copy();
        let whole = disk.read(&last.path).expect("read");
        assert_eq!(whole.len() as u64, last.offset + length, "{case}");
        let cut = (last.offset + kept) as usize;
        disk.overwrite(&last.path, whole[..cut].to_vec())
            .expect("cut");

        match open(&disk) {
            Err(WorldError::Store(StoreError::TornTail {
                path,
                offset,
                bytes,
            })) => {
                assert_eq!(
                    (path, offset, bytes),
                    (last.path.clone(), last.offset, kept),
                    "{case}"
                );
            }
            Err(error) => panic!("{case}: open failed otherwise: {error}"),
            Ok(_) => panic!("{case}: open accepted a torn tail"),
        }

        let repaired = repair(&disk).unwrap_or_else(|error| panic!("{case}: recover: {error}"));
        let [
            Action::TruncatedTornTail {
                path,
                offset,
                bytes,
                copy,
            },
        ] = repaired.actions.as_slice()
        else {
            panic!("{case}: recover did: {:?}", repaired.actions);
        };
        assert_eq!(
            (path, *offset, *bytes),
            (&last.path, last.offset, kept),
            "{case}"
        );
        assert_eq!(copy.parent(), Some(world_dir().quarantine().as_path()));
        assert_eq!(
            disk.read(copy).expect("the quarantined copy"),
            whole[last.offset as usize..cut],
            "{case}: the quarantine does not hold the removed bytes"
        );
        assert_eq!(
            disk.read(&last.path).expect("read").len() as u64,
            last.offset,
            "{case}"
        );
        let recovery = &repaired.recovery;
        assert_eq!(recovery.roots, plan.roots[TICKS as usize - 1], "{case}");
        assert_eq!(
            recovery.pending_inputs,
            plan.ticks[TICKS as usize - 1].len(),
            "{case}: the last tick's inputs are pending again"
        );
        drop(repaired.world);
        let (world, _) = open(&disk).unwrap_or_else(|error| panic!("{case}: reopen: {error}"));
        play_on(&case, &plan, &disk, world);
    }
}
