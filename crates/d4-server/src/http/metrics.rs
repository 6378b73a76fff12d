//! `/metrics`: the Prometheus text format (frames, bytes, rejects by
//! reason and by whose fault, per type, queue lengths, drops, sessions,
//! alerts; the Redis spool and metadata buffer in Redis mode).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::server::Shared;
use crate::store::queues::QueueDef;

pub(crate) fn label(v: &str) -> String {
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

pub(crate) async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&s),
    )
        .into_response()
}
