//! The JetStream transport and the authority lease against the machine's
//! real NATS server (127.0.0.1:4222, JetStream on), each test with its own
//! stream and bucket names; the "NATS goes away" test runs a private
//! nats-server it starts and stops itself.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use everarcade_federation::fence::quarantine_suffix;
use everarcade_federation::lease::{Holder, LeaseBucket, LeaseConfig};
use everarcade_federation::nats::{DivergenceReport, NatsConfig, RecordLog, StreamHead};
use everarcade_federation::{FederationError, Position, RecordSource, Replicator, WireRecord};
use everarcade_protocol::{Hash, TickRoots, WorldId};
use everarcade_store::journal::{
    GenesisRecord, InputsRecord, JournalConfig, JournalReader, JournalWriter, Record, RecordKind,
    TickRecord, TornTail, decode_record_frame, encode_record,
};
use everarcade_store::{DiskStorage, Storage, WorldDir};

const NATS_ADDRESS: &str = "127.0.0.1:4222";
const NATS_START: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
     -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

/// The machine's NATS, or a failure saying how to start it.
fn nats(prefix: &str) -> NatsConfig {
    if TcpStream::connect_timeout(&NATS_ADDRESS.parse().unwrap(), Duration::from_secs(2)).is_err() {
        panic!("NATS (JetStream) is not reachable at {NATS_ADDRESS}; start it with: {NATS_START}");
    }
    let mut config = NatsConfig::new(format!("nats://{NATS_ADDRESS}"));
    // Names of this test's own: the test's name and the process id.
    config.prefix = format!("t{}_{prefix}", std::process::id());
    config
}

fn world(name: &str) -> WorldId {
    WorldId::new(name).unwrap()
}

/// `count` chained records (an inputs record per tick; the transport never
/// decodes bodies), the first chained to `start`.
fn chain(start: Hash, first_ordinal: u64, count: u64, salt: u64) -> Vec<WireRecord> {
    let mut prev = start;
    (first_ordinal..first_ordinal + count)
        .map(|ordinal| {
            let body = Record::Inputs(InputsRecord {
                tick: ordinal * 1000 + salt,
                envelopes: Vec::new(),
            })
            .encode_body();
            let mut bytes = Vec::new();
            prev = encode_record(RecordKind::Inputs, &body, &prev, &mut bytes);
            WireRecord {
                ordinal,
                kind: RecordKind::Inputs,
                bytes,
            }
        })
        .collect()
}

fn checksum(record: &WireRecord) -> Hash {
    decode_record_frame(&record.bytes).unwrap().checksum
}

fn head_of(record: &WireRecord) -> StreamHead {
    StreamHead {
        ordinal: record.ordinal,
        checksum: checksum(record),
    }
}

fn position(record: &WireRecord) -> Position {
    Position {
        ordinal: record.ordinal,
        checksum: checksum(record),
        tick: 0,
    }
}

const C0: Hash = Hash([7; 32]);

async fn raw_stream(config: &NatsConfig, name: &str) -> jetstream::stream::Stream {
    let client = async_nats::connect(config.url.as_str()).await.unwrap();
    jetstream::new(client).get_stream(name).await.unwrap()
}

