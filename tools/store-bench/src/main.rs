//! store-bench: redb 4 vs fjall 3 on d4's analyzer-queue workload.
//!
//! Model: many FIFO queues in one database. Item key = queue id (16 bytes) ++ sequence number
//! (u64 big-endian); value = one 120-byte line. Per-queue metadata (head, tail, dropped) is kept
//! in memory and written in the same transaction / write batch as the items it describes.
//!
//! Phases (each measured for wall time and process CPU time via getrusage(RUSAGE_SELF), which
//! includes the engines' background threads):
//!   push         200,000 items, 4 queues round-robin, 256 items per commit, cap 50,000 per queue
//!                (oldest items deleted + dropped counter bumped in the same commit when exceeded)
//!   reopen-full  (extra) close + reopen with all 200,000 items present, verify metadata, scan-count
//!   pop          drain every queue in pop batches of 64 (read + delete + meta in one commit),
//!                queues served round-robin, FIFO order verified
//!   single-push  2,000 single-item pushes, one commit each
//!   single-pop   2,000 single-item pops, one commit each
//!   reopen       close + reopen, verify metadata, scan-count remaining items
//!
//! The parent process runs every (run, engine) pair in a fresh child process (so RUSAGE_SELF
//! covers one engine only and no background thread leaks between measurements), then prints
//! medians as markdown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const KEY_LEN: usize = 24;
type Key = [u8; KEY_LEN];
type QueueId = [u8; 16];
type MetaVal = [u8; 24];

// ---------------------------------------------------------------- configuration

#[derive(Clone, Debug)]
struct Cfg {
    items: u64,
    item_len: usize,
    queues: usize,
    push_batch: usize,
    max_per_queue: u64,
    pop_batch: usize,
    single: u64,
}

impl Default for Cfg {
    fn default() -> Self {
        Cfg {
            items: 200_000,
            item_len: 120,
            queues: 4,
            push_batch: 256,
            max_per_queue: 50_000,
            pop_batch: 64,
            single: 2_000,
        }
    }
}

const ALL_ENGINES: &[&str] = &["redb", "fjall-sync", "fjall-buffer", "redb-none"];

fn engine_desc(name: &str) -> &'static str {
    match name {
        "redb" => "redb default: Durability::Immediate (fdatasync per commit, 1-phase commit, quick_repair off)",
        "fjall-sync" => "fjall WriteBatch durability Some(PersistMode::SyncData) (fdatasync of journal per commit)",
        "fjall-buffer" => "fjall default: PersistMode::Buffer (journal write(2) to OS per commit; survives process crash, not OS crash/power loss)",
        "redb-none" => "redb Durability::None: REFERENCE ONLY, NOT crash-safe (commits only become durable at close / next Immediate commit)",
        _ => "?",
    }
}

// ---------------------------------------------------------------- rusage / timing

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

struct Meter {
    wall: Instant,
    cpu: f64,
}

impl Meter {
    fn start() -> Self {
        Meter { wall: Instant::now(), cpu: cpu_seconds() }
    }
    fn stop(self, phase: &str, items: u64) {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu;
        // machine-readable line for the parent
        println!("PHASE {phase} {wall:.6} {cpu:.6} {items}");
    }
}

fn dir_size(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut alloc = 0;
    let md = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(_) => return (0, 0),
    };
    if md.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let (a, b) = dir_size(&e.path());
                apparent += a;
                alloc += b;
            }
        }
    } else {
        apparent += md.len();
        alloc += md.blocks() * 512;
    }
    (apparent, alloc)
}

// ---------------------------------------------------------------- queue model

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Meta {
    head: u64, // seq of the oldest item present
    tail: u64, // seq the next push gets
    dropped: u64,
}

