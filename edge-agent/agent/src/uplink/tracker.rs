//! Maps MQTT packet identifiers back to spool records. Pure state machine, no I/O.
//!
//! rumqttc assigns a packet id to each QoS 1 publish when it takes it from its request queue and
//! reports it as `Outgoing::Publish(pkid)`, in the order the publishes were requested (a packet
//! id collision only delays the notification, it never reorders). So the tracker keeps the
//! publishes in request order, gives each the next packet id reported, and on `PubAck(pkid)`
//! marks the oldest unacknowledged publish holding that id. A spool cursor only moves over a
//! prefix of acknowledged publishes, so a record is never reported acknowledged before every
//! earlier record of the same connection was.

use dcim_spool::format::Class;
use std::collections::VecDeque;

/// What a publish carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Spool records of `class` up to and including `last_seq`.
    Spool { class: Class, last_seq: u64 },
    /// Anything not from the spool (agent state, command results).
    Other,
}

#[derive(Debug, Clone)]
struct Entry {
    tag: Tag,
    pkid: Option<u16>,
    acked: bool,
}

#[derive(Debug, Default)]
pub struct Tracker {
    queue: VecDeque<Entry>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// A publish was handed to the client.
    pub fn published(&mut self, tag: Tag) {
        self.queue.push_back(Entry {
            tag,
            pkid: None,
            acked: false,
        });
    }

    /// The client reported `Outgoing::Publish(pkid)` for the next publish in request order.
    pub fn assigned(&mut self, pkid: u16) {
        if let Some(e) = self.queue.iter_mut().find(|e| e.pkid.is_none()) {
            e.pkid = Some(pkid);
        }
    }

    /// `PubAck(pkid)` arrived. Returns the spool cursors that may now advance, per class.
    pub fn acked(&mut self, pkid: u16) -> Vec<(Class, u64)> {
        if let Some(e) = self
            .queue
            .iter_mut()
            .find(|e| e.pkid == Some(pkid) && !e.acked)
        {
            e.acked = true;
        }
        let mut out: Vec<(Class, u64)> = Vec::new();
        while self.queue.front().is_some_and(|e| e.acked) {
            if let Some(Entry {
                tag: Tag::Spool { class, last_seq },
                ..
            }) = self.queue.pop_front()
            {
                match out.iter_mut().find(|(c, _)| *c == class) {
                    Some((_, s)) => *s = (*s).max(last_seq),
                    None => out.push((class, last_seq)),
                }
            }
        }
        out
    }

    /// Spool publishes not yet acknowledged.
    pub fn spool_in_flight(&self) -> usize {
        self.queue
            .iter()
            .filter(|e| matches!(e.tag, Tag::Spool { .. }))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(class: Class, last_seq: u64) -> Tag {
        Tag::Spool { class, last_seq }
    }

    #[test]
    fn acks_in_order_advance_each_class() {
        let mut t = Tracker::new();
        t.published(spool(Class::Event, 3));
        t.published(Tag::Other);
        t.published(spool(Class::Telemetry, 10));
        for p in [1, 2, 3] {
            t.assigned(p);
        }
        assert_eq!(t.spool_in_flight(), 2);
        assert_eq!(t.acked(1), vec![(Class::Event, 3)]);
        assert_eq!(t.acked(2), vec![]);
        assert_eq!(t.acked(3), vec![(Class::Telemetry, 10)]);
        assert!(t.is_empty());
    }

    #[test]
    fn an_early_ack_waits_for_the_records_before_it() {
        let mut t = Tracker::new();
        t.published(spool(Class::Event, 1));
        t.published(spool(Class::Event, 2));
        t.published(spool(Class::Telemetry, 5));
        t.assigned(7);
        t.assigned(8);
        t.assigned(9);
        assert_eq!(t.acked(9), vec![]);
        assert_eq!(t.acked(8), vec![]);
        assert_eq!(t.acked(7), vec![(Class::Event, 2), (Class::Telemetry, 5)]);
    }

    #[test]
    fn reused_packet_ids_match_the_oldest_unacked_publish() {
        let mut t = Tracker::new();
        t.published(spool(Class::Event, 1));
        t.assigned(1);
        assert_eq!(t.acked(1), vec![(Class::Event, 1)]);
        t.published(spool(Class::Event, 2));
        t.assigned(1);
        assert_eq!(t.acked(1), vec![(Class::Event, 2)]);
    }

    #[test]
    fn unknown_or_unassigned_acks_change_nothing() {
        let mut t = Tracker::new();
        t.published(spool(Class::Event, 1));
        assert_eq!(t.acked(1), vec![], "no packet id assigned yet");
        t.assigned(4);
        assert_eq!(t.acked(5), vec![]);
        assert_eq!(t.spool_in_flight(), 1);
    }
}
