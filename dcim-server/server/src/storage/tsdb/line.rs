//! InfluxDB line protocol: the pure encoder of samples, the in-memory staging the ingest
//! fills (bounded, overflow counted) and the writer drains, and URL encoding for the store's
//! API. Below both the writer and the query client.

use dcim_points::{Sample, Value};
use std::fmt::Write;
use std::sync::Mutex;
use tokio::sync::Notify;

fn escape_tag(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

fn escape_measurement(s: &str, out: &mut String) {
    for c in s.chars() {
        if c == ',' || c == ' ' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// One line of line protocol, `None` when the sample has no value to write.
pub fn encode(measurement: &str, site: &str, agent: &str, s: &Sample) -> Option<String> {
    let mut line = String::with_capacity(128);
    encode_into(measurement, site, agent, s, &mut line).then_some(line)
}

/// Appends one line (without its newline) to `line`; false (and possibly a partial line the
/// caller cuts off) when the sample has no value to write.
pub fn encode_into(
    measurement: &str,
    site: &str,
    agent: &str,
    s: &Sample,
    line: &mut String,
) -> bool {
    let Some(value) = s.value.as_ref() else {
        return false;
    };
    let field = match value {
        Value::Number(n) if n.is_finite() => format!("value={n:?}"),
        Value::Number(_) => return false,
        Value::Bool(b) => format!("value={}", if *b { "1.0" } else { "0.0" }),
        Value::Text(t) => {
            let mut v = String::from("text=\"");
            for c in t.chars() {
                if c == '"' || c == '\\' {
                    v.push('\\');
                }
                v.push(c);
            }
            v.push('"');
            v
        }
    };
    escape_measurement(measurement, line);
    // Tags sorted by key, as InfluxDB recommends.
    let mut tags: Vec<(&str, &str)> = vec![
        ("agent", agent),
        ("device", &s.device),
        ("point", &s.point),
        ("quality", s.quality.as_str()),
        ("role", s.role.as_str()),
        ("site", site),
    ];
    for (k, v) in &s.labels {
        if !matches!(
            k.as_str(),
            "agent" | "device" | "point" | "quality" | "role" | "site"
        ) && !v.is_empty()
        {
            tags.push((k, v));
        }
    }
    tags.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in tags {
        if v.is_empty() {
            continue;
        }
        line.push(',');
        escape_tag(k, line);
        line.push('=');
        escape_tag(v, line);
    }
    let _ = write!(line, " {field} {}", s.ts_ms);
    true
}

/// Lines encoded by the ingest, waiting for the flusher to move them into the on-disk buffer
/// (`tsdb::writer`). Bounded by `influx.queue_capacity` lines: beyond it (the flusher cannot
/// keep up or the buffer's disk fails) lines are dropped and counted.
#[derive(Debug)]
pub struct Staging {
    pub(crate) inner: Mutex<Staged>,
    /// Woken when `batch` lines wait.
    pub full: Notify,
    pub(crate) capacity: usize,
    pub(crate) batch: usize,
}

/// One batch taken from the staging area.
#[derive(Debug, Default)]
pub struct Staged {
    pub body: String,
    pub lines: usize,
    pub oldest_ms: i64,
    pub newest_ms: i64,
}

impl Staging {
    pub fn new(capacity: usize, batch: usize) -> Staging {
        Staging {
            inner: Mutex::new(Staged::default()),
            full: Notify::new(),
            capacity,
            batch,
        }
    }

    /// Everything staged so far, or `None` when nothing is.
    pub fn take(&self) -> Option<Staged> {
        let mut s = self.inner.lock().expect("influx staging");
        if s.lines == 0 {
            return None;
        }
        Some(std::mem::take(&mut *s))
    }

    pub fn lines(&self) -> usize {
        self.inner.lock().expect("influx staging").lines
    }

    /// The oldest sample time staged, if anything is.
    pub fn oldest(&self) -> Option<i64> {
        let s = self.inner.lock().expect("influx staging");
        (s.lines > 0).then_some(s.oldest_ms)
    }
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters kept).
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
