//! Sensor configuration: the reference directory layout, or a TOML file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use uuid::Uuid;

/// Where the sensor reads its stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file, read to its end.
    File(PathBuf),
    /// A capture (pcap or pcapng) replayed as a pcap stream at `speed`
    /// times its pace (crate `replay`); speed 0 is [`Source::File`].
    Pcap {
        /// The capture.
        file: PathBuf,
        /// 1: the capture's pace; n: n times faster.
        speed: f64,
    },
    /// Closed files of a folder, each sent once (crate `folder`).
    Folder(FolderConfig),
    /// The items of a Redis list of another D4 server (`d4 client` runs it).
    D4Server {
        /// `host:port/db` (the reference's `redis_d4`).
        redis: RedisAddr,
        /// The list (`analyzer:TYPE:QUEUE`).
        queue: String,
        /// Wait when the list is empty.
        wait: Duration,
    },
}

/// What the folder source does with a file once the server confirmed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderDone {
    /// Leave it (the reference); the journal remembers it was sent.
    Keep,
    /// Remove it.
    Delete,
    /// Move it into this directory.
    Move(PathBuf),
}

/// The folder source's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderConfig {
    /// The folder watched.
    pub dir: PathBuf,
    /// The journal of what was sent (`folder.sent` beside the configuration).
    pub journal: PathBuf,
    /// A file is closed once its size and mtime did not change for this long.
    pub settle: Duration,
    /// What to do with a file once sent.
    pub done: FolderDone,
}

/// A Redis instance as the reference writes it: `host:port/db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAddr {
    /// Host name or address (IPv6 in brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database number.
    pub db: u32,
}

impl RedisAddr {
    /// Parses `host:port/db` (`/db` optional: 0; `[v6]:port/db`).
    pub fn parse(s: &str) -> Result<RedisAddr> {
        let bad = || {
            anyhow::anyhow!(
                "redis_d4 {s:?} is not host:port/db (e.g. 127.0.0.1:6380/2, the reference's form)"
            )
        };
        let (hp, db) = match s.rsplit_once('/') {
            Some((hp, db)) => (hp, db.parse::<u32>().map_err(|_| bad())?),
            None => (s, 0),
        };
        let (host, port) = hp.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(RedisAddr {
            host: host.to_string(),
            port,
            db,
        })
    }

    /// The `redis://` URL of it.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            format!("redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

/// The folder source's settle time when none is given.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);
/// The d4server source's wait on an empty list when none is given (the Go client's `-rl`).
pub const DEFAULT_REDIS_WAIT: Duration = Duration::from_millis(200);

/// Where the sensor sends its frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Standard output (no TLS; for pipes and tests).
    Stdout,
    /// A D4 server, `host:port` or `[v6]:port`, over TLS.
    Server(String),
}

/// A complete sensor configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The stream to read.
    pub source: Source,
    /// Where frames go.
    pub destination: Destination,
    /// The sensor UUID (version 4).
    pub uuid: Uuid,
    /// The HMAC pre-shared key (bytes of the key file, last newline stripped,
    /// up to a NUL byte: the C client's rule).
    pub key: Vec<u8>,
    /// Largest payload per frame.
    pub snaplen: usize,
    /// D4 type of the stream (2 or 254 for extended types).
    pub ty: u8,
    /// Protocol version written in headers.
    pub version: u8,
    /// The meta-header to send first (types 2/254).
    pub meta_header: Option<Vec<u8>>,
    /// CA certificate(s) that sign the server certificate.
    pub root_ca: Option<PathBuf>,
    /// Skip server certificate verification (explicit opt-in only).
    pub insecure: bool,
    /// Name to verify in the server certificate (default: the host part of the destination).
    pub tls_name: Option<String>,
    /// Timestamp written in every header instead of the clock (reproducible output).
    pub fixed_timestamp: Option<u64>,
    /// Send one empty frame at end of input, as the reference C client does.
    pub end_frame: bool,
    /// Largest delay between reconnection attempts, in seconds.
    pub max_backoff_secs: u64,
    /// Retries after a failed connection attempt (or an unconfirmed end of
    /// stream) before giving up: `Some(0)` gives up at the first failure,
    /// `None` retries forever.
    pub max_retries: Option<u32>,
    /// Bytes of frames already written that are sent again after a
    /// reconnection (the protocol has no acknowledgement: what the server had
    /// not read when the connection broke would be lost). Duplicates after a
    /// reconnection are bounded by it.
    pub replay_window: usize,
    /// Require the server's TLS close_notify at the end of the stream as the
    /// confirmation that it stored everything (d4 servers send it; turn off
    /// for a server that closes without it).
    pub confirm: bool,
    /// Seconds without input after which an empty frame keeps the
    /// connection alive (the server closes silent sessions after 30 s).
    pub keepalive_secs: u64,
    /// On-disk spool of what the server has not confirmed, sent first by
    /// the next run (crate `spool`); `None`: no spool.
    pub spool_dir: Option<PathBuf>,
    /// Bound on the spool's stream bytes (oldest dropped, counted).
    pub spool_max_bytes: u64,
}

