//! `d4 backscatter`: DDoS backscatter in captures or a type-1 queue — the
//! reference `-b` CSV, or per-victim summaries over time windows (NDJSON).

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use d4_analyzers::backscatter::{Detector, CSV_HEADER};
use d4_analyzers::victims::{parse_window, VictimRow, Victims};
use d4_packet::capture::{CaptureReader, Packet};
use d4_packet::write::PcapWriter;

use d4_api::poll::{Handler, Idle, Poller, Take};
use d4_api::{Api, Conn};

/// Find DDoS backscatter.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 backscatter -r darknet.pcap -b > backscatter.csv\n  d4 backscatter -r day1.pcap.gz -r day2.pcapng -b -s\n  d4 backscatter -r /srv/d4/data/SENSOR/1 --victims --window 5m --min-packets 100\n  d4 backscatter -u QUEUE --victims -w matched.pcap      # a type-1 queue, until Ctrl-C\n  d4 backscatter -u QUEUE --victims --once               # what the queue holds, then exit\n\nA TCP packet (SYN-ACK, RST, ACK...) from a host never seen sending a SYN is the answer\nof a spoofed-source flood's victim. SYNs with ECN bits count as SYNs. Ethernet, VLAN,\nMPLS, Linux cooked, raw IP and loopback captures; IPv4 and IPv6.\n\n--victims writes one JSON object per victim and window: victim, window_start, packets,\nfirst_seen/last_seen, distinct_ports and the top services, flag mix, distinct_destinations\n(sensor addresses hit), ttl_min/ttl_max; a switch from SYN+ACK to RST or a TTL change\nbetween windows shows a mitigation device."
)]
pub(crate) struct Args {
    /// Capture (pcap, pcapng, gzip of either) or directory of captures
    /// (read recursively, in name order); repeat for several, in order.
    #[arg(short = 'r', long = "read", required_unless_present = "queue")]
    inputs: Vec<PathBuf>,
    /// Consume a type-1 queue of the server instead: each file once, until Ctrl-C.
    /// With --victims a window is reported once packets two windows later
    /// arrive, or after a window's length without a new file.
    #[arg(short = 'u', long = "uuid", conflicts_with = "inputs")]
    queue: Option<String>,
    /// With -u: exit when the queue is empty.
    #[arg(long, requires = "queue")]
    once: bool,
    /// Write the reference CSV: `secs,ip,flags,sport` (the default output).
    #[arg(short = 'b', long, conflicts_with = "victims")]
    csv: bool,
    /// Write per-victim summaries over time windows, one JSON object per line.
    #[arg(long)]
    victims: bool,
    /// Window length for --victims: 300, 300s, 5m, 1h, 1d.
    #[arg(long, default_value = "5m", value_parser = parse_window)]
    window: u64,
    /// With --victims: report victims with at least this many packets in a window.
    #[arg(long, default_value_t = 1)]
    min_packets: u64,
    /// With --victims: most (victim, window) entries kept; beyond, the least
    /// recently hit is reported early, marked "partial".
    #[arg(long, default_value_t = 1_000_000)]
    victim_table: usize,
    /// Also write the matched frames (the backscatter packets) to this pcap.
    #[arg(short = 'w', long = "write")]
    write: Option<PathBuf>,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
    /// Most initiators (SYN senders) remembered; the oldest are forgotten beyond.
    #[arg(long, default_value_t = 4_000_000)]
    table_size: usize,
    #[command(flatten)]
    conn: Conn,
}

/// The state of one run across its inputs.
struct Run<W: Write> {
    detector: Detector,
    victims: Option<Victims>,
    rows: Vec<VictimRow>,
    out: W,
    matched: Option<PcapWriter<BufWriter<std::fs::File>>>,
    packets: u64,
    /// Matched frames not written (another link type than the output's).
    not_written: u64,
    p: Packet,
}

impl<W: Write> Run<W> {
    /// Reads one capture; on error, the packets before it counted.
    fn capture(&mut self, r: impl Read) -> Result<()> {
        let mut reader = CaptureReader::new(io::BufReader::with_capacity(256 * 1024, r))?;
        let nanos = reader.nanos();
        let scale = if nanos { 1e-9 } else { 1e-6 };
        while reader.next_into(&mut self.p)? {
            self.packets += 1;
            let p = &self.p;
            let Some(t) = d4_packet::decode::tcp(p.linktype, &p.data) else {
                continue;
            };
            let Some(hit) = self.detector.packet(p.ts_sec, &t) else {
                continue;
            };
            match &mut self.victims {
                Some(v) => {
                    let ts = f64::from(p.ts_sec) + f64::from(p.ts_frac) * scale;
                    v.hit(ts, &t, &mut self.rows);
                }
                None => writeln!(
                    self.out,
                    "{},{},{},{}",
                    hit.secs, hit.src, hit.flags, hit.sport
                )?,
            }
            if let Some(w) = &mut self.matched {
                match w.write(p, nanos) {
                    Ok(()) => {}
                    Err(d4_packet::write::WriteError::LinkType { .. }) => self.not_written += 1,
                    Err(e) => return Err(e).context("cannot write the matched frames"),
                }
            }
            if !self.rows.is_empty() {
                self.write_rows()?;
            }
        }
        Ok(())
    }

