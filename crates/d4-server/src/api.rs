//! The management API: HTTPS, JSON, `Authorization: <token>` (the token is in
//! `<data-dir>/server.json`). Errors are `{"status":"error","reason":...}`.
//!
//! | method | path | does |
//! |--------|------|------|
//! | GET | `/api/v1/server` | mode, addresses, counters |
//! | GET, POST | `/api/v1/queues` | list; create `{"type","description","max_size","sensors"}` |
//! | GET, DELETE | `/api/v1/queues/{uuid}` | show; delete |
//! | POST | `/api/v1/queues/{uuid}/pop?count=N` | pop (binary: u32 LE length + bytes, per item) |
//! | GET | `/api/v1/queues/{uuid}/peek?count=N` | first items, left in place (JSON strings) |
//! | POST | `/api/v1/queues/{uuid}/resize` | `{"max_size": N}` |
//! | GET | `/api/v1/sensors`, `/api/v1/sensors/{uuid}` | sensors with status and last error |
//! | POST | `/api/v1/sensors/{uuid}/{approve,block,unblock,kick}` | policy |
//! | POST | `/api/v1/sensors/{uuid}/key` | `{"key": "..."}` set the HMAC key (never shown back) |
//! | POST | `/api/v1/blocklist/ip`, `/api/v1/blocklist/ip/remove` | `{"net": "192.0.2.0/24"}` |
//! | GET | `/api/v1/rejections` | recent rejected sessions |
//! | GET | `/api/v1/stats/daily` | bytes and frames per day, per type and per peer address |

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::policy::Reject;
use crate::queues::{QueueDef, QueueType};
use crate::sensors::SensorMeta;
use crate::Shared;

/// An API error: status and reason.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"status": "error", "reason": self.1}))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        let msg = format!("{e:#}");
        let code = if msg.starts_with("no queue") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError(code, msg)
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Changes the policy (a disk commit) off the async threads.
async fn policy_update<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&mut crate::policy::PolicyState) -> T + Send + 'static,
) -> ApiResult<T> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || s.policy.update(f))
        .await
        .map_err(|e| bad(e.to_string()))?
        .map_err(ApiError::from)
}

fn parse_uuid(s: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(s).map_err(|_| bad(format!("{s:?} is not a UUID")))
}

/// The API routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/server", get(server_info))
        .route("/queues", get(list_queues).post(create_queue))
        .route("/queues/{id}", get(show_queue).delete(delete_queue))
        .route("/queues/{id}/pop", post(pop_queue))
        .route("/queues/{id}/peek", get(peek_queue))
        .route("/queues/{id}/read", post(read_queue))
        .route("/queues/{id}/ack", post(ack_queue))
        .route("/queues/{id}/resize", post(resize_queue))
        .route("/sensors", get(list_sensors))
        .route("/sensors/{id}", get(show_sensor))
        .route("/sensors/{id}/{action}", post(sensor_action))
        .route("/blocklist/ip", post(block_ip))
        .route("/blocklist/ip/remove", post(unblock_ip))
        .route("/rejections", get(rejections))
        .route("/stats/daily", get(daily_stats))
        .layer(middleware::from_fn_with_state(shared.clone(), auth));
    Router::new().nest("/api/v1", v1).with_state(shared)
}

