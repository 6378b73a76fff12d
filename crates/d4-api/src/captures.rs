//! The inputs of a command that reads packets from captures (`d4 pdns
//! extract`, `d4 tls fingerprint`, `d4 maltrail match`): `-r FILE|DIR|-`
//! (pcap, pcapng, gzip of either; a folder's files in name order; stdin)
//! and `-u QUEUE`, a type-1 queue of a D4 server whose items name capture
//! files, each read once. The command gives a [`PacketSink`]; this module
//! opens, gunzips, reads and reports, the same way for every such command.
//!
//! A capture that cannot be read, or ends damaged, is reported on stderr
//! (`<command>: <file>: <why>`), its packets before the damage handled,
//! and named in the list [`CaptureArgs::read`] returns, so that the command
//! exits non-zero after doing what it could. An error of the sink (its
//! output failed) ends the reading at once.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use d4_packet::capture::{CaptureReader, Packet};

use crate::poll::{Handler, Idle, Take};
use crate::queue::Queue;
use crate::Conn;

/// The capture inputs of a command.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// Capture to read (pcap, pcapng, gzip of either; a folder: its files in
    /// name order; `-` for stdin); repeatable. Neither -r nor -u: stdin.
    #[arg(short = 'r', long = "read")]
    pub inputs: Vec<PathBuf>,
    /// Type-1 queue whose items (capture files) to read, each once, until
    /// Ctrl-C; needs the D4 server (its data dir, or --server).
    #[arg(short = 'u', long = "queue")]
    pub queue: Option<String>,
    /// With -u: exit when the queue is empty instead of waiting for more.
    #[arg(long, requires = "queue")]
    pub once: bool,
    // How to reach the server, with -u (flattened: its own flags' docs).
    #[allow(missing_docs)]
    #[command(flatten)]
    pub conn: Conn,
}

/// What a command does with the packets.
pub trait PacketSink {
    /// One packet; `nanos` when its fraction is nanoseconds. An error (the
    /// output failed) ends the reading.
    fn packet(&mut self, p: &Packet, nanos: bool) -> Result<()>;

    /// After each batch of a queue and when it is idle, and at the end.
    fn flush(&mut self) -> Result<()>;
}

/// Wraps a file being read (its length known) in a progress display
/// ([`progress_bar`], or the reader itself for none).
pub type Progress = fn(Box<dyn Read + Send>, u64) -> Box<dyn Read + Send>;

/// A file read with a progress bar on stderr when stderr is a terminal
/// (the reader itself when piped or logged).
pub fn progress_bar<R: Read + Send + 'static>(r: R, len: u64) -> Box<dyn Read + Send> {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() {
        return Box::new(r);
    }
    let style = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    Box::new(
        indicatif::ProgressBar::new(len)
            .with_style(style)
            .wrap_read(r),
    )
}

/// Whether an error is a closed output (`| head`): the reader has what it
/// wanted, so a command stops quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = c
            .downcast_ref::<io::Error>()
            .map(|e| e.kind())
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

impl CaptureArgs {
    /// Whether the command follows a queue until told to stop.
    pub fn follows(&self) -> bool {
        self.queue.is_some() && !self.once
    }

    /// The `-r` files, folders expanded (stdin, `-`, when there is neither
    /// `-r` nor `-u`). Call it before writing anything: an empty folder is
    /// an error.
    pub fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files = d4_packet::inputs::expand(&self.inputs)?;
        if files.is_empty() && self.queue.is_none() {
            files.push(PathBuf::from("-"));
        }
        Ok(files)
    }

    /// Reads `files` (from [`CaptureArgs::files`]), then the queue, into
    /// `sink`; `cmd` names the command in messages. Returns the captures
    /// that could not be read whole (reported on stderr).
    pub fn read(
        &self,
        cmd: &str,
        files: &[PathBuf],
        progress: Progress,
        stop: &dyn Fn() -> bool,
        sink: &mut dyn PacketSink,
    ) -> Result<Vec<String>> {
        let mut failed = Vec::new();
        let mut p = Packet::with_capacity();
        for path in files {
            let name = path.display().to_string();
            match open_input(path, progress) {
                Ok(r) => {
                    if !one(cmd, r, &name, &mut p, sink)? {
                        failed.push(name);
                    }
                }
                Err(e) => {
                    eprintln!("{cmd}: {e:#}");
                    failed.push(name);
                }
            }
            sink.flush()?;
        }
        if let Some(u) = &self.queue {
            let q = Queue::connect(&self.conn, u)?;
            if q.qtype != "1" {
                bail!(
                    "{cmd} reads captures: queue {u} is of type {}, not 1",
                    q.qtype
                );
            }
            let idle = if self.once { Idle::Once } else { Idle::Follow };
            let mut h = QueueCaptures {
                cmd,
                q: &q,
                sink,
                p,
                failed: &mut failed,
            };
            q.poller_take(Take::Read, 16, idle)
                .pause(Duration::from_millis(20), Duration::from_millis(500))
                .retry(None)
                .stop_when(stop)
                .run(&mut h)?;
        }
        Ok(failed)
    }
}

