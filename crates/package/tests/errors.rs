//! Every way a package is refused, each built as a real directory: the error
//! code, and a message that names what is wrong.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{MANIFEST, MINIMAL_WAT, TempDir, manifest_with, wasm};
use everarcade_package::{Exports, Package};

/// Loads `dir`; expects error `code` with a message containing each of `named`.
fn check(dir: &Path, code: &str, named: &[&str]) {
    let error = match Package::load(dir) {
        Ok(package) => panic!(
            "{} loaded (root {}); expected {code}",
            dir.display(),
            package.root
        ),
        Err(error) => error,
    };
    let message = error.to_string();
    assert_eq!(error.code(), code, "{message}");
    for fragment in named {
        assert!(
            message.contains(fragment),
            "[{code}] {message:?} does not name {fragment:?}"
        );
    }
}

/// A package of `manifest` and the minimal module; `check`s it.
fn check_manifest(manifest: &str, code: &str, named: &[&str]) {
    let module = wasm(MINIMAL_WAT);
    let dir = TempDir::with_files(
        code,
        &[("world.toml", manifest.as_bytes()), ("world.wasm", &module)],
    );
    check(dir.path(), code, named);
}

/// A package of the valid manifest and `module`; `check`s it.
fn check_module(module: &[u8], code: &str, named: &[&str]) {
    let dir = TempDir::with_files(
        code,
        &[("world.toml", MANIFEST.as_bytes()), ("world.wasm", module)],
    );
    check(dir.path(), code, named);
}

/// `check_module` on WAT text.
fn check_wat(wat: &str, code: &str, named: &[&str]) {
    check_module(&wasm(wat), code, named);
}

/// The minimal module's required exports, for modules that vary the rest.
const REQUIRED: &str = r#"
  (func (export "ea_alloc") (param i32) (result i32) i32.const 0)
  (func (export "ea_input") (param i32 i32) (result i32) i32.const 0)"#;

fn module_with(rest: &str) -> String {
    format!("(module {rest} (memory (export \"memory\") 1 1) {REQUIRED})")
}

#[test]
fn minimal_package_loads() {
    let dir = TempDir::valid_package("minimal", &[]);
    let package = Package::load(dir.path()).unwrap();
    assert_eq!(package.manifest.name, "minimal");
    assert_eq!(package.exports, Exports::default());
    let paths: Vec<&str> = package
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    assert_eq!(paths, ["world.toml", "world.wasm"]);
}

#[test]
fn optional_exports_load() {
    let wat = module_with(
        r#"
        (func (export "ea_genesis"))
        (func (export "ea_tick") (param i64))
        (func (export "ea_bot") (param i32 i64 i32 i32) (result i32) i32.const 0)"#,
    );
    let exports = load_module(&wasm(&wat)).exports;
    assert_eq!(
        exports,
        Exports {
            genesis: true,
            tick: true,
            bot: true
        }
    );
    let tick_only = module_with(r#"(func (export "ea_tick") (param i64))"#);
    let exports = load_module(&wasm(&tick_only)).exports;
    assert_eq!(
        exports,
        Exports {
            genesis: false,
            tick: true,
            bot: false
        }
    );
}

#[test]
fn admitted_features_load() {
    // What clang emits for a world: every ABI import, a funcref table with
    // call_indirect, mutable globals, bulk memory, sign extension, SIMD.
    let wat = module_with(
        r#"
        (import "ea" "state_get" (func (param i32 i32 i32 i32) (result i32)))
        (import "ea" "state_set" (func (param i32 i32 i32 i32)))
        (import "ea" "state_del" (func (param i32 i32)))
        (import "ea" "emit" (func (param i32 i32)))
        (import "ea" "random_seed" (func (param i32)))
        (import "ea" "log" (func (param i32 i32)))
        (type $void (func))
        (global $sp (mut i32) (i32.const 1024))
        (table 1 1 funcref)
        (elem (i32.const 0) $genesis)
        (func $genesis (export "ea_genesis")
          (global.set $sp (i32.const 0))
          (memory.fill (i32.const 0) (i32.const 0) (i32.const 16))
          (drop (i32.extend8_s (i32.const 255)))
          (drop (i32.trunc_sat_f32_s (f32.const 1.5))))
        (func (export "ea_tick") (param i64) (call_indirect (type $void) (i32.const 0)))"#,
    );
    load_module(&wasm(&wat));
}

#[test]
fn simd_loads() {
    // wasmparser decodes SIMD operators only with its `simd` feature; without
    // it the verdict would hang on whether wasmtime shares the build.
    let wat = module_with(
        r#"(func (export "ea_genesis")
          (v128.store (i32.const 0)
            (i32x4.add (v128.load (i32.const 0)) (v128.const i32x4 1 2 3 4))))"#,
    );
    load_module(&wasm(&wat));
}

