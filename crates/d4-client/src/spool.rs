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
//! `head` is tagged with the number of the segment it applies to and
//! replaced (atomically) before that drop removes the older segment; a
//! clear first writes a `head` tagged past every segment. So after a crash
//! at any point `open` makes them agree: segments below the tag are removed
//! (the interrupted drop or clear finished), and a `head` whose tag is not
//! the first segment left (or with no tag) is discarded.
//! A session that ends with the server's close_notify clears the spool.
//! While the server is away the send loop reads its input on into the
//! spool and sends that backlog, read back from the tail, once it is back.
//!
//! On start, a spool that is not empty (the sensor was killed, stopped or
//! gave up) is sent first, `head` then the segments in order, in a session
//! of its own that must be confirmed; then it is cleared. A spool whose
//! records the server's tracker cannot follow (damaged: the server would
//! refuse it for ever) is moved to `rejected-<unix time>/` inside the
//! directory, with a warning, and not sent. What the server
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
    /// The record structure of the stream (its D4 type's).
    format: Option<Format>,
    /// Bytes of the newest segment known to be written (as of the last
    /// successful flush): a failed write is cut back to this.
    synced: u64,
    /// Tests: appends fail (as on a full disk) once this many bytes are held.
    #[cfg(test)]
    pub(crate) fail_over: Option<u64>,
    /// Held for the life of the spool: one sensor per spool.
    _lock: File,
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// What `head` starts with: its tag, the number of the segment it applies to.
const HEAD_TAG: &[u8] = b"d4-spool-head ";

/// `head`'s content: the tag line, then the bytes that restart the stream.
fn head_bytes(tag: u64, prefix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + 40);
    v.extend_from_slice(HEAD_TAG);
    v.extend_from_slice(format!("{tag}\n").as_bytes());
    v.extend_from_slice(prefix);
    v
}

/// The tag and the bytes of a `head` file; `None` if it has no tag.
fn parse_head(h: &[u8]) -> Option<(u64, &[u8])> {
    let rest = h.strip_prefix(HEAD_TAG)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let tag = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    Some((tag, &rest[nl + 1..]))
}

