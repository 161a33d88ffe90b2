//! Modbus polling: request planning from a profile and the TCP/RTU poller.
//!
//! - [`plan`]: pure request planner (merge neighbouring registers of one table and unit id,
//!   at most 125 registers / 2000 bits per read, configurable maximum gap).
//! - [`poller`]: tokio tasks over tokio-modbus (TCP, RTU over a serial port, RTU over TCP) with
//!   per-device timeouts, retries, exponential back-off, reconnect after any drop or timeout,
//!   and per-point quality.
//!
//! The agent calls [`ModbusDevice::spawn`] (one TCP device) or [`spawn_line`] (several unit ids
//! on one serial line or gateway) with a `tokio::sync::mpsc::Sender<Vec<dcim_points::Sample>>`.
//! Each batch holds the samples that changed (deadband and quality rules of
//! `dcim_profiles::report`), plus a `device.online` sample (point id `online`) whenever a device
//! comes up or is declared lost. The task ends when the receiver is dropped.
//!
//! [`spawn_line_with_writes`] also returns a [`LineHandle`] whose `write(device, point, value)`
//! writes a coil or holding register between two polls and returns the device's confirmation
//! or the failure (used for relay-module outputs).

pub mod plan;
pub mod poller;

pub use plan::{Item, Limits, Read, bisect, class_items, limits_of, plan, plan_class};
pub use poller::{
    Connection, ExceptionClass, LineHandle, ModbusDevice, Notice, SpawnError, WriteData,
    WriteError, classify_exception, encode_write, spawn_line, spawn_line_with_writes,
};
