//! Backpressure between the gate and the ingest: rumqttd's log never wraps past the ingest.
//!
//! rumqttd keeps, per subscribed topic filter, an in-memory log of `log_segments` segments of
//! `log_segment_bytes`; when the active segment is full and the log holds `log_segments`
//! segments, the oldest is dropped, whether or not a subscriber has read it (rumqttd then logs
//! "Read cursor start jumped" and the reader skips the range). A QoS 1 publish is acknowledged
//! to the agent as soon as rumqttd has appended it, so a log that wraps past the ingest loses
//! acknowledged telemetry: the agent has deleted it from its spool.
//!
//! The gate therefore charges every publish it relays on an ingest topic to a [`LogBudget`]
//! (one per filter the ingest reads: telemetry, events, and the small state/cmd_result topics)
//! before it writes the publish to rumqttd, and the ingest gives the charge back once it has
//! handled the message. A publish that does not fit waits in the gate, which stops reading that
//! agent's connection: TCP backpressure slows the agent, whose spool keeps the data. The
//! budget is `(log_segments - 1) * log_segment_bytes - largest message`: the unread tail of a
//! log is never larger than that, and when rumqttd drops a segment the `log_segments - 1`
//! segments it keeps each hold at least `log_segment_bytes` newer bytes, so nothing unread is
//! dropped. The charge of a message is rumqttd's own size of it (`4 + topic + payload`).
//!
//! Telemetry the gate hands to the ingest directly (not through rumqttd, see the `broker` module)
//! is charged to the same telemetry budget: there it bounds what is queued in the server, with
//! the same per-agent shares and alarm reserve.
//!
//! An eighth of the budget is kept for telemetry that carries an alarm sample (a role some
//! alarm rule reads; [`crate::engine::ingest::PriorityRoles`], the same byte scan as the ingest's
//! priority lane): when the rest is spent, such a publish still passes at once, so a fire
//! stage is not queued behind other agents' bulk telemetry. Charges given back refill that
//! reserve first. An agent that marks every batch cannot take more than the reserve: then it
//! waits like the others.
//!
//! One agent's share of the telemetry budget is bounded too ([`Shares`]): at most
//! [`agent_share`] bytes (an eighth of the budget, at least two of the largest messages) of
//! one agent's telemetry are relayed and not yet handled. Without it an agent flooding the
//! lane (25 batches of 20,000 new points) filled the whole budget, and the other agents'
//! telemetry queued behind all of it in the ordered bulk lane; now it queues behind one
//! share at most, and the flooding agent waits in the gate (TCP backpressure, its spool keeps
//! the data). Alarm publishes are charged to the share but never wait for it.
//!
//! A message the gate charged but rumqttd never logged (a connection cut between the two)
//! would keep its charge for ever; [`LogBudget::resync`] gives back everything outstanding and
//! is called by the ingest only when the link has been idle with nothing queued (so nothing can
//! be unread). Each resync is counted (`dcim_broker_budget_resyncs_total`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, Semaphore};

/// The most telemetry of one agent relayed and not yet handled (see [`Shares`]).
pub fn agent_share(b: &crate::config::BrokerConfig) -> usize {
    (b.log_budget() / 8).max(2 * b.max_message())
}

/// rumqttd's size of a publish in its log (`Storage::size` of its `PublishData`).
pub fn charge_of(topic_len: usize, payload_len: usize) -> usize {
    4 + topic_len + payload_len
}

/// Which budget a topic's publishes are charged to: the filters the ingest subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Telemetry,
    Events,
    /// `state` and `cmd_result`: small, rare.
    Other,
}

impl Lane {
    /// The budget of a publish on `topic`; None for a topic the ingest does not read (not
    /// charged: nothing would ever give the charge back).
    pub fn of_topic(topic: &str) -> Option<Lane> {
        match dcim_wire::Topic::parse(topic).ok()?.channel {
            dcim_wire::Channel::Telemetry => Some(Lane::Telemetry),
            dcim_wire::Channel::Events => Some(Lane::Events),
            dcim_wire::Channel::State | dcim_wire::Channel::CommandResult => Some(Lane::Other),
            dcim_wire::Channel::Command { .. } => None,
        }
    }
}

/// Bytes relayed into one log and not yet handled by the ingest, bounded.
pub struct LogBudget {
    /// The bulk part.
    sem: Semaphore,
    /// The part kept for alarm samples.
    reserve: Semaphore,
    capacity: usize,
    reserve_capacity: usize,
    /// `(bytes charged and not given back, of which taken from the reserve)`.
    outstanding: Mutex<(usize, usize)>,
}

