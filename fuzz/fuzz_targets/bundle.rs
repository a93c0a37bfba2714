//! Fuzz target `bundle`: the input as a proof bundle file, decoded, its
//! operator signature checked and, if that verifies, replayed on an engine
//! (no runtime root); then again with the checksum recomputed, so mutations
//! reach the body decoder, and with the decoded body re-signed by a fixed
//! fuzzing key, so they reach replay. Whatever decodes must re-encode to the
//! input; refusals must be malformed files.
//!
//! The body is `everarcade_audit::fuzz::bundle`, which the audit crate's
//! tests also run over the committed corpus (`fuzz/corpus/bundle/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    everarcade_audit::fuzz::bundle(data);
});
