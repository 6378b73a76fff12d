//! The loops over the input: an earlier run's spool first ([`replay`]),
//! then the stream itself ([`send`]), read inline or by a reader thread that
//! lets the sender send keepalives while the input is quiet.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Input, RunStats, Stream, FLUSH_AT, READ_SIZE, STOP_CHECK};
use crate::config::ClientConfig;
use crate::spool::Spool;

/// Sends an earlier run's spool, in a session of its own, and clears it
/// once confirmed; returns its size. A stop keeps all of it.
pub(super) fn replay(cfg: &ClientConfig, sp: &mut Spool, stop: &dyn Fn() -> bool) -> Result<u64> {
    // An earlier run's stream the server did not confirm: first, in
    // a session of its own (the new input starts a stream of its own).
    tracing::info!(
        "spool {}: sending first the {} bytes an earlier run did not have confirmed",
        sp.dir().display(),
        sp.bytes()
    );
    let mut once = cfg.clone();
    once.keepalive_secs = 0;
    once.end_frame = false;
    send(&once, sp.reader()?, stop, None).with_context(|| {
        format!(
            "the spool {} is kept, to be sent by the next run",
            sp.dir().display()
        )
    })?;
    if stop() {
        // The replay may have been cut short: keep all of it.
        bail!(
            "stopped on request while sending the spool {}: it is kept, to be sent by the next run",
            sp.dir().display()
        );
    }
    let replayed = sp.bytes();
    sp.clear(cfg.ty)?;
    Ok(replayed)
}

/// One stream, from its reader to the server's confirmation.
pub(super) fn send(
    cfg: &ClientConfig,
    mut input: impl Read + Send + 'static,
    stop: &dyn Fn() -> bool,
    spool: Option<Spool>,
) -> Result<RunStats> {
    let mut s = Stream::new(cfg, stop, spool)?;
    if s.connector.is_some() {
        // Connect before reading, so a wrong address or CA fails fast
        // (with a quiet input: once its reader runs, see send_with_keepalive).
    } else if s.meta.is_some() {
        let opening = s.opening_frames();
        s.unflushed.frames.extend_from_slice(&opening);
    }
    // Large reads cut into snaplen frames: for a regular file this gives the
    // reference client's frames (each of its reads returns min(snaplen, rest))
    // at a fraction of the system calls; a pipe gives frames of what is there.
    // A reader thread lets the sender send keepalives while the input is quiet.
    let read_size = (READ_SIZE / cfg.snaplen).max(1) * cfg.snaplen;
    if s.connector.is_none() || cfg.keepalive_secs == 0 {
        // No keepalive needed (stdout, or a file that is never quiet): read
        // inline, the data stays in this core's cache.
        if s.connector.is_some() {
            s.flush()?;
        }
        let mut buf = vec![0u8; read_size];
        while !stop() {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read the input"),
            };
            s.stats.bytes += n as u64;
            for piece in buf[..n].chunks(cfg.snaplen) {
                s.push(piece);
            }
            if s.unflushed.frames.len() >= FLUSH_AT || n < read_size {
                s.flush()?;
            }
        }
    } else {
        send_with_keepalive(&mut s, cfg, input, read_size)?;
    }
    if cfg.end_frame {
        s.push(&[]);
    }
    s.finish()?;
    Ok(s.stats)
}

/// The send loop with a reader thread, so that an empty frame goes out after
/// `keepalive_secs` without input (a quiet pipe keeps its connection).
pub(super) fn send_with_keepalive(
    s: &mut Stream<'_>,
    cfg: &ClientConfig,
    mut input: impl Read + Send + 'static,
    read_size: usize,
) -> Result<()> {
    // Buffers go back and forth between the reader and the sender (no
    // allocation per read).
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(4);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..4 {
        let _ = free_tx.send(vec![0u8; read_size]);
    }
    std::thread::Builder::new()
        .name("d4-client-input".into())
        .spawn(move || {
            while let Ok(mut buf) = free_rx.recv() {
                loop {
                    match input.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if tx.send(Ok((buf, n))).is_err() {
                                return;
                            }
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            }
        })
        .context("starting the input reader")?;
    s.input = Some(Input { rx, free: free_tx });
    if s.connector.is_some() {
        // Backoff waits read on into the spool, if there is one.
        s.flush()?;
    }
    let keepalive = Duration::from_secs(cfg.keepalive_secs.max(1));
    let mut quiet_since = Instant::now();
    // The reader may be blocked on a quiet input: a stop leaves it there.
    while !(s.stop)() {
        // What was read into the spool while away goes first.
        s.drain_backlog()?;
        if let Some(e) = s.input_error.take() {
            return Err(e).context("cannot read the input");
        }
        let Some(input) = &s.input else { break };
        let (buf, n) = match input.rx.recv_timeout(STOP_CHECK) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e).context("cannot read the input"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if quiet_since.elapsed() >= keepalive {
                    s.push(&[]);
                    s.flush()?;
                    quiet_since = Instant::now();
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        quiet_since = Instant::now();
        s.stats.bytes += n as u64;
        for piece in buf[..n].chunks(cfg.snaplen) {
            s.push(piece);
        }
        if let Some(input) = &s.input {
            let _ = input.free.send(buf);
        }
        if s.unflushed.frames.len() >= FLUSH_AT || n < read_size {
            s.flush()?;
        }
    }
    // On a stop, what the reader had already handed over (at most its four
    // buffers) is sent too: it was read, so it counts as input.
    if let Some(input) = &s.input {
        let queued: Vec<(Vec<u8>, usize)> = input.rx.try_iter().filter_map(Result::ok).collect();
        for (buf, n) in queued {
            s.stats.bytes += n as u64;
            for piece in buf[..n].chunks(cfg.snaplen) {
                s.push(piece);
            }
        }
    }
    s.drain_backlog()?;
    Ok(())
}
