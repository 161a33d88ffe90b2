//! Device kinds of the simulator. Each kind is a module with a type implementing
//! [`crate::SimDevice`]; add a kind by adding a module here and a line in
//! [`crate::Facility::build`].

pub mod bms;
pub mod camera;
pub mod meter;
pub mod network;
pub mod plant;
pub mod power;
pub mod racks;
pub mod room;
pub mod ups;

/// A slow, smooth, deterministic wobble in [-1, 1] (no random numbers: runs are repeatable).
pub(crate) fn wobble(t: f64, period_s: f64, phase: f64) -> f64 {
    (std::f64::consts::TAU * t / period_s + phase).sin()
}
