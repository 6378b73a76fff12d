//! The management API: HTTPS, JSON, `Authorization: <token>`. Errors are
//! `{"status":"error","reason":...}`. The OpenAPI document is served at
//! `/api/v1/openapi.json` (source: `openapi.json` beside this file) and as a
//! page at `/api`.
//!
//! Tokens: the local management token of `<data-dir>/server.json` (admin, for
//! the CLI on the server's machine) or an account's API key. What a role may
//! call is decided in one place, [`required_role`]: `sensor_register` only
//! registers sensors; `user` reads everything and pops queues; `admin` does
//! everything.
//!
//! | method | path | does |
//! |--------|------|------|
//! | GET | `/api/v1/server` | mode, addresses, counters |
//! | GET, POST | `/api/v1/queues` | list; create `{"type","description","max_size","sensors"}` |
//! | GET, DELETE | `/api/v1/queues/{uuid}` | show; delete |
//! | POST | `/api/v1/queues/{uuid}/pop?count=N` | pop (binary: u32 LE length + bytes, per item) |
//! | GET | `/api/v1/queues/{uuid}/peek?count=N` | first items, left in place (JSON strings) |
//! | POST | `/api/v1/queues/{uuid}/resize`, `/empty` | `{"max_size": N}`; remove every item |
//! | GET | `/api/v1/sensors`, `/api/v1/sensors/{uuid}` | sensors with status and last error |
//! | POST | `/api/v1/sensors/{uuid}/{approve,reject,revoke,block,unblock,kick,block-ips}` | policy |
//! | POST | `/api/v1/sensors/{uuid}/key` | `{"key": "..."}` set the HMAC key (never shown back) |
//! | POST | `/api/v1/sensors/{uuid}/settings` | name, description, tags, max_frame_size, monitor_delay_secs |
//! | GET | `/api/v1/blocklist` | blocked addresses/ranges, UUIDs, block-IP-by-UUID |
//! | POST | `/api/v1/blocklist/ip`, `/api/v1/blocklist/ip/remove` | `{"net": "192.0.2.0/24"}` |
//! | POST | `/api/v1/blocklist/uuid`, `/api/v1/blocklist/uuid/remove` | `{"uuid": "..."}` |
//! | GET, POST | `/api/v1/types` | accepted types and extended types |
//! | GET, POST | `/api/v1/users` | accounts; create `{"name","role","password"}` (returns the API key once) |
//! | POST | `/api/v1/users/{name}/{role,delete,api-key}` | change role, delete, new API key |
//! | GET | `/api/v1/alerts` | monitoring alerts in force |
//! | GET | `/api/v1/rejections` | recent rejected sessions |
//! | GET | `/api/v1/stats/daily` | bytes and frames per day, per type and per peer address |
//! | POST | `/api/v1/add/sensor/register` | the reference's sensor registration |
//! | GET | `/api/v1/sensors/monitoring/errors` | the reference's list of silent sensors |
//! | GET | `/metrics` | Prometheus text format |

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::accounts::Role;
use crate::ingest::policy::{Reject, SensorSettings};
use crate::ingest::sensors::SensorMeta;
use crate::server::Shared;
use crate::store::queues::{QueueDef, QueueType};

/// The OpenAPI document of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// An API error: status and reason.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"status": "error", "reason": self.1}))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        let msg = format!("{e:#}");
        let code = if msg.starts_with("no queue") || msg.starts_with("no user") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError(code, msg)
    }
}

/// A result of an API operation.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Who is calling (set by the authentication layer).
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    /// Account name (`local` for the server.json token).
    pub(crate) name: String,
    /// Its role.
    pub(crate) role: Role,
}

/// The peer address of an HTTPS connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub std::net::SocketAddr);

/// Runs blocking work (disk commits, password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// Changes the policy (a disk commit) off the async threads.
async fn policy_update<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&mut crate::ingest::policy::PolicyState) -> T + Send + 'static,
) -> ApiResult<T> {
    let s = s.clone();
    blocking(move || s.policy.update(f)).await
}

/// Parses a UUID (with or without dashes).
pub(crate) fn parse_uuid(s: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(s.trim()).map_err(|_| bad(format!("{s:?} is not a UUID")))
}

/// The role a request needs: the one place API permissions are decided.
pub(crate) fn required_role(method: &Method, path: &str) -> Role {
    let path = path.trim_end_matches('/');
    if path.ends_with("/add/sensor/register") {
        return Role::SensorRegister;
    }
    if path.contains("/users") {
        return Role::Admin;
    }
    if *method == Method::GET || *method == Method::HEAD {
        return Role::User;
    }
    if *method == Method::POST
        && path.contains("/queues/")
        && (path.ends_with("/pop") || path.ends_with("/read") || path.ends_with("/ack"))
    {
        return Role::User;
    }
    Role::Admin
}

