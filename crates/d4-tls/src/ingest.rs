//! `ja3-jl` records from queues or files → the store (`d4 tls ingest`).
//!
//! A record is checked before it is stored: addresses (IPv4 or IPv6),
//! ports, the RFC 3339 timestamp, hex digests, the base64 DER of its
//! certificates (at most [`MAX_CHAIN`] of [`crate::cert::MAX_DER`] bytes
//! each). A record that fails is counted and skipped with a warning naming
//! its source; a certificate that does not parse as X.509 is still stored
//! by its hashes (`parsed: false`).

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use base64::Engine;
use d4_api::poll::Idle;
use d4_api::queue::Queue;
use d4_api::Conn;

use crate::record::Record;
use crate::store::{NewSession, Session, Store};

/// Longest line read (longer ones are bad records).
pub const MAX_LINE: usize = 1 << 20;
/// Most certificates kept of a chain.
pub const MAX_CHAIN: usize = 16;
/// Warnings about bad records logged per source (the rest are counted).
const MAX_WARNINGS: u64 = 10;

/// `d4 tls ingest`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 tls ingest -r sessions.jsonl --store tls.redb\n  d4 tls fingerprint -r capture.pcap | d4 tls ingest --store tls.redb   # stdin\n  d4 tls ingest -r /var/lib/d4/ja3/ -s              # every file of a folder\n  d4 tls ingest -u QUEUE --once                     # drain a ja3-jl queue, then exit\n\nInputs are ja3-jl JSON lines (gzip or plain), one TLS session each. Queue items are\nthe paths of the files the server saved (regular files under its data directory) or\nJSON lines themselves (an item starting with `{`). Bad records are counted and skipped\n(a warning names the source); certificates that do not parse are kept by hash. The\nstore has one writer at a time: to serve while ingesting, use `d4 tls serve --ingest QUEUE`."
)]
pub struct Args {
    /// File or folder of ja3-jl JSON lines (`-` for stdin); repeatable. Default: stdin.
    #[arg(short = 'r', long = "read")]
    inputs: Vec<PathBuf>,
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

impl Args {
    /// Whether it follows queues until told to stop.
    pub fn follows(&self) -> bool {
        self.follow.follows()
    }
}

/// Store options shared by ingest and serve.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The redb file of sessions, certificates and fingerprints (made when
    /// missing; a single writer process at a time).
    #[arg(long, default_value = "tls.redb")]
    pub store: PathBuf,
    /// MiB of redb page cache.
    #[arg(long, default_value_t = 256)]
    pub cache_mb: usize,
    /// Records written per transaction (and every 0.5 s while following a
    /// queue, and when the input ends).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
}

impl StoreArgs {
    /// Opens the store.
    pub fn open(&self) -> Result<Arc<Store>> {
        Ok(Arc::new(Store::open_with_cache(
            &self.store,
            Some(self.cache_mb.saturating_mul(1 << 20)),
        )?))
    }
}

/// Counters of an ingest.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Lines read (blank ones included).
    pub lines: u64,
    /// Records stored.
    pub sessions: u64,
    /// Records skipped.
    pub bad: u64,
    /// Certificates stored for the first time.
    pub new_certs: u64,
    /// Of those, the ones that did not parse.
    pub unparsed_certs: u64,
}

