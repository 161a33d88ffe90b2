//! The on-disk buffer between the ingest and the time-series store.
//!
//! One record per batch: a 16-byte header (oldest and newest sample time, i64 LE ms) and the
//! gzip-compressed line-protocol body, sent as it is (`Content-Encoding: gzip`). It is a
//! [`dcim_spool::Spool`] with one consumer (`tsdb`) and the telemetry class only, so it has the
//! spool's properties: every append reaches the kernel before it returns (a crash loses
//! nothing appended), an fsync at least every second (a power cut loses at most a second),
//! checksummed records (a damaged tail is cut at open and reported), one process per directory
//! (`LOCK`), and a byte budget: over it the oldest batches are dropped and their lines counted
//! in `meta.json`, which survives restarts.

use dcim_spool::{Class, FsyncPolicy, Spool, SpoolConfig, SpoolError};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub const CONSUMER: &str = "tsdb";
const HEADER: usize = 16;

/// A batch read back from the buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub lines: u32,
    pub oldest_ms: i64,
    pub newest_ms: i64,
    /// gzip of the line-protocol text.
    pub gzip: Vec<u8>,
}

/// What the buffer holds, for metrics and `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Status {
    pub bytes: u64,
    pub max_bytes: u64,
    pub batches: u64,
    /// Lines in those batches.
    pub lines: u64,
    /// Lines dropped because the buffer was full, since it was created.
    pub dropped_lines: u64,
}

pub struct Buffer {
    spool: Spool,
    /// Lines in the batches not accepted yet (counted at open, then kept up to date).
    lines: u64,
    /// The spool's count of dropped lines when `lines` was last corrected for it.
    dropped_seen: u64,
}

/// Encodes one record's payload: header, then the gzip of `body`.
pub fn encode(body: &str, oldest_ms: i64, newest_ms: i64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER + body.len() / 8);
    out.extend_from_slice(&oldest_ms.to_le_bytes());
    out.extend_from_slice(&newest_ms.to_le_bytes());
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    gz.write_all(body.as_bytes())?;
    gz.finish()
}

/// Decodes a record's payload into `(oldest, newest, gzip body)`.
pub fn decode(payload: &[u8]) -> Option<(i64, i64, &[u8])> {
    if payload.len() < HEADER {
        return None;
    }
    let oldest = i64::from_le_bytes(payload[..8].try_into().ok()?);
    let newest = i64::from_le_bytes(payload[8..16].try_into().ok()?);
    Some((oldest, newest, &payload[HEADER..]))
}

