//! Proof bundles, player proofs and archive recovery through the real binary:
//! a bundle exported from one root verifies in a fresh directory with no
//! runtime root; every flipped byte is malformed (exit 8); another key's
//! signature is a bad signature (exit 9); altered and re-signed roots diverge
//! (exit 3, naming tick and root); proofs verify against the head commitment
//! and tampered ones fail; chained bundles rebuild a world, and material that
//! does not chain is refused with the tick where the chain breaks; a world
//! without an operator key is refused and left untouched (export is
//! read-only).

use std::path::Path;
use std::process::{Command, Output};

use ed25519_dalek::{Signer, SigningKey};
use everarcade_audit::bundle::decode;
use everarcade_protocol::{Hash, WorldId};
use everarcade_store::keys::{OperatorKeys, Signed};
use everarcade_store::{DiskStorage, WorldDir};
use everarcade_testkit::temp::TempDir;

mod common;

use common::{PACKAGE, WORLD, repository_root};

const MALFORMED: i32 = 8;
const BAD_SIGNATURE: i32 = 9;
const DIVERGENCE: i32 = 3;
const INTEGRITY: i32 = 4;

/// Runs the binary in `cwd` with `args`.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().next().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

fn expect(output: &Output, exit: i32) {
    assert_eq!(output.status.code(), Some(exit), "{}", text(output));
}

/// A world of a 6-bot match under a runtime root of its own.
struct World {
    root: TempDir,
}

impl World {
    /// The match, and an operator key (`keys rotate` creates the first one):
    /// export signs with the world's key and never creates one.
    fn new(label: &str, ticks: u32, seed: u32) -> World {
        let world = World::without_key(label, ticks, seed);
        let root = world.root.path().display().to_string();
        let output = run_in(
            &repository_root(),
            &["keys", "rotate", &root, WORLD, PACKAGE],
        );
        expect(&output, 0);
        world
    }

    /// The match alone: a world that has never had an operator key.
    fn without_key(label: &str, ticks: u32, seed: u32) -> World {
        let world = World {
            root: TempDir::new(label),
        };
        let (ticks, seed) = (ticks.to_string(), seed.to_string());
        let output = world.run(&[
            "simulate",
            "--ticks",
            &ticks,
            "--bots",
            "6",
            "--seed",
            &seed,
            "--checkpoint-interval",
            "10",
        ]);
        expect(&output, 0);
        world
    }

    /// `<command> <root> world-001 <package> <options…>` from the repository.
    fn run(&self, args: &[&str]) -> Output {
        let (command, options) = args.split_first().unwrap();
        let root = self.root.path().display().to_string();
        let mut full = vec![*command, &root, WORLD, PACKAGE];
        full.extend_from_slice(options);
        run_in(&repository_root(), &full)
    }

    fn export(&self, from: u64, to: u64, out: &Path) -> serde_json::Value {
        let (from, to) = (from.to_string(), to.to_string());
        let out = out.display().to_string();
        let output = self.run(&[
            "export-bundle",
            "--from",
            &from,
            "--to",
            &to,
            "--out",
            &out,
            "--json",
        ]);
        expect(&output, 0);
        json(&output)
    }

    fn operator(&self) -> OperatorKeys {
        let dir = WorldDir::new(self.root.path(), &WorldId::new(WORLD).unwrap());
        OperatorKeys::load(&DiskStorage, &dir).unwrap().unwrap()
    }
}

/// `verify-bundle FILE --json` from `cwd`.
fn verify(cwd: &Path, file: &Path, extra: &[&str]) -> Output {
    let file = file.display().to_string();
    let mut args = vec!["verify-bundle", &file, "--json"];
    args.extend_from_slice(extra);
    run_in(cwd, &args)
}

