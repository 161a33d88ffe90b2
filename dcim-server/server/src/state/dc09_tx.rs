//! The handle of the server's running DC-09 transmitter ([`Dc09`]), held by the server state;
//! `crate::io::dc09` runs the planner and the terms around it.

use crate::config::dc09::Dc09Config;
use crate::engine::dc09_plan::*;
use crate::storage::store::Fence;
use sia_dc09::EventKind;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The running server-side transmitter.
///
/// A term: the transmitter and the delivery-report task of one leader term (a single server
/// has one term, started with the server). Multi-site: a replica runs a term only while it
/// leads, each with a fresh outbox (`<outbox_dir>/term-{epoch}`); the store is the outbox that
/// survives the site: every message is recorded (`dc09.msg`, with the sequence number it was
/// given) before it is queued, in the same fenced transaction as the planner state, and a new
/// term queues again every recorded message not yet delivered, with its recorded number (the
/// receiver sees a retransmission of what the old leader may have sent, never a new alarm).
/// Numbers are reserved ahead in the store (`dc09.state/seq`, blocks of [`SEQ_BLOCK`]), so a new
/// term never reuses one the old leader may have used.
pub struct Dc09 {
    pub(crate) cfg: Dc09Config,
    pub(crate) link_cfg: dc09_link::LinkConfig,
    pub(crate) outbox: PathBuf,
    pub(crate) term: std::sync::Mutex<Option<Term>>,
    pub(crate) planner: tokio::sync::Mutex<Planner>,
    /// Serialises read-modify-write of the message records (queued vs delivery reports).
    pub(crate) records: Arc<tokio::sync::Mutex<()>>,
    pub(crate) wake: tokio::sync::Notify,
}

pub(crate) struct Term {
    pub(crate) fence: Option<Fence>,
    pub(crate) link: dc09_link::Handle,
    pub(crate) reports: JoinHandle<()>,
    /// Sequence counters below this are reserved in the store for this term.
    pub(crate) reserved: u64,
}

/// Sequence numbers reserved in the store ahead of use.
pub const SEQ_BLOCK: u64 = 1000;
/// `dc09.state/seq`: `{"upto": counter}`: every counter below it may have been used.
pub(crate) const SEQ_ID: &str = "seq";

impl Dc09 {
    /// Runs a planner cycle now rather than at the next poll (called after alarm changes are
    /// committed, so that a fire alarm does not wait for the poll interval).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The transmitter of the current term (none on a follower).
    pub fn link(&self) -> Option<dc09_link::Handle> {
        self.term
            .lock()
            .expect("dc09 term")
            .as_ref()
            .map(|t| t.link.clone())
    }

    /// Messages waiting for an ACK in this replica's transmitter.
    pub fn pending(&self) -> usize {
        self.link().map_or(0, |l| l.pending().len())
    }

    /// The planner's state (for tests and the API).
    pub async fn state(&self) -> PlannerState {
        self.planner.lock().await.state.clone()
    }

    /// Whether a drill's begin bracket was sent and its end not yet.
    pub async fn drill_bracket_open(&self) -> bool {
        self.planner
            .lock()
            .await
            .state
            .has_open(EventKind::DrillTest)
    }

    pub(crate) fn term_fence(&self) -> Option<Option<Fence>> {
        self.term
            .lock()
            .expect("dc09 term")
            .as_ref()
            .map(|t| t.fence.clone())
    }

    /// Ends the current term: the transmitter stops after the exchange in progress.
    pub(crate) async fn end_term(&self, why: &str) {
        let t = self.term.lock().expect("dc09 term").take();
        if let Some(t) = t {
            tracing::warn!(%why, "server DC-09 transmitter stopped");
            t.reports.abort();
            t.link.shutdown().await;
        }
    }
}
