//! The operator surface over HTTPS without a browser: accounts, roles, login
//! throttling, CSRF, every API endpoint, the reference endpoints, the OpenAPI
//! document, monitoring with its webhook, and /metrics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{wait_for, Sensor, Server};

/// A browser-like form session over plain HTTP requests.
pub(crate) struct Browser<'a> {
    server: &'a Server,
    http: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(server: &'a Server) -> Browser<'a> {
        Browser {
            server,
            http: server.web_client(),
            cookies: BTreeMap::new(),
        }
    }

    /// A browser whose connections come from `local` (127.0.0.x).
    fn from(server: &'a Server, local: &str) -> Browser<'a> {
        Browser {
            server,
            http: server.web_client_from(local),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &reqwest::blocking::Response) -> Vec<String> {
        let mut raw = Vec::new();
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap().to_string();
            let (kv, _) = v.split_once(';').unwrap_or((&v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            self.cookies.insert(k.to_string(), val.to_string());
            raw.push(v);
        }
        raw
    }

    /// GET: status, Location, body.
    pub(crate) fn get(&mut self, path: &str) -> (u16, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.server.api))
            .header("cookie", self.cookie_header())
            .send()
            .unwrap();
        self.keep(&r);
        let loc = header(&r, "location");
        (r.status().as_u16(), loc, r.text().unwrap())
    }

    /// POST a form: status, Location, body, Set-Cookie lines.
    pub(crate) fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, String, String, Vec<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.server.api))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .unwrap();
        let set = self.keep(&r);
        let loc = header(&r, "location");
        (r.status().as_u16(), loc, r.text().unwrap(), set)
    }
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The value of the first hidden `csrf` field of a page.
pub(crate) fn csrf(page: &str) -> String {
    let i = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[i..i + page[i..].find('"').unwrap()].to_string()
}

fn reason(v: &Value) -> &str {
    assert_eq!(v["status"], "error", "error shape: {v}");
    v["reason"].as_str().unwrap()
}