/// The spool bound when none is given: 256 MiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The TOML form (`d4 client --config FILE.toml`): the same settings as the directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlConfig {
    source: Option<String>,
    file: Option<PathBuf>,
    destination: Option<String>,
    uuid: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    snaplen: Option<usize>,
    #[serde(rename = "type")]
    ty: Option<u8>,
    version: Option<u8>,
    metaheader: Option<PathBuf>,
    root_ca: Option<PathBuf>,
    uuid_file: Option<PathBuf>,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    folder: Option<PathBuf>,
    folder_done: Option<String>,
    folder_settle_ms: Option<u64>,
    speed: Option<f64>,
    redis_d4: Option<String>,
    redis_queue: Option<String>,
    redis_wait_ms: Option<u64>,
}

/// The settings of the sources, as read from either form.
#[derive(Default)]
struct SourceSettings {
    file: Option<PathBuf>,
    folder: Option<PathBuf>,
    folder_done: Option<String>,
    folder_settle_ms: Option<u64>,
    speed: Option<f64>,
    redis_d4: Option<String>,
    redis_queue: Option<String>,
    redis_wait_ms: Option<u64>,
}

fn first_line(dir: &Path, name: &str) -> Result<Option<String>> {
    let p = dir.join(name);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s.lines().next().unwrap_or("").trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// The key of a key file (the C client's rule), with a warning for what
/// the reference clients read differently.
fn key_from_file(path: &Path, raw: &[u8]) -> Vec<u8> {
    for odd in d4_proto::key_file_oddities(raw) {
        tracing::warn!("{}: {odd}", path.display());
    }
    d4_proto::key_from_file_bytes(raw)
}

/// Reads the sensor UUID from `path`; if it is missing, empty or not a version 4
/// UUID, generates one and writes it back.
pub fn load_or_create_uuid(path: &Path) -> Result<Uuid> {
    let current = match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(s) = &current {
        let line = s.lines().next().unwrap_or("").trim();
        match d4_proto::sensor_uuid::parse_v4(line) {
            Ok(u) => return Ok(u),
            Err(e) if !line.is_empty() => {
                tracing::warn!("{}: {e}; generating a new sensor UUID", path.display())
            }
            Err(_) => {}
        }
    }
    let u = Uuid::new_v4();
    std::fs::write(path, format!("{u}\n"))
        .with_context(|| format!("cannot write the new sensor UUID to {}", path.display()))?;
    tracing::info!("sensor UUID {u} written to {}", path.display());
    Ok(u)
}

fn parse_source(value: &str, set: SourceSettings, base: &Path) -> Result<Source> {
    match value {
        "" | "stdin" | "-" => Ok(Source::Stdin),
        "file" | "pcap" => {
            let Some(f) = set.file else {
                bail!("source {value:?} needs the path of the file in a `file` setting")
            };
            let file = base.join(f);
            let speed = set.speed.unwrap_or(0.0);
            check_speed(speed)?;
            if value == "pcap" && speed > 0.0 {
                Ok(Source::Pcap { file, speed })
            } else {
                Ok(Source::File(file))
            }
        }
        "folder" => {
            let Some(f) = set.folder else {
                bail!("source \"folder\" needs the folder to watch in a `folder` setting")
            };
            let dir = base.join(f);
            if !dir.is_dir() {
                bail!(
                    "folder {}: not a directory (the `folder` setting names the folder to watch)",
                    dir.display()
                );
            }
            let done = match set.folder_done.as_deref().unwrap_or("keep") {
                "" | "keep" => FolderDone::Keep,
                "delete" => FolderDone::Delete,
                m => match m.strip_prefix("move:") {
                    Some(d) if !d.is_empty() => FolderDone::Move(base.join(d)),
                    _ => bail!("folder_done {m:?}: give keep, delete or move:DIR"),
                },
            };
            Ok(Source::Folder(FolderConfig {
                dir,
                journal: base.join("folder.sent"),
                settle: set
                    .folder_settle_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_SETTLE),
                done,
            }))
        }
        "d4server" => {
            let Some(r) = set.redis_d4 else {
                bail!("source \"d4server\" needs `redis_d4` (host:port/db of the other server's Redis, e.g. 127.0.0.1:6380/2)")
            };
            let Some(q) = set.redis_queue.filter(|q| !q.is_empty()) else {
                bail!("source \"d4server\" needs `redis_queue` (the list to read, e.g. analyzer:3:QUEUE-UUID)")
            };
            Ok(Source::D4Server {
                redis: RedisAddr::parse(&r)?,
                queue: q,
                wait: set
                    .redis_wait_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_REDIS_WAIT),
            })
        }
        other => Ok(Source::File(base.join(other))),
    }
}

