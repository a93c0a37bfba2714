//! The `--inputs` file of `simulate` and `submit`: JSON lines
//! `{"tick": 1, "player": "alice", "payload": "<hex>"}`, ticks ascending
//! (docs/PROTOCOL.md §10.2). One parser, one bound and one error code for
//! both commands.

use std::io::BufRead;
use std::path::Path;

use everarcade_protocol::Tick;
use serde::Deserialize;

use crate::exit::{Failure, USAGE};

/// The most inputs (non-blank lines) one `--inputs` file holds. The file is
/// read line by line and refused at the first line past this bound, so a
/// longer file is never read whole.
pub const INPUT_LINES_MAX: usize = 100_000;

/// The error code of every malformed or over-long `--inputs` file.
pub const INPUTS_INVALID: &str = "inputs_invalid";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    tick: Tick,
    player: String,
    payload: String,
}

/// One line of an `--inputs` file: the tick (1 is the first tick the command
/// runs or waits for), the player's name and the payload.
pub struct ScriptedInput {
    /// The tick, counted from 1.
    pub tick: Tick,
    /// The player, whose deterministic test key signs the input.
    pub player: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Reads and checks an `--inputs` file. Refusals are `USAGE` failures: code
/// `inputs_unreadable` when the file cannot be read, else `inputs_invalid`
/// with the message `<path>:<line>: <what>`.
pub fn read_inputs(path: &Path) -> Result<Vec<ScriptedInput>, Failure> {
    let unreadable = |e: std::io::Error| {
        let message = format!("cannot read {}: {e}", path.display());
        Failure::new(USAGE, "inputs_unreadable", message)
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut inputs: Vec<ScriptedInput> = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(unreadable)?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| {
            let message = format!("{}:{}: {message}", path.display(), index + 1);
            Failure::new(USAGE, INPUTS_INVALID, message)
        };
        if inputs.len() == INPUT_LINES_MAX {
            return Err(bad(format!(
                "more than {INPUT_LINES_MAX} inputs (the most one --inputs file holds)"
            )));
        }
        inputs.push(parse_line(&line, inputs.last()).map_err(bad)?);
    }
    Ok(inputs)
}

/// Parses one non-blank line, which follows `previous`.
fn parse_line(line: &str, previous: Option<&ScriptedInput>) -> Result<ScriptedInput, String> {
    let parsed: InputLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if parsed.tick == 0 {
        return Err("tick must be at least 1 (tick 0 is genesis)".into());
    }
    if previous.is_some_and(|previous| previous.tick > parsed.tick) {
        return Err(format!(
            "tick {} comes after a later tick; ticks must ascend",
            parsed.tick
        ));
    }
    if parsed.player.is_empty() || parsed.player.starts_with("bot-") {
        return Err(
            "player must be non-empty and not start with \"bot-\" (reserved for bots)".into(),
        );
    }
    let payload = hex::decode(&parsed.payload).map_err(|e| format!("payload is not hex: {e}"))?;
    Ok(ScriptedInput {
        tick: parsed.tick,
        player: parsed.player,
        payload,
    })
}
