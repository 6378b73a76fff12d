//! The HTTP lookup service over the store (`d4 tls serve`).
//!
//! - `GET /api/v1/ja3/{digest}`, `/api/v1/ja3s/{digest}`, `/api/v1/ja4/{fp}`:
//!   the fingerprint (string, first/last seen, count) and its sessions;
//! - `GET /api/v1/cert/{sha1|sha256}`: the certificate (parsed fields,
//!   DER, sightings, chain links) and the sessions that showed it;
//! - `GET /api/v1/ip/{addr|cidr}`: sessions from or to the address(es);
//! - `GET /api/v1/name/{name|*.suffix}`: sessions asking for it (SNI) and
//!   certificates naming it (SAN);
//! - `GET /api/v1/info`, `GET /api/v1/openapi.json`;
//! - `GET /cert/{hash}`, `/ja3/{digest}`, `/ja3s/{digest}`, `/ja4/{fp}`: a
//!   small HTML page of the same (askama templates, escaped).
//!
//! Answers are one JSON object (`items`, `next`, and what is known of the
//! thing looked up), or the items alone as NDJSON with `Accept:
//! application/x-ndjson`. Pages: `limit` (1..=1000, default 100) and
//! `cursor` (the `next` of the previous page, also in the `x-d4-cursor`
//! header; absent once the end is reached). Each client address gets a
//! token bucket (`--rate-limit` requests/s, bursts of twice that;
//! `d4_api::lookup::Limiter`); beyond it, 429.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use d4_api::lookup::NDJSON;
use serde::Deserialize;

use crate::lookup::{lookup, Kind, LookupError};
use crate::store::Store;

/// The OpenAPI document of the service.
pub const OPENAPI: &str = include_str!("openapi.json");

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
}

use d4_api::serve::error;

