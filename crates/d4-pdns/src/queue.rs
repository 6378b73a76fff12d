//! Popping a D4 server's analyzer queue over its management API
//! (`POST /api/v1/queues/{uuid}/pop?count=N`, items as u32-LE-length
//! prefixed bytes). The server is found like the `d4` management commands
//! find it: `<data-dir>/server.json` gives the API URL, token and CA, or
//! `--server URL --token TOKEN [--ca FILE]`.
//!
//! This is a small copy of the pop path of the `d4` CLI's API client, kept
//! here so that `d4-pdns` runs on its own (and inside `d4 server` later)
//! without depending on the CLI crate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// How to reach the D4 server.
#[derive(clap::Args, Clone, Debug)]
pub struct Conn {
    /// Data directory of the local D4 server (its server.json gives address and token).
    #[arg(long, env = "D4_DATA_DIR", default_value = "d4-data")]
    pub data_dir: PathBuf,
    /// Management API URL (instead of the data dir), e.g. https://d4.example.org:7000.
    #[arg(long, env = "D4_SERVER")]
    pub server: Option<String>,
    /// API token (with --server).
    #[arg(long, env = "D4_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate of the server (with --server; default: the one server.json names).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Control {
    api: String,
    token: String,
    ca: PathBuf,
}

/// A queue to pop.
pub struct Queue {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
    uuid: String,
    /// The server's `<data-dir>/data`: type-1 items must name files below it.
    pub data_root: Option<PathBuf>,
    /// The queue's type as the server reports it ("1", "8"...).
    pub qtype: String,
}

impl Queue {
    /// Connects and checks that the queue exists.
    pub fn connect(c: &Conn, uuid: &str) -> Result<Queue> {
        if uuid.len() > 64 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            bail!("{uuid} is not a queue UUID");
        }
        let path = c.data_dir.join("server.json");
        let control: Option<Control> = match std::fs::read(&path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("{} is corrupt", path.display()))?,
            ),
            Err(_) => None,
        };
        let (base, token, ca) = match (&c.server, control) {
            (Some(url), k) => {
                let token = c
                    .token
                    .clone()
                    .or_else(|| k.as_ref().map(|k| k.token.clone()))
                    .ok_or_else(|| anyhow!("--server needs --token (or D4_TOKEN)"))?;
                let ca = c.ca.clone().or_else(|| k.map(|k| k.ca));
                (url.trim_end_matches('/').to_string(), token, ca)
            }
            (None, Some(k)) => (
                k.api,
                c.token.clone().unwrap_or(k.token),
                Some(c.ca.clone().unwrap_or(k.ca)),
            ),
            (None, None) => bail!(
                "no D4 server found: {} does not exist. Give --data-dir DIR of the server, or --server URL --token TOKEN",
                path.display()
            ),
        };
        let mut b = reqwest::blocking::Client::builder()
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
        let mut q = Queue {
            http: b.build()?,
            base,
            token,
            uuid: uuid.to_string(),
            data_root: None,
            qtype: String::new(),
        };
        let info = q.get(&format!("/queues/{uuid}"))?;
        q.qtype = info["type"].as_str().unwrap_or_default().to_string();
        q.data_root = q
            .get("/server")
            .ok()
            .and_then(|v| v["data_dir"].as_str().map(|d| Path::new(d).join("data")));
        Ok(q)
    }

    fn get(&self, path: &str) -> Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .header("Authorization", &self.token)
            .send()
            .with_context(|| format!("cannot reach the d4 server at {}", self.base))?;
        let status = r.status();
        let v: serde_json::Value = r.json().unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            bail!(
                "{} (HTTP {status})",
                v["reason"].as_str().unwrap_or("error")
            );
        }
        Ok(v)
    }

    /// Pops up to `n` items.
    pub fn pop(&self, n: usize) -> Result<Vec<Vec<u8>>> {
        let r = self
            .http
            .post(format!(
                "{}/api/v1/queues/{}/pop?count={}",
                self.base,
                self.uuid,
                n.clamp(1, 10_000)
            ))
            .header("Authorization", &self.token)
            .send()
            .with_context(|| format!("cannot reach the d4 server at {}", self.base))?;
        if !r.status().is_success() {
            bail!("pop from queue {} failed (HTTP {})", self.uuid, r.status());
        }
        split_items(&r.bytes()?)
    }

    /// Checks that a type-1 item names a regular file under the server's
    /// data directory (a queue item must never make us open anything else).
    pub fn file_item(&self, item: &[u8]) -> Result<PathBuf> {
        let p = PathBuf::from(String::from_utf8_lossy(item).into_owned());
        let meta = std::fs::symlink_metadata(&p)
            .with_context(|| format!("cannot open {}", p.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file; skipped", p.display());
        }
        if let Some(root) = &self.data_root {
            let real = p.canonicalize()?;
            if !real.starts_with(root.canonicalize().unwrap_or_else(|_| root.clone())) {
                bail!(
                    "{} is outside the server's data directory; skipped",
                    p.display()
                );
            }
        }
        Ok(p)
    }
}

/// Splits a pop reply into items.
pub fn split_items(body: &[u8]) -> Result<Vec<Vec<u8>>> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn split() {
        let b = [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0];
        assert_eq!(
            super::split_items(&b).unwrap(),
            vec![b"ab".to_vec(), vec![]]
        );
        assert!(super::split_items(&[5, 0, 0, 0, 1]).is_err());
    }
}
