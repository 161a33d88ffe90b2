//! Recent history of one numeric point: a bounded ring of fixed-width time buckets.
//!
//! Each bucket covers `resolution_ms` (aligned to the Unix epoch) and keeps the number of
//! samples, their minimum, maximum and the last value. A ring holds at most `buckets` buckets,
//! so the retention is `resolution_ms * buckets` and the memory per point is bounded
//! (40 bytes per bucket once full). Samples older than the newest bucket (replays) are folded
//! into their bucket when it is still held, and dropped otherwise. Boolean values are kept as
//! 0/1; text values are not kept.

use serde::Serialize;
use std::collections::VecDeque;

pub use crate::config::history::HistoryConfig;

/// One time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Start of the bucket (ms since the epoch).
    pub t_ms: i64,
    /// Samples folded into it.
    pub n: u32,
    pub min: f64,
    pub max: f64,
    /// The newest sample's value.
    pub last: f64,
    #[serde(skip)]
    last_ts_ms: i64,
}

impl Bucket {
    fn new(t_ms: i64, ts_ms: i64, v: f64) -> Bucket {
        Bucket {
            t_ms,
            n: 1,
            min: v,
            max: v,
            last: v,
            last_ts_ms: ts_ms,
        }
    }

    fn add(&mut self, ts_ms: i64, v: f64) {
        self.n = self.n.saturating_add(1);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if ts_ms >= self.last_ts_ms {
            self.last = v;
            self.last_ts_ms = ts_ms;
        }
    }

    fn merge(&mut self, o: &Bucket) {
        self.n = self.n.saturating_add(o.n);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if o.last_ts_ms >= self.last_ts_ms {
            self.last = o.last;
            self.last_ts_ms = o.last_ts_ms;
        }
    }
}

/// The ring of one point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    buckets: VecDeque<Bucket>,
}

impl History {
    /// Folds one sample in. Pure; `cfg` is the server's.
    pub fn add(&mut self, cfg: &HistoryConfig, ts_ms: i64, v: f64) {
        if cfg.buckets == 0 || cfg.resolution_ms <= 0 || !v.is_finite() {
            return;
        }
        let t = ts_ms.div_euclid(cfg.resolution_ms) * cfg.resolution_ms;
        match self.buckets.back_mut() {
            Some(b) if b.t_ms == t => b.add(ts_ms, v),
            Some(b) if b.t_ms > t => {
                // A replayed older sample: into its bucket if still held.
                if let Some(b) = self.buckets.iter_mut().rev().find(|b| b.t_ms == t) {
                    b.add(ts_ms, v);
                } else if self.buckets.front().is_some_and(|f| f.t_ms < t) {
                    let at = self.buckets.partition_point(|b| b.t_ms < t);
                    self.buckets.insert(at, Bucket::new(t, ts_ms, v));
                }
            }
            _ => {
                if self.buckets.len() >= cfg.buckets {
                    self.buckets.pop_front();
                }
                if self.buckets.capacity() == 0 {
                    // Start small: most points are read by nobody; grow as the ring fills.
                    self.buckets.reserve_exact(4.min(cfg.buckets));
                }
                self.buckets.push_back(Bucket::new(t, ts_ms, v));
            }
        }
        while self.buckets.len() > cfg.buckets {
            self.buckets.pop_front();
        }
    }

    /// Buckets overlapping `[from_ms, to_ms]`, merged into windows of `step_ms` (rounded up to
    /// a multiple of the resolution; the resolution when 0), oldest first.
    pub fn query(
        &self,
        cfg: &HistoryConfig,
        from_ms: i64,
        to_ms: i64,
        step_ms: i64,
    ) -> Vec<Bucket> {
        let res = cfg.resolution_ms.max(1);
        let step = if step_ms <= res {
            res
        } else {
            (step_ms + res - 1) / res * res
        };
        let mut out: Vec<Bucket> = Vec::new();
        for b in &self.buckets {
            if b.t_ms + res <= from_ms || b.t_ms > to_ms {
                continue;
            }
            let w = b.t_ms.div_euclid(step) * step;
            match out.last_mut() {
                Some(o) if o.t_ms == w => o.merge(b),
                _ => out.push(Bucket { t_ms: w, ..*b }),
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: HistoryConfig = HistoryConfig {
        resolution_ms: 1000,
        buckets: 3,
    };

    #[test]
    fn buckets_aggregate_and_the_ring_is_bounded() {
        let mut h = History::default();
        h.add(&CFG, 10_100, 5.0);
        h.add(&CFG, 10_900, 7.0);
        h.add(&CFG, 10_500, 1.0); // older within the bucket: min, not last
        let q = h.query(&CFG, 0, i64::MAX, 0);
        assert_eq!(q.len(), 1);
        assert_eq!(
            (q[0].t_ms, q[0].n, q[0].min, q[0].max, q[0].last),
            (10_000, 3, 1.0, 7.0, 7.0)
        );
        for s in 11..20 {
            h.add(&CFG, s * 1000, s as f64);
        }
        assert_eq!(h.len(), 3, "bounded by the configured bucket count");
        let q = h.query(&CFG, 0, i64::MAX, 0);
        assert_eq!(
            q.iter().map(|b| b.t_ms).collect::<Vec<_>>(),
            [17_000, 18_000, 19_000]
        );
        // A replay older than everything held is dropped; one inside the window is kept.
        h.add(&CFG, 5_000, 99.0);
        h.add(&CFG, 18_200, -1.0);
        let q = h.query(&CFG, 0, i64::MAX, 0);
        assert_eq!(q.len(), 3);
        assert_eq!((q[1].min, q[1].max, q[1].last), (-1.0, 18.0, -1.0));
        // Non-finite values and an empty configuration keep nothing.
        h.add(&CFG, 19_500, f64::NAN);
        assert_eq!(h.query(&CFG, 19_000, 19_000, 0)[0].n, 1);
        let mut none = History::default();
        none.add(
            &HistoryConfig {
                resolution_ms: 1000,
                buckets: 0,
            },
            1,
            1.0,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn configured_in_the_history_section() {
        let path = std::path::Path::new("server.toml");
        let c = crate::config::Config::parse("[history]\nbuckets = 1440\n", path).unwrap();
        assert_eq!(
            c.history,
            HistoryConfig {
                resolution_ms: 60_000,
                buckets: 1440
            }
        );
        assert_eq!(c.history.retention_ms(), 86_400_000);
        let e = crate::config::Config::parse("[history]\nresolution_ms = 10\n", path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("history.resolution_ms"), "{e}");
        assert!(crate::config::Config::parse("[history]\nbucket = 1\n", path).is_err());
    }

    #[test]
    fn query_windows_and_steps() {
        let cfg = HistoryConfig {
            resolution_ms: 1000,
            buckets: 100,
        };
        let mut h = History::default();
        for s in 0..10 {
            h.add(&cfg, s * 1000 + 1, s as f64);
        }
        // [from, to] selects overlapping buckets.
        let q = h.query(&cfg, 2500, 4000, 0);
        assert_eq!(
            q.iter().map(|b| b.t_ms).collect::<Vec<_>>(),
            [2000, 3000, 4000]
        );
        // step 2.5 s rounds up to 3 s windows.
        let q = h.query(&cfg, 0, 9999, 2500);
        assert_eq!(
            q.iter().map(|b| b.t_ms).collect::<Vec<_>>(),
            [0, 3000, 6000, 9000]
        );
        assert_eq!((q[1].n, q[1].min, q[1].max, q[1].last), (3, 3.0, 5.0, 5.0));
    }
}
