//! Integration tests of `dcim-alarms`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-alarms --test it -- MODULE::`.

mod common;
mod demo_scenarios;
mod incidents_notify;
mod properties;
mod transitions;
