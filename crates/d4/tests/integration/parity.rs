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

/// Point 2: with the default `accepted_extended_types = []` (any name), the
/// reference tools find in `server:accepted_extended_type` the names in use
/// (and `*`); removing `*` there makes the set a list, as in the reference.
#[test]
fn extended_types_in_use_are_listed_for_the_reference_tools() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let members = || {
        let out = r.cli(0, &["SMEMBERS", "server:accepted_extended_type"]);
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    wait_for("the built-in handlers", Duration::from_secs(10), || {
        let m = members();
        (m.iter().any(|x| x == "ja3-jl") && m.iter().any(|x| x == "maltrail")).then_some(())
    });
    assert!(members().iter().any(|x| x == "*"), "{:?}", members());
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "my-ext"}"#);
    sensor.send(b"an extended line\n");
    wait_for("the name in use", Duration::from_secs(10), || {
        members().iter().any(|x| x == "my-ext").then_some(())
    });
    // Still any name.
    let other = Sensor::new(&s, 254);
    other.set("metaheader.json", r#"{"type": "another-ext"}"#);
    other.send(b"accepted\n");
    // The reference way of making it a list.
    r.cli(0, &["SREM", "server:accepted_extended_type", "*"]);
    std::thread::sleep(Duration::from_millis(1000));
    let third = Sensor::new(&s, 254);
    third.set("metaheader.json", r#"{"type": "not-listed"}"#);
    let o = third.run(b"refused\n", &["--max-retries", "1", "--max-backoff", "1"]);
    assert!(
        !o.status.success(),
        "an unlisted extended type was accepted"
    );
    s.wait_error(&third.uuid, "not accepted");
    assert!(!members().iter().any(|x| x == "*"), "{:?}", members());
}

/// Point 1: a sensor that connects before it is registered is noted as
/// pending, but that never blocks its registration with a key afterwards;
/// in Redis neither `metadata_uuid:<uuid>` nor `sensor_pending_registration`
/// is written for it (the reference's registration API answers 409 then).
#[test]
fn a_sensor_that_connected_first_can_still_register_its_key() {
    for (r, store) in backends() {
        let mut args = vec!["--mode", "registration"];
        args.extend(store.iter().map(String::as_str));
        let s = Server::start(&args);
        let sensor = Sensor::new(&s, 3);
        let o = sensor.run(
            b"too early\n",
            &["--max-retries", "1", "--max-backoff", "1"],
        );
        assert!(!o.status.success());
        s.wait_error(&sensor.uuid, "not approved");
        assert_eq!(s.sensor(&sensor.uuid)["status"], "pending");
        let u = sensor.uuid.simple().to_string();
        if let Some(r) = &r {
            // A policy round (250 ms) and a metadata batch (1 s) later.
            std::thread::sleep(Duration::from_millis(2500));
            assert_eq!(
                r.cli(0, &["SISMEMBER", "sensor_pending_registration", &u]),
                "0"
            );
            assert_eq!(r.cli(0, &["EXISTS", &format!("metadata_uuid:{u}")]), "0");
        }
        let (_, admin) = s.admin_credentials();
        let (code, v) = s.call(
            "POST",
            "/add/sensor/register",
            Some(&admin),
            Some(serde_json::json!({"uuid": sensor.uuid.to_string(), "hmac_key": "its key"})),
        );
        assert_eq!(code, 200, "{store:?}: {v}");
        if let Some(r) = &r {
            wait_for("the registration in Redis", Duration::from_secs(10), || {
                (r.cli(0, &["SISMEMBER", "sensor_pending_registration", &u]) == "1").then_some(())
            });
        }
        s.d4_ok(&["sensor", "approve", &sensor.uuid.to_string()]);
        sensor.set("key", "its key\n");
        sensor.send(b"registered the reference way\n");
    }
}

/// Point 3: a type-2/254 session writes the reference's extended-type keys
/// and counts its meta-header frames as type 2 (the reference UI then names
/// the extended type instead of showing "254" alone).
#[test]
fn extended_type_metadata_in_the_reference_keys() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&["--store", &r.url(0)]);
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "maltrail"}"#);
    sensor.send(b"a maltrail line\n");
    let u = sensor.uuid.simple().to_string();
    wait_for("the extended type keys", Duration::from_secs(10), || {
        (r.cli(0, &["SMEMBERS", &format!("all_extended_types_by_uuid:{u}")]) == "maltrail")
            .then_some(())
    });
    let by = format!("metadata_extended_type_by_uuid:{u}:maltrail");
    assert_ne!(r.cli(0, &["HGET", &by, "first_seen"]), "");
    assert_ne!(r.cli(0, &["HGET", &by, "last_seen"]), "");
    let types = r.cli(0, &["SMEMBERS", &format!("all_types_by_uuid:{u}")]);
    let mut types: Vec<&str> = types.lines().collect();
    types.sort();
    assert_eq!(types, ["2", "254"]);
    let date = chrono::Utc::now().format("%Y%m%d").to_string();
    let stat = format!("stat_uuid_type:{date}:{u}");
    assert_ne!(r.cli(0, &["ZSCORE", &stat, "2"]), "");
    assert_ne!(r.cli(0, &["ZSCORE", &stat, "254"]), "");
}

