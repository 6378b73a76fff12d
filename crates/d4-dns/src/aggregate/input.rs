//! Where the reducer outputs come from, each source in a thread of its own,
//! every message handed to one [`Feed`] (the shared state, stamped with
//! its arrival time):
//!
//! - JSON lines from files or stdin (`-r FILE|-`): [`read_lines`], lines
//!   longer than the bound skipped to their end without being held;
//! - Redis pub/sub (`--redis URL --channel NAME`; a name with `*` is a
//!   pattern, PSUBSCRIBE): [`redis_thread`], reconnecting with backoff when
//!   Redis goes away;
//! - queues of a D4 server of extended type `dns-stats` (`-u QUEUE`):
//!   [`queue_thread`], read then acknowledged by `d4_api::poll`.
//!
//! A source that cannot start (a file that does not open, a Redis that does
//! not answer, a queue that does not exist) is an error at start; later
//! failures are logged and retried.

use std::io::{self, BufRead};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use d4_api::poll::{Idle, Take};
use d4_api::queue::Queue;
use d4_api::shutdown::Shutdown;

use super::envelope::{self, Reject};
use super::spans::Aggregator;

/// The current time, Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Rejected messages logged at `warn` before the rest go to `debug`.
const LOGGED_REJECTS: u64 = 10;

/// The shared state as the sources see it: messages in, stamped with their
/// arrival time. Clones share the state.
#[derive(Clone)]
pub struct Feed {
    state: Arc<Mutex<Aggregator>>,
    /// The message bound (checked before parsing, outside the lock).
    max_bytes: usize,
    /// Rejected messages so far (to log the first ones loudly).
    rejects: Arc<AtomicU64>,
}

