//! The `folder` source: each closed regular file of a folder is sent once,
//! whole, oldest first, across restarts of the sensor and of the server.
//!
//! # How a file is found closed
//!
//! The folder is polled (every 250 ms at most; portable, no inotify). A
//! file is *closed* once its size and modification time stayed the same
//! for the settle time (`folder_settle_ms`, 1 s by default), or at first
//! sight when its mtime is already that old. A writer that pauses longer
//! than that in the middle of a file must write it under a name that is
//! ignored and rename it when done: names starting with `.`, ending in
//! `~`, `.part` or `.tmp` are never sent (rsync, curl, editors and most
//! downloaders do this already).
//!
//! # What is sent
//!
//! Closed files go oldest mtime first (then by name), in sessions of
//! their own ([`run`]): for line types (2, 3, 6, 8, 254) up to 1,000 files
//! or 16 MiB a session, each file whole (never cut at snaplen: frames are
//! cut, the stream is not) and ending with `\n` (added if missing); for
//! the other types (a pcap a file, type 1) one file a session, since each
//! file is a stream with its own header. Exactly the size seen when the
//! file settled is read.
//!
//! # The journal, and what is guaranteed
//!
//! A file is written to the journal (`folder.sent` beside the
//! configuration: one line `SIZE MTIME_NS NAME` a file, appended and
//! fsync'd) only after the server confirmed the session that carried it
//! (TLS close_notify, sent once it has stored everything). The folder
//! itself is the spool: nothing is lost whatever stops (sensor killed,
//! server down or restarted, disk full on the server): a file not in the
//! journal is sent again. The identity is name + size + mtime: a file
//! rewritten later is a new file, and sent again.
//!
//! Each file goes once in the normal course, server restarts included: a
//! stopping d4 server gives an open session `shutdown_grace_ms` to end
//! its stream and be confirmed. What stays *at least once*: D4 has no
//! acknowledgement but the one at the end of a session, so a session cut
//! before it (the sensor killed, the server crashed or killed mid-session,
//! a session longer than the grace, a server without the grace, or the
//! sensor killed between the confirmation and the journal's fsync) leaves
//! the server with some of its files, which the retry sends again:
//! duplicates are at most the session in flight (1,000 files / 16 MiB)
//! per interruption. A torn last journal line
//! (power cut mid-write) is ignored: its files are sent again.
//!
//! With `folder_done` = `delete` or `move:DIR` a file leaves the folder
//! only after its journal line is on disk; the journal keeps no line for
//! files gone from the folder (it is rewritten, atomically, at start and
//! when it has grown to four times what is still there).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use d4_packet::records::Format;

use crate::config::{ClientConfig, FolderConfig, FolderDone};

/// Files a session of a line type at most.
const BATCH_FILES: usize = 1000;
/// Bytes a session of a line type at most (a larger file goes alone).
const BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// The longest pause between looks at the folder.
const POLL: Duration = Duration::from_millis(250);
/// Lines kept in the journal beyond four times the files still present
/// before it is rewritten.
const COMPACT_SLACK: usize = 1000;

/// What identifies a file that was sent: its name, size and mtime.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// The file name (in the folder).
    pub name: OsString,
    /// Its size when it settled.
    pub size: u64,
    /// Its modification time, nanoseconds since the epoch (negative before).
    pub mtime_ns: i128,
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    match m.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        },
        Err(_) => 0,
    }
}

/// Name bytes, escaped for a journal line: `%XX` for `%`, spaces,
/// controls and non-ASCII (reversible, one line whatever the name).
fn escape(name: &OsString) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        name.as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = name.to_string_lossy().into_owned().into_bytes();
    let mut s = String::with_capacity(bytes.len());
    for b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn unescape(s: &str) -> Option<OsString> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Some(OsString::from_vec(out))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(out).ok().map(OsString::from)
    }
}

impl FileId {
    fn line(&self) -> String {
        format!("{} {} {}\n", self.size, self.mtime_ns, escape(&self.name))
    }

    fn parse(line: &str) -> Option<FileId> {
        let mut it = line.splitn(3, ' ');
        let size = it.next()?.parse().ok()?;
        let mtime_ns = it.next()?.parse().ok()?;
        let name = unescape(it.next()?)?;
        Some(FileId {
            name,
            size,
            mtime_ns,
        })
    }
}

/// The files sent, on disk.
pub struct Journal {
    path: PathBuf,
    sent: HashSet<FileId>,
    /// Lines in the file (sent entries, including ones rewritten away later).
    lines: usize,
}

