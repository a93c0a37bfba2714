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
            logged: false,
        }
    }

    /// The same failure, marked as already reported by the command itself
    /// (`run` logs it as a JSON line in `--log-format json`), so
    /// [`Failure::report`] only returns the exit status.
    pub fn logged(mut self) -> Failure {
        self.logged = true;
        self
    }

    /// Prints `error[code]: message` to stderr (unless the command already
    /// reported it) and returns the exit status.
    pub fn report(self) -> ExitCode {
        if !self.logged {
            eprintln!("error[{}]: {}", self.code, self.message);
        }
        ExitCode::from(self.exit)
    }
}
