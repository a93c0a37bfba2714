use everarcade_store::DiskStorage;
use everarcade_testkit::temp::TempDir;
use everarcade_testkit::world_id;
use everarcade_usage::{CountError, count_window, count_window_from, journal_head};

use crate::common::{continuity, expected, forge_journal};

#[test]
fn windows_count_what_the_model_says() {
    let temp = TempDir::new("usage-count");
    // Small segments: windows cross segment boundaries.
    let dir = forge_journal(temp.path(), 300, 4096);
    assert!(std::fs::read_dir(dir.journal()).unwrap().count() > 3);
    for (first, last) in [(1, 1), (1, 300), (17, 123), (299, 300), (4, 4), (100, 100)] {
        let count = count_window(&DiskStorage, &dir.journal(), first, last).unwrap();
        let mut want = expected(first, last);
        want.journal_bytes = count.counted.journal_bytes;
        assert_eq!(count.counted, want, "window {first}..={last}");
        assert_eq!(count.world, world_id());
        assert_eq!(
            count.start_continuity_root,
            continuity(first - 1),
            "{first}"
        );
        assert_eq!(count.end_continuity_root, continuity(last), "{last}");
    }
    // Tick 4 has no inputs: one tick record of one hook receipt.
    let bytes = |first, last| {
        count_window(&DiskStorage, &dir.journal(), first, last)
            .unwrap()
            .counted
            .journal_bytes
    };
    assert_eq!(bytes(4, 4), 40 + (8 + 4 + 128 + 4 + 82) + 32);
    assert_eq!(bytes(1, 100) + bytes(101, 300), bytes(1, 300));
    assert_eq!(journal_head(&DiskStorage, &dir.journal()).unwrap(), 300);
}

#[test]
fn bad_windows_are_refused_with_a_code() {
    let temp = TempDir::new("usage-count-bad");
    let dir = forge_journal(temp.path(), 20, 1 << 20);
    let error = count_window(&DiskStorage, &dir.journal(), 5, 21).unwrap_err();
    assert!(
        matches!(error, CountError::BeyondHead { last: 21, head: 20 }),
        "{error}"
    );
    assert_eq!(error.code(), "window_beyond_head");
    let error = count_window(&DiskStorage, &dir.journal(), 0, 3).unwrap_err();
    assert_eq!(error.code(), "invalid_window");
    let error = count_window(&DiskStorage, &dir.journal(), 9, 8).unwrap_err();
    assert_eq!(error.code(), "invalid_window");
    let missing = count_window(&DiskStorage, &temp.join("nowhere"), 1, 2).unwrap_err();
    assert_eq!(missing.code(), "world_missing");
}

#[test]
fn a_damaged_journal_is_reported_not_counted() {
    let temp = TempDir::new("usage-count-corrupt");
    let dir = forge_journal(temp.path(), 50, 1 << 20);
    let segment = dir.segment(1);
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let error = count_window(&DiskStorage, &dir.journal(), 1, 50).unwrap_err();
    assert_eq!(error.code(), "corrupt", "{error}");
}

#[test]
fn resumed_counts_equal_counts_from_the_start() {
    let temp = TempDir::new("usage-count-resume");
    // Small segments: windows end and resume inside and across segments.
    let dir = forge_journal(temp.path(), 400, 4096);
    let mut resume = None;
    let mut first = 1;
    for last in [1, 2, 37, 38, 150, 151, 260, 399, 400] {
        let (resumed, ended) =
            count_window_from(&DiskStorage, &dir.journal(), first, last, resume.as_ref()).unwrap();
        let full = count_window(&DiskStorage, &dir.journal(), first, last).unwrap();
        assert_eq!(resumed, full, "window {first}..={last}");
        assert_eq!(ended.tick, last);
        assert_eq!(ended.continuity_root, continuity(last));
        resume = Some(ended);
        first = last + 1;
    }
    // A resume point that does not end at first - 1 is ignored.
    let stale = resume.clone();
    let (count, _) =
        count_window_from(&DiskStorage, &dir.journal(), 10, 20, stale.as_ref()).unwrap();
    assert_eq!(
        count,
        count_window(&DiskStorage, &dir.journal(), 10, 20).unwrap()
    );
    // A resume point whose checksum is not the journal's is refused.
    let mut forged = resume.unwrap();
    let (_, ended) = count_window_from(&DiskStorage, &dir.journal(), 1, 200, None).unwrap();
    forged.position = ended.position;
    forged.position.checksum = everarcade_protocol::Hash([9; 32]);
    forged.tick = 200;
    let error =
        count_window_from(&DiskStorage, &dir.journal(), 201, 210, Some(&forged)).unwrap_err();
    assert_eq!(error.code(), "corrupt", "{error}");
}