/// Loads a package of the valid manifest and `module`, which must succeed.
fn load_module(module: &[u8]) -> Package {
    let dir = TempDir::with_files(
        "load",
        &[("world.toml", MANIFEST.as_bytes()), ("world.wasm", module)],
    );
    Package::load(dir.path()).unwrap_or_else(|e| panic!("[{}] {e}", e.code()))
}

#[test]
fn module_in_a_subdirectory_loads() {
    let module = wasm(MINIMAL_WAT);
    let manifest = manifest_with("module = \"world.wasm\"", "module = \"bin/world.wasm\"");
    let dir = TempDir::with_files(
        "subdir",
        &[
            ("world.toml", manifest.as_bytes()),
            ("bin/world.wasm", &module),
        ],
    );
    let package = Package::load(dir.path()).unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    assert_eq!(package.wasm, module);
}

#[test]
fn memory_maximum_at_the_limit_loads() {
    let module = wasm(&MINIMAL_WAT.replace("1 1)", "2 2)"));
    let dir = TempDir::with_files(
        "at-limit",
        &[("world.toml", MANIFEST.as_bytes()), ("world.wasm", &module)],
    );
    Package::load(dir.path()).unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
}

#[test]
fn package_not_found() {
    let parent = TempDir::new("not-found");
    let missing = parent.join("absent");
    check(
        &missing,
        "package_not_found",
        &[&missing.display().to_string()],
    );
}

#[test]
fn package_not_a_directory() {
    let parent = TempDir::new("not-a-directory");
    let file = parent.write("world.toml", MANIFEST.as_bytes());
    check(
        &file,
        "package_not_a_directory",
        &[&file.display().to_string()],
    );
}

#[test]
fn manifest_missing() {
    let module = wasm(MINIMAL_WAT);
    let absent = TempDir::with_files("manifest-absent", &[("world.wasm", &module)]);
    check(absent.path(), "manifest_missing", &["world.toml"]);
    let nested = TempDir::with_files(
        "manifest-nested",
        &[
            ("sub/world.toml", MANIFEST.as_bytes()),
            ("world.wasm", &module),
        ],
    );
    check(nested.path(), "manifest_missing", &["world.toml"]);
    let misnamed = TempDir::with_files(
        "manifest-case",
        &[("World.toml", MANIFEST.as_bytes()), ("world.wasm", &module)],
    );
    check(misnamed.path(), "manifest_missing", &["world.toml"]);
}

#[test]
fn manifest_invalid() {
    check_manifest("name = ", "manifest_invalid", &["world.toml"]);
    check_manifest("[limits\nname = 1", "manifest_invalid", &["world.toml"]);
    let not_utf8 = TempDir::with_files(
        "manifest-bytes",
        &[
            ("world.toml", &[b'n', 0xff, 0xfe]),
            ("world.wasm", &wasm(MINIMAL_WAT)),
        ],
    );
    check(not_utf8.path(), "manifest_invalid", &["UTF-8"]);
    check_manifest(
        &format!("extra = 1\n{MANIFEST}"),
        "manifest_invalid",
        &["extra"],
    );
    check_manifest(
        &format!("{MANIFEST}fuel_per_second = 1\n"),
        "manifest_invalid",
        &["fuel_per_second"],
    );
    check_manifest(
        &manifest_with("tick_rate_hz = 20\n", ""),
        "manifest_invalid",
        &["tick_rate_hz"],
    );
    check_manifest(
        &manifest_with("event_bytes = 256\n", ""),
        "manifest_invalid",
        &["event_bytes"],
    );
    check_manifest(
        &manifest_with("tick_rate_hz = 20", "tick_rate_hz = \"20\""),
        "manifest_invalid",
        &["tick_rate_hz"],
    );
    check_manifest(
        &manifest_with("tick_rate_hz = 20", "tick_rate_hz = -1"),
        "manifest_invalid",
        &["tick_rate_hz"],
    );
    check_manifest(
        &manifest_with("name = \"minimal\"", "name = \"\""),
        "manifest_invalid",
        &["name"],
    );
    let long_name = format!("name = \"{}\"", "n".repeat(65));
    check_manifest(
        &manifest_with("name = \"minimal\"", &long_name),
        "manifest_invalid",
        &["name"],
    );
}

