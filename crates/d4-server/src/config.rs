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
    /// Milliseconds an open session has, once the server is told to stop,
    /// to end its stream and get its confirmation (a folder sensor's
    /// batch then is not sent twice after a restart); quiet (parked)
    /// sessions close at once. 0 cuts every session at once. Default 2000.
    pub shutdown_grace_ms: u64,
    /// Seconds a kicked sensor stays refused. Default 30.
    pub kick_secs: u64,
    /// Most simultaneous authenticated sensor sessions (a first frame whose
    /// HMAC verified). Default 1024.
    pub max_connections: usize,
    /// Most simultaneous connections from one address, authenticated or
    /// not (past it the address's oldest unauthenticated connection is
    /// closed; if all are authenticated, the new one is refused). Default 64.
    pub max_connections_per_ip: usize,
    /// Most ingest connections at once that have not authenticated yet;
    /// past it, the oldest is closed for the new one. Default 256.
    pub max_unauthenticated: usize,
    /// The same, from one address. Default 32.
    pub max_unauthenticated_per_ip: usize,
    /// The same, from one /24 (IPv4) or /64 (IPv6). Default 64.
    pub max_unauthenticated_per_prefix: usize,
    /// Most authenticated HTTPS connections (a valid API token or session
    /// cookie) at once. Default 256.
    pub web_max_connections: usize,
    /// Most HTTPS connections at once that have not authenticated; past it,
    /// the oldest is closed for the new one. Default 128.
    pub web_max_unauthenticated: usize,
    /// The same, from one address. Default 32.
    pub web_max_unauthenticated_per_ip: usize,
    /// The same, from one /24 (IPv4) or /64 (IPv6). Default 64.
    pub web_max_unauthenticated_per_prefix: usize,
    /// Seconds an HTTPS request's body may take to arrive (408 past it).
    /// Default 10.
    pub web_body_timeout_secs: u64,
    /// Default max size of a new analyzer queue. Default 10,000.
    pub default_queue_size: u64,
    /// gzip level for rotated files, 1-9, or 0 to leave them uncompressed. Default 1
    /// (libdeflate: within 1-2 % of `gzip -6`'s size on real captures, see
    /// docs/BENCHMARKS.md "Ingest path").
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
    /// For `rediss://` URLs: the PEM CA certificate the Redis server's
    /// certificate must chain to. Default: the system's certificate store.
    pub redis_tls_ca_file: Option<PathBuf>,
    /// For `rediss://` URLs on a Redis that authenticates clients
    /// (`tls-auth-clients yes`): this node's PEM certificate and key.
    pub redis_tls_cert_file: Option<PathBuf>,
    /// The key of `redis_tls_cert_file` (PEM).
    pub redis_tls_key_file: Option<PathBuf>,
    /// Accept frames whose protocol version byte is not 1, as the reference
    /// server does (it never reads the byte). Default false: refused.
    pub accept_unknown_versions: bool,
    /// The clock of stored files' date folders and names: `local` (the
    /// server's time zone, `TZ`, as the reference) or `UTC`. Default local.
    pub timezone: TimeZone,
}

