//! The embedded passive SSL store (redb, one file).
//!
//! # Layout
//!
//! - `sessions`: id (u64, in ingest order) → [`Session`] (JSON).
//! - `certs`: SHA-1 (20 bytes) → [`CertInfo`] (JSON): each certificate
//!   once, with first/last seen and counts; `der`: SHA-1 → the DER;
//!   `sha256`: SHA-256 (32 bytes) → SHA-1.
//! - `fps`: kind byte ([`key::JA3`], [`key::JA3S`], [`key::JA4`]) and the
//!   fingerprint → [`Fingerprint`] (JSON: the string, first/last seen,
//!   count).
//! - `idx`: keys only, one table for every index so that each lookup is one
//!   range scan (the [`key`] module builds them):
//!   - `JA3|digest|0|id`, `JA3S|digest|0|id`, `JA4|fp|0|id`: sessions by fingerprint;
//!   - `CERT|sha1|id`: sessions whose chain holds the certificate;
//!   - `IP|addr16|id`: sessions by client and by server address (IPv4 as
//!     IPv4-mapped IPv6, big-endian: a CIDR is one range);
//!   - `NAME|revname|0|tag|ref`: SNI (tag 0, ref a session id) and SAN
//!     (tag 1, ref a SHA-1), the name with its labels reversed, so that
//!     a name and a `*.suffix` are each one prefix scan;
//!   - `SUBJECT|hash|sha1`, `ISSUER|hash|sha1`, `SKI|len|ski|sha1`: the
//!     links of chains (a certificate's issuers have its issuer as subject).
//!
//! Writes come in batches ([`Store::apply`]): one write transaction each.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::cert::{self, CertInfo};

pub mod key;
#[cfg(test)]
mod tests;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");
const DER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("der");
const SHA256: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sha256");
const FPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fps");
const IDX: TableDefinition<&[u8], ()> = TableDefinition::new("idx");

/// One TLS session as stored and served.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Its number in the store (ingest order).
    pub id: u64,
    /// When the ClientHello was seen (Unix seconds).
    pub time: i64,
    /// The same, as the record gave it (RFC 3339).
    pub timestamp: String,
    /// Client address.
    pub client_ip: String,
    /// Client port.
    pub client_port: u16,
    /// Server address.
    pub server_ip: String,
    /// Server port.
    pub server_port: u16,
    /// Server name of the ClientHello.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    /// ALPN protocols offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// JA3 digest (MD5 hex; the string is in the fingerprint).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ja3: String,
    /// JA3S digest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ja3s: String,
    /// JA4 fingerprint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ja4: String,
    /// The chain's certificates (SHA-1 hex), leaf first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<String>,
}

/// A fingerprint: what it stands for and who was seen with it when.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// `ja3`, `ja3s` or `ja4`.
    pub kind: String,
    /// The digest (JA3, JA3S) or the fingerprint (JA4).
    pub fp: String,
    /// The JA3/JA3S string it is the digest of, when a record gave it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub string: String,
    /// First seen (Unix seconds).
    pub first_seen: i64,
    /// Last seen.
    pub last_seen: i64,
    /// Sessions seen with it.
    pub count: u64,
}

/// A session to store, checked, with what is kept apart from it.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    /// The session (its `id` and `certs` are set when stored).
    pub session: Session,
    /// Client and server addresses.
    pub client: Option<std::net::IpAddr>,
    /// The server's.
    pub server: Option<std::net::IpAddr>,
    /// The JA3 string.
    pub ja3_string: String,
    /// The JA3S string.
    pub ja3s_string: String,
    /// The chain, DER, leaf first.
    pub chain: Vec<Vec<u8>>,
}

/// What a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Sessions stored.
    pub sessions: u64,
    /// Certificates seen for the first time.
    pub new_certs: u64,
    /// Of those, the ones that did not parse.
    pub unparsed_certs: u64,
}

/// Counts of what the store holds.
#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Sessions.
    pub sessions: u64,
    /// Distinct certificates.
    pub certificates: u64,
    /// Distinct fingerprints (JA3, JA3S, JA4).
    pub fingerprints: u64,
}

