//! The tasks between the ingest and the store.
//!
//! - The **flusher** takes the lines the ingest staged in memory
//!   ([`crate::storage::tsdb::influx::InfluxHandle::push`]) every `flush_interval_ms` (or as soon as
//!   `batch_size` lines wait), compresses them and appends one batch to the on-disk buffer.
//! - The **sender** posts the oldest batch in the buffer to `/api/v2/write` and removes it
//!   only when the store answered 2xx. A refusal for the batch's own sake (400, 413, 422) drops
//!   it and counts its lines (`dcim_influx_lines_dropped_total`); anything else (the store
//!   down, 401/403 from a wrong token, 5xx) keeps it and retries with back-off up to 30 s, so
//!   a misconfigured token loses nothing either.
//!
//! Both read the time (the buffer's age-based sync, the last success and error times in
//! `/health`) from the server's clock, handed over at spawn in [`Shared::clock`].

use crate::base::metrics::{Metrics, inc};
use crate::base::observe::Ops;
use crate::config::InfluxConfig;
use crate::storage::tsdb::buffer::{self, Buffer};
use crate::storage::tsdb::line::Staging;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// What the writer tasks share.
pub struct Shared {
    pub buffer: Mutex<Buffer>,
    pub staging: Arc<Staging>,
    /// The sender waits on it when the buffer is empty.
    pub appended: Notify,
    pub metrics: Arc<Metrics>,
    pub ops: Arc<Ops>,
    /// The server's clock.
    pub clock: dcim_clock::Clock,
}

impl Shared {
    fn publish_status(&self, b: &Buffer) {
        let s = b.status();
        let ops = &self.ops;
        ops.tsdb_buffer_bytes
            .store(s.bytes as i64, Ordering::Relaxed);
        ops.tsdb_buffer_max_bytes
            .store(s.max_bytes as i64, Ordering::Relaxed);
        ops.tsdb_buffer_batches
            .store(s.batches as i64, Ordering::Relaxed);
        ops.tsdb_buffer_lines
            .store(s.lines as i64, Ordering::Relaxed);
        self.metrics.influx_queue.store(
            (self.staging.lines() as u64 + s.lines) as i64,
            Ordering::Relaxed,
        );
        let before = ops
            .tsdb_buffer_dropped_lines
            .swap(s.dropped_lines, Ordering::Relaxed);
        if s.dropped_lines > before && before > 0 {
            tracing::error!(
                dropped_lines = s.dropped_lines - before,
                total = s.dropped_lines,
                "time-series buffer full: its oldest batches were dropped"
            );
        }
    }
}

/// Moves the staged lines into the buffer as one batch. Returns the lines moved.
pub fn flush_staging(shared: &Shared, now_ms: i64) -> usize {
    let Some(batch) = shared.staging.take() else {
        return 0;
    };
    let n = batch.lines;
    let payload = match buffer::encode(&batch.body, batch.oldest_ms, batch.newest_ms) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("time-series batch not compressed: {e}; {n} lines dropped");
            inc(&shared.metrics.influx_lines_dropped_total, n as u64);
            return 0;
        }
    };
    let mut b = shared.buffer.lock().expect("tsdb buffer");
    match b.append(payload, n as u32, now_ms.max(0) as u64) {
        Ok(_) => {
            inc(&shared.ops.tsdb_lines_buffered_total, n as u64);
            shared.publish_status(&b);
            drop(b);
            shared.appended.notify_one();
            n
        }
        Err(e) => {
            // The buffer cannot take it (disk full, I/O error): counted and reported.
            tracing::error!("time-series buffer: {e}; {n} lines dropped");
            inc(&shared.metrics.influx_lines_dropped_total, n as u64);
            0
        }
    }
}

