//! `/api/v1/stats/rates`, `/api/v1/stats/series` and `/api/v1/stats/queues`:
//! the live rates and the time series of [`crate::series`] (memory only,
//! since the server started). The UI's live numbers read the same rates at
//! `/live/rates` with the operator's session.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::ops::{parse_uuid, ApiError};
use crate::series::{Of, Res, Span, RATE_WINDOW};
use crate::server::Shared;

/// Query of the series endpoints.
#[derive(Deserialize, Default)]
pub(crate) struct SeriesQuery {
    /// `1h`, `24h`, `7d` or `30d` (default `1h`).
    #[serde(default)]
    pub(crate) range: String,
    /// `minute` or `hour` (per minute up to 24 h, per hour from 24 h on).
    #[serde(default)]
    pub(crate) resolution: String,
    /// One sensor's traffic (UUID).
    #[serde(default)]
    pub(crate) sensor: String,
    /// One type's traffic (`3`, `254:maltrail`).
    #[serde(rename = "type", default)]
    pub(crate) ty: String,
}

/// The range and resolution asked for (400 for an unknown range).
pub(crate) fn span_of(q: &SeriesQuery) -> Result<(Span, Res), ApiError> {
    let span = if q.range.is_empty() {
        Span::Hour
    } else {
        Span::parse(&q.range).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("range {:?}: use 1h, 24h, 7d or 30d", q.range),
            )
        })?
    };
    Ok((span, span.resolution(&q.resolution)))
}

/// The live rates, and every queue's length now.
pub(crate) fn rates_json(s: &Shared) -> Value {
    let now = chrono::Utc::now().timestamp();
    let r = s.sensors.series.rates(now);
    let queues: serde_json::Map<String, Value> = s
        .queues
        .list()
        .iter()
        .map(|q| {
            (
                q.uuid.to_string(),
                json!({"length": q.len(), "max_size": q.max_size}),
            )
        })
        .collect();
    json!({
        "time": now,
        "window_secs": RATE_WINDOW,
        "total": r.total,
        "types": r.types,
        "sensors": r.sensors,
        "queues": queues,
    })
}

pub(crate) async fn rates(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(rates_json(&s))
}

pub(crate) async fn series(
    State(s): State<Arc<Shared>>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let (span, res) = span_of(&q)?;
    let of = if !q.sensor.is_empty() {
        Of::Sensor(parse_uuid(&q.sensor)?)
    } else if !q.ty.is_empty() {
        Of::Type(q.ty.clone())
    } else {
        Of::All
    };
    let now = chrono::Utc::now().timestamp();
    let points: Vec<Value> = s
        .sensors
        .series
        .traffic(&of, span, res, now)
        .into_iter()
        .map(|(t, p)| json!({"time": t, "bytes": p.bytes, "frames": p.frames}))
        .collect();
    Ok(Json(envelope(span, res, s.started, "points", points)))
}

pub(crate) async fn queues(
    State(s): State<Arc<Shared>>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let (span, res) = span_of(&q)?;
    let now = chrono::Utc::now().timestamp();
    let queues: Vec<Value> = s
        .sensors
        .series
        .queue_fill(span, res, now)
        .into_iter()
        .map(|(u, pts)| {
            let pts: Vec<Value> = pts
                .into_iter()
                .map(|(t, f)| json!({"time": t, "length": f.length, "max_size": f.max_size}))
                .collect();
            json!({"uuid": u.to_string(), "points": pts})
        })
        .collect();
    Ok(Json(envelope(span, res, s.started, "queues", queues)))
}

/// The answer of a series endpoint: its range, resolution and step, since
/// when the server holds series, and the series under `key`.
fn envelope(span: Span, res: Res, since: i64, key: &str, series: Vec<Value>) -> Value {
    let mut v = json!({
        "range": span.as_str(),
        "resolution": res.as_str(),
        "step_secs": res.step(),
        "since": since,
    });
    v[key] = Value::Array(series);
    v
}
