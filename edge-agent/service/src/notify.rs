//! The systemd notification protocol (`sd_notify(3)`), written here because it is one
//! datagram per message: `KEY=VALUE` lines sent to the Unix socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace).
//!
//! The units in `packaging/systemd/` use `Type=notify` and `WatchdogSec=`: the daemon sends
//! `READY=1` once it serves (listeners bound, spool or database open), and `WATCHDOG=1` at
//! least every half `WATCHDOG_USEC` **from a loop that proves the daemon works** (the server's
//! health supervisor, the agent's main loop), never from a timer of its own: a daemon whose
//! essential task is stuck stops pinging and systemd restarts it.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where notifications go; `None` when the process is not run by a service manager that
/// asked for them.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (unset: every call does nothing).
    pub fn from_env() -> Notifier {
        Notifier {
            socket: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// To an explicit socket (a path, or `@name` for the abstract namespace).
    pub fn to_socket(socket: impl Into<String>) -> Notifier {
        Notifier {
            socket: Some(socket.into()),
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one message of `KEY=VALUE` lines. Errors are returned, not logged: the caller
    /// decides (a lost `WATCHDOG=1` is retried by the next ping anyway).
    pub fn send(&self, state: &str) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let sock = UnixDatagram::unbound()?;
        match socket.strip_prefix('@') {
            Some(name) => {
                #[cfg(target_os = "linux")]
                {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    sock.send_to_addr(state.as_bytes(), &addr)?;
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = name;
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "abstract notify sockets exist on Linux only",
                    ));
                }
            }
            None => {
                sock.send_to(state.as_bytes(), PathBuf::from(socket))?;
            }
        }
        Ok(())
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.log_err(self.send(&format!("READY=1\nSTATUS={}", one_line(status))));
    }

    /// `STATUS=...`: shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.log_err(self.send(&format!("STATUS={}", one_line(status))));
    }

    /// `RELOADING=1` before a configuration reload; send [`Notifier::ready`] when done.
    pub fn reloading(&self) {
        self.log_err(self.send("RELOADING=1"));
    }

    /// `STOPPING=1` at the start of a clean shutdown.
    pub fn stopping(&self) {
        self.log_err(self.send("STOPPING=1\nSTATUS=stopping"));
    }

    fn log_err(&self, r: io::Result<()>) {
        if let Err(e) = r {
            tracing::warn!(socket = ?self.socket, "sd_notify: {e}");
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The watchdog systemd asked for (`WATCHDOG_USEC`, and `WATCHDOG_PID` when set must be this
/// process). [`Watchdog::due`] tells the supervised loop when to ping again.
#[derive(Debug, Clone)]
pub struct Watchdog {
    notifier: Notifier,
    /// Half the timeout: the recommended ping period.
    period: Duration,
    last: Option<Instant>,
}

impl Watchdog {
    /// From the environment; `None` when no watchdog is configured (or it is for another
    /// process).
    pub fn from_env(notifier: &Notifier) -> Option<Watchdog> {
        let usec = std::env::var("WATCHDOG_USEC").ok()?;
        let pid = std::env::var("WATCHDOG_PID").ok();
        Watchdog::from_values(notifier, &usec, pid.as_deref(), std::process::id())
    }

    /// Pure part of [`Watchdog::from_env`].
    pub fn from_values(
        notifier: &Notifier,
        usec: &str,
        pid: Option<&str>,
        own_pid: u32,
    ) -> Option<Watchdog> {
        let usec: u64 = usec.trim().parse().ok().filter(|u| *u > 0)?;
        if let Some(pid) = pid
            && pid.trim().parse::<u32>().ok() != Some(own_pid)
        {
            return None;
        }
        if !notifier.enabled() {
            return None;
        }
        Some(Watchdog {
            notifier: notifier.clone(),
            period: Duration::from_micros(usec / 2).max(Duration::from_millis(10)),
            last: None,
        })
    }

    /// How often to ping (half of `WatchdogSec`).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Whether a ping is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|l| now.duration_since(l) >= self.period)
    }

    /// Sends `WATCHDOG=1` if due. Call it only when the loop's own checks passed.
    pub fn ping(&mut self, now: Instant) {
        if self.due(now) {
            match self.notifier.send("WATCHDOG=1") {
                Ok(()) => self.last = Some(now),
                Err(e) => tracing::warn!("sd_notify WATCHDOG=1: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (dir, sock, path.display().to_string())
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_the_service_managers_socket() {
        // Hazard: a unit with Type=notify whose daemon never says READY=1 is killed after
        // TimeoutStartSec, so the daemon never runs under systemd.
        let (_dir, sock, path) = listener();
        let n = Notifier::to_socket(&path);
        n.ready("serving\non 8080");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=serving on 8080");
        n.reloading();
        assert_eq!(recv(&sock), "RELOADING=1");
        n.stopping();
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn abstract_sockets_are_supported() {
        let name = format!("dcim-service-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        Notifier::to_socket(format!("@{name}")).status("ok");
        assert_eq!(recv(&sock), "STATUS=ok");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let n = Notifier::default();
        assert!(!n.enabled());
        assert!(n.send("READY=1").is_ok());
        assert!(Watchdog::from_values(&n, "1000000", None, 1).is_none());
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_and_only_for_its_own_pid() {
        // Hazard: pinging for another process's watchdog (a forked helper inheriting the
        // environment) would keep a hung daemon alive.
        let (_dir, sock, path) = listener();
        let n = Notifier::to_socket(&path);
        assert!(Watchdog::from_values(&n, "30000000", Some("41"), 42).is_none());
        assert!(Watchdog::from_values(&n, "0", None, 42).is_none());
        assert!(Watchdog::from_values(&n, "nonsense", None, 42).is_none());
        let mut w = Watchdog::from_values(&n, "30000000", Some("42"), 42).unwrap();
        assert_eq!(w.period(), Duration::from_secs(15));
        let t0 = Instant::now();
        assert!(w.due(t0));
        w.ping(t0);
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert!(!w.due(t0 + Duration::from_secs(14)));
        w.ping(t0 + Duration::from_secs(14));
        assert!(w.due(t0 + Duration::from_secs(15)));
        w.ping(t0 + Duration::from_secs(15));
        assert_eq!(recv(&sock), "WATCHDOG=1");
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(sock.recv(&mut buf).is_err(), "no ping while not due");
    }
}