#[test]
fn export_refuses_a_world_without_an_operator_key_and_writes_nothing() {
    let world = World::without_key("keyless", 12, 6);
    let world_dir = world.root.path().join("worlds").join(WORLD);
    let before = tree(&world_dir);
    let out = world.root.path().join("keyless.bundle");
    let out_text = out.display().to_string();
    let output = world.run(&[
        "export-bundle",
        "--from",
        "0",
        "--to",
        "12",
        "--out",
        &out_text,
    ]);
    expect(&output, 1);
    assert!(
        text(&output).contains("error[operator_key_missing]"),
        "{}",
        text(&output)
    );
    assert!(text(&output).contains("keys rotate"), "{}", text(&output));
    assert!(!world_dir.join("operator").exists(), "no key was created");
    assert_eq!(tree(&world_dir), before, "the world directory is untouched");
    assert!(!out.exists(), "no bundle is written");

    // --json carries the same code in the error envelope.
    let output = world.run(&[
        "export-bundle",
        "--from",
        "0",
        "--to",
        "12",
        "--out",
        &out_text,
        "--json",
    ]);
    expect(&output, 1);
    assert_eq!(json(&output)["error"]["code"], "operator_key_missing");
    assert!(!world_dir.join("operator").exists());
}

/// Every file under `dir` with its length and modification time, sorted.
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_bundle_verifies_in_a_fresh_directory_and_every_flip_is_malformed() {
    let world = World::new("fresh", 40, 1);
    let material = TempDir::new("fresh-material");
    let exported = world.export(25, 40, &material.join("w.bundle"));
    assert_eq!(exported["start"], "replayed from tick 20");
    // Somewhere else, with nothing but the bundle.
    let elsewhere = TempDir::new("fresh-elsewhere");
    let bundle = elsewhere.join("w.bundle");
    std::fs::copy(material.join("w.bundle"), &bundle).unwrap();
    drop(material);
    let output = verify(elsewhere.path(), Path::new("w.bundle"), &[]);
    expect(&output, 0);
    let report = json(&output);
    let head = json(&world.run(&["replay-root", "--json"]));
    for root in [
        "state_root",
        "input_root",
        "receipt_root",
        "continuity_root",
    ] {
        assert_eq!(report[root], head[root], "{root}");
    }
    assert_eq!(report["ticks"], 15);
    assert_eq!(report["accumulator_root"], exported["accumulator_root"]);
    assert_eq!(report["operator_key_trusted"], false);
    let key = exported["operator_key"].as_str().unwrap();
    let pinned = verify(elsewhere.path(), &bundle, &["--trusted-key", key]);
    expect(&pinned, 0);
    assert_eq!(json(&pinned)["operator_key_trusted"], true);
    // Flip bytes all over the file: the header, every section, the signature,
    // the checksum.
    let bytes = std::fs::read(&bundle).unwrap();
    let mut positions: Vec<usize> = (0..48).collect();
    positions.extend((0..bytes.len()).step_by(bytes.len() / 97));
    positions.extend(bytes.len() - 100..bytes.len());
    let flipped = elsewhere.join("flipped.bundle");
    for position in positions {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x20;
        std::fs::write(&flipped, &damaged).unwrap();
        let output = verify(elsewhere.path(), &flipped, &[]);
        assert_eq!(
            output.status.code(),
            Some(MALFORMED),
            "byte {position}: {}",
            text(&output)
        );
    }
    std::fs::write(&flipped, &bytes[..bytes.len() / 2]).unwrap();
    expect(&verify(elsewhere.path(), &flipped, &[]), MALFORMED);
    std::fs::write(&flipped, b"not a bundle").unwrap();
    expect(&verify(elsewhere.path(), &flipped, &[]), MALFORMED);
}

