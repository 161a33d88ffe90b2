//! Integration tests of `rack-registers`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p rack-registers --test it -- MODULE::`.

mod controller;
mod profile;
mod sim;
