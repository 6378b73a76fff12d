//! Analyzer queues in Redis (`--store redis://`): the [`QueueBackend`] over
//! [`RedisQueues`] (the reference key schema), with what a node needs to
//! lose nothing while Redis is away.
//!
//! Definitions are read again every second (and after a change made here),
//! so queues made or removed by other nodes or by reference tools are routed
//! to at once; the routing cache is the [`Catalog`]. Pushes run as one
//! idempotent Lua script per batch: each item carries this node's sequence
//! number (`PushGroup::first_seq`; the node's name is its host name and a
//! digest of a random value kept in its store with its data directory's
//! path, so a copied data directory makes a node of its own name), and the
//! script keeps the last number applied in `d4:pushed_upto:<node>` and skips
//! what is at or below it: a push retried after a timeout or lost reply, or
//! after a crash between the push and the spool's trim, never delivers an
//! item twice.
//!
//! While Redis is unreachable, queue items go to an on-disk spool (redb
//! table `redis_spool`, keyed by their sequence numbers, at most
//! [`SPOOL_MAX`] items and [`SPOOL_MAX_BYTES`]; beyond, dropped and counted)
//! and every later push joins the spool until it has drained, so order is
//! kept; the refresher delivers it once Redis answers again, runs of one
//! queue per script, items of queues deleted meanwhile dropped and counted
//! (`d4_redis_spool_items`, `d4_redis_spool_dropped_total` in `/metrics`; a
//! log line on loss and on recovery).
//!
//! The definitions last read are kept in the store ([`REDIS_DEFS_DOC`],
//! saved when routing changes) with a sequence floor a block of 2^20 ahead
//! of the numbers in use (`redis_seq_floor`): a node restarted while Redis
//! refuses connections or does not answer starts on them (lazy connections)
//! and spools; a node that never read them does not start.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::queues::{PushGroup, RedisQueues};
use crate::store::db::Db;
use crate::store::queues::{
    answer, gather, Catalog, NewQueue, PushBatch, QueueBackend, QueueDef, QueueType, Queues,
    CHANNEL_BATCHES,
};

/// The Redis backend: the routing cache and the Redis side.
pub(crate) struct RedisBackend {
    /// Definitions last read from Redis (routes every push).
    cat: Arc<Catalog>,
    /// The connection, the runtime its calls run on, and the spool counters.
    r: RedisMode,
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

/// Queues in Redis (reference schema). Must be called on the runtime:
/// blocking calls (`pop`, `create`...) later run on it from blocking
/// threads. Definitions are read again every second, so that queues made
/// or removed by other nodes or reference tools are routed to at once.
/// `data_dir` names the node in Redis.
pub(crate) async fn open(
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
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let cat = Catalog::new(db, defs);
    let (n, bytes) = cat.db.spool_size()?;
    if n > 0 {
        tracing::warn!("{n} queue items spooled while Redis was unreachable will be delivered");
    }
    let q = Arc::new(RedisBackend {
        cat: cat.clone(),
        r: RedisMode {
            q: r,
            rt: tokio::runtime::Handle::current(),
            spooled: std::sync::atomic::AtomicU64::new(n),
            spooled_bytes: std::sync::atomic::AtomicU64::new(bytes),
            spool_dropped: std::sync::atomic::AtomicU64::new(0),
            seq_floor: std::sync::atomic::AtomicU64::new(floor),
        },
    });
    tokio::spawn(redis_writer(Arc::downgrade(&q), rx));
    let weak = Arc::downgrade(&q);
    let mut saved = routing(&list);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(q) = weak.upgrade() else { return };
            let r = &q.r;
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
                        tokio::task::block_in_place(|| save_defs(&q.cat.db, &list));
                        saved = sig;
                    }
                    q.cat.replace(list);
                    q.drain_spool().await;
                }
                Err(e) if !failing => {
                    tracing::error!("cannot read the queues from Redis: {e:#}");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    });
    Ok(Queues::new(cat, tx, q))
}

