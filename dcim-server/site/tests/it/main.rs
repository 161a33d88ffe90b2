//! Integration tests of `dcim-site`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-site --test it -- MODULE::`.

mod demo;
mod layout;
mod loader;
mod properties;
mod snmp_links;
