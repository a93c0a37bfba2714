//! `verify`: every checksum, chain link, signature and checkpoint, and the
//! package binding, without executing anything; prints what it checked.

use std::path::Path;

use everarcade_store::{DiskStorage, LockState, StoreError, WorldLock};
use everarcade_world::WorldError;
use everarcade_world::audit::{Audit, AuditObserver, AuditPhase, audit_observed};
use indicatif::ProgressBar;

use crate::JsonWorldArgs;
use crate::exit::Failure;
use crate::progress::{self, JournalBytes};
use crate::target::{Target, world_failure};

/// Times a torn tail is read again while a node is writing the journal.
const TORN_TAIL_RETRIES_MAX: u32 = 3;

/// Draws the bar over the journal and prints each group's PASS lines as it
/// passes (nothing under `--json`). A group is printed once, even when a
/// torn tail makes the audit run again.
struct Reporter {
    bar: ProgressBar,
    journal: JournalBytes,
    json: bool,
    printed: Vec<AuditPhase>,
}

impl AuditObserver for Reporter {
    fn record(&mut self, segment: &Path, end_bytes: u64, audit: &Audit) {
        self.bar
            .set_position(self.journal.position(segment, end_bytes));
        if let Some((tick, _)) = audit.head {
            self.bar.set_message(format!("tick {tick}"));
        }
    }

    fn passed(&mut self, phase: AuditPhase, audit: &Audit) {
        if self.json || self.printed.contains(&phase) {
            return;
        }
        self.printed.push(phase);
        self.bar.suspend(|| {
            for line in pass_lines(phase, audit) {
                println!("{line}");
            }
        });
    }
}

/// The PASS lines of a group of checks.
fn pass_lines(phase: AuditPhase, audit: &Audit) -> Vec<String> {
    match phase {
        AuditPhase::Package => vec![format!(
            "PASS  package      {} is the package bound at genesis (genesis.json, journal, package/)",
            audit.package_root
        )],
        AuditPhase::Journal => vec![
            format!(
                "PASS  journal      {} segments, {} records: every header, checksum and chain link",
                audit.segments, audit.records
            ),
            format!(
                "PASS  ticks        {} ticks: input root, receipt root and C(t) recomputed from the records",
                audit.ticks
            ),
            format!(
                "PASS  envelopes    {} envelopes: signature, world and nonce order ({} pending for the next tick)",
                audit.envelopes, audit.pending_inputs
            ),
        ],
        AuditPhase::Checkpoints => {
            let ticks: Vec<u64> = audit.checkpoints.iter().map(|(tick, _)| *tick).collect();
            vec![format!(
                "PASS  checkpoints  {} verified {ticks:?}: checksum, state root recomputed, roots agree with the journal",
                ticks.len()
            )]
        }
        AuditPhase::Operator if audit.operator_keys == 0 => vec![
            "PASS  operator     no operator key yet (a node creates one on its first start); nothing to check"
                .to_string(),
        ],
        AuditPhase::Operator => vec![format!(
            "PASS  operator     {} keys, every rotation endorsed by the key before; {} checkpoints signed by the key of their tick",
            audit.operator_keys, audit.signed_checkpoints
        )],
    }
}

/// Audits the world; while a node runs it, a torn tail may be the record
/// being appended right now, so it is read again (a torn tail that stays is
/// reported). A checkpoint that the node's retention removes while it is
/// read is passed over by the audit itself.
fn audit_live(target: &Target, reporter: &mut Reporter) -> Result<Audit, WorldError> {
    let mut attempt = 0;
    loop {
        match audit_observed(&DiskStorage, &target.dir, &target.package, reporter) {
            Err(WorldError::Store(StoreError::TornTail { .. }))
                if attempt < TORN_TAIL_RETRIES_MAX
                    && matches!(
                        WorldLock::probe(&target.dir.lock()),
                        Ok(LockState::Held { .. })
                    ) =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Runs `verify`.
pub fn run(args: JsonWorldArgs) -> Result<(), Failure> {
    let target = Target::resolve(&args.world)?;
    target.require_bound()?;
    let journal = JournalBytes::measure(&target.dir);
    let mut reporter = Reporter {
        bar: progress::journal(progress::visible(args.json), "verify", &journal),
        journal,
        json: args.json,
        printed: Vec::new(),
    };
    let result = audit_live(&target, &mut reporter);
    reporter.bar.finish_and_clear();
    let audit = match result {
        Ok(audit) => audit,
        Err(error) => {
            let failure = world_failure(error);
            if !args.json {
                println!("FAIL  {}", failure.message);
            }
            let details = serde_json::json!({"world": target.id.as_str(), "verified": false});
            return Err(failure.with_details(details));
        }
    };
    let checkpoints: Vec<u64> = audit.checkpoints.iter().map(|(tick, _)| *tick).collect();
    let (head_tick, head) = audit
        .head
        .map_or((0, String::new()), |(t, c)| (t, c.to_hex()));
    if args.json {
        let object = serde_json::json!({
            "world": target.id.as_str(),
            "verified": true,
            "package_root": audit.package_root.to_hex(),
            "segments": audit.segments,
            "records": audit.records,
            "ticks": audit.ticks,
            "envelopes": audit.envelopes,
            "pending_inputs": audit.pending_inputs,
            "checkpoints": checkpoints,
            "signed_checkpoints": audit.signed_checkpoints,
            "operator_keys": audit.operator_keys,
            "head_tick": head_tick,
            "continuity_root": head,
            "warnings": audit.warnings,
        });
        println!("{object}");
        return Ok(());
    }
    for warning in &audit.warnings {
        println!("WARN  {warning}");
    }
    println!(
        "verified world {} to tick {head_tick}, C(t) {head}",
        target.id
    );
    println!("note: verify executes nothing; replay-verify re-executes and compares every root");
    Ok(())
}