impl Meta {
    fn encode(&self) -> MetaVal {
        let mut v = [0u8; 24];
        v[0..8].copy_from_slice(&self.head.to_be_bytes());
        v[8..16].copy_from_slice(&self.tail.to_be_bytes());
        v[16..24].copy_from_slice(&self.dropped.to_be_bytes());
        v
    }
    fn decode(v: &[u8]) -> Meta {
        let u = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap());
        Meta { head: u(0), tail: u(8), dropped: u(16) }
    }
    fn len(&self) -> u64 {
        self.tail - self.head
    }
}

fn queue_id(q: usize) -> QueueId {
    // fixed, uuid-looking ids
    let mut id = [0u8; 16];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (q as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
    for b in id.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    id
}

fn item_key(qid: &QueueId, seq: u64) -> Key {
    let mut k = [0u8; KEY_LEN];
    k[..16].copy_from_slice(qid);
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn key_seq(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[16..24].try_into().unwrap())
}

/// A log-line-like value: "<seq:016x> q<q> <pseudo-random text fields>", exactly `len` bytes.
fn make_value(q: usize, seq: u64, len: usize) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (q as u64 + 1);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let r = [next(), next(), next(), next()];
    let s = format!(
        "{seq:016x} q{q} 2026-05-01T12:{:02}:{:02}.{:06}Z src=10.{}.{}.{} dst=192.0.2.{} proto=tcp sport={} dport={} bytes={} flags=PA ",
        r[0] % 60, (r[0] >> 8) % 60, (r[0] >> 16) % 1_000_000,
        r[1] % 256, (r[1] >> 8) % 256, (r[1] >> 16) % 256, r[2] % 256,
        (r[2] >> 8) % 65536, (r[3] % 3) * 443 + 53, (r[3] >> 8) % 100_000,
    );
    let mut v = s.into_bytes();
    v.resize(len, b'.');
    v
}

fn check_value(q: usize, seq: u64, v: &[u8], len: usize) {
    assert_eq!(v.len(), len, "value length");
    let got = u64::from_str_radix(std::str::from_utf8(&v[..16]).unwrap(), 16).unwrap();
    assert_eq!(got, seq, "FIFO order violated in queue {q}");
    let tag = format!(" q{q} ");
    assert_eq!(&v[16..16 + tag.len()], tag.as_bytes(), "value in wrong queue");
}

// ---------------------------------------------------------------- engine abstraction

/// One commit worth of writes.
#[derive(Default)]
struct WriteSet<'a> {
    inserts: Vec<(Key, &'a [u8])>,
    deletes: Vec<Key>,
    metas: Vec<(QueueId, MetaVal)>,
}

trait Store {
    /// Apply inserts, deletes and metadata puts atomically in one commit.
    fn write(&mut self, ws: &WriteSet) -> Res<()>;
    /// In one commit: read up to `n` items with key in [lo, hi), delete them, put `meta`.
    /// Appends (seq, value) to `out`.
    fn pop(&mut self, lo: Key, hi: Key, n: usize, meta: (QueueId, MetaVal), out: &mut Vec<(u64, Vec<u8>)>) -> Res<()>;
    fn load_meta(&self, qid: &QueueId) -> Res<Option<Meta>>;
    /// Scan-count items with key in [lo, hi).
    fn count_range(&self, lo: Key, hi: Key) -> Res<u64>;
    /// Scan-count all items.
    fn count_all(&self) -> Res<u64>;
    fn close(self: Box<Self>) -> Res<()>;
}

// ---------------------------------------------------------------- redb

mod redb_store {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

    const ITEMS: TableDefinition<&[u8; 24], &[u8]> = TableDefinition::new("items");
    const META: TableDefinition<&[u8; 16], &[u8; 24]> = TableDefinition::new("queue_meta");

    pub struct RedbStore {
        db: Database,
        durability: Durability,
    }

