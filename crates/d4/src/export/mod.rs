//! `d4 export udp|tcp|tls|syslog|unix`: a server queue shipped out, one
//! datagram (UDP, syslog, Unix) or one `\n`-ended line (TCP, TLS) per item;
//! with `-f` (TCP, TLS) the content of the files the items name.
//!
//! Items are read, sent, and acknowledged (removed from the queue) only
//! once written, as `d4 forward` does: while the destination is down the
//! items wait in the queue; a stream that breaks is reopened with
//! exponential backoff and the items not yet flushed to it are sent again
//! (a break mid-batch can repeat what the listener had already read).
//! Datagrams carry no confirmation: a UDP listener that is not there is
//! noticed by the port-unreachable answer to an earlier datagram, which is
//! lost; the item that hits it is sent again once the listener is back.
//!
//! Layout: this file (flags, setup); `exporter` (the loop, counters); `sink` (the sockets);
//! `format` (Maltrail datagrams, RFC 5424 messages).

mod exporter;
pub(crate) mod format;
mod sink;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use d4_api::{Api, Conn};

use exporter::{Counters, Exporter, Pace, Shape};
use sink::Target;

const EXAMPLES: &str = "Examples:
  d4 export udp -t maltrail -u QUEUE -i 127.0.0.1 -p 8337     # to a Maltrail server
  d4 export tcp -t 8 -u QUEUE -i siem.example.org -p 5000    # passivedns lines, reconnecting
  d4 export tls -t 3 -u QUEUE -i logs.example.org -p 6514 -c ca.pem
  d4 export syslog -t 8 -u QUEUE -i 127.0.0.1 -p 514 -l INFO  # RFC 5424 over UDP
  d4 export unix -t maltrail -u QUEUE --socket /run/ids.sock
  d4 export tcp -t 1 -u QUEUE -p 9000 -f                     # the captures' content, gunzipped
  d4 export udp -t 8 -u QUEUE -p 9999 --once --rate 1000      # what is there now, 1,000 items/s

Items leave the queue once written. One SIGTERM (or Ctrl-C) ends the export after the item in
flight; a second quits now. The local server is found through --data-dir (server.json), or give
--server URL --token TOKEN [--ca FILE] (--ca is the API server's CA; a TLS destination's is -c).";

