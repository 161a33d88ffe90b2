//! BACnet/IP: codec for the services the agent needs, a client and a small device server.
//!
//! - [`codec`]: sans-IO encoder/decoder (BVLC, NPDU, APDU, tags, services).
//! - [`device`]: a pure device model (objects, ReadProperty/RPM/SubscribeCOV handling, COV
//!   detection) and [`server`], the tokio UDP shell around it.
//! - [`client`]: tokio UDP client (discovery, ReadPropertyMultiple, SubscribeCOV with renewal).
//! - [`quality`]: pure tracking of per-point quality from read outcomes.
//! - [`chiller_plant`]: a ready-made device model of a chiller plant for simulators.

pub mod codec;
pub mod device;

pub use codec::types::{BacnetError, BitString, ObjectId, ObjectType, PropertyId, Value};
