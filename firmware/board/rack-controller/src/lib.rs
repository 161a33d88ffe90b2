//! Board-independent part of the rack controller image. See `app.rs`.
#![cfg_attr(not(test), no_std)]
