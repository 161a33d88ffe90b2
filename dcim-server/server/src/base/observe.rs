//! What `/metrics` exposes, in the OpenMetrics text format through `prometheus-client`:
//!
//! - the server's counters and gauges ([`crate::base::metrics::Metrics`], `dcim_*`);
//! - histograms: `dcim_ingest_to_alarm_seconds` (from the moment the ingest took a message
//!   off the broker to the commit of the alarm records it caused), `dcim_store_commit_seconds`
//!   (`what` = `alarms`, `events`, `agent_state`), `dcim_ingest_queue_seconds` (how long a
//!   message waited in the ingest lanes before a worker handled it);
//! - `dcim_build_info{version, profile}`;
//! - the time-series buffer (`dcim_tsdb_buffer_*`), DC-09 (`dcim_dc09_queue_depth`,
//!   `dcim_dc09_undelivered`, `dcim_dc09_rejected_total`, `dcim_dc09_path_up{path}`);
//! - the standard `process_*` metrics, read from `/proc/self` at each scrape.
//!
//! [`Ops`] holds what the server updates as it runs; `crate::io::openmetrics::render` reads the
//! rest at scrape time.
//!
//! `[metrics]`: a scrape token valid on `/metrics` only, or a listener of its own serving
//! `/metrics` and `/health`. Families: the `metrics` counters, `dcim_ingest_to_alarm_seconds`,
//! `dcim_store_commit_seconds{what}`, `dcim_ingest_queue_seconds`, `dcim_build_info`,
//! `dcim_dc09_*`, `dcim_tsdb_*`, and `process_*` from `/proc/self`.
//!
//! Why `prometheus-client` (the Prometheus project's Rust client): OpenMetrics text, histograms
//! and label families, usable without a global registry (one is built per scrape from the
//! existing atomics); the `prometheus` crate brings protobuf and a global registry. Process
//! metrics are read from `/proc/self` here (`rustix` for page size and clock ticks, no `unsafe`).

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// The OpenMetrics content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, &'static str)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Run-time observations of the server that are not plain counters.
#[derive(Debug)]
pub struct Ops {
    pub ingest_to_alarm: Histogram,
    pub store_commit: HistogramFamily,
    pub ingest_queue: Histogram,
    /// Messages handed to an ingest lane and not handled yet (shared with the lanes).
    pub ingest_pending: Arc<AtomicUsize>,
    /// When a worker last finished a message (ms since the epoch; 0 = never).
    pub ingest_progress_ms: AtomicI64,
    /// How long the last handled message had waited in the lanes (ms).
    pub ingest_last_wait_ms: AtomicI64,
    /// The on-disk time-series buffer: bytes, batches and lines waiting, age of the oldest.
    pub tsdb_buffer_bytes: AtomicI64,
    pub tsdb_buffer_max_bytes: AtomicI64,
    pub tsdb_buffer_batches: AtomicI64,
    pub tsdb_buffer_lines: AtomicI64,
    pub tsdb_oldest_pending_ms: AtomicI64,
    /// Lines appended to the on-disk buffer since the server started.
    pub tsdb_lines_buffered_total: AtomicU64,
    /// Lines dropped by the buffer because it was full (oldest first), since it was created.
    pub tsdb_buffer_dropped_lines: AtomicU64,
    /// Time of the last write the store accepted, and of the last failure (ms; 0 = never).
    pub tsdb_last_ok_ms: AtomicI64,
    pub tsdb_last_error_ms: AtomicI64,
    /// History queries answered by the store, and by the in-memory ring instead of it.
    pub history_from_store_total: AtomicU64,
    pub history_fallback_total: AtomicU64,
    pub started: Instant,
    /// The server's clock (the times stored above are its wall time, as `/health` compares
    /// them with `App::now_ms`).
    pub clock: dcim_clock::Clock,
}

impl Default for Ops {
    fn default() -> Self {
        Ops {
            ingest_to_alarm: latency_histogram(),
            store_commit: Family::new_with_constructor(latency_histogram),
            ingest_queue: latency_histogram(),
            ingest_pending: Arc::new(AtomicUsize::new(0)),
            ingest_progress_ms: AtomicI64::new(0),
            ingest_last_wait_ms: AtomicI64::new(0),
            tsdb_buffer_bytes: AtomicI64::new(0),
            tsdb_buffer_max_bytes: AtomicI64::new(0),
            tsdb_buffer_batches: AtomicI64::new(0),
            tsdb_buffer_lines: AtomicI64::new(0),
            tsdb_oldest_pending_ms: AtomicI64::new(0),
            tsdb_lines_buffered_total: AtomicU64::new(0),
            tsdb_buffer_dropped_lines: AtomicU64::new(0),
            tsdb_last_ok_ms: AtomicI64::new(0),
            tsdb_last_error_ms: AtomicI64::new(0),
            history_from_store_total: AtomicU64::new(0),
            history_fallback_total: AtomicU64::new(0),
            started: Instant::now(),
            clock: dcim_clock::Clock::system(),
        }
    }
}

