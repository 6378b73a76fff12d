//! The lookup server: HTTP, the reference endpoints of analyzer-d4-passivedns.
//!
//! - `GET /query/<q>`: COF NDJSON (`application/x-ndjson`). `q` is a name
//!   (records of that name), `*.suffix` (records of every name under it) or
//!   an IP address (records whose rdata is that address).
//! - `GET /fquery/<q>`: the same records as one JSON array (for browsers);
//!   also `/query/<q>?format=json`.
//! - `GET /info`: `{"version","software","stats","sensors"}`.
//!
//! Records come in store key order (name by reversed labels, then type,
//! rdata; by rdata: name, type), so a page is read from the index where the
//! previous one stopped: it costs at most `limit` + [`MAX_SKIP`] entries
//! read (`x-pdns-examined`) and memory for its own records, whatever the
//! query matches. Parameters: `limit` (default 1000, at most 10000),
//! `cursor` (from the `x-pdns-cursor` header of the previous page; absent
//! once the end is reached; a page that spent its budget on records the
//! filters skip may be short or empty and still carry one), `rrtype`,
//! `time_first_after`, `time_last_before`. Each client address gets a token
//! bucket (`--rate-limit` requests/s, burst twice that); beyond it, 429.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use d4_api::lookup::{cursor, page_limit, parse_cursor};
use serde::Deserialize;

use crate::record::{normalize_name, type_code, type_name, Record};
use crate::store::{Filter, ScanError, Select, Store};

/// Most entries a page examines beyond its `limit` (records the filters
/// skip): a page costs at most `limit + MAX_SKIP` entries read.
pub const MAX_SKIP: usize = 10_000;
/// Default page size.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest page size.
pub const MAX_LIMIT: usize = 10_000;

/// Server state.
pub struct Server {
    /// The store read.
    store: Arc<Store>,
}

/// Query-string parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Page size.
    pub limit: Option<usize>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Only this type.
    pub rrtype: Option<String>,
    /// Only records first seen after this time (seconds).
    pub time_first_after: Option<u64>,
    /// Only records last seen before this time.
    pub time_last_before: Option<u64>,
    /// `json` for a JSON array.
    pub format: Option<String>,
}

/// A page of answers.
#[derive(Debug)]
pub struct Page {
    /// The records.
    pub records: Vec<Record>,
    /// The cursor of the next page, while there may be one.
    pub next: Option<String>,
    /// Store entries examined for this page (the `x-pdns-examined` header).
    pub examined: u64,
}

/// Why a query is refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter is wrong.
    #[error("{0}")]
    Bad(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Answers a query (blocking: reads the store, at most `limit` +
/// [`MAX_SKIP`] entries of it).
pub fn lookup(store: &Store, q: &str, p: &Params) -> Result<Page, QueryError> {
    let q = q.trim();
    if q.is_empty() || q.len() > 1024 {
        return Err(QueryError::Bad(
            "query must be a name, *.suffix or an IP address".into(),
        ));
    }
    let limit = page_limit(p.limit, DEFAULT_LIMIT, MAX_LIMIT).map_err(QueryError::Bad)?;
    let after = match &p.cursor {
        Some(c) => Some(parse_cursor(c, 4096).ok_or_else(|| QueryError::Bad("bad cursor".into()))?),
        None => None,
    };
    let rrtype = match p.rrtype.as_deref() {
        None => None,
        Some(t) => match type_code(t).or_else(|| t.parse::<u16>().ok()) {
            Some(n) => Some(type_name(n).into_owned()),
            None => {
                return Err(QueryError::Bad(format!(
                    "unknown rrtype {t:?}: a type name (A, AAAA, MX...), TYPEnnn or a number"
                )))
            }
        },
    };
    let filter = Filter {
        rrtype,
        time_first_after: p.time_first_after,
        time_last_before: p.time_last_before,
    };
    let (ip, name);
    let sel = if let Ok(a) = q.parse::<IpAddr>() {
        ip = a.to_string();
        Select::Rdata(&ip)
    } else if let Some(suffix) = q.strip_prefix("*.") {
        name = normalize_name(suffix);
        Select::Suffix(&name)
    } else {
        name = normalize_name(q);
        Select::Name(&name)
    };
    let scan = store
        .scan(&sel, &filter, after.as_deref(), limit, MAX_SKIP)
        .map_err(|e| match e {
            ScanError::Cursor => QueryError::Bad(e.to_string()),
            ScanError::Store(e) => QueryError::Store(e),
        })?;
    Ok(Page {
        records: scan.records,
        next: scan.next.map(|k| cursor(&k)),
        examined: scan.examined,
    })
}

fn json_array(records: &[Record]) -> Vec<u8> {
    serde_json::to_vec(&records).unwrap_or_else(|_| b"[]".to_vec())
}

use d4_api::serve::error;

async fn answer(st: Arc<Server>, q: String, p: QueryParams, array: bool) -> Response {
    let p = match p {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let array = array || p.format.as_deref() == Some("json");
    let store = st.store.clone();
    // A name or an address reads a few B-tree pages: answered on the
    // runtime thread (a hand-off to the blocking pool costs more than the
    // lookup). A wildcard reads more pages (up to limit + MAX_SKIP
    // entries, its names spread over the tree): blocking pool.
    let started = Instant::now();
    let what = q.clone();
    let r = if q.trim_start().starts_with("*.") {
        tokio::task::spawn_blocking(move || lookup(&store, &q, &p)).await
    } else {
        Ok(lookup(&store, &q, &p))
    };
    let took = started.elapsed();
    if took.as_millis() >= 100 {
        tracing::warn!("slow lookup of {what}: {} ms", took.as_millis());
    }
    let page = match r {
        Ok(Ok(p)) => p,
        Ok(Err(QueryError::Bad(m))) => return error(StatusCode::BAD_REQUEST, &m),
        Ok(Err(QueryError::Store(e))) => {
            tracing::error!("store: {e:#}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "store error");
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "query failed"),
    };
    let mut h = HeaderMap::new();
    if let Some(c) = page
        .next
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("x-pdns-cursor", c);
    }
    h.insert("x-pdns-examined", HeaderValue::from(page.examined));
    let (ct, body) = if array {
        ("application/json", json_array(&page.records))
    } else {
        (d4_api::lookup::NDJSON, d4_api::lookup::ndjson(page.records))
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    (StatusCode::OK, h, body).into_response()
}

/// The query parameters, or the reason they were refused.
type QueryParams = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

async fn query(State(st): State<Arc<Server>>, Path(q): Path<String>, p: QueryParams) -> Response {
    answer(st, q, p, false).await
}

async fn fquery(State(st): State<Arc<Server>>, Path(q): Path<String>, p: QueryParams) -> Response {
    answer(st, q, p, true).await
}

async fn info(State(st): State<Arc<Server>>) -> Response {
    let store = st.store.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<(u64, Vec<String>)> {
        Ok((store.len()?, store.sensors()?))
    })
    .await;
    match r {
        Ok(Ok((n, sensors))) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "software": "d4-pdns",
                "stats": { "records": n },
                "sensors": sensors,
            })
            .to_string(),
        )
            .into_response(),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "store error"),
    }
}

