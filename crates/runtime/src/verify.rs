//! `verify`: every checksum, chain link, signature and checkpoint, and the
//! package binding, without executing anything; prints what it checked.

use everarcade_store::{DiskStorage, LockState, StoreError, WorldLock};
use everarcade_world::WorldError;
use everarcade_world::audit::{Audit, audit};

use crate::JsonWorldArgs;
use crate::exit::Failure;
use crate::target::{Target, world_failure};

/// Times a torn tail is read again while a node is writing the journal.
const TORN_TAIL_RETRIES_MAX: u32 = 3;

/// Audits the world; while a node runs it, a torn tail may be the record
/// being appended right now, so it is read again (a torn tail that stays is
/// reported). A checkpoint that the node's retention removes while it is
/// read is passed over by the audit itself.
fn audit_live(target: &Target) -> Result<Audit, WorldError> {
    let mut attempt = 0;
    loop {
        match audit(&DiskStorage, &target.dir, &target.package) {
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
    let audit = match audit_live(&target) {
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
    println!(
        "PASS  package      {} is the package bound at genesis (genesis.json, journal, package/)",
        audit.package_root
    );
    println!(
        "PASS  journal      {} segments, {} records: every header, checksum and chain link",
        audit.segments, audit.records
    );
    println!(
        "PASS  ticks        {} ticks: input root, receipt root and C(t) recomputed from the records",
        audit.ticks
    );
    println!(
        "PASS  envelopes    {} envelopes: signature, world and nonce order ({} pending for the next tick)",
        audit.envelopes, audit.pending_inputs
    );
    println!(
        "PASS  checkpoints  {} verified {checkpoints:?}: checksum, state root recomputed, roots agree with the journal",
        checkpoints.len()
    );
    if audit.operator_keys == 0 {
        println!(
            "PASS  operator     no operator key yet (a node creates one on its first start); nothing to check"
        );
    } else {
        println!(
            "PASS  operator     {} keys, every rotation endorsed by the key before; {} checkpoints signed by the key of their tick",
            audit.operator_keys, audit.signed_checkpoints
        );
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
