//! `d4 backscatter`: DDoS backscatter in captures (reference `-b` CSV).

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use d4_analyzers::backscatter::{Detector, CSV_HEADER};
use d4_packet::capture::CaptureReader;

/// Find DDoS backscatter.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 backscatter -r darknet.pcap -b > backscatter.csv\n  d4 backscatter -r day1.pcap.gz -r day2.pcapng -b -s\n\nA TCP packet (SYN-ACK, RST, ACK...) from a host never seen sending a SYN is the answer\nof a spoofed-source flood's victim. SYNs with ECN bits count as SYNs. Ethernet, VLAN,\nMPLS, Linux cooked, raw IP and loopback captures; IPv4 and IPv6."
)]
pub(crate) struct Args {
    /// Capture to read (pcap, pcapng, gzip of either); repeat for several, in order.
    #[arg(short = 'r', long = "read", required = true)]
    inputs: Vec<PathBuf>,
    /// Write the reference CSV: `secs,ip,flags,sport` (the default output).
    #[arg(short = 'b', long)]
    csv: bool,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
    /// Most initiators (SYN senders) remembered; the oldest are forgotten beyond.
    #[arg(long, default_value_t = 4_000_000)]
    table_size: usize,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let _ = a.csv; // the only output mode so far
    let mut d = Detector::new(a.table_size);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    writeln!(out, "{CSV_HEADER}")?;
    let mut failed = Vec::new();
    let mut packets = 0u64;
    for path in &a.inputs {
        let f = d4_packet::gz::open_maybe_gz(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let r: Box<dyn Read> = Box::new(io::BufReader::with_capacity(256 * 1024, f));
        let mut reader = match CaptureReader::new(r) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("d4 backscatter: {}: {e}", path.display());
                failed.push(path.display().to_string());
                continue;
            }
        };
        let mut p = d4_packet::capture::Packet {
            linktype: 0,
            ts_sec: 0,
            ts_frac: 0,
            orig_len: 0,
            data: Vec::with_capacity(65_536),
        };
        loop {
            match reader.next_into(&mut p) {
                Ok(true) => {
                    packets += 1;
                    if let Some(t) = d4_packet::decode::tcp(p.linktype, &p.data) {
                        if let Some(hit) = d.packet(p.ts_sec, &t) {
                            writeln!(out, "{},{},{},{}", hit.secs, hit.src, hit.flags, hit.sport)?;
                        }
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    // The packets before the damage count; the file is reported.
                    eprintln!("d4 backscatter: {}: {e}", path.display());
                    failed.push(path.display().to_string());
                    break;
                }
            }
        }
    }
    crate::flush_output(&mut out)?;
    if a.stats {
        let s = d.stats;
        eprintln!(
            "d4 backscatter: {packets} packets, {} TCP, {} SYNs, {} backscatter packets, {} initiators forgotten (table full)",
            s.tcp, s.syns, s.hits, s.evicted
        );
    }
    if !failed.is_empty() {
        bail!("damaged or unreadable: {}", failed.join(", "));
    }
    Ok(())
}
