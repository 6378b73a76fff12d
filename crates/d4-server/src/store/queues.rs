//! Analyzer queues: FIFO lists of items (lines or file paths) that workers
//! fill and consumers (`d4 stdout`, exporters, analyzers) pop.
//!
//! A queue has a UUID, a data type (a D4 type number or an extended type
//! name), a description, a max size (the oldest items are dropped beyond it,
//! and counted), and optionally a group of sensors it is restricted to.
//! Workers hand items to [`Queues::push`]; one writer thread commits them in
//! batches, so a burst of lines costs one transaction, not one per line.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::db::{item_key, Db, ITEMS, QUEUES};
use crate::store::redis::queues::{PushGroup, RedisQueues};

/// What a queue carries: a D4 type number or an extended type name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum QueueType {
    /// A D4 type (1, 3, 4, ...).
    Type(u8),
    /// An extended type carried by type 254 (`maltrail`, `ja3-jl`, ...).
    Extended(String),
}

impl QueueType {
    /// Parses `3`, `254`-style numbers or extended type names.
    pub fn parse(s: &str) -> Result<QueueType> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u16>() {
            match n {
                0 => bail!("type 0 is reserved"),
                2 | 254 => bail!("types 2 and 254 carry extended types: give the extended type name (e.g. maltrail, ja3-jl)"),
                1..=255 => return Ok(QueueType::Type(n as u8)),
                _ => bail!("type {n} is not a D4 type (1-255)"),
            }
        }
        if d4_proto::meta::valid_extended_type(s) {
            Ok(QueueType::Extended(s.to_string()))
        } else {
            bail!("{s:?} is neither a D4 type number nor an extended type name ([A-Za-z0-9._-], 1-64 characters)")
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueType::Type(n) => write!(f, "{n}"),
            QueueType::Extended(s) => f.write_str(s),
        }
    }
}

impl From<QueueType> for String {
    fn from(t: QueueType) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for QueueType {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<QueueType> {
        QueueType::parse(&s)
    }
}

/// A queue's definition and counters, as stored and as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QueueDef {
    /// Queue UUID.
    pub uuid: Uuid,
    /// Data type.
    #[serde(rename = "type")]
    pub ty: QueueType,
    /// Free text.
    pub description: String,
    /// Most items kept; older ones are dropped.
    pub max_size: u64,
    /// Sensors this queue is restricted to (empty: all sensors).
    pub sensors: Vec<Uuid>,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last push or pop.
    pub last_updated: i64,
    /// Sequence number of the oldest item.
    pub head: u64,
    /// Sequence number the next item gets.
    pub tail: u64,
    /// Items dropped because the queue was full.
    pub dropped: u64,
    /// Items ever pushed.
    pub pushed: u64,
    /// Unix seconds of the last pop or empty (0: never): monitoring reports
    /// a queue nobody consumes.
    #[serde(default)]
    pub last_popped: i64,
}

impl QueueDef {
    /// Items waiting.
    pub fn len(&self) -> u64 {
        self.tail - self.head
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Items for some queues, from one worker.
struct PushBatch {
    queues: Vec<Uuid>,
    items: Vec<Bytes>,
    /// Answered once this batch (and all before it) is committed.
    done: Option<std::sync::mpsc::Sender<()>>,
}

/// Queues by type, each with the sensor group it is restricted to.
type Routes = HashMap<QueueType, Vec<(Uuid, Vec<Uuid>)>>;

/// The queue registry and its writer.
pub(crate) struct Queues {
    db: Arc<Db>,
    /// Definitions and counters (the store is updated in the same transaction).
    defs: Mutex<HashMap<Uuid, QueueDef>>,
    /// Routing table: type → (queue, group). Read on every push.
    routes: RwLock<Routes>,
    /// To the writer thread.
    tx: mpsc::Sender<PushBatch>,
    /// Redis mode: queues live in Redis (reference schema); `defs` and
    /// `routes` are a cache refreshed every second.
    redis: Option<RedisMode>,
}

/// The Redis backend and the runtime its calls run on.
struct RedisMode {
    q: RedisQueues,
    rt: tokio::runtime::Handle,
    /// Items waiting in the on-disk spool for Redis to come back.
    spooled: std::sync::atomic::AtomicU64,
    /// Bytes of the spool's entries.
    spooled_bytes: std::sync::atomic::AtomicU64,
    /// Items lost because the spool was full.
    spool_dropped: std::sync::atomic::AtomicU64,
    /// Sequence numbers below this one may have been used (kept in the
    /// store, moved a block ahead when reached).
    seq_floor: std::sync::atomic::AtomicU64,
}

/// Store document: the queue definitions last read from Redis.
pub(crate) const REDIS_DEFS_DOC: &str = "redis_queue_defs";
/// Store document: no sequence number at or above it was used.
const SEQ_FLOOR_DOC: &str = "redis_seq_floor";
/// How far ahead of the numbers in use the floor is kept.
const SEQ_BLOCK: u64 = 1 << 20;

/// What routing needs of the queue definitions (saved again when it changes).
fn routing(list: &[QueueDef]) -> Vec<(Uuid, String, u64, Vec<Uuid>)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|d| (d.uuid, d.ty.to_string(), d.max_size, d.sensors.clone()))
        .collect();
    v.sort();
    v
}

