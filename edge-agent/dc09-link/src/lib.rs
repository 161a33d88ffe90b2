//! DC-09 transmitter: paths, retries, supervision and a persistent outbox.
//!
//! [`Transmitter::start`] opens the outbox, resends whatever was left undelivered (with the
//! sequence numbers it was first given) and runs one sender task. Callers [`Handle::submit`]
//! events with their own event id; the call returns once the message is fsynced in the outbox.
//!
//! Sending: one message at a time; fire alarms first. Each path (in configured preference,
//! working paths before failed ones) gets `attempts_per_path` attempts of at most
//! `ack_timeout_ms` each. ACK delivers; NAK corrects the clock offset for that path from the
//! receiver's time and resends (same sequence number); DUH to a fire alarm (or its restore)
//! makes it go out again at once with the generic fire alarm code of the format (a new message
//! with a new sequence number; the outbox records the substitution, [`outbox::Outbox::mark_fallback`]),
//! so the receiving centre never misses a fire alarm because its code table lacks a stage code;
//! DUH to anything else (or to the generic code itself) rejects the message as a local trouble
//! without a retry loop. A path that fails all its attempts is marked down and a
//! `path.fail` event is queued (so it goes out over a surviving path); a down path is probed
//! with NULL messages every `down_probe_ms` and reported restored when one is ACKed. Working
//! paths get a NULL message every `supervision_ms` when idle, and a periodic test report is
//! queued every `test_interval_ms`.
//!
//! Time (queue and delivery times, supervision, probes, back-off, the timestamp sent) comes from
//! the [`dcim_clock::Clock`] the transmitter was started with ([`Transmitter::start_with_clock`];
//! the system clock otherwise), so its timers can run on tokio's paused time in tests.
//!
//! # Invariants and takeover
//!
//! A message's Seq is fixed at queue time (or at its recorded fallback) and reused for every retry
//! and restart; a fire alarm is never dropped for a DUH while a generic code remains to try; the
//! Seq counter never goes back (NULL numbers come from reserved blocks); a delivered message is
//! never handed out again; one event id is queued at most once per outbox. De-duplication is per
//! outbox, so a product event must be submitted to one transmitter only (the edge agent's for fire
//! events; the server submits only site-level events). For a transmitter taking over another's
//! messages (a server replica's new term): `Transmitter::start_with_seq_floor` (the counter starts
//! past every number the previous one may have used), `Handle::reserve_seq` +
//! `Handle::submit_with_seq` (a number recorded by the caller before the message is queued, so
//! whoever sends it later uses the same number), and `Handle::seq_counter`.

pub mod config;
pub mod outbox;
mod transport;

pub use config::{ConfigError, LinkConfig, PathConfig, Transport};
pub use outbox::{Entry, Fallback, Recovery};

use dcim_clock::Clock;
use outbox::Outbox;
use sia_dc09::{Event, EventKind, Message, Payload, ResponseKind, Seq, Token, encode_message};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use transport::{Conn, Exchange};

/// An event to transmit, with the caller's id (the same product event must always carry the
/// same id: it is what prevents duplicate alarms at the receiver).
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub event_id: String,
    pub event: Event,
}

/// Result of a submission: the message is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub seq: Seq,
    /// The event id was submitted before; nothing new was queued.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("event cannot be encoded with this code table: {0}")]
    Payload(#[from] sia_dc09::PayloadError),
    #[error("event id must be 1 to 200 characters")]
    EventId,
    #[error("outbox write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("transmitter stopped")]
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("outbox: {0}")]
    Outbox(#[from] std::io::Error),
}

/// What the transmitter reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    Delivered {
        event_id: String,
        seq: Seq,
        event: Event,
        path: String,
        queued_ms: i64,
        acked_ms: i64,
        /// Delivered with the generic fire alarm code after the own code was refused.
        fallback: Option<Fallback>,
    },
    /// The receiver answered DUH to a fire alarm's own code: it goes out again as `seq` with
    /// the generic fire alarm code `fallback.code`.
    FallingBack {
        event_id: String,
        seq: Seq,
        event: Event,
        path: String,
        fallback: Fallback,
    },
    /// The receiver answered DUH: a local trouble (code table or account setup); not retried.
    Rejected {
        event_id: String,
        seq: Seq,
        event: Event,
        path: String,
    },
    Nak {
        path: String,
        offset_ms: i64,
    },
    PathDown {
        path: String,
        reason: String,
    },
    PathUp {
        path: String,
    },
    SupervisionAcked {
        path: String,
    },
}

