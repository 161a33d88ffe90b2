//! `[history]`: how much recent history the server keeps per point.

use serde::{Deserialize, Serialize};

/// How much history is kept per point (`[history]` in the server's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Width of one bucket.
    pub resolution_ms: i64,
    /// Buckets per point (0 keeps no history).
    pub buckets: usize,
}

impl Default for HistoryConfig {
    /// One-minute buckets for one hour.
    fn default() -> Self {
        HistoryConfig {
            resolution_ms: 60_000,
            buckets: 60,
        }
    }
}

impl HistoryConfig {
    pub fn retention_ms(&self) -> i64 {
        self.resolution_ms * self.buckets as i64
    }

    /// Checks the settings: `(field, what was expected)` when they are not usable.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1000..=86_400_000).contains(&self.resolution_ms) {
            return Err((
                "history.resolution_ms",
                "expected 1000 (1 s) to 86400000 (one day)",
            ));
        }
        if self.buckets > 100_000 {
            return Err(("history.buckets", "expected 0 (no history) to 100000"));
        }
        Ok(())
    }
}
