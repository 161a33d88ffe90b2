//! Integration tests of `fuzz-smoke`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p fuzz-smoke --test it -- MODULE::`.

mod corpus;
