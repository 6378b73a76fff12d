//! Time series for the dashboard, kept in memory since the server started
//! (the persisted history is the daily counters of `ingest::sensors`):
//! accepted bytes and frames in all, per type and per sensor, and the fill
//! of every analyzer queue.
//!
//! Each traffic series is three rings: [`SECONDS`] one-second slots (the
//! live rates: the mean of the last [`RATE_WINDOW`] complete seconds),
//! [`MINUTES`] one-minute slots (the last 24 hours per minute) and [`HOURS`]
//! one-hour slots (the last 30 days per hour). Rings are sparse: only slots
//! that were written are held, 24 bytes each (the slot's number, bytes,
//! frames), so a sensor that sent once and went quiet costs about 300 bytes,
//! and one that sends every second for 30 days at most 24 × (64 + 1440 +
//! 720) = 53,376 bytes. At most [`MAX_SENSORS`] sensors and [`MAX_TYPES`]
//! types have a series (past them the one that sent least recently goes):
//! 57 MB at the very most. A queue's fill (its longest length in the slot and
//! its max size) has minute and hour rings: at most 51,840 bytes per queue,
//! [`MAX_QUEUES`] queues (13.3 MB). [`run`] samples the queues every
//! [`QUEUE_SAMPLE_SECS`] seconds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::server::Shared;

/// One-second slots per traffic series.
pub(crate) const SECONDS: usize = 64;
/// One-minute slots (24 hours).
pub(crate) const MINUTES: usize = 1440;
/// One-hour slots (30 days).
pub(crate) const HOURS: usize = 720;
/// Sensors with a series.
pub(crate) const MAX_SENSORS: usize = 1000;
/// Types with a series.
pub(crate) const MAX_TYPES: usize = 64;
/// Queues with a fill series.
pub(crate) const MAX_QUEUES: usize = 256;
/// Seconds the live rates are averaged over.
pub(crate) const RATE_WINDOW: i64 = 10;
/// How often queue lengths are sampled.
pub(crate) const QUEUE_SAMPLE_SECS: u64 = 5;

/// Accepted traffic of one slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Point {
    /// Payload bytes.
    pub(crate) bytes: u64,
    /// Frames.
    pub(crate) frames: u64,
}

/// A queue's fill in one slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Fill {
    /// The longest length sampled.
    pub(crate) length: u64,
    /// Its max size then.
    pub(crate) max_size: u64,
}

/// The last `n` slots of `step` seconds, sparse: only slots that were
/// written are held (unit, value), oldest first, so a sensor that sent once
/// costs one entry per ring. The deque never holds more than `n` entries
/// (its capacity grows to `n` at most).
struct Ring<T> {
    step: i64,
    n: usize,
    slots: VecDeque<(i64, T)>,
}

impl<T: Copy + Default> Ring<T> {
    fn new(step: i64, n: usize) -> Ring<T> {
        Ring {
            step,
            n,
            slots: VecDeque::new(),
        }
    }

    /// The newest unit written.
    fn head(&self) -> Option<i64> {
        self.slots.back().map(|x| x.0)
    }

    /// The slot of time `t`, moving on (forgetting slots now older than the
    /// ring) if it is newer; `None` if it is older than the ring.
    fn at(&mut self, t: i64) -> Option<&mut T> {
        let u = t.div_euclid(self.step);
        let n = self.n as i64;
        match self.head() {
            Some(h) if u <= h - n => return None,
            Some(h) if u <= h => {
                let i = match self.slots.binary_search_by_key(&u, |x| x.0) {
                    Ok(i) => i,
                    Err(_) => {
                        // Not full: every unit of a full ring is held.
                        self.grow();
                        let i = self.slots.partition_point(|x| x.0 < u);
                        self.slots.insert(i, (u, T::default()));
                        i
                    }
                };
                return self.slots.get_mut(i).map(|x| &mut x.1);
            }
            _ => {}
        }
        while self.slots.front().is_some_and(|x| x.0 <= u - n) {
            self.slots.pop_front();
        }
        self.grow();
        self.slots.push_back((u, T::default()));
        self.slots.back_mut().map(|x| &mut x.1)
    }

    /// Room for one more entry, the capacity never past `n`.
    fn grow(&mut self) {
        let (len, cap) = (self.slots.len(), self.slots.capacity());
        if len == cap && len < self.n {
            let want = (len * 2).max(4).min(self.n);
            self.slots.reserve_exact(want - len);
        }
        if self.slots.len() >= self.n {
            self.slots.pop_front();
        }
    }

