//! `d4`: one command line for the whole D4 system — the server, the sensor,
//! queue and sensor management, and queue consumers.
//!
//! # Layout
//!
//! - `server`: `d4 server` (crate `d4-server`).
//! - `client`: `d4 client` (crate `d4-client`).
//! - `manage`: `d4 queue ...` and `d4 sensor ...`.
//! - `stdout`: `d4 stdout`, a queue consumer.
//! - `anonymize`: `d4 anonymize`, capture pseudonymisation (crate `d4-packet`).
//! - `backscatter`: `d4 backscatter` (crate `d4-analyzers`).
//! - `forward`: `d4 forward`, a queue sent on to another server, pseudonymised.
//! - `export`: `d4 export udp|tcp|tls|syslog|unix`, a queue shipped to a
//!   listener (Maltrail's server, a SIEM, syslog), one datagram or line per item.
//! - `maltrail`: `d4 maltrail match`, Maltrail trails applied to captures
//!   (crate `d4-analyzers`, inputs through `d4_api::captures`).
//! - `d4 pdns` is crate `d4-pdns` ([`d4_pdns::PdnsCmd`]).
//! - `d4 tls` is crate `d4-tls` ([`d4_tls::TlsCmd`]).
//! - `d4 dns` is crate `d4-dns` ([`d4_dns::DnsCmd`]).
//! - `signals`: Ctrl-C / SIGTERM. The binary owns them: the libraries it runs
//!   are told to stop (queue consumers check a flag through their
//!   `d4_api::poll::Poller`; `d4 pdns` and `d4 tls` get a `d4_api::shutdown::Shutdown`).
//!
//! The queue consumers (`stdout`, `forward`, `export`, `backscatter -u`, `pdns -u`,
//! `maltrail match -u`) poll
//! through `d4_api::poll::Poller`, the one polling loop.

mod anonymize;
mod backscatter;
mod client;
mod d4server;
mod export;
mod forward;
mod maltrail;
mod manage;
mod server;
mod signals;
mod stdout;

use clap::{Parser, Subcommand};

/// jemalloc gives freed memory back to the system (glibc's malloc kept the
/// peak of thousands of sensor sessions after they left: issue 19).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A background thread returns pages freed for about a second (jemalloc's
/// default: ten) to the system, busy or not.
fn tune_allocator() {
    use tikv_jemalloc_ctl::{background_thread, Access, AsName};
    let decay_ms: isize = 1000;
    // New arenas, then arena 0, the only one before threads start.
    let _ = b"arenas.dirty_decay_ms\0".name().write(decay_ms);
    let _ = b"arena.0.dirty_decay_ms\0".name().write(decay_ms);
    let _ = background_thread::write(true);
}

/// D4: open, collaborative network monitoring.
#[derive(Parser)]
#[command(name = "d4", version, about, propagate_version = true)]
#[command(
    after_help = "Quick start:\n  d4 server                          # TLS ingest on [::]:4443, API on https://127.0.0.1:7000\n  d4 queue create -t 1               # prints the queue UUID\n  tcpdump -w - 'not tcp port 4443' | d4 client -c conf   # a sensor (not its own upload)\n  d4 stdout -t 1 -u QUEUE -f > out.pcap"
)]
struct Cli {
    /// More logging (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the D4 server (TLS ingest, workers, analyzer queues, web UI and REST API).
    Server(server::Args),
    /// Run a sensor: frame a stream as D4 and send it to a server or stdout.
    Client(client::Args),
    /// Manage analyzer queues.
    #[command(subcommand)]
    Queue(manage::QueueCmd),
    /// Manage sensors.
    #[command(subcommand)]
    Sensor(manage::SensorCmd),
    /// Pop an analyzer queue to stdout.
    Stdout(stdout::Args),
    /// Pseudonymise the addresses of a capture (--pnat or Crypto-PAn), checksums kept right.
    Anonymize(anonymize::Args),
    /// Find DDoS backscatter in captures (answers from victims of spoofed SYN floods).
    Backscatter(backscatter::Args),
    /// Send a queue's captures or lines on to another D4 server, pseudonymised on the way.
    Forward(forward::Args),
    /// Ship a queue to a UDP, TCP, TLS, syslog or Unix-socket listener (e.g. Maltrail's server).
    #[command(subcommand)]
    Export(export::ExportCmd),
    /// Maltrail over D4: apply Maltrail trails to captures, Maltrail event lines out.
    #[command(subcommand)]
    Maltrail(maltrail::MaltrailCmd),
    /// Passive DNS: records from captures and passivedns streams, a store, COF lookups.
    #[command(subcommand)]
    Pdns(d4_pdns::PdnsCmd),
    /// Passive SSL: TLS fingerprints and certificates from captures, a store, lookups.
    #[command(subcommand)]
    Tls(d4_tls::TlsCmd),
    /// Real-time DNS monitor: serializer, windowed reducers, aggregator and live dashboard.
    #[command(subcommand)]
    Dns(d4_dns::DnsCmd),
}

