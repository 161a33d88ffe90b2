//! Optional time-series writer: InfluxDB v2 line protocol over HTTP (`POST /api/v2/write`).
//!
//! The encoder is pure. The ingest stages encoded lines in memory ([`InfluxHandle::push`]);
//! the writer (`crate::storage::tsdb`) moves them into a bounded on-disk buffer that survives restarts
//! and store outages, and sends each batch until the store answered 2xx. Points: measurement `dcim` (configurable), tags `site`, `agent`,
//! `device`, `point`, `role`, `quality` and the sample's labels, field `value` (float; booleans
//! as 0/1) or `text` (strings), timestamp in ms.
//!
//! The ingest stages encoded lines in memory (bounded, overflow counted). Both lanes stage what
//! they take in: the priority lane its alarm-rule samples (the bulk lane then finds them no longer
//! new), the bulk lane the rest. The `tsdb` writer moves staged lines to its on-disk buffer.

use crate::base::metrics::{Metrics, inc};
use crate::config::InfluxConfig;
use dcim_points::Sample;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use crate::storage::tsdb::line::{Staged, Staging, encode, encode_into, urlencode};

/// Cheap handle used by the ingest to enqueue samples.
#[derive(Clone)]
pub struct InfluxHandle {
    staging: Arc<Staging>,
    metrics: Arc<Metrics>,
    measurement: Arc<str>,
    /// The writer's state (buffer), for the history endpoint and `/health`.
    pub shared: Arc<crate::storage::tsdb::writer::Shared>,
    /// The store's Prometheus query API, when `influx.query_url` is set.
    pub query: Option<crate::storage::tsdb::query::Client>,
}

impl InfluxHandle {
    /// The oldest sample time staged in memory, if anything is.
    pub fn staged_oldest(&self) -> Option<i64> {
        self.staging.oldest()
    }

    pub fn push(&self, site: &str, agent: &str, samples: &[Sample]) {
        let mut dropped = 0;
        {
            let mut q = self.staging.inner.lock().expect("influx staging");
            for s in samples {
                if q.lines >= self.staging.capacity {
                    dropped += 1;
                    continue;
                }
                let before = q.body.len();
                if encode_into(&self.measurement, site, agent, s, &mut q.body) {
                    q.body.push('\n');
                    if q.lines == 0 || s.ts_ms < q.oldest_ms {
                        q.oldest_ms = s.ts_ms;
                    }
                    q.newest_ms = q.newest_ms.max(s.ts_ms);
                    q.lines += 1;
                } else {
                    q.body.truncate(before);
                }
            }
            // Staged here plus waiting in the on-disk buffer (as the writer last saw it).
            let buffered = self.shared.ops.tsdb_buffer_lines.load(Ordering::Relaxed);
            self.metrics
                .influx_queue
                .store(q.lines as i64 + buffered, Ordering::Relaxed);
            if q.lines >= self.staging.batch {
                self.staging.full.notify_one();
            }
        }
        if dropped > 0 {
            inc(&self.metrics.influx_lines_dropped_total, dropped);
            tracing::error!(
                dropped,
                "time-series staging full (the buffer does not keep up): lines dropped"
            );
        }
    }
}

/// Opens the on-disk buffer and starts the writer's tasks.
pub fn spawn(
    cfg: InfluxConfig,
    data_dir: &std::path::Path,
    metrics: Arc<Metrics>,
    ops: Arc<crate::base::observe::Ops>,
    clock: dcim_clock::Clock,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(InfluxHandle, Vec<JoinHandle<()>>)> {
    let dir = cfg
        .buffer_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("tsdb-buffer"));
    let buffer = crate::storage::tsdb::buffer::Buffer::open(&dir, cfg.buffer_max_mb << 20)
        .map_err(|e| anyhow::anyhow!("the time-series buffer in {}: {e}", dir.display()))?;
    let staging = Arc::new(Staging::new(cfg.queue_capacity, cfg.batch_size));
    let shared = Arc::new(crate::storage::tsdb::writer::Shared {
        buffer: Mutex::new(buffer),
        staging: staging.clone(),
        appended: Notify::new(),
        metrics: metrics.clone(),
        ops,
        clock,
    });
    let tasks = crate::storage::tsdb::writer::spawn(&cfg, shared.clone(), stop)?;
    let query = match &cfg.query_url {
        Some(url) => Some(crate::storage::tsdb::query::Client::new(
            url,
            &cfg.measurement,
            Duration::from_millis(cfg.query_timeout_ms),
        )?),
        None => None,
    };
    Ok((
        InfluxHandle {
            staging,
            metrics,
            measurement: cfg.measurement.clone().into(),
            shared,
            query,
        },
        tasks,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::Value;
    use dcim_points::{Quality, Role};

    fn s(value: Option<Value>) -> Sample {
        Sample {
            device: "meter a".into(),
            point: "v".into(),
            role: Role::new("feed.voltage").unwrap(),
            labels: [("feed".to_string(), "A".to_string())].into(),
            value,
            unit: "V".into(),
            quality: Quality::Good,
            ts_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn line_protocol() {
        assert_eq!(
            encode("dcim", "s1", "a1", &s(Some(Value::Number(22900.0)))).unwrap(),
            "dcim,agent=a1,device=meter\\ a,feed=A,point=v,quality=good,role=feed.voltage,site=s1 value=22900.0 1700000000123"
        );
        assert!(
            encode("dcim", "s", "a", &s(Some(Value::Bool(true))))
                .unwrap()
                .contains(" value=1.0 ")
        );
        assert!(
            encode("dcim", "s", "a", &s(Some(Value::Text("a\"b".into()))))
                .unwrap()
                .contains(" text=\"a\\\"b\" ")
        );
        assert_eq!(encode("dcim", "s", "a", &s(None)), None);
        assert_eq!(
            encode("dcim", "s", "a", &s(Some(Value::Number(f64::NAN)))),
            None
        );
        assert_eq!(urlencode("my org"), "my%20org");
    }
}
