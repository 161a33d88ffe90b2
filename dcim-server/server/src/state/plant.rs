//! [`Plant`]: the site model with its redundancy, alarm and incident engines, and what a
//! commit of their changes leaves behind (records still to journal, the notifier's queue).
//!
//! Locks: `facility` (tokio, held while a change is committed so that snapshots are stored in
//! the order they were made) before `unjournaled` (std, never held across an `.await`). The
//! order between handles is in the [`App`](crate::App) docs.

use crate::engine::facility::Facility;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};
use tokio::sync::mpsc;

pub struct Plant {
    /// Site model, redundancy engine, alarm engine and incidents.
    pub facility: tokio::sync::Mutex<Facility>,
    /// A commit of alarm changes failed: the next one rewrites every alarm's row.
    pub alarms_resync: AtomicBool,
    /// Alarm records of a commit that failed (disk full, ...): journalled, notified and streamed
    /// with the next commit, which the ticker attempts every second.
    pub unjournaled: Mutex<Vec<dcim_alarms::Record>>,
    /// The notifier's queue (set when `[notify]` is enabled): alarm records after commit.
    pub notify: OnceLock<mpsc::Sender<Vec<dcim_alarms::Record>>>,
}

impl Plant {
    pub fn new(facility: Facility) -> Plant {
        Plant {
            facility: tokio::sync::Mutex::new(facility),
            alarms_resync: AtomicBool::new(false),
            unjournaled: Mutex::new(Vec::new()),
            notify: OnceLock::new(),
        }
    }
}
