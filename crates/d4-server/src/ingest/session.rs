//! One sensor connection: TLS, frame reassembly, the ingest checks in their
//! order, HMAC verification, and hand-over to the type's worker.
//!
//! Memory per session is bounded: the decoder holds at most one frame
//! (`max_frame_size`) plus one read; workers hold at most one partial record.
//! Back-pressure is TCP's: the session reads the socket only after the
//! previous bytes were stored and their queue items handed over, and not at
//! all while the disk is full (`store::health`).
//!
//! Until its first frame's HMAC verifies, the session holds an
//! unauthenticated [`Slot`] and may be evicted (closed with
//! `Reject::Evicted`) to make room for a newer connection; the first
//! verified frame moves it to the authenticated budget (`max_connections`).
//!
//! The IP blocklist is checked at accept, before the TLS handshake (10 s at
//! most). rustls reads the socket 4 KiB at a time, so an elastic read buffer
//! ([`super::elastic`], 4 KiB growing to 128 KiB with traffic) sits under
//! it. Reading is `read_buf` into the decoder's buffer, with room made
//! before each read that also grows with traffic (4 to 64 KiB); the buffer
//! grows with the bytes that arrive, never with an announced size; frames
//! are processed before the next read, so a slow disk or a full queue
//! channel stops the reading instead of dropping data. After each waiting
//! read, what the TLS stream holds already (decrypted records, bytes in the
//! socket buffer) is read too, up to the room made, so that under load one
//! batch is many frames (rustls gives one record, at most 16 KiB, per
//! read): the clocks are read once per batch, and the worker's file gets
//! one write per batch (the pcap worker's payloads are not copied: one
//! `writev` of the verified frames' slices, see `workers::outfile`).
//!
//! A session whose socket had nothing to read for [`PARK_AFTER`] (2 s)
//! parks: its worker flushes and closes its file (opened again, appending,
//! when data flows, in the same rotation period), and the decoder's and the
//! socket's buffers are freed; it then waits for the socket to be readable
//! holding neither. An idle sensor costs one file descriptor (its socket)
//! and rustls's connection state.
//!
//! Each header is checked (`policy`, checks 1-6, then the session rules
//! 7-8) as soon as its 62 bytes are in, before its payload is awaited; the
//! HMAC (check 9) once the frame is complete, with the sensor's key or the
//! default key. In Redis mode the first frame also asks the
//! [`SessionGate`](crate::store::SessionGate) for kicks and keys made on
//! other nodes, and the first verified frame takes the cross-node lease.
//! Any rejection closes that session only, is logged with its reason, and
//! recorded for the sensor (`last_error`, `error_count`, with its kind and
//! [whose fault](super::reject::Whose) it is) and server-wide
//! (`/api/v1/rejections`, `/metrics`).
//!
//! Timeouts: a header must arrive within `idle_timeout_secs` (30 s) of the
//! previous frame; a frame whose header arrived may take
//! `stall_timeout_secs` (120 s) — a slow large frame is not cut at 30 s, a
//! byte-per-second client is; a known sensor with no frame under way that
//! stays silent is closed without an error (quiet is not wrong). Accepted
//! traffic is reported to the registry and to the server-wide counters once
//! a second (and when the session parks or ends), not per frame.
//!
//! When the sensor ends its stream cleanly (TLS close_notify), the worker
//! finishes (file closed, last items queued) and only then does the server
//! answer with its own close_notify: that is the sensor's confirmation that
//! everything was stored. Refused sessions get none. When the server is
//! told to stop, a session that is not parked keeps reading for
//! `shutdown_grace_ms` (2 s) so that a sensor in the middle of a short
//! session (a folder batch) ends it and is confirmed, instead of sending
//! it again to the restarted server; past the grace it is cut. `kick`, `block` and IP
//! blocks close live sessions through a `CloseSignal` that carries the
//! reason.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;

