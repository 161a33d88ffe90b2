//! Integration tests of `facility-sim`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p facility-sim --test it -- MODULE::`.

mod bacnet;
mod common;
mod demo;
mod sim;