async fn message_count(config: &NatsConfig, name: &str) -> u64 {
    raw_stream(config, name)
        .await
        .get_info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn records_are_acknowledged_in_order_and_a_retried_publish_is_deduplicated() {
    let config = nats("dedup");
    let log = RecordLog::open(&config, &world("w-dedup")).await.unwrap();
    assert_eq!(
        log.names().subject,
        format!("{}.world.w-dedup.records", config.prefix)
    );
    assert_eq!(log.head().await.unwrap(), None);
    let records = chain(C0, 0, 5, 0);

    let replicator = log.replicator(None);
    replicator.replicate(records[..3].to_vec()).await.unwrap();
    replicator.replicate(records[3..].to_vec()).await.unwrap();
    assert_eq!(
        replicator
            .state()
            .replicated_end
            .load(std::sync::atomic::Ordering::SeqCst),
        5
    );
    assert_eq!(log.head().await.unwrap(), Some(head_of(&records[4])));
    for record in &records {
        assert_eq!(
            log.record(record.ordinal).await.unwrap().as_ref(),
            Some(record)
        );
    }

    // An authority that restarts without having seen the PubAcks of 3 and 4
    // publishes them again: the same message ids, no second copy.
    let again = log.replicator(Some(head_of(&records[2])));
    again.replicate(records[3..].to_vec()).await.unwrap();
    assert_eq!(message_count(&config, &log.names().stream).await, 5);
    assert!(
        !again
            .state()
            .fenced
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    // ... and it goes on from there.
    let more = chain(checksum(&records[4]), 5, 1, 0);
    again.replicate(more.clone()).await.unwrap();
    assert_eq!(log.head().await.unwrap(), Some(head_of(&more[0])));

    // A plain duplicate on the wire (the same Nats-Msg-Id) is answered as one.
    let client = async_nats::connect(config.url.as_str()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", checksum(&records[1]).to_hex().as_str());
    let ack = jetstream::new(client)
        .publish_with_headers(
            log.names().subject.clone(),
            headers,
            records[1].bytes.clone().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(ack.sequence, 2);
    assert_eq!(message_count(&config, &log.names().stream).await, 6);
    log.delete().await.unwrap();
}

#[tokio::test]
async fn a_publisher_whose_journal_is_not_the_streams_is_fenced() {
    let config = nats("fence");
    let log = RecordLog::open(&config, &world("w-fence")).await.unwrap();
    let ours = chain(C0, 0, 3, 0);
    let authority = log.replicator(None);
    authority.replicate(ours.clone()).await.unwrap();

    // A second node forked after record 1 (its record 2 is not ours) and
    // believes the stream ends at 1: refused, and fenced for good.
    let forked = chain(checksum(&ours[1]), 2, 2, 99);
    let stale = log.replicator(Some(head_of(&ours[1])));
    let error = stale.replicate(forked[..1].to_vec()).await.unwrap_err();
    assert_eq!(error.code(), "fenced", "{error}");
    assert!(
        stale
            .state()
            .fenced
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    let error = stale.replicate(forked[1..].to_vec()).await.unwrap_err();
    assert_eq!(error.code(), "fenced", "{error}");
    assert_eq!(log.record(2).await.unwrap().as_ref(), Some(&ours[2]));

    // Two nodes that both believe they are the authority at record 2 race
    // for record 3: exactly one PubAck.
    let left = log.replicator(Some(head_of(&ours[2])));
    let right = log.replicator(Some(head_of(&ours[2])));
    let left_record = chain(checksum(&ours[2]), 3, 1, 1);
    let right_record = chain(checksum(&ours[2]), 3, 1, 2);
    let (left_answer, right_answer) = tokio::join!(
        left.replicate(left_record.clone()),
        right.replicate(right_record.clone())
    );
    let winners = [left_answer.is_ok(), right_answer.is_ok()];
    assert_eq!(
        winners.iter().filter(|won| **won).count(),
        1,
        "{left_answer:?} {right_answer:?}"
    );
    let (winner, loser) = if winners[0] {
        (&left_record[0], right_answer.unwrap_err())
    } else {
        (&right_record[0], left_answer.unwrap_err())
    };
    assert_eq!(loser.code(), "fenced", "{loser}");
    assert_eq!(log.record(3).await.unwrap().as_ref(), Some(winner));
    assert_eq!(message_count(&config, &log.names().stream).await, 4);
    log.delete().await.unwrap();
}

#[tokio::test]
async fn a_follower_resumes_from_its_own_journal_head() {
    let config = nats("resume");
    let log = RecordLog::open(&config, &world("w-resume")).await.unwrap();
    let records = chain(C0, 0, 12, 0);
    log.replicator(None)
        .replicate(records[..10].to_vec())
        .await
        .unwrap();

    // A follower with genesis reads everything after it.
    let mut source = log.source("follower-a").unwrap();
    source.set_wait(Duration::from_millis(300));
    let got = source.next(position(&records[0])).await.unwrap();
    assert_eq!(got, records[1..10].to_vec());
    // It journaled through 9: the next call acknowledges that and waits.
    assert_eq!(
        source.next(position(&records[9])).await.unwrap(),
        Vec::new()
    );
    drop(source);

    // It restarts with a journal that lost its tail (head 5): the durable
    // consumer is past it; the gap is seen and 6.. fetched again.
    let mut source = log.source("follower-a").unwrap();
    source.set_wait(Duration::from_millis(300));
    let got = source.next(position(&records[5])).await.unwrap();
    assert_eq!(got, records[6..10].to_vec());
    drop(source);

    // Another follower journaled only 1..3 of what it was handed: the
    // next call brings 4.. again.
    let mut source = log.source("follower-b").unwrap();
    source.set_wait(Duration::from_millis(300));
    assert_eq!(
        source.next(position(&records[0])).await.unwrap(),
        records[1..10].to_vec()
    );
    assert_eq!(
        source.next(position(&records[3])).await.unwrap(),
        records[4..10].to_vec()
    );
    drop(source);
    // It restarts with a journal through 7 while new records arrive.
    let mut source = log.source("follower-b").unwrap();
    source.set_wait(Duration::from_millis(300));
    log.replicator(Some(head_of(&records[9])))
        .replicate(records[10..].to_vec())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut head = position(&records[7]);
    while got.len() < 4 {
        let batch = source.next(head).await.unwrap();
        if let Some(last) = batch.last() {
            head = position(last);
        }
        got.extend(batch);
    }
    assert_eq!(got, records[8..12].to_vec());

    // A follower whose head is not the stream's record there forked.
    let forked = chain(checksum(&records[4]), 5, 1, 77);
    let mut source = log.source("follower-c").unwrap();
    let error = source.next(position(&forked[0])).await.unwrap_err();
    assert_eq!(error.code(), "peer_diverged", "{error}");
    assert!(error.to_string().contains("record 5 "), "{error}");
    log.delete().await.unwrap();
}

/// A follower's divergence report is kept in the divergence bucket: an
/// authority that starts listening after it was written (a restart, a new
/// authority after failover) still reads it, then each new one; it never
/// enters the record stream, and the follower removes it once its journal
/// holds the reported tick again.
#[tokio::test]
async fn a_divergence_report_written_before_the_authority_listens_is_still_read() {
    let config = nats("diverge");
    let log = RecordLog::open(&config, &world("w-diverge")).await.unwrap();
    assert_eq!(
        log.names().divergence_bucket,
        format!("{}_divergence", config.prefix)
    );
    assert_eq!(
        log.names().divergence_key("follower-d"),
        "w-diverge.follower-d"
    );
    let records = chain(C0, 0, 3, 0);
    log.replicator(None)
        .replicate(records.clone())
        .await
        .unwrap();
    // Written while nobody listens.
    let mut source = log.source("follower-d").unwrap();
    source.report_divergence(position(&records[2]), 7).await;
    let reported = DivergenceReport {
        follower: "follower-d".into(),
        durable_record: 2,
        tick: 7,
    };
    // Another world's report in the same bucket is not this world's.
    let other = RecordLog::open(&config, &world("w-other")).await.unwrap();
    other
        .report_divergence(&DivergenceReport {
            follower: "follower-x".into(),
            durable_record: 1,
            tick: 3,
        })
        .await
        .unwrap();

    let reports = log.divergences().await.unwrap();
    let mut reports = std::pin::pin!(reports);
    assert_eq!(next_report(&mut reports).await, reported);
    // One written while it listens arrives too.
    let mut late = log.source("follower-e").unwrap();
    late.report_divergence(position(&records[1]), 5).await;
    let second = next_report(&mut reports).await;
    assert_eq!((second.follower.as_str(), second.tick), ("follower-e", 5));
    assert_eq!(log.head().await.unwrap(), Some(head_of(&records[2])));

    // A follower whose journal still ends before the reported tick keeps
    // its report; one that holds the tick record again removes it.
    let before = Position {
        tick: 6,
        ..position(&records[2])
    };
    let mut source = log.source("follower-d").unwrap();
    source.set_wait(Duration::from_millis(100));
    assert_eq!(source.next(before).await.unwrap(), Vec::new());
    assert_eq!(
        log.divergence_report("follower-d").await.unwrap(),
        Some(reported)
    );
    let mut source = log.source("follower-d").unwrap();
    source.set_wait(Duration::from_millis(100));
    let past = Position { tick: 7, ..before };
    assert_eq!(source.next(past).await.unwrap(), Vec::new());
    assert_eq!(log.divergence_report("follower-d").await.unwrap(), None);
    let reports = log.divergences().await.unwrap();
    let mut reports = std::pin::pin!(reports);
    assert_eq!(next_report(&mut reports).await.follower, "follower-e");

    log.delete_divergences().await.unwrap();
    other.delete().await.unwrap();
    log.delete().await.unwrap();
}

/// The next divergence report, within 5 s.
async fn next_report(
    reports: &mut (impl futures_util::Stream<Item = DivergenceReport> + Unpin),
) -> DivergenceReport {
    tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(reports),
    )
    .await
    .expect("a report arrives within 5 s")
    .expect("the watch is open")
}

#[tokio::test]
async fn a_missing_record_is_a_gap_and_a_forged_one_is_refused() {
    let config = nats("gap");
    let log = RecordLog::open(&config, &world("w-gap")).await.unwrap();
    let records = chain(C0, 0, 6, 0);
    log.replicator(None)
        .replicate(records.clone())
        .await
        .unwrap();
    // The stream loses record 3 (stream sequence 4).
    assert!(
        raw_stream(&config, &log.names().stream)
            .await
            .delete_message(4)
            .await
            .unwrap()
    );

    let mut source = log.source("follower").unwrap();
    source.set_wait(Duration::from_millis(300));
    let got = source.next(position(&records[0])).await.unwrap();
    assert_eq!(got, records[1..3].to_vec(), "what chains before the gap");
    let error = source.next(position(&records[2])).await.unwrap_err();
    assert!(
        matches!(
            error,
            FederationError::Gap {
                expected: 3,
                found: 4
            }
        ),
        "{error}"
    );
    assert_eq!(error.code(), "replication_gap");
    log.delete().await.unwrap();

    // Messages that are not our records: garbage, then a record that does
    // not chain. Neither is handed on.
    let config = nats("forged");
    let log = RecordLog::open(&config, &world("w-forged")).await.unwrap();
    let records = chain(C0, 0, 3, 0);
    log.replicator(None)
        .replicate(records.clone())
        .await
        .unwrap();
    let client = async_nats::connect(config.url.as_str()).await.unwrap();
    let context = jetstream::new(client);
    context
        .publish(
            log.names().subject.clone(),
            b"not a record at all".to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let mut source = log.source("follower").unwrap();
    source.set_wait(Duration::from_millis(300));
    let error = source.next(position(&records[2])).await.unwrap_err();
    assert!(
        matches!(error, FederationError::Refused { ordinal: 3, .. }),
        "{error}"
    );
    assert_eq!(error.code(), "record_refused");
    log.delete().await.unwrap();

    let config = nats("unchained");
    let log = RecordLog::open(&config, &world("w-unchained"))
        .await
        .unwrap();
    let records = chain(C0, 0, 3, 0);
    log.replicator(None)
        .replicate(records.clone())
        .await
        .unwrap();
    let unchained = chain(Hash([1; 32]), 3, 1, 0);
    let client = async_nats::connect(config.url.as_str()).await.unwrap();
    jetstream::new(client)
        .publish(
            log.names().subject.clone(),
            unchained[0].bytes.clone().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let mut source = log.source("follower").unwrap();
    source.set_wait(Duration::from_millis(300));
    let error = source.next(position(&records[2])).await.unwrap_err();
    assert!(
        matches!(error, FederationError::Refused { ordinal: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("does not chain"), "{error}");
    log.delete().await.unwrap();
}

#[tokio::test]
async fn bad_settings_and_an_absent_server_are_clear_errors() {
    let mut config = nats("settings");
    config.url = "http://127.0.0.1:4222".into();
    let error = RecordLog::open(&config, &world("w-settings"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.code(), "federation_config", "{error}");

    let mut config = nats("settings");
    config.prefix = "Bad.Prefix".into();
    let error = RecordLog::open(&config, &world("w-settings"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.code(), "federation_config", "{error}");

    let mut config = nats("settings");
    config.url = format!("nats://127.0.0.1:{}", free_port());
    config.request_timeout = Duration::from_millis(500);
    let error = RecordLog::open(&config, &world("w-settings"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.code(), "replication_unavailable", "{error}");

    let config = nats("settings");
    let log = RecordLog::open(&config, &world("w-settings"))
        .await
        .unwrap();
    assert_eq!(
        log.source("Not Valid").err().unwrap().code(),
        "federation_config"
    );
    log.delete().await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private nats-server this test starts and stops (killed when dropped).
struct PrivateNats {
    child: Child,
}

impl PrivateNats {
    fn start(port: u16, store: &std::path::Path) -> PrivateNats {
        PrivateNats::start_with(port, store, &[])
    }

    fn start_with(port: u16, store: &std::path::Path, extra: &[&str]) -> PrivateNats {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("nats-server (Debian package nats-server) cannot start: {error}")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateNats { child }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn when_jetstream_goes_away_publishing_is_unavailable_and_resumes_when_it_returns() {
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = PrivateNats::start(port, store.path());
    let mut config = NatsConfig::new(format!("nats://127.0.0.1:{port}"));
    config.request_timeout = Duration::from_millis(500);
    let log = RecordLog::open(&config, &world("w-away")).await.unwrap();
    let records = chain(C0, 0, 6, 0);
    let replicator = log.replicator(None);
    replicator.replicate(records[..2].to_vec()).await.unwrap();

    drop(server);
    let started = Instant::now();
    let error = replicator
        .replicate(records[2..4].to_vec())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "replication_unavailable", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );

    // The records stay queued and reach the stream once it is back.
    let _server = PrivateNats::start(port, store.path());
    replicator.replicate(records[4..].to_vec()).await.unwrap();
    assert_eq!(log.head().await.unwrap(), Some(head_of(&records[5])));
    for record in &records {
        assert_eq!(
            log.record(record.ordinal).await.unwrap().as_ref(),
            Some(record)
        );
    }
}

#[tokio::test]
async fn a_record_over_the_servers_max_payload_stops_the_publisher_with_a_clear_error() {
    let store = tempfile::tempdir().unwrap();
    let config_file = store.path().join("server.conf");
    std::fs::write(&config_file, "max_payload: 2048\n").unwrap();
    let port = free_port();
    let _server = PrivateNats::start_with(
        port,
        &store.path().join("js"),
        &["-c", config_file.to_str().unwrap()],
    );
    let config = NatsConfig::new(format!("nats://127.0.0.1:{port}"));
    let log = RecordLog::open(&config, &world("w-payload")).await.unwrap();
    let small = chain(C0, 0, 1, 0);
    let replicator = log.replicator(None);
    replicator.replicate(small.clone()).await.unwrap();

    let body = vec![0u8; 4096];
    let mut bytes = Vec::new();
    encode_record(RecordKind::Inputs, &body, &checksum(&small[0]), &mut bytes);
    let large = WireRecord {
        ordinal: 1,
        kind: RecordKind::Inputs,
        bytes,
    };
    let error = replicator.replicate(vec![large]).await.unwrap_err();
    assert_eq!(error.code(), "replication_unavailable", "{error}");
    assert!(error.to_string().contains("max_payload"), "{error}");
    assert!(
        replicator
            .state()
            .stalled
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    assert_eq!(log.head().await.unwrap(), Some(head_of(&small[0])));
}

fn holder(url: &str, tick: u64) -> Holder {
    Holder {
        url: url.into(),
        node_id: format!("node-{url}"),
        tick,
    }
}

async fn bucket(prefix: &str, ttl: Duration) -> LeaseBucket {
    let config = nats(prefix);
    let lease = LeaseConfig {
        bucket: format!("{}_authority", config.prefix),
        ttl,
    };
    LeaseBucket::open(&config, &lease).await.unwrap()
}

#[tokio::test]
async fn of_two_contenders_one_takes_the_lease() {
    let bucket = bucket("contend", Duration::from_secs(30)).await;
    let world = world("w-contend");
    assert_eq!(bucket.current(&world).await.unwrap(), None);
    let (a, b) = tokio::join!(
        bucket.take(&world, holder("http://a", 1)),
        bucket.take(&world, holder("http://b", 1))
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let (winner, loser) = match (a, b) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
        _ => unreachable!("exactly one won"),
    };
    assert_eq!(loser.code(), "lease_held", "{loser}");
    assert!(loser.to_string().contains(&winner.holder.url), "{loser}");
    assert_eq!(
        bucket.current(&world).await.unwrap(),
        Some((winner.holder.clone(), winner.revision))
    );
    assert!(winner.is_valid());

    // Released, the other may take it at once.
    bucket.release(winner).await.unwrap();
    assert_eq!(bucket.current(&world).await.unwrap(), None);
    let taken = bucket.take(&world, holder("http://c", 2)).await.unwrap();
    assert_eq!(taken.holder.url, "http://c");
    bucket.delete().await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_by_another_and_the_old_holders_renewal_fails() {
    let ttl = Duration::from_secs(1);
    let bucket = bucket("expire", ttl).await;
    let world = world("w-expire");
    let taken_at = Instant::now();
    let mut first = bucket.take(&world, holder("http://a", 5)).await.unwrap();
    assert_eq!(
        bucket
            .take(&world, holder("http://b", 5))
            .await
            .unwrap_err()
            .code(),
        "lease_held"
    );

    // Nobody renews: the server lets it go after the TTL, not before.
    let second = loop {
        match bucket.take(&world, holder("http://b", 6)).await {
            Ok(lease) => break lease,
            Err(error) => assert_eq!(error.code(), "lease_held", "{error}"),
        }
        assert!(
            taken_at.elapsed() < ttl * 4,
            "the lease did not expire within 4 TTLs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        taken_at.elapsed() >= ttl * 9 / 10,
        "taken after {:?}",
        taken_at.elapsed()
    );
    // The old holder's own deadline had passed before that.
    assert!(!first.is_valid());
    let error = bucket.renew(&mut first, 7).await.unwrap_err();
    assert_eq!(error.code(), "lease_lost", "{error}");
    assert_eq!(
        bucket.current(&world).await.unwrap().unwrap().0.url,
        "http://b"
    );
    assert!(second.is_valid());
    bucket.delete().await.unwrap();
}

#[tokio::test]
async fn a_renewal_on_a_stale_revision_fails() {
    let bucket = bucket("stale", Duration::from_secs(30)).await;
    let world = world("w-stale");
    let mut lease = bucket.take(&world, holder("http://a", 1)).await.unwrap();
    let mut stale = lease.clone();
    bucket.renew(&mut lease, 2).await.unwrap();
    assert!(lease.revision > stale.revision);
    assert_eq!(
        bucket.current(&world).await.unwrap().unwrap(),
        (holder("http://a", 2), lease.revision)
    );
    let error = bucket.renew(&mut stale, 3).await.unwrap_err();
    assert_eq!(error.code(), "lease_lost", "{error}");
    bucket.renew(&mut lease, 4).await.unwrap();
    bucket.delete().await.unwrap();
}

#[tokio::test]
async fn a_kept_lease_stays_held_and_is_lost_once_someone_else_writes_it() {
    let ttl = Duration::from_secs(1);
    let bucket = bucket("keep", ttl).await;
    let world = world("w-keep");
    let lease = bucket.take(&world, holder("http://a", 1)).await.unwrap();
    let first_revision = lease.revision;
    let tick = Arc::new(AtomicU64::new(1));
    let keeper = bucket.keep(lease, tick.clone());
    tick.store(40, std::sync::atomic::Ordering::SeqCst);
    // Three TTLs later it is still held, renewed, and says the new tick.
    tokio::time::sleep(ttl * 3).await;
    assert!(keeper.is_held());
    assert!(keeper.revision() > first_revision);
    let (current, _) = bucket.current(&world).await.unwrap().unwrap();
    assert_eq!(current, holder("http://a", 40));
    assert_eq!(
        bucket
            .take(&world, holder("http://b", 1))
            .await
            .unwrap_err()
            .code(),
        "lease_held"
    );

    // An operator removes it (as `federation leave` elsewhere would): the
    // next renewal fails and admission must stop within the TTL.
    let config = nats("keep");
    let client = async_nats::connect(config.url.as_str()).await.unwrap();
    let store = jetstream::new(client)
        .get_key_value(format!("{}_authority", config.prefix))
        .await
        .unwrap();
    store.purge(world.as_str()).await.unwrap();
    let purged_at = Instant::now();
    while keeper.is_held() {
        assert!(
            purged_at.elapsed() < ttl,
            "still held {:?} after the purge",
            purged_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(keeper);
    bucket.delete().await.unwrap();
}

/// A world's journal on disk: genesis, then an inputs and a tick record per
/// tick, one commit per tick, small segments so that it spans several.
/// Returns the records as carried on the wire.
fn journal_on_disk(dir: &WorldDir, world: &WorldId, ticks: u64) -> Vec<WireRecord> {
    let storage: Arc<dyn Storage> = Arc::new(DiskStorage);
    storage.create_dir_all(&dir.journal()).unwrap();
    let genesis = GenesisRecord {
        world: world.clone(),
        package_root: Hash([1; 32]),
        profile_hash: Hash([2; 32]),
        genesis_root: C0,
        state_root: Hash([3; 32]),
        receipt: None,
    };
    let config = JournalConfig {
        segment_bytes_max: 400,
    };
    let mut writer =
        JournalWriter::create(storage.clone(), &dir.journal(), &genesis, config).unwrap();
    for tick in 1..=ticks {
        writer
            .append(&Record::Inputs(InputsRecord {
                tick,
                envelopes: Vec::new(),
            }))
            .unwrap();
        writer
            .append(&Record::Tick(TickRecord {
                roots: TickRoots {
                    tick,
                    input_root: Hash([4; 32]),
                    receipt_root: Hash([5; 32]),
                    state_root: Hash([tick as u8; 32]),
                    continuity_root: Hash([6; 32]),
                },
                input_count: 0,
                receipts: Vec::new(),
            }))
            .unwrap();
        writer.commit().unwrap();
    }
    drop(writer);
    read_back(&*storage, dir).0
}

/// The journal's records as wire records, and its torn tail if any.
fn read_back(storage: &dyn Storage, dir: &WorldDir) -> (Vec<WireRecord>, Option<TornTail>) {
    let mut reader = JournalReader::open(storage, &dir.journal()).unwrap();
    let mut records = Vec::new();
    let mut prev = C0;
    while let Some(raw) = reader.next().unwrap() {
        let mut bytes = Vec::new();
        prev = encode_record(raw.kind, &raw.body, &prev, &mut bytes);
        assert_eq!(prev, raw.checksum);
        records.push(WireRecord {
            ordinal: records.len() as u64,
            kind: raw.kind,
            bytes,
        });
    }
    (records, reader.torn_tail().cloned())
}

#[tokio::test]
async fn a_fenced_authority_finds_where_it_parted_and_quarantines_its_unreplicated_suffix() {
    let config = nats("suffix");
    let world = world("w-suffix");
    let root = tempfile::tempdir().unwrap();
    let dir = WorldDir::new(root.path(), &world);
    let ours = journal_on_disk(&dir, &world, 6);
    assert_eq!(ours.len(), 13);
    let segments = DiskStorage.list(&dir.journal()).unwrap();
    assert!(
        segments.len() >= 3,
        "the journal spans segments: {segments:?}"
    );

    // Records 0..=6 (through tick 3) reached the stream; then another node
    // took over and appended its own record 7.
    let log = RecordLog::open(&config, &world).await.unwrap();
    log.replicator(None)
        .replicate(ours[..7].to_vec())
        .await
        .unwrap();
    let theirs = chain(checksum(&ours[6]), 7, 1, 5);
    log.replicator(Some(head_of(&ours[6])))
        .replicate(theirs.clone())
        .await
        .unwrap();
    // Our publisher, at record 7, is fenced.
    let error = log
        .replicator(Some(head_of(&ours[6])))
        .replicate(ours[7..9].to_vec())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "fenced");
    // Its second record, published right behind the refused one, did not
    // land on theirs either (the stream's length would have let it).
    assert_eq!(message_count(&config, &log.names().stream).await, 8);
    assert_eq!(log.head().await.unwrap(), Some(head_of(&theirs[0])));

    let local: Vec<(u64, Hash)> = ours
        .iter()
        .map(|record| (record.ordinal, checksum(record)))
        .collect();
    assert_eq!(log.last_shared(&local).await.unwrap(), Some(6));
    assert_eq!(log.last_shared(&local[9..]).await.unwrap(), None);

    // Checkpoints at ticks 2 (kept) and 5 (past the cut).
    let storage = DiskStorage;
    storage.create_dir_all(&dir.checkpoints()).unwrap();
    storage
        .write_synced(&dir.checkpoint(2), b"checkpoint 2")
        .unwrap();
    storage
        .write_synced(&dir.checkpoint(5), b"checkpoint 5")
        .unwrap();

    let summary = quarantine_suffix(&storage, &dir, 6).unwrap();
    assert_eq!(summary.kept_through, 6);
    assert_eq!(summary.kept_checksum, checksum(&ours[6]));
    assert_eq!(summary.kept_tick, 3);
    assert_eq!(summary.records, 6);

    // The journal now ends at record 6, whole.
    let (kept, torn) = read_back(&storage, &dir);
    assert_eq!(kept, ours[..7].to_vec());
    assert_eq!(torn, None);
    // Nothing was deleted: every suffix record's bytes are in the
    // quarantine, as is the checkpoint past the cut; the kept one stays.
    let quarantined: Vec<Vec<u8>> = summary
        .moved
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    assert!(
        summary
            .moved
            .iter()
            .all(|path| path.starts_with(dir.quarantine()))
    );
    for record in &ours[7..] {
        assert!(
            quarantined.iter().any(|file| contains(file, &record.bytes)),
            "record {} is in the quarantine",
            record.ordinal
        );
    }
    assert!(quarantined.iter().any(|file| file == b"checkpoint 5"));
    assert!(storage.exists(&dir.checkpoint(2)));
    assert!(!storage.exists(&dir.checkpoint(5)));
    let suffix_bytes: u64 = quarantined
        .iter()
        .filter(|file| *file != b"checkpoint 5")
        .map(|file| file.len() as u64)
        .sum();
    assert_eq!(suffix_bytes, summary.bytes);

    // Again: nothing more to move.
    let again = quarantine_suffix(&storage, &dir, 6).unwrap();
    assert_eq!((again.records, again.bytes, again.moved.len()), (0, 0, 0));

    // And it follows the stream again from its head.
    let mut source = log.source("returning").unwrap();
    source.set_wait(Duration::from_millis(300));
    assert_eq!(source.next(position(&kept[6])).await.unwrap(), theirs);
    log.delete().await.unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
