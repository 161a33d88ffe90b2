//! Site model and the redundancy engine: pure code, no I/O besides reading the site file, no
//! clocks (`now_ms` is passed in).
//!
//! ```text
//! Site::load(path) / Site::from_toml_str(src, file)   -> Site        (schema: README.md)
//! Live::from_samples(&samples) / live.update(sample)  -> Live        (latest sample per point)
//! component_states(&site, &live, &maintenance, now)   -> Vec<ComponentState>
//! timer.apply(&site, &mut states, now, down_after)    Unknown for down_after -> Down
//! evaluate(&site, &states)                            -> Evaluation  (per component, subsystem,
//!                                                                      tank ride-through)
//! what_if(&site, &states, &evaluation, &["feed-a"])   -> WhatIf      (loses_power/cooling/
//!                                                                      network, loses_redundancy)
//! status::status(&observation, now, &policy)          -> dcim_points::Status
//! status::device_statuses(&live, devices, &maint, now, &policy)
//! ```
//!
//! A typical server loop keeps one [`Live`] and one [`UnknownTimer`], updates the table with
//! every ingested sample, and on a tick (or on a state-relevant sample) recomputes states, lets
//! the timer turn lasting Unknowns into Down, evaluates, then diffs the subsystem and rack
//! levels against the previous evaluation to raise redundancy alarms.
//!
//! Missing information is never good news: the `current` level of every supply is the one
//! *proven* by components that are Up; what Unknown components could add is reported apart
//! (`if_unknown_up`, `unverified`). Unknown still conducts supply for impact questions
//! (`supplied`, what-if, suppression by design): an unreachable meter does not cut power.
//!
//! Definitions of every number are in [`engine`]; state rules in [`state::component_state`].
//!
//! Layers, bottom up: [`model`] and [`layout`] (the site's types), [`live`] (latest samples),
//! [`energy`] and [`state`] (component state from samples), [`unknown`], [`fire`], [`status`],
//! [`engine`] (the redundancy engine). `load` reads a site file into a [`Site`]; it finds line
//! numbers with one `dcim_source_lines::LineIndex` (a binary search per lookup), so a site of
//! 10,000 racks loads in linear time.

pub mod energy;
pub mod engine;
pub mod fire;
pub mod fixture;
pub mod layout;
pub mod live;
mod load;
pub mod model;
pub mod state;
pub mod status;
pub mod unknown;

pub use engine::{
    ComponentHealth, Evaluation, LevelChange, RideThrough, SubsystemHealth, SupplyHealth,
    UnknownComponent, WhatIf, evaluate, evaluate_without_sharing, what_if,
};
pub use layout::{Asset, Cell, CellKind, Direction, Layout, Plan, PlanRow};
pub use model::{
    Binding, CompIdx, Component, Group, Kind, Redundancy, Site, SiteError, Subsystem, TankSpec,
};
pub use state::{
    CompState, ComponentState, Live, component_state, component_states, is_state_role,
};
pub use status::{Observation, StatusPolicy, device_statuses, status};
pub use unknown::UnknownTimer;
