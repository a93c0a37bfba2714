//! `cargo bench -p everarcade-bench --bench backup`: backup and restore of a
//! world with a large journal, in MB/s of the files a backup holds, beside
//! `tar` and `sha256sum` of the same files measured in the same run on the
//! same disk (files under `target/bench-tmp/`, removed afterwards).
//!
//! - backup: [`write_backup`] (copy with BLAKE3 + SHA-256 of every byte,
//!   fsync of every file, the copied journal read back and checked, the
//!   manifest signed, `SHA256SUMS`), beside `tar cf` + `sha256sum` of the
//!   same files (and the same plus `sync` of the tar file);
//! - restore, files: [`restore`]'s verification of the folder and its copy
//!   into the runtime root (every byte hashed twice, every file fsynced),
//!   beside `tar xf` + `sha256sum -c` (and the same plus `sync` of every
//!   extracted file);
//! - restore, whole: the same restore including recovery, `verify`'s audit
//!   (every envelope signature) and replay verification after the
//!   checkpoint; and once from genesis, as `restore` runs by default.
//!
//! Environment: `EA_BENCH_BACKUP_TICKS` (default 20000) and
//! `EA_BENCH_BACKUP_BOTS` (default 64): the world's size.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use everarcade_bench::durable::fixture::{self, Arena, FixtureConfig};
use everarcade_bench::durable::{Scratch, fastest, megabytes_per_second, scratch_root};
use everarcade_bench::report::{Target, load_average, machine_facts};
use everarcade_bench::settings;
use everarcade_ops::restore::Phases;
use everarcade_ops::{
    BackupSource, ReplayFrom, RestoreOptions, RestoreRequest, restore, write_backup,
};
use everarcade_store::keys::OperatorKeys;
use everarcade_store::{DiskStorage, WorldDir};

/// Rounds of each figure, taking turns with its limit; the fastest counts.
const ROUNDS: usize = 3;
/// Seed of the bots' choices.
const SEED: u64 = 1;

fn main() -> ExitCode {
    let Some(config) = settings::or_report((|| {
        Ok::<_, String>(FixtureConfig {
            bots: settings::positive("EA_BENCH_BACKUP_BOTS", 64)? as usize,
            ticks: settings::positive("EA_BENCH_BACKUP_TICKS", 20_000)?,
            seed: SEED,
            checkpoint_interval_ticks: 0,
        })
    })()) else {
        return settings::bad_settings();
    };
    print!("{}", machine_facts());
    println!("scratch directory: {}", scratch_root().display());
    println!("load average before: {}", load_average());
    if let Err(message) = run(config) {
        eprintln!("backup benchmark failed: {message}");
        return ExitCode::FAILURE;
    }
    println!("load average at end: {}", load_average());
    ExitCode::SUCCESS
}

/// Runs a command, failing on a non-zero exit; returns its stdout.
fn command(program: &str, args: &[&str], dir: &Path) -> Result<Vec<u8>, String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout)
}

/// `(segment index, length)` of the last journal segment.
fn journal_end(dir: &WorldDir) -> Result<(u64, u64), String> {
    let mut last = 0;
    while dir.segment(last + 1).exists() {
        last += 1;
    }
    let length = std::fs::metadata(dir.segment(last))
        .map_err(|e| format!("{}: {e}", dir.segment(last).display()))?
        .len();
    Ok((last, length))
}

