//! `/sensors` and `/sensors/{id}` with their actions.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::ops::parse_uuid;
use crate::http::ops::sensors::{all_sensors, op_sensor_action, sensor_view, ActionBody};
use crate::http::web::auth::{AdminForm, Page};
use crate::http::web::cookies::enc;
use crate::http::web::pages::charts::{ranges, traffic_charts, Live, RangeLink};
use crate::http::web::pages::confirm::{confirm_first, Ask};
use crate::http::web::pages::dashboard::{day_label, last_days, today_start};
use crate::http::web::svg;
use crate::http::web::{back, html, layout, message, ts, Layout};
use crate::series::Of;
use crate::server::Shared;

// ---------------------------------------------------------------- sensors

pub(crate) struct SensorRow {
    pub(crate) uuid: String,
    pub(crate) name: String,
    pub(crate) status: &'static str,
    pub(crate) connected: bool,
    pub(crate) tags: Vec<String>,
    pub(crate) types: String,
    pub(crate) first_seen: String,
    pub(crate) last_seen: String,
    pub(crate) last_error: String,
}

#[derive(Template)]
#[template(path = "sensors.html")]
pub(crate) struct SensorsPage {
    pub(crate) l: Layout,
    pub(crate) show: String,
    pub(crate) q: String,
    pub(crate) rows: Vec<SensorRow>,
}

pub(crate) async fn sensors_page(Page { s, c, f }: Page) -> Response {
    let day_start = today_start();
    let show = if f.show.is_empty() {
        "all".to_string()
    } else {
        f.show.clone()
    };
    let q = f.q.trim().to_lowercase();
    let rows = all_sensors(&s)
        .into_iter()
        .filter(|v| match show.as_str() {
            "connected" => v.connected,
            "today" => v.meta.last_seen >= day_start,
            _ => true,
        })
        .filter(|v| {
            q.is_empty()
                || v.meta
                    .uuid
                    .simple()
                    .to_string()
                    .contains(&q.replace('-', ""))
                || v.settings.name.to_lowercase().contains(&q)
                || v.settings.description.to_lowercase().contains(&q)
                || v.settings
                    .tags
                    .iter()
                    .any(|t| t.to_lowercase().contains(&q))
        })
        .map(|v| SensorRow {
            uuid: v.meta.uuid.simple().to_string(),
            name: v.settings.name.clone(),
            status: v.status,
            connected: v.connected,
            tags: v.settings.tags.clone(),
            types: v.meta.types.keys().cloned().collect::<Vec<_>>().join(", "),
            first_seen: ts(v.meta.first_seen),
            last_seen: ts(v.meta.last_seen),
            last_error: v
                .meta
                .last_error
                .as_ref()
                .map(|e| format!("{} {}", ts(e.time), e.reason))
                .unwrap_or_default(),
        })
        .collect();
    let page = SensorsPage {
        l: layout(&s, &c, &f, "sensors"),
        q: f.q.clone(),
        show,
        rows,
    };
    html(&page)
}

/// A group of a sensor's errors (one reason, one address).
pub(crate) struct ErrorRow {
    pub(crate) last: String,
    pub(crate) ip: String,
    pub(crate) reason: String,
    pub(crate) whose: String,
    pub(crate) count: String,
    pub(crate) first: String,
}

#[derive(Template)]
#[template(path = "sensor.html")]
pub(crate) struct SensorPage {
    pub(crate) l: Layout,
    pub(crate) uuid: String,
    pub(crate) name: String,
    pub(crate) status: &'static str,
    pub(crate) connected: bool,
    pub(crate) live_types: String,
    pub(crate) has_own_key: bool,
    pub(crate) blocked: bool,
    pub(crate) block_ips: bool,
    pub(crate) first_seen: String,
    pub(crate) last_seen: String,
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    pub(crate) tags_text: String,
    pub(crate) max_frame: String,
    pub(crate) max_frame_value: u32,
    pub(crate) monitor: String,
    pub(crate) monitor_value: u64,
    pub(crate) error_count: u64,
    pub(crate) last_error: String,
    pub(crate) has_last_error: bool,
    pub(crate) errors: Vec<ErrorRow>,
    pub(crate) skipped: u64,
    pub(crate) chart_bytes: String,
    pub(crate) chart_frames: String,
    /// Links to the time ranges.
    pub(crate) ranges: Vec<RangeLink>,
    /// When the server started (the series begin).
    pub(crate) started: String,
    /// Its live rates.
    pub(crate) live: Live,
    pub(crate) range_bytes: String,
    pub(crate) range_frames: String,
    pub(crate) types: Vec<(String, String, String)>,
    pub(crate) ips: Vec<(String, String)>,
}

