//! `d4-api`: the client of the D4 server's management API, for the `d4`
//! commands and the analyzers that consume queues.
//!
//! It finds the local server through `<data-dir>/server.json`, or uses
//! `--server URL --token TOKEN [--ca FILE]`; pops, reads and acknowledges
//! queue items (the binary batch format: u32 LE length, then the bytes);
//! polls a queue for its consumers ([`poll::Poller`]); and opens the files
//! that queue items name, only when they are regular files under the
//! server's data directory (a queue item must never make a consumer open
//! anything else).
//!
//! # Layout
//!
//! - this file: [`Conn`] (the flags), [`Api`] (the calls), the batch format
//!   and the checks on the files items name.
//! - [`poll`]: the one queue-polling loop of every consumer.
//! - [`captures`]: the `-r FILE|DIR|-` / `-u QUEUE` inputs of the commands
//!   that read captures (`d4 pdns extract`, `d4 tls fingerprint`, `d4
//!   maltrail match`), into a [`captures::PacketSink`].
//! - [`queue`]: a queue an analyzer ingests, and the loop following several.
//! - [`loadgen`]: the open-loop HTTP load of the lookup benchmarks.
//! - [`lookup`]: what the analyzers' lookup servers share (rate limiter,
//!   cursors, NDJSON).
//! - [`serve`]: their HTTP side (runtime, listening, serving, errors).
//! - [`shutdown`]: the stop request of the commands that follow or serve.

pub mod captures;
pub mod loadgen;
pub mod lookup;
pub mod poll;
pub mod queue;
pub mod serve;
pub mod shutdown;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::Value;

/// How to reach the server (flags shared by management commands).
#[derive(clap::Args, Clone, Debug)]
pub struct Conn {
    /// Data directory of the local server (its server.json gives address and token).
    #[arg(long, env = "D4_DATA_DIR", default_value = "d4-data", global = true)]
    pub data_dir: PathBuf,
    /// Management API URL (instead of the data dir), e.g. https://d4.example.org:7000.
    #[arg(long, env = "D4_SERVER", global = true)]
    pub server: Option<String>,
    /// API key (with --server): an account's key (DEFAULT_PASSWORD, the web UI's Users page).
    #[arg(long, env = "D4_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate of the server (with --server; default: the data dir's tls/ca.crt).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
}

/// `<data-dir>/server.json`, written by the server.
pub const CONTROL_FILE: &str = "server.json";

/// What `server.json` says (the fields a client needs).
#[derive(Deserialize)]
struct Control {
    api: String,
    token: String,
    ca: PathBuf,
}

/// A connected API client.
pub struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    /// Resolves where the server is and how to authenticate.
    pub fn connect(c: &Conn) -> Result<Api> {
        let control_path = c.data_dir.join(CONTROL_FILE);
        let control: Option<Control> = match std::fs::read(&control_path) {
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
        let r = match rb.header("Authorization", &self.token).send() {
            Ok(r) => r,
            Err(e) => {
                // rustls' words (BadSignature, UnknownIssuer...) say what
                // happened, not why: another server answers at that address
                // than the one whose CA this client was given.
                let chain = format!("{e:?}");
                let why = if chain.contains("certificate")
                    || chain.contains("Certificate")
                    || chain.contains("BadSignature")
                    || chain.contains("UnknownIssuer")
                {
                    format!(
                        "the server at {} is not the one whose CA certificate this command was given (a stale server.json: the server that wrote it stopped and another one uses its address? check --data-dir, or give --server, --token and --ca)",
                        self.base
                    )
                } else {
                    format!(
                        "cannot reach the d4 server at {} (is it running?)",
                        self.base
                    )
                };
                return Err(anyhow::Error::from(e).context(why));
            }
        };
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
    pub fn get(&self, path: &str) -> Result<Value> {
        Ok(self.send(self.http.get(self.url(path)))?.json()?)
    }

    /// POST a JSON body, returning JSON.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        Ok(self
            .send(self.http.post(self.url(path)).json(body))?
            .json()?)
    }

    /// DELETE returning JSON.
    pub fn delete(&self, path: &str) -> Result<Value> {
        Ok(self.send(self.http.delete(self.url(path)))?.json()?)
    }

    /// Pops up to `n` items of a queue.
    pub fn pop(&self, queue: &str, n: usize) -> Result<Vec<Vec<u8>>> {
        let r = self.send(
            self.http
                .post(self.url(&format!("/queues/{queue}/pop?count={n}"))),
        )?;
        parse_items(&r.bytes()?)
    }

    /// Reads up to `n` items of a queue without removing them: the number of
    /// the first, and the items. [`Api::ack`] removes them once processed.
    pub fn read(&self, queue: &str, n: usize) -> Result<(u64, Vec<Vec<u8>>)> {
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
    pub fn ack(&self, queue: &str, upto: u64) -> Result<()> {
        self.send(
            self.http
                .post(self.url(&format!("/queues/{queue}/ack?upto={upto}"))),
        )?;
        Ok(())
    }
}

/// Parses the binary batch format: (u32 LE length, bytes)*.
pub fn parse_items(body: &[u8]) -> Result<Vec<Vec<u8>>> {
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

/// Checks that a queue item names a regular file, under `root` (the
/// server's `<data-dir>/data`) when it is known; returns the path.
pub fn check_item_path(item: &[u8], root: Option<&Path>) -> Result<PathBuf> {
    let path = PathBuf::from(String::from_utf8_lossy(item).into_owned());
    let meta = std::fs::symlink_metadata(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file; skipped", path.display());
    }
    if let Some(root) = root {
        let real = path.canonicalize()?;
        if !real.starts_with(root.canonicalize().unwrap_or_else(|_| root.to_path_buf())) {
            bail!(
                "{} is outside the server's data directory; skipped",
                path.display()
            );
        }
    }
    Ok(path)
}

/// Opens a file named by a queue item (gunzipped when it is gzip), checked
/// as [`check_item_path`] does.
pub fn open_item_file(item: &[u8], root: Option<&Path>) -> Result<Box<dyn Read + Send>> {
    let path = check_item_path(item, root)?;
    d4_packet::gz::open_maybe_gz(&path).with_context(|| format!("cannot open {}", path.display()))
}

/// The server's `<data-dir>/data`, where the files queue items name live.
pub fn data_root(api: &Api) -> Option<PathBuf> {
    api.get("/server")
        .ok()
        .and_then(|v| v["data_dir"].as_str().map(|d| Path::new(d).join("data")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_format() {
        let b = [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0];
        assert_eq!(
            super::parse_items(&b).unwrap(),
            vec![b"ab".to_vec(), vec![]]
        );
        assert!(super::parse_items(&[5, 0, 0, 0, 1]).is_err());
        assert!(super::parse_items(&[5, 0]).is_err());
    }
}
