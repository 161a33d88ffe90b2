//! Integration tests of `dc09-link`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dc09-link --test it -- MODULE::`.

mod common;
mod interop;
mod link;
