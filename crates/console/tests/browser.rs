//! The pages in a real browser: Debian's headless chromium, driven by
//! `tests/browser/run.mjs` (playwright-core), against a real node serving
//! the 2d-arena on a socket. The console shows the tick advancing, closes
//! and opens admission (an input's 202 becomes 503 `admission_closed`),
//! runs every admin action, refuses a wrong token, reconnects after the
//! node restarts and says it was away, and shows the incident banner after
//! the self-audit finds a forged journal; the spectator page draws players
//! that move from verified state. Any page error, console error (a CSP
//! violation is one), failed request or unexpected non-2xx fails it.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and
//! `npm ci --prefix crates/console/tests/browser`; without them it fails
//! saying so. Screenshots go to `$EVERARCADE_SCREENSHOTS` (docs/images is
//! made that way) or to a temporary directory.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use everarcade_client::Client;
use everarcade_client::api::{Encoding, single_body};
use everarcade_node::{Node, NodeConfig, NodeSpec};
use everarcade_package::Package;
use everarcade_protocol::{Envelope, WorldId, test_signing_key};
use everarcade_store::WorldDir;
use everarcade_testkit::journal::{KIND_TICK, body_tick, forge_segment};

const TOKEN: &str = "console-browser-test-token-0123456789";
const PLAYERS: usize = 6;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn package_dir() -> PathBuf {
    manifest_dir().join("../../runtime/games/2d-arena")
}

fn world() -> WorldId {
    everarcade_testkit::world_id()
}

/// The browser and the driver, or a failure that says how to get them.
fn prerequisites() -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "no chromium at {}: install it with `apt-get install -y chromium` (or set CHROMIUM to its path)",
        chromium.display()
    );
    let driver = manifest_dir().join("tests/browser/node_modules/playwright-core");
    assert!(
        driver.exists(),
        "playwright-core is not installed: run `npm ci --prefix crates/console/tests/browser` (Node.js 20 and npm)"
    );
    chromium
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(root: &Path, address: SocketAddr) -> Running {
    let package = Package::load(&package_dir()).expect("the 2d-arena loads");
    start_with(root, address, None, package, Box::new(|| {})).await
}

/// Runs between `Node::prepare` and `Node::serve` (where the viewer is read).
type AfterPrepare = Box<dyn FnOnce() + Send>;

async fn start_with(
    root: &Path,
    address: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    package: Package,
    after_prepare: AfterPrepare,
) -> Running {
    let mut config = NodeConfig::default();
    config.http.addr = address;
    config.admin.token = Some(TOKEN.into());
    let trust = tls
        .as_ref()
        .map(|(cert, _)| everarcade_client::Trust::from_pem_file(cert).unwrap());
    if let Some((cert, key)) = tls {
        config.http.tls_cert = Some(cert);
        config.http.tls_key = Some(key);
    }
    let spec = NodeSpec {
        runtime_root: root.to_path_buf(),
        world: world(),
        package,
        config,
    };
    let node = tokio::task::spawn_blocking(move || Node::prepare(spec))
        .await
        .unwrap()
        .expect("the node prepares");
    after_prepare();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        node.serve(async move {
            let _ = stopped.await;
        })
        .await
        .expect("the node stops cleanly");
    });
    let client = match &trust {
        Some(trust) => Client::with_trust(&format!("https://{address}"), world(), trust).unwrap(),
        None => Client::new(&address.to_string(), world()).unwrap(),
    };
    client.wait_ready(Duration::from_secs(60)).await.unwrap();
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }
}