fn run(config: FixtureConfig) -> Result<(), String> {
    let arena = Arena::load()?;
    let mut progress = |tick: u64| eprintln!("  built {tick} ticks");
    let built = fixture::build(&arena, &config, "backup-world", &mut progress)?;
    let dir = built.dir.clone();
    // The head checkpointed, as `backup` leaves it, then the key it signs with.
    let mut world = everarcade_world::DurableWorld::open(
        std::sync::Arc::new(DiskStorage),
        dir.clone(),
        Arena::world_id(),
        arena.engine.clone(),
        arena.compiled.clone(),
        config.world_config(),
    )
    .map_err(|e| e.to_string())?
    .0;
    let (keys, _) = OperatorKeys::load_or_create(&DiskStorage, &dir, config.ticks)
        .map_err(|e| e.to_string())?;
    let keys = std::sync::Arc::new(keys);
    world.set_operator(keys.clone());
    world.checkpoint().map_err(|e| e.to_string())?;
    world.close().map_err(|e| e.to_string())?;
    let source = BackupSource {
        world: dir.clone(),
        checkpoint_tick: Some(config.ticks),
        journal_end: journal_end(&dir)?,
    };
    let out = Scratch::new("backup-out").map_err(|e| e.to_string())?;
    println!(
        "== backup and restore: 2d-arena, {} bots, {} ticks, {} inputs, journal {:.1} MB in {} segments; world built in {:.1} s; fastest of {ROUNDS} rounds, taking turns; MB = 10^6 bytes of the files a backup holds",
        config.bots,
        config.ticks,
        built.input_count(),
        built.journal_bytes as f64 / 1e6,
        source.journal_end.0,
        built.build_seconds,
    );

    let mut backup_seconds = None;
    let mut backups: Vec<PathBuf> = Vec::new();
    let mut raw = RawFigures::default();
    let mut files: Vec<String> = Vec::new();
    let mut bytes = 0;
    for round in 0..ROUNDS {
        let target = out
            .path()
            .join(format!("world-001-{}-{round}", config.ticks));
        let began = Instant::now();
        let report = write_backup(&source, &target, &keys).map_err(|e| e.to_string())?;
        backup_seconds = fastest(backup_seconds, began.elapsed().as_secs_f64());
        files = report
            .manifest
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect();
        bytes = report.data_bytes;
        backups.push(target);
        raw.backup(dir.path(), out.path(), round, &files)?;
    }
    let backup_seconds = backup_seconds.expect("rounds ran");
    print_pair(
        "backup (write_backup)",
        bytes,
        backup_seconds,
        "tar cf + sha256sum",
        raw.pack.expect("rounds ran"),
        "tar cf + sync + sha256sum",
        raw.pack_synced.expect("rounds ran"),
    );

    let mut files_seconds = None;
    let mut whole: Option<(f64, Phases)> = None;
    for (round, backup) in backups.iter().enumerate() {
        let root = out.path().join(format!("restore-{round}"));
        let report = restore_once(&arena, &root, backup, ReplayFrom::Checkpoint)?;
        files_seconds = fastest(files_seconds, report.verify + report.copy);
        if whole.is_none_or(|(best, _)| report.total < best) {
            whole = Some((report.total, report));
        }
        raw.restore(out.path(), round, &files)?;
    }
    let files_seconds = files_seconds.expect("rounds ran");
    print_pair(
        "restore, files (verify + copy)",
        bytes,
        files_seconds,
        "tar xf + sha256sum -c",
        raw.unpack.expect("rounds ran"),
        "tar xf + sync + sha256sum -c",
        raw.unpack_synced.expect("rounds ran"),
    );
    let (total, phases) = whole.expect("rounds ran");
    print_whole(
        "restore, whole, replay after the checkpoint",
        bytes,
        total,
        &phases,
        &raw,
    );
    let root = out.path().join("restore-genesis");
    let genesis = restore_once(&arena, &root, &backups[0], ReplayFrom::Genesis)?;
    print_whole(
        "restore, whole, replay from genesis (the default)",
        bytes,
        genesis.total,
        &genesis,
        &raw,
    );
    Ok(())
}

fn restore_once(
    arena: &Arena,
    root: &Path,
    backup: &Path,
    replay_from: ReplayFrom,
) -> Result<Phases, String> {
    let request = RestoreRequest {
        runtime_root: root,
        id: &Arena::world_id(),
        package: &arena.package,
        engine: &arena.engine,
        compiled: &arena.compiled,
        backup,
        options: RestoreOptions {
            replay_from,
            ..RestoreOptions::default()
        },
    };
    let report = restore(&request).map_err(|e| e.to_string())?;
    Ok(report.phases)
}

