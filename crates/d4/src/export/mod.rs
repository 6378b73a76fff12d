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
//! Layout: this file (flags, the loop, counters); `sink` (the sockets);
//! `format` (Maltrail datagrams, RFC 5424 messages).

mod format;
mod sink;

use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use d4_api::poll::{Idle, Poller, Take};
use d4_api::{Api, Conn};

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
    /// Items read per request.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[command(flatten)]
    conn: Conn,
}

/// How an item is shaped before it is sent.
enum Shape {
    /// As it is, with a newline when asked.
    Plain { newline: bool },
    /// A Maltrail event datagram.
    Maltrail,
    /// An RFC 5424 message.
    Syslog(format::Syslog),
}

/// What was done, for the progress line and the summary.
#[derive(Default)]
struct Counters {
    items: u64,
    bytes: u64,
    reconnects: u64,
    skipped: u64,
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

/// One export's state.
struct Exporter {
    target: Target,
    shape: Shape,
    files: bool,
    /// `--once`: a refused datagram is an error at the end.
    once: bool,
    /// The server's `<data-dir>/data`, under which `-f` items must be.
    root: Option<PathBuf>,
    /// `--rate`.
    pace: Option<Pace>,
    max_retries: u32,
    backoff: d4_client::transport::Backoff,
    /// The open destination (`None` until opened, and after a failure).
    conn: Option<sink::Conn>,
    count: Counters,
    started: Instant,
    /// When the progress line was last drawn (`None`: stderr is no terminal).
    progress: Option<Instant>,
}

/// Why a batch stopped before its end.
enum Stop {
    /// A signal: the items before are handled.
    Signal,
}

impl Exporter {
    fn export(&mut self, api: &Api, c: &Common) -> Result<()> {
        // Opened first: a destination that is wrong is said at once.
        self.connect()?;
        let idle = if c.once { Idle::Once } else { Idle::Follow };
        let mut poller = Poller::new(api, &c.q.queue, Take::Read, c.batch, idle)
            .stop_when(crate::signals::interrupted);
        let mut h = BatchHandler { ex: self };
        poller.run(&mut h)
    }

