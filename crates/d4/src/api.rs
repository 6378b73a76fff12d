//! The management API client: finds the local server through
//! `<data-dir>/server.json`, or uses `--server URL --token TOKEN [--ca FILE]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

/// How to reach the server (flags shared by management commands).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Conn {
    /// Data directory of the local server (its server.json gives address and token).
    #[arg(long, env = "D4_DATA_DIR", default_value = "d4-data", global = true)]
    pub(crate) data_dir: PathBuf,
    /// Management API URL (instead of the data dir), e.g. https://d4.example.org:7000.
    #[arg(long, env = "D4_SERVER", global = true)]
    pub(crate) server: Option<String>,
    /// API key (with --server): an account's key (DEFAULT_PASSWORD, the web UI's Users page).
    #[arg(long, env = "D4_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// CA certificate of the server (with --server; default: the data dir's tls/ca.crt).
    #[arg(long, global = true)]
    pub(crate) ca: Option<PathBuf>,
}

/// A connected API client.
pub(crate) struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    /// Resolves where the server is and how to authenticate.
    pub(crate) fn connect(c: &Conn) -> Result<Api> {
        let control_path = c.data_dir.join(d4_server::CONTROL_FILE);
        let control: Option<d4_server::ControlFile> = match std::fs::read(&control_path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("{} is corrupt", control_path.display()))?,
            ),
            Err(_) => None,
        };
        let (base, token, ca) = match (&c.server, &control) {
            (Some(url), _) => {
                let token = c
                    .token
                    .clone()
                    .or_else(|| control.as_ref().map(|k| k.token.clone()))
                    .ok_or_else(|| anyhow!("--server needs --token (or D4_TOKEN)"))?;
                let ca = c.ca.clone().or_else(|| control.as_ref().map(|k| k.ca.clone()));
                (url.trim_end_matches('/').to_string(), token, ca)
            }
            (None, Some(k)) => (k.api.clone(), c.token.clone().unwrap_or(k.token.clone()), Some(c.ca.clone().unwrap_or(k.ca.clone()))),
            (None, None) => bail!(
                "no server found: {} does not exist. Run this from the server's working directory, or give --data-dir DIR, or --server URL --token TOKEN",
                control_path.display()
            ),
        };
        let mut b = Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca)
                .with_context(|| format!("cannot read the CA certificate {}", ca.display()))?;
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", ca.display()))?,
            );
        }
        Ok(Api {
            http: b.build()?,
            base,
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let r = rb
            .header("Authorization", &self.token)
            .send()
            .with_context(|| {
                format!(
                    "cannot reach the d4 server at {} (is it running?)",
                    self.base
                )
            })?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let body: Value = r.json().unwrap_or(Value::Null);
        let reason = body["reason"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        bail!("{reason} (HTTP {status})")
    }

    /// GET returning JSON.
    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        Ok(self.send(self.http.get(self.url(path)))?.json()?)
    }

    /// POST a JSON body, returning JSON.
    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value> {
        Ok(self
            .send(self.http.post(self.url(path)).json(body))?
            .json()?)
    }

    /// DELETE returning JSON.
    pub(crate) fn delete(&self, path: &str) -> Result<Value> {
        Ok(self.send(self.http.delete(self.url(path)))?.json()?)
    }

    /// Pops up to `n` items of a queue.
    pub(crate) fn pop(&self, queue: &str, n: usize) -> Result<Vec<Vec<u8>>> {
        let r = self.send(
            self.http
                .post(self.url(&format!("/queues/{queue}/pop?count={n}"))),
        )?;
        parse_items(&r.bytes()?)
    }

    /// Reads up to `n` items of a queue without removing them: the number of
    /// the first, and the items. [`Api::ack`] removes them once processed.
    pub(crate) fn read(&self, queue: &str, n: usize) -> Result<(u64, Vec<Vec<u8>>)> {
        let r = self.send(
            self.http
                .post(self.url(&format!("/queues/{queue}/read?count={n}"))),
        )?;
        let first = r
            .headers()
            .get("x-d4-first")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context(
                "the server does not support reading a queue without popping it (update it)",
            )?;
        Ok((first, parse_items(&r.bytes()?)?))
    }

    /// Removes the items numbered below `upto`.
    pub(crate) fn ack(&self, queue: &str, upto: u64) -> Result<()> {
        self.send(
            self.http
                .post(self.url(&format!("/queues/{queue}/ack?upto={upto}"))),
        )?;
        Ok(())
    }
}

/// The polling loop of queue consumers: failed requests are retried after
/// 2 s (unless `once`), an empty queue is polled again with a growing pause
/// (100 ms doubling to 2 s).
pub(crate) struct Poller {
    once: bool,
    idle: Duration,
}

impl Poller {
    pub(crate) fn new(once: bool) -> Poller {
        Poller {
            once,
            idle: Duration::from_millis(100),
        }
    }

    /// The next non-empty batch `fetch` gives; `None` once the queue is
    /// empty with `once`, or after Ctrl-C. `on_idle` runs before each pause.
    pub(crate) fn next<B>(
        &mut self,
        mut fetch: impl FnMut() -> Result<B>,
        is_empty: impl Fn(&B) -> bool,
        mut on_idle: impl FnMut() -> Result<()>,
    ) -> Result<Option<B>> {
        while !crate::signals::interrupted() {
            let b = match fetch() {
                Ok(b) => b,
                Err(e) if !self.once => {
                    tracing::warn!("{e:#}; retrying");
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !is_empty(&b) {
                self.idle = Duration::from_millis(100);
                return Ok(Some(b));
            }
            if self.once {
                return Ok(None);
            }
            on_idle()?;
            std::thread::sleep(self.idle);
            self.idle = (self.idle * 2).min(Duration::from_secs(2));
        }
        Ok(None)
    }
}

/// Parses the binary batch format: (u32 LE length, bytes)*.
fn parse_items(body: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut items = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Some(len) = rest.get(..4) else {
            bail!("truncated reply from the server")
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(item) = rest.get(4..4 + len) else {
            bail!("truncated reply from the server")
        };
        items.push(item.to_vec());
        rest = &rest[4 + len..];
    }
    Ok(items)
}
