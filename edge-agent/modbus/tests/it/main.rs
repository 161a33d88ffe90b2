//! Integration tests of `dcim-modbus`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-modbus --test it -- MODULE::`.

mod against_sim;
mod common;
mod interop_pymodbus;
