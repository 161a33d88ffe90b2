//! Acknowledge after commit: the gate holds the PUBACK of an agent's `events` publish until the
//! server has handled every event of the batch (committed it, or dropped it for good as a
//! duplicate or a refused message).
//!
//! rumqttd acknowledges a QoS 1 publish as soon as it has received it. An agent deletes events
//! from its spool when the PUBACK arrives, so a server that died between that PUBACK and the
//! commit would lose them. The gate sees both directions of the connection: it records the
//! packet id and the highest `seq` of each events publish it relays ([`AckHold::on_publish`]),
//! and when rumqttd's PUBACK for that packet id comes back ([`AckHold::on_puback`]) it forwards
//! it only once the agent's handled high-water ([`EventsHandled`], advanced by the ingest
//! worker) has reached that `seq` ([`AckHold::on_handled`]).
//!
//! Telemetry does not pass through rumqttd: the gate hands it to the ingest itself and
//! acknowledges it once it is queued there ([`AckHold::on_local`]). PUBACKs leave in the order of
//! the agent's PUBLISHes (MQTT 3.1.1 §4.6), whoever acknowledges them, so PUBACKs behind a held
//! one wait for it; other packets (PINGRESP, commands, SUBACK) are never delayed.
//!
//! The high-water is a maximum over handled batches, per spool epoch of the agent (sequence
//! numbers start again at 1 in a new epoch, so the marks of an old epoch say nothing about the
//! new one). The ingest drops events at or below the committed high-water of their epoch as
//! duplicates, so a batch whose highest `seq` is at or below it needs nothing more from the
//! server and is released at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// An agent's handled marks: spool epoch -> highest handled `seq` (empty epoch: agents without
/// one).
pub type Marks = Arc<HashMap<String, u64>>;

/// Per agent: the highest event `seq` the server has handled (committed, or dropped for good),
/// per epoch. Written by the ingest worker after each events message, read by the gate's
/// connections.
#[derive(Clone, Default)]
pub struct EventsHandled(Arc<Mutex<HashMap<String, watch::Sender<Marks>>>>);

impl EventsHandled {
    /// Every event of `agent` in `epoch` up to `seq` has been handled. Never moves a mark
    /// backwards.
    pub fn mark(&self, agent: &str, epoch: &str, seq: u64) {
        let mut m = self.0.lock().expect("events handled lock");
        let raise = |v: &mut Marks| {
            let raise = v.get(epoch).is_none_or(|cur| seq > *cur);
            if raise {
                Arc::make_mut(v).insert(epoch.to_owned(), seq);
            }
            raise
        };
        match m.get(agent) {
            Some(tx) => {
                tx.send_if_modified(raise);
            }
            None => {
                let mut v = Marks::default();
                raise(&mut v);
                m.insert(agent.to_owned(), watch::channel(v).0);
            }
        }
    }

    /// The agent's marks and their changes.
    pub fn subscribe(&self, agent: &str) -> watch::Receiver<Marks> {
        let mut m = self.0.lock().expect("events handled lock");
        match m.get(agent) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(Marks::default());
                m.insert(agent.to_owned(), tx);
                rx
            }
        }
    }
}

/// What the ingest will mark for a decoded message: `(agent of the topic, epoch, highest seq)`
/// of an events batch with at least one event. The gate and the ingest worker both use this,
/// so the gate holds exactly the publishes that the worker will mark.
pub fn events_mark(msg: &crate::engine::ingest::Decoded) -> Option<(&str, &str, u64)> {
    match msg {
        crate::engine::ingest::Decoded::Events(topic, batch) => batch
            .events
            .iter()
            .map(|e| e.seq)
            .max()
            .map(|s| (topic.agent.as_str(), batch.epoch.as_str(), s)),
        _ => None,
    }
}

/// At most this many PUBACKs are held per connection (an agent keeps its in-flight window far
/// below it); beyond it the connection is closed and the agent sends again after reconnecting.
pub const MAX_HELD: usize = 8192;

/// Why the gate gives up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldError {
    /// More than [`MAX_HELD`] publishes waiting.
    TooMany,
}

/// A spool epoch and a sequence number in it.
type EpochSeq = (String, u64);