use chrono::{DateTime, Utc};
use d4_proto::{Decoder, Frame, Header, MetaHeaderBuilder, Signer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::admission::{Authenticated, Slot};
use crate::ingest::elastic::{Chunk, ElasticReader};
use crate::ingest::policy::Reject;
use crate::ingest::sensors::{CloseSignal, LiveSession, Traffic};
use crate::server::Shared;
use crate::store::queues::PushError;
use crate::store::StoreError;
use crate::store::{Acquired, LeaseAsk};
use crate::workers::{Output, Worker};

/// How long a socket has nothing to read before its session parks.
pub(crate) const PARK_AFTER: Duration = Duration::from_secs(2);
/// Longest TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often accepted traffic is reported to the sensor registry.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Per-connection state.
struct Session {
    shared: Arc<Shared>,
    id: Uuid,
    ip: IpAddr,
    /// UUID and type of the first frame.
    uuid: Option<Uuid>,
    ty: Option<u8>,
    /// Whether this session holds a live-connection slot.
    live: bool,
    signer: Option<Signer>,
    meta: MetaHeaderBuilder,
    worker: Option<Worker>,
    /// Extended type name, once type 254 started.
    extended: Option<String>,
    traffic: Traffic,
    /// Frames and payload bytes not yet added to the server-wide counters
    /// (added with each report, not per frame).
    unreported: (u64, u64),
    last_report: Instant,
    /// The clock, read once per batch of frames (after each read, and after
    /// anything a frame awaited) rather than per frame.
    now: Instant,
    /// The wall clock read with `now` (rotation, file names).
    wall: DateTime<Utc>,
    close: Arc<CloseSignal>,
    /// Redis mode: the cross-node (UUID, type) lease, released on drop.
    lease: Option<Box<dyn crate::store::Lease>>,
    /// The connection's place (unauthenticated until the first verified frame).
    slot: Slot,
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    slot: Slot,
    close: Arc<CloseSignal>,
) {
    let ip = peer.ip().to_canonical();
    let id = Uuid::new_v4();
    if let Err(r) = shared.policy.check_ip(ip) {
        reject(&shared, id, ip, None, &r);
        return;
    }
    let _ = tcp.set_nodelay(true);
    // rustls reads the socket 4 KiB at a time; a buffer in front of it turns
    // that into one system call per 128 KiB under load.
    let tcp = ElasticReader::new(tcp);
    // An unauthenticated connection may be evicted during its handshake.
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
        why = close.closed() => {
            reject(&shared, id, ip, None, &why);
            return;
        }
    };
    let mut tls = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let r = Reject::BadPayload(format!("TLS handshake failed: {e}"));
            reject(&shared, id, ip, None, &r);
            return;
        }
        Err(_) => {
            reject(
                &shared,
                id,
                ip,
                None,
                &Reject::Timeout("TLS handshake timed out".into()),
            );
            return;
        }
    };
    tracing::debug!(session = %id, %ip, "session open");
    let mut s = Session {
        shared: shared.clone(),
        id,
        ip,
        uuid: None,
        ty: None,
        live: false,
        signer: None,
        meta: MetaHeaderBuilder::default(),
        worker: None,
        extended: None,
        traffic: Traffic::default(),
        unreported: (0, 0),
        last_report: Instant::now(),
        now: Instant::now(),
        wall: Utc::now(),
        close,
        lease: None,
        slot,
    };
    let mut dec = Decoder::new(shared.policy.max_frame_size);
    let result = s.run(&mut tls, &mut dec).await;
    let confirm = matches!(result, Ok(End::Eof));
    // A quiet sensor that timed out between frames ended cleanly too (its
    // last unfinished line is kept), but gets no confirmation.
    let clean = matches!(result, Ok(End::Eof | End::Idle));
    s.end(result.map(|_| ()), clean).await;
    if confirm {
        // Everything the sensor sent is stored and queued: say so with a TLS
        // close_notify (a refused or interrupted session gets none).
        use tokio::io::AsyncWriteExt;
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.shutdown()).await;
    }
}

/// How a session ended without error.
enum End {
    /// The sensor closed its side after its last frame.
    Eof,
    /// The server is stopping (what was not read yet is the sensor's to send again).
    Shutdown,
    /// No frame for the idle timeout, and none under way.
    Idle,
}

/// The session's TLS stream.
type Tls = tokio_rustls::server::TlsStream<ElasticReader>;

/// What the socket gave.
enum Input {
    /// Bytes into the decoder (0: end of stream).
    Read(usize),
    /// A parked session's socket has something: read again, with buffers.
    Readable,
}