/// Why a record is refused.
fn check(r: Record) -> Result<NewSession, String> {
    let ip = |s: &str, what: &str| -> Result<IpAddr, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("{what} {s:?} is not an IP address"))
    };
    let port = |s: &str, what: &str| -> Result<u16, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("{what} {s:?} is not a port"))
    };
    let client = ip(&r.client_ip, "ClientIP")?;
    let server = ip(&r.server_ip, "ServerIP")?;
    let time = chrono::DateTime::parse_from_rfc3339(r.timestamp.trim())
        .map_err(|_| format!("Timestamp {:?} is not RFC 3339", r.timestamp))?
        .timestamp();
    let digest = |s: &str, what: &str| -> Result<String, String> {
        let s = s.trim();
        if s.is_empty() || (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
            Ok(s.to_ascii_lowercase())
        } else {
            Err(format!("{what} {s:?} is not an MD5 digest (32 hex digits)"))
        }
    };
    let ja4 = r.ja4.trim();
    if ja4.len() > 64 || !ja4.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("JA4 {ja4:?} is not a JA4 fingerprint"));
    }
    if r.certificates.len() > MAX_CHAIN {
        return Err(format!(
            "{} certificates (at most {MAX_CHAIN})",
            r.certificates.len()
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut chain = Vec::with_capacity(r.certificates.len());
    for (i, c) in r.certificates.iter().enumerate() {
        if c.raw.len() > crate::cert::MAX_DER * 4 / 3 + 4 {
            return Err(format!(
                "certificate {i} is over {} bytes",
                crate::cert::MAX_DER
            ));
        }
        let der = b64
            .decode(c.raw.trim())
            .map_err(|e| format!("certificate {i}: Raw is not base64: {e}"))?;
        if der.is_empty() {
            return Err(format!("certificate {i} is empty"));
        }
        chain.push(der);
    }
    let sni = r.sni.trim().trim_end_matches('.').to_ascii_lowercase();
    let sni = if sni.len() <= 253 && !sni.contains('\0') {
        sni
    } else {
        String::new()
    };
    Ok(NewSession {
        session: Session {
            id: 0,
            time,
            timestamp: r.timestamp.trim().to_string(),
            client_ip: client.to_string(),
            client_port: port(&r.client_port, "ClientPort")?,
            server_ip: server.to_string(),
            server_port: port(&r.server_port, "ServerPort")?,
            sni,
            alpn: r.alpn.into_iter().take(32).collect(),
            ja3: digest(&r.ja3_digest, "JA3Digest")?,
            ja3s: digest(&r.ja3s_digest, "JA3SDigest")?,
            ja4: ja4.to_string(),
            certs: Vec::new(),
        },
        client: Some(client),
        server: Some(server),
        ja3_string: r.ja3,
        ja3s_string: r.ja3s,
        chain,
    })
}

/// Batches records into the store.
pub struct Ingester {
    /// The store written.
    store: Arc<Store>,
    /// Checked records not written yet.
    pending: Vec<NewSession>,
    /// Records per transaction.
    window: usize,
    /// Bad records warned about for the current source.
    warned: u64,
    /// Counters.
    pub stats: Stats,
}

impl Ingester {
    /// Writes every `window` records (and at [`Ingester::flush`]).
    pub fn new(store: Arc<Store>, window: usize) -> Ingester {
        Ingester {
            store,
            pending: Vec::new(),
            window: window.clamp(1, 1_000_000),
            warned: 0,
            stats: Stats::default(),
        }
    }

    /// One JSON line from `source`; bad lines are counted and warned about.
    pub fn line(&mut self, line: &[u8], source: &str) -> Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let r = serde_json::from_slice::<Record>(line)
            .map_err(|e| format!("not a ja3-jl record: {e}"))
            .and_then(check);
        match r {
            Ok(n) => {
                self.pending.push(n);
                if self.pending.len() >= self.window {
                    self.flush()?;
                }
            }
            Err(why) => {
                self.stats.bad += 1;
                self.warned += 1;
                if self.warned <= MAX_WARNINGS {
                    tracing::warn!("{source}: bad record skipped: {why}");
                }
            }
        }
        Ok(())
    }

    /// Writes the pending records.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let a = self.store.apply(&mut self.pending)?;
        self.pending.clear();
        self.stats.sessions += a.sessions;
        self.stats.new_certs += a.new_certs;
        self.stats.unparsed_certs += a.unparsed_certs;
        Ok(())
    }

    /// The lines of a reader (lines over [`MAX_LINE`] are bad records).
    pub fn reader(&mut self, r: impl Read, source: &str) -> Result<()> {
        self.warned = 0;
        d4_packet::inputs::for_each_line(r, MAX_LINE, |line| {
            self.stats.lines += 1;
            match line {
                Some(l) => self.line(l, source),
                None => {
                    self.stats.bad += 1;
                    tracing::warn!("{source}: a line over {MAX_LINE} bytes skipped");
                    Ok(())
                }
            }
        })?;
        if self.warned > MAX_WARNINGS {
            tracing::warn!("{source}: {} bad records in all", self.warned);
        }
        Ok(())
    }

    /// A file (gzip or plain).
    pub fn file(&mut self, p: &Path) -> Result<()> {
        let name = p.display().to_string();
        let r = d4_packet::gz::open_maybe_gz(p).with_context(|| format!("cannot open {name}"))?;
        self.reader(r, &name).with_context(|| name.clone())
    }

    /// One queue item: JSON lines (it starts with `{`), or the path of a
    /// file of them under the server's data directory.
    pub fn item(&mut self, q: &Queue, item: &[u8]) -> Result<()> {
        let first = item.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') {
            let source = format!("queue {}", q.uuid);
            self.warned = 0;
            for line in item.split(|&b| b == b'\n') {
                self.stats.lines += 1;
                self.line(line, &source)?;
            }
            return Ok(());
        }
        let end = item
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        match q.file_item(&item[..end]) {
            Ok(p) => {
                if let Err(e) = self.file(&p) {
                    tracing::warn!("queue {}: {e:#}", q.uuid);
                }
            }
            Err(e) => tracing::warn!("queue {}: {e:#}", q.uuid),
        }
        Ok(())
    }

    /// Drains a queue (or follows it with [`Idle::Follow`]) until `stop`.
    pub fn queue(&mut self, q: &Queue, idle: Idle, stop: impl Fn() -> bool) -> Result<()> {
        d4_api::queue::drain(q, idle, 1000, stop, self)
    }
}

