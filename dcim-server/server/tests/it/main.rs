//! Integration tests of `dcim-server`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-server --test it -- MODULE::`.
//!
//! `tests/security.rs` is a binary of its own: it measures each attack's bound (staleness,
//! latency, memory) under the load it creates itself, which other tests in the same process
//! would add to.

mod accounts;
mod ack_after_commit;
mod alarms_e2e;
mod api;
mod authority;
mod cluster;
mod common;
mod config_check;
mod daily;
mod dashboards;
mod dc09_drill;
mod disk_full;
mod durability;
mod embedded_broker;
mod ingest_lanes;
mod metrics_scrape;
mod mosquitto;
mod notify;
mod notify_formats;
mod reload_sighup;
mod restore;
mod stage_vocabulary;
mod store_conformance;
mod tls;
mod tsdb_buffer;
mod victoria_metrics;
