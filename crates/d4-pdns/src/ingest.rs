//! Sources → store: passivedns lines (files, stdin, type-8 queues), COF
//! NDJSON imports, captures (files, type-1 queues; extracted with
//! [`crate::extract`]). Observations are filtered (excluded suffixes),
//! batched and upserted one transaction per batch.

use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use d4_api::poll::Idle;
use d4_packet::capture::{CaptureReader, Packet};

use crate::extract::{ExtractConfig, Extractor};
use crate::record::{parse_line, type_name, Record};
use crate::store::{Pending, Policy, Store};
use d4_api::queue::Queue;

/// Longest line accepted (a passivedns or COF line).
pub const MAX_LINE: usize = 1024 * 1024;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Guess from the first bytes: pcap/pcapng magic, `{` for COF, else passivedns.
    Auto,
    /// gamelinux passivedns lines (`||`-separated, default fields).
    Passivedns,
    /// COF NDJSON (one record per line).
    Cof,
    /// A capture (pcap, pcapng).
    Pcap,
}

/// Counters of an ingest run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Observations accepted (after exclusions).
    pub observations: u64,
    /// Observations dropped by an excluded suffix.
    pub excluded: u64,
    /// Lines that did not parse.
    pub bad_lines: u64,
    /// Records created in the store.
    pub created: u64,
    /// Records updated in the store.
    pub updated: u64,
    /// Captures that ended on an error (their packets before it count).
    pub damaged_captures: u64,
    /// Malformed DNS messages skipped in captures.
    pub malformed_messages: u64,
    /// Lines read (passivedns, COF), blank ones included.
    pub lines: u64,
    /// Packets read from captures.
    pub packets: u64,
}

/// What one input held ([`Ingester::reader`]): enough to tell an input
/// that yielded nothing from an empty one, and to say what it looked like.
#[derive(Clone, Debug)]
pub struct InputSummary {
    /// The format it was read as (sniffed, or as given).
    pub format: Format,
    /// Bytes read (after gunzip).
    pub bytes: u64,
    /// Records it yielded (those dropped by an excluded suffix included).
    pub records: u64,
    /// Lines (passivedns, COF) or packets (captures) read.
    pub units: u64,
    /// Lines that did not parse; malformed DNS messages of a capture.
    pub bad: u64,
    /// Its first bytes.
    pub head: Vec<u8>,
}

impl InputSummary {
    /// An error unless the input was empty or yielded a record: bad input
    /// is never counted as a success.
    pub fn require_records(&self) -> Result<()> {
        if self.records > 0 || self.bytes == 0 {
            return Ok(());
        }
        let what = match self.format {
            Format::Pcap => format!(
                "read as a capture (pcap/pcapng): {} packets, {} malformed DNS messages, no DNS answer",
                self.units, self.bad
            ),
            Format::Cof => format!(
                "read as COF NDJSON: {} lines, {} not COF records",
                self.units, self.bad
            ),
            Format::Passivedns | Format::Auto => format!(
                "read as passivedns lines: {} lines, {} not passivedns records",
                self.units, self.bad
            ),
        };
        let head: String = self
            .head
            .iter()
            .take(16)
            .copied()
            .map(char::from)
            .flat_map(char::escape_default)
            .collect();
        anyhow::bail!(
            "no record in {} bytes {what}; it starts with \"{head}\" (--format pcap, cof or passivedns if this guess is wrong)",
            self.bytes
        )
    }
}

/// A reader that counts the bytes read through it.
struct Counted<'a, R> {
    r: R,
    n: &'a mut u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.r.read(buf)?;
        *self.n += k as u64;
        Ok(k)
    }
}

/// The first bytes of a stream, enough to tell its format: 4 bytes of
/// magic and one that is not white space (or the end, or 4 KiB). A read
/// may return fewer bytes than asked (a file opened through a chain does):
/// this reads until it has them.
fn read_head(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while head.len() < 4 || (head.len() < 4096 && head.iter().all(u8::is_ascii_whitespace)) {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head)
}

/// Batches observations into the store.
pub struct Ingester {
    store: Arc<Store>,
    policy: Policy,
    pending: Pending,
    window: usize,
    sensor: Option<String>,
    /// Counters.
    pub stats: IngestStats,
}

impl Ingester {
    /// A new ingester merging observations in memory and writing them when
    /// `window` distinct records are pending (and at [`Ingester::flush`]);
    /// every observation is tagged `sensor` when given.
    pub fn new(
        store: Arc<Store>,
        policy: Policy,
        window: usize,
        sensor: Option<String>,
    ) -> Ingester {
        Ingester {
            store,
            policy,
            pending: Pending::default(),
            window: window.max(1),
            sensor,
            stats: IngestStats::default(),
        }
    }

