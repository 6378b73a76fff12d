//! The web UI in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) by a small JSON client. Prints "skipped" and passes when
//! Chromium or chromedriver is not installed (`ci.sh` installs both).
//!
//! Screenshots of every page go to `target/tmp/screenshots/` (one of each is
//! committed under `docs/screenshots/`).

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::{wait_for, Sensor, Server, D4, KEY};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A chromedriver process and one browser session.
pub(crate) struct Browser {
    driver: Child,
    http: reqwest::blocking::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    web: String,
}

impl Browser {
    pub(crate) fn start(web: &str) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            find_program(&["chromium", "chromium-browser", "google-chrome"]),
            find_program(&["chromedriver"]),
        ) else {
            eprintln!("skipped: chromium or chromedriver not installed (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver", Duration::from_secs(20), || {
            let v: Value = http
                .get(format!("{base}/status"))
                .send()
                .ok()?
                .json()
                .ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The server's certificate comes from its own CA: trusted here only.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.path().display()),
                         "--window-size=1400,1300", "--hide-scrollbars"]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            driver,
            http,
            base,
            session,
            _profile: profile,
            shots,
            web: web.to_string(),
        })
    }

    pub(crate) fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let rb = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let v: Value = rb.send().unwrap().json().unwrap();
        if let Some(e) = v["value"]["error"].as_str() {
            panic!("WebDriver {method} {path}: {e}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    pub(crate) fn go(&self, path: &str) {
        self.cmd(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.web)})),
        );
    }

    pub(crate) fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    pub(crate) fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    pub(crate) fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    pub(crate) fn has(&self, css: &str) -> bool {
        let url = format!("{}/session/{}/elements", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["value"].as_array().is_some_and(|a| !a.is_empty())
    }

    pub(crate) fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), None);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    pub(crate) fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), None);
    }

    pub(crate) fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub(crate) fn attr(&self, css: &str, name: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/attribute/{name}"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub(crate) fn shot(&self, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A sensor that keeps sending lines until dropped.
pub(crate) struct Streaming {
    child: Child,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    feeder: Option<std::thread::JoinHandle<()>>,
}

impl Streaming {
    pub(crate) fn start(sensor: &Sensor) -> Streaming {
        let mut child = Command::new(D4)
            .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let feeder = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                let line = format!("line {i} {}\n", "x".repeat(2000));
                if stdin.write_all(line.as_bytes()).is_err() {
                    return;
                }
                let _ = stdin.flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Streaming {
            child,
            stop,
            feeder: Some(feeder),
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_page(b: &Browser, what: &str, f: impl Fn(&Browser) -> bool) {
    wait_for(what, Duration::from_secs(30), || f(b).then_some(()));
}

#[test]
fn operator_walkthrough_in_headless_chromium() {
    let s = Server::start(&["--mode", "registration"]);
    let (password, admin_key) = s.admin_credentials();
    let Some(b) = Browser::start(&s.api) else {
        return;
    };

    // 1. First login with DEFAULT_PASSWORD, then the forced password change.
    b.go("/");
    wait_page(&b, "the login page", |b| b.url().ends_with("/login"));
    b.shot("01-login");
    b.type_in("#user", "admin");
    b.type_in("#password", &password);
    b.click("#login");
    wait_page(&b, "the forced password change", |b| {
        b.url().ends_with("/password")
    });
    assert!(b.source().contains("first login"));
    b.shot("02-password");
    b.type_in("#current", &password);
    b.type_in("#new", "correct horse battery staple");
    b.type_in("#confirm", "correct horse battery staple");
    b.click("#change");
    wait_page(&b, "the dashboard", |b| b.has("#connected-count"));
    assert!(b.text("#flash").contains("Password changed"));
    assert!(!s.data_dir().join("DEFAULT_PASSWORD").exists());

    // 2. Create a queue.
    b.go("/server");
    b.type_in("#queue-type", "3");
    b.type_in("#queue-description", "from the browser");
    b.click("#queue-create");
    wait_page(&b, "the queue created", |b| {
        b.has("#flash") && b.text("#flash").contains("created")
    });
    let queues = s.call("GET", "/queues", Some(&admin_key), None).1;
    assert_eq!(queues[0]["description"], "from the browser");
    let q = queues[0]["uuid"].as_str().unwrap().to_string();
    assert!(b.text("#queues").contains(&q));

    // 3. Approve a sensor registered through the API.
    let sensor = Sensor::new(&s, 3);
    let (code, v) = s.call(
        "POST",
        "/add/sensor/register",
        Some(&admin_key),
        Some(json!({"uuid": sensor.uuid.to_string(), "hmac_key": KEY, "mail": "ops@example.org"})),
    );
    assert_eq!(code, 200, "{v}");
    b.go("/registrations");
    let button = format!("#approve-{}", sensor.uuid.simple());
    assert!(b.text("#pending").contains("ops@example.org"));
    b.shot("03-registrations");
    b.click(&button);
    wait_page(&b, "the sensor approved", |b| {
        b.has("#flash") && b.text("#flash").contains("approved")
    });
    assert_eq!(s.sensor(&sensor.uuid)["status"], "approved");
    assert!(b
        .text("#approved")
        .contains(&sensor.uuid.simple().to_string()));

    // 4. Block an IP range.
    b.go("/server");
    b.type_in("#block-net", "198.51.100.7/24");
    b.click("#block-ip");
    wait_page(&b, "the confirmation step", |b| b.has("#confirm"));
    b.click("#confirm");
    wait_page(&b, "the range blocked", |b| {
        b.has("#flash") && b.text("#flash").contains("blocked")
    });
    assert!(b.text("#ip-blocklist").contains("198.51.100.0/24"));
    let bl = s.call("GET", "/blocklist", Some(&admin_key), None).1;
    assert_eq!(bl["ips"], json!(["198.51.100.0/24"]));
    b.shot("04-server");

    // 5. A streaming sensor appears as connected, with a growing chart.
    let _stream = Streaming::start(&sensor);
    let page = format!("/sensors/{}", sensor.uuid.simple());
    wait_page(&b, "the sensor connected", |b| {
        b.go(&page);
        b.text("#state") == "connected"
    });
    let total = |b: &Browser| -> u64 {
        b.go(&page);
        b.attr("#sensor-bytes", "data-total").parse().unwrap()
    };
    let first = wait_for("some bytes charted", Duration::from_secs(30), || {
        Some(total(&b)).filter(|t| *t > 0)
    });
    let later = wait_for("the chart growing", Duration::from_secs(30), || {
        Some(total(&b)).filter(|t| *t > first)
    });
    assert!(later > first);
    b.shot("05-sensor");
    b.go("/sensors?show=connected");
    assert!(b
        .text("#sensors")
        .contains(&sensor.uuid.simple().to_string()));
    b.shot("06-sensors");
    b.go("/");
    wait_page(&b, "the dashboard counting it", |b| {
        b.go("/");
        b.text("#connected-count") == "1"
    });
    b.shot("07-dashboard");
    b.go("/users");
    b.shot("08-users");
    b.go("/api");
    assert!(b.text("#endpoints").contains("/add/sensor/register"));
    b.shot("09-api");
    // The queue receives the stream's lines.
    s.wait_queue_len(&q, 1);
}