impl d4_api::queue::Sink for Ingester {
    fn item(&mut self, q: &Queue, item: &[u8]) -> Result<()> {
        Ingester::item(self, q, item)
    }

    fn flush(&mut self) -> Result<()> {
        Ingester::flush(self)
    }
}

/// Connects to ja3-jl queues.
pub fn connect(c: &Conn, uuids: &[String]) -> Result<Vec<Queue>> {
    Queue::connect_typed(c, uuids, &["ja3-jl"], "d4 tls ingests ja3-jl queues")
}

/// Runs `d4 tls ingest`.
pub fn run(a: Args, shutdown: crate::cli::Shutdown) -> Result<()> {
    let store = a.store.open()?;
    let mut ing = Ingester::new(store.clone(), a.store.batch);
    let mut inputs = d4_packet::inputs::expand(&a.inputs)?;
    if inputs.is_empty() && a.follow.queues.is_empty() {
        inputs.push(PathBuf::from("-"));
    }
    let mut failed = Vec::new();
    for p in &inputs {
        let r = if p == Path::new("-") {
            ing.reader(std::io::stdin().lock(), "stdin")
        } else {
            ing.file(p)
        };
        if let Err(e) = r {
            eprintln!("d4 tls ingest: {e:#}");
            failed.push(p.display().to_string());
        }
    }
    ing.flush()?;
    if !a.follow.queues.is_empty() {
        let queues = connect(&a.conn, &a.follow.queues)?;
        let stop = || shutdown.is_triggered();
        a.follow
            .run(&queues, stop, |q| ing.queue(q, Idle::Once, stop))?;
    }
    ing.flush()?;
    if a.stats {
        let s = ing.stats;
        let c = store.counts()?;
        eprintln!(
            "d4 tls ingest: {} lines, {} sessions stored, {} bad records skipped, {} new certificates ({} not parsed); the store holds {} sessions, {} certificates, {} fingerprints",
            s.lines, s.sessions, s.bad, s.new_certs, s.unparsed_certs, c.sessions, c.certificates, c.fingerprints
        );
    }
    if !failed.is_empty() {
        bail!("could not read (see above): {}", failed.join(", "));
    }
    Ok(())
}
