//! The injected clock of the DCIM daemons: where the server, the edge agent and the DC-09
//! transmitter read the time, instead of each asking the system.
//!
//! # Why a clock is passed around
//!
//! Much of what these daemons do is about time: a batch goes out when its oldest sample is
//! 30 ms old, a lease expires, data that stopped arriving turns Unknown and then Down, a drill
//! ends, a DC-09 path is probed again. Tests of such rules must not sleep in real time: they
//! would be slow, and on a loaded machine they would pass or fail by luck. So every shell reads
//! the time from the [`Clock`] it was given, and a test gives it one that follows tokio's
//! paused time ([`Clock::tokio`], `#[tokio::test(start_paused = true)]`) or one that moves only
//! when told ([`Clock::manual`]). The functional cores (fire logic, alarm and redundancy
//! engines, planners) never read a clock at all: the shell passes them the time as an argument.
//!
//! # Two times
//!
//! - **Wall time**, [`Clock::now_ms`]: milliseconds since the Unix epoch, for timestamps that
//!   leave the process (samples, events, audit records, leases shared with other replicas).
//!   The system's wall clock can be stepped (NTP, an operator), also backwards.
//! - **Monotonic time**, [`Clock::instant`]: for ages and deadlines inside one process; never
//!   goes back.
//!
//! # Sources
//!
//! | Constructor | `now_ms` | `instant` |
//! |---|---|---|
//! | [`Clock::system`] | the system wall clock | the monotonic clock; with the `tokio` feature tokio's, so it follows a paused runtime |
//! | [`Clock::tokio`] | the wall time at creation plus tokio's elapsed time | tokio's clock |
//! | [`Clock::manual`] | the given time, moved by [`Clock::advance`] / [`Clock::set_ms`] | moved by [`Clock::advance`] only |
//!
//! Clones share one time: a test keeps a clone of the clock it handed to the code under test
//! and moves both by moving one.
//!
//! [`now_ms`] (the free function) reads the system wall clock directly. It is for the few
//! places where wall time is genuinely meant and no test could want another (the timestamp
//! of a command-line operation, a test fixture); everything else takes a [`Clock`].
//!
//! The crate depends on no other crate of the workspace; the `tokio` feature (on by default)
//! adds tokio's time driver only.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The system's wall clock in milliseconds since the Unix epoch (0 if it is set before 1970).
///
/// A direct read: only where wall time is genuinely meant (see the crate docs); code that a
/// timing test exercises takes a [`Clock`].
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a daemon reads the time. Cheap to clone; clones share one time. The default is the
/// system clock.
#[derive(Debug, Clone, Default)]
pub struct Clock(Source);

#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    System,
    #[cfg(feature = "tokio")]
    Tokio {
        wall_ms: i64,
        start: tokio::time::Instant,
    },
    Manual(Arc<Manual>),
}

#[derive(Debug)]
struct Manual {
    wall_ms: AtomicI64,
    elapsed_ms: AtomicU64,
    origin: Instant,
}

impl Clock {
    /// The system's clocks: what the daemons run on.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// Time that follows tokio's clock: under `tokio::time::pause()` (or
    /// `#[tokio::test(start_paused = true)]`) both times move only as the runtime's time
    /// advances. The wall time starts at the system's wall time when the clock is created;
    /// create it inside the runtime whose clock it should follow.
    #[cfg(feature = "tokio")]
    pub fn tokio() -> Clock {
        Clock(Source::Tokio {
            wall_ms: now_ms(),
            start: tokio::time::Instant::now(),
        })
    }

    /// A clock standing at `unix_ms` (and at a fixed instant) until [`Clock::advance`] or
    /// [`Clock::set_ms`] moves it.
    pub fn manual(unix_ms: i64) -> Clock {
        Clock(Source::Manual(Arc::new(Manual {
            wall_ms: AtomicI64::new(unix_ms),
            elapsed_ms: AtomicU64::new(0),
            origin: Instant::now(),
        })))
    }