/// Where one QoS 1 publish of the connection stands, in the order the agent sent them.
#[derive(Debug)]
struct Slot {
    pkid: u16,
    /// Since when its PUBACK may go (None: relayed, the broker has not acknowledged it yet).
    acked_at: Option<i64>,
    /// The `(epoch, seq)` the server must have handled first (events), if any.
    wait: Option<EpochSeq>,
}

/// Per-connection state machine. Pure: no I/O, no clock (`now_ms` is passed in).
///
/// PUBACKs leave in the order of the PUBLISHes (MQTT 3.1.1 §4.6), whoever acknowledges them:
/// rumqttd for a relayed publish ([`AckHold::on_relay`], then [`AckHold::on_puback`]), the gate
/// itself for telemetry it hands to the ingest directly ([`AckHold::on_local`]). So a
/// telemetry PUBACK never overtakes an events PUBACK that waits for its commit.
#[derive(Debug, Default)]
pub struct AckHold {
    /// Events publishes relayed to the broker and not yet acknowledged by it: packet id ->
    /// epoch and highest `seq` of the batch.
    awaiting: HashMap<u16, EpochSeq>,
    /// PUBACKs not forwarded yet, in the order of their publishes.
    order: VecDeque<Slot>,
    /// The agent's handled high-water per epoch as last seen.
    handled: HashMap<String, u64>,
}

impl AckHold {
    /// A hold whose agent has handled up to `seq` in the epoch without a name (tests).
    pub fn new(handled: u64) -> AckHold {
        AckHold {
            handled: [(String::new(), handled)].into(),
            ..Default::default()
        }
    }

    fn is_handled(&self, epoch: &str, seq: u64) -> bool {
        self.handled.get(epoch).is_some_and(|h| *h >= seq)
    }

    /// An events publish with packet id `pkid` whose highest `seq` in `epoch` is `max_seq` is
    /// about to be relayed to the broker. Call before relaying, so its PUBACK cannot come back
    /// first.
    pub fn on_publish(&mut self, pkid: u16, epoch: &str, max_seq: u64) -> Result<(), HoldError> {
        if self.awaiting.len() >= MAX_HELD && !self.awaiting.contains_key(&pkid) {
            return Err(HoldError::TooMany);
        }
        // A resend with the same packet id (DUP) carries the same batch.
        let e = self
            .awaiting
            .entry(pkid)
            .or_insert_with(|| (epoch.to_owned(), max_seq));
        if e.0 == epoch {
            e.1 = e.1.max(max_seq);
        } else {
            *e = (epoch.to_owned(), max_seq);
        }
        Ok(())
    }

    fn push(&mut self, slot: Slot) -> Result<(), HoldError> {
        if self.order.len() >= MAX_HELD {
            return Err(HoldError::TooMany);
        }
        self.order.push_back(slot);
        Ok(())
    }

    /// A QoS 1 publish `pkid` is relayed to the broker (after [`AckHold::on_publish`] if it
    /// carries events): its PUBACK takes this place in the order, whenever the broker sends it.
    pub fn on_relay(&mut self, pkid: u16) -> Result<(), HoldError> {
        self.push(Slot {
            pkid,
            acked_at: None,
            wait: None,
        })
    }

    /// A QoS 1 publish `pkid` was taken by the gate itself (telemetry handed to the ingest):
    /// its PUBACK may go as soon as every earlier one has. Returns nothing: the writer
    /// collects what is ready with [`AckHold::ready`], so PUBACKs are written in one place.
    pub fn on_local(&mut self, pkid: u16, now_ms: i64) -> Result<(), HoldError> {
        self.push(Slot {
            pkid,
            acked_at: Some(now_ms),
            wait: None,
        })
    }

    /// The broker acknowledged `pkid`. Returns the packet ids whose PUBACK to forward now, in
    /// order (empty: held).
    pub fn on_puback(&mut self, pkid: u16, now_ms: i64) -> Result<Vec<u16>, HoldError> {
        let wait = self
            .awaiting
            .remove(&pkid)
            .filter(|(e, s)| !self.is_handled(e, *s));
        match self
            .order
            .iter_mut()
            .find(|s| s.pkid == pkid && s.acked_at.is_none())
        {
            Some(slot) => {
                slot.acked_at = Some(now_ms);
                slot.wait = wait;
            }
            // Not recorded as relayed: it goes behind everything waiting.
            None => self.push(Slot {
                pkid,
                acked_at: Some(now_ms),
                wait,
            })?,
        }
        Ok(self.ready())
    }

