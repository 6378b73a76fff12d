//! Bar charts as SVG, rendered on the server (no JavaScript).

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
pub(super) fn bytes(n: u64) -> String {
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
pub(super) fn count(n: u64) -> String {
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
}
