//! The record stream: records framed by an authority reach a follower's
//! world through the framing and `stream::apply`, ending in equal roots and
//! journals; a damaged stream is refused before any record is applied.

use std::path::Path;
use std::sync::Arc;

use everarcade_federation::stream::{apply, decode_stream, encode_stream};
use everarcade_federation::{Position, WireRecord};
use everarcade_store::{JournalReader, SimStorage, Storage, WorldDir};
use everarcade_testkit::arena::arena;
use everarcade_testkit::bots::Bots;
use everarcade_testkit::world_id;
use everarcade_world::{DurableWorld, WorldConfig};

fn create(storage: &SimStorage) -> DurableWorld {
    let fixture = arena();
    DurableWorld::create(
        Arc::new(storage.clone()),
        WorldDir::new(Path::new("/sim"), &world_id()),
        world_id(),
        fixture.engine.clone(),
        fixture.compiled.clone(),
        WorldConfig::default(),
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
    let disk = SimStorage::new();
    let mut world = create(&disk);
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
    let mut applied_head: Position = follower.follow_head().into();
    assert_eq!(applied_head.ordinal, 0);
    for chunk in records[1..].chunks(5) {
        let mut stream = Vec::new();
        encode_stream(chunk, &mut stream);
        let decoded = decode_stream(&stream).expect("the stream decodes");
        assert_eq!(decoded, chunk);
        let applied = apply(&mut follower, &decoded).expect("the records apply");
        applied_head = applied.applied.into();
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