/// The API routes (under `/api/v1`) and `/metrics`.
pub(crate) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let v1 = Router::new()
        .route("/server", get(server_info))
        .route("/queues", get(list_queues).post(create_queue))
        .route("/queues/{id}", get(show_queue).delete(delete_queue))
        .route("/queues/{id}/pop", post(pop_queue))
        .route("/queues/{id}/peek", get(peek_queue))
        .route("/queues/{id}/read", post(read_queue))
        .route("/queues/{id}/ack", post(ack_queue))
        .route("/queues/{id}/resize", post(resize_queue))
        .route("/queues/{id}/empty", post(empty_queue))
        .route("/sensors", get(list_sensors))
        .route("/sensors/monitoring/errors", get(monitoring_errors))
        .route("/sensors/{id}", get(show_sensor))
        .route("/sensors/{id}/{action}", post(sensor_action))
        .route("/blocklist", get(blocklist))
        .route("/blocklist/ip", post(block_ip))
        .route("/blocklist/ip/remove", post(unblock_ip))
        .route("/blocklist/uuid", post(block_uuid))
        .route("/blocklist/uuid/remove", post(unblock_uuid))
        .route("/types", get(get_types).post(set_types))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{name}", axum::routing::delete(delete_user))
        .route("/users/{name}/{action}", post(user_action))
        .route("/alerts", get(alerts))
        .route("/rejections", get(rejections))
        .route("/stats/daily", get(daily_stats))
        .route("/add/sensor/register", post(register_sensor))
        .fallback(no_endpoint)
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .layer(middleware::from_fn(json_errors));
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(shared, auth));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .nest("/api/v1", v1)
        .merge(metrics)
}

/// `/api/v1/...` that is no endpoint: a JSON 404.
async fn no_endpoint(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no endpoint {method} {}", uri.path()),
    )
}

/// Makes every API error JSON: the extractors' rejections (malformed JSON
/// body, wrong content type, bad query or path, body too large) and the
/// router's (method not allowed) are plain text; their text becomes the
/// `reason` and the status is kept.
async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError(status, reason).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Who a token belongs to.
pub(crate) fn principal_of_token(s: &Shared, token: &str) -> Option<Principal> {
    if crate::accounts::ct_eq(token.as_bytes(), s.api_token.as_bytes()) {
        return Some(Principal {
            name: "local".into(),
            role: Role::Admin,
        });
    }
    s.accounts.by_api_key(token).map(|u| Principal {
        name: u.name,
        role: u.role,
    })
}

async fn auth(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "Authentication needed (header Authorization: <token>)".into(),
        )
        .into_response();
    };
    let Some(p) = principal_of_token(&s, &given) else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "Authentication failed (wrong or revoked token)".into(),
        )
        .into_response();
    };
    let needed = required_role(req.method(), req.uri().path());
    if !p.role.allows(needed) {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "Access Forbidden: this needs the {} role; {:?} has {}",
                needed.as_str(),
                p.name,
                p.role.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(p);
    next.run(req).await
}

/// Most HTTPS connections served at once; past it, new ones are closed.
pub(crate) const MAX_WEB_CONNECTIONS: usize = 256;
/// Time allowed for the TLS handshake, and for each request's header (also
/// how long an idle keep-alive connection stays open).
pub(crate) const WEB_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the web UI and the API over TLS until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let app = crate::http::web::app(shared.clone());
    let mut sd = shared.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_WEB_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = sd.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                "HTTPS connection from {peer} closed: {MAX_WEB_CONNECTIONS} already open"
            );
            continue;
        };
        let (app, acceptor) = (app.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) = tokio::time::timeout(WEB_HEADER_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let app = app.layer(Extension(PeerAddr(peer)));
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(WEB_HEADER_TIMEOUT);
            let _ = b.serve_connection(TokioIo::new(tls), svc).await;
        });
    }
}

async fn server_info(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "software": "d4",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": s.policy.mode(),
        "listen": s.cfg.listen.to_string(),
        "data_dir": s.cfg.data_dir,
        "frames": s.stats.frames.load(Ordering::Relaxed),
        "bytes": s.stats.bytes.load(Ordering::Relaxed),
        "rejects": s.stats.rejects.load(Ordering::Relaxed),
        "skipped": s.stats.skipped.load(Ordering::Relaxed),
        "live_sessions": s.sensors.live().len(),
    }))
}

/// A queue as the API shows it.
#[derive(Serialize)]
pub(crate) struct QueueView {
    /// Definition and counters.
    #[serde(flatten)]
    pub(crate) def: QueueDef,
    /// Items waiting.
    pub(crate) length: u64,
}

/// A queue with its length.
pub(crate) fn view(def: QueueDef) -> QueueView {
    QueueView {
        length: def.len(),
        def,
    }
}

async fn list_queues(State(s): State<Arc<Shared>>) -> Json<Vec<QueueView>> {
    Json(s.queues.list().into_iter().map(view).collect())
}

