//! `d4 client`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use d4_client::{ClientConfig, Destination, Source};

/// Run a sensor.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  tcpdump -n -s0 -w - 'not tcp port 4443' | d4 client -c conf  # conf/: destination, type, uuid, key, rootCA.crt\n  d4 client -c conf --file capture.pcap\n  d4 client -c conf --file capture.pcap --speed 4   # paced by its timestamps, 4x faster\n  d4 client --config sensor.toml\n  tcpdump -n -s0 -w - 'not tcp port 4443' | d4 client -c conf --spool /var/spool/d4  # kept until confirmed\n\nA live capture must leave out the sensor's own upload (the filter above, with your server's port):\nthe sensor warns once if the capture it sends holds its own connection to the server.\n\nThe configuration directory is the reference layout: one file per setting (source, destination,\nuuid, key, snaplen, type, version, metaheader.json, rootCA.crt, spool_dir, spool_max_bytes).\n\nSources (the `source` file; docs/CONFIG.md, \"Sensor sources\"):\n  stdin       standard input (the default)\n  file, pcap  the file named in `file`; pcap with `speed` N > 0: paced, N times faster\n  folder      each closed file of `folder` once, whole, oldest first; folder_settle_ms\n              (1000), folder_done (keep|delete|move:DIR); folder.sent: what was confirmed\n  d4server    the items of a Redis list of another D4 server, oldest first, each whole;\n              redis_d4 (host:port/db), redis_queue (analyzer:TYPE:QUEUE), redis_wait_ms\nA missing uuid is generated and written back. The server is verified against rootCA.crt unless --insecure is given.\n\nExit status 0 only once the server confirmed it stored everything (TLS close_notify). One SIGTERM\nstops the sensor within seconds (exit 1 unless what it read was confirmed); Ctrl-C lets the\nproducer end the input first, a second one quits now."
)]
pub(crate) struct Args {
    /// Reference configuration directory.
    #[arg(short = 'c', long = "conf-dir", conflicts_with = "config")]
    conf_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read this file instead of the configured source.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Replay the capture (`--file`, or a `pcap` source) paced by its
    /// timestamps: 1 its own pace, N times faster; 0 as fast as possible.
    #[arg(long, value_name = "FACTOR")]
    speed: Option<f64>,
    /// Sources that follow (folder, d4server): exit 0 once nothing is left
    /// to send (no file closed or settling; an empty list).
    #[arg(long)]
    once: bool,
    /// Send here instead of the configured destination (`stdout` or host:port).
    #[arg(long)]
    destination: Option<String>,
    /// Do not verify the server certificate (anyone on the path can read and change the stream).
    #[arg(long)]
    insecure: bool,
    /// Name to verify in the server certificate (default: the destination host).
    #[arg(long)]
    tls_name: Option<String>,
    /// Write this Unix timestamp in every header instead of the clock (reproducible output).
    #[arg(long)]
    timestamp: Option<u64>,
    /// End the stream with an empty frame, as the reference C client does.
    #[arg(long)]
    end_frame: bool,
    /// Give up after N retries in a row (0: at the first failure; default:
    /// retry forever). A failure is a connection that cannot be made or is
    /// lost, or a stream whose end the server did not confirm.
    #[arg(long)]
    max_retries: Option<u32>,
    /// Longest wait between reconnection attempts, seconds.
    #[arg(long, default_value_t = 30)]
    max_backoff: u64,
    /// Bytes already sent that are sent again after a reconnection (D4 has no
    /// acknowledgement; duplicates after a drop are bounded by this).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    replay_window: usize,
    /// Do not wait for the server's confirmation (TLS close_notify) at the end
    /// of the stream; for servers that close without it.
    #[arg(long)]
    no_confirm: bool,
    /// Seconds without input before an empty frame keeps the connection alive.
    #[arg(long, default_value_t = 10)]
    keepalive: u64,
    /// Keep what the server has not confirmed in this directory, and send it
    /// first on the next start (survives a restart or a kill of the sensor).
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Bound on the spool, bytes (oldest dropped, counted); default 256 MiB.
    #[arg(long, value_name = "BYTES")]
    spool_max_bytes: Option<u64>,
}

/// The sensor's errors as text: a server that hangs up makes the network
/// I/O fail with EPIPE, which `main` must not take for a closed stdout
/// (`| head`, exit 0).
fn flat(e: anyhow::Error, cfg: &ClientConfig) -> anyhow::Error {
    match cfg.destination {
        Destination::Server(_) => anyhow::anyhow!("{e:#}"),
        Destination::Stdout => e,
    }
}

/// A file that ends early on Ctrl-C, so that what was read is still sent.
struct StopOnInterrupt<R>(R);

impl<R: Read> Read for StopOnInterrupt<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if crate::signals::interrupted() {
            return Ok(0);
        }
        self.0.read(buf)
    }
}

/// Standard input without std's 8 KiB buffer: one read(2) per frame, as the
/// reference client does (so frame boundaries match it byte for byte).
fn raw_stdin() -> Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot use standard input")?;
        Ok(std::fs::File::from(fd))
    }
    #[cfg(not(unix))]
    {
        std::fs::File::open("CONIN$").context("cannot use standard input")
    }
}

/// Sources that follow (folder, d4server) stop between sessions on Ctrl-C
/// or SIGTERM.
fn quit() -> bool {
    crate::signals::interrupted()
}