/// Opens an input: stdin for `-`, a file through `progress`; gunzipped
/// when it is gzip.
pub fn open_input(path: &Path, progress: Progress) -> Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return Ok(d4_packet::gz::maybe_gunzip(io::stdin())?);
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let r = progress(Box::new(io::BufReader::with_capacity(256 * 1024, f)), len);
    d4_packet::gz::maybe_gunzip(r).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads one capture into the sink: `Ok(false)` (after saying why) when it
/// is not a capture or ends damaged; `Err` when the sink failed.
fn one(
    cmd: &str,
    r: Box<dyn Read + Send>,
    name: &str,
    p: &mut Packet,
    sink: &mut dyn PacketSink,
) -> Result<bool> {
    let mut reader = match CaptureReader::new(io::BufReader::with_capacity(256 * 1024, r)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{cmd}: {name}: {e}");
            return Ok(false);
        }
    };
    let nanos = reader.nanos();
    loop {
        match reader.next_into(p) {
            Ok(true) => sink.packet(p, nanos)?,
            Ok(false) => return Ok(true),
            Err(e) => {
                eprintln!("{cmd}: {name}: {e}");
                return Ok(false);
            }
        }
    }
}

/// The captures a type-1 queue names; a batch is acknowledged once read
/// and the sink flushed (a crash reads at most one batch again).
struct QueueCaptures<'a> {
    cmd: &'a str,
    q: &'a Queue,
    sink: &'a mut dyn PacketSink,
    p: Packet,
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
            let name = path.display().to_string();
            match d4_packet::gz::open_maybe_gz(&path) {
                Ok(r) => {
                    if !one(self.cmd, r, &name, &mut self.p, self.sink)? {
                        self.failed.push(name);
                    }
                }
                Err(e) => eprintln!("{}: cannot open {name}: {e}", self.cmd),
            }
        }
        self.sink.flush()?;
        Ok(items.len())
    }

    fn idle(&mut self) -> Result<()> {
        self.sink.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(u64, u64);

    impl PacketSink for Count {
        fn packet(&mut self, _: &Packet, _: bool) -> Result<()> {
            self.0 += 1;
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            self.1 += 1;
            Ok(())
        }
    }

    fn no_progress(r: Box<dyn Read + Send>, _: u64) -> Box<dyn Read + Send> {
        r
    }

    /// One Ethernet frame in a microsecond pcap.
    fn pcap(frames: usize) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for _ in 0..frames {
            v.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 14, 0, 0, 0]);
            v.extend_from_slice(&[0u8; 14]);
        }
        v
    }

    #[test]
    fn files_gzip_and_damage_are_read_and_reported() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let plain = d.path().join("a.pcap");
        let gz = d.path().join("b.pcap.gz");
        let bad = d.path().join("c.txt");
        std::fs::write(&plain, pcap(2)).unwrap_or_default();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut enc, &pcap(3)).unwrap_or_default();
        std::fs::write(&gz, enc.finish().unwrap_or_default()).unwrap_or_default();
        std::fs::write(&bad, b"not a capture").unwrap_or_default();
        let a = CaptureArgs {
            inputs: vec![d.path().to_path_buf(), d.path().join("missing.pcap")],
            queue: None,
            once: false,
            conn: Conn {
                data_dir: PathBuf::from("d4-data"),
                server: None,
                token: None,
                ca: None,
            },
        };
        let files = a.files().unwrap_or_default();
        assert_eq!(files.len(), 4);
        let mut sink = Count(0, 0);
        let failed = a
            .read("test", &files, no_progress, &|| false, &mut sink)
            .unwrap_or_default();
        assert_eq!(sink.0, 5);
        assert_eq!(sink.1, 4, "flushed after each file");
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed[0].ends_with("c.txt") && failed[1].ends_with("missing.pcap"));
    }
}
