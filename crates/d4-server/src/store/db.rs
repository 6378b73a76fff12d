//! The embedded store (redb): one file under `<data-dir>/store/`, five
//! tables (`redis_spool` holds queue items while Redis is away in Redis
//! mode; see `store::redis::backend`).
//!
//! - `kv`: JSON documents (policy, sensor metadata), keyed by name;
//! - `queues`: analyzer queue definitions and counters, keyed by queue UUID;
//! - `queue_chunks`: queue items, a chunk of them a value, keyed by queue
//!   UUID (16 bytes) + number of the chunk's first item (u64, big-endian);
//!   see `store::embedded::chunk`;
//! - `items`: queue items one a value, same keys (stores written before the
//!   chunks; moved into `queue_chunks` when the queues are opened, then empty).
//!
//! Every write goes through [`Db::write`], one ACID transaction; committed
//! data survives a crash or restart. (Why redb: see `docs/BENCHMARKS.md`,
//! "Embedded store choice".)
//!
//! A write that fails with an I/O error (disk full) poisons redb's handle;
//! [`Db::write`] then marks the store unwritable ([`Health`]) and refuses
//! writes with [`StoreUnwritable`] until the disk takes writes again: the
//! `d4-store-heal` thread ([`Db::start_healer`]) probes every second, and a
//! refused write probes too (at most every 200 ms); the database is then
//! re-opened behind the same `Db` (every user holds an `Arc<Db>`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};

use anyhow::{Context, Result};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::store::embedded::chunk;
use crate::store::health::{Health, StoreUnwritable, PROBE_EVERY};

/// JSON documents by name.
pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Queue definitions by queue UUID.
pub(crate) const QUEUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("queues");
/// Queue items one by one, by (queue UUID, sequence): the layout before
/// [`CHUNKS`], emptied into it at open.
pub(crate) const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
/// Queue items in chunks, by (queue UUID, number of the first item).
pub(crate) const CHUNKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("queue_chunks");
/// Redis mode: queue items waiting for Redis to come back, in arrival order.
pub(crate) const SPOOL: TableDefinition<u64, &[u8]> = TableDefinition::new("redis_spool");

/// The database.
pub(crate) struct Db {
    /// The redb handle (internally synchronised); `None` only while it is
    /// re-opened, or if that failed (tried again at the next probe).
    db: RwLock<Option<Database>>,
    /// The file.
    path: PathBuf,
    /// Whether the disk takes writes.
    health: Arc<Health>,
    /// One heal at a time (the healer thread, or a write probing itself).
    healing: Mutex<()>,
}

/// A read lock on the handle.
type Handle<'a> = RwLockReadGuard<'a, Option<Database>>;