/// A replay speed: 0 (as fast as possible) or a positive factor.
pub fn check_speed(speed: f64) -> Result<()> {
    Ok(d4_packet::pace::check_speed(speed)?)
}

fn parse_num<T: std::str::FromStr>(name: &str, s: Option<String>) -> Result<Option<T>> {
    s.map(|v| {
        v.parse()
            .map_err(|_| anyhow::anyhow!("{name} {v:?} is not a number"))
    })
    .transpose()
}

fn parse_destination(value: &str) -> Result<Destination> {
    match value {
        "stdout" | "-" => Ok(Destination::Stdout),
        "" => bail!("destination is empty: write `stdout` or `host:port` into it"),
        hp => {
            if !hp.contains(':') {
                bail!("destination {hp:?} is not `stdout` nor `host:port` / `[v6]:port`");
            }
            Ok(Destination::Server(hp.to_string()))
        }
    }
}

fn check_snaplen(n: usize) -> Result<usize> {
    if (1..=d4_proto::MAX_SNAPLEN).contains(&n) {
        Ok(n)
    } else {
        bail!("snaplen {n} is outside 1..={}", d4_proto::MAX_SNAPLEN)
    }
}

fn check_type(ty: u8, meta: &Option<Vec<u8>>) -> Result<()> {
    if ty == 0 {
        bail!("type 0 is reserved");
    }
    if matches!(ty, 2 | 254) {
        let Some(m) = meta else {
            bail!("type {ty} needs a metaheader.json (its \"type\" names the extended type)");
        };
        d4_proto::MetaHeader::parse(m).context("metaheader.json")?;
    }
    Ok(())
}

impl ClientConfig {
    pub(crate) fn defaults(uuid: Uuid) -> ClientConfig {
        ClientConfig {
            source: Source::Stdin,
            destination: Destination::Stdout,
            uuid,
            key: d4_proto::DEFAULT_KEY.to_vec(),
            snaplen: d4_proto::DEFAULT_SNAPLEN,
            ty: 1,
            version: d4_proto::VERSION,
            meta_header: None,
            root_ca: None,
            insecure: false,
            tls_name: None,
            fixed_timestamp: None,
            end_frame: false,
            max_backoff_secs: 30,
            max_retries: None,
            replay_window: 4 * 1024 * 1024,
            confirm: true,
            keepalive_secs: 10,
            spool_dir: None,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
        }
    }

