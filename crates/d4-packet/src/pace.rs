//! Replay at a speed: a [`Pacer`] is given each packet's timestamp in turn
//! and waits until that packet is due — its time since the first packet,
//! divided by the speed, after the first packet went (speed 1: the
//! capture's own pace; 4: four times faster; 0.25: four times slower; 0:
//! no waiting). The one pacing of the project: `d4 client`'s `pcap` source
//! at a speed and every `d4 dns` command reading captures use it.
//!
//! A packet earlier than the first, or earlier than the one before, is
//! due at once (a capture is not always in order). The thread sleeps until
//! a little before the due time and yields the rest, so a packet goes out
//! within tens of microseconds of its time; [`PaceStats`] keeps how far
//! from its due time each packet was let go (the mean absolute error is
//! what `-s` reports).

use std::time::{Duration, Instant};

/// Why a speed is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("speed {0} is not 0 (as fast as possible) nor a positive factor (1: the capture's pace)")]
pub struct BadSpeed(pub f64);

/// Checks a replay speed: 0 or a positive, finite factor.
pub fn check_speed(speed: f64) -> Result<(), BadSpeed> {
    if speed.is_finite() && speed >= 0.0 {
        Ok(())
    } else {
        Err(BadSpeed(speed))
    }
}

/// How well the packets kept their time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PaceStats {
    /// Packets paced (the first one included).
    pub packets: u64,
    /// Sum of |released − due| over the packets, nanoseconds.
    pub total_error_ns: u128,
    /// Largest |released − due|, nanoseconds.
    pub max_error_ns: u64,
}

impl PaceStats {
    /// Mean absolute timing error per packet.
    pub fn mean_error(&self) -> Duration {
        match u128::from(self.packets) {
            0 => Duration::ZERO,
            n => Duration::from_nanos(u64::try_from(self.total_error_ns / n).unwrap_or(u64::MAX)),
        }
    }

    /// Largest timing error.
    pub fn max_error(&self) -> Duration {
        Duration::from_nanos(self.max_error_ns)
    }
}

/// What is left of the wait is yielded rather than slept: sleeping
/// overshoots by up to tens of microseconds.
const SPIN: Duration = Duration::from_micros(200);

/// Waits for each packet's time (see the module doc).
#[derive(Clone, Debug)]
pub struct Pacer {
    speed: f64,
    /// The first packet's time (ns) and when it went.
    start: Option<(i128, Instant)>,
    /// Counters.
    pub stats: PaceStats,
}

impl Pacer {
    /// A pacer at `speed` (0: none).
    pub fn new(speed: f64) -> Result<Pacer, BadSpeed> {
        check_speed(speed)?;
        Ok(Pacer {
            speed,
            start: None,
            stats: PaceStats::default(),
        })
    }

    /// Whether it waits at all (speed > 0).
    pub fn active(&self) -> bool {
        self.speed > 0.0
    }

    /// The speed.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Waits until the packet of time `ts_ns` (nanoseconds, any epoch) is
    /// due.
    pub fn wait(&mut self, ts_ns: i128) {
        self.wait_or_stop(ts_ns, &|| false);
    }

    /// As [`Pacer::wait`], checking `stop` at least every 100 ms of a long
    /// wait; false when it stopped before the packet was due.
    pub fn wait_or_stop(&mut self, ts_ns: i128, stop: &dyn Fn() -> bool) -> bool {
        if !self.active() {
            return true;
        }
        let now = Instant::now();
        let (t0, started) = *self.start.get_or_insert((ts_ns, now));
        let due = if ts_ns <= t0 {
            started
        } else {
            let secs = (ts_ns - t0) as f64 / 1e9 / self.speed;
            // A gap beyond what a Duration holds: due never.
            started
                .checked_add(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
                .unwrap_or(now + Duration::from_secs(u32::MAX.into()))
        };
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let left = due - now;
            if left > SPIN {
                if stop() {
                    return false;
                }
                std::thread::sleep((left - SPIN).min(Duration::from_millis(100)));
            } else {
                std::thread::yield_now();
            }
        }
        // Late packets (the reader could not keep up, or one out of order)
        // count their lateness.
        let err = Instant::now().saturating_duration_since(due);
        let ns = u64::try_from(err.as_nanos()).unwrap_or(u64::MAX);
        self.stats.packets += 1;
        self.stats.total_error_ns += u128::from(ns);
        self.stats.max_error_ns = self.stats.max_error_ns.max(ns);
        true
    }
}

/// Nanoseconds of a capture timestamp (`frac`: microseconds, or
/// nanoseconds when `nanos`).
pub fn timestamp_ns(sec: u32, frac: u32, nanos: bool) -> i128 {
    let frac = if nanos {
        i128::from(frac)
    } else {
        i128::from(frac) * 1000
    };
    i128::from(sec) * 1_000_000_000 + frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_at_speed_and_accurate() {
        // 11 packets 20 ms apart: 200 ms at speed 1, 50 ms at speed 4.
        for (speed, want) in [(1.0, 200), (4.0, 50)] {
            let mut p = Pacer::new(speed).unwrap();
            let t = Instant::now();
            for i in 0..11 {
                p.wait(timestamp_ns(1000, i * 20_000, false));
            }
            let took = t.elapsed();
            assert!(
                took >= Duration::from_millis(want) && took < Duration::from_millis(want + 30),
                "speed {speed}: {took:?}"
            );
            assert_eq!(p.stats.packets, 11);
            assert!(
                p.stats.mean_error() < Duration::from_millis(2),
                "{:?}",
                p.stats
            );
        }
    }

    #[test]
    fn no_pacing_out_of_order_and_bad_speeds() {
        let mut p = Pacer::new(0.0).unwrap();
        let t = Instant::now();
        p.wait(timestamp_ns(1, 0, false));
        p.wait(timestamp_ns(100, 0, false));
        assert!(t.elapsed() < Duration::from_millis(50));
        assert_eq!(p.stats.packets, 0);
        // Earlier than the first: at once.
        let mut p = Pacer::new(1.0).unwrap();
        p.wait(timestamp_ns(100, 0, true));
        let t = Instant::now();
        p.wait(timestamp_ns(50, 0, true));
        assert!(t.elapsed() < Duration::from_millis(50));
        // A stop request ends a long wait.
        assert!(!p.wait_or_stop(timestamp_ns(10_000, 0, true), &|| true));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(Pacer::new(bad).is_err());
        }
        assert_eq!(timestamp_ns(2, 5, false), 2_000_005_000);
        assert_eq!(timestamp_ns(2, 5, true), 2_000_000_005);
    }
}