impl Journal {
    /// Reads the journal at `path` (none yet: empty). A last line without
    /// its newline (a write cut short) is ignored.
    pub fn open(path: &Path) -> Result<Journal> {
        let mut sent = HashSet::new();
        let mut lines = 0;
        match File::open(path) {
            Ok(f) => {
                let mut r = io::BufReader::new(f);
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = r
                        .read_line(&mut line)
                        .with_context(|| format!("cannot read the journal {}", path.display()))?;
                    if n == 0 || !line.ends_with('\n') {
                        break;
                    }
                    lines += 1;
                    match FileId::parse(line.trim_end_matches('\n')) {
                        Some(id) => {
                            sent.insert(id);
                        }
                        None => tracing::warn!(
                            "{}: line {lines} is not SIZE MTIME_NS NAME: ignored",
                            path.display()
                        ),
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the journal {}", path.display()))
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            sent,
            lines,
        })
    }

    /// Whether `id` was sent.
    pub fn contains(&self, id: &FileId) -> bool {
        self.sent.contains(id)
    }

    /// Files recorded.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Records `ids` as sent: appended and fsync'd before this returns.
    pub fn record(&mut self, ids: &[FileId]) -> Result<()> {
        let mut text = String::new();
        for id in ids {
            text.push_str(&id.line());
        }
        let what = || format!("cannot write the journal {}", self.path.display());
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(what)?;
        f.write_all(text.as_bytes()).with_context(what)?;
        f.sync_data().with_context(what)?;
        self.lines += ids.len();
        self.sent.extend(ids.iter().cloned());
        Ok(())
    }

    /// Keeps only the entries `keep` says are still of use, rewriting the
    /// file atomically (a temporary file, fsync'd, renamed over it) if it
    /// holds other lines.
    pub fn compact(&mut self, keep: impl Fn(&FileId) -> bool) -> Result<()> {
        self.sent.retain(|id| keep(id));
        if self.lines == self.sent.len() {
            return Ok(());
        }
        let tmp = self.path.with_extension("sent.tmp");
        let what = || format!("cannot rewrite the journal {}", self.path.display());
        {
            let mut f = io::BufWriter::new(File::create(&tmp).with_context(what)?);
            for id in &self.sent {
                f.write_all(id.line().as_bytes()).with_context(what)?;
            }
            let f = f
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(what)?;
            f.sync_all().with_context(what)?;
        }
        std::fs::rename(&tmp, &self.path).with_context(what)?;
        if let Some(dir) = self.path.parent() {
            // The rename itself on disk.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.lines = self.sent.len();
        Ok(())
    }
}

/// Whether a name is one a writer uses before the file is done.
pub fn ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
}

/// A file as last seen.
struct Seen {
    size: u64,
    mtime_ns: i128,
    /// When it was first seen with this size and mtime.
    since: Instant,
}

/// Watches the folder: which files are closed and not yet sent.
pub struct Watcher {
    cfg: FolderConfig,
    journal: Journal,
    seen: HashMap<OsString, Seen>,
}

impl Watcher {
    /// Opens the journal; drops its entries for files no longer there.
    pub fn new(cfg: FolderConfig) -> Result<Watcher> {
        let journal = Journal::open(&cfg.journal)?;
        let mut w = Watcher {
            cfg,
            journal,
            seen: HashMap::new(),
        };
        w.compact()?;
        Ok(w)
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn compact(&mut self) -> Result<()> {
        let dir = self.cfg.dir.clone();
        self.journal.compact(|id| {
            std::fs::metadata(dir.join(&id.name))
                .map(|m| m.len() == id.size && mtime_ns(&m) == id.mtime_ns)
                .unwrap_or(false)
        })
    }

    /// Looks at the folder once: the closed files not yet sent, oldest
    /// first. Files sent earlier that `folder_done` should have removed
    /// (a stop between the journal and the removal) are removed now.
    pub fn scan(&mut self) -> Result<Vec<FileId>> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let settle = self.cfg.settle;
        let rd = std::fs::read_dir(&self.cfg.dir)
            .with_context(|| format!("cannot list the folder {}", self.cfg.dir.display()))?;
        let mut present = HashSet::new();
        let mut ready = Vec::new();
        let mut finish = Vec::new();
        for e in rd {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            if ignored_name(&name.to_string_lossy()) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_file() => {}
                _ => continue,
            }
            let Ok(m) = e.metadata() else { continue };
            let (size, mt) = (m.len(), mtime_ns(&m));
            present.insert(name.clone());
            let id = FileId {
                name: name.clone(),
                size,
                mtime_ns: mt,
            };
            if self.journal.contains(&id) {
                if self.cfg.done != FolderDone::Keep {
                    finish.push(id);
                }
                continue;
            }
            let old_enough = m
                .modified()
                .ok()
                .and_then(|t| wall.duration_since(t).ok())
                .is_some_and(|age| age >= settle);
            let s = self.seen.entry(name).or_insert(Seen {
                size,
                mtime_ns: mt,
                since: now,
            });
            if s.size != size || s.mtime_ns != mt {
                *s = Seen {
                    size,
                    mtime_ns: mt,
                    since: now,
                };
            }
            if old_enough || now.duration_since(s.since) >= settle {
                ready.push(id);
            }
        }
        self.seen.retain(|n, _| present.contains(n));
        for id in finish {
            self.finish(&id);
        }
        ready.sort_by(|a, b| (a.mtime_ns, &a.name).cmp(&(b.mtime_ns, &b.name)));
        Ok(ready)
    }

