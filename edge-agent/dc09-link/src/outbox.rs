//! The persistent outbox: an append-only log of checksummed records in `<dir>/outbox.log`.
//!
//! Record: `len: u32 LE | crc32c(payload): u32 LE | payload (JSON)`. A message counts as queued
//! only once its `Queued` record is written and fsynced. Recovery replays the log and stops at
//! the first torn or corrupt record (a crash mid-append), truncating the tail.
//!
//! Invariants:
//! - a message's sequence number is assigned once, stored in its `Queued` record and reused for
//!   every retry and every resend after a restart;
//! - the sequence counter never goes back: numbers used by unlogged NULL messages are covered
//!   by `SeqReserve` records written ahead of use;
//! - an event id that was ever queued (within the retention) is never queued again;
//! - a `Delivered` message is never handed out again.

use serde::{Deserialize, Serialize};
use sia_dc09::{Event, Seq};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const LOG: &str = "outbox.log";
const MAX_RECORD: u32 = 1 << 20;
/// How many delivered event ids are remembered for de-duplication after a compaction.
pub const DEDUP_RETENTION: usize = 100_000;
/// Sequence numbers reserved per `SeqReserve` record.
const SEQ_BLOCK: u64 = 256;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "r", rename_all = "snake_case")]
enum Record {
    Queued {
        id: u64,
        event_id: String,
        counter: u64,
        event: Event,
        queued_ms: i64,
    },
    Delivered {
        id: u64,
        path: String,
        at_ms: i64,
    },
    Rejected {
        id: u64,
        reason: String,
        at_ms: i64,
    },
    SeqReserve {
        upto: u64,
    },
    /// The receiver answered DUH to the message's own code: it is sent again as a new message
    /// (sequence number from `counter`) with the generic fire alarm code `code`.
    Fallback {
        id: u64,
        /// The code the receiver refused.
        refused: String,
        code: String,
        counter: u64,
        at_ms: i64,
    },
    /// An event id remembered for de-duplication after its message was compacted away.
    Seen {
        event_id: String,
        seq: u16,
    },
}

/// A message waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: u64,
    pub event_id: String,
    pub seq: Seq,
    pub event: Event,
    pub queued_ms: i64,
    /// Set once the receiver refused the message's own code (DUH): the generic fire alarm
    /// code it is sent with instead (and the refused one). See [`Outbox::mark_fallback`].
    pub fallback: Option<Fallback>,
}

/// A fire alarm sent with the generic fire alarm code because its own code was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub refused: String,
    pub code: String,
}

impl Entry {
    fn order_key(&self) -> (u8, u64) {
        (self.event.priority(), self.id)
    }
}

/// Result of [`Outbox::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: u64,
    pub seq: Seq,
    /// The event id was already queued (or delivered); nothing new was written.
    pub duplicate: bool,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    pub pending: usize,
    /// Bytes dropped from a torn or corrupt tail.
    pub truncated_bytes: u64,
}

pub struct Outbox {
    dir: PathBuf,
    file: File,
    next_id: u64,
    next_counter: u64,
    reserved_upto: u64,
    pending: BTreeMap<u64, Entry>,
    /// event id -> seq of every message queued (pending or delivered), bounded by retention.
    seen: HashMap<String, u16>,
    seen_order: Vec<String>,
    dead_records: usize,
    compact_after: usize,
}

