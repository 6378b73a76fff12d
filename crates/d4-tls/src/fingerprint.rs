//! Captures → TLS handshakes → `ja3-jl` records (`d4 tls fingerprint`).

/// `d4 tls fingerprint`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `d4 tls fingerprint`.
pub fn run(_a: Args, _shutdown: crate::cli::Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("d4 tls fingerprint is not built yet")
}
