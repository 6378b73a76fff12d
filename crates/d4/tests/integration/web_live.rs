//! The dashboard's time series and live rates (issue 17, item 3): in
//! headless Chromium, the live rate changes while a sensor streams with no
//! reload of the page; the ranges, the queue fill and the drill-down to a
//! sensor and its errors; the JSON behind them (API and UI). Screenshots
//! 10 to 13 go to `target/tmp/screenshots/` (committed under
//! `docs/screenshots/`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{frame, wait_for, Raw, Sensor, Server};
use crate::web::{wait_page, Browser, Streaming};
use crate::web_api::{csrf, Browser as Forms};

/// Runs `script` in the page; its return value.
fn exec(b: &Browser, script: &str) -> Value {
    b.cmd(
        "POST",
        "/execute/sync",
        Some(json!({"script": script, "args": []})),
    )
}

/// The number an element's `data-value` holds (live rates).
fn value(b: &Browser, css: &str) -> f64 {
    b.attr(css, "data-value").parse().unwrap_or(-1.0)
}

/// Logs in as the first admin and changes the first password.
fn login(b: &Browser, password: &str) {
    b.go("/login");
    b.type_in("#user", "admin");
    b.type_in("#password", password);
    b.click("#login");
    wait_page(b, "the forced password change", |b| {
        b.url().ends_with("/password")
    });
    b.type_in("#current", password);
    b.type_in("#new", "correct horse battery staple");
    b.type_in("#confirm", "correct horse battery staple");
    b.click("#change");
    wait_page(b, "the dashboard", |b| b.has("#connected-count"));
}