/// A new queue.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateQueue {
    /// Type number or extended type name.
    #[serde(rename = "type")]
    pub(crate) ty: String,
    /// Free text.
    #[serde(default)]
    pub(crate) description: String,
    /// Most items kept.
    pub(crate) max_size: Option<u64>,
    /// Sensor group (UUIDs).
    #[serde(default)]
    pub(crate) sensors: Vec<String>,
}

/// Creates a queue.
pub(crate) async fn op_create_queue(s: &Arc<Shared>, c: CreateQueue) -> ApiResult<QueueDef> {
    let ty = QueueType::parse(&c.ty)?;
    let sensors = c
        .sensors
        .iter()
        .map(|u| parse_uuid(u))
        .collect::<ApiResult<Vec<_>>>()?;
    let max = c.max_size.unwrap_or(s.cfg.default_queue_size);
    let sq = s.clone();
    let def = blocking(move || sq.queues.create(ty, c.description, max, sensors)).await?;
    tracing::info!("queue {} created for type {}", def.uuid, def.ty);
    Ok(def)
}

async fn create_queue(
    State(s): State<Arc<Shared>>,
    Json(c): Json<CreateQueue>,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    Ok((
        StatusCode::CREATED,
        Json(view(op_create_queue(&s, c).await?)),
    ))
}

/// A queue by UUID, or 404.
pub(crate) fn find_queue(s: &Shared, id: &str) -> ApiResult<QueueDef> {
    let u = parse_uuid(id)?;
    s.queues
        .get(u)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no queue {u}")))
}

async fn show_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(find_queue(&s, &id)?)))
}

/// Deletes a queue.
pub(crate) async fn op_delete_queue(s: &Arc<Shared>, id: &str) -> ApiResult<QueueDef> {
    let d = find_queue(s, id)?;
    let sq = s.clone();
    let d = blocking(move || sq.queues.delete(d.uuid)).await?;
    tracing::info!("queue {} deleted", d.uuid);
    Ok(d)
}

async fn delete_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(op_delete_queue(&s, &id).await?)))
}

/// Removes every item of a queue.
pub(crate) async fn op_empty_queue(s: &Arc<Shared>, id: &str) -> ApiResult<u64> {
    let d = find_queue(s, id)?;
    let sq = s.clone();
    let n = blocking(move || sq.queues.empty(d.uuid)).await?;
    tracing::info!("queue {} emptied ({n} items)", d.uuid);
    Ok(n)
}

async fn empty_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let n = op_empty_queue(&s, &id).await?;
    Ok(Json(json!({"status": "ok", "removed": n})))
}

#[derive(Deserialize)]
struct Count {
    count: Option<usize>,
}

/// Content type of a popped batch.
pub(crate) const ITEMS_CONTENT_TYPE: &str = "application/vnd.d4.items";

async fn pop_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Count>,
) -> ApiResult<Response> {
    let d = find_queue(&s, &id)?;
    let n = q.count.unwrap_or(1).clamp(1, 10_000);
    let sq = s.clone();
    let items = blocking(move || sq.queues.pop(d.uuid, n)).await?;
    let body = items_body(&items);
    let left = s.queues.get(d.uuid).map(|d| d.len()).unwrap_or(0);
    Response::builder()
        .header(header::CONTENT_TYPE, ITEMS_CONTENT_TYPE)
        .header("x-d4-items", items.len())
        .header("x-d4-queue-length", left)
        .body(Body::from(body))
        .map_err(|e| bad(e.to_string()))
}

/// Items in the binary batch format: u32 LE length, then the bytes.
fn items_body(items: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 4).sum());
    for i in items {
        body.extend_from_slice(&(i.len() as u32).to_le_bytes());
        body.extend_from_slice(i);
    }
    body
}

/// Like pop, but the items stay until acknowledged (`/ack?upto=`): the
/// reply's `x-d4-first` header numbers the first item, the others follow.
async fn read_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Count>,
) -> ApiResult<Response> {
    let d = find_queue(&s, &id)?;
    let n = q.count.unwrap_or(1).clamp(1, 10_000);
    let sq = s.clone();
    let items = blocking(move || sq.queues.read(d.uuid, n)).await?;
    let first = items.first().map(|(seq, _)| *seq).unwrap_or(d.head);
    let items: Vec<Vec<u8>> = items.into_iter().map(|(_, v)| v).collect();
    Response::builder()
        .header(header::CONTENT_TYPE, ITEMS_CONTENT_TYPE)
        .header("x-d4-items", items.len())
        .header("x-d4-first", first)
        .body(Body::from(items_body(&items)))
        .map_err(|e| bad(e.to_string()))
}

#[derive(Deserialize)]
struct Upto {
    upto: u64,
}

/// Removes the items numbered below `upto` (acknowledges a `read`).
async fn ack_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Upto>,
) -> ApiResult<Json<Value>> {
    let d = find_queue(&s, &id)?;
    let sq = s.clone();
    let n = blocking(move || sq.queues.ack(d.uuid, q.upto)).await?;
    Ok(Json(json!({"status": "ok", "removed": n})))
}