impl LogBudget {
    pub fn new(capacity: usize) -> LogBudget {
        let capacity = capacity.clamp(2, u32::MAX as usize);
        let reserve_capacity = (capacity / 8).max(1);
        LogBudget {
            sem: Semaphore::new(capacity - reserve_capacity),
            reserve: Semaphore::new(reserve_capacity),
            capacity,
            reserve_capacity,
            outstanding: Mutex::new((0, 0)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes charged and not given back.
    pub fn outstanding(&self) -> usize {
        self.outstanding.lock().expect("budget lock").0
    }

    /// The charge a message of `bytes` takes (a message larger than the bulk part takes all
    /// of it, so it passes alone).
    pub fn charge_for(&self, bytes: usize) -> usize {
        bytes.clamp(1, self.capacity - self.reserve_capacity)
    }

    /// Charges `bytes` at once if they fit; returns the charge to give back. An alarm
    /// publish (`priority`) may take the reserve when the bulk part is spent.
    pub fn try_reserve(&self, bytes: usize, priority: bool) -> Option<usize> {
        let n = self.charge_for(bytes);
        if let Ok(p) = self.sem.try_acquire_many(n as u32) {
            p.forget();
            self.outstanding.lock().expect("budget lock").0 += n;
            return Some(n);
        }
        if priority
            && n <= self.reserve_capacity
            && let Ok(p) = self.reserve.try_acquire_many(n as u32)
        {
            p.forget();
            let mut o = self.outstanding.lock().expect("budget lock");
            o.0 += n;
            o.1 += n;
            return Some(n);
        }
        None
    }

    /// Charges `bytes`, waiting until they fit in the bulk part; returns the charge to give
    /// back.
    pub async fn reserve(&self, bytes: usize) -> usize {
        let n = self.charge_for(bytes);
        // The semaphore is never closed.
        if let Ok(p) = self.sem.acquire_many(n as u32).await {
            p.forget();
        }
        self.outstanding.lock().expect("budget lock").0 += n;
        n
    }

    /// Gives back a charge, refilling the reserve first (never more than is outstanding, so a
    /// late release after a [`LogBudget::resync`] cannot raise the budget above its capacity).
    pub fn release(&self, charge: usize) {
        let mut o = self.outstanding.lock().expect("budget lock");
        let n = charge.min(o.0);
        o.0 -= n;
        let to_reserve = n.min(o.1);
        o.1 -= to_reserve;
        self.reserve.add_permits(to_reserve);
        self.sem.add_permits(n - to_reserve);
    }

    /// Gives back everything outstanding; returns how much that was. Only when nothing can be
    /// unread (see the module documentation).
    pub fn resync(&self) -> usize {
        let (n, r) = std::mem::take(&mut *self.outstanding.lock().expect("budget lock"));
        self.reserve.add_permits(r);
        self.sem.add_permits(n - r);
        n
    }
}

/// One agent's telemetry relayed and not yet handled.
#[derive(Default)]
struct Share {
    outstanding: Mutex<usize>,
    freed: Notify,
}

/// Per-agent shares of the telemetry lane (see the module documentation): an agent may add
/// a publish while its outstanding bytes plus the publish fit in `cap`, or when it has
/// nothing outstanding (a message larger than the share passes alone); an alarm publish
/// never waits.
pub struct Shares {
    cap: usize,
    agents: Mutex<HashMap<String, Arc<Share>>>,
}

impl Shares {
    pub fn new(cap: usize) -> Shares {
        Shares {
            cap: cap.max(1),
            agents: Mutex::new(HashMap::new()),
        }
    }

    fn share(&self, agent: &str) -> Arc<Share> {
        self.agents
            .lock()
            .expect("shares lock")
            .entry(agent.to_owned())
            .or_default()
            .clone()
    }

    /// Charges `bytes` to `agent` if they fit now (or `priority`); whether they were.
    pub fn try_reserve(&self, agent: &str, bytes: usize, priority: bool) -> bool {
        let s = self.share(agent);
        let mut o = s.outstanding.lock().expect("share lock");
        if priority || *o == 0 || *o + bytes <= self.cap {
            *o += bytes;
            return true;
        }
        false
    }

    /// Charges `bytes` to `agent`, waiting until they fit.
    pub async fn reserve(&self, agent: &str, bytes: usize) {
        let s = self.share(agent);
        loop {
            let freed = s.freed.notified();
            {
                let mut o = s.outstanding.lock().expect("share lock");
                if *o == 0 || *o + bytes <= self.cap {
                    *o += bytes;
                    return;
                }
            }
            freed.await;
        }
    }

    /// Gives back `bytes` of `agent` (never more than it has outstanding).
    pub fn release(&self, agent: &str, bytes: usize) {
        let s = self.share(agent);
        let mut o = s.outstanding.lock().expect("share lock");
        *o -= bytes.min(*o);
        drop(o);
        s.freed.notify_waiters();
    }

    /// Outstanding bytes of `agent`.
    pub fn outstanding(&self, agent: &str) -> usize {
        *self.share(agent).outstanding.lock().expect("share lock")
    }

    /// Gives back everything (with [`LogBudget::resync`]).
    pub fn resync(&self) {
        for s in self.agents.lock().expect("shares lock").values() {
            *s.outstanding.lock().expect("share lock") = 0;
            s.freed.notify_waiters();
        }
    }
}

/// What one relayed message holds of the budgets, given back when the ingest has handled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub lane: Lane,
    /// Of the lane's budget; the same bytes of the agent's share (telemetry).
    pub n: usize,
    /// The agent whose share it is charged to (telemetry).
    pub agent: Option<Arc<str>>,
}

/// The three budgets of the embedded broker's ingest filters.
pub struct Budgets {
    pub telemetry: LogBudget,
    pub events: LogBudget,
    pub other: LogBudget,
    /// Each agent's share of the telemetry budget.
    pub shares: Shares,
    /// Which telemetry publishes may take the reserve.
    pub alarm_roles: crate::engine::ingest::PriorityRoles,
}

impl Budgets {
    pub fn new(
        capacity: usize,
        share: usize,
        alarm_roles: crate::engine::ingest::PriorityRoles,
    ) -> Budgets {
        Budgets {
            telemetry: LogBudget::new(capacity),
            events: LogBudget::new(capacity),
            other: LogBudget::new(capacity),
            shares: Shares::new(share),
            alarm_roles,
        }
    }

    pub fn lane(&self, lane: Lane) -> &LogBudget {
        match lane {
            Lane::Telemetry => &self.telemetry,
            Lane::Events => &self.events,
            Lane::Other => &self.other,
        }
    }

    /// The charge of a message on `topic` of `bytes` (rumqttd's size), as the gate took it.
    pub fn charge_of_message(&self, topic: &str, bytes: usize) -> Option<Charge> {
        let t = dcim_wire::Topic::parse(topic).ok()?;
        let lane = Lane::of_topic(topic)?;
        Some(Charge {
            lane,
            n: self.lane(lane).charge_for(bytes),
            agent: (lane == Lane::Telemetry).then(|| Arc::from(t.agent.as_str())),
        })
    }

    /// Gives a handled message's charge back.
    pub fn release(&self, c: &Charge) {
        self.lane(c.lane).release(c.n);
        if let Some(agent) = &c.agent {
            self.shares.release(agent, c.n);
        }
    }
}

/// Skipped ranges of one of rumqttd's logs, as seen by the reader: each message it forwards
/// carries its absolute offset in the filter's log, contiguous from 0 (rumqttd
/// `Segment::readv`); an offset past the next expected one means rumqttd dropped the range in
/// between before it was read. Pure.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTracker {
    next: u64,
}

impl OffsetTracker {
    /// A message at `offset` was read; returns how many messages before it were skipped.
    pub fn on_read(&mut self, offset: u64) -> u64 {
        let skipped = offset.saturating_sub(self.next);
        self.next = self.next.max(offset + 1);
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn budget_leaves_room_for_a_segment_and_the_largest_message() {
        let b = crate::config::BrokerConfig {
            log_segment_bytes: 32 << 20,
            log_segments: 4,
            max_payload: 4 << 20,
            ..Default::default()
        };
        assert_eq!(b.log_budget(), 3 * (32 << 20) - (4 << 20) - 64 * 1024);
        let tiny = crate::config::BrokerConfig {
            log_segments: 1,
            ..b
        };
        assert_eq!(tiny.log_budget(), 0, "one segment leaves nothing safe");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_makes_the_relay_wait_until_the_ingest_gives_back() {
        // Hazard: relaying more than the log can hold unread drops acknowledged telemetry.
        // 1,000 bytes: 875 bulk, 125 kept for alarm samples.
        let b = std::sync::Arc::new(LogBudget::new(1000));
        let a = b.reserve(600).await;
        assert_eq!(b.try_reserve(600, false), None, "would exceed the budget");
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.reserve(600).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "waits while the log holds 600 unread bytes"
        );
        b.release(a);
        let c = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released")
            .unwrap();
        assert_eq!((c, b.outstanding()), (600, 600));
        // A message larger than the bulk part passes alone.
        b.release(c);
        assert_eq!(b.try_reserve(5000, false), Some(875));
        assert_eq!(b.try_reserve(1, false), None);
        // A resync gives everything back; a late release cannot inflate the budget.
        assert_eq!(b.resync(), 875);
        b.release(875);
        assert_eq!(b.outstanding(), 0);
        assert_eq!(b.try_reserve(875, false), Some(875));
        assert_eq!(
            b.try_reserve(1, false),
            None,
            "capacity unchanged by the late release"
        );
    }

    #[test]
    fn an_alarm_publish_passes_a_spent_budget_within_the_reserve() {
        // Hazard: a fire stage queued behind other agents' telemetry while the budget is full.
        let b = LogBudget::new(1000);
        let bulk = b.try_reserve(875, false).unwrap();
        assert_eq!(b.try_reserve(100, false), None);
        assert_eq!(
            b.try_reserve(100, true),
            Some(100),
            "taken from the reserve"
        );
        assert_eq!(b.try_reserve(100, true), None, "the reserve is bounded too");
        assert_eq!(b.outstanding(), 975);
        // Giving back refills the reserve first.
        b.release(bulk);
        assert_eq!(b.try_reserve(100, true), Some(100));
        assert_eq!(b.outstanding(), 200);
        assert_eq!(b.resync(), 200);
        assert_eq!(b.try_reserve(875, false), Some(875));
        assert_eq!(b.try_reserve(125, true), Some(125));
        assert_eq!(b.try_reserve(1, true), None);
    }

    /// Hazard: one agent publishing 25 batches of 20,000 new points filled the telemetry
    /// budget; every other agent's telemetry queued behind all of it (170 s stale).
    #[tokio::test(start_paused = true)]
    async fn one_agent_holds_at_most_its_share_of_the_telemetry_lane() {
        let s = std::sync::Arc::new(Shares::new(1000));
        assert!(s.try_reserve("flood", 600, false));
        assert!(!s.try_reserve("flood", 600, false), "over its share");
        assert!(
            s.try_reserve("other", 600, false),
            "another agent is not held"
        );
        assert!(s.try_reserve("flood", 600, true), "an alarm never waits");
        assert_eq!(s.outstanding("flood"), 1200);
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.reserve("flood", 500).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        s.release("flood", 600);
        s.release("flood", 600);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("given back")
            .unwrap();
        assert_eq!(s.outstanding("flood"), 500);
        // A message larger than the share passes alone.
        s.release("flood", 500);
        assert!(s.try_reserve("flood", 5000, false));
        assert!(!s.try_reserve("flood", 1, false));
        s.resync();
        assert_eq!(s.outstanding("flood"), 0);
        s.release("flood", 99);
        assert_eq!(
            s.outstanding("flood"),
            0,
            "a late release cannot go below zero"
        );
    }

    #[test]
    fn charges_name_the_lane_and_the_agent() {
        let b = Budgets::new(
            10_000,
            2_000,
            crate::engine::ingest::PriorityRoles::new(&[]),
        );
        assert_eq!(
            b.charge_of_message("dcim/v1/s/a1/telemetry", 300),
            Some(Charge {
                lane: Lane::Telemetry,
                n: 300,
                agent: Some("a1".into())
            })
        );
        assert_eq!(
            b.charge_of_message("dcim/v1/s/a1/events", 300)
                .unwrap()
                .agent,
            None
        );
        assert_eq!(b.charge_of_message("dcim/v1/s/a1/cmd/x", 300), None);
    }

    #[test]
    fn skipped_ranges_are_counted_from_the_offsets() {
        // Hazard: rumqttd skipping unread messages silently (a lost range nobody counts).
        let mut t = OffsetTracker::default();
        assert_eq!(t.on_read(0), 0);
        assert_eq!(t.on_read(1), 0);
        assert_eq!(t.on_read(5), 3, "offsets 2, 3 and 4 were dropped unread");
        assert_eq!(t.on_read(6), 0);
        assert_eq!(t.on_read(6), 0, "a repeated offset is not a skip");
        let mut late = OffsetTracker::default();
        assert_eq!(late.on_read(10), 10, "the first message is at offset 0");
    }

    #[test]
    fn only_ingest_topics_are_charged() {
        assert_eq!(
            Lane::of_topic("dcim/v1/s/a/telemetry"),
            Some(Lane::Telemetry)
        );
        assert_eq!(Lane::of_topic("dcim/v1/s/a/events"), Some(Lane::Events));
        assert_eq!(Lane::of_topic("dcim/v1/s/a/state"), Some(Lane::Other));
        assert_eq!(Lane::of_topic("dcim/v1/s/a/cmd_result"), Some(Lane::Other));
        assert_eq!(Lane::of_topic("dcim/v1/s/a/cmd/rack-1"), None);
        assert_eq!(Lane::of_topic("other/topic"), None);
    }
}
