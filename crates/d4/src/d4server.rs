//! `d4 client` with `source` = `d4server`: the items of a Redis list of
//! another D4 server (`redis_d4` = `host:port/db`, `redis_queue` = the
//! list, e.g. `analyzer:3:QUEUE`), sent oldest first, each item whole and
//! followed by `\n` (frames are cut at snaplen, items never are).
//!
//! D4 servers push new items at the head of the list (`LPUSH`, ours and
//! the reference) and analyzers take the oldest at the tail (`RPOP`).
//! Unlike the Go client, which pops an item and loses it if the
//! destination is down, items are taken the way reliable consumers of our
//! server take them (its `READ_SCRIPT` / `ACK_SCRIPT`, Redis 6.2+): up to
//! 1,000 at a time are moved to a list of their own,
//! `d4:processing:source:<list>`, sent in one D4 session, and dropped from
//! it only once the destination confirmed that session (TLS close_notify
//! after storing everything). A session that fails, or a sensor stopped
//! or killed, leaves them there: the next run sends them first. No spool
//! is needed; at worst a batch is sent twice (a session cut after the
//! destination stored part of it).
//!
//! An empty list is looked at again after `redis_wait_ms` (200 ms, the Go
//! client's `-rl`). Redis errors while running are retried every second;
//! a Redis that cannot be reached at start is an error.

use std::io::Cursor;
use std::time::Duration;

use anyhow::{Context, Result};
use d4_client::{ClientConfig, RedisAddr};

/// Items a session at most.
const BATCH: usize = 1000;
/// How long a Redis command may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// What a run did.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) items: u64,
    pub(crate) bytes: u64,
}

/// The list being read.
struct List {
    client: redis::Client,
    con: Option<redis::Connection>,
    list: String,
    processing: String,
    what: String,
}

impl List {
    fn open(addr: &RedisAddr, list: &str) -> Result<List> {
        let what = format!("redis_d4 {}:{}/{}", addr.host, addr.port, addr.db);
        let client = redis::Client::open(addr.url()).with_context(|| what.clone())?;
        let mut l = List {
            client,
            con: None,
            list: list.to_string(),
            processing: format!("d4:processing:source:{list}"),
            what,
        };
        l.con()?;
        Ok(l)
    }

    fn con(&mut self) -> Result<&mut redis::Connection> {
        if self.con.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(REDIS_TIMEOUT)
                .with_context(|| format!("cannot reach Redis ({})", self.what))?;
            c.set_read_timeout(Some(REDIS_TIMEOUT))?;
            c.set_write_timeout(Some(REDIS_TIMEOUT))?;
            self.con = Some(c);
        }
        match self.con.as_mut() {
            Some(c) => Ok(c),
            None => unreachable!("just set"),
        }
    }

    /// The held batch (an earlier run's) or up to `n` new items, oldest first.
    fn read(&mut self, n: usize) -> Result<Vec<Vec<u8>>> {
        let (list, processing) = (self.list.clone(), self.processing.clone());
        let r: redis::RedisResult<Vec<Vec<u8>>> = redis::Script::new(d4_server::READ_SCRIPT)
            .key(list)
            .key(processing)
            .arg(n)
            .invoke(self.con()?);
        match r {
            Ok(mut v) => {
                v.reverse();
                Ok(v)
            }
            Err(e) => {
                self.con = None;
                Err(e).with_context(|| format!("cannot read {} ({})", self.list, self.what))
            }
        }
    }

    /// Drops the first `n` items of the held batch.
    fn ack(&mut self, n: usize) -> Result<()> {
        let processing = self.processing.clone();
        let r: redis::RedisResult<usize> = redis::Script::new(d4_server::ACK_SCRIPT)
            .key(processing)
            .arg(n)
            .invoke(self.con()?);
        if let Err(e) = r {
            self.con = None;
            return Err(e).with_context(|| {
                format!(
                    "the destination confirmed {n} items but they could not be dropped from {} ({}): they will be sent again",
                    self.processing, self.what
                )
            });
        }
        Ok(())
    }
}

/// Reads `queue` and sends its items until `quit` (between batches), or
/// with `once` until the list is empty. `stop` is the sender's stop check.
pub(crate) fn run(
    cfg: &ClientConfig,
    addr: &RedisAddr,
    queue: &str,
    wait: Duration,
    once: bool,
    quit: &dyn Fn() -> bool,
    stop: &dyn Fn() -> bool,
) -> Result<Stats> {
    let mut list = List::open(addr, queue)?;
    let mut session = cfg.clone();
    // Redis holds the batch until it is confirmed: no spool needed.
    session.spool_dir = None;
    session.keepalive_secs = 0;
    let mut stats = Stats::default();
    tracing::info!("reading {queue} ({})", list.what);
    while !quit() {
        let items = match list.read(BATCH) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("{e:#}; retrying in 1 s");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if items.is_empty() {
            if once {
                break;
            }
            std::thread::sleep(wait);
            continue;
        }
        let n = items.len();
        let mut stream = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum());
        for i in &items {
            stream.extend_from_slice(i);
            stream.push(b'\n');
        }
        let s = d4_client::run_until(&session, Cursor::new(stream), stop).with_context(|| {
            format!(
                "a session of {n} items was not confirmed; they stay in {} and are sent again by the next run",
                list.processing
            )
        })?;
        list.ack(n)?;
        stats.items += n as u64;
        stats.bytes += s.bytes;
        tracing::info!(
            "sent {n} items ({} bytes); {} items in all",
            s.bytes,
            stats.items
        );
    }
    Ok(stats)
}
