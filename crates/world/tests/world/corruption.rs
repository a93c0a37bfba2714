//! Corruption in the middle of the journal is not a torn tail: `open`,
//! `recover` and `verify` all refuse with an integrity error naming the file
//! and the record's offset, and nothing is moved or deleted.

use everarcade_protocol::Tick;
use everarcade_store::StoreError;
use everarcade_store::journal::RawRecord;
use everarcade_world::{ErrorClass, WorldError};

use crate::common::{
    BODY_OFFSET, audit, flip_byte, make_plan, open, read_journal, repair, snapshot, world_dir,
};

const SEED: u64 = 0xc022_0001;
const TICKS: Tick = 30;

#[test]
fn a_flipped_byte_inside_the_journal_stops_everything() {
    let plan = make_plan(SEED, TICKS);
    let journal = read_journal(&plan.disk).expect("the journal reads");
    let records: Vec<&RawRecord> = journal.records.iter().map(|(raw, _)| raw).collect();
    let in_segment = |index: u64| -> Vec<&RawRecord> {
        let path = world_dir().segment(index);
        records
            .iter()
            .copied()
            .filter(|raw| raw.path == path)
            .collect()
    };
    let first = in_segment(1);
    let last = in_segment(journal.segments);
    assert!(journal.segments >= 2 && first.len() >= 2 && last.len() >= 2);
    // A record in a closed segment, and one before the end of the newest.
    let targets = [first[1], last[last.len() - 2]];
    for target in targets {
        let case = format!(
            "seed {SEED:#x}, a byte flipped in the record at {} byte {}",
            target.path.display(),
            target.offset
        );
        let disk = plan.disk_copy();
        let at = target.offset as usize + BODY_OFFSET + target.body.len() / 2;
        flip_byte(&disk, &target.path, at);
        let before = snapshot(&disk);
        let check = |what: &str, error: WorldError| {
            assert_eq!(
                error.class(),
                ErrorClass::Integrity,
                "{case}: {what}: {error}"
            );
            match error {
                WorldError::Store(StoreError::Corrupt { path, offset, .. }) => {
                    assert_eq!(
                        (&path, offset),
                        (&target.path, target.offset),
                        "{case}: {what}"
                    );
                }
                other => panic!("{case}: {what} failed otherwise: {other}"),
            }
        };
        check("open", open(&disk).err().expect("open refuses"));
        check("recover", repair(&disk).err().expect("recover refuses"));
        check("verify", audit(&disk).expect_err("verify refuses"));
        assert_eq!(
            snapshot(&disk),
            before,
            "{case}: files were moved or changed"
        );
    }
}
