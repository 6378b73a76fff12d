//! Analyzer queues in the embedded store (the default): definitions and
//! counters in redb's `queues` table, items in `queue_chunks`, the items one
//! commit pushes to a queue as one or a few values (see [`chunk`]); pushes
//! committed by one writer thread, up to
//! [`BATCH_ITEMS`](crate::store::queues::BATCH_ITEMS) items per transaction;
//! pops, resizes and deletes are transactions of their own, moving the
//! queue's head and deleting the chunks left wholly below it. The
//! definitions in memory ([`Catalog`]) are changed under their lock in the
//! same step as the store.
//!
//! Crash safety: a commit holds the chunks and the counters together, so a
//! crash loses nothing committed and never shows half a commit.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use redb::ReadableTable;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::db::{Db, CHUNKS, ITEMS, QUEUES};
use crate::store::embedded::chunk;
use crate::store::queues::{
    answer, gather, now, Catalog, NewQueue, PushBatch, QueueBackend, QueueDef, Queues,
    CHANNEL_BATCHES,
};

/// Queues in the embedded store.
pub(crate) struct EmbeddedQueues {
    /// The definitions, the truth here (saved in the same transactions).
    cat: Arc<Catalog>,
}

impl Queues {
    /// Queues in the embedded store: loads them and starts the writer thread.
    pub(crate) fn open(db: Arc<Db>) -> Result<Arc<Queues>> {
        open(db)
    }
}

/// Loads the queues from the store and starts the writer thread.
fn open(db: Arc<Db>) -> Result<Arc<Queues>> {
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
    if db.has_legacy_items()? {
        let n = migrate(&db).context("moving queue items into chunks")?;
        tracing::info!("{n} queue items of an older store moved into chunks");
    }
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let cat = Catalog::new(db, defs);
    let backend = Arc::new(EmbeddedQueues { cat: cat.clone() });
    let weak = Arc::downgrade(&backend);
    std::thread::Builder::new()
        .name("d4-queue-writer".into())
        .spawn(move || writer(weak, rx))
        .context("starting the queue writer")?;
    Ok(Queues::new(cat, tx, backend))
}

impl QueueBackend for EmbeddedQueues {
    /// Creates a queue.
    fn create(&self, q: NewQueue) -> Result<QueueDef> {
        let NewQueue {
            ty,
            description,
            max_size,
            sensors,
        } = q;
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
        let mut defs = self.cat.lock_defs();
        self.cat.db.write(|tx| {
            put_def(&mut tx.open_table(QUEUES)?, &def)?;
            Ok(())
        })?;
        defs.insert(def.uuid, def.clone());
        drop(defs);
        self.cat.rebuild_routes();
        Ok(def)
    }

    /// Every queue.
    fn list(&self) -> Vec<QueueDef> {
        self.cat.sorted()
    }

    /// One queue.
    fn get(&self, id: Uuid) -> Option<QueueDef> {
        self.cat.lock_defs().get(&id).cloned()
    }

    /// Changes a queue's max size (dropping the oldest items if it shrinks).
    fn resize(&self, id: Uuid, max_size: u64) -> Result<QueueDef> {
        let mut defs = self.cat.lock_defs();
        let mut d = known(&defs, id)?;
        d.max_size = max_size;
        self.cat.db.write(|tx| {
            let mut chunks = tx.open_table(CHUNKS)?;
            trim(&mut chunks, &mut d)?;
            put_def(&mut tx.open_table(QUEUES)?, &d)?;
            Ok(())
        })?;
        defs.insert(id, d.clone());
        Ok(d)
    }

    /// Deletes a queue and its items.
    fn delete(&self, id: Uuid) -> Result<QueueDef> {
        let mut defs = self.cat.lock_defs();
        let d = known(&defs, id)?;
        self.cat.db.write(|tx| {
            chunk::clear(&mut tx.open_table(CHUNKS)?, id.as_bytes())?;
            let mut t = tx.open_table(QUEUES)?;
            t.remove(id.as_bytes().as_slice())?;
            Ok(())
        })?;
        defs.remove(&id);
        drop(defs);
        self.cat.rebuild_routes();
        Ok(d)
    }

