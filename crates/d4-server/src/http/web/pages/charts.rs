//! What the dashboard and the sensor page share: the time ranges (last
//! hour, 24 hours per minute or per hour, 7 and 30 days per hour), the
//! traffic and queue-fill charts of [`crate::series`], and the live rates'
//! text (which `live.js` refreshes without a reload).

use crate::http::web::svg;
use crate::http::web::Flash;
use crate::series::{Of, Rate, Res, Span};
use crate::server::Shared;

/// The ranges offered: (range, resolution, label).
const CHOICES: [(&str, &str, &str); 5] = [
    ("1h", "minute", "last hour"),
    ("24h", "minute", "24 h per minute"),
    ("24h", "hour", "24 h per hour"),
    ("7d", "hour", "7 days"),
    ("30d", "hour", "30 days"),
];

/// A link to a range.
pub(crate) struct RangeLink {
    pub(crate) href: String,
    pub(crate) label: &'static str,
    pub(crate) on: bool,
}

/// The range a page shows, with the links to the others.
pub(crate) struct Ranges {
    pub(crate) span: Span,
    pub(crate) res: Res,
    pub(crate) links: Vec<RangeLink>,
}

/// The range asked for in the query (`range`, `res`); the last hour by default.
pub(crate) fn ranges(path: &str, f: &Flash) -> Ranges {
    let span = Span::parse(&f.range).unwrap_or(Span::Hour);
    let res = span.resolution(&f.res);
    let links = CHOICES
        .iter()
        .map(|(r, x, label)| RangeLink {
            href: format!("{path}?range={r}&res={x}"),
            label,
            on: *r == span.as_str() && *x == res.as_str(),
        })
        .collect();
    Ranges { span, res, links }
}

fn time_fmt(r: &Ranges) -> &'static str {
    match (r.span, r.res) {
        (Span::Week, _) => "%m-%d %H:00",
        (Span::Month, _) => "%m-%d",
        _ => "%H:%M",
    }
}

fn span_words(r: &Ranges) -> &'static str {
    match r.span {
        Span::Hour => "last hour",
        Span::Day => "last 24 hours",
        Span::Week => "last 7 days",
        Span::Month => "last 30 days",
    }
}

/// The bytes and frames charts of `of` over the range (ids `<id>-bytes`,
/// `<id>-frames`).
pub(crate) fn traffic_charts(s: &Shared, of: &Of, r: &Ranges, id: &str) -> (String, String) {
    let now = chrono::Utc::now().timestamp();
    let pts = s.sensors.series.traffic(of, r.span, r.res, now);
    let per = r.res.as_str();
    let series = |bytes: bool| {
        vec![(
            if bytes { "bytes" } else { "frames" }.to_string(),
            pts.iter()
                .map(|(t, p)| (*t, if bytes { p.bytes } else { p.frames }))
                .collect::<Vec<_>>(),
        )]
    };
    let (tb, tf) = pts
        .iter()
        .fold((0, 0), |a, p| (a.0 + p.1.bytes, a.1 + p.1.frames));
    (
        svg::lines(
            &format!("{id}-bytes"),
            &format!("Bytes per {per}"),
            &format!("{} in the {}", svg::bytes(tb), span_words(r)),
            &series(true),
            svg::bytes,
            time_fmt(r),
            false,
        ),
        svg::lines(
            &format!("{id}-frames"),
            &format!("Frames per {per}"),
            &format!("{} in the {}", svg::count(tf), span_words(r)),
            &series(false),
            svg::count,
            time_fmt(r),
            false,
        ),
    )
}

/// Every queue's fill (its longest length in each slot; its max size in
/// the legend) over the range (id `queue-fill`).
pub(crate) fn queue_chart(s: &Shared, r: &Ranges) -> String {
    let now = chrono::Utc::now().timestamp();
    let names: std::collections::HashMap<uuid::Uuid, String> = s
        .queues
        .list()
        .into_iter()
        .map(|q| {
            let short: String = q.uuid.simple().to_string().chars().take(8).collect();
            let d = if q.description.is_empty() {
                short
            } else {
                q.description.chars().take(24).collect()
            };
            (
                q.uuid,
                format!("type {} · {d} (max {})", q.ty, svg::count(q.max_size)),
            )
        })
        .collect();
    let series: Vec<(String, Vec<(i64, u64)>)> = s
        .sensors
        .series
        .queue_fill(r.span, r.res, now)
        .into_iter()
        .map(|(u, pts)| {
            (
                names.get(&u).cloned().unwrap_or_else(|| u.to_string()),
                pts.into_iter().map(|(t, f)| (t, f.length)).collect(),
            )
        })
        .collect();
    svg::lines(
        "queue-fill",
        &format!("Queue length per {}", r.res.as_str()),
        &format!("(longest), {}", span_words(r)),
        &series,
        svg::count,
        time_fmt(r),
        true,
    )
}

/// `1.2 kB/s`.
pub(crate) fn bytes_rate(r: f64) -> String {
    format!("{}/s", svg::bytes(r.round() as u64))
}

/// `3.4/s`.
pub(crate) fn frames_rate(r: f64) -> String {
    format!("{r:.1}/s")
}

/// A live number: its key in `/live/rates` (`total`, `type:<key>`,
/// `sensor:<32 hex>`), unit and value now.
pub(crate) struct Live {
    pub(crate) key: String,
    pub(crate) bytes: f64,
    pub(crate) frames: f64,
    pub(crate) bytes_text: String,
    pub(crate) frames_text: String,
}

impl Live {
    pub(crate) fn new(key: String, r: Rate) -> Live {
        Live {
            key,
            bytes: r.bytes_per_sec,
            frames: r.frames_per_sec,
            bytes_text: bytes_rate(r.bytes_per_sec),
            frames_text: frames_rate(r.frames_per_sec),
        }
    }
}