impl Session {
    async fn run(
        &mut self,
        io: &mut Tls,
        dec: &mut Decoder,
    ) -> Result<End, (Option<Uuid>, Reject)> {
        let idle = Duration::from_secs(self.shared.cfg.idle_timeout_secs);
        let stall = Duration::from_secs(self.shared.cfg.stall_timeout_secs);
        let mut shutdown = self.shared.shutdown.clone();
        let mut header_checked = false;
        let mut deadline = Instant::now() + idle;
        let mut chunk = Chunk::new();
        let mut parked = false;
        let mut park_at = Instant::now() + PARK_AFTER;
        // Once the server is stopping: until when this session may go on.
        let mut stop_at: Option<Instant> = None;
        let grace = Duration::from_millis(self.shared.cfg.shutdown_grace_ms);
        loop {
            self.tick();
            // Everything already buffered first.
            loop {
                if !header_checked {
                    if let Some(h) = dec.pending_header() {
                        // Errors are the session's sensor's (a later frame with another
                        // UUID does not shift the blame to that UUID).
                        let who = self.uuid.unwrap_or(h.uuid);
                        self.check_header(&h).map_err(|r| (Some(who), r))?;
                        header_checked = true;
                        // A frame under way may take the stall time to arrive.
                        deadline = self.now + stall;
                    }
                }
                match dec.next_frame() {
                    Ok(Some(f)) => {
                        header_checked = false;
                        deadline = self.now + idle;
                        let who = self.uuid.unwrap_or(f.header.uuid);
                        self.frame(f).await.map_err(|r| (Some(who), r))?;
                    }
                    Ok(None) => break,
                    Err(e) => return Err((self.uuid, Reject::BadPayload(e.to_string()))),
                }
            }
            if self.now.saturating_duration_since(self.last_report) >= REPORT_EVERY {
                self.report();
            }
            if let Some(w) = &mut self.worker {
                w.flush().map_err(|e| (self.uuid, Reject::from_worker(e)))?;
            }
            // Back-pressure on a full disk: nothing more is read (nor
            // confirmed) until the disk takes writes again.
            let health = self.shared.ctx.compressor.health();
            if !health.is_writable() {
                if stop_at.is_some() {
                    // Stopping, and nothing can be stored: no grace.
                    return Ok(End::Shutdown);
                }
                let mut writable = health.subscribe();
                tokio::select! {
                    _ = writable.wait_for(|ok| *ok) => {}
                    why = self.close.closed() => return Err((self.uuid, why)),
                    _ = shutdown.changed() => return Ok(End::Shutdown),
                }
                deadline = Instant::now() + if header_checked { stall } else { idle };
                continue;
            }
            let room = if parked {
                0
            } else {
                let buf = dec.buffer_mut();
                buf.reserve(chunk.get());
                buf.capacity() - buf.len()
            };
            let input = async {
                if parked {
                    io.get_ref().0.readable().await.map(|()| Input::Readable)
                } else {
                    io.read_buf(dec.buffer_mut()).await.map(Input::Read)
                }
            };
            tokio::select! {
                r = input => match r {
                    Ok(Input::Readable) => parked = false,
                    Ok(Input::Read(0)) => {
                        if dec.has_partial() {
                            let have = dec.buffered();
                            let missing = dec.missing();
                            return Err((self.uuid.or(dec.pending_header().map(|h| h.uuid)), Reject::BadPayload(format!(
                                "connection closed inside a frame ({have} bytes received, {missing} missing)"
                            ))));
                        }
                        return Ok(End::Eof);
                    }
                    Ok(Input::Read(n)) => {
                        // What else the stream has at once, up to the room
                        // made: many frames per batch, one file write.
                        let more = read_ready(io, dec.buffer_mut())
                            .await
                            .map_err(|e| (self.uuid, Reject::BadPayload(format!("read error: {e}"))))?;
                        chunk.read(n + more, room);
                        park_at = Instant::now() + PARK_AFTER;
                    }
                    Err(e) => return Err((self.uuid, Reject::BadPayload(format!("read error: {e}")))),
                },
                _ = sleep_until(park_at), if !parked => {
                    self.park(io, dec).map_err(|r| (self.uuid, r))?;
                    chunk.reset();
                    parked = true;
                }
                _ = sleep_until(deadline) => {
                    // A known sensor that is merely quiet is not an error.
                    if self.uuid.is_some() && !dec.has_partial() {
                        tracing::info!(session = %self.id, sensor = %show(self.uuid), "no frame for {} s: closing", idle.as_secs());
                        return Ok(End::Idle);
                    }
                    let what = if header_checked {
                        format!("frame not completed within {} s", stall.as_secs())
                    } else {
                        format!("no complete frame header within {} s", idle.as_secs())
                    };
                    let u = self.uuid.or_else(|| partial_uuid(dec));
                    return Err((u, Reject::Timeout(what)));
                }
                why = self.close.closed() => return Err((self.uuid, why)),
                _ = shutdown.changed(), if stop_at.is_none() => {
                    // A quiet session has nothing in flight: it ends now.
                    if parked || grace.is_zero() {
                        return Ok(End::Shutdown);
                    }
                    stop_at = Some(Instant::now() + grace);
                }
                _ = sleep_until(stop_at.unwrap_or(deadline)), if stop_at.is_some() => {
                    return Ok(End::Shutdown);
                }
            }
        }
    }