async fn peek_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Count>,
) -> ApiResult<Json<Vec<String>>> {
    let d = find_queue(&s, &id)?;
    let items = s.queues.peek(d.uuid, q.count.unwrap_or(10).min(1000))?;
    Ok(Json(
        items
            .iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect(),
    ))
}

#[derive(Deserialize)]
struct Resize {
    max_size: u64,
}

/// Changes a queue's max size.
pub(crate) async fn op_resize_queue(s: &Arc<Shared>, id: &str, max: u64) -> ApiResult<QueueDef> {
    let d = find_queue(s, id)?;
    let sq = s.clone();
    blocking(move || sq.queues.resize(d.uuid, max)).await
}

async fn resize_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(r): Json<Resize>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(op_resize_queue(&s, &id, r.max_size).await?)))
}

/// A sensor as the API shows it (its key never).
#[derive(Serialize, Clone)]
pub(crate) struct SensorView {
    /// Metadata and statistics.
    #[serde(flatten)]
    pub(crate) meta: SensorMeta,
    /// `approved`, `pending`, `blocked` or `unknown`.
    pub(crate) status: &'static str,
    /// Approved (registration mode).
    pub(crate) approved: bool,
    /// In the UUID blocklist.
    pub(crate) blocked: bool,
    /// Its next addresses are blocklisted.
    pub(crate) block_ips: bool,
    /// Has a key of its own (the key itself is never shown).
    pub(crate) has_own_key: bool,
    /// Has a live session.
    pub(crate) connected: bool,
    /// Types of its live sessions.
    pub(crate) live_types: Vec<u8>,
    /// Operator settings.
    pub(crate) settings: SensorSettings,
}

/// One sensor's view.
pub(crate) fn sensor_view(
    s: &Shared,
    u: Uuid,
    p: &crate::ingest::policy::PolicyState,
    live: &[crate::ingest::sensors::LiveSession],
) -> SensorView {
    let live: Vec<u8> = live.iter().filter(|l| l.uuid == u).map(|l| l.ty).collect();
    let blocked = p.blocked_uuids.contains(&u);
    let approved = p.approved.contains(&u);
    let status = if blocked {
        "blocked"
    } else if approved {
        "approved"
    } else if p.pending.contains_key(&u) {
        "pending"
    } else {
        "unknown"
    };
    let mut meta = s.sensors.get(u).unwrap_or(SensorMeta {
        uuid: u,
        ..SensorMeta::default()
    });
    let settings = p.settings.get(&u).cloned().unwrap_or_default();
    if meta.description.is_empty() {
        meta.description = settings.description.clone();
    }
    SensorView {
        meta,
        status,
        approved,
        blocked,
        block_ips: p.block_ip_by_uuid.contains(&u),
        has_own_key: p.keys.contains_key(&u),
        connected: !live.is_empty(),
        live_types: live,
        settings,
    }
}

/// Every sensor the server knows (metadata, approved, pending, blocked).
pub(crate) fn all_sensors(s: &Shared) -> Vec<SensorView> {
    let p = s.policy.snapshot();
    let mut ids: Vec<Uuid> = s.sensors.all().iter().map(|m| m.uuid).collect();
    let mut seen: BTreeSet<Uuid> = ids.iter().copied().collect();
    for u in p
        .approved
        .iter()
        .chain(p.pending.keys())
        .chain(p.blocked_uuids.iter())
        .chain(p.settings.keys())
    {
        if seen.insert(*u) {
            ids.push(*u);
        }
    }
    let live = s.sensors.live();
    ids.into_iter()
        .map(|u| sensor_view(s, u, &p, &live))
        .collect()
}

async fn list_sensors(State(s): State<Arc<Shared>>) -> Json<Vec<SensorView>> {
    Json(all_sensors(&s))
}

