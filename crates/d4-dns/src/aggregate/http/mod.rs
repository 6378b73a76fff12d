//! The HTTP side of `d4 dns aggregate` (axum; served by
//! `d4_api::serve`): the live dashboard, the findings and clients pages an
//! analyst clicks through, and the same numbers as JSON.
//!
//! | route | what |
//! |-------|------|
//! | `GET /` | the live dashboard (`?span=1m|5m|15m`, default 5m) |
//! | `GET /findings`, `GET /finding?name=` | findings by name → one name's queries |
//! | `GET /clients`, `GET /client?ip=` | clients by queries → one client's names |
//! | `GET /api/v1/summary` | [`Summary`]: rates, top names, qtypes, rcodes, servers, findings, the QPS series |
//! | `GET /api/v1/servers`, `/names`, `/findings`, `/finding`, `/clients`, `/client`, `/stats` | parts of it, longer lists |
//! | `GET /api/v1/events` | Server-Sent Events: a `summary` event on connect and each second something changed |
//! | `GET /api/v1/openapi.json` | the OpenAPI document |
//!
//! Each client address gets `--rate-limit` requests/s (a live stream counts
//! once); at most `--max-subscribers` live streams at once (503 past them).
//! The answers of the routes that sum the state (pages and JSON) are kept
//! for [`CACHE_TTL`] per URI: asking again within the second costs nothing
//! (a 15-minute summary of a full state takes tens of milliseconds, under
//! the state's lock); the live stream is computed once a second for every
//! page.
//! The pages run one first-party script (`/static/dns.js`, no library)
//! under a Content-Security-Policy that allows nothing else; names from
//! the network reach the page as text only (askama escapes them; the script
//! sets `textContent`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use d4_api::serve::error;
use d4_api::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::input::{now, Feed};
use super::spans::{
    Aggregator, ClientRow, Counters, FindingGroup, Kind, Span, Summary, BUCKET_SECS,
};
use pages::{client_page, clients_page, dashboard, finding_page, findings_page, script, style};

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("../openapi.json");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Top names in a summary unless asked (`top`).
const TOP: usize = 20;
/// The longest list an API call returns.
const MAX_LIMIT: usize = 1000;
/// Findings and clients on the dashboard.
const LIVE_LIST: usize = 10;

/// How long an answer is kept.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Answers kept at most (past it the cache starts afresh).
const CACHE_ENTRIES: usize = 256;
/// The largest answer kept.
const CACHE_MAX_BYTES: usize = 8 << 20;

/// Recent answers by URI.
#[derive(Default)]
struct Cache(Mutex<HashMap<String, (Instant, axum::http::response::Parts, Bytes)>>);

impl Cache {
    fn get(&self, uri: &str) -> Option<Response> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (at, parts, body) = m.get(uri)?;
        (at.elapsed() < CACHE_TTL)
            .then(|| Response::from_parts(parts.clone(), Body::from(body.clone())))
    }

    fn put(&self, uri: String, parts: &axum::http::response::Parts, body: Bytes) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= CACHE_ENTRIES {
            m.retain(|_, (at, _, _)| at.elapsed() < CACHE_TTL);
            if m.len() >= CACHE_ENTRIES {
                m.clear();
            }
        }
        m.insert(uri, (Instant::now(), parts.clone(), body));
    }
}

