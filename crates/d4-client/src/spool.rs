//! The sensor's on-disk spool: what the server has not confirmed, kept
//! across a restart of the sensor.
//!
//! The spool directory holds the payload bytes of the stream read since the
//! last confirmed session, in numbered segment files (`NNN.seg`, at most an
//! eighth of the bound each), a `head` file and a `type` file. Every payload
//! is appended before it is sent. When the segments exceed `spool_max_bytes`
//! the oldest are dropped (counted, with a warning); `head` then holds the
//! bytes that restart the stream on a record boundary where the spool now
//! starts ([`d4_packet::records::Resumption`]: the pcap global header or
//! pcapng preamble and the start of the cut record, the start of a cut line).
//! A session that ends with the server's close_notify clears the spool.
//! While the server is away the send loop reads its input on into the
//! spool and sends that backlog, read back from the tail, once it is back.
//!
//! On start, a spool that is not empty (the sensor was killed, stopped or
//! gave up) is sent first, `head` then the segments in order, in a session
//! of its own that must be confirmed; then it is cleared. What the server
//! had already stored arrives twice: duplicates are at most what the spool
//! holds. Data read but not yet flushed to the spool (under 512 KiB, the
//! batch in hand) is lost on SIGKILL; the segments are not fsynced, so a
//! power loss may lose their last writes. A lock (`lock`) keeps two sensors
//! off one spool.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use d4_packet::records::{Format, Resumption};

/// The smallest spool bound accepted.
pub const MIN_SPOOL_BYTES: u64 = 256 * 1024;

/// An open spool directory.
pub struct Spool {
    dir: PathBuf,
    /// Bound on the bytes of the segments.
    max: u64,
    /// A new segment starts past this size.
    seg_max: u64,
    /// Segments, oldest first: (sequence number, bytes).
    segments: VecDeque<(u64, u64)>,
    /// Bytes in `segments`.
    total: u64,
    /// The newest segment, open for appending.
    writer: Option<BufWriter<File>>,
    /// Next segment number.
    next_seq: u64,
    /// Record boundaries as of the start of the spool (fed `head`, then each
    /// dropped segment).
    start: Resumption,
    /// Bytes dropped (oldest first) to keep the bound, this run.
    dropped: u64,
    /// Held for the life of the spool: one sensor per spool.
    _lock: File,
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

fn format_of(ty: u8) -> Option<Format> {
    Format::for_d4_type(ty)
}

impl Spool {
    /// Opens (creating it if needed) the spool of a stream of D4 type `ty`.
    pub fn open(dir: &Path, max: u64, ty: u8) -> Result<Spool> {
        if max < MIN_SPOOL_BYTES {
            bail!("spool_max_bytes {max} is below the minimum {MIN_SPOOL_BYTES}");
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the spool directory {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "the spool {} is in use by another d4 client: give each sensor its own spool directory",
                dir.display()
            );
        }
        let mut segments = Vec::new();
        for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let e = e?;
            let name = e.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push((seq, e.metadata()?.len()));
        }
        segments.sort_unstable();
        let type_path = dir.join("type");
        if !segments.is_empty() {
            if let Ok(t) = std::fs::read_to_string(&type_path) {
                if t.trim() != ty.to_string() {
                    bail!(
                        "the spool {} holds a type {} stream and this sensor sends type {ty}: send it with a type-{} configuration, or remove the directory",
                        dir.display(),
                        t.trim(),
                        t.trim()
                    );
                }
            }
        }
        std::fs::write(&type_path, format!("{ty}\n"))
            .with_context(|| format!("cannot write {}", type_path.display()))?;
        let mut start = Resumption::new(format_of(ty));
        let head = match std::fs::read(dir.join("head")) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}/head", dir.display())),
        };
        let _ = start.sent(&head);
        let total = segments.iter().map(|s| s.1).sum();
        Ok(Spool {
            dir: dir.to_path_buf(),
            max,
            seg_max: (max / 8).max(64 * 1024),
            next_seq: segments.last().map_or(0, |s| s.0 + 1),
            segments: segments.into(),
            total,
            writer: None,
            start,
            dropped: 0,
            _lock: lock,
        })
    }

    /// Whether the spool holds no stream data.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Bytes of stream data held (segments; `head` not counted).
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Bytes dropped to keep the bound since the spool was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spooled stream: `head`, then the segments, oldest first.
    pub fn reader(&self) -> Result<SpoolReader> {
        Ok(SpoolReader {
            head: io::Cursor::new(self.start.prefix()),
            paths: self
                .segments
                .iter()
                .map(|&(s, _)| self.dir.join(seg_name(s)))
                .collect(),
            cur: None,
        })
    }

    /// The last `n` bytes of the spooled stream (all of it if it holds less).
    pub fn tail_reader(&mut self, n: u64) -> Result<SpoolReader> {
        self.flush()?;
        let mut skip = self.total.saturating_sub(n);
        let mut paths = VecDeque::new();
        let mut cur = None;
        for &(seq, len) in &self.segments {
            let p = self.dir.join(seg_name(seq));
            if skip >= len {
                skip -= len;
                continue;
            }
            if cur.is_none() {
                let mut f =
                    File::open(&p).with_context(|| format!("cannot read {}", p.display()))?;
                std::io::Seek::seek(&mut f, io::SeekFrom::Start(skip))?;
                skip = 0;
                cur = Some(f);
            } else {
                paths.push_back(p);
            }
        }
        Ok(SpoolReader {
            head: io::Cursor::new(Vec::new()),
            paths,
            cur,
        })
    }

    /// Record boundaries as of the start of the spool.
    pub fn start(&self) -> &Resumption {
        &self.start
    }

    /// Appends payload bytes; drops the oldest segments over the bound.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        let cur = self.segments.back().map(|s| s.1);
        let rotate = match (cur, &self.writer) {
            (Some(len), Some(_)) => len > 0 && len + data.len() as u64 > self.seg_max,
            _ => true,
        };
        if rotate {
            self.flush()?;
            let seq = self.next_seq;
            self.next_seq += 1;
            let p = self.dir.join(seg_name(seq));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            self.writer = Some(BufWriter::with_capacity(256 * 1024, f));
            self.segments.push_back((seq, 0));
        }
        if let (Some(w), Some(last)) = (self.writer.as_mut(), self.segments.back_mut()) {
            w.write_all(data)
                .with_context(|| format!("cannot write to the spool {}", self.dir.display()))?;
            last.1 += data.len() as u64;
            self.total += data.len() as u64;
        }
        while self.total > self.max && self.segments.len() > 1 {
            self.drop_oldest()?;
        }
        Ok(())
    }

    /// Hands what was appended to the system (survives the process).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()
                .with_context(|| format!("cannot write to the spool {}", self.dir.display()))?;
        }
        Ok(())
    }

    fn drop_oldest(&mut self) -> Result<()> {
        let Some((seq, len)) = self.segments.pop_front() else {
            return Ok(());
        };
        let p = self.dir.join(seg_name(seq));
        let mut f = File::open(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
            };
            let _ = self.start.sent(&buf[..n]);
        }
        let tmp = self.dir.join("head.tmp");
        std::fs::write(&tmp, self.start.prefix())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("head"))
            .with_context(|| format!("cannot write {}/head", self.dir.display()))?;
        std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        self.total -= len;
        if self.dropped == 0 {
            tracing::warn!(
                "spool {} full ({} bytes): dropping its oldest data, not confirmed by the server (a restart would no longer resend it)",
                self.dir.display(),
                self.max
            );
        }
        self.dropped += len;
        Ok(())
    }

    /// Everything was confirmed: empties the spool.
    pub fn clear(&mut self, ty: u8) -> Result<()> {
        self.writer = None;
        for (seq, _) in self.segments.drain(..) {
            let p = self.dir.join(seg_name(seq));
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
        match std::fs::remove_file(self.dir.join("head")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}/head", self.dir.display()))
            }
        }
        self.total = 0;
        self.start = Resumption::new(format_of(ty));
        Ok(())
    }
}