/// Players that join and move, so the spectator has something to draw.
async fn join_players(client: &Client) {
    let id = world();
    let mut envelopes = Vec::new();
    for player in 0..PLAYERS {
        let key = test_signing_key(&format!("spectated-{player}"));
        // JOIN is one byte; MOVE's velocity stays within vx² + vy² ≤ 64.
        let (vx, vy) = (2 + (player % 3) as i8, 3 - 2 * (player % 4) as i8);
        envelopes.push(Envelope::sign(&id, &key, 1, vec![1]));
        envelopes.push(Envelope::sign(&id, &key, 2, vec![2, vx as u8, vy as u8]));
    }
    let results = client.submit_batch(&envelopes).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

/// Flips a bit of the state root recorded for `tick` and re-chains the
/// segment, writing only the bytes from the first change on (the node keeps
/// appending behind them): the self-audit's replay then diverges at `tick`.
fn forge_tick(root: &Path, tick: u64) {
    let dir = WorldDir::new(root, &world());
    for index in 1.. {
        let path = dir.segment(index);
        if !path.exists() {
            break;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut forged = false;
        let out = forge_segment(&bytes, |kind, body| {
            if kind == KIND_TICK && body_tick(body) == tick {
                body[12 + 64] ^= 0x80;
                forged = true;
            }
        });
        if !forged {
            continue;
        }
        assert_eq!(out.len(), bytes.len());
        let first = (0..bytes.len()).find(|&i| bytes[i] != out[i]).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&out[first..], first as u64).unwrap();
        file.sync_all().unwrap();
        return;
    }
    panic!("tick {tick} is in no segment");
}

/// Keeps the players busy (new velocities, shots) every 400 ms until
/// `stop`, so the spectator sees moves, projectiles and scores. Refusals
/// (admission closed for a while) are retried with the same nonce.
fn play(
    address: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = Client::new(&address.to_string(), world()).unwrap();
        let keys: Vec<_> = (0..PLAYERS)
            .map(|player| test_signing_key(&format!("spectated-{player}")))
            .collect();
        let mut nonces = [3u64; PLAYERS];
        let mut random = everarcade_testkit::rng::SplitMix64::new(7);
        while !*stop.borrow() {
            for (player, key) in keys.iter().enumerate() {
                let (a, b) = (random.below(11) as i8 - 5, random.below(11) as i8 - 5);
                let payload = if random.below(3) == 0 && (a, b) != (0, 0) {
                    vec![3, a as u8, b as u8]
                } else {
                    vec![2, a as u8, b as u8]
                };
                let envelope = Envelope::sign(&world(), key, nonces[player], payload);
                if client.submit(&envelope).await.is_ok() {
                    nonces[player] += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let chromium = prerequisites();
    let temp = tempfile::tempdir().unwrap();
    // Hot backups go beside the runtime root, inside the temporary directory.
    let root = temp.path().join("root");
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut node = start(&root, address).await;
    let client = Client::new(&address.to_string(), world()).unwrap();
    join_players(&client).await;
    let (stop_playing, playing) = tokio::sync::watch::channel(false);
    let mut players = play(address, playing.clone());

    let probe = test_signing_key("console-probe");
    let probes = serde_json::json!({
        "world": world().as_str(),
        "players": PLAYERS,
        "open": String::from_utf8(single_body(&Envelope::sign(&world(), &probe, 1, vec![9]), Encoding::Json)).unwrap(),
        "closed": String::from_utf8(single_body(&Envelope::sign(&world(), &probe, 2, vec![9]), Encoding::Json)).unwrap(),
    });
    let probes_path = temp.path().join("probes.json");
    std::fs::write(&probes_path, probes.to_string()).unwrap();
    let shots = std::env::var_os("EVERARCADE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();

    let mut driver = Command::new("node")
        .arg(manifest_dir().join("tests/browser/run.mjs"))
        .arg(format!("http://{address}"))
        .arg(TOKEN)
        .arg(&probes_path)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`node` runs (install Node.js 20)");
    let mut stdin = driver.stdin.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = driver.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut transcript = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match tokio::time::timeout(left, lines.recv()).await {
            Err(_) => {
                let _ = driver.kill();
                panic!("the browser run did not finish in 240 s:\n{transcript}");
            }
            Ok(None) => break,
            Ok(Some(line)) => line,
        };
        transcript.push_str(&line);
        transcript.push('\n');
        match line.as_str() {
            "ASK restart" => {
                stop_playing.send(true).unwrap();
                players.await.unwrap();
                node.stop().await;
                node = start(&root, address).await;
                stop_playing.send(false).unwrap();
                players = play(address, playing.clone());
                writeln!(stdin, "DONE").unwrap();
            }
            "ASK corrupt" => {
                stop_playing.send(true).unwrap();
                let head = client.status().await.unwrap().head_tick;
                forge_tick(&root, head - 2);
                writeln!(stdin, "DONE").unwrap();
            }
            _ => {}
        }
    }
    let _ = stop_playing.send(true);
    players.await.unwrap();
    let status = driver.wait().unwrap();
    println!("{transcript}");
    assert!(status.success(), "the browser run failed:\n{transcript}");
    assert!(transcript.contains(" passed, 0 failed"), "{transcript}");
    // The node really is under the incident the page showed.
    let live = client.status().await.unwrap();
    assert!(live.incident.is_some(), "{live:?}");
    node.stop().await;
}

/// Over the node's TLS the pages load and work the same (relative URLs,
/// same-origin requests only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_over_tls() {
    let chromium = prerequisites();
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("root");
    let certificate = everarcade_testkit::tls::self_signed(&temp.path().join("tls"), "node");
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let package = Package::load(&package_dir()).unwrap();
    let node = start_with(
        &root,
        address,
        Some(certificate.clone()),
        package,
        Box::new(|| {}),
    )
    .await;
    let trust = everarcade_client::Trust::from_pem_file(&certificate.0).unwrap();
    let client = Client::with_trust(&format!("https://{address}"), world(), &trust).unwrap();
    join_players(&client).await;
    let output = Command::new("node")
        .arg(manifest_dir().join("tests/browser/tls.mjs"))
        .arg(format!("https://{address}"))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("`node` runs (install Node.js 20)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the pages failed over TLS:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    node.stop().await;
}

/// A package whose viewer changed on disk after it was loaded: the node
/// serves on, and the spectator page says why it shows the generic view,
/// whose watched keys are read with checked proofs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_viewer_falls_back_to_the_generic_view() {
    let chromium = prerequisites();
    let temp = tempfile::tempdir().unwrap();
    let copy = temp.path().join("package");
    std::fs::create_dir_all(copy.join("viewer")).unwrap();
    for name in ["world.toml", "world.wasm", "viewer/viewer.js"] {
        std::fs::copy(package_dir().join(name), copy.join(name)).unwrap();
    }
    let package = Package::load(&copy).unwrap();
    let viewer = copy.join("viewer/viewer.js");
    // Changed once the world is bound, before the node reads its viewer.
    let tamper: AfterPrepare = Box::new(move || {
        std::fs::write(viewer, "export function start() { throw 1; }\n").unwrap();
    });
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let node = start_with(&temp.path().join("root"), address, None, package, tamper).await;
    let client = Client::new(&address.to_string(), world()).unwrap();
    join_players(&client).await;
    let (stop_playing, playing) = tokio::sync::watch::channel(false);
    let players = play(address, playing);
    let output = Command::new("node")
        .arg(manifest_dir().join("tests/browser/generic.mjs"))
        .arg(format!("http://{address}"))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("`node` runs (install Node.js 20)");
    stop_playing.send(true).unwrap();
    players.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the generic view failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The node was never affected.
    client.readyz().await.expect("the node is ready");
    node.stop().await;
}