/// Serves a recent answer to the same URI, or keeps this one.
async fn cached(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let uri = req.uri().to_string();
    if let Some(r) = app.cache.get(&uri) {
        return r;
    }
    let r = next.run(req).await;
    if r.status() != StatusCode::OK {
        return r;
    }
    let (parts, body) = r.into_parts();
    match axum::body::to_bytes(body, CACHE_MAX_BYTES).await {
        Ok(b) => {
            app.cache.put(uri, &parts, b.clone());
            Response::from_parts(parts, Body::from(b))
        }
        Err(e) => {
            tracing::error!("aggregate: answer not sent: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "answer too large")
        }
    }
}

/// The server's state.
pub struct App {
    feed: Feed,
    /// The latest live events, one per span (the ticker's).
    live: watch::Receiver<Arc<Live>>,
    /// One permit per live stream.
    subscribers: Arc<Semaphore>,
    max_subscribers: usize,
    shutdown: Shutdown,
    /// When the aggregator started (Unix seconds).
    started: i64,
    /// Recent answers.
    cache: Cache,
}

/// What a live page gets: the span's summary, and the heads of the
/// findings and clients lists.
#[derive(Serialize)]
pub struct LiveEvent {
    /// The numbers.
    #[serde(flatten)]
    pub summary: Summary,
    /// The most frequent findings (all kinds).
    pub finding_groups: Vec<FindingGroup>,
    /// The most active clients.
    pub top_clients: Vec<ClientRow>,
}

/// The live events of every span, as JSON, computed once for every page.
#[derive(Default)]
pub struct Live {
    /// The state's generation they were computed at.
    generation: u64,
    /// The bucket they were computed in.
    bucket: i64,
    /// Per span ([`Span::ALL`] order).
    events: [String; 3],
}

fn live_event(a: &mut Aggregator, span: Span, now: i64) -> LiveEvent {
    LiveEvent {
        summary: a.summary(span, now, TOP),
        finding_groups: a.findings(
            span,
            now,
            &[Kind::Underscored, Kind::AloneQuery, Kind::AloneAnswer],
            LIVE_LIST,
        ),
        top_clients: a.clients(span, now, LIVE_LIST),
    }
}

fn span_index(s: Span) -> usize {
    match s {
        Span::M1 => 0,
        Span::M5 => 1,
        Span::M15 => 2,
    }
}

/// Recomputes the live events each second while pages are open and the
/// state or the bucket changed.
async fn ticker(
    feed: Feed,
    tx: watch::Sender<Arc<Live>>,
    subscribers: Arc<Semaphore>,
    max: usize,
    shutdown: Shutdown,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        if subscribers.available_permits() >= max {
            continue;
        }
        let (generation, bucket) = {
            let a = feed.lock();
            (a.generation(), now().div_euclid(BUCKET_SECS))
        };
        let last = tx.borrow().clone();
        if last.generation == generation && last.bucket == bucket {
            continue;
        }
        let f = feed.clone();
        let computed = tokio::task::spawn_blocking(move || {
            let t = now();
            let mut a = f.lock();
            let events = Span::ALL
                .map(|s| serde_json::to_string(&live_event(&mut a, s, t)).unwrap_or_default());
            Live {
                generation: a.generation(),
                bucket: t.div_euclid(BUCKET_SECS),
                events,
            }
        })
        .await;
        if let Ok(l) = computed {
            tx.send_replace(Arc::new(l));
        }
    }
}

/// Runs `f` on the state at the current time, off the async workers (a
/// summary of a full state takes milliseconds).
async fn with_state<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut Aggregator, i64) -> T + Send + 'static,
) -> Result<T, Refused> {
    let feed = app.feed.clone();
    tokio::task::spawn_blocking(move || f(&mut feed.lock(), now()))
        .await
        .map_err(|e| {
            tracing::error!("aggregate: {e}");
            Refused(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        })
}

/// The query parameters of every route (another is refused: 400).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `1m`, `5m` (default) or `15m`.
    span: Option<String>,
    /// Top names in a summary.
    top: Option<usize>,
    /// List length.
    limit: Option<usize>,
    /// One monitor (`/names`).
    server: Option<String>,
    /// Finding kind: `underscored`, `alone`, `alone-query`, `alone-answer`.
    kind: Option<String>,
    /// A finding's name.
    name: Option<String>,
    /// A client's address.
    ip: Option<String>,
}

type P = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

impl Params {
    fn from(p: P) -> Result<Params, Refused> {
        p.map(|Query(p)| p)
            .map_err(|e| Refused(StatusCode::BAD_REQUEST, e.body_text()))
    }

    fn span(&self) -> Result<Span, Refused> {
        match self.span.as_deref() {
            None | Some("") => Ok(Span::M5),
            Some(s) => Span::parse(s).ok_or_else(|| {
                Refused(
                    StatusCode::BAD_REQUEST,
                    format!("span {s:?}: give 1m, 5m or 15m"),
                )
            }),
        }
    }

