//! The server's stop signal: how a process is asked to stop ([`shutdown_signal`]) and how
//! every task waits for the stop flag ([`stopped`]).
//!
//! The time itself is not read here: shells read it from the [`dcim_clock::Clock`] the server
//! was started with (`App::clock`, `App::now_ms`; handed to the store at open and to the
//! time-series writer at spawn), so a test can run the server's timers on tokio's paused time
//! ([`dcim_clock::Clock::tokio`]) or set the time by hand ([`dcim_clock::Clock::manual`]). The
//! pure engines take the time as an argument.

use tokio::sync::watch;

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
