//! `config print` and `config validate` through the real binary: the layers
//! (flag > environment > file > default), redaction of secrets, and refusal
//! of unknown settings and invalid values with their source named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use everarcade_testkit::temp::TempDir;

mod common;

use common::{repository_root, stderr, stdout};

const TOKEN: &str = "s3cret-token-0123456789";

/// Arguments and environment variables of one run.
type Layer<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

/// A temporary directory of its own, removed on drop.
struct Dir(TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(TempDir::new("config"))
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

/// Runs the binary with exactly these `EVERARCADE_*` variables (the test
/// process's own are removed).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_everarcade-runtime"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EVERARCADE_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// `config print --json` with these arguments and variables.
fn print_json(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["config", "print", "--json"];
    all.extend_from_slice(args);
    let output = run(&all, env);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// Fails with exit 2 and `error[invalid_config]`; returns the message.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run(args, env);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.starts_with("error[invalid_config]: "), "{message}");
    message
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn defaults_without_any_layer() {
    let config = print_json(&[], &[]);
    assert_eq!(config["http"]["addr"], "127.0.0.1:8080");
    assert_eq!(config["http"]["request_timeout_ms"], 5000);
    assert_eq!(config["http"]["in_flight_max"], 512);
    assert_eq!(config["http"]["body_bytes_max"], 1 << 20);
    assert_eq!(config["world"]["checkpoint_interval_ticks"], 1000);
    assert_eq!(config["log"]["format"], "text");
    assert_eq!(config["amnesia"], false);
    assert!(config["admin"]["token"].is_null());
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let dir = Dir::new();
    let file = dir.file(
        "node.toml",
        "[http]\naddr = \"127.0.0.1:1001\"\nin_flight_max = 11\nbody_bytes_max = 2048\n\
         [world]\ncheckpoints_retained = 5\n",
    );
    let env = [
        ("EVERARCADE_HTTP_ADDR", "127.0.0.1:1002"),
        ("EVERARCADE_HTTP_IN_FLIGHT_MAX", "12"),
        ("EVERARCADE_WORLD_CHECKPOINTS_RETAINED", "6"),
    ];
    let args = [
        "--config",
        path(&file),
        "--http-addr",
        "127.0.0.1:1003",
        "--checkpoints-retained",
        "7",
    ];
    let config = print_json(&args, &env);
    assert_eq!(config["http"]["addr"], "127.0.0.1:1003", "flag");
    assert_eq!(config["world"]["checkpoints_retained"], 7, "flag");
    assert_eq!(config["http"]["in_flight_max"], 12, "environment");
    assert_eq!(config["http"]["body_bytes_max"], 2048, "file");
    assert_eq!(config["http"]["request_timeout_ms"], 5000, "default");

    // The TOML form names each value's source.
    let mut toml_args = vec!["config", "print"];
    toml_args.extend_from_slice(&args);
    let output = run(&toml_args, &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("addr = \"127.0.0.1:1003\" # flag --http-addr\n"),
        "{text}"
    );
    assert!(
        text.contains("in_flight_max = 12 # environment variable EVERARCADE_HTTP_IN_FLIGHT_MAX\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "body_bytes_max = 2048 # config file {}\n",
            file.display()
        )),
        "{text}"
    );
    assert!(text.contains("request_timeout_ms = 5000\n"), "{text}");
}

#[test]
fn every_named_flag_sets_its_setting() {
    let args = [
        "--http-addr",
        "127.0.0.1:9",
        "--amnesia",
        "--log-format",
        "json",
        "--log-level",
        "everarcade_node=debug,info",
        "--tls-cert",
        "cert.pem",
        "--tls-key",
        "key.pem",
        "--checkpoint-interval",
        "0",
        "--checkpoints-retained",
        "9",
        "--set",
        "http.rate_per_client_per_second=42",
        "--set",
        "world.shutdown_deadline_ms=1234",
    ];
    let config = print_json(&args, &[]);
    assert_eq!(config["http"]["addr"], "127.0.0.1:9");
    assert_eq!(config["amnesia"], true);
    assert_eq!(config["log"]["format"], "json");
    assert_eq!(config["log"]["level"], "everarcade_node=debug,info");
    assert_eq!(config["http"]["tls_cert"], "cert.pem");
    assert_eq!(config["http"]["tls_key"], "key.pem");
    assert_eq!(config["world"]["checkpoint_interval_ticks"], 0);
    assert_eq!(config["world"]["checkpoints_retained"], 9);
    assert_eq!(config["http"]["rate_per_client_per_second"], 42);
    assert_eq!(config["world"]["shutdown_deadline_ms"], 1234);
    // A named flag wins over --set for the same setting.
    let config = print_json(
        &[
            "--set",
            "http.addr=127.0.0.1:1",
            "--http-addr",
            "127.0.0.1:2",
        ],
        &[],
    );
    assert_eq!(config["http"]["addr"], "127.0.0.1:2");
}

#[test]
fn the_file_comes_from_the_flag_or_the_environment() {
    let dir = Dir::new();
    let from_env = dir.file("env.toml", "[http]\nin_flight_max = 21\n");
    let from_flag = dir.file("flag.toml", "[http]\nin_flight_max = 22\n");
    let env = [("EVERARCADE_CONFIG", path(&from_env))];
    assert_eq!(print_json(&[], &env)["http"]["in_flight_max"], 21);
    let config = print_json(&["--config", path(&from_flag)], &env);
    assert_eq!(config["http"]["in_flight_max"], 22);
}

#[test]
fn environment_booleans_and_empty_values() {
    for (value, expected) in [("1", true), ("true", true), ("0", false), ("false", false)] {
        let config = print_json(&[], &[("EVERARCADE_AMNESIA", value)]);
        assert_eq!(config["amnesia"], expected, "{value}");
    }
    let dir = Dir::new();
    let file = dir.file(
        "tls.toml",
        "[http]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
    );
    let env = [
        ("EVERARCADE_HTTP_TLS_CERT", ""),
        ("EVERARCADE_HTTP_TLS_KEY", ""),
    ];
    let config = print_json(&["--config", path(&file)], &env);
    assert!(
        config["http"]["tls_cert"].is_null(),
        "an empty value unsets"
    );
    let message = refused(&["config", "print"], &[("EVERARCADE_AMNESIA", "yes")]);
    assert!(
        message.contains("environment variable EVERARCADE_AMNESIA"),
        "{message}"
    );
}

#[test]
fn secrets_are_redacted_from_every_source() {
    let dir = Dir::new();
    let file = dir.file("node.toml", &format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    let token_file = dir.file("admin.token", &format!("{TOKEN}\n"));
    let sources: [Layer; 3] = [
        (vec!["--config", path(&file)], vec![]),
        (vec![], vec![("EVERARCADE_ADMIN_TOKEN", TOKEN)]),
        (vec!["--admin-token-file", path(&token_file)], vec![]),
    ];
    for (args, env) in sources {
        for json in [false, true] {
            let mut all = vec!["config", "print"];
            all.extend_from_slice(&args);
            if json {
                all.push("--json");
            }
            let output = run(&all, &env);
            assert!(output.status.success(), "{}", stderr(&output));
            let text = stdout(&output);
            assert!(!text.contains(TOKEN), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }
}

#[test]
fn unknown_settings_are_refused() {
    let dir = Dir::new();
    let file = dir.file("node.toml", "[http]\nadr = \"127.0.0.1:1\"\n");
    let message = refused(&["config", "validate", path(&file)], &[]);
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(
        message.contains("unknown setting `http.adr` (did you mean http.addr?)"),
        "{message}"
    );
    let message = refused(&["config", "print", "--config", path(&file)], &[]);
    assert!(message.contains("http.adr"), "{message}");

    let section = dir.file("section.toml", "[htp]\naddr = \"127.0.0.1:1\"\n");
    let message = refused(&["config", "validate", path(&section)], &[]);
    assert!(message.contains("`[htp]`"), "{message}");

    let message = refused(
        &["config", "print"],
        &[("EVERARCADE_HTTP_ADR", "127.0.0.1:1")],
    );
    assert!(message.contains("EVERARCADE_HTTP_ADR"), "{message}");
    assert!(
        message.contains("did you mean EVERARCADE_HTTP_ADDR?"),
        "{message}"
    );

    let message = refused(&["config", "print", "--set", "http.nope=1"], &[]);
    assert!(
        message.contains("flag --set: unknown setting `http.nope`"),
        "{message}"
    );
}

#[test]
fn the_manual_shell_variables_are_not_settings() {
    let env = [
        ("EVERARCADE_ROOT", "runtime/operator-node"),
        ("EVERARCADE_WORLD", "world-001"),
        ("EVERARCADE_PACKAGE", "runtime/games/2d-arena"),
    ];
    assert_eq!(print_json(&[], &env)["http"]["addr"], "127.0.0.1:8080");
}

#[test]
fn invalid_values_name_their_source() {
    let dir = Dir::new();
    let cases: [(&str, &str); 5] = [
        ("[http]\nin_flight_max = \"many\"\n", "http.in_flight_max"),
        ("[http]\naddr = \"not an address\"\n", "http.addr"),
        (
            "[http]\nbody_bytes_max = 10\n",
            "http.body_bytes_max: 10 is below the minimum 1024",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("amnesia = \"yes\"\n", "amnesia"),
    ];
    for (n, (text, expected)) in cases.iter().enumerate() {
        let file = dir.file(&format!("bad-{n}.toml"), text);
        let message = refused(&["config", "validate", path(&file)], &[]);
        let prefix = format!("error[invalid_config]: config file {}: ", file.display());
        assert!(message.starts_with(&prefix), "{message}");
        assert!(message.contains(expected), "{message}");
    }

    let message = refused(
        &["config", "print"],
        &[("EVERARCADE_HTTP_BODY_BYTES_MAX", "12")],
    );
    assert!(
        message
            .contains("environment variable EVERARCADE_HTTP_BODY_BYTES_MAX: http.body_bytes_max"),
        "{message}"
    );
    let message = refused(
        &["config", "print"],
        &[("EVERARCADE_HTTP_REQUEST_TIMEOUT_MS", "soon")],
    );
    assert!(
        message.contains("EVERARCADE_HTTP_REQUEST_TIMEOUT_MS"),
        "{message}"
    );

    let flags: [(&[&str], &str); 5] = [
        (&["--http-addr", "localhost"], "flag --http-addr: http.addr"),
        (
            &["--checkpoints-retained", "0"],
            "flag --checkpoints-retained: world.checkpoints_retained",
        ),
        (&["--checkpoint-interval=-1"], "flag --checkpoint-interval"),
        (&["--log-format", "xml"], "flag --log-format: log.format"),
        (&["--log-level", "a=b=c"], "flag --log-level: log.level"),
    ];
    for (args, expected) in flags {
        let mut all = vec!["config", "print"];
        all.extend_from_slice(args);
        let message = refused(&all, &[]);
        assert!(message.contains(expected), "{message}");
    }
    // A flag cannot pair with a half that is missing: TLS needs both files.
    let message = refused(&["config", "print", "--tls-cert", "cert.pem"], &[]);
    assert!(
        message.contains("flag --tls-cert: http.tls_cert"),
        "{message}"
    );
    let message = refused(
        &[
            "config",
            "print",
            "--admin-token-file",
            "/nonexistent/token",
        ],
        &[],
    );
    assert!(message.contains("flag --admin-token-file"), "{message}");
    assert!(message.contains("/nonexistent/token"), "{message}");
}

#[test]
fn validate_accepts_a_good_file_and_refuses_a_bad_one() {
    let dir = Dir::new();
    let good = dir.file(
        "good.toml",
        "amnesia = true\n[http]\naddr = \"127.0.0.1:9090\"\n[world]\ncheckpoint_interval_ticks = 0\n",
    );
    let output = run(&["config", "validate", path(&good)], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("ok: {} is valid\n", good.display())
    );
    let output = run(&["config", "validate", "--json", path(&good)], &[]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(value["valid"], true);

    // validate reads the file alone: the environment does not change the verdict.
    let output = run(
        &["config", "validate", path(&good)],
        &[("EVERARCADE_HTTP_ADR", "x")],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let syntax = dir.file("syntax.toml", "[http]\naddr = \n");
    let message = refused(&["config", "validate", path(&syntax)], &[]);
    assert!(message.contains("line 2"), "{message}");
    let message = refused(
        &["config", "validate", path(&dir.0.join("missing.toml"))],
        &[],
    );
    assert!(message.contains("missing.toml"), "{message}");
}

#[test]
fn printed_configuration_is_valid_toml_that_validates() {
    let dir = Dir::new();
    let output = run(
        &[
            "config",
            "print",
            "--http-addr",
            "127.0.0.1:7070",
            "--amnesia",
        ],
        &[("EVERARCADE_HTTP_IN_FLIGHT_MAX", "64")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let file = dir.file("printed.toml", &stdout(&output));
    let output = run(&["config", "validate", path(&file)], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = print_json(&["--config", path(&file)], &[]);
    assert_eq!(config["http"]["addr"], "127.0.0.1:7070");
    assert_eq!(config["http"]["in_flight_max"], 64);
    assert_eq!(config["amnesia"], true);
}

/// The manual's table is generated from the one table of settings.
#[test]
fn the_manual_lists_every_setting() {
    let manual = std::fs::read_to_string(repository_root().join("docs/OPERATIONS.md"))
        .expect("docs/OPERATIONS.md");
    let table = everarcade_node::config::markdown_table();
    assert!(
        manual.contains(&table),
        "docs/OPERATIONS.md must contain, under ## Configuration, exactly:\n{table}"
    );
}
