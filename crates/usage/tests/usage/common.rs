//! A forged world: a journal written with the store's writer, with receipts
//! chosen so every count is known, and operator keys from a fixed seed.

use std::path::Path;
use std::sync::Arc;

use everarcade_protocol::{
    Envelope, Hash, Outcome, Receipt, ReceiptKind, Tick, TickRoots, TrapClass, WorldId,
    test_signing_key,
};
use everarcade_store::journal::{GenesisRecord, InputsRecord, TickRecord};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, JournalConfig, JournalWriter, Record, Storage, WorldDir};
use everarcade_testkit::world_id;
use everarcade_usage::{Counted, Outcomes, Producer};

/// The world's `C(0)`.
pub const GENESIS_ROOT: Hash = Hash([3; 32]);

/// The fake continuity root of tick `t`.
pub fn continuity(tick: Tick) -> Hash {
    if tick == 0 {
        return GENESIS_ROOT;
    }
    Hash(*blake3::hash(&tick.to_le_bytes()).as_bytes())
}

/// Inputs executed in tick `t`.
pub fn inputs_in(tick: Tick) -> u64 {
    (tick * 7) % 4
}

fn outcome(tick: Tick, index: u64) -> Outcome {
    match (tick + index) % 4 {
        0 => Outcome::Applied,
        1 => Outcome::Rejected(3),
        2 => Outcome::Trapped(TrapClass::Unreachable),
        _ => Outcome::OutOfFuel,
    }
}

fn receipt(kind: ReceiptKind, outcome: Outcome, fuel: u64, events: u32) -> Receipt {
    Receipt {
        kind,
        subject: Hash::ZERO,
        outcome,
        fuel_used: fuel,
        events_hash: Hash::ZERO,
        event_count: events,
    }
}

fn add(outcomes: &mut Outcomes, outcome: &Outcome) {
    match outcome {
        Outcome::Applied => outcomes.applied += 1,
        Outcome::Rejected(_) => outcomes.rejected += 1,
        Outcome::Trapped(_) => outcomes.trapped += 1,
        Outcome::OutOfFuel => outcomes.out_of_fuel += 1,
    }
}

/// What a window of the forged journal must count, except journal bytes.
pub fn expected(first: Tick, last: Tick) -> Counted {
    let mut counted = Counted::default();
    for tick in first..=last {
        counted.ticks += 1;
        for index in 0..inputs_in(tick) {
            counted.inputs_admitted += 1;
            add(&mut counted.input_receipts, &outcome(tick, index));
            counted.fuel_inputs += tick * 10 + index;
            counted.events += index;
        }
        add(&mut counted.hook_receipts, &Outcome::Applied);
        counted.fuel_hooks += 5;
        counted.events += 1;
    }
    counted
}

/// Writes a world's journal of `ticks` ticks under `root`, in segments of
/// at most `segment_bytes_max`; returns the world directory.
pub fn forge_journal(root: &Path, ticks: Tick, segment_bytes_max: u64) -> WorldDir {
    let id = world_id();
    let dir = WorldDir::new(root, &id);
    let storage: Arc<dyn Storage> = Arc::new(DiskStorage);
    storage.create_dir_all(&dir.journal()).unwrap();
    let genesis = GenesisRecord {
        world: id.clone(),
        package_root: Hash([1; 32]),
        profile_hash: Hash([2; 32]),
        genesis_root: GENESIS_ROOT,
        state_root: Hash::ZERO,
        receipt: None,
    };
    let config = JournalConfig { segment_bytes_max };
    let mut writer = JournalWriter::create(storage, &dir.journal(), &genesis, config).unwrap();
    let player = test_signing_key("alice");
    let mut nonce = 0;
    for tick in 1..=ticks {
        append_tick(&mut writer, &id, &player, &mut nonce, tick);
    }
    dir
}

fn append_tick(
    writer: &mut JournalWriter,
    id: &WorldId,
    player: &ed25519_dalek::SigningKey,
    nonce: &mut u64,
    tick: Tick,
) {
    let count = inputs_in(tick);
    if count > 0 {
        let envelopes = (0..count)
            .map(|_| {
                *nonce += 1;
                Envelope::sign(id, player, *nonce, vec![tick as u8; 8])
            })
            .collect();
        writer
            .append(&Record::Inputs(InputsRecord { tick, envelopes }))
            .unwrap();
    }
    let mut receipts: Vec<Receipt> = (0..count)
        .map(|index| {
            receipt(
                ReceiptKind::Input,
                outcome(tick, index),
                tick * 10 + index,
                index as u32,
            )
        })
        .collect();
    receipts.push(receipt(ReceiptKind::TickHook, Outcome::Applied, 5, 1));
    let roots = TickRoots {
        tick,
        input_root: Hash([4; 32]),
        receipt_root: Hash([5; 32]),
        state_root: Hash([6; 32]),
        continuity_root: continuity(tick),
    };
    writer
        .append(&Record::Tick(TickRecord {
            roots,
            input_count: count as u32,
            receipts,
        }))
        .unwrap();
    writer.commit().unwrap();
}

