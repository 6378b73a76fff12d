//! `d4 dns aggregate`: the reducer outputs of several monitors (`d4 dns
//! reduce`, one per DNS server watched) in moving spans of 1, 5 and 15
//! minutes, served as JSON and as a live web page (the Gopher/Jerry
//! aggregator and the Remy page of the RaTA DNS chain).
//!
//! # Layout
//!
//! - [`envelope`]: one message → a checked [`envelope::Window`] or why not.
//! - [`spans`]: the state (buckets by arrival time, bounded) and the span
//!   arithmetic; no I/O, no clock.
//! - [`input`]: the sources (JSON lines, Redis pub/sub, D4 queues), each a
//!   thread feeding the state.

pub mod envelope;
pub mod input;
pub mod spans;

use crate::cli::Shutdown;

/// `d4 dns aggregate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

impl Args {
    /// Whether the command runs until told to stop.
    pub fn follows(&self) -> bool {
        true
    }
}

/// Runs `d4 dns aggregate`.
pub fn run(_a: Args, _shutdown: Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("d4 dns aggregate is not built yet")
}