impl Ops {
    /// Empty counters whose times come from `clock` (the server's).
    pub fn with_clock(clock: dcim_clock::Clock) -> Ops {
        Ops {
            clock,
            ..Ops::default()
        }
    }

    /// Records the time of one store commit of `what`.
    pub fn commit_took(&self, what: &'static str, started: Instant) {
        self.store_commit
            .get_or_create(&vec![("what", what)])
            .observe(started.elapsed().as_secs_f64());
    }

    /// A worker finished a message that had been received at `received`.
    pub fn ingest_handled(&self, received: Instant) {
        let waited = received.elapsed();
        self.ingest_queue.observe(waited.as_secs_f64());
        self.ingest_last_wait_ms
            .store(waited.as_millis() as i64, Ordering::Relaxed);
        self.ingest_progress_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
    }
}

tokio::task_local! {
    /// When the message being handled was taken off the broker; set by the ingest workers
    /// around each message, read by [`crate::app::App::commit_changes`] for the ingest-to-alarm
    /// latency.
    pub static RECEIVED: Instant;
}

/// The ingest-to-alarm latency of a commit that carried alarm records, when it happened while
/// handling an ingested message.
pub fn observe_alarm_commit(ops: &Ops) {
    if let Ok(received) = RECEIVED.try_with(|r| *r) {
        ops.ingest_to_alarm
            .observe(received.elapsed().as_secs_f64());
    }
}

/// The standard process metrics, from `/proc/self`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
}

impl ProcessStats {
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_btime(&s));
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
        let page = rustix::param::page_size() as u64;
        let mut p = parse_stat(&stat, ticks, page, boot)?;
        p.open_fds = open_fds;
        p.max_fds = limits.as_deref().and_then(parse_max_fds).unwrap_or(0);
        Some(p)
    }

    pub fn register(&self, reg: &mut Registry) {
        reg.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            ConstCounter::new(self.cpu_seconds),
        );
        for (name, help, v) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_bytes,
            ),
            ("process_threads", "Number of OS threads.", self.threads),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (LimitNOFILE).",
                self.max_fds,
            ),
        ] {
            reg.register(name, help, ConstGauge::new(v as i64));
        }
        reg.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            ConstGauge::new(self.start_time_seconds),
        );
    }
}

/// `/proc/self/stat`: the fields after the command name (which may contain spaces and
/// parentheses, so the split is at the last `)`).
pub fn parse_stat(text: &str, ticks: f64, page: u64, boot_s: Option<u64>) -> Option<ProcessStats> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    let utime = num(14)?;
    let stime = num(15)?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        threads: num(20)?,
        start_time_seconds: boot_s.map_or(0.0, |b| b as f64 + num(22).unwrap_or(0) as f64 / ticks),
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        open_fds: 0,
        max_fds: 0,
    })
}

fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_parsed_past_a_command_name_with_spaces_and_parens() {
        // Hazard: a naive split on spaces reads the wrong fields for `(tokio (rt) 1)` and
        // reports nonsense memory and CPU to the operator.
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 1000 123456789 2048 18446744073709551615";
        let p = parse_stat(stat, 100.0, 4096, Some(1_700_000_000)).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.threads, 7);
        assert_eq!(p.virtual_bytes, 123_456_789);
        assert_eq!(p.resident_bytes, 2048 * 4096);
        assert_eq!(p.start_time_seconds, 1_700_000_010.0);
        assert_eq!(parse_stat("garbage", 100.0, 4096, None), None);
        assert_eq!(
            parse_max_fds(
                "Limit                     Soft Limit           Hard Limit           Units\nMax open files            65536                524288               files\n"
            ),
            Some(65536)
        );
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn the_running_process_reports_itself() {
        let p = ProcessStats::read().expect("/proc/self on Linux");
        assert!(
            p.resident_bytes > 0 && p.threads >= 1 && p.open_fds >= 3,
            "{p:?}"
        );
        assert!(p.max_fds >= p.open_fds);
        assert!(p.start_time_seconds > 1_600_000_000.0);
    }
}
