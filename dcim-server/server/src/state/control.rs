//! [`Control`]: who is in command of the site and what it is in: authority control (the fire
//! authority), maintenance windows, the drill in progress, and the server's DC-09 transmitter
//! that reports site-level events to the fire authority.
//!
//! Locks: `authority` (tokio; write routes hold it while they act) before `windows` (tokio)
//! before the plant's `facility`; `drill` is a std lock, never held across an `.await`. The
//! order between handles is in the [`App`](crate::App) docs.

use crate::engine::authority::Authority;
use crate::engine::maint_windows::Schedule;
use crate::state::dc09_tx::Dc09;
use crate::storage::drill_plan::ActiveDrill;
use std::sync::{Arc, OnceLock, RwLock};

pub struct Control {
    /// Authority control (the fire authority in command). Taken before the facility lock.
    pub authority: tokio::sync::Mutex<Authority>,
    /// Maintenance windows scheduled in advance. Taken after the authority lock and before
    /// the facility lock.
    pub windows: tokio::sync::Mutex<Schedule>,
    /// The drill in progress: alarm records, incidents and DC-09 messages are tagged as test.
    pub drill: RwLock<Option<ActiveDrill>>,
    /// The server's DC-09 transmitter for site-level events, when `[dc09]` is configured.
    pub dc09: OnceLock<Arc<Dc09>>,
}

impl Control {
    pub fn new(authority: Authority, windows: Schedule, drill: Option<ActiveDrill>) -> Control {
        Control {
            authority: tokio::sync::Mutex::new(authority),
            windows: tokio::sync::Mutex::new(windows),
            drill: RwLock::new(drill),
            dc09: OnceLock::new(),
        }
    }
}