    fn get(&self, u: i64) -> T {
        match self.head() {
            Some(h) if u <= h && u > h - self.n as i64 => self
                .slots
                .binary_search_by_key(&u, |x| x.0)
                .ok()
                .and_then(|i| self.slots.get(i))
                .map(|x| x.1)
                .unwrap_or_default(),
            _ => T::default(),
        }
    }

    /// The `count` slots ending with the one of `now`, oldest first, each
    /// with its start (Unix seconds).
    fn last(&self, now: i64, count: usize) -> Vec<(i64, T)> {
        let end = now.div_euclid(self.step);
        let count = count.min(self.n) as i64;
        let mut v: Vec<(i64, T)> = (0..count)
            .rev()
            .map(|i| ((end - i) * self.step, T::default()))
            .collect();
        let oldest = self.head().map(|h| h - self.n as i64).unwrap_or(i64::MAX);
        for (u, x) in &self.slots {
            let i = u - (end - count + 1);
            if *u > oldest && (0..count).contains(&i) {
                v[i as usize].1 = *x;
            }
        }
        v
    }
}

/// A time range of the charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Span {
    Hour,
    Day,
    Week,
    Month,
}

impl Span {
    /// `1h`, `24h`, `7d` or `30d` (anything else: `None`).
    pub(crate) fn parse(s: &str) -> Option<Span> {
        Some(match s {
            "1h" => Span::Hour,
            "24h" | "1d" => Span::Day,
            "7d" => Span::Week,
            "30d" => Span::Month,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Span::Hour => "1h",
            Span::Day => "24h",
            Span::Week => "7d",
            Span::Month => "30d",
        }
    }

    /// Seconds it covers.
    pub(crate) fn secs(self) -> i64 {
        match self {
            Span::Hour => 3600,
            Span::Day => 86_400,
            Span::Week => 7 * 86_400,
            Span::Month => 30 * 86_400,
        }
    }

    /// The resolution asked for (`minute` or `hour`) if the span allows it:
    /// per minute up to 24 hours, per hour from 24 hours on.
    pub(crate) fn resolution(self, asked: &str) -> Res {
        match (self, asked) {
            (Span::Hour, _) => Res::Minute,
            (Span::Day, "hour") => Res::Hour,
            (Span::Day, _) => Res::Minute,
            _ => Res::Hour,
        }
    }
}

/// A resolution: one point per minute or per hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Res {
    Minute,
    Hour,
}

impl Res {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Res::Minute => "minute",
            Res::Hour => "hour",
        }
    }

    /// Seconds per point.
    pub(crate) fn step(self) -> i64 {
        match self {
            Res::Minute => 60,
            Res::Hour => 3600,
        }
    }

    fn points(self, span: Span) -> usize {
        (span.secs() / self.step()) as usize
    }
}

/// Bytes and frames per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Rate {
    pub(crate) bytes_per_sec: f64,
    pub(crate) frames_per_sec: f64,
}

struct Traffic {
    sec: Ring<Point>,
    min: Ring<Point>,
    hour: Ring<Point>,
    /// Unix seconds of the last traffic (for eviction).
    last: i64,
}

impl Traffic {
    fn new() -> Traffic {
        Traffic {
            sec: Ring::new(1, SECONDS),
            min: Ring::new(60, MINUTES),
            hour: Ring::new(3600, HOURS),
            last: 0,
        }
    }

    fn add(&mut self, t: i64, bytes: u64, frames: u64) {
        for r in [&mut self.sec, &mut self.min, &mut self.hour] {
            if let Some(p) = r.at(t) {
                p.bytes += bytes;
                p.frames += frames;
            }
        }
        self.last = self.last.max(t);
    }

    /// The mean of the [`RATE_WINDOW`] complete seconds before `now`.
    fn rate(&self, now: i64) -> Rate {
        let (b, f) = (now - RATE_WINDOW..now)
            .map(|u| self.sec.get(u))
            .fold((0, 0), |a, p| (a.0 + p.bytes, a.1 + p.frames));
        Rate {
            bytes_per_sec: b as f64 / RATE_WINDOW as f64,
            frames_per_sec: f as f64 / RATE_WINDOW as f64,
        }
    }

    fn points(&self, span: Span, res: Res, now: i64) -> Vec<(i64, Point)> {
        let ring = match res {
            Res::Minute => &self.min,
            Res::Hour => &self.hour,
        };
        ring.last(now, res.points(span))
    }
}

