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
//! Config::independent(&self, a: SourceId, b: SourceId) -> bool      not one common-cause group
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
//! Stages 2 and 3 need corroboration by an *independent* source (outside the common-cause
//! group of the hot sensor, [`Config::common_cause`]) or a manual release. Troubles (invalid
//! sensors, feedback mismatch) never start a suppression stage on their own, but the fire
//! damaging its own evidence never stops escalation: a temperature source lost while hot
//! counts as not fallen, the stage timers run without valid temperatures, smoke with no valid
//! temperature cuts the power. The rules are listed in plain words in the crate README.
//!
//! # Network
//! [`NetworkCommand`] is the whole vocabulary: acknowledge the buzzer, time sync, test mode,
//! timed inhibit of one faulted sensor's trouble report. Nothing else (reset, abort, close
//! contactor, thresholds) is representable, and none of them changes a stage or an action.
//!
//! # Time
//! `now_ms` is a 64-bit monotonic millisecond clock everywhere (no wrap in the life of a
//! controller). Stage, warning, off-gas and loss timers accumulate elapsed time and survive a
//! restart through the [`LatchRecord`] (see [`latch`](crate::LatchRecord)).
//!
//! # Invariants (checked by the property tests)
//! - the stage never decreases except by an accepted local reset;
//! - agent, coolant and gas need the thresholds plus independent corroboration, or a manual
//!   release; a single sensor or a common-cause group alone never goes past stage 1;
//! - every room-gas release follows at least `gas_warning_ms` of pre-discharge warning;
//! - valid independent evidence at a threshold leads to its action within a bound, and a fire
//!   that destroys its sensors after the agent still gets coolant and gas;
//! - no network command changes a stage or an action;
//! - the fire-authority key always forces the contactor open;
//! - `step` never panics and does bounded work (no loop over unbounded data).
//!
//! `model/stages.pml` is a Spin model of the stage machine with safety and liveness claims in LTL,
//! checked in CI by `tests/model/run.sh`; `tests/it/model.rs` ties its numbers to the defaults.
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

pub use config::{
    Config, ConfigError, Corroboration, Fitted, MAX_COMMON_CAUSE_GROUP, UndeclaredPair,
};
pub use events::{
    Cause, Corroborator, EVENT_LOG_CAPACITY, Event, EventClass, EventKind, EventLog, NotFallen,
    Refused, ResetRefusal,
};
pub use latch::{CHECKPOINT_MS, GasState, LatchError, LatchRecord, RESTORE_CREDIT_MS};
pub use logic::{MAX_WARNING_STEP_MS, NetworkCommand, RackLogic};
pub use source::Invalidity;
pub use stages::{STAGE_TABLE, StageInfo};
pub use types::{
    Action, Actions, Analog, DeciC, Digital, Inputs, Outputs, SourceId, SourceSet, Stage,
    Supervisory, SupervisoryFlags, Trouble, Troubles,
};