/// The sender's peer: the write URL and the token, when one is configured.
struct Target {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

pub fn spawn(
    cfg: &InfluxConfig,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let token = cfg
        .token
        .clone()
        .or_else(|| cfg.token_env.as_ref().and_then(|v| std::env::var(v).ok()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!(
        "{}/api/v2/write?org={}&bucket={}&precision=ms",
        cfg.url.trim_end_matches('/'),
        crate::storage::tsdb::line::urlencode(&cfg.org),
        crate::storage::tsdb::line::urlencode(&cfg.bucket)
    );
    {
        let b = shared.buffer.lock().expect("tsdb buffer");
        shared.publish_status(&b);
    }
    let interval = Duration::from_millis(cfg.flush_interval_ms.max(10));
    let flusher = tokio::spawn(flush_loop(shared.clone(), stop.clone(), interval));
    let target = Target { client, url, token };
    let sender = tokio::spawn(send_loop(shared, stop, target));
    Ok(vec![flusher, sender])
}

/// The flusher: every `interval`, or when the staging is full, moves the staged lines into
/// the buffer; at stop, a last flush.
async fn flush_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => true,
            _ = tick.tick() => false,
            _ = shared.staging.full.notified() => false,
        };
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            flush_staging(&s, s.clock.now_ms());
            let mut b = s.buffer.lock().expect("tsdb buffer");
            let r = if stopping {
                b.flush()
            } else {
                b.tick(s.clock.now_ms().max(0) as u64)
            };
            if let Err(e) = r {
                tracing::error!("time-series buffer: {e}");
            }
        })
        .await;
        if stopping {
            return;
        }
    }
}

/// The sender: posts the oldest batch, removes it once the store took it or refused it for
/// good, else retries with back-off.
async fn send_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>, target: Target) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        let next = {
            let b = shared.buffer.lock().expect("tsdb buffer");
            b.next()
        };
        let batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => {
                shared
                    .ops
                    .tsdb_oldest_pending_ms
                    .store(0, Ordering::Relaxed);
                tokio::select! {
                    _ = crate::base::stop::stopped(&mut stop) => return,
                    _ = shared.appended.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::error!("time-series buffer read: {e}");
                tokio::select! {
                    _ = crate::base::stop::stopped(&mut stop) => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
        };
        shared
            .ops
            .tsdb_oldest_pending_ms
            .store(batch.oldest_ms, Ordering::Relaxed);
        if post(&shared, &target, &batch, &mut backoff).await {
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut b = s.buffer.lock().expect("tsdb buffer");
                if let Err(e) = b.done(batch.seq, batch.lines) {
                    tracing::error!("time-series buffer: {e}");
                }
                s.publish_status(&b);
            })
            .await;
        } else {
            tokio::select! {
                _ = crate::base::stop::stopped(&mut stop) => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// Posts one batch and counts the outcome; true when the batch is done with (written, or
/// refused for its own sake and dropped), false to retry after `backoff` (reset on success).
async fn post(
    shared: &Shared,
    target: &Target,
    batch: &buffer::Batch,
    backoff: &mut Duration,
) -> bool {
    let mut req = target
        .client
        .post(&target.url)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Encoding", "gzip")
        .body(batch.gzip.clone());
    if let Some(t) = &target.token {
        req = req.header("Authorization", format!("Token {t}"));
    }
    let outcome = req.send().await;
    let now = shared.clock.now_ms();
    match &outcome {
        Ok(r) if r.status().is_success() => {
            inc(
                &shared.metrics.influx_lines_written_total,
                batch.lines as u64,
            );
            shared.ops.tsdb_last_ok_ms.store(now, Ordering::Relaxed);
            *backoff = Duration::from_millis(200);
            true
        }
        Ok(r) if matches!(r.status().as_u16(), 400 | 413 | 422) => {
            inc(&shared.metrics.influx_write_errors_total, 1);
            inc(
                &shared.metrics.influx_lines_dropped_total,
                batch.lines as u64,
            );
            shared.ops.tsdb_last_error_ms.store(now, Ordering::Relaxed);
            tracing::error!(status = %r.status(), lines = batch.lines, "the time-series store refused a batch for good: dropped");
            true
        }
        other => {
            inc(&shared.metrics.influx_write_errors_total, 1);
            shared.ops.tsdb_last_error_ms.store(now, Ordering::Relaxed);
            match other {
                Ok(r) => {
                    tracing::warn!(status = %r.status(), "time-series store: retrying in {backoff:?}")
                }
                Err(e) => {
                    tracing::warn!("time-series store: {e}; retrying in {backoff:?}")
                }
            }
            false
        }
    }
}
