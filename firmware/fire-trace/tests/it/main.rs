//! Integration tests of `fire-trace`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p fire-trace --test it -- MODULE::`.

mod format;
