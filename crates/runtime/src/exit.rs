//! Exit codes and the one way a command fails: a stable code, a message, an exit status.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// A failure not covered below.
pub const FAILURE: u8 = 1;
/// Bad command line or bad input file.
pub const USAGE: u8 = 2;
/// Replay reached different roots than recorded.
pub const DIVERGENCE: u8 = 3;
/// A checksum, chain link or signature does not verify.
pub const INTEGRITY: u8 = 4;
/// The command needs a running node and none runs.
pub const NOT_RUNNING: u8 = 5;
/// The world package is invalid or does not match the world.
pub const PACKAGE: u8 = 6;
/// A proof bundle or proof file is not well formed (checksum, structure).
pub const MALFORMED: u8 = 8;
/// A proof bundle's operator signature does not verify or is not trusted.
pub const BAD_SIGNATURE: u8 = 9;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub exit: u8,
    /// Stable machine-readable code.
    pub code: String,
    /// What an operator reads.
    pub message: String,
    /// Under `--json`, the fields printed beside `error` (a JSON object).
    pub details: Option<serde_json::Value>,
    /// Already reported by the command (e.g. as a JSON log line of `run`).
    logged: bool,
}

impl Failure {
    /// A failure with the given exit status and code.
    pub fn new(exit: u8, code: &str, message: impl Into<String>) -> Failure {
        assert_ne!(exit, OK);
        Failure {
            exit,
            code: code.to_string(),
            message: message.into(),
            details: None,
            logged: false,
        }
    }

    /// The same failure with what the command knew when it failed (a JSON
    /// object; under `--json` its fields are printed beside `error`).
    pub fn with_details(mut self, details: serde_json::Value) -> Failure {
        assert!(details.is_object(), "details are a JSON object");
        self.details = Some(details);
        self
    }

    /// The same failure, marked as already reported by the command itself
    /// (`run` logs it as a JSON line in `--log-format json`), so
    /// [`Failure::report`] only returns the exit status.
    pub fn logged(mut self) -> Failure {
        self.logged = true;
        self
    }

    /// Prints `error[code]: message` to stderr (unless the command already
    /// reported it) and, under `--json`, one JSON object on stdout: the
    /// details and `"error": {"code", "message", "exit"}`. Returns the exit
    /// status.
    pub fn report(self, json: bool) -> ExitCode {
        if !self.logged {
            eprintln!("error[{}]: {}", self.code, self.message);
        }
        if json {
            let mut object = self.details.unwrap_or_else(|| serde_json::json!({}));
            object["error"] = serde_json::json!({
                "code": self.code, "message": self.message, "exit": self.exit,
            });
            println!("{object}");
        }
        ExitCode::from(self.exit)
    }
}
