//! The lookups `d4 tls serve` answers, on the store, without HTTP: each
//! query is checked (400 on bad input), turned into one index range, and
//! read one page at a time from where the previous page ended (the cursor
//! is the last index key read, hex).

use std::net::IpAddr;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::store::{key, Range, ScanError, Store};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;
/// Longest index key a cursor may name.
const MAX_CURSOR: usize = 512;

/// What is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sessions by JA3 digest.
    Ja3,
    /// Sessions by JA3S digest.
    Ja3s,
    /// Sessions by JA4.
    Ja4,
    /// A certificate (SHA-1 or SHA-256) and the sessions that showed it.
    Cert,
    /// Sessions by client or server address, or CIDR.
    Ip,
    /// SNI and SAN entries of a name or `*.suffix`.
    Name,
}

/// Why a lookup has no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The query or a parameter is wrong (400).
    #[error("{0}")]
    Bad(String),
    /// Nothing is known of it (404).
    #[error("{0}")]
    NotFound(String),
    /// The store failed (500).
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<ScanError> for LookupError {
    fn from(e: ScanError) -> LookupError {
        match e {
            ScanError::Cursor => LookupError::Bad(e.to_string()),
            ScanError::Store(e) => LookupError::Store(e),
        }
    }
}

/// One page of an answer.
#[derive(Debug, Default)]
pub struct Answer {
    /// What is known of the thing looked up (fingerprint, certificate,
    /// query): the JSON answer's fields besides `items` and `next`.
    pub head: Map<String, Value>,
    /// The sessions (or name hits).
    pub items: Vec<Value>,
    /// The next page's cursor.
    pub next: Option<String>,
}

fn hex_of(s: &str, lens: &[usize], what: &str) -> Result<String, LookupError> {
    let s = s.trim();
    if lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(LookupError::Bad(format!(
            "{what}: {s:?} is not one (hex digits)"
        )))
    }
}

/// A JA4 fingerprint as given (letters, digits and `_`, at most 64).
pub fn check_ja4(s: &str) -> Result<String, LookupError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(LookupError::Bad(format!("{s:?} is not a JA4 fingerprint")));
    }
    Ok(s.to_string())
}

/// A name (`www.example.com`) or `*.suffix`: `(name, exact)`.
pub fn check_name(s: &str) -> Result<(String, bool), LookupError> {
    let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let (n, exact) = match s.strip_prefix("*.") {
        Some(rest) => (rest.to_string(), false),
        None => (s, true),
    };
    if n.is_empty()
        || n.len() > 253
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.*:".contains(&b))
        || n.split('.').any(str::is_empty)
    {
        return Err(LookupError::Bad(format!(
            "{n:?} is not a host name (or *.suffix)"
        )));
    }
    Ok((n, exact))
}

/// An address or a CIDR block → the range of `IP|addr16` keys it covers.
pub fn ip_range(s: &str) -> Result<Range, LookupError> {
    let s = s.trim();
    let net: ipnet::IpNet = if s.contains('/') {
        s.parse()
            .map_err(|_| LookupError::Bad(format!("{s:?} is not an address or a CIDR block")))?
    } else {
        let a: IpAddr = s
            .parse()
            .map_err(|_| LookupError::Bad(format!("{s:?} is not an address or a CIDR block")))?;
        a.into()
    };
    let (lo, hi) = match net.trunc() {
        ipnet::IpNet::V4(n) => (
            key::ip16(IpAddr::V4(n.network())),
            key::ip16(IpAddr::V4(n.broadcast())),
        ),
        ipnet::IpNet::V6(n) => (
            key::ip16(IpAddr::V6(n.network())),
            key::ip16(IpAddr::V6(n.broadcast())),
        ),
    };
    let mut l = vec![key::IP];
    l.extend_from_slice(&lo);
    let mut h = vec![key::IP];
    h.extend_from_slice(&hi);
    Ok(Range {
        lo: l,
        hi: key::successor(&h),
    })
}

fn sessions_page(
    store: &Store,
    r: &Range,
    after: Option<&[u8]>,
    limit: usize,
    ips: bool,
    a: &mut Answer,
) -> Result<(), LookupError> {
    let p = store.sessions(r, after, limit, ips)?;
    a.items = p
        .items
        .into_iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect();
    a.next = p.next.map(|k| d4_api::lookup::cursor(&k));
    Ok(())
}

/// Answers one lookup (blocking: reads the store, about `limit` index
/// entries and their items).
pub fn lookup(
    store: &Store,
    kind: Kind,
    q: &str,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<Answer, LookupError> {
    let limit =
        d4_api::lookup::page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT).map_err(LookupError::Bad)?;
    let after = match cursor {
        Some(c) => Some(
            d4_api::lookup::parse_cursor(c, MAX_CURSOR)
                .ok_or_else(|| LookupError::Bad("bad cursor".into()))?,
        ),
        None => None,
    };
    let after = after.as_deref();
    let mut a = Answer::default();
    a.head.insert("query".into(), json!(q));
    match kind {
        Kind::Ja3 | Kind::Ja3s | Kind::Ja4 => {
            let (k, fp) = match kind {
                Kind::Ja3 => (key::JA3, hex_of(q, &[32], "a JA3 digest")?),
                Kind::Ja3s => (key::JA3S, hex_of(q, &[32], "a JA3S digest")?),
                _ => (key::JA4, check_ja4(q)?),
            };
            let f = store.fingerprint(k, &fp)?.ok_or_else(|| {
                LookupError::NotFound(format!("{} {fp} was never seen", key::kind_name(k)))
            })?;
            a.head.insert(
                "fingerprint".into(),
                serde_json::to_value(f).map_err(anyhow::Error::from)?,
            );
            sessions_page(
                store,
                &Range::prefix(key::fp(k, &fp)),
                after,
                limit,
                false,
                &mut a,
            )?;
        }
        Kind::Cert => {
            let h = hex_of(q, &[40, 64], "a certificate SHA-1 or SHA-256")?;
            let bytes = key::unhex(&h).ok_or_else(|| LookupError::Bad("bad hash".into()))?;
            let (info, der) = store
                .cert_sha1(&bytes)?
                .and_then(|s| store.cert(&s).transpose())
                .transpose()?
                .ok_or_else(|| LookupError::NotFound(format!("certificate {h} was never seen")))?;
            let (issuers, issued) = store.chain_links(&info, &der, 20)?;
            let sha1 = key::unhex(&info.sha1).unwrap_or_default();
            a.head.insert(
                "certificate".into(),
                serde_json::to_value(&info).map_err(anyhow::Error::from)?,
            );
            a.head.insert(
                "der".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(&der)),
            );
            a.head.insert("issuers".into(), json!(issuers));
            a.head.insert("issued".into(), json!(issued));
            let mut p = vec![key::CERT];
            p.extend_from_slice(&sha1);
            sessions_page(store, &Range::prefix(p), after, limit, false, &mut a)?;
        }
        Kind::Ip => {
            let r = ip_range(q)?;
            sessions_page(store, &r, after, limit, true, &mut a)?;
        }
        Kind::Name => {
            let (n, exact) = check_name(q)?;
            let p = store.names(&Range::prefix(key::name_prefix(&n, exact)), after, limit)?;
            a.items = p
                .items
                .into_iter()
                .filter_map(|h| serde_json::to_value(h).ok())
                .collect();
            a.next = p.next.map(|k| d4_api::lookup::cursor(&k));
        }
    }
    Ok(a)
}
