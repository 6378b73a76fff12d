//! The embedded passive DNS store (redb, one file).
//!
//! # Layout
//!
//! - table `rr`: key `revname 0x00 rrtype 0x00 rdata` → value
//!   `time_first u64 BE | time_last u64 BE | count u64 BE | sensors`, where
//!   `revname` is the owner name with its labels reversed
//!   (`www.example.com` → `com.example.www`), so that one prefix scan finds a
//!   name (`com.example.www 0x00`) or every name under a suffix
//!   (`com.example.`), and `sensors` is up to [`MAX_SENSORS`] ids, each
//!   `len u8 | bytes`.
//! - table `rdata`: key `rdata 0x00 revname 0x00 rrtype` → `()`: the reverse
//!   index (which names point at this address or name).
//! - table `sensors`: every sensor id seen (for `/info`).
//!
//! Names and rdata are stored normalised ([`crate::record::normalize_name`],
//! [`crate::record::normalize_rdata`]); types as upper-case mnemonics, so an
//! unknown type is kept as whatever `TYPE<n>` or mnemonic it came with.
//! Writes come in batches ([`Store::upsert`]): one transaction per batch.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use anyhow::{Context, Result};
use foldhash::fast::RandomState;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::record::Record;

const RR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rr");
const RDATA: TableDefinition<&[u8], ()> = TableDefinition::new("rdata");
const SENSORS: TableDefinition<&str, ()> = TableDefinition::new("sensors");

/// Most sensor ids remembered per record.
pub const MAX_SENSORS: usize = 16;

pub use d4_api::lookup::reverse_name;

fn reverse_into_bytes(n: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(reverse_name(n).as_bytes());
}

use d4_api::lookup::reverse_name_into as reverse_into;

fn rr_key(revname: &str, rrtype: &str, rdata: &str, k: &mut Vec<u8>) {
    k.clear();
    k.extend_from_slice(revname.as_bytes());
    k.push(0);
    k.extend_from_slice(rrtype.as_bytes());
    k.push(0);
    k.extend_from_slice(rdata.as_bytes());
}

/// The aggregate kept per record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Agg {
    first: u64,
    last: u64,
    count: u64,
    sensors: Vec<String>,
}

impl Agg {
    fn decode(v: &[u8]) -> Option<Agg> {
        let n = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(v.get(i..i + 8)?.try_into().ok()?))
        };
        let mut a = Agg {
            first: n(0)?,
            last: n(8)?,
            count: n(16)?,
            sensors: Vec::new(),
        };
        let mut rest = v.get(24..)?;
        while let Some((&l, r)) = rest.split_first() {
            let s = r.get(..usize::from(l))?;
            a.sensors.push(String::from_utf8_lossy(s).into_owned());
            rest = &r[usize::from(l)..];
        }
        Some(a)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.last.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        for s in &self.sensors {
            let b = &s.as_bytes()[..s.len().min(255)];
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
    }

    fn merge(&mut self, o: &Agg) {
        if self.count == 0 {
            *self = o.clone();
            return;
        }
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.count = self.count.saturating_add(o.count);
        for s in &o.sensors {
            if self.sensors.len() < MAX_SENSORS && !self.sensors.contains(s) {
                self.sensors.push(s.clone());
            }
        }
    }
}

/// Per-type retention and excluded names.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Seconds after `time_last` a record of this type is dropped; types
    /// absent here are kept forever.
    pub expiry: HashMap<String, u64>,
    /// Name suffixes never stored (normalised, e.g. `in-addr.arpa`).
    pub excluded: Vec<String>,
}

