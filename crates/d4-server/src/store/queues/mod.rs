//! Analyzer queues: FIFO lists of items (lines or file paths) that workers
//! fill and consumers (`d4 stdout`, exporters, analyzers) pop.
//!
//! A queue has a UUID, a data type (a D4 type number or an extended type
//! name), a description, a max size (the oldest items are dropped beyond it,
//! and counted), and optionally a group of sensors it is restricted to.
//!
//! [`Queues`] is what the rest of the server sees, whatever the backend:
//! - the routing table type → queues (with sensor groups), in a
//!   [`Catalog`] read on every push;
//! - pushes go through a bounded channel (256 batches; then sessions wait,
//!   `stall_timeout_secs`, then close) to the backend's one writer, which
//!   takes up to [`BATCH_ITEMS`] items at a time, so a burst of lines costs
//!   one transaction (embedded) or one script (Redis), not one per line;
//! - everything else (create, list, pop, read/ack, resize, delete) is one
//!   [`QueueBackend`] call: [`crate::store::embedded`] (redb, the default)
//!   or [`crate::store::redis`] (the reference key schema, shared by nodes).
//!
//! Max size drops the oldest items and counts them. `read` returns items
//! with their numbers and leaves them; `ack` removes those below a number:
//! consumers that must not lose an item read, process, then acknowledge.

mod def;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{ensure, Result};
use bytes::Bytes;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::db::Db;
pub(crate) use def::NewQueue;
pub use def::{QueueDef, QueueType};

/// Why items were not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// The writer did not take them within the stall time (back-pressure).
    #[error("analyzer queues stalled for {} s", .0.as_secs())]
    Stalled(Duration),
    /// The writer has stopped (the server is stopping, or its thread died).
    #[error("the queue writer has stopped")]
    Stopped,
}

/// Items for some queues, from one worker.
pub(crate) struct PushBatch {
    /// The queues that get every item.
    pub(crate) queues: Vec<Uuid>,
    /// The items, in order.
    pub(crate) items: Vec<Bytes>,
    /// Answered once this batch (and all before it) is committed.
    pub(crate) done: Option<std::sync::mpsc::Sender<()>>,
    /// Run once the items are committed (clears a file's "not yet
    /// announced" mark).
    pub(crate) committed: Option<OnCommit>,
}

/// What to do once a batch is committed.
pub(crate) type OnCommit = Box<dyn FnOnce() + Send + Sync>;

/// Queues by type, each with the sensor group it is restricted to.
type Routes = HashMap<QueueType, Vec<(Uuid, Vec<Uuid>)>>;

/// The queue definitions the server routes by: the truth in embedded mode
/// (kept equal to the store in the same transaction), a cache refreshed
/// every second in Redis mode.
pub(crate) struct Catalog {
    /// The local store (queue rows in embedded mode; the Redis spool and the
    /// definitions last read in Redis mode).
    pub(crate) db: Arc<Db>,
    /// Definitions and counters.
    defs: Mutex<HashMap<Uuid, QueueDef>>,
    /// Routing table: type → (queue, group). Read on every push.
    routes: RwLock<Routes>,
}

impl Catalog {
    /// A catalog of `defs`, routes built.
    pub(crate) fn new(db: Arc<Db>, defs: HashMap<Uuid, QueueDef>) -> Arc<Catalog> {
        let c = Arc::new(Catalog {
            db,
            defs: Mutex::new(defs),
            routes: RwLock::new(HashMap::new()),
        });
        c.rebuild_routes();
        c
    }

