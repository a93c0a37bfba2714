//! Proof bundles, player proofs and archive recovery.

use crate::exit::Failure;

/// `export-bundle` arguments.
#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `verify-bundle` arguments.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `prove` arguments.
#[derive(clap::Args)]
pub struct ProveArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `verify-proof` arguments.
#[derive(clap::Args)]
pub struct VerifyProofArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// `archive-recover` arguments.
#[derive(clap::Args)]
pub struct ArchiveArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs `export-bundle`.
pub fn export(_args: ExportArgs) -> Result<(), Failure> {
    Err(Failure::not_built("export-bundle"))
}

/// Runs `verify-bundle`.
pub fn verify(_args: VerifyArgs) -> Result<(), Failure> {
    Err(Failure::not_built("verify-bundle"))
}

/// Runs `prove`.
pub fn prove(_args: ProveArgs) -> Result<(), Failure> {
    Err(Failure::not_built("prove"))
}

/// Runs `verify-proof`.
pub fn verify_proof(_args: VerifyProofArgs) -> Result<(), Failure> {
    Err(Failure::not_built("verify-proof"))
}

/// Runs `archive-recover`.
pub fn archive_recover(_args: ArchiveArgs) -> Result<(), Failure> {
    Err(Failure::not_built("archive-recover"))
}
