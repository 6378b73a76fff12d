//! The server as one value: [`start`] brings every part up and returns a
//! [`RunningServer`]; [`run`] serves until its shutdown future completes.
//!
//! [`start`] raises the open-files limit and sizes the connection budgets
//! from it (`admission`), creates the data dir, the TLS material (`tls`), opens the store,
//! loads policy and sensors, chooses the store backends (embedded, or Redis
//! with its policy sync, leases and metadata mirror), recovers files a
//! crash left unfinished, binds both listeners and writes
//! `<data-dir>/server.json` (ingest address, API URL, API token, CA path;
//! mode 0600), which is how `d4 queue|sensor|stdout` find the server with
//! no flags. A background task persists the policy and sensor metadata
//! every 5 s.
//!
//! The library never listens to signals: [`run`] takes a shutdown future
//! (the `d4` binary passes Ctrl-C / SIGTERM). [`RunningServer::shutdown`]
//! ends sessions (their files finished), compresses and announces the last
//! files, flushes the queue writer and persists metadata.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::ingest::{policy, sensors};
use crate::store::{db as store, queues};
use crate::{accounts, admission, http, monitor, tls, workers};

/// Server-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Frames accepted.
    pub(crate) frames: AtomicU64,
    /// Payload bytes accepted.
    pub(crate) bytes: AtomicU64,
    /// Sessions rejected or closed on error.
    pub(crate) rejects: AtomicU64,
    /// Records skipped (e.g. NDJSON lines that are not JSON).
    pub(crate) skipped: AtomicU64,
    /// Rejections by reason ([`policy::Reject::kind`]).
    pub(crate) rejects_by_reason: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Rejections by whose fault they are ([`policy::Reject::whose`]).
    pub(crate) faults_by_whose: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Stats {
    /// Counts a refused or closed session, by reason and by whose fault.
    pub(crate) fn count_reject(&self, r: &policy::Reject) {
        self.rejects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bump = |m: &std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
                    k: &'static str| {
            *m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(k)
                .or_insert(0) += 1;
        };
        bump(&self.rejects_by_reason, r.kind());
        bump(&self.faults_by_whose, r.whose().as_str());
    }
}

/// State shared by every session and the API.
pub(crate) struct Shared {
    /// The configuration in force.
    pub(crate) cfg: ServerConfig,
    /// Admission policy.
    pub(crate) policy: Arc<policy::Policy>,
    /// Sensor registry.
    pub(crate) sensors: Arc<sensors::Sensors>,
    /// Analyzer queues.
    pub(crate) queues: Arc<queues::Queues>,
    /// What workers need.
    pub(crate) ctx: Arc<workers::WorkerCtx>,
    /// Counters.
    pub(crate) stats: Stats,
    /// Flips to `true` when the server stops.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The local management token (server.json), an admin credential for
    /// the CLI on this machine.
    pub(crate) api_token: String,
    /// Operator accounts and browser sessions.
    pub(crate) accounts: Arc<accounts::Accounts>,
    /// Alerts in force.
    pub(crate) monitor: monitor::Monitor,
    /// Unix seconds when the server started.
    pub(crate) started: i64,
    /// The bound ingest address.
    pub(crate) ingest_addr: SocketAddr,
    /// Kicks, keys and live-connection leases across nodes (Redis mode;
    /// nothing in embedded mode).
    pub(crate) leases: Arc<dyn crate::store::SessionGate>,
    /// Redis mode: sensor metadata and daily statistics in the reference schema.
    pub(crate) meta_mirror: Arc<dyn crate::store::MetaMirror>,
    /// Connection slots of the ingest and HTTPS listeners.
    pub(crate) admission: admission::Admissions,
}

/// How the CLI finds a running server: `<data-dir>/server.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlFile {
    /// The ingest address sensors connect to.
    pub ingest: String,
    /// The management API base URL.
    pub api: String,
    /// The API token.
    pub token: String,
    /// The CA certificate that signs the API's (and ingest's) certificate.
    pub ca: PathBuf,
}

/// The name of the control file inside the data dir.
pub const CONTROL_FILE: &str = "server.json";

