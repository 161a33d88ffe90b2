//! Bounded audit rows for failures that anyone can cause without an account (pure; time
//! passed in): failed sign-ins over HTTP and MQTT, locks, refused gate connections.
//!
//! Each failure is offered with its action, actor (the user name it named), target and peer.
//! Within a window of [`WINDOW_MS`], the first failure of each `(action, actor, target,
//! peer)` is written as its own row, up to [`ROWS_PER_WINDOW`] rows; every
//! other failure is only counted, per key (at most [`MAX_KEYS`] keys, then one "others"
//! count). When the window ends, [`FailureAudit::flush`] returns one summary row
//! (`auth.failures_coalesced`) with the counts. So a flood of failures writes at most
//! `ROWS_PER_WINDOW + 1` rows a minute, each of bounded size, whatever it sends.

use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const WINDOW_MS: i64 = 60_000;
/// Rows written as they happen per window; the rest is summarised.
pub const ROWS_PER_WINDOW: usize = 10;
/// Keys counted separately in a window's summary.
pub const MAX_KEYS: usize = 64;
/// Longest text of an actor, target or peer kept in a row.
pub const MAX_FIELD: usize = 128;

/// An audit row: `(actor, action, target, detail)`.
pub type Row = (String, String, String, Value);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    action: String,
    actor: String,
    target: String,
    peer: String,
}

#[derive(Debug, Clone, Copy, Default)]
struct Count {
    /// Failures beyond the one written as a row.
    n: u64,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Debug, Default)]
pub struct FailureAudit {
    window_start: Option<i64>,
    rows: usize,
    written: std::collections::BTreeSet<Key>,
    counts: BTreeMap<Key, Count>,
    others: u64,
    total_coalesced: u64,
}

/// `s` cut to [`MAX_FIELD`] characters with control characters replaced.
pub fn bounded(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_FIELD)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(MAX_FIELD).is_some() {
        out.push('…');
    }
    out
}

impl FailureAudit {
    /// A failure; `Some(row)` to write now, `None` when it was only counted.
    pub fn failure(
        &mut self,
        now_ms: i64,
        action: &str,
        actor: &str,
        target: &str,
        peer: &str,
        mut detail: Value,
    ) -> Option<Row> {
        let start = *self.window_start.get_or_insert(now_ms);
        if now_ms - start >= WINDOW_MS && self.counts.is_empty() && self.others == 0 {
            // Nothing to summarise: a new window starts here.
            self.window_start = Some(now_ms);
            self.rows = 0;
            self.written.clear();
        }
        let key = Key {
            action: bounded(action),
            actor: bounded(actor),
            target: bounded(target),
            peer: bounded(peer),
        };
        if self.rows < ROWS_PER_WINDOW && !self.written.contains(&key) {
            self.rows += 1;
            self.written.insert(key.clone());
            if let Value::Object(m) = &mut detail {
                m.insert("peer".into(), key.peer.clone().into());
            }
            return Some((key.actor, key.action, key.target, detail));
        }
        self.total_coalesced += 1;
        let n = self.counts.len();
        match self.counts.get_mut(&key) {
            Some(c) => {
                c.n += 1;
                c.last_ms = now_ms;
            }
            None if n < MAX_KEYS => {
                self.counts.insert(
                    key,
                    Count {
                        n: 1,
                        first_ms: now_ms,
                        last_ms: now_ms,
                    },
                );
            }
            None => self.others += 1,
        }
        None
    }

    /// At the end of a window: the summary row of what was only counted (if anything was),
    /// and a new window.
    pub fn flush(&mut self, now_ms: i64) -> Option<Row> {
        let start = self.window_start?;
        if now_ms - start < WINDOW_MS {
            return None;
        }
        self.window_start = Some(now_ms);
        self.rows = 0;
        self.written.clear();
        if self.counts.is_empty() && self.others == 0 {
            return None;
        }
        let mut by: Vec<(Key, Count)> = std::mem::take(&mut self.counts).into_iter().collect();
        by.sort_by(|a, b| b.1.n.cmp(&a.1.n).then_with(|| a.0.cmp(&b.0)));
        let total: u64 = by.iter().map(|(_, c)| c.n).sum::<u64>() + self.others;
        let rows: Vec<Value> = by
            .iter()
            .map(|(k, c)| {
                json!({"action": k.action, "actor": k.actor, "target": k.target, "peer": k.peer, "count": c.n,
                       "first_ms": c.first_ms, "last_ms": c.last_ms})
            })
            .collect();
        let others = std::mem::take(&mut self.others);
        Some((
            "system".into(),
            "auth.failures_coalesced".into(),
            String::new(),
            json!({"from_ms": start, "to_ms": now_ms, "total": total, "by": rows, "others": others}),
        ))
    }

    /// Failures counted instead of written since start (for metrics).
    pub fn total_coalesced(&self) -> u64 {
        self.total_coalesced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: 1,000 failed logins with 60 kB names wrote 68 MB of audit rows in 0.2 s: anyone
    /// could fill the disk without an account.
    #[test]
    fn a_flood_of_failures_writes_a_bounded_number_of_bounded_rows() {
        let mut a = FailureAudit::default();
        let long = "x".repeat(60_000);
        let mut rows = Vec::new();
        for i in 0..10_000i64 {
            let actor = if i % 2 == 0 {
                long.clone()
            } else {
                format!("u{i}")
            };
            if let Some(r) = a.failure(i, "login.failed", &actor, "session", "10.0.0.1", json!({}))
            {
                rows.push(r);
            }
        }
        assert_eq!(rows.len(), ROWS_PER_WINDOW);
        assert!(a.flush(30_000).is_none(), "the window is not over");
        let summary = a.flush(60_000).unwrap();
        rows.push(summary.clone());
        assert_eq!(summary.3["total"], 10_000 - ROWS_PER_WINDOW as u64);
        assert!(summary.3["by"].as_array().unwrap().len() <= MAX_KEYS);
        let bytes: usize = rows
            .iter()
            .map(|r| r.0.len() + r.1.len() + r.2.len() + r.3.to_string().len())
            .sum();
        assert!(
            bytes < 64 * 1024,
            "{bytes} bytes of audit for 10,000 failures"
        );
        // The next window writes rows again.
        assert!(
            a.failure(60_001, "login.failed", "bob", "session", "p", json!({}))
                .is_some()
        );
    }

    #[test]
    fn a_quiet_failure_after_a_window_is_written() {
        let mut a = FailureAudit::default();
        assert!(
            a.failure(0, "login.failed", "a", "s", "p", json!({}))
                .is_some()
        );
        assert!(
            a.failure(1, "login.failed", "a", "s", "p", json!({}))
                .is_none()
        );
        assert!(a.flush(60_000).is_some());
        assert!(
            a.failure(200_000, "login.failed", "a", "s", "p", json!({}))
                .is_some()
        );
        assert_eq!(bounded("a\nb"), "a?b");
    }
}
