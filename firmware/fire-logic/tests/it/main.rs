//! Integration tests of `fire-logic`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p fire-logic --test it -- MODULE::`.

mod common;
mod footprint;
mod hazards;
mod latch;
mod model;
mod properties;
mod requirements;