async fn show_sensor(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<SensorView>> {
    Ok(Json(sensor_view(
        &s,
        parse_uuid(&id)?,
        &s.policy.snapshot(),
        &s.sensors.live(),
    )))
}

/// Body of sensor actions.
#[derive(Deserialize, Default)]
pub(crate) struct ActionBody {
    /// For `key`.
    pub(crate) key: Option<String>,
    /// For `settings`.
    pub(crate) name: Option<String>,
    /// For `settings`.
    pub(crate) description: Option<String>,
    /// For `settings`.
    pub(crate) tags: Option<Vec<String>>,
    /// For `settings` (0: the server's limit).
    pub(crate) max_frame_size: Option<u32>,
    /// For `settings` (0: not monitored).
    pub(crate) monitor_delay_secs: Option<u64>,
}

/// Runs a sensor action; returns a short result for the API.
pub(crate) async fn op_sensor_action(
    s: &Arc<Shared>,
    u: Uuid,
    action: &str,
    body: ActionBody,
) -> ApiResult<Value> {
    let done = json!({"status": "ok", "uuid": u.simple().to_string()});
    match action {
        "approve" => {
            if !d4_proto::is_v4(&u) {
                return Err(bad(format!(
                    "{u} is not a version 4 UUID; D4 sensors must use one"
                )));
            }
            policy_update(s, move |p| {
                if let Some(k) = p.pending.remove(&u).and_then(|x| x.key) {
                    p.keys.insert(u, k);
                }
                p.approved.insert(u)
            })
            .await?;
            tracing::info!("sensor {} approved", u.simple());
        }
        "reject" => {
            let was = policy_update(s, move |p| p.pending.remove(&u).is_some()).await?;
            if !was {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("sensor {} is not pending", u.simple()),
                ));
            }
            tracing::info!("pending sensor {} rejected", u.simple());
        }
        "revoke" => {
            let was = policy_update(s, move |p| p.approved.remove(&u)).await?;
            if !was {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("sensor {} is not approved", u.simple()),
                ));
            }
            s.sensors.close_sessions_of(u, Reject::NotApproved(u));
            tracing::info!("sensor {} no longer approved", u.simple());
        }
        "key" => {
            let key = body
                .key
                .ok_or_else(|| bad("give the key as {\"key\": \"...\"}"))?;
            if key.is_empty() {
                return Err(bad("the key must not be empty"));
            }
            policy_update(s, move |p| p.keys.insert(u, key)).await?;
            tracing::info!("sensor {} has a new HMAC key", u.simple());
        }
        "block" => {
            policy_update(s, move |p| {
                p.approved.remove(&u);
                p.blocked_uuids.insert(u)
            })
            .await?;
            s.sensors.close_sessions_of(u, Reject::BlockedUuid);
            tracing::info!("sensor {} blocked", u.simple());
        }
        "unblock" => {
            policy_update(s, move |p| {
                p.block_ip_by_uuid.remove(&u);
                p.blocked_uuids.remove(&u)
            })
            .await?;
        }
        "block-ips" => {
            let ips: Vec<IpNet> = s
                .sensors
                .get(u)
                .map(|m| {
                    m.last_ips
                        .iter()
                        .filter_map(|(ip, _)| ip.parse::<std::net::IpAddr>().ok())
                        .map(IpNet::from)
                        .collect()
                })
                .unwrap_or_default();
            let nets = ips.clone();
            policy_update(s, move |p| {
                p.block_ip_by_uuid.insert(u);
                p.blocked_nets.extend(nets);
            })
            .await?;
            close_sessions_in(s, &ips);
            tracing::info!("sensor {} has its addresses blocked", u.simple());
            return Ok(json!({"status": "ok", "uuid": u.simple().to_string(),
                "blocked": ips.iter().map(|n| n.to_string()).collect::<Vec<_>>()}));
        }
        "kick" => {
            s.policy.kick(u);
            let n = s
                .sensors
                .close_sessions_of(u, Reject::Kicked(s.cfg.kick_secs));
            tracing::info!("sensor {} kicked ({n} sessions)", u.simple());
            return Ok(json!({"status": "ok", "sessions_closed": n}));
        }
        "settings" => {
            let tags = body.tags.map(|t| {
                t.iter()
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            });
            if let Some(t) = &tags {
                if t.len() > 32 || t.iter().any(|x| x.len() > 64) {
                    return Err(bad("at most 32 tags of 64 bytes each"));
                }
            }
            if body.name.as_ref().is_some_and(|n| n.len() > 128)
                || body.description.as_ref().is_some_and(|d| d.len() > 4096)
            {
                return Err(bad(
                    "the name is limited to 128 bytes, the description to 4096",
                ));
            }
            policy_update(s, move |p| {
                let e = p.settings.entry(u).or_default();
                if let Some(n) = body.name {
                    e.name = n.trim().to_string();
                }
                if let Some(d) = body.description {
                    e.description = d;
                }
                if let Some(t) = tags {
                    e.tags = t;
                }
                if let Some(m) = body.max_frame_size {
                    e.max_frame_size = (m > 0).then_some(m);
                }
                if let Some(d) = body.monitor_delay_secs {
                    e.monitor_delay_secs = (d > 0).then_some(d);
                }
            })
            .await?;
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no sensor action {other:?} (approve, reject, revoke, key, block, unblock, block-ips, kick, settings)"),
            ));
        }
    }
    Ok(done)
}

async fn sensor_action(
    State(s): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<ActionBody>>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&id)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(op_sensor_action(&s, u, &action, body).await?))
}

fn close_sessions_in(s: &Shared, nets: &[IpNet]) {
    for l in s.sensors.live() {
        if nets.iter().any(|n| n.contains(&l.ip)) {
            l.close.close(Reject::BlockedIp(l.ip));
        }
    }
}

