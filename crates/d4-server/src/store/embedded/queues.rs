//! Analyzer queues in the embedded store (the default): definitions and
//! counters in redb's `queues` table, items in `items` keyed by queue and
//! sequence number; pushes committed by one writer thread, up to
//! [`BATCH_ITEMS`](crate::store::queues::BATCH_ITEMS) items per transaction; pops, resizes and deletes are
//! transactions of their own. The definitions in memory ([`Catalog`]) are
//! changed under their lock in the same step as the store.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::db::{item_key, Db, ITEMS, QUEUES};
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
            let mut items = tx.open_table(ITEMS)?;
            trim(&mut items, &mut d)?;
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
            clear(&mut tx.open_table(ITEMS)?, id)?;
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
            clear(&mut tx.open_table(ITEMS)?, id)?;
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

    /// Commits batches (called by the writer thread).
    fn commit(&self, batches: &[PushBatch]) -> Result<()> {
        let mut defs = self.cat.lock_defs();
        let mut touched: HashMap<Uuid, QueueDef> = HashMap::new();
        let t = now();
        self.cat.db.write(|tx| {
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

/// A queue's definition, or the error that there is none.
fn known(defs: &HashMap<Uuid, QueueDef>, id: Uuid) -> Result<QueueDef> {
    defs.get(&id)
        .cloned()
        .ok_or_else(|| anyhow!("no queue {id}"))
}

/// Removes every item of a queue.
fn clear(items: &mut redb::Table<&[u8], &[u8]>, id: Uuid) -> Result<()> {
    let lo = item_key(id.as_bytes(), 0);
    let hi = item_key(id.as_bytes(), u64::MAX);
    items.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
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