    fn limit(&self, default: usize) -> Result<usize, Refused> {
        limit(self.limit, default)
    }

    fn kinds(&self) -> Result<Vec<Kind>, Refused> {
        let k = self.kind.as_deref().unwrap_or("");
        Kind::parse(k).ok_or_else(|| {
            Refused(
                StatusCode::BAD_REQUEST,
                format!("kind {k:?}: give underscored, alone, alone-query or alone-answer"),
            )
        })
    }
}

fn limit(asked: Option<usize>, default: usize) -> Result<usize, Refused> {
    d4_api::lookup::page_limit(asked, default, MAX_LIMIT)
        .map_err(|m| Refused(StatusCode::BAD_REQUEST, m))
}

fn json<T: Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => {
            tracing::error!("aggregate: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// A refused request: its status and what to say (a JSON error answer).
#[derive(Debug)]
pub struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// The answer of a handler: a response either way.
type Answer = Result<Response, Refused>;

fn answer(a: Answer) -> Response {
    a.unwrap_or_else(IntoResponse::into_response)
}

async fn summary(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, top) = (p.span()?, limit(p.top, TOP)?);
            let s = with_state(&app, move |a, t| a.summary(span, t, top)).await?;
            Ok(json(&s))
        }
        .await,
    )
}

async fn servers(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let span = Params::from(p)?.span()?;
            let s = with_state(&app, move |a, t| a.summary(span, t, 10)).await?;
            Ok(json(&serde_json::json!({
                "span": s.span, "time": s.time, "total": s.total, "servers": s.servers,
            })))
        }
        .await,
    )
}

async fn names(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, k) = (p.span()?, p.limit(100)?);
            let server = p.server.clone();
            let (queries, names) =
                with_state(&app, move |a, t| a.names(span, t, server.as_deref(), k)).await?;
            Ok(json(&serde_json::json!({
                "span": span.as_str(), "server": p.server, "queries": queries, "names": names,
            })))
        }
        .await,
    )
}

async fn findings(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, k, kinds) = (p.span()?, p.limit(100)?, p.kinds()?);
            let f = with_state(&app, move |a, t| a.findings(span, t, &kinds, k)).await?;
            Ok(json(&serde_json::json!({
                "span": span.as_str(), "kind": p.kind.as_deref().unwrap_or("all"), "findings": f,
            })))
        }
        .await,
    )
}

fn required(v: Option<String>, what: &str) -> Result<String, Refused> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| Refused(StatusCode::BAD_REQUEST, format!("give ?{what}=")))
}

async fn finding(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, k) = (p.span()?, p.limit(500)?);
            let name = required(p.name, "name")?;
            let n = name.clone();
            let f = with_state(&app, move |a, t| a.finding(span, t, &n, k)).await?;
            Ok(json(&serde_json::json!({
                "span": span.as_str(), "qname": name, "findings": f,
            })))
        }
        .await,
    )
}

async fn clients(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, k) = (p.span()?, p.limit(100)?);
            let c = with_state(&app, move |a, t| a.clients(span, t, k)).await?;
            Ok(json(
                &serde_json::json!({ "span": span.as_str(), "clients": c }),
            ))
        }
        .await,
    )
}

async fn client(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, k) = (p.span()?, p.limit(100)?);
            let ip = required(p.ip, "ip")?;
            let i = ip.clone();
            match with_state(&app, move |a, t| a.client(span, t, &i, k)).await? {
                Some(c) => Ok(json(&c)),
                None => Err(Refused(
                    StatusCode::NOT_FOUND,
                    format!("no query of {ip} in the last {}", span.as_str()),
                )),
            }
        }
        .await,
    )
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    let a = app.feed.lock();
    json(&serde_json::json!({
        "software": "d4 dns aggregate",
        "version": env!("CARGO_PKG_VERSION"),
        "started": app.started,
        "time": now(),
        "bucket_secs": BUCKET_SECS,
        "input": a.counters(),
        "usage": a.usage(),
        "limits": a.limits(),
        "subscribers": app.max_subscribers - app.subscribers.available_permits(),
        "max_subscribers": app.max_subscribers,
    }))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A live stream's state between events.
