//! Board-independent part of the rack controller image: the board abstraction ([`board`]), the
//! Modbus RTU frame receiver ([`rtu`]) and the application loop ([`app`]) that ties the fire
//! logic, the latch store and the Modbus slave to a board. The board support modules (one per
//! hardware revision, e.g. `stm32f407`) live in the binary and only implement [`board::Board`].
//!
//! Everything here is plain `no_std` code, tested on the host with a simulated board.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod app;
pub mod board;
pub mod boards;
pub mod rtu;
