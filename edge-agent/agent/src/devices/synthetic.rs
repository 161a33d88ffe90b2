//! A built-in signal generator device for commissioning, drills and load tests: `points`
//! counters updated every `period`, and an info event (`selftest.tick`, marked as a test) every
//! `event_every` periods. Its samples use the role `custom.selftest` so that no server logic
//! ever takes them for plant values.

use crate::ingest::Ingest;
use crate::payload::EventDraft;
use dcim_points::{Quality, Role, Sample, Value};
use dcim_wire::Severity;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The samples and (maybe) event of tick `n`. Pure.
pub fn tick(
    device: &str,
    points: usize,
    event_every: u64,
    n: u64,
    ts_ms: i64,
) -> (Vec<Sample>, Option<EventDraft>) {
    let role = Role::new("custom.selftest").unwrap_or_else(|_| unreachable_role());
    let samples = (0..points)
        .map(|i| Sample {
            device: device.to_owned(),
            point: format!("p{i}"),
            role: role.clone(),
            labels: Default::default(),
            value: Some(Value::Number(n as f64)),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms,
        })
        .collect();
    let event = (event_every > 0 && n.is_multiple_of(event_every)).then(|| EventDraft {
        ts_ms,
        device: device.to_owned(),
        kind: "selftest.tick".into(),
        severity: Severity::Info,
        message: format!("self-test tick {n}"),
        data: serde_json::json!({ "n": n }),
        test: true,
    });
    (samples, event)
}

fn unreachable_role() -> Role {
    // `custom.` roles with ASCII names are always valid; keep a total function anyway.
    Role::new("custom.x").unwrap_or_else(|_| std::process::abort())
}

pub async fn run(
    ingest: Arc<Ingest>,
    device: String,
    points: usize,
    period: Duration,
    event_every: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        n += 1;
        let (samples, event) = tick(&device, points, event_every, n, ingest.clock().now_ms());
        if let Some(e) = event {
            // Errors are logged by the ingest path; the event stays queued in memory.
            let _ = ingest.event(e);
        }
        ingest.samples(samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_every_n_ticks() {
        let (s, e) = tick("gen", 3, 5, 10, 1);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].point, "p2");
        let e = e.unwrap();
        assert_eq!(e.data["n"], 10);
        assert!(e.test);
        assert!(tick("gen", 1, 5, 11, 1).1.is_none());
        assert!(tick("gen", 1, 0, 10, 1).1.is_none());
    }
}
