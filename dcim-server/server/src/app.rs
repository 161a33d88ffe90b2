//! [`App`]: the shared state of a running server, which every shell module (tasks, HTTP
//! routes) receives, and its write paths (`commit_changes`, `audit`, the live stream).
//!
//! App sits above the engines, stores and transmitters it holds and below the modules that
//! take it; `python3 tests/arch/module_cycles.py` keeps it so.
//!
//! # Lock order
//!
//! Locks are taken in this order, never the other way round: `control.authority` (tokio) →
//! `control.windows` (tokio) → `plant.facility` (tokio; held while a change is committed, so
//! snapshots are stored in the order they were made) → the std mutexes (`intake.ingest`,
//! `energy`, `plant.unjournaled`, `control.drill`), which are never held across an `.await`.
//! Each handle's module repeats the part of this order that concerns its own locks.

use crate::base::{metrics, observe};
use crate::config::Config;
use crate::engine::{energy, facility};
use crate::state::control::Control;
use crate::state::intake::Intake;
use crate::state::plant::Plant;
use crate::state::{cluster, health, security, stream_access};
use crate::storage::store::{self, Store};
use crate::storage::{drill_plan, incident_store};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// A message on the live stream (`/api/stream`): SSE event name and JSON data. Sent only after
/// what it reports is committed.
#[derive(Debug, Clone)]
pub struct LiveMsg {
    pub event: &'static str,
    pub data: Arc<String>,
}

/// Shared state of a running server: the services every shell uses (clock, configuration,
/// store, live stream, metrics, health) and one handle per subsystem ([`Plant`], [`Control`],
/// [`Intake`]), each of which documents its own locks.
pub struct App {
    /// Where the shells read the time (`now_ms`); the system clock outside tests.
    pub clock: dcim_clock::Clock,
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub live: broadcast::Sender<LiveMsg>,
    pub metrics: Arc<metrics::Metrics>,
    /// Becomes true when the server stops (ends SSE streams).
    pub stopping: watch::Receiver<bool>,
    /// The site model and its engines, and what their commits leave behind.
    pub plant: Plant,
    /// Authority control, maintenance windows, the drill in progress, the DC-09 transmitter.
    pub control: Control,
    /// The ingest table, the broker client, the bulk lane's pause and the time-series writer.
    pub intake: Intake,
    /// Energy integrated from the facility and IT power (`api_energy`).
    pub energy: Mutex<energy::EnergyMeter>,
    /// Histograms and run-time observations behind `/metrics` (`observe`).
    pub ops: Arc<observe::Ops>,
    /// Essential tasks and beats behind `/health` and the systemd watchdog (`health`).
    pub health: health::Health,
    /// The configuration parts a reload (SIGHUP) may change: notification channels and users.
    pub reloadable: Reloadable,
    /// Limits of the public surfaces: sign-in back-off, coalesced failure audit, the hashing
    /// gate, connection counts (see `security`).
    pub security: security::Security,
    /// Multi-site (`[cluster]`): this server is one replica; only the leader runs the work
    /// that must happen once (see `cluster`, `App::leader_fence`).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl App {
    /// The server's time (ms since the Unix epoch), from its [`Clock`](dcim_clock::Clock).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The id of the drill in progress, if any (an expired drill is not in progress).
    pub fn active_drill_id(&self) -> Option<String> {
        let now = self.now_ms();
        self.control.drill.read().ok().and_then(|d| {
            d.as_ref()
                .filter(|d| d.is_active_at(now))
                .map(|d| d.id.clone())
        })
    }
}

impl App {
    pub fn publish_live<T: serde::Serialize>(&self, event: &'static str, data: &T) {
        debug_assert!(
            stream_access::EVENTS.iter().any(|(e, _, _)| *e == event),
            "live event `{event}` has no permission in stream_access::EVENTS"
        );
        if self.live.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(data) {
            // No receivers is fine.
            let _ = self.live.send(LiveMsg {
                event,
                data: Arc::new(json),
            });
        }
    }

