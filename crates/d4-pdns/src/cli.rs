//! `d4 pdns extract | ingest | serve`: the subcommands, run by the `d4`
//! binary, which owns the signals: it calls [`Shutdown::trigger`] on
//! Ctrl-C / SIGTERM for the commands that run until told to stop
//! ([`PdnsCmd::follows`]).

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use d4_api::captures::{is_broken_pipe, open_input, CaptureArgs, PacketSink};
use d4_api::poll::Idle;

use crate::extract::{ExtractConfig, Extractor};
use crate::ingest::{Format, Ingester};
use crate::record::{canonical_type, normalize_name, type_name};
use crate::store::{Policy, Store};
use d4_api::queue::Queue;
use d4_api::Conn;

/// Passive DNS: extract records from captures, store them, serve lookups.
#[derive(clap::Subcommand, Debug)]
pub enum PdnsCmd {
    /// DNS answers from captures, as passivedns lines or COF NDJSON.
    Extract(ExtractArgs),
    /// Store records from passivedns lines, COF NDJSON, captures or D4 queues.
    Ingest(IngestArgs),
    /// Answer lookups over HTTP (COF), optionally ingesting D4 queues meanwhile.
    Serve(ServeArgs),
}

/// `d4 pdns extract`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 pdns extract -r dns.pcap                   # passivedns lines on stdout\n  d4 pdns extract -r day.pcap.gz --cof -s       # COF NDJSON, statistics on stderr\n  tcpdump -w - port 53 | d4 pdns extract        # stdin\n  d4 pdns extract -u QUEUE --once               # the captures of a type-1 queue\n\nOne line per answer record: ts||client||server||class||query||type||answer||ttl||count\n(gamelinux passivedns default fields; names with a trailing dot; count 1), as passivedns\nprints it: by default A, AAAA, PTR, CNAME, DNAME, NAPTR, RP and SRV (-X 46PCDNRS); the\nanswer of MX is the exchange, of SRV the target, of SOA the MNAME, of RP the mailbox,\nof NAPTR the order, of TXT the first string (--cof gives every type in full). An error\nresponse (NXDOMAIN, SERVFAIL...) gives one line with the rcode name as answer, the\nquestion's type and TTL 0. UDP and TCP on port 53 (TCP reassembled), IPv4 fragments\nreassembled, IPv6, VLAN/QinQ/MPLS, Linux cooked, raw IP, loopback. Malformed messages\n(compression loops, forward pointers, cut records) are counted (-s) and skipped."
)]
pub struct ExtractArgs {
    #[command(flatten)]
    input: CaptureArgs,
    /// Write COF NDJSON (rrname, rrtype, rdata, time_first, time_last, count) instead
    /// (every record type, rdata in full presentation form).
    #[arg(long)]
    cof: bool,
    /// Record types of the passivedns lines, as passivedns's -X: 4 A, 6 AAAA, P PTR,
    /// C CNAME, D DNAME, N NAPTR, R RP, S SRV, T TXT, O SOA, M MX, n NS.
    #[arg(short = 'X', long = "types", default_value = crate::passivedns::DEFAULT_FLAGS)]
    types: String,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
    /// TCP flow directions tracked at once (the stalest is dropped beyond).
    #[arg(long, default_value_t = 65_536)]
    max_flows: usize,
    /// IPv4 datagrams in reassembly at once.
    #[arg(long, default_value_t = 4096)]
    max_fragmented: usize,
}

/// Store options shared by ingest and serve.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// The store file (created if absent). One process writes it at a time.
    #[arg(long, default_value = "pdns.redb")]
    store: PathBuf,
    /// Drop records of TYPE not seen for SECONDS, e.g. `--expire A=2592000`; repeatable.
    #[arg(long, value_name = "TYPE=SECONDS")]
    expire: Vec<String>,
    /// Never store names equal to or under SUFFIX, e.g. `--exclude in-addr.arpa`; repeatable.
    #[arg(long, value_name = "SUFFIX")]
    exclude: Vec<String>,
    /// Sensor id recorded with every record ingested here (queue items carry none).
    #[arg(long)]
    sensor_id: Option<String>,
    /// Page cache of the store, in MiB (lookups of a store larger than this read pages with a system call each).
    #[arg(long, default_value_t = 1024)]
    cache_mb: usize,
    /// Distinct records merged in memory before a store transaction (also
    /// written every 0.5 s when following queues, and at the end).
    #[arg(long, default_value_t = 1_000_000)]
    batch: usize,
}