async fn auth(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), s.api_token.as_bytes()));
    if !ok {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (header Authorization: <token>)".into(),
        )
        .into_response();
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the API over TLS until shutdown.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let app = router(shared.clone());
    let mut sd = shared.shutdown.clone();
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = sd.changed() => return,
        };
        let (app, acceptor) = (app.clone(), acceptor.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
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
struct QueueView {
    #[serde(flatten)]
    def: QueueDef,
    length: u64,
}

fn view(def: QueueDef) -> QueueView {
    QueueView {
        length: def.len(),
        def,
    }
}

async fn list_queues(State(s): State<Arc<Shared>>) -> Json<Vec<QueueView>> {
    Json(s.queues.list().into_iter().map(view).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateQueue {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    description: String,
    max_size: Option<u64>,
    #[serde(default)]
    sensors: Vec<String>,
}

async fn create_queue(
    State(s): State<Arc<Shared>>,
    Json(c): Json<CreateQueue>,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    let ty = QueueType::parse(&c.ty)?;
    let sensors = c
        .sensors
        .iter()
        .map(|u| parse_uuid(u))
        .collect::<ApiResult<Vec<_>>>()?;
    let max = c.max_size.unwrap_or(s.cfg.default_queue_size);
    let sq = s.clone();
    let def =
        tokio::task::spawn_blocking(move || sq.queues.create(ty, c.description, max, sensors))
            .await
            .map_err(|e| bad(e.to_string()))??;
    tracing::info!("queue {} created for type {}", def.uuid, def.ty);
    Ok((StatusCode::CREATED, Json(view(def))))
}

fn find_queue(s: &Shared, id: &str) -> ApiResult<QueueDef> {
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

async fn delete_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<QueueView>> {
    let d = find_queue(&s, &id)?;
    let sq = s.clone();
    let d = tokio::task::spawn_blocking(move || sq.queues.delete(d.uuid))
        .await
        .map_err(|e| bad(e.to_string()))??;
    tracing::info!("queue {} deleted", d.uuid);
    Ok(Json(view(d)))
}

#[derive(Deserialize)]
struct Count {
    count: Option<usize>,
}

/// Content type of a popped batch.
pub const ITEMS_CONTENT_TYPE: &str = "application/vnd.d4.items";

async fn pop_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Count>,
) -> ApiResult<Response> {
    let d = find_queue(&s, &id)?;
    let n = q.count.unwrap_or(1).clamp(1, 10_000);
    let sq = s.clone();
    let items = tokio::task::spawn_blocking(move || sq.queues.pop(d.uuid, n))
        .await
        .map_err(|e| bad(e.to_string()))??;
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
    let items = tokio::task::spawn_blocking(move || sq.queues.read(d.uuid, n))
        .await
        .map_err(|e| bad(e.to_string()))??;
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
    let n = tokio::task::spawn_blocking(move || sq.queues.ack(d.uuid, q.upto))
        .await
        .map_err(|e| bad(e.to_string()))??;
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

async fn resize_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(r): Json<Resize>,
) -> ApiResult<Json<QueueView>> {
    let d = find_queue(&s, &id)?;
    Ok(Json(view(s.queues.resize(d.uuid, r.max_size)?)))
}

/// A sensor as the API shows it (its key never).
#[derive(Serialize)]
struct SensorView {
    #[serde(flatten)]
    meta: SensorMeta,
    status: &'static str,
    approved: bool,
    blocked: bool,
    has_own_key: bool,
    connected: bool,
    live_types: Vec<u8>,
}

fn sensor_view(
    s: &Shared,
    u: Uuid,
    p: &crate::policy::PolicyState,
    live: &[crate::sensors::LiveSession],
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
    SensorView {
        meta: s.sensors.get(u).unwrap_or(SensorMeta {
            uuid: u,
            ..SensorMeta::default()
        }),
        status,
        approved,
        blocked,
        has_own_key: p.keys.contains_key(&u),
        connected: !live.is_empty(),
        live_types: live,
    }
}

async fn list_sensors(State(s): State<Arc<Shared>>) -> Json<Vec<SensorView>> {
    let p = s.policy.snapshot();
    let mut ids: Vec<Uuid> = s.sensors.all().iter().map(|m| m.uuid).collect();
    for u in p
        .approved
        .iter()
        .chain(p.pending.keys())
        .chain(p.blocked_uuids.iter())
    {
        if !ids.contains(u) {
            ids.push(*u);
        }
    }
    let live = s.sensors.live();
    Json(
        ids.into_iter()
            .map(|u| sensor_view(&s, u, &p, &live))
            .collect(),
    )
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

#[derive(Deserialize, Default)]
struct KeyBody {
    key: Option<String>,
}

async fn sensor_action(
    State(s): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<KeyBody>>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&id)?;
    match action.as_str() {
        "approve" => {
            if !d4_proto::is_v4(&u) {
                return Err(bad(format!(
                    "{u} is not a version 4 UUID; D4 sensors must use one"
                )));
            }
            policy_update(&s, move |p| {
                p.pending.remove(&u);
                p.approved.insert(u)
            })
            .await?;
            tracing::info!("sensor {} approved", u.simple());
        }
        "key" => {
            let key = body
                .and_then(|b| b.0.key)
                .ok_or_else(|| bad("give the key as {\"key\": \"...\"}"))?;
            if key.is_empty() {
                return Err(bad("the key must not be empty"));
            }
            policy_update(&s, move |p| p.keys.insert(u, key)).await?;
            tracing::info!("sensor {} has a new HMAC key", u.simple());
        }
        "block" => {
            policy_update(&s, move |p| {
                p.approved.remove(&u);
                p.blocked_uuids.insert(u)
            })
            .await?;
            s.sensors.close_sessions_of(u, Reject::BlockedUuid);
            tracing::info!("sensor {} blocked", u.simple());
        }
        "unblock" => {
            policy_update(&s, move |p| p.blocked_uuids.remove(&u)).await?;
        }
        "kick" => {
            s.policy.kick(u);
            let n = s
                .sensors
                .close_sessions_of(u, Reject::Kicked(s.cfg.kick_secs));
            tracing::info!("sensor {} kicked ({n} sessions)", u.simple());
            return Ok(Json(json!({"status": "ok", "sessions_closed": n})));
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no sensor action {other:?} (approve, key, block, unblock, kick)"),
            ));
        }
    }
    Ok(Json(
        json!({"status": "ok", "uuid": u.simple().to_string()}),
    ))
}

#[derive(Deserialize)]
struct NetBody {
    net: String,
}

fn parse_net(s: &str) -> ApiResult<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| bad(format!("{s:?} is neither an IP address nor a CIDR range")))
}

async fn block_ip(State(s): State<Arc<Shared>>, Json(b): Json<NetBody>) -> ApiResult<Json<Value>> {
    let n = parse_net(&b.net)?;
    policy_update(&s, move |p| p.blocked_nets.insert(n)).await?;
    // Close live sessions from the range.
    for l in s.sensors.live() {
        if n.contains(&l.ip) {
            l.close.close(Reject::BlockedIp(l.ip));
        }
    }
    Ok(Json(json!({"status": "ok", "net": n.to_string()})))
}

async fn unblock_ip(
    State(s): State<Arc<Shared>>,
    Json(b): Json<NetBody>,
) -> ApiResult<Json<Value>> {
    let n = parse_net(&b.net)?;
    let removed = policy_update(&s, move |p| p.blocked_nets.remove(&n)).await?;
    if !removed {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{n} is not in the IP blocklist"),
        ));
    }
    Ok(Json(json!({"status": "ok", "net": n.to_string()})))
}

async fn daily_stats(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.sensors.daily()))
}

async fn rejections(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.sensors.rejections()))
}
