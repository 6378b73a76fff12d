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
//! - [`http`]: the pages, the JSON API, the live stream (SSE).
//!
//! The page's templates, script and style are under
//! `crates/d4-dns/templates/aggregate/`; docs/DNS-AGGREGATE.md walks
//! through it.

pub mod envelope;
pub mod http;
pub mod input;
pub mod spans;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::cli::Shutdown;
use input::{Feed, LinesInput, RedisSource};
use spans::{Aggregator, Limits};

/// `d4 dns aggregate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 dns aggregate --redis redis://127.0.0.1:6379          # channel d4:dns\n  d4 dns aggregate --redis redis://10.0.0.5:6379 --channel 'dns:*'   # a pattern\n  d4 dns aggregate -u QUEUE                                # a dns-stats queue\n  d4 dns aggregate -r windows.jsonl                        # JSON lines (- for stdin)\n  d4 dns reduce ... | d4 dns aggregate -r -\n  open http://127.0.0.1:7053/                              # the live page\n  curl 'http://127.0.0.1:7053/api/v1/summary?span=1m'\n  curl http://127.0.0.1:7053/api/v1/findings\n\nEach message is one reducer window of one monitor: {\"type\": REDUCER, \"serverId\": ID,\n\"data\": ...} (QueriesPerSecond, AnswersPerSecond, PacketsPerSecond, QueriesNameCounter,\nTopNQ, QueriesWithUnderscoredName, MalformedPackets, PacketSummary, AlonePackets,\nQtypeCounter, RcodeCounter). Windows are kept by arrival time in buckets of 5 s for\n15 minutes: in a span, a monitor's rate is the mean of its windows' rates, the total\nthe sum of the monitors'; counts are summed. Malformed messages, unknown types and\nmessages over --max-message-bytes are counted (/api/v1/stats) and skipped. Stops on\nCtrl-C / SIGTERM. See docs/DNS-AGGREGATE.md."
)]
pub struct Args {
    /// Boxed: the `d4 dns` enum stays small.
    #[command(flatten)]
    o: Box<Opts>,
}

/// The flags of `d4 dns aggregate`.
#[derive(clap::Args, Debug)]
struct Opts {
    /// JSON lines of reducer outputs to read (`-` for stdin); repeatable.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Redis to subscribe to, e.g. redis://127.0.0.1:6379 (where the reducers publish).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Redis channel (with --redis); a name with * is a pattern; repeatable.
    #[arg(long = "channel", value_name = "NAME", default_value = "d4:dns")]
    channels: Vec<String>,
    /// Queue of extended type dns-stats on a D4 server to follow; repeatable.
    #[arg(short = 'u', long = "queue", value_name = "QUEUE")]
    queues: Vec<String>,
    /// Address of the web page and the JSON API (plain HTTP; keep it on
    /// loopback or behind a proxy that authenticates).
    #[arg(long, default_value = "127.0.0.1:7053")]
    listen: SocketAddr,
    /// Requests per second per client address (bursts of twice that); 0: no limit.
    #[arg(long, default_value_t = 50.0)]
    rate_limit: f64,
    /// Live pages (event streams) open at once; past it, 503.
    #[arg(long, default_value_t = 32)]
    max_subscribers: usize,
    /// Longest message taken, in bytes; longer ones are counted and skipped.
    #[arg(long, default_value_t = envelope::MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Monitors (serverId) tracked at once; a new one past it is refused
    /// until one has been silent for 15 minutes.
    #[arg(long, default_value_t = 64)]
    max_servers: usize,
    /// Distinct names (and clients) held at once; past it, counted but not listed.
    #[arg(long, default_value_t = 100_000)]
    max_names: usize,
    /// Findings (underscored-name queries, alone packets) held; the oldest go first.
    #[arg(long, default_value_t = 50_000)]
    max_findings: usize,
    #[command(flatten)]
    conn: d4_api::Conn,
}

impl Args {
    /// Whether the command runs until told to stop (it always does).
    pub fn follows(&self) -> bool {
        true
    }
}

impl Opts {
    fn limits(&self) -> Limits {
        Limits {
            max_servers: self.max_servers,
            max_names: self.max_names,
            max_findings: self.max_findings,
            max_message_bytes: self.max_message_bytes,
            ..Limits::default()
        }
    }
}

/// How long requests under way may run on after the stop request.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `d4 dns aggregate` until `shutdown`: the inputs are opened first
/// (an input that cannot be reached at start is an error), then the page
/// and API are served.
pub fn run(a: Args, shutdown: Shutdown) -> Result<()> {
    let a = *a.o;
    if a.inputs.is_empty() && a.redis.is_none() && a.queues.is_empty() {
        bail!(
            "nothing to aggregate: give --redis URL (where the reducers publish), -u QUEUE (a dns-stats queue of a D4 server) or -r FILE (JSON lines; - for stdin)"
        );
    }
    let feed = Feed::new(Aggregator::new(a.limits()));
    let files: Vec<LinesInput> = a
        .inputs
        .iter()
        .map(|p| LinesInput::open(p))
        .collect::<Result<_>>()?;
    let queues = if a.queues.is_empty() {
        Vec::new()
    } else {
        input::connect_queues(&a.conn, &a.queues)?
    };
    let mut threads = Vec::new();
    // Subscribed before listening: once the page is up, nothing published
    // is missed.
    if let Some(url) = &a.redis {
        let src = RedisSource {
            url: url.clone(),
            channels: a.channels.clone(),
        };
        threads.push(input::redis_thread(src, feed.clone(), shutdown.clone())?);
    }
    let rt = d4_api::serve::runtime()?;
    // Listening before a queue is read: a port in use stops us before
    // anything is taken from it.
    let listener = match rt.block_on(d4_api::serve::listen(a.listen, "d4 dns aggregate")) {
        Ok(l) => l,
        Err(e) => {
            shutdown.trigger();
            return Err(e);
        }
    };
    if !queues.is_empty() {
        threads.push(input::queue_thread(queues, feed.clone(), shutdown.clone()));
    }
    // stdin may never end: that thread is not waited for.
    if !files.is_empty() {
        input::lines_thread(files, feed.clone(), shutdown.clone());
    }
    let config = http::Config {
        rate_limit: a.rate_limit,
        max_subscribers: a.max_subscribers,
    };
    let r = rt.block_on(async {
        let (router, ticker) = http::router(feed.clone(), &config, shutdown.clone());
        tokio::spawn(ticker);
        let serve = d4_api::serve::serve(listener, router, shutdown.clone().triggered());
        // Requests under way get a grace period after the stop request
        // (live streams end at once); then the rest is dropped.
        let grace = async {
            shutdown.clone().triggered().await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            r = serve => r,
            () = grace => {
                tracing::warn!("connections still open {} s after the stop request: closed", STOP_GRACE.as_secs());
                Ok(())
            }
        }
    });
    shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
    let c = feed.lock().counters().clone();
    tracing::info!(
        "d4 dns aggregate: {} messages taken, {} malformed, {} of unknown types, {} too large",
        c.messages,
        c.malformed,
        c.unknown_types,
        c.too_large
    );
    r
}
