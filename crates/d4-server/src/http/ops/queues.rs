//! Queue operations: create, show, delete, empty, resize.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::http::ops::{blocking, parse_uuid, ApiError, ApiResult};
use crate::server::Shared;
use crate::store::queues::{NewQueue, QueueDef, QueueType, Queues};

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
    let q = NewQueue {
        ty: QueueType::parse(&c.ty)?,
        description: c.description,
        max_size: c.max_size.unwrap_or(s.cfg.default_queue_size),
        sensors: c
            .sensors
            .iter()
            .map(|u| parse_uuid(u))
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let sq = s.clone();
    let def = blocking(move || sq.queues.create(q)).await?;
    tracing::info!("queue {} created for type {}", def.uuid, def.ty);
    Ok(def)
}

/// A queue by UUID, or 404.
pub(crate) fn find_queue(s: &Shared, id: &str) -> ApiResult<QueueDef> {
    let u = parse_uuid(id)?;
    s.queues
        .get(u)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no queue {u}")))
}

/// Runs `f` on the queue `id` (404 if there is none) off the async threads;
/// the queue as found, and what `f` returned.
pub(crate) async fn on_queue<T: Send + 'static>(
    s: &Arc<Shared>,
    id: &str,
    f: impl FnOnce(&Queues, &QueueDef) -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<(QueueDef, T)> {
    let d = find_queue(s, id)?;
    let sq = s.clone();
    blocking(move || f(&sq.queues, &d).map(|r| (d, r))).await
}

/// Deletes a queue.
pub(crate) async fn op_delete_queue(s: &Arc<Shared>, id: &str) -> ApiResult<QueueDef> {
    let (_, d) = on_queue(s, id, |q, d| q.delete(d.uuid)).await?;
    tracing::info!("queue {} deleted", d.uuid);
    Ok(d)
}

/// Removes every item of a queue.
pub(crate) async fn op_empty_queue(s: &Arc<Shared>, id: &str) -> ApiResult<u64> {
    let (d, n) = on_queue(s, id, |q, d| q.empty(d.uuid)).await?;
    tracing::info!("queue {} emptied ({n} items)", d.uuid);
    Ok(n)
}

/// Changes a queue's max size.
pub(crate) async fn op_resize_queue(s: &Arc<Shared>, id: &str, max: u64) -> ApiResult<QueueDef> {
    let (_, d) = on_queue(s, id, move |q, d| q.resize(d.uuid, max)).await?;
    Ok(d)
}
