//! `ja3-jl` records from queues or files → the store (`d4 tls ingest`).

/// `d4 tls ingest`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `d4 tls ingest`.
pub fn run(_a: Args, _shutdown: crate::cli::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("d4 tls ingest is not built yet")
}