fn save_defs(db: &Db, list: &[QueueDef]) {
    if let Err(e) = db.put_docs(&[(REDIS_DEFS_DOC.to_string(), list)]) {
        tracing::warn!("cannot keep the queue definitions read from Redis: {e:#}");
    }
}

/// Most items held in the spool while Redis is unreachable.
pub(crate) const SPOOL_MAX: u64 = 1_000_000;
/// Most bytes of items held in the spool (sensors choose line lengths).
pub(crate) const SPOOL_MAX_BYTES: u64 = 1 << 30;

/// Spooled items of one queue with consecutive sequence numbers.
struct SpoolRun<'a> {
    queue: Uuid,
    ty: QueueType,
    max: u64,
    first_seq: u64,
    items: Vec<&'a [u8]>,
}

/// The name of this node in Redis (`d4:pushed_upto:<name>`): its host name
/// and a digest of a random value kept in the store with the data
/// directory's path, so that a store copied to make another node (same
/// host, other directory; or another host) does not take this node's name,
/// whose numbers would make Redis skip the copy's items.
fn redis_node_name(db: &Db, data_dir: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    const KEY: &str = "redis_node_id";
    let id = match db.get_doc::<String>(KEY)? {
        Some(id) => id,
        None => {
            let id = Uuid::new_v4().simple().to_string();
            db.put_docs(&[(KEY.to_string(), id.clone())])?;
            id
        }
    };
    let host: String = crate::server::host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(64)
        .collect();
    let mut h = sha2::Sha256::new();
    h.update(id.as_bytes());
    h.update(host.as_bytes());
    h.update(data_dir.as_os_str().as_encoded_bytes());
    let digest: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{host}-{digest}"))
}

/// A spool entry: queue UUID, type name length and name, item.
fn spool_entry(q: Uuid, ty: &QueueType, item: &[u8]) -> Vec<u8> {
    let name = ty.to_string();
    let mut e = Vec::with_capacity(17 + name.len() + item.len());
    e.extend_from_slice(q.as_bytes());
    e.push(name.len().min(255) as u8);
    e.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
    e.extend_from_slice(item);
    e
}

fn parse_spool_entry(e: &[u8]) -> Option<(Uuid, QueueType, &[u8])> {
    let q = Uuid::from_slice(e.get(..16)?).ok()?;
    let n = usize::from(*e.get(16)?);
    let name = std::str::from_utf8(e.get(17..17 + n)?).ok()?;
    Some((q, QueueType::parse(name).ok()?, e.get(17 + n..)?))
}

impl RedisMode {
    /// Runs a Redis call to its end from synchronous code: a blocking
    /// thread, or an async handler (the worker thread is handed off first;
    /// the server runs on the multi-threaded runtime).
    fn run<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::task::block_in_place(|| self.rt.block_on(f))
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Most items committed in one transaction.
const BATCH_ITEMS: usize = 8192;

impl Queues {
    /// Loads the queues from the store and starts the writer thread.
    pub(crate) fn open(db: Arc<Db>) -> Result<Arc<Queues>> {
        let mut defs = HashMap::new();
        for row in db.queue_rows()? {
            match serde_json::from_slice::<QueueDef>(&row) {
                Ok(d) => {
                    defs.insert(d.uuid, d);
                }
                Err(e) => {
                    tracing::warn!("a queue definition in the store is corrupt, ignored: {e}")
                }
            }
        }
        let (tx, rx) = mpsc::channel(256);
        let q = Arc::new(Queues {
            db,
            defs: Mutex::new(defs),
            routes: RwLock::new(HashMap::new()),
            tx,
            redis: None,
        });
        q.rebuild_routes();
        let weak = Arc::downgrade(&q);
        std::thread::Builder::new()
            .name("d4-queue-writer".into())
            .spawn(move || writer(weak, rx))
            .context("starting the queue writer")?;
        Ok(q)
    }

