//! Bar and line charts as SVG, rendered on the server (no script draws them).

use std::fmt::Write as _;

/// Escapes text for XML/HTML.
pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `1.2 MB`-style byte counts.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `12.3k`-style counts.
pub(crate) fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// A bar chart: one bar per point, its value above it. The `svg` element
/// carries `data-total` (the sum), which tests read.
pub(super) fn bars(
    id: &str,
    title: &str,
    points: &[(String, u64)],
    fmt: fn(u64) -> String,
) -> String {
    let (w, h, top, bottom, left) = (480.0, 200.0, 28.0, 22.0, 8.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let total: u64 = points.iter().map(|p| p.1).sum();
    let n = points.len().max(1) as f64;
    let slot = (w - 2.0 * left) / n;
    let bar = (slot * 0.6).max(2.0);
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" id="{}" data-total="{total}" role="img" aria-label="{}">"##,
        esc(id),
        esc(title)
    );
    let _ = write!(
        o,
        r##"<text x="{left}" y="16" font-size="13" font-weight="600" fill="#1d2330">{} (total {})</text>"##,
        esc(title),
        esc(&fmt(total))
    );
    let base = h - bottom;
    let _ = write!(
        o,
        r##"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="#c5cbd6"/>"##,
        w - left
    );
    for (i, (label, v)) in points.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let bh = (*v as f64 / max) * (base - top - 14.0);
        let y = base - bh;
        let cx = x + bar / 2.0;
        let _ = write!(
            o,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{bh:.1}" fill="#3b82f6"><title>{}: {}</title></rect>"##,
            esc(label),
            esc(&fmt(*v))
        );
        if *v > 0 {
            let _ = write!(
                o,
                r##"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#1d2330">{}</text>"##,
                y - 3.0,
                esc(&fmt(*v))
            );
        }
        let _ = write!(
            o,
            r##"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#6b7385">{}</text>"##,
            h - 6.0,
            esc(label)
        );
    }
    o.push_str("</svg>");
    o
}

/// Colours of the lines, in order.
const COLOURS: [&str; 8] = [
    "#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#84cc16", "#ec4899",
];

/// `v` with a unit chosen by `fmt`, for axis labels.
fn label(v: f64, fmt: fn(u64) -> String) -> String {
    fmt(v.round().max(0.0) as u64)
}

/// A line chart over time: each series is (label, points (Unix seconds,
/// value)), all on one scale from 0 to the largest value; the first series
/// is shaded. `summary` follows the title. Time labels use `time_fmt`
/// (chrono, UTC); `legend` names the series under the title. The `svg` element carries `data-total` (the sum of the
/// first series) and `data-points` (its number of points), which tests read.
pub(crate) fn lines(
    id: &str,
    title: &str,
    summary: &str,
    series: &[(String, Vec<(i64, u64)>)],
    fmt: fn(u64) -> String,
    time_fmt: &str,
    legend: bool,
) -> String {
    let (w, h, top, bottom, left, right) = (480.0, 200.0, 34.0, 22.0, 52.0, 10.0);
    let first = series.first().map(|s| s.1.as_slice()).unwrap_or(&[]);
    let total: u64 = first.iter().map(|p| p.1).sum();
    let max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let t0 = series
        .iter()
        .filter_map(|s| s.1.first().map(|p| p.0))
        .min()
        .unwrap_or(0);
    let t1 = series
        .iter()
        .filter_map(|s| s.1.last().map(|p| p.0))
        .max()
        .unwrap_or(0);
    let span = (t1 - t0).max(1) as f64;
    let base = h - bottom;
    let x = |t: i64| left + (t - t0) as f64 / span * (w - left - right);
    let y = |v: u64| base - v as f64 / max * (base - top);
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" id="{}" data-total="{total}" data-points="{}" role="img" aria-label="{}">"##,
        esc(id),
        first.len(),
        esc(title)
    );
    let _ = write!(
        o,
        r##"<text x="8" y="14" font-size="13" font-weight="600" fill="#1d2330">{} <tspan font-weight="400" fill="#6b7385">{}</tspan></text>"##,
        esc(title),
        esc(summary)
    );
    if legend {
        let mut lx = 8.0;
        for (i, (name, _)) in series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let _ = write!(
                o,
                r##"<rect x="{lx:.1}" y="20" width="10" height="4" fill="{c}"/><text x="{:.1}" y="26" font-size="9" fill="#1d2330">{}</text>"##,
                lx + 13.0,
                esc(name)
            );
            lx += 18.0 + 5.5 * name.chars().count() as f64;
        }
    }
    for f in [0.0, 0.5, 1.0] {
        let v = max * f;
        let yy = base - f * (base - top);
        let _ = write!(
            o,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="{}"/><text x="{}" y="{:.1}" font-size="9" text-anchor="end" fill="#6b7385">{}</text>"##,
            w - right,
            if f == 0.0 { "#c5cbd6" } else { "#eef0f4" },
            left - 4.0,
            yy + 3.0,
            esc(&label(v, fmt))
        );
    }
    for i in 0..5 {
        let t = t0 + ((t1 - t0) as f64 * i as f64 / 4.0) as i64;
        let text = chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format(time_fmt).to_string())
            .unwrap_or_default();
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{}" font-size="9" text-anchor="{anchor}" fill="#6b7385">{}</text>"##,
            x(t),
            h - 6.0,
            esc(&text)
        );
    }
    for (i, (name, pts)) in series.iter().enumerate().rev() {
        if pts.is_empty() {
            continue;
        }
        let c = COLOURS[i % COLOURS.len()];
        let mut line = String::new();
        for (t, v) in pts {
            let _ = write!(line, "{:.1},{:.1} ", x(*t), y(*v));
        }
        if i == 0 {
            let (a, b) = (x(pts[0].0), x(pts[pts.len() - 1].0));
            let _ = write!(
                o,
                r##"<polygon points="{a:.1},{base} {line}{b:.1},{base}" fill="{c}" fill-opacity="0.15"/>"##
            );
        }
        let _ = write!(
            o,
            r##"<polyline points="{}" fill="none" stroke="{c}" stroke-width="1.5"><title>{}</title></polyline>"##,
            line.trim_end(),
            esc(name)
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_escapes_and_totals() {
        let s = bars("c", "a<b", &[("x\"".into(), 5), ("y".into(), 7)], count);
        assert!(s.contains(r#"data-total="12""#));
        assert!(s.contains("a&lt;b"));
        assert!(s.contains("x&quot;"));
        assert!(!s.contains("a<b"));
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
    }

    #[test]
    fn line_chart_escapes_totals_and_legends() {
        let one = ("a<b".to_string(), vec![(0, 5), (60, 7), (120, 0)]);
        let s = lines(
            "l",
            "t&t",
            "sum",
            std::slice::from_ref(&one),
            count,
            "%H:%M",
            false,
        );
        assert!(s.contains(r#"data-total="12""#) && s.contains(r#"data-points="3""#));
        assert!(s.contains("t&amp;t") && s.contains("a&lt;b") && !s.contains("a<b"));
        assert!(s.contains("00:00") && s.contains("00:02"));
        let two = lines(
            "l",
            "t",
            "",
            &[one, ("q2".into(), vec![(0, 1)])],
            count,
            "%H:%M",
            true,
        );
        assert!(two.contains(">q2</text>"), "a legend");
        assert!(!s.contains("a&lt;b</text>"), "no legend asked for");
        let empty = lines("e", "t", "", &[], count, "%H:%M", false);
        assert!(empty.contains(r#"data-total="0""#));
    }
}