struct QueueFill {
    min: Ring<Fill>,
    hour: Ring<Fill>,
    last: i64,
}

/// Adds to the series of `k` in `map`, making room for a new key by
/// dropping the one least recently updated.
fn traffic_of<'a, K: Eq + Hash + Clone>(
    map: &'a mut HashMap<K, Traffic>,
    k: &K,
    max: usize,
) -> &'a mut Traffic {
    if !map.contains_key(k) && map.len() >= max {
        if let Some(old) = map
            .iter()
            .min_by_key(|(_, v)| v.last)
            .map(|(k, _)| k.clone())
        {
            map.remove(&old);
        }
    }
    map.entry(k.clone()).or_insert_with(Traffic::new)
}

/// Whose traffic a chart shows.
#[derive(Clone, Debug)]
pub(crate) enum Of {
    All,
    Type(String),
    Sensor(Uuid),
}

#[derive(Default)]
struct Inner {
    total: Option<Traffic>,
    types: HashMap<String, Traffic>,
    sensors: HashMap<Uuid, Traffic>,
    queues: HashMap<Uuid, QueueFill>,
}

/// Every series (see the module's doc for their bounds).
#[derive(Default)]
pub(crate) struct Series {
    inner: Mutex<Inner>,
}

/// The live rates.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Rates {
    /// Every sensor together.
    pub(crate) total: Rate,
    /// By type key.
    pub(crate) types: BTreeMap<String, Rate>,
    /// By sensor (32 hex digits).
    pub(crate) sensors: BTreeMap<String, Rate>,
}

impl Series {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts accepted traffic of sensor `u`, type `ty`, at `t` (Unix seconds).
    pub(crate) fn record(&self, u: Uuid, ty: &str, bytes: u64, frames: u64, t: i64) {
        let mut g = self.lock();
        g.total
            .get_or_insert_with(Traffic::new)
            .add(t, bytes, frames);
        traffic_of(&mut g.types, &ty.to_string(), MAX_TYPES).add(t, bytes, frames);
        traffic_of(&mut g.sensors, &u, MAX_SENSORS).add(t, bytes, frames);
    }

    /// The rates at `now`.
    pub(crate) fn rates(&self, now: i64) -> Rates {
        let g = self.lock();
        Rates {
            total: g.total.as_ref().map(|t| t.rate(now)).unwrap_or_default(),
            types: g
                .types
                .iter()
                .map(|(k, v)| (k.clone(), v.rate(now)))
                .collect(),
            sensors: g
                .sensors
                .iter()
                .map(|(k, v)| (k.simple().to_string(), v.rate(now)))
                .collect(),
        }
    }

    /// The traffic of `of` over `span` at `res`, oldest first (zeros where
    /// nothing was sent or the server was not running).
    pub(crate) fn traffic(&self, of: &Of, span: Span, res: Res, now: i64) -> Vec<(i64, Point)> {
        let g = self.lock();
        let t = match of {
            Of::All => g.total.as_ref(),
            Of::Type(k) => g.types.get(k),
            Of::Sensor(u) => g.sensors.get(u),
        };
        match t {
            Some(t) => t.points(span, res, now),
            None => Traffic::new().points(span, res, now),
        }
    }

    /// Notes the queues' lengths at `t`: (queue, length, max size); queues
    /// not listed are forgotten.
    pub(crate) fn sample_queues(&self, qs: &[(Uuid, u64, u64)], t: i64) {
        let mut g = self.lock();
        g.queues.retain(|u, _| qs.iter().any(|q| q.0 == *u));
        for &(u, length, max_size) in qs {
            if !g.queues.contains_key(&u) && g.queues.len() >= MAX_QUEUES {
                continue;
            }
            let q = g.queues.entry(u).or_insert_with(|| QueueFill {
                min: Ring::new(60, MINUTES),
                hour: Ring::new(3600, HOURS),
                last: 0,
            });
            for r in [&mut q.min, &mut q.hour] {
                if let Some(f) = r.at(t) {
                    f.length = f.length.max(length);
                    f.max_size = max_size;
                }
            }
            q.last = t;
        }
    }

    /// Every queue's fill over `span` at `res`, oldest point first.
    pub(crate) fn queue_fill(
        &self,
        span: Span,
        res: Res,
        now: i64,
    ) -> Vec<(Uuid, Vec<(i64, Fill)>)> {
        let g = self.lock();
        let mut v: Vec<_> = g
            .queues
            .iter()
            .map(|(u, q)| {
                let ring = match res {
                    Res::Minute => &q.min,
                    Res::Hour => &q.hour,
                };
                (*u, ring.last(now, res.points(span)))
            })
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }
}

