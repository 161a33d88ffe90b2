//! Integration tests of `dcim-snmp`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-snmp --test it -- MODULE::`.

pub(crate) use dcim_test_support::snmp as common;
mod interop;