    /// Opens the destination, retrying with backoff; `Ok(false)`: a signal came first.
    fn connect(&mut self) -> Result<bool> {
        let mut failures = 0u32;
        loop {
            match self.target.open() {
                Ok(c) => {
                    self.conn = Some(c);
                    return Ok(true);
                }
                Err(e) => {
                    failures += 1;
                    if self.max_retries > 0 && failures >= self.max_retries {
                        return Err(e.context(format!(
                            "cannot reach {} ({failures} attempts); the items stay in the queue",
                            self.target.describe()
                        )));
                    }
                    let d = self.backoff.delay();
                    tracing::warn!("{e:#}; retrying in {:.1} s", d.as_secs_f64());
                    if !sleep_unless_signal(d) {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Sends `items` from the first; returns how many were handled.
    fn batch(&mut self, items: &[Vec<u8>]) -> Result<usize> {
        let mut failures = 0u32;
        // Items before `done` are written (and, for a stream, flushed).
        let mut done = 0;
        loop {
            match self.send_from(items, &mut done) {
                Ok(None) => {
                    self.backoff.reset();
                    return Ok(done);
                }
                Ok(Some(Stop::Signal)) => return Ok(done),
                Err(e) => {
                    failures += 1;
                    self.count.reconnects += 1;
                    if let Some(c) = self.conn.take() {
                        c.close();
                    }
                    if self.max_retries > 0 && failures >= self.max_retries {
                        bail!(
                            "{}: {e} ({failures} attempts); the items not sent stay in the queue",
                            self.target.describe()
                        );
                    }
                    tracing::warn!("{}: {e}; reconnecting", self.target.describe());
                    let d = self.backoff.delay();
                    if !sleep_unless_signal(d) || !self.connect()? {
                        return Ok(done);
                    }
                }
            }
        }
    }

    /// Sends `items[*done..]`, advancing `done` past what is written.
    fn send_from(&mut self, items: &[Vec<u8>], done: &mut usize) -> io::Result<Option<Stop>> {
        // Taken out while in use; dropped on an error (the caller reconnects).
        let Some(mut conn) = self.conn.take() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
        };
        let r = self.send_items(&mut conn, items, done);
        if r.is_ok() {
            self.conn = Some(conn);
        }
        r
    }

    fn send_items(
        &mut self,
        conn: &mut sink::Conn,
        items: &[Vec<u8>],
        done: &mut usize,
    ) -> io::Result<Option<Stop>> {
        conn.check()?;
        let stream = !self.target.is_datagram();
        // Stream items since the last flush, and their bytes.
        let (mut unflushed, mut unflushed_bytes) = (0usize, 0u64);
        let mut stop = None;
        for item in &items[*done + unflushed..] {
            if crate::signals::interrupted() {
                stop = Some(Stop::Signal);
                break;
            }
            if let Some(wait) = self.pace.as_mut().and_then(Pace::next) {
                {
                    // A stream's pending lines go out before the pause.
                    conn.flush()?;
                    *done += unflushed;
                    self.count.items += unflushed as u64;
                    self.count.bytes += unflushed_bytes;
                    (unflushed, unflushed_bytes) = (0, 0);
                    std::thread::sleep(wait);
                }
            }
            let n = if self.files {
                send_file(conn, item, self.root.as_deref())?
            } else {
                let Some(b) = shape(&self.shape, item) else {
                    self.count.skipped += 1;
                    tracing::warn!(
                        "skipped (not a Maltrail event line): {:?}",
                        String::from_utf8_lossy(&item[..item.len().min(120)])
                    );
                    if stream {
                        unflushed += 1;
                    } else {
                        *done += 1;
                    }
                    continue;
                };
                match conn.send(&b) {
                    Err(e) if !stream && e.raw_os_error() == Some(EMSGSIZE) => {
                        self.count.skipped += 1;
                        tracing::warn!(
                            "skipped an item of {} bytes: too big for one datagram",
                            b.len()
                        );
                        *done += 1;
                        continue;
                    }
                    r => r?,
                }
                b.len() as u64
            };
            if stream {
                unflushed += 1;
                unflushed_bytes += n;
            } else {
                *done += 1;
                self.count.items += 1;
                self.count.bytes += n;
            }
            self.draw_progress();
        }
        conn.flush()?;
        *done += unflushed;
        self.count.items += unflushed as u64;
        self.count.bytes += unflushed_bytes;
        self.draw_progress();
        Ok(stop)
    }

    fn draw_progress(&mut self) {
        let Some(last) = self.progress else { return };
        if last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.progress = Some(Instant::now());
        eprint!("\r{}\x1b[K", self.line());
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "d4 export: {} items, {} bytes to {}, {} reconnects, {} skipped ({:.0} items/s)",
            self.count.items,
            self.count.bytes,
            self.target.describe(),
            self.count.reconnects,
            self.count.skipped,
            self.count.items as f64 / secs
        )
    }

    fn summary(&self) {
        if self.progress.is_some() {
            eprint!("\r\x1b[K");
        }
        eprintln!("{}", self.line());
    }
}

/// `--rate N`: item k (from `since`) goes out k/N s after `since`. Falling
/// more than a second behind (a listener that was away) starts over: no
/// burst to catch up.
struct Pace {
    rate: f64,
    since: Instant,
    n: u64,
}

impl Pace {
    /// How long to wait before the next item (counted as sent).
    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let due = self.since + Duration::from_secs_f64(self.n as f64 / self.rate);
        if now > due + Duration::from_secs(1) {
            (self.since, self.n) = (now, 0);
        }
        let due = self.since + Duration::from_secs_f64(self.n as f64 / self.rate);
        self.n += 1;
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

/// `EMSGSIZE`: a datagram too big for the socket.
#[cfg(target_os = "linux")]
const EMSGSIZE: i32 = 90;
#[cfg(not(target_os = "linux"))]
const EMSGSIZE: i32 = 40;

/// The bytes sent for an item (`None`: an item Maltrail's server would drop).
fn shape(s: &Shape, item: &[u8]) -> Option<Vec<u8>> {
    match s {
        Shape::Plain { newline } => {
            let mut b = Vec::with_capacity(item.len() + 1);
            b.extend_from_slice(item);
            if *newline {
                b.push(b'\n');
            }
            Some(b)
        }
        Shape::Maltrail => format::maltrail(item),
        Shape::Syslog(s) => Some(s.message(item)),
    }
}

/// Copies the file an item names into the stream. A file that cannot be
/// opened is reported and counts as sent (it never will be readable); a
/// failure of the stream is returned.
fn send_file(
    conn: &mut sink::Conn,
    item: &[u8],
    root: Option<&std::path::Path>,
) -> io::Result<u64> {
    let Some(w) = conn.writer() else {
        return Ok(0);
    };
    let mut r = match d4_api::open_item_file(item, root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("d4 export: {e:#}");
            return Ok(0);
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // A corrupt file: what was read went out; the rest is lost with the file.
                eprintln!("d4 export: {}: {e}", String::from_utf8_lossy(item));
                return Ok(n);
            }
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Sleeps `d` in steps, `false` if a signal came meanwhile.
fn sleep_unless_signal(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if crate::signals::interrupted() {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    !crate::signals::interrupted()
}

/// The poller's view of the exporter.
struct BatchHandler<'a> {
    ex: &'a mut Exporter,
}

impl d4_api::poll::Handler for BatchHandler<'_> {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        self.ex.batch(&items)
    }

    /// An empty queue: a UDP destination that refused what was sent is an
    /// error with `--once` (noticed here, before exiting 0).
    fn idle(&mut self) -> Result<()> {
        if !(self.ex.once && self.ex.target.is_datagram()) {
            return Ok(());
        }
        if let Some(c) = self.ex.conn.as_mut() {
            // Time for a port-unreachable answer to come back.
            std::thread::sleep(Duration::from_millis(50));
            if let Err(e) = c.check() {
                bail!(
                    "{} refused the datagrams ({e}): is anything listening there?",
                    self.ex.target.describe()
                );
            }
        }
        Ok(())
    }
}
