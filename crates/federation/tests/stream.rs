//! The record stream: records framed by an authority reach a follower's
//! world through the framing and `stream::apply`, ending in equal roots and
//! journals; a damaged stream is refused before any record is applied.

use std::path::Path;
use std::sync::Arc;

use everarcade_federation::stream::{DurableEnd, JournalTail, apply, decode_stream, encode_stream};
use everarcade_federation::{Position, WireRecord};
use everarcade_store::{JournalReader, SimStorage, Storage, WorldDir};
use everarcade_testkit::arena::arena;
use everarcade_testkit::bots::Bots;
use everarcade_testkit::world_id;
use everarcade_world::{DurableWorld, WorldConfig};

fn create(storage: &SimStorage) -> DurableWorld {
    create_with(storage, WorldConfig::default())
}

fn create_with(storage: &SimStorage, config: WorldConfig) -> DurableWorld {
    let fixture = arena();
    DurableWorld::create(
        Arc::new(storage.clone()),
        WorldDir::new(Path::new("/sim"), &world_id()),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        config,
    )
    .expect("the world is created")
}

/// Every record of the journal on `storage`, as carried.
fn wire(storage: &SimStorage) -> Vec<WireRecord> {
    let dir = WorldDir::new(Path::new("/sim"), &world_id()).journal();
    let mut reader = JournalReader::open(storage as &dyn Storage, &dir).expect("the journal opens");
    let mut records = Vec::new();
    while let Some(raw) = reader.next().expect("the journal reads") {
        let segment = storage.read(&raw.path).expect("the segment reads");
        let start = raw.offset as usize;
        records.push(WireRecord {
            ordinal: records.len() as u64,
            kind: raw.kind,
            bytes: segment[start..start + raw.encoded_len() as usize].to_vec(),
        });
    }
    records
}

/// An authority that ran `ticks` ticks of 6 bots, group-committing every other input.
fn authority(ticks: u64) -> SimStorage {
    authority_with(ticks, WorldConfig::default())
}

fn authority_with(ticks: u64, config: WorldConfig) -> SimStorage {
    let disk = SimStorage::new();
    let mut world = create_with(&disk, config);
    let bots = Bots::new(6);
    for _ in 0..ticks {
        let inputs = bots
            .inputs(world.world_mut(), &arena().engine, 7)
            .expect("bots decide");
        for (index, envelope) in inputs.into_iter().enumerate() {
            world.admit(envelope).expect("admitted");
            if index % 2 == 1 {
                world.commit_inputs().expect("committed");
            }
        }
        world.execute_tick().expect("the tick runs");
    }
    world.close().expect("closed");
    disk
}

#[test]
fn framed_records_reach_a_follower_with_equal_roots_and_journal() {
    let disk = authority(10);
    let records = wire(&disk);
    let follower_disk = SimStorage::new();
    let mut follower = create(&follower_disk);
    let mut applied_head: Position = follower.durable_head().into();
    assert_eq!(applied_head.ordinal, 0);
    for chunk in records[1..].chunks(5) {
        let mut stream = Vec::new();
        encode_stream(chunk, &mut stream);
        let decoded = decode_stream(&stream).expect("the stream decodes");
        assert_eq!(decoded, chunk);
        let applied = apply(&mut follower, &decoded).expect("the records apply");
        applied_head = applied.durable.into();
    }
    assert_eq!(applied_head.ordinal, records.len() as u64 - 1);
    assert_eq!(applied_head.tick, 10);
    assert_eq!(wire(&follower_disk), records);
    let (authority_world, _) = DurableWorld::open(
        Arc::new(disk.clone()),
        WorldDir::new(Path::new("/sim"), &world_id()),
        world_id(),
        arena().engine.clone(),
        arena().compiled.clone(),
        WorldConfig::default(),
    )
    .expect("the authority reopens");
    assert_eq!(follower.roots(), authority_world.roots());
}

#[test]
fn a_damaged_stream_is_refused_whole() {
    let records = wire(&authority(2));
    let mut stream = Vec::new();
    encode_stream(&records[1..4], &mut stream);
    let code = |bytes: &[u8]| decode_stream(bytes).expect_err("refused").code();

    assert_eq!(code(&stream[..stream.len() - 1]), "record_stream_malformed");
    assert_eq!(code(&stream[..5]), "record_stream_malformed");

    let mut gap = Vec::new();
    encode_stream(&[records[1].clone(), records[3].clone()], &mut gap);
    let error = decode_stream(&gap).expect_err("a gap is refused");
    assert!(
        error.to_string().contains("record 3 follows record 1"),
        "{error}"
    );

    let mut huge = stream.clone();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(code(&huge), "record_stream_malformed");

    let mut kind = stream.clone();
    kind[12 + 4] = 9;
    assert_eq!(code(&kind), "record_stream_malformed");

    assert_eq!(decode_stream(&[]).expect("empty is no records"), Vec::new());
}

