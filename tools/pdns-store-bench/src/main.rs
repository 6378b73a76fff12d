//! pdns-store-bench: redb 4 vs fjall 3 on the passive DNS upsert workload.
//!
//! `pdns-store-bench ENGINE OBSERVATIONS DIR`: OBSERVATIONS records over
//! OBSERVATIONS/2 distinct (rrname, rrtype, rdata) keys in random order
//! (each key seen twice on average), batches of $BATCH (default 50,000) observations, each
//! batch merged in memory then applied in one transaction: per distinct key
//! a point read, a merge (first/last/count) and a write, plus a reverse
//! index entry for new keys — what `d4-pdns`'s store does. Prints wall and
//! CPU seconds (getrusage, background threads included) and records/s.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

/// (rr key, rdata-index key) of key number k.
fn keys(k: u64) -> (Vec<u8>, Vec<u8>) {
    let rev = format!("org.example.zone{}.host{}", k % 1000, k / 1000);
    let rdata = format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255);
    let mut a = rev.clone().into_bytes();
    a.push(0);
    a.extend_from_slice(b"A\0");
    a.extend_from_slice(rdata.as_bytes());
    let mut b = rdata.into_bytes();
    b.push(0);
    b.extend_from_slice(rev.as_bytes());
    b.extend_from_slice(b"\0A");
    (a, b)
}

fn merge(old: Option<&[u8]>, t: u64, c: u64) -> [u8; 24] {
    let (mut f, mut l, mut n) = (t, t, 0u64);
    if let Some(o) = old.filter(|o| o.len() >= 24) {
        let g = |i: usize| u64::from_be_bytes(o[i..i + 8].try_into().unwrap_or([0; 8]));
        f = f.min(g(0));
        l = l.max(g(8));
        n = g(16);
    }
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&f.to_be_bytes());
    v[8..16].copy_from_slice(&l.to_be_bytes());
    v[16..].copy_from_slice(&(n + c).to_be_bytes());
    v
}

fn batches(n: u64) -> impl Iterator<Item = Vec<(Vec<u8>, Vec<u8>, u64, u64)>> {
    let distinct = (n / 2).max(1);
    let size: u64 = std::env::var("BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(50_000);
    (0..n).step_by(size as usize).map(move |s| {
        let mut m: HashMap<u64, (u64, u64)> = HashMap::new();
        for i in s..(s + size).min(n) {
            let k = mix(i) % distinct;
            let e = m.entry(k).or_insert((i, 0));
            e.1 += 1;
        }
        let mut v: Vec<_> = m
            .into_iter()
            .map(|(k, (t, c))| {
                let (a, b) = keys(k);
                (a, b, t, c)
            })
            .collect();
        v.sort_unstable_by(|x, y| x.0.cmp(&y.0));
        v
    })
}

fn run_redb(n: u64, dir: &Path) -> Res<u64> {
    use redb::{Database, ReadableTable, TableDefinition};
    const RR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rr");
    const IX: TableDefinition<&[u8], ()> = TableDefinition::new("rdata");
    let db = Database::create(dir.join("pdns.redb"))?;
    let mut created = 0;
    for b in batches(n) {
        let tx = db.begin_write()?;
        {
            let mut rr = tx.open_table(RR)?;
            let mut ix = tx.open_table(IX)?;
            for (k, x, t, c) in &b {
                let old = rr.get(k.as_slice())?.map(|v| v.value().to_vec());
                if old.is_none() {
                    created += 1;
                    ix.insert(x.as_slice(), ())?;
                }
                let v = merge(old.as_deref(), *t, *c);
                rr.insert(k.as_slice(), v.as_slice())?;
            }
        }
        tx.commit()?;
    }
    Ok(created)
}

fn run_fjall(n: u64, dir: &Path) -> Res<u64> {
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};
    let db = Database::builder(dir.join("pdns.fjall")).open()?;
    let rr = db.keyspace("rr", KeyspaceCreateOptions::default)?;
    let ix = db.keyspace("rdata", KeyspaceCreateOptions::default)?;
    let mut created = 0;
    for b in batches(n) {
        let mut w = db.batch().durability(Some(PersistMode::SyncData));
        for (k, x, t, c) in &b {
            let old = rr.get(k)?;
            if old.is_none() {
                created += 1;
                w.insert(&ix, x.as_slice(), b"");
            }
            let v = merge(old.as_deref(), *t, *c);
            w.insert(&rr, k.as_slice(), v.as_slice());
        }
        w.commit()?;
    }
    db.persist(PersistMode::SyncAll)?;
    Ok(created)
}

fn main() -> Res<()> {
    let a: Vec<String> = std::env::args().collect();
    let (engine, n, dir) = match a.as_slice() {
        [_, e, n, d] => (e.as_str(), n.parse::<u64>()?, Path::new(d)),
        _ => return Err("usage: pdns-store-bench redb|fjall OBSERVATIONS DIR".into()),
    };
    std::fs::create_dir_all(dir)?;
    let (w0, c0) = (Instant::now(), cpu());
    let created = match engine {
        "redb" => run_redb(n, dir)?,
        "fjall" => run_fjall(n, dir)?,
        // The workload generator alone (its cost is in the figures above).
        "none" => batches(n).map(|b| b.len() as u64).sum(),
        _ => return Err("engine: redb or fjall".into()),
    };
    let (wall, cpu_s) = (w0.elapsed().as_secs_f64(), cpu() - c0);
    println!(
        "{engine}: {n} observations, {created} records created, wall {wall:.2} s, CPU {cpu_s:.2} s, {:.0} observations per CPU-second",
        n as f64 / cpu_s
    );
    Ok(())
}
