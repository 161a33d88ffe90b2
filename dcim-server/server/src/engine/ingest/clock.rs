//! Sample timestamps against the server's clock.
//!
//! The latest value of a point is the sample with the newest timestamp, so that a replayed,
//! older reading never overwrites a newer one. That rule lets one sample stamped in the future
//! (an agent whose clock jumped to 2100) freeze a point: every later, correct reading is older
//! than it and goes to history only, and alarms run on the frozen value. So:
//!
//! - a sample stamped more than `max_skew_ms` ahead of the server's clock is refused: counted
//!   (`dcim_ingest_future_samples_total`) and reported as an `agent-clock-ahead` trouble for
//!   its agent; it reaches neither the latest values, nor history, nor the alarm engine;
//! - a sample stamped ahead by less (ordinary clock skew) is taken as received now: its
//!   timestamp becomes the server's time, so it can never outrank a sample that arrives later.
//!
//! No sample in the server is therefore later than its arrival, and a newer arrival always
//! carries a timestamp at least as new as any earlier one's, up to the agents' real skew.

pub use crate::config::DEFAULT_MAX_CLOCK_SKEW_MS;

/// What to do with a sample's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Not in the future: keep as it is.
    Keep,
    /// Ahead by at most the tolerance: take it as received at `now_ms`.
    Clamp,
    /// Ahead by more than the tolerance: refuse.
    Refuse,
}

/// The rule of the module docs.
pub fn admit(ts_ms: i64, now_ms: i64, max_skew_ms: i64) -> Admit {
    if ts_ms <= now_ms {
        Admit::Keep
    } else if ts_ms - now_ms <= max_skew_ms {
        Admit::Clamp
    } else {
        Admit::Refuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tolerance_splits_skew_from_nonsense() {
        let now = 1_800_000_000_000;
        assert_eq!(admit(now - 5_000, now, 60_000), Admit::Keep);
        assert_eq!(admit(now, now, 60_000), Admit::Keep);
        assert_eq!(admit(now + 1, now, 60_000), Admit::Clamp);
        assert_eq!(admit(now + 60_000, now, 60_000), Admit::Clamp);
        assert_eq!(admit(now + 60_001, now, 60_000), Admit::Refuse);
        // 2100-01-01.
        assert_eq!(admit(4_102_444_800_000, now, 60_000), Admit::Refuse);
        assert_eq!(admit(now + 1, now, 0), Admit::Refuse);
    }
}