/// The clock of stored files' date folders and names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeZone {
    /// The server's local time (`TZ`, else the system's zone), as the reference.
    #[default]
    #[serde(rename = "local")]
    Local,
    /// UTC.
    #[serde(rename = "UTC", alias = "utc")]
    Utc,
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
            shutdown_grace_ms: 2000,
            kick_secs: 30,
            max_connections: 1024,
            max_connections_per_ip: 64,
            max_unauthenticated: 256,
            max_unauthenticated_per_ip: 32,
            max_unauthenticated_per_prefix: 64,
            web_max_connections: 256,
            web_max_unauthenticated: 128,
            web_max_unauthenticated_per_ip: 32,
            web_max_unauthenticated_per_prefix: 64,
            web_body_timeout_secs: 10,
            default_queue_size: 10_000,
            gzip_level: 1,
            monitor_interval_secs: 30,
            queue_stale_secs: 600,
            webhook_url: None,
            redis_url: None,
            redis_queues_url: None,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            accept_unknown_versions: false,
            timezone: TimeZone::Local,
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

    /// The Redis instances (metadata, queue lists) in Redis mode: `redis_url`,
    /// and `redis_queues_url` or else DB 2 of the same server (the
    /// reference layout), whatever the URL form (TCP, `rediss://`, a Unix
    /// socket, with credentials or not).
    /// The TLS files apply to both.
    pub(crate) fn redis_targets(&self) -> Result<Option<(RedisTarget, RedisTarget)>> {
        let Some(meta) = &self.redis_url else {
            return Ok(None);
        };
        let mut meta = RedisTarget::parse("redis_url", meta)?;
        let mut lists = match &self.redis_queues_url {
            Some(u) => RedisTarget::parse("redis_queues_url", u)?,
            None => meta.with_db(2),
        };
        let read = |p: &Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>> {
            p.as_ref()
                .map(|p| {
                    std::fs::read(p).with_context(|| format!("{what}: cannot read {}", p.display()))
                })
                .transpose()
        };
        let ca = read(&self.redis_tls_ca_file, "redis_tls_ca_file")?;
        let client = match (
            read(&self.redis_tls_cert_file, "redis_tls_cert_file")?,
            read(&self.redis_tls_key_file, "redis_tls_key_file")?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("redis_tls_cert_file and redis_tls_key_file go together"),
        };
        if ca.is_some() || client.is_some() {
            let tls = std::sync::Arc::new(RedisTls { ca, client });
            anyhow::ensure!(
                meta.is_tls() || lists.is_tls(),
                "redis_tls_* files are set but no Redis URL is rediss://"
            );
            meta.tls = Some(tls.clone());
            lists.tls = Some(tls);
        }
        Ok(Some((meta, lists)))
    }

    /// Checks values that TOML types cannot.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.rotation_secs >= 1, "rotation_secs must be at least 1");
        anyhow::ensure!(
            self.idle_timeout_secs >= 1,
            "idle_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            self.shutdown_grace_ms <= 10_000,
            "shutdown_grace_ms must be at most 10000 (the stop waits for sessions 15 s)"
        );
        for (k, v) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_unauthenticated", self.max_unauthenticated),
            (
                "max_unauthenticated_per_ip",
                self.max_unauthenticated_per_ip,
            ),
            (
                "max_unauthenticated_per_prefix",
                self.max_unauthenticated_per_prefix,
            ),
            ("web_max_connections", self.web_max_connections),
            ("web_max_unauthenticated", self.web_max_unauthenticated),
            (
                "web_max_unauthenticated_per_ip",
                self.web_max_unauthenticated_per_ip,
            ),
            (
                "web_max_unauthenticated_per_prefix",
                self.web_max_unauthenticated_per_prefix,
            ),
        ] {
            anyhow::ensure!(v >= 1, "{k} must be at least 1");
        }
        anyhow::ensure!(
            self.web_body_timeout_secs >= 1,
            "web_body_timeout_secs must be at least 1"
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
        if self.redis_url.is_none() && self.redis_queues_url.is_some() {
            anyhow::bail!("redis_queues_url is set without redis_url: set both, or neither");
        }
        self.redis_targets()?;
        Ok(())
    }
}

/// One Redis instance: where to connect, and how to name it in logs and
/// errors without its password.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    /// What the client connects with.
    pub(crate) info: redis::ConnectionInfo,
    /// The CA and client certificate for `rediss://`, when not the defaults.
    pub(crate) tls: Option<std::sync::Arc<RedisTls>>,
}