#[test]
fn the_live_rate_changes_without_a_reload_and_the_views_drill_down() {
    let s = Server::start(&[]);
    let (password, _) = s.admin_credentials();
    let Some(b) = Browser::start(&s.api) else {
        return;
    };
    login(&b, &password);
    let q = s.create_queue("3", &["--description", "analyzer"]);
    let sensor = Sensor::new(&s, 3);
    let u = sensor.uuid.simple().to_string();
    // Three refused sessions of the sensor (wrong key): its errors.
    for _ in 0..3 {
        let mut c = Raw::connect(&s, None);
        c.write(&frame(sensor.uuid, 3, b"not the key", b"x\n"));
        assert!(c.closed_by_server());
    }

    b.go("/");
    assert_eq!(value(&b, "#live-bytes"), 0.0, "nothing sent yet");
    let before = b.text("#live-bytes");
    exec(&b, "window.d4mark = 'the same page';");
    let origin = exec(&b, "return performance.timeOrigin;");

    let _stream = Streaming::start(&sensor);
    let rate = wait_for("the live rate to rise", Duration::from_secs(60), || {
        Some(value(&b, "#live-bytes")).filter(|v| *v > 0.0)
    });
    assert!(rate > 1000.0, "2 kB lines, 10 a second: {rate}");
    assert_ne!(b.text("#live-bytes"), before, "the number shown changed");
    assert!(b.text("#live-bytes").ends_with("/s"));
    // No reload: the page's own variable, time origin and single
    // navigation entry are still there.
    assert_eq!(
        exec(&b, "return window.d4mark;"),
        json!("the same page"),
        "the page was reloaded"
    );
    assert_eq!(exec(&b, "return performance.timeOrigin;"), origin);
    assert_eq!(
        exec(
            &b,
            "return performance.getEntriesByType('navigation').map(e => e.type);"
        ),
        json!(["navigate"])
    );
    // The queue's length, live too, and the fill chart.
    wait_for("the queue's live length", Duration::from_secs(30), || {
        let t = b.text(&format!("[data-queue='{q}']"));
        (t.parse::<u64>().unwrap_or(0) > 0).then_some(())
    });
    wait_page(&b, "the charts with points", |b| {
        b.go("/");
        b.attr("#range-bytes", "data-total")
            .parse::<u64>()
            .unwrap_or(0)
            > 0
            && b.source().contains("<polyline")
            && b.attr("#queue-fill", "data-points") == "60"
    });
    // The rows of the sensor and its type (listed once it has sent) are
    // refreshed in place too.
    exec(&b, "window.d4mark = 'the second page';");
    let row = format!("[data-rate='sensor:{u}'][data-unit='frames']");
    let first = b.attr(&row, "data-value");
    wait_for(
        "the sensor's row rate to move",
        Duration::from_secs(30),
        || (b.attr(&row, "data-value") != first && value(&b, &row) > 0.0).then_some(()),
    );
    let ty = "[data-rate='type:3'][data-unit='bytes']";
    wait_for("the type's row rate", Duration::from_secs(30), || {
        (value(&b, ty) > 0.0).then_some(())
    });
    assert_eq!(exec(&b, "return window.d4mark;"), json!("the second page"));
    b.shot("10-dashboard-live");

    // Ranges: 24 h per minute (1,440 points), 7 days per hour (168).
    b.go("/?range=24h&res=minute");
    assert_eq!(b.attr("#range-bytes", "data-points"), "1440");
    assert!(b.text("#ranges").contains("30 days"));
    b.shot("11-dashboard-24h");
    b.go("/?range=7d&res=hour");
    assert_eq!(b.attr("#range-frames", "data-points"), "168");

    // Drill down: the sensor, then its errors.
    b.go("/");
    b.click(&format!("#per-sensor a[href='/sensors/{u}']"));
    wait_page(&b, "the sensor page", |b| b.url().ends_with(&u));
    wait_for("its live rate", Duration::from_secs(30), || {
        (value(&b, "#live-bytes") > 0.0).then_some(())
    });
    assert!(
        b.attr("#sensor-range-bytes", "data-total")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    b.shot("12-sensor-live");
    b.go("/");
    b.click(&format!("#per-sensor a[href='/sensors/{u}#errors']"));
    wait_page(&b, "its errors", |b| b.url().ends_with("#errors"));
    let errors = b.text("#error-groups");
    assert!(errors.contains("127.0.0.1"), "{errors}");
    assert_eq!(errors.lines().count(), 2, "one row for three: {errors}");
    b.shot("13-sensor-errors");
}

#[test]
fn the_series_and_rates_answer_in_json_and_are_documented() {
    let s = Server::start(&[]);
    let (pw, k) = s.admin_credentials();
    let sensor = Sensor::new(&s, 3);
    sensor.send(b"one line\nanother line\n");
    let (code, v) = s.call("GET", "/stats/series?range=1h", Some(&k), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["resolution"].as_str(), v["step_secs"].as_i64()),
        (Some("minute"), Some(60))
    );
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 60);
    let frames: u64 = pts.iter().map(|p| p["frames"].as_u64().unwrap()).sum();
    assert!(frames >= 1, "{v}");
    let path = format!(
        "/stats/series?range=24h&resolution=hour&sensor={}",
        sensor.uuid
    );
    let (_, v) = s.call("GET", &path, Some(&k), None);
    assert_eq!(v["points"].as_array().unwrap().len(), 24);
    let (_, v) = s.call("GET", "/stats/series?range=30d&type=3", Some(&k), None);
    assert_eq!(
        (
            v["points"].as_array().unwrap().len(),
            v["resolution"].as_str()
        ),
        (720, Some("hour"))
    );
    let (code, _) = s.call("GET", "/stats/series?range=2y", Some(&k), None);
    assert_eq!(code, 400);
    let (code, v) = s.call("GET", "/stats/rates", Some(&k), None);
    assert_eq!(code, 200);
    assert!(
        v["total"]["bytes_per_sec"].is_number() && v["window_secs"] == 10,
        "{v}"
    );
    let q = s.create_queue("3", &[]);
    let (code, v) = wait_for("the queue sampled", Duration::from_secs(20), || {
        let (code, v) = s.call("GET", "/stats/queues?range=1h", Some(&k), None);
        (v["queues"].as_array().is_some_and(|a| !a.is_empty())).then_some((code, v))
    });
    assert_eq!(code, 200);
    assert_eq!(v["queues"][0]["uuid"], json!(q));
    assert_eq!(v["queues"][0]["points"].as_array().unwrap().len(), 60);

    let (_, doc) = s.call("GET", "/openapi.json", None, None);
    for p in ["/stats/rates", "/stats/series", "/stats/queues"] {
        assert!(doc["paths"][p]["get"].is_object(), "{p} undocumented");
    }

    // The UI's copy needs a session; the script is first-party, allowed
    // by the CSP, which allows no other origin.
    let mut f = Forms::new(&s);
    let (code, loc, _) = f.get("/live/rates");
    assert_eq!((code, loc.as_str()), (303, "/login"));
    let (_, _, page) = f.get("/login");
    let t = csrf(&page);
    f.post(
        "/login",
        &[("csrf", &t), ("user", "admin"), ("password", &pw)],
    );
    let (_, _, page) = f.get("/password");
    let t = csrf(&page);
    f.post(
        "/password",
        &[
            ("csrf", &t),
            ("current", &pw),
            ("new", "a new password!"),
            ("confirm", "a new password!"),
        ],
    );
    let (code, _, body) = f.get("/live/rates");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["sensors"].is_object() && v["queues"].is_object(), "{v}");
    let (code, _, page) = f.get("/");
    assert_eq!(code, 200);
    assert!(page.contains(r#"<script src="/static/live.js" defer></script>"#));
    assert!(!page.contains("<script>"), "no inline script");
    let r = s
        .web_client()
        .get(format!("{}/static/live.js", s.api))
        .send()
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.text().unwrap().contains("data-live"));
}
