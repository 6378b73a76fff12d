//! The queue-polling loop every consumer shares: take a batch (pop, or read
//! then acknowledge), hand it to the consumer, pause when the queue is
//! empty (growing pauses while following it), retry failed requests while
//! following, and stop when the caller says so.
//!
//! With [`Take::Read`], items are acknowledged (removed from the queue) only
//! after the handler returned `Ok`, and only as many as it says it handled:
//! a crash or an error repeats at most the batch in hand.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::Api;

/// How items leave the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Popped: removed when they are handed out (a crash loses the batch in hand).
    Pop,
    /// Read, then acknowledged once the handler has handled them.
    Read,
}

/// What to do when the queue is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Wait for more (until the stop check says stop).
    Follow,
    /// Return: the queue is drained.
    Once,
}

/// What a consumer does with what the poller gives it.
pub trait Handler {
    /// Handles a batch (never empty); returns how many of its items, from
    /// the first, were handled (with [`Take::Read`], those are acknowledged).
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize>;

    /// Runs when the queue is found empty, before a pause or before
    /// returning with [`Idle::Once`] (e.g. to flush what was written).
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<F: FnMut(Vec<Vec<u8>>) -> Result<usize>> Handler for F {
    fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
        self(items)
    }
}

/// Polls one queue. See the [module documentation](self).
pub struct Poller<'a> {
    api: &'a Api,
    queue: &'a str,
    take: Take,
    /// Items asked for per request (1..=10,000, the server's bound).
    batch: usize,
    idle: Idle,
    /// The first pause on an empty queue; it doubles up to `pause_max`.
    pause_min: Duration,
    pause_max: Duration,
    /// The pause after a failed request while following; `None`: the
    /// error is returned.
    retry: Option<Duration>,
    /// Checked before every request and during pauses: `true` stops the
    /// poller once the batch in hand is handled.
    stop: Box<dyn Fn() -> bool + 'a>,
}

/// How often a pause looks at the stop check.
const STOP_CHECK: Duration = Duration::from_millis(50);