/// How long a session in flight may go on after SIGTERM to be confirmed
/// (its files or items are otherwise sent again by the next run).
const FINISH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The sender's stop check for sources that follow: SIGTERM lets the
/// session in flight finish for [`FINISH_GRACE`].
fn stop_after_grace() -> bool {
    static SINCE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    crate::signals::terminated()
        && SINCE.get_or_init(std::time::Instant::now).elapsed() >= FINISH_GRACE
}

/// A sensor configuration from `-c DIR` or `--config FILE.toml`.
pub(crate) fn load_config(
    conf_dir: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
) -> Result<ClientConfig> {
    match (conf_dir, config) {
        (Some(d), _) => ClientConfig::from_dir(d),
        (None, Some(f)) => ClientConfig::from_toml(f),
        (None, None) => {
            bail!("give a configuration: -c DIR (reference layout) or --config FILE.toml")
        }
    }
}

pub(crate) fn run(a: Args) -> Result<()> {
    let mut cfg = load_config(a.conf_dir.as_deref(), a.config.as_deref())?;
    if let Some(f) = a.file {
        cfg.source = Source::File(f);
    }
    if let Some(speed) = a.speed {
        d4_client::config::check_speed(speed)?;
        cfg.source = match cfg.source {
            Source::File(file) | Source::Pcap { file, .. } if speed > 0.0 => {
                Source::Pcap { file, speed }
            }
            Source::File(file) | Source::Pcap { file, .. } => Source::File(file),
            _ => bail!("--speed replays a capture: give it with --file or a `pcap` source"),
        };
    }
    if let Some(d) = a.destination {
        cfg.destination = if d == "stdout" || d == "-" {
            Destination::Stdout
        } else {
            Destination::Server(d)
        };
    }
    cfg.insecure |= a.insecure;
    cfg.tls_name = a.tls_name.or(cfg.tls_name);
    cfg.fixed_timestamp = a.timestamp.or(cfg.fixed_timestamp);
    cfg.end_frame |= a.end_frame;
    cfg.max_retries = a.max_retries;
    cfg.max_backoff_secs = a.max_backoff;
    cfg.replay_window = a.replay_window;
    cfg.confirm = !a.no_confirm;
    cfg.keepalive_secs = a.keepalive;
    if let Some(d) = a.spool {
        cfg.spool_dir = Some(d);
    }
    if let Some(n) = a.spool_max_bytes {
        cfg.spool_max_bytes = n;
    }
    // Ctrl-C reaches the whole pipeline (`tcpdump | d4 client`): let the
    // producer end the input, then send everything and exit; a second one
    // quits now. SIGTERM (`kill`, `timeout`, `systemctl stop`) is for this
    // process alone: stop reading, send what was read on a connection that
    // is up (no new one, no backoff wait), and exit non-zero unless the
    // server confirmed it; bounded by STOP_GRACE whatever the server does.
    crate::signals::finish_or_stop(crate::signals::Stop {
        command: "d4 client",
        on_interrupt: "finishing (sending what was read); Ctrl-C again to quit now",
        on_terminate: "SIGTERM: stopping (no more input, no new connection)",
        after_grace: "what the server did not confirm is not delivered",
    });
    let stats = match &cfg.source {
        Source::Stdin => {
            let stdin = raw_stdin()?;
            if stdin.metadata().map(|m| m.is_file()).unwrap_or(false) {
                cfg.keepalive_secs = 0; // a file is never quiet: no reader thread
            }
            d4_client::run_until(&cfg, stdin, &crate::signals::terminated)
                .map_err(|e| flat(e, &cfg))?
        }
        Source::File(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let meta = f.metadata().ok();
            let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            if meta.is_some_and(|m| m.is_file()) {
                cfg.keepalive_secs = 0; // a file is never quiet: no reader thread
            }
            let f = StopOnInterrupt(f);
            let input: Box<dyn Read + Send> = if cfg.destination == Destination::Stdout {
                Box::new(f)
            } else {
                crate::with_progress(f, len)
            };
            d4_client::run_until(&cfg, input, &crate::signals::terminated)
                .map_err(|e| flat(e, &cfg))?
        }
        Source::Pcap { file, speed } => {
            let r = d4_client::replay::Replay::open(file, *speed)?;
            d4_client::run_until(&cfg, StopOnInterrupt(r), &crate::signals::terminated)
                .map_err(|e| flat(e, &cfg))?
        }
        Source::Folder(f) => {
            let s = d4_client::folder::run(&cfg, f, a.once, &quit, &stop_after_grace)
                .map_err(|e| flat(e, &cfg))?;
            tracing::info!(
                "sent {} files ({} bytes) in {} sessions",
                s.files,
                s.bytes,
                s.sessions
            );
            return Ok(());
        }
        Source::D4Server { redis, queue, wait } => {
            let s =
                crate::d4server::run(&cfg, redis, queue, *wait, a.once, &quit, &stop_after_grace)
                    .map_err(|e| flat(e, &cfg))?;
            tracing::info!("sent {} items ({} bytes)", s.items, s.bytes);
            return Ok(());
        }
    };
    if cfg.destination != Destination::Stdout {
        tracing::info!(
            "sent {} bytes in {} frames ({} reconnections)",
            stats.bytes,
            stats.frames,
            stats.reconnects
        );
        if stats.spool_replayed > 0 {
            tracing::info!(
                "sent first {} bytes spooled by an earlier run",
                stats.spool_replayed
            );
        }
        if stats.spool_dropped > 0 {
            tracing::warn!(
                "the spool dropped {} bytes (its oldest) to stay within its bound",
                stats.spool_dropped
            );
        }
    }
    Ok(())
}
