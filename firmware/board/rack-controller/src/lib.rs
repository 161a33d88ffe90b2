//! Board-independent part of the rack controller image, all plain `no_std` code tested on the
//! host: the board abstraction ([`board`]), what each board revision has ([`boards`]), the input
//! front end ([`frontend`]: [`analog`] integrity and transmitters, [`line`]-monitored inputs),
//! the output circuits and their read-back ([`outputs`]), 64-bit time ([`clock`]), watchdogs and
//! program-flow monitoring ([`watchdog`]), the reset cause ([`reset`]) and the non-volatile
//! layout ([`nv`]), the Modbus RTU frame receiver ([`rtu`]) and the application loop ([`app`]).
//! [`field`] simulates a healthy rack field (with injectable faults) for the host tests and the
//! emulated image. The register-level board support (one module per hardware revision, plus the emulated MCU)
//! lives in the binary and only implements [`board::Board`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod analog;
pub mod app;
pub mod board;
pub mod boards;
pub mod clock;
pub mod field;
pub mod frontend;
pub mod line;
pub mod nv;
pub mod outputs;
pub mod reset;
pub mod rtu;
pub mod watchdog;