/// Why a scan was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The cursor is not of this query.
    #[error("the cursor is not one of this query's pages")]
    Cursor,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<redb::Error> for ScanError {
    fn from(e: redb::Error) -> ScanError {
        ScanError::Store(e.into())
    }
}

/// A page of a scan.
#[derive(Debug)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The key to continue after, while there may be more.
    pub next: Option<Vec<u8>>,
}

/// A range of index keys: `lo <= k < hi` (`hi` `None`: to the end).
#[derive(Debug, Clone)]
pub struct Range {
    /// First key.
    pub lo: Vec<u8>,
    /// Past the last key.
    pub hi: Option<Vec<u8>>,
}

impl Range {
    /// Every key starting with `p`.
    pub fn prefix(p: Vec<u8>) -> Range {
        Range {
            hi: key::successor(&p),
            lo: p,
        }
    }

    fn contains(&self, k: &[u8]) -> bool {
        k >= self.lo.as_slice() && self.hi.as_deref().is_none_or(|h| k < h)
    }
}

/// One answer of a name lookup.
#[derive(Serialize, Debug, Clone)]
pub struct NameHit {
    /// The name as stored (lower case).
    pub name: String,
    /// `sni` (a session asked for it) or `san` (a certificate names it).
    pub kind: &'static str,
    /// The session, for `sni`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// The certificate, for `san`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertInfo>,
}

/// The store.
pub struct Store {
    /// The redb database.
    db: Database,
}

fn tx_err<E: Into<redb::Error>>(e: E) -> anyhow::Error {
    anyhow::Error::from(e.into())
}

fn merge_seen(first: &mut i64, last: &mut i64, count: &mut u64, t: i64) {
    if *count == 0 {
        (*first, *last) = (t, t);
    } else {
        *first = (*first).min(t);
        *last = (*last).max(t);
    }
    *count = count.saturating_add(1);
}

