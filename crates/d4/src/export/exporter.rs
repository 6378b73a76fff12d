//! The export loop: items read from the queue, shaped, sent, counted;
//! reconnection with backoff; `--rate`; the progress line and summary.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use d4_api::poll::{Idle, Poller, Take};
use d4_api::Api;

use super::sink::{self, Target};
use super::{format, Common};
/// How an item is shaped before it is sent.
pub(super) enum Shape {
    /// As it is, with a newline when asked.
    Plain { newline: bool },
    /// A Maltrail event datagram.
    Maltrail,
    /// An RFC 5424 message.
    Syslog(format::Syslog),
}

/// What was done, for the progress line and the summary.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) items: u64,
    pub(super) bytes: u64,
    pub(super) reconnects: u64,
    pub(super) skipped: u64,
}

/// One export's state.
pub(super) struct Exporter {
    pub(super) target: Target,
    pub(super) shape: Shape,
    pub(super) files: bool,
    /// `--once`: a refused datagram is an error at the end.
    pub(super) once: bool,
    /// The server's `<data-dir>/data`, under which `-f` items must be.
    pub(super) root: Option<PathBuf>,
    /// `--rate`.
    pub(super) pace: Option<Pace>,
    pub(super) max_retries: u32,
    pub(super) backoff: d4_client::transport::Backoff,
    /// The open destination (`None` until opened, and after a failure).
    pub(super) conn: Option<sink::Conn>,
    pub(super) count: Counters,
    pub(super) started: Instant,
    /// When the progress line was last drawn (`None`: stderr is no terminal).
    pub(super) progress: Option<Instant>,
}

/// Why a batch stopped before its end.
enum Stop {
    /// A signal: the items before are handled.
    Signal,
}

impl Exporter {
    pub(super) fn export(&mut self, api: &Api, c: &Common) -> Result<()> {
        // Opened first: a destination that is wrong is said at once.
        self.connect()?;
        let idle = if c.once { Idle::Once } else { Idle::Follow };
        let mut poller = Poller::new(api, &c.q.queue, Take::Read, c.batch, idle)
            .stop_when(crate::signals::interrupted);
        let mut h = BatchHandler { ex: self };
        poller.run(&mut h)
    }

