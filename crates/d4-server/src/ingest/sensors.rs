//! What the server knows about sensors: metadata and statistics (persisted),
//! live sessions (for the one-connection rule and kicks), and rejections
//! summarised per (reason, address): a count, the first and last time, the
//! last text and UUID — so a flood of one reason from one address is one
//! row and cannot push older evidence out. The summary keeps
//! [`MAX_REJECTION_ROWS`] rows; past it, the oldest row of the reason with
//! the most rows goes (a flood from many addresses displaces its own rows).
//!
//! Sensor metadata: first/last seen, per-type first/last seen, last 16
//! addresses, last error (with its kind and whose fault it is), skipped
//! records, daily bytes/frames; persisted every 5 s and at shutdown. The
//! live-session table enforces one connection per (UUID, type) except types
//! 2/254 on this node (across nodes in Redis mode: the lease of
//! [`SessionGate`](crate::store::SessionGate)), and lets `kick`/`block`
//! close sessions.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::ingest::reject::{Reject, Whose};
use crate::store::db::Db;

/// How many peer addresses are remembered per sensor.
pub(crate) const LAST_IPS: usize = 16;
/// How many days of daily counters are kept per sensor.
const KEEP_DAYS: usize = 31;
/// How many sensors known only from rejected sessions are remembered.
const MAX_UNVERIFIED: usize = 10_000;
/// How many (reason, address) rows of rejections are kept server-wide.
pub(crate) const MAX_REJECTION_ROWS: usize = 1024;
/// How many (reason, address) groups of errors are kept per sensor.
pub(crate) const SENSOR_ERROR_GROUPS: usize = 16;

/// First and last time a sensor sent a type.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Seen {
    /// Unix seconds.
    pub(crate) first: i64,
    /// Unix seconds.
    pub(crate) last: i64,
}

/// Bytes and frames of one day.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct DayStats {
    /// Payload bytes accepted.
    pub(crate) bytes: u64,
    /// Frames accepted.
    pub(crate) frames: u64,
}

/// A session error recorded for a sensor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct ErrorRecord {
    /// Unix seconds.
    pub(crate) time: i64,
    /// Peer address.
    pub(crate) ip: String,
    /// What was wrong.
    pub(crate) reason: String,
    /// Its kind (the `reason` label of `d4_rejects_total`; `skipped` for a
    /// refused record); empty in records kept by older versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) kind: String,
    /// Whose fault: `sensor`, `policy`, `server` or `store`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) whose: String,
}

/// A sensor's errors of one kind from one address: one row however many
/// times the sensor retried.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct ErrorGroup {
    /// Its kind (the `reason` label of `d4_rejects_total`).
    pub(crate) kind: String,
    /// Peer address.
    pub(crate) ip: String,
    /// The last text.
    pub(crate) reason: String,
    /// Whose fault: `sensor`, `policy`, `server` or `store`.
    pub(crate) whose: String,
    /// How many times.
    pub(crate) count: u64,
    /// Unix seconds of the first one.
    pub(crate) first: i64,
    /// Unix seconds of the last one.
    pub(crate) last: i64,
}

/// Counts `rec` in its (kind, address) group, the most recent group first;
/// past [`SENSOR_ERROR_GROUPS`] the group seen least recently goes.
fn group_error(groups: &mut Vec<ErrorGroup>, rec: &ErrorRecord) {
    let i = groups
        .iter()
        .position(|g| g.kind == rec.kind && g.ip == rec.ip);
    let mut g = match i {
        Some(i) => groups.remove(i),
        None => ErrorGroup {
            kind: rec.kind.clone(),
            ip: rec.ip.clone(),
            first: rec.time,
            ..ErrorGroup::default()
        },
    };
    g.count += 1;
    g.last = rec.time;
    g.reason = rec.reason.clone();
    g.whose = rec.whose.clone();
    groups.insert(0, g);
    groups.truncate(SENSOR_ERROR_GROUPS);
}

