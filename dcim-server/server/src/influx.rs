//! Optional time-series writer: InfluxDB v2 line protocol over HTTP (`POST /api/v2/write`).
//!
//! The encoder is pure. The writer keeps a bounded queue of lines: when the store is down the
//! queue fills, further lines are dropped and counted (`dcim_influx_lines_dropped_total`), and
//! the failed batch is retried with exponential back-off. A batch is removed from the queue only
//! after the store answered 2xx. Points: measurement `dcim` (configurable), tags `site`, `agent`,
//! `device`, `point`, `role`, `quality` and the sample's labels, field `value` (float; booleans
//! as 0/1) or `text` (strings), timestamp in ms.

use crate::config::InfluxConfig;
use crate::metrics::{Metrics, inc};
use dcim_points::{Sample, Value};
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

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
    let field = match s.value.as_ref()? {
        Value::Number(n) if n.is_finite() => format!("value={n:?}"),
        Value::Number(_) => return None,
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
    let mut line = String::with_capacity(128);
    escape_measurement(measurement, &mut line);
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
        escape_tag(k, &mut line);
        line.push('=');
        escape_tag(v, &mut line);
    }
    let _ = write!(line, " {field} {}", s.ts_ms);
    Some(line)
}

struct Queue {
    lines: Mutex<VecDeque<String>>,
    notify: Notify,
    capacity: usize,
    batch: usize,
}

/// Cheap handle used by the ingest to enqueue samples.
#[derive(Clone)]
pub struct InfluxHandle {
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    measurement: Arc<str>,
}

impl InfluxHandle {
    pub fn push(&self, site: &str, agent: &str, samples: &[Sample]) {
        let mut dropped = 0;
        {
            let mut q = self.queue.lines.lock().expect("influx queue");
            for s in samples {
                if let Some(line) = encode(&self.measurement, site, agent, s) {
                    if q.len() >= self.queue.capacity {
                        dropped += 1;
                    } else {
                        q.push_back(line);
                    }
                }
            }
            self.metrics
                .influx_queue
                .store(q.len() as i64, Ordering::Relaxed);
            if q.len() >= self.queue.batch {
                self.queue.notify.notify_one();
            }
        }
        if dropped > 0 {
            inc(&self.metrics.influx_lines_dropped_total, dropped);
        }
    }
}

pub fn spawn(
    cfg: InfluxConfig,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(InfluxHandle, JoinHandle<()>)> {
    let token = cfg
        .token
        .clone()
        .or_else(|| cfg.token_env.as_ref().and_then(|v| std::env::var(v).ok()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!(
        "{}/api/v2/write?org={}&bucket={}&precision=ms",
        cfg.url.trim_end_matches('/'),
        urlencode(&cfg.org),
        urlencode(&cfg.bucket)
    );
    let queue = Arc::new(Queue {
        lines: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        capacity: cfg.queue_capacity,
        batch: cfg.batch_size,
    });
    let handle = InfluxHandle {
        queue: queue.clone(),
        metrics: metrics.clone(),
        measurement: cfg.measurement.clone().into(),
    };
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        let interval = Duration::from_millis(cfg.flush_interval_ms);
        loop {
            let stopping = tokio::select! {
                _ = crate::stopped(&mut stop) => true,
                _ = queue.notify.notified() => false,
                _ = tokio::time::sleep(interval) => false,
            };
            // Drain in batches while the store accepts them.
            loop {
                let (body, n) = {
                    let q = queue.lines.lock().expect("influx queue");
                    let n = q.len().min(queue.batch);
                    if n == 0 {
                        break;
                    }
                    let mut body = String::new();
                    for l in q.iter().take(n) {
                        body.push_str(l);
                        body.push('\n');
                    }
                    (body, n)
                };
                let mut req = client
                    .post(&url)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .body(body);
                if let Some(t) = &token {
                    req = req.header("Authorization", format!("Token {t}"));
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let mut q = queue.lines.lock().expect("influx queue");
                        for _ in 0..n.min(q.len()) {
                            q.pop_front();
                        }
                        metrics
                            .influx_queue
                            .store(q.len() as i64, Ordering::Relaxed);
                        inc(&metrics.influx_lines_written_total, n as u64);
                        backoff = Duration::from_millis(200);
                    }
                    Ok(r) if r.status().is_client_error() => {
                        // The store will never accept this batch: drop it, count it.
                        inc(&metrics.influx_write_errors_total, 1);
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        tracing::error!(%status, "time-series store refused a batch: {text}");
                        let mut q = queue.lines.lock().expect("influx queue");
                        for _ in 0..n.min(q.len()) {
                            q.pop_front();
                        }
                        inc(&metrics.influx_lines_dropped_total, n as u64);
                    }
                    other => {
                        inc(&metrics.influx_write_errors_total, 1);
                        match other {
                            Ok(r) => {
                                tracing::warn!(status = %r.status(), "time-series store: retrying in {backoff:?}")
                            }
                            Err(e) => {
                                tracing::warn!("time-series store: {e}; retrying in {backoff:?}")
                            }
                        }
                        if stopping {
                            return;
                        }
                        tokio::select! {
                            _ = crate::stopped(&mut stop) => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
            if stopping {
                return;
            }
        }
    });
    Ok((handle, task))
}

fn urlencode(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
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
