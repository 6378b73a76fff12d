//! `d4 server`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use d4_server::{Mode, ServerConfig};

/// Run the D4 server.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 server                                  # defaults: ./d4-data, [::]:4443, https://127.0.0.1:7000\n  d4 server --mode shared-secret --listen 127.0.0.1:4443\n  d4 server --config /etc/d4/server.toml\n  d4 server --store redis://127.0.0.1:6379   # queues and policy in Redis\n\nOn first start the CA for sensors is written to <data-dir>/tls/ca.crt (use it as rootCA.crt),\nthe management API address and local token to <data-dir>/server.json, and the web UI's\nadmin password and API key to <data-dir>/DEFAULT_PASSWORD: log in at https://127.0.0.1:7000/\nas admin with it; the password must be changed at first login (the file is then removed)."
)]
pub(crate) struct Args {
    /// TOML configuration file (see docs/CONFIG.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (TLS material, store, stored streams).
    #[arg(long, env = "D4_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TLS ingest address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Web UI and REST API address (HTTPS, certificate from the server's CA).
    #[arg(long)]
    web: Option<SocketAddr>,
    /// URL that monitoring alerts are POSTed to (JSON), e.g. a chat or paging webhook.
    #[arg(long)]
    webhook: Option<String>,
    /// Admission mode: registration (approve each sensor) or shared-secret (any sensor with the key).
    #[arg(long, value_parser = ["registration", "shared-secret"])]
    mode: Option<String>,
    /// Seconds between file rotations.
    #[arg(long)]
    rotation_secs: Option<u64>,
    /// Seconds a session may go without a complete frame header.
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// gzip level for finished files, 1-9 (0: do not compress).
    #[arg(long)]
    gzip_level: Option<u32>,
    /// Where analyzer queues live: `embedded` (default), or
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]` (also `rediss://`, `unix:///PATH`)
    /// for the reference key schema (lists in DB 2 of that server), read by
    /// the D4 ecosystem's analyzers with RPOP; TLS files in the config.
    #[arg(long, default_value = "embedded")]
    store: String,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let mut cfg = match &a.config {
        Some(p) => ServerConfig::from_file(p)?,
        None => ServerConfig::default(),
    };
    match a.store.as_str() {
        "embedded" => {}
        u if ["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|p| u.starts_with(p)) =>
        {
            cfg.redis_url = Some(u.to_string())
        }
        _ => bail!("--store: give `embedded` or redis://[:PASSWORD@]HOST:PORT[/DB]"),
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(w) = a.web {
        cfg.web = w;
    }
    if let Some(h) = a.webhook {
        cfg.webhook_url = Some(h);
    }
    if let Some(m) = a.mode {
        cfg.mode = if m == "shared-secret" {
            Mode::SharedSecret
        } else {
            Mode::Registration
        };
    }
    if let Some(r) = a.rotation_secs {
        cfg.rotation_secs = r;
    }
    if let Some(t) = a.idle_timeout_secs {
        cfg.idle_timeout_secs = t;
    }
    if let Some(g) = a.gzip_level {
        cfg.gzip_level = g;
    }
    if cfg.gzip_level > 9 {
        bail!("--gzip-level must be 0-9");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(d4_server::run(cfg, stop_signal()))
}

/// Completes at the first Ctrl-C or SIGTERM: the server then stops
/// gracefully (the library only takes this future; signals are the binary's).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