impl Buffer {
    /// Opens (or creates) the buffer in `dir`, recovering it after a crash.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Buffer, SpoolError> {
        let mut cfg = SpoolConfig::new(dir);
        cfg.max_bytes = max_bytes;
        cfg.segment_bytes = (max_bytes / 64).clamp(1 << 20, 16 << 20);
        cfg.consumers = vec![CONSUMER.into()];
        cfg.telemetry_fsync = FsyncPolicy::Interval(Duration::from_secs(1));
        cfg.event_fsync = FsyncPolicy::Always;
        // A batch may be sent as soon as it is written: sending one that a power cut then
        // takes from the buffer loses nothing (the store has it).
        cfg.telemetry_visible_before_sync = true;
        let (spool, recovery) = Spool::open(cfg)?;
        for (path, bytes, why) in &recovery.truncated {
            tracing::warn!(path = %path.display(), bytes, reason = why, "time-series buffer: recovery cut a damaged tail");
        }
        let dropped_seen = spool.stats().thinned_samples;
        let mut b = Buffer {
            spool,
            lines: 0,
            dropped_seen,
        };
        b.lines = b.count_pending()?;
        Ok(b)
    }

    /// Lines in the batches left from a previous run (reads them once, at open).
    fn count_pending(&self) -> Result<u64, SpoolError> {
        let mut after = self.spool.acked(CONSUMER, Class::Telemetry);
        let mut lines = 0;
        loop {
            let recs = self
                .spool
                .read_after(Class::Telemetry, after, 4096, 64 << 20)?;
            let Some(last) = recs.last() else {
                return Ok(lines);
            };
            after = last.seq;
            lines += recs.iter().map(|r| u64::from(r.count)).sum::<u64>();
        }
    }

    /// Appends one batch of `lines` lines (already encoded by [`encode`]).
    pub fn append(&mut self, payload: Vec<u8>, lines: u32, now_ms: u64) -> Result<u64, SpoolError> {
        let seq = self
            .spool
            .append(Class::Telemetry, lines, now_ms, move |_| payload)?;
        self.lines += u64::from(lines);
        // Over its budget the spool dropped its oldest batches: their lines are no longer here.
        let dropped = self.spool.stats().thinned_samples;
        self.lines = self
            .lines
            .saturating_sub(dropped.saturating_sub(self.dropped_seen));
        self.dropped_seen = dropped;
        Ok(seq)
    }

    /// The oldest batch the store has not accepted yet (visible once written or fsynced).
    pub fn next(&self) -> Result<Option<Batch>, SpoolError> {
        let after = self.spool.acked(CONSUMER, Class::Telemetry);
        let mut recs = self
            .spool
            .read_after(Class::Telemetry, after, 1, usize::MAX)?;
        Ok(recs.pop().map(|r| {
            let (oldest_ms, newest_ms, gz) = decode(&r.payload).unwrap_or((0, 0, &[]));
            Batch {
                seq: r.seq,
                lines: r.count,
                oldest_ms,
                newest_ms,
                gzip: gz.to_vec(),
            }
        }))
    }

    /// The store accepted (or refused for good) the oldest batch, `seq` of `lines` lines.
    pub fn done(&mut self, seq: u64, lines: u32) -> Result<(), SpoolError> {
        self.spool.ack(CONSUMER, Class::Telemetry, seq)?;
        self.lines = self.lines.saturating_sub(u64::from(lines));
        Ok(())
    }

    /// Fsync and persist the cursor (periodically and at shutdown).
    pub fn tick(&mut self, now_ms: u64) -> Result<(), SpoolError> {
        self.spool.tick(now_ms)
    }

    pub fn flush(&mut self) -> Result<(), SpoolError> {
        self.spool.flush()
    }

    pub fn status(&self) -> Status {
        let s = self.spool.stats();
        Status {
            bytes: s.bytes,
            max_bytes: s.max_bytes,
            // `pending` is per class: events first, then telemetry.
            batches: s.pending[1],
            lines: self.lines,
            dropped_lines: s.thinned_samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(b)
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn batches_survive_a_reopen_until_the_store_accepted_them() {
        // Hazard: history lost because the server restarted while the store was down.
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = Buffer::open(dir.path(), 64 << 20).unwrap();
            for i in 0..3 {
                let body = format!("dcim,device=d{i} value=1 {}\n", 1000 + i);
                b.append(encode(&body, 1000 + i, 1000 + i).unwrap(), 1, 0)
                    .unwrap();
            }
            let first = b.next().unwrap().unwrap();
            assert_eq!((first.oldest_ms, first.lines), (1000, 1));
            b.done(first.seq, first.lines).unwrap();
            b.flush().unwrap();
        }
        let b = Buffer::open(dir.path(), 64 << 20).unwrap();
        assert_eq!(b.status().batches, 2);
        // Hazard: a backlog reported smaller than it is after a restart.
        assert_eq!(b.status().lines, 2, "lines left from the previous run");
        let next = b.next().unwrap().unwrap();
        assert_eq!(next.oldest_ms, 1001);
        assert_eq!(gunzip(&next.gzip), "dcim,device=d1 value=1 1001\n");
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_batches_and_counts_their_lines() {
        // Hazard: a store away longer than the buffer lasts; the loss must be counted and the
        // newest data kept, never the reverse and never silently.
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::open(dir.path(), 16 << 20).unwrap();
        // Incompressible-ish bodies so that the budget is reached.
        let mut state: u64 = 1;
        let mut body = String::new();
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            body.push_str(&format!("{state:x}"));
        }
        for i in 0..100 {
            b.append(encode(&body, i, i).unwrap(), 500, 0).unwrap();
        }
        let s = b.status();
        assert!(s.bytes <= s.max_bytes, "{s:?}");
        assert!(
            s.dropped_lines > 0 && s.dropped_lines.is_multiple_of(500),
            "{s:?}"
        );
        assert_eq!(s.batches * 500 + s.dropped_lines, 100 * 500, "{s:?}");
        assert_eq!(
            s.lines,
            s.batches * 500,
            "the dropped lines are no longer pending"
        );
        let oldest = b.next().unwrap().unwrap();
        assert!(oldest.oldest_ms > 0, "the oldest batches went first");
        drop(b);
        let b = Buffer::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(
            b.status().dropped_lines,
            s.dropped_lines,
            "the count is persisted"
        );
        assert_eq!(b.status().lines, s.lines, "pending lines counted at open");
    }
}
