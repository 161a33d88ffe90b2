//! BACnet/IP: codec for the services the agent needs, a client and a small device server.
//!
//! - [`codec`]: sans-IO encoder/decoder (BVLC, NPDU, APDU, tags, services).
//! - [`device`]: a pure device model (objects, ReadProperty/RPM/SubscribeCOV handling, COV
//!   detection) and `server` (feature `sim`), the tokio UDP shell around it.
//! - [`client`]: tokio UDP client (discovery, ReadPropertyMultiple, SubscribeCOV with renewal).
//! - [`quality`]: pure tracking of per-point quality from read outcomes.
//! - `chiller_plant` (feature `sim`): a ready-made device model of a chiller plant for
//!   simulators.
//!
//! The device side (`server::DeviceServer`, `chiller_plant`) is simulator code: it is compiled
//! only with the `sim` feature, which the facility simulator, the fuzz smoke tests and this
//! crate's loopback/interop tests enable. The edge agent (a BACnet client) builds without it.
//!
//! Why in-crate: `bacnet-rs` has only a blocking client without COV, and the "Rusty BACnet" crates
//! break often. Segmented PDUs are recognised, never reassembled; a reply that would exceed the
//! requester's max APDU is aborted (segmentation-not-supported), and `BacnetClient::read_multiple`
//! splits requests that would need segmentation.

#[cfg(feature = "sim")]
pub mod chiller_plant;
pub mod client;
pub mod codec;
pub mod device;
pub mod quality;
#[cfg(feature = "sim")]
pub mod server;

pub use client::{
    BacnetClient, ClientConfig, ClientError, CovEvent, CovOptions, CovSubscription, DeviceInfo,
    PropertyRef,
};
pub use codec::services::CovNotification;
pub use codec::types::{BacnetError, BitString, ObjectId, ObjectType, PropertyId, Value};
pub use device::{Device, Object, StatusFlags};
#[cfg(feature = "sim")]
pub use server::DeviceServer;
