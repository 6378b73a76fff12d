//! `/metrics`: the Prometheus text format (frames, bytes, rejects by
//! reason and by whose fault, per type, queue lengths, drops, pending
//! sensors and those refused a place, rejection rows, sessions, alerts,
//! connection slots (evicted, refused, authenticated, open, budgets);
//! the Redis spool and metadata buffer in Redis mode).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::server::{Shared, Stats};
use crate::store::queues::QueueDef;

pub(crate) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The rows of `d4_rejects_total` (by reason: the existing labels, plus
/// `server_io`, `too_many_connections`, `queue_stalled`, `store` and
/// `closed_by_server`, which count the server's faults apart from the
/// sensors') and `d4_session_faults_total` (by whose fault).
#[allow(clippy::type_complexity)]
fn reject_rows(stats: &Stats) -> [(&'static str, &'static str, Vec<(String, u64)>); 2] {
    let rows = |m: &std::sync::Mutex<BTreeMap<&'static str, u64>>, l: &str| {
        m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (format!("{{{l}=\"{}\"}}", label(k)), *v))
            .collect()
    };
    [
        (
            "d4_rejects_total",
            "Sessions refused or closed on error, by reason.",
            rows(&stats.rejects_by_reason, "reason"),
        ),
        (
            "d4_session_faults_total",
            "Sessions refused or closed on error, by whose fault (sensor, policy, server, store).",
            rows(&stats.faults_by_whose, "whose"),
        ),
    ]
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
    for (name, help, rows) in reject_rows(&s.stats) {
        metric(name, "counter", help, rows);
    }
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
    let h = s.queues.health();
    metric(
        "d4_store_writable",
        "gauge",
        "1 while the disk takes writes; 0 while it is full (sensors are not read, writes wait, API writes answer 503).",
        vec![(String::new(), u64::from(h.is_writable()))],
    );
    metric(
        "d4_disk_full_events_total",
        "counter",
        "Times the disk stopped taking writes (full, or an I/O error of the store).",
        vec![(String::new(), h.events())],
    );
    metric(
        "d4_items_waiting",
        "gauge",
        "Queue items held because the store could not commit them yet.",
        vec![(String::new(), h.items_waiting())],
    );
    metric(
        "d4_files_stuck",
        "gauge",
        "Data files holding bytes the full disk did not take yet.",
        vec![(String::new(), h.files_stuck())],
    );
    if let Some(free) = h.free_bytes() {
        metric(
            "d4_data_dir_free_bytes",
            "gauge",
            "Free bytes on the data dir's file system.",
            vec![(String::new(), free)],
        );
    }
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
    let pending = s.policy.snapshot().pending;
    let registered = pending.values().filter(|p| p.registered).count() as u64;
    metric(
        "d4_pending_sensors",
        "gauge",
        "Sensors waiting for approval, by how they were listed (a connection, a registration).",
        vec![
            (
                "{source=\"connection\"}".into(),
                pending.len() as u64 - registered,
            ),
            ("{source=\"registration\"}".into(), registered),
        ],
    );
    metric(
        "d4_pending_refused_total",
        "counter",
        "Unapproved sensors not listed as pending because a budget was spent (per address, per /24 or /64, the whole list).",
        crate::ingest::policy::PendingFull::ALL
            .iter()
            .map(|b| {
                (
                    format!("{{budget=\"{}\"}}", b.as_str()),
                    s.policy.pending_refused[*b as usize].load(Ordering::Relaxed),
                )
            })
            .collect(),
    );
    metric(
        "d4_rejection_rows",
        "gauge",
        "Rows of the rejection summary (one per reason and address).",
        vec![(String::new(), s.sensors.rejections().len() as u64)],
    );
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
    // Connection slots of both listeners (crate::admission).
    for (name, kind, help, rows) in s.admission.metric_rows() {
        metric(name, kind, help, rows);
    }
    o
}

pub(crate) async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&s),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::reject::Reject;

    #[test]
    fn server_faults_have_labels_of_their_own() {
        let stats = Stats::default();
        stats.count_reject(&Reject::TooManyConnections("too many connections".into()));
        stats.count_reject(&Reject::ClosedByServer);
        stats.count_reject(&Reject::ServerIo("cannot store lines: disk full".into()));
        stats.count_reject(&Reject::ServerIo("cannot write stored data".into()));
        stats.count_reject(&Reject::QueueStalled("stalled".into()));
        stats.count_reject(&Reject::Store("the queue writer has stopped".into()));
        stats.count_reject(&Reject::Timeout(
            "no complete frame header within 30 s".into(),
        ));
        stats.count_reject(&Reject::BadHmac);
        stats.count_reject(&Reject::BlockedUuid);
        let [rejects, faults] = reject_rows(&stats);
        let rows = |r: &(&str, &str, Vec<(String, u64)>)| -> BTreeMap<String, u64> {
            r.2.iter().cloned().collect()
        };
        let by_reason = rows(&rejects);
        assert_eq!(rejects.0, "d4_rejects_total");
        for (k, n) in [
            ("too_many_connections", 1),
            ("closed_by_server", 1),
            ("server_io", 2),
            ("queue_stalled", 1),
            ("store", 1),
            ("timeout", 1),
            ("bad_hmac", 1),
            ("blocked_uuid", 1),
        ] {
            assert_eq!(
                by_reason.get(&format!("{{reason=\"{k}\"}}")),
                Some(&n),
                "{k}"
            );
        }
        assert_eq!(by_reason.len(), 8, "no other label: {by_reason:?}");
        let by_whose = rows(&faults);
        assert_eq!(faults.0, "d4_session_faults_total");
        for (k, n) in [("server", 5), ("store", 1), ("sensor", 2), ("policy", 1)] {
            assert_eq!(by_whose.get(&format!("{{whose=\"{k}\"}}")), Some(&n), "{k}");
        }
        assert_eq!(stats.rejects.load(std::sync::atomic::Ordering::Relaxed), 9);
    }
}