/// A snapshot of the transmitter state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub pending: usize,
    pub delivered: u64,
    pub rejected: u64,
    pub naks: u64,
    pub failed_attempts: u64,
    /// `(name, up)` per path, in configured order.
    pub paths: Vec<(String, bool)>,
    pub recovered: Recovery,
}

struct Shared {
    cfg: LinkConfig,
    outbox: Mutex<Outbox>,
    wake: Notify,
    stop: AtomicBool,
    test_mode: AtomicBool,
    events: broadcast::Sender<LinkEvent>,
    stats: watch::Sender<Stats>,
    clock: Clock,
}

/// Handle to a running transmitter (cheap to clone).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

pub struct Transmitter;

impl Transmitter {
    /// Opens the outbox in `outbox_dir` and starts sending. Must be called inside a tokio
    /// runtime.
    pub async fn start(
        config: LinkConfig,
        outbox_dir: impl AsRef<Path>,
    ) -> Result<Handle, StartError> {
        Transmitter::start_with_clock(config, outbox_dir, 0, Clock::system()).await
    }

    /// [`Transmitter::start`] with the sequence counter moved to at least `seq_floor` before
    /// anything is sent: when another transmitter sent for the same account before (a server
    /// replica taking over from another), numbers it may have used are not used again.
    pub async fn start_with_seq_floor(
        config: LinkConfig,
        outbox_dir: impl AsRef<Path>,
        seq_floor: u64,
    ) -> Result<Handle, StartError> {
        Transmitter::start_with_clock(config, outbox_dir, seq_floor, Clock::system()).await
    }

    /// [`Transmitter::start_with_seq_floor`] reading the time (queue and delivery times,
    /// supervision, probes, back-off, the clock offset sent to the receiver) from `clock`
    /// instead of the system clock: the daemon's own clock, tokio's paused time in tests.
    pub async fn start_with_clock(
        config: LinkConfig,
        outbox_dir: impl AsRef<Path>,
        seq_floor: u64,
        clock: Clock,
    ) -> Result<Handle, StartError> {
        config.validate()?;
        let dir = outbox_dir.as_ref().to_path_buf();
        let (outbox, recovery) = tokio::task::spawn_blocking(move || {
            let (mut ob, rec) = Outbox::open(&dir)?;
            ob.raise_counter(seq_floor)?;
            Ok::<_, std::io::Error>((ob, rec))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        let (events, _) = broadcast::channel(1024);
        let stats = Stats {
            pending: outbox.pending_len(),
            paths: config
                .paths
                .iter()
                .map(|p| (p.name.clone(), true))
                .collect(),
            recovered: recovery,
            ..Stats::default()
        };
        let (stats_tx, _) = watch::channel(stats);
        let shared = Arc::new(Shared {
            cfg: config,
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
            test_mode: AtomicBool::new(false),
            events,
            stats: stats_tx,
            clock,
        });
        let task = tokio::spawn(Sender::new(shared.clone()).run());
        Ok(Handle {
            shared,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }
}

impl Handle {
    /// Queues an event; returns once it is fsynced in the outbox.
    pub async fn submit(&self, sub: Submission) -> Result<Queued, SubmitError> {
        self.enqueue(sub, None).await
    }

    /// Takes the next sequence number for a message that will be submitted later with
    /// [`Handle::submit_with_seq`]; the caller records it first (so that whoever sends the
    /// message later uses the same number). The reservation is on disk when this returns.
    pub async fn reserve_seq(&self) -> Result<Seq, SubmitError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            shared
                .outbox
                .lock()
                .expect("outbox lock")
                .next_unlogged_seq()
        })
        .await
        .map_err(|_| SubmitError::Stopped)?
        .map_err(SubmitError::Io)
    }

    /// [`Handle::submit`] with a sequence number reserved earlier (here or by another
    /// transmitter of the same account).
    pub async fn submit_with_seq(&self, sub: Submission, seq: Seq) -> Result<Queued, SubmitError> {
        self.enqueue(sub, Some(seq)).await
    }

    /// Checks a submission, marks it as a test while test mode is on and writes it to the
    /// outbox (with the reserved `seq`, if any) off the async threads; returns once it is
    /// fsynced.
    async fn enqueue(&self, sub: Submission, seq: Option<Seq>) -> Result<Queued, SubmitError> {
        if sub.event_id.is_empty() || sub.event_id.len() > 200 {
            return Err(SubmitError::EventId);
        }
        if self.shared.stop.load(Ordering::SeqCst) {
            return Err(SubmitError::Stopped);
        }
        let mut event = sub.event;
        if self.shared.test_mode.load(Ordering::SeqCst) {
            event.test = true;
        }
        // reject what can never be encoded before it reaches the disk
        self.shared
            .cfg
            .codes
            .payload(&self.shared.cfg.header.account, &event)?;
        let shared = self.shared.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut ob = shared.outbox.lock().expect("outbox lock");
            let r = match seq {
                None => ob.enqueue(&sub.event_id, event, shared.clock.now_ms()),
                Some(seq) => ob.enqueue_with_seq(&sub.event_id, event, seq, shared.clock.now_ms()),
            };
            let pending = ob.pending_len();
            drop(ob);
            shared.stats.send_modify(|s| s.pending = pending);
            r
        })
        .await
        .map_err(|_| SubmitError::Stopped)??;
        self.shared.wake.notify_one();
        Ok(Queued {
            seq: r.seq,
            duplicate: r.duplicate,
        })
    }

    /// The next sequence counter: every counter below it may have been used by this
    /// transmitter (for a floor handed to the next one).
    pub fn seq_counter(&self) -> u64 {
        self.shared.outbox.lock().expect("outbox lock").counter()
    }

    /// Drill mode: while on, every submitted event is flagged as test.
    pub fn set_test_mode(&self, on: bool) {
        self.shared.test_mode.store(on, Ordering::SeqCst);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.shared.events.subscribe()
    }

    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.shared.stats.subscribe()
    }

    /// Messages still waiting for an ACK.
    pub fn pending(&self) -> Vec<Entry> {
        self.shared
            .outbox
            .lock()
            .expect("outbox lock")
            .pending()
            .cloned()
            .collect()
    }

    /// Stops the sender after the exchange in progress, if any. Undelivered messages stay in
    /// the outbox for the next start.
    pub async fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let task = self.task.lock().expect("task lock").take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

