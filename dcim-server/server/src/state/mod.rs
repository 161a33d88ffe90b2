//! Layer 3b, the per-subsystem state the [`App`](crate::App) holds: authentication and its
//! limits, connection counts, stream permissions, health, this replica's cluster view, the
//! security bounds and the DC-09 transmitter handle.

pub mod auth;
pub mod cluster;
pub mod conn_limits;
pub mod control;
pub mod dc09_tx;
pub mod health;
pub mod intake;
pub mod plant;
pub mod security;
pub mod stream_access;
