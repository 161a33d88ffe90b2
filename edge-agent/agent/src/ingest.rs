//! The path from device drivers into the spool.
//!
//! Drivers hand samples to [`Ingest::samples`]; they are gathered into telemetry batches of at
//! most `max_samples` and spooled when a batch is full or its oldest sample is `max_delay` old,
//! or at the next [`Ingest::flush_urgent`] (every [`URGENT_FLUSH`]) when the batch holds a point
//! of a `fast` poll class or a `device.online` change ([`Ingest::set_fast_points`]): fire- and
//! power-critical values do not wait for the batch delay, and the fast samples of many devices
//! still share a few batches a second.
//! Telemetry is published as soon as it is written to the spool (the spool's durable sequence
//! reservation, `SpoolConfig::telemetry_visible_before_sync`), not after the telemetry fsync
//! interval; events still wait for their fsync.
//! Events go to [`Ingest::event`], which returns only once the event is in the spool (fsynced
//! under the default policy): that return is the "acknowledged as spooled" point. If the disk is
//! full, the spool makes room for events from old telemetry and its reserve (see `dcim-spool`);
//! an event that still cannot be written waits in memory, in order, and is retried on every
//! tick; telemetry that cannot be written is counted as lost. A full disk is logged once per
//! episode (`disk_full`), with a reminder every five minutes and a summary when it ends. At
//! shutdown waiting events are written before the last telemetry batch.
//!
//! On a full disk the spool makes room for events from old telemetry and its reserve; an event that
//! still cannot be written waits in an ordered in-memory backlog, written first at shutdown.
//! `crate::disk_full::Episode` (pure) logs a failing spool once per episode, a reminder every
//! 5 minutes and a summary after 30 s without a failure.

use crate::disk_full::{Episode, Failure, Report};
use crate::payload::{self, EventDraft};
use crate::test_mode::{self, TestMode};
use dcim_clock::Clock;
use dcim_points::Sample;
use dcim_spool::{Class, Spool, SpoolError};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::watch;
use tracing::{debug, error, warn};

/// State shared by the ingest path, the uplinks and the health reporter.
pub struct Shared {
    pub site: String,
    pub agent: String,
    /// The spool's epoch (drawn when the spool was created): part of every event id.
    pub epoch: String,
    pub devices: Vec<String>,
    spool: Mutex<Spool>,
    /// Bumped whenever new records may have become visible in the spool.
    pub spooled: watch::Sender<u64>,
    /// Bumped when the retained `AgentState` should be published again (test mode changes).
    pub state_changed: watch::Sender<u64>,
    started: Instant,
    /// Drill (test) mode commanded by the center.
    test_mode: Mutex<TestMode>,
    /// Test-mode changes for the task that brackets DC-09 messages and reports them.
    test_changes: tokio::sync::mpsc::UnboundedSender<test_mode::Change>,
    test_changes_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<test_mode::Change>>>,
    /// Devices whose fire-authority key switch reads on (commands to them are refused).
    pub authority_keys: crate::commands::AuthorityKeys,
    /// Where every task of the agent reads the time.
    pub clock: Clock,
}

impl Shared {
    /// Shared state reading the system clock.
    pub fn new(site: String, agent: String, devices: Vec<String>, spool: Spool) -> Arc<Shared> {
        Shared::with_clock(site, agent, devices, spool, Clock::system())
    }