impl Policy {
    /// Whether a name is excluded: equal to or under an excluded suffix.
    pub fn excluded(&self, name: &str) -> bool {
        self.excluded.iter().any(|s| {
            name == s
                || (name.len() > s.len()
                    && name.ends_with(s.as_str())
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.')
        })
    }
}

/// Observations merged in memory per record, keyed by their store key,
/// waiting for [`Store::apply`]. Memory grows with distinct records, not
/// with observations.
#[derive(Default)]
pub struct Pending {
    /// Keyed by names a sensor reports (anyone's choice): foldhash, seeded
    /// per process, so crafted names cannot collide on purpose.
    map: HashMap<Vec<u8>, Agg, RandomState>,
    sensors: Vec<String>,
    key: Vec<u8>,
    rev: String,
}

impl Pending {
    /// Merges one observation.
    pub fn add(&mut self, o: &Record) {
        self.rev.clear();
        reverse_into(&o.rrname, &mut self.rev);
        rr_key(&self.rev, &o.rrtype, &o.rdata, &mut self.key);
        let a = Agg {
            first: o.time_first,
            last: o.time_last,
            count: o.count,
            sensors: Vec::new(),
        };
        let e = match self.map.get_mut(self.key.as_slice()) {
            Some(e) => {
                e.merge(&a);
                e
            }
            None => self.map.entry(self.key.clone()).or_insert(a),
        };
        for s in &o.sensors {
            if e.sensors.len() < MAX_SENSORS && !e.sensors.contains(s) {
                e.sensors.push(s.clone());
            }
            if !self.sensors.contains(s) && self.sensors.len() < 1024 {
                self.sensors.push(s.clone());
            }
        }
    }