/// The router.
pub fn router(store: Arc<Store>, rate_limit: f64) -> Router {
    let st = Arc::new(Server { store });
    let queries = Router::new()
        .route("/query/{*q}", get(query))
        .route("/fquery/{*q}", get(fquery));
    d4_api::serve::rate_limited(queries, rate_limit)
        .route("/info", get(info))
        .with_state(st)
}

/// Serves until the future `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    rate_limit: f64,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    d4_api::serve::serve(listener, router(store, rate_limit), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn pages_through_everything_in_order_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut batch = Vec::new();
        for i in 0..1000u64 {
            // Several records share a time_last: the tie-break keeps pages exact.
            batch.push(Record::new(
                "many.example",
                if i % 3 == 0 { "AAAA" } else { "A" },
                &if i % 3 == 0 {
                    format!("2001:db8::{i:x}")
                } else {
                    format!("10.0.{}.{}", i / 256, i % 256)
                },
                i / 7,
                1,
            ));
        }
        s.upsert(&batch).unwrap();
        let mut seen = Vec::new();
        let mut p = Params {
            limit: Some(64),
            ..Params::default()
        };
        loop {
            let page = lookup(&s, "many.example", &p).unwrap();
            assert!(page.records.len() <= 64);
            // A page reads its records and the one showing a next page.
            assert!(page.examined <= 65, "{}", page.examined);
            seen.extend(page.records);
            match page.next {
                Some(c) => p.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 1000);
        // Key order: type, then rdata; each record once.
        assert!(seen
            .windows(2)
            .all(|w| (&w[0].rrtype, &w[0].rdata) < (&w[1].rrtype, &w[1].rdata)));
        let aaaa = lookup(
            &s,
            "MANY.example.",
            &Params {
                rrtype: Some("aaaa".into()),
                ..Params::default()
            },
        )
        .unwrap();
        assert_eq!(aaaa.records.len(), 334);
        let old = lookup(
            &s,
            "many.example",
            &Params {
                time_last_before: Some(10),
                time_first_after: Some(4),
                ..Params::default()
            },
        )
        .unwrap();
        assert_eq!(old.records.len(), 35); // times 5..=9, 7 each
        assert!(matches!(
            lookup(
                &s,
                "many.example",
                &Params {
                    limit: Some(0),
                    ..Params::default()
                }
            ),
            Err(QueryError::Bad(_))
        ));
        assert!(matches!(
            lookup(
                &s,
                "x",
                &Params {
                    cursor: Some("zz".into()),
                    ..Params::default()
                }
            ),
            Err(QueryError::Bad(_))
        ));
        // By IP and by suffix.
        assert_eq!(
            lookup(&s, "10.0.0.1", &Params::default())
                .unwrap()
                .records
                .len(),
            1
        );
        assert_eq!(
            lookup(&s, "*.example", &Params::default())
                .unwrap()
                .records
                .len(),
            1000
        );
    }
}