    pub fn open(path: &Path, durable: bool) -> Res<Box<dyn Store>> {
        let file = path.join("queues.redb");
        let db = if file.exists() { Database::open(&file)? } else { Database::create(&file)? };
        let durability = if durable { Durability::Immediate } else { Durability::None };
        // make sure the tables exist so read transactions can open them
        let tx = db.begin_write()?;
        {
            tx.open_table(ITEMS)?;
            tx.open_table(META)?;
        }
        tx.commit()?;
        Ok(Box::new(RedbStore { db, durability }))
    }

    impl Store for RedbStore {
        fn write(&mut self, ws: &WriteSet) -> Res<()> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(self.durability)?;
            {
                let mut t = tx.open_table(ITEMS)?;
                for (k, v) in &ws.inserts {
                    t.insert(k, *v)?;
                }
                for k in &ws.deletes {
                    t.remove(k)?;
                }
                let mut m = tx.open_table(META)?;
                for (q, v) in &ws.metas {
                    m.insert(q, v)?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn pop(&mut self, lo: Key, hi: Key, n: usize, meta: (QueueId, MetaVal), out: &mut Vec<(u64, Vec<u8>)>) -> Res<()> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(self.durability)?;
            {
                let mut t = tx.open_table(ITEMS)?;
                // extract_from_if removes exactly the entries read from the iterator
                for r in t.extract_from_if::<&Key, _>(&lo..&hi, |_, _| true)?.take(n) {
                    let (k, v) = r?;
                    out.push((key_seq(k.value()), v.value().to_vec()));
                }
                let mut m = tx.open_table(META)?;
                m.insert(&meta.0, &meta.1)?;
            }
            tx.commit()?;
            Ok(())
        }

        fn load_meta(&self, qid: &QueueId) -> Res<Option<Meta>> {
            let tx = self.db.begin_read()?;
            let m = tx.open_table(META)?;
            Ok(m.get(qid)?.map(|g| Meta::decode(g.value())))
        }

        fn count_range(&self, lo: Key, hi: Key) -> Res<u64> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(ITEMS)?;
            let mut n = 0;
            for r in t.range::<&Key>(&lo..&hi)? {
                let (_k, v) = r?;
                std::hint::black_box(v.value());
                n += 1;
            }
            Ok(n)
        }

        fn count_all(&self) -> Res<u64> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(ITEMS)?;
            let mut n = 0;
            for r in t.iter()? {
                let (_k, v) = r?;
                std::hint::black_box(v.value());
                n += 1;
            }
            Ok(n)
        }

