//! Running as a system service, shared by `dcim-server` and `dcim-edge-agent`.
//!
//! - [`cli`]: the command-line loop of `dcim-server` and `dcim-demo` (words, `--name VALUE`
//!   options, `--help`/`--version`, exit status 2 on a bad command line).
//! - [`notify`]: the systemd notification protocol (`sd_notify(3)`): `READY=1` once the
//!   daemon serves, `WATCHDOG=1` from a supervised loop, `RELOADING=1`, `STOPPING=1` and
//!   `STATUS=` lines. Without `NOTIFY_SOCKET` (a terminal, a container, a test) every call is
//!   a no-op.
//! - [`log`]: log output. Text for people (colours only on a terminal, no second timestamp
//!   under journald) or JSON lines for log shippers (Loki, Vector, journald's `MESSAGE`).

pub mod cli;
pub mod log;
pub mod notify;

pub use log::{LogFormat, init_logging};
pub use notify::{Notifier, Watchdog};