/// A frame with protocol version byte `version`.
fn frame_v(version: u8, u: Uuid, payload: &[u8]) -> Vec<u8> {
    let enc = d4_proto::FrameEncoder::new(d4_proto::Signer::new(KEY.as_bytes()), version, 3, u);
    let mut v = Vec::new();
    enc.encode_into(1_704_067_200, payload, &mut v);
    v
}

/// Point 9: a version byte other than 1 is refused by default, with the
/// setting that accepts it named; with `accept_unknown_versions = true` it
/// is accepted, as by the reference.
#[test]
fn unknown_versions_only_behind_a_setting_the_refusal_names() {
    let (_c, cfg) = config("accept_unknown_versions = true\n");
    for (_r, store) in backends() {
        let store: Vec<&str> = store.iter().map(String::as_str).collect();
        let s = Server::start(&store);
        let u = Uuid::new_v4();
        let mut raw = Raw::connect(&s, None);
        raw.write(&frame_v(2, u, b"version 2\n"));
        assert!(raw.closed_by_server());
        let r = s.wait_error(&u, "version 2");
        assert!(r.contains("accept_unknown_versions = true"), "{r}");
        drop(s);

        let mut args = vec!["--config", cfg.as_str()];
        args.extend(&store);
        let s = Server::start(&args);
        let mut raw = Raw::connect(&s, None);
        assert!(raw.write(&frame_v(2, u, b"version 2\n")));
        raw.close();
        wait_for("the frame accepted", Duration::from_secs(10), || {
            (s.sensor(&u)["last_seen"].as_i64()? > 0).then_some(())
        });
    }
}

/// Point 7: a key file gives the key the C client reads: `\r` is key, a NUL
/// byte ends it; the client warns at start about both.
#[test]
fn key_files_read_as_the_c_client_with_a_warning() {
    let (_c, cfg) = config("default_key = \"abc\\r\"\n");
    let s = Server::start(&["--config", &cfg]);
    let sensor = Sensor::new(&s, 3);
    std::fs::write(sensor.dir.path().join("key"), b"abc\r\n").unwrap();
    let o = sensor.run(b"signed with abc\\r\n", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("carriage return"), "{err}");

    let other = Sensor::new(&s, 3);
    let (_, admin) = s.admin_credentials();
    let (code, v) = s.call(
        "POST",
        &format!("/sensors/{}/key", other.uuid),
        Some(&admin),
        Some(serde_json::json!({"key": "ab"})),
    );
    assert_eq!(code, 200, "{v}");
    std::fs::write(other.dir.path().join("key"), b"ab\0cd\n").unwrap();
    let o = other.run(b"signed with ab\n", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("NUL byte at offset 2"), "{err}");
}

/// Point 8: a last line without a newline (types 3 and 8) is stored as it
/// came, no `\n` added; it is still queued as a line.
#[test]
fn a_last_line_without_a_newline_is_stored_as_it_came() {
    for (_r, store) in backends() {
        let store: Vec<&str> = store.iter().map(String::as_str).collect();
        let s = Server::start(&store);
        for ty in ["3", "8"] {
            let q = s.create_queue(ty, &[]);
            let sensor = Sensor::new(&s, ty.parse().unwrap());
            sensor.send(b"first line\nlast line, no newline");
            s.wait_queue_len(&q, 2);
            let want = b"first line\nlast line, no newline";
            let end = std::time::Instant::now() + Duration::from_secs(20);
            let mut got = stored(&s, &sensor, ty);
            while got != want && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
                got = stored(&s, &sensor, ty);
            }
            assert_eq!(
                String::from_utf8_lossy(&got),
                "first line\nlast line, no newline",
                "type {ty} {store:?}"
            );
            let items = String::from_utf8(s.drain(ty, &q, &["-n"])).unwrap();
            assert_eq!(items, "first line\nlast line, no newline\n");
        }
    }
}