#[derive(Deserialize)]
struct NetBody {
    net: String,
}

/// Parses an address or a CIDR range.
pub(crate) fn parse_net(s: &str) -> ApiResult<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| bad(format!("{s:?} is neither an IP address nor a CIDR range")))
}

/// Adds an address or range to the IP blocklist and closes its sessions.
pub(crate) async fn op_block_net(s: &Arc<Shared>, net: &str) -> ApiResult<IpNet> {
    let n = parse_net(net)?;
    policy_update(s, move |p| p.blocked_nets.insert(n)).await?;
    close_sessions_in(s, &[n]);
    tracing::info!("{n} added to the IP blocklist");
    Ok(n)
}

/// Removes an address or range from the IP blocklist.
pub(crate) async fn op_unblock_net(s: &Arc<Shared>, net: &str) -> ApiResult<IpNet> {
    let n = parse_net(net)?;
    let removed = policy_update(s, move |p| p.blocked_nets.remove(&n)).await?;
    if !removed {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{n} is not in the IP blocklist"),
        ));
    }
    Ok(n)
}

async fn block_ip(State(s): State<Arc<Shared>>, Json(b): Json<NetBody>) -> ApiResult<Json<Value>> {
    let n = op_block_net(&s, &b.net).await?;
    Ok(Json(json!({"status": "ok", "net": n.to_string()})))
}

async fn unblock_ip(
    State(s): State<Arc<Shared>>,
    Json(b): Json<NetBody>,
) -> ApiResult<Json<Value>> {
    let n = op_unblock_net(&s, &b.net).await?;
    Ok(Json(json!({"status": "ok", "net": n.to_string()})))
}

#[derive(Deserialize)]
struct UuidBody {
    uuid: String,
}

async fn block_uuid(
    State(s): State<Arc<Shared>>,
    Json(b): Json<UuidBody>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&b.uuid)?;
    Ok(Json(
        op_sensor_action(&s, u, "block", ActionBody::default()).await?,
    ))
}

async fn unblock_uuid(
    State(s): State<Arc<Shared>>,
    Json(b): Json<UuidBody>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&b.uuid)?;
    if !s.policy.snapshot().blocked_uuids.contains(&u) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{} is not in the UUID blocklist", u.simple()),
        ));
    }
    Ok(Json(
        op_sensor_action(&s, u, "unblock", ActionBody::default()).await?,
    ))
}

async fn blocklist(State(s): State<Arc<Shared>>) -> Json<Value> {
    let p = s.policy.snapshot();
    Json(json!({
        "ips": p.blocked_nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "uuids": p.blocked_uuids.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>(),
        "ip_by_uuid": p.block_ip_by_uuid.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>(),
    }))
}

/// Accepted types and extended types.
#[derive(Deserialize, Serialize)]
pub(crate) struct TypesBody {
    /// Accepted D4 types.
    pub(crate) types: Vec<u8>,
    /// Accepted extended types (empty: any valid name).
    #[serde(default)]
    pub(crate) extended: Vec<String>,
}

async fn get_types(State(s): State<Arc<Shared>>) -> Json<TypesBody> {
    Json(TypesBody {
        types: s.policy.accepted_types().into_iter().collect(),
        extended: s.policy.accepted_extended().into_iter().collect(),
    })
}

/// Sets the accepted types and extended types.
pub(crate) async fn op_set_types(s: &Arc<Shared>, b: TypesBody) -> ApiResult<()> {
    let mut types = BTreeSet::new();
    for t in b.types {
        if !d4_proto::D4Type::DEFINED.contains(&t) {
            return Err(bad(format!(
                "type {t} is not a D4 type (1-8, 254); type 0 is reserved"
            )));
        }
        types.insert(t);
    }
    let mut ext = BTreeSet::new();
    for e in b.extended {
        let e = e.trim().to_string();
        if e.is_empty() {
            continue;
        }
        if !d4_proto::meta::valid_extended_type(&e) {
            return Err(bad(format!(
                "{e:?} is not an extended type name ([A-Za-z0-9._-], 1-64 characters)"
            )));
        }
        ext.insert(e);
    }
    tracing::info!("accepted types now {types:?}, extended {ext:?}");
    policy_update(s, move |p| {
        p.accepted_types = Some(types);
        p.accepted_extended = Some(ext);
    })
    .await
}

async fn set_types(
    State(s): State<Arc<Shared>>,
    Json(b): Json<TypesBody>,
) -> ApiResult<Json<TypesBody>> {
    op_set_types(&s, b).await?;
    Ok(get_types(State(s)).await)
}

async fn list_users(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.accounts.list()))
}

/// A new account.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// Login name.
    pub(crate) name: String,
    /// `admin`, `user` or `sensor_register`.
    pub(crate) role: String,
    /// First password (changed at first login).
    pub(crate) password: String,
}