    /// Commits what an engine step changed (alarm journal, alarm and incident snapshots, and
    /// the operator's audit record if any) in one transaction, then pushes it to the live
    /// stream. Call with the facility lock held.
    pub async fn commit_changes(
        &self,
        f: &facility::Facility,
        changes: &facility::Changes,
        audit: Option<(&str, &str, &str, serde_json::Value)>,
    ) -> anyhow::Result<()> {
        let records = self.pending_records(changes);
        if records.is_empty() && changes.is_empty() && audit.is_none() {
            return Ok(());
        }
        // Multi-site: only the leader commits alarm-engine changes, and its commit carries the
        // term's fence, so a deposed leader's late commit fails (see `cluster`).
        let Ok(fence) = self.leader_fence() else {
            return Ok(());
        };
        let now = self.now_ms();
        let mut batch = store::Batch {
            fence,
            ..Default::default()
        };
        let touched = self.journal_records(&mut batch, &records, changes, now)?;
        self.snapshot_docs(&mut batch, f, changes, touched, now)?;
        if let Some((actor, action, target, detail)) = &audit {
            batch.audit.push((
                actor.to_string(),
                action.to_string(),
                target.to_string(),
                detail.clone(),
            ));
        }
        let t0 = std::time::Instant::now();
        let committed = self.store.commit_batch(&batch).await;
        self.ops.commit_took("alarms", t0);
        let ids = match committed {
            Ok(ids) => ids,
            Err(e) => {
                self.plant
                    .alarms_resync
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                // Not journalled, notified nor streamed yet: the next commit carries them.
                *self.plant.unjournaled.lock().expect("unjournaled lock") = records;
                return Err(e.into());
            }
        };
        self.plant
            .unjournaled
            .lock()
            .expect("unjournaled lock")
            .clear();
        self.announce_committed(changes, &records, &ids, audit.as_ref(), now);
        Ok(())
    }

    /// The records to journal: those whose commit failed earlier first, in their order
    /// (callers hold the facility lock, so commits do not interleave), then this step's.
    fn pending_records(&self, changes: &facility::Changes) -> Vec<dcim_alarms::Record> {
        let carried = self.plant.unjournaled.lock().expect("unjournaled lock");
        carried
            .iter()
            .chain(changes.records.iter())
            .cloned()
            .collect()
    }