    /// Wall time: milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => now_ms(),
            #[cfg(feature = "tokio")]
            Source::Tokio { wall_ms, start } => {
                let elapsed = tokio::time::Instant::now().duration_since(*start);
                wall_ms.saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            }
            Source::Manual(m) => m.wall_ms.load(Ordering::SeqCst),
        }
    }

    /// Monotonic time, for ages and deadlines within the process (never goes back, also when
    /// the wall time is set back).
    pub fn instant(&self) -> Instant {
        match &self.0 {
            #[cfg(feature = "tokio")]
            Source::System | Source::Tokio { .. } => tokio::time::Instant::now().into_std(),
            #[cfg(not(feature = "tokio"))]
            Source::System => Instant::now(),
            Source::Manual(m) => {
                m.origin + Duration::from_millis(m.elapsed_ms.load(Ordering::SeqCst))
            }
        }
    }

    /// Moves a manual clock (wall and monotonic time) forward by `d`.
    ///
    /// The system and tokio clocks cannot be moved from here (a paused runtime is moved with
    /// `tokio::time::advance`): a call on them is the caller's mistake, ignored in release
    /// builds and a panic in debug builds, so that a test believing it moved the time cannot
    /// pass without having done so.
    pub fn advance(&self, d: Duration) {
        match &self.0 {
            Source::Manual(m) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                let _ = m
                    .elapsed_ms
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |e| {
                        Some(e.saturating_add(ms))
                    });
                let ms = i64::try_from(ms).unwrap_or(i64::MAX);
                let _ = m
                    .wall_ms
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                        Some(w.saturating_add(ms))
                    });
            }
            _ => debug_assert!(false, "Clock::advance on a clock that is not manual"),
        }
    }

    /// Sets a manual clock's wall time to `unix_ms`, forward or back, as an NTP step or an
    /// operator would; its monotonic time does not move. Like [`Clock::advance`], a mistake on
    /// the other clocks (ignored; a panic in debug builds).
    pub fn set_ms(&self, unix_ms: i64) {
        match &self.0 {
            Source::Manual(m) => m.wall_ms.store(unix_ms, Ordering::SeqCst),
            _ => debug_assert!(false, "Clock::set_ms on a clock that is not manual"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hazard (all of these): a test clock that moves on its own, or that does not move when
    // told, makes every timing test built on it pass or fail by accident; a system clock that
    // stands still would freeze ages and timeouts in production.

    #[test]
    fn a_manual_clock_stands_still_in_real_time() {
        let c = Clock::manual(1_000_000);
        let t0 = c.instant();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.now_ms(), 1_000_000);
        assert_eq!(c.instant(), t0);
    }

    #[test]
    fn advancing_a_manual_clock_moves_both_times_and_every_clone() {
        let c = Clock::manual(1_000_000);
        let t0 = c.instant();
        let other = c.clone();
        other.advance(Duration::from_millis(250));
        assert_eq!(c.now_ms(), 1_000_250);
        assert_eq!(c.instant(), t0 + Duration::from_millis(250));
        c.advance(Duration::from_secs(3600));
        assert_eq!(other.now_ms(), 1_000_250 + 3_600_000);
        assert_eq!(other.instant() - t0, Duration::from_millis(3_600_250));
    }

    /// Hazard: a wall clock stepped back (NTP, an operator) must not make ages negative or
    /// deadlines come back: monotonic time ignores the step.
    #[test]
    fn setting_the_wall_time_back_leaves_monotonic_time_alone() {
        let c = Clock::manual(5_000);
        let t0 = c.instant();
        c.set_ms(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.instant(), t0);
        c.advance(Duration::from_millis(10));
        assert_eq!(c.now_ms(), 1_010);
        assert_eq!(c.instant(), t0 + Duration::from_millis(10));
    }

    #[test]
    fn advancing_saturates_instead_of_wrapping_into_the_past() {
        let c = Clock::manual(i64::MAX - 5);
        c.advance(Duration::from_millis(10));
        assert_eq!(c.now_ms(), i64::MAX);
    }

    #[test]
    fn the_system_clock_reads_wall_time_and_moves() {
        let before = now_ms();
        let c = Clock::system();
        let t = c.now_ms();
        assert!(t >= before && t - before < 60_000);
        assert!(t > 1_600_000_000_000, "after 2020");
        let i0 = c.instant();
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.instant() > i0, "monotonic time stands still");
        assert!(c.now_ms() > before);
    }

    /// Hazard: a test that believes it moved the time (but handed the code the system clock)
    /// would check nothing; in debug builds it fails loudly instead.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not manual")]
    fn advancing_the_system_clock_is_a_mistake_that_panics_in_debug_builds() {
        Clock::system().advance(Duration::from_secs(1));
    }

    #[test]
    fn the_default_clock_is_the_system_clock() {
        assert!(matches!(Clock::default().0, Source::System));
    }

    /// Hazard: a clock that does not follow the paused runtime lets a timing test sleep an
    /// hour of paused time and see no time pass (or real time pass), checking nothing.
    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time_and_nothing_else() {
        let c = Clock::tokio();
        let (w0, i0) = (c.now_ms(), c.instant());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!((c.now_ms(), c.instant()), (w0, i0), "real time leaked in");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now_ms() - w0, 3_600_000);
        assert_eq!(c.instant() - i0, Duration::from_secs(3600));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(c.now_ms() - w0, 3_601_500);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn the_system_clocks_monotonic_time_follows_paused_time() {
        let c = Clock::system();
        let i0 = c.instant();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(c.instant() - i0 >= Duration::from_secs(3600));
    }
}
