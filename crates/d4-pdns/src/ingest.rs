//! Sources → store: passivedns lines (files, stdin, type-8 queues), COF
//! NDJSON imports, captures (files, type-1 queues; extracted with
//! [`crate::extract`]). Observations are filtered (excluded suffixes),
//! batched and upserted one transaction per batch.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use d4_api::poll::{Handler, Idle};
use d4_packet::capture::{CaptureReader, Packet};

use crate::extract::{ExtractConfig, Extractor};
use crate::queue::Queue;
use crate::record::{parse_line, type_name, Record};
use crate::store::{Pending, Policy, Store};

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
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let mut line = Vec::with_capacity(512);
        loop {
            line.clear();
            let n = (&mut r)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            if line.len() > MAX_LINE {
                self.stats.bad_lines += 1;
                // Skip the rest of the long line.
                let mut sink = Vec::new();
                r.read_until(b'\n', &mut sink)?;
                continue;
            }
            if cof {
                self.cof_line(&line)?;
            } else {
                self.passivedns_line(&line)?;
            }
        }
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
    pub fn file(&mut self, path: &Path, format: Format) -> Result<()> {
        let r = d4_packet::gz::open_maybe_gz(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        self.reader(r, format)
            .with_context(|| format!("{}", path.display()))
    }

    /// Any reader in `format` (auto: sniffed from the first bytes).
    pub fn reader(&mut self, r: impl Read, format: Format) -> Result<()> {
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let format = match format {
            Format::Auto => sniff(r.fill_buf()?),
            f => f,
        };
        match format {
            Format::Pcap => self.capture(r),
            Format::Cof => self.lines(r, true),
            _ => self.lines(r, false),
        }
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
        let retry = (idle == Idle::Follow).then_some(Duration::from_secs(1));
        q.poller(batch, idle)
            .pause(Duration::from_millis(20), Duration::from_millis(500))
            .retry(retry)
            .stop_when(stop)
            .run(&mut QueueItems {
                ing: self,
                q,
                last_flush: Instant::now(),
            })?;
        self.flush()
    }
}

/// The items of one queue, handed to an [`Ingester`].
struct QueueItems<'a> {
    ing: &'a mut Ingester,
    q: &'a Queue,
    /// When the pending records were last written.
    last_flush: Instant,
}

impl Handler for QueueItems<'_> {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        for item in &items {
            if self.q.qtype == "1" {
                match self
                    .q
                    .file_item(item)
                    .and_then(|p| self.ing.file(&p, Format::Pcap))
                {
                    Ok(()) => {}
                    Err(e) => tracing::warn!("{e:#}"),
                }
            } else {
                for line in item.split(|&b| b == b'\n') {
                    self.ing.passivedns_line(line)?;
                }
            }
        }
        if self.last_flush.elapsed() > Duration::from_millis(500) {
            self.idle()?;
        }
        Ok(items.len())
    }

    fn idle(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        self.ing.flush()
    }
}

/// The format of a stream from its first bytes.
pub fn sniff(head: &[u8]) -> Format {
    let magic = head.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
    match magic {
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x0a, 0x0d, 0x0d, 0x0a],
        ) => Format::Pcap,
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
}
