//! NaN canonicalization: every NaN that float arithmetic produces has the
//! canonical bit pattern, whatever the hardware would have produced (x86
//! gives the negative "default NaN" for 0/0 and sqrt(-1), and propagates
//! payloads).

use everarcade_protocol::Outcome;

use crate::common::*;

const F32_CANONICAL: u64 = 0x7fc0_0000;
const F64_CANONICAL: u64 = 0x7ff8_0000_0000_0000;

/// Operands read from memory at run time, so nothing can be constant-folded:
/// 0.0 (f32 and f64) at 4000, +inf (f32) at 4016, NaN payloads at 4096
/// (f32 0x7fa00001, signalling) and 4104 (f64 0xfff0000000000001, negative
/// signalling).
const ZERO32: &str = "(f32.load (i32.const 4000))";
const ZERO64: &str = "(f64.load (i32.const 4000))";
const INF32: &str = "(f32.load (i32.const 4016))";
const NAN32: &str = "(f32.load (i32.const 4096))";
const NAN64: &str = "(f64.load (i32.const 4104))";

/// (name, is f64, expression).
fn cases() -> Vec<(&'static str, bool, String)> {
    vec![
        ("f32 0/0 constant", false, "(f32.div (f32.const 0) (f32.const 0))".into()),
        ("f32 0/0", false, format!("(f32.div {ZERO32} {ZERO32})")),
        ("f32 0*inf", false, format!("(f32.mul {ZERO32} {INF32})")),
        ("f32 inf-inf", false, format!("(f32.sub {INF32} {INF32})")),
        ("f32 payload+1 constant", false, "(f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (f32.const 1))".into()),
        ("f32 payload+1", false, format!("(f32.add {NAN32} (f32.const 1))")),
        ("f32 ceil payload", false, format!("(f32.ceil {NAN32})")),
        ("f32 demote payload", false, format!("(f32.demote_f64 {NAN64})")),
        ("f32x4 0/0 lane 0", false, "(f32x4.extract_lane 0 (f32x4.div (v128.load (i32.const 4000)) (v128.load (i32.const 4000))))".into()),
        ("f64 sqrt(-1) constant", true, "(f64.sqrt (f64.const -1))".into()),
        ("f64 sqrt(-1)", true, format!("(f64.sqrt (f64.sub {ZERO64} (f64.const 1)))")),
        ("f64 0/0", true, format!("(f64.div {ZERO64} {ZERO64})")),
        ("f64 payload+1", true, format!("(f64.add {NAN64} (f64.const 1))")),
        ("f64 max payload", true, format!("(f64.max {NAN64} (f64.const 1))")),
        ("f64 promote payload", true, format!("(f64.promote_f32 {NAN32})")),
        ("f64x2 sqrt(-1) lane 1", true, format!("(f64x2.extract_lane 1 (f64x2.sqrt (f64x2.splat (f64.sub {ZERO64} (f64.const 1)))))")),
    ]
}

/// `ea_input` stores each case's bits in an 8-byte slot from 512 and
/// writes them all as "n".
fn nan_guest(cases: &[(&str, bool, String)]) -> String {
    let stores: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(index, (_, is_f64, expression))| {
            let offset = 512 + 8 * index;
            match is_f64 {
                true => format!("(i64.store (i32.const {offset}) (i64.reinterpret_f64 {expression}))"),
                false => format!("(i64.store (i32.const {offset}) (i64.extend_i32_u (i32.reinterpret_f32 {expression})))"),
            }
        })
        .collect();
    let stores = stores.join("\n    ");
    let length = 8 * cases.len();
    module(&format!(
        r#"
  (data (i32.const 0) "n")
  (data (i32.const 4016) "\00\00\80\7f")
  (data (i32.const 4096) "\01\00\a0\7f")
  (data (i32.const 4104) "\01\00\00\00\00\00\f0\ff")
  {ALLOC}
  (func (export "ea_input") (param i32 i32) (result i32)
    {stores}
    (call $state_set (i32.const 0) (i32.const 1) (i32.const 512) (i32.const {length}))
    (i32.const 0))
"#
    ))
}

#[test]
fn arithmetic_nans_are_canonical() {
    let cases = cases();
    let mut driver = Driver::new(&nan_guest(&cases));
    assert_eq!(driver.tick(&[&[0]]).receipts[0].outcome, Outcome::Applied);
    let stored = driver.world.state().get(b"n").expect("n written").to_vec();
    assert_eq!(stored.len(), 8 * cases.len());
    let mut wrong = Vec::new();
    for ((name, is_f64, _), slot) in cases.iter().zip(stored.chunks_exact(8)) {
        let bits = u64::from_le_bytes(slot.try_into().expect("8 bytes"));
        let canonical = if *is_f64 {
            F64_CANONICAL
        } else {
            F32_CANONICAL
        };
        if bits != canonical {
            wrong.push(format!("{name}: {bits:#x}, expected {canonical:#x}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "non-canonical NaNs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn nan_bits_pass_through_loads_and_stores_unchanged() {
    // Not arithmetic: reinterpretation and memory keep the payload, so the
    // canonicalization above is the engine's doing, not an artefact of the fixture.
    let cases = vec![
        ("f32 payload loaded", false, NAN32.to_string()),
        ("f64 payload loaded", true, NAN64.to_string()),
    ];
    let mut driver = Driver::new(&nan_guest(&cases));
    assert_eq!(driver.tick(&[&[0]]).receipts[0].outcome, Outcome::Applied);
    let stored = driver.world.state().get(b"n").expect("n written");
    assert_eq!(&stored[..8], &0x7fa0_0001u64.to_le_bytes());
    assert_eq!(&stored[8..], &0xfff0_0000_0000_0001u64.to_le_bytes());
}