/// The date folder and the time in the name of the one file a type-3
/// sensor stored (`YYYY/MM/DD`, `YYYY-MM-DD-HHMMSS`).
fn stored_file_time(s: &Server, sensor: &Sensor) -> (String, chrono::NaiveDateTime) {
    let root = s
        .data_dir()
        .join("data")
        .join(sensor.uuid.simple().to_string())
        .join("3");
    let file = wait_for("a stored file", Duration::from_secs(20), || {
        let y = std::fs::read_dir(&root).ok()?.flatten().next()?.path();
        let m = std::fs::read_dir(&y).ok()?.flatten().next()?.path();
        let d = std::fs::read_dir(&m).ok()?.flatten().next()?.path();
        std::fs::read_dir(&d)
            .ok()?
            .flatten()
            .next()
            .map(|e| e.path())
    });
    let rel = file.strip_prefix(&root).unwrap();
    let folder: Vec<String> = rel
        .parent()
        .unwrap()
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let stamp = &name[33..33 + 17];
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d-%H%M%S").unwrap();
    (folder.join("/"), t)
}

/// Point 6: stored files' date folders and names follow the local time
/// (`TZ`) by default, as the reference; `timezone = "UTC"` gives UTC.
#[test]
fn file_names_and_folders_in_local_time_unless_utc_is_set() {
    // UTC+14: never the same hour as UTC.
    let tz = [("TZ", "Etc/GMT-14")];
    let plus14 = |t: chrono::DateTime<chrono::Utc>| (t + chrono::Duration::hours(14)).naive_utc();
    let (_c, utc_cfg) = config("timezone = \"UTC\"\n");
    for (cfg, local) in [(None, true), (Some(utc_cfg.as_str()), false)] {
        let mut args = vec![];
        if let Some(c) = cfg {
            args.extend(["--config", c]);
        }
        let s = Server::start_env(tempfile::tempdir().unwrap(), &args, &tz);
        let sensor = Sensor::new(&s, 3);
        let before = chrono::Utc::now();
        sensor.send(b"a line\n");
        let (folder, t) = stored_file_time(&s, &sensor);
        let want = if local {
            plus14(before)
        } else {
            before.naive_utc()
        };
        let off = (t - want).num_seconds();
        assert!((-5..60).contains(&off), "local {local}: {t} vs {want}");
        assert_eq!(folder, t.format("%Y/%m/%d").to_string());
    }
}

/// The stored files of a sensor's type-`ty` stream today.
fn stored_files(s: &Server, u: &Uuid, ty: &str) -> usize {
    std::fs::read_dir(s.day_dir(u, ty))
        .map(|rd| rd.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0)
}

/// Point 12: `d4 forward --session-secs N` sends the items of a time span
/// in one session (one stored file at the destination, lines in order),
/// where batches would each be a session of their own.
#[test]
fn forward_sends_one_session_per_time_span() {
    let private = Server::start(&[]);
    let public = Server::start(&[]);
    let q = private.create_queue("3", &[]);
    let lines: Vec<String> = (0..6).map(|i| format!("line {i}\n")).collect();
    let send_all = || {
        for l in &lines {
            Sensor::new(&private, 3).send(l.as_bytes());
        }
        private.wait_queue_len(&q, 6);
    };
    let run = |to: &Sensor, extra: &[&str]| {
        let mut a = vec!["forward", "-u", &q, "-c", to.dir.path().to_str().unwrap()];
        a.extend_from_slice(&["--once", "--batch", "2"]);
        a.extend_from_slice(extra);
        let o = private.d4(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // Batches of 2: three sessions, three files.
    send_all();
    let batches = Sensor::new(&public, 3);
    run(&batches, &[]);
    wait_for("three files", Duration::from_secs(20), || {
        (stored_files(&public, &batches.uuid, "3") == 3).then_some(())
    });
    // One span: one session, one file, the lines in order.
    send_all();
    let spans = Sensor::new(&public, 3);
    let t = std::time::Instant::now();
    run(&spans, &["--session-secs", "2"]);
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert_eq!(private.queue_len(&q), 0);
    wait_for("one file", Duration::from_secs(20), || {
        let files: Vec<_> = std::fs::read_dir(public.day_dir(&spans.uuid, "3"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".gz"))
            .collect();
        (files.len() == 1).then_some(())
    });
    assert_eq!(stored_files(&public, &spans.uuid, "3"), 1);
    let mut text = String::new();
    let f = std::fs::read_dir(public.day_dir(&spans.uuid, "3"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(f).unwrap()),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, lines.concat());
}
