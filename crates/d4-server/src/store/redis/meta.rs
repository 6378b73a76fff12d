//! Redis mode: sensor metadata and daily statistics mirrored into the
//! reference schema ([`MetaMirror`]), buffered on disk while Redis is away.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::timed_out;
use crate::store::db::Db;
use crate::store::MetaMirror;

/// One aggregate of accepted traffic: a (sensor, address, type, day).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Agg {
    frames: u64,
    first: i64,
    last: i64,
}

/// Metadata writes not yet in Redis (kept on disk while Redis is away).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Pending {
    /// `uuid|ip|type|YYYYMMDD` → traffic.
    seen: BTreeMap<String, Agg>,
    /// `list_uuid_ip:<uuid>` entries, oldest first.
    ips: Vec<(String, String)>,
    /// Last error per sensor (`None`: cleared by accepted traffic).
    errors: BTreeMap<String, Option<String>>,
}

impl Pending {
    fn len(&self) -> usize {
        self.seen.len() + self.ips.len() + self.errors.len()
    }

    /// Adds `later` (newer) to self.
    fn merge(&mut self, later: Pending) {
        for (k, a) in later.seen {
            let e = self.seen.entry(k).or_insert_with(|| Agg {
                frames: 0,
                first: a.first,
                last: a.last,
            });
            e.frames += a.frames;
            e.first = e.first.min(a.first);
            e.last = e.last.max(a.last);
        }
        self.ips.extend(later.ips);
        self.errors.extend(later.errors);
    }
}

/// A batch of metadata sent to Redis without a clear answer: sent again
/// as it is, under the same marker, which Redis applies once.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Inflight {
    /// Names `d4:meta_batch:<marker>`, set by the batch's script.
    marker: String,
    batch: Pending,
}

/// What is kept on disk while Redis is away (a document of earlier
/// versions, a bare [`Pending`], reads as one without a batch in flight).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Spooled {
    #[serde(flatten)]
    pending: Pending,
    #[serde(default)]
    inflight: Option<Inflight>,
}

/// Most metadata entries buffered while Redis is away.
const META_BOUND: usize = 100_000;
/// Store document of the buffer.
const META_DOC: &str = "redis_meta_spool";
/// Entries per Redis transaction.
const META_BATCH: usize = 500;

/// Redis mode: sensor metadata and daily statistics written in the
/// reference schema, for the reference tools and dashboards: `metadata_uuid:<uuid>`
/// (`first_seen`, `last_seen`, `Error`), `all_types_by_uuid:<uuid>`,
/// `metadata_type_by_uuid:<uuid>:<type>`, `list_uuid_ip:<uuid>` (16 kept), and
/// per day (`YYYYMMDD`, UTC) the sorted sets `daily_uuid`, `daily_ip`,
/// `daily_type`, `stat_uuid_ip:<date>:<uuid>`, `stat_ip_uuid:<date>:<ip>`,
/// `stat_type_uuid:<date>:<type>`, `stat_uuid_type:<date>:<uuid>`, counted in
/// frames as the reference does.
///
/// Sessions never wait: reports are summed in memory per (sensor, address,
/// type, day) and written every second, each batch in one transaction. While
/// Redis is away the sums are kept in the local store (bounded: past
/// 100,000 entries new ones are dropped and counted) and written when it
/// returns, also after a restart.
pub(crate) struct RedisMeta {
    pending: std::sync::Mutex<Pending>,
    /// Entries dropped (buffer full).
    pub(crate) dropped: std::sync::atomic::AtomicU64,
    /// Entries waiting (for `/metrics`).
    pub(crate) waiting: std::sync::atomic::AtomicU64,
}