    /// Removes and returns up to `n` items, oldest first.
    fn pop(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        self.remove_head(id, n, u64::MAX)
    }

    /// Removes the items numbered below `upto` (see [`Queues::read`]): a
    /// consumer acknowledges what it has processed. Returns how many went.
    fn ack(&self, id: Uuid, upto: u64) -> Result<usize> {
        Ok(self.remove_head(id, usize::MAX, upto)?.len())
    }

    /// Removes every item of a queue (any type, extended ones too); returns
    /// how many.
    fn empty(&self, id: Uuid) -> Result<u64> {
        let mut defs = self.cat.lock_defs();
        let mut d = known(&defs, id)?;
        let n = d.len();
        self.cat.db.write(|tx| {
            chunk::clear(&mut tx.open_table(CHUNKS)?, id.as_bytes())?;
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
    fn peek(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        Ok(self.read(id, n)?.into_iter().map(|(_, v)| v).collect())
    }

    /// The first `n` items with their numbers, left in place until
    /// [`Queues::ack`]: a consumer that dies before acknowledging loses nothing.
    fn read(&self, id: Uuid, n: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let d = known(&self.cat.lock_defs(), id)?;
        self.cat.db.peek_items(id.as_bytes(), d.head, n)
    }
}

impl EmbeddedQueues {
    /// Removes up to `n` items from the head, stopping before item `upto`.
    fn remove_head(&self, id: Uuid, n: usize, upto: u64) -> Result<Vec<Vec<u8>>> {
        let mut defs = self.cat.lock_defs();
        let mut d = known(&defs, id)?;
        if d.is_empty() || n == 0 || d.head >= upto {
            // A consumer is there (remembered in memory; stored with the next change).
            d.last_popped = now();
            defs.insert(id, d);
            return Ok(Vec::new());
        }
        let out = self.cat.db.write(|tx| {
            let mut chunks = tx.open_table(CHUNKS)?;
            let mut out = Vec::new();
            let stop = d.tail.min(upto);
            let mut next = d.head;
            chunk::scan(&chunks, id.as_bytes(), d.head, |seq, v| {
                if seq >= stop {
                    return false;
                }
                out.push(v.to_vec());
                next = seq + 1;
                out.len() < n
            })?;
            // Numbers without an item (none in a consistent store) are
            // passed over, as they were one by one.
            d.head = if out.len() < n { stop } else { next };
            chunk::drop_below(&mut chunks, id.as_bytes(), d.head, d.tail)?;
            d.last_updated = now();
            d.last_popped = d.last_updated;
            put_def(&mut tx.open_table(QUEUES)?, &d)?;
            Ok(out)
        })?;
        defs.insert(id, d);
        Ok(out)
    }

    /// Commits batches (called by the writer thread).
    fn commit(&self, batches: &[PushBatch]) -> Result<()> {
        let mut defs = self.cat.lock_defs();
        let mut touched: HashMap<Uuid, QueueDef> = HashMap::new();
        let t = now();
        // Each queue's items of these batches, in order (references only).
        let mut items: HashMap<Uuid, Vec<&bytes::Bytes>> = HashMap::new();
        for b in batches {
            for q in &b.queues {
                items.entry(*q).or_default().extend(b.items.iter());
            }
        }
        self.cat.db.write(|tx| {
            let mut chunks = tx.open_table(CHUNKS)?;
            let mut buf = Vec::new();
            for (q, list) in &items {
                let Some(d) = defs.get(q) else {
                    continue; // deleted meanwhile
                };
                let mut d = d.clone();
                chunk::append(&mut chunks, q.as_bytes(), d.tail, list, &mut buf)?;
                d.tail += list.len() as u64;
                d.pushed += list.len() as u64;
                d.last_updated = t;
                touched.insert(*q, d);
            }
            let mut qt = tx.open_table(QUEUES)?;
            for d in touched.values_mut() {
                trim(&mut chunks, d)?;
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

/// A queue's definition, or the error that there is none.
fn known(defs: &HashMap<Uuid, QueueDef>, id: Uuid) -> Result<QueueDef> {
    defs.get(&id)
        .cloned()
        .ok_or_else(|| anyhow!("no queue {id}"))
}

/// Drops the oldest items beyond the max size.
fn trim(chunks: &mut chunk::Chunks<'_>, d: &mut QueueDef) -> Result<()> {
    let over = d.len().saturating_sub(d.max_size);
    if over > 0 {
        d.head += over;
        d.dropped += over;
        chunk::drop_below(chunks, d.uuid.as_bytes(), d.head, d.tail)?;
    }
    Ok(())
}

/// Moves the items of a store written before chunks (`items`, one a value)
/// into chunks, in one transaction: a crash leaves either layout whole.
/// Returns how many were moved.
fn migrate(db: &Db) -> Result<u64> {
    db.write(|tx| {
        let old = tx.open_table(ITEMS)?;
        let mut chunks = tx.open_table(CHUNKS)?;
        let mut buf = Vec::new();
        let mut moved = 0u64;
        // A run of consecutive items of one queue: (queue, first number, items).
        let mut run: Option<([u8; 16], u64, Vec<Vec<u8>>)> = None;
        for e in old.iter()? {
            let (k, v) = e?;
            let k = k.value();
            let (Some(q), Some(seq)) = (
                k.get(..16).and_then(|q| <[u8; 16]>::try_from(q).ok()),
                k.get(16..24)
                    .and_then(|s| <[u8; 8]>::try_from(s).ok())
                    .map(u64::from_be_bytes),
            ) else {
                tracing::warn!("a queue item with a malformed key was left out");
                continue;
            };
            let follows = matches!(&run, Some((rq, first, list))
                if *rq == q && *first + list.len() as u64 == seq);
            if !follows {
                if let Some((rq, first, list)) = run.take() {
                    chunk::append(&mut chunks, &rq, first, &list, &mut buf)?;
                }
                run = Some((q, seq, Vec::new()));
            }
            if let Some((_, _, list)) = run.as_mut() {
                list.push(v.value().to_vec());
                if list.len() == chunk::CHUNK_ITEMS {
                    if let Some((rq, first, list)) = run.take() {
                        chunk::append(&mut chunks, &rq, first, &list, &mut buf)?;
                    }
                }
            }
            moved += 1;
        }
        if let Some((rq, first, list)) = run.take() {
            chunk::append(&mut chunks, &rq, first, &list, &mut buf)?;
        }
        drop(old);
        tx.open_table(ITEMS)?.retain(|_, _| false)?;
        Ok(moved)
    })
}

/// The writer thread: commits batches as they come. Items that cannot be
/// committed because the disk is full are held (in order; the channel
/// fills behind them, which stops the sessions) and committed once the
/// store is writable again: nothing handed over is dropped.
fn writer(q: std::sync::Weak<EmbeddedQueues>, mut rx: mpsc::Receiver<PushBatch>) {
    while let Some(first) = rx.blocking_recv() {
        let (batches, n) = gather(first, &mut rx);
        let Some(q) = q.upgrade() else { return };
        let health = q.cat.db.health().clone();
        let mut held = false;
        let ok = loop {
            match q.commit(&batches) {
                Ok(()) => break true,
                Err(e) if crate::store::health::is_unwritable(&e) => {
                    if !held {
                        tracing::warn!(
                            "{n} queue items wait for the disk to take writes again: {e:#}"
                        );
                        held = true;
                        health.set_items_waiting(n as u64);
                    }
                    // Woken by the healer; a server stopping ends the wait
                    // when the last handle goes (`Weak`).
                    health.wait_writable_blocking(std::time::Duration::from_millis(500));
                }
                Err(e) => {
                    tracing::error!("cannot store {n} queue items: {e:#}");
                    break false;
                }
            }
        };
        if held {
            health.set_items_waiting(0);
            if ok {
                tracing::warn!("{n} held queue items committed");
            }
        }
        answer(batches, ok);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use redb::ReadableTableMetadata;

    use super::*;
    use crate::store::queues::QueueType;

    #[tokio::test]
    async fn fifo_max_size_groups_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s1 = Uuid::new_v4();
        let id;
        {
            let db = Arc::new(Db::open(dir.path()).unwrap());
            let q = open(db).unwrap();
            let d = q
                .create(NewQueue {
                    ty: QueueType::Type(3),
                    description: "t".into(),
                    max_size: 5,
                    sensors: vec![s1],
                })
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
        let q = open(db).unwrap();
        assert_eq!(q.peek(id, 10).unwrap().len(), 3);
        assert_eq!(q.pop(id, 10).unwrap()[0], b"line 5");
        assert!(q.pop(id, 10).unwrap().is_empty());
        q.delete(id).unwrap();
        assert!(q.list().is_empty());
    }

    /// A store written before chunks (items one a value in `items`) opens
    /// with its items in order, moved into chunks; pops, reads and acks then
    /// work on them, and nothing is left in `items`.
    #[tokio::test(flavor = "multi_thread")]
    async fn items_of_an_older_store_are_moved_into_chunks() {
        use crate::store::db::item_key;
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let (a, b);
        {
            let q = open(db.clone()).unwrap();
            let new = |max_size| NewQueue {
                ty: QueueType::Type(3),
                description: String::new(),
                max_size,
                sensors: Vec::new(),
            };
            a = q.create(new(5000)).unwrap();
            b = q.create(new(10)).unwrap();
        }
        // The old layout: queue a holds items 3..2503, queue b 0..4.
        db.write(|tx| {
            let mut items = tx.open_table(ITEMS)?;
            let mut qt = tx.open_table(QUEUES)?;
            for (d, lo, hi) in [(&a, 3u64, 2503u64), (&b, 0, 4)] {
                for i in lo..hi {
                    let v = format!(
                        "{} {i}",
                        d.description.len() + usize::from(d.max_size == 10)
                    );
                    items.insert(item_key(d.uuid.as_bytes(), i).as_slice(), v.as_bytes())?;
                }
                let mut d = d.clone();
                d.head = lo;
                d.tail = hi;
                d.pushed = hi;
                put_def(&mut qt, &d)?;
            }
            Ok(())
        })
        .unwrap();
        assert!(db.has_legacy_items().unwrap());
        let q = open(db.clone()).unwrap();
        assert!(!db.has_legacy_items().unwrap());
        assert_eq!(q.get(a.uuid).unwrap().len(), 2500);
        let got = q.read(a.uuid, 2).unwrap();
        assert_eq!(got, vec![(3, b"0 3".to_vec()), (4, b"0 4".to_vec())]);
        assert_eq!(q.ack(a.uuid, 1500).unwrap(), 1497);
        assert_eq!(q.pop(a.uuid, 1).unwrap(), vec![b"0 1500".to_vec()]);
        let rest = q.pop(a.uuid, 10_000).unwrap();
        assert_eq!(rest.len(), 1002);
        assert_eq!(rest[1001], b"0 2502");
        assert_eq!(
            q.peek(b.uuid, 10).unwrap(),
            vec![
                b"1 0".to_vec(),
                b"1 1".to_vec(),
                b"1 2".to_vec(),
                b"1 3".to_vec()
            ]
        );
        // New pushes go on after the moved items.
        q.push(
            vec![b.uuid],
            vec![Bytes::from("new")],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        tokio::task::block_in_place(|| q.flush_blocking());
        assert_eq!(q.pop(b.uuid, 10).unwrap().len(), 5);
        assert_eq!(q.get(b.uuid).unwrap().tail, 5);
    }

    /// Pops, reads and acks across chunk boundaries, and `max_size` drops
    /// counted item by item, whatever the chunks.
    #[tokio::test(flavor = "multi_thread")]
    async fn items_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let q = open(db.clone()).unwrap();
        let d = q
            .create(NewQueue {
                ty: QueueType::Type(3),
                description: String::new(),
                max_size: 3000,
                sensors: Vec::new(),
            })
            .unwrap();
        let mut n = 0u64;
        for size in [1usize, 700, 2000, 5, 1500] {
            let items: Vec<Bytes> = (n..n + size as u64)
                .map(|i| Bytes::from(format!("l{i}")))
                .collect();
            n += size as u64;
            q.push(vec![d.uuid], items, Duration::from_secs(5))
                .await
                .unwrap();
        }
        tokio::task::block_in_place(|| q.flush_blocking());
        let g = q.get(d.uuid).unwrap();
        assert_eq!((g.pushed, g.len(), g.dropped), (4206, 3000, 1206));
        let r = q.read(d.uuid, 5000).unwrap();
        assert_eq!(r.len(), 3000);
        for (k, (seq, v)) in r.iter().enumerate() {
            assert_eq!(*seq, 1206 + k as u64);
            assert_eq!(v, format!("l{seq}").as_bytes());
        }
        assert_eq!(q.ack(d.uuid, 2100).unwrap(), 894);
        let p = q.pop(d.uuid, 1030).unwrap();
        assert_eq!(
            (p[0].as_slice(), p[1029].as_slice()),
            (&b"l2100"[..], &b"l3129"[..])
        );
        q.resize(d.uuid, 10).unwrap();
        let g = q.get(d.uuid).unwrap();
        assert_eq!((g.head, g.len(), g.dropped), (4196, 10, 1206 + 1066));
        assert_eq!(q.peek(d.uuid, 1).unwrap(), vec![b"l4196".to_vec()]);
        // Only the chunks still holding items are stored.
        let chunks = db.write(|tx| Ok(tx.open_table(CHUNKS)?.len()?)).unwrap();
        assert!(chunks <= 2, "{chunks} chunks");
        assert_eq!(q.empty(d.uuid).unwrap(), 10);
        assert!(q.pop(d.uuid, 1).unwrap().is_empty());
    }

    /// While the store takes no writes, pushed items are held by the
    /// writer (counted), queue creation is refused as "unwritable", and
    /// everything is committed in order once the store heals.
    #[tokio::test(flavor = "multi_thread")]
    async fn items_are_held_while_the_store_is_unwritable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let q = open(db.clone()).unwrap();
        let d = q
            .create(NewQueue {
                ty: QueueType::Type(3),
                description: String::new(),
                max_size: 100,
                sensors: Vec::new(),
            })
            .unwrap();
        let health = db.health().clone();
        health.set_fail_probes(true);
        health.mark_unwritable("test", true);
        let e = q
            .create(NewQueue {
                ty: QueueType::Type(3),
                description: String::new(),
                max_size: 1,
                sensors: Vec::new(),
            })
            .unwrap_err();
        assert!(crate::store::health::is_unwritable(&e), "{e:#}");
        for i in 0..3 {
            let items = vec![Bytes::from(format!("line {i}"))];
            q.push(vec![d.uuid], items, Duration::from_secs(5))
                .await
                .unwrap();
        }
        for _ in 0..200 {
            if health.items_waiting() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(health.items_waiting() > 0);
        assert_eq!(q.get(d.uuid).unwrap().pushed, 0);
        assert!(!tokio::task::block_in_place(|| db.heal()), "still full");
        health.set_fail_probes(false);
        assert!(tokio::task::block_in_place(|| db.heal()), "re-opened");
        assert!(health.is_writable());
        for _ in 0..200 {
            if q.get(d.uuid).unwrap().pushed == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = q.pop(d.uuid, 10).unwrap();
        assert_eq!(
            got,
            vec![b"line 0".to_vec(), b"line 1".to_vec(), b"line 2".to_vec()]
        );
        assert_eq!(health.items_waiting(), 0);
    }
}