    /// Opens the destination, retrying with backoff; `Ok(false)`: a signal came first.
    fn connect(&mut self) -> Result<bool> {
        let mut failures = 0u32;
        loop {
            match self.target.open() {
                Ok(c) => {
                    self.conn = Some(c);
                    return Ok(true);
                }
                Err(e) => {
                    failures += 1;
                    if self.max_retries > 0 && failures >= self.max_retries {
                        return Err(e.context(format!(
                            "cannot reach {} ({failures} attempts); the items stay in the queue",
                            self.target.describe()
                        )));
                    }
                    let d = self.backoff.delay();
                    tracing::warn!("{e:#}; retrying in {:.1} s", d.as_secs_f64());
                    if !sleep_unless_signal(d) {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Sends `items` from the first; returns how many were handled.
    fn batch(&mut self, items: &[Vec<u8>]) -> Result<usize> {
        let mut failures = 0u32;
        // Items before `done` are written (and, for a stream, flushed).
        let mut done = 0;
        loop {
            match self.send_from(items, &mut done) {
                Ok(None) => {
                    self.backoff.reset();
                    return Ok(done);
                }
                Ok(Some(Stop::Signal)) => return Ok(done),
                Err(e) => {
                    failures += 1;
                    self.count.reconnects += 1;
                    if let Some(c) = self.conn.take() {
                        c.close();
                    }
                    if self.max_retries > 0 && failures >= self.max_retries {
                        bail!(
                            "{}: {e} ({failures} attempts); the items not sent stay in the queue",
                            self.target.describe()
                        );
                    }
                    tracing::warn!("{}: {e}; reconnecting", self.target.describe());
                    let d = self.backoff.delay();
                    if !sleep_unless_signal(d) || !self.connect()? {
                        return Ok(done);
                    }
                }
            }
        }
    }

    /// Sends `items[*done..]`, advancing `done` past what is written.
    fn send_from(&mut self, items: &[Vec<u8>], done: &mut usize) -> io::Result<Option<Stop>> {
        // Taken out while in use; abandoned on an error (the caller reconnects).
        let Some(mut conn) = self.conn.take() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
        };
        let r = self.send_items(&mut conn, items, done);
        match r {
            Ok(_) => self.conn = Some(conn),
            Err(_) => conn.abandon(),
        }
        r
    }

    fn send_items(
        &mut self,
        conn: &mut sink::Conn,
        items: &[Vec<u8>],
        done: &mut usize,
    ) -> io::Result<Option<Stop>> {
        conn.check()?;
        let stream = !self.target.is_datagram();
        // Stream items since the last flush, and their bytes.
        let (mut unflushed, mut unflushed_bytes) = (0usize, 0u64);
        let mut stop = None;
        for item in &items[*done + unflushed..] {
            if crate::signals::interrupted() {
                stop = Some(Stop::Signal);
                break;
            }
            let wait = self.pace.as_mut().and_then(Pace::next);
            // A stream's buffer goes out before a pause, before a file, and
            // before it would fill up — each time after checking that the
            // listener is still there: nothing is written to a listener
            // that said it is closing (it would be lost with it).
            if stream
                && unflushed > 0
                && (wait.is_some() || self.files || conn.room() < item.len() + 1)
            {
                conn.check()?;
                conn.flush()?;
                *done += unflushed;
                self.count.items += unflushed as u64;
                self.count.bytes += unflushed_bytes;
                (unflushed, unflushed_bytes) = (0, 0);
            }
            if let Some(wait) = wait {
                std::thread::sleep(wait);
            }
            let n = if self.files {
                send_file(conn, item, self.root.as_deref())?
            } else {
                let Some(b) = shape(&self.shape, item) else {
                    self.count.skipped += 1;
                    tracing::warn!(
                        "skipped (not a Maltrail event line): {:?}",
                        String::from_utf8_lossy(&item[..item.len().min(120)])
                    );
                    if stream {
                        unflushed += 1;
                    } else {
                        *done += 1;
                    }
                    continue;
                };
                match conn.send(&b) {
                    Err(e) if !stream && e.raw_os_error() == Some(EMSGSIZE) => {
                        self.count.skipped += 1;
                        tracing::warn!(
                            "skipped an item of {} bytes: too big for one datagram",
                            b.len()
                        );
                        *done += 1;
                        continue;
                    }
                    r => r?,
                }
                b.len() as u64
            };
            if stream {
                unflushed += 1;
                unflushed_bytes += n;
            } else {
                *done += 1;
                self.count.items += 1;
                self.count.bytes += n;
            }
            self.draw_progress();
        }
        if stream && unflushed > 0 {
            conn.check()?;
        }
        conn.flush()?;
        *done += unflushed;
        self.count.items += unflushed as u64;
        self.count.bytes += unflushed_bytes;
        self.draw_progress();
        Ok(stop)
    }

    fn draw_progress(&mut self) {
        let Some(last) = self.progress else { return };
        if last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.progress = Some(Instant::now());
        eprint!("\r{}\x1b[K", self.line());
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "d4 export: {} items, {} bytes to {}, {} reconnects, {} skipped ({:.0} items/s)",
            self.count.items,
            self.count.bytes,
            self.target.describe(),
            self.count.reconnects,
            self.count.skipped,
            self.count.items as f64 / secs
        )
    }

    pub(super) fn summary(&self) {
        if self.progress.is_some() {
            eprint!("\r\x1b[K");
        }
        eprintln!("{}", self.line());
    }
}

/// `--rate N`: item k (from `since`) goes out k/N s after `since`. Falling
/// more than a second behind (a listener that was away) starts over: no
/// burst to catch up.
pub(super) struct Pace {
    pub(super) rate: f64,
    pub(super) since: Instant,
    pub(super) n: u64,
}

impl Pace {
    /// How long to wait before the next item (counted as sent).
    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let due = self.since + Duration::from_secs_f64(self.n as f64 / self.rate);
        if now > due + Duration::from_secs(1) {
            (self.since, self.n) = (now, 0);
        }
        let due = self.since + Duration::from_secs_f64(self.n as f64 / self.rate);
        self.n += 1;
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

/// `EMSGSIZE`: a datagram too big for the socket.
#[cfg(target_os = "linux")]
const EMSGSIZE: i32 = 90;
#[cfg(not(target_os = "linux"))]
const EMSGSIZE: i32 = 40;

/// The bytes sent for an item (`None`: an item Maltrail's server would drop).
fn shape(s: &Shape, item: &[u8]) -> Option<Vec<u8>> {
    match s {
        Shape::Plain { newline } => {
            let mut b = Vec::with_capacity(item.len() + 1);
            b.extend_from_slice(item);
            if *newline {
                b.push(b'\n');
            }
            Some(b)
        }
        Shape::Maltrail => format::maltrail(item),
        Shape::Syslog(s) => Some(s.message(item)),
    }
}

/// Copies the file an item names into the stream. A file that cannot be
/// opened is reported and counts as sent (it never will be readable); a
/// failure of the stream is returned.
fn send_file(
    conn: &mut sink::Conn,
    item: &[u8],
    root: Option<&std::path::Path>,
) -> io::Result<u64> {
    let Some(w) = conn.writer() else {
        return Ok(0);
    };
    let mut r = match d4_api::open_item_file(item, root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("d4 export: {e:#}");
            return Ok(0);
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // A corrupt file: what was read went out; the rest is lost with the file.
                eprintln!("d4 export: {}: {e}", String::from_utf8_lossy(item));
                return Ok(n);
            }
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Sleeps `d` in steps, `false` if a signal came meanwhile.
fn sleep_unless_signal(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if crate::signals::interrupted() {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    !crate::signals::interrupted()
}

/// The poller's view of the exporter.
struct BatchHandler<'a> {
    ex: &'a mut Exporter,
}

impl d4_api::poll::Handler for BatchHandler<'_> {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        self.ex.batch(&items)
    }

    /// An empty queue: a UDP destination that refused what was sent is an
    /// error with `--once` (noticed here, before exiting 0).
    fn idle(&mut self) -> Result<()> {
        if !(self.ex.once && self.ex.target.is_datagram()) {
            return Ok(());
        }
        if let Some(c) = self.ex.conn.as_mut() {
            // Time for a port-unreachable answer to come back.
            std::thread::sleep(Duration::from_millis(50));
            if let Err(e) = c.check() {
                bail!(
                    "{} refused the datagrams ({e}): is anything listening there?",
                    self.ex.target.describe()
                );
            }
        }
        Ok(())
    }
}
