//! One analyzer queue of a D4 server, popped over its management API by
//! the shared poller ([`crate::poll`]), as the analyzers that store what
//! they read (`d4 pdns ingest`, `d4 tls ingest`, and their `serve
//! --ingest-queue`) consume it; and the loop that follows several queues in
//! one thread (one store writer).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::poll::{Handler, Idle, Poller, Take};
use crate::{Api, Conn};

/// The queue flags of an ingesting analyzer's command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Follow {
    /// Queue to consume (the command's help says of which types); repeatable.
    #[arg(short = 'u', long = "queue")]
    pub queues: Vec<String>,
    /// With -u: exit when the queues are empty instead of following them.
    #[arg(long)]
    pub once: bool,
}

impl Follow {
    /// Whether the command follows queues until told to stop.
    pub fn follows(&self) -> bool {
        !self.queues.is_empty() && !self.once
    }

    /// Drains each of `queues` in turn with `drain`: once (`--once`), or
    /// round after round until `stop` ([`follow`]).
    pub fn run(
        &self,
        queues: &[Queue],
        stop: impl Fn() -> bool,
        drain: impl FnMut(&Queue) -> Result<()>,
    ) -> Result<()> {
        follow(queues, self.once, Duration::from_millis(200), stop, drain)
    }
}

/// A queue to pop.
pub struct Queue {
    /// The connected API client.
    api: Api,
    /// The queue's UUID.
    pub uuid: String,
    /// The server's `<data-dir>/data`: file items must name files below it.
    pub data_root: Option<PathBuf>,
    /// The queue's type as the server reports it ("1", "8"...).
    pub qtype: String,
}

impl Queue {
    /// Connects to the queues to ingest from; each must be of one of
    /// `types` (`what` says which, for the error message).
    pub fn connect_typed(
        c: &Conn,
        uuids: &[String],
        types: &[&str],
        what: &str,
    ) -> Result<Vec<Queue>> {
        let queues: Vec<Queue> = uuids
            .iter()
            .map(|u| Queue::connect(c, u))
            .collect::<Result<_>>()?;
        if let Some(q) = queues.iter().find(|q| !types.contains(&q.qtype.as_str())) {
            bail!("queue {} is of type {}: {what}", q.uuid, q.qtype);
        }
        Ok(queues)
    }

    /// Connects and checks that the queue exists.
    pub fn connect(c: &Conn, uuid: &str) -> Result<Queue> {
        if uuid.len() > 64 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            bail!("{uuid} is not a queue UUID");
        }
        let api = Api::connect(c)?;
        let info = api.get(&format!("/queues/{uuid}"))?;
        let qtype = info["type"].as_str().unwrap_or_default().to_string();
        let data_root = crate::data_root(&api);
        Ok(Queue {
            api,
            uuid: uuid.to_string(),
            data_root,
            qtype,
        })
    }

    /// A poller popping up to `batch` items at a time.
    pub fn poller(&self, batch: usize, idle: Idle) -> Poller<'_> {
        self.poller_take(Take::Pop, batch, idle)
    }

    /// A poller taking up to `batch` items at a time, popped or read then
    /// acknowledged ([`Take`]).
    pub fn poller_take(&self, take: Take, batch: usize, idle: Idle) -> Poller<'_> {
        Poller::new(&self.api, &self.uuid, take, batch, idle)
    }

    /// Checks that an item names a regular file under the server's data
    /// directory (a queue item must never make us open anything else).
    pub fn file_item(&self, item: &[u8]) -> Result<PathBuf> {
        crate::check_item_path(item, self.data_root.as_deref())
    }
}

/// Follows `queues` in turn in this thread until `stop` says so: `drain`
/// empties one (e.g. with [`Idle::Once`]); `pause` separates the rounds.
/// With `once`, one round, then return. An error of `drain` is returned
/// when `once`, logged (and the queue tried again next round) otherwise.
pub fn follow(
    queues: &[Queue],
    once: bool,
    pause: Duration,
    stop: impl Fn() -> bool,
    mut drain: impl FnMut(&Queue) -> Result<()>,
) -> Result<()> {
    loop {
        for q in queues {
            if stop() {
                return Ok(());
            }
            match drain(q) {
                Ok(()) => {}
                Err(e) if once => return Err(e),
                Err(e) => tracing::warn!("queue {}: {e:#}", q.uuid),
            }
        }
        if once {
            return Ok(());
        }
        let end = std::time::Instant::now() + pause;
        while std::time::Instant::now() < end && !stop() {
            std::thread::sleep(Duration::from_millis(20).min(pause));
        }
        if stop() {
            return Ok(());
        }
    }
}

/// What an ingesting analyzer does with the items of a queue.
pub trait Sink {
    /// Handles one item (an error ends the drain).
    fn item(&mut self, q: &Queue, item: &[u8]) -> Result<()>;
    /// Writes what was handled (every 0.5 s, when the queue is empty, and
    /// at the end).
    fn flush(&mut self) -> Result<()>;
}

/// Pops `q` (`batch` items at a time) into `sink` until it is empty
/// ([`Idle::Once`]) or `stop` says so; failed requests are retried after
/// 1 s while following ([`Idle::Follow`]). Flushes at the end.
pub fn drain(
    q: &Queue,
    idle: Idle,
    batch: usize,
    stop: impl Fn() -> bool,
    sink: &mut impl Sink,
) -> Result<()> {
    let retry = (idle == Idle::Follow).then_some(Duration::from_secs(1));
    q.poller(batch, idle)
        .pause(Duration::from_millis(20), Duration::from_millis(500))
        .retry(retry)
        .stop_when(stop)
        .run(&mut Items {
            sink: &mut *sink,
            q,
            last_flush: std::time::Instant::now(),
        })?;
    sink.flush()
}

/// The items of one queue, handed to a [`Sink`].
struct Items<'a, S> {
    sink: &'a mut S,
    q: &'a Queue,
    /// When the sink was last flushed.
    last_flush: std::time::Instant,
}

impl<S: Sink> Handler for Items<'_, S> {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        for it in &items {
            self.sink.item(self.q, it)?;
        }
        if self.last_flush.elapsed() > Duration::from_millis(500) {
            self.idle()?;
        }
        Ok(items.len())
    }

    fn idle(&mut self) -> Result<()> {
        self.last_flush = std::time::Instant::now();
        self.sink.flush()
    }
}

/// A thread that follows `queues` into `sink` (one writer) until `shutdown`,
/// then flushes it: a lookup server's `--ingest` queues.
pub fn ingest_thread<S: Sink + Send + 'static>(
    queues: Vec<Queue>,
    shutdown: crate::shutdown::Shutdown,
    batch: usize,
    mut sink: S,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stop = || shutdown.is_triggered();
        let _ = follow(&queues, false, Duration::from_millis(100), stop, |q| {
            drain(q, Idle::Once, batch, stop, &mut sink)
        });
        if let Err(e) = sink.flush() {
            tracing::error!("ingest: the records read last could not be stored: {e:#}");
        }
    })
}
