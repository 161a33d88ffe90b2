//! Integration tests of `dcim-e2e`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-e2e --test it -- MODULE::`.
//!
//! `tests/soak.rs` is a binary of its own: its 2,000-rack facility keeps both cores busy for
//! minutes in CI, and cargo runs test binaries one after another, so the timing-bounded tests
//! here never share the machine with it. `multisite` is `#[ignore]`d and run by name
//! (`--test it -- --ignored multisite::`, tests/multisite/run.sh); it re-executes this binary
//! as `multisite::server_process` for its server replicas.
//!
//! `tests/common` is shared by both binaries: the re-executed server process, stopping child
//! processes, a cuttable TCP proxy, tmpfs mounts and waiting for an active alarm.

#[path = "../common/mod.rs"]
mod common;

mod battery_fire;
mod chiller_trip;
mod dashboards;
mod disk_full;
mod feed_loss;
mod fire_authority;
mod multisite;
mod silent_subsystem;
mod smoke;
mod snmp_network;
mod stream_truth;