    /// The socket had nothing for [`PARK_AFTER`]: the file is closed, the
    /// buffers freed, and traffic so far reported.
    fn park(&mut self, io: &mut Tls, dec: &mut Decoder) -> Result<(), Reject> {
        if let Some(w) = &mut self.worker {
            w.park().map_err(Reject::from_worker)?;
        }
        dec.shrink_if_empty();
        io.get_mut().0.release();
        self.report();
        tracing::debug!(session = %self.id, sensor = %show(self.uuid), "quiet: parked");
        Ok(())
    }

    /// Checks 1-8 on a header, before its payload is awaited.
    fn check_header(&mut self, h: &Header) -> Result<(), Reject> {
        self.shared.policy.check_header(h, self.ip)?;
        match (self.uuid, self.ty) {
            (None, _) => {
                if h.ty == 254 {
                    return Err(Reject::ExtendedFirst);
                }
                // The slot is taken only once the first frame's HMAC verifies
                // (in `frame`), so a forged header cannot hold a sensor's slot.
                if self.shared.sensors.is_live(h.uuid, h.ty) {
                    return Err(Reject::AlreadyConnected(h.ty));
                }
                self.uuid = Some(h.uuid);
                self.ty = Some(h.ty);
                self.signer = Some(self.shared.policy.signer(h.uuid));
                self.traffic.type_key = h.ty.to_string();
                if h.ty != 2 {
                    self.worker = Some(Worker::for_type(&self.shared.ctx, h.uuid, h.ty, None));
                }
                tracing::info!(session = %self.id, ip = %self.ip, sensor = %h.uuid.simple(), ty = h.ty, "sensor connected");
            }
            (Some(u), Some(t)) => {
                if h.uuid != u {
                    return Err(Reject::UuidChanged(u, h.uuid));
                }
                if h.ty != t {
                    if !(t == 2 && h.ty == 254) {
                        return Err(Reject::TypeChanged(t, h.ty));
                    }
                    let m = self
                        .meta
                        .finish()
                        .map_err(|e| Reject::BadPayload(format!("meta-header: {e}")))?;
                    self.shared.policy.check_extended(&m.ty)?;
                    self.start_extended(u, &m.ty)?;
                    self.ty = Some(254);
                }
            }
            _ => unreachable!("uuid and type are set together"),
        }
        Ok(())
    }

    fn start_extended(&mut self, u: Uuid, name: &str) -> Result<(), Reject> {
        let worker = Worker::for_type(&self.shared.ctx, u, 254, Some(name));
        // Keep the meta-header beside the data, as the reference does.
        let out = crate::workers::FileSpec {
            sensor: u,
            type_dir: "254".into(),
            sub: Some(name.to_string()),
            ext: "json".into(),
            announce: None,
        };
        let dir = crate::workers::Rotator::new(self.shared.ctx.clone(), out).folder(Utc::now());
        let save = std::fs::create_dir_all(&dir).and_then(|_| {
            let path = dir.join(format!(
                "{}-{}.json",
                u.simple(),
                self.shared.ctx.wall(Utc::now()).format("%Y-%m-%d-%H%M%S")
            ));
            std::fs::write(path, self.meta.raw())
        });
        if let Err(e) = save {
            return Err(Reject::ServerIo(format!(
                "cannot store the meta-header: {e}"
            )));
        }
        self.extended = Some(name.to_string());
        // The meta-header's type-2 frames count as type 2, as the reference.
        self.report();
        self.traffic.type_key = format!("254:{name}");
        self.worker = Some(worker);
        tracing::info!(session = %self.id, sensor = %u.simple(), extended = name, "extended type stream started");
        Ok(())
    }