#[test]
fn first_login_forced_password_change_csrf_and_cookies() {
    let s = Server::start(&[]);
    let (pw, admin_key) = s.admin_credentials();
    let mut b = Browser::new(&s);
    // Pages need a session.
    let (code, loc, _) = b.get("/sensors");
    assert_eq!((code, loc.as_str()), (303, "/login"));
    let (code, _, page) = b.get("/login");
    assert_eq!(code, 200);
    let login_csrf = csrf(&page);
    // The login form's token must match its cookie.
    let (code, ..) = b.post(
        "/login",
        &[("csrf", "forged"), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!(code, 403);
    let (code, loc, _, set) = b.post(
        "/login",
        &[("csrf", &login_csrf), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!((code, loc.as_str()), (303, "/password"));
    let session = set
        .iter()
        .find(|c| c.starts_with("d4_session="))
        .expect("session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    // Every other page sends back to the forced change.
    for p in ["/", "/server", "/users"] {
        let (code, loc, _) = b.get(p);
        assert_eq!((code, loc.as_str()), (303, "/password"), "{p}");
    }
    let (code, _, page) = b.get("/password");
    assert_eq!(code, 200);
    let token = csrf(&page);
    // No CSRF token, or a wrong one: refused, password unchanged.
    let change = |t: &str| {
        vec![
            ("csrf", t.to_string()),
            ("current", pw.clone()),
            ("new", "a brand new passphrase".to_string()),
            ("confirm", "a brand new passphrase".to_string()),
        ]
    };
    let f = change("wrong");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post("/password", &f).0, 403);
    assert!(s.data_dir().join("DEFAULT_PASSWORD").exists());
    let f = change(&token);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, loc, ..) = b.post("/password", &f);
    assert_eq!((code, loc.as_str()), (303, "/"));
    let (_, _, page) = b.get("/");
    assert!(page.contains("Password changed."));
    // Messages come from the server's own cookie, never from the URL.
    let (_, _, page) = b.get("/?msg=Call+us+at+555&err=injected");
    assert!(
        !page.contains("Call us")
            && !page.contains("injected")
            && !page.contains("Password changed.")
    );
    assert!(
        !s.data_dir().join("DEFAULT_PASSWORD").exists(),
        "DEFAULT_PASSWORD is removed once the password is changed"
    );
    // Now every page opens, with security headers.
    for p in [
        "/",
        "/sensors",
        "/server",
        "/registrations",
        "/users",
        "/api",
        "/static/style.css",
    ] {
        let (code, _, body) = b.get(p);
        assert_eq!(code, 200, "{p}: {body}");
    }
    let r = b
        .http
        .get(format!("{}/", s.api))
        .header("cookie", b.cookie_header())
        .send()
        .unwrap();
    assert!(header(&r, "content-security-policy").contains("default-src 'none'"));
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    // A state change with a forged token is refused and changes nothing.
    let (code, ..) = b.post("/server/create-queue", &[("csrf", "forged"), ("type", "3")]);
    assert_eq!(code, 403);
    let (code, ..) = b.post("/server/create-queue", &[("type", "3")]);
    assert_eq!(code, 403);
    assert_eq!(s.call("GET", "/queues", Some(&s.token), None).1, json!([]));
    // A GET never changes state: the action URLs only answer POST.
    let (code, ..) = b.get("/server/create-queue?type=3");
    assert_eq!(code, 405);
    let (_, _, page) = b.get("/server");
    let t = csrf(&page);
    let (code, loc, ..) = b.post(
        "/server/create-queue",
        &[
            ("csrf", &t),
            ("type", "3"),
            ("description", "from the form"),
        ],
    );
    assert_eq!((code, loc.as_str()), (303, "/server"));
    let (_, _, page) = b.get("/server");
    assert!(page.contains("created for type 3"), "{page}");
    assert_eq!(
        s.call("GET", "/queues", Some(&s.token), None).1[0]["description"],
        "from the form"
    );
    // What operators and sensors write is escaped on every page.
    let evil = Uuid::new_v4();
    s.call(
        "POST",
        &format!("/sensors/{evil}/settings"),
        Some(&s.token),
        Some(json!({"name": "<script>alert(1)</script>", "tags": ["<i>t</i>"]})),
    );
    for p in [
        format!("/sensors/{}", evil.simple()),
        "/sensors".to_string(),
    ] {
        let (code, _, page) = b.get(&p);
        assert_eq!(code, 200);
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || page.contains("&#60;script&#62;"),
            "{page}"
        );
        assert!(
            !page.contains("<script>") && !page.contains("<i>t</i>"),
            "{p}"
        );
    }
    // Any account can make itself a new API key, shown once; the old one stops working.
    let old_key = admin_key;
    let (code, _, page, _) = b.post("/account/api-key", &[("csrf", &t)]);
    assert_eq!(code, 200);
    let i = page.find("shown this once: <code>").unwrap() + 23;
    let new_key = &page[i..i + 32];
    assert_eq!(s.call("GET", "/sensors", Some(new_key), None).0, 200);
    assert_eq!(s.call("GET", "/sensors", Some(&old_key), None).0, 401);
    // Logging out ends the session.
    let (code, loc, ..) = b.post("/logout", &[("csrf", &t)]);
    assert_eq!((code, loc.as_str()), (303, "/login"));
    let (code, loc, _) = b.get("/");
    assert_eq!((code, loc.as_str()), (303, "/login"));
}

#[test]
fn logins_are_throttled_per_address_and_account() {
    let s = Server::start(&[]);
    let (pw, _) = s.admin_credentials();
    let mut b = Browser::new(&s);
    let (_, _, page) = b.get("/login");
    let t = csrf(&page);
    for i in 0..5 {
        let (code, _, body, _) = b.post(
            "/login",
            &[("csrf", &t), ("user", "admin"), ("password", "not it")],
        );
        assert_eq!(code, 401, "attempt {i}");
        assert!(body.contains("Wrong user name or password"));
    }
    // The sixth try is refused even with the right password.
    let (code, _, body, set) = b.post(
        "/login",
        &[("csrf", &t), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!(code, 429);
    assert!(body.contains("Too many failed logins"), "{body}");
    assert!(set.iter().all(|c| !c.starts_with("d4_session=")));
    // The lock is in the store: a restart keeps it.
    let dir = s.stop();
    let s = Server::start_in(dir, &[]);
    let mut b = Browser::new(&s);
    let (_, _, page) = b.get("/login");
    let t = csrf(&page);
    let (code, ..) = b.post(
        "/login",
        &[("csrf", &t), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!(code, 429);
    // The API keys are not affected.
    let (_, key) = s.admin_credentials();
    assert_eq!(s.call("GET", "/sensors", Some(&key), None).0, 200);
}

#[test]
fn api_authentication_and_roles() {
    let s = Server::start(&[]);
    let (_, admin) = s.admin_credentials();
    let (code, v) = s.call("GET", "/sensors", None, None);
    assert_eq!(code, 401);
    assert!(reason(&v).starts_with("Authentication needed"));
    let (code, v) = s.call("GET", "/sensors", Some("wrong"), None);
    assert_eq!(code, 401);
    assert!(reason(&v).starts_with("Authentication failed"));
    // "Bearer " is accepted too (Prometheus sends it).
    assert_eq!(
        s.call("GET", "/sensors", Some(&format!("Bearer {admin}")), None)
            .0,
        200
    );
    // Accounts.
    let (code, v) = s.call(
        "POST",
        "/users",
        Some(&admin),
        Some(json!({"name": "ana", "role": "user", "password": "ana's first password"})),
    );
    assert_eq!(code, 201, "{v}");
    let user = v["api_key"].as_str().unwrap().to_string();
    let (code, v) = s.call(
        "POST",
        "/users",
        Some(&admin),
        Some(json!({"name": "reg", "role": "sensor_register", "password": "0123456789"})),
    );
    assert_eq!(code, 201);
    let reg = v["api_key"].as_str().unwrap().to_string();
    let (code, v) = s.call(
        "POST",
        "/users",
        Some(&admin),
        Some(json!({"name": "x", "role": "root", "password": "0123456789"})),
    );
    assert_eq!(code, 400);
    assert!(reason(&v).contains("not a role"));
    let (code, _) = s.call(
        "POST",
        "/users",
        Some(&admin),
        Some(json!({"name": "short", "role": "user", "password": "123"})),
    );
    assert_eq!(code, 400);
    // user: reads and pops, changes nothing else.
    assert_eq!(s.call("GET", "/sensors", Some(&user), None).0, 200);
    assert_eq!(s.call("GET", "/queues", Some(&user), None).0, 200);
    let (code, v) = s.call("POST", "/queues", Some(&user), Some(json!({"type": "3"})));
    assert_eq!(code, 403);
    assert!(reason(&v).starts_with("Access Forbidden"));
    assert_eq!(s.call("GET", "/users", Some(&user), None).0, 403);
    let q = s
        .call("POST", "/queues", Some(&admin), Some(json!({"type": "3"})))
        .1["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.call("POST", &format!("/queues/{q}/pop"), Some(&user), None)
            .0,
        200
    );
    // sensor_register: only registration.
    assert_eq!(s.call("GET", "/sensors", Some(&reg), None).0, 403);
    assert_eq!(s.call("GET", "/metrics", Some(&reg), None).0, 403);
    let (code, v) = s.call(
        "POST",
        "/add/sensor/register",
        Some(&reg),
        Some(json!({"uuid": Uuid::new_v4().to_string(), "hmac_key": "k"})),
    );
    assert_eq!(code, 200, "{v}");
    // Role change, key reset, delete.
    let (code, _) = s.call(
        "POST",
        "/users/ana/role",
        Some(&admin),
        Some(json!({"role": "admin"})),
    );
    assert_eq!(code, 200);
    assert_eq!(
        s.call("POST", "/queues", Some(&user), Some(json!({"type": "3"})))
            .0,
        201
    );
    let (code, v) = s.call("POST", "/users/ana/api-key", Some(&admin), None);
    assert_eq!(code, 200);
    let new_key = v["api_key"].as_str().unwrap().to_string();
    assert_eq!(s.call("GET", "/sensors", Some(&user), None).0, 401);
    assert_eq!(s.call("GET", "/sensors", Some(&new_key), None).0, 200);
    let (code, users) = s.call("GET", "/users", Some(&admin), None);
    assert_eq!(code, 200);
    assert_eq!(users.as_array().unwrap().len(), 3);
    assert!(
        !users.to_string().contains("hash"),
        "no secret in listings: {users}"
    );
    assert_eq!(s.call("DELETE", "/users/ana", Some(&admin), None).0, 200);
    assert_eq!(s.call("GET", "/sensors", Some(&new_key), None).0, 401);
    assert_eq!(
        s.call("POST", "/users/ana/delete", Some(&admin), None).0,
        404
    );
    let (code, v) = s.call("POST", "/users/admin/delete", Some(&admin), None);
    assert_eq!(code, 400);
    assert!(reason(&v).contains("last admin"));
    // The local token of server.json is an admin credential (the CLI's).
    assert_eq!(s.call("GET", "/users", Some(&s.token), None).0, 200);
}

#[test]
fn reference_endpoints_shapes_and_codes() {
    let s = Server::start(&["--mode", "registration"]);
    let (_, admin) = s.admin_credentials();
    let reg = |body: Value| s.call("POST", "/add/sensor/register", Some(&admin), Some(body));
    let u = Uuid::new_v4();
    let (code, v) = reg(json!({"uuid": "not a uuid", "hmac_key": "k"}));
    assert_eq!((code, reason(&v)), (400, "Invalid uuid"));
    let v1 = "9a7c4b56-1c1f-1b74-9b0e-3c1f2a1b7e01";
    assert_eq!(reg(json!({"uuid": v1, "hmac_key": "k"})).0, 400);
    let (code, v) = reg(json!({"uuid": u.to_string()}));
    assert_eq!(
        (code, reason(&v)),
        (400, "Mandatory parameter(s) not provided")
    );
    let (code, v) = reg(
        json!({"uuid": u.to_string(), "hmac_key": "its own key", "mail": "ops@example.org", "third_party": true}),
    );
    assert_eq!(code, 200);
    assert_eq!(v, json!({"uuid": u.simple().to_string()}));
    let (code, v) = reg(json!({"uuid": u.to_string(), "hmac_key": "again"}));
    assert_eq!((code, reason(&v)), (409, "Sensor already registred"));
    let (code, v) = s.call("POST", "/add/sensor/register", Some(&admin), None);
    assert_eq!(code, 400, "{v}");
    let sensor = s.sensor(&u);
    assert_eq!(sensor["status"], "pending");
    assert_eq!(sensor["has_own_key"], false);
    assert!(!sensor.to_string().contains("its own key"));
    // Approval moves the registered key to the sensor (never shown).
    assert_eq!(
        s.call("POST", &format!("/sensors/{u}/approve"), Some(&admin), None)
            .0,
        200
    );
    let sensor = s.sensor(&u);
    assert_eq!(sensor["status"], "approved");
    assert_eq!(sensor["has_own_key"], true);
    assert!(!sensor.to_string().contains("its own key"));
    // Monitoring errors: a list of UUIDs silent past their delay.
    let (code, v) = s.call("GET", "/sensors/monitoring/errors", Some(&admin), None);
    assert_eq!((code, v), (200, json!([])));
    let (code, _) = s.call(
        "POST",
        &format!("/sensors/{u}/settings"),
        Some(&admin),
        Some(json!({"monitor_delay_secs": 1})),
    );
    assert_eq!(code, 200);
    let (code, v) = s.call("GET", "/sensors/monitoring/errors", Some(&admin), None);
    assert_eq!(code, 200);
    assert_eq!(v, json!([u.simple().to_string()]));
    assert_eq!(
        s.call("GET", "/sensors/monitoring/errors", None, None).0,
        401
    );
}

/// Every `$ref` of the document resolves.
fn refs_resolve(doc: &Value, v: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let ptr = r.strip_prefix('#').expect("local refs");
                assert!(doc.pointer(ptr).is_some(), "dangling $ref {r}");
            }
            m.values().for_each(|x| refs_resolve(doc, x));
        }
        Value::Array(a) => a.iter().for_each(|x| refs_resolve(doc, x)),
        _ => {}
    }
}

#[test]
fn every_endpoint_and_the_openapi_document() {
    let s = Server::start(&[]);
    let (_, k) = s.admin_credentials();
    let k = Some(k.as_str());
    // OpenAPI: served without a token, valid, every route documented.
    let (code, doc) = s.call("GET", "/openapi.json", None, None);
    assert_eq!(code, 200);
    let parsed: openapiv3::OpenAPI =
        serde_json::from_value(doc.clone()).expect("a valid OpenAPI 3 document");
    assert!(parsed.openapi.starts_with("3.0"));
    refs_resolve(&doc, &doc);
    let paths = doc["paths"].as_object().unwrap();
    for (p, m) in [
        ("/server", "get"),
        ("/queues", "get"),
        ("/queues", "post"),
        ("/queues/{uuid}", "get"),
        ("/queues/{uuid}", "delete"),
        ("/queues/{uuid}/pop", "post"),
        ("/queues/{uuid}/read", "post"),
        ("/queues/{uuid}/ack", "post"),
        ("/queues/{uuid}/peek", "get"),
        ("/queues/{uuid}/resize", "post"),
        ("/queues/{uuid}/empty", "post"),
        ("/sensors", "get"),
        ("/sensors/{uuid}", "get"),
        ("/sensors/{uuid}/{action}", "post"),
        ("/sensors/monitoring/errors", "get"),
        ("/blocklist", "get"),
        ("/blocklist/ip", "post"),
        ("/blocklist/ip/remove", "post"),
        ("/blocklist/uuid", "post"),
        ("/blocklist/uuid/remove", "post"),
        ("/types", "get"),
        ("/types", "post"),
        ("/users", "get"),
        ("/users", "post"),
        ("/users/{name}", "delete"),
        ("/users/{name}/{action}", "post"),
        ("/alerts", "get"),
        ("/rejections", "get"),
        ("/stats/daily", "get"),
        ("/add/sensor/register", "post"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(p).and_then(|x| x.get(m)).is_some(),
            "{m} {p} undocumented"
        );
    }

    // Server.
    let (code, v) = s.call("GET", "/server", k, None);
    assert_eq!((code, v["software"].as_str()), (200, Some("d4")));

    // Queues.
    let (code, v) = s.call(
        "POST",
        "/queues",
        k,
        Some(json!({"type": "3", "description": "lines", "max_size": 5})),
    );
    assert_eq!(code, 201);
    let q = v["uuid"].as_str().unwrap().to_string();
    let (code, v) = s.call("POST", "/queues", k, Some(json!({"type": "0"})));
    assert_eq!(code, 400);
    assert!(reason(&v).contains("reserved"));
    let (code, v) = s.call(
        "POST",
        "/queues",
        k,
        Some(json!({"type": "maltrail", "sensors": ["nope"]})),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(s.call("GET", &format!("/queues/{q}"), k, None).0, 200);
    assert_eq!(
        s.call("GET", &format!("/queues/{}", Uuid::new_v4()), k, None)
            .0,
        404
    );
    assert_eq!(s.call("GET", "/queues/zzz", k, None).0, 400);
    let sensor = Sensor::new(&s, 3);
    sensor.send(b"one\ntwo\nthree\n");
    s.wait_queue_len(&q, 3);
    let (code, v) = s.call("GET", &format!("/queues/{q}/peek?count=2"), k, None);
    assert_eq!((code, v), (200, json!(["one", "two"])));
    let (code, v) = s.call(
        "POST",
        &format!("/queues/{q}/resize"),
        k,
        Some(json!({"max_size": 2})),
    );
    assert_eq!((code, v["length"].as_u64()), (200, Some(2)));
    assert_eq!(
        s.call(
            "POST",
            &format!("/queues/{q}/resize"),
            k,
            Some(json!({"max_size": 0}))
        )
        .0,
        400
    );
    // Resized to 2: "one" was dropped. Pops are binary (u32 LE length, bytes).
    let pop = s.call("POST", &format!("/queues/{q}/pop?count=1"), k, None);
    assert_eq!(pop, (200, Value::String("\u{3}\0\0\0two".into())));
    let (code, v) = s.call("POST", &format!("/queues/{q}/empty"), k, None);
    assert_eq!((code, v["removed"].as_u64()), (200, Some(1)));
    sensor.send(b"four\n");
    s.wait_queue_len(&q, 1);
    let (code, v) = s.call("POST", &format!("/queues/{q}/empty"), k, None);
    assert_eq!((code, v["removed"].as_u64()), (200, Some(1)));
    assert_eq!(s.queue_len(&q), 0);

    // Sensors.
    let u = sensor.uuid;
    let (code, v) = s.call("GET", "/sensors", k, None);
    assert_eq!(code, 200);
    assert!(v.as_array().unwrap().iter().any(|x| x["uuid"] == json!(u)));
    assert_eq!(s.call("GET", "/sensors/zzz", k, None).0, 400);
    let act = |a: &str, body: Option<Value>| s.call("POST", &format!("/sensors/{u}/{a}"), k, body);
    let (code, v) = act(
        "settings",
        Some(
            json!({"name": "edge-1", "tags": ["lab", " paris "], "description": "<b>x</b>", "max_frame_size": 4096, "monitor_delay_secs": 600}),
        ),
    );
    assert_eq!(code, 200, "{v}");
    let v = s.sensor(&u);
    assert_eq!(v["settings"]["name"], "edge-1");
    assert_eq!(v["settings"]["tags"], json!(["lab", "paris"]));
    assert_eq!(
        v["settings"]["description"], "<b>x</b>",
        "stored as given, escaped when shown"
    );
    assert_eq!(v["settings"]["max_frame_size"], 4096);
    assert_eq!(act("key", Some(json!({"key": "secret key 1"}))).0, 200);
    assert_eq!(act("key", Some(json!({"key": ""}))).0, 400);
    assert!(!s.sensor(&u).to_string().contains("secret key 1"));
    assert_eq!(act("kick", None).1["status"], "ok");
    assert_eq!(act("block", None).0, 200);
    assert_eq!(s.sensor(&u)["status"], "blocked");
    assert_eq!(act("unblock", None).0, 200);
    let (code, v) = act("block-ips", None);
    assert_eq!(code, 200);
    assert_eq!(v["blocked"], json!(["127.0.0.1/32"]));
    assert_eq!(act("unblock", None).0, 200);
    assert_eq!(act("reject", None).0, 404);
    assert_eq!(act("revoke", None).0, 404);
    assert_eq!(act("approve", None).0, 200);
    assert_eq!(act("revoke", None).0, 200);
    assert_eq!(act("dance", None).0, 404);

    // Blocklists.
    let (code, v) = s.call("GET", "/blocklist", k, None);
    assert_eq!(code, 200);
    assert_eq!(v["ips"], json!(["127.0.0.1/32"]));
    assert_eq!(
        s.call(
            "POST",
            "/blocklist/ip/remove",
            k,
            Some(json!({"net": "127.0.0.1"}))
        )
        .0,
        200
    );
    let (code, v) = s.call(
        "POST",
        "/blocklist/ip",
        k,
        Some(json!({"net": "192.0.2.77/24"})),
    );
    assert_eq!((code, v["net"].as_str()), (200, Some("192.0.2.0/24")));
    assert_eq!(
        s.call("POST", "/blocklist/ip", k, Some(json!({"net": "nope"})))
            .0,
        400
    );
    assert_eq!(
        s.call(
            "POST",
            "/blocklist/ip/remove",
            k,
            Some(json!({"net": "192.0.2.0/24"}))
        )
        .0,
        200
    );
    assert_eq!(
        s.call(
            "POST",
            "/blocklist/ip/remove",
            k,
            Some(json!({"net": "192.0.2.0/24"}))
        )
        .0,
        404
    );
    let other = Uuid::new_v4();
    assert_eq!(
        s.call("POST", "/blocklist/uuid", k, Some(json!({"uuid": other})))
            .0,
        200
    );
    assert_eq!(
        s.call("GET", "/blocklist", k, None).1["uuids"],
        json!([other.simple().to_string()])
    );
    assert_eq!(
        s.call(
            "POST",
            "/blocklist/uuid/remove",
            k,
            Some(json!({"uuid": other}))
        )
        .0,
        200
    );
    assert_eq!(
        s.call(
            "POST",
            "/blocklist/uuid/remove",
            k,
            Some(json!({"uuid": other}))
        )
        .0,
        404
    );

    // Types.
    let (code, v) = s.call("GET", "/types", k, None);
    assert_eq!((code, v["types"].as_array().map(Vec::len)), (200, Some(9)));
    let (code, v) = s.call(
        "POST",
        "/types",
        k,
        Some(json!({"types": [1, 2, 254], "extended": ["maltrail"]})),
    );
    assert_eq!(code, 200);
    assert_eq!(v, json!({"types": [1, 2, 254], "extended": ["maltrail"]}));
    assert_eq!(
        s.call("POST", "/types", k, Some(json!({"types": [0]}))).0,
        400
    );
    assert_eq!(
        s.call(
            "POST",
            "/types",
            k,
            Some(json!({"types": [1], "extended": ["a b"]}))
        )
        .0,
        400
    );
    // Type 3 is now refused at ingest (a new sensor: the first one was kicked).
    let late = Sensor::new(&s, 3);
    let o = late.run(b"refused\n", &["--max-retries", "1"]);
    assert!(!o.status.success());
    s.wait_error(&late.uuid, "type 3 is not accepted");

    // Alerts, rejections, daily stats.
    assert_eq!(s.call("GET", "/alerts", k, None), (200, json!([])));
    let (code, v) = s.call("GET", "/rejections", k, None);
    assert_eq!(code, 200);
    assert!(v.to_string().contains("type 3 is not accepted"));
    let (code, v) = s.call("GET", "/stats/daily", k, None);
    assert_eq!(code, 200);
    assert!(v
        .as_object()
        .unwrap()
        .values()
        .any(|d| d["types"]["3"]["frames"].as_u64() > Some(0)));

    // Queue deletion.
    assert_eq!(s.call("DELETE", &format!("/queues/{q}"), k, None).0, 200);
    assert_eq!(s.call("DELETE", &format!("/queues/{q}"), k, None).0, 404);
}

/// Parses the Prometheus text format: (name, labels) → value.
fn parse_metrics(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            if line.starts_with("# TYPE") {
                let kind = line.split_whitespace().nth(3).unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("closed labels");
                for pair in l.split("\",") {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    assert!(v.starts_with('"'));
                }
                (n.to_string(), l.to_string())
            }
            None => (series.to_string(), String::new()),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name}"
        );
        out.insert((name, labels), value);
    }
    out
}

/// A tiny HTTP server that records POSTed bodies.
fn webhook_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    g.lock().unwrap().push(v);
                }
            }
            let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn monitoring_fires_alerts_and_webhook_and_metrics_parse() {
    let (url, got) = webhook_sink();
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!("monitor_interval_secs = 1\nqueue_stale_secs = 2\nwebhook_url = \"{url}\"\n"),
    )
    .unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let (_, k) = s.admin_credentials();
    let k = Some(k.as_str());
    let q = s
        .call(
            "POST",
            "/queues",
            k,
            Some(json!({"type": "3", "max_size": 2})),
        )
        .1["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let sensor = Sensor::new(&s, 3);
    sensor.send(b"a\nb\nc\n");
    s.wait_queue_len(&q, 2);
    // A monitored sensor that stops sending.
    s.call(
        "POST",
        &format!("/sensors/{}/settings", sensor.uuid),
        k,
        Some(json!({"monitor_delay_secs": 1})),
    );
    let kinds = wait_for("three alerts", Duration::from_secs(20), || {
        let v = s.call("GET", "/alerts", k, None).1;
        let kinds: Vec<String> = v
            .as_array()?
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_string())
            .collect();
        (kinds.len() == 3).then_some(kinds)
    });
    for kind in ["queue_full", "queue_stale", "sensor_silent"] {
        assert!(kinds.iter().any(|x| x == kind), "{kinds:?}");
    }
    wait_for("webhook deliveries", Duration::from_secs(20), || {
        let g = got.lock().unwrap();
        (g.iter().filter(|e| e["state"] == "fired").count() >= 3).then_some(())
    });
    {
        let g = got.lock().unwrap();
        let full = g
            .iter()
            .find(|e| e["alert"]["kind"] == "queue_full")
            .unwrap();
        assert_eq!(full["source"], "d4");
        assert_eq!(full["alert"]["subject"], json!(q));
    }
    let (_, silent) = s.call("GET", "/sensors/monitoring/errors", k, None);
    assert_eq!(silent, json!([sensor.uuid.simple().to_string()]));
    // Consuming the queue resolves both queue alerts, and says so.
    s.drain("3", &q, &[]);
    wait_for("resolved deliveries", Duration::from_secs(20), || {
        let g = got.lock().unwrap();
        (g.iter().filter(|e| e["state"] == "resolved").count() >= 2).then_some(())
    });

    // /metrics, parsed.
    let (code, text) = s.call("GET", "/metrics", k, None);
    assert_eq!(code, 200);
    let m = parse_metrics(text.as_str().unwrap());
    let get = |name: &str, labels: &str| m.get(&(name.to_string(), labels.to_string())).copied();
    assert!(get("d4_frames_total", "") >= Some(1.0));
    assert!(get("d4_bytes_total", "") >= Some(6.0));
    assert!(get("d4_type_bytes_total", "type=\"3\"") >= Some(6.0));
    assert_eq!(
        get(
            "d4_queue_dropped_total",
            &format!("queue=\"{q}\",type=\"3\"")
        ),
        Some(1.0)
    );
    assert_eq!(
        get("d4_queue_length", &format!("queue=\"{q}\",type=\"3\"")),
        Some(0.0)
    );
    assert!(get("d4_sessions", "").is_some());
    assert!(get("d4_alerts", "") >= Some(1.0));
    assert_eq!(get("d4_webhook_failures_total", ""), Some(0.0));
    // A rejection, counted by reason.
    sensor.set("key", "not the key");
    let _ = sensor.run(b"x\n", &["--max-retries", "1"]);
    s.wait_error(&sensor.uuid, "HMAC");
    let m = parse_metrics(s.call("GET", "/metrics", k, None).1.as_str().unwrap());
    assert!(m.get(&("d4_rejects_total".into(), "reason=\"bad_hmac\"".into())) >= Some(&1.0));
    assert_eq!(s.call("GET", "/metrics", None, None).0, 401);
}

