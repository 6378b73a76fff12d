//! Test harness: the real `d4` binary as server, sensor and consumer, on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

pub use crate::captures::{backscatter_capture, stored};

pub const D4: &str = env!("CARGO_BIN_EXE_d4");
pub const KEY: &str = "private key to change";

/// `../shared` next to the repository, if present.
pub fn shared() -> Option<PathBuf> {
    d4_packet::testdata::shared("data/pcap")
}

/// A running `d4 server` in a temporary data dir.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub ingest: SocketAddr,
    pub api: String,
    pub token: String,
    pub http: reqwest::blocking::Client,
    /// The battery on the Redis backend (`D4_TEST_STORE=redis`): this server's Redis.
    redis: Option<RedisServer>,
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Server {
    /// Starts a server (shared-secret mode unless `extra` says otherwise).
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::start_under(&[], dir, extra, &[])
    }

    /// As [`Server::start_in`], with environment variables for the server.
    pub fn start_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_under(&[], dir, extra, env)
    }

    /// Starts a server through a wrapper that ends with `exec "$0" "$@"`
    /// or the like (`sh -c 'ulimit -Sn 1024 && exec "$0" "$@"'`).
    pub fn start_wrapped(wrap: &[&str], extra: &[&str]) -> Server {
        Server::start_under(wrap, tempfile::tempdir().unwrap(), extra, &[])
    }

    fn start_under(
        wrap: &[&str],
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let control = dir.path().join("data/server.json");
        let _ = std::fs::remove_file(&control);
        let mut all: Vec<String> = vec![
            "server".into(),
            "--data-dir".into(),
            dir.path().join("data").to_str().unwrap().into(),
        ];
        for (flag, default) in [
            ("--listen", "127.0.0.1:0"),
            ("--web", "127.0.0.1:0"),
            ("--mode", "shared-secret"),
        ] {
            if !extra.contains(&flag) {
                all.extend([flag.to_string(), default.to_string()]);
            }
        }
        all.extend(extra.iter().map(|s| s.to_string()));
        // D4_TEST_STORE=redis runs the same tests on the Redis backend: each
        // server gets its own redis-server, whose data lives in the server's
        // directory (saved on shutdown, so restart tests find it again).
        let mut redis = None;
        if std::env::var("D4_TEST_STORE").as_deref() == Ok("redis") && !extra.contains(&"--store") {
            let r = RedisServer::start_at(dir.path().join("redis"))
                .expect("D4_TEST_STORE=redis needs redis-server");
            all.extend(["--store".to_string(), r.url(0)]);
            redis = Some(r);
        }
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = match wrap.split_first() {
            Some((w, args)) => {
                let mut c = Command::new(w);
                c.args(args).arg(D4);
                c
            }
            None => Command::new(D4),
        };
        let child = cmd
            .args(&all)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let c: Value = wait_for("server.json", Duration::from_secs(20), || {
            let b = std::fs::read(&control).ok()?;
            serde_json::from_slice(&b).ok()
        });
        let pem = std::fs::read(dir.path().join("data/tls/ca.crt")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        Server {
            ingest: c["ingest"].as_str().unwrap().parse().unwrap(),
            api: c["api"].as_str().unwrap().to_string(),
            token: c["token"].as_str().unwrap().to_string(),
            dir,
            child,
            http,
            redis,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Today's folder of a sensor's stored files of type `ty` (local time).
    pub fn day_dir(&self, sensor: &Uuid, ty: &str) -> PathBuf {
        let day = chrono::Local::now().format("%Y/%m/%d").to_string();
        self.data_dir()
            .join("data")
            .join(sensor.simple().to_string())
            .join(ty)
            .join(day)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs `d4 ARGS` against this server (management commands).
    pub fn d4(&self, args: &[&str]) -> Output {
        Command::new(D4)
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .unwrap()
    }

    /// Runs `d4 ARGS`, demands success, returns stdout.
    pub fn d4_ok(&self, args: &[&str]) -> Vec<u8> {
        let o = self.d4(args);
        assert!(
            o.status.success(),
            "d4 {args:?} failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        o.stdout
    }

    pub fn create_queue(&self, ty: &str, extra: &[&str]) -> String {
        let mut a = vec!["queue", "create", "-t", ty];
        a.extend_from_slice(extra);
        let out = String::from_utf8(self.d4_ok(&a)).unwrap();
        let q = out.trim().to_string();
        Uuid::parse_str(&q).expect("queue create prints a UUID alone");
        q
    }

    /// A GET with the local token.
    fn authed_get(&self, url: String) -> reqwest::blocking::Response {
        self.http
            .get(url)
            .header("Authorization", &self.token)
            .send()
            .unwrap()
    }

    pub fn api_get(&self, path: &str) -> Value {
        self.authed_get(format!("{}/api/v1{path}", self.api))
            .json()
            .unwrap()
    }

    /// The first admin's password and API key, from DEFAULT_PASSWORD.
    pub fn admin_credentials(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.data_dir().join("DEFAULT_PASSWORD"))
            .expect("DEFAULT_PASSWORD written on first start");
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in DEFAULT_PASSWORD"))
                .trim()
                .to_string()
        };
        (field("password:"), field("api_key:"))
    }

    /// An HTTPS client that trusts the server's CA and does not follow redirects.
    pub fn web_client(&self) -> reqwest::blocking::Client {
        let pem = std::fs::read(self.data_dir().join("tls/ca.crt")).unwrap();
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        self.authed_get(format!("{}/metrics", self.api))
            .text()
            .unwrap()
    }

    /// An API call with a token (or none): status and JSON body (Null if not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = if path.starts_with("/metrics") {
            format!("{}{path}", self.api)
        } else {
            format!("{}/api/v1{path}", self.api)
        };
        let mut rb = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn queue_len(&self, q: &str) -> u64 {
        self.api_get(&format!("/queues/{q}"))["length"]
            .as_u64()
            .unwrap()
    }

    pub fn wait_queue_len(&self, q: &str, n: u64) {
        wait_for(
            &format!("{n} items in queue {q}"),
            Duration::from_secs(30),
            || (self.queue_len(q) >= n).then_some(()),
        );
    }

    pub fn sensor(&self, u: &Uuid) -> Value {
        self.api_get(&format!("/sensors/{u}"))
    }

    /// Waits until the sensor's last error contains `needle`.
    pub fn wait_error(&self, u: &Uuid, needle: &str) -> String {
        wait_for(
            &format!("error {needle:?} for {u}"),
            Duration::from_secs(20),
            || {
                let r = self.sensor(u)["last_error"]["reason"].as_str()?.to_string();
                r.contains(needle).then_some(r)
            },
        )
    }

    /// Pops everything now in a queue with `d4 stdout --once`.
    pub fn drain(&self, ty: &str, q: &str, flags: &[&str]) -> Vec<u8> {
        let mut a = vec!["stdout", "-t", ty, "-u", q, "--once"];
        a.extend_from_slice(flags);
        self.d4_ok(&a)
    }

    /// SIGKILL: the server has no chance to finish anything (its Redis, in
    /// the battery on that backend, keeps its data). Returns the directory.
    pub fn crash(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.redis.take());
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn stop(mut self) -> tempfile::TempDir {
        unsafe_kill_term(self.child.id());
        let _ = wait_child(&mut self.child, Duration::from_secs(30));
        drop(self.redis.take()); // saved in the directory for a restart
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

fn wait_child(c: &mut Child, t: Duration) -> bool {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    false
}

/// SIGTERM to a child `d4` command, then its exit status and stderr
/// (it must stop within 20 s).
pub fn terminate(mut c: Child) -> (bool, String) {
    unsafe_kill_term(c.id());
    let end = Instant::now() + Duration::from_secs(20);
    while c.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "the command did not end after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = c.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn unsafe_kill_term(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sensor configuration directory (reference layout).
pub struct Sensor {
    pub dir: tempfile::TempDir,
    pub uuid: Uuid,
}

impl Sensor {
    pub fn new(server: &Server, ty: u8) -> Sensor {
        let dir = tempfile::tempdir().unwrap();
        let uuid = Uuid::new_v4();
        let p = dir.path();
        std::fs::write(p.join("uuid"), format!("{uuid}\n")).unwrap();
        std::fs::write(p.join("key"), format!("{KEY}\n")).unwrap();
        std::fs::write(p.join("type"), format!("{ty}\n")).unwrap();
        std::fs::write(p.join("destination"), format!("{}\n", server.ingest)).unwrap();
        std::fs::write(p.join("source"), "stdin\n").unwrap();
        std::fs::copy(server.data_dir().join("tls/ca.crt"), p.join("rootCA.crt")).unwrap();
        Sensor { dir, uuid }
    }

    pub fn set(&self, name: &str, value: &str) {
        std::fs::write(self.dir.path().join(name), value).unwrap();
    }

    /// `d4 client -c DIR` with `input` on stdin; demands success.
    pub fn send(&self, input: &[u8]) {
        let o = self.run(input, &[]);
        assert!(
            o.status.success(),
            "d4 client failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn run(&self, input: &[u8], extra: &[&str]) -> Output {
        let retries: &[&str] = if extra.contains(&"--max-retries") {
            &[]
        } else {
            &["--max-retries", "3"]
        };
        let mut c = Command::new(D4)
            .args(["client", "-c", self.dir.path().to_str().unwrap()])
            .args(retries)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let data = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let o = c.wait_with_output().unwrap();
        w.join().unwrap();
        o
    }

    pub fn send_file(&self, path: &Path) {
        let o = Command::new(D4)
            .args([
                "client",
                "-c",
                self.dir.path().to_str().unwrap(),
                "--max-retries",
                "3",
                "--file",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "d4 client failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Frames crafted by hand, for the bad-input tests.
pub fn frame(uuid: Uuid, ty: u8, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let enc = d4_proto::FrameEncoder::new(d4_proto::Signer::new(key), 1, ty, uuid);
    let mut v = Vec::new();
    enc.encode_into(1_704_067_200, payload, &mut v);
    v
}

/// A raw TLS connection to the server, optionally from a given loopback source address.
pub struct Raw {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Raw {
    pub fn connect(server: &Server, from: Option<&str>) -> Raw {
        let tcp = match from {
            None => TcpStream::connect(server.ingest).unwrap(),
            Some(src) => {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .unwrap();
                let bind: SocketAddr = format!("{src}:0").parse().unwrap();
                s.bind(&bind.into()).unwrap();
                s.connect(&server.ingest.into()).unwrap();
                s.into()
            }
        };
        Raw::over(server, tcp)
    }

    /// A raw TLS connection to the server's HTTPS (web UI and API) address.
    pub fn connect_web(server: &Server) -> Raw {
        let addr = server.api.trim_start_matches("https://");
        Raw::over(server, TcpStream::connect(addr).unwrap())
    }

    fn over(server: &Server, tcp: TcpStream) -> Raw {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in d4_client::transport::load_certs(&server.data_dir().join("tls/ca.crt")).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(cfg), "127.0.0.1".try_into().unwrap()).unwrap();
        Raw {
            tls: rustls::StreamOwned::new(conn, tcp),
        }
    }

    /// Writes bytes; false if the server already closed.
    pub fn write(&mut self, b: &[u8]) -> bool {
        self.tls.write_all(b).is_ok() && self.tls.flush().is_ok()
    }

    /// Waits until the server closes the connection; true if it did.
    pub fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.tls.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Ends our side cleanly.
    pub fn close(mut self) {
        self.tls.conn.send_close_notify();
        let _ = self.tls.flush();
        let _ = self.closed_by_server();
    }
}

/// A pcap capture built by hand: `n` Ethernet/IPv4/UDP packets.
pub fn synthetic_pcap(n: usize) -> Vec<u8> {
    let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        let payload_len = 20 + (i * 37) % 1400;
        let mut pkt = vec![0u8; 14 + 20 + 8 + payload_len];
        pkt[12] = 0x08; // IPv4
        pkt[14] = 0x45;
        let total = (20 + 8 + payload_len) as u16;
        pkt[16..18].copy_from_slice(&total.to_be_bytes());
        pkt[22] = 64;
        pkt[23] = 17;
        pkt[26..30].copy_from_slice(&[192, 0, 2, (i % 250) as u8]);
        pkt[30..34].copy_from_slice(&[198, 51, 100, 1]);
        pkt[34..36].copy_from_slice(&(1024 + i as u16).to_be_bytes());
        pkt[36..38].copy_from_slice(&53u16.to_be_bytes());
        for (j, b) in pkt[42..].iter_mut().enumerate() {
            *b = (i + j) as u8;
        }
        v.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        v.extend_from_slice(&((i * 1000) as u32).to_le_bytes());
        v.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        v.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        v.extend_from_slice(&pkt);
    }
    v
}

/// The packets (timestamp, data) of a pcap file, read with pcap-parser.
pub fn packets(pcap: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    use pcap_parser::traits::PcapReaderIterator;
    let mut r = pcap_parser::LegacyPcapReader::new(65536, pcap).unwrap();
    let mut out = Vec::new();
    loop {
        match r.next() {
            Ok((off, block)) => {
                if let pcap_parser::PcapBlockOwned::Legacy(b) = block {
                    out.push((b.ts_sec, b.ts_usec, b.data.to_vec()));
                }
                r.consume(off);
            }
            Err(pcap_parser::PcapError::Eof) => break,
            Err(pcap_parser::PcapError::Incomplete(_)) => {
                r.refill().unwrap();
            }
            Err(e) => panic!("bad pcap: {e:?}"),
        }
    }
    out
}

/// Ones'-complement sum over `b`, folded (0 when a checksum inside `b` is right).
pub fn ones_sum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Checks the IPv4 header and UDP checksums of an Ethernet/IPv4/UDP frame,
/// computed from scratch.
pub fn checksums_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 15) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let udp = &ip[ihl..total];
    let mut pseudo = ip[12..20].to_vec();
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(udp);
    ones_sum(&ip[..ihl]) == 0 && (udp[6..8] == [0, 0] || ones_sum(&pseudo) == 0)
}

/// A capture with its IPv4 and UDP checksums computed (synthetic_pcap leaves them at zero).
pub fn with_udp_checksums(mut cap: Vec<u8>) -> Vec<u8> {
    // synthetic_pcap leaves checksums at zero: fill them in, from scratch.
    let mut off = 24;
    while off + 16 <= cap.len() {
        let len = u32::from_le_bytes(cap[off + 8..off + 12].try_into().unwrap()) as usize;
        let f = &mut cap[off + 16..off + 16 + len];
        let ip = 14;
        let c = ones_sum(&f[ip..ip + 20]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        let total = usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]));
        let udp_len = (total - 20) as u16;
        f[ip + 24..ip + 26].copy_from_slice(&udp_len.to_be_bytes());
        let mut pseudo = f[ip + 12..ip + 20].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&udp_len.to_be_bytes());
        pseudo.extend_from_slice(&f[ip + 20..ip + total]);
        let c = ones_sum(&pseudo);
        f[ip + 26..ip + 28].copy_from_slice(&c.to_be_bytes());
        off += 16 + len;
    }
    cap
}

/// A real redis-server on a free loopback port, stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// TLS only, client certificates required, and a password
    /// (`start_tls`): the CA, certificate and key are in `path/tls`.
    secure: bool,
}

/// The password of `RedisServer::start_tls`.
pub const REDIS_PASSWORD: &str = "s3cret-redis-pw";

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self._dir.is_none() {
            // Data that outlives this process handle: save it.
            self.cli(0, &["SHUTDOWN", "SAVE"]);
            if wait_child(&mut self.child, Duration::from_secs(10)) {
                return;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// A fresh redis-server, or None (test skipped) when it is not installed.
    pub fn start() -> Option<RedisServer> {
        Self::fresh(false)
    }

    /// A fresh redis-server that speaks TLS only (no plain port), requires a
    /// client certificate signed by its CA and the password
    /// `REDIS_PASSWORD`; the PEM files are in `self.tls_dir()`.
    pub fn start_tls() -> Option<RedisServer> {
        Self::fresh(true)
    }

    fn fresh(secure: bool) -> Option<RedisServer> {
        if !Self::installed() {
            eprintln!("skipped: redis-server not installed (ci.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        if secure {
            d4_server::ensure_tls_material(&path.join("tls")).unwrap();
        }
        Some(Self::launch(path, Some(dir), secure))
    }

    /// `ca.crt`, `server.crt` and `server.key` of a `start_tls` server (the
    /// certificate serves as the client's too).
    pub fn tls_dir(&self) -> PathBuf {
        self.path.join("tls")
    }

    /// A redis-server keeping its data in `path` (loaded if saved there before).
    pub fn start_at(path: PathBuf) -> Option<RedisServer> {
        if !Self::installed() {
            return None;
        }
        std::fs::create_dir_all(&path).unwrap();
        Some(Self::launch(path, None, false))
    }

    fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok()
    }

    fn launch(path: PathBuf, dir: Option<tempfile::TempDir>, secure: bool) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = RedisServer {
            child: Self::spawn(port, &path, secure),
            port,
            path,
            _dir: dir,
            secure,
        };
        r.wait_up();
        r
    }

    fn spawn(port: u16, dir: &Path, secure: bool) -> Child {
        let mut c = Command::new("redis-server");
        if secure {
            let t = dir.join("tls");
            c.args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(t.join("server.crt"))
                .arg("--tls-key-file")
                .arg(t.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(t.join("ca.crt"))
                .args(["--tls-auth-clients", "yes"])
                .args(["--requirepass", REDIS_PASSWORD]);
        } else {
            c.args(["--port", &port.to_string()]);
        }
        c.args(["--bind", "127.0.0.1", "--enable-debug-command", "local"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_up(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        while self.cli(0, &["PING"]) != "PONG" {
            assert!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops Redis, saving its data (an outage, not a loss of Redis's own data).
    pub fn stop(&mut self) {
        self.cli(0, &["SHUTDOWN", "SAVE"]);
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the saved data.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.path, self.secure);
        self.wait_up();
    }

    pub fn url(&self, db: u8) -> String {
        if self.secure {
            format!("rediss://:{REDIS_PASSWORD}@127.0.0.1:{}/{db}", self.port)
        } else {
            format!("redis://127.0.0.1:{}/{db}", self.port)
        }
    }

    /// `redis-cli -n DB ARGS`, as a reference tool would run it.
    pub fn cli(&self, db: u8, args: &[&str]) -> String {
        let mut c = Command::new("redis-cli");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-n",
            &db.to_string(),
        ]);
        if self.secure {
            let t = self.tls_dir();
            c.arg("--tls")
                .arg("--cacert")
                .arg(t.join("ca.crt"))
                .arg("--cert")
                .arg(t.join("server.crt"))
                .arg("--key")
                .arg(t.join("server.key"))
                .args(["-a", REDIS_PASSWORD, "--no-auth-warning"]);
        }
        let o = c.args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub async fn queues(&self) -> d4_server::RedisQueues {
        // The reference layout: metadata in DB 0, queue lists in DB 2.
        let target = |db| d4_server::RedisTarget::parse("test", &self.url(db)).unwrap();
        d4_server::RedisQueues::connect(&target(0), &target(2), 10_000, false)
            .await
            .unwrap()
    }
}

/// A TCP relay to a server that stalls (stops reading from its client)
/// once `stall_after` bytes went through, until released: a server that
/// stopped reading, as the sensor sees it.
pub struct StallingRelay {
    pub addr: SocketAddr,
    forwarded: Arc<std::sync::atomic::AtomicU64>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl StallingRelay {
    pub fn start(to: SocketAddr, stall_after: u64) -> StallingRelay {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let forwarded = Arc::new(AtomicU64::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let (f, r) = (forwarded.clone(), released.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let Ok(mut up) = TcpStream::connect(to) else {
                    continue;
                };
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (f, r) = (f.clone(), r.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        while f.load(Ordering::SeqCst) >= stall_after && !r.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        let n = match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if up.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        f.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    let _ = up.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        StallingRelay {
            addr,
            forwarded,
            released,
        }
    }

    /// Bytes passed on to the server.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The server reads again.
    pub fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Server {
    /// A client of the web port like [`Server::web_client`] whose
    /// connections come from `local` (a loopback address such as
    /// 127.0.0.2), to act as several peers.
    pub fn web_client_from(&self, local: &str) -> reqwest::blocking::Client {
        let pem = std::fs::read(self.data_dir().join("tls/ca.crt")).unwrap();
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    }
}
