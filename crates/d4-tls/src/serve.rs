//! The HTTP lookup service over the store (`d4 tls serve`).

/// `d4 tls serve`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `d4 tls serve`.
pub fn run(_a: Args, _shutdown: crate::cli::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("d4 tls serve is not built yet")
}
