//! Integration tests of `dcim-demo`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-demo --test it -- MODULE::`.

mod drill;
mod stage_vocabulary;