impl Db {
    /// Opens (or creates) the store in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Db> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("d4.redb");
        let db = open_database(&path)?;
        Ok(Db {
            db: RwLock::new(Some(db)),
            path,
            health: Arc::new(Health::new(dir)),
            healing: Mutex::new(()),
        })
    }

    /// Whether the disk takes writes, shared with workers and `/metrics`.
    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The handle, read-locked for one operation.
    fn handle(&self) -> Result<Handle<'_>> {
        let h = self.db.read().unwrap_or_else(|p| p.into_inner());
        if h.is_none() {
            return Err(self.health.refusal().into());
        }
        Ok(h)
    }

    /// Runs `f` in one write transaction and commits it. Refused with
    /// [`StoreUnwritable`] while the disk is full; an I/O error marks it so.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let writable = self.health.is_writable() || (self.health.probe_due() && self.heal());
        if !writable {
            return Err(self.health.refusal().into());
        }
        let h = self.handle()?;
        let Some(db) = h.as_ref() else {
            return Err(self.health.refusal().into());
        };
        let r = (|| {
            let tx = db.begin_write()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        match r {
            Err(e) if is_io(&e) => {
                let why = format!("store write failed: {e:#}");
                self.health.mark_unwritable(&why, true);
                Err(e.context(StoreUnwritable(why)))
            }
            r => r,
        }
    }

    /// One probe: if the disk takes writes again, re-opens the database if
    /// it was poisoned and marks the store writable. Whether it is.
    pub(crate) fn heal(&self) -> bool {
        let _one = self.healing.lock().unwrap_or_else(|p| p.into_inner());
        if self.health.is_writable() {
            return true;
        }
        if !self.health.probe() {
            return false;
        }
        if self.health.needs_reopen() {
            let mut h = self.db.write().unwrap_or_else(|p| p.into_inner());
            // The old handle must be closed first (redb locks its file).
            h.take();
            match open_database(&self.path) {
                Ok(db) => *h = Some(db),
                Err(e) => {
                    tracing::warn!("cannot re-open the store yet: {e:#}");
                    return false;
                }
            }
            tracing::warn!("the store {} was re-opened", self.path.display());
        }
        self.health.mark_writable();
        true
    }

    /// Starts the `d4-store-heal` thread: probes every second while the
    /// store is unwritable (ends with the last `Arc<Db>`).
    pub(crate) fn start_healer(self: &Arc<Db>) -> Result<()> {
        let weak: Weak<Db> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("d4-store-heal".into())
            .spawn(move || loop {
                std::thread::sleep(PROBE_EVERY);
                let Some(db) = weak.upgrade() else { return };
                db.heal();
            })
            .context("starting the store healer")?;
        Ok(())
    }

    /// A JSON document from `kv`.
    pub(crate) fn get_doc<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(KV)?;
        match t.get(key)? {
            Some(v) => Ok(Some(
                serde_json::from_slice(v.value())
                    .with_context(|| format!("store document {key:?} is corrupt"))?,
            )),
            None => Ok(None),
        }
    }

    /// Every `kv` document whose key starts with `prefix`.
    pub(crate) fn docs_with_prefix<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(KV)?;
        let mut out = Vec::new();
        for e in t.range(prefix..)? {
            let (k, v) = e?;
            if !k.value().starts_with(prefix) {
                break;
            }
            match serde_json::from_slice(v.value()) {
                Ok(doc) => out.push((k.value().to_string(), doc)),
                Err(e) => tracing::warn!("store document {:?} is corrupt, ignored: {e}", k.value()),
            }
        }
        Ok(out)
    }

    /// Stores JSON documents in one transaction.
    pub(crate) fn put_docs<T: serde::Serialize>(&self, docs: &[(String, T)]) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(KV)?;
            for (k, v) in docs {
                t.insert(k.as_str(), serde_json::to_vec(v)?.as_slice())?;
            }
            Ok(())
        })
    }

    /// Removes a `kv` document.
    pub(crate) fn delete_doc(&self, key: &str) -> Result<()> {
        self.write(|tx| {
            tx.open_table(KV)?.remove(key)?;
            Ok(())
        })
    }

    /// Every queue definition (raw JSON).
    pub(crate) fn queue_rows(&self) -> Result<Vec<Vec<u8>>> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(QUEUES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(e?.1.value().to_vec());
        }
        Ok(out)
    }

    /// Writes entries into the spool under their sequence numbers (one
    /// transaction).
    pub(crate) fn spool_append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(SPOOL)?;
            for (k, e) in entries {
                t.insert(k, e.as_slice())?;
            }
            Ok(())
        })
    }

    /// The newest spool key.
    pub(crate) fn spool_last_key(&self) -> Result<Option<u64>> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(SPOOL)?;
        let last = t.last()?.map(|(k, _)| k.value());
        Ok(last)
    }

    /// The oldest `n` spool entries with their keys.
    pub(crate) fn spool_first(&self, n: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(SPOOL)?;
        let mut out = Vec::new();
        for e in t.iter()?.take(n) {
            let (k, v) = e?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Removes the spool entries up to and including key `upto`.
    pub(crate) fn spool_remove_upto(&self, upto: u64) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(SPOOL)?;
            t.retain_in(..=upto, |_, _| false)?;
            Ok(())
        })
    }

    /// Entries in the spool, and their bytes.
    pub(crate) fn spool_size(&self) -> Result<(u64, u64)> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(SPOOL)?;
        let mut bytes = 0u64;
        for e in t.iter()? {
            bytes += e?.1.value().len() as u64;
        }
        Ok((t.len()?, bytes))
    }

    /// Up to `n` items of a queue from sequence `from` on, without removing them.
    pub(crate) fn peek_items(
        &self,
        queue: &[u8; 16],
        from: u64,
        n: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(CHUNKS)?;
        let mut out = Vec::new();
        if n == 0 {
            return Ok(out);
        }
        chunk::scan(&t, queue, from, |seq, v| {
            out.push((seq, v.to_vec()));
            out.len() < n
        })?;
        Ok(out)
    }

    /// Whether `items` (the layout before chunks) holds anything.
    pub(crate) fn has_legacy_items(&self) -> Result<bool> {
        let h = self.handle()?;
        let tx = read_tx(&h)?;
        let t = tx.open_table(ITEMS)?;
        Ok(!t.is_empty()?)
    }
}

/// Opens (or creates) the file and its tables.
fn open_database(path: &Path) -> Result<Database> {
    let db = Database::create(path).with_context(|| {
        format!(
            "cannot open the store {} (is another d4 server using this data dir?)",
            path.display()
        )
    })?;
    let tx = db.begin_write()?;
    tx.open_table(KV)?;
    tx.open_table(QUEUES)?;
    tx.open_table(ITEMS)?;
    tx.open_table(CHUNKS)?;
    tx.open_table(SPOOL)?;
    tx.commit()?;
    Ok(db)
}

/// A read transaction on a locked handle.
fn read_tx(h: &Handle<'_>) -> Result<redb::ReadTransaction> {
    match h.as_ref() {
        Some(db) => Ok(db.begin_read()?),
        None => anyhow::bail!("the store is being re-opened"),
    }
}

/// Whether a store error is an I/O failure (disk full...), after which
/// redb must be re-opened.
fn is_io(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<std::io::Error>() || {
            let s = c.to_string();
            s.contains("I/O error")
        }
    })
}

/// The `items` key of one queue item.
pub(crate) fn item_key(queue: &[u8; 16], seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(queue);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}