    /// Reads a reference configuration directory (`source`, `destination`,
    /// `uuid`, `key`, `snaplen`, `type`, `version`, `metaheader.json`, `rootCA.crt`).
    pub fn from_dir(dir: &Path) -> Result<ClientConfig> {
        if !dir.is_dir() {
            bail!(
                "{} is not a directory (expected a D4 sensor configuration directory)",
                dir.display()
            );
        }
        let uuid = load_or_create_uuid(&dir.join("uuid"))?;
        let mut c = ClientConfig::defaults(uuid);
        let set = SourceSettings {
            file: first_line(dir, "file")?.map(PathBuf::from),
            folder: first_line(dir, "folder")?.map(PathBuf::from),
            folder_done: first_line(dir, "folder_done")?,
            folder_settle_ms: parse_num("folder_settle_ms", first_line(dir, "folder_settle_ms")?)?,
            speed: parse_num("speed", first_line(dir, "speed")?)?,
            redis_d4: first_line(dir, "redis_d4")?,
            redis_queue: first_line(dir, "redis_queue")?,
            redis_wait_ms: parse_num("redis_wait_ms", first_line(dir, "redis_wait_ms")?)?,
        };
        if let Some(s) = first_line(dir, "source")? {
            c.source = parse_source(&s, set, dir)?;
        }
        match first_line(dir, "destination")? {
            Some(d) => c.destination = parse_destination(&d)?,
            None => bail!(
                "{}: no `destination` file (stdout or host:port)",
                dir.display()
            ),
        }
        let key_path = dir.join("key");
        match std::fs::read(&key_path) {
            Ok(raw) => c.key = key_from_file(&key_path, &raw),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("{}: no `key` file, using the default key", dir.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", key_path.display())),
        }
        if let Some(s) = first_line(dir, "snaplen")? {
            let n: usize = s
                .parse()
                .with_context(|| format!("snaplen {s:?} is not a number"))?;
            c.snaplen = check_snaplen(n)?;
        }
        if let Some(s) = first_line(dir, "type")? {
            c.ty = s
                .parse()
                .with_context(|| format!("type {s:?} is not a number 1-255"))?;
        }
        if let Some(s) = first_line(dir, "version")? {
            c.version = s
                .parse()
                .with_context(|| format!("version {s:?} is not a number"))?;
        }
        let meta = dir.join("metaheader.json");
        if meta.is_file() {
            c.meta_header = Some(
                std::fs::read(&meta).with_context(|| format!("cannot read {}", meta.display()))?,
            );
        }
        check_type(c.ty, &c.meta_header)?;
        let ca = dir.join("rootCA.crt");
        if ca.is_file() {
            c.root_ca = Some(ca);
        }
        if let Some(s) = first_line(dir, "spool_dir")? {
            c.spool_dir = Some(dir.join(s));
        }
        if let Some(s) = first_line(dir, "spool_max_bytes")? {
            c.spool_max_bytes = s
                .parse()
                .with_context(|| format!("spool_max_bytes {s:?} is not a number of bytes"))?;
        }
        Ok(c)
    }

    /// Reads a TOML configuration file (same settings; paths relative to the file).
    pub fn from_toml(path: &Path) -> Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let t: TomlConfig = toml_from_str(&text).with_context(|| format!("{}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let uuid = match (&t.uuid, &t.uuid_file) {
            (Some(u), _) => d4_proto::sensor_uuid::parse_v4(u)?,
            (None, Some(f)) => load_or_create_uuid(&base.join(f))?,
            (None, None) => bail!("{}: set `uuid` or `uuid_file`", path.display()),
        };
        let mut c = ClientConfig::defaults(uuid);
        let set = SourceSettings {
            file: t.file.clone(),
            folder: t.folder.clone(),
            folder_done: t.folder_done.clone(),
            folder_settle_ms: t.folder_settle_ms,
            speed: t.speed,
            redis_d4: t.redis_d4.clone(),
            redis_queue: t.redis_queue.clone(),
            redis_wait_ms: t.redis_wait_ms,
        };
        if let Some(s) = &t.source {
            c.source = parse_source(s, set, base)?;
        } else if let Some(f) = &t.file {
            c.source = Source::File(base.join(f));
        }
        c.destination = parse_destination(t.destination.as_deref().unwrap_or(""))?;
        if let Some(k) = t.key {
            c.key = k.into_bytes();
        } else if let Some(f) = t.key_file {
            let p = base.join(f);
            let raw = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            c.key = key_from_file(&p, &raw);
        }
        if let Some(n) = t.snaplen {
            c.snaplen = check_snaplen(n)?;
        }
        c.ty = t.ty.unwrap_or(1);
        c.version = t.version.unwrap_or(d4_proto::VERSION);
        if let Some(m) = t.metaheader {
            let p = base.join(m);
            c.meta_header =
                Some(std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?);
        }
        check_type(c.ty, &c.meta_header)?;
        c.root_ca = t.root_ca.map(|p| base.join(p));
        c.spool_dir = t.spool_dir.map(|p| base.join(p));
        if let Some(n) = t.spool_max_bytes {
            c.spool_max_bytes = n;
        }
        Ok(c)
    }
}

fn toml_from_str(text: &str) -> Result<TomlConfig> {
    Ok(toml::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_layout_and_uuid_write_back() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("destination"), "127.0.0.1:4443\n").unwrap();
        std::fs::write(d.path().join("type"), "3\n").unwrap();
        std::fs::write(d.path().join("snaplen"), "1000\n").unwrap();
        std::fs::write(d.path().join("key"), "secret\n").unwrap();
        std::fs::write(d.path().join("uuid"), "not-a-uuid\n").unwrap();
        let c = ClientConfig::from_dir(d.path()).unwrap();
        assert_eq!(c.ty, 3);
        assert_eq!(c.snaplen, 1000);
        assert_eq!(c.key, b"secret");
        assert_eq!(c.source, Source::Stdin);
        assert_eq!(c.destination, Destination::Server("127.0.0.1:4443".into()));
        assert!(d4_proto::is_v4(&c.uuid));
        let written = std::fs::read_to_string(d.path().join("uuid")).unwrap();
        assert_eq!(written.trim(), c.uuid.to_string());
        // Stable on the second read.
        assert_eq!(ClientConfig::from_dir(d.path()).unwrap().uuid, c.uuid);
        assert_eq!(c.spool_dir, None);
        std::fs::write(d.path().join("spool_dir"), "spool\n").unwrap();
        std::fs::write(d.path().join("spool_max_bytes"), "1048576\n").unwrap();
        let c = ClientConfig::from_dir(d.path()).unwrap();
        assert_eq!(c.spool_dir, Some(d.path().join("spool")));
        assert_eq!(c.spool_max_bytes, 1 << 20);
    }

