//! `d4 stdout`: pop an analyzer queue to standard output.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use d4_api::poll::{Idle, Poller, Take};
use d4_api::{Api, Conn};

/// Pop a queue to stdout.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 stdout -t 8 -u QUEUE -n                 # passivedns lines, one per line, until Ctrl-C\n  d4 stdout -t 1 -u QUEUE -f > all.pcap      # the captures, gunzipped, as one pcap stream\n  d4 stdout -t 3 -u QUEUE -n --once          # what is there now, then exit"
)]
pub(crate) struct Args {
    #[command(flatten)]
    q: QueueArg,
    /// Items are file paths: write the files' contents (gunzipped) instead.
    #[arg(short = 'f', long = "files")]
    files: bool,
    /// Write a newline after each item.
    #[arg(short = 'n', long = "newline")]
    newline: bool,
    /// Exit 0 when the queue is empty instead of waiting for more.
    #[arg(long)]
    once: bool,
    /// Items popped per request.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[command(flatten)]
    conn: Conn,
}

/// The queue a consumer reads (`-t TYPE -u QUEUE`, the reference tools' flags).
#[derive(clap::Args)]
pub(crate) struct QueueArg {
    /// Queue type: D4 type number or extended type name (must match the queue).
    #[arg(short = 't', long = "type")]
    pub(crate) ty: String,
    /// Queue UUID.
    #[arg(short = 'u', long = "uuid")]
    pub(crate) queue: String,
}

impl QueueArg {
    /// The queue's type, checked to be `-t`.
    pub(crate) fn check(&self, api: &Api) -> Result<String> {
        queue_type(api, &self.queue, &self.ty)
    }
}

/// Writes files named by items; for pcap files, drops the global header of
/// every file after the first when it is the same, so the output is one pcap.
struct FileStreamer {
    pcap_header: Option<[u8; 24]>,
    /// The server's `<data-dir>/data`: items must name regular files below it.
    root: Option<std::path::PathBuf>,
}

impl FileStreamer {
    fn stream(&mut self, path: &Path, out: &mut impl Write) -> Result<()> {
        let mut r =
            d4_api::open_item_file(path.as_os_str().as_encoded_bytes(), self.root.as_deref())?;
        let mut head = [0u8; 24];
        let mut n = 0;
        while n < 24 {
            match r
                .read(&mut head[n..])
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                0 => break,
                k => n += k,
            }
        }
        let is_pcap = n == 24 && d4_packet::GlobalHeader::parse(&head).is_ok();
        if is_pcap && self.pcap_header == Some(head) {
            // Same capture parameters: continue the stream without a second header.
        } else {
            out.write_all(&head[..n])?;
            if is_pcap {
                self.pcap_header = Some(head);
            }
        }
        io::copy(&mut r, out).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(())
    }
}

/// The type of `queue`, checked to be `ty` (the `-t` of the queue consumers).
fn queue_type(api: &Api, queue: &str, ty: &str) -> Result<String> {
    let q = api.get(&format!("/queues/{queue}"))?;
    let qtype = q["type"].as_str().unwrap_or_default();
    if qtype != ty.trim() {
        bail!("queue {queue} is of type {qtype}, not {ty}");
    }
    Ok(qtype.to_string())
}

/// Only queues whose items the server writes as paths of its own files may
/// be read with -f: a line from a sensor must never name a file to open.
pub(crate) fn check_file_items(qtype: &str) -> Result<()> {
    if !matches!(qtype, "1" | "4" | "5" | "7") {
        bail!("-f reads the files named by queue items: only queues of types 1, 4, 5 and 7 carry file paths (this one is {qtype})");
    }
    Ok(())
}

pub(crate) fn run(a: Args) -> Result<()> {
    let api = Api::connect(&a.conn)?;
    if !a.once {
        // The batch in hand is written out before exiting: no popped item is lost.
        crate::signals::catch(|n| {
            if n > 1 {
                std::process::exit(130);
            }
        });
    }
    let qtype = a.q.check(&api)?;
    if a.files {
        check_file_items(&qtype)?;
    }
    let data_root = d4_api::data_root(&api);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut files = FileStreamer {
        pcap_header: None,
        root: data_root,
    };
    let idle = if a.once { Idle::Once } else { Idle::Follow };
    let mut poller = Poller::new(&api, &a.q.queue, Take::Pop, a.batch, idle)
        .stop_when(crate::signals::interrupted);
    poller.run(&mut |items: Vec<Vec<u8>>| -> Result<usize> {
        let n = items.len();
        for item in items {
            let r = if a.files {
                let p = String::from_utf8_lossy(&item).into_owned();
                match files.stream(Path::new(&p), &mut out) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        // A missing or corrupt file loses that file only.
                        eprintln!("d4: {e:#}");
                        Ok(())
                    }
                }
            } else {
                out.write_all(&item)
            };
            r.and_then(|_| {
                if a.newline {
                    out.write_all(b"\n")
                } else {
                    Ok(())
                }
            })
            .and_then(|_| out.flush())
            .or_else(|e| {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    std::process::exit(0)
                } else {
                    Err(e)
                }
            })?;
        }
        Ok(n)
    })
}