    /// Adds one observation.
    pub fn observe(&mut self, mut o: Record) -> Result<()> {
        if self.policy.excluded(&o.rrname) {
            self.stats.excluded += 1;
            return Ok(());
        }
        if let Some(s) = &self.sensor {
            if o.sensors.is_empty() {
                o.sensors.push(s.clone());
            }
        }
        self.stats.observations += 1;
        self.pending.add(&o);
        if self.pending.len() >= self.window {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending batch.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let st = self.store.apply(&mut self.pending)?;
        self.stats.created += st.created;
        self.stats.updated += st.updated;
        Ok(())
    }

    /// One passivedns line (bad lines are counted).
    pub fn passivedns_line(&mut self, line: &[u8]) -> Result<()> {
        let Ok(s) = std::str::from_utf8(line) else {
            self.stats.bad_lines += 1;
            return Ok(());
        };
        if s.trim().is_empty() {
            return Ok(());
        }
        match parse_line(s) {
            Ok(o) if !o.rdata.contains('\0') && !o.rrname.contains('\0') => self.observe(o),
            _ => {
                self.stats.bad_lines += 1;
                Ok(())
            }
        }
    }

    /// One COF line (bad lines are counted).
    pub fn cof_line(&mut self, line: &[u8]) -> Result<()> {
        let Ok(s) = std::str::from_utf8(line) else {
            self.stats.bad_lines += 1;
            return Ok(());
        };
        if s.trim().is_empty() {
            return Ok(());
        }
        match crate::cof::parse(s) {
            Ok(r) if !r.rdata.contains('\0') && !r.rrname.contains('\0') => self.observe(r),
            _ => {
                self.stats.bad_lines += 1;
                Ok(())
            }
        }
    }

    /// Lines of a reader, each handled by `per_line`; lines over
    /// [`MAX_LINE`] are counted bad and skipped.
    pub fn lines(&mut self, r: impl Read, cof: bool) -> Result<()> {
        d4_packet::inputs::for_each_line(r, MAX_LINE, |line| {
            self.stats.lines += 1;
            match line {
                None => {
                    self.stats.bad_lines += 1;
                    Ok(())
                }
                Some(l) if cof => self.cof_line(l),
                Some(l) => self.passivedns_line(l),
            }
        })
    }

    /// A capture: its DNS answers become observations.
    pub fn capture(&mut self, r: impl Read) -> Result<()> {
        let mut reader = CaptureReader::new(r)?;
        let nanos = reader.nanos();
        let mut x = Extractor::new(ExtractConfig {
            trailing_dot: false,
            ..ExtractConfig::default()
        });
        let mut p = Packet::with_capacity();
        let mut pending = Vec::new();
        let result = loop {
            match reader.next_into(&mut p) {
                Ok(true) => {
                    self.stats.packets += 1;
                    x.packet(&p, nanos, &mut |r| {
                        pending.push(Record::new(
                            r.rrname,
                            &type_name(r.rrtype),
                            r.rdata,
                            r.ts_sec,
                            1,
                        ))
                    });
                    for o in pending.drain(..) {
                        self.observe(o)?;
                    }
                }
                Ok(false) => break Ok(()),
                Err(e) => {
                    self.stats.damaged_captures += 1;
                    break Err(e);
                }
            }
        };
        self.stats.malformed_messages += x.stats.malformed;
        result.map_err(Into::into)
    }

    /// A file (gzip or plain) in `format`.
    pub fn file(&mut self, path: &Path, format: Format) -> Result<InputSummary> {
        let r = d4_packet::gz::open_maybe_gz(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        self.reader(r, format)
            .with_context(|| format!("{}", path.display()))
    }

    /// Any reader in `format` (auto: sniffed from the first bytes, whatever
    /// the name it came with); says what it held.
    pub fn reader(&mut self, mut r: impl Read, format: Format) -> Result<InputSummary> {
        let mut bytes = 0u64;
        let head = read_head(&mut Counted {
            r: &mut r,
            n: &mut bytes,
        })?;
        let format = match format {
            Format::Auto => sniff(&head),
            f => f,
        };
        let before = self.stats;
        let r = Counted {
            r: std::io::Cursor::new(head.as_slice()).chain(r),
            n: &mut bytes,
        };
        let r = BufReader::with_capacity(256 * 1024, r);
        let result = match format {
            Format::Pcap => self.capture(r),
            Format::Cof => self.lines(r, true),
            _ => self.lines(r, false),
        };
        result?;
        let s = self.stats;
        Ok(InputSummary {
            format,
            // The head was counted when it was read, and again through the chain.
            bytes: bytes - head.len() as u64,
            records: (s.observations + s.excluded) - (before.observations + before.excluded),
            units: (s.lines + s.packets) - (before.lines + before.packets),
            bad: (s.bad_lines + s.malformed_messages)
                - (before.bad_lines + before.malformed_messages),
            head,
        })
    }

    /// Consumes a queue: type 8 items are passivedns lines, type 1 items
    /// capture files (paths under the server's data directory). Returns
    /// when `stop` says so (after the batch in hand), or when the queue is
    /// empty with [`Idle::Once`]; what was read is written to the store
    /// (also every 0.5 s, and whenever the queue is empty).
    pub fn queue(
        &mut self,
        q: &Queue,
        idle: Idle,
        batch: usize,
        stop: impl Fn() -> bool,
    ) -> Result<()> {
        d4_api::queue::drain(q, idle, batch, stop, self)
    }
}

impl d4_api::queue::Sink for Ingester {
    fn item(&mut self, q: &Queue, item: &[u8]) -> Result<()> {
        if q.qtype == "1" {
            // A capture of the queue without DNS is not an error.
            if let Err(e) = q.file_item(item).and_then(|p| self.file(&p, Format::Pcap)) {
                tracing::warn!("{e:#}");
            }
        } else {
            for line in item.split(|&b| b == b'\n') {
                self.passivedns_line(line)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ingester::flush(self)
    }
}

/// The format of a stream from its first bytes.
pub fn sniff(head: &[u8]) -> Format {
    use d4_packet::{pcap::is_pcap_magic, records::pcapng::SHB_MAGIC};
    let magic = head.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
    match magic {
        Some(m) if is_pcap_magic(m) || m == SHB_MAGIC => Format::Pcap,
        _ if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => Format::Cof,
        _ => Format::Passivedns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cof_and_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let policy = Policy {
            expiry: Default::default(),
            excluded: vec!["local".into()],
        };
        let mut i = Ingester::new(store.clone(), policy, 2, Some("s1".into()));
        let input = "1||c||s||IN||a.example.||A||192.0.2.1||60||1\n\
                     2||c||s||IN||A.example||A||192.0.2.1||60||2\n\
                     garbage\n\
                     3||c||s||IN||x.local.||A||10.0.0.1||60||1\n\
                     4||c||s||IN||a.example.||AAAA||2001:db8::1||60||1\n";
        i.reader(input.as_bytes(), Format::Auto).unwrap();
        let cof = r#"{"rrname":"a.example.","rrtype":"a","rdata":"192.0.2.1","time_first":0,"time_last":9,"count":4,"sensor_id":"s2"}"#;
        i.reader(cof.as_bytes(), Format::Auto).unwrap();
        i.flush().unwrap();
        assert_eq!(i.stats.bad_lines, 1);
        assert_eq!(i.stats.excluded, 1);
        assert_eq!(i.stats.observations, 4);
        let mut r = store.by_name("a.example", false, 10).unwrap();
        r.sort_by(|a, b| a.rrtype.cmp(&b.rrtype));
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].rrtype.as_str(),
                r[0].time_first,
                r[0].time_last,
                r[0].count
            ),
            ("A", 0, 9, 7)
        );
        assert_eq!(r[0].sensors, ["s1", "s2"]);
        assert_eq!((r[1].rrtype.as_str(), r[1].count), ("AAAA", 1));
        assert_eq!(sniff(b"\xd4\xc3\xb2\xa1"), Format::Pcap);
        assert_eq!(sniff(b"  {\"a\""), Format::Cof);
    }

    /// Hands out one byte per read, as a file opened through a chain may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(out)) => {
                    *out = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn the_format_is_sniffed_from_short_reads_and_nothing_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let mut i = Ingester::new(store, Policy::default(), 10, None);
        // A pcap header alone, one byte per read: sniffed as a capture.
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&[0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        let s = i.reader(Trickle(&pcap), Format::Auto).unwrap();
        assert_eq!(s.format, Format::Pcap);
        assert_eq!((s.bytes, s.records, s.units), (24, 0, 0));
        let e = s.require_records().unwrap_err().to_string();
        assert!(e.contains("no record in 24 bytes read as a capture"), "{e}");
        // COF after white space, one byte per read.
        let cof = br#"
   {"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2}"#;
        let s = i.reader(Trickle(cof), Format::Auto).unwrap();
        assert_eq!((s.format, s.records), (Format::Cof, 1));
        s.require_records().unwrap();
        // Empty: nothing to complain about.
        let s = i.reader(&b""[..], Format::Auto).unwrap();
        assert_eq!(s.bytes, 0);
        s.require_records().unwrap();
        // Lines that are not records.
        let s = i.reader(&b"x\ny\n"[..], Format::Auto).unwrap();
        assert_eq!((s.units, s.bad), (2, 2));
        let e = s.require_records().unwrap_err().to_string();
        assert!(e.contains("read as passivedns lines: 2 lines, 2 not passivedns records; it starts with \"x\\ny\\n\""), "{e}");
    }
}