/// A sensor's metadata (store document `sensor:<32 hex>`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct SensorMeta {
    /// Sensor UUID.
    pub(crate) uuid: Uuid,
    /// Unix seconds of the first accepted frame.
    pub(crate) first_seen: i64,
    /// Unix seconds of the last accepted frame.
    pub(crate) last_seen: i64,
    /// Per type (and `254:<name>` for extended types): first and last seen.
    pub(crate) types: BTreeMap<String, Seen>,
    /// Last peer addresses, newest first, with Unix seconds.
    pub(crate) last_ips: VecDeque<(String, i64)>,
    /// The last error, cleared by the next accepted frame.
    pub(crate) last_error: Option<ErrorRecord>,
    /// Errors ever recorded.
    pub(crate) error_count: u64,
    /// Errors grouped per (kind, address), the most recent first (at most
    /// [`SENSOR_ERROR_GROUPS`]).
    pub(crate) errors: Vec<ErrorGroup>,
    /// Records refused inside otherwise good sessions (e.g. a line that is not JSON).
    pub(crate) skipped_count: u64,
    /// The last refused record and why (kept: accepted frames do not clear it).
    pub(crate) last_skipped: Option<ErrorRecord>,
    /// Daily counters by `YYYYMMDD`.
    pub(crate) daily: BTreeMap<String, DayStats>,
    /// Free text set by an operator.
    pub(crate) description: String,
}

/// Server-wide counters of one day: per type and per peer address.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct ServerDay {
    /// By type key (`1`, `254:maltrail`).
    pub(crate) types: BTreeMap<String, DayStats>,
    /// By peer address (at most [`MAX_DAILY_IPS`] a day).
    pub(crate) ips: BTreeMap<String, DayStats>,
}

/// Most peer addresses counted per day.
pub(crate) const MAX_DAILY_IPS: usize = 10_000;

/// Rejections of one reason from one address, server-wide (also for
/// connections with no usable UUID); the text and UUID are the last ones.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Rejection {
    /// Unix seconds of the last one (as `last`).
    pub(crate) time: i64,
    /// Peer address.
    pub(crate) ip: String,
    /// Sensor UUID, if one was read.
    pub(crate) uuid: Option<Uuid>,
    /// What was wrong.
    pub(crate) reason: String,
    /// Its kind (the `reason` label of `d4_rejects_total`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) kind: String,
    /// Whose fault: `sensor`, `policy`, `server` or `store`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) whose: String,
    /// How many rejections of this reason from this address.
    #[serde(default)]
    pub(crate) count: u64,
    /// Unix seconds of the first one.
    #[serde(default)]
    pub(crate) first: i64,
    /// Unix seconds of the last one.
    #[serde(default)]
    pub(crate) last: i64,
}

/// Rejections summarised per (reason kind, address), bounded.
#[derive(Debug, Default)]
struct Rejections {
    rows: HashMap<(String, String), Rejection>,
    /// Rows per reason kind (to find the reason that floods).
    per_kind: HashMap<String, usize>,
}

impl Rejections {
    /// Counts one rejection (`r.time` is when), making room if needed.
    fn add(&mut self, r: Rejection) {
        let key = (r.kind.clone(), r.ip.clone());
        if let Some(row) = self.rows.get_mut(&key) {
            row.count += 1;
            row.time = r.time;
            row.last = r.time;
            row.reason = r.reason;
            row.uuid = r.uuid;
            row.whose = r.whose;
            return;
        }
        if self.rows.len() >= MAX_REJECTION_ROWS {
            // The oldest row of the reason with the most rows.
            let flood = self
                .per_kind
                .iter()
                .max_by_key(|(k, n)| (**n, *k == &r.kind))
                .map(|(k, _)| k.clone());
            let oldest = self
                .rows
                .iter()
                .filter(|(k, _)| Some(&k.0) == flood.as_ref())
                .min_by_key(|(_, v)| v.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.rows.remove(&k);
                if let Some(n) = self.per_kind.get_mut(&k.0) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_kind.remove(&k.0);
                    }
                }
            }
        }
        *self.per_kind.entry(r.kind.clone()).or_default() += 1;
        self.rows.insert(
            key,
            Rejection {
                count: 1,
                first: r.time,
                last: r.time,
                ..r
            },
        );
    }

    /// Every row, the most recent first.
    fn list(&self) -> Vec<Rejection> {
        let mut v: Vec<Rejection> = self.rows.values().cloned().collect();
        v.sort_by(|a, b| (b.last, b.first, &a.kind, &a.ip).cmp(&(a.last, a.first, &b.kind, &b.ip)));
        v
    }
}

