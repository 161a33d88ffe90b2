//! The agent's clock, passed to its tasks instead of each reading the system clocks: wall time
//! (Unix ms: timestamps of samples and events, drill deadlines, spool lag) and monotonic time
//! (batch age). A leaf module: it imports nothing of the crate.
//!
//! [`Clock::system`] reads the real clocks; its monotonic time is `tokio::time::Instant`, so a
//! test under tokio's paused time (`#[tokio::test(start_paused = true)]`) drives it.
//! [`Clock::manual`] moves only when told ([`Clock::advance`]), for tests of timing rules that
//! must not sleep in real time. Clones share one time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Where the agent reads the time. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock(Source);

#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<Manual>),
}

#[derive(Debug)]
struct Manual {
    unix_start_ms: i64,
    instant_start: Instant,
    elapsed_ms: AtomicI64,
}

impl Clock {
    /// The system's wall clock and tokio's monotonic clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock standing at `unix_ms` until [`Clock::advance`] moves it.
    pub fn manual(unix_ms: i64) -> Clock {
        Clock(Source::Manual(Arc::new(Manual {
            unix_start_ms: unix_ms,
            instant_start: Instant::now(),
            elapsed_ms: AtomicI64::new(0),
        })))
    }

    /// Wall time in Unix milliseconds.
    pub fn unix_ms(&self) -> i64 {
        match &self.0 {
            Source::System => unix_ms(),
            Source::Manual(m) => m.unix_start_ms + m.elapsed_ms.load(Ordering::SeqCst),
        }
    }

    /// Monotonic time (for ages and deadlines; never goes back when the wall clock is set).
    pub fn instant(&self) -> Instant {
        match &self.0 {
            Source::System => Instant::now(),
            Source::Manual(m) => {
                let elapsed = m.elapsed_ms.load(Ordering::SeqCst).max(0) as u64;
                m.instant_start + Duration::from_millis(elapsed)
            }
        }
    }

    /// Moves a manual clock (both times) forward by `d`. The system clock is not moved: a
    /// call on it is a mistake of the caller and is ignored (debug builds panic).
    pub fn advance(&self, d: Duration) {
        match &self.0 {
            Source::Manual(m) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                m.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
            }
            Source::System => debug_assert!(false, "advance() on the system clock"),
        }
    }
}

/// The system's wall clock in Unix milliseconds (0 if it is set before 1970). For code that
/// has no [`Clock`] at hand: building a driver before its task runs, and the tests.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hazard: a test clock that drifts with real time (or a system clock that stands still)
    // makes timing rules pass or fail by accident.

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let c = Clock::manual(1_000_000);
        let t0 = c.instant();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.unix_ms(), 1_000_000);
        assert_eq!(c.instant(), t0);
        let other = c.clone();
        other.advance(Duration::from_millis(250));
        assert_eq!(c.unix_ms(), 1_000_250);
        assert_eq!(c.instant(), t0 + Duration::from_millis(250));
    }

    #[test]
    fn the_system_clock_reads_wall_time() {
        let before = unix_ms();
        let now = Clock::system().unix_ms();
        assert!(now >= before && now - before < 60_000);
        assert!(now > 1_600_000_000_000, "after 2020");
    }

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_follows_tokios_paused_time() {
        let c = Clock::system();
        let t0 = c.instant();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(c.instant() - t0 >= Duration::from_secs(3600));
    }
}
