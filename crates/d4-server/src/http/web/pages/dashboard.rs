//! `/`: the dashboard: live rates (refreshed by `live.js` without a
//! reload), traffic and queue fill over a time range, volumes per day, per
//! sensor (a link to the sensor and to its errors) and per type, alerts,
//! errors.

use std::collections::BTreeMap;

use askama::Template;
use axum::response::Response;
use chrono::Utc;
use uuid::Uuid;

use crate::http::ops::sensors::all_sensors;
use crate::http::web::auth::Page;
use crate::http::web::pages::charts::{queue_chart, ranges, traffic_charts, Live, RangeLink};
use crate::http::web::svg;
use crate::http::web::{html, layout, ts, Layout};
use crate::ingest::sensors::ServerDay;
use crate::series::Of;

// ---------------------------------------------------------------- dashboard

pub(crate) struct VolumeRow {
    pub(crate) uuid: String,
    pub(crate) label: String,
    pub(crate) today: String,
    pub(crate) frames: String,
    pub(crate) week: String,
    /// The live rates.
    pub(crate) live: Live,
    /// Errors recorded (sensors).
    pub(crate) errors: u64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(crate) struct DashboardPage {
    pub(crate) l: Layout,
    pub(crate) connected: usize,
    pub(crate) seen_today: usize,
    pub(crate) today_bytes: String,
    pub(crate) today_frames: String,
    pub(crate) pending: usize,
    pub(crate) alerts: Vec<(String, &'static str, String)>,
    /// Why the disk takes no writes (empty while it does): a red banner.
    pub(crate) disk_full: String,
    pub(crate) chart_bytes: String,
    pub(crate) chart_frames: String,
    /// Links to the time ranges.
    pub(crate) ranges: Vec<RangeLink>,
    /// When the server started (the series begin).
    pub(crate) started: String,
    pub(crate) live: Live,
    pub(crate) range_bytes: String,
    pub(crate) range_frames: String,
    pub(crate) queue_fill: String,
    /// Queues now: (uuid, type, description, length, max size).
    pub(crate) queues: Vec<(String, String, String, u64, u64)>,
    pub(crate) per_sensor: Vec<VolumeRow>,
    pub(crate) per_type: Vec<VolumeRow>,
    /// Rejection rows: last time, address, sensor, last reason, count, first time.
    pub(crate) errors: Vec<(String, String, String, String, String, String)>,
}

/// The last 7 days as `YYYYMMDD`, oldest first.
pub(crate) fn last_days(n: i64) -> Vec<String> {
    let today = Utc::now().date_naive();
    (0..n)
        .rev()
        .filter_map(|i| today.checked_sub_days(chrono::Days::new(i as u64)))
        .map(|d| d.format("%Y%m%d").to_string())
        .collect()
}

/// Unix seconds of today's midnight (UTC).
pub(crate) fn today_start() -> i64 {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp())
        .unwrap_or(0)
}

/// (bytes, frames) of a server day, every type together.
fn day_totals(day: Option<&ServerDay>) -> (u64, u64) {
    day.map(|x| {
        x.types
            .values()
            .fold((0, 0), |a, t| (a.0 + t.bytes, a.1 + t.frames))
    })
    .unwrap_or((0, 0))
}

pub(crate) fn day_label(d: &str) -> String {
    format!(
        "{}-{}",
        d.get(4..6).unwrap_or(""),
        d.get(6..8).unwrap_or("")
    )
}

pub(crate) async fn dashboard(Page { s, c, f }: Page) -> Response {
    let days = last_days(7);
    let today = days.last().cloned().unwrap_or_default();
    let sensors = all_sensors(&s);
    let names: BTreeMap<Uuid, String> = sensors
        .iter()
        .map(|v| (v.meta.uuid, v.settings.name.clone()))
        .collect();
    let daily = s.sensors.daily();
    let rates = s.sensors.series.rates(chrono::Utc::now().timestamp());
    let rate_of = |m: &std::collections::BTreeMap<String, crate::series::Rate>, k: &str| {
        m.get(k).copied().unwrap_or_default()
    };
    let r = ranges("/", &f);
    let (range_bytes, range_frames) = traffic_charts(&s, &Of::All, &r, "range");
    let queue_fill = queue_chart(&s, &r);
    let mut chart_b = Vec::new();
    let mut chart_f = Vec::new();
    let mut per_type: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for d in &days {
        let day = daily.get(d);
        let (b, fr) = day_totals(day);
        chart_b.push((day_label(d), b));
        chart_f.push((day_label(d), fr));
        for (t, st) in day
            .map(|x| x.types.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let e = per_type.entry(t.clone()).or_default();
            e.2 += st.bytes;
            if *d == today {
                e.0 += st.bytes;
                e.1 += st.frames;
            }
        }
    }
    let mut per_sensor: Vec<(u64, VolumeRow)> = sensors
        .iter()
        .filter(|v| v.meta.first_seen > 0)
        .map(|v| {
            let t = v.meta.daily.get(&today).copied().unwrap_or_default();
            let week: u64 = days
                .iter()
                .filter_map(|d| v.meta.daily.get(d))
                .map(|x| x.bytes)
                .sum();
            let uuid = v.meta.uuid.simple().to_string();
            let label = names
                .get(&v.meta.uuid)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| uuid.clone());
            let live = Live::new(format!("sensor:{uuid}"), rate_of(&rates.sensors, &uuid));
            (
                week,
                VolumeRow {
                    uuid,
                    label,
                    today: svg::bytes(t.bytes),
                    frames: svg::count(t.frames),
                    week: svg::bytes(week),
                    live,
                    errors: v.meta.error_count,
                },
            )
        })
        .collect();
    per_sensor.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
    let (tb, tf) = day_totals(daily.get(&today));
    let day_start = today_start();
    let page = DashboardPage {
        l: layout(&s, &c, &f, "dashboard"),
        connected: sensors.iter().filter(|v| v.connected).count(),
        seen_today: sensors
            .iter()
            .filter(|v| v.meta.last_seen >= day_start)
            .count(),
        today_bytes: svg::bytes(tb),
        today_frames: svg::count(tf),
        pending: sensors.iter().filter(|v| v.status == "pending").count(),
        alerts: s
            .monitor
            .alerts()
            .into_iter()
            .map(|a| (ts(a.since), a.kind, a.message))
            .collect(),
        disk_full: if s.queues.health().is_writable() {
            String::new()
        } else {
            s.queues.health().why()
        },
        chart_bytes: svg::bars(
            "chart-bytes",
            "Bytes received per day",
            &chart_b,
            svg::bytes,
        ),
        chart_frames: svg::bars("chart-frames", "Frames per day", &chart_f, svg::count),
        ranges: r.links,
        started: ts(s.started),
        live: Live::new("total".into(), rates.total),
        range_bytes,
        range_frames,
        queue_fill,
        queues: s
            .queues
            .list()
            .into_iter()
            .map(|q| {
                (
                    q.uuid.to_string(),
                    q.ty.to_string(),
                    q.description.clone(),
                    q.len(),
                    q.max_size,
                )
            })
            .collect(),
        per_sensor: per_sensor.into_iter().map(|x| x.1).take(50).collect(),
        per_type: per_type
            .into_iter()
            .map(|(t, (b, fr, w))| VolumeRow {
                uuid: String::new(),
                live: Live::new(format!("type:{t}"), rate_of(&rates.types, &t)),
                label: t,
                today: svg::bytes(b),
                frames: svg::count(fr),
                week: svg::bytes(w),
                errors: 0,
            })
            .collect(),
        errors: s
            .sensors
            .rejections()
            .into_iter()
            .take(10)
            .map(|r| {
                (
                    ts(r.time),
                    r.ip,
                    r.uuid.map(|u| u.simple().to_string()).unwrap_or_default(),
                    r.reason,
                    svg::count(r.count),
                    ts(r.first),
                )
            })
            .collect(),
    };
    html(&page)
}