pub(crate) async fn sensor_page(Path(id): Path<String>, Page { s, c, f }: Page) -> Response {
    let Ok(u) = parse_uuid(&id) else {
        return message(
            &s,
            &c,
            StatusCode::NOT_FOUND,
            "No such sensor",
            &format!("{id:?} is not a UUID"),
        );
    };
    let mut v = [sensor_view(&s, u, &s.policy.snapshot(), &s.sensors.live())];
    crate::http::ops::sensors::mark_shared_keys(&s, &mut v).await;
    let [v] = v;
    let days = last_days(7);
    let series = |bytes: bool| -> Vec<(String, u64)> {
        days.iter()
            .map(|d| {
                let x = v.meta.daily.get(d).copied().unwrap_or_default();
                (day_label(d), if bytes { x.bytes } else { x.frames })
            })
            .collect()
    };
    let set = &v.settings;
    let uuid = u.simple().to_string();
    let r = ranges(&format!("/sensors/{uuid}"), &f);
    let (range_bytes, range_frames) = traffic_charts(&s, &Of::Sensor(u), &r, "sensor-range");
    let rate = s
        .sensors
        .series
        .rates(chrono::Utc::now().timestamp())
        .sensors
        .get(&uuid)
        .copied()
        .unwrap_or_default();
    let page = SensorPage {
        ranges: r.links,
        started: ts(s.started),
        live: Live::new(format!("sensor:{uuid}"), rate),
        range_bytes,
        range_frames,
        l: layout(&s, &c, &f, "sensors"),
        uuid: u.simple().to_string(),
        name: set.name.clone(),
        status: v.status,
        connected: v.connected,
        live_types: v
            .live_types
            .iter()
            .map(|t| format!("type {t}"))
            .collect::<Vec<_>>()
            .join(", "),
        has_own_key: v.has_own_key,
        blocked: v.blocked,
        block_ips: v.block_ips,
        first_seen: ts(v.meta.first_seen),
        last_seen: ts(v.meta.last_seen),
        description: set.description.clone(),
        tags: set.tags.clone(),
        tags_text: set.tags.join(", "),
        max_frame: set
            .max_frame_size
            .map(|m| format!("{m} bytes"))
            .unwrap_or_else(|| format!("the server's ({} bytes)", s.cfg.max_frame_size)),
        max_frame_value: set.max_frame_size.unwrap_or(0),
        monitor: set
            .monitor_delay_secs
            .map(|d| format!("reported after {d} s of silence"))
            .unwrap_or_else(|| "not monitored".into()),
        monitor_value: set.monitor_delay_secs.unwrap_or(0),
        error_count: v.meta.error_count,
        last_error: v
            .meta
            .last_error
            .as_ref()
            .map(|e| format!("{} from {}: {}", ts(e.time), e.ip, e.reason))
            .unwrap_or_default(),
        has_last_error: v.meta.last_error.is_some(),
        errors: v
            .meta
            .errors
            .iter()
            .map(|g| ErrorRow {
                last: ts(g.last),
                ip: g.ip.clone(),
                reason: g.reason.clone(),
                whose: g.whose.clone(),
                count: svg::count(g.count),
                first: ts(g.first),
            })
            .collect(),
        skipped: v.meta.skipped_count,
        chart_bytes: svg::bars("sensor-bytes", "Bytes per day", &series(true), svg::bytes),
        chart_frames: svg::bars(
            "sensor-frames",
            "Frames per day",
            &series(false),
            svg::count,
        ),
        types: v
            .meta
            .types
            .iter()
            .map(|(t, seen)| (t.clone(), ts(seen.first), ts(seen.last)))
            .collect(),
        ips: v
            .meta
            .last_ips
            .iter()
            .map(|(ip, t)| (ip.clone(), ts(*t)))
            .collect(),
    };
    html(&page)
}

pub(crate) async fn sensor_post(
    State(s): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    AdminForm { c, f }: AdminForm,
) -> Response {
    let to = format!("/sensors/{}", enc(&id));
    let u = match parse_uuid(&id) {
        Ok(u) => u,
        Err(e) => return back("/sensors", Err(e)),
    };
    let question = match action.as_str() {
        "block" => Some("Its sessions are closed and refused until it is unblocked."),
        "block-ips" => Some(
            "Every address it was seen from is added to the IP blocklist: any sensor behind them is refused.",
        ),
        _ => None,
    };
    let ask = question.map(|q| Ask {
        action: format!("/sensors/{}/{}", u.simple(), enc(&action)),
        heading: if action == "block" {
            format!("Block sensor {}?", u.simple())
        } else {
            format!("Block the addresses of sensor {}?", u.simple())
        },
        question: q.into(),
        button: "Block",
        back: to.clone(),
        keep: &[],
    });
    if let Some(page) = ask.and_then(|a| confirm_first(&s, &c, &f, a)) {
        return page;
    }
    let mut body = ActionBody::default();
    if action == "key" {
        body.key = Some(f.get("key").to_string());
    }
    if action == "settings" {
        let num = |k: &str| f.get(k).trim().parse::<u64>().unwrap_or(0);
        body.name = Some(f.get("name").to_string());
        body.description = Some(f.get("description").to_string());
        body.tags = Some(f.get("tags").split(',').map(str::to_string).collect());
        body.max_frame_size = Some(num("max_frame_size").min(u32::MAX as u64) as u32);
        body.monitor_delay_secs = Some(num("monitor_delay_secs"));
    }
    let r = op_sensor_action(&s, u, &action, body).await;
    let msg = match action.as_str() {
        "key" => "HMAC key set (it will not be shown).".to_string(),
        "kick" => "Sensor kicked.".to_string(),
        "block" => "Sensor blocked.".to_string(),
        "unblock" => "Sensor unblocked.".to_string(),
        "block-ips" => "Its addresses are blocked.".to_string(),
        "settings" => "Settings saved.".to_string(),
        other => format!("Done: {other}."),
    };
    back(&to, r.map(|_| msg))
}
