//! The inputs of the commands that read captures (`d4 pdns extract`, `d4 tls
//! fingerprint`, `d4 maltrail match`): files and folders given with `-r`
//! (pcap, pcapng, gzip), stdin (`-`, the default without `-u`), and the
//! capture files a type-1 queue of a D4 server names (`-u QUEUE`, followed
//! until stopped or drained once with `--once`).
//!
//! A command says what it does with one capture ([`Captures`]); this module
//! opens the inputs in order, reports each that cannot be read (by name, on
//! stderr) and goes on with the next, and returns the names that failed so
//! the command ends non-zero after writing what it could.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use d4_packet::capture::{CaptureReader, Packet};

use crate::poll::{Handler, Idle};
use crate::queue::Queue;
use crate::Conn;

/// What a capture-reading command does with each capture.
pub trait Captures {
    /// Reads one capture (`name` for messages); false, after saying why on
    /// stderr, when it is not a capture or ends on an error.
    fn capture(&mut self, r: Box<dyn Read + Send>, name: &str) -> bool;

    /// The queue is empty for now: write out what waits.
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Where a command reads its captures.
pub struct CaptureInputs<'a> {
    /// The command, for messages (`d4 tls fingerprint`).
    pub cmd: &'a str,
    /// `-r` files and folders (`-` for stdin).
    pub inputs: &'a [PathBuf],
    /// `-u`: a type-1 queue whose items name capture files.
    pub queue: Option<&'a str>,
    /// `--once`: drain the queue, then return.
    pub once: bool,
}

impl CaptureInputs<'_> {
    /// Reads every input into `h`, then the queue's captures until `stop`
    /// (or until it is empty, with `--once`). Returns the inputs that could
    /// not be read. Errors only on what stops everything: a folder that
    /// cannot be listed, a queue that does not exist or is not of type 1.
    pub fn run(
        &self,
        conn: &Conn,
        stop: impl Fn() -> bool,
        h: &mut dyn Captures,
    ) -> Result<Vec<String>> {
        let mut inputs = d4_packet::inputs::expand(self.inputs)?;
        if inputs.is_empty() && self.queue.is_none() {
            inputs.push(PathBuf::from("-"));
        }
        let mut failed = Vec::new();
        for path in &inputs {
            let name = path.display().to_string();
            match open_input(path) {
                Ok(r) => {
                    if !h.capture(r, &name) {
                        failed.push(name);
                    }
                }
                Err(e) => {
                    eprintln!("{}: {e:#}", self.cmd);
                    failed.push(name);
                }
            }
        }
        if let Some(u) = self.queue {
            let q = Queue::connect(conn, u)?;
            if q.qtype != "1" {
                bail!(
                    "{} reads captures: queue {u} is of type {}, not 1",
                    self.cmd,
                    q.qtype
                );
            }
            let idle = if self.once { Idle::Once } else { Idle::Follow };
            q.poller(64, idle)
                .pause(Duration::from_millis(20), Duration::from_millis(500))
                .retry(None)
                .stop_when(stop)
                .run(&mut QueueCaptures {
                    cmd: self.cmd,
                    q: &q,
                    h,
                    failed: &mut failed,
                })?;
        }
        Ok(failed)
    }
}

/// Opens a capture: `-` is stdin, gzip or not; a file is decompressed when
/// it is gzip.
pub fn open_input(p: &Path) -> Result<Box<dyn Read + Send>> {
    if p == Path::new("-") {
        return Ok(d4_packet::gz::maybe_gunzip(io::stdin())?);
    }
    d4_packet::gz::open_maybe_gz(p).with_context(|| format!("cannot open {}", p.display()))
}

/// Reads the packets of one capture into `f` (the packet, and whether its
/// timestamps are in nanoseconds) until `f` returns false or the capture
/// ends. False, after saying why on stderr, when it is not a capture or
/// ends on an error (the packets before the damage were given to `f`).
pub fn each_packet(
    cmd: &str,
    r: Box<dyn Read + Send>,
    name: &str,
    mut f: impl FnMut(&Packet, bool) -> bool,
) -> bool {
    let mut reader = match CaptureReader::new(io::BufReader::with_capacity(256 * 1024, r)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{cmd}: {name}: {e}");
            return false;
        }
    };
    let nanos = reader.nanos();
    let mut p = Packet::with_capacity();
    loop {
        match reader.next_into(&mut p) {
            Ok(true) => {
                if !f(&p, nanos) {
                    return true;
                }
            }
            Ok(false) => return true,
            Err(e) => {
                eprintln!("{cmd}: {name}: {e}");
                return false;
            }
        }
    }
}

/// The captures a type-1 queue names, given to a [`Captures`].
struct QueueCaptures<'a> {
    cmd: &'a str,
    q: &'a Queue,
    h: &'a mut dyn Captures,
    /// Captures that ended on an error.
    failed: &'a mut Vec<String>,
}

impl Handler for QueueCaptures<'_> {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        for it in &items {
            let path = match self.q.file_item(it) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{}: {e:#}", self.cmd);
                    continue;
                }
            };
            match open_input(&path) {
                Ok(r) => {
                    let name = path.display().to_string();
                    if !self.h.capture(r, &name) {
                        self.failed.push(name);
                    }
                }
                Err(e) => eprintln!("{}: {e:#}", self.cmd),
            }
        }
        Ok(items.len())
    }

    fn idle(&mut self) -> Result<()> {
        self.h.idle()
    }
}