#[test]
fn abi_unknown() {
    for abi in ["ea-world/2", "ea-world/1 ", "", "EA-WORLD/1"] {
        let manifest = manifest_with("abi = \"ea-world/1\"", &format!("abi = \"{abi}\""));
        check_manifest(
            &manifest,
            "abi_unknown",
            &[&format!("{abi:?}"), "ea-world/1"],
        );
    }
}

#[test]
fn version_not_semver() {
    for version in ["1.2", "v1.2.3", "1.2.3.4", "", "01.2.3"] {
        let manifest = manifest_with("version = \"1.2.3\"", &format!("version = \"{version}\""));
        check_manifest(&manifest, "version_not_semver", &[&format!("{version:?}")]);
    }
}

#[test]
fn limit_out_of_range() {
    let cases = [
        ("tick_rate_hz = 20", "tick_rate_hz = 0", "tick_rate_hz = 0"),
        (
            "tick_rate_hz = 20",
            "tick_rate_hz = 1001",
            "tick_rate_hz = 1001",
        ),
        (
            "fuel_per_tick = 50000000",
            "fuel_per_tick = 0",
            "fuel_per_tick = 0",
        ),
        (
            "fuel_per_input = 200000",
            "fuel_per_input = 1000000001",
            "fuel_per_input = 1000000001",
        ),
        (
            "memory_bytes = 131072",
            "memory_bytes = 268435457",
            "memory_bytes = 268435457",
        ),
        (
            "inputs_per_tick = 1024",
            "inputs_per_tick = 65537",
            "inputs_per_tick = 65537",
        ),
        (
            "payload_bytes = 256",
            "payload_bytes = 0",
            "payload_bytes = 0",
        ),
        ("key_bytes = 64", "key_bytes = 257", "key_bytes = 257"),
        (
            "value_bytes = 65536",
            "value_bytes = 65537",
            "value_bytes = 65537",
        ),
        (
            "events_per_input = 16",
            "events_per_input = 1025",
            "events_per_input = 1025",
        ),
        ("event_bytes = 256", "event_bytes = 0", "event_bytes = 0"),
    ];
    for (from, to, named) in cases {
        check_manifest(&manifest_with(from, to), "limit_out_of_range", &[named]);
    }
}

#[test]
fn module_path_invalid() {
    for module in [
        "../world.wasm",
        "/etc/passwd",
        "./world.wasm",
        "bin//world.wasm",
        "bin\\\\world.wasm",
        "",
        "bin/",
    ] {
        let manifest = manifest_with("module = \"world.wasm\"", &format!("module = \"{module}\""));
        let shown = format!("{:?}", module.replace("\\\\", "\\"));
        check_manifest(&manifest, "module_path_invalid", &[&shown]);
    }
}

#[test]
fn module_missing() {
    let other = manifest_with("module = \"world.wasm\"", "module = \"other.wasm\"");
    check_manifest(&other, "module_missing", &["other.wasm"]);
    let directory = manifest_with("module = \"world.wasm\"", "module = \"bin\"");
    let dir = TempDir::with_files(
        "module-directory",
        &[
            ("world.toml", directory.as_bytes()),
            ("bin/world.wasm", &wasm(MINIMAL_WAT)),
        ],
    );
    check(dir.path(), "module_missing", &["bin"]);
}