        fn close(self: Box<Self>) -> Res<()> {
            self.db.close()?;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------- fjall

mod fjall_store {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct FjallStore {
        db: Database,
        items: Keyspace,
        meta: Keyspace,
        /// durability passed to every write batch
        mode: PersistMode,
    }

    pub fn open(path: &Path, mode: PersistMode) -> Res<Box<dyn Store>> {
        let db = Database::builder(path.join("queues.fjall")).open()?;
        let items = db.keyspace("items", KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("queue_meta", KeyspaceCreateOptions::default)?;
        Ok(Box::new(FjallStore { db, items, meta, mode }))
    }

    impl Store for FjallStore {
        fn write(&mut self, ws: &WriteSet) -> Res<()> {
            let mut b = self.db.batch().durability(Some(self.mode));
            for (k, v) in &ws.inserts {
                b.insert(&self.items, &k[..], *v);
            }
            for k in &ws.deletes {
                b.remove(&self.items, &k[..]);
            }
            for (q, v) in &ws.metas {
                b.insert(&self.meta, &q[..], &v[..]);
            }
            b.commit()?;
            Ok(())
        }

        fn pop(&mut self, lo: Key, hi: Key, n: usize, meta: (QueueId, MetaVal), out: &mut Vec<(u64, Vec<u8>)>) -> Res<()> {
            let mut b = self.db.batch().durability(Some(self.mode));
            for g in self.items.range(lo..hi).take(n) {
                let (k, v) = g.into_inner()?;
                out.push((key_seq(&k), v.to_vec()));
                b.remove(&self.items, k);
            }
            b.insert(&self.meta, &meta.0[..], &meta.1[..]);
            b.commit()?;
            Ok(())
        }

        fn load_meta(&self, qid: &QueueId) -> Res<Option<Meta>> {
            Ok(self.meta.get(qid)?.map(|v| Meta::decode(&v)))
        }

        fn count_range(&self, lo: Key, hi: Key) -> Res<u64> {
            let mut n = 0;
            for g in self.items.range(lo..hi) {
                let (_k, v) = g.into_inner()?;
                std::hint::black_box(&v);
                n += 1;
            }
            Ok(n)
        }

        fn count_all(&self) -> Res<u64> {
            let mut n = 0;
            for g in self.items.iter() {
                let (_k, v) = g.into_inner()?;
                std::hint::black_box(&v);
                n += 1;
            }
            Ok(n)
        }

        fn close(self: Box<Self>) -> Res<()> {
            // clean shutdown: make the journal durable, then drop every handle (Drop joins the
            // background workers and releases the lock file)
            self.db.persist(PersistMode::SyncAll)?;
            let FjallStore { db, items, meta, .. } = *self;
            drop(items);
            drop(meta);
            drop(db);
            Ok(())
        }
    }
}

fn open_engine(engine: &str, dir: &Path) -> Res<Box<dyn Store>> {
    match engine {
        "redb" => redb_store::open(dir, true),
        "redb-none" => redb_store::open(dir, false),
        "fjall-sync" => fjall_store::open(dir, fjall::PersistMode::SyncData),
        "fjall-buffer" => fjall_store::open(dir, fjall::PersistMode::Buffer),
        _ => Err(format!("unknown engine {engine}").into()),
    }
}

// ---------------------------------------------------------------- the workload (child)

struct Queues {
    ids: Vec<QueueId>,
    meta: Vec<Meta>,
}

impl Queues {
    fn range(&self, q: usize) -> (Key, Key) {
        (item_key(&self.ids[q], self.meta[q].head), item_key(&self.ids[q], self.meta[q].tail))
    }
}

/// Push `items` (queue index, value) in one commit, trimming queues over `max`.
fn push_commit(store: &mut dyn Store, qs: &mut Queues, items: &[(usize, Vec<u8>)], max: u64) -> Res<()> {
    let mut ws = WriteSet::default();
    let mut new_meta = qs.meta.clone();
    let mut touched = vec![false; qs.ids.len()];
    for (q, v) in items {
        let m = &mut new_meta[*q];
        ws.inserts.push((item_key(&qs.ids[*q], m.tail), v.as_slice()));
        m.tail += 1;
        touched[*q] = true;
        while m.len() > max {
            ws.deletes.push(item_key(&qs.ids[*q], m.head));
            m.head += 1;
            m.dropped += 1;
        }
    }
    for (q, t) in touched.iter().enumerate() {
        if *t {
            ws.metas.push((qs.ids[q], new_meta[q].encode()));
        }
    }
    // NB: a key inserted and trimmed in the same batch is inserted then deleted (inserts are
    // applied first by both engines' implementations above).
    store.write(&ws)?;
    qs.meta = new_meta;
    Ok(())
}

fn pop_commit(store: &mut dyn Store, qs: &mut Queues, q: usize, n: usize, cfg: &Cfg, buf: &mut Vec<(u64, Vec<u8>)>) -> Res<usize> {
    let want = (qs.meta[q].len() as usize).min(n);
    if want == 0 {
        return Ok(0);
    }
    let (lo, hi) = qs.range(q);
    let mut m = qs.meta[q];
    m.head += want as u64;
    buf.clear();
    store.pop(lo, hi, want, (qs.ids[q], m.encode()), buf)?;
    assert_eq!(buf.len(), want, "queue {q}: popped fewer items than metadata says");
    for (i, (seq, v)) in buf.iter().enumerate() {
        let expect = qs.meta[q].head + i as u64;
        assert_eq!(*seq, expect, "queue {q}: FIFO key order");
        check_value(q, expect, v, cfg.item_len);
    }
    qs.meta[q] = m;
    Ok(want)
}

fn verify_after_reopen(store: &dyn Store, qs: &Queues) -> Res<u64> {
    let mut total = 0;
    for (q, id) in qs.ids.iter().enumerate() {
        let m = store.load_meta(id)?.ok_or("queue metadata missing after reopen")?;
        if m != qs.meta[q] {
            return Err(format!("queue {q}: metadata after reopen {m:?} != expected {:?}", qs.meta[q]).into());
        }
        let (lo, hi) = qs.range(q);
        let n = store.count_range(lo, hi)?;
        if n != m.len() {
            return Err(format!("queue {q}: {n} items after reopen, metadata says {}", m.len()).into());
        }
        total += n;
    }
    let all = store.count_all()?;
    if all != total {
        return Err(format!("{all} items in table, {total} accounted for by queue metadata").into());
    }
    Ok(total)
}

fn child(engine: &str, dir: &Path, cfg: &Cfg) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let mut qs = Queues { ids: (0..cfg.queues).map(queue_id).collect(), meta: vec![Meta::default(); cfg.queues] };

    // values are generated up front so the measured phases time the engine, not formatting
    let values: Vec<(usize, Vec<u8>)> = (0..cfg.items)
        .map(|i| {
            let q = (i % cfg.queues as u64) as usize;
            (q, make_value(q, i / cfg.queues as u64, cfg.item_len))
        })
        .collect();

    let mut store = open_engine(engine, dir)?;

    // 1. push
    let m = Meter::start();
    for chunk in values.chunks(cfg.push_batch) {
        push_commit(store.as_mut(), &mut qs, chunk, cfg.max_per_queue)?;
    }
    m.stop("push", cfg.items);
    let (app, alloc) = dir_size(dir);
    println!("SIZE push {app} {alloc}");
    let dropped: u64 = qs.meta.iter().map(|m| m.dropped).sum();
    println!("INFO dropped_after_push {dropped}");
    drop(values);

    // 1b. reopen with a full database (extra)
    let m = Meter::start();
    store.close()?;
    store = open_engine(engine, dir)?;
    let n = verify_after_reopen(store.as_ref(), &qs)?;
    m.stop("reopen-full", n);

    // 2. pop, batches of `pop_batch`, queues served round-robin
    let m = Meter::start();
    let mut buf = Vec::with_capacity(cfg.pop_batch);
    let mut popped = 0u64;
    loop {
        let mut any = false;
        for q in 0..cfg.queues {
            let k = pop_commit(store.as_mut(), &mut qs, q, cfg.pop_batch, cfg, &mut buf)?;
            popped += k as u64;
            any |= k > 0;
        }
        if !any {
            break;
        }
    }
    m.stop("pop", popped);
    assert!(qs.meta.iter().all(|m| m.len() == 0));

    // 3. single-item commits
    let singles: Vec<(usize, Vec<u8>)> = (0..cfg.single)
        .map(|i| {
            let q = (i % cfg.queues as u64) as usize;
            (q, make_value(q, qs.meta[q].tail + i / cfg.queues as u64, cfg.item_len))
        })
        .collect();
    let m = Meter::start();
    for it in &singles {
        push_commit(store.as_mut(), &mut qs, std::slice::from_ref(it), cfg.max_per_queue)?;
    }
    m.stop("single-push", cfg.single);
    let m = Meter::start();
    let mut n = 0u64;
    for i in 0..cfg.single {
        n += pop_commit(store.as_mut(), &mut qs, (i % cfg.queues as u64) as usize, 1, cfg, &mut buf)? as u64;
    }
    m.stop("single-pop", n);
    assert_eq!(n, cfg.single);

    // 4. reopen
    let m = Meter::start();
    store.close()?;
    let store = open_engine(engine, dir)?;
    let n = verify_after_reopen(store.as_ref(), &qs)?;
    m.stop("reopen", n);
    println!("INFO remaining_after_reopen {n}");
    store.close()?;
    let (app, alloc) = dir_size(dir);
    println!("SIZE end {app} {alloc}");
    Ok(())
}

/// Crash test, writer side: push phase, then abort() without closing anything (simulated
/// process crash: no destructors, no final persist/fsync).
fn child_crash_write(engine: &str, dir: &Path, cfg: &Cfg) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let mut qs = Queues { ids: (0..cfg.queues).map(queue_id).collect(), meta: vec![Meta::default(); cfg.queues] };
    let mut store = open_engine(engine, dir)?;
    let mut batch = Vec::with_capacity(cfg.push_batch);
    for i in 0..cfg.items {
        let q = (i % cfg.queues as u64) as usize;
        batch.push((q, make_value(q, i / cfg.queues as u64, cfg.item_len)));
        if batch.len() == cfg.push_batch || i + 1 == cfg.items {
            push_commit(store.as_mut(), &mut qs, &batch, cfg.max_per_queue)?;
            batch.clear();
        }
    }
    println!("INFO crash_write_done {}", cfg.items);
    use std::io::Write;
    std::io::stdout().flush()?;
    // SAFETY: plain syscall; no core file for the simulated crash
    unsafe {
        let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
    std::process::abort();
}

/// Crash test, recovery side: reopen after the abort(), time it, and report what survived.
fn child_crash_recover(engine: &str, dir: &Path, cfg: &Cfg) -> Res<()> {
    let ids: Vec<QueueId> = (0..cfg.queues).map(queue_id).collect();
    let m = Meter::start();
    let store = open_engine(engine, dir)?;
    let found = store.count_all()?;
    m.stop("crash-reopen", found);
    // metadata every committed batch must have left behind
    let mut meta_ok = true;
    let mut expected = 0;
    for (q, id) in ids.iter().enumerate() {
        let n = cfg.items / cfg.queues as u64 + u64::from((q as u64) < cfg.items % cfg.queues as u64);
        let head = n.saturating_sub(cfg.max_per_queue);
        let want = Meta { head, tail: n, dropped: head };
        expected += want.len();
        meta_ok &= store.load_meta(id)? == Some(want);
    }
    println!("INFO crash_found {found} crash_expected {expected} crash_meta_ok {meta_ok}");
    store.close()?;
    Ok(())
}

// ---------------------------------------------------------------- parent: orchestrate + report

#[derive(Default)]
struct Sample {
    wall: f64,
    cpu: f64,
    items: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

const PHASES: &[&str] = &["push", "reopen-full", "pop", "single-push", "single-pop", "reopen", "crash-reopen"];

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut cfg = Cfg::default();
    let mut runs = 3usize;
    let mut engines: Vec<String> = ALL_ENGINES.iter().map(|s| s.to_string()).collect();
    let mut base: PathBuf = std::env::temp_dir();
    let mut child_engine: Option<String> = None;
    let mut child_dir: Option<PathBuf> = None;
    let mut child_mode = "full".to_string();
    let mut crash_test = true;
    let mut i = 1;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().ok_or_else(|| format!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--runs" => runs = val()?.parse()?,
            "--engines" => engines = val()?.split(',').map(str::to_string).collect(),
            "--dir" => base = val()?.into(),
            "--items" => cfg.items = val()?.parse()?,
            "--max-per-queue" => cfg.max_per_queue = val()?.parse()?,
            "--single" => cfg.single = val()?.parse()?,
            "--child" => child_engine = Some(val()?),
            "--child-dir" => child_dir = Some(val()?.into()),
            "--child-mode" => child_mode = val()?,
            "--no-crash-test" => {
                crash_test = false;
                i += 1;
                continue;
            }
            "-h" | "--help" => {
                println!("usage: store-bench [--runs N] [--engines redb,fjall-sync,fjall-buffer,redb-none] [--dir BASE] [--items N] [--max-per-queue N] [--single N] [--no-crash-test]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
        i += 2;
    }

    if let Some(engine) = child_engine {
        let dir = child_dir.ok_or("--child needs --child-dir")?;
        return match child_mode.as_str() {
            "full" => child(&engine, &dir, &cfg),
            "crash-write" => child_crash_write(&engine, &dir, &cfg),
            "crash-recover" => child_crash_recover(&engine, &dir, &cfg),
            m => Err(format!("unknown child mode {m}").into()),
        };
    }

    let exe = std::env::current_exe()?;
    // results[engine][phase] = samples
    let mut results: BTreeMap<String, BTreeMap<String, Vec<Sample>>> = BTreeMap::new();
    let mut sizes: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    let mut infos: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut crash: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for run in 0..runs {
        // rotate engine order per run so no engine always runs first / after the same neighbour
        let mut order = engines.clone();
        order.rotate_left(run % engines.len());
        for engine in &order {
            let dir = base.join(format!("store-bench-{}-{engine}-run{run}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let modes: &[&str] = if crash_test { &["full", "crash-write", "crash-recover"] } else { &["full"] };
            for mode in modes {
                if *mode == "crash-write" {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                let mut cmd = Command::new(&exe);
                cmd.arg("--child").arg(engine).arg("--child-dir").arg(&dir).arg("--child-mode").arg(mode);
                cmd.arg("--items").arg(cfg.items.to_string());
                cmd.arg("--max-per-queue").arg(cfg.max_per_queue.to_string());
                cmd.arg("--single").arg(cfg.single.to_string());
                eprintln!("run {}/{runs}: {engine} ({mode}) ...", run + 1);
                let out = cmd.output()?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                // the crash writer is expected to die from SIGABRT
                let ok = if *mode == "crash-write" { stdout.contains("crash_write_done") } else { out.status.success() };
                if !ok {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(format!(
                        "{engine} run {run} ({mode}) failed: {}\n{stdout}\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    )
                    .into());
                }
                for line in stdout.lines() {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    match f.first().copied() {
                        Some("PHASE") => {
                            let s = Sample { wall: f[2].parse()?, cpu: f[3].parse()?, items: f[4].parse()? };
                            eprintln!("  {:<12} wall {:>8.3}s cpu {:>8.3}s items {}", f[1], s.wall, s.cpu, s.items);
                            results.entry(engine.clone()).or_default().entry(f[1].to_string()).or_default().push(s);
                        }
                        Some("SIZE") if f[1] == "push" => {
                            sizes.entry(engine.clone()).or_default().push((f[2].parse()?, f[3].parse()?));
                        }
                        Some("INFO") if f[1] == "crash_found" => {
                            crash.entry(engine.clone()).or_default().push(f[1..].join(" "));
                        }
                        Some("SIZE") | Some("INFO") => {
                            infos.entry(engine.clone()).or_default().push(format!("run{run} {}", f[1..].join(" ")));
                        }
                        _ => {}
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    // ---- report
    let range = |engine: &str, phase: &str| -> Option<(f64, f64)> {
        let s = results.get(engine)?.get(phase)?;
        let w = s.iter().map(|x| x.wall);
        Some((w.clone().fold(f64::INFINITY, f64::min), w.fold(0.0, f64::max)))
    };
    let med = |engine: &str, phase: &str| -> Option<(f64, f64, u64)> {
        let s = results.get(engine)?.get(phase)?;
        Some((
            median(s.iter().map(|x| x.wall).collect()),
            median(s.iter().map(|x| x.cpu).collect()),
            s[0].items,
        ))
    };
    println!();
    println!(
        "Config: {} items x {} B, {} queues, push batch {}, max/queue {}, pop batch {}, single {}+{}; median of {runs} run(s)",
        cfg.items, cfg.item_len, cfg.queues, cfg.push_batch, cfg.max_per_queue, cfg.pop_batch, cfg.single, cfg.single
    );
    println!();
    println!("| phase | engine | wall s | wall min–max | CPU s | items/s | CPU µs/item |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for phase in PHASES {
        for engine in &engines {
            if let Some((w, c, n)) = med(engine, phase) {
                let (ips, cpi) = if n > 0 {
                    (format!("{:.0}", n as f64 / w), format!("{:.2}", c * 1e6 / n as f64))
                } else {
                    ("– (0 items)".to_string(), "–".to_string())
                };
                let (lo, hi) = range(engine, phase).unwrap();
                println!("| {phase} | {engine} | {w:.3} | {lo:.3}–{hi:.3} | {c:.3} | {ips} | {cpi} |");
            }
        }
    }
    println!();
    println!("Database size on disk after push (median; apparent bytes / allocated bytes):");
    println!();
    println!("| engine | apparent MiB | allocated MiB |");
    println!("|---|---:|---:|");
    for engine in &engines {
        if let Some(v) = sizes.get(engine) {
            let a = median(v.iter().map(|x| x.0 as f64).collect()) / 1048576.0;
            let b = median(v.iter().map(|x| x.1 as f64).collect()) / 1048576.0;
            println!("| {engine} | {a:.1} | {b:.1} |");
        }
    }
    let ratio_pairs: Vec<(&str, &str)> = [("fjall-sync", "redb"), ("fjall-buffer", "redb"), ("fjall-buffer", "redb-none")]
        .into_iter()
        .filter(|(a, b)| engines.iter().any(|e| e == a) && engines.iter().any(|e| e == b))
        .collect();
    if !ratio_pairs.is_empty() {
        println!();
        println!("Ratios of medians (fjall / redb; < 1 means fjall is faster / cheaper):");
        println!();
        let mut hdr = "| phase |".to_string();
        let mut sep = "|---|".to_string();
        for (a, b) in &ratio_pairs {
            hdr += &format!(" {a}/{b} wall | {a}/{b} CPU |");
            sep += "---:|---:|";
        }
        println!("{hdr}");
        println!("{sep}");
        for phase in PHASES {
            let mut row = format!("| {phase} |");
            for (a, b) in &ratio_pairs {
                match (med(a, phase), med(b, phase)) {
                    (Some(x), Some(y)) => row += &format!(" {:.2} | {:.2} |", x.0 / y.0, x.1 / y.1),
                    _ => row += " – | – |",
                }
            }
            println!("{row}");
        }
        let mut row = "| size after push (allocated) |".to_string();
        for (a, b) in &ratio_pairs {
            match (sizes.get(*a), sizes.get(*b)) {
                (Some(x), Some(y)) => {
                    // allocated bytes: fjall's journal is preallocated sparse, apparent size misleads
                    let x = median(x.iter().map(|s| s.1 as f64).collect());
                    let y = median(y.iter().map(|s| s.1 as f64).collect());
                    if y >= 1048576.0 {
                        row += &format!(" {:.2} | |", x / y);
                    } else {
                        row += " n/a | |";
                    }
                }
                _ => row += " – | – |",
            }
        }
        println!("{row}");
    }
    println!();
    if !crash.is_empty() {
        println!("Crash test (push phase, then abort() with no close; then reopen and count):");
        println!();
        for engine in &engines {
            if let Some(v) = crash.get(engine) {
                println!("- `{engine}`: {}", v.join("; "));
            }
        }
        println!();
    }
    println!("Durability settings:");
    for engine in &engines {
        println!("- `{engine}`: {}", engine_desc(engine));
    }
    println!();
    println!("Per-run info:");
    for (engine, v) in &infos {
        println!("- {engine}: {}", v.join("; "));
    }
    Ok(())
}