impl<'a> Poller<'a> {
    /// A poller of `queue`, `batch` items at a time. Defaults: pauses of
    /// 100 ms doubling to 2 s on an empty queue; failed requests retried
    /// after 2 s while following ([`Idle::Follow`]), returned otherwise; no
    /// stop check.
    pub fn new(api: &'a Api, queue: &'a str, take: Take, batch: usize, idle: Idle) -> Poller<'a> {
        Poller {
            api,
            queue,
            take,
            batch: batch.clamp(1, 10_000),
            idle,
            pause_min: Duration::from_millis(100),
            pause_max: Duration::from_secs(2),
            retry: (idle == Idle::Follow).then_some(Duration::from_secs(2)),
            stop: Box::new(|| false),
        }
    }

    /// Stops polling when `stop` returns `true` (checked between batches
    /// and during pauses; the batch in hand is handled first).
    pub fn stop_when(mut self, stop: impl Fn() -> bool + 'a) -> Poller<'a> {
        self.stop = Box::new(stop);
        self
    }

    /// Pauses on an empty queue: `min`, doubling up to `max`.
    pub fn pause(mut self, min: Duration, max: Duration) -> Poller<'a> {
        self.pause_min = min;
        self.pause_max = max.max(min);
        self
    }

    /// After a failed request: wait this long and try again (`None`: return
    /// the error).
    pub fn retry(mut self, after: Option<Duration>) -> Poller<'a> {
        self.retry = after;
        self
    }

    /// Polls until the queue is empty ([`Idle::Once`]) or the stop check
    /// says stop. A handler error, or a failed request that is not
    /// retried, ends the loop with that error (with [`Take::Read`], the
    /// batch in hand stays in the queue).
    pub fn run(&mut self, handler: &mut impl Handler) -> Result<()> {
        let mut pause = self.pause_min;
        while !(self.stop)() {
            let (first, items) = match self.fetch() {
                Ok(b) => b,
                Err(e) => match self.retry {
                    Some(after) => {
                        tracing::warn!("{e:#}; retrying");
                        self.sleep(after);
                        continue;
                    }
                    None => return Err(e),
                },
            };
            if items.is_empty() {
                handler.idle()?;
                if self.idle == Idle::Once {
                    return Ok(());
                }
                self.sleep(pause);
                pause = (pause * 2).min(self.pause_max);
                continue;
            }
            pause = self.pause_min;
            let n = items.len();
            let handled = handler.batch(items)?.min(n);
            if let (Take::Read, Some(first)) = (self.take, first) {
                if handled == 0 {
                    // Nothing taken from a batch that is there: wait before
                    // reading it again rather than spin on it.
                    self.sleep(self.pause_max);
                } else {
                    self.api
                        .ack(self.queue, first + handled as u64)
                        .with_context(|| {
                            format!(
                                "handled, but cannot remove the items from queue {} (they will be handled again)",
                                self.queue
                            )
                        })?;
                }
            }
        }
        Ok(())
    }

    /// One request: the number of the first item (with [`Take::Read`]) and
    /// the items.
    fn fetch(&self) -> Result<(Option<u64>, Vec<Vec<u8>>)> {
        match self.take {
            Take::Pop => Ok((None, self.api.pop(self.queue, self.batch)?)),
            Take::Read => {
                let (first, items) = self.api.read(self.queue, self.batch)?;
                Ok((Some(first), items))
            }
        }
    }

    /// Sleeps `d`, or less if the stop check says stop meanwhile.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= end || (self.stop)() {
                return;
            }
            std::thread::sleep((end - now).min(STOP_CHECK));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::Conn;

    /// What the fake server holds: the queue (its first item's number and
    /// the items) and the requests it answered.
    #[derive(Default)]
    struct Queue {
        first: u64,
        items: VecDeque<Vec<u8>>,
        log: Vec<String>,
    }

    /// A plain-HTTP stand-in for the server's pop/read/ack endpoints.
    fn fake_server(items: &[&str]) -> (Api, Arc<Mutex<Queue>>) {
        let q = Arc::new(Mutex::new(Queue {
            items: items.iter().map(|i| i.as_bytes().to_vec()).collect(),
            ..Queue::default()
        }));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let q2 = q.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let q = q2.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        let (op, n) = path
                            .rsplit_once('?')
                            .and_then(|(p, a)| Some((p.rsplit('/').next()?, a.split_once('=')?.1)))
                            .unwrap();
                        let n: u64 = n.parse().unwrap();
                        let mut q = q.lock().unwrap();
                        q.log.push(format!("{op} {n}"));
                        let mut body = Vec::new();
                        let first = q.first;
                        match op {
                            "pop" | "read" => {
                                for i in q.items.iter().take(n as usize) {
                                    body.extend_from_slice(&(i.len() as u32).to_le_bytes());
                                    body.extend_from_slice(i);
                                }
                                if op == "pop" {
                                    let k = q.items.len().min(n as usize);
                                    q.items.drain(..k);
                                    q.first += k as u64;
                                }
                            }
                            _ => {
                                while q.first < n && q.items.pop_front().is_some() {
                                    q.first += 1;
                                }
                                body = b"{}".to_vec();
                            }
                        }
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-d4-first: {first}\r\n\r\n",
                            body.len()
                        );
                        w.write_all(head.as_bytes()).unwrap();
                        w.write_all(&body).unwrap();
                    }
                });
            }
        });
        let api = Api::connect(&Conn {
            data_dir: "/nonexistent".into(),
            server: Some(format!("http://{addr}")),
            token: Some("t".into()),
            ca: None,
        })
        .unwrap();
        (api, q)
    }

    #[test]
    fn read_acknowledges_what_the_handler_handled_and_nothing_on_error() {
        let (api, q) = fake_server(&["a", "b", "c", "d", "e"]);
        let mut seen = Vec::new();
        // Two of each batch handled: acknowledged up to them, the rest read again.
        Poller::new(&api, "q", Take::Read, 3, Idle::Once)
            .run(&mut |items: Vec<Vec<u8>>| -> Result<usize> {
                seen.push(items.concat());
                Ok(2.min(items.len()))
            })
            .unwrap();
        assert_eq!(seen, [b"abc".to_vec(), b"cde".to_vec(), b"e".to_vec()]);
        assert!(q.lock().unwrap().items.is_empty());
        assert_eq!(
            q.lock().unwrap().log,
            ["read 3", "ack 2", "read 3", "ack 4", "read 3", "ack 5", "read 3"]
        );

        let (api, q) = fake_server(&["a", "b"]);
        let r = Poller::new(&api, "q", Take::Read, 10, Idle::Follow)
            .run(&mut |_: Vec<Vec<u8>>| -> Result<usize> { anyhow::bail!("handler failed") });
        assert_eq!(r.unwrap_err().to_string(), "handler failed");
        assert_eq!(q.lock().unwrap().items.len(), 2, "nothing acknowledged");
        assert_eq!(q.lock().unwrap().log, ["read 10"]);
    }

    #[test]
    fn pop_once_calls_idle_and_stop_ends_a_pause() {
        struct H(Vec<u8>, u32);
        impl Handler for H {
            fn batch(&mut self, items: Vec<Vec<u8>>) -> Result<usize> {
                self.0.extend(items.concat());
                Ok(0) // ignored when popping: the items are gone already
            }
            fn idle(&mut self) -> Result<()> {
                self.1 += 1;
                Ok(())
            }
        }
        let (api, q) = fake_server(&["a", "b", "c"]);
        let mut h = H(Vec::new(), 0);
        Poller::new(&api, "q", Take::Pop, 2, Idle::Once)
            .run(&mut h)
            .unwrap();
        assert_eq!((h.0.as_slice(), h.1), (&b"abc"[..], 1));
        assert_eq!(q.lock().unwrap().log, ["pop 2", "pop 2", "pop 2"]);

        // Following an empty queue with long pauses: the stop check ends one.
        let t = Instant::now();
        let stop_at = t + Duration::from_millis(300);
        Poller::new(&api, "q", Take::Pop, 2, Idle::Follow)
            .pause(Duration::from_secs(30), Duration::from_secs(30))
            .stop_when(|| Instant::now() >= stop_at)
            .run(&mut h)
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(h.1, 2);
    }
}
