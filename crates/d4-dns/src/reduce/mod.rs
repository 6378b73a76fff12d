//! `d4 dns reduce` (the reference's Fievel): messages → windows → the
//! reducers' lines.
//!
//! - [`reducers`]: the reducers, their names and data shapes (the contract
//!   with `d4 dns aggregate`), interning and bounds.
//! - [`Windows`] (here): where a window ends — after W messages
//!   (`--window-messages`) and/or at each boundary of T seconds of packet
//!   time (`--window-secs`; boundaries are multiples of T since the epoch,
//!   so every monitor cuts at the same instants; a message of a later slot
//!   ends the window, one of an earlier slot — out of order — stays in
//!   it); at the end of the input the last partial window is emitted.
//! - [`output`]: stdout, file, Redis channel, D4 server; the envelope.
//! - [`config`]: the TOML file (`--config`).
//!
//! Input ([`crate::input`]): captures (walked for their questions only;
//! a malformed message counts as such), or serialized messages
//! (length-prefixed or NDJSON, told by the first byte; `--from-serialized`
//! forces it and reads gzip too).

pub mod config;
pub mod output;
pub mod reducers;

use std::path::PathBuf;

use anyhow::{bail, Result};
use d4_api::captures::is_broken_pipe;

use crate::cli::Shutdown;
use crate::input::{read_all, Consumer, InputArgs, Raw, Serialized};
use crate::message::{Message, Sections};
use output::{Router, Target, DEFAULT_CHANNEL};
use reducers::{Kind, Options, Reducers};

/// The window when neither --window-messages nor --window-secs is given.
pub const DEFAULT_WINDOW_SECS: f64 = 5.0;

/// `d4 dns reduce`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 dns reduce -r dns.pcap                                  # every reducer, 5-s windows, stdout\n  d4 dns reduce -r dns.pcap --window-messages 1000 --reducers QueriesPerSecond,TopNQ --top 5\n  d4 dns serialize -r dns.pcap | d4 dns reduce               # serialized messages on stdin\n  tcpdump -w - -U port 53 | d4 dns reduce --redis redis://127.0.0.1:6379 --channel d4:dns\n  d4 dns reduce -r dns.pcap --speed 4 --window-secs 1        # replayed 4x faster\n  d4 dns reduce -u QUEUE --d4 sensor-conf/                   # a type-1 queue in, a D4 server out\n  d4 dns reduce -r dns.pcap --config reduce.toml             # outputs per reducer\n\nOne line per reducer at the end of each window: {\"type\": <reducer>, \"serverId\": <id>,\n\"data\": ...}. Reducers: QueriesPerSecond {\"qps\"}, AnswersPerSecond {\"aps\"},\nPacketsPerSecond {\"pps\"}, QueriesNameCounter {qname: n}, TopNQ [[qname, n]...],\nQueriesWithUnderscoredName {qname: [{sender,server,query}]}, MalformedPackets {count,senders},\nPacketSummary {client: {qtype: [qname...]}}, AlonePackets {queries: [...], answers: [...]},\nQtypeCounter {qtype: n}, RcodeCounter {rcode: n}. Rates use packet time (earliest to latest\nmessage of the window; a zero span gives the count). Input: captures (as d4 dns serialize\nreads them) or serialized messages, told by the first byte. The D4 output sends a type-254\nsession with the meta-header {\"type\":\"dns-stats\"}. docs/DNS-MONITOR.md."
)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,
    /// The input is serialized messages (length-prefixed or NDJSON, gzip read too),
    /// whatever its first byte.
    #[arg(long)]
    from_serialized: bool,
    /// A window ends after W messages.
    #[arg(long, value_name = "W")]
    window_messages: Option<u64>,
    /// A window ends at each T seconds of packet time (5 when neither window flag is given).
    #[arg(long, value_name = "T")]
    window_secs: Option<f64>,
    /// Reducers to run, comma-separated (default: all).
    #[arg(long, value_name = "LIST", value_parser = KindList::parse, conflicts_with = "config")]
    reducers: Option<KindList>,
    /// TopNQ's N.
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// The serverId of every line (default: the host name).
    #[arg(long, value_name = "ID")]
    server_id: Option<String>,
    /// Append the lines to FILE.
    #[arg(short = 'o', long, value_name = "FILE", conflicts_with = "config")]
    output: Option<PathBuf>,
    /// Publish the lines to a Redis channel (redis://HOST:PORT[/DB]).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    redis: Option<String>,
    /// The Redis channel.
    #[arg(long, default_value = DEFAULT_CHANNEL, requires = "redis")]
    channel: String,
    /// Send the lines to a D4 server: a sensor configuration (reference directory or
    /// TOML: destination, key, uuid, rootCA.crt); type 254, meta-header {"type":"dns-stats"}.
    #[arg(long, value_name = "CONF", conflicts_with = "config")]
    d4: Option<PathBuf>,
    /// Write to stdout as well as to -o / --redis / --d4 (stdout is the default without them).
    #[arg(long, conflicts_with = "config")]
    stdout: bool,
    /// A TOML file: windows, named outputs, reducers and their outputs (docs/DNS-MONITOR.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Distinct names, and listed entries per reducer, held in a window (beyond: not recorded, counted).
    #[arg(long, value_name = "N")]
    max_entries: Option<usize>,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
}

