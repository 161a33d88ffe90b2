//! [`App`]: the shared state of a running server, which every shell module (tasks, HTTP
//! routes) receives, and its write paths (`commit_changes`, `audit`, the live stream).
//!
//! App sits above the engines, stores and transmitters it holds and below the modules that
//! take it; `python3 tests/arch/module_cycles.py` keeps it so.
//!
//! # Lock order
//!
//! Locks are taken in this order, never the other way round: `authority` (tokio) →
//! `windows` (tokio) → `facility` (tokio; held while a change is committed, so snapshots are
//! stored in the order they were made) → the std mutexes (`ingest`, `energy`, `unjournaled`,
//! `drill`), which are never held across an `.await`.

use crate::config::Config;
use crate::storage::store::{self, Store};
use crate::{
    base::metrics, base::observe, engine::authority, engine::energy, engine::facility,
    engine::ingest, engine::maint_windows, state::cluster, state::health, state::security,
    state::stream_access, storage::drill_plan, storage::incident_store,
};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// A message on the live stream (`/api/stream`): SSE event name and JSON data. Sent only after
/// what it reports is committed.
#[derive(Debug, Clone)]
pub struct LiveMsg {
    pub event: &'static str,
    pub data: Arc<String>,
}

/// Shared state of a running server.
pub struct App {
    /// Where the shells read the time (`now_ms`); the system clock outside tests.
    pub clock: dcim_clock::Clock,
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub ingest: Mutex<ingest::Ingest>,
    pub live: broadcast::Sender<LiveMsg>,
    pub metrics: Arc<metrics::Metrics>,
    pub influx: Option<crate::storage::tsdb::influx::InfluxHandle>,
    /// Becomes true when the server stops (ends SSE streams).
    pub stopping: watch::Receiver<bool>,
    /// Site model, redundancy engine, alarm engine and incidents. A tokio mutex: it is held
    /// while a change is committed, so that snapshots are stored in the order they were made.
    pub facility: tokio::sync::Mutex<facility::Facility>,
    /// The broker client (set once the ingest starts), used to send commands to agents.
    pub mqtt: std::sync::OnceLock<rumqttc::AsyncClient>,
    /// The notifier's queue (set when `[notify]` is enabled): alarm records after commit.
    pub notify: std::sync::OnceLock<tokio::sync::mpsc::Sender<Vec<dcim_alarms::Record>>>,
    /// A commit of alarm changes failed: the next one rewrites every alarm's row.
    pub alarms_resync: std::sync::atomic::AtomicBool,
    /// Alarm records of a commit that failed (disk full, ...): journalled, notified and streamed
    /// with the next commit, which the ticker attempts every second.
    pub unjournaled: std::sync::Mutex<Vec<dcim_alarms::Record>>,
    /// Authority control (the fire authority in command). A tokio mutex: write routes hold it
    /// while they act (see `api_authority::guard`); taken before the facility lock.
    pub authority: tokio::sync::Mutex<authority::Authority>,
    /// The server's DC-09 transmitter for site-level events, when `[dc09]` is configured.
    pub dc09: std::sync::OnceLock<Arc<crate::state::dc09_tx::Dc09>>,
    /// The drill in progress: alarm records, incidents and DC-09 messages are tagged as test.
    pub drill: std::sync::RwLock<Option<drill_plan::ActiveDrill>>,
    /// The ingest's bulk lane takes this for reading around each telemetry batch; holding it
    /// for writing pauses that lane alone (tests and benchmarks use it to build a telemetry
    /// backlog and check that the priority lane does not wait for it).
    pub bulk_pause: tokio::sync::RwLock<()>,
    /// Energy integrated from the facility and IT power (`api_energy`).
    pub energy: Mutex<energy::EnergyMeter>,
    /// Maintenance windows scheduled in advance (`api_windows`). A tokio mutex, taken after
    /// the authority lock and before the facility lock.
    pub windows: tokio::sync::Mutex<maint_windows::Schedule>,
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
        self.drill.read().ok().and_then(|d| {
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
                self.alarms_resync
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                // Not journalled, notified nor streamed yet: the next commit carries them.
                *self.unjournaled.lock().expect("unjournaled lock") = records;
                return Err(e.into());
            }
        };
        self.unjournaled.lock().expect("unjournaled lock").clear();
        self.announce_committed(changes, &records, &ids, audit.as_ref(), now);
        Ok(())
    }

    /// The records to journal: those whose commit failed earlier first, in their order
    /// (callers hold the facility lock, so commits do not interleave), then this step's.
    fn pending_records(&self, changes: &facility::Changes) -> Vec<dcim_alarms::Record> {
        let carried = self.unjournaled.lock().expect("unjournaled lock");
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
            && let Some(tx) = self.notify.get()
            && tx.try_send(records.to_vec()).is_err()
        {
            metrics::inc(&self.metrics.notify_queue_dropped_total, 1);
            tracing::error!(
                records = records.len(),
                "notification queue full or closed: records not notified"
            );
        }
        if !records.is_empty()
            && let Some(d) = self.dc09.get()
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
        let mut f = self.facility.lock().await;
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
