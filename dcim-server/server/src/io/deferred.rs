//! Events batches the store could not commit (a full disk), kept in order until it can.
//!
//! Events take the ingest's priority lane, whose worker also applies the alarm samples of
//! telemetry. Retrying a failed events commit on that worker (as the single ingest worker once
//! did) holds up everything behind it: with the disk full, samples stopped reaching the alarm
//! engine and the center showed no alarm while a feed was lost and a battery heated. So a
//! batch whose commit fails is *deferred*: kept here, unacknowledged (the embedded broker's
//! gate keeps holding its PUBACK, and its budget charge is kept; an external broker keeps it
//! unacknowledged in the server's session), and tried again every half second by the retry
//! task in `mqtt`, oldest first. Later events batches of the same agent queue behind it, so
//! events are still committed in sequence order; both lanes and other agents go on.
//!
//! At most [`MAX_DEFERRED`] batches are kept; beyond that the worker waits (back-pressure on
//! the broker) instead of growing without bound. With the embedded broker the gate's events
//! budget stops agents' events publishes long before that.

use crate::app::App;
use crate::engine::ingest::Decoded;
use rumqttc::Publish;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// Deferred batches kept at most.
pub const MAX_DEFERRED: usize = 10_000;

/// One deferred events batch with what acknowledges it.
pub struct Pending {
    pub topic: String,
    pub msg: Decoded,
    pub ack: Option<Publish>,
    /// The gate's budget charge, given back once committed (embedded broker).
    pub charge: Option<crate::io::broker::budget::Charge>,
    /// The gate's mark to set once committed: `(agent, epoch, highest seq)`.
    pub mark: Option<(String, String, u64)>,
    /// When the batch arrived.
    pub received_ms: i64,
}

/// The queue (see the module docs).
#[derive(Default)]
pub struct DeferredEvents {
    q: Mutex<VecDeque<Pending>>,
}

/// The agent of an events batch.
pub fn events_agent(msg: &Decoded) -> Option<&str> {
    match msg {
        Decoded::Events(topic, _) => Some(topic.agent.as_str()),
        _ => None,
    }
}

impl DeferredEvents {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether events of `agent` wait here (later ones must queue behind them).
    pub fn holds(&self, agent: &str) -> bool {
        self.lock()
            .iter()
            .any(|p| events_agent(&p.msg) == Some(agent))
    }

    /// Keeps a batch; waits while the queue is full (unless the server stops).
    pub async fn push(&self, app: &App, p: Pending, stop: &watch::Receiver<bool>) {
        while self.len() >= MAX_DEFERRED && !*stop.borrow() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut q = self.lock();
        q.push_back(p);
        app.metrics
            .ingest_deferred_batches
            .store(q.len() as i64, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The oldest batch and its arrival (a copy: it stays queued until
    /// [`DeferredEvents::pop`]).
    pub fn front(&self) -> Option<(String, Decoded, i64)> {
        self.lock()
            .front()
            .map(|p| (p.topic.clone(), p.msg.clone(), p.received_ms))
    }

    /// Removes the oldest batch once it is committed.
    pub fn pop(&self, app: &App) -> Option<Pending> {
        let mut q = self.lock();
        let p = q.pop_front();
        app.metrics
            .ingest_deferred_batches
            .store(q.len() as i64, Ordering::Relaxed);
        p
    }
}
