//! Integration tests of `dcim-bacnet`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-bacnet --test it -- MODULE::`.
//!
//! `loopback` and `interop` need the `sim` feature (the device server side).

mod codec;
mod device;
mod fake_device;
mod fuzz;
mod golden;
#[cfg(feature = "sim")]
mod interop;
#[cfg(feature = "sim")]
mod loopback;