fn mb(bytes: u64, seconds: f64) -> String {
    format!("{:.0} MB/s", megabytes_per_second(bytes, seconds))
}

fn print_pair(
    name: &str,
    bytes: u64,
    seconds: f64,
    limit: &str,
    limit_seconds: f64,
    synced: &str,
    synced_seconds: f64,
) {
    println!(
        "{name}: {} ({:.2} s) | {limit}: {} ({:.2} s), ratio {:.2} {} | {synced}: {} ({:.2} s), ratio {:.2}",
        mb(bytes, seconds),
        seconds,
        mb(bytes, limit_seconds),
        limit_seconds,
        limit_seconds / seconds,
        Target::None.verdict(limit_seconds / seconds),
        mb(bytes, synced_seconds),
        synced_seconds,
        synced_seconds / seconds,
    );
}

fn print_whole(name: &str, bytes: u64, total: f64, phases: &Phases, raw: &RawFigures) {
    let unpack = raw.unpack.expect("rounds ran");
    println!(
        "{name}: {} ({total:.2} s) | tar xf + sha256sum -c: {} | ratio {:.3} {}",
        mb(bytes, total),
        mb(bytes, unpack),
        unpack / total,
        Target::None.verdict(unpack / total),
    );
    println!(
        "  phases: verify the folder {:.2} s, copy {:.2} s, recovery {:.2} s, audit (every signature) {:.2} s, replay-verify {:.2} s",
        phases.verify, phases.copy, phases.open, phases.audit, phases.replay
    );
}

/// The raw limits: fastest seconds of each.
#[derive(Default)]
struct RawFigures {
    pack: Option<f64>,
    pack_synced: Option<f64>,
    unpack: Option<f64>,
    unpack_synced: Option<f64>,
}

impl RawFigures {
    /// `tar cf` + `sha256sum` of `files` (relative to `world`), then the
    /// same with `sync` of the tar file.
    fn backup(
        &mut self,
        world: &Path,
        out: &Path,
        round: usize,
        files: &[String],
    ) -> Result<(), String> {
        for synced in [false, true] {
            let tar = out.join(format!("raw-{round}-{synced}.tar"));
            let tar_text = tar.to_string_lossy().into_owned();
            let began = Instant::now();
            let mut args = vec!["cf", tar_text.as_str()];
            args.extend(files.iter().map(String::as_str));
            command("tar", &args, world)?;
            if synced {
                command("sync", &[tar_text.as_str()], world)?;
            }
            let sums = command(
                "sha256sum",
                &files.iter().map(String::as_str).collect::<Vec<_>>(),
                world,
            )?;
            let seconds = began.elapsed().as_secs_f64();
            std::fs::write(out.join(format!("raw-{round}-{synced}.sums")), sums)
                .map_err(|e| e.to_string())?;
            let slot = if synced {
                &mut self.pack_synced
            } else {
                &mut self.pack
            };
            *slot = fastest(*slot, seconds);
        }
        Ok(())
    }

    /// `tar xf` + `sha256sum -c` into a fresh directory, then the same with
    /// `sync` of every extracted file.
    fn restore(&mut self, out: &Path, round: usize, files: &[String]) -> Result<(), String> {
        for synced in [false, true] {
            let tar = out.join(format!("raw-{round}-{synced}.tar"));
            let sums = out.join(format!("raw-{round}-{synced}.sums"));
            let into = out.join(format!("raw-restore-{round}-{synced}"));
            std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
            let began = Instant::now();
            command("tar", &["xf", tar.to_str().unwrap_or_default()], &into)?;
            if synced {
                command(
                    "sync",
                    &files.iter().map(String::as_str).collect::<Vec<_>>(),
                    &into,
                )?;
            }
            command(
                "sha256sum",
                &["--quiet", "-c", sums.to_str().unwrap_or_default()],
                &into,
            )?;
            let seconds = began.elapsed().as_secs_f64();
            let slot = if synced {
                &mut self.unpack_synced
            } else {
                &mut self.unpack
            };
            *slot = fastest(*slot, seconds);
        }
        Ok(())
    }
}