    /// Check 9, then the payload goes to its worker.
    async fn frame(&mut self, f: Frame) -> Result<(), Reject> {
        if !self.live {
            // Kicks made on any node, and the keys in the shared store
            // (Redis mode; nothing in embedded mode).
            let admit = tokio::time::timeout(REDIS_WAIT, self.shared.leases.admit(f.header.uuid))
                .await
                .unwrap_or_else(|_| Err(StoreError::TimedOut(REDIS_WAIT)));
            match admit {
                Ok(None) => {}
                Ok(Some(a)) => {
                    if let Some(secs) = a.kicked {
                        return Err(Reject::Kicked(secs));
                    }
                    // A key just set here wins over Redis until written there.
                    if let Some(k) = self.shared.policy.unsynced_key(f.header.uuid).or(a.key) {
                        self.signer = Some(Signer::new(k.as_bytes()));
                    }
                }
                Err(e) => tracing::warn!(
                    session = %self.id,
                    "cannot read the sensor's key and kicks from Redis ({e}); the last known policy applies"
                ),
            }
            self.tick();
        }
        let Some(signer) = &self.signer else {
            unreachable!("a header was checked before its frame")
        };
        if !signer.verify(&f.header_bytes, &f.payload) {
            return Err(Reject::BadHmac);
        }
        if !self.live {
            self.authenticate()?;
            let live = LiveSession {
                id: self.id,
                uuid: f.header.uuid,
                ty: f.header.ty,
                ip: self.ip,
                close: self.close.clone(),
            };
            if !self.shared.sensors.register_live(live) {
                return Err(Reject::AlreadyConnected(f.header.ty));
            }
            self.live = true;
            self.shared
                .meta_mirror
                .session_started(f.header.uuid, self.ip);
            if !matches!(f.header.ty, 2 | 254) {
                let close = self.close.clone();
                match self
                    .shared
                    .leases
                    .acquire(LeaseAsk {
                        uuid: f.header.uuid,
                        ty: f.header.ty,
                        session: self.id,
                        wait: REDIS_WAIT,
                        close,
                    })
                    .await
                {
                    Acquired::Held(lease) => self.lease = lease,
                    Acquired::Taken => return Err(Reject::AlreadyConnected(f.header.ty)),
                    Acquired::Unknown(lease, e) => {
                        tracing::warn!(
                            session = %self.id,
                            "cannot check the cross-node connection lease in Redis ({e}); session let in, the lease is taken once Redis answers"
                        );
                        self.lease = Some(lease);
                    }
                }
                self.tick();
            }
        }
        self.traffic.frames += 1;
        self.traffic.bytes += f.payload.len() as u64;
        self.unreported.0 += 1;
        self.unreported.1 += f.payload.len() as u64;
        if f.header.ty == 2 {
            return self
                .meta
                .push(&f.payload)
                .map_err(|e| Reject::BadPayload(format!("meta-header: {e}")));
        }
        let Some(worker) = &mut self.worker else {
            return Ok(());
        };
        let out = worker
            .data(&f.payload, self.wall)
            .map_err(Reject::from_worker)?;
        if out.items.is_empty() && out.skipped.is_empty() {
            return Ok(());
        }
        // Pushing may wait (back-pressure): the clock is read again after.
        let pushed = self.deliver(out).await;
        self.tick();
        pushed
    }

    /// Reads the clocks for the frames that follow.
    fn tick(&mut self) {
        self.now = Instant::now();
        self.wall = Utc::now();
    }

    /// The first verified frame: the connection moves to the
    /// authenticated budget (`max_connections`).
    fn authenticate(&self) -> Result<(), Reject> {
        match self.slot.authenticate() {
            Authenticated::Yes => Ok(()),
            Authenticated::Evicted => Err(Reject::Evicted(
                "evicted before its first frame was verified".into(),
            )),
            Authenticated::Full => Err(Reject::TooManyConnections(format!(
                "max_connections reached ({} sensor sessions)",
                self.shared.admission.ingest.limits().authenticated
            ))),
        }
    }

