//! Integration tests of `fire-replay`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p fire-replay --test it -- MODULE::`.

mod traces;
