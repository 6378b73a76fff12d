//! `d4 maltrail match`: Maltrail trails applied to captures or a type-1
//! queue (crate `d4-analyzers`, [`d4_analyzers::maltrail`]), the events
//! written as Maltrail's sensor logs them, ready for `d4 client` (type 254,
//! `{"type": "maltrail"}`) or `d4 export udp -t maltrail`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use d4_analyzers::maltrail::{Matcher, Trails};
use d4_api::captures::{CaptureArgs, PacketSink};
use d4_packet::capture::Packet;

/// Maltrail over D4.
#[derive(clap::Subcommand)]
pub(crate) enum MaltrailCmd {
    /// Apply Maltrail trails to captures or a type-1 queue; Maltrail event lines out.
    Match(MatchArgs),
}

/// Bad trails lines shown (all are counted).
const SHOW_BAD: usize = 10;

/// `d4 maltrail match`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 maltrail match --trails trails.csv -r capture.pcap\n  d4 maltrail match --trails trails.csv --trails custom.csv -r /srv/d4/data/SENSOR/1 -s\n  tcpdump -w - | d4 maltrail match --trails trails.csv --sensor edge-1\n  d4 maltrail match --trails trails.csv -u QUEUE -o events.log      # a type-1 queue, until Ctrl-C\n  d4 maltrail match --trails trails.csv -r capture.pcap | d4 client -c maltrail-sensor\n\nA trails file has `trail,info,reference` lines, as Maltrail's trails.csv: an IP\n(1.2.3.4), network (192.0.2.0/24, 2001:db8::/32: its addresses), IP:port\n(1.2.3.4:8080), domain (evil.example, which also matches its subdomains) or URL\n(evil.example/gate.php, or /gate.php for any host). Looked at, as Maltrail's sensor\ndoes: TCP SYNs, UDP datagrams and ICMP echo requests (IP, network, IP:port), DNS\nqueries on UDP and TCP port 53 and HTTP Host headers (domains), HTTP request URLs\n(TCP reassembled: a request's head across segments, out of order, retransmitted).\n\nOne line per event: \"YYYY-MM-DD HH:MM:SS.uuuuuu\" SENSOR src_ip src_port dst_ip dst_port\nPROTO TYPE TRAIL INFO REFERENCE (capture time, local time as Maltrail; TYPE IP, IPORT,\nDNS or URL; a network's event names the address inside it, type IP). An event whose trail was already reported with the same source or\ndestination address in the same --throttle window is dropped, as Maltrail does.\nBad trails lines are reported with their line numbers and skipped; no usable trail\nis an error. docs/MALTRAIL.md walks through the chain to a Maltrail server."
)]
pub(crate) struct MatchArgs {
    /// Trails file: `trail,info,reference` lines (Maltrail's trails.csv); repeatable.
    #[arg(long, required = true, value_name = "FILE")]
    trails: Vec<PathBuf>,
    #[command(flatten)]
    input: CaptureArgs,
    /// Sensor name in the events (default: this machine's hostname).
    #[arg(long)]
    sensor: Option<String>,
    /// Append the events to FILE instead of writing them to stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Window of capture time, in seconds, within which a trail is reported
    /// once per source or destination address (Maltrail's throttling); 0:
    /// every match.
    #[arg(long, default_value_t = 1, value_name = "SECONDS")]
    throttle: u64,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
}

pub(crate) fn run(c: MaltrailCmd) -> Result<()> {
    match c {
        MaltrailCmd::Match(a) => run_match(a),
    }
}

/// Loads the trails files; the bad lines reported, the files' failures fatal.
fn load(files: &[PathBuf]) -> Result<Trails> {
    let mut trails = Trails::new();
    let mut shown = 0;
    for f in files {
        let r = File::open(f)
            .with_context(|| format!("cannot open the trails file {}", f.display()))?;
        trails
            .load(r, |b| {
                if shown < SHOW_BAD {
                    eprintln!(
                        "d4 maltrail match: {}:{}: skipped: {}",
                        f.display(),
                        b.line,
                        b.reason
                    );
                }
                shown += 1;
            })
            .with_context(|| format!("cannot read the trails file {}", f.display()))?;
    }
    let s = trails.stats;
    if shown > SHOW_BAD {
        eprintln!(
            "d4 maltrail match: {} bad trails lines in all, skipped",
            s.bad
        );
    }
    if trails.is_empty() {
        bail!(
            "no usable trail in {} ({} lines, {} bad): give `trail,info,reference` lines",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            s.lines,
            s.bad
        );
    }
    Ok(trails)
}

/// The matcher and where its event lines go.
struct Events {
    m: Matcher,
    out: Box<dyn Write>,
    sensor: String,
    line: String,
}

impl PacketSink for Events {
    fn packet(&mut self, p: &Packet, nanos: bool) -> Result<()> {
        let (out, sensor, line) = (&mut self.out, &self.sensor, &mut self.line);
        let mut err = None;
        self.m.packet(p, nanos, &mut |e| {
            line.clear();
            e.write_line(&chrono::Local, sensor, line);
            if err.is_none() {
                if let Err(e) = out.write_all(line.as_bytes()) {
                    err = Some(e);
                }
            }
        });
        match err {
            Some(e) => Err(e).context("cannot write the events"),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("cannot write the events")
    }
}

fn run_match(a: MatchArgs) -> Result<()> {
    let trails = load(&a.trails)?;
    // Before any output: an empty folder is an error, not an empty result.
    let files = a.input.files()?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(BufWriter::with_capacity(
            64 * 1024,
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
    };
    let mut ev = Events {
        m: Matcher::new(trails, a.throttle),
        out,
        sensor: a
            .sensor
            .clone()
            .unwrap_or_else(crate::export::format::hostname),
        line: String::new(),
    };
    if a.input.follows() {
        crate::signals::catch(|n| {
            if n > 1 {
                std::process::exit(130);
            }
        });
    }
    let failed = a.input.read(
        "d4 maltrail match",
        &files,
        crate::with_progress,
        &crate::signals::interrupted,
        &mut ev,
    )?;
    ev.flush()?;
    if a.stats {
        let t = ev.m.trails().stats;
        let s = ev.m.stats();
        eprintln!(
            "d4 maltrail match: {} trails ({} IP, {} networks, {} IP:port, {} domains, {} URLs; {} bad lines, {} duplicates); {} packets, {} DNS queries ({} malformed), {} HTTP requests, {} TCP directions dropped; {} events, {} throttled",
            ev.m.trails().len(), t.ips, t.networks, t.ip_ports, t.domains, t.urls, t.bad, t.duplicates,
            s.packets, s.dns_queries, s.malformed_dns, s.http_requests, s.flows_dropped, s.events, s.throttled
        );
    }
    if !failed.is_empty() {
        bail!("could not read (see above): {}", failed.join(", "));
    }
    Ok(())
}
