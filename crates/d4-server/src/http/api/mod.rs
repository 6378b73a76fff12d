//! The management API: HTTPS, JSON, `Authorization: <token>`. Errors are
//! `{"status":"error","reason":...}`. The OpenAPI document is served at
//! `/api/v1/openapi.json` (source: `openapi.json` beside this file) and as a
//! page at `/api`.
//!
//! Tokens: the local management token of `<data-dir>/server.json` (admin, for
//! the CLI on the server's machine) or an account's API key. What a role may
//! call is decided in one place, [`required_role`](crate::http::auth::required_role): `sensor_register` only
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
//! | GET | `/api/v1/stats/rates` | live bytes/s and frames/s in all, per type, per sensor; queue lengths |
//! | GET | `/api/v1/stats/series?range=&resolution=&sensor=&type=` | bytes and frames per minute or hour (1h, 24h, 7d, 30d) |
//! | GET | `/api/v1/stats/queues?range=&resolution=` | each queue's fill per minute or hour |
//! | POST | `/api/v1/add/sensor/register` | the reference's sensor registration |
//! | GET | `/api/v1/sensors/monitoring/errors` | the reference's list of silent sensors |
//! | GET | `/metrics` | Prometheus text format |
//!
//! Pops return a compact binary body (u32 LE length + bytes per item) so
//! binary items survive. `POST /queues/{id}/read?count=N` returns the same
//! body without removing anything, with the number of the first item in
//! `x-d4-first`; `POST /queues/{id}/ack?upto=K` removes the items numbered
//! below K. Consumers that must not lose an item (`d4 forward`,
//! `d4 backscatter -u`) read, process, then acknowledge; a crash repeats at
//! most one batch.

pub(crate) mod queues;
pub(crate) mod sensors;
pub(crate) mod stats;
pub(crate) mod users;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::Shared;

use crate::http::api::queues::{
    ack_queue, create_queue, delete_queue, empty_queue, list_queues, peek_queue, pop_queue,
    read_queue, resize_queue, show_queue,
};
use crate::http::api::sensors::{
    block_ip, block_uuid, blocklist, get_types, list_sensors, monitoring_errors, register_sensor,
    sensor_action, set_types, show_sensor, unblock_ip, unblock_uuid,
};
use crate::http::api::users::{create_user, delete_user, list_users, user_action};
use crate::http::auth::auth;
use crate::http::metrics::metrics;
use crate::http::ops::ApiError;

/// The OpenAPI document of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

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
        .route("/stats/rates", get(stats::rates))
        .route("/stats/series", get(stats::series))
        .route("/stats/queues", get(stats::queues))
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
pub(crate) async fn no_endpoint(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no endpoint {method} {}", uri.path()),
    )
}

/// Makes every API error JSON: the extractors' rejections (malformed JSON
/// body, wrong content type, bad query or path, body too large) and the
/// router's (method not allowed) are plain text; their text becomes the
/// `reason` and the status is kept (but 422 becomes 400).
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
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
    // A body of the wrong shape is axum's 422; the reference (and API.md)
    // answer 400 for every invalid input.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let mut out = ApiError(status, reason).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn server_info(State(s): State<Arc<Shared>>) -> Json<Value> {
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

pub(crate) async fn alerts(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.monitor.alerts()))
}

pub(crate) async fn rejections(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.sensors.rejections()))
}

pub(crate) async fn daily_stats(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.sensors.daily()))
}
