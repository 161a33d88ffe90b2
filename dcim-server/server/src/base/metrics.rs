//! The server's own health counters. `/metrics` renders them in the OpenMetrics format
//! together with the histograms, build, process, DC-09 and time-series metrics of
//! [`crate::base::observe`]; [`Metrics::render`] is the plain Prometheus text of these counters
//! alone.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident : $kind:literal, $help:literal;)*) => {
        #[derive(Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
            /// Gauges set by their owners.
            pub points: AtomicI64,
            pub broker_clients: AtomicI64,
            pub sse_clients: AtomicI64,
            /// Open /api/stream connections that receive `points` events.
            pub sse_points_clients: AtomicI64,
            pub mqtt_connected: AtomicI64,
            pub influx_queue: AtomicI64,
            pub store_disk_full: AtomicI64,
            pub store_free_bytes: AtomicI64,
            /// Events batches waiting for the store (see `deferred`).
            pub ingest_deferred_batches: AtomicI64,
            pub store_reserve_bytes: AtomicI64,
            /// Why database writes fail (`disk full`, `write failed`) while they do; cleared by
            /// the next successful write. Shown by `/health`.
            pub store_error: std::sync::Mutex<Option<&'static str>>,
        }

        impl Metrics {
            /// The gauges: (name without the `dcim_` prefix, help, value).
            fn gauges(&self) -> [(&'static str, &'static str, &AtomicI64); 10] {
                [
                    ("points", "Points with a latest value in memory.", &self.points),
                    ("broker_clients", "Clients connected to the embedded broker.", &self.broker_clients),
                    ("sse_clients", "Open /api/stream connections.", &self.sse_clients),
                    ("sse_points_clients", "Open /api/stream connections that receive points events.", &self.sse_points_clients),
                    ("mqtt_connected", "1 when the ingest client is connected to the broker.", &self.mqtt_connected),
                    ("influx_queue", "Lines waiting for the time-series store (staged in memory and in the on-disk buffer).", &self.influx_queue),
                    ("store_disk_full", "1 while the database's disk is full (writes that can wait are refused; alarm and journal commits use the reserve).", &self.store_disk_full),
                    ("store_free_bytes", "Free bytes on the file system of the data directory.", &self.store_free_bytes),
                    ("ingest_deferred_batches", "Events batches kept unacknowledged until the store can commit them (a full disk).", &self.ingest_deferred_batches),
                    ("store_reserve_bytes", "Bytes of the free-space reserve held now (0 while released for a full disk).", &self.store_reserve_bytes),
                ]
            }

            /// Calls `f(name, is_counter, help, value)` for every counter and gauge (names
            /// without the `dcim_` prefix).
            pub fn visit(&self, mut f: impl FnMut(&'static str, bool, &'static str, f64)) {
                $( f(stringify!($name), $kind == "counter", $help, self.$name.load(Ordering::Relaxed) as f64); )*
                for (name, help, v) in self.gauges() {
                    f(name, false, help, v.load(Ordering::Relaxed) as f64);
                }
            }

            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP dcim_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE dcim_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "dcim_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                for (name, help, v) in self.gauges() {
                    let _ = writeln!(out, "# HELP dcim_{name} {help}");
                    let _ = writeln!(out, "# TYPE dcim_{name} gauge");
                    let _ = writeln!(out, "dcim_{name} {}", v.load(Ordering::Relaxed));
                }
                out
            }
        }
    };
}

counters! {
    ingest_messages_total: "counter", "MQTT messages received by the ingest.";
    ingest_samples_total: "counter", "Samples accepted.";
    ingest_events_total: "counter", "Events committed to the store.";
    ingest_duplicate_batches_total: "counter", "Batches dropped as already seen on (agent, stream, seq).";
    ingest_duplicate_items_total: "counter", "Samples and events inside duplicate batches.";
    ingest_event_gaps_total: "counter", "Event sequence numbers skipped by agents (should stay 0).";
    ingest_malformed_total: "counter", "Messages that are not v1 topics or payloads.";
    ingest_skipped_messages_total: "counter", "Messages the embedded broker dropped before the ingest read them (should stay 0; raises the ingest-loss alarm).";
    ingest_priority_samples_total: "counter", "Alarm-rule samples applied ahead of their telemetry batch by the priority lane.";
    ingest_new_points_refused_total: "counter", "Samples refused because their agent exceeded its budget of new points per minute.";
    broker_budget_resyncs_total: "counter", "Times the gate's log budget gave back charges of publishes the ingest never received.";
    ingest_future_samples_total: "counter", "Samples refused because they were stamped further in the future than [ingest] max_clock_skew_ms.";
    ingest_clamped_samples_total: "counter", "Samples stamped a little in the future (within the clock-skew tolerance), taken as received now.";
    ingest_new_epochs_total: "counter", "Agent spool epochs seen for the first time for a known agent (a spool wiped or replaced: a new stream).";
    acl_rejections_total: "counter", "Messages or connections refused by access control (broker gate or ingest).";
    broker_auth_failures_total: "counter", "MQTT connections refused for bad credentials.";
    store_errors_total: "counter", "Failed store operations (retried for events).";
    influx_lines_written_total: "counter", "Lines accepted by the time-series store.";
    influx_lines_dropped_total: "counter", "Lines dropped: the on-disk buffer was full (oldest first) or the store refused them for good.";
    influx_write_errors_total: "counter", "Failed writes to the time-series store.";
    http_auth_failures_total: "counter", "HTTP requests refused for missing or bad credentials.";
    login_locks_total: "counter", "Sign-in locks started (user name, device or address; HTTP and MQTT).";
    login_refused_total: "counter", "Sign-ins refused unhashed: subject locked, or too many waiting for a password hash.";
    audit_failures_coalesced_total: "counter", "Failed sign-ins and refusals counted in a summary audit row instead of a row of their own.";
    http_connections_refused_total: "counter", "HTTP connections closed at accept: connection limit (total or per address) reached.";
    http_timeouts_total: "counter", "HTTP connections or requests ended by the header, request or idle timeout.";
    broker_connections_refused_total: "counter", "MQTT connections closed at accept: connection limit, logins in progress or a locked address.";
    notify_attempts_total: "counter", "Notification sends attempted (each channel tried counts).";
    notify_sent_total: "counter", "Notifications delivered.";
    notify_failures_total: "counter", "Notification sends that failed (then the fallback is tried).";
    notify_fallbacks_total: "counter", "Notifications delivered on a fallback channel instead of the planned one.";
    notify_undelivered_total: "counter", "Notifications no channel of the chain could deliver.";
    notify_escalations_total: "counter", "Escalation notifications due for unacknowledged alarms.";
    notify_queue_dropped_total: "counter", "Alarm record batches not notified because the notifier queue was full.";
}

pub fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