#[test]
fn wasm_invalid() {
    check_module(b"not wasm at all", "wasm_invalid", &[]);
    check_module(b"", "wasm_invalid", &[]);
    let mut truncated = wasm(MINIMAL_WAT);
    truncated.truncate(truncated.len() - 1);
    check_module(&truncated, "wasm_invalid", &[]);
    // Outside the determinism profile.
    let shared = MINIMAL_WAT.replace("1 1)", "1 1 shared)");
    check_wat(&shared, "wasm_invalid", &["threads"]);
    let atomic = module_with(r#"(func (drop (i32.atomic.load (i32.const 0))))"#);
    check_wat(&atomic, "wasm_invalid", &["threads"]);
    let memory64 = MINIMAL_WAT.replace("1 1)", "i64 1 1)");
    check_wat(&memory64, "wasm_invalid", &["memory64"]);
    let relaxed = module_with(
        r#"(func (drop (f32x4.relaxed_madd (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0))))"#,
    );
    check_wat(&relaxed, "wasm_invalid", &["SIMD"]);
    check_wat(
        &module_with("(memory 1 1)"),
        "wasm_invalid",
        &["multiple memories"],
    );
}

#[test]
fn import_forbidden() {
    let cases = [
        (
            r#"(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))"#,
            "wasi_snapshot_preview1.clock_time_get",
        ),
        (r#"(import "ea" "name" (func))"#, "ea.name"),
        (
            r#"(import "env" "state_get" (func (param i32 i32 i32 i32) (result i32)))"#,
            "env.state_get",
        ),
        (r#"(import "EA" "log" (func (param i32 i32)))"#, "EA.log"),
        (r#"(import "ea" "clock" (global i64))"#, "ea.clock"),
    ];
    for (import, named) in cases {
        check_wat(&module_with(import), "import_forbidden", &[named]);
    }
}

#[test]
fn import_signature() {
    let cases = [
        (
            r#"(import "ea" "state_get" (func (param i32) (result i32)))"#,
            &[
                "ea.state_get",
                "(i32, i32, i32, i32) -> i32",
                "(i32) -> (i32)",
            ][..],
        ),
        (
            r#"(import "ea" "state_set" (func (param i32 i32 i32 i32) (result i32)))"#,
            &["ea.state_set"][..],
        ),
        (
            r#"(import "ea" "random_seed" (func (param i64)))"#,
            &["ea.random_seed", "(i64)"][..],
        ),
        (
            r#"(import "ea" "log" (global i32))"#,
            &["ea.log", "non-function"][..],
        ),
    ];
    for (import, named) in cases {
        check_wat(&module_with(import), "import_signature", named);
    }
}

#[test]
fn export_missing() {
    let no_input = r#"(module (memory (export "memory") 1 1)
        (func (export "ea_alloc") (param i32) (result i32) i32.const 0))"#;
    check_wat(no_input, "export_missing", &["ea_input"]);
    let no_alloc = r#"(module (memory (export "memory") 1 1)
        (func (export "ea_input") (param i32 i32) (result i32) i32.const 0))"#;
    check_wat(no_alloc, "export_missing", &["ea_alloc"]);
    let misspelt = MINIMAL_WAT.replace("\"ea_input\"", "\"ea_inputs\"");
    check_wat(&misspelt, "export_missing", &["ea_input"]);
    let unexported = MINIMAL_WAT.replace("(memory (export \"memory\") 1 1)", "(memory 1 1)");
    check_wat(&unexported, "export_missing", &["memory"]);
    let renamed = MINIMAL_WAT.replace("(export \"memory\")", "(export \"mem\")");
    check_wat(&renamed, "export_missing", &["memory"]);
    let no_memory = MINIMAL_WAT.replace("(memory (export \"memory\") 1 1)", "");
    check_wat(&no_memory, "export_missing", &["memory"]);
}

#[test]
fn export_signature() {
    let wrong_tick = module_with(r#"(func (export "ea_tick") (param i32))"#);
    check_wat(
        &wrong_tick,
        "export_signature",
        &["ea_tick", "(i64) -> ()", "(i32) -> ()"],
    );
    let wrong_bot = module_with(r#"(func (export "ea_bot") (param i32 i64 i32 i32))"#);
    check_wat(
        &wrong_bot,
        "export_signature",
        &["ea_bot", "(i32, i64, i32, i32) -> i32"],
    );
    let wrong_genesis = module_with(r#"(func (export "ea_genesis") (result i32) i32.const 0)"#);
    check_wat(
        &wrong_genesis,
        "export_signature",
        &["ea_genesis", "() -> ()"],
    );
    let wrong_input = MINIMAL_WAT.replace(
        "(param i32 i32) (result i32)",
        "(param i64 i32) (result i32)",
    );
    check_wat(
        &wrong_input,
        "export_signature",
        &["ea_input", "(i64, i32) -> (i32)"],
    );
    let global_alloc = r#"(module (memory (export "memory") 1 1)
        (global (export "ea_alloc") i32 (i32.const 0))
        (func (export "ea_input") (param i32 i32) (result i32) i32.const 0))"#;
    check_wat(
        global_alloc,
        "export_signature",
        &["ea_alloc", "non-function"],
    );
}

#[test]
fn memory_maximum_missing() {
    check_wat(
        &MINIMAL_WAT.replace("1 1)", "1)"),
        "memory_maximum_missing",
        &["maximum"],
    );
}

#[test]
fn memory_maximum_too_large() {
    // The manifest allows 131072 bytes: two pages.
    check_wat(
        &MINIMAL_WAT.replace("1 1)", "1 3)"),
        "memory_maximum_too_large",
        &["196608", "131072"],
    );
    let small_limit = manifest_with("memory_bytes = 131072", "memory_bytes = 65535");
    check_manifest(
        &small_limit,
        "memory_maximum_too_large",
        &["65536", "65535"],
    );
}

#[test]
fn package_path_escape() {
    let outside = TempDir::with_files("outside", &[("secret.txt", b"s"), ("dir/file.txt", b"f")]);

    let file_link = TempDir::valid_package("escape-file", &[]);
    let link = file_link.join("secret.txt");
    symlink(outside.join("secret.txt"), &link).unwrap();
    check(
        file_link.path(),
        "package_path_escape",
        &[&link.display().to_string(), "symlink"],
    );

    let dir_link = TempDir::valid_package("escape-dir", &[]);
    let link = dir_link.join("assets");
    symlink(outside.join("dir"), &link).unwrap();
    check(
        dir_link.path(),
        "package_path_escape",
        &[&link.display().to_string(), "symlink"],
    );

    // Even a link that stays inside: the listing would count its bytes twice.
    let inner_link = TempDir::valid_package("escape-inner", &[]);
    let link = inner_link.join("assets/copy.wasm");
    std::fs::create_dir(inner_link.join("assets")).unwrap();
    symlink("../world.wasm", &link).unwrap();
    check(
        inner_link.path(),
        "package_path_escape",
        &[&link.display().to_string(), "symlink"],
    );

    let dangling = TempDir::valid_package("escape-dangling", &[]);
    symlink(outside.join("absent"), dangling.join("gone")).unwrap();
    check(dangling.path(), "package_path_escape", &["gone", "symlink"]);
}

#[test]
fn package_path_escape_for_odd_names_and_special_files() {
    let not_utf8 = TempDir::valid_package("escape-utf8", &[]);
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
    std::fs::write(not_utf8.path().join(name), b"x").unwrap();
    check(not_utf8.path(), "package_path_escape", &["UTF-8"]);

    let backslash = TempDir::valid_package("escape-backslash", &[("a\\b", b"x")]);
    check(
        backslash.path(),
        "package_path_escape",
        &["a\\b", "backslash"],
    );

    let socket = TempDir::valid_package("escape-socket", &[]);
    let path = socket.join("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    check(
        socket.path(),
        "package_path_escape",
        &["control.sock", "not a regular file"],
    );
}

#[test]
fn package_too_large() {
    let nested = TempDir::valid_package("too-deep", &[]);
    let deep = (0..17)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    nested.write(&format!("{deep}/leaf"), b"x");
    check(nested.path(), "package_too_large", &["16"]);

    let allowed = TempDir::valid_package("deep-enough", &[]);
    let deep = (0..16)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    allowed.write(&format!("{deep}/leaf"), b"x");
    Package::load(allowed.path()).unwrap_or_else(|e| panic!("16 levels: [{}] {e}", e.code()));

    let crowded = TempDir::valid_package("too-many", &[]);
    for i in 0..4_095 {
        crowded.write(&format!("f/{i}"), b"");
    }
    check(crowded.path(), "package_too_large", &["4096"]);
    std::fs::remove_file(crowded.join("f/0")).unwrap();
    Package::load(crowded.path()).unwrap_or_else(|e| panic!("4096 files: [{}] {e}", e.code()));
}

#[test]
fn package_too_large_by_bytes() {
    let bytes_max: u64 = 64 * 1024 * 1024;
    let full = TempDir::valid_package("bytes-full", &[]);
    let used: u64 = ["world.toml", "world.wasm"]
        .iter()
        .map(|f| full.join(f).metadata().unwrap().len())
        .sum();
    // Sparse files: no disk space, and they read back as zeros.
    let filler = std::fs::File::create(full.join("filler.bin")).unwrap();
    filler.set_len(bytes_max - used).unwrap();
    Package::load(full.path())
        .unwrap_or_else(|e| panic!("exactly {bytes_max} bytes: [{}] {e}", e.code()));
    filler.set_len(bytes_max - used + 1).unwrap();
    check(full.path(), "package_too_large", &["67108864 bytes"]);

    // A file far beyond the ceiling is refused by its length, before any of
    // it is read: reading it whole would need a terabyte of memory.
    let huge = TempDir::valid_package("bytes-huge", &[]);
    std::fs::File::create(huge.join("huge.bin"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    check(huge.path(), "package_too_large", &["67108864 bytes"]);
}

#[test]
fn start_function_forbidden() {
    let wat = MINIMAL_WAT.replacen("(module", "(module (func $s) (start $s)", 1);
    check_wat(&wat, "start_function_forbidden", &["start function"]);
}