    /// Shared state reading `clock` (a manual one in tests).
    pub fn with_clock(
        site: String,
        agent: String,
        devices: Vec<String>,
        spool: Spool,
        clock: Clock,
    ) -> Arc<Shared> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Shared {
            site,
            agent,
            epoch: spool.epoch().to_owned(),
            devices,
            spool: Mutex::new(spool),
            spooled: watch::Sender::new(0),
            state_changed: watch::Sender::new(0),
            started: clock.instant(),
            test_mode: Mutex::new(TestMode::new(test_mode::DEFAULT_MAX_MS)),
            test_changes: tx,
            test_changes_rx: Mutex::new(Some(rx)),
            authority_keys: Default::default(),
            clock,
        })
    }

    fn test_mode(&self) -> MutexGuard<'_, TestMode> {
        self.test_mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the maximum duration of a drill (from the configuration).
    pub fn set_test_mode_max(&self, max: Duration) {
        *self.test_mode() = TestMode::new(max.as_millis() as u64);
    }

    /// The drill in progress at `now_ms` (Unix ms), ending it first when it has expired.
    pub fn test_mode_at(&self, now_ms: i64) -> Option<test_mode::Active> {
        let mut t = self.test_mode();
        if let Some(c) = t.tick(now_ms) {
            let _ = self.test_changes.send(c);
        }
        t.active().cloned()
    }

    /// Ends the drill in progress, if any, for `reason`.
    pub fn end_test_mode(&self, reason: test_mode::EndReason) {
        if let Some(c) = self.test_mode().end(reason) {
            let _ = self.test_changes.send(c);
        }
    }

    /// Applies a `TestMode { on }` command at `now_ms` (Unix ms); returns the answer's reason.
    pub fn command_test_mode(&self, on: bool, now_ms: i64, user: &str, command_id: &str) -> String {
        let (reason, changes) = self.test_mode().command(on, now_ms, user, command_id);
        for c in changes {
            let _ = self.test_changes.send(c);
        }
        reason
    }

    /// The receiving end of test-mode changes (once).
    pub fn take_test_changes(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<test_mode::Change>> {
        self.test_changes_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The wire id of this agent's event `seq` (`{agent}:{epoch}:{seq}`): never repeats, even
    /// after the spool is wiped (a new spool is a new epoch).
    pub fn event_id(&self, seq: u64) -> String {
        dcim_wire::event_id(&self.agent, &self.epoch, seq)
    }

    /// Where the agent reads the time (the shared [`Clock`]).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Milliseconds since the agent started (the spool's clock).
    pub fn now_ms(&self) -> u64 {
        (self.clock.instant() - self.started).as_millis() as u64
    }

    /// Run `f` on the spool. Spool calls may fsync, so they run where blocking is allowed.
    pub fn with_spool<R>(&self, f: impl FnOnce(&mut Spool) -> R) -> R {
        let run = || {
            let mut guard: MutexGuard<'_, Spool> =
                self.spool.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }

    pub fn wake_uplinks(&self) {
        self.spooled.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// Latest values by `(device, point)`: value and quality.
pub type LatestValues = std::collections::BTreeMap<
    (String, String),
    (Option<dcim_points::Value>, dcim_points::Quality),
>;

/// The latest value and quality of every point seen, and the Modbus write handles by device;
/// read by the local fire logic and the command path.
#[derive(Default)]
pub struct Latest {
    values: Mutex<LatestValues>,
    writers: Mutex<std::collections::BTreeMap<String, Arc<dcim_modbus::LineHandle>>>,
}

impl Latest {
    pub fn update(&self, samples: &[Sample]) {
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            v.insert(
                (s.device.clone(), s.point.clone()),
                (s.value.clone(), s.quality),
            );
        }
    }

    pub fn get(
        &self,
        device: &str,
        point: &str,
    ) -> Option<(Option<dcim_points::Value>, dcim_points::Quality)> {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        v.get(&(device.to_owned(), point.to_owned())).cloned()
    }

    pub fn snapshot(
        &self,
    ) -> std::collections::BTreeMap<
        (String, String),
        (Option<dcim_points::Value>, dcim_points::Quality),
    > {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers the write handle of the Modbus line that polls `device`.
    pub fn set_writer(&self, device: &str, handle: Arc<dcim_modbus::LineHandle>) {
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.to_owned(), handle);
    }

    pub fn writer(&self, device: &str) -> Option<Arc<dcim_modbus::LineHandle>> {
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .cloned()
    }
}

struct Pending {
    samples: Vec<Sample>,
    oldest: Option<Instant>,
    /// The batch holds a fast point: spooled at the next `flush_urgent`.
    urgent: bool,
}

/// How often a batch holding a fast point is spooled at most (the agent's run loop calls
/// [`Ingest::flush_urgent`] at this period): the latency it adds to a fast point, and the bound
/// on telemetry records per second however many devices poll fast.
pub const URGENT_FLUSH: Duration = Duration::from_millis(20);

/// Point ids of the `fast` poll class, by device.
pub type FastPoints = std::collections::HashMap<String, std::collections::HashSet<String>>;

pub struct Ingest {
    shared: Arc<Shared>,
    fast: std::sync::OnceLock<FastPoints>,
    max_samples: usize,
    max_delay: Duration,
    pending: Mutex<Pending>,
    backlog: Mutex<VecDeque<EventDraft>>,
    last_refusal_log: Mutex<Option<Instant>>,
    latest: Arc<Latest>,
    /// Spool writes failing (a full disk): said once per episode.
    episode: Mutex<Episode>,
}

impl Ingest {
    /// Where the agent reads the time (the shared [`Clock`]).
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    pub fn new(shared: Arc<Shared>, max_samples: usize, max_delay: Duration) -> Arc<Ingest> {
        Arc::new(Ingest {
            shared,
            fast: std::sync::OnceLock::new(),
            max_samples: max_samples.max(1),
            max_delay,
            pending: Mutex::new(Pending {
                samples: Vec::new(),
                oldest: None,
                urgent: false,
            }),
            backlog: Mutex::new(VecDeque::new()),
            last_refusal_log: Mutex::new(None),
            latest: Arc::new(Latest::default()),
            episode: Mutex::new(Episode::default()),
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Latest values and write handles.
    pub fn latest(&self) -> &Arc<Latest> {
        &self.latest
    }

    /// The points whose samples are spooled (and so published) at once instead of waiting for
    /// the batch delay: the `fast` poll class of each device's profile. Set once at start.
    pub fn set_fast_points(&self, fast: FastPoints) {
        let _ = self.fast.set(fast);
    }

    fn urgent(&self, samples: &[Sample]) -> bool {
        samples.iter().any(|s| {
            s.role.as_str() == "device.online"
                || self
                    .fast
                    .get()
                    .and_then(|f| f.get(&s.device))
                    .is_some_and(|points| points.contains(&s.point))
        })
    }

    /// Queue samples; spools full batches at once. A batch holding a fast point is spooled by
    /// the next [`Ingest::flush_urgent`].
    pub fn samples(&self, mut samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        let urgent = self.urgent(&samples);
        self.latest.update(&samples);
        self.shared.authority_keys.update(&samples);
        let full: Vec<Vec<Sample>> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.oldest.get_or_insert_with(|| self.shared.clock.instant());
            p.samples.append(&mut samples);
            let mut out = Vec::new();
            while p.samples.len() >= self.max_samples {
                let rest = p.samples.split_off(self.max_samples);
                out.push(std::mem::replace(&mut p.samples, rest));
            }
            if p.samples.is_empty() {
                p.oldest = None;
                p.urgent = false;
            } else if urgent {
                p.urgent = true;
            }
            out
        };
        for batch in full {
            self.spool_batch(batch);
        }
    }

    /// Records a failed spool write of the episode and logs what is due (once, then every
    /// five minutes).
    fn write_failed(&self, what: Failure, error: &SpoolError) {
        let now = self.shared.now_ms();
        let report = self
            .episode
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed(now, what);
        match report {
            Some(Report::Started) => error!(
                error = %error,
                "SPOOL CANNOT WRITE (disk full?): events wait in memory in order and are retried, telemetry that cannot be written is counted as lost; said once, a summary follows when writes work again"
            ),
            Some(Report::Continuing {
                for_ms,
                telemetry_samples_lost,
                events_waiting,
            }) => error!(
                error = %error,
                for_s = for_ms / 1000,
                telemetry_samples_lost,
                events_waiting,
                "SPOOL STILL CANNOT WRITE"
            ),
            _ => {}
        }
    }

    /// Records a successful spool write; logs the summary when it ends an episode.
    fn write_succeeded(&self) {
        let mut e = self.episode.lock().unwrap_or_else(|p| p.into_inner());
        if !e.active() {
            return;
        }
        if let Some(Report::Over {
            lasted_ms,
            telemetry_samples_lost,
            telemetry_batches_lost,
            events_waited_max,
            failures,
        }) = e.succeeded(self.shared.now_ms())
        {
            warn!(
                lasted_s = lasted_ms / 1000,
                telemetry_samples_lost,
                telemetry_batches_lost,
                events_waited_max,
                failures,
                "spool writes work again: no event was lost; the telemetry lost is counted and reported"
            );
        }
    }

    fn spool_batch(&self, samples: Vec<Sample>) {
        let count = samples.len() as u32;
        let agent = self.shared.agent.clone();
        let now = self.shared.now_ms();
        let result = self.shared.with_spool(|s| {
            let epoch = s.epoch().to_owned();
            let r = s.append(Class::Telemetry, count, now, |seq| {
                payload::telemetry_record(&agent, &epoch, seq, samples)
            });
            if let Err(SpoolError::DiskFull { .. } | SpoolError::Io { .. }) = &r {
                s.note_lost_telemetry(count);
            }
            r
        });
        match result {
            Ok(seq) => {
                debug!(target: "dcim_edge_agent::spooled", stream = "telemetry", seq, samples = count, "spooled");
                self.write_succeeded();
                self.shared.wake_uplinks();
            }
            Err(e @ SpoolError::FullOfEvents { .. }) => {
                let mut last = self
                    .last_refusal_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let now = self.shared.clock.instant();
                if last.is_none_or(|t| now - t > Duration::from_secs(10)) {
                    error!(error = %e, "SPOOL FULL OF EVENTS: telemetry is being refused and counted as lost");
                    *last = Some(now);
                }
            }
            Err(e @ (SpoolError::DiskFull { .. } | SpoolError::Io { .. })) => {
                self.write_failed(Failure::Telemetry { samples: count }, &e)
            }
            Err(e) => {
                error!(error = %e, samples = count, "telemetry batch could not be spooled and is counted as lost")
            }
        }
    }

    /// Spool an event; returns its sequence number once it is in the spool. On a full disk the
    /// event is kept in memory (in order) and retried by [`Ingest::tick`]; the error is returned.
    ///
    /// While a drill runs every event is marked `test`.
    pub fn event(&self, mut draft: EventDraft) -> Result<u64, SpoolError> {
        if self
            .shared
            .test_mode_at(self.shared.clock.now_ms())
            .is_some()
        {
            draft.test = true;
        }
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        backlog.push_back(draft);
        self.drain(&mut backlog)
    }

    /// Spool waiting events in order; the sequence number of the last one spooled.
    fn drain(&self, backlog: &mut VecDeque<EventDraft>) -> Result<u64, SpoolError> {
        let mut last = 0;
        while let Some(next) = backlog.front().cloned() {
            let agent = self.shared.agent.clone();
            let now = self.shared.now_ms();
            let r = self.shared.with_spool(|s| {
                let epoch = s.epoch().to_owned();
                s.append(Class::Event, 1, now, |seq| {
                    payload::event_record(&agent, &epoch, seq, next)
                })
            });
            match r {
                Ok(seq) => {
                    backlog.pop_front();
                    debug!(target: "dcim_edge_agent::spooled", stream = "event", seq, "spooled");
                    self.write_succeeded();
                    self.shared.wake_uplinks();
                    last = seq;
                }
                Err(e) => {
                    self.write_failed(
                        Failure::Event {
                            waiting: backlog.len(),
                        },
                        &e,
                    );
                    return Err(e);
                }
            }
        }
        Ok(last)
    }

    /// Time-based work: spool an old partial batch, retry waiting events, fsync on interval.
    pub fn tick(&self) {
        let due = {
            let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.oldest
                .is_some_and(|t| self.shared.clock.instant() - t >= self.max_delay)
        };
        if due {
            self.flush_batch();
        }
        {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            if !b.is_empty() {
                let _ = self.drain(&mut b);
            }
        }
        let now = self.shared.now_ms();
        match self.shared.with_spool(|s| s.tick(now)) {
            Ok(()) => {}
            Err(e @ (SpoolError::DiskFull { .. } | SpoolError::Io { .. })) => {
                self.write_failed(Failure::Sync, &e)
            }
            Err(e) => error!(error = %e, "spool fsync failed"),
        }
        self.shared.wake_uplinks();
    }

    /// Spools the pending batch if it holds a fast point (called every [`URGENT_FLUSH`]).
    pub fn flush_urgent(&self) {
        let urgent = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .urgent;
        if urgent {
            self.flush_batch();
        }
    }

    fn flush_batch(&self) {
        let batch = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.oldest = None;
            p.urgent = false;
            std::mem::take(&mut p.samples)
        };
        if !batch.is_empty() {
            self.spool_batch(batch);
        }
    }

    /// Spool everything held in memory and fsync the spool (shutdown). Waiting events go
    /// first, so the last telemetry batch cannot take the room they need.
    pub fn flush(&self) -> Result<(), SpoolError> {
        let waiting = {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            if !b.is_empty() {
                let _ = self.drain(&mut b);
            }
            b.len()
        };
        if waiting > 0 {
            error!(
                waiting,
                "EVENTS LOST AT SHUTDOWN: no disk space for them even after thinning all telemetry and using the spool's reserve"
            );
        }
        self.flush_batch();
        let r = self.shared.with_spool(|s| s.flush());
        self.shared.wake_uplinks();
        r
    }

    /// Events waiting in memory for disk space.
    pub fn events_waiting(&self) -> usize {
        self.backlog.lock().map(|b| b.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_spool::SpoolConfig;
    use dcim_wire::{Event, Severity};

    fn draft(n: u64) -> EventDraft {
        EventDraft {
            ts_ms: n as i64,
            device: "rack-01".into(),
            kind: "fire.stage".into(),
            severity: Severity::Alarm,
            message: format!("event {n}"),
            data: serde_json::json!({ "n": n }),
            test: false,
        }
    }

    #[test]
    fn events_wait_in_order_while_the_disk_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.reserve_bytes = 0; // nothing to free: events must wait
        let (spool, _) = Spool::open(cfg).unwrap();
        let shared = Shared::new("s".into(), "a".into(), vec![], spool);
        let ingest = Ingest::new(shared.clone(), 10, Duration::from_millis(10));
        assert_eq!(ingest.event(draft(1)).unwrap(), 1);
        shared.with_spool(|s| s.fail_writes_after(Some(0)));
        assert!(matches!(
            ingest.event(draft(2)),
            Err(SpoolError::DiskFull { .. })
        ));
        assert!(ingest.event(draft(3)).is_err());
        ingest.tick();
        shared.with_spool(|s| s.fail_writes_after(None));
        ingest.tick();
        let recs = shared.with_spool(|s| s.read_after(Class::Event, 0, 10, usize::MAX).unwrap());
        let got: Vec<(u64, u64)> = recs
            .iter()
            .map(|r| {
                let e: Event = serde_json::from_slice(&r.payload).unwrap();
                (e.seq, e.data["n"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(got, vec![(1, 1), (2, 2), (3, 3)]);
    }

    /// Hazard: on a full disk 613 events waited in memory and 13 were lost at shutdown,
    /// while old telemetry kept the space.
    #[test]
    fn on_a_full_disk_events_take_the_room_of_telemetry_and_none_is_lost_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.segment_bytes = 4096;
        cfg.reserve_bytes = 0;
        let (spool, _) = Spool::open(cfg.clone()).unwrap();
        let shared = Shared::new("s".into(), "a".into(), vec![], spool);
        let ingest = Ingest::new(shared.clone(), 50, Duration::from_secs(60));
        for i in 0..20 {
            let (samples, _) = crate::devices::synthetic::tick("gen", 50, i, 1, 0);
            ingest.samples(samples);
        }
        shared.with_spool(|s| s.fail_writes_after(Some(0)));
        for n in 1..=30 {
            ingest.event(draft(n)).unwrap();
        }
        // A batch left in memory at shutdown, with the disk full: events go first.
        let (samples, _) = crate::devices::synthetic::tick("gen", 10, 99, 1, 0);
        ingest.samples(samples);
        assert_eq!(ingest.events_waiting(), 0);
        ingest.flush().ok();
        let st = shared.with_spool(|s| s.stats());
        assert!(st.disk_full_thinned_batches > 0, "{st:?}");
        assert!(st.thinned_samples > 0);
        drop(ingest);
        drop(shared);
        let (s, _) = Spool::open(cfg).unwrap();
        let events = s.read_after(Class::Event, 0, 100, usize::MAX).unwrap();
        assert_eq!(events.len(), 30);
    }

    /// Hazard: a fire- or power-critical value waiting a second for its batch (and another for
    /// the telemetry fsync) reaches the center seconds after the change.
    #[test]
    fn a_fast_point_is_spooled_and_visible_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.telemetry_fsync = dcim_spool::FsyncPolicy::Interval(Duration::from_secs(60));
        cfg.telemetry_visible_before_sync = true;
        let (spool, _) = Spool::open(cfg).unwrap();
        let shared = Shared::new("s".into(), "a".into(), vec![], spool);
        let ingest = Ingest::new(shared.clone(), 500, Duration::from_secs(60));
        let (samples, _) = crate::devices::synthetic::tick("gen", 3, 0, 1, 0);
        let fast_id = samples[1].point.clone();
        ingest.set_fast_points([("gen".to_string(), [fast_id].into())].into());
        let batches =
            || shared.with_spool(|s| s.read_after(Class::Telemetry, 0, 10, usize::MAX).unwrap());
        ingest.samples(vec![samples[0].clone()]);
        ingest.flush_urgent();
        assert!(batches().is_empty(), "a normal point waits for its batch");
        ingest.samples(vec![samples[1].clone()]);
        ingest.samples(vec![samples[2].clone()]);
        ingest.flush_urgent();
        assert_eq!(
            batches().iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![3],
            "the fast point takes the waiting batch with it, readable before any fsync"
        );
        ingest.flush_urgent();
        assert_eq!(batches().len(), 1, "nothing urgent left");
    }

    /// Hazard: a last sample that waits for a full batch forever is never sent. (A manual
    /// clock: the batch ages without the test sleeping.)
    #[test]
    fn telemetry_is_batched_by_size_and_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.telemetry_fsync = dcim_spool::FsyncPolicy::Never;
        let (spool, _) = Spool::open(cfg).unwrap();
        let clock = Clock::manual(1_700_000_000_000);
        let shared = Shared::with_clock("s".into(), "a".into(), vec![], spool, clock.clone());
        let ingest = Ingest::new(shared.clone(), 3, Duration::from_millis(30));
        let (samples, _) = crate::devices::synthetic::tick("gen", 7, 0, 1, 0);
        ingest.samples(samples);
        let batches =
            || shared.with_spool(|s| s.read_after(Class::Telemetry, 0, 10, usize::MAX).unwrap());
        assert_eq!(
            batches().iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![3, 3]
        );
        ingest.tick();
        assert_eq!(batches().len(), 2, "the last sample waits for max_delay");
        clock.advance(Duration::from_millis(29));
        ingest.tick();
        assert_eq!(batches().len(), 2, "not before max_delay");
        clock.advance(Duration::from_millis(11));
        ingest.tick();
        assert_eq!(
            batches().iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
    }
}