    /// The definitions, locked (never held across an await or another lock).
    pub(crate) fn lock_defs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, QueueDef>> {
        self.defs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces every definition (Redis mode: what was read) and routes.
    pub(crate) fn replace(&self, list: Vec<QueueDef>) {
        *self.lock_defs() = list.into_iter().map(|d| (d.uuid, d)).collect();
        self.rebuild_routes();
    }

    /// Every definition, oldest first.
    pub(crate) fn sorted(&self) -> Vec<QueueDef> {
        let mut v: Vec<_> = self.lock_defs().values().cloned().collect();
        v.sort_by_key(|d| (d.created, d.uuid));
        v
    }

    /// Builds the routing table again from the definitions.
    pub(crate) fn rebuild_routes(&self) {
        let mut routes = Routes::new();
        for d in self.lock_defs().values() {
            routes
                .entry(d.ty.clone())
                .or_default()
                .push((d.uuid, d.sensors.clone()));
        }
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }
}

/// What differs between the places queues live. Calls block (the Redis
/// backend runs its calls on the runtime from the calling thread); the
/// API calls them off the async threads.
pub(crate) trait QueueBackend: Send + Sync {
    /// Creates a queue (its max size checked by [`Queues::create`]).
    fn create(&self, q: NewQueue) -> Result<QueueDef>;
    /// Every queue, with live lengths and counters.
    fn list(&self) -> Vec<QueueDef>;
    /// One queue.
    fn get(&self, id: Uuid) -> Option<QueueDef>;
    /// Changes a queue's max size (dropping the oldest items if it shrinks;
    /// checked by [`Queues::resize`]).
    fn resize(&self, id: Uuid, max_size: u64) -> Result<QueueDef>;
    /// Deletes a queue and its items.
    fn delete(&self, id: Uuid) -> Result<QueueDef>;
    /// Removes and returns up to `n` items, oldest first.
    fn pop(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>>;
    /// Removes the items numbered below `upto` (see [`QueueBackend::read`]);
    /// returns how many went.
    fn ack(&self, id: Uuid, upto: u64) -> Result<usize>;
    /// Removes every item of a queue; returns how many.
    fn empty(&self, id: Uuid) -> Result<u64>;
    /// The first `n` items, left in place.
    fn peek(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>>;
    /// The first `n` items with their numbers, left in place until `ack`.
    fn read(&self, id: Uuid, n: usize) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Items waiting in an on-disk spool for the backend to come back, and
    /// items lost because it was full (`None`: this backend has no spool).
    fn spool(&self) -> Option<(u64, u64)> {
        None
    }
}

/// The queue registry: routing, the channel to the backend's writer, and
/// the backend.
pub(crate) struct Queues {
    /// Definitions and routes.
    catalog: Arc<Catalog>,
    /// To the backend's writer.
    tx: mpsc::Sender<PushBatch>,
    /// Where queues live.
    backend: Arc<dyn QueueBackend>,
}

/// Batches waiting for the writer, at most.
pub(crate) const CHANNEL_BATCHES: usize = 256;

/// Most items committed in one transaction.
pub(crate) const BATCH_ITEMS: usize = 8192;

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Queues {
    /// Queues over `backend`, whose writer reads the other end of `tx`.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        tx: mpsc::Sender<PushBatch>,
        backend: Arc<dyn QueueBackend>,
    ) -> Arc<Queues> {
        Arc::new(Queues {
            catalog,
            tx,
            backend,
        })
    }

    /// The queues that receive `ty` data from `sensor`.
    pub(crate) fn route(&self, ty: &QueueType, sensor: Uuid) -> Vec<Uuid> {
        let routes = self
            .catalog
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner());
        match routes.get(ty) {
            None => Vec::new(),
            Some(qs) => qs
                .iter()
                .filter(|(_, group)| group.is_empty() || group.contains(&sensor))
                .map(|(q, _)| *q)
                .collect(),
        }
    }

    /// Hands items to the writer. Waits (back-pressure) while the writer is
    /// behind, at most `stall`; an error means the items were not taken.
    pub(crate) async fn push(
        &self,
        queues: Vec<Uuid>,
        items: Vec<Bytes>,
        stall: Duration,
    ) -> Result<(), PushError> {
        if queues.is_empty() || items.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(
            stall,
            self.tx.send(PushBatch {
                queues,
                items,
                done: None,
                committed: None,
            }),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(PushError::Stopped),
            Err(_) => Err(PushError::Stalled(stall)),
        }
    }