/// A file read with a progress bar on a terminal (nothing extra when piped).
fn with_progress<R: std::io::Read + Send + 'static>(
    r: R,
    len: u64,
) -> Box<dyn std::io::Read + Send> {
    d4_api::captures::progress_bar(r, len)
}

/// Flushes output; a reader that went away (`| head`) is not an error.
fn flush_output(out: &mut impl std::io::Write) -> std::io::Result<()> {
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })
}

/// Whether an error is a closed output (`| head`): the reader has what it
/// wanted, so the command stops quietly.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    d4_api::captures::is_broken_pipe(e)
}

fn init_logging(verbose: u8, default: &str) {
    let level = match verbose {
        0 => default,
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal, never in a log file or a pipe, and never
    // with NO_COLOR (https://no-color.org) set to anything.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
}

/// The stop request of `d4 pdns` and `d4 tls`: a command that follows
/// queues or serves finishes the batch in hand on the first Ctrl-C /
/// SIGTERM, and quits at once on the second.
fn follow_shutdown(follows: bool) -> d4_api::shutdown::Shutdown {
    let shutdown = d4_api::shutdown::Shutdown::new();
    if follows {
        let s = shutdown.clone();
        signals::catch(move |n| {
            if n == 1 {
                s.trigger();
            } else {
                std::process::exit(130);
            }
        });
    }
    shutdown
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let default_level = match cli.cmd {
        Cmd::Server(_)
        | Cmd::Client(_)
        | Cmd::Forward(_)
        | Cmd::Pdns(d4_pdns::PdnsCmd::Serve(_))
        | Cmd::Tls(d4_tls::TlsCmd::Serve(_))
        | Cmd::Dns(d4_dns::DnsCmd::Aggregate(_)) => "info",
        _ => "warn",
    };
    init_logging(cli.verbose, default_level);
    let r = match cli.cmd {
        Cmd::Server(a) => server::run(a),
        Cmd::Client(a) => client::run(a),
        Cmd::Queue(c) => manage::queue(c),
        Cmd::Sensor(c) => manage::sensor(c),
        Cmd::Stdout(a) => stdout::run(a),
        Cmd::Anonymize(a) => anonymize::run(a),
        Cmd::Backscatter(a) => backscatter::run(a),
        Cmd::Forward(a) => forward::run(a),
        Cmd::Export(c) => export::run(c),
        Cmd::Maltrail(c) => maltrail::run(c),
        Cmd::Pdns(c) => {
            let stop = follow_shutdown(c.follows());
            d4_pdns::run(c, stop)
        }
        Cmd::Tls(c) => {
            let stop = follow_shutdown(c.follows());
            d4_tls::run(c, stop)
        }
        Cmd::Dns(c) => {
            let stop = follow_shutdown(c.follows());
            d4_dns::run(c, stop)
        }
    };
    if let Err(e) = r {
        if is_broken_pipe(&e) {
            return;
        }
        eprintln!("d4: error: {e:#}");
        std::process::exit(1);
    }
}