    /// Appends the alarm journal rows (tagged with the active drill, if any) and, during a
    /// drill, the incident-to-drill links; returns the alarms the records touched.
    fn journal_records(
        &self,
        batch: &mut store::Batch,
        records: &[dcim_alarms::Record],
        changes: &facility::Changes,
        now: i64,
    ) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let mut touched = std::collections::BTreeSet::new();
        let drill = self.active_drill_id();
        for r in records {
            let mut record = serde_json::to_value(r)?;
            if let Some(d) = &drill {
                record["drill"] = d.as_str().into();
            }
            batch.journal.push((r.ts_ms, r.alarm.clone(), record));
            touched.insert(r.alarm.clone());
        }
        if let Some(d) = &drill {
            for e in &changes.incidents {
                if let dcim_alarms::IncidentEvent::Opened { id, .. } = e {
                    batch.docs.push((
                        drill_plan::INCIDENT_DOC.into(),
                        store::DocRecord {
                            id: id.to_string(),
                            updated_ms: now,
                            body: serde_json::json!({"drill": d, "incident": id}),
                        },
                    ));
                }
            }
        }
        Ok(touched)
    }

    /// The engine's state is persisted with the records it follows, in the same transaction:
    /// the rows of the alarms this step touched and the rest of the snapshot
    /// (`store::load_alarm_snapshot` puts them together at start), then one document per
    /// changed incident (see `incident_store`).
    fn snapshot_docs(
        &self,
        batch: &mut store::Batch,
        f: &facility::Facility,
        changes: &facility::Changes,
        mut touched: std::collections::BTreeSet<String>,
        now: i64,
    ) -> anyhow::Result<()> {
        if self
            .plant
            .alarms_resync
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            touched.extend(f.engine.alarms().map(|a| a.id.clone()));
        }
        batch.docs.push(store::alarm_engine_doc(&f.engine, now)?);
        for id in &touched {
            if let Some(a) = f.engine.get(id) {
                batch.docs.push((
                    "alarm".into(),
                    store::DocRecord {
                        id: id.clone(),
                        updated_ms: now,
                        body: serde_json::to_value(a)?,
                    },
                ));
            }
        }
        if !changes.incidents.is_empty() {
            let ids = changes.incidents.iter().map(|e| match e {
                dcim_alarms::IncidentEvent::Opened { id, .. }
                | dcim_alarms::IncidentEvent::AlarmJoined { id, .. }
                | dcim_alarms::IncidentEvent::PhaseChanged { id, .. }
                | dcim_alarms::IncidentEvent::GradeRaised { id, .. }
                | dcim_alarms::IncidentEvent::Updated { id } => *id,
            });
            batch
                .docs
                .extend(incident_store::docs(&f.incidents, ids, now)?);
        }
        Ok(())
    }

    /// After the commit: notification queue, DC-09 sender, live stream (alarms, incidents,
    /// the audit record).
    fn announce_committed(
        &self,
        changes: &facility::Changes,
        records: &[dcim_alarms::Record],
        ids: &[i64],
        audit: Option<&(&str, &str, &str, serde_json::Value)>,
        now: i64,
    ) {
        if !records.is_empty() {
            observe::observe_alarm_commit(&self.ops);
        }
        if !records.is_empty()
            && let Some(tx) = self.plant.notify.get()
            && tx.try_send(records.to_vec()).is_err()
        {
            metrics::inc(&self.metrics.notify_queue_dropped_total, 1);
            tracing::error!(
                records = records.len(),
                "notification queue full or closed: records not notified"
            );
        }
        if !records.is_empty()
            && let Some(d) = self.control.dc09.get()
        {
            d.wake();
        }
        for r in records {
            self.publish_live("alarm", r);
        }
        for e in &changes.incidents {
            self.publish_live("incident", e);
        }
        if let (Some(id), Some((actor, action, target, _))) = (ids.first(), audit) {
            self.publish_live(
                "audit",
                &serde_json::json!({"id": id, "ts_ms": now, "actor": actor, "action": action, "target": target}),
            );
        }
    }

    /// Writes an audit record; returns its id after it is committed.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<i64> {
        let ts = self.now_ms();
        let id = self.store.audit(ts, actor, action, target, &detail).await?;
        self.publish_live(
            "audit",
            &serde_json::json!({"id": id, "ts_ms": ts, "actor": actor, "action": action, "target": target}),
        );
        Ok(id)
    }

    /// Records a failed database write (`what` says which) for `/health` and `/metrics`: it is
    /// counted in `store_errors_total`; when the disk holding the database is full, the episode
    /// is logged once with the database path and `dcim_store_disk_full` is 1 until a write
    /// succeeds again ([`App::store_write_ok`]).
    pub fn store_write_failed(&self, what: &str, e: &(dyn std::error::Error + 'static)) {
        use std::sync::atomic::Ordering::Relaxed;
        metrics::inc(&self.metrics.store_errors_total, 1);
        let disk_full = std::iter::successors(Some(e), |e| e.source()).any(|e| {
            e.downcast_ref::<sqlx::Error>()
                .is_some_and(store::is_disk_full)
                || e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.raw_os_error() == Some(28))
        });
        if disk_full {
            // The disk guard keeps the mode (and releases the reserve); its change is reported
            // by the ticker ([`App::check_disk`]), and `/health` reads it.
            if let Some(d) = self.store.disk() {
                d.on_disk_full(what);
            }
            let was_full = self.metrics.store_disk_full.swap(1, Relaxed) == 1;
            if !was_full {
                tracing::error!(
                    "disk full: the database {} cannot be written ({what}: {e}); writes that \
                     can wait are refused and nothing new is acknowledged until it is \
                     committed; alarm and journal commits use the reserve",
                    store::db_path(&self.config.data_dir).display()
                );
            }
        } else {
            *self.metrics.store_error.lock().expect("store status lock") = Some("write failed");
        }
    }

    /// Clears what [`App::store_write_failed`] recorded, after a successful write.
    pub fn store_write_ok(&self) {
        let mut status = self.metrics.store_error.lock().expect("store status lock");
        if let Some(was) = status.take() {
            tracing::warn!(
                "the database {} is writable again (it was: {was})",
                store::db_path(&self.config.data_dir).display()
            );
        }
    }

    /// Measures the database's disk (every second from the ticker): updates the gauges and,
    /// when disk-full mode began or ended, raises or clears the `store-disk-full` alarm (its
    /// commit is essential: it goes to the reserve).
    pub async fn check_disk(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(d) = self.store.disk() else { return };
        d.check();
        self.metrics
            .store_disk_full
            .store(d.is_full() as i64, Relaxed);
        self.metrics
            .store_free_bytes
            .store(d.free() as i64, Relaxed);
        self.metrics
            .store_reserve_bytes
            .store(d.reserve_held() as i64, Relaxed);
        let Some(change) = d.take_change() else {
            return;
        };
        if change.full {
            tracing::error!("DISK FULL: {}", change.detail);
        } else {
            tracing::warn!("disk space is back: {}", change.detail);
        }
        let mut f = self.plant.facility.lock().await;
        let changes = f.trouble(
            "disk_full",
            "database",
            change.full,
            &change.detail,
            self.now_ms(),
        );
        if let Err(e) = self.commit_changes(&f, &changes, None).await {
            tracing::error!("committing the disk-full alarm: {e:#}");
        }
    }
}

/// What a reload can change, and the way to the running notifier.
#[derive(Debug)]
pub struct Reloadable {
    /// The configuration as last loaded (at start or by the last successful reload).
    pub current: Mutex<Config>,
    /// The running notifier's reconfiguration queue (set when it starts).
    pub notify_tx: std::sync::OnceLock<
        tokio::sync::mpsc::UnboundedSender<crate::config::notify::NotifyConfig>,
    >,
}

impl Reloadable {
    pub fn new(config: &Config) -> Reloadable {
        Reloadable {
            current: Mutex::new(config.clone()),
            notify_tx: std::sync::OnceLock::new(),
        }
    }
}
