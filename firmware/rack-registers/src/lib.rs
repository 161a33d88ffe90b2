//! Modbus register map of the battery-rack controller, the encoding of a controller snapshot into
//! that map, and the Modbus slave that serves it (RTU on the controller, TCP in the simulator).
//!
//! `no_std` and allocation-free so that the same code runs on the controller and on the host.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod controller;
pub mod map;
pub mod nvstore;
pub mod scenario;
pub mod slave;
pub mod snapshot;

pub use slave::{Command, Commands, FrameError, Proto, Response, Slave};
pub use snapshot::{COIL_COUNT, EventEntry, INPUT_COUNT, Snapshot};