impl RedisMeta {
    /// Starts the writer task, with what a previous run left on disk.
    pub(crate) fn start(c: ConnectionManager, db: Arc<Db>) -> Arc<RedisMeta> {
        let left: Spooled = match db.get_doc(META_DOC) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                tracing::error!("sensor metadata buffered for Redis unreadable, dropped: {e}");
                Spooled::default()
            }
        };
        let n = left.pending.len() + left.inflight.as_ref().map_or(0, |f| f.batch.len());
        if n > 0 {
            tracing::info!(
                "{n} sensor metadata entries buffered by a previous run are being written to Redis"
            );
        }
        let m = Arc::new(RedisMeta {
            waiting: std::sync::atomic::AtomicU64::new(n as u64),
            pending: std::sync::Mutex::new(left.pending),
            dropped: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(writer(Arc::downgrade(&m), c, db, left.inflight));
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn full(&self, p: &Pending) -> bool {
        if p.len() >= META_BOUND {
            let before = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if before.is_multiple_of(10_000) {
                tracing::error!(
                    "sensor metadata buffer for Redis full ({META_BOUND} entries): {} updates dropped so far",
                    before + 1
                );
            }
            return true;
        }
        false
    }

    /// Records a session's traffic (never blocks on Redis).
    pub(crate) fn record(&self, uuid: Uuid, ip: std::net::IpAddr, type_key: &str, frames: u64) {
        // `254:<name>` stays whole: the name goes to the extended-type keys.
        let ty = type_key;
        let now = chrono::Utc::now();
        let u = uuid.simple().to_string();
        let key = format!("{u}|{ip}|{ty}|{}", now.format("%Y%m%d"));
        let t = now.timestamp();
        let mut p = self.lock();
        if !p.seen.contains_key(&key) && self.full(&p) {
            return;
        }
        let e = p.seen.entry(key).or_insert(Agg {
            frames: 0,
            first: t,
            last: t,
        });
        e.frames += frames;
        e.last = t;
        // Accepted traffic clears the sensor's error, as the reference does.
        p.errors.insert(u, None);
    }

    /// Records a session's start (`list_uuid_ip`).
    pub(crate) fn session_started(&self, uuid: Uuid, ip: std::net::IpAddr) {
        let entry = format!("{ip}-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let mut p = self.lock();
        if !self.full(&p) {
            p.ips.push((uuid.simple().to_string(), entry));
        }
    }

    /// Records a sensor's error (`Error` of `metadata_uuid:<uuid>`).
    pub(crate) fn error(&self, uuid: Uuid, reason: &str) {
        let u = uuid.simple().to_string();
        let mut p = self.lock();
        if !p.errors.contains_key(&u) && self.full(&p) {
            return;
        }
        p.errors.insert(u, Some(format!("Error: {reason}")));
    }
}

impl MetaMirror for RedisMeta {
    fn record(&self, uuid: Uuid, ip: std::net::IpAddr, type_key: &str, frames: u64) {
        RedisMeta::record(self, uuid, ip, type_key, frames)
    }

    fn session_started(&self, uuid: Uuid, ip: std::net::IpAddr) {
        RedisMeta::session_started(self, uuid, ip)
    }

    fn error(&self, uuid: Uuid, reason: &str) {
        RedisMeta::error(self, uuid, reason)
    }

    fn backlog(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        Some((self.waiting.load(Relaxed), self.dropped.load(Relaxed)))
    }
}

/// Writes the buffer every second; keeps it on disk while Redis is away.
/// Each batch carries a marker that its script sets, so a batch whose
/// answer was lost (or that Redis ran late) and is sent again counts once.
async fn writer(
    m: Weak<RedisMeta>,
    mut c: ConnectionManager,
    db: Arc<Db>,
    mut inflight: Option<Inflight>,
) {
    let mut failing = false;
    let mut on_disk = inflight.is_some();
    let mut first = true;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(mm) = m.upgrade() else { return };
        if first {
            let r: redis::RedisResult<bool> = c
                .set_nx(
                    "first_date",
                    chrono::Utc::now().format("%Y%m%d").to_string(),
                )
                .await;
            first = r.is_err();
        }
        let send = async |c: &mut ConnectionManager, f: &Inflight| {
            let wait = Duration::from_secs(5);
            tokio::time::timeout(wait, write(c, &f.marker, &f.batch))
                .await
                .unwrap_or_else(|_| Err(timed_out(wait)))
        };
        let mut err = None;
        // The batch sent without an answer goes first, as it was.
        if let Some(f) = &inflight {
            match send(&mut c, f).await {
                Ok(()) => inflight = None,
                Err(e) => err = Some(e),
            }
        }
        let mut rest = if err.is_none() {
            std::mem::take(&mut *mm.lock())
        } else {
            Pending::default()
        };
        while err.is_none() && rest.len() > 0 {
            let (now, later) = split(rest, META_BATCH);
            rest = later;
            let f = Inflight {
                marker: Uuid::new_v4().simple().to_string(),
                batch: now,
            };
            if let Err(e) = send(&mut c, &f).await {
                inflight = Some(f);
                err = Some(e);
            }
        }
        let in_flight = inflight.as_ref().map_or(0, |f| f.batch.len());
        let (left, keep) = {
            let mut p = mm.lock();
            let newer = std::mem::take(&mut *p);
            rest.merge(newer);
            *p = rest;
            mm.waiting.store(
                (p.len() + in_flight) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            // On disk while Redis is away, so that a restart loses nothing;
            // once a round went through, everything that was on disk is in
            // Redis: the copy goes (a restart would write it again).
            let keep = if err.is_some() {
                Some(Spooled {
                    pending: p.clone(),
                    inflight: inflight.clone(),
                })
            } else {
                on_disk.then(Spooled::default)
            };
            (p.len() + in_flight, keep)
        };
        if let Some(keep) = keep {
            // Written off the lock (sessions record meanwhile) and off the runtime.
            let db = db.clone();
            let r = tokio::task::spawn_blocking(move || {
                if keep.pending.len() == 0 && keep.inflight.is_none() {
                    db.delete_doc(META_DOC)
                } else {
                    db.put_docs(&[(META_DOC.to_string(), &keep)])
                }
            })
            .await;
            match r {
                Ok(Ok(())) => on_disk = err.is_some(),
                Ok(Err(e)) => {
                    tracing::error!("cannot keep sensor metadata for Redis on disk: {e}")
                }
                Err(e) => tracing::error!("cannot keep sensor metadata for Redis on disk: {e}"),
            }
        }
        match err {
            Some(e) if !failing => {
                tracing::error!(
                    "Redis unreachable ({e}): sensor metadata and statistics kept on disk ({left} entries) until it returns"
                );
                failing = true;
            }
            Some(_) => {}
            None => {
                if failing {
                    tracing::info!(
                        "sensor metadata and statistics buffered meanwhile delivered to Redis"
                    );
                    failing = false;
                }
            }
        }
    }
}

/// The first `n` entries, and the rest.
fn split(mut p: Pending, n: usize) -> (Pending, Pending) {
    if p.len() <= n {
        return (p, Pending::default());
    }
    let mut first = Pending::default();
    while first.len() < n {
        if let Some((k, v)) = p.seen.pop_first() {
            first.seen.insert(k, v);
        } else if let Some((k, v)) = p.errors.pop_first() {
            first.errors.insert(k, v);
        } else if !p.ips.is_empty() {
            let take = (n - first.len()).min(p.ips.len());
            first.ips.extend(p.ips.drain(..take));
        } else {
            break;
        }
    }
    (first, p)
}

/// Sets `last_seen` unless a later one is there.
/// KEYS[1]: the batch's marker; ARGV: commands, each as its length, its
/// name and its arguments. Runs them unless the marker is set (the batch
/// was applied before), then sets it for a day. `LASTSEEN key t` sets the
/// hash field `last_seen` to `t` unless it is later already (another node
/// may have written a later one).
const META_SCRIPT: &str = "
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end
local i = 1
while i <= #ARGV do
  local argc = tonumber(ARGV[i])
  local cmd = ARGV[i + 1]
  if cmd == 'LASTSEEN' then
    local v = redis.call('HGET', ARGV[i + 2], 'last_seen')
    if (not v) or tonumber(v) < tonumber(ARGV[i + 3]) then
      redis.call('HSET', ARGV[i + 2], 'last_seen', ARGV[i + 3])
    end
  else
    redis.call(cmd, unpack(ARGV, i + 2, i + argc))
  end
  i = i + argc + 1
end
return 1";

async fn write(c: &mut ConnectionManager, marker: &str, p: &Pending) -> redis::RedisResult<()> {
    let mut args: Vec<String> = Vec::new();
    let mut cmd = |parts: &[&str]| {
        args.push(parts.len().to_string());
        args.extend(parts.iter().map(|s| s.to_string()));
    };
    for (k, a) in &p.seen {
        let mut it = k.split('|');
        let (Some(u), Some(ip), Some(ty), Some(date)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let n = a.frames.to_string();
        let (first, last) = (a.first.to_string(), a.last.to_string());
        // An extended type (`254:<name>`): the reference's type-2 worker
        // keys, then counted as 254.
        let ty = match ty.split_once(':') {
            Some((ty, name)) => {
                let by_ext = format!("metadata_extended_type_by_uuid:{u}:{name}");
                cmd(&["SADD", &format!("all_extended_types_by_uuid:{u}"), name]);
                cmd(&["HSETNX", &by_ext, "first_seen", &first]);
                cmd(&["LASTSEEN", &by_ext, &last]);
                ty
            }
            None => ty,
        };
        let meta = format!("metadata_uuid:{u}");
        let by_type = format!("metadata_type_by_uuid:{u}:{ty}");
        cmd(&["HSETNX", &meta, "first_seen", &first]);
        cmd(&["SADD", &format!("all_types_by_uuid:{u}"), ty]);
        cmd(&["HSETNX", &by_type, "first_seen", &first]);
        cmd(&["ZINCRBY", &format!("daily_uuid:{date}"), &n, u]);
        cmd(&["ZINCRBY", &format!("daily_ip:{date}"), &n, ip]);
        cmd(&["ZINCRBY", &format!("daily_type:{date}"), &n, ty]);
        cmd(&["ZINCRBY", &format!("stat_uuid_ip:{date}:{u}"), &n, ip]);
        cmd(&["ZINCRBY", &format!("stat_ip_uuid:{date}:{ip}"), &n, u]);
        cmd(&["ZINCRBY", &format!("stat_type_uuid:{date}:{ty}"), &n, u]);
        cmd(&["ZINCRBY", &format!("stat_uuid_type:{date}:{u}"), &n, ty]);
        cmd(&["LASTSEEN", &meta, &last]);
        cmd(&["LASTSEEN", &by_type, &last]);
    }
    for (u, e) in &p.ips {
        let key = format!("list_uuid_ip:{u}");
        cmd(&["LPUSH", &key, e]);
        cmd(&["LTRIM", &key, "0", "15"]);
    }
    for (u, e) in &p.errors {
        let meta = format!("metadata_uuid:{u}");
        match e {
            Some(e) => cmd(&["HSET", &meta, "Error", e]),
            None => cmd(&["HDEL", &meta, "Error"]),
        }
    }
    let _: i64 = redis::Script::new(META_SCRIPT)
        .key(format!("d4:meta_batch:{marker}"))
        .arg(args)
        .invoke_async(c)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: usize) -> Pending {
        let mut p = Pending::default();
        for i in 0..n {
            p.seen.insert(
                format!("u|ip|{i}|20260101"),
                Agg {
                    frames: 1,
                    first: 5,
                    last: 5,
                },
            );
        }
        p.ips.push(("u".into(), "127.0.0.1-20260101000000".into()));
        p.errors.insert("u".into(), None);
        p
    }

    #[tokio::test]
    async fn a_metadata_batch_sent_twice_counts_once() {
        // A real redis-server when installed (ci.sh installs it).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let Ok(child) = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("skipped: redis-server not installed (ci.sh installs it)");
            return;
        };
        // Stopped however the test ends.
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _redis = Kill(child);
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
        let mut c = None;
        for _ in 0..100 {
            if let Ok(m) = ConnectionManager::new(client.clone()).await {
                c = Some(m);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut c = c.expect("redis-server started");
        let batch = pending(2);
        write(&mut c, "m1", &batch).await.unwrap();
        write(&mut c, "m1", &batch).await.unwrap(); // its answer was lost: sent again
        let score: f64 = c.zscore("daily_uuid:20260101", "u").await.unwrap();
        assert_eq!(score, 2.0, "one frame per entry, counted once");
        let ips: Vec<String> = c.lrange("list_uuid_ip:u", 0, -1).await.unwrap();
        assert_eq!(ips.len(), 1);
        write(&mut c, "m2", &batch).await.unwrap(); // another batch counts
        let score: f64 = c.zscore("daily_uuid:20260101", "u").await.unwrap();
        assert_eq!(score, 4.0);
        let last: String = c.hget("metadata_uuid:u", "last_seen").await.unwrap();
        assert_eq!(last, "5");
    }

    #[test]
    fn a_buffer_kept_by_an_earlier_version_reads_back() {
        let old = serde_json::to_vec(&pending(3)).unwrap();
        let s: Spooled = serde_json::from_slice(&old).unwrap();
        assert_eq!(s.pending.len(), pending(3).len());
        assert!(s.inflight.is_none());
        let now = Spooled {
            pending: pending(2),
            inflight: Some(Inflight {
                marker: "m".into(),
                batch: pending(1),
            }),
        };
        let back: Spooled = serde_json::from_slice(&serde_json::to_vec(&now).unwrap()).unwrap();
        assert_eq!(back.pending.len(), pending(2).len());
        assert_eq!(
            back.inflight.map(|f| (f.marker, f.batch.len())),
            Some(("m".into(), 3))
        );
    }

    #[test]
    fn split_takes_everything_once() {
        let (a, b) = split(pending(7), 4);
        assert_eq!((a.len(), b.len()), (4, 5));
        let (c, d) = split(b, 4);
        let (e, f) = split(d, 4);
        assert_eq!((c.len(), e.len(), f.len()), (4, 1, 0));
    }

    #[test]
    fn merge_adds_frames_and_widens_times() {
        let mut a = pending(1);
        let mut b = pending(1);
        b.seen.values_mut().for_each(|x| {
            x.first = 9;
            x.last = 9;
            x.frames = 3
        });
        a.merge(b);
        let x = a.seen.values().next().unwrap();
        assert_eq!((x.frames, x.first, x.last), (4, 5, 9));
        assert_eq!(a.ips.len(), 2);
    }
}
