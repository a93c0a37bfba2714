//! Fuzz target `player_proof`: the input as a player proof, decoded and
//! verified against a root nothing leads to and against the root its own
//! accumulator path leads to; then again with its roots repaired to match
//! its claim (a repaired receipt proof must verify). Whatever decodes must
//! re-encode to the input.
//!
//! The body is `everarcade_audit::fuzz::player_proof`, which the audit
//! crate's tests also run over the committed corpus
//! (`fuzz/corpus/player_proof/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    everarcade_audit::fuzz::player_proof(data);
});
