//! Integration tests of `sia-dc09`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p sia-dc09 --test it -- MODULE::`.

mod fuzz;
mod golden;
mod pysiaalarm_crosscheck;