    #[test]
    fn toml_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sensor.toml");
        std::fs::write(d.path().join("meta.json"), r#"{"type": "maltrail"}"#).unwrap();
        std::fs::write(
            &p,
            "destination = \"[::1]:4443\"\nuuid_file = \"uuid\"\nkey = \"k\"\ntype = 254\nmetaheader = \"meta.json\"\nroot_ca = \"ca.crt\"\nfile = \"in.log\"\nspool_dir = \"spool\"\nspool_max_bytes = 1048576\n",
        )
        .unwrap();
        let c = ClientConfig::from_toml(&p).unwrap();
        assert_eq!(c.destination, Destination::Server("[::1]:4443".into()));
        assert_eq!(c.ty, 254);
        assert_eq!(c.key, b"k");
        assert_eq!(c.source, Source::File(d.path().join("in.log")));
        assert_eq!(c.root_ca, Some(d.path().join("ca.crt")));
        assert_eq!(c.spool_dir, Some(d.path().join("spool")));
        assert_eq!(c.spool_max_bytes, 1 << 20);
        assert!(d.path().join("uuid").is_file());
        std::fs::write(&p, "destination = \"stdout\"\nuuid = \"x\"\nbogus = 1\n").unwrap();
        let e = format!("{:#}", ClientConfig::from_toml(&p).unwrap_err());
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = ClientConfig::from_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("destination"), "{e}");
        std::fs::write(d.path().join("destination"), "stdout\n").unwrap();
        std::fs::write(d.path().join("snaplen"), "70000\n").unwrap();
        let e = format!("{:#}", ClientConfig::from_dir(d.path()).unwrap_err());
        assert!(e.contains("snaplen 70000"), "{e}");
        std::fs::write(d.path().join("snaplen"), "4096\n").unwrap();
        std::fs::write(d.path().join("type"), "254\n").unwrap();
        let e = format!("{:#}", ClientConfig::from_dir(d.path()).unwrap_err());
        assert!(e.contains("metaheader.json"), "{e}");
    }
}
