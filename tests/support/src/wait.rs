//! Polling with a deadline. The panicking forms name what was awaited, so a timeout says which
//! condition never came true instead of failing a later assertion.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the conditions are polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls the async condition `f` until it is true; panics with "timed out after T waiting for
/// WHAT" once `timeout` has passed.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the condition `cond` until it is true or `timeout` passes; returns the last answer
/// (the caller decides what a timeout means).
pub async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    cond()
}

/// [`poll_until`] for threads outside a runtime (the thread sleeps between polls).
pub fn poll_until_blocking(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    cond()
}
