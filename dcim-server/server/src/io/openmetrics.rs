//! The `/metrics` document (OpenMetrics text) of the running server: the counters and gauges
//! of [`crate::base::metrics`], the histograms of [`crate::base::observe::Ops`] and the process metrics.

use crate::app::App;
use crate::base::observe::*;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

/// The whole `/metrics` document.
pub fn render(app: &App) -> String {
    let mut reg = Registry::with_prefix("dcim");
    app.metrics.visit(|name, counter, help, value| {
        if counter {
            let base = name.strip_suffix("_total").unwrap_or(name);
            reg.register(base, help, ConstCounter::new(value.max(0.0) as u64));
        } else {
            reg.register(name, help, ConstGauge::new(value as i64));
        }
    });
    let ops = &app.ops;
    reg.register(
        "ingest_to_alarm_seconds",
        "From the ingest taking a message off the broker to the commit of the alarm records it caused.",
        ops.ingest_to_alarm.clone(),
    );
    reg.register(
        "store_commit_seconds",
        "Time of one database commit, by what it committed.",
        ops.store_commit.clone(),
    );
    reg.register(
        "ingest_queue_seconds",
        "Time a message waited in the ingest lanes before a worker handled it.",
        ops.ingest_queue.clone(),
    );
    reg.register(
        "ingest_pending_messages",
        "Messages received from the broker and not handled yet.",
        ConstGauge::new(ops.ingest_pending.load(Ordering::Relaxed) as i64),
    );
    reg.register(
        "build",
        "Version and build profile of this server.",
        Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            (
                "profile",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ),
        ]),
    );
    if app.intake.influx.is_some() {
        for (name, help, v) in [
            (
                "tsdb_buffer_bytes",
                "Bytes in the on-disk time-series buffer.",
                &ops.tsdb_buffer_bytes,
            ),
            (
                "tsdb_buffer_max_bytes",
                "Budget of the on-disk time-series buffer.",
                &ops.tsdb_buffer_max_bytes,
            ),
            (
                "tsdb_buffer_batches",
                "Batches in the on-disk buffer not yet accepted by the store.",
                &ops.tsdb_buffer_batches,
            ),
            (
                "tsdb_buffer_lines",
                "Lines in the on-disk buffer not yet accepted by the store.",
                &ops.tsdb_buffer_lines,
            ),
        ] {
            reg.register(name, help, ConstGauge::new(v.load(Ordering::Relaxed)));
        }
        reg.register(
            "tsdb_buffer_appended_lines",
            "Lines appended to the on-disk buffer since the server started.",
            ConstCounter::new(ops.tsdb_lines_buffered_total.load(Ordering::Relaxed)),
        );
        let oldest = ops.tsdb_oldest_pending_ms.load(Ordering::Relaxed);
        reg.register(
            "tsdb_buffer_oldest_age_seconds",
            "Age of the oldest batch waiting for the store (0 when none waits).",
            ConstGauge::new(if oldest > 0 {
                (app.now_ms() - oldest).max(0) as f64 / 1000.0
            } else {
                0.0
            }),
        );
        reg.register(
            "tsdb_buffer_dropped_lines",
            "Lines the full on-disk buffer dropped (oldest first) since it was created.",
            ConstCounter::new(ops.tsdb_buffer_dropped_lines.load(Ordering::Relaxed)),
        );
        reg.register(
            "history_queries_from_store",
            "Point-history requests answered by the time-series store.",
            ConstCounter::new(ops.history_from_store_total.load(Ordering::Relaxed)),
        );
        reg.register(
            "history_queries_fallback",
            "Point-history requests answered by the in-memory ring because the store did not.",
            ConstCounter::new(ops.history_fallback_total.load(Ordering::Relaxed)),
        );
    }
    // A multi-site follower has no transmitter: the leader's metrics have the DC-09 queue.
    if let Some(link) = app.control.dc09.get().and_then(|d| d.link()) {
        let s = link.stats().borrow().clone();
        reg.register(
            "dc09_queue_depth",
            "DC-09 messages queued in the outbox and not yet acknowledged by a receiver.",
            ConstGauge::new(s.pending as i64),
        );
        reg.register(
            "dc09_undelivered",
            "DC-09 messages not delivered: still queued plus refused by the receiver.",
            ConstGauge::new((s.pending as u64 + s.rejected) as i64),
        );
        reg.register(
            "dc09_delivered",
            "DC-09 messages acknowledged by a receiver.",
            ConstCounter::new(s.delivered),
        );
        reg.register(
            "dc09_rejected",
            "DC-09 messages a receiver refused for good (DUH without a fallback).",
            ConstCounter::new(s.rejected),
        );
        let paths: Family<Vec<(&'static str, String)>, Gauge> = Family::default();
        for (name, up) in &s.paths {
            paths
                .get_or_create(&vec![("path", name.clone())])
                .set(*up as i64);
        }
        reg.register(
            "dc09_path_up",
            "1 while a DC-09 path to the fire authority answers.",
            paths,
        );
    }
    let mut process = Registry::default();
    if let Some(p) = ProcessStats::read() {
        p.register(&mut process);
    }
    let mut out = String::new();
    let _ = encode_registry(&mut out, &reg);
    let _ = encode_registry(&mut out, &process);
    let _ = encode_eof(&mut out);
    out
}
