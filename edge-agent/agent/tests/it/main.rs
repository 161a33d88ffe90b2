//! Integration tests of `dcim-edge-agent`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-edge-agent --test it -- MODULE::`.
//!
//! `tests/full_disk.rs` is a binary of its own: it installs the process-wide tracing subscriber
//! and asserts on everything logged, which other tests in the same process would add to.

mod bacnet_device;
mod bacnet_identity;
mod broker_outage;
mod common;
mod controller_dc09;
mod dc09_rack;
mod dead_site;
mod drill_dc09;
mod kill_restart;
mod local_rack;
mod modbus_device;
mod mqtt_device;
mod snmp_device;
mod tls_auth;
mod two_brokers;