struct PathState {
    conn: Conn,
    name: String,
    index: usize,
    up: bool,
    offset_ms: i64,
    next_probe_ms: i64,
}

enum Delivery {
    Acked(usize),
    Rejected(usize),
    /// DUH to the own code of a message that has a generic fallback code.
    FallBack(usize, Payload, Payload),
    Preempted,
    AllFailed,
}

struct Sender {
    sh: Arc<Shared>,
    paths: Vec<PathState>,
    next_test_ms: i64,
    backoff_until_ms: i64,
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    // without OS randomness fall back to the system clock (not the injected one: the pad only
    // has to vary, and a test clock standing still would not)
    if getrandom::fill(&mut b).is_err() {
        b = (dcim_clock::now_ms() as u128).to_le_bytes();
    }
    b
}

impl Sender {
    /// The transmitter's wall time (Unix ms), from its clock.
    fn now_ms(&self) -> i64 {
        self.sh.clock.now_ms()
    }

    fn new(sh: Arc<Shared>) -> Sender {
        let now = sh.clock.now_ms();
        let paths = sh
            .cfg
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| PathState {
                conn: Conn::new(p.clone()),
                name: p.name.clone(),
                index: i,
                up: true,
                offset_ms: 0,
                next_probe_ms: if p.supervision_ms > 0 {
                    now + p.supervision_ms as i64
                } else {
                    i64::MAX
                },
            })
            .collect();
        let next_test_ms = if sh.cfg.test_interval_ms > 0 {
            now + sh.cfg.test_interval_ms as i64
        } else {
            i64::MAX
        };
        Sender {
            sh,
            paths,
            next_test_ms,
            backoff_until_ms: 0,
        }
    }

    fn emit(&self, e: LinkEvent) {
        let _ = self.sh.events.send(e);
    }

    fn publish_paths(&self) {
        let paths: Vec<_> = self.paths.iter().map(|p| (p.name.clone(), p.up)).collect();
        self.sh.stats.send_modify(|s| s.paths = paths);
    }

    fn probe_interval(&self, i: usize) -> i64 {
        let p = &self.paths[i];
        let sup = self.sh.cfg.paths[i].supervision_ms;
        if p.up {
            if sup > 0 { sup as i64 } else { i64::MAX / 4 }
        } else {
            self.sh.cfg.down_probe_ms.max(1) as i64
        }
    }

    async fn outbox<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> R + Send + 'static,
    ) -> R {
        let sh = self.sh.clone();
        tokio::task::spawn_blocking(move || {
            let mut ob = sh.outbox.lock().expect("outbox lock");
            let r = f(&mut ob);
            let pending = ob.pending_len();
            drop(ob);
            sh.stats.send_modify(|s| s.pending = pending);
            r
        })
        .await
        .expect("outbox task")
    }

    async fn run(mut self) {
        loop {
            if self.sh.stop.load(Ordering::SeqCst) {
                return;
            }
            let now = self.now_ms();
            if now >= self.next_test_ms {
                self.queue_periodic_test(now).await;
            }
            // supervision / probes that are due (not while a fire alarm waits)
            let alarm_waiting = self
                .sh
                .outbox
                .lock()
                .expect("outbox lock")
                .has_priority_pending();
            for i in 0..self.paths.len() {
                if alarm_waiting {
                    break;
                }
                if self.now_ms() >= self.paths[i].next_probe_ms {
                    self.supervise(i).await;
                    self.paths[i].next_probe_ms = self.now_ms() + self.probe_interval(i);
                }
            }
            // next message
            let next = if self.now_ms() >= self.backoff_until_ms {
                let sh = self.sh.clone();
                let ob = sh.outbox.lock().expect("outbox lock");
                ob.next().cloned()
            } else {
                None
            };
            if let Some(entry) = next {
                match self.deliver(&entry).await {
                    Delivery::Acked(p) => self.acked(p, entry).await,
                    Delivery::FallBack(p, refused, generic) => {
                        self.fall_back(p, entry, refused, generic).await
                    }
                    Delivery::Rejected(p) => self.rejected(p, entry).await,
                    Delivery::Preempted => {}
                    Delivery::AllFailed => {
                        self.backoff_until_ms =
                            self.now_ms() + self.sh.cfg.all_paths_down_backoff_ms as i64;
                    }
                }
                continue;
            }
            self.idle(alarm_waiting).await;
        }
    }

    /// Queues the periodic test report and sets the time of the next one.
    async fn queue_periodic_test(&mut self, now: i64) {
        let ev = Event::new(EventKind::PeriodicTest, 0, 0);
        let id = format!("test.periodic:{now}");
        if let Err(e) = self
            .outbox(move |ob| ob.enqueue(&id, ev, now).map(|_| ()))
            .await
        {
            tracing::error!("cannot queue periodic test: {e}");
        }
        self.next_test_ms = now + self.sh.cfg.test_interval_ms as i64;
    }

    /// `entry` acknowledged on path `p`: recorded as delivered.
    async fn acked(&mut self, p: usize, entry: Entry) {
        let path = self.paths[p].name.clone();
        let acked = self.now_ms();
        let id = entry.id;
        let pth = path.clone();
        if let Err(e) = self
            .outbox(move |ob| ob.mark_delivered(id, &pth, acked))
            .await
        {
            tracing::error!("cannot record delivery of {}: {e}", entry.event_id);
        }
        self.sh.stats.send_modify(|s| s.delivered += 1);
        self.emit(LinkEvent::Delivered {
            event_id: entry.event_id.clone(),
            seq: entry.seq,
            event: entry.event,
            path,
            queued_ms: entry.queued_ms,
            acked_ms: acked,
            fallback: entry.fallback.clone(),
        });
    }

    /// The receiver refused the own code of `entry` on path `p`: recorded so that it goes out
    /// again with the generic fire alarm code.
    async fn fall_back(&mut self, p: usize, entry: Entry, refused: Payload, generic: Payload) {
        let path = self.paths[p].name.clone();
        tracing::error!(
            "receiver on {path} answered DUH to fire alarm {} ({}, code {}): sending it again with the generic fire alarm code {}",
            entry.event_id,
            entry.event.kind,
            refused.code,
            generic.code
        );
        let id = entry.id;
        let (r, g) = (refused.code.clone(), generic.code.clone());
        let now = self.now_ms();
        match self
            .outbox(move |ob| ob.mark_fallback(id, &r, &g, now))
            .await
        {
            Ok(seq) => self.emit(LinkEvent::FallingBack {
                event_id: entry.event_id.clone(),
                seq,
                event: entry.event,
                path,
                fallback: Fallback {
                    refused: refused.code,
                    code: generic.code,
                },
            }),
            Err(e) => {
                // Not recorded: the entry keeps its own code and is tried
                // again after the back-off rather than dropped.
                tracing::error!("cannot record the fallback: {e}");
                self.backoff_until_ms =
                    self.now_ms() + self.sh.cfg.all_paths_down_backoff_ms as i64;
            }
        }
    }

    /// The receiver refused `entry` on path `p` for good: recorded as rejected.
    async fn rejected(&mut self, p: usize, entry: Entry) {
        let path = self.paths[p].name.clone();
        if entry.event.priority() == 0 {
            tracing::error!(
                "FIRE ALARM REFUSED: receiver on {path} answered DUH to {} ({}) even with the generic fire alarm code: check the account and the receiver's code table",
                entry.event_id,
                entry.event.kind
            );
        } else {
            tracing::error!(
                "receiver on {path} answered DUH to {} ({}): local trouble, not retried",
                entry.event_id,
                entry.event.kind
            );
        }
        let id = entry.id;
        let now = self.now_ms();
        if let Err(e) = self
            .outbox(move |ob| ob.mark_rejected(id, "DUH", now))
            .await
        {
            tracing::error!("cannot record rejection: {e}");
        }
        self.sh.stats.send_modify(|s| s.rejected += 1);
        self.emit(LinkEvent::Rejected {
            event_id: entry.event_id.clone(),
            seq: entry.seq,
            event: entry.event,
            path,
        });
    }

    /// Sleeps until the next timer or a submission (probes are held back while a fire alarm
    /// waits out a back-off: do not spin on them).
    async fn idle(&self, alarm_waiting: bool) {
        let wake_at = self
            .paths
            .iter()
            .filter(|_| !alarm_waiting)
            .map(|p| p.next_probe_ms)
            .chain([self.next_test_ms])
            .chain((self.backoff_until_ms > self.now_ms()).then_some(self.backoff_until_ms))
            .min()
            .unwrap_or(i64::MAX);
        let sleep_ms = (wake_at - self.now_ms()).clamp(0, 3_600_000) as u64;
        tokio::select! {
            _ = self.sh.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
        }
    }

    /// What goes out for `entry`: its own code, or the generic fire alarm code once the own
    /// code was refused.
    fn payload(&self, entry: &Entry) -> Option<Payload> {
        let (codes, account) = (&self.sh.cfg.codes, &self.sh.cfg.header.account);
        match &entry.fallback {
            None => codes.payload(account, &entry.event).ok(),
            Some(_) => codes.fallback_payload(account, &entry.event),
        }
    }

    /// One exchange of `payload` (or NULL when `None`) with sequence `seq` on path `i`.
    async fn attempt(&mut self, i: usize, seq: Seq, payload: Option<&Payload>) -> Exchange {
        let cfg = &self.sh.cfg;
        let (token, data) = match payload {
            Some(p) => (p.token, p.data.as_str()),
            None => (Token::Null, ""),
        };
        let msg = Message {
            token,
            seq,
            header: &cfg.header,
            data,
            timestamp_ms: self.now_ms() + self.paths[i].offset_ms,
        };
        let frame = match encode_message(&msg, cfg.key.as_ref(), &random16()) {
            Ok(f) => f,
            Err(e) => return Exchange::Failed(format!("encode: {e}")),
        };
        let key = cfg.key.clone();
        let wait = Duration::from_millis(cfg.ack_timeout_ms);
        let r = self.paths[i]
            .conn
            .exchange(&frame, seq.get(), key.as_ref(), wait)
            .await;
        if let Exchange::Reply(resp) = &r
            && resp.kind == ResponseKind::Nak
            && let Some(t) = resp.timestamp_ms
        {
            // receiver time minus ours, at second resolution of the timestamps
            let offset = t - self.now_ms();
            self.paths[i].offset_ms = offset;
            self.sh.stats.send_modify(|s| s.naks += 1);
            self.emit(LinkEvent::Nak {
                path: self.paths[i].name.clone(),
                offset_ms: offset,
            });
        }
        if matches!(r, Exchange::Failed(_)) {
            self.sh.stats.send_modify(|s| s.failed_attempts += 1);
        }
        r
    }

    async fn path_up(&mut self, i: usize) {
        if self.paths[i].up {
            return;
        }
        self.paths[i].up = true;
        // a working path ends any wait after an all-paths failure
        self.backoff_until_ms = 0;
        let name = self.paths[i].name.clone();
        tracing::info!("DC-09 path {name} restored");
        self.emit(LinkEvent::PathUp { path: name.clone() });
        self.publish_paths();
        self.paths[i].next_probe_ms = self.now_ms() + self.probe_interval(i);
        let now = self.now_ms();
        let ev = Event::new(EventKind::PathFail, 0, (self.paths[i].index + 1) as u16).restored();
        let id = format!("path.restore:{name}:{now}");
        if let Err(e) = self
            .outbox(move |ob| ob.enqueue(&id, ev, now).map(|_| ()))
            .await
        {
            tracing::error!("cannot queue path restore: {e}");
        }
    }

    async fn path_down(&mut self, i: usize, reason: String) {
        if !self.paths[i].up {
            return;
        }
        self.paths[i].up = false;
        let name = self.paths[i].name.clone();
        tracing::warn!("DC-09 path {name} failed: {reason}");
        self.emit(LinkEvent::PathDown {
            path: name.clone(),
            reason,
        });
        self.publish_paths();
        self.paths[i].next_probe_ms = self.now_ms() + self.probe_interval(i);
        let now = self.now_ms();
        let ev = Event::new(EventKind::PathFail, 0, (self.paths[i].index + 1) as u16);
        let id = format!("path.fail:{name}:{now}");
        if let Err(e) = self
            .outbox(move |ob| ob.enqueue(&id, ev, now).map(|_| ()))
            .await
        {
            tracing::error!("cannot queue path failure: {e}");
        }
    }

    /// NULL supervision (or probe of a failed path).
    async fn supervise(&mut self, i: usize) {
        let seq = match self.outbox(|ob| ob.next_unlogged_seq()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("outbox: {e}");
                return;
            }
        };
        let mut last = String::new();
        let attempts = if self.paths[i].up {
            self.sh.cfg.attempts_per_path
        } else {
            1
        };
        for _ in 0..attempts {
            match self.attempt(i, seq, None).await {
                Exchange::Reply(r) if matches!(r.kind, ResponseKind::Ack | ResponseKind::Rsp) => {
                    self.emit(LinkEvent::SupervisionAcked {
                        path: self.paths[i].name.clone(),
                    });
                    self.path_up(i).await;
                    return;
                }
                Exchange::Reply(r) if r.kind == ResponseKind::Nak => last = "NAK".into(),
                Exchange::Reply(r) => {
                    // DUH to a NULL: the receiver is there but does not accept us
                    last = format!("{:?} to NULL", r.kind);
                    break;
                }
                Exchange::Failed(e) => last = e,
            }
        }
        self.path_down(i, last).await;
    }

    fn order(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.paths.len()).collect();
        v.sort_by_key(|&i| (!self.paths[i].up, i));
        v
    }

    async fn deliver(&mut self, entry: &Entry) -> Delivery {
        let Some(payload) = self.payload(entry) else {
            // cannot happen for submissions (checked at submit); a changed code table could
            return Delivery::Rejected(0);
        };
        for i in self.order() {
            let mut last = String::new();
            let mut attempts = self.sh.cfg.attempts_per_path;
            // the resend right after a NAK (with the corrected clock) is not counted as an
            // attempt, once per path, so that a single attempt per path still survives a NAK
            let mut nak_resend = true;
            while attempts > 0 {
                if entry.event.priority() > 0 {
                    let preempt = self
                        .sh
                        .outbox
                        .lock()
                        .expect("outbox lock")
                        .has_priority_pending();
                    if preempt {
                        return Delivery::Preempted;
                    }
                }
                match self.attempt(i, entry.seq, Some(&payload)).await {
                    Exchange::Reply(r) => match r.kind {
                        ResponseKind::Ack | ResponseKind::Rsp => {
                            self.path_up(i).await;
                            self.paths[i].next_probe_ms = self.now_ms() + self.probe_interval(i);
                            return Delivery::Acked(i);
                        }
                        ResponseKind::Duh => {
                            self.path_up(i).await;
                            if entry.fallback.is_none()
                                && let Some(generic) = self
                                    .sh
                                    .cfg
                                    .codes
                                    .fallback_payload(&self.sh.cfg.header.account, &entry.event)
                            {
                                return Delivery::FallBack(i, payload, generic);
                            }
                            return Delivery::Rejected(i);
                        }
                        ResponseKind::Nak if nak_resend => {
                            nak_resend = false;
                            continue;
                        }
                        ResponseKind::Nak => last = "NAK".into(),
                    },
                    Exchange::Failed(e) => last = e,
                }
                attempts -= 1;
                if self.sh.stop.load(Ordering::SeqCst) {
                    return Delivery::Preempted;
                }
            }
            self.path_down(i, last).await;
        }
        Delivery::AllFailed
    }
}