/// Creates an account; returns its API key.
pub(crate) async fn op_create_user(s: &Arc<Shared>, c: CreateUser) -> ApiResult<String> {
    let role = Role::parse(&c.role)?;
    let a = s.accounts.clone();
    let name = c.name.clone();
    let key = blocking(move || a.create_user(&c.name, role, &c.password)).await?;
    tracing::info!("user {name:?} created with role {}", role.as_str());
    Ok(key)
}

async fn create_user(
    State(s): State<Arc<Shared>>,
    Json(c): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (name, role) = (c.name.clone(), c.role.clone());
    let key = op_create_user(&s, c).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "role": role, "api_key": key})),
    ))
}

#[derive(Deserialize, Default)]
struct RoleBody {
    role: Option<String>,
}

/// Runs an action on an account: `role`, `delete`, `api-key`.
pub(crate) async fn op_user_action(
    s: &Arc<Shared>,
    name: &str,
    action: &str,
    role: Option<String>,
) -> ApiResult<Value> {
    let a = s.accounts.clone();
    let n = name.to_string();
    if a.get(name).is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no user {name:?}")));
    }
    match action {
        "role" => {
            let r = Role::parse(role.as_deref().unwrap_or(""))?;
            blocking(move || a.set_role(&n, r)).await?;
            Ok(json!({"status": "ok", "name": name, "role": r.as_str()}))
        }
        "delete" => {
            blocking(move || a.delete_user(&n)).await?;
            tracing::info!("user {name:?} deleted");
            Ok(json!({"status": "ok", "name": name}))
        }
        "api-key" => {
            let key = blocking(move || a.reset_api_key(&n)).await?;
            Ok(json!({"status": "ok", "name": name, "api_key": key}))
        }
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no user action {other:?} (role, delete, api-key)"),
        )),
    }
}

async fn user_action(
    State(s): State<Arc<Shared>>,
    Path((name, action)): Path<(String, String)>,
    body: Option<Json<RoleBody>>,
) -> ApiResult<Json<Value>> {
    let role = body.and_then(|b| b.0.role);
    Ok(Json(op_user_action(&s, &name, &action, role).await?))
}

async fn delete_user(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(op_user_action(&s, &name, "delete", None).await?))
}

async fn alerts(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.monitor.alerts()))
}

/// The reference's registration body.
#[derive(Deserialize)]
struct Register {
    uuid: Option<Value>,
    hmac_key: Option<Value>,
    mail: Option<Value>,
    third_party: Option<Value>,
}

/// `POST /api/v1/add/sensor/register`: the reference's shapes and codes.
async fn register_sensor(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let reply = |code: StatusCode, v: Value| (code, Json(v)).into_response();
    let err =
        |code: StatusCode, reason: &str| reply(code, json!({"status": "error", "reason": reason}));
    let Ok(r) = serde_json::from_slice::<Register>(&body) else {
        return err(StatusCode::BAD_REQUEST, "Malformed JSON");
    };
    let uuid = r
        .uuid
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|u| Uuid::try_parse(u).ok())
        .filter(d4_proto::is_v4);
    let Some(u) = uuid else {
        return err(StatusCode::BAD_REQUEST, "Invalid uuid");
    };
    let p = s.policy.snapshot();
    let known = p.approved.contains(&u)
        || p.pending.get(&u).is_some_and(|x| x.registered)
        || s.sensors.get(u).is_some_and(|m| m.first_seen > 0);
    if known {
        return err(StatusCode::CONFLICT, "Sensor already registred");
    }
    let key = r
        .hmac_key
        .as_ref()
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return err(
            StatusCode::BAD_REQUEST,
            "Mandatory parameter(s) not provided",
        );
    };
    // The reference keeps 100 characters (and HTML-escapes them: not done here).
    let key: String = key.chars().take(100).collect();
    let mail = r
        .mail
        .as_ref()
        .and_then(Value::as_str)
        .map(|m| m.chars().take(256).collect());
    let third_party = r
        .third_party
        .as_ref()
        .is_some_and(|v| !v.is_null() && v != &json!(false) && v != &json!(""));
    let t = chrono::Utc::now().timestamp();
    let res = policy_update(&s, move |p| {
        // Bounded like the pending sensors that connect: a full list keeps
        // its entries, newcomers are refused until it is cleared.
        if p.pending.len() >= crate::ingest::policy::MAX_PENDING && !p.pending.contains_key(&u) {
            return false;
        }
        let e = p
            .pending
            .entry(u)
            .or_insert(crate::ingest::policy::PendingSensor {
                first_seen: t,
                last_seen: t,
                ip: String::new(),
                registered: true,
                mail: None,
                third_party: false,
                key: None,
            });
        e.registered = true;
        e.mail = mail;
        e.third_party = third_party;
        e.key = Some(key);
        true
    })
    .await;
    match res {
        Ok(false) => err(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many pending registrations: approve or reject some first",
        ),
        Ok(true) => {
            tracing::info!("sensor {} registered, pending approval", u.simple());
            reply(StatusCode::OK, json!({"uuid": u.simple().to_string()}))
        }
        Err(e) => e.into_response(),
    }
}

