//! `verify-release`: release checksums and the deployment manifest.

use crate::exit::Failure;

/// `verify-release` arguments.
#[derive(clap::Args)]
pub struct VerifyReleaseArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Runs `verify-release`.
pub fn verify_release(_args: VerifyReleaseArgs) -> Result<(), Failure> {
    Err(Failure::not_built("verify-release"))
}