    /// The agent's handled marks are now `marks`. Returns the PUBACKs to forward now.
    pub fn on_handled(&mut self, marks: &HashMap<String, u64>) -> Vec<u16> {
        for (e, s) in marks {
            let h = self.handled.entry(e.clone()).or_insert(0);
            *h = (*h).max(*s);
        }
        self.ready()
    }

    /// Since when the oldest PUBACK that may go (as far as the broker is concerned) waits, if
    /// any.
    pub fn held_since(&self) -> Option<i64> {
        self.order.iter().find_map(|s| s.acked_at)
    }

    /// Number of PUBACKs not forwarded yet (relayed publishes the broker has not acknowledged
    /// included).
    pub fn held(&self) -> usize {
        self.order.len()
    }

    /// Takes the PUBACKs to forward now, in order: from the front, each one the broker (or
    /// the gate) acknowledged and whose events are handled.
    pub fn ready(&mut self) -> Vec<u16> {
        let mut out = Vec::new();
        while let Some(s) = self.order.front() {
            let handled = s.wait.as_ref().is_none_or(|(e, q)| self.is_handled(e, *q));
            if s.acked_at.is_none() || !handled {
                break;
            }
            out.push(s.pkid);
            self.order.pop_front();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Vec<u16> = Vec::new();

    fn m(epoch: &str, seq: u64) -> HashMap<String, u64> {
        [(epoch.to_owned(), seq)].into()
    }

    #[test]
    fn other_pubacks_pass_at_once() {
        let mut h = AckHold::new(0);
        assert_eq!(h.on_puback(1, 0), Ok(vec![1]));
        assert_eq!(h.on_puback(2, 0), Ok(vec![2]));
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn events_puback_waits_for_the_commit() {
        let mut h = AckHold::new(4);
        h.on_publish(7, "", 9).unwrap();
        assert_eq!(h.on_puback(7, 100), Ok(NONE));
        assert_eq!(h.held_since(), Some(100));
        assert_eq!(h.on_handled(&m("", 8)), NONE, "seq 9 not handled yet");
        assert_eq!(h.on_handled(&m("", 9)), vec![7]);
        assert_eq!(h.held_since(), None);
    }

    #[test]
    fn the_commit_may_come_before_the_puback() {
        let mut h = AckHold::new(0);
        h.on_publish(1, "", 5).unwrap();
        assert_eq!(h.on_handled(&m("", 5)), NONE);
        assert_eq!(h.on_puback(1, 0), Ok(vec![1]));
    }

    #[test]
    fn already_handled_batches_are_not_held() {
        // A redelivered batch the server committed before: the ingest drops it as a duplicate.
        let mut h = AckHold::new(10);
        h.on_publish(3, "", 10).unwrap();
        assert_eq!(h.on_puback(3, 0), Ok(vec![3]));
    }

    #[test]
    fn pubacks_stay_in_order_behind_a_held_one() {
        let mut h = AckHold::new(0);
        h.on_publish(1, "", 3).unwrap();
        h.on_publish(3, "", 6).unwrap();
        assert_eq!(h.on_puback(1, 0), Ok(NONE));
        assert_eq!(
            h.on_puback(2, 1),
            Ok(NONE),
            "telemetry behind a held events ack"
        );
        assert_eq!(h.on_puback(3, 2), Ok(NONE));
        assert_eq!(h.on_puback(4, 3), Ok(NONE));
        assert_eq!(h.on_handled(&m("", 3)), vec![1, 2]);
        assert_eq!(h.held_since(), Some(2));
        assert_eq!(h.on_handled(&m("", 6)), vec![3, 4]);
        assert_eq!(h.on_puback(5, 4), Ok(vec![5]));
    }

    #[test]
    fn a_local_ack_waits_behind_earlier_relayed_publishes() {
        // Hazard: telemetry acknowledged by the gate overtakes the PUBACK of an events batch
        // sent before it (order of §4.6 broken; a strict client takes it for a protocol error).
        let mut h = AckHold::new(0);
        h.on_publish(1, "", 3).unwrap();
        h.on_relay(1).unwrap(); // events, to rumqttd
        h.on_relay(2).unwrap(); // state, to rumqttd
        h.on_local(3, 10).unwrap(); // telemetry, taken by the gate
        assert_eq!(h.ready(), NONE, "rumqttd has acknowledged nothing yet");
        assert_eq!(h.held_since(), Some(10));
        assert_eq!(h.on_puback(2, 11), Ok(NONE), "behind 1");
        assert_eq!(h.on_puback(1, 12), Ok(NONE), "1 waits for its commit");
        assert_eq!(h.on_handled(&m("", 3)), vec![1, 2, 3]);
        // Nothing ahead: a local ack is ready at once.
        h.on_local(4, 13).unwrap();
        assert_eq!(h.ready(), vec![4]);
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn a_relayed_publish_is_not_held_by_a_later_local_one() {
        let mut h = AckHold::new(0);
        h.on_relay(7).unwrap();
        h.on_local(8, 0).unwrap();
        h.on_relay(9).unwrap();
        assert_eq!(h.on_puback(7, 1), Ok(vec![7, 8]));
        assert_eq!(h.on_puback(9, 2), Ok(vec![9]));
    }

    #[test]
    fn local_acks_are_bounded_too() {
        let mut h = AckHold::new(0);
        h.on_relay(0).unwrap();
        for p in 1..MAX_HELD as u16 {
            h.on_local(p, 0).unwrap();
        }
        assert_eq!(h.on_local(60_000, 0), Err(HoldError::TooMany));
        assert_eq!(h.on_relay(60_001), Err(HoldError::TooMany));
        assert_eq!(h.on_puback(0, 1).map(|v| v.len()), Ok(MAX_HELD));
    }

    #[test]
    fn random_interleavings_release_every_puback_in_publish_order_and_only_when_due() {
        // Hazard: a PUBACK out of publish order, or one sent before the broker acknowledged
        // its publish or before its events were handled (the agent would delete them from
        // its spool); liveness: everything is released once acknowledged and handled.
        #[derive(Clone, Copy, Debug)]
        enum Kind {
            Relayed,
            Events(u64),
            Local,
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _ in 0..3000 {
            let mut h = AckHold::default();
            let n = 1 + next(24) as u16;
            let mut kinds = Vec::new();
            let mut seq = 0;
            for pkid in 1..=n {
                let k = match next(3) {
                    0 => Kind::Relayed,
                    1 => {
                        seq += 1 + next(3);
                        h.on_publish(pkid, "", seq).unwrap();
                        Kind::Events(seq)
                    }
                    _ => Kind::Local,
                };
                match k {
                    Kind::Local => h.on_local(pkid, 0).unwrap(),
                    _ => h.on_relay(pkid).unwrap(),
                }
                kinds.push(k);
            }
            // rumqttd acknowledges relayed publishes in the order it received them.
            let mut broker: VecDeque<u16> = (1..=n)
                .filter(|p| !matches!(kinds[*p as usize - 1], Kind::Local))
                .collect();
            let (mut acked, mut handled) = (std::collections::HashSet::new(), 0);
            let mut out: Vec<u16> = h.ready();
            for _ in 0..200 {
                let released = match next(3) {
                    0 if !broker.is_empty() => {
                        let p = broker.pop_front().unwrap();
                        acked.insert(p);
                        h.on_puback(p, 1).unwrap()
                    }
                    1 => {
                        handled += next(3);
                        h.on_handled(&m("", handled))
                    }
                    _ => h.ready(),
                };
                for p in &released {
                    match kinds[*p as usize - 1] {
                        Kind::Local => {}
                        Kind::Relayed => assert!(acked.contains(p), "{p} before the broker's"),
                        Kind::Events(q) => {
                            assert!(acked.contains(p), "{p} before the broker's");
                            assert!(q <= handled, "{p} released before its events were handled");
                        }
                    }
                }
                out.extend(released);
            }
            while let Some(p) = broker.pop_front() {
                out.extend(h.on_puback(p, 2).unwrap());
            }
            out.extend(h.on_handled(&m("", u64::MAX)));
            assert_eq!(out, (1..=n).collect::<Vec<_>>(), "kinds {kinds:?}");
            assert_eq!(h.held(), 0);
        }
    }

    #[test]
    fn reused_packet_id_and_resend() {
        let mut h = AckHold::new(0);
        h.on_publish(1, "", 2).unwrap();
        h.on_publish(1, "", 2).unwrap(); // DUP resend
        assert_eq!(h.on_puback(1, 0), Ok(NONE));
        assert_eq!(h.on_handled(&m("", 2)), vec![1]);
        // The id is free again: a telemetry publish with it is not held.
        assert_eq!(h.on_puback(1, 0), Ok(vec![1]));
    }

    #[test]
    fn memory_is_bounded() {
        let mut h = AckHold::new(0);
        for p in 0..MAX_HELD as u16 {
            h.on_publish(p, "", 1).unwrap();
        }
        assert_eq!(
            h.on_publish(MAX_HELD as u16, "", 1),
            Err(HoldError::TooMany)
        );
        assert_eq!(
            h.on_publish(0, "", 1),
            Ok(()),
            "a resend is not a new entry"
        );
        for p in 0..MAX_HELD as u16 {
            assert_eq!(h.on_puback(p, 0), Ok(NONE));
        }
        assert_eq!(h.on_puback(60_000, 0), Err(HoldError::TooMany));
        assert_eq!(h.on_handled(&m("", 1)).len(), MAX_HELD);
    }

    #[test]
    fn marks_only_move_up() {
        let r = EventsHandled::default();
        let rx = r.subscribe("a1");
        r.mark("a1", "", 5);
        r.mark("a1", "", 3);
        assert_eq!(rx.borrow().get(""), Some(&5));
        r.mark("a2", "", 2);
        assert_eq!(r.subscribe("a2").borrow().get(""), Some(&2));
    }

    #[test]
    fn a_new_epoch_is_held_until_its_own_events_are_handled() {
        // Hazard: a wiped spool sends seq 1.. under a new epoch; the old epoch's mark (616) is
        // above them, and the PUBACK would go out before the server committed anything.
        let r = EventsHandled::default();
        r.mark("a1", "old", 616);
        let mut h = AckHold::default();
        h.on_handled(&r.subscribe("a1").borrow());
        h.on_publish(1, "new", 10).unwrap();
        assert_eq!(
            h.on_puback(1, 0),
            Ok(NONE),
            "held: nothing of `new` handled"
        );
        r.mark("a1", "new", 9);
        assert_eq!(h.on_handled(&r.subscribe("a1").borrow()), NONE);
        r.mark("a1", "new", 10);
        let marks = r.subscribe("a1").borrow().clone();
        assert_eq!(marks.get("old"), Some(&616), "the old epoch's mark stays");
        assert_eq!(h.on_handled(&marks), vec![1]);
        // A late replay of the old epoch at or below its mark is released at once.
        h.on_publish(2, "old", 600).unwrap();
        assert_eq!(h.on_puback(2, 0), Ok(vec![2]));
    }

    #[test]
    fn events_mark_matches_the_ingest_decoding() {
        let topic = "dcim/v1/s1/a1/events";
        let ev = |seq| dcim_wire::Event {
            id: format!("a1:{seq}"),
            seq,
            ts_ms: 1,
            device: "ups-1".into(),
            kind: "k".into(),
            severity: dcim_wire::Severity::Alarm,
            message: String::new(),
            data: serde_json::Value::Null,
            test: false,
        };
        let batch = |events| {
            dcim_wire::encode(&dcim_wire::EventBatch {
                v: dcim_wire::VERSION,
                agent: "a1".into(),
                epoch: String::new(),
                events,
            })
        };
        let d = crate::engine::ingest::decode(topic, &batch(vec![ev(4), ev(9), ev(7)]));
        assert_eq!(events_mark(&d), Some(("a1", "", 9)));
        let d = crate::engine::ingest::decode(topic, &batch(vec![]));
        assert_eq!(events_mark(&d), None, "nothing to wait for");
        let d = crate::engine::ingest::decode(topic, b"not json");
        assert_eq!(events_mark(&d), None, "refused by the ingest: not held");
    }
}