/// UUIDs (32 hex) of monitored sensors that are silent past their delay.
pub(crate) fn silent_sensors(s: &Shared) -> Vec<String> {
    crate::monitor::check(s, chrono::Utc::now().timestamp())
        .into_iter()
        .filter(|a| a.kind == "sensor_silent")
        .map(|a| a.subject)
        .collect()
}

/// `GET /api/v1/sensors/monitoring/errors`: the reference's list.
async fn monitoring_errors(State(s): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(silent_sensors(&s))
}

async fn daily_stats(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.sensors.daily()))
}

async fn rejections(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.sensors.rejections()))
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the server's counters.
pub(crate) fn metrics_text(s: &Shared) -> String {
    let mut o = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let c = |a: &std::sync::atomic::AtomicU64| vec![(String::new(), a.load(Ordering::Relaxed))];
    metric(
        "d4_frames_total",
        "counter",
        "Frames accepted.",
        c(&s.stats.frames),
    );
    metric(
        "d4_bytes_total",
        "counter",
        "Payload bytes accepted.",
        c(&s.stats.bytes),
    );
    metric(
        "d4_skipped_records_total",
        "counter",
        "Records refused inside good sessions.",
        c(&s.stats.skipped),
    );
    let reasons = s
        .stats
        .rejects_by_reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (format!("{{reason=\"{}\"}}", label(k)), *v))
        .collect();
    metric(
        "d4_rejects_total",
        "counter",
        "Sessions refused or closed on error, by reason.",
        reasons,
    );
    let totals = s.sensors.totals();
    metric(
        "d4_type_frames_total",
        "counter",
        "Frames accepted per type.",
        totals
            .iter()
            .map(|(t, d)| (format!("{{type=\"{}\"}}", label(t)), d.frames))
            .collect(),
    );
    metric(
        "d4_type_bytes_total",
        "counter",
        "Payload bytes accepted per type.",
        totals
            .iter()
            .map(|(t, d)| (format!("{{type=\"{}\"}}", label(t)), d.bytes))
            .collect(),
    );
    let queues = s.queues.list();
    let ql = |q: &QueueDef| {
        format!(
            "{{queue=\"{}\",type=\"{}\"}}",
            q.uuid,
            label(&q.ty.to_string())
        )
    };
    metric(
        "d4_queue_length",
        "gauge",
        "Items waiting in an analyzer queue.",
        queues.iter().map(|q| (ql(q), q.len())).collect(),
    );
    metric(
        "d4_queue_max_size",
        "gauge",
        "Most items an analyzer queue keeps.",
        queues.iter().map(|q| (ql(q), q.max_size)).collect(),
    );
    metric(
        "d4_queue_dropped_total",
        "counter",
        "Items dropped because a queue was full.",
        queues.iter().map(|q| (ql(q), q.dropped)).collect(),
    );
    metric(
        "d4_queue_pushed_total",
        "counter",
        "Items pushed to a queue.",
        queues.iter().map(|q| (ql(q), q.pushed)).collect(),
    );
    if let Some((waiting, dropped)) = s.queues.redis_spool() {
        metric(
            "d4_redis_spool_items",
            "gauge",
            "Queue items waiting on disk for Redis to come back.",
            vec![(String::new(), waiting)],
        );
        metric(
            "d4_redis_spool_dropped_total",
            "counter",
            "Queue items lost because the Redis spool was full.",
            vec![(String::new(), dropped)],
        );
    }
    if let Some((waiting, dropped)) = s.meta_mirror.backlog() {
        metric(
            "d4_redis_meta_waiting",
            "gauge",
            "Sensor metadata and statistics entries waiting for Redis (on disk while it is away).",
            vec![(String::new(), waiting)],
        );
        metric(
            "d4_redis_meta_dropped_total",
            "counter",
            "Sensor metadata and statistics entries lost because the buffer was full.",
            vec![(String::new(), dropped)],
        );
    }
    let live = s.sensors.live();
    let sensors: BTreeSet<Uuid> = live.iter().map(|l| l.uuid).collect();
    metric(
        "d4_sessions",
        "gauge",
        "Live sensor sessions.",
        vec![(String::new(), live.len() as u64)],
    );
    metric(
        "d4_sensors_connected",
        "gauge",
        "Sensors with at least one live session.",
        vec![(String::new(), sensors.len() as u64)],
    );
    metric(
        "d4_alerts",
        "gauge",
        "Monitoring alerts in force.",
        vec![(String::new(), s.monitor.alerts().len() as u64)],
    );
    metric(
        "d4_webhook_failures_total",
        "counter",
        "Alert deliveries to the webhook that failed.",
        c(&s.monitor.webhook_failures),
    );
    o
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&s),
    )
        .into_response()
}
