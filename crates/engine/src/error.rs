//! Engine errors: operating failures of the host, never a guest misbehaving
//! (that is a receipt outcome).

use everarcade_protocol::{Outcome, Tick};

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("cannot configure the WebAssembly engine: {message}")]
    Config {
        /// wasmtime's message.
        message: String,
    },
    /// The module did not compile.
    #[error("module does not compile: {message}")]
    Compile {
        /// wasmtime's message.
        message: String,
    },
    /// The module did not link against the `ea` host functions or did not instantiate.
    #[error("module cannot be instantiated: {message}")]
    Instantiate {
        /// wasmtime's message.
        message: String,
    },
    /// `ea_genesis` did not end `applied`, so the world cannot begin.
    #[error("ea_genesis ended {} (code {}); the world cannot begin", outcome.name(), outcome.code())]
    GenesisFailed {
        /// How it ended.
        outcome: Outcome,
    },
    /// More inputs than `inputs_per_tick` were given to one tick.
    #[error("tick {tick} was given {count} inputs; the limit is {limit}")]
    TooManyInputs {
        /// The tick.
        tick: Tick,
        /// Inputs given.
        count: usize,
        /// `inputs_per_tick`.
        limit: u32,
    },
    /// An input's payload is over `payload_bytes` (admission should have refused it).
    #[error("an input of tick {tick} has a {length}-byte payload; the limit is {limit}")]
    PayloadTooLarge {
        /// The tick.
        tick: Tick,
        /// Payload length.
        length: usize,
        /// `payload_bytes`.
        limit: u32,
    },
    /// A snapshot's `C(0)` is not the one this world id and package give.
    #[error(
        "the snapshot belongs to genesis {got}, but this world id and package give genesis {expected}"
    )]
    GenesisMismatch {
        /// `C(0)` from the world id and package.
        expected: everarcade_protocol::Hash,
        /// `C(0)` recorded in the snapshot.
        got: everarcade_protocol::Hash,
    },
}

impl EngineError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Config { .. } => "engine_config",
            EngineError::GenesisMismatch { .. } => "genesis_mismatch",
            EngineError::Compile { .. } => "module_compile",
            EngineError::Instantiate { .. } => "module_instantiate",
            EngineError::GenesisFailed { .. } => "genesis_failed",
            EngineError::TooManyInputs { .. } => "too_many_inputs",
            EngineError::PayloadTooLarge { .. } => "payload_too_large",
        }
    }
}
