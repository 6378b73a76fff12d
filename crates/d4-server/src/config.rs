//! Server configuration: a TOML file with documented defaults; every default
//! runs as is (`d4 server` alone works).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// How sensors are admitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Only approved sensors are accepted; unknown ones are listed as pending
    /// until an operator runs `d4 sensor approve UUID`. The default: a server
    /// reachable from the Internet must not store what anyone sends it.
    #[default]
    Registration,
    /// Any version 4 UUID is accepted if it signs with its key (the default
    /// key unless one was set): the reference's open mode, for labs.
    SharedSecret,
}

/// The server configuration. Field docs give the defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// TLS ingest address. Default `[::]:4443` (dual stack).
    pub listen: SocketAddr,
    /// Management API address (HTTPS). Default `127.0.0.1:7000`.
    pub web: SocketAddr,
    /// Where everything lives: `tls/`, `data/`, `store/`. Default `./d4-data`.
    pub data_dir: PathBuf,
    /// Admission mode. Default `registration`.
    pub mode: Mode,
    /// HMAC key for sensors that have none of their own. Default the
    /// reference's `private key to change`.
    pub default_key: String,
    /// Largest frame payload accepted, bytes. Default 1,000,000 (reference).
    pub max_frame_size: u32,
    /// Accepted D4 types. Default every defined type but 0: 1-8, 254.
    pub accepted_types: Vec<u8>,
    /// Accepted extended types (type 254); empty means any valid name. Default empty.
    pub accepted_extended_types: Vec<String>,
    /// Seconds after which a stored file is closed and a new one started. Default 300.
    pub rotation_secs: u64,
    /// Seconds a session may go without a complete frame header. Default 30.
    pub idle_timeout_secs: u64,
    /// Seconds a session may stay blocked by back-pressure before it is closed. Default 120.
    pub stall_timeout_secs: u64,
    /// Seconds a kicked sensor stays refused. Default 30.
    pub kick_secs: u64,
    /// Most simultaneous sensor connections. Default 1024.
    pub max_connections: usize,
    /// Most simultaneous connections from one address. Default 64.
    pub max_connections_per_ip: usize,
    /// Default max size of a new analyzer queue. Default 10,000.
    pub default_queue_size: u64,
    /// gzip level for rotated files, 1-9, or 0 to leave them uncompressed. Default 6.
    pub gzip_level: u32,
    /// Seconds between monitoring checks (silent sensors, full or unconsumed
    /// queues). Default 30.
    pub monitor_interval_secs: u64,
    /// Seconds a non-empty queue may go without a consumer before it is
    /// reported. Default 600.
    pub queue_stale_secs: u64,
    /// URL that monitoring alerts are POSTed to as JSON (fired and resolved).
    /// Default none.
    pub webhook_url: Option<String>,
    /// Redis mode: the analyzer queues live in Redis in the reference key
    /// schema, for the D4 ecosystem's analyzers (`redis://HOST:PORT[/DB]`:
    /// the metadata instance). Default none (embedded store).
    pub redis_url: Option<String>,
    /// Where the queue lists go. Default: DB 2 of `redis_url`'s server, as
    /// the reference.
    pub redis_queues_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0u16; 8], 4443)),
            web: SocketAddr::from(([127, 0, 0, 1], 7000)),
            data_dir: PathBuf::from("d4-data"),
            mode: Mode::Registration,
            default_key: "private key to change".into(),
            max_frame_size: d4_proto::DEFAULT_MAX_SIZE,
            accepted_types: d4_proto::D4Type::DEFINED.to_vec(),
            accepted_extended_types: Vec::new(),
            rotation_secs: 300,
            idle_timeout_secs: 30,
            stall_timeout_secs: 120,
            kick_secs: 30,
            max_connections: 1024,
            max_connections_per_ip: 64,
            default_queue_size: 10_000,
            gzip_level: 6,
            monitor_interval_secs: 30,
            queue_stale_secs: 600,
            webhook_url: None,
            redis_url: None,
            redis_queues_url: None,
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let c: ServerConfig = toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))?;
        c.validate()?;
        Ok(c)
    }

    /// The Redis URLs (metadata, queue lists) in Redis mode.
    pub fn redis_urls(&self) -> Option<(String, String)> {
        let meta = self.redis_url.clone()?;
        let lists = self.redis_queues_url.clone().unwrap_or_else(|| {
            // Same server, DB 2: replace or add the path.
            let base = match meta.find("://") {
                Some(i) => match meta[i + 3..].find('/') {
                    Some(j) => meta[..i + 3 + j].to_string(),
                    None => meta.clone(),
                },
                None => meta.clone(),
            };
            format!("{base}/2")
        });
        Some((meta, lists))
    }

    /// Checks values that TOML types cannot.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.rotation_secs >= 1, "rotation_secs must be at least 1");
        anyhow::ensure!(
            self.idle_timeout_secs >= 1,
            "idle_timeout_secs must be at least 1"
        );
        anyhow::ensure!(self.gzip_level <= 9, "gzip_level must be 0 (off) to 9");
        anyhow::ensure!(
            self.monitor_interval_secs >= 1,
            "monitor_interval_secs must be at least 1"
        );
        if let Some(u) = &self.webhook_url {
            anyhow::ensure!(
                u.starts_with("http://") || u.starts_with("https://"),
                "webhook_url must be an http:// or https:// URL, not {u:?}"
            );
        }
        anyhow::ensure!(
            !self.accepted_types.contains(&0),
            "type 0 is reserved and cannot be accepted"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c: ServerConfig =
            toml::from_str("mode = \"shared-secret\"\nrotation_secs = 60").unwrap();
        assert_eq!(c.mode, Mode::SharedSecret);
        assert_eq!(c.rotation_secs, 60);
        assert_eq!(c.listen.port(), 4443);
        assert!(toml::from_str::<ServerConfig>("rotation = 1").is_err());
        assert!(c.validate().is_ok());
    }
}