struct Stream {
    rx: watch::Receiver<Arc<Live>>,
    span: Span,
    /// The event computed at connection, sent first.
    first: Option<String>,
    /// The state (generation, bucket) of the last event sent: a snapshot
    /// of the same is not sent again.
    last: (u64, i64),
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Held while the stream lives.
    _permit: OwnedSemaphorePermit,
}

async fn events(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let span = Params::from(p)?.span()?;
            let Ok(permit) = app.subscribers.clone().try_acquire_owned() else {
                return Err(Refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "too many live pages open ({}); close one, or raise --max-subscribers",
                        app.max_subscribers
                    ),
                ));
            };
            let (first, last) = with_state(&app, move |a, t| {
                let e = serde_json::to_string(&live_event(a, span, t)).unwrap_or_default();
                (e, (a.generation(), t.div_euclid(BUCKET_SECS)))
            })
            .await?;
            let mut rx = app.live.clone();
            rx.mark_unchanged();
            let st = Stream {
                rx,
                span,
                first: Some(first),
                last,
                stop: Box::pin(app.shutdown.clone().triggered()),
                _permit: permit,
            };
            let stream = futures_util::stream::unfold(st, |mut st| async move {
                let data = match st.first.take() {
                    Some(d) => d,
                    None => loop {
                        tokio::select! {
                            _ = &mut st.stop => return None,
                            r = st.rx.changed() => {
                                r.ok()?;
                                let l = st.rx.borrow_and_update().clone();
                                if (l.generation, l.bucket) == st.last {
                                    continue;
                                }
                                st.last = (l.generation, l.bucket);
                                break l.events[span_index(st.span)].clone();
                            }
                        }
                    },
                };
                let ev = Event::default().event("summary").data(data);
                Some((Ok::<_, Infallible>(ev), st))
            });
            Ok(Sse::new(stream)
                .keep_alive(KeepAlive::default())
                .into_response())
        }
        .await,
    )
}

// ---- pages ----

/// `%`-encodes a query-string value.
/// The HTTP service's settings.
pub struct Config {
    /// Requests per second per client address (0: none).
    pub rate_limit: f64,
    /// Live streams at once.
    pub max_subscribers: usize,
}

/// The router over `feed`, and the ticker that feeds the live pages (to
/// spawn on the runtime).
pub fn router(
    feed: Feed,
    c: &Config,
    shutdown: Shutdown,
) -> (Router, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = watch::channel(Arc::new(Live::default()));
    let subscribers = Arc::new(Semaphore::new(c.max_subscribers));
    let app = Arc::new(App {
        feed: feed.clone(),
        live: rx,
        subscribers: subscribers.clone(),
        max_subscribers: c.max_subscribers,
        shutdown: shutdown.clone(),
        started: now(),
        cache: Cache::default(),
    });
    // The routes that sum the state, answers kept a second.
    let computed = Router::new()
        .route("/", get(dashboard))
        .route("/findings", get(findings_page))
        .route("/finding", get(finding_page))
        .route("/clients", get(clients_page))
        .route("/client", get(client_page))
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/servers", get(servers))
        .route("/api/v1/names", get(names))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/finding", get(finding))
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/client", get(client))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), cached));
    let r = Router::new()
        .merge(computed)
        .route("/static/dns.js", get(script))
        .route("/static/dns.css", get(style))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/events", get(events))
        .route("/api/v1/openapi.json", get(openapi));
    let r = d4_api::serve::rate_limited(r, c.rate_limit).with_state(app);
    let tick = ticker(feed, tx, subscribers, c.max_subscribers, shutdown);
    (r, tick)
}

mod pages;

#[cfg(test)]
mod tests {
    use super::pages::enc;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc("_a.b-c~"), "_a.b-c~");
        assert_eq!(enc("a&b=c d/é"), "a%26b%3Dc%20d%2F%C3%A9");
    }
}
