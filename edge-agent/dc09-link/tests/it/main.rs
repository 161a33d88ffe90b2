//! Integration tests of `dc09-link`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dc09-link --test it -- MODULE::`.

pub(crate) use dcim_test_support::sia as common;
mod interop;
mod link;
