//! The pure part of the embedded broker's access-control gate (the sockets are in
//! `dcim-server`'s `broker` module): nothing here reads a socket or a clock, so every decision
//! is tested and fuzzed on bytes.
//!
//! - [`codec`]: framing over rumqttc's `mqttbytes` (a maintained MQTT 3.1.1 codec): a claimed
//!   length is checked against the limit before anything is allocated for it, the first packet
//!   must be a CONNECT of at most [`codec::CONNECT_MAX`] bytes, and a connection buffers at most
//!   one frame plus one read ([`codec::LOGIN_CHUNK`] before the login).
//! - [`session`]: the CONNECT decision (protocol 3.1.1, field lengths, login, client id, will
//!   topic), the login rewrite for the internal port, and the check of every later packet
//!   (packet types a client may send, topic ACLs).
//! - [`acl`]: the topic rules.
//!
//! Invariants (fuzzed by `tests/fuzz-smoke`'s `mqtt_gate` harness): no input panics; nothing
//! before a login is larger than `CONNECT_MAX`; a relayed CONNECT always carries the gate's
//! login; a publish or subscribe outside the agent's own topics is never relayed.
#![forbid(unsafe_code)]

pub mod acl;
pub mod codec;
pub mod session;

pub use rumqttc::mqttbytes;