impl StoreArgs {
    fn policy(&self) -> Result<Policy> {
        let mut expiry = HashMap::new();
        for e in &self.expire {
            let Some((t, s)) = e.split_once('=') else {
                bail!("--expire {e}: expected TYPE=SECONDS, e.g. A=2592000");
            };
            let secs: u64 = s
                .parse()
                .with_context(|| format!("--expire {e}: {s} is not a number of seconds"))?;
            expiry.insert(canonical_type(t), secs);
        }
        Ok(Policy {
            expiry,
            excluded: self.exclude.iter().map(|s| normalize_name(s)).collect(),
        })
    }

    fn open(&self) -> Result<Arc<Store>> {
        Ok(Arc::new(Store::open_with_cache(
            &self.store,
            Some(self.cache_mb.saturating_mul(1 << 20)),
        )?))
    }
}

/// `d4 pdns ingest`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 pdns ingest -r passivedns.log --store pdns.redb\n  d4 pdns ingest -r export.ndjson --format cof\n  d4 pdns ingest -r dns.pcap.gz                 # captures are extracted first\n  d4 pdns ingest -u QUEUE8 -u QUEUE1 --sensor-id paris --expire A=2592000 --exclude local\n  d4 pdns ingest -u QUEUE --once                # drain what is queued, then exit\n\nStores per (rrname, rrtype, rdata): time_first, time_last, count, sensors. Names and\nrdata are normalised (lower case, no trailing dot). Queue items of type 8 are passivedns\nlines; of type 1, capture files of the D4 server. Bad lines are counted and skipped;\nan input that is not empty and yields no record is an error (exit 1). The format of\nan input is told by its first bytes, whatever its name. The store has one writer at a\ntime: to serve while ingesting queues, use `d4 pdns serve --ingest-queue QUEUE`."
)]
pub struct IngestArgs {
    /// File to read (gzip or plain; `-` for stdin); repeat for several.
    #[arg(short = 'r', long = "read")]
    inputs: Vec<PathBuf>,
    /// Format of the -r inputs.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    #[command(flatten)]
    follow: d4_api::queue::Follow,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    conn: Conn,
}

/// `d4 pdns serve`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 pdns serve --store pdns.redb\n  d4 pdns serve --ingest-queue QUEUE8 --sensor-id paris      # ingest and serve\n  curl http://127.0.0.1:8400/query/www.example.com\n  curl 'http://127.0.0.1:8400/query/*.example.com?rrtype=A&limit=100'\n  curl http://127.0.0.1:8400/query/192.0.2.1                 # names pointing at it\n  curl http://127.0.0.1:8400/fquery/www.example.com          # one JSON array\n  curl http://127.0.0.1:8400/info\n\nAnswers are COF NDJSON (application/x-ndjson) in store order (name, type, rdata).\nParameters: limit (1..10000, default 1000), cursor (the x-pdns-cursor header of the\nprevious page; absent once the end is reached; a page whose filters skipped many\nrecords may be short and still have one), rrtype, time_first_after, time_last_before,\nformat=json. Clients beyond --rate-limit requests/s get 429."
)]
pub struct ServeArgs {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8400")]
    listen: SocketAddr,
    /// Requests per second per client address (bursts of twice that); 0: no limit.
    #[arg(long, default_value_t = 100.0)]
    rate_limit: f64,
    /// Queue to ingest while serving (type 8 or 1); repeatable.
    #[arg(long = "ingest-queue")]
    queues: Vec<String>,
    /// Seconds between expiry sweeps (with --expire).
    #[arg(long, default_value_t = 3600)]
    expire_every: u64,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    conn: Conn,
}