#[test]
fn forged_bundles_are_bad_signatures_and_altered_roots_diverge() {
    let world = World::new("forged", 30, 2);
    let material = TempDir::new("forged-material");
    let path = material.join("w.bundle");
    world.export(10, 30, &path);
    let sealed = decode(&std::fs::read(&path).unwrap()).unwrap();
    let forger = SigningKey::from_bytes(&[9; 32]);
    let forge = |bundle: &everarcade_audit::Bundle| {
        bundle.sign_and_seal(|digest| forger.sign(&Signed::Bundle.message(digest)).to_bytes())
    };
    // Re-signed by another key.
    let forged = material.join("forged.bundle");
    std::fs::write(&forged, forge(&sealed.bundle)).unwrap();
    let output = verify(material.path(), &forged, &[]);
    expect(&output, BAD_SIGNATURE);
    assert!(
        text(&output).contains("bad_bundle_signature"),
        "{}",
        text(&output)
    );
    // Re-signed by another key that also rewrote the key history: only a
    // pinned operator key catches it.
    let mut bundle = sealed.bundle.clone();
    let public = forger.verifying_key().to_bytes();
    bundle.operator.signer = public;
    bundle.operator.keys = vec![everarcade_audit::bundle::OperatorKey {
        public_key: public,
        from_tick: 0,
        to_tick: None,
        endorsement: None,
    }];
    std::fs::write(&forged, forge(&bundle)).unwrap();
    expect(&verify(material.path(), &forged, &[]), 0);
    let key = hex::encode(sealed.bundle.operator.signer);
    let output = verify(material.path(), &forged, &["--trusted-key", &key]);
    expect(&output, BAD_SIGNATURE);
    assert!(text(&output).contains("untrusted_operator_key"));
    // Recorded roots altered and re-signed with the operator's own key: the
    // replay diverges at that tick and names the root.
    let keys = world.operator();
    let mut bundle = sealed.bundle.clone();
    bundle.ticks[7].roots.state_root = Hash([0xee; 32]);
    let altered = material.join("altered.bundle");
    std::fs::write(
        &altered,
        bundle.sign_and_seal(|digest| keys.sign(Signed::Bundle, digest)),
    )
    .unwrap();
    let output = verify(material.path(), &altered, &[]);
    expect(&output, DIVERGENCE);
    let message = text(&output);
    assert!(
        message.contains("divergence at tick 18: state_root"),
        "{message}"
    );
    // A recorded input whose payload was changed: its signature is refused.
    let mut bundle = sealed.bundle.clone();
    let tick = bundle
        .ticks
        .iter_mut()
        .find(|t| !t.inputs.is_empty())
        .unwrap();
    tick.inputs[0].payload[0] ^= 1;
    std::fs::write(
        &altered,
        bundle.sign_and_seal(|digest| keys.sign(Signed::Bundle, digest)),
    )
    .unwrap();
    let output = verify(material.path(), &altered, &[]);
    expect(&output, INTEGRITY);
    assert!(text(&output).contains("bad signature"), "{}", text(&output));
}

