//! Staged battery-rack fire logic: a pure, `no_std`, allocation-free state machine.
//!
//! This crate is the safety core of the rack controller. It runs identically on the
//! Cortex-M controller, inside the edge agent (for racks without a controller) and in the
//! `fire-replay` tool. It has no clock, no I/O and no allocation: the caller passes the time
//! (`now_ms`, a monotonic millisecond clock) and the inputs, and gets the outputs back.
//!
//! # Public API
//!
//! ```text
//! Config::default() -> Config                         seed thresholds (60/68/80 C, 30 s warning ...)
//! Config::validate(&self) -> Result<(), ConfigError>  rejects, never clamps
//! Config::fingerprint(&self) -> u32                   FNV-1a over every field
//!
//! RackLogic::new(Config) -> Result<RackLogic, ConfigError>
//! RackLogic::step(&mut self, now_ms: u64, &Inputs) -> Outputs          one control cycle
//! RackLogic::command(&mut self, now_ms: u64, NetworkCommand) -> Result<(), Refused>
//! RackLogic::outputs(&self) -> Outputs                                 last outputs
//! RackLogic::stage(&self) -> Stage
//! RackLogic::events(&self) -> &EventLog  /  take_event(&mut self) -> Option<Event>
//! RackLogic::latch_record(&self) -> LatchRecord                        persist when it changes
//! RackLogic::restore(Config, &LatchRecord, now_ms: u64) -> Result<RackLogic, ConfigError>
//! LatchRecord::to_bytes(&self) -> [u8; LatchRecord::LEN]
//! LatchRecord::from_bytes(&[u8]) -> Result<LatchRecord, LatchError>
//! ```
//!
//! # Units
//! Temperatures are `i32` tenths of a degree Celsius ([`DeciC`]); off-gas is `i32` tenths of a
//! percent of the lower flammable limit. Integer arithmetic only, saturating everywhere.
//!
//! # Inputs
//! Every sensor sample is [`Analog`] (`NoSample`, `Value`, `Fault`) or [`Digital`] (`NoSample`,
//! `Off`, `On`, `Fault`). `NoSample` means "nothing new this cycle". A fitted sensor source
//! that sends no sample for three expected periods is stale, which is a fault, never normal.
//! Switches and feedbacks keep their last level on `NoSample`.
//!
//! # Stages
//! [`Stage`] goes forward only and is latched until an accepted local reset:
//! `Normal -> PreAlarm -> Stage1 (contactor open + blanket) -> Stage2 (patch) -> Stage3 (agent)
//! -> Stage4 (coolant) -> Stage5 (room gas request, pre-discharge warning, release)`.
//! Stage 2 and later need an independent corroboration or a manual release. Troubles (invalid
//! sensors, lost temperature, feedback mismatch) never start a suppression stage.
//!
//! # Network
//! [`NetworkCommand`] is the whole vocabulary: acknowledge the buzzer, time sync, test mode,
//! timed inhibit of one faulted sensor. Nothing else (reset, abort, close contactor, thresholds)
//! is representable.
//!
//! # Invariants (checked by the property tests)
//! - the stage never decreases except by an accepted local reset;
//! - agent, coolant and gas need the thresholds plus corroboration, or a manual release;
//! - no network command turns any suppression output on;
//! - a sensor fault or trouble never releases anything;
//! - the fire-authority key always forces the contactor open;
//! - `step` never panics and does bounded work (no loop over unbounded data).
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    missing_docs
)]

mod config;
mod events;
mod latch;
mod logic;
mod source;
mod stages;
mod types;

pub use config::{Config, ConfigError, Corroboration, Fitted};
pub use events::{
    Cause, Corroborator, EVENT_LOG_CAPACITY, Event, EventClass, EventKind, EventLog, Refused,
    ResetRefusal,
};
pub use latch::{GasState, LatchError, LatchRecord};
pub use logic::{NetworkCommand, RackLogic};
pub use source::Invalidity;
pub use stages::{STAGE_TABLE, StageInfo};
pub use types::{
    Action, Actions, Analog, DeciC, Digital, Inputs, Outputs, SourceId, Stage, Supervisory,
    SupervisoryFlags, Trouble, Troubles,
};