    /// Records a confirmed batch, then applies `folder_done`.
    pub fn sent(&mut self, ids: &[FileId]) -> Result<()> {
        self.journal.record(ids)?;
        for id in ids {
            self.seen.remove(&id.name);
            self.finish(id);
        }
        if self.journal.lines > 4 * self.journal.len() + COMPACT_SLACK {
            self.compact()?;
        }
        Ok(())
    }

    /// `folder_done` for a file in the journal (errors are reported, not fatal).
    fn finish(&self, id: &FileId) {
        let path = self.cfg.dir.join(&id.name);
        let r = match &self.cfg.done {
            FolderDone::Keep => return,
            FolderDone::Delete => std::fs::remove_file(&path),
            FolderDone::Move(d) => {
                std::fs::create_dir_all(d).and_then(|()| std::fs::rename(&path, d.join(&id.name)))
            }
        };
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("{}: sent, but {e} (folder_done)", path.display());
            }
        }
    }
}

/// Whether the type's stream is lines: files are batched and end in `\n`.
fn line_type(ty: u8) -> bool {
    Format::for_d4_type(ty) == Some(Format::Lines)
}

/// The next session's files out of the closed ones (in order).
pub fn batch(ready: &[FileId], ty: u8) -> &[FileId] {
    if !line_type(ty) {
        return &ready[..ready.len().min(1)];
    }
    let mut bytes = 0;
    let mut n = 0;
    for id in ready.iter().take(BATCH_FILES) {
        if n > 0 && bytes + id.size > BATCH_BYTES {
            break;
        }
        bytes += id.size;
        n += 1;
    }
    &ready[..n]
}

/// The content of a batch as one stream: each file's first `size` bytes,
/// with a `\n` after a file of a line type that lacks one.
pub struct BatchReader {
    dir: PathBuf,
    files: std::collections::VecDeque<FileId>,
    cur: Option<(io::Take<File>, FileId)>,
    lines: bool,
    /// The last byte of the current file (for the `\n` rule).
    last: Option<u8>,
    /// A `\n` to add before the next file.
    pending_nl: bool,
}

impl BatchReader {
    /// A reader of `files` in `dir`.
    pub fn new(dir: &Path, files: &[FileId], ty: u8) -> BatchReader {
        BatchReader {
            dir: dir.to_path_buf(),
            files: files.iter().cloned().collect(),
            cur: None,
            lines: line_type(ty),
            last: None,
            pending_nl: false,
        }
    }
}

impl Read for BatchReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if out.is_empty() {
                return Ok(0);
            }
            if self.pending_nl {
                self.pending_nl = false;
                out[0] = b'\n';
                return Ok(1);
            }
            if let Some((r, id)) = self.cur.as_mut() {
                let n = r.read(out)?;
                if n > 0 {
                    self.last = Some(out[n - 1]);
                    return Ok(n);
                }
                if r.limit() > 0 {
                    tracing::warn!(
                        "{}: shorter than when it settled ({} bytes missing): sent as it is",
                        self.dir.join(&id.name).display(),
                        r.limit()
                    );
                }
                self.pending_nl = self.lines && self.last.is_some_and(|b| b != b'\n');
                self.cur = None;
                continue;
            }
            let Some(id) = self.files.pop_front() else {
                return Ok(0);
            };
            let path = self.dir.join(&id.name);
            match File::open(&path) {
                Ok(f) => {
                    self.last = None;
                    self.cur = Some((f.take(id.size), id));
                }
                // Gone (or unreadable) since it settled: nothing to send.
                Err(e) => tracing::warn!("{}: {e}: not sent", path.display()),
            }
        }
    }
}

/// What a folder run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderStats {
    /// Files sent (and confirmed).
    pub files: u64,
    /// Bytes of their content.
    pub bytes: u64,
    /// Sessions.
    pub sessions: u64,
}

