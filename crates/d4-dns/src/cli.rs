//! `d4 dns serialize | reduce | aggregate`: the subcommands, run by the
//! `d4` binary, which owns the signals: it calls [`Shutdown::trigger`] on
//! the first Ctrl-C / SIGTERM for the commands that run until told to stop
//! ([`DnsCmd::follows`]).

/// Real-time DNS monitor: serializer, reducers, aggregator.
#[derive(clap::Subcommand, Debug)]
pub enum DnsCmd {
    /// DNS messages from captures, as length-prefixed JSON or NDJSON.
    Serialize(crate::serialize::Args),
    /// Windowed reducers (QPS, top names, underscored names...) over DNS messages.
    Reduce(crate::reduce::Args),
    /// Reducer outputs of several monitors: moving spans, JSON, a live web page.
    Aggregate(crate::aggregate::Args),
}

impl DnsCmd {
    /// Whether the command runs until told to stop (and so wants the signal
    /// handler).
    pub fn follows(&self) -> bool {
        match self {
            DnsCmd::Serialize(a) => a.follows(),
            DnsCmd::Reduce(a) => a.follows(),
            DnsCmd::Aggregate(_) => true,
        }
    }
}

pub use d4_api::shutdown::Shutdown;

/// Runs one `d4 dns` subcommand.
pub fn run(c: DnsCmd, shutdown: Shutdown) -> anyhow::Result<()> {
    match c {
        DnsCmd::Serialize(a) => crate::serialize::run(a, shutdown),
        DnsCmd::Reduce(a) => crate::reduce::run(a, shutdown),
        DnsCmd::Aggregate(a) => crate::aggregate::run(a, shutdown),
    }
}