#[test]
fn cli_queue_empty_and_sensor_reject() {
    let s = Server::start(&["--mode", "registration"]);
    let (_, k) = s.admin_credentials();
    let u = Uuid::new_v4();
    let (code, _) = s.call(
        "POST",
        "/add/sensor/register",
        Some(&k),
        Some(json!({"uuid": u.to_string(), "hmac_key": "k"})),
    );
    assert_eq!(code, 200);
    s.d4_ok(&["sensor", "reject", &u.to_string()]);
    assert_eq!(s.sensor(&u)["status"], "unknown");
    let o = s.d4(&["sensor", "reject", &u.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not pending"));
    let q = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 3);
    s.d4_ok(&["sensor", "approve", &sensor.uuid.to_string()]);
    sensor.send(b"a\nb\n");
    s.wait_queue_len(&q, 2);
    s.d4_ok(&["queue", "empty", &q]);
    assert_eq!(s.queue_len(&q), 0);
}

#[test]
fn a_user_account_sees_pages_but_cannot_change_anything() {
    let s = Server::start(&[]);
    let (_, k) = s.admin_credentials();
    let (code, _) = s.call(
        "POST",
        "/users",
        Some(&k),
        Some(json!({"name": "viewer", "role": "user", "password": "first password"})),
    );
    assert_eq!(code, 201);
    let mut b = Browser::new(&s);
    let (_, _, page) = b.get("/login");
    let t = csrf(&page);
    let (code, loc, ..) = b.post(
        "/login",
        &[
            ("csrf", &t),
            ("user", "viewer"),
            ("password", "first password"),
        ],
    );
    // Accounts made by an admin change their password first, too.
    assert_eq!((code, loc.as_str()), (303, "/password"));
    let (_, _, page) = b.get("/password");
    let t = csrf(&page);
    let (code, ..) = b.post(
        "/password",
        &[
            ("csrf", &t),
            ("current", "first password"),
            ("new", "second password"),
            ("confirm", "second password"),
        ],
    );
    assert_eq!(code, 303);
    assert!(
        s.data_dir().join("DEFAULT_PASSWORD").exists(),
        "only the admin's change removes it"
    );
    let (code, _, page) = b.get("/server");
    assert_eq!(code, 200);
    assert!(!page.contains("Create a queue"), "no forms for a user");
    let (code, _, body, _) = b.post("/server/create-queue", &[("csrf", &t), ("type", "3")]);
    assert_eq!(code, 403);
    assert!(body.contains("needs the admin role"), "{body}");
    let (code, _, page) = b.get("/users");
    assert_eq!(code, 403);
    assert!(page.contains("Only admins"));
    assert_eq!(s.call("GET", "/queues", Some(&k), None).1, json!([]));
}

#[test]
fn wrong_passwords_from_one_address_do_not_lock_the_operator_out() {
    let s = Server::start(&[]);
    let (pw, _) = s.admin_credentials();
    let mut attacker = Browser::from(&s, "127.0.0.2");
    let (_, _, page) = attacker.get("/login");
    let t = csrf(&page);
    let codes: Vec<u16> = (0..8)
        .map(|_| {
            attacker
                .post(
                    "/login",
                    &[("csrf", &t), ("user", "admin"), ("password", "not it")],
                )
                .0
        })
        .collect();
    assert_eq!(codes, [401, 401, 401, 401, 401, 429, 429, 429]);
    // The operator, from another address, at once.
    let mut operator = Browser::from(&s, "127.0.0.3");
    let (_, _, page) = operator.get("/login");
    let t2 = csrf(&page);
    let (code, loc, body, set) = operator.post(
        "/login",
        &[("csrf", &t2), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!(code, 303, "{body}");
    assert_eq!(loc, "/password");
    assert!(set.iter().any(|c| c.starts_with("d4_session=")));
    // The attacker's address is still refused, even with the password.
    let (code, _, body, _) = attacker.post(
        "/login",
        &[("csrf", &t), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!(code, 429, "{body}");
}

#[test]
fn parallel_wrong_logins_get_no_more_checks_than_the_limit() {
    let s = Server::start(&[]);
    let (pw, _) = s.admin_credentials();
    let mut b = Browser::new(&s);
    let (_, _, page) = b.get("/login");
    let t = csrf(&page);
    let cookies = b.cookie_header();
    let url = format!("{}/login", s.api);
    let start = Arc::new(std::sync::Barrier::new(30));
    let threads: Vec<_> = (0..30)
        .map(|_| {
            let (http, url, cookies, t) = (s.web_client(), url.clone(), cookies.clone(), t.clone());
            let start = start.clone();
            std::thread::spawn(move || {
                // Connected (TLS done) first, then all at once.
                assert_eq!(http.get(&url).send().unwrap().status().as_u16(), 200);
                start.wait();
                http.post(&url)
                    .header("cookie", cookies)
                    .form(&[
                        ("csrf", t.as_str()),
                        ("user", "admin"),
                        ("password", "not it"),
                    ])
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = codes.iter().filter(|&&c| c == 401).count();
    let refused = codes.iter().filter(|&&c| c == 429).count();
    assert_eq!(checked + refused, 30, "{codes:?}");
    assert!(checked <= 5, "{checked} passwords checked: {codes:?}");
    // Locked now, even with the right password.
    let (code, _, body, _) = b.post(
        "/login",
        &[("csrf", &t), ("user", "admin"), ("password", &pw)],
    );
    assert_eq!(code, 429, "{body}");
}

#[test]
fn a_half_sent_request_header_is_cut_off() {
    let s = Server::start(&[]);
    let mut c = crate::harness::Raw::connect_web(&s);
    let t = std::time::Instant::now();
    assert!(c.write(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "));
    assert!(c.closed_by_server(), "the connection stayed open");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "closed after {took:?}");
}

/// Logs `name` in with `password` in a new browser; 303 expected.
pub(crate) fn logged_in<'a>(s: &'a Server, name: &str, password: &str) -> Browser<'a> {
    let mut b = Browser::new(s);
    let (_, _, page) = b.get("/login");
    let t = csrf(&page);
    let (code, ..) = b.post(
        "/login",
        &[("csrf", &t), ("user", name), ("password", password)],
    );
    assert_eq!(code, 303, "login of {name}");
    b
}

#[test]
fn role_and_password_changes_end_sessions() {
    let s = Server::start(&[]);
    let (_, k) = s.admin_credentials();
    let (code, _) = s.call(
        "POST",
        "/users",
        Some(&k),
        Some(json!({"name": "ops", "role": "admin", "password": "first password"})),
    );
    assert_eq!(code, 201);
    let mut b = logged_in(&s, "ops", "first password");
    let (_, _, page) = b.get("/password");
    let t = csrf(&page);
    let mut other = logged_in(&s, "ops", "first password");
    let (code, loc, ..) = b.post(
        "/password",
        &[
            ("csrf", &t),
            ("current", "first password"),
            ("new", "second password"),
            ("confirm", "second password"),
        ],
    );
    assert_eq!((code, loc.as_str()), (303, "/"));
    // The other session ended with the old password; this one goes on.
    assert_eq!(other.get("/sensors").1, "/login");
    assert_eq!(b.get("/sensors").0, 200);
    // Demoted: the session opened as admin ends.
    let (code, _) = s.call(
        "POST",
        "/users/ops/role",
        Some(&k),
        Some(json!({"role": "user"})),
    );
    assert_eq!(code, 200);
    let (code, loc, _) = b.get("/users");
    assert_eq!((code, loc.as_str()), (303, "/login"));
}

#[test]
fn pending_registrations_are_bounded() {
    let s = Server::start(&["--mode", "registration"]);
    let (_, admin) = s.admin_credentials();
    let url = format!("{}/api/v1/add/sensor/register", s.api);
    // 1000 pending sensors (the limit), registered in parallel.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, admin) = (s.web_client(), url.clone(), admin.clone());
            std::thread::spawn(move || {
                for _ in 0..125 {
                    let r = http
                        .post(&url)
                        .header("Authorization", &admin)
                        .json(&json!({"uuid": Uuid::new_v4().to_string(), "hmac_key": "k"}))
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let reg = |u: Uuid| {
        s.call(
            "POST",
            "/add/sensor/register",
            Some(&admin),
            Some(json!({"uuid": u.to_string(), "hmac_key": "k", "mail": "m".repeat(100_000)})),
        )
    };
    let (code, v) = reg(Uuid::new_v4());
    assert_eq!(code, 429, "{v}");
    assert!(reason(&v).starts_with("Too many pending registrations"));
    // Room again once one is rejected.
    let pending: Vec<Value> = s.api_get("/sensors").as_array().unwrap().clone();
    let first = pending[0]["uuid"].as_str().unwrap().to_string();
    let (code, _) = s.call(
        "POST",
        &format!("/sensors/{first}/reject"),
        Some(&admin),
        None,
    );
    assert_eq!(code, 200);
    let u = Uuid::new_v4();
    assert_eq!(reg(u).0, 200);
    assert_eq!(s.sensor(&u)["status"], "pending");
}

#[test]
fn every_api_error_is_json() {
    let s = Server::start(&[]);
    let (_, admin) = s.admin_credentials();
    let send = |rb: reqwest::blocking::RequestBuilder| {
        let r = rb.header("Authorization", &admin).send().unwrap();
        let code = r.status().as_u16();
        let ct = header(&r, "content-type");
        let text = r.text().unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{code} {ct}: {text:?}"));
        assert_eq!(v["status"], "error", "{v}");
        assert!(!reason(&v).is_empty());
        (code, v)
    };
    let url = |p: &str| format!("{}/api/v1{p}", s.api);
    // Malformed JSON body.
    let (code, _) = send(
        s.http
            .post(url("/queues"))
            .header("content-type", "application/json")
            .body("{not json"),
    );
    assert_eq!(code, 400);
    // Well-formed, wrong shape.
    let (code, _) = send(s.http.post(url("/queues")).json(&json!({"nope": 1})));
    assert_eq!(
        code, 400,
        "a body of the wrong shape is a 400, as API.md says"
    );
    // Wrong content type.
    let (code, _) = send(
        s.http
            .post(url("/queues"))
            .header("content-type", "text/plain")
            .body("{}"),
    );
    assert_eq!(code, 415);
    // Bad query.
    let q = s.create_queue("3", &[]);
    let (code, _) = send(s.http.get(url(&format!("/queues/{q}/peek?count=abc"))));
    assert_eq!(code, 400);
    // No such endpoint, wrong method.
    let (code, v) = send(s.http.get(url("/nope")));
    assert_eq!(code, 404);
    assert!(reason(&v).contains("/nope"), "{v}");
    let (code, _) = send(s.http.delete(url("/server")));
    assert_eq!(code, 405);
    // Unknown endpoints still need a key.
    assert_eq!(s.call("GET", "/nope", None, None).0, 401);
}

#[test]
fn invalid_login_names_are_not_logged() {
    let s = Server::start(&[]);
    let mut b = Browser::new(&s);
    let (_, _, page) = b.get("/login");
    let t = csrf(&page);
    let name = format!("evil\n{}", "x".repeat(100_000));
    let (code, ..) = b.post(
        "/login",
        &[("csrf", &t), ("user", &name), ("password", "whatever")],
    );
    assert_eq!(code, 401);
    let (code, ..) = b.post(
        "/login",
        &[("csrf", &t), ("user", "nobody"), ("password", "whatever")],
    );
    assert_eq!(code, 401);
    let log = wait_for("the second failure logged", Duration::from_secs(5), || {
        let l = s.log();
        l.contains("\"nobody\"").then_some(l)
    });
    assert!(!log.contains("xxxxxxxxxx"), "the long name was logged");
    assert!(log.contains("an invalid user name (100005 bytes)"), "{log}");
}

#[test]
fn a_webhook_that_never_answers_does_not_stall_monitoring() {
    // Accepts connections and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hook/SECRET-PATH?token=SECRET",
        l.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            held.push(c);
        }
    });
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!("monitor_interval_secs = 1\nwebhook_url = \"{url}\"\n"),
    )
    .unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let (_, k) = s.admin_credentials();
    let k = Some(k.as_str());
    let q = s
        .call(
            "POST",
            "/queues",
            k,
            Some(json!({"type": "3", "max_size": 1})),
        )
        .1["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let sensor = Sensor::new(&s, 3);
    sensor.send(b"a\nb\n");
    s.wait_queue_len(&q, 1);
    wait_for("the queue_full alert", Duration::from_secs(10), || {
        let v = s.call("GET", "/alerts", k, None).1;
        (v.as_array()?.len() == 1).then_some(())
    });
    // Its delivery hangs (10 s); the checks go on meanwhile.
    s.drain("3", &q, &[]);
    wait_for("the alert resolved", Duration::from_secs(5), || {
        let v = s.call("GET", "/alerts", k, None).1;
        v.as_array()?.is_empty().then_some(())
    });
    let log = wait_for(
        "the failed delivery logged",
        Duration::from_secs(20),
        || {
            let l = s.log();
            l.contains("webhook to 127.0.0.1: cannot deliver")
                .then_some(l)
        },
    );
    assert!(!log.contains("SECRET"), "the webhook URL was logged");
}