/// Sends the folder's closed files, one confirmed session a batch, until
/// `quit` says so between batches (or, with `once`, when no file is left
/// closed or settling). `stop` is handed to the sender: it cuts a session
/// short (the batch is then sent again by the next run).
pub fn run(
    cfg: &ClientConfig,
    folder: &FolderConfig,
    once: bool,
    quit: &dyn Fn() -> bool,
    stop: &dyn Fn() -> bool,
) -> Result<FolderStats> {
    let mut w = Watcher::new(folder.clone())?;
    let mut session = cfg.clone();
    // The folder keeps what the server did not confirm: no spool needed.
    session.spool_dir = None;
    session.keepalive_secs = 0;
    session.end_frame = false;
    let mut stats = FolderStats::default();
    tracing::info!(
        "watching {} ({} files sent earlier, settle {} ms)",
        folder.dir.display(),
        w.journal().len(),
        folder.settle.as_millis()
    );
    let poll = POLL.min(folder.settle.max(Duration::from_millis(10)));
    loop {
        if quit() {
            return Ok(stats);
        }
        let ready = w.scan()?;
        let b = batch(&ready, cfg.ty);
        if b.is_empty() {
            if once && w.seen.is_empty() {
                return Ok(stats);
            }
            std::thread::sleep(poll);
            continue;
        }
        let input = BatchReader::new(&folder.dir, b, cfg.ty);
        let s = crate::run::run_until(&session, input, stop).with_context(|| {
            format!(
                "a session of {} files was not confirmed; they are sent again by the next run",
                b.len()
            )
        })?;
        w.sent(b)?;
        stats.files += b.len() as u64;
        stats.bytes += b.iter().map(|i| i.size).sum::<u64>();
        stats.sessions += 1;
        tracing::info!(
            "sent {} files ({} bytes); {} files in all",
            b.len(),
            s.bytes,
            stats.files
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, journal: &Path, done: FolderDone) -> FolderConfig {
        FolderConfig {
            dir: dir.to_path_buf(),
            journal: journal.to_path_buf(),
            settle: Duration::from_millis(200),
            done,
        }
    }

    #[test]
    fn names_escape_and_lines_parse_back() {
        for n in ["a.log", "with space", "50%", "é\nx"] {
            let id = FileId {
                name: OsString::from(n),
                size: 7,
                mtime_ns: -3,
            };
            let l = id.line();
            assert_eq!(l.matches('\n').count(), 1, "{l:?}");
            assert_eq!(FileId::parse(l.trim_end()), Some(id));
        }
        assert!(ignored_name(".x") && ignored_name("a~") && ignored_name("a.part"));
        assert!(!ignored_name("a.log"));
    }

    #[test]
    fn settle_order_journal_and_done() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("in");
        std::fs::create_dir(&dir).unwrap();
        let j = t.path().join("folder.sent");
        let mut w = Watcher::new(cfg(&dir, &j, FolderDone::Keep)).unwrap();
        std::fs::write(dir.join("b"), "two").unwrap();
        std::fs::write(dir.join(".hidden"), "no").unwrap();
        std::fs::write(dir.join("c.part"), "no").unwrap();
        // Fresh: not settled yet.
        assert!(w.scan().unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(250));
        let r = w.scan().unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "b");
        w.sent(&r).unwrap();
        assert!(w.scan().unwrap().is_empty());
        // A restart reads the journal: nothing again.
        let mut w = Watcher::new(cfg(&dir, &j, FolderDone::Delete)).unwrap();
        assert_eq!(w.journal().len(), 1);
        assert!(w.scan().unwrap().is_empty());
        // ... and finishes the delete that a stop interrupted.
        assert!(!dir.join("b").exists());
        // A torn last line is ignored.
        std::fs::write(&j, "3 1 x\n4 2 y").unwrap();
        assert_eq!(Journal::open(&j).unwrap().len(), 1);
    }

    #[test]
    fn batches_read_whole_files_with_a_newline() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), "x\ny").unwrap();
        std::fs::write(t.path().join("b"), "z\n").unwrap();
        let ids: Vec<FileId> = ["a", "b", "gone"]
            .iter()
            .map(|n| FileId {
                name: n.into(),
                size: std::fs::metadata(t.path().join(n)).map_or(5, |m| m.len()),
                mtime_ns: 0,
            })
            .collect();
        let mut out = Vec::new();
        BatchReader::new(t.path(), &ids, 3)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"x\ny\nz\n");
        let mut out = Vec::new();
        BatchReader::new(t.path(), &ids[..1], 1)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"x\ny");
        assert_eq!(batch(&ids, 3).len(), 3);
        assert_eq!(batch(&ids, 1).len(), 1);
    }
}
