use std::os::unix::fs::PermissionsExt;

use everarcade_store::WorldDir;
use everarcade_store::keys::OperatorKeys;
use everarcade_testkit::temp::TempDir;
use everarcade_testkit::world_id;
use everarcade_usage::report::{FLAG_REBUILT, window_file_name};
use everarcade_usage::{Metadata, SignedReport};

use crate::common::{expected, fixed_keys, forge_journal, producer};

fn metadata() -> Metadata {
    Metadata {
        window_start_unix_ms: 5,
        window_end_unix_ms: 6,
        ..Metadata::default()
    }
}

#[test]
fn reports_are_written_0600_and_read_back() {
    let temp = TempDir::new("usage-backlog-write");
    let dir = forge_journal(temp.path(), 30, 1 << 20);
    let producer = producer(&dir, fixed_keys(&dir));
    let report = producer.produce(1, 10, 0, metadata()).unwrap();
    let path = producer.backlog().report_path(&window_file_name(1, 10));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), report.bytes);
    let read = producer
        .backlog()
        .read(&window_file_name(1, 10), producer.keys().history())
        .unwrap();
    assert_eq!(read, report);
    let mut want = expected(1, 10);
    want.journal_bytes = report.report.counted.journal_bytes;
    assert_eq!(report.report.counted, want);
}

#[test]
fn damaged_files_are_quarantined_and_rebuilt_from_the_journal() {
    let temp = TempDir::new("usage-backlog-damage");
    let dir = forge_journal(temp.path(), 60, 1 << 20);
    let producer = producer(&dir, fixed_keys(&dir));
    for (first, last) in [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60)] {
        producer.produce(first, last, 0, metadata()).unwrap();
    }
    let backlog = producer.backlog();
    // 11..=20 truncated, 21..=30 one byte changed, 31..=40 re-signed by
    // another key, 41..=50 removed; a stray temporary file and a stranger.
    let truncated = backlog.report_path(&window_file_name(11, 20));
    let original = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    let flipped = backlog.report_path(&window_file_name(21, 30));
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[40] ^= 0x04;
    std::fs::write(&flipped, bytes).unwrap();
    let other = TempDir::new("usage-backlog-other");
    let other_dir = WorldDir::new(other.path(), &world_id());
    let (other_keys, _) =
        OperatorKeys::load_or_create(&everarcade_store::DiskStorage, &other_dir, 0).unwrap();
    let resigned = backlog.report_path(&window_file_name(31, 40));
    let mut report = SignedReport::decode(&std::fs::read(&resigned).unwrap())
        .unwrap()
        .report;
    report.counted.fuel_inputs += 1;
    std::fs::write(&resigned, report.sign(&other_keys).bytes).unwrap();
    std::fs::rename(
        backlog.report_path(&window_file_name(41, 50)),
        temp.join("moved-away"),
    )
    .unwrap();
    std::fs::write(backlog.reports_dir().join(".x.report.tmp"), b"half").unwrap();
    std::fs::write(backlog.reports_dir().join("notes.txt"), b"hello").unwrap();

    let scan = producer.recover_backlog().unwrap();
    assert_eq!(
        scan.windows,
        vec![(1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60)]
    );
    assert_eq!(scan.quarantined.len(), 5, "{:?}", scan.quarantined);
    let quarantined: Vec<String> = std::fs::read_dir(dir.quarantine())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(quarantined.len(), 5, "{quarantined:?}");
    let kept = quarantined
        .iter()
        .find(|n| n.contains(&window_file_name(11, 20)))
        .unwrap();
    assert_eq!(
        std::fs::read(dir.quarantine().join(kept)).unwrap(),
        &original[..original.len() / 2],
        "the damaged bytes are kept as found"
    );
    for (first, last) in [(11, 20), (21, 30), (31, 40), (41, 50)] {
        let rebuilt = backlog
            .read(&window_file_name(first, last), producer.keys().history())
            .unwrap();
        assert_eq!(rebuilt.report.flags, FLAG_REBUILT);
        let mut want = expected(first, last);
        want.journal_bytes = rebuilt.report.counted.journal_bytes;
        assert_eq!(rebuilt.report.counted, want, "{first}..={last}");
    }
    // A second scan finds nothing to do.
    let again = producer.recover_backlog().unwrap();
    assert!(again.quarantined.is_empty() && again.gaps.is_empty());
    assert_eq!(again.windows.len(), 6);
}

#[test]
fn acknowledgements_take_reports_out_of_a_sinks_backlog_only() {
    let temp = TempDir::new("usage-backlog-ack");
    let dir = forge_journal(temp.path(), 30, 1 << 20);
    let producer = producer(&dir, fixed_keys(&dir));
    let a = producer.produce(1, 10, 0, metadata()).unwrap();
    producer.produce(11, 30, 0, metadata()).unwrap();
    let backlog = producer.backlog();
    let windows = [(1, 10), (11, 30)];
    assert_eq!(backlog.pending("http", &windows).len(), 2);
    backlog
        .ack("http", &a.report.file_name(), &a.digest, "HTTP 200")
        .unwrap();
    assert_eq!(
        backlog.pending("http", &windows),
        vec![window_file_name(11, 30)]
    );
    assert_eq!(backlog.pending("redis", &windows).len(), 2);
}

#[test]
fn a_damaged_file_beyond_the_head_is_quarantined_not_rebuilt() {
    let temp = TempDir::new("usage-backlog-beyond");
    let dir = forge_journal(temp.path(), 20, 1 << 20);
    let producer = producer(&dir, fixed_keys(&dir));
    producer.produce(1, 10, 0, metadata()).unwrap();
    let stranger = producer.backlog().report_path(&window_file_name(11, 500));
    std::fs::write(&stranger, b"not a report").unwrap();
    let scan = producer.recover_backlog().unwrap();
    assert_eq!(scan.windows, vec![(1, 10)]);
    assert_eq!(scan.last_tick(), 10);
    assert_eq!(scan.quarantined.len(), 1);
    assert!(!stranger.exists());
}

#[test]
fn a_report_that_cannot_be_written_is_an_error_and_nothing_is_lost() {
    let temp = TempDir::new("usage-backlog-full");
    let dir = forge_journal(temp.path(), 30, 1 << 20);
    let producer = producer(&dir, fixed_keys(&dir));
    // `usage/` taken by a file: every write fails, as on a full disk.
    std::fs::write(dir.path().join("usage"), b"in the way").unwrap();
    let error = producer.produce(1, 10, 0, metadata()).unwrap_err();
    assert_eq!(error.code(), "io", "{error}");
    std::fs::remove_file(dir.path().join("usage")).unwrap();
    // The next report covers the window the failed one would have.
    let report = producer.produce(1, 30, 0, metadata()).unwrap();
    let mut want = expected(1, 30);
    want.journal_bytes = report.report.counted.journal_bytes;
    assert_eq!(report.report.counted, want);
}
