//! Helpers shared by the tests that drive the `everarcade-runtime` binary:
//! where to run it from, how to read what it printed, and the refusal
//! format every command shares (`error[<code>]` on stderr, a documented
//! exit code).

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The world the tests create.
pub const WORLD: &str = everarcade_testkit::WORLD;

/// The sample package, relative to [`repository_root`].
pub const PACKAGE: &str = "runtime/games/2d-arena";

/// The repository's root, the working directory the manual's commands
/// assume (so [`PACKAGE`] resolves).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the command printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the command printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code and both streams, for an assertion's message.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

/// Asserts that the command exited with `exit` and named the error `code`
/// (`error[<code>]` on stderr); returns stderr.
pub fn expect_failure(output: &Output, exit: i32, code: &str) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(exit), "{text}{}", stdout(output));
    assert!(
        text.contains(&format!("error[{code}]")),
        "wanted {code}: {text}"
    );
    text
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Starts `run <root> WORLD <package> --http-addr <address> <options…>` from
/// the repository root, its stdout and stderr appended to `log`.
pub fn spawn_run(root: &Path, package: &str, address: &str, options: &[&str], log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"))
        .current_dir(repository_root())
        .arg("run")
        .arg(root)
        .args([WORLD, package, "--http-addr", address])
        .args(options)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("the binary starts")
}