impl Store {
    /// Opens (or creates) the store with redb's default page cache.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, None)
    }

    /// Opens (or creates) the store; `cache` bytes of page cache.
    pub fn open_with_cache(path: &Path, cache: Option<usize>) -> Result<Store> {
        let mut b = Database::builder();
        if let Some(c) = cache {
            b.set_cache_size(c);
        }
        let db = b
            .create(path)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        let tx = db.begin_write().map_err(tx_err)?;
        {
            tx.open_table(META).map_err(tx_err)?;
            tx.open_table(SESSIONS).map_err(tx_err)?;
            tx.open_table(CERTS).map_err(tx_err)?;
            tx.open_table(DER).map_err(tx_err)?;
            tx.open_table(SHA256).map_err(tx_err)?;
            tx.open_table(FPS).map_err(tx_err)?;
            tx.open_table(IDX).map_err(tx_err)?;
        }
        tx.commit().map_err(tx_err)?;
        Ok(Store { db })
    }

    /// Stores a batch in one write transaction: sessions, their index
    /// entries, fingerprints and certificates (each certificate once;
    /// first/last seen and counts merged).
    pub fn apply(&self, batch: &mut [NewSession]) -> Result<Applied> {
        let mut done = Applied::default();
        let tx = self.db.begin_write().map_err(tx_err)?;
        {
            let mut meta = tx.open_table(META).map_err(tx_err)?;
            let mut sessions = tx.open_table(SESSIONS).map_err(tx_err)?;
            let mut certs = tx.open_table(CERTS).map_err(tx_err)?;
            let mut ders = tx.open_table(DER).map_err(tx_err)?;
            let mut by256 = tx.open_table(SHA256).map_err(tx_err)?;
            let mut fps = tx.open_table(FPS).map_err(tx_err)?;
            let mut idx = tx.open_table(IDX).map_err(tx_err)?;
            let mut next_id = meta
                .get("next_id")
                .map_err(tx_err)?
                .map_or(1, |v| v.value());
            let mut cert_cache: HashMap<[u8; 20], CertInfo> = HashMap::new();
            let mut fp_cache: HashMap<Vec<u8>, Fingerprint> = HashMap::new();
            let mut k = Vec::with_capacity(128);
            for n in batch.iter_mut() {
                let id = next_id;
                next_id += 1;
                let t = n.session.time;
                n.session.id = id;
                n.session.certs.clear();
                for der in &n.chain {
                    let sha1 = cert::sha1(der);
                    n.session.certs.push(cert::hex(&sha1));
                    let info = match cert_cache.get_mut(&sha1) {
                        Some(i) => i,
                        None => {
                            let stored = certs
                                .get(sha1.as_slice())
                                .map_err(tx_err)?
                                .and_then(|v| serde_json::from_slice::<CertInfo>(v.value()).ok());
                            let info = match stored {
                                Some(i) => i,
                                None => {
                                    let (info, links) = cert::parse(der);
                                    done.new_certs += 1;
                                    if !info.parsed {
                                        done.unparsed_certs += 1;
                                    }
                                    ders.insert(sha1.as_slice(), der.as_slice())
                                        .map_err(tx_err)?;
                                    by256
                                        .insert(cert::sha256(der).as_slice(), sha1.as_slice())
                                        .map_err(tx_err)?;
                                    for e in key::cert_entries(&info, &links, &sha1) {
                                        idx.insert(e.as_slice(), ()).map_err(tx_err)?;
                                    }
                                    info
                                }
                            };
                            cert_cache.entry(sha1).or_insert(info)
                        }
                    };
                    merge_seen(
                        &mut info.first_seen,
                        &mut info.last_seen,
                        &mut info.count,
                        t,
                    );
                    key::cert_session(&sha1, id, &mut k);
                    idx.insert(k.as_slice(), ()).map_err(tx_err)?;
                }
                for (kind, fp, string) in [
                    (key::JA3, &n.session.ja3, &n.ja3_string),
                    (key::JA3S, &n.session.ja3s, &n.ja3s_string),
                    (key::JA4, &n.session.ja4, &String::new()),
                ] {
                    if fp.is_empty() {
                        continue;
                    }
                    let fk = key::fp(kind, fp);
                    let f = match fp_cache.get_mut(&fk) {
                        Some(f) => f,
                        None => {
                            let f = fps
                                .get(fk.as_slice())
                                .map_err(tx_err)?
                                .and_then(|v| serde_json::from_slice(v.value()).ok())
                                .unwrap_or_else(|| Fingerprint {
                                    kind: key::kind_name(kind).into(),
                                    fp: fp.clone(),
                                    ..Fingerprint::default()
                                });
                            fp_cache.entry(fk.clone()).or_insert(f)
                        }
                    };
                    if f.string.is_empty() && !string.is_empty() {
                        f.string = string.clone();
                    }
                    merge_seen(&mut f.first_seen, &mut f.last_seen, &mut f.count, t);
                    key::fp_session(kind, fp, id, &mut k);
                    idx.insert(k.as_slice(), ()).map_err(tx_err)?;
                }
                for ip in [n.client, n.server].into_iter().flatten() {
                    key::ip_session(ip, id, &mut k);
                    idx.insert(k.as_slice(), ()).map_err(tx_err)?;
                }
                if !n.session.sni.is_empty() {
                    key::name(&n.session.sni, key::TAG_SNI, &id.to_be_bytes(), &mut k);
                    idx.insert(k.as_slice(), ()).map_err(tx_err)?;
                }
                let v = serde_json::to_vec(&n.session)?;
                sessions.insert(id, v.as_slice()).map_err(tx_err)?;
                done.sessions += 1;
            }
            for (sha1, info) in &cert_cache {
                certs
                    .insert(sha1.as_slice(), serde_json::to_vec(info)?.as_slice())
                    .map_err(tx_err)?;
            }
            for (fk, f) in &fp_cache {
                fps.insert(fk.as_slice(), serde_json::to_vec(f)?.as_slice())
                    .map_err(tx_err)?;
            }
            let total = meta
                .get("sessions")
                .map_err(tx_err)?
                .map_or(0, |v| v.value());
            meta.insert("sessions", total + done.sessions)
                .map_err(tx_err)?;
            let c = meta
                .get("certificates")
                .map_err(tx_err)?
                .map_or(0, |v| v.value());
            meta.insert("certificates", c + done.new_certs)
                .map_err(tx_err)?;
            meta.insert("next_id", next_id).map_err(tx_err)?;
        }
        tx.commit().map_err(tx_err)?;
        Ok(done)
    }

    /// What the store holds.
    pub fn counts(&self) -> Result<Counts> {
        let tx = self.db.begin_read().map_err(tx_err)?;
        let meta = tx.open_table(META).map_err(tx_err)?;
        let get =
            |k: &str| -> Result<u64> { Ok(meta.get(k).map_err(tx_err)?.map_or(0, |v| v.value())) };
        let fps = tx.open_table(FPS).map_err(tx_err)?;
        Ok(Counts {
            sessions: get("sessions")?,
            certificates: get("certificates")?,
            fingerprints: redb::ReadableTableMetadata::len(&fps).map_err(tx_err)?,
        })
    }

    /// A fingerprint, if it was seen.
    pub fn fingerprint(&self, kind: u8, fp: &str) -> Result<Option<Fingerprint>> {
        let tx = self.db.begin_read().map_err(tx_err)?;
        let t = tx.open_table(FPS).map_err(tx_err)?;
        let v = t.get(key::fp(kind, fp).as_slice()).map_err(tx_err)?;
        Ok(v.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// The SHA-1 of a certificate known by its SHA-1 or SHA-256.
    pub fn cert_sha1(&self, hash: &[u8]) -> Result<Option<[u8; 20]>> {
        if let Ok(s) = <[u8; 20]>::try_from(hash) {
            return Ok(Some(s));
        }
        let tx = self.db.begin_read().map_err(tx_err)?;
        let t = tx.open_table(SHA256).map_err(tx_err)?;
        let v = t.get(hash).map_err(tx_err)?;
        Ok(v.and_then(|v| <[u8; 20]>::try_from(v.value()).ok()))
    }

    /// A certificate and its DER.
    pub fn cert(&self, sha1: &[u8; 20]) -> Result<Option<(CertInfo, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(tx_err)?;
        let t = tx.open_table(CERTS).map_err(tx_err)?;
        let Some(info) = t
            .get(sha1.as_slice())
            .map_err(tx_err)?
            .and_then(|v| serde_json::from_slice::<CertInfo>(v.value()).ok())
        else {
            return Ok(None);
        };
        let d = tx.open_table(DER).map_err(tx_err)?;
        let der = d
            .get(sha1.as_slice())
            .map_err(tx_err)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        Ok(Some((info, der)))
    }

    /// The certificates linked to `c` in chains: the ones that may have
    /// issued it (subject = its issuer, and subject key id = its authority
    /// key id when both are known) and the ones it may have issued; at
    /// most `max` of each.
    pub fn chain_links(
        &self,
        c: &CertInfo,
        der: &[u8],
        max: usize,
    ) -> Result<(Vec<CertInfo>, Vec<CertInfo>)> {
        let (_, links) = cert::parse(der);
        let tx = self.db.begin_read().map_err(tx_err)?;
        let idx = tx.open_table(IDX).map_err(tx_err)?;
        let certs = tx.open_table(CERTS).map_err(tx_err)?;
        let by = |kind: u8, h: Option<[u8; 16]>| -> Result<Vec<CertInfo>> {
            let mut out = Vec::new();
            let Some(h) = h else { return Ok(out) };
            let r = Range::prefix(key::name_link(kind, &h));
            for e in idx
                .range::<&[u8]>((Bound::Included(r.lo.as_slice()), bound(&r.hi)))
                .map_err(tx_err)?
            {
                let (k, _) = e.map_err(tx_err)?;
                let sha1 = &k.value()[r.lo.len()..];
                if sha1 == key::unhex(&c.sha1).as_deref().unwrap_or_default() {
                    continue;
                }
                if let Some(i) = certs
                    .get(sha1)
                    .map_err(tx_err)?
                    .and_then(|v| serde_json::from_slice::<CertInfo>(v.value()).ok())
                {
                    out.push(i);
                }
                if out.len() >= max {
                    break;
                }
            }
            Ok(out)
        };
        let mut issuers = by(key::SUBJECT, links.issuer)?;
        if let Some(aki) = &c.aki {
            issuers.retain(|i| i.ski.as_ref().is_none_or(|s| s == aki));
        }
        let issued = if c.is_ca || c.self_issued {
            by(key::ISSUER, links.subject)?
        } else {
            Vec::new()
        };
        Ok((issuers, issued))
    }

    /// A page of the index keys in `r` after `after`, each turned into an
    /// item by `item` (which may skip it), in one read transaction; reads
    /// at most `limit` + 1 keys beyond those skipped.
    fn scan<T>(
        &self,
        r: &Range,
        after: Option<&[u8]>,
        limit: usize,
        mut item: impl FnMut(&Tables, &[u8]) -> Result<Option<T>>,
    ) -> Result<Page<T>, ScanError> {
        if let Some(a) = after {
            if !r.contains(a) {
                return Err(ScanError::Cursor);
            }
        }
        let tx = self.db.begin_read().map_err(tx_err)?;
        let idx = tx.open_table(IDX).map_err(tx_err)?;
        let tables = Tables {
            sessions: tx.open_table(SESSIONS).map_err(tx_err)?,
            certs: tx.open_table(CERTS).map_err(tx_err)?,
        };
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(r.lo.as_slice()),
        };
        let mut page = Page {
            items: Vec::new(),
            next: None,
        };
        let mut last: Option<Vec<u8>> = None;
        for e in idx.range::<&[u8]>((start, bound(&r.hi))).map_err(tx_err)? {
            let (k, _) = e.map_err(tx_err)?;
            let k = k.value();
            if page.items.len() >= limit {
                page.next = last;
                return Ok(page);
            }
            if let Some(t) = item(&tables, k)? {
                page.items.push(t);
            }
            last = Some(k.to_vec());
        }
        Ok(page)
    }

    /// Sessions of an index range whose keys end with a session id; with
    /// `ips`, the range is of addresses: a session with both addresses in
    /// it is given once (at the smaller one).
    pub fn sessions(
        &self,
        r: &Range,
        after: Option<&[u8]>,
        limit: usize,
        ips: bool,
    ) -> Result<Page<Session>, ScanError> {
        self.scan(r, after, limit, |t, k| {
            let Some(id) = key::trailing_id(k) else {
                return Ok(None);
            };
            let Some(s) = t.session(id)? else {
                return Ok(None);
            };
            if ips {
                let a = [&s.client_ip, &s.server_ip].map(|a| a.parse().ok().map(key::ip16));
                if let [Some(c), Some(sv)] = a {
                    let mut ck = r.lo[..1].to_vec();
                    ck.extend_from_slice(&c);
                    let mut sk = r.lo[..1].to_vec();
                    sk.extend_from_slice(&sv);
                    let here = &k[1..17];
                    if c != sv && r.contains(&ck) && r.contains(&sk) && here != c.min(sv).as_slice()
                    {
                        return Ok(None);
                    }
                }
            }
            Ok(Some(s))
        })
    }

    /// SNI and SAN hits of a name range.
    pub fn names(
        &self,
        r: &Range,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<NameHit>, ScanError> {
        self.scan(r, after, limit, |t, k| {
            let Some((name, tag, rf)) = key::split_name(k) else {
                return Ok(None);
            };
            let hit = if tag == key::TAG_SNI {
                let Ok(id) = <[u8; 8]>::try_from(rf) else {
                    return Ok(None);
                };
                t.session(u64::from_be_bytes(id))?.map(|s| NameHit {
                    name,
                    kind: "sni",
                    session: Some(s),
                    certificate: None,
                })
            } else {
                t.cert(rf)?.map(|c| NameHit {
                    name,
                    kind: "san",
                    session: None,
                    certificate: Some(c),
                })
            };
            Ok(hit)
        })
    }
}

fn bound(hi: &Option<Vec<u8>>) -> Bound<&[u8]> {
    match hi {
        Some(h) => Bound::Excluded(h.as_slice()),
        None => Bound::Unbounded,
    }
}

/// The tables a scan reads its items from.
struct Tables {
    sessions: redb::ReadOnlyTable<u64, &'static [u8]>,
    certs: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Tables {
    fn session(&self, id: u64) -> Result<Option<Session>> {
        Ok(self
            .sessions
            .get(id)
            .map_err(tx_err)?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    fn cert(&self, sha1: &[u8]) -> Result<Option<CertInfo>> {
        Ok(self
            .certs
            .get(sha1)
            .map_err(tx_err)?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }
}