/// The secret seed of the forged world's operator key.
pub const OPERATOR_SEED: [u8; 32] = [7; 32];

/// Gives the world an operator key from [`OPERATOR_SEED`] (first key, from tick 0).
pub fn fixed_keys(dir: &WorldDir) -> Arc<OperatorKeys> {
    let storage = DiskStorage;
    storage.create_dir_all(&dir.operator()).unwrap();
    let public = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&OPERATOR_SEED)
            .verifying_key()
            .to_bytes(),
    );
    std::fs::write(
        dir.operator_key(),
        format!("{}\n", hex::encode(OPERATOR_SEED)),
    )
    .unwrap();
    let history = serde_json::json!({
        "format": 1,
        "keys": [{"public_key": public, "from_tick": 0, "to_tick": null, "endorsed_by_previous": null}],
    });
    std::fs::write(dir.operator_keys(), history.to_string()).unwrap();
    Arc::new(OperatorKeys::load(&storage, dir).unwrap().expect("keys"))
}

/// A producer of the forged world.
pub fn producer(dir: &WorldDir, keys: Arc<OperatorKeys>) -> Producer {
    Producer::new(
        Arc::new(DiskStorage),
        dir.clone(),
        world_id(),
        keys,
        (Hash([1; 32]), "1.2.3".into()),
    )
}

/// How the test HTTP sink answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 `{"accepted": [...]}` after checking every report.
    Accept,
    /// 503 with a short body.
    Refuse,
    /// 200 with a body that is not the expected JSON.
    Garbage,
    /// Never answers.
    Hang,
}

/// Digest → (report bytes, times received).
pub type Received = std::collections::BTreeMap<String, (Vec<u8>, u32)>;

/// A test HTTP sink on 127.0.0.1: it checks each report it receives and
/// keeps each digest's bytes once, counting arrivals.
#[derive(Clone)]
pub struct TestSink {
    /// How it answers now.
    pub mode: Arc<std::sync::Mutex<Mode>>,
    /// Digest → (report bytes, times received).
    pub received: Arc<std::sync::Mutex<Received>>,
    /// Requests answered.
    pub requests: Arc<std::sync::atomic::AtomicU64>,
    /// `http://127.0.0.1:port/usage`.
    pub url: String,
}

impl TestSink {
    /// Starts the sink on the current runtime.
    pub async fn start(mode: Mode) -> TestSink {
        use axum::routing::post;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = TestSink {
            mode: Arc::new(std::sync::Mutex::new(mode)),
            received: Arc::default(),
            requests: Arc::default(),
            url: format!("http://{}/usage", listener.local_addr().unwrap()),
        };
        let state = sink.clone();
        let app = axum::Router::new().route(
            "/usage",
            post(move |body: axum::body::Bytes| {
                let state = state.clone();
                async move { state.answer(&body).await }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        sink
    }

    /// Sets the mode.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    async fn answer(&self, body: &[u8]) -> (axum::http::StatusCode, String) {
        use axum::http::StatusCode;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Refuse => return (StatusCode::SERVICE_UNAVAILABLE, "busy".into()),
            Mode::Garbage => return (StatusCode::OK, "<html>hello</html>".into()),
            Mode::Hang => {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
            Mode::Accept => {}
        }
        let batch: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(batch["format"], "everarcade-usage-batch/v1");
        let mut accepted = Vec::new();
        for report in batch["reports"].as_array().unwrap() {
            let bytes = hex::decode(report["bytes"].as_str().unwrap()).unwrap();
            let decoded = everarcade_usage::SignedReport::decode(&bytes).unwrap();
            let digest = report["digest"].as_str().unwrap().to_string();
            assert_eq!(decoded.digest.to_hex(), digest);
            let mut received = self.received.lock().unwrap();
            received.entry(digest.clone()).or_insert((bytes, 0)).1 += 1;
            accepted.push(digest);
        }
        (
            StatusCode::OK,
            serde_json::json!({ "accepted": accepted }).to_string(),
        )
    }
}