/// Makes `head` and the segments agree after a crash; returns the bytes of
/// `head` that apply (empty if none). Segments below `head`'s tag are what
/// an interrupted drop or clear had given up: removed. A `head` whose tag
/// is not the first segment left (a clear, or a drop of all there was) or
/// that has no tag is stale: removed.
fn recover_head(dir: &Path, segments: &mut Vec<(u64, u64)>) -> Result<Vec<u8>> {
    let _ = std::fs::remove_file(dir.join("head.tmp"));
    let path = dir.join("head");
    let head = match std::fs::read(&path) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let Some((tag, prefix)) = parse_head(&head) else {
        tracing::warn!(
            "spool {}: its head has no segment tag (an older or damaged spool): discarded",
            dir.display()
        );
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        return Ok(Vec::new());
    };
    let below = segments.iter().take_while(|s| s.0 < tag).count();
    for (seq, _) in segments.drain(..below) {
        // An interrupted drop or clear: finish it.
        let p = dir.join(seg_name(seq));
        std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
    }
    if segments.first().map(|s| s.0) == Some(tag) {
        return Ok(prefix.to_vec());
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(Vec::new())
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
        let head = recover_head(dir, &mut segments)?;
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
            format: format_of(ty),
            synced: 0,
            #[cfg(test)]
            fail_over: None,
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
    /// On an error (a full disk) neither `data` nor what was appended since
    /// the last successful [`flush`](Spool::flush) is held: the spool keeps
    /// the stream as of that flush (a prefix of it, whole).
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        let r = self.try_append(data);
        if r.is_err() {
            self.undo();
        }
        r
    }

    /// Drops what was appended since the last successful flush (a write or
    /// a flush failed): the newest segment is cut back to what is on disk.
    fn undo(&mut self) {
        let Some(w) = self.writer.take() else {
            return;
        };
        // Not flushed again: its buffer is what failed.
        let (f, _) = w.into_parts();
        if let Some(last) = self.segments.back_mut() {
            let _ = f.set_len(self.synced);
            self.total -= last.1.saturating_sub(self.synced);
            last.1 = self.synced.min(last.1);
        }
    }

    fn try_append(&mut self, data: &[u8]) -> Result<()> {
        #[cfg(test)]
        if self
            .fail_over
            .is_some_and(|m| self.total + data.len() as u64 > m)
        {
            return Err(io::Error::from_raw_os_error(28))
                .with_context(|| format!("cannot write to the spool {}", self.dir.display()));
        }
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
            self.synced = 0;
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
    /// On an error what was appended since the last successful flush is
    /// no longer held.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.flush() {
                self.undo();
                return Err(e)
                    .with_context(|| format!("cannot write to the spool {}", self.dir.display()));
            }
            self.synced = self.segments.back().map_or(0, |s| s.1);
        }
        Ok(())
    }

    fn drop_oldest(&mut self) -> Result<()> {
        let Some(&(seq, len)) = self.segments.front() else {
            return Ok(());
        };
        // Changed only once the drop is done.
        let mut start = self.start.clone();
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
            let _ = start.sent(&buf[..n]);
        }
        // `head` first, tagged with the segment it now applies to: a crash
        // before the removal below leaves a segment that `open` removes.
        let tag = self.segments.get(1).map_or(self.next_seq, |s| s.0);
        self.write_head(tag, &start.prefix())?;
        self.segments.pop_front();
        self.start = start;
        self.total -= len;
        std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
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

    /// Writes `head` atomically: tagged `tag`, then `prefix`.
    fn write_head(&self, tag: u64, prefix: &[u8]) -> Result<()> {
        let tmp = self.dir.join("head.tmp");
        std::fs::write(&tmp, head_bytes(tag, prefix))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("head"))
            .with_context(|| format!("cannot write {}/head", self.dir.display()))
    }

    /// Whether the server can follow the spooled stream's records (its
    /// tracker is the server's): the reason it cannot, if so.
    pub fn verify(&self) -> Result<Option<String>> {
        let mut t = Resumption::new(self.format);
        let mut r = self.reader()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot read the spool {}", self.dir.display()))
                }
            };
            if let Err(e) = t.sent(&buf[..n]) {
                return Ok(Some(e.to_string()));
            }
        }
    }

    /// Moves what the spool holds to `<dir>/rejected-<unix time>/` (for a
    /// look, never sent) and empties it; returns that directory.
    pub fn set_aside(&mut self, ty: u8, why: &str) -> Result<PathBuf> {
        self.flush()?;
        self.writer = None;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut to = self.dir.join(format!("rejected-{secs}"));
        let mut i = 1;
        while to.exists() {
            to = self.dir.join(format!("rejected-{secs}-{i}"));
            i += 1;
        }
        std::fs::create_dir(&to).with_context(|| format!("cannot create {}", to.display()))?;
        let mut names: Vec<String> = self.segments.iter().map(|&(s, _)| seg_name(s)).collect();
        names.extend(["head".to_string(), "type".to_string()]);
        for n in &names {
            match std::fs::rename(self.dir.join(n), to.join(n)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot move {n} to {}", to.display()))
                }
            }
        }
        tracing::warn!(
            "spool {}: its {} bytes cannot be sent ({why}): set aside in {}, not sent",
            self.dir.display(),
            self.total,
            to.display()
        );
        self.segments.clear();
        self.total = 0;
        self.start = Resumption::new(format_of(ty));
        let type_path = self.dir.join("type");
        std::fs::write(&type_path, format!("{ty}\n"))
            .with_context(|| format!("cannot write {}", type_path.display()))?;
        Ok(to)
    }

    /// Everything was confirmed: empties the spool.
    pub fn clear(&mut self, ty: u8) -> Result<()> {
        self.writer = None;
        // First a `head` tagged past every segment: after a crash below,
        // `open` removes the segments left and this `head`.
        if let Err(e) = self.write_head(self.next_seq, &[]) {
            // (A full disk.) Without it a crash could leave a tail of
            // segments: the next run would send it again, or set it aside.
            tracing::debug!("{e:#}");
            let _ = std::fs::remove_file(self.dir.join("head"));
        }
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

    /// Writes a spool's files as a sensor (or a crash) left them.
    fn files(dir: &Path, ty: u8, segs: &[(u64, &[u8])], head: Option<&[u8]>) {
        std::fs::write(dir.join("type"), format!("{ty}\n")).unwrap();
        for (seq, b) in segs {
            std::fs::write(dir.join(seg_name(*seq)), b).unwrap();
        }
        if let Some(h) = head {
            std::fs::write(dir.join("head"), h).unwrap();
        }
    }

    fn replayed(s: &Spool) -> Vec<u8> {
        let mut back = Vec::new();
        s.reader().unwrap().read_to_end(&mut back).unwrap();
        back
    }

    fn seg_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_crash_inside_a_drop_is_finished_on_open() {
        // drop_oldest of segment 0: the new head (tagged 1) is in place,
        // segment 0 not yet removed.
        let d = tempfile::tempdir().unwrap();
        files(
            d.path(),
            3,
            &[(0, b"aaa\nbb"), (1, b"b\nccc\n"), (2, b"ddd\n")],
            Some(&head_bytes(1, b"bb")),
        );
        let s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        assert_eq!(replayed(&s), b"bbb\nccc\nddd\n");
        assert_eq!(s.bytes(), 10);
        assert_eq!(seg_files(d.path()), [seg_name(1), seg_name(2)]);
        assert_eq!(s.verify().unwrap(), None);
        // Then the drop done: the same.
        drop(s);
        let s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        assert_eq!(replayed(&s), b"bbb\nccc\nddd\n");
    }

    #[test]
    fn a_crash_inside_a_clear_leaves_an_empty_spool() {
        // clear: the head tagged past every segment is written, segment 0
        // removed, segments 1 and 2 not yet.
        let d = tempfile::tempdir().unwrap();
        files(
            d.path(),
            3,
            &[(1, b"b\nccc\n"), (2, b"ddd\n")],
            Some(&head_bytes(3, b"")),
        );
        let s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        assert!(s.is_empty());
        assert_eq!(replayed(&s), b"");
        assert!(seg_files(d.path()).is_empty());
        assert!(!d.path().join("head").exists());
    }

    #[test]
    fn a_stale_head_with_no_segment_is_discarded() {
        // A clear that removed every segment but not the head of an earlier
        // drop (tagged 5), or a head with no tag (older spool).
        for head in [
            head_bytes(5, b"\xd4\xc3\xb2\xa1cut"),
            b"cut record".to_vec(),
        ] {
            let d = tempfile::tempdir().unwrap();
            files(d.path(), 3, &[], Some(&head));
            let mut s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
            assert!(s.is_empty());
            s.append(b"new line\n").unwrap();
            s.flush().unwrap();
            assert_eq!(replayed(&s), b"new line\n", "{head:?}");
            assert!(!d.path().join("head").exists());
        }
        // A head whose segment is gone, newer ones left: not applied.
        let d = tempfile::tempdir().unwrap();
        files(d.path(), 3, &[(7, b"x\n")], Some(&head_bytes(6, b"half")));
        let s = Spool::open(d.path(), MIN_SPOOL_BYTES, 3).unwrap();
        assert_eq!(replayed(&s), b"x\n");
    }

    #[test]
    fn a_spool_the_server_would_refuse_is_set_aside() {
        let d = tempfile::tempdir().unwrap();
        // A pcap stream cut mid-record with its head lost: not pcap.
        files(d.path(), 1, &[(4, &[9u8; 100][..])], None);
        let mut s = Spool::open(d.path(), MIN_SPOOL_BYTES, 1).unwrap();
        let why = s.verify().unwrap().expect("not a pcap stream");
        let to = s.set_aside(1, &why).unwrap();
        assert!(s.is_empty());
        assert!(to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("rejected-"));
        assert_eq!(std::fs::read(to.join(seg_name(4))).unwrap(), [9u8; 100]);
        assert!(seg_files(d.path()).is_empty());
        drop(s);
        // The next run starts afresh, the rejected directory left alone.
        let mut s = Spool::open(d.path(), MIN_SPOOL_BYTES, 1).unwrap();
        assert!(s.is_empty());
        let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        hdr.resize(24, 0);
        s.append(&hdr).unwrap();
        assert_eq!(s.verify().unwrap(), None);
        assert!(to.join(seg_name(4)).is_file());
    }
}