/// Export a queue to a UDP, TCP, TLS, syslog or Unix-socket listener.
#[derive(clap::Subcommand)]
pub(crate) enum ExportCmd {
    /// One UDP datagram per item (Maltrail datagrams for a `maltrail` queue).
    #[command(after_help = EXAMPLES)]
    Udp {
        #[command(flatten)]
        to: HostPort,
        #[command(flatten)]
        common: Common,
    },
    /// One line per item over TCP; reconnects with backoff.
    #[command(after_help = EXAMPLES)]
    Tcp {
        #[command(flatten)]
        to: HostPort,
        #[command(flatten)]
        common: Common,
    },
    /// One line per item over TLS; reconnects with backoff.
    #[command(after_help = EXAMPLES)]
    Tls {
        #[command(flatten)]
        to: HostPort,
        #[command(flatten)]
        tls: TlsOpts,
        #[command(flatten)]
        common: Common,
    },
    /// One RFC 5424 syslog message per item, over UDP.
    #[command(after_help = EXAMPLES)]
    Syslog {
        #[command(flatten)]
        to: HostPort,
        #[command(flatten)]
        syslog: SyslogOpts,
        #[command(flatten)]
        common: Common,
    },
    /// One datagram per item to a Unix datagram socket.
    #[command(after_help = EXAMPLES)]
    Unix {
        /// The socket's path.
        #[arg(short = 's', long = "socket")]
        socket: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

/// The destination's address (the reference exporters' `-i` and `-p`).
#[derive(clap::Args)]
pub(crate) struct HostPort {
    /// Destination host or IP.
    #[arg(short = 'i', long = "ip", default_value = "127.0.0.1")]
    host: String,
    /// Destination port (syslog: 514 when not given).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
}

impl HostPort {
    fn addr(&self, default: Option<u16>) -> Result<String> {
        let Some(port) = self.port.or(default) else {
            bail!("-p PORT is required: the destination's port");
        };
        Ok(if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        })
    }
}

/// TLS destination options.
#[derive(clap::Args)]
pub(crate) struct TlsOpts {
    /// CA certificate(s) (PEM) that signed the destination's certificate.
    #[arg(short = 'c', long = "ca-certs", value_name = "FILE")]
    ca_certs: Option<PathBuf>,
    /// Name checked in the destination's certificate (default: the -i host).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Do not verify the destination's certificate (tests only).
    #[arg(long)]
    insecure: bool,
}

/// Syslog message options.
#[derive(clap::Args)]
pub(crate) struct SyslogOpts {
    /// Severity: DEBUG, INFO, WARNING, ERROR, CRITICAL (the reference's levels), or 0-7.
    #[arg(short = 'l', long = "log-level", default_value = "INFO", value_parser = format::severity)]
    severity: u8,
    /// Facility: a name (user, daemon, local0..local7) or 0-23.
    #[arg(long, default_value = "user", value_parser = format::facility)]
    facility: u8,
    /// HOSTNAME field (default: this machine's name).
    #[arg(long)]
    hostname: Option<String>,
    /// APP-NAME field.
    #[arg(long, default_value = "d4")]
    app_name: String,
}

/// Flags every exporter has.
#[derive(clap::Args)]
pub(crate) struct Common {
    #[command(flatten)]
    q: crate::stdout::QueueArg,
    /// Items are file paths (types 1, 4, 5, 7): send each file's content (gunzipped) into
    /// the stream (TCP, TLS only: a file is no datagram).
    #[arg(short = 'f', long = "files")]
    files: bool,
    /// End each datagram with a newline (TCP and TLS lines always end with one).
    #[arg(short = 'n', long = "newline")]
    newline: bool,
    /// Send Maltrail event datagrams (`<epoch-seconds> <line>`), the default for a `maltrail`
    /// queue over UDP; lines Maltrail's server would drop are skipped and counted.
    #[arg(long, conflicts_with = "raw")]
    maltrail: bool,
    /// Send a `maltrail` queue's items as they are.
    #[arg(long)]
    raw: bool,
    /// Exit 0 when the queue is empty instead of waiting for more.
    #[arg(long)]
    once: bool,
    /// At most N items per second.
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Longest wait between reconnection attempts, in seconds (the backoff doubles up to it).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    max_backoff: u64,
    /// Give up after N failed attempts in a row (0: never; default 0, or 5 with --once).
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// Items read per request (each read and acknowledgment is an API call: fewer, larger
    /// batches cost less; at most 10,000).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    #[command(flatten)]
    conn: Conn,
}

pub(crate) fn run(cmd: ExportCmd) -> Result<()> {
    let (target, common, shape) = match cmd {
        ExportCmd::Udp { to, common } => {
            let maltrail = common.maltrail || (common.q.ty.trim() == "maltrail" && !common.raw);
            let shape = if maltrail {
                Shape::Maltrail
            } else {
                Shape::Plain {
                    newline: common.newline,
                }
            };
            (Target::Udp(to.addr(None)?), common, shape)
        }
        ExportCmd::Tcp { to, common } => (
            Target::Tcp(to.addr(None)?),
            common,
            Shape::Plain { newline: true },
        ),
        ExportCmd::Tls { to, tls, common } => {
            let addr = to.addr(None)?;
            if let Some(ca) = &tls.ca_certs {
                // Read now: a wrong file is said before anything else.
                d4_client::transport::load_certs(ca).with_context(|| {
                    format!("-c {}: not a usable CA certificate file", ca.display())
                })?;
            } else if !tls.insecure {
                bail!("a TLS destination needs -c FILE, the CA certificate that signed its certificate (or --insecure, for tests only)");
            }
            let c = d4_client::transport::Connector::new(
                &addr,
                tls.ca_certs.as_deref(),
                tls.insecure,
                tls.sni.as_deref(),
            )?;
            (
                Target::Tls(Box::new(c), addr),
                common,
                Shape::Plain { newline: true },
            )
        }
        ExportCmd::Syslog { to, syslog, common } => {
            let host = syslog.hostname.clone().unwrap_or_else(format::hostname);
            let shape = Shape::Syslog(format::Syslog::new(
                syslog.facility,
                syslog.severity,
                &host,
                &syslog.app_name,
                &common.q.ty,
            ));
            (Target::Udp(to.addr(Some(514))?), common, shape)
        }
        ExportCmd::Unix { socket, common } => {
            let maltrail = common.maltrail;
            let shape = if maltrail {
                Shape::Maltrail
            } else {
                Shape::Plain {
                    newline: common.newline,
                }
            };
            (Target::Unix(socket), common, shape)
        }
    };
    if common.files && target.is_datagram() {
        bail!("-f sends whole files: only a stream (tcp, tls) carries them; a datagram holds one item");
    }
    if let Some(r) = common.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate {r}: give a number of items per second above 0");
        }
    }
    let api = Api::connect(&common.conn)?;
    let qtype = common.q.check(&api)?;
    if common.files {
        crate::stdout::check_file_items(&qtype)?;
    }
    // The item in flight is finished, then the export ends (a second signal quits now).
    crate::signals::catch(|n| {
        if n > 1 {
            std::process::exit(130);
        }
    });
    let mut ex = Exporter {
        root: if common.files {
            d4_api::data_root(&api)
        } else {
            None
        },
        max_retries: common
            .max_retries
            .unwrap_or(if common.once { 5 } else { 0 }),
        backoff: d4_client::transport::Backoff::new(Duration::from_secs(common.max_backoff.max(1))),
        conn: None,
        target,
        shape,
        files: common.files,
        once: common.once,
        pace: common.rate.map(|rate| Pace {
            rate,
            since: Instant::now(),
            n: 0,
        }),
        count: Counters::default(),
        started: Instant::now(),
        progress: io::stderr().is_terminal().then(Instant::now),
    };
    let r = ex.export(&api, &common);
    ex.summary();
    if let Some(c) = ex.conn.take() {
        c.close();
    }
    r
}
