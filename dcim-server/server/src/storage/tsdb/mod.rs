//! History that lasts: the time-series store behind the console's trends.
//!
//! ```text
//! ingest ─► influx::InfluxHandle::push (line protocol, in memory, bounded)
//!        ─► flusher: gzip, one record per batch ─► buffer (on disk, bounded, survives restarts)
//!        ─► sender: POST /api/v2/write (Content-Encoding: gzip) ─► InfluxDB v2 / VictoriaMetrics
//! console ─► GET /api/points/{device}/{point}/history ─► api_history: the store's Prometheus query
//!            API (VictoriaMetrics) when `[influx] query_url` is set, else the in-memory ring
//! ```
//!
//! - [`buffer`]: the on-disk buffer (a `dcim-spool` in `<data_dir>/tsdb-buffer`, the same
//!   checksummed, crash-safe segment files the edge agent spools into). A batch leaves it only
//!   after the store answered 2xx. When the buffer is full, its oldest batches are dropped and
//!   counted (`dcim_tsdb_buffer_dropped_lines`, persisted across restarts, `/health` tsdb
//!   `degraded`): never silently, and never the newest data.
//! - [`writer`]: the flusher and sender tasks.
//! - [`query`]: PromQL for a point's buckets, and the pure conversion of the answers.
//! - `crate::http::api_history`: the history endpoint (above the server state), saying which source
//!   answered and what range it covers.

pub mod buffer;
pub mod influx;
pub mod line;
pub mod query;
pub mod writer;
