//! `/api/v1/queues...`: list, create, show, delete, pop, peek, read, ack, resize, empty.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::ops::queues::{
    find_queue, on_queue, op_create_queue, op_delete_queue, op_empty_queue, op_resize_queue, view,
    CreateQueue, QueueView,
};
use crate::http::ops::{bad, ApiResult};
use crate::server::Shared;

pub(crate) async fn list_queues(State(s): State<Arc<Shared>>) -> Json<Vec<QueueView>> {
    Json(s.queues.list().into_iter().map(view).collect())
}

pub(crate) async fn create_queue(
    State(s): State<Arc<Shared>>,
    Json(c): Json<CreateQueue>,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    Ok((
        StatusCode::CREATED,
        Json(view(op_create_queue(&s, c).await?)),
    ))
}

pub(crate) async fn show_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(find_queue(&s, &id)?)))
}

pub(crate) async fn delete_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(op_delete_queue(&s, &id).await?)))
}

pub(crate) async fn empty_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let n = op_empty_queue(&s, &id).await?;
    Ok(Json(json!({"status": "ok", "removed": n})))
}

#[derive(Deserialize)]
pub(crate) struct Count {
    pub(crate) count: Option<usize>,
}

impl Count {
    /// How many items a pop or read takes: 1 unless asked, at most 10,000.
    fn batch(&self) -> usize {
        self.count.unwrap_or(1).clamp(1, 10_000)
    }
}

/// Content type of a popped batch.
pub(crate) const ITEMS_CONTENT_TYPE: &str = "application/vnd.d4.items";

pub(crate) async fn pop_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Count>,
) -> ApiResult<Response> {
    let n = q.batch();
    let (d, items) = on_queue(&s, &id, move |qs, d| qs.pop(d.uuid, n)).await?;
    let left = s.queues.get(d.uuid).map(|d| d.len()).unwrap_or(0);
    items_response(&items, ("x-d4-queue-length", left))
}

/// A batch of items as the answer: the binary format, its count, and one
/// more header.
fn items_response(items: &[Vec<u8>], (name, value): (&str, u64)) -> ApiResult<Response> {
    Response::builder()
        .header(header::CONTENT_TYPE, ITEMS_CONTENT_TYPE)
        .header("x-d4-items", items.len())
        .header(name, value)
        .body(Body::from(items_body(items)))
        .map_err(|e| bad(e.to_string()))
}

/// Items in the binary batch format: u32 LE length, then the bytes.
pub(crate) fn items_body(items: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 4).sum());
    for i in items {
        body.extend_from_slice(&(i.len() as u32).to_le_bytes());
        body.extend_from_slice(i);
    }
    body
}

/// Like pop, but the items stay until acknowledged (`/ack?upto=`): the
/// reply's `x-d4-first` header numbers the first item, the others follow.
pub(crate) async fn read_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Count>,
) -> ApiResult<Response> {
    let n = q.batch();
    let (d, items) = on_queue(&s, &id, move |qs, d| qs.read(d.uuid, n)).await?;
    let first = items.first().map(|(seq, _)| *seq).unwrap_or(d.head);
    let items: Vec<Vec<u8>> = items.into_iter().map(|(_, v)| v).collect();
    items_response(&items, ("x-d4-first", first))
}

#[derive(Deserialize)]
pub(crate) struct Upto {
    pub(crate) upto: u64,
}

/// Removes the items numbered below `upto` (acknowledges a `read`).
pub(crate) async fn ack_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Upto>,
) -> ApiResult<Json<Value>> {
    let (_, n) = on_queue(&s, &id, move |qs, d| qs.ack(d.uuid, q.upto)).await?;
    Ok(Json(json!({"status": "ok", "removed": n})))
}

pub(crate) async fn peek_queue(
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
pub(crate) struct Resize {
    pub(crate) max_size: u64,
}

pub(crate) async fn resize_queue(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(r): Json<Resize>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(op_resize_queue(&s, &id, r.max_size).await?)))
}