    /// The same, from a thread outside the async runtime (background
    /// gzip); `then` runs once the items are committed (at once if no
    /// queue takes them).
    pub(crate) fn push_blocking(
        &self,
        queues: Vec<Uuid>,
        items: Vec<Bytes>,
        then: Option<OnCommit>,
    ) {
        if queues.is_empty() || items.is_empty() {
            if let Some(f) = then {
                f();
            }
            return;
        }
        if self
            .tx
            .blocking_send(PushBatch {
                queues,
                items,
                done: None,
                committed: then,
            })
            .is_err()
        {
            tracing::error!("the queue writer has stopped; items not queued (kept marked on disk)");
        }
    }

    /// Whether the disk takes writes (shared with workers and `/metrics`).
    pub(crate) fn health(&self) -> &Arc<crate::store::health::Health> {
        self.catalog.db.health()
    }

    /// Waits until every item handed over so far is committed (shutdown).
    pub(crate) fn flush_blocking(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        let b = PushBatch {
            queues: Vec::new(),
            items: Vec::new(),
            done: Some(done),
            committed: None,
        };
        if self.tx.blocking_send(b).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        }
    }

    /// Creates a queue.
    pub(crate) fn create(&self, q: NewQueue) -> Result<QueueDef> {
        check_max_size(q.max_size)?;
        self.backend.create(q)
    }

    /// Every queue.
    pub(crate) fn list(&self) -> Vec<QueueDef> {
        self.backend.list()
    }

    /// One queue.
    pub(crate) fn get(&self, id: Uuid) -> Option<QueueDef> {
        self.backend.get(id)
    }

    /// Changes a queue's max size (dropping the oldest items if it shrinks).
    pub(crate) fn resize(&self, id: Uuid, max_size: u64) -> Result<QueueDef> {
        check_max_size(max_size)?;
        self.backend.resize(id, max_size)
    }

    /// Deletes a queue and its items.
    pub(crate) fn delete(&self, id: Uuid) -> Result<QueueDef> {
        self.backend.delete(id)
    }

    /// Removes and returns up to `n` items, oldest first.
    pub(crate) fn pop(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        self.backend.pop(id, n)
    }

    /// Removes the items numbered below `upto` (see [`Queues::read`]): a
    /// consumer acknowledges what it has processed. Returns how many went.
    pub(crate) fn ack(&self, id: Uuid, upto: u64) -> Result<usize> {
        self.backend.ack(id, upto)
    }

    /// Removes every item of a queue (any type, extended ones too); returns
    /// how many.
    pub(crate) fn empty(&self, id: Uuid) -> Result<u64> {
        self.backend.empty(id)
    }

    /// The first `n` items, left in place.
    pub(crate) fn peek(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        self.backend.peek(id, n)
    }

    /// The first `n` items with their numbers, left in place until
    /// [`Queues::ack`]: a consumer that dies before acknowledging loses nothing.
    pub(crate) fn read(&self, id: Uuid, n: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.backend.read(id, n)
    }

    /// Redis mode: (items waiting in the spool, items dropped because it was full).
    pub(crate) fn redis_spool(&self) -> Option<(u64, u64)> {
        self.backend.spool()
    }
}

/// A queue keeps one item at least.
fn check_max_size(max_size: u64) -> Result<()> {
    ensure!(max_size > 0, "max size must be at least 1");
    Ok(())
}

/// The first batch and those waiting after it, up to [`BATCH_ITEMS`] items;
/// and how many items that is.
pub(crate) fn gather(
    first: PushBatch,
    rx: &mut mpsc::Receiver<PushBatch>,
) -> (Vec<PushBatch>, usize) {
    let mut n = first.items.len() * first.queues.len();
    let mut batches = vec![first];
    while n < BATCH_ITEMS {
        match rx.try_recv() {
            Ok(b) => {
                n += b.items.len() * b.queues.len();
                batches.push(b);
            }
            Err(_) => break,
        }
    }
    (batches, n)
}

/// Tells those waiting (flushes) that their batches are done, and runs
/// their commit hooks if they were `committed`.
pub(crate) fn answer(batches: Vec<PushBatch>, committed: bool) {
    for b in batches {
        if committed {
            if let Some(f) = b.committed {
                f();
            }
        }
        if let Some(d) = b.done {
            let _ = d.send(());
        }
    }
}