/// Reads a spool: `head`, then each segment in order.
pub struct SpoolReader {
    head: io::Cursor<Vec<u8>>,
    paths: VecDeque<PathBuf>,
    cur: Option<File>,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        loop {
            if let Some(f) = self.cur.as_mut() {
                let n = f.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.cur = None;
            }
            match self.paths.pop_front() {
                Some(p) => self.cur = Some(File::open(p)?),
                None => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_dropped_and_restarts_on_a_line() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        let stream: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for c in stream.chunks(1000) {
            s.append(c).unwrap();
        }
        s.flush().unwrap();
        assert!(s.bytes() <= MIN_SPOOL_BYTES, "{}", s.bytes());
        assert!(s.dropped() > 0);
        assert_eq!(s.dropped() + s.bytes(), stream.len() as u64);
        drop(s);
        // After a restart: a suffix of the stream, starting on a whole line.
        let s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        let mut back = Vec::new();
        s.reader().unwrap().read_to_end(&mut back).unwrap();
        assert!(stream.ends_with(&back));
        let at = stream.len() - back.len();
        assert!(at == 0 || stream[at - 1] == b'\n');
        assert!(back.len() as u64 >= MIN_SPOOL_BYTES - MIN_SPOOL_BYTES / 8);
        // One sensor per spool; another type is refused.
        assert!(Spool::open(d.path(), MIN_SPOOL_BYTES, 3).is_err());
        drop(s);
        let e = Spool::open(d.path(), MIN_SPOOL_BYTES, 1).err().unwrap();
        assert!(format!("{e:#}").contains("type 3"), "{e:#}");
        let mut s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        s.clear(3).unwrap();
        assert!(s.is_empty());
        drop(s);
        assert!(Spool::open(d.path(), MIN_SPOOL_BYTES, 3)
            .unwrap()
            .is_empty());
    }
}
