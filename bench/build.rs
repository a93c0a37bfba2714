//! Compiles the 2d-arena rules (`runtime/games/2d-arena/src/arena.c`) and the
//! native host (`bench/native/host.c`) with the system C compiler at `-O2`,
//! exactly the sources `bench/native/run.sh` builds, so the benchmark can call
//! `ea_genesis`/`ea_bot`/`ea_input`/`ea_tick` natively: the floor the wasm
//! engine is compared against.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let bench =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = bench
        .parent()
        .expect("bench/ lives in the workspace root")
        .to_path_buf();
    let arena = root.join("runtime/games/2d-arena/src/arena.c");
    let host = bench.join("native/host.c");
    let sdk = root.join("sdk/c");
    let native = bench.join("native");
    for path in [
        &arena,
        &host,
        &native.join("host.h"),
        &sdk.join("everarcade.h"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let mut build = cc::Build::new();
    build
        .file(&arena)
        .file(&host)
        .include(&sdk)
        .include(&native)
        .opt_level(2)
        .flag("-std=c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true);
    // Record which compiler built the floor, for the report.
    let compiler = build.get_compiler();
    let version = Command::new(compiler.path())
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "cargo:rustc-env=EA_BENCH_NATIVE_CC={} -O2 ({version})",
        compiler.path().display()
    );
    build.compile("ea_arena_native");
}
