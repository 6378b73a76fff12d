//! `d4 dns aggregate` (not built yet).

use crate::cli::Shutdown;

/// `d4 dns aggregate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

impl Args {
    /// Whether the command runs until told to stop.
    pub fn follows(&self) -> bool {
        false
    }
}

/// Runs `d4 dns aggregate`.
pub fn run(_a: Args, _shutdown: Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("d4 dns aggregate is not built yet")
}