fn lookup_error(e: LookupError) -> Response {
    match e {
        LookupError::Bad(m) => error(StatusCode::BAD_REQUEST, &m),
        LookupError::NotFound(m) => error(StatusCode::NOT_FOUND, &m),
        LookupError::Store(e) => {
            tracing::error!("store: {e:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "store error")
        }
    }
}

type QueryParams = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

/// Runs a lookup: on the runtime thread when it reads a few pages (one
/// key), on the blocking pool when it may scan more (a CIDR, a suffix).
async fn run_lookup(
    st: &Server,
    kind: Kind,
    q: String,
    p: Params,
) -> Result<crate::lookup::Answer, LookupError> {
    let store = st.store.clone();
    let wide = matches!(kind, Kind::Ip) && q.contains('/')
        || matches!(kind, Kind::Name) && q.starts_with("*.");
    let started = Instant::now();
    let r = if wide {
        let what = q.clone();
        let r = tokio::task::spawn_blocking(move || {
            lookup(&store, kind, &q, p.limit, p.cursor.as_deref())
        })
        .await
        .map_err(|e| LookupError::Store(anyhow::anyhow!("lookup failed: {e}")));
        if started.elapsed().as_millis() >= 100 {
            tracing::warn!(
                "slow lookup of {what}: {} ms",
                started.elapsed().as_millis()
            );
        }
        r?
    } else {
        lookup(&store, kind, &q, p.limit, p.cursor.as_deref())
    };
    r
}

async fn api(
    st: Arc<Server>,
    kind: Kind,
    q: String,
    p: QueryParams,
    headers: HeaderMap,
) -> Response {
    let p = match p {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let a = match run_lookup(&st, kind, q, p).await {
        Ok(a) => a,
        Err(e) => return lookup_error(e),
    };
    let mut h = HeaderMap::new();
    if let Some(c) = a
        .next
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("x-d4-cursor", c);
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if d4_api::lookup::wants_ndjson(accept) {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        return (StatusCode::OK, h, d4_api::lookup::ndjson(a.items)).into_response();
    }
    let mut body = a.head;
    body.insert("items".into(), serde_json::Value::Array(a.items));
    body.insert(
        "next".into(),
        a.next
            .map_or(serde_json::Value::Null, serde_json::Value::String),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (
        StatusCode::OK,
        h,
        serde_json::Value::Object(body).to_string(),
    )
        .into_response()
}

macro_rules! api_route {
    ($name:ident, $kind:expr) => {
        async fn $name(
            State(st): State<Arc<Server>>,
            Path(q): Path<String>,
            headers: HeaderMap,
            p: QueryParams,
        ) -> Response {
            api(st, $kind, q, p, headers).await
        }
    };
}

api_route!(ja3, Kind::Ja3);
api_route!(ja3s, Kind::Ja3s);
api_route!(ja4, Kind::Ja4);
api_route!(cert, Kind::Cert);
api_route!(ip, Kind::Ip);
api_route!(name, Kind::Name);

async fn info(State(st): State<Arc<Server>>) -> Response {
    match st.store.counts() {
        Ok(c) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "software": "d4-tls",
                "version": env!("CARGO_PKG_VERSION"),
                "stats": c,
            })
            .to_string(),
        )
            .into_response(),
        Err(e) => lookup_error(LookupError::Store(e)),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A session row of the HTML pages.
struct Row {
    time: String,
    client: String,
    server: String,
    sni: String,
    other: String,
}

/// The HTML page of a fingerprint.
#[derive(Template)]
#[template(path = "fingerprint.html")]
struct FpPage {
    kind: String,
    fp: String,
    string: String,
    first: String,
    last: String,
    count: u64,
    rows: Vec<Row>,
    more: bool,
}

/// The HTML page of a certificate.
#[derive(Template)]
#[template(path = "cert.html")]
struct CertPage {
    c: crate::cert::CertInfo,
    not_before: String,
    not_after: String,
    first: String,
    last: String,
    issuers: Vec<(String, String)>,
    issued: Vec<(String, String)>,
    rows: Vec<Row>,
    more: bool,
}

fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
}

fn rows(items: &[serde_json::Value], other: &str) -> Vec<Row> {
    items
        .iter()
        .filter_map(|v| serde_json::from_value::<crate::store::Session>(v.clone()).ok())
        .map(|s| Row {
            time: time(s.time),
            client: format!("{}:{}", s.client_ip, s.client_port),
            server: format!("{}:{}", s.server_ip, s.server_port),
            sni: s.sni,
            other: match other {
                "ja3s" => s.ja3s,
                _ => s.ja3,
            },
        })
        .collect()
}

fn links(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["sha1"].as_str().unwrap_or_default().to_string(),
                        c["subject"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn page(st: Arc<Server>, kind: Kind, q: String) -> Response {
    let a = match run_lookup(&st, kind, q.clone(), Params::default()).await {
        Ok(a) => a,
        Err(e) => return lookup_error(e),
    };
    let more = a.next.is_some();
    let html = if kind == Kind::Cert {
        let Some(c) = a
            .head
            .get("certificate")
            .and_then(|c| serde_json::from_value::<crate::cert::CertInfo>(c.clone()).ok())
        else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "store error");
        };
        CertPage {
            not_before: time(c.not_before),
            not_after: time(c.not_after),
            first: time(c.first_seen),
            last: time(c.last_seen),
            issuers: links(a.head.get("issuers")),
            issued: links(a.head.get("issued")),
            rows: rows(&a.items, "ja3"),
            more,
            c,
        }
        .render()
    } else {
        let Some(f) = a
            .head
            .get("fingerprint")
            .and_then(|f| serde_json::from_value::<crate::store::Fingerprint>(f.clone()).ok())
        else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "store error");
        };
        FpPage {
            rows: rows(&a.items, if kind == Kind::Ja3s { "ja3" } else { "ja3s" }),
            more,
            first: time(f.first_seen),
            last: time(f.last_seen),
            count: f.count,
            kind: f.kind,
            fp: f.fp,
            string: f.string,
        }
        .render()
    };
    match html {
        Ok(h) => Html(h).into_response(),
        Err(e) => {
            tracing::error!("template: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "page error")
        }
    }
}