    /// Distinct records pending.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What a lookup matches.
#[derive(Clone, Copy, Debug)]
pub enum Select<'a> {
    /// The records of one name (normalised).
    Name(&'a str),
    /// The records of every name under a suffix (normalised, without `*.`).
    Suffix(&'a str),
    /// The records whose rdata is this (normalised).
    Rdata(&'a str),
}

/// Conditions on the records of a [`Store::scan`].
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this type (canonical mnemonic).
    pub rrtype: Option<String>,
    /// Only records first seen after this time (seconds).
    pub time_first_after: Option<u64>,
    /// Only records last seen before this time (seconds).
    pub time_last_before: Option<u64>,
}

impl Filter {
    fn rrtype_is(&self, t: &[u8]) -> bool {
        self.rrtype.as_ref().is_none_or(|x| x.as_bytes() == t)
    }

    /// The time conditions on a stored value (its first 16 bytes).
    fn times(&self, v: &[u8]) -> bool {
        let n = |i: usize| {
            v.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let (Some(first), Some(last)) = (n(0), n(8)) else {
            return false;
        };
        self.time_first_after.is_none_or(|t| first > t)
            && self.time_last_before.is_none_or(|t| last < t)
    }
}

/// A page of a [`Store::scan`].
#[derive(Debug, Default)]
pub struct Scan {
    /// The records, in store key order.
    pub records: Vec<Record>,
    /// Where the next page starts (after this key), while there may be one.
    pub next: Option<Vec<u8>>,
    /// Index entries examined for this page (records returned, records
    /// skipped by the filter, and the one that showed a next page).
    pub examined: u64,
}

/// Why a scan failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The cursor is not a key of this lookup.
    #[error("bad cursor: not one of this query")]
    Cursor,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

macro_rules! store_error {
    ($($t:ty),*) => {$(
        impl From<$t> for ScanError {
            fn from(e: $t) -> ScanError {
                ScanError::Store(e.into())
            }
        }
    )*};
}
store_error!(redb::StorageError, redb::TableError, redb::TransactionError);

/// The bookkeeping of one [`Store::scan`] page.
struct Paging {
    scan: Scan,
    limit: usize,
    /// Most entries examined.
    budget: u64,
    /// The key of the last entry this page is done with: the next page
    /// starts after it.
    done: Vec<u8>,
}

impl Paging {
    /// Counts one more entry examined; false when the budget is spent.
    fn examine(&mut self) -> bool {
        if self.scan.examined >= self.budget {
            return false;
        }
        self.scan.examined += 1;
        true
    }

    /// An entry examined, `rec` when it passed the filter; true when it
    /// shows that a next page follows (the page was full).
    fn offer(&mut self, rec: Option<Record>, key: &[u8]) -> bool {
        let full = self.scan.records.len() >= self.limit;
        match rec {
            Some(_) if full => return true,
            Some(r) => self.scan.records.push(r),
            // Skipped after the page is full: the next page looks at it
            // again (it is not done with).
            None if full => return false,
            None => {}
        }
        self.done.clear();
        self.done.extend_from_slice(key);
        false
    }

    /// The page, with a cursor: more entries may match.
    fn more(mut self) -> Scan {
        self.scan.next = Some(self.done);
        self.scan
    }
}

/// The store.
pub struct Store {
    db: Database,
}

/// What a batch changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpsertStats {
    /// Records created.
    pub created: u64,
    /// Records updated.
    pub updated: u64,
}

impl Store {
    /// Opens (or creates) the store file with redb's default cache.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, None)
    }

    /// Opens (or creates) the store file; `cache_bytes` sizes redb's page
    /// cache (lookups read through it; a store larger than it is read with
    /// a system call per missing page).
    pub fn open_with_cache(path: &Path, cache_bytes: Option<usize>) -> Result<Store> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut b = Database::builder();
        if let Some(c) = cache_bytes {
            b.set_cache_size(c);
        }
        let db = b
            .create(path)
            .with_context(|| format!("cannot open the pdns store {}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(RR)?;
        tx.open_table(RDATA)?;
        tx.open_table(SENSORS)?;
        tx.commit()?;
        Ok(Store { db })
    }

    /// Adds observations in one transaction (duplicates within the batch
    /// are merged first).
    pub fn upsert(&self, batch: &[Record]) -> Result<UpsertStats> {
        let mut p = Pending::default();
        for o in batch {
            p.add(o);
        }
        self.apply(&mut p)
    }

    /// Writes an aggregate in one transaction and empties it.
    pub fn apply(&self, p: &mut Pending) -> Result<UpsertStats> {
        let mut keyed: Vec<(Vec<u8>, Agg)> = p.map.drain().collect();
        // Key order makes the B-tree inserts local.
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut st = UpsertStats::default();
        let tx = self.db.begin_write()?;
        if !p.sensors.is_empty() {
            let mut t = tx.open_table(SENSORS)?;
            for s in p.sensors.drain(..) {
                t.insert(s.as_str(), ())?;
            }
        }
        {
            let mut rr = tx.open_table(RR)?;
            let mut rd = tx.open_table(RDATA)?;
            let mut val = Vec::with_capacity(64);
            let mut rkey = Vec::with_capacity(64);
            for (key, agg) in &keyed {
                let old = rr.get(key.as_slice())?.and_then(|v| Agg::decode(v.value()));
                let mut a = match old {
                    Some(a) => {
                        st.updated += 1;
                        a
                    }
                    None => {
                        st.created += 1;
                        let mut parts = key.splitn(3, |&b| b == 0);
                        if let (Some(rev), Some(t), Some(d)) =
                            (parts.next(), parts.next(), parts.next())
                        {
                            rkey.clear();
                            rkey.extend_from_slice(d);
                            rkey.push(0);
                            rkey.extend_from_slice(rev);
                            rkey.push(0);
                            rkey.extend_from_slice(t);
                            rd.insert(rkey.as_slice(), ())?;
                        }
                        Agg::default()
                    }
                };
                a.merge(agg);
                a.encode(&mut val);
                rr.insert(key.as_slice(), val.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(st)
    }

    fn decode_rr(k: &[u8], v: &[u8]) -> Option<Record> {
        let mut parts = k.splitn(3, |&b| b == 0);
        let rev = std::str::from_utf8(parts.next()?).ok()?;
        let t = std::str::from_utf8(parts.next()?).ok()?;
        let d = std::str::from_utf8(parts.next()?).ok()?;
        let a = Agg::decode(v)?;
        let name = if rev.is_empty() {
            ".".to_string()
        } else {
            reverse_name(rev)
        };
        Some(Record {
            rrname: name,
            rrtype: t.to_string(),
            rdata: d.to_string(),
            time_first: a.first,
            time_last: a.last,
            count: a.count,
            sensors: a.sensors,
        })
    }

    /// Records of a name (`wildcard`: also every name under it), at most
    /// `max` of them.
    pub fn by_name(&self, name: &str, wildcard: bool, max: usize) -> Result<Vec<Record>> {
        let rev = reverse_name(name);
        let mut prefix = rev.into_bytes();
        prefix.push(if wildcard { b'.' } else { 0 });
        let tx = self.db.begin_read()?;
        let rr = tx.open_table(RR)?;
        let mut out = Vec::new();
        for e in rr.range(prefix.as_slice()..)? {
            let (k, v) = e?;
            if !k.value().starts_with(&prefix) || out.len() >= max {
                break;
            }
            if let Some(s) = Self::decode_rr(k.value(), v.value()) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Records whose rdata is `rdata` (the reverse index), at most `max`.
    pub fn by_rdata(&self, rdata: &str, max: usize) -> Result<Vec<Record>> {
        let mut prefix = rdata.as_bytes().to_vec();
        prefix.push(0);
        let tx = self.db.begin_read()?;
        let idx = tx.open_table(RDATA)?;
        let rr = tx.open_table(RR)?;
        let mut out = Vec::new();
        let mut key = Vec::new();
        for e in idx.range(prefix.as_slice()..)? {
            let (k, _) = e?;
            let k = k.value();
            if !k.starts_with(&prefix) || out.len() >= max {
                break;
            }
            let mut p = k[prefix.len()..].splitn(2, |&b| b == 0);
            let (Some(rev), Some(t)) = (p.next(), p.next()) else {
                continue;
            };
            key.clear();
            key.extend_from_slice(rev);
            key.push(0);
            key.extend_from_slice(t);
            key.push(0);
            key.extend_from_slice(rdata.as_bytes());
            if let Some(v) = rr.get(key.as_slice())? {
                if let Some(s) = Self::decode_rr(&key, v.value()) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// A page of the records `sel` matches that pass `filter`, in store
    /// key order, starting after the key `after` (a [`Scan::next`] of the
    /// previous page). At most `limit` records are returned and at most
    /// `limit + max_skip` index entries examined (records skipped by the
    /// filter count): the cost of a page is bounded by its size whatever
    /// the store holds, and only the page is kept in memory. `next` is set
    /// while the scan stopped before the end of the matching keys; a page
    /// that ran out of budget may be short, or empty, and still have one.
    pub fn scan(
        &self,
        sel: &Select<'_>,
        filter: &Filter,
        after: Option<&[u8]>,
        limit: usize,
        max_skip: usize,
    ) -> Result<Scan, ScanError> {
        let limit = limit.max(1);
        let budget = limit.saturating_add(max_skip);
        let mut prefix = Vec::with_capacity(64);
        let by_rdata = match sel {
            Select::Name(n) | Select::Suffix(n) => {
                reverse_into_bytes(n, &mut prefix);
                if matches!(sel, Select::Suffix(_)) {
                    prefix.push(b'.');
                } else {
                    prefix.push(0);
                    // One name and one type: the key prefix narrows to them.
                    if let Some(t) = &filter.rrtype {
                        prefix.extend_from_slice(t.as_bytes());
                        prefix.push(0);
                    }
                }
                false
            }
            Select::Rdata(d) => {
                prefix.extend_from_slice(d.as_bytes());
                prefix.push(0);
                true
            }
        };
        if let Some(a) = after {
            if !a.starts_with(&prefix) {
                return Err(ScanError::Cursor);
            }
        }
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(prefix.as_slice()),
        };
        let tx = self.db.begin_read()?;
        let rr = tx.open_table(RR)?;
        let mut page = Paging {
            scan: Scan::default(),
            limit,
            budget: budget as u64,
            done: Vec::new(),
        };
        if by_rdata {
            let idx = tx.open_table(RDATA)?;
            let mut key = Vec::with_capacity(64);
            for e in idx.range::<&[u8]>((start, Bound::Unbounded))? {
                let (k, _) = e?;
                let k = k.value();
                if !k.starts_with(&prefix) {
                    break;
                }
                if !page.examine() {
                    return Ok(page.more());
                }
                // `rdata 0 revname 0 rrtype` → `revname 0 rrtype 0 rdata`.
                let mut p = k[prefix.len()..].splitn(2, |&b| b == 0);
                let rec = match (p.next(), p.next()) {
                    (Some(rev), Some(t)) if filter.rrtype_is(t) => {
                        key.clear();
                        key.extend_from_slice(rev);
                        key.push(0);
                        key.extend_from_slice(t);
                        key.push(0);
                        key.extend_from_slice(&prefix[..prefix.len() - 1]);
                        match rr.get(key.as_slice())? {
                            Some(v) if filter.times(v.value()) => Self::decode_rr(&key, v.value()),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if page.offer(rec, k) {
                    return Ok(page.more());
                }
            }
        } else {
            for e in rr.range::<&[u8]>((start, Bound::Unbounded))? {
                let (k, v) = e?;
                let (k, v) = (k.value(), v.value());
                if !k.starts_with(&prefix) {
                    break;
                }
                if !page.examine() {
                    return Ok(page.more());
                }
                let t = k.split(|&b| b == 0).nth(1).unwrap_or_default();
                let rec = if filter.rrtype_is(t) && filter.times(v) {
                    Self::decode_rr(k, v)
                } else {
                    None
                };
                if page.offer(rec, k) {
                    return Ok(page.more());
                }
            }
        }
        Ok(page.scan)
    }

    /// Sensor ids seen (at most 10,000 listed).
    pub fn sensors(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SENSORS)?;
        let mut out = Vec::new();
        for e in t.iter()?.take(10_000) {
            out.push(e?.0.value().to_string());
        }
        Ok(out)
    }

    /// Number of records.
    pub fn len(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(RR)?.len()?)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Drops the records whose type has an expiry and whose `time_last` is
    /// older than it at `now`; returns how many.
    pub fn expire(&self, policy: &Policy, now: u64) -> Result<u64> {
        if policy.expiry.is_empty() {
            return Ok(0);
        }
        let mut doomed = Vec::new();
        {
            let tx = self.db.begin_read()?;
            let rr = tx.open_table(RR)?;
            for e in rr.iter()? {
                let (k, v) = e?;
                let k = k.value();
                let mut p = k.splitn(3, |&b| b == 0);
                let (Some(_), Some(t)) = (p.next(), p.next()) else {
                    continue;
                };
                let Some(&ttl) = std::str::from_utf8(t)
                    .ok()
                    .and_then(|t| policy.expiry.get(t))
                else {
                    continue;
                };
                if let Some(a) = Agg::decode(v.value()) {
                    if a.last.saturating_add(ttl) < now {
                        doomed.push(k.to_vec());
                    }
                }
            }
        }
        let tx = self.db.begin_write()?;
        {
            let mut rr = tx.open_table(RR)?;
            let mut rd = tx.open_table(RDATA)?;
            let mut rk = Vec::new();
            for k in &doomed {
                rr.remove(k.as_slice())?;
                let mut p = k.splitn(3, |&b| b == 0);
                if let (Some(rev), Some(t), Some(d)) = (p.next(), p.next(), p.next()) {
                    rk.clear();
                    rk.extend_from_slice(d);
                    rk.push(0);
                    rk.extend_from_slice(rev);
                    rk.push(0);
                    rk.extend_from_slice(t);
                    rd.remove(rk.as_slice())?;
                }
            }
        }
        tx.commit()?;
        Ok(doomed.len() as u64)
    }
}

#[cfg(test)]
mod tests;