impl Args {
    /// Whether the command runs until told to stop.
    pub fn follows(&self) -> bool {
        self.input.follows()
    }
}

/// The reducers of `--reducers`.
#[derive(Clone, Debug)]
pub struct KindList(pub Vec<Kind>);

impl KindList {
    fn parse(s: &str) -> Result<KindList, String> {
        Kind::parse_list(s).map(KindList)
    }
}

/// Where windows end.
#[derive(Clone, Copy, Debug, Default)]
pub struct Windows {
    /// After this many messages.
    pub messages: Option<u64>,
    /// At each boundary of this many microseconds of packet time.
    pub micros: Option<i64>,
}

/// The reducers, their windows and their outputs, as a [`Consumer`].
pub struct Reduce {
    windows: Windows,
    /// The current window's time slot (`--window-secs`).
    slot: i64,
    reducers: Reducers,
    router: Router,
    m: Message,
}

impl Reduce {
    /// Over `reducers`, windows cut by `windows`, lines to `router`.
    pub fn new(windows: Windows, reducers: Reducers, router: Router) -> Reduce {
        Reduce {
            windows,
            slot: 0,
            reducers,
            router,
            m: Message::new(),
        }
    }

    /// One message.
    pub fn add(&mut self, m: &Message) -> Result<()> {
        if let Some(t) = self.windows.micros {
            let slot = m.time_us.div_euclid(t);
            if self.reducers.is_empty() {
                self.slot = slot;
            } else if slot > self.slot {
                self.emit()?;
                self.slot = slot;
            }
        }
        self.reducers.add(m);
        if self
            .windows
            .messages
            .is_some_and(|w| self.reducers.span().messages >= w)
        {
            self.emit()?;
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<()> {
        let data = self.reducers.take();
        self.router.window(&data)
    }

    /// Emits the last window (if it saw anything) and closes the outputs;
    /// the reducers' counters and the outputs' notes.
    pub fn finish(mut self) -> Result<(Reducers, String)> {
        if !self.reducers.is_empty() {
            self.emit()?;
        }
        let notes = self.router.finish()?;
        Ok((self.reducers, notes))
    }
}

impl Consumer for Reduce {
    fn raw(&mut self, r: &Raw<'_>) -> Result<()> {
        let mut m = std::mem::take(&mut self.m);
        // A malformed message is marked so; the reducers count it.
        let _ = m.decode(r.wire, Sections::QUERIES);
        m.time_us = r.time_us;
        m.source = r.source;
        m.dest = r.dest;
        let res = self.add(&m);
        self.m = m;
        res
    }

    fn parsed(&mut self, m: &Message) -> Result<()> {
        self.add(m)
    }

    fn flush(&mut self) -> Result<()> {
        self.router.flush()
    }
}

/// The host name (the default serverId).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

const CMD: &str = "d4 dns reduce";

/// Runs `d4 dns reduce`.
pub fn run(a: Args, shutdown: Shutdown) -> Result<()> {
    let conf = match &a.config {
        Some(p) => Some(config::Config::load(p)?),
        None => None,
    };
    let c = conf.as_ref();
    let window_messages = a.window_messages.or(c.and_then(|c| c.window_messages));
    let mut window_secs = a.window_secs.or(c.and_then(|c| c.window_secs));
    if window_messages.is_none() && window_secs.is_none() {
        window_secs = Some(DEFAULT_WINDOW_SECS);
    }
    if window_messages == Some(0) {
        bail!("--window-messages 0: a window holds at least one message");
    }
    let micros = match window_secs {
        Some(t) if (1e-6..=1e9).contains(&t) => Some((t * 1e6).round() as i64),
        Some(t) => bail!("--window-secs {t}: give a number of seconds between 0.000001 and 1e9"),
        None => None,
    };
    let opt = Options {
        top: a.top.or(c.and_then(|c| c.top)).unwrap_or(10),
        max_entries: a
            .max_entries
            .or(c.and_then(|c| c.max_entries))
            .unwrap_or(1_000_000)
            .max(1),
    };
    let server_id = a
        .server_id
        .clone()
        .or(c.and_then(|c| c.server_id.clone()))
        .unwrap_or_else(hostname);
    let plan = match (&a.config, c) {
        (Some(p), Some(c)) => c.plan(p.parent().unwrap_or(std::path::Path::new(".")))?,
        _ => {
            let mut targets = Vec::new();
            if let Some(f) = &a.output {
                targets.push(Target::File(f.clone()));
            }
            if let Some(url) = &a.redis {
                targets.push(Target::Redis {
                    url: url.clone(),
                    channel: a.channel.clone(),
                });
            }
            if let Some(d) = &a.d4 {
                targets.push(Target::D4(d.clone()));
            }
            if a.stdout || targets.is_empty() {
                targets.push(Target::Stdout);
            }
            let all: Vec<usize> = (0..targets.len()).collect();
            let kinds = a
                .reducers
                .clone()
                .map_or_else(|| Kind::ALL.to_vec(), |k| k.0);
            config::Plan {
                targets,
                routes: kinds.into_iter().map(|k| (k, all.clone())).collect(),
            }
        }
    };
    let kinds: Vec<Kind> = plan.routes.iter().map(|(k, _)| *k).collect();
    let mut front = a.input.front()?;
    let router = Router::open(&server_id, &plan.targets, plan.routes, &shutdown)?;
    let mut r = Reduce::new(
        Windows {
            messages: window_messages,
            micros,
        },
        Reducers::new(&kinds, opt),
        router,
    );
    let serialized = if a.from_serialized {
        Serialized::Always
    } else {
        Serialized::Detect
    };
    let stop = || shutdown.is_triggered();
    let read = read_all(CMD, &a.input, serialized, &mut front, &stop, &mut r);
    let outcome = match read {
        Ok(o) => o,
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let (reducers, notes) = match r.finish() {
        Ok(x) => x,
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if a.stats {
        eprintln!(
            "{CMD}: {}; {} messages reduced in {} window(s); {} names or entries over --max-entries not recorded{}{}",
            front.stats.describe(a.input.speed),
            reducers.messages,
            reducers.windows,
            reducers.dropped,
            if notes.is_empty() { "" } else { "; " },
            notes
        );
    }
    if !outcome.failed.is_empty() {
        bail!("could not read (see above): {}", outcome.failed.join(", "));
    }
    if reducers.messages == 0 && a.input.capture.queue.is_none() && !outcome.stopped {
        bail!(
            "no DNS message in the input ({} packets read; DNS is UDP or TCP on port 53)",
            front.stats.packets
        );
    }
    Ok(())
}
