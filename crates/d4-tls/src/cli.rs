//! `d4 tls fingerprint | ingest | serve`: the subcommands, run by the `d4`
//! binary, which owns the signals: it calls [`Shutdown::trigger`] on the
//! first Ctrl-C / SIGTERM for the commands that run until told to stop
//! ([`TlsCmd::follows`]).

/// Passive SSL: fingerprints from captures, a store, lookups.
#[derive(clap::Subcommand, Debug)]
// Parsed once per run; `ingest` and `serve` have no options yet.
pub enum TlsCmd {
    /// TLS fingerprints (JA3, JA3S, JA4), SNI and certificates from captures, as ja3-jl JSON lines.
    Fingerprint(crate::fingerprint::Args),
    /// Store ja3-jl records from D4 queues or files.
    Ingest(crate::ingest::Args),
    /// Answer lookups over HTTP (by fingerprint, certificate, address, name).
    Serve(crate::serve::Args),
}

impl TlsCmd {
    /// Whether the command runs until told to stop (and so wants the signal
    /// handler).
    pub fn follows(&self) -> bool {
        match self {
            TlsCmd::Fingerprint(a) => a.follows(),
            TlsCmd::Ingest(a) => a.follows(),
            _ => true,
        }
    }
}

pub use d4_api::shutdown::Shutdown;

/// Runs one `d4 tls` subcommand.
pub fn run(c: TlsCmd, shutdown: Shutdown) -> anyhow::Result<()> {
    match c {
        TlsCmd::Fingerprint(a) => crate::fingerprint::run(a, shutdown),
        TlsCmd::Ingest(a) => crate::ingest::run(a, shutdown),
        TlsCmd::Serve(a) => crate::serve::run(a, shutdown),
    }
}
