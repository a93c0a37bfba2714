//! Replay verification and recovery, beside in-memory execution of the same
//! inputs (the execution limit).
//!
//! - replay-verify: [`replay`] from genesis with `verify_signatures: true`,
//!   as `replay-verify` runs it: every record read and checked, every input
//!   admitted again with its signature checked, every tick executed and its
//!   roots and receipts compared with the record.
//! - recovery mode: the same walk with `verify_signatures: false`.
//! - recovery: [`DurableWorld::open`] of a world with no checkpoint, which
//!   replays every tick since genesis.
//! - the limit: `everarcade_engine::World` from genesis executing the same
//!   inputs, tick by tick, in memory, with no admission at all; and for
//!   replay-verify also that plus one `Envelope::verify_signature` per input
//!   on one thread (the least work a replay that checks signatures can do).
//!
//! The journal is read from the page cache: the fixture was just written.

use std::sync::Arc;
use std::time::Instant;

use everarcade_engine::World;
use everarcade_store::DiskStorage;
use everarcade_world::DurableWorld;
use everarcade_world::replay::{Context, ReplayOptions, Start, replay};

use super::fastest;
use super::fixture::{Arena, Fixture, read_segments};

/// Fastest seconds of each way through the same fixture.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayReport {
    /// Ticks in the fixture.
    pub ticks: u64,
    /// Inputs in the fixture.
    pub inputs: u64,
    /// `replay` from genesis, signatures checked.
    pub verify_seconds: f64,
    /// `replay` from genesis, signatures not checked.
    pub recovery_mode_seconds: f64,
    /// In-memory execution of the same inputs.
    pub memory_seconds: f64,
    /// `Envelope::verify_signature` over every input, one thread.
    pub signature_seconds: f64,
}

/// Times `replay` both ways, in-memory execution and the signature checks,
/// `rounds` times each, taking turns.
pub fn replay_figures(
    arena: &Arena,
    fixture: &Fixture,
    rounds: usize,
) -> Result<ReplayReport, String> {
    let (mut verify, mut recovery, mut memory, mut signatures) = (None, None, None, None);
    for _ in 0..rounds {
        memory = fastest(memory, execute_in_memory(arena, fixture)?);
        recovery = fastest(recovery, replay_once(arena, fixture, false)?);
        verify = fastest(verify, replay_once(arena, fixture, true)?);
        signatures = fastest(signatures, check_signatures(fixture)?);
    }
    Ok(ReplayReport {
        ticks: fixture.config.ticks,
        inputs: fixture.input_count(),
        verify_seconds: verify.expect("a round"),
        recovery_mode_seconds: recovery.expect("a round"),
        memory_seconds: memory.expect("a round"),
        signature_seconds: signatures.expect("a round"),
    })
}

/// One `replay` from genesis; checks it reached the fixture's roots.
pub fn replay_once(arena: &Arena, fixture: &Fixture, verify: bool) -> Result<f64, String> {
    let id = Arena::world_id();
    let context = Context {
        storage: &DiskStorage,
        dir: &fixture.dir,
        id: &id,
        engine: &arena.engine,
        compiled: arena.compiled.clone(),
        schedule: None,
    };
    let options = ReplayOptions {
        start: Start::Genesis,
        stop_after: None,
        verify_signatures: verify,
        diff_on_divergence: false,
    };
    let begin = Instant::now();
    let replayed = replay(&context, &options, &mut |_| {}).map_err(|e| e.to_string())?;
    let seconds = begin.elapsed().as_secs_f64();
    assert_eq!(replayed.last, fixture.roots, "replay reached other roots");
    assert_eq!(replayed.ticks_replayed, fixture.config.ticks);
    Ok(seconds)
}

/// Genesis and every tick of the fixture on an in-memory `World`.
pub fn execute_in_memory(arena: &Arena, fixture: &Fixture) -> Result<f64, String> {
    let begin = Instant::now();
    let (mut world, _) = World::genesis(&arena.engine, Arena::world_id(), arena.compiled.clone())
        .map_err(|e| e.to_string())?;
    let mut roots = None;
    for inputs in &fixture.inputs {
        let output = world
            .execute_tick(&arena.engine, inputs)
            .map_err(|e| e.to_string())?;
        roots = Some(output.roots);
    }
    let seconds = begin.elapsed().as_secs_f64();
    assert_eq!(roots, Some(fixture.roots), "memory reached other roots");
    Ok(seconds)
}

/// `verify_signature` over every input of the fixture, one thread.
pub fn check_signatures(fixture: &Fixture) -> Result<f64, String> {
    let begin = Instant::now();
    for envelope in fixture.inputs.iter().flatten() {
        envelope.verify_signature().map_err(|e| e.to_string())?;
    }
    Ok(begin.elapsed().as_secs_f64())
}

/// Fastest seconds of recovery and its limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecoveryReport {
    /// Ticks since the last checkpoint (there is none: since genesis).
    pub ticks: u64,
    /// Inputs in those ticks.
    pub inputs: u64,
    /// Bytes of the journal.
    pub journal_bytes: u64,
    /// `DurableWorld::open`.
    pub open_seconds: f64,
    /// In-memory execution of the same inputs.
    pub memory_seconds: f64,
    /// `fs::read` of every journal segment.
    pub read_seconds: f64,
}

impl RecoveryReport {
    /// The limit: execute in memory plus read the journal.
    pub fn limit_seconds(&self) -> f64 {
        self.memory_seconds + self.read_seconds
    }
}

/// Times `DurableWorld::open` of the fixture, and its limits, `rounds` times.
pub fn recovery_figures(
    arena: &Arena,
    fixture: &Fixture,
    rounds: usize,
) -> Result<RecoveryReport, String> {
    let (mut open, mut memory, mut read) = (None, None, None);
    for _ in 0..rounds {
        let begin = Instant::now();
        let bytes = read_segments(&fixture.dir.journal())?;
        read = fastest(read, begin.elapsed().as_secs_f64());
        assert_eq!(bytes, fixture.journal_bytes);
        open = fastest(open, open_once(arena, fixture)?);
        memory = fastest(memory, execute_in_memory(arena, fixture)?);
    }
    Ok(RecoveryReport {
        ticks: fixture.config.ticks,
        inputs: fixture.input_count(),
        journal_bytes: fixture.journal_bytes,
        open_seconds: open.expect("a round"),
        memory_seconds: memory.expect("a round"),
        read_seconds: read.expect("a round"),
    })
}

/// One `DurableWorld::open` (recovery); checks what it recovered.
pub fn open_once(arena: &Arena, fixture: &Fixture) -> Result<f64, String> {
    let begin = Instant::now();
    let (world, recovery) = DurableWorld::open(
        Arc::new(DiskStorage),
        fixture.dir.clone(),
        Arena::world_id(),
        arena.engine.clone(),
        arena.compiled.clone(),
        fixture.config.world_config(),
    )
    .map_err(|e| e.to_string())?;
    let seconds = begin.elapsed().as_secs_f64();
    assert_eq!(recovery.ticks_replayed, fixture.config.ticks);
    assert_eq!(
        recovery.roots, fixture.roots,
        "recovery reached other roots"
    );
    drop(world);
    Ok(seconds)
}