impl Feed {
    /// A feed into `state`.
    pub fn new(state: Aggregator) -> Feed {
        let max_bytes = state.limits().max_message_bytes;
        Feed {
            state: Arc::new(Mutex::new(state)),
            max_bytes,
            rejects: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The state, locked (a panic elsewhere does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, Aggregator> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one message from `from` (named in the log if refused).
    pub fn take(&self, msg: &[u8], from: &str) {
        let parsed = envelope::parse(msg, self.max_bytes);
        let now = now();
        let r = match parsed {
            Ok(e) => self.lock().apply(e, now),
            Err(r) => {
                self.lock().refused(&r);
                Err(r)
            }
        };
        if let Err(r) = r {
            self.rejected(&r, from);
        }
    }

    /// Counts a message refused before parsing (cut by a reader).
    pub fn refuse(&self, r: Reject, from: &str) {
        self.lock().refused(&r);
        self.rejected(&r, from);
    }

    fn rejected(&self, r: &Reject, from: &str) {
        let n = self.rejects.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= LOGGED_REJECTS {
            tracing::warn!("{from}: message skipped: {r}");
            if n == LOGGED_REJECTS {
                tracing::warn!(
                    "further skipped messages are counted (/api/v1/stats), logged at debug level"
                );
            }
        } else {
            tracing::debug!("{from}: message skipped: {r}");
        }
    }
}

/// One line of a reader, or the length of one past the bound.
pub enum Line<'a> {
    /// A line (without its newline), not blank.
    Line(&'a [u8]),
    /// A line longer than the bound, skipped; its length.
    TooLong(usize),
}

/// Reads `r` line by line, lines of at most `max` bytes: a longer one is
/// skipped to its end without being held. Blank lines are passed over.
/// Stops at the end or when `stop` says so (checked between reads).
pub fn read_lines(
    mut r: impl BufRead,
    max: usize,
    stop: &dyn Fn() -> bool,
    mut f: impl FnMut(Line<'_>),
) -> io::Result<()> {
    let mut line = Vec::new();
    // The length of a line being skipped, or None.
    let mut skipping: Option<usize> = None;
    loop {
        if stop() {
            return Ok(());
        }
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            // The end: a last line without its newline.
            match skipping {
                Some(n) => f(Line::TooLong(n)),
                None if !line.trim_ascii().is_empty() => f(Line::Line(&line)),
                None => {}
            }
            return Ok(());
        }
        let (chunk, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        match &mut skipping {
            Some(n) => *n += chunk.len(),
            None if line.len() + chunk.len() > max => {
                skipping = Some(line.len() + chunk.len());
                line.clear();
                line.shrink_to(64 * 1024);
            }
            None => line.extend_from_slice(chunk),
        }
        let used = end.unwrap_or(buf.len());
        r.consume(used);
        if end.is_some() {
            match skipping.take() {
                Some(n) => f(Line::TooLong(n)),
                None if !line.trim_ascii().is_empty() => f(Line::Line(&line)),
                None => {}
            }
            line.clear();
        }
    }
}

/// An opened `-r` input.
pub struct LinesInput {
    /// Its name in messages (`-` is stdin).
    name: String,
    reader: Box<dyn BufRead + Send>,
}

impl LinesInput {
    /// Opens `path` (`-`: stdin).
    pub fn open(path: &std::path::Path) -> Result<LinesInput> {
        let name = path.display().to_string();
        let reader: Box<dyn BufRead + Send> = if name == "-" {
            Box::new(io::BufReader::with_capacity(256 * 1024, io::stdin()))
        } else {
            let f = std::fs::File::open(path).with_context(|| {
                format!("cannot open {name} (-r: a file of JSON lines, or - for stdin)")
            })?;
            Box::new(io::BufReader::with_capacity(256 * 1024, f))
        };
        Ok(LinesInput { name, reader })
    }

    /// Reads every line into `feed`, until the end or `stop`.
    pub fn feed(self, feed: &Feed, stop: &dyn Fn() -> bool) -> io::Result<u64> {
        let mut n = 0u64;
        let name = self.name;
        read_lines(self.reader, feed.max_bytes, stop, |l| {
            n += 1;
            match l {
                Line::Line(b) => feed.take(b, &name),
                Line::TooLong(len) => feed.refuse(Reject::TooLarge(len), &name),
            }
        })
        .map(|()| n)
    }
}

/// A thread reading `inputs` in turn into `feed` (the end of the inputs
/// does not stop the aggregator: the page goes on showing them).
pub fn lines_thread(
    inputs: Vec<LinesInput>,
    feed: Feed,
    shutdown: Shutdown,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stop = || shutdown.is_triggered();
        for i in inputs {
            let name = i.name.clone();
            match i.feed(&feed, &stop) {
                Ok(n) => tracing::info!("{name}: {n} messages read"),
                Err(e) => tracing::error!("{name}: read failed: {e}"),
            }
        }
    })
}

/// The Redis pub/sub source.
#[derive(Clone, Debug)]
pub struct RedisSource {
    /// `redis://HOST:PORT[/DB]` (or `rediss://`).
    pub url: String,
    /// Channels; a name with `*` is a pattern.
    pub channels: Vec<String>,
}

/// Pause between reconnections: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(10));
/// How often a blocked read looks at the stop request.
const POLL: Duration = Duration::from_millis(250);

impl RedisSource {
    /// One connection: subscribe, say so through `up`, then hand every
    /// message to `feed` until `stop` (Ok) or the connection fails (Err).
    fn session(
        &self,
        client: &redis::Client,
        feed: &Feed,
        stop: &dyn Fn() -> bool,
        up: &mut dyn FnMut(),
    ) -> redis::RedisResult<()> {
        let mut con = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let mut ps = con.as_pubsub();
        for c in &self.channels {
            if c.contains('*') {
                ps.psubscribe(c)?;
            } else {
                ps.subscribe(c)?;
            }
        }
        ps.set_read_timeout(Some(POLL))?;
        up();
        let from = format!("redis {}", self.url_shown());
        while !stop() {
            match ps.get_message() {
                Ok(m) => feed.take(m.get_payload_bytes(), &from),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The URL without a password.
    fn url_shown(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                format!("{}://***@{}", &self.url[..s], &self.url[at + 1..])
            }
            _ => self.url.clone(),
        }
    }
}

/// Starts the thread that follows `src` into `feed`: returns once it is
/// subscribed, or the error of the first attempt (Redis unreachable at
/// start). Afterwards a lost connection is retried with a growing pause.
pub fn redis_thread(
    src: RedisSource,
    feed: Feed,
    shutdown: Shutdown,
) -> Result<std::thread::JoinHandle<()>> {
    let shown = src.url_shown();
    let client = redis::Client::open(src.url.as_str())
        .with_context(|| format!("--redis {shown}: not a Redis URL (redis://HOST:PORT)"))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let t = std::thread::spawn(move || {
        let stop = || shutdown.is_triggered();
        let mut tx = Some(tx);
        let mut pause = BACKOFF.0;
        while !stop() {
            let mut up = || {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Ok(()));
                }
                pause = BACKOFF.0;
                tracing::info!(
                    "redis {}: subscribed to {}",
                    src.url_shown(),
                    src.channels.join(", ")
                );
            };
            let r = src.session(&client, &feed, &stop, &mut up);
            let Err(e) = r else { return };
            if let Some(tx) = tx.take() {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
            tracing::warn!(
                "redis {}: {e}; reconnecting in {} ms",
                src.url_shown(),
                pause.as_millis()
            );
            let end = std::time::Instant::now() + pause;
            while std::time::Instant::now() < end && !stop() {
                std::thread::sleep(Duration::from_millis(50));
            }
            pause = (pause * 2).min(BACKOFF.1);
        }
    });
    match rx.recv() {
        Ok(Ok(())) => Ok(t),
        Ok(Err(e)) => anyhow::bail!("cannot reach Redis at {shown}: {e} (is redis-server running? --redis redis://HOST:PORT)"),
        // The thread ended before subscribing: stopped meanwhile.
        Err(_) => Ok(t),
    }
}

/// The pause after a failed request to the server.
const QUEUE_RETRY: Duration = Duration::from_secs(2);

/// The extended type of the queues this reads.
pub const QUEUE_TYPE: &str = "dns-stats";

/// Connects to the `-u` queues (each must be of type `dns-stats`).
pub fn connect_queues(conn: &d4_api::Conn, uuids: &[String]) -> Result<Vec<Queue>> {
    Queue::connect_typed(
        conn,
        uuids,
        &[QUEUE_TYPE],
        "d4 dns aggregate reads queues of extended type dns-stats (reducer outputs sent by a type-254 sensor with the meta-header {\"type\": \"dns-stats\"})",
    )
}

/// A thread following `queues` into `feed` until `shutdown`: items read,
/// taken, then acknowledged.
pub fn queue_thread(
    queues: Vec<Queue>,
    feed: Feed,
    shutdown: Shutdown,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stop = || shutdown.is_triggered();
        let r = d4_api::queue::follow(&queues, false, Duration::from_millis(200), stop, |q| {
            let from = format!("queue {}", q.uuid);
            let r = q
                .poller_take(Take::Read, 1000, Idle::Once)
                .retry(None)
                .stop_when(stop)
                .run(&mut |items: Vec<Vec<u8>>| -> Result<usize> {
                    for it in &items {
                        feed.take(it, &from);
                    }
                    Ok(items.len())
                });
            if r.is_err() {
                // The server is away: try again in a while (the error is
                // logged by `follow`), the other queues meanwhile.
                let end = std::time::Instant::now() + QUEUE_RETRY;
                while std::time::Instant::now() < end && !stop() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            r
        });
        if let Err(e) = r {
            tracing::error!("queues: {e:#}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize, cap: usize) -> Vec<Result<String, usize>> {
        let mut out = Vec::new();
        let r = io::BufReader::with_capacity(cap, input);
        read_lines(r, max, &|| false, |l| {
            out.push(match l {
                Line::Line(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                Line::TooLong(n) => Err(n),
            })
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_past_the_bound_are_skipped_whole_whatever_the_buffer() {
        let input = format!("ab\n\n  \n{}\ncd\n{}", "x".repeat(100), "y".repeat(50));
        for cap in [1, 3, 7, 64, 4096] {
            assert_eq!(
                lines(input.as_bytes(), 10, cap),
                [Ok("ab".to_string()), Err(100), Ok("cd".into()), Err(50)],
                "buffer {cap}"
            );
        }
        assert_eq!(lines(b"a\nb", 10, 2), [Ok("a".to_string()), Ok("b".into())]);
    }

    #[test]
    fn a_feed_counts_what_it_refuses() {
        let feed = Feed::new(Aggregator::new(super::super::spans::Limits {
            max_message_bytes: 100,
            ..Default::default()
        }));
        let input = format!(
            "{}\nnot json\n{{\"type\":\"Nope\",\"serverId\":\"a\",\"data\":1}}\n{}\n",
            r#"{"type":"QueriesPerSecond","serverId":"ns1","data":{"qps":3}}"#,
            "z".repeat(1000)
        );
        let i = LinesInput {
            name: "test".into(),
            reader: Box::new(io::Cursor::new(input.into_bytes())),
        };
        assert_eq!(i.feed(&feed, &|| false).unwrap(), 4);
        let c = feed.lock().counters().clone();
        assert_eq!(
            (c.messages, c.malformed, c.unknown_types, c.too_large),
            (1, 1, 1, 1)
        );
    }
}
