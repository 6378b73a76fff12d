//! Issue 16: drop-in for the reference. Each test shows the reference's
//! behaviour (or the switch that gives it) for one point of the issue.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::harness::*;

/// A server configuration file in a directory of its own.
fn config(text: &str) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("server.toml");
    std::fs::write(&p, text).unwrap();
    let p = p.to_str().unwrap().to_string();
    (d, p)
}

/// Point 4: a queue a reference tool created has no creation or pop time;
/// its staleness counts from when the server first saw it, not from 1970.
#[test]
fn a_reference_queue_is_not_stale_since_the_epoch() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let (_c, cfg) = config("monitor_interval_secs = 1\nqueue_stale_secs = 4\n");
    let s = Server::start(&["--store", &r.url(0), "--config", &cfg]);
    let q = Uuid::new_v4().to_string();
    r.cli(0, &["HSET", &format!("analyzer:{q}"), "type", "3"]);
    r.cli(0, &["SADD", "analyzer:3", &q]);
    r.cli(0, &["SADD", "all_analyzer_queues", &q]);
    std::thread::sleep(Duration::from_millis(1500));
    Sensor::new(&s, 3).send(b"an item nobody pops\n");
    let key = format!("analyzer:3:{q}");
    wait_for("the item in Redis", Duration::from_secs(20), || {
        (r.cli(2, &["LLEN", &key]) == "1").then_some(())
    });
    let stale = |v: &Value| -> Option<String> {
        v.as_array()?
            .iter()
            .find(|a| a["kind"] == "queue_stale")
            .map(|a| a["message"].as_str().unwrap_or_default().to_string())
    };
    // Two monitoring rounds with the item waiting: not stale yet.
    std::thread::sleep(Duration::from_millis(2500));
    let v = s.api_get("/alerts");
    assert_eq!(stale(&v), None, "{v}");
    // Once queue_stale_secs have passed, stale for a few seconds only.
    let msg = wait_for("the stale alert", Duration::from_secs(20), || {
        stale(&s.api_get("/alerts"))
    });
    let secs: i64 = msg
        .rsplit("no consumer for ")
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!((4..60).contains(&secs), "{msg}");
}

/// The backends a test runs on: the embedded store, and Redis when a
/// `redis-server` is installed (kept alive by the returned guard).
fn backends() -> Vec<(Option<RedisServer>, Vec<String>)> {
    let mut v = vec![(None, vec![])];
    if let Some(r) = RedisServer::start() {
        let url = r.url(0);
        v.push((Some(r), vec!["--store".to_string(), url]));
    }
    v
}

/// Point 10: in registration mode a UUID that is not version 4 is told
/// so, not sent to `d4 sensor approve` (which refuses it).
#[test]
fn a_non_v4_uuid_is_told_what_is_wrong_not_to_get_approved() {
    for (_r, store) in backends() {
        let mut args = vec!["--mode", "registration"];
        args.extend(store.iter().map(String::as_str));
        let s = Server::start(&args);
        let v1 = Uuid::parse_str("9a7c4b56-1c1f-1b74-9b0e-3c1f2a1b7e01").unwrap();
        let mut raw = Raw::connect(&s, None);
        raw.write(&frame(v1, 3, KEY.as_bytes(), b"x\n"));
        assert!(raw.closed_by_server());
        let r = wait_for("the rejection", Duration::from_secs(10), || {
            let rej = s.api_get("/rejections");
            rej[0]["reason"].as_str().map(str::to_string)
        });
        assert!(r.contains("is not a version 4 UUID"), "{store:?}: {r}");
        assert!(r.contains("version 1"), "{r}");
        assert!(!r.contains("approve"), "{r}");
        let o = s.d4(&["sensor", "approve", &v1.to_string()]);
        assert!(
            !o.status.success(),
            "d4 sensor approve took a version 1 UUID"
        );
    }
}

/// Point 5: a key set the reference way (`HSET metadata_uuid:<uuid>
/// hmac_key`) is shown as the sensor's own key, as it authenticates with it.
#[test]
fn a_key_set_in_redis_is_shown_as_the_sensors_own() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let sensor = Sensor::new(&s, 3);
    sensor.send(b"with the default key\n");
    let u = sensor.uuid.simple().to_string();
    let show = |s: &Server| -> Value {
        serde_json::from_slice(&s.d4_ok(&["sensor", "show", &sensor.uuid.to_string()])).unwrap()
    };
    assert_eq!(show(&s)["has_own_key"], false);
    r.cli(
        0,
        &["HSET", &format!("metadata_uuid:{u}"), "hmac_key", "own key"],
    );
    sensor.set("key", "own key\n");
    sensor.send(b"with its own key\n");
    assert_eq!(show(&s)["has_own_key"], true);
    let list = s.api_get("/sensors");
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["uuid"].as_str() == Some(&sensor.uuid.to_string()))
        .cloned();
    assert_eq!(
        me.map(|v| v["has_own_key"].clone()),
        Some(Value::Bool(true))
    );
}
