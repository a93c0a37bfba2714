//! The benchmarks' settings, read from `EA_BENCH_*` environment variables
//! and validated before anything runs; a bad value ends the benchmark with
//! [`BAD_SETTINGS`] and a message naming the variable.

use std::process::ExitCode;

/// The exit code of a benchmark whose environment is invalid.
pub const BAD_SETTINGS: u8 = 2;

/// The variable `name` as a positive integer; `default` when it is unset.
pub fn positive(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.parse::<u64>() {
            Ok(value) if value > 0 => Ok(value),
            _ => Err(format!("{name} must be a positive integer, got {text:?}")),
        },
    }
}

/// The variable `name` as an integer, 0 allowed; `default` when it is unset.
pub fn count(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .parse::<u64>()
            .map_err(|_| format!("{name} must be a non-negative integer, got {text:?}")),
    }
}

/// `EA_BENCH_ONLY`: the value of the one section it names among
/// `sections` (name, value); `None` when it is unset (run them all).
pub fn only<T: Copy>(sections: &[(&str, T)]) -> Result<Option<T>, String> {
    let Ok(text) = std::env::var("EA_BENCH_ONLY") else {
        return Ok(None);
    };
    if let Some((_, value)) = sections.iter().find(|(name, _)| *name == text) {
        return Ok(Some(*value));
    }
    let names: Vec<&str> = sections.iter().map(|(name, _)| *name).collect();
    let listed = match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(format!("EA_BENCH_ONLY must be {listed}, got {text:?}"))
}

/// The settings `parsed`, or `None` after printing why they are invalid;
/// the caller then exits with [`BAD_SETTINGS`].
pub fn or_report<T>(parsed: Result<T, String>) -> Option<T> {
    match parsed {
        Ok(settings) => Some(settings),
        Err(message) => {
            eprintln!("{message}");
            None
        }
    }
}

/// [`BAD_SETTINGS`] as an exit code.
pub fn bad_settings() -> ExitCode {
    ExitCode::from(BAD_SETTINGS)
}