impl PdnsCmd {
    /// Whether the command runs until told to stop (`serve`, and `extract`
    /// or `ingest` following queues without `--once`): its caller should
    /// then turn Ctrl-C / SIGTERM into [`Shutdown::trigger`].
    pub fn follows(&self) -> bool {
        match self {
            PdnsCmd::Extract(a) => a.input.follows(),
            PdnsCmd::Ingest(a) => a.follow.follows(),
            PdnsCmd::Serve(_) => true,
        }
    }
}

pub use d4_api::shutdown::Shutdown;

/// Runs a `d4 pdns` subcommand; the ones that follow queues or serve
/// finish when `shutdown` is triggered.
pub fn run(cmd: PdnsCmd, shutdown: Shutdown) -> Result<()> {
    match cmd {
        PdnsCmd::Extract(a) => extract(a, &shutdown),
        PdnsCmd::Ingest(a) => ingest(a, &shutdown),
        PdnsCmd::Serve(a) => serve(a, shutdown),
    }
}

/// The queues `ingest` and `serve --ingest-queue` read: types 8 and 1.
fn connect_ingest(c: &Conn, uuids: &[String]) -> Result<Vec<Queue>> {
    Queue::connect_typed(
        c,
        uuids,
        &["1", "8"],
        "pdns ingests types 8 (passivedns) and 1 (captures)",
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Extracts the records of each packet to the output.
struct Extract<'a, W: Write> {
    x: &'a mut Extractor,
    out: &'a mut W,
    /// `--cof`: Passive DNS COF JSON instead of passivedns lines.
    cof: bool,
}

impl<W: Write> PacketSink for Extract<'_, W> {
    fn packet(&mut self, p: &d4_packet::capture::Packet, nanos: bool) -> Result<()> {
        let (out, cof) = (&mut *self.out, self.cof);
        let mut werr = None;
        self.x.packet(p, nanos, &mut |r| {
            if werr.is_some() {
                return;
            }
            let res = if cof {
                let v = serde_json::json!({
                    "rrname": if r.rrname.is_empty() { "." } else { r.rrname },
                    "rrtype": type_name(r.rrtype),
                    "rdata": r.rdata,
                    "time_first": r.ts_sec,
                    "time_last": r.ts_sec,
                    "count": 1,
                });
                serde_json::to_writer(&mut *out, &v)
                    .map_err(io::Error::other)
                    .and_then(|_| out.write_all(b"\n"))
            } else {
                r.write_line(&mut *out)
            };
            if let Err(e) = res {
                werr = Some(e);
            }
        });
        werr.map_or(Ok(()), |e| Err(e.into()))
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

const EXTRACT: &str = "d4 pdns extract";

fn extract(a: ExtractArgs, shutdown: &Shutdown) -> Result<()> {
    let select = crate::passivedns::Select::parse(&a.types)
        .map_err(|e| anyhow::anyhow!("-X {:?}: {e}", a.types))?;
    let mut x = Extractor::new(ExtractConfig {
        passivedns: (!a.cof).then_some(select),
        trailing_dot: !a.cof,
        max_flows: a.max_flows,
        max_fragmented: a.max_fragmented,
        ..ExtractConfig::default()
    });
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let files = a.input.files()?;
    let mut ex = Extract {
        x: &mut x,
        out: &mut out,
        cof: a.cof,
    };
    let read = a.input.read(
        EXTRACT,
        &files,
        d4_api::captures::progress_bar,
        &|| shutdown.is_triggered(),
        &mut ex,
    );
    let failed = match read.and_then(|f| ex.flush().map(|_| f)) {
        Ok(f) => f,
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if a.stats {
        let s = x.stats;
        let r = s.reassembly;
        eprintln!(
            "d4 pdns extract: {} packets, {} DNS messages ({} responses), {} records, {} malformed messages skipped; {} IPv4 fragments -> {} datagrams ({} given up); {} TCP messages ({} flows dropped)",
            s.packets, s.messages, s.responses, s.records, s.malformed,
            r.fragments, r.datagrams, r.datagrams_dropped, r.tcp_messages, r.flows_dropped
        );
    }
    if !failed.is_empty() {
        bail!("could not read (see above): {}", failed.join(", "));
    }
    Ok(())
}

fn ingest(a: IngestArgs, shutdown: &Shutdown) -> Result<()> {
    if a.inputs.is_empty() && a.follow.queues.is_empty() {
        bail!("nothing to ingest: give -r FILE (or -r - for stdin) or -u QUEUE");
    }
    let policy = a.store.policy()?;
    let store = a.store.open()?;
    let mut ing = Ingester::new(
        store.clone(),
        policy.clone(),
        a.store.batch,
        a.store.sensor_id.clone(),
    );
    let mut failed = Vec::new();
    for p in &d4_packet::inputs::expand(&a.inputs)? {
        // An input that is not empty and yields no record is an error.
        let r = open_input(p, d4_api::captures::progress_bar)
            .and_then(|r| ing.reader(r, a.format))
            .and_then(|s| s.require_records());
        if let Err(e) = r {
            eprintln!("d4 pdns ingest: {}: {e:#}", p.display());
            failed.push(p.display().to_string());
        }
    }
    ing.flush()?;
    if !a.follow.queues.is_empty() {
        let queues = connect_ingest(&a.conn, &a.follow.queues)?;
        let stop = || shutdown.is_triggered();
        // Several queues: round-robin in one thread (one writer).
        a.follow
            .run(&queues, stop, |q| ing.queue(q, Idle::Once, 1000, stop))?;
    }
    ing.flush()?;
    let expired = store.expire(&policy, now())?;
    if a.stats {
        let s = ing.stats;
        eprintln!(
            "d4 pdns ingest: {} observations ({} created, {} updated), {} excluded, {} bad lines, {} malformed DNS messages, {} expired; {} records stored",
            s.observations, s.created, s.updated, s.excluded, s.bad_lines, s.malformed_messages, expired, store.len()?
        );
    }
    if !failed.is_empty() {
        bail!(
            "nothing read from, or could not read (see above): {}",
            failed.join(", ")
        );
    }
    Ok(())
}

fn serve(a: ServeArgs, shutdown: Shutdown) -> Result<()> {
    let policy = a.store.policy()?;
    let store = a.store.open()?;
    let rt = d4_api::serve::runtime()?;
    let mut threads = Vec::new();
    if !a.queues.is_empty() {
        let queues = connect_ingest(&a.conn, &a.queues)?;
        let ing = Ingester::new(
            store.clone(),
            policy.clone(),
            a.store.batch,
            a.store.sensor_id.clone(),
        );
        threads.push(d4_api::queue::ingest_thread(
            queues,
            shutdown.clone(),
            1000,
            ing,
        ));
    }
    if !policy.expiry.is_empty() {
        let (s, st, p, every) = (
            shutdown.clone(),
            store.clone(),
            policy.clone(),
            a.expire_every.max(1),
        );
        threads.push(std::thread::spawn(move || {
            let mut waited = every;
            while !s.is_triggered() {
                if waited >= every {
                    match st.expire(&p, now()) {
                        Ok(n) if n > 0 => tracing::info!("expired {n} records"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("expiry: {e:#}"),
                    }
                    waited = 0;
                }
                std::thread::sleep(Duration::from_secs(1));
                waited += 1;
            }
        }));
    }
    let r = rt.block_on(async {
        let listener = d4_api::serve::listen(a.listen, "d4 pdns serve").await?;
        let stopped = shutdown.clone().triggered();
        crate::serve::serve(listener, store.clone(), a.rate_limit, stopped).await
    });
    // The server may also have failed: the threads stop either way.
    shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
    r
}