impl RedisBackend {
    /// Runs a change of a queue's definition, then reads the definitions
    /// from Redis again; the changed queue.
    fn change(&self, f: impl std::future::Future<Output = Result<QueueDef>>) -> Result<QueueDef> {
        let r = &self.r;
        let d = r.run(f)?;
        let list = r.run(r.q.list())?;
        save_defs(&self.cat.db, &list);
        self.cat.replace(list);
        Ok(d)
    }

    /// Pushes batches to Redis, in order, in one script. While Redis
    /// is unreachable (or older items still wait), items go to the on-disk
    /// spool in arrival order, up to [`SPOOL_MAX`] items and
    /// [`SPOOL_MAX_BYTES`]; beyond, they are dropped
    /// and counted.
    async fn push_redis(&self, batches: &[PushBatch]) {
        let r = &self.r;
        let work: Vec<(Uuid, QueueType, u64, Vec<&[u8]>)> = {
            let defs = self.cat.lock_defs();
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
                self.cat.db.put_docs(&[(SEQ_FLOOR_DOC.to_string(), floor)])
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
        tokio::task::block_in_place(|| self.spool_items(&groups));
    }

    fn spool_items(&self, groups: &[PushGroup]) {
        let r = &self.r;
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
        match self.cat.db.spool_append(&entries) {
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
    async fn drain_spool(&self) {
        let r = &self.r;
        let mut delivered = 0u64;
        while r.spooled.load(Ordering::Relaxed) > 0 {
            let batch = match tokio::task::block_in_place(|| self.cat.db.spool_first(1000)) {
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
                let defs = self.cat.lock_defs();
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
            if let Err(e) = tokio::task::block_in_place(|| self.cat.db.spool_remove_upto(upto)) {
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
}

impl QueueBackend for RedisBackend {
    fn create(&self, q: NewQueue) -> Result<QueueDef> {
        self.change(self.r.q.create(q.ty, q.description, q.max_size, q.sensors))
    }

    fn list(&self) -> Vec<QueueDef> {
        // Live lengths and counters (the cache only routes pushes).
        let r = &self.r;
        r.run(r.q.list()).unwrap_or_else(|_| self.cat.sorted())
    }

    fn get(&self, id: Uuid) -> Option<QueueDef> {
        let r = &self.r;
        match r.run(r.q.get(id)) {
            Ok(d) => d,
            Err(_) => self.cat.lock_defs().get(&id).cloned(),
        }
    }

    fn resize(&self, id: Uuid, max_size: u64) -> Result<QueueDef> {
        self.change(self.r.q.resize(id, max_size))
    }

    fn delete(&self, id: Uuid) -> Result<QueueDef> {
        self.change(self.r.q.delete(id))
    }

    fn pop(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        let r = &self.r;
        r.run(r.q.pop(id, n))
    }

    fn ack(&self, id: Uuid, upto: u64) -> Result<usize> {
        // Redis holds the batch read in a list of its own, numbered
        // from 0 by `read`: drop its first `upto` items.
        let r = &self.r;
        r.run(r.q.ack(id, upto))
    }

    fn empty(&self, id: Uuid) -> Result<u64> {
        let r = &self.r;
        r.run(r.q.empty(id))
    }

    fn peek(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        let r = &self.r;
        r.run(r.q.peek(id, n))
    }

    fn read(&self, id: Uuid, n: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let r = &self.r;
        let items = r.run(r.q.read(id, n))?;
        Ok((0u64..).zip(items).collect())
    }

    fn spool(&self) -> Option<(u64, u64)> {
        Some((
            self.r.spooled.load(Ordering::Relaxed),
            self.r.spool_dropped.load(Ordering::Relaxed),
        ))
    }
}

/// Redis mode: the writer, as the embedded one but a task pushing to Redis.
async fn redis_writer(q: std::sync::Weak<RedisBackend>, mut rx: mpsc::Receiver<PushBatch>) {
    while let Some(first) = rx.recv().await {
        let (batches, _) = gather(first, &mut rx);
        let Some(q) = q.upgrade() else { return };
        q.push_redis(&batches).await;
        // In Redis or in the on-disk spool.
        answer(batches, true);
    }
}