fn encode(rec: &Record) -> Vec<u8> {
    let payload = serde_json::to_vec(rec).expect("records serialize");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC32C.checksum(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads records until the end or the first bad one; returns them and the good length.
fn read_all(file: &File) -> io::Result<(Vec<Record>, u64, u64)> {
    let total = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let mut recs = Vec::new();
    let mut good = 0u64;
    loop {
        let mut head = [0u8; 8];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD || good + 8 + u64::from(len) > total {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if r.read_exact(&mut payload).is_err() || CRC32C.checksum(&payload) != crc {
            break;
        }
        match serde_json::from_slice::<Record>(&payload) {
            Ok(rec) => recs.push(rec),
            Err(_) => break,
        }
        good += 8 + u64::from(len);
    }
    Ok((recs, good, total))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, replaying and compacting the log.
    pub fn open(dir: &Path) -> io::Result<(Outbox, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let (recs, good, total) = read_all(&file)?;
        let mut ob = Outbox {
            dir: dir.to_path_buf(),
            file,
            next_id: 1,
            next_counter: 0,
            reserved_upto: 0,
            pending: BTreeMap::new(),
            seen: HashMap::new(),
            seen_order: Vec::new(),
            dead_records: 0,
            compact_after: 2000,
        };
        let n = recs.len();
        for rec in recs {
            ob.apply(rec);
        }
        let recovery = Recovery {
            records: n,
            pending: ob.pending.len(),
            truncated_bytes: total - good,
        };
        if total != good {
            ob.file.set_len(good)?;
            ob.file.sync_all()?;
        }
        // Never reuse a number that may have gone out before the restart.
        ob.next_counter = ob.next_counter.max(ob.reserved_upto);
        ob.compact()?;
        Ok((ob, recovery))
    }

    fn remember(&mut self, event_id: String, seq: u16) {
        if self.seen.insert(event_id.clone(), seq).is_none() {
            self.seen_order.push(event_id);
        }
    }

    fn apply(&mut self, rec: Record) {
        match rec {
            Record::Queued {
                id,
                event_id,
                counter,
                event,
                queued_ms,
            } => {
                let seq = Seq::from_counter(counter);
                self.remember(event_id.clone(), seq.get());
                self.pending.insert(
                    id,
                    Entry {
                        id,
                        event_id,
                        seq,
                        event,
                        queued_ms,
                        fallback: None,
                    },
                );
                self.next_id = self.next_id.max(id + 1);
                self.next_counter = self.next_counter.max(counter + 1);
            }
            Record::Fallback {
                id,
                refused,
                code,
                counter,
                ..
            } => {
                if let Some(e) = self.pending.get_mut(&id) {
                    e.seq = Seq::from_counter(counter);
                    e.fallback = Some(Fallback { refused, code });
                }
                self.next_counter = self.next_counter.max(counter + 1);
            }
            Record::Delivered { id, .. } | Record::Rejected { id, .. } => {
                self.pending.remove(&id);
                self.dead_records += 2;
            }
            Record::SeqReserve { upto } => {
                self.reserved_upto = self.reserved_upto.max(upto);
                self.dead_records += 1;
            }
            Record::Seen { event_id, seq } => self.remember(event_id, seq),
        }
    }

    fn append(&mut self, recs: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in recs {
            buf.extend(encode(r));
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }

    /// Queues an event (fsynced before returning), or reports the earlier copy when
    /// `event_id` was seen before.
    pub fn enqueue(&mut self, event_id: &str, event: Event, now_ms: i64) -> io::Result<Enqueued> {
        if let Some(&seq) = self.seen.get(event_id) {
            let id = self
                .pending
                .values()
                .find(|e| e.event_id == event_id)
                .map_or(0, |e| e.id);
            return Ok(Enqueued {
                id,
                seq: Seq::new(seq).unwrap_or(Seq::FIRST),
                duplicate: true,
            });
        }
        let counter = self.next_counter;
        let id = self.queue(event_id, event, counter, now_ms)?;
        Ok(Enqueued {
            id,
            seq: Seq::from_counter(counter),
            duplicate: false,
        })
    }

    /// Logs (fsynced) and applies a new queued event with sequence counter `counter`; its id.
    fn queue(
        &mut self,
        event_id: &str,
        event: Event,
        counter: u64,
        now_ms: i64,
    ) -> io::Result<u64> {
        let id = self.next_id;
        let rec = Record::Queued {
            id,
            event_id: event_id.to_string(),
            counter,
            event,
            queued_ms: now_ms,
        };
        self.append(std::slice::from_ref(&rec))?;
        self.apply(rec);
        Ok(id)
    }

    /// Queues an event with a sequence number the caller reserved earlier with
    /// [`Outbox::next_unlogged_seq`] (and recorded elsewhere before this call), so that another
    /// transmitter that takes over the message later sends it with the same number: a receiver
    /// sees a retransmission, not a second message. Same de-duplication as [`Outbox::enqueue`].
    pub fn enqueue_with_seq(
        &mut self,
        event_id: &str,
        event: Event,
        seq: Seq,
        now_ms: i64,
    ) -> io::Result<Enqueued> {
        if self.seen.contains_key(event_id) {
            return self.enqueue(event_id, event, now_ms);
        }
        // a counter that maps to the same sequence number; the counter never goes back
        let id = self.queue(event_id, event, u64::from(seq.get() - 1), now_ms)?;
        Ok(Enqueued {
            id,
            seq,
            duplicate: false,
        })
    }

    /// Moves the sequence counter to at least `floor` (never back): numbers below it may have
    /// been used by another transmitter sending for the same account.
    pub fn raise_counter(&mut self, floor: u64) -> io::Result<()> {
        if floor > self.next_counter {
            self.next_counter = floor;
        }
        if self.next_counter > self.reserved_upto {
            let upto = self.next_counter;
            self.append(&[Record::SeqReserve { upto }])?;
            self.reserved_upto = upto;
            self.dead_records += 1;
        }
        Ok(())
    }

    /// The next sequence counter: every counter below it may have been used.
    pub fn counter(&self) -> u64 {
        self.next_counter.max(self.reserved_upto)
    }

    /// A sequence number for a message that is not logged (NULL supervision).
    pub fn next_unlogged_seq(&mut self) -> io::Result<Seq> {
        if self.next_counter >= self.reserved_upto {
            let upto = self.next_counter + SEQ_BLOCK;
            self.append(&[Record::SeqReserve { upto }])?;
            self.reserved_upto = upto;
            self.dead_records += 1;
        }
        let c = self.next_counter;
        self.next_counter += 1;
        Ok(Seq::from_counter(c))
    }

    pub fn mark_delivered(&mut self, id: u64, path: &str, now_ms: i64) -> io::Result<()> {
        self.append(&[Record::Delivered {
            id,
            path: path.to_string(),
            at_ms: now_ms,
        }])?;
        self.apply(Record::Delivered {
            id,
            path: String::new(),
            at_ms: now_ms,
        });
        self.maybe_compact()
    }

    pub fn mark_rejected(&mut self, id: u64, reason: &str, now_ms: i64) -> io::Result<()> {
        self.append(&[Record::Rejected {
            id,
            reason: reason.to_string(),
            at_ms: now_ms,
        }])?;
        self.apply(Record::Rejected {
            id,
            reason: String::new(),
            at_ms: now_ms,
        });
        self.maybe_compact()
    }

    /// Records that the receiver refused message `id`'s own code (`refused`) and that it goes
    /// out again with the generic fire alarm code `code`, as a new message with a new sequence
    /// number (a receiver may take a repeated sequence number for a duplicate and drop it).
    /// Fsynced before it returns; the entry then carries the fallback and its new number.
    pub fn mark_fallback(
        &mut self,
        id: u64,
        refused: &str,
        code: &str,
        now_ms: i64,
    ) -> io::Result<Seq> {
        let counter = self.next_counter;
        let rec = Record::Fallback {
            id,
            refused: refused.to_string(),
            code: code.to_string(),
            counter,
            at_ms: now_ms,
        };
        self.append(std::slice::from_ref(&rec))?;
        self.apply(rec);
        Ok(Seq::from_counter(counter))
    }

    /// The message to send next: fire alarms first, then by queue order.
    pub fn next(&self) -> Option<&Entry> {
        self.pending.values().min_by_key(|e| e.order_key())
    }

    pub fn has_priority_pending(&self) -> bool {
        self.pending.values().any(|e| e.event.priority() == 0)
    }

    pub fn is_pending(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    pub fn pending(&self) -> impl Iterator<Item = &Entry> {
        self.pending.values()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn maybe_compact(&mut self) -> io::Result<()> {
        if self.dead_records > self.compact_after {
            self.compact()
        } else {
            Ok(())
        }
    }

    /// Rewrites the log with only what is still needed: the seen ids (bounded), the sequence
    /// reservation and the pending messages. Written to a temporary file, fsynced and renamed.
    fn compact(&mut self) -> io::Result<()> {
        if self.dead_records == 0 {
            return Ok(());
        }
        if self.seen_order.len() > DEDUP_RETENTION {
            let drop = self.seen_order.len() - DEDUP_RETENTION;
            let pending_ids: std::collections::HashSet<&str> =
                self.pending.values().map(|e| e.event_id.as_str()).collect();
            let old: Vec<String> = self.seen_order.drain(..drop).collect();
            for id in old {
                if pending_ids.contains(id.as_str()) {
                    self.seen_order.push(id);
                } else {
                    self.seen.remove(&id);
                }
            }
        }
        let mut buf = Vec::new();
        buf.extend(encode(&Record::SeqReserve {
            upto: self.next_counter.max(self.reserved_upto),
        }));
        let pending_ids: std::collections::HashSet<&str> =
            self.pending.values().map(|e| e.event_id.as_str()).collect();
        for id in &self.seen_order {
            if !pending_ids.contains(id.as_str()) {
                buf.extend(encode(&Record::Seen {
                    event_id: id.clone(),
                    seq: self.seen[id],
                }));
            }
        }
        for e in self.pending.values() {
            buf.extend(encode(&Record::Queued {
                id: e.id,
                event_id: e.event_id.clone(),
                // a counter that maps to the same sequence number
                counter: u64::from(e.seq.get() - 1),
                event: e.event,
                queued_ms: e.queued_ms,
            }));
            if let Some(f) = &e.fallback {
                buf.extend(encode(&Record::Fallback {
                    id: e.id,
                    refused: f.refused.clone(),
                    code: f.code.clone(),
                    counter: u64::from(e.seq.get() - 1),
                    at_ms: e.queued_ms,
                }));
            }
        }
        let tmp = self.dir.join("outbox.log.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(LOG))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join(LOG))?;
        self.reserved_upto = self.next_counter.max(self.reserved_upto);
        self.dead_records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sia_dc09::EventKind;

    fn ev(k: EventKind) -> Event {
        Event::new(k, 1, 2)
    }

    #[test]
    fn survives_reopen_with_original_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        let a = ob.enqueue("a", ev(EventKind::FireTrouble), 1).unwrap();
        let b = ob.enqueue("b", ev(EventKind::FireStage1), 2).unwrap();
        let n = ob.next_unlogged_seq().unwrap();
        assert_eq!((a.seq.get(), b.seq.get(), n.get()), (1, 2, 3));
        // fire alarm first
        assert_eq!(ob.next().unwrap().event_id, "b");
        ob.mark_delivered(b.id, "p", 3).unwrap();
        drop(ob);
        let (mut ob, rec) = Outbox::open(dir.path()).unwrap();
        assert_eq!(rec.pending, 1);
        let e = ob.next().unwrap().clone();
        assert_eq!((e.event_id.as_str(), e.seq), ("a", a.seq));
        // duplicates are refused, delivered or not
        assert!(
            ob.enqueue("a", ev(EventKind::FireTrouble), 4)
                .unwrap()
                .duplicate
        );
        let d = ob.enqueue("b", ev(EventKind::FireStage1), 4).unwrap();
        assert!(d.duplicate);
        assert_eq!(d.seq, b.seq);
        // numbers never go back, even past the unlogged NULL
        let c = ob.enqueue("c", ev(EventKind::FireTrouble), 5).unwrap();
        assert!(c.seq.get() > n.get());
        assert_eq!(ob.pending_len(), 2);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        ob.enqueue("a", ev(EventKind::FireTrouble), 1).unwrap();
        drop(ob);
        let p = dir.path().join(LOG);
        let good = std::fs::metadata(&p).unwrap().len();
        // a half-written record
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&encode(&Record::SeqReserve { upto: 5 })[..7])
            .unwrap();
        drop(f);
        let (ob, rec) = Outbox::open(dir.path()).unwrap();
        assert_eq!(rec.truncated_bytes, 7);
        assert_eq!(ob.pending_len(), 1);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), good);
        // a flipped bit in a record is detected as well
        drop(ob);
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let (ob, rec) = Outbox::open(dir.path()).unwrap();
        assert!(rec.truncated_bytes > 0);
        assert_eq!(ob.pending_len(), 0);
    }

    #[test]
    fn compaction_keeps_pending_seen_and_counter() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        ob.compact_after = 50;
        for i in 0..100 {
            let q = ob
                .enqueue(&format!("e{i}"), ev(EventKind::FireTrouble), i)
                .unwrap();
            if i != 7 {
                ob.mark_delivered(q.id, "p", i).unwrap();
            }
        }
        let size = std::fs::metadata(dir.path().join(LOG)).unwrap().len();
        drop(ob);
        let (mut ob, rec) = Outbox::open(dir.path()).unwrap();
        assert_eq!(rec.pending, 1);
        assert!(std::fs::metadata(dir.path().join(LOG)).unwrap().len() < size);
        assert_eq!(ob.next().unwrap().seq.get(), 8);
        assert!(
            ob.enqueue("e5", ev(EventKind::FireTrouble), 0)
                .unwrap()
                .duplicate
        );
        let q = ob.enqueue("new", ev(EventKind::FireTrouble), 0).unwrap();
        assert_eq!(q.seq.get(), 101);
    }

    #[test]
    fn a_fallback_keeps_its_new_number_and_code_across_restart_and_compaction() {
        // Hazard: a restart after a DUH would resend the refused code (refused again, or
        // dropped) or reuse the refused message's number.
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        let q = ob
            .enqueue("stage4", ev(EventKind::FireStage4Coolant), 1)
            .unwrap();
        let seq = ob.mark_fallback(q.id, "WA", "FA", 2).unwrap();
        assert_ne!(seq, q.seq, "a new message, a new sequence number");
        let check = |ob: &Outbox| {
            let e = ob.next().unwrap();
            assert_eq!(e.seq, seq);
            assert_eq!(
                e.fallback,
                Some(Fallback {
                    refused: "WA".into(),
                    code: "FA".into()
                })
            );
        };
        check(&ob);
        drop(ob);
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        check(&ob);
        ob.dead_records = 1;
        ob.compact().unwrap();
        drop(ob);
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        check(&ob);
        let next = ob.enqueue("later", ev(EventKind::FireTrouble), 3).unwrap();
        assert_eq!(next.seq.get(), seq.get() + 1, "numbers never go back");
    }

    #[test]
    fn sequence_wraps_after_9999() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        ob.next_counter = 9998;
        ob.reserved_upto = 20_000;
        assert_eq!(ob.next_unlogged_seq().unwrap().get(), 9999);
        assert_eq!(ob.next_unlogged_seq().unwrap().get(), 1);
    }

    #[test]
    fn a_reserved_number_is_kept_and_a_raised_counter_never_goes_back() {
        // Hazard: a transmitter taking over another's messages re-sends one with a new number,
        // and the receiver reports the alarm twice; or it reuses a number the other already
        // sent, and the receiver drops a new alarm as a repeat.
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(dir.path()).unwrap();
        ob.raise_counter(500).unwrap();
        assert_eq!(ob.counter(), 500);
        let r = ob.next_unlogged_seq().unwrap();
        assert_eq!(r.get(), 501);
        let q = ob
            .enqueue_with_seq("x", ev(EventKind::FireStage1), Seq::new(42).unwrap(), 1)
            .unwrap();
        assert_eq!(q.seq.get(), 42);
        assert_eq!(ob.next().unwrap().seq.get(), 42);
        let d = ob
            .enqueue_with_seq("x", ev(EventKind::FireStage1), Seq::new(43).unwrap(), 2)
            .unwrap();
        assert!(
            d.duplicate && d.seq.get() == 42,
            "an event id is queued once"
        );
        ob.raise_counter(10).unwrap();
        assert!(ob.counter() >= 501, "never back");
        drop(ob);
        let (mut ob, rec) = Outbox::open(dir.path()).unwrap();
        assert_eq!(rec.pending, 1);
        assert_eq!(ob.next().unwrap().seq.get(), 42, "kept across a restart");
        assert!(ob.next_unlogged_seq().unwrap().get() > 501);
    }
}