    /// Pushes a worker's items; records skipped records.
    async fn deliver(&mut self, out: Output) -> Result<(), Reject> {
        let (Some(u), Some(worker)) = (self.uuid, &self.worker) else {
            return Ok(());
        };
        for why in &out.skipped {
            self.shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(session = %self.id, sensor = %u.simple(), "record skipped: {why}");
            self.shared.sensors.record_skipped(u, self.ip, why);
        }
        if out.items.is_empty() {
            return Ok(());
        }
        let qt = worker.queue_type();
        let queues = self.shared.queues.route(&qt, u);
        if queues.is_empty() {
            return Ok(());
        }
        let stall = Duration::from_secs(self.shared.cfg.stall_timeout_secs);
        self.shared
            .queues
            .push(queues, out.items, stall)
            .await
            .map_err(|e| match e {
                PushError::Stalled(_) => Reject::QueueStalled(e.to_string()),
                PushError::Stopped => Reject::Store(e.to_string()),
            })
    }

    fn report(&mut self) {
        self.last_report = Instant::now();
        let (frames, bytes) = std::mem::take(&mut self.unreported);
        if frames > 0 {
            self.shared
                .stats
                .frames
                .fetch_add(frames, Ordering::Relaxed);
            self.shared.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Some(u) = self.uuid {
            if self.traffic.frames > 0 {
                self.shared.meta_mirror.record(
                    u,
                    self.ip,
                    &self.traffic.type_key,
                    self.traffic.frames,
                );
                self.shared
                    .sensors
                    .record_traffic(u, self.ip, &self.traffic, Utc::now());
                self.traffic.frames = 0;
                self.traffic.bytes = 0;
            }
        }
    }

    /// Finishes the worker (file closed, compressed, announced), reports, logs.
    async fn end(&mut self, result: Result<(), (Option<Uuid>, Reject)>, clean: bool) {
        if let Some(mut w) = self.worker.take() {
            // An unfinished last record is stored only when the sensor ended
            // cleanly; otherwise the sensor sends it again, whole.
            let out = w.finish(Utc::now(), clean);
            self.worker = Some(w);
            if let Err(r) = self.deliver(out).await {
                tracing::error!(session = %self.id, "last items not queued: {r}");
            }
            self.worker = None;
        }
        self.report();
        if self.live {
            self.shared.sensors.unregister_live(self.id);
        }
        self.lease = None; // released in Redis
        match result {
            Ok(()) => {
                tracing::info!(session = %self.id, ip = %self.ip, sensor = %show(self.uuid), "session closed")
            }
            Err((u, r)) => reject(&self.shared, self.id, self.ip, u, &r),
        }
    }
}

/// Reads what the TLS stream has without waiting (decrypted records, and
/// bytes the socket already holds) into the room left in `buf`, never
/// growing it; returns how many bytes came. An end of stream is left for
/// the next (waiting) read, which gets it again; an error ends the session
/// as on that read.
async fn read_ready(io: &mut Tls, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut total = 0;
    while buf.capacity() > buf.len() {
        let mut read = std::pin::pin!(io.read_buf(buf));
        match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
            Poll::Ready(Ok(0)) | Poll::Pending => break,
            Poll::Ready(Ok(n)) => total += n,
            Poll::Ready(Err(e)) => return Err(e),
        }
    }
    Ok(total)
}

/// Longest a session waits on Redis when it starts (Redis mode); past it
/// the session goes on with the policy last read.
const REDIS_WAIT: Duration = Duration::from_secs(1);

/// The UUID of a header still arriving, if its UUID bytes are in.
fn partial_uuid(dec: &Decoder) -> Option<Uuid> {
    let b = dec.buffered_bytes().get(2..18)?;
    Uuid::from_slice(b).ok().filter(d4_proto::is_v4)
}

/// A sensor UUID for logs (`-` when none was read).
fn show(u: Option<Uuid>) -> String {
    u.map(|u| u.simple().to_string())
        .unwrap_or_else(|| "-".into())
}

/// Refuses a connection before its session starts.
pub(crate) fn reject_connection(shared: &Shared, ip: IpAddr, r: &Reject) {
    reject(shared, Uuid::nil(), ip, None, r);
}

/// Logs and records a rejection. Only this session is affected.
fn reject(shared: &Shared, id: Uuid, ip: IpAddr, uuid: Option<Uuid>, r: &Reject) {
    shared.stats.count_reject(r);
    tracing::warn!(session = %id, %ip, sensor = %show(uuid), "session closed: {r}");
    shared.sensors.record_error(uuid, ip, r);
    // Not for a sensor waiting for approval: the reference writes no
    // `metadata_uuid:<uuid>` for it (one blocks its registration API).
    if let Some(u) = uuid.filter(|_| !matches!(r, Reject::NotApproved(_))) {
        shared.meta_mirror.error(u, &r.to_string());
    }
}