/// PEM material for a TLS connection to Redis.
pub(crate) struct RedisTls {
    /// The CA to trust instead of the system's store.
    pub(crate) ca: Option<Vec<u8>>,
    /// This node's certificate and key, for Redis servers that ask for one.
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl RedisTarget {
    /// Parses a URL the way the `redis` crate does (`redis://`, `rediss://`,
    /// `redis+unix://`, `unix://`); `what` names the setting in the error,
    /// which never repeats the password.
    pub fn parse(what: &str, url: &str) -> Result<RedisTarget> {
        use redis::IntoConnectionInfo;
        let info = url.into_connection_info().map_err(|e| {
            anyhow::anyhow!(
                "{what}: not a Redis URL ({}): give redis://[:PASSWORD@]HOST:PORT[/DB], \
                 rediss://... or unix:///PATH[?db=N]",
                e.detail().unwrap_or(e.category())
            )
        })?;
        Ok(RedisTarget { info, tls: None })
    }

    /// The same instance, database `db`.
    pub(crate) fn with_db(&self, db: i64) -> RedisTarget {
        let settings = self.info.redis_settings().clone().set_db(db);
        RedisTarget {
            info: self.info.clone().set_redis_settings(settings),
            tls: self.tls.clone(),
        }
    }

    /// Whether the connection is TLS (`rediss://`).
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. })
    }

    /// A client for this instance, with the configured TLS material.
    pub(crate) fn client(&self) -> Result<redis::Client> {
        let made = match &self.tls {
            Some(t) if self.is_tls() => redis::Client::build_with_tls(
                self.info.clone(),
                redis::TlsCertificates {
                    client_tls: t.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }),
                    root_cert: t.ca.clone(),
                },
            ),
            _ => redis::Client::open(self.info.clone()),
        };
        made.map_err(|e| anyhow::anyhow!("Redis at {self}: {e}"))
    }
}

impl std::fmt::Display for RedisTarget {
    /// `redis://[USER:***@]HOST:PORT/DB`, `rediss://...`, `unix://PATH?db=DB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.info.redis_settings();
        let cred = match (r.username(), r.password()) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (None, Some(_)) => ":***@".to_string(),
            (Some(u), None) => format!("{u}@"),
            (None, None) => String::new(),
        };
        match self.info.addr() {
            redis::ConnectionAddr::Unix(p) => {
                write!(f, "unix://{cred}{}?db={}", p.display(), r.db())
            }
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                write!(f, "rediss://{cred}{host}:{port}/{}", r.db())
            }
            a => write!(f, "redis://{cred}{a}/{}", r.db()),
        }
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

    #[test]
    fn redis_targets_default_to_db_2_of_the_same_instance() {
        let with = |meta: &str, lists: Option<&str>| {
            let c = ServerConfig {
                redis_url: Some(meta.into()),
                redis_queues_url: lists.map(Into::into),
                ..ServerConfig::default()
            };
            let (m, l) = c.redis_targets().unwrap().unwrap();
            (m.to_string(), l.to_string())
        };
        assert_eq!(
            with("redis://127.0.0.1:6379", None),
            (
                "redis://127.0.0.1:6379/0".into(),
                "redis://127.0.0.1:6379/2".into()
            )
        );
        assert_eq!(
            with("redis://h:7000/5", None),
            ("redis://h:7000/5".into(), "redis://h:7000/2".into())
        );
        // Credentials kept for the connection, never shown.
        let (m, l) = with("redis://:s3cret@h:6379/1", None);
        assert_eq!(m, "redis://:***@h:6379/1");
        assert_eq!(l, "redis://:***@h:6379/2");
        let c = ServerConfig {
            redis_url: Some("redis://d4:s3cret@h:6379/1".into()),
            ..ServerConfig::default()
        };
        let (m, l) = c.redis_targets().unwrap().unwrap();
        assert_eq!(l.info.redis_settings().password(), Some("s3cret"));
        assert_eq!(l.info.redis_settings().username(), Some("d4"));
        assert_eq!(m.to_string(), "redis://d4:***@h:6379/1");
        // A Unix socket: the database is a query parameter, the path stays.
        assert_eq!(
            with("unix:///run/redis/redis.sock", None),
            (
                "unix:///run/redis/redis.sock?db=0".into(),
                "unix:///run/redis/redis.sock?db=2".into()
            )
        );
        // An explicit lists instance wins.
        assert_eq!(
            with("redis://a:1/0", Some("redis://b:2/7")).1,
            "redis://b:2/7"
        );
    }

    #[test]
    fn bad_redis_urls_are_refused_without_their_password() {
        let c = ServerConfig {
            redis_url: Some("http://:s3cret@h:6379".into()),
            ..ServerConfig::default()
        };
        let e = format!("{:#}", c.validate().unwrap_err());
        assert!(e.contains("redis_url") && !e.contains("s3cret"), "{e}");
        let c = ServerConfig {
            redis_queues_url: Some("redis://h:1/2".into()),
            ..ServerConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
