//! `upgrade` and `rollback` of a world's package.

use crate::exit::Failure;

/// `upgrade` arguments.
#[derive(clap::Args)]
pub struct UpgradeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `rollback` arguments.
#[derive(clap::Args)]
pub struct RollbackArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs `upgrade`.
pub fn upgrade(_args: UpgradeArgs) -> Result<(), Failure> {
    Err(Failure::not_built("upgrade"))
}

/// Runs `rollback`.
pub fn rollback(_args: RollbackArgs) -> Result<(), Failure> {
    Err(Failure::not_built("rollback"))
}