/// A running server.
pub struct RunningServer {
    /// Where sensors connect.
    pub ingest_addr: SocketAddr,
    /// Where the management API listens.
    pub api_addr: SocketAddr,
    /// Shared state (for tests and the API).
    pub(crate) shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

fn random_token() -> String {
    let b: [u8; 24] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// This machine's host name (`/etc/hostname`), or "" if unknown.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Writes a file only its owner can read (keys, tokens). A file already
/// there is removed first and a new one created (never opened through a
/// symbolic link, never keeping the old file's permissions).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot replace {}", path.display()))
        }
        _ => {}
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .and_then(|mut f| f.write_all(data))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Starts the server: TLS material, store, listeners, background tasks.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer> {
    cfg.validate()?;
    // Before anything opens files: descriptors for every budget.
    let fds = admission::fds::raise();
    let (ingest_limits, web_limits) = admission::fds::budgets(&cfg, fds.soft);
    let data_dir = cfg.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let tls_dir = data_dir.join("tls");
    tls::ensure_material(&tls_dir)?;
    let ingest_tls = tls::server_config(&tls_dir, &[])?;
    let api_tls = tls::server_config(&tls_dir, &[b"http/1.1"])?;

    let db = Arc::new(store::Db::open(&data_dir.join("store"))?);
    let policy = Arc::new(policy::Policy::load(&cfg, db.clone())?);
    let sensors = Arc::new(sensors::Sensors::load(db.clone())?);
    let crate::store::Backends {
        queues,
        gate: leases,
        mirror: meta_mirror,
    } = match cfg.redis_targets()? {
        None => crate::store::embedded::open(db.clone())?,
        Some((meta, lists)) => {
            crate::store::redis::open(&cfg, &meta, &lists, &db, &policy, &sensors, &data_dir)
                .await?
        }
    };
    let ctx = Arc::new(workers::WorkerCtx {
        data_root: data_dir.join("data"),
        rotation: Duration::from_secs(cfg.rotation_secs),
        compressor: workers::Compressor::start(cfg.gzip_level, queues.clone()),
        local_time: cfg.timezone == crate::config::TimeZone::Local,
    });
    // Files a crash or a full disk left unfinished or not announced.
    let n = workers::recover(&ctx.data_root, &ctx.compressor, cfg.gzip_level);
    if n > 0 {
        tracing::warn!(
            "{n} files from a previous run were not finished or not announced: they are being finished and announced"
        );
    }
    // Re-opens the store by itself once a full disk takes writes again.
    db.start_healer()?;
    let api_token = match db.get_doc::<String>("api_token")? {
        Some(t) => t,
        None => {
            let t = random_token();
            db.put_docs(&[("api_token".to_string(), &t)])?;
            t
        }
    };

    let accounts = Arc::new(accounts::Accounts::load(db.clone())?);

    let ingest = TcpListener::bind(cfg.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (in use? choose another with --listen)",
            cfg.listen
        )
    })?;
    let web = TcpListener::bind(cfg.web).await.with_context(|| {
        format!(
            "cannot listen on {} (in use? choose another with --web)",
            cfg.web
        )
    })?;
    let ingest_addr = ingest.local_addr()?;
    let api_addr = web.local_addr()?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        cfg: ServerConfig {
            data_dir: data_dir.clone(),
            ..cfg.clone()
        },
        policy,
        sensors,
        queues,
        ctx,
        stats: Stats::default(),
        shutdown: shutdown_rx,
        api_token: api_token.clone(),
        accounts,
        monitor: monitor::Monitor::default(),
        started: chrono::Utc::now().timestamp(),
        ingest_addr,
        leases,
        meta_mirror,
        admission: admission::Admissions {
            ingest: admission::Admission::new("ingest", ingest_limits),
            web: admission::Admission::new("web", web_limits),
            fds,
        },
    });

    let api_host = if api_addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), api_addr.port())
    } else {
        api_addr
    };
    let control = ControlFile {
        ingest: ingest_addr.to_string(),
        api: format!("https://{api_host}"),
        token: api_token,
        ca: tls_dir.join(tls::CA_CERT),
    };
    if shared.accounts.ensure_admin(&data_dir, &control.api)? {
        tracing::warn!(
            "first start: the web UI's admin password and API key are in {} (the password must be changed at first login)",
            data_dir.join(accounts::DEFAULT_PASSWORD_FILE).display()
        );
    }
    write_private(
        &data_dir.join(CONTROL_FILE),
        &serde_json::to_vec_pretty(&control)?,
    )?;

    let mut tasks = JoinSet::new();
    tasks.spawn(crate::ingest::listener::accept_loop(
        shared.clone(),
        ingest,
        TlsAcceptor::from(ingest_tls),
    ));
    tasks.spawn(http::serve(shared.clone(), web, TlsAcceptor::from(api_tls)));
    tasks.spawn(monitor::run(shared.clone()));
    tasks.spawn(crate::series::run(shared.clone()));
    let s2 = shared.clone();
    tasks.spawn(async move {
        let mut sd = s2.shutdown.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = sd.changed() => return,
            }
            let s3 = s2.clone();
            let r = tokio::task::spawn_blocking(move || {
                s3.policy.persist_if_changed()?;
                s3.sensors.persist()
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::error!("cannot persist sensor metadata: {e:#}");
            }
        }
    });
    tracing::info!(
        "d4 server listening: ingest tls://{ingest_addr}, web UI and API https://{api_addr}; mode {:?}; data in {}",
        cfg.mode,
        data_dir.display()
    );
    Ok(RunningServer {
        ingest_addr,
        api_addr,
        shared,
        shutdown: shutdown_tx,
        tasks,
    })
}

impl RunningServer {
    /// Stops accepting, ends sessions (their files finished), compresses and
    /// announces the last files, persists metadata.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            shared.ctx.compressor.shutdown();
            shared.queues.flush_blocking();
            shared.policy.persist_if_changed()?;
            shared.sensors.persist()
        })
        .await??;
        tracing::info!("d4 server stopped");
        Ok(())
    }
}

/// Runs the server until `shutdown` completes (the binary passes Ctrl-C or
/// SIGTERM; tests pass what they like), then stops it gracefully: sessions
/// end with their files finished, the last files are compressed and
/// announced, the queue writer is flushed and metadata persisted.
pub async fn run(cfg: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let server = start(cfg).await?;
    shutdown.await;
    tracing::info!("stopping: finishing files and queues");
    server.shutdown().await
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn private_files_are_new_files_of_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A symbolic link is replaced, not followed.
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "untouched").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        super::write_private(&link, b"secret").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"secret");
    }
}