    /// Queues in Redis (reference schema). Must be called on the runtime:
    /// blocking calls (`pop`, `create`...) later run on it from blocking
    /// threads. Definitions are read again every second, so that queues made
    /// or removed by other nodes or reference tools are routed to at once.
    /// `data_dir` names the node in Redis.
    pub(crate) async fn open_redis(
        db: Arc<Db>,
        mut r: RedisQueues,
        data_dir: &std::path::Path,
    ) -> Result<Arc<Queues>> {
        let (list, reachable) = match r.list().await {
            Ok(list) => {
                save_defs(&db, &list);
                (list, true)
            }
            // A restart during an outage: the queues last read, items spooled.
            Err(e) => match db.get_doc::<Vec<QueueDef>>(REDIS_DEFS_DOC)? {
                Some(list) => {
                    tracing::warn!(
                        "cannot read the queues from Redis ({e:#}): routing to the {} queues last read; their items are spooled on disk until it answers",
                        list.len()
                    );
                    (list, false)
                }
                None => anyhow::bail!("cannot read the queues from Redis: {e:#}"),
            },
        };
        let defs: HashMap<Uuid, QueueDef> = list.iter().map(|d| (d.uuid, d.clone())).collect();
        // Sequence numbers: spooled items keep theirs; new ones continue
        // after them, after what Redis applied and after every number this
        // node may have used (the floor kept in the store, a block ahead),
        // so that none is skipped as applied, also when Redis cannot say.
        let node = redis_node_name(&db, data_dir)?;
        let applied = if reachable {
            r.applied_upto(&node).await?
        } else {
            None
        };
        let next = [
            db.spool_last_key()?.map_or(0, |k| k + 1),
            applied.map_or(0, |a| a + 1),
            db.get_doc::<u64>(SEQ_FLOOR_DOC)?.unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        r.set_node(&node, next);
        let floor = next + SEQ_BLOCK;
        db.put_docs(&[(SEQ_FLOOR_DOC.to_string(), floor)])?;
        let (tx, rx) = mpsc::channel(256);
        let q = Arc::new(Queues {
            db,
            defs: Mutex::new(defs),
            routes: RwLock::new(HashMap::new()),
            tx,
            redis: Some(RedisMode {
                q: r,
                rt: tokio::runtime::Handle::current(),
                spooled: std::sync::atomic::AtomicU64::new(0),
                spooled_bytes: std::sync::atomic::AtomicU64::new(0),
                spool_dropped: std::sync::atomic::AtomicU64::new(0),
                seq_floor: std::sync::atomic::AtomicU64::new(floor),
            }),
        });
        if let Some(r) = &q.redis {
            let (n, bytes) = q.db.spool_size()?;
            r.spooled.store(n, Ordering::Relaxed);
            r.spooled_bytes.store(bytes, Ordering::Relaxed);
            if n > 0 {
                tracing::warn!(
                    "{n} queue items spooled while Redis was unreachable will be delivered"
                );
            }
        }
        q.rebuild_routes();
        tokio::spawn(redis_writer(Arc::downgrade(&q), rx));
        let weak = Arc::downgrade(&q);
        let mut saved = routing(&list);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(q) = weak.upgrade() else { return };
                let Some(r) = &q.redis else { return };
                match r.q.list().await {
                    Ok(list) => {
                        if failing {
                            tracing::info!("Redis reachable again");
                            failing = false;
                        }
                        // Definitions first: the spool drains into the
                        // queues that exist now. Kept in the store for a
                        // restart while Redis is away.
                        let sig = routing(&list);
                        if sig != saved {
                            tokio::task::block_in_place(|| save_defs(&q.db, &list));
                            saved = sig;
                        }
                        *q.lock_defs() = list.into_iter().map(|d| (d.uuid, d)).collect();
                        q.rebuild_routes();
                        q.drain_spool(r).await;
                    }
                    Err(e) if !failing => {
                        tracing::error!("cannot read the queues from Redis: {e:#}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(q)
    }

    /// Reads the definitions from Redis again (after a change made here).
    fn refresh(&self, r: &RedisMode) -> Result<()> {
        let list = r.run(r.q.list())?;
        save_defs(&self.db, &list);
        *self.lock_defs() = list.into_iter().map(|d| (d.uuid, d)).collect();
        self.rebuild_routes();
        Ok(())
    }

    /// Pushes batches to Redis, in order, in one script. While Redis
    /// is unreachable (or older items still wait), items go to the on-disk
    /// spool in arrival order, up to [`SPOOL_MAX`] items and
    /// [`SPOOL_MAX_BYTES`]; beyond, they are dropped
    /// and counted.
    async fn push_redis(&self, r: &RedisMode, batches: &[PushBatch]) {
        let work: Vec<(Uuid, QueueType, u64, Vec<&[u8]>)> = {
            let defs = self.lock_defs();
            batches
                .iter()
                .flat_map(|b| b.queues.iter().map(move |q| (q, b)))
                .filter_map(|(q, b)| {
                    let d = defs.get(q)?; // deleted meanwhile
                    let items = b.items.iter().map(|i| i.as_ref()).collect();
                    Some((*q, d.ty.clone(), d.max_size, items))
                })
                .collect()
        };
        if work.is_empty() {
            return;
        }
        // Sequence numbers in push order, kept by the items if spooled: a
        // retry of what Redis applied already is skipped there.
        let n: u64 = work.iter().map(|w| w.3.len() as u64).sum();
        let end = r.q.next_seq() + n;
        if end > r.seq_floor.load(Ordering::Relaxed) {
            let floor = end + SEQ_BLOCK;
            let kept = tokio::task::block_in_place(|| {
                self.db.put_docs(&[(SEQ_FLOOR_DOC.to_string(), floor)])
            });
            match kept {
                Ok(()) => r.seq_floor.store(floor, Ordering::Relaxed),
                Err(e) => tracing::error!("cannot keep the queue sequence floor: {e:#}"),
            }
        }
        let groups: Vec<PushGroup> = work
            .iter()
            .map(|(q, ty, max, items)| PushGroup {
                queue: *q,
                ty,
                max: *max,
                first_seq: r.q.reserve(items.len() as u64),
                items,
            })
            .collect();
        if r.spooled.load(Ordering::Relaxed) == 0 {
            match r.q.push_many(&groups).await {
                Ok(()) => return,
                Err(e) => tracing::error!(
                    "Redis unreachable ({e:#}): queue items are spooled on disk until it returns"
                ),
            }
        }
        // A disk commit: off the runtime's worker (multi-threaded runtime).
        tokio::task::block_in_place(|| self.spool(r, &groups));
    }

    fn spool(&self, r: &RedisMode, groups: &[PushGroup]) {
        let mut entries = Vec::new();
        let mut dropped = 0u64;
        let have = r.spooled.load(Ordering::Relaxed);
        let mut bytes = r.spooled_bytes.load(Ordering::Relaxed);
        let mut added = 0u64;
        for g in groups {
            for (seq, i) in (g.first_seq..).zip(g.items) {
                let e = spool_entry(g.queue, g.ty, i);
                let size = e.len() as u64;
                if have + (entries.len() as u64) < SPOOL_MAX && bytes + size <= SPOOL_MAX_BYTES {
                    bytes += size;
                    added += size;
                    entries.push((seq, e));
                } else {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            let before = r.spool_dropped.fetch_add(dropped, Ordering::Relaxed);
            if before == 0 || (before + dropped) / 10_000 > before / 10_000 {
                tracing::error!(
                    "Redis spool full ({SPOOL_MAX} items or {} MiB): {} queue items dropped so far",
                    SPOOL_MAX_BYTES >> 20,
                    before + dropped
                );
            }
        }
        let n = entries.len() as u64;
        match self.db.spool_append(&entries) {
            Ok(()) => {
                r.spooled.fetch_add(n, Ordering::Relaxed);
                r.spooled_bytes.fetch_add(added, Ordering::Relaxed);
            }
            Err(e) => {
                r.spool_dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!("cannot spool {n} queue items: {e:#}; they are lost");
            }
        }
    }

    /// Delivers the spool to Redis, oldest first; stops at the first failure.
    async fn drain_spool(&self, r: &RedisMode) {
        let mut delivered = 0u64;
        while r.spooled.load(Ordering::Relaxed) > 0 {
            let batch = match tokio::task::block_in_place(|| self.db.spool_first(1000)) {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => {
                    r.spooled.store(0, Ordering::Relaxed);
                    r.spooled_bytes.store(0, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    tracing::error!("cannot read the Redis spool: {e:#}");
                    return;
                }
            };
            // The whole batch in one script, in spool order: runs of one
            // queue with consecutive sequence numbers. Items of queues
            // deleted meanwhile are dropped and counted.
            let mut gone = 0u64;
            let runs: Vec<SpoolRun> = {
                let defs = self.lock_defs();
                let mut runs: Vec<SpoolRun> = Vec::new();
                for (seq, e) in &batch {
                    let Some((q, ty, item)) = parse_spool_entry(e) else {
                        gone += 1;
                        continue;
                    };
                    let Some(d) = defs.get(&q) else {
                        gone += 1;
                        continue;
                    };
                    match runs.last_mut() {
                        Some(w) if w.queue == q && w.first_seq + w.items.len() as u64 == *seq => {
                            w.items.push(item)
                        }
                        _ => runs.push(SpoolRun {
                            queue: q,
                            ty,
                            max: d.max_size,
                            first_seq: *seq,
                            items: vec![item],
                        }),
                    }
                }
                runs
            };
            let groups: Vec<PushGroup> = runs
                .iter()
                .map(|w| PushGroup {
                    queue: w.queue,
                    ty: &w.ty,
                    max: w.max,
                    first_seq: w.first_seq,
                    items: &w.items,
                })
                .collect();
            if r.q.push_many(&groups).await.is_err() {
                break;
            }
            if gone > 0 {
                r.spool_dropped.fetch_add(gone, Ordering::Relaxed);
                tracing::warn!(
                    "{gone} spooled queue items dropped: their queues were deleted meanwhile"
                );
            }
            let Some(&(upto, _)) = batch.last() else {
                break;
            };
            let n = batch.len() as u64;
            if let Err(e) = tokio::task::block_in_place(|| self.db.spool_remove_upto(upto)) {
                tracing::error!("cannot trim the Redis spool: {e:#}");
                return;
            }
            r.spooled
                .fetch_sub(n.min(r.spooled.load(Ordering::Relaxed)), Ordering::Relaxed);
            let size: u64 = batch.iter().map(|(_, e)| e.len() as u64).sum();
            r.spooled_bytes.fetch_sub(
                size.min(r.spooled_bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            delivered += n;
        }
        if delivered > 0 {
            tracing::info!(
                "{delivered} spooled queue items delivered to Redis ({} still waiting)",
                r.spooled.load(Ordering::Relaxed)
            );
        }
    }

    /// Redis mode: (items waiting in the spool, items dropped because it was full).
    pub(crate) fn redis_spool(&self) -> Option<(u64, u64)> {
        self.redis.as_ref().map(|r| {
            (
                r.spooled.load(Ordering::Relaxed),
                r.spool_dropped.load(Ordering::Relaxed),
            )
        })
    }

    fn lock_defs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, QueueDef>> {
        self.defs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rebuild_routes(&self) {
        let mut routes = Routes::new();
        for d in self.lock_defs().values() {
            routes
                .entry(d.ty.clone())
                .or_default()
                .push((d.uuid, d.sensors.clone()));
        }
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }

    /// The queues that receive `ty` data from `sensor`.
    pub(crate) fn route(&self, ty: &QueueType, sensor: Uuid) -> Vec<Uuid> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
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
    ) -> Result<()> {
        if queues.is_empty() || items.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(
            stall,
            self.tx.send(PushBatch {
                queues,
                items,
                done: None,
            }),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => bail!("the queue writer has stopped"),
            Err(_) => bail!("analyzer queues stalled for {} s", stall.as_secs()),
        }
    }

    /// The same, from a thread outside the async runtime (background gzip).
    pub(crate) fn push_blocking(&self, queues: Vec<Uuid>, items: Vec<Bytes>) {
        if queues.is_empty() || items.is_empty() {
            return;
        }
        if self
            .tx
            .blocking_send(PushBatch {
                queues,
                items,
                done: None,
            })
            .is_err()
        {
            tracing::error!("the queue writer has stopped; items lost");
        }
    }

    /// Waits until every item handed over so far is committed (shutdown).
    pub(crate) fn flush_blocking(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        let b = PushBatch {
            queues: Vec::new(),
            items: Vec::new(),
            done: Some(done),
        };
        if self.tx.blocking_send(b).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        }
    }

    /// Creates a queue.
    pub(crate) fn create(
        &self,
        ty: QueueType,
        description: String,
        max_size: u64,
        sensors: Vec<Uuid>,
    ) -> Result<QueueDef> {
        if let Some(r) = &self.redis {
            let d = r.run(r.q.create(ty, description, max_size, sensors))?;
            self.refresh(r)?;
            return Ok(d);
        }
        if max_size == 0 {
            bail!("max size must be at least 1");
        }
        let t = now();
        let def = QueueDef {
            uuid: Uuid::new_v4(),
            ty,
            description,
            max_size,
            sensors,
            created: t,
            last_updated: t,
            head: 0,
            tail: 0,
            dropped: 0,
            pushed: 0,
            last_popped: 0,
        };
        let mut defs = self.lock_defs();
        self.db.write(|tx| {
            put_def(&mut tx.open_table(QUEUES)?, &def)?;
            Ok(())
        })?;
        defs.insert(def.uuid, def.clone());
        drop(defs);
        self.rebuild_routes();
        Ok(def)
    }

    /// Every queue.
    pub(crate) fn list(&self) -> Vec<QueueDef> {
        if let Some(r) = &self.redis {
            // Live lengths and counters (the cache only routes pushes).
            if let Ok(v) = r.run(r.q.list()) {
                return v;
            }
        }
        let mut v: Vec<_> = self.lock_defs().values().cloned().collect();
        v.sort_by_key(|d| (d.created, d.uuid));
        v
    }

    /// One queue.
    pub(crate) fn get(&self, id: Uuid) -> Option<QueueDef> {
        if let Some(r) = &self.redis {
            if let Ok(d) = r.run(r.q.get(id)) {
                return d;
            }
        }
        self.lock_defs().get(&id).cloned()
    }

    /// Changes a queue's max size (dropping the oldest items if it shrinks).
    pub(crate) fn resize(&self, id: Uuid, max_size: u64) -> Result<QueueDef> {
        if let Some(r) = &self.redis {
            let d = r.run(r.q.resize(id, max_size))?;
            self.refresh(r)?;
            return Ok(d);
        }
        if max_size == 0 {
            bail!("max size must be at least 1");
        }
        let mut defs = self.lock_defs();
        let Some(mut d) = defs.get(&id).cloned() else {
            bail!("no queue {id}")
        };
        d.max_size = max_size;
        self.db.write(|tx| {
            let mut items = tx.open_table(ITEMS)?;
            trim(&mut items, &mut d)?;
            put_def(&mut tx.open_table(QUEUES)?, &d)?;
            Ok(())
        })?;
        defs.insert(id, d.clone());
        Ok(d)
    }

    /// Deletes a queue and its items.
    pub(crate) fn delete(&self, id: Uuid) -> Result<QueueDef> {
        if let Some(r) = &self.redis {
            let d = r.run(r.q.delete(id))?;
            self.refresh(r)?;
            return Ok(d);
        }
        let mut defs = self.lock_defs();
        let Some(d) = defs.get(&id).cloned() else {
            bail!("no queue {id}")
        };
        self.db.write(|tx| {
            let mut items = tx.open_table(ITEMS)?;
            let lo = item_key(id.as_bytes(), 0);
            let hi = item_key(id.as_bytes(), u64::MAX);
            items.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
            let mut t = tx.open_table(QUEUES)?;
            t.remove(id.as_bytes().as_slice())?;
            Ok(())
        })?;
        defs.remove(&id);
        drop(defs);
        self.rebuild_routes();
        Ok(d)
    }

    /// Removes and returns up to `n` items, oldest first.
    pub(crate) fn pop(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        if let Some(r) = &self.redis {
            return r.run(r.q.pop(id, n));
        }
        self.remove_head(id, n, u64::MAX)
    }

    /// Removes the items numbered below `upto` (see [`Queues::read`]): a
    /// consumer acknowledges what it has processed. Returns how many went.
    pub(crate) fn ack(&self, id: Uuid, upto: u64) -> Result<usize> {
        if let Some(r) = &self.redis {
            // Redis holds the batch read in a list of its own, numbered
            // from 0 by `read`: drop its first `upto` items.
            return r.run(r.q.ack(id, upto));
        }
        Ok(self.remove_head(id, usize::MAX, upto)?.len())
    }

    /// Removes up to `n` items from the head, stopping before item `upto`.
    fn remove_head(&self, id: Uuid, n: usize, upto: u64) -> Result<Vec<Vec<u8>>> {
        let mut defs = self.lock_defs();
        let Some(mut d) = defs.get(&id).cloned() else {
            bail!("no queue {id}")
        };
        if d.is_empty() || n == 0 || d.head >= upto {
            // A consumer is there (remembered in memory; stored with the next change).
            d.last_popped = now();
            defs.insert(id, d);
            return Ok(Vec::new());
        }
        let out = self.db.write(|tx| {
            let mut items = tx.open_table(ITEMS)?;
            let mut out = Vec::new();
            while out.len() < n && d.head < d.tail && d.head < upto {
                if let Some(v) = items.remove(item_key(id.as_bytes(), d.head).as_slice())? {
                    out.push(v.value().to_vec());
                }
                d.head += 1;
            }
            d.last_updated = now();
            d.last_popped = d.last_updated;
            put_def(&mut tx.open_table(QUEUES)?, &d)?;
            Ok(out)
        })?;
        defs.insert(id, d);
        Ok(out)
    }

    /// Removes every item of a queue (any type, extended ones too); returns
    /// how many.
    pub(crate) fn empty(&self, id: Uuid) -> Result<u64> {
        if let Some(r) = &self.redis {
            return r.run(r.q.empty(id));
        }
        let mut defs = self.lock_defs();
        let Some(mut d) = defs.get(&id).cloned() else {
            bail!("no queue {id}")
        };
        let n = d.len();
        self.db.write(|tx| {
            let mut items = tx.open_table(ITEMS)?;
            let lo = item_key(id.as_bytes(), 0);
            let hi = item_key(id.as_bytes(), u64::MAX);
            items.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
            d.head = d.tail;
            d.last_updated = now();
            d.last_popped = d.last_updated;
            put_def(&mut tx.open_table(QUEUES)?, &d)?;
            Ok(())
        })?;
        defs.insert(id, d);
        Ok(n)
    }

    /// The first `n` items, left in place.
    pub(crate) fn peek(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        if let Some(r) = &self.redis {
            return r.run(r.q.peek(id, n));
        }
        Ok(self.read(id, n)?.into_iter().map(|(_, v)| v).collect())
    }

    /// The first `n` items with their numbers, left in place until
    /// [`Queues::ack`]: a consumer that dies before acknowledging loses nothing.
    pub(crate) fn read(&self, id: Uuid, n: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        if let Some(r) = &self.redis {
            let items = r.run(r.q.read(id, n))?;
            return Ok((0u64..).zip(items).collect());
        }
        let Some(d) = self.get(id) else {
            bail!("no queue {id}")
        };
        self.db.peek_items(id.as_bytes(), d.head, n)
    }

    /// Commits batches (called by the writer thread).
    fn commit(&self, batches: &[PushBatch]) -> Result<()> {
        let mut defs = self.lock_defs();
        let mut touched: HashMap<Uuid, QueueDef> = HashMap::new();
        let t = now();
        self.db.write(|tx| {
            let mut items = tx.open_table(ITEMS)?;
            for b in batches {
                for q in &b.queues {
                    let d = match touched.get_mut(q) {
                        Some(d) => d,
                        None => match defs.get(q) {
                            Some(d) => touched.entry(*q).or_insert(d.clone()),
                            None => continue, // deleted meanwhile
                        },
                    };
                    for item in &b.items {
                        items.insert(item_key(q.as_bytes(), d.tail).as_slice(), item.as_ref())?;
                        d.tail += 1;
                        d.pushed += 1;
                    }
                    d.last_updated = t;
                }
            }
            let mut qt = tx.open_table(QUEUES)?;
            for d in touched.values_mut() {
                trim(&mut items, d)?;
                put_def(&mut qt, d)?;
            }
            Ok(())
        })?;
        for (id, d) in touched {
            defs.insert(id, d);
        }
        Ok(())
    }
}

/// Stores a queue's definition and counters.
fn put_def(t: &mut redb::Table<&[u8], &[u8]>, d: &QueueDef) -> Result<()> {
    t.insert(
        d.uuid.as_bytes().as_slice(),
        serde_json::to_vec(d)?.as_slice(),
    )?;
    Ok(())
}

/// Drops the oldest items beyond the max size.
fn trim(items: &mut redb::Table<&[u8], &[u8]>, d: &mut QueueDef) -> Result<()> {
    while d.len() > d.max_size {
        items.remove(item_key(d.uuid.as_bytes(), d.head).as_slice())?;
        d.head += 1;
        d.dropped += 1;
    }
    Ok(())
}

/// Redis mode: the writer, as [`writer`] but a task pushing to Redis.
async fn redis_writer(q: std::sync::Weak<Queues>, mut rx: mpsc::Receiver<PushBatch>) {
    while let Some(first) = rx.recv().await {
        let (batches, _) = gather(first, &mut rx);
        let Some(q) = q.upgrade() else { return };
        if let Some(r) = &q.redis {
            q.push_redis(r, &batches).await;
        }
        answer(batches);
    }
}

/// The first batch and those waiting after it, up to [`BATCH_ITEMS`] items;
/// and how many items that is.
fn gather(first: PushBatch, rx: &mut mpsc::Receiver<PushBatch>) -> (Vec<PushBatch>, usize) {
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

/// Tells those waiting (flushes) that their batches are done.
fn answer(batches: Vec<PushBatch>) {
    for b in batches {
        if let Some(d) = b.done {
            let _ = d.send(());
        }
    }
}

fn writer(q: std::sync::Weak<Queues>, mut rx: mpsc::Receiver<PushBatch>) {
    while let Some(first) = rx.blocking_recv() {
        let (batches, n) = gather(first, &mut rx);
        let Some(q) = q.upgrade() else { return };
        if let Err(e) = q.commit(&batches) {
            tracing::error!("cannot store {n} queue items: {e:#}");
        }
        answer(batches);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_types() {
        assert_eq!(QueueType::parse("3").unwrap(), QueueType::Type(3));
        assert_eq!(
            QueueType::parse("maltrail").unwrap(),
            QueueType::Extended("maltrail".into())
        );
        assert!(QueueType::parse("0").is_err());
        assert!(QueueType::parse("254").is_err());
        assert!(QueueType::parse("../x").is_err());
        let s = serde_json::to_string(&QueueType::Type(8)).unwrap();
        assert_eq!(s, "\"8\"");
    }

    #[tokio::test]
    async fn fifo_max_size_groups_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s1 = Uuid::new_v4();
        let id;
        {
            let db = Arc::new(Db::open(dir.path()).unwrap());
            let q = Queues::open(db).unwrap();
            let d = q
                .create(QueueType::Type(3), "t".into(), 5, vec![s1])
                .unwrap();
            id = d.uuid;
            assert_eq!(q.route(&QueueType::Type(3), s1), vec![id]);
            assert!(q.route(&QueueType::Type(3), Uuid::new_v4()).is_empty());
            let items: Vec<Bytes> = (0..8).map(|i| Bytes::from(format!("line {i}"))).collect();
            q.push(vec![id], items, Duration::from_secs(5))
                .await
                .unwrap();
            for _ in 0..200 {
                if q.get(id).unwrap().pushed == 8 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let d = q.get(id).unwrap();
            assert_eq!((d.len(), d.dropped), (5, 3));
            assert_eq!(
                q.pop(id, 2).unwrap(),
                vec![b"line 3".to_vec(), b"line 4".to_vec()]
            );
        }
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let q = Queues::open(db).unwrap();
        assert_eq!(q.peek(id, 10).unwrap().len(), 3);
        assert_eq!(q.pop(id, 10).unwrap()[0], b"line 5");
        assert!(q.pop(id, 10).unwrap().is_empty());
        q.delete(id).unwrap();
        assert!(q.list().is_empty());
    }
}
