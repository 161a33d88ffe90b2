//! The server's clock and stop signal: the leaves every task and engine shell reads.
//!
//! Shells read the time from the [`Clock`] the server was started with (`App::clock`), never
//! from the system directly, so a test can run the server's timers on tokio's paused time
//! ([`Clock::tokio`]) or set the time by hand ([`Clock::manual`]). The pure engines take the
//! time as an argument.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::watch;

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it). Only for code
/// with no [`Clock`] at hand (start-up, before the server state exists).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the server's time comes from. Cheap to clone; clones share a manual clock.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    System,
    /// The wall time at creation, moved on by tokio's clock (which a paused test advances).
    Tokio {
        wall_ms: i64,
        start: tokio::time::Instant,
    },
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The system's wall clock (what the server runs on).
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// Wall time that follows tokio's clock: under `tokio::time::pause()` it moves only as the
    /// runtime's timers advance. Must be created inside a tokio runtime.
    pub fn tokio() -> Clock {
        Clock(Source::Tokio {
            wall_ms: now_ms(),
            start: tokio::time::Instant::now(),
        })
    }

    /// A clock that reads `ms` until moved with [`Clock::advance`] or [`Clock::set`].
    pub fn manual(ms: i64) -> Clock {
        Clock(Source::Manual(Arc::new(AtomicI64::new(ms))))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => now_ms(),
            Source::Tokio { wall_ms, start } => {
                wall_ms
                    + tokio::time::Instant::now()
                        .duration_since(*start)
                        .as_millis() as i64
            }
            Source::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock on by `ms` (no effect on the others).
    pub fn advance(&self, ms: i64) {
        if let Source::Manual(t) = &self.0 {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock (no effect on the others).
    pub fn set(&self, ms: i64) {
        if let Source::Manual(t) = &self.0 {
            t.store(ms, Ordering::SeqCst);
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

/// Resolves on SIGTERM or Ctrl-C: how `dcim-server` and `dcim-demo` are asked to stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves when the stop flag becomes true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: a timing test that sleeps in real time is slow and flaky on a loaded machine;
    /// one whose clock does not follow the paused runtime checks nothing.
    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let c = Clock::tokio();
        let t0 = c.now_ms();
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        assert_eq!(c.now_ms() - t0, 3_600_000);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = Clock::manual(1_000);
        let d = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        d.advance(500);
        assert_eq!(c.now_ms(), 1_500);
        c.set(10);
        assert_eq!(d.now_ms(), 10);
    }

    #[test]
    fn the_system_clock_reads_wall_time() {
        let before = now_ms();
        let t = Clock::system().now_ms();
        assert!(t >= before && t <= now_ms());
    }
}
