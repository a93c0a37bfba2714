//! Operator keys, `backup` and `restore`.

use crate::exit::Failure;

/// `backup` arguments.
#[derive(clap::Args)]
pub struct BackupArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `restore` arguments.
#[derive(clap::Args)]
pub struct RestoreArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `keys` arguments.
#[derive(clap::Args)]
pub struct KeysArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs `backup`.
pub fn backup(_args: BackupArgs) -> Result<(), Failure> {
    Err(Failure::not_built("backup"))
}

/// Runs `restore`.
pub fn restore(_args: RestoreArgs) -> Result<(), Failure> {
    Err(Failure::not_built("restore"))
}

/// Runs `keys`.
pub fn keys(_args: KeysArgs) -> Result<(), Failure> {
    Err(Failure::not_built("keys"))
}