/// A live session.
#[derive(Clone, Debug)]
pub(crate) struct LiveSession {
    /// Session id.
    pub(crate) id: Uuid,
    /// Sensor.
    pub(crate) uuid: Uuid,
    /// Type (as first sent).
    pub(crate) ty: u8,
    /// Peer.
    pub(crate) ip: IpAddr,
    /// Wakes the session to close it, with the reason.
    pub(crate) close: Arc<CloseSignal>,
}

/// Asks a live session to close, saying why.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    notify: Notify,
    reason: Mutex<Option<Reject>>,
}

impl CloseSignal {
    /// Asks the session to close for `reason`.
    pub(crate) fn close(&self, reason: Reject) {
        *lock(&self.reason) = Some(reason);
        self.notify.notify_one();
    }

    /// Waits for a close request; returns its reason.
    pub(crate) async fn closed(&self) -> Reject {
        self.notify.notified().await;
        lock(&self.reason).take().unwrap_or(Reject::ClosedByServer)
    }
}

/// Accumulated accepted traffic of a session since its last report.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Type key (`3`, `254:maltrail`).
    pub(crate) type_key: String,
    /// Payload bytes.
    pub(crate) bytes: u64,
    /// Frames.
    pub(crate) frames: u64,
}

/// The registry.
pub(crate) struct Sensors {
    db: Arc<Db>,
    meta: Mutex<HashMap<Uuid, SensorMeta>>,
    dirty: Mutex<HashSet<Uuid>>,
    /// Sensors dropped from the registry, to delete from the store.
    forgotten: Mutex<HashSet<Uuid>>,
    live: Mutex<HashMap<Uuid, LiveSession>>,
    /// Server-wide daily counters by `YYYYMMDD` (store document `daily`).
    daily: Mutex<BTreeMap<String, ServerDay>>,
    /// Rejections per (reason, address).
    rejections: Mutex<Rejections>,
    /// Accepted traffic per type key since the server started (metrics).
    totals: Mutex<BTreeMap<String, DayStats>>,
    /// Traffic per second, minute and hour (dashboard), and queue fill.
    pub(crate) series: crate::series::Series,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sensors {
    /// Loads every sensor's metadata.
    pub(crate) fn load(db: Arc<Db>) -> Result<Sensors> {
        let meta = db
            .docs_with_prefix::<SensorMeta>("sensor:")?
            .into_iter()
            .map(|(_, m)| (m.uuid, m))
            .collect();
        let daily = db.get_doc("daily")?.unwrap_or_default();
        Ok(Sensors {
            daily: Mutex::new(daily),
            db,
            meta: Mutex::new(meta),
            dirty: Mutex::new(HashSet::new()),
            forgotten: Mutex::new(HashSet::new()),
            live: Mutex::new(HashMap::new()),
            rejections: Mutex::new(Rejections::default()),
            totals: Mutex::new(BTreeMap::new()),
            series: crate::series::Series::default(),
        })
    }

    fn touch(&self, u: Uuid) {
        lock(&self.dirty).insert(u);
    }

    /// Writes changed metadata to the store (called periodically and at shutdown).
    pub(crate) fn persist(&self) -> Result<()> {
        let gone: Vec<Uuid> = std::mem::take(&mut *lock(&self.forgotten))
            .into_iter()
            .collect();
        for u in gone {
            self.db.delete_doc(&format!("sensor:{}", u.simple()))?;
        }
        let ids: Vec<Uuid> = std::mem::take(&mut *lock(&self.dirty))
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let daily = lock(&self.daily).clone();
        self.db.put_docs(&[("daily".to_string(), daily)])?;
        let docs: Vec<(String, SensorMeta)> = {
            let m = lock(&self.meta);
            ids.iter()
                .filter_map(|u| {
                    m.get(u)
                        .map(|s| (format!("sensor:{}", u.simple()), s.clone()))
                })
                .collect()
        };
        self.db.put_docs(&docs)
    }

    /// Records accepted traffic: last seen, per-type seen, peer address, daily
    /// counters; clears the last error.
    pub(crate) fn record_traffic(
        &self,
        u: Uuid,
        ip: IpAddr,
        t: &Traffic,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let ts = now.timestamp();
        let day = now.format("%Y%m%d").to_string();
        let mut all = lock(&self.meta);
        let m = all.entry(u).or_insert_with(|| SensorMeta {
            uuid: u,
            first_seen: ts,
            ..SensorMeta::default()
        });
        if m.first_seen == 0 {
            m.first_seen = ts;
        }
        m.last_seen = ts;
        let seen = m.types.entry(t.type_key.clone()).or_insert(Seen {
            first: ts,
            last: ts,
        });
        seen.last = ts;
        let ip = ip.to_string();
        match m.last_ips.front_mut() {
            Some((last, when)) if *last == ip => *when = ts,
            _ => {
                m.last_ips.retain(|(a, _)| *a != ip);
                m.last_ips.push_front((ip.clone(), ts));
                m.last_ips.truncate(LAST_IPS);
            }
        }
        let d = m.daily.entry(day.clone()).or_default();
        d.bytes += t.bytes;
        d.frames += t.frames;
        while m.daily.len() > KEEP_DAYS {
            m.daily.pop_first();
        }
        m.last_error = None;
        drop(all);
        self.series.record(u, &t.type_key, t.bytes, t.frames, ts);
        {
            let mut totals = lock(&self.totals);
            let d = totals.entry(t.type_key.clone()).or_default();
            d.bytes += t.bytes;
            d.frames += t.frames;
        }
        let mut daily = lock(&self.daily);
        let sd = daily.entry(day).or_default();
        let add = |d: &mut DayStats| {
            d.bytes += t.bytes;
            d.frames += t.frames;
        };
        add(sd.types.entry(t.type_key.clone()).or_default());
        if sd.ips.len() < MAX_DAILY_IPS || sd.ips.contains_key(&ip) {
            add(sd.ips.entry(ip).or_default());
        }
        while daily.len() > KEEP_DAYS {
            daily.pop_first();
        }
        drop(daily);
        self.touch(u);
    }

    /// Records a rejection (for the sensor if its UUID is known or v4, and server-wide).
    pub(crate) fn record_error(&self, u: Option<Uuid>, ip: IpAddr, r: &Reject) {
        let time = chrono::Utc::now().timestamp();
        let reason = r.to_string();
        let (kind, whose) = (r.kind().to_string(), r.whose().as_str().to_string());
        let rec = ErrorRecord {
            time,
            ip: ip.to_string(),
            reason: reason.clone(),
            kind: kind.clone(),
            whose: whose.clone(),
        };
        if let Some(u) = u.filter(d4_proto::is_v4) {
            let mut all = lock(&self.meta);
            if !all.contains_key(&u) {
                // A UUID never verified (anyone can write one in a header):
                // keep a bounded number of those, forgetting the oldest.
                let unverified: Vec<(i64, Uuid)> = all
                    .values()
                    .filter(|m| m.first_seen == 0)
                    .map(|m| (m.last_error.as_ref().map(|e| e.time).unwrap_or(0), m.uuid))
                    .collect();
                if unverified.len() >= MAX_UNVERIFIED {
                    if let Some((_, oldest)) = unverified.iter().min() {
                        all.remove(oldest);
                        lock(&self.dirty).remove(oldest);
                        // Deleted from the store by `persist`, off the async threads.
                        lock(&self.forgotten).insert(*oldest);
                    }
                }
            }
            let m = all.entry(u).or_insert_with(|| SensorMeta {
                uuid: u,
                ..SensorMeta::default()
            });
            group_error(&mut m.errors, &rec);
            m.last_error = Some(rec);
            m.error_count += 1;
            drop(all);
            self.touch(u);
        }
        lock(&self.rejections).add(Rejection {
            time,
            ip: ip.to_string(),
            uuid: u,
            reason,
            kind,
            whose,
            count: 1,
            first: time,
            last: time,
        });
    }

    /// Records a refused record (counted and skipped; the session goes on).
    pub(crate) fn record_skipped(&self, u: Uuid, ip: IpAddr, reason: &str) {
        let rec = ErrorRecord {
            time: chrono::Utc::now().timestamp(),
            ip: ip.to_string(),
            reason: reason.to_string(),
            kind: "skipped".into(),
            whose: Whose::Sensor.as_str().into(),
        };
        let mut all = lock(&self.meta);
        let m = all.entry(u).or_insert_with(|| SensorMeta {
            uuid: u,
            ..SensorMeta::default()
        });
        m.skipped_count += 1;
        m.last_skipped = Some(rec);
        drop(all);
        self.touch(u);
    }

    /// One sensor's metadata.
    pub(crate) fn get(&self, u: Uuid) -> Option<SensorMeta> {
        lock(&self.meta).get(&u).cloned()
    }

    /// Every sensor's metadata.
    pub(crate) fn all(&self) -> Vec<SensorMeta> {
        let mut v: Vec<_> = lock(&self.meta).values().cloned().collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.last_seen));
        v
    }

    /// Server-wide daily counters, oldest day first.
    pub(crate) fn daily(&self) -> BTreeMap<String, ServerDay> {
        lock(&self.daily).clone()
    }

    /// Accepted traffic per type key since the server started.
    pub(crate) fn totals(&self) -> BTreeMap<String, DayStats> {
        lock(&self.totals).clone()
    }

    /// Rejections per (reason, address), the most recent first.
    pub(crate) fn rejections(&self) -> Vec<Rejection> {
        lock(&self.rejections).list()
    }

    /// Whether (UUID, type) already has a live session that excludes another
    /// (types 2 and 254 never do).
    pub(crate) fn is_live(&self, u: Uuid, ty: u8) -> bool {
        !matches!(ty, 2 | 254) && lock(&self.live).values().any(|o| o.uuid == u && o.ty == ty)
    }

    /// Registers a live session; refuses a second one for the same (UUID, type)
    /// unless the type is 2 or 254.
    pub(crate) fn register_live(&self, s: LiveSession) -> bool {
        let mut live = lock(&self.live);
        if !matches!(s.ty, 2 | 254) && live.values().any(|o| o.uuid == s.uuid && o.ty == s.ty) {
            return false;
        }
        live.insert(s.id, s);
        true
    }

    /// Forgets a live session.
    pub(crate) fn unregister_live(&self, id: Uuid) {
        lock(&self.live).remove(&id);
    }

    /// Live sessions.
    pub(crate) fn live(&self) -> Vec<LiveSession> {
        lock(&self.live).values().cloned().collect()
    }

    /// Asks every live session of a sensor to close; returns how many.
    pub(crate) fn close_sessions_of(&self, u: Uuid, reason: Reject) -> usize {
        let live = lock(&self.live);
        let mut n = 0;
        for s in live.values().filter(|s| s.uuid == u) {
            s.close.close(reason.clone());
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_close_without_a_reason_is_the_servers() {
        let c = CloseSignal::default();
        c.notify.notify_one();
        let r = c.closed().await;
        assert_eq!((r.kind(), r.whose()), ("closed_by_server", Whose::Server));
        c.close(Reject::BlockedUuid);
        assert_eq!(c.closed().await, Reject::BlockedUuid);
    }

    fn rejection(kind: &str, ip: &str, time: i64) -> Rejection {
        Rejection {
            time,
            ip: ip.into(),
            uuid: None,
            reason: format!("{kind} at {time}"),
            kind: kind.into(),
            whose: "sensor".into(),
            count: 1,
            first: time,
            last: time,
        }
    }

    #[test]
    fn a_flood_of_one_reason_keeps_earlier_evidence() {
        let mut r = Rejections::default();
        r.add(rejection("bad_hmac", "192.0.2.1", 1));
        r.add(rejection("too_large", "192.0.2.2", 2));
        r.add(rejection("bad_hmac", "192.0.2.1", 3));
        for t in 0..1000 {
            r.add(rejection("not_approved", "198.51.100.7", 10 + t));
        }
        let v = r.list();
        assert_eq!(v.len(), 3);
        let row = |k: &str| v.iter().find(|x| x.kind == k).unwrap();
        let flood = row("not_approved");
        assert_eq!((flood.count, flood.first, flood.last), (1000, 10, 1009));
        assert_eq!(
            (flood.time, flood.reason.as_str()),
            (1009, "not_approved at 1009")
        );
        let h = row("bad_hmac");
        assert_eq!((h.count, h.first, h.last), (2, 1, 3));
        assert_eq!(row("too_large").count, 1);
        assert_eq!(v[0].kind, "not_approved", "the most recent first");
        // A flood from many addresses displaces its own rows only.
        for i in 0..3 * MAX_REJECTION_ROWS {
            r.add(rejection(
                "not_approved",
                &format!("10.0.{}.{}", i / 250, i % 250),
                2000 + i as i64,
            ));
        }
        let v = r.list();
        assert_eq!(v.len(), MAX_REJECTION_ROWS);
        assert!(v.iter().any(|x| x.kind == "bad_hmac" && x.count == 2));
        assert!(v.iter().any(|x| x.kind == "too_large"));
        assert_eq!(r.per_kind.values().sum::<usize>(), MAX_REJECTION_ROWS);
    }

    #[test]
    fn a_sensors_retries_are_one_group() {
        let d = tempfile::tempdir().unwrap();
        let s = Sensors::load(Arc::new(Db::open(d.path()).unwrap())).unwrap();
        let u = Uuid::new_v4();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..10 {
            s.record_error(Some(u), ip, &Reject::BadHmac);
        }
        s.record_error(Some(u), ip, &Reject::BlockedUuid);
        let m = s.get(u).unwrap();
        assert_eq!(m.error_count, 11);
        assert_eq!(m.errors.len(), 2);
        assert_eq!(m.errors[0].kind, "blocked_uuid", "the most recent first");
        assert_eq!(
            (m.errors[1].kind.as_str(), m.errors[1].count),
            ("bad_hmac", 10)
        );
        assert!(m.errors[1].first <= m.errors[1].last);
        for i in 0..2 * SENSOR_ERROR_GROUPS {
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            s.record_error(Some(u), ip, &Reject::BadHmac);
        }
        assert_eq!(s.get(u).unwrap().errors.len(), SENSOR_ERROR_GROUPS);
    }

    #[test]
    fn rejections_keep_their_json_fields() {
        let d = tempfile::tempdir().unwrap();
        let s = Sensors::load(Arc::new(Db::open(d.path()).unwrap())).unwrap();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        s.record_error(None, ip, &Reject::BadHmac);
        s.record_error(None, ip, &Reject::BadHmac);
        let v = serde_json::to_value(s.rejections()).unwrap();
        let row = &v[0];
        for f in [
            "time", "ip", "uuid", "reason", "kind", "whose", "count", "first", "last",
        ] {
            assert!(row.get(f).is_some(), "{f} missing: {row}");
        }
        assert_eq!(row["count"], 2);
        assert_eq!(row["kind"], "bad_hmac");
    }
}