    fn write_rows(&mut self) -> Result<()> {
        for r in self.rows.drain(..) {
            serde_json::to_writer(&mut self.out, &r)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        crate::flush_output(&mut self.out)?;
        if let Some(w) = &mut self.matched {
            w.get_mut()
                .flush()
                .context("cannot write the matched frames")?;
        }
        Ok(())
    }
}

pub(crate) fn run(a: Args) -> Result<()> {
    // Before any output: an empty folder is an error, not an empty result.
    let files = d4_packet::inputs::expand(&a.inputs)?;
    let stdout = io::stdout();
    let out = BufWriter::new(stdout.lock());
    let matched = match &a.write {
        Some(p) => Some(PcapWriter::new(BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))),
        None => None,
    };
    let mut run = Run {
        detector: Detector::new(a.table_size),
        victims: a
            .victims
            .then(|| Victims::new(a.window, a.min_packets, a.victim_table)),
        rows: Vec::new(),
        out,
        matched,
        packets: 0,
        not_written: 0,
        p: Packet::with_capacity(),
    };
    if run.victims.is_none() {
        writeln!(run.out, "{CSV_HEADER}")?;
    }
    let failed = match &a.queue {
        None => {
            let mut failed = Vec::new();
            for path in files {
                // A progress bar per file on a terminal (over the bytes on disk).
                let r = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))
                    .and_then(|f| {
                        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                        Ok(d4_packet::gz::maybe_gunzip(crate::with_progress(f, len))?)
                    })
                    .and_then(|f| run.capture(f));
                if let Err(e) = r {
                    if crate::is_broken_pipe(&e) {
                        return Ok(()); // `| head`: the reader has what it wanted
                    }
                    // The packets before the damage count; the file is reported.
                    eprintln!("d4 backscatter: {}: {e:#}", path.display());
                    failed.push(path.display().to_string());
                }
            }
            failed
        }
        Some(q) => {
            consume(&a, q, &mut run)?;
            Vec::new()
        }
    };
    if let Some(v) = &mut run.victims {
        v.finish(&mut run.rows);
        run.write_rows()?;
    }
    run.flush()?;
    if a.stats {
        let s = run.detector.stats;
        eprintln!(
            "d4 backscatter: {} packets, {} TCP, {} SYNs, {} backscatter packets, {} initiators forgotten (table full)",
            run.packets, s.tcp, s.syns, s.hits, s.evicted
        );
        if let Some(v) = &run.victims {
            let s = v.stats;
            eprintln!(
                "d4 backscatter: {} victim rows, {} below --min-packets, {} reported early (table full)",
                s.rows, s.below_threshold, s.partial
            );
        }
    }
    if run.not_written > 0 {
        eprintln!(
            "d4 backscatter: {} matched frames not written to the pcap (another link type than its first)",
            run.not_written
        );
    }
    if !failed.is_empty() {
        bail!("could not read (see above): {}", failed.join(", "));
    }
    Ok(())
}

/// Consumes a type-1 queue: files are read in order, each once; items leave
/// the queue once their file was read (a crash re-reads at most one batch).
fn consume<W: Write>(a: &Args, queue: &str, run: &mut Run<W>) -> Result<()> {
    let api = Api::connect(&a.conn)?;
    let q = api.get(&format!("/queues/{queue}"))?;
    let qtype = q["type"].as_str().unwrap_or_default();
    if qtype != "1" {
        bail!("queue {queue} is of type {qtype}: backscatter reads type-1 (pcap) queues");
    }
    let root = d4_api::data_root(&api);
    if !a.once {
        crate::signals::catch(|n| {
            if n > 1 {
                std::process::exit(130);
            }
        });
    }
    let idle = if a.once { Idle::Once } else { Idle::Follow };
    let mut poller =
        Poller::new(&api, queue, Take::Read, 16, idle).stop_when(crate::signals::interrupted);
    let quiet = Duration::from_secs(a.window);
    poller.run(&mut Files {
        run,
        root,
        quiet,
        last_data: Instant::now(),
    })
}

/// The files a type-1 queue names, read into a [`Run`].
struct Files<'a, W: Write> {
    run: &'a mut Run<W>,
    /// The server's `<data-dir>/data`: items must name regular files below it.
    root: Option<PathBuf>,
    /// With --victims, following: after this long without a new file (one
    /// window), the open windows are reported instead of waiting for later
    /// packets to close them.
    quiet: Duration,
    last_data: Instant,
}

impl<W: Write> Handler for Files<'_, W> {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        for item in &items {
            let path = String::from_utf8_lossy(item).into_owned();
            let r = d4_api::open_item_file(item, self.root.as_deref())
                .and_then(|f| self.run.capture(f));
            if let Err(e) = r {
                if crate::is_broken_pipe(&e) {
                    return Err(e); // nothing acknowledged: the batch is read again
                }
                eprintln!("d4 backscatter: {path}: {e:#}");
            }
        }
        self.run.flush()?;
        self.last_data = Instant::now();
        Ok(items.len())
    }

    fn idle(&mut self) -> Result<()> {
        if self.last_data.elapsed() >= self.quiet {
            if let Some(v) = &mut self.run.victims {
                // A window that later packets would have reopened gets a
                // second row then: a follower reports what it has.
                v.finish(&mut self.run.rows);
                self.run.write_rows()?;
            }
            self.last_data = Instant::now();
        }
        self.run.flush()
    }
}
