//! Log output of the daemons.
//!
//! Levels (`error`, `warn`, `info`, `debug`, `trace`) follow `tracing`: `error` is something
//! an operator must act on (data not committed, a link down, a disk full); `warn` a degraded
//! but handled condition (a retry, a refused message, a thinned buffer); `info` lifecycle and
//! rare state changes (start, stop, a broker connected, a reload); `debug` and `trace` are for
//! developers and may be heavy. The filter is `RUST_LOG` when set, else the daemon's
//! configured level (`EnvFilter` syntax: `info,dcim_server::io::mqtt=debug`).
//!
//! Two formats:
//! - `text` (default): one line per event for people. ANSI colours only when stderr is a
//!   terminal (log files and journald get plain text); under systemd, where journald stamps
//!   every line itself (`JOURNAL_STREAM` names stderr), the line carries no second timestamp.
//! - `json`: one JSON object per line (`timestamp`, `level`, `target`, `fields` with
//!   `message`, and the current spans) for log shippers such as Loki or Vector.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The format `DCIM_LOG_FORMAT` names, else `configured` (the `[log] format` of a configuration
/// file), else text.
pub fn format_from_env_or(configured: &str) -> LogFormat {
    std::env::var("DCIM_LOG_FORMAT")
        .ok()
        .and_then(|f| LogFormat::parse(&f))
        .or_else(|| LogFormat::parse(configured))
        .unwrap_or_default()
}

/// Whether stderr is the stream journald reads (`JOURNAL_STREAM=dev:inode` of stderr).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        Err(_) => false,
    }
}

/// Installs the global subscriber writing to stderr. `default_filter` applies when `RUST_LOG`
/// is unset (or invalid). Returns false when a subscriber was already installed (tests).
pub fn init_logging(format: LogFormat, default_filter: &str) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            if stderr_is_journal() {
                builder.with_ansi(ansi).without_time().try_init().is_ok()
            } else {
                builder.with_ansi(ansi).try_init().is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("logfmt"), None);
        assert_eq!(LogFormat::Json.as_str(), "json");
    }
}