#[test]
fn receipt_and_state_proofs_verify_against_the_head_and_tampered_ones_fail() {
    let world = World::new("proofs", 30, 3);
    let material = TempDir::new("proofs-material");
    // The head commitment, from a bundle ending at the head.
    let exported = world.export(20, 30, &material.join("head.bundle"));
    let head_root = exported["accumulator_root"].as_str().unwrap().to_string();
    let head = json(&world.run(&["prove", "--head", "--json"]));
    assert_eq!(head["head_root"], head_root.as_str());
    // A receipt by tick and index, then the same by envelope hash.
    let by_index = json(&world.run(&["prove", "--tick", "4", "--index", "0", "--json"]));
    let subject = by_index["claim"]["receipt"]["subject"].as_str().unwrap();
    let proof = material.join("receipt.proof");
    let proof_arg = proof.display().to_string();
    expect(
        &world.run(&["prove", "--receipt", subject, "--out", &proof_arg]),
        0,
    );
    let output = run_in(
        material.path(),
        &[
            "verify-proof",
            &proof_arg,
            "--head-root",
            &head_root,
            "--json",
        ],
    );
    expect(&output, 0);
    let verified = json(&output);
    assert_eq!(verified["tick"], 4);
    assert_eq!(verified["receipt"]["subject"], subject);
    assert_eq!(verified["head_tick"], 30);
    // The hex `prove` prints verifies too.
    let hex_file = material.join("receipt.hex");
    std::fs::write(&hex_file, by_index["proof"].as_str().unwrap()).unwrap();
    let hex_arg = hex_file.display().to_string();
    expect(
        &run_in(
            material.path(),
            &["verify-proof", &hex_arg, "--head-root", &head_root],
        ),
        0,
    );
    // Tampered proofs and another head fail.
    let bytes = std::fs::read(&proof).unwrap();
    for position in (0..bytes.len()).step_by(37) {
        let mut tampered = bytes.clone();
        tampered[position] ^= 1;
        std::fs::write(&proof, &tampered).unwrap();
        let output = run_in(
            material.path(),
            &["verify-proof", &proof_arg, "--head-root", &head_root],
        );
        let code = output.status.code();
        assert!(
            code == Some(MALFORMED) || code == Some(INTEGRITY),
            "byte {position}: {}",
            text(&output)
        );
    }
    std::fs::write(&proof, &bytes).unwrap();
    let genesis = "00".repeat(32);
    expect(
        &run_in(
            material.path(),
            &["verify-proof", &proof_arg, "--head-root", &genesis],
        ),
        INTEGRITY,
    );
    // A state proof: absent and present keys.
    let bot = everarcade_protocol::test_signing_key("bot-0")
        .verifying_key()
        .to_bytes();
    let present = format!("4b{}", hex::encode(bot));
    for key in [present.as_str(), "6e6f2d737563682d6b6579"] {
        let state = material.join("state.proof");
        let state_arg = state.display().to_string();
        let _ = std::fs::remove_file(&state);
        expect(&world.run(&["prove", "--key", key, "--out", &state_arg]), 0);
        let output = run_in(
            material.path(),
            &[
                "verify-proof",
                &state_arg,
                "--head-root",
                &head_root,
                "--json",
            ],
        );
        expect(&output, 0);
        assert_eq!(json(&output)["key"], key);
    }
}

#[test]
fn chained_bundles_rebuild_a_world_and_a_fork_is_refused_at_its_tick() {
    let world = World::new("archive", 40, 4);
    let fork = World::new("archive-fork", 40, 5);
    let material = TempDir::new("archive-material");
    let parts = [(0, 15), (15, 30), (30, 40)];
    let mut paths = Vec::new();
    for (from, to) in parts {
        let path = material.join(format!("{from}-{to}.bundle"));
        world.export(from, to, &path);
        paths.push(path.display().to_string());
    }
    let target = TempDir::new("archive-target");
    let root = target.path().display().to_string();
    let recover = |sources: &[&str]| {
        let mut args = vec!["archive-recover", &root, WORLD, PACKAGE, "--json", "--from"];
        args.extend_from_slice(sources);
        run_in(&repository_root(), &args)
    };
    let output = recover(&[&paths[2], &paths[0], &paths[1]]);
    expect(&output, 0);
    let rebuilt = json(&output);
    let head = json(&world.run(&["replay-root", "--json"]));
    assert_eq!(rebuilt["continuity_root"], head["continuity_root"]);
    assert_eq!(rebuilt["head_tick"], 40);
    let verified = run_in(
        &repository_root(),
        &["replay-verify", &root, WORLD, PACKAGE],
    );
    expect(&verified, 0);
    // Another history from tick 15 on.
    let forked = material.join("fork.bundle");
    fork.export(15, 40, &forked);
    let other = TempDir::new("archive-target-2");
    let root = other.path().display().to_string();
    let forked = forked.display().to_string();
    let mut args = vec!["archive-recover", &root, WORLD, PACKAGE, "--from"];
    args.extend_from_slice(&[&paths[0], &forked]);
    let output = run_in(&repository_root(), &args);
    expect(&output, INTEGRITY);
    assert!(
        text(&output).contains("the chain breaks at tick 15"),
        "{}",
        text(&output)
    );
    assert!(!other.join("worlds").exists());
}
