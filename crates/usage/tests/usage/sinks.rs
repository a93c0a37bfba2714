use std::time::{Duration, Instant};

use everarcade_testkit::temp::TempDir;
use everarcade_usage::sink::dir_file_name;
use everarcade_usage::{Metadata, SignedReport, Sink, SinkConfig};

use crate::common::{Mode, TestSink, fixed_keys, forge_journal, producer};

fn reports(temp: &TempDir, windows: &[(u64, u64)]) -> Vec<SignedReport> {
    let dir = forge_journal(temp.path(), 40, 1 << 20);
    let producer = producer(&dir, fixed_keys(&dir));
    windows
        .iter()
        .map(|(first, last)| {
            producer
                .build(*first, *last, 0, Metadata::default())
                .unwrap()
        })
        .collect()
}

const TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test]
async fn http_sink_answers_are_checked() {
    let temp = TempDir::new("usage-sink-http");
    let batch = reports(&temp, &[(1, 10), (11, 20)]);
    let server = TestSink::start(Mode::Refuse).await;
    let mut sink = Sink::new(&SinkConfig::Http {
        url: server.url.clone(),
        ca: None,
    })
    .unwrap();
    let error = sink.submit(&batch, TIMEOUT).await.unwrap_err();
    assert_eq!(error.code, "sink_refused", "{error}");
    assert!(error.reason.contains("503"), "{error}");

    server.set(Mode::Garbage);
    let error = sink.submit(&batch, TIMEOUT).await.unwrap_err();
    assert_eq!(error.code, "sink_bad_answer", "{error}");

    server.set(Mode::Hang);
    let started = Instant::now();
    let error = sink.submit(&batch, TIMEOUT).await.unwrap_err();
    assert_eq!(error.code, "sink_timeout", "{error}");
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(2));

    server.set(Mode::Accept);
    let acked = sink.submit(&batch, TIMEOUT).await.unwrap();
    assert_eq!(acked.len(), 2);
    // Sent again (a crash before the ack was recorded): stored once.
    let again = sink.submit(&batch, TIMEOUT).await.unwrap();
    assert_eq!(again.len(), 2);
    let received = server.received.lock().unwrap();
    assert_eq!(received.len(), 2);
    for report in &batch {
        let (bytes, times) = &received[&report.digest.to_hex()];
        assert_eq!(bytes, &report.bytes);
        assert_eq!(*times, 2);
    }
}

#[tokio::test]
async fn unreachable_and_misconfigured_http_sinks() {
    let temp = TempDir::new("usage-sink-unreachable");
    let batch = reports(&temp, &[(1, 3)]);
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut sink = Sink::new(&SinkConfig::Http {
        url: format!("http://127.0.0.1:{port}/usage"),
        ca: None,
    })
    .unwrap();
    let error = sink.submit(&batch, TIMEOUT).await.unwrap_err();
    assert_eq!(error.code, "sink_unreachable", "{error}");
    for url in ["https://127.0.0.1:1/x", "ftp://host/x", "not a url"] {
        let error = Sink::new(&SinkConfig::Http {
            url: url.into(),
            ca: None,
        })
        .err()
        .expect("refused");
        assert_eq!(error.sink, "http", "{url}: {error}");
    }
}

fn redis_url() -> String {
    std::env::var("EVERARCADE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn redis_sink_adds_each_digest_once() {
    let temp = TempDir::new("usage-sink-redis");
    let batch = reports(&temp, &[(1, 10), (11, 20), (21, 40)]);
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = match client.get_multiplexed_async_connection().await {
        Ok(connection) => connection,
        Err(error) => panic!(
            "Redis is not reachable at {url} ({error}); start it with \
             `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no` \
             or point EVERARCADE_TEST_REDIS_URL at one"
        ),
    };
    let stream = format!("usage:test:{}", std::process::id());
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .arg(format!("{stream}:digests"))
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut sink = Sink::new(&SinkConfig::Redis {
        url: url.clone(),
        stream: stream.clone(),
    })
    .unwrap();
    let first = sink.submit(&batch[..2], TIMEOUT).await.unwrap();
    let second = sink.submit(&batch, TIMEOUT).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 3);
    assert_eq!(first[0].answer, second[0].answer, "the same entry id");
    let length: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(length, 3);
    let entries: redis::Value = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    let text = format!("{entries:?}");
    for report in &batch {
        assert!(text.contains(&report.digest.to_hex()));
    }
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .arg(format!("{stream}:digests"))
        .query_async(&mut connection)
        .await
        .unwrap();

    let mut down = Sink::new(&SinkConfig::Redis {
        url: "redis://127.0.0.1:1".into(),
        stream,
    })
    .unwrap();
    let error = down.submit(&batch, TIMEOUT).await.unwrap_err();
    assert!(
        ["sink_unreachable", "sink_timeout"].contains(&error.code),
        "{error}"
    );
}

#[tokio::test]
async fn dir_sink_writes_each_report_once() {
    let temp = TempDir::new("usage-sink-dir");
    let batch = reports(&temp, &[(1, 10), (11, 20)]);
    let out = temp.join("out");
    let mut sink = Sink::new(&SinkConfig::Dir { path: out.clone() }).unwrap();
    assert_eq!(sink.submit(&batch, TIMEOUT).await.unwrap().len(), 2);
    assert_eq!(sink.submit(&batch, TIMEOUT).await.unwrap().len(), 2);
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(names.len(), 2);
    for report in &batch {
        assert_eq!(
            std::fs::read(out.join(dir_file_name(report))).unwrap(),
            report.bytes
        );
    }
    // A directory that cannot be created.
    let blocker = temp.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let mut bad = Sink::new(&SinkConfig::Dir {
        path: blocker.join("sub"),
    })
    .unwrap();
    assert_eq!(
        bad.submit(&batch, TIMEOUT).await.unwrap_err().code,
        "sink_io"
    );
}
