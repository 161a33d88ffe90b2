//! Device profiles: the declarative format, its loader and the value decoders.
//!
//! - [`load`]: TOML text -> validated [`Profile`], or [`ProfileErrors`] naming file, line, field
//!   and what was expected (format documented in `device-profiles/README.md`).
//! - [`model`]: the validated profile (points, addresses, wire types, orders, poll classes).
//! - [`decode`]: pure decoders, registers -> [`Raw`] -> scaled [`Reading`].
//! - [`report`]: the per-device quality and deadband state machine every driver shares.

pub mod decode;
pub mod load;
pub mod model;
pub mod report;

pub use decode::{Raw, Reading, decode_registers, encode_registers, encode_string};
pub use load::{ProfileError, ProfileErrors, load_dir, load_file, load_str};
pub use model::*;
pub use report::DeviceTracker;