/// What `/records` serves: the records after `ordinal` (of `checksum`) up
/// to `end`, at most `max_bytes` of them (at least one).
fn read_after(
    storage: &dyn Storage,
    dir: &Path,
    ordinal: u64,
    checksum: &everarcade_protocol::Hash,
    end: DurableEnd,
    max_bytes: usize,
) -> Result<Vec<WireRecord>, everarcade_federation::FederationError> {
    JournalTail::after(storage, dir, ordinal, checksum, end)?.read(storage, end, max_bytes)
}

#[test]
fn an_authority_serves_the_records_after_a_position_up_to_its_durable_end() {
    let disk = authority(6);
    let records = wire(&disk);
    let dir = WorldDir::new(Path::new("/sim"), &world_id()).journal();
    let storage = &disk as &dyn Storage;
    let checksum_of = |ordinal: usize| {
        everarcade_store::journal::decode_record_frame(&records[ordinal].bytes)
            .expect("a good record")
            .checksum
    };
    let everything = DurableEnd {
        segment: 1,
        length: u64::MAX,
    };
    let all = read_after(storage, &dir, 0, &checksum_of(0), everything, usize::MAX)
        .expect("served from genesis");
    assert_eq!(all, records[1..]);
    let rest = read_after(storage, &dir, 4, &checksum_of(4), everything, usize::MAX)
        .expect("served from record 4");
    assert_eq!(rest, records[5..]);
    // A byte budget: whole records, at least one.
    let one = read_after(storage, &dir, 4, &checksum_of(4), everything, 1).expect("served");
    assert_eq!(one, records[5..6]);
    // Only what is durable: the end right after record 3.
    let header = 128u64;
    let length = header
        + records[..4]
            .iter()
            .map(|r| r.bytes.len() as u64)
            .sum::<u64>();
    let durable = DurableEnd { segment: 1, length };
    let upto = read_after(storage, &dir, 1, &checksum_of(1), durable, usize::MAX)
        .expect("served up to the durable end");
    assert_eq!(upto, records[2..4]);
    // A position not on this chain, or past its durable end.
    let other = read_after(storage, &dir, 2, &checksum_of(3), everything, usize::MAX)
        .expect_err("another chain");
    assert_eq!(other.code(), "peer_diverged");
    let past = read_after(storage, &dir, 5, &checksum_of(5), durable, usize::MAX)
        .expect_err("past the durable end");
    assert_eq!(past.code(), "peer_diverged");
}

/// The forward reader returns the same records a few at a time as all at
/// once, across segment boundaries, never past the durable
/// end, and refuses a position that is not on its chain.
#[test]
fn a_journal_tail_reads_forward_across_segments_up_to_the_durable_end() {
    let mut config = WorldConfig::default();
    config.journal.segment_bytes_max = 2048;
    let disk = authority_with(12, config);
    let records = wire(&disk);
    let dir = WorldDir::new(Path::new("/sim"), &world_id()).journal();
    let storage = &disk as &dyn Storage;
    let segments = storage
        .list(&dir)
        .unwrap()
        .iter()
        .filter(|name| name.ends_with(".seg"))
        .count() as u64;
    assert!(segments >= 3, "the journal spans {segments} segments");
    let checksum_of = |ordinal: usize| {
        everarcade_store::journal::decode_record_frame(&records[ordinal].bytes)
            .expect("a good record")
            .checksum
    };
    let everything = DurableEnd {
        segment: segments,
        length: u64::MAX,
    };
    // In steps of one record (a byte budget of 1), from genesis.
    let mut tail =
        JournalTail::after(storage, &dir, 0, &checksum_of(0), everything).expect("positioned");
    let mut read = Vec::new();
    loop {
        let step = tail.read(storage, everything, 1).expect("read");
        if step.is_empty() {
            break;
        }
        assert_eq!(step.len(), 1);
        read.extend(step);
    }
    assert_eq!(read, records[1..]);
    assert_eq!(tail.position().ordinal, records.len() as u64 - 1);
    // From the middle, everything at once, equal to the same records read
    // one at a time.
    let mut tail =
        JournalTail::after(storage, &dir, 7, &checksum_of(7), everything).expect("positioned");
    let rest = tail.read(storage, everything, usize::MAX).expect("read");
    assert_eq!(rest, read[7..]);
    assert_eq!(rest, records[8..]);
    // Only what is durable: the end right after the first segment's first
    // two records, then the rest once the end moves.
    let header = 128u64;
    let length = header
        + records[..2]
            .iter()
            .map(|r| r.bytes.len() as u64)
            .sum::<u64>();
    let mut tail =
        JournalTail::after(storage, &dir, 0, &checksum_of(0), everything).expect("positioned");
    let first = tail
        .read(storage, DurableEnd { segment: 1, length }, usize::MAX)
        .expect("read");
    assert_eq!(first, records[1..2]);
    let more = tail.read(storage, everything, usize::MAX).expect("read");
    assert_eq!(more, records[2..]);
    // A position not on this chain.
    let other = JournalTail::after(storage, &dir, 2, &checksum_of(3), everything)
        .expect_err("another chain");
    assert_eq!(other.code(), "peer_diverged");
}
