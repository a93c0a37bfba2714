//! `submit` (sign and send inputs to a running node) and `load` (drive a
//! running node with the package's bots over HTTP, bounded in count and time).

use crate::exit::Failure;

/// `submit` arguments.
#[derive(clap::Args)]
pub struct SubmitArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `load` arguments.
#[derive(clap::Args)]
pub struct LoadArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs `submit`.
pub fn submit(_args: SubmitArgs) -> Result<(), Failure> {
    Err(Failure::not_built("submit"))
}

/// Runs `load`.
pub fn load(_args: LoadArgs) -> Result<(), Failure> {
    Err(Failure::not_built("load"))
}