macro_rules! page_route {
    ($name:ident, $kind:expr) => {
        async fn $name(State(st): State<Arc<Server>>, Path(q): Path<String>) -> Response {
            page(st, $kind, q).await
        }
    };
}

page_route!(ja3_page, Kind::Ja3);
page_route!(ja3s_page, Kind::Ja3s);
page_route!(ja4_page, Kind::Ja4);
page_route!(cert_page, Kind::Cert);

/// The router (served with connect info: the rate limit is per address).
pub fn router(store: Arc<Store>, rate_limit: f64) -> Router {
    let st = Arc::new(Server { store });
    let r = Router::new()
        .route("/api/v1/ja3/{q}", get(ja3))
        .route("/api/v1/ja3s/{q}", get(ja3s))
        .route("/api/v1/ja4/{q}", get(ja4))
        .route("/api/v1/cert/{q}", get(cert))
        .route("/api/v1/ip/{*q}", get(ip))
        .route("/api/v1/name/{q}", get(name))
        .route("/api/v1/info", get(info))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/ja3/{q}", get(ja3_page))
        .route("/ja3s/{q}", get(ja3s_page))
        .route("/ja4/{q}", get(ja4_page))
        .route("/cert/{q}", get(cert_page));
    d4_api::serve::rate_limited(r, rate_limit).with_state(st)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    rate_limit: f64,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    d4_api::serve::serve(listener, router(store, rate_limit), shutdown).await
}

/// `d4 tls serve`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 tls serve --store tls.redb\n  d4 tls serve --ingest QUEUE                          # ingest a ja3-jl queue meanwhile\n  curl http://127.0.0.1:8410/api/v1/ja3/e7d705a3286e19ea42f587b344ee6865\n  curl http://127.0.0.1:8410/api/v1/cert/SHA1-OR-SHA256\n  curl 'http://127.0.0.1:8410/api/v1/ip/192.0.2.0/24?limit=50'\n  curl -H 'Accept: application/x-ndjson' http://127.0.0.1:8410/api/v1/name/*.example.com\n  curl http://127.0.0.1:8410/api/v1/openapi.json\n  open http://127.0.0.1:8410/cert/SHA1                 # an HTML page\n\nAnswers are one JSON object (items, next, and what is known of the thing looked up),\nor the items as NDJSON with Accept: application/x-ndjson. Pages: limit (1..1000,\ndefault 100) and cursor (the next of the previous page, also the x-d4-cursor header).\nBad input gets 400, unknown fingerprints and certificates 404, clients beyond\n--rate-limit requests/s 429. See docs/TLS-LOOKUP.md."
)]
pub struct Args {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8410")]
    listen: SocketAddr,
    /// Requests per second per client address (bursts of twice that); 0: no limit.
    #[arg(long, default_value_t = 100.0)]
    rate_limit: f64,
    /// ja3-jl queue to ingest while serving; repeatable.
    #[arg(long = "ingest")]
    queues: Vec<String>,
    #[command(flatten)]
    store: crate::ingest::StoreArgs,
    #[command(flatten)]
    conn: d4_api::Conn,
}

/// Runs `d4 tls serve` until `shutdown`.
pub fn run(a: Args, shutdown: crate::cli::Shutdown) -> Result<()> {
    let store = a.store.open()?;
    let rt = d4_api::serve::runtime()?;
    let mut ingest = None;
    if !a.queues.is_empty() {
        let queues = crate::ingest::connect(&a.conn, &a.queues)?;
        let ing = crate::ingest::Ingester::new(store.clone(), a.store.batch);
        ingest = Some(d4_api::queue::ingest_thread(
            queues,
            shutdown.clone(),
            1000,
            ing,
        ));
    }
    let r = rt.block_on(async {
        let listener = d4_api::serve::listen(a.listen, "d4 tls serve").await?;
        serve(
            listener,
            store.clone(),
            a.rate_limit,
            shutdown.clone().triggered(),
        )
        .await
    });
    shutdown.trigger();
    if let Some(t) = ingest {
        let _ = t.join();
    }
    r
}
