use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use everarcade_testkit::temp::TempDir;
use everarcade_usage::{
    Counters, DeliveryConfig, Metadata, Pending, Sink, SinkConfig, backoff, deliver,
};
use tokio::sync::Notify;

use crate::common::{Mode, TestSink, fixed_keys, forge_journal, producer};

fn config() -> DeliveryConfig {
    DeliveryConfig {
        batch_size: 2,
        submit_timeout: Duration::from_millis(300),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(80),
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter() {
    let config = config();
    for attempt in 0..40 {
        let base = (20u64 << attempt.min(20)).min(80);
        let delay = backoff(&config, attempt).as_millis() as u64;
        assert!(
            delay >= base / 2 && delay <= base,
            "attempt {attempt}: {delay} ms"
        );
    }
    let delays: std::collections::BTreeSet<_> = (0..20).map(|_| backoff(&config, 5)).collect();
    assert!(delays.len() > 1, "jitter varies the delay");
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_sink_keeps_the_backlog_until_it_accepts() {
    let temp = TempDir::new("usage-deliver");
    let dir = forge_journal(temp.path(), 50, 1 << 20);
    let producer = Arc::new(producer(&dir, fixed_keys(&dir)));
    let server = TestSink::start(Mode::Refuse).await;
    let counters = Arc::new(Counters::default());
    let pending = Arc::new(Pending::new(counters.clone()));
    let wake = Arc::new(Notify::new());
    let sink = Sink::new(&SinkConfig::Http {
        url: server.url.clone(),
        ca: None,
    })
    .unwrap();
    let task = tokio::spawn(deliver(
        sink,
        producer.clone(),
        pending.clone(),
        wake.clone(),
        config(),
    ));
    let windows = [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50)];
    let mut digests = Vec::new();
    for (first, last) in windows {
        let report = producer
            .produce(first, last, 0, Metadata::default())
            .unwrap();
        digests.push(report.digest.to_hex());
        pending.add(&report.report.file_name(), ["http"]);
        wake.notify_one();
    }
    wait_for("retries", Duration::from_secs(10), || {
        counters.submit_retries.load(Ordering::Relaxed) >= 3
    })
    .await;
    assert_eq!(counters.backlog_reports.load(Ordering::Relaxed), 5);
    assert_eq!(counters.submitted.load(Ordering::Relaxed), 0);
    assert!(producer.backlog().pending("http", &windows).len() == 5);

    server.set(Mode::Accept);
    wait_for("delivery", Duration::from_secs(10), || pending.is_empty()).await;
    assert_eq!(counters.backlog_reports.load(Ordering::Relaxed), 0);
    assert_eq!(counters.submitted.load(Ordering::Relaxed), 5);
    assert!(producer.backlog().pending("http", &windows).is_empty());
    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.keys().cloned().collect::<Vec<_>>(), {
        let mut sorted = digests.clone();
        sorted.sort();
        sorted
    });
    assert!(
        received.values().all(|(_, times)| *times == 1),
        "each report once"
    );
    // Batches of at most 2: 5 reports took at least 3 accepted requests.
    assert!(server.requests.load(Ordering::SeqCst) >= 3);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_damaged_in_the_backlog_is_rebuilt_before_it_is_sent() {
    let temp = TempDir::new("usage-deliver-damaged");
    let dir = forge_journal(temp.path(), 20, 1 << 20);
    let producer = Arc::new(producer(&dir, fixed_keys(&dir)));
    let report = producer.produce(1, 20, 0, Metadata::default()).unwrap();
    let path = producer.backlog().report_path(&report.report.file_name());
    std::fs::write(&path, &report.bytes[..10]).unwrap();
    let server = TestSink::start(Mode::Accept).await;
    let counters = Arc::new(Counters::default());
    let pending = Arc::new(Pending::new(counters.clone()));
    pending.add(&report.report.file_name(), ["http"]);
    let sink = Sink::new(&SinkConfig::Http {
        url: server.url.clone(),
        ca: None,
    })
    .unwrap();
    let task = tokio::spawn(deliver(
        sink,
        producer.clone(),
        pending.clone(),
        Arc::new(Notify::new()),
        config(),
    ));
    wait_for("delivery", Duration::from_secs(10), || pending.is_empty()).await;
    task.abort();
    let received = server.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let (bytes, _) = received.values().next().unwrap();
    let sent = everarcade_usage::SignedReport::decode(bytes).unwrap();
    assert_eq!(sent.report.flags, everarcade_usage::report::FLAG_REBUILT);
    assert_eq!(sent.report.counted, report.report.counted);
    assert_eq!(std::fs::read_dir(dir.quarantine()).unwrap().count(), 1);
}
