//! `d4 dns reduce` (not built yet).

use crate::cli::Shutdown;

/// `d4 dns reduce`.
#[derive(clap::Args, Debug)]
pub struct Args {}

impl Args {
    /// Whether the command runs until told to stop.
    pub fn follows(&self) -> bool {
        false
    }
}

/// Runs `d4 dns reduce`.
pub fn run(_a: Args, _shutdown: Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("d4 dns reduce is not built yet")
}