/// Samples the queues' lengths every [`QUEUE_SAMPLE_SECS`] until shutdown.
pub(crate) async fn run(s: Arc<Shared>) {
    let mut sd = s.shutdown.clone();
    loop {
        let qs: Vec<(Uuid, u64, u64)> = s
            .queues
            .list()
            .iter()
            .map(|q| (q.uuid, q.len(), q.max_size))
            .collect();
        s.sensors
            .series
            .sample_queues(&qs, chrono::Utc::now().timestamp());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(QUEUE_SAMPLE_SECS)) => {}
            _ = sd.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_move_on_and_forget() {
        let mut r: Ring<Point> = Ring::new(60, 3);
        r.at(120).unwrap().bytes += 5; // unit 2
        r.at(179).unwrap().bytes += 1; // unit 2
        r.at(200).unwrap().bytes += 7; // unit 3
        assert!(r.at(0).is_none(), "older than the ring");
        let v: Vec<u64> = r.last(200, 3).iter().map(|p| p.1.bytes).collect();
        assert_eq!(v, [0, 6, 7]);
        assert_eq!(r.last(200, 3)[0].0, 60);
        // Late traffic within the ring lands in its slot.
        r.at(90).unwrap().bytes += 2; // unit 1
        assert_eq!(r.get(1).bytes, 2);
        // A jump past the ring's length forgets it.
        r.at(100_000).unwrap().bytes += 1;
        let v: Vec<u64> = r.last(100_000, 3).iter().map(|p| p.1.bytes).collect();
        assert_eq!(v, [0, 0, 1]);
        assert_eq!(r.get(3).bytes, 0, "gone");
        assert_eq!(r.slots.len(), 1, "only what was written is held");
        // Never more than n entries, nor capacity.
        for t in 0..100 {
            r.at(200_000 + 60 * t).unwrap().bytes += 1;
        }
        assert_eq!(r.slots.len(), 3);
        assert!(r.slots.capacity() <= 4, "{}", r.slots.capacity());
    }

    #[test]
    fn rates_ranges_and_bounds() {
        let s = Series::default();
        let u = Uuid::new_v4();
        let t0 = 1_700_000_000;
        for i in 0..20 {
            s.record(u, "3", 1000, 2, t0 + i);
        }
        let r = s.rates(t0 + 20);
        assert_eq!(r.total.bytes_per_sec, 1000.0);
        assert_eq!(r.types["3"].frames_per_sec, 2.0);
        assert_eq!(r.sensors[&u.simple().to_string()].bytes_per_sec, 1000.0);
        assert_eq!(s.rates(t0 + 100).total, Rate::default(), "silence is 0");
        let h = s.traffic(&Of::All, Span::Hour, Res::Minute, t0 + 20);
        assert_eq!(h.len(), 60);
        assert_eq!(h.iter().map(|p| p.1.bytes).sum::<u64>(), 20_000);
        assert_eq!(
            s.traffic(&Of::Sensor(u), Span::Month, Res::Hour, t0).len(),
            720
        );
        assert_eq!(
            Span::parse("24h").map(|x| x.resolution("hour")),
            Some(Res::Hour)
        );
        assert_eq!(Span::Week.resolution("minute"), Res::Hour);
        // Sensors past the bound: the least recent goes.
        for i in 0..MAX_SENSORS as i64 + 5 {
            s.record(Uuid::new_v4(), "3", 1, 1, t0 + 30 + i);
        }
        assert_eq!(s.lock().sensors.len(), MAX_SENSORS);
        assert!(!s.lock().sensors.contains_key(&u));
        // Queues: the longest length of the slot; gone queues forgotten.
        let q = Uuid::new_v4();
        s.sample_queues(&[(q, 5, 10)], t0);
        s.sample_queues(&[(q, 3, 10)], t0 + 1);
        let f = s.queue_fill(Span::Hour, Res::Minute, t0 + 1);
        assert_eq!(
            f[0].1.last().map(|p| p.1),
            Some(Fill {
                length: 5,
                max_size: 10
            })
        );
        s.sample_queues(&[], t0 + 2);
        assert!(s.queue_fill(Span::Hour, Res::Minute, t0).is_empty());
    }
}
