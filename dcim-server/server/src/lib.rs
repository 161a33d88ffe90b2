//! Central DCIM server: MQTT ingest, storage, authentication, REST/SSE API and the time-series
//! writer. [`start`] starts everything and returns a [`Server`] handle; [`run`] starts and stops
//! it around a shutdown future (what `main` runs: [`Server::run_until`] stops the server within a
//! second of an essential task ending, and `main` then exits with a failure status). The
//! one-process demo and the drill runner live in the `dcim-demo` crate (`dcim-server/demo`),
//! which calls [`start`] itself: this crate links no simulator and no edge agent.
//!
//! # Layers
//!
//! Each module imports only modules of a lower layer (`python3 tests/arch/module_cycles.py`
//! checks there is no cycle; CI runs it):
//!
//! 1. Leaves: `leader`, `maint_windows`, `energy`, `fire_view`, `notify_templates` (pure),
//!    `metrics`, `observe`, `disk`, `tls`, `console` (embedded files).
//! 2. `config` (every section type, `config/*.rs`), then the pure engines and planners:
//!    `ingest`, `authority`, `dc09_plan`, `drill_plan`, `search`, `export`; the adapter over
//!    `dcim-site` and `dcim-alarms`, `facility`.
//! 3. Storage and security primitives: `store` (SQLite, PostgreSQL), `incident_store`, `backup`,
//!    `tsdb` (with `tsdb::influx`), `auth`, `conn_limits`, `http_limits`, `stream_access`,
//!    `health`.
//! 4. Shell: `broker` (rumqttd behind the ACL gate), `mqtt` (the two ingest lanes),
//!    `deferred`, `stream_report`, `cluster` (this replica's view), `security`, `dc09`,
//!    `notify_io`, `drill`, `reload`, `cluster_tasks` (lease, heartbeat, takeover).
//! 5. HTTP: `api_base` (routes table, errors, authorisation), the `api_*` route modules, and
//!    `api` on top, which builds the router.
//!
//! The crate root holds [`App`], the shared state every shell module receives, and [`start`],
//! which wires the layers together. The load generators (`dcim-ingest-bench`,
//! `dcim-memory-bench`, `dcim-scale-bench`, results in BENCHMARKS.md) are binaries of
//! `dcim-demo`.
//!
//! Invariant: a store method returns only after commit, and nothing is acknowledged to anyone
//! (HTTP response, SSE event, MQTT PUBACK) before that. With PostgreSQL under Patroni's
//! synchronous mode, a commit is on both sites.

pub mod api;
pub mod api_auth;
pub mod api_authority;
pub mod api_base;
pub mod api_cluster;
pub mod api_console;
pub mod api_drill;
pub mod api_energy;
pub mod api_export;
pub mod api_facility;
pub mod api_windows;
pub mod auth;
pub mod authority;
pub mod backup;
pub mod broker;
pub mod cluster;
pub mod cluster_tasks;
pub mod config;
pub mod conn_limits;
pub mod console;
pub mod dc09;
pub mod dc09_plan;
pub mod deferred;
pub mod disk;
pub mod drill;
pub mod drill_plan;
pub mod energy;
pub mod export;
pub mod facility;
pub mod fire_view;
pub mod health;
pub mod http_limits;
pub mod incident_store;
pub use tsdb::influx;
pub mod ingest;
pub mod leader;
pub mod maint_windows;
pub mod metrics;
pub mod mosquitto;
pub mod mqtt;
pub mod notify_io;
pub mod notify_templates;
pub mod observe;
pub mod reload;
pub mod search;
pub mod security;
pub mod store;
pub mod stream_access;
pub mod stream_report;
pub mod tls;
pub mod tsdb;

use anyhow::Context;
use config::{BrokerMode, Config, Role};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use store::{Store, UserRecord};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Resolves when the stop flag becomes true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A message on the live stream (`/api/stream`): SSE event name and JSON data. Sent only after
/// what it reports is committed.
#[derive(Debug, Clone)]
pub struct LiveMsg {
    pub event: &'static str,
    pub data: Arc<String>,
}

/// Shared state of a running server.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub ingest: Mutex<ingest::Ingest>,
    pub live: broadcast::Sender<LiveMsg>,
    pub metrics: Arc<metrics::Metrics>,
    pub influx: Option<influx::InfluxHandle>,
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
    pub dc09: std::sync::OnceLock<Arc<dc09::Dc09>>,
    /// The drill in progress: alarm records, incidents and DC-09 messages are tagged as test.
    pub drill: std::sync::RwLock<Option<drill::ActiveDrill>>,
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
    pub reloadable: reload::Reloadable,
    /// Limits of the public surfaces: sign-in back-off, coalesced failure audit, the hashing
    /// gate, connection counts (see `security`).
    pub security: security::Security,
    /// Multi-site (`[cluster]`): this server is one replica; only the leader runs the work
    /// that must happen once (see `cluster`, `App::leader_fence`).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl App {
    /// The id of the drill in progress, if any (an expired drill is not in progress).
    pub fn active_drill_id(&self) -> Option<String> {
        let now = now_ms();
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
        // Records whose commit failed earlier go first, in their order (callers hold the
        // facility lock, so commits do not interleave).
        let records: Vec<dcim_alarms::Record> = {
            let carried = self.unjournaled.lock().expect("unjournaled lock");
            carried
                .iter()
                .chain(changes.records.iter())
                .cloned()
                .collect()
        };
        if records.is_empty() && changes.is_empty() && audit.is_none() {
            return Ok(());
        }
        // Multi-site: only the leader commits alarm-engine changes, and its commit carries the
        // term's fence, so a deposed leader's late commit fails (see `cluster`).
        let Ok(fence) = self.leader_fence() else {
            return Ok(());
        };
        let now = now_ms();
        let mut batch = store::Batch {
            fence,
            ..Default::default()
        };
        let mut touched = std::collections::BTreeSet::new();
        let drill = drill::active_id(self);
        for r in &records {
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
                        drill::INCIDENT_DOC.into(),
                        store::DocRecord {
                            id: id.to_string(),
                            updated_ms: now,
                            body: serde_json::json!({"drill": d, "incident": id}),
                        },
                    ));
                }
            }
        }
        // The engine's state is persisted with the records it follows, in the same
        // transaction: the rows of the alarms this step touched and the rest of the snapshot
        // (`store::load_alarm_snapshot` puts them together at start).
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
            // One document per changed incident (see `incident_store`).
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
        if !records.is_empty() {
            observe::observe_alarm_commit(&self.ops);
        }
        if !records.is_empty()
            && let Some(tx) = self.notify.get()
            && tx.try_send(records.clone()).is_err()
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
        for r in &records {
            self.publish_live("alarm", r);
        }
        for e in &changes.incidents {
            self.publish_live("incident", e);
        }
        if let (Some(id), Some((actor, action, target, _))) = (ids.first(), &audit) {
            self.publish_live(
                "audit",
                &serde_json::json!({"id": id, "ts_ms": now, "actor": actor, "action": action, "target": target}),
            );
        }
        Ok(())
    }

    /// Writes an audit record; returns its id after it is committed.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<i64> {
        let ts = now_ms();
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
            now_ms(),
        );
        if let Err(e) = self.commit_changes(&f, &changes, None).await {
            tracing::error!("committing the disk-full alarm: {e:#}");
        }
    }
}

/// A running server.
pub struct Server {
    pub app: Arc<App>,
    pub http_addr: SocketAddr,
    /// Where agents connect (embedded broker), if embedded.
    pub mqtt_addr: Option<SocketAddr>,
    /// Where agents connect with MQTT over TLS (embedded broker with `[broker.tls]`).
    pub mqtts_addr: Option<SocketAddr>,
    /// The embedded broker's internal loopback listener (only the server's own client and the
    /// gate can log in there).
    pub mqtt_internal_addr: Option<SocketAddr>,
    /// `[metrics] listen`: `/metrics` and `/health` without authentication.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
    /// `<data_dir>/server.lock`, held while the server runs.
    _data_lock: std::fs::File,
}

impl Server {
    /// Stops HTTP, ingest and the writers, saves the stream marks and closes the database.
    /// The embedded broker's threads cannot be stopped (rumqttd has no shutdown); its gate is,
    /// so the public MQTT port is released.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
        mqtt::save_marks(&self.app).await;
        self.store.close().await;
    }
}

/// Creates the users listed in the config and, when there is no user at all, the bootstrap
/// admin (password from `DCIM_ADMIN_PASSWORD`, or generated and shown once: on the terminal,
/// or in `<data_dir>/initial-admin-password` with mode 0600; never in the log).
pub(crate) async fn bootstrap_users(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let hash = |pw: &str| {
        auth::hash_password(
            pw,
            config.auth.argon2_memory_kib,
            config.auth.argon2_iterations,
        )
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    };
    for u in &config.users {
        if store.get_user(&u.name).await?.is_some() {
            continue;
        }
        let pw = std::env::var(&u.password_env).with_context(|| {
            format!(
                "user `{}`: environment variable {} (its initial password) is not set",
                u.name, u.password_env
            )
        })?;
        auth::password::check_new(&pw).map_err(|e| {
            anyhow::anyhow!("user `{}`: the password in {}: {e}", u.name, u.password_env)
        })?;
        store
            .create_user(&UserRecord {
                name: u.name.clone(),
                role: u.role.as_str().into(),
                password_hash: hash(&pw)?,
                created_ms: now_ms(),
                disabled: false,
            })
            .await?;
        store
            .audit(
                now_ms(),
                "system",
                "user.create",
                &u.name,
                &serde_json::json!({"role": u.role, "from": "config"}),
            )
            .await?;
        tracing::info!(user = %u.name, role = u.role.as_str(), "created user from config");
    }
    if store.count_users().await? == 0 {
        let name = &config.auth.bootstrap_admin;
        let (pw, generated) = match std::env::var("DCIM_ADMIN_PASSWORD") {
            Ok(p) if !p.is_empty() => {
                auth::password::check_new(&p)
                    .map_err(|e| anyhow::anyhow!("DCIM_ADMIN_PASSWORD: {e}"))?;
                (p, false)
            }
            _ => (auth::new_token("")[..24].to_string(), true),
        };
        store
            .create_user(&UserRecord {
                name: name.clone(),
                role: Role::Admin.as_str().into(),
                password_hash: hash(&pw)?,
                created_ms: now_ms(),
                disabled: false,
            })
            .await?;
        store
            .audit(
                now_ms(),
                "system",
                "user.create",
                name,
                &serde_json::json!({"role": "admin", "from": "bootstrap"}),
            )
            .await?;
        if generated {
            show_generated_password(config, name, &pw)?;
        } else {
            tracing::info!(
                "created bootstrap admin `{name}` with the password from DCIM_ADMIN_PASSWORD"
            );
        }
    }
    Ok(())
}

/// File in the data directory that holds a generated bootstrap admin password when the server
/// does not run on a terminal.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Shows a generated bootstrap password once, never through the log (which is kept, shipped
/// and read by many): on the terminal when stderr is one, else in a 0600 file in the data
/// directory whose path (only) is logged. Delete the file after the first sign-in.
fn show_generated_password(config: &Config, name: &str, pw: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  created the bootstrap admin `{name}` with the password\n\n      {pw}\n\n  It is shown only now and is not in the log: sign in and change it\n  (POST /api/me/password), or set DCIM_ADMIN_PASSWORD before the first start.\n"
        );
        tracing::warn!(
            "created bootstrap admin `{name}` with a generated password (shown on the terminal, not logged)"
        );
        return Ok(());
    }
    let path = config.data_dir.join(INITIAL_PASSWORD_FILE);
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        o.mode(0o600);
        let mut f = o
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(f, "{pw}")?;
        f.sync_all()?;
    }
    tracing::warn!(
        path = %path.display(),
        "created bootstrap admin `{name}` with a generated password, written to this file (mode 0600), not to the log: sign in, change it, then delete the file"
    );
    Ok(())
}

/// Starts everything: store, broker (embedded) or broker connection, ingest, time-series writer
/// and the HTTP API. Returns once all listeners are bound.
pub async fn start(mut config: Config) -> anyhow::Result<Server> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // TLS files are read before anything else starts, so a bad file stops the start at once.
    let http_tls = match &config.http.tls {
        Some(t) => {
            // Cookies set over HTTPS are never sent back over plain HTTP.
            config.http.secure_cookies = true;
            let server_config = tls::server_config(t.files(), &[b"http/1.1"])
                .map_err(|e| anyhow::anyhow!("http.tls.{e}"))?;
            Some((server_config, t.hsts_max_age_s))
        }
        None => None,
    };
    // One server per data directory (and no `restore` under a running one).
    let data_lock = backup::lock_data_dir(&config.data_dir)?;
    let store = store::open(&config).await?;
    bootstrap_users(&config, store.as_ref()).await?;
    if config.agents.is_empty() {
        tracing::warn!(
            "no [[agents]] configured: any client with the server's broker credentials is trusted and topic ACLs are not enforced"
        );
    }

    let (stop, stop_rx) = watch::channel(false);
    let metrics = Arc::new(metrics::Metrics::default());
    let ops = Arc::new(observe::Ops::default());
    let health = health::Health::default();
    let mut tasks = Vec::new();

    let influx = match &config.influx {
        Some(ic) => {
            let (handle, t) = influx::spawn(
                ic.clone(),
                &config.data_dir,
                metrics.clone(),
                ops.clone(),
                stop_rx.clone(),
            )?;
            for (name, t) in ["tsdb.flusher", "tsdb.sender"].iter().zip(&t) {
                health.essential(*name, t.abort_handle());
            }
            tasks.extend(t);
            Some(handle)
        }
        None => None,
    };

    let mut ingest = ingest::Ingest::new(&config.agents);
    ingest.set_history(config.history);
    ingest.set_new_point_limit(config.broker.new_points_per_agent_per_min);
    ingest.set_max_clock_skew(config.ingest.max_clock_skew_ms);
    for (agent, epoch, seq) in store.event_high_water().await? {
        ingest.set_high_water(&agent, &epoch, ingest::EVENTS, seq.max(0) as u64);
    }
    for (agent, epoch, stream, seq) in store.stream_seqs().await? {
        if stream == ingest::TELEMETRY {
            ingest.set_high_water(&agent, &epoch, ingest::TELEMETRY, seq.max(0) as u64);
        }
    }

    let site = match &config.site_model {
        Some(path) => {
            Some(dcim_site::Site::load(path).map_err(|e| anyhow::anyhow!("site model: {e}"))?)
        }
        None => None,
    };
    let incidents = incident_store::load(store.as_ref()).await?;
    let mut facility = facility::Facility::new(site, incidents)
        .map_err(|e| anyhow::anyhow!("alarm rules: {e}"))?;
    facility.status_policy = config.status.policy();
    // A replica starts as a follower; it runs the engine once it leads (`cluster`).
    facility.set_passive(config.cluster.is_some());
    // Alarm states as last committed, before any ingest: acknowledged and shelved alarms stay
    // so, and a condition still present raises no second activation.
    if let Some(snap) = store::load_alarm_snapshot(store.as_ref()).await? {
        tracing::info!(
            alarms = snap.alarms.len(),
            seq = snap.seq,
            "restored the alarm engine state"
        );
        facility.restore(snap, now_ms());
    }

    let authority_state = api_authority::load(store.as_ref()).await?;
    if authority_state.is_active() {
        tracing::warn!(
            state = ?authority_state,
            "the site is under authority control (restored from the database)"
        );
    }

    let drill_state = drill::load_active(store.as_ref()).await?;
    if let Some(d) = &drill_state {
        tracing::warn!(drill = %d.id, "the site is in drill mode (restored from the database)");
    }

    let energy_meter = api_energy::load(store.as_ref()).await?;
    let schedule = api_windows::load(store.as_ref()).await?;

    let (live, _) = broadcast::channel(4096);
    let app = Arc::new(App {
        config: config.clone(),
        store,
        ingest: Mutex::new(ingest),
        live,
        metrics: metrics.clone(),
        influx,
        stopping: stop_rx.clone(),
        facility: tokio::sync::Mutex::new(facility),
        mqtt: std::sync::OnceLock::new(),
        notify: std::sync::OnceLock::new(),
        alarms_resync: std::sync::atomic::AtomicBool::new(false),
        unjournaled: std::sync::Mutex::new(Vec::new()),
        authority: tokio::sync::Mutex::new(authority_state),
        dc09: std::sync::OnceLock::new(),
        drill: std::sync::RwLock::new(drill_state),
        bulk_pause: tokio::sync::RwLock::new(()),
        energy: Mutex::new(energy_meter),
        windows: tokio::sync::Mutex::new(schedule),
        ops,
        health,
        reloadable: reload::Reloadable::new(&config),
        security: security::Security::new(&config),
        cluster: config
            .cluster
            .as_ref()
            .map(|c| Arc::new(cluster::Cluster::new(c.clone()))),
    });
    // `cluster::start` returns the lease, heartbeat and follower tasks, in this order: a
    // replica whose lease task died would lead on, or never lead, without anyone seeing it.
    for (name, t) in ["cluster.lease", "cluster.heartbeat", "cluster.follower"]
        .iter()
        .zip(cluster_tasks::start(app.clone(), stop_rx.clone()))
    {
        app.health.essential(*name, t.abort_handle());
        tasks.push(t);
    }
    let security_task = security::spawn(app.clone(), stop_rx.clone());
    app.health
        .essential("security", security_task.abort_handle());
    tasks.push(security_task);
    let ticker = spawn_ticker(app.clone(), stop_rx.clone());
    app.health.essential("ticker", ticker.abort_handle());
    tasks.push(ticker);
    let energy = api_energy::spawn(app.clone(), stop_rx.clone());
    // Without a site model the energy sampler has nothing to meter and ends at once: essential
    // only when there is a site (else /health would fail and the watchdog stop for good).
    if config.site_model.is_some() {
        app.health.essential("energy", energy.abort_handle());
    }
    tasks.push(energy);
    let windows = api_windows::spawn(app.clone(), stop_rx.clone());
    app.health
        .essential("maintenance-windows", windows.abort_handle());
    tasks.push(windows);
    if let Some((tx, t)) = notify_io::spawn(app.clone(), stop_rx.clone()).await? {
        let _ = app.notify.set(tx);
        for t in &t {
            app.health.essential("notify", t.abort_handle());
        }
        tasks.extend(t);
    }
    if let Some(dc) = &config.dc09 {
        let (d, t) = dc09::start(app.clone(), dc, stop_rx.clone()).await?;
        let _ = app.dc09.set(d);
        for t in &t {
            app.health.essential("dc09", t.abort_handle());
        }
        tasks.extend(t);
    }

    // Broker: embedded, or the external one by URL.
    let mut link = None;
    let mut mqtts_addr = None;
    let mut mqtt_internal_addr = None;
    let (mqtt_target, mqtt_addr) = match config.broker.mode {
        BrokerMode::Embedded => {
            let server_secret = auth::new_token("");
            let b = broker::start_embedded(app.clone(), &server_secret, stop_rx.clone()).await?;
            for t in &b.gate_tasks {
                app.health.essential("broker.gate", t.abort_handle());
            }
            tasks.extend(b.gate_tasks);
            link = Some(b.link);
            mqtts_addr = b.tls_addr;
            mqtt_internal_addr = Some(b.internal_addr);
            (
                mqtt::Target {
                    host: b.internal_addr.ip().to_string(),
                    port: b.internal_addr.port(),
                    tls_ca: None,
                    username: Some(config.broker.client_id.clone()),
                    password: Some(server_secret),
                    clean_session: true,
                },
                b.public_addr,
            )
        }
        BrokerMode::External => {
            let url = config.broker.url.as_deref().unwrap_or_default();
            let (tls, host, port) =
                config::parse_broker_url(url).with_context(|| format!("broker.url `{url}`"))?;
            let tls_ca = if tls {
                let path = config
                    .broker
                    .ca_file
                    .as_ref()
                    .context("broker.ca_file is required for mqtts://")?;
                Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
            } else {
                None
            };
            let password = config.broker.password.clone().or_else(|| {
                config
                    .broker
                    .password_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok())
            });
            (
                mqtt::Target {
                    host,
                    port,
                    tls_ca,
                    username: config.broker.username.clone(),
                    password,
                    clean_session: false,
                },
                None,
            )
        }
    };
    let embedded = link.is_some();
    let ingest_tasks = mqtt::spawn(app.clone(), mqtt_target, link, stop_rx.clone());
    // `mqtt::spawn` returns its tasks in this order (the link reader only when embedded).
    let names: &[&str] = if embedded {
        &[
            "ingest.link",
            "ingest.client",
            "ingest.decoder",
            "ingest.bulk",
            "ingest.priority",
            "ingest.retry",
            "ingest.marks",
        ]
    } else {
        &[
            "ingest.client",
            "ingest.decoder",
            "ingest.bulk",
            "ingest.priority",
            "ingest.retry",
            "ingest.marks",
        ]
    };
    for (i, t) in ingest_tasks.iter().enumerate() {
        let name = names.get(i).copied().unwrap_or("ingest");
        app.health.essential(name, t.abort_handle());
    }
    tasks.extend(ingest_tasks);

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let router = api::router(app.clone());
    let metrics_addr = match config.metrics.listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics.listen {addr}"))?;
            let bound = l.local_addr()?;
            let mut s = stop_rx.clone();
            let metrics_router = api::metrics_router(app.clone());
            let t = tokio::spawn(async move {
                let r = axum::serve(l, metrics_router)
                    .with_graceful_shutdown(async move { crate::stopped(&mut s).await })
                    .await;
                if let Err(e) = r {
                    tracing::error!("metrics listener: {e}");
                }
            });
            app.health.essential("metrics.http", t.abort_handle());
            tasks.push(t);
            Some(bound)
        }
        None => None,
    };
    let (router, tls_config) = match &http_tls {
        None => (router, None),
        Some((tls, hsts_max_age_s)) => {
            let router = match *hsts_max_age_s {
                0 => router,
                age => {
                    let hsts = axum::http::HeaderValue::from_str(&tls::hsts_value(age))?;
                    router.layer(axum::middleware::map_response(
                        move |mut r: axum::response::Response| {
                            let hsts = hsts.clone();
                            async move {
                                r.headers_mut()
                                    .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, hsts);
                                r
                            }
                        },
                    ))
                }
            };
            (router, Some(tls.clone()))
        }
    };
    // Our own accept loop: connection limits, header/request/idle timeouts, the Host check.
    let http_task = tokio::spawn(http_limits::serve(
        listener,
        tls_config,
        router,
        app.clone(),
        stop_rx.clone(),
    ));
    app.health.essential("http", http_task.abort_handle());
    tasks.push(http_task);
    tasks.push(tokio::spawn(health::supervise(
        app.clone(),
        dcim_service::Notifier::from_env(),
        stop_rx.clone(),
    )));
    app.health
        .ready_ms
        .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    warn_descriptor_limit(&config);
    tracing::info!(%http_addr, https = http_tls.is_some(), mqtt = ?mqtt_addr, mqtts = ?mqtts_addr, metrics = ?metrics_addr, data_dir = %config.data_dir.display(), "dcim-server started");
    let store = app.store.clone();
    Ok(Server {
        app,
        http_addr,
        mqtt_addr,
        mqtts_addr,
        mqtt_internal_addr,
        metrics_addr,
        stop,
        tasks,
        store,
        _data_lock: data_lock,
    })
}

/// Warns when the process's open-file limit is below what the connection limits can use
/// (`http.max_connections`, three descriptors per MQTT connection at the gate, and room for
/// the database, the broker and the time-series writer): at the usual 1,024 the console,
/// sign-in and the broker gate stop answering once it is reached. The systemd unit sets
/// `LimitNOFILE`.
fn warn_descriptor_limit(config: &Config) {
    let need = config.http.max_connections
        + match config.broker.mode {
            BrokerMode::Embedded => 3 * config.broker.max_connections,
            BrokerMode::External => 0,
        }
        + 256;
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        });
    if let Some(soft) = soft
        && soft < need
    {
        tracing::warn!(
            soft_limit = soft,
            needed = need,
            "the open-file limit is below what the connection limits allow: raise it (systemd: LimitNOFILE={}) or lower http.max_connections / broker.max_connections",
            need.next_power_of_two().max(65536)
        );
    }
}

/// Runs the engines' timers once a second: redundancy re-evaluation, alarm delays and shelf
/// expiry, incident escalation.
fn spawn_ticker(app: Arc<App>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                _ = interval.tick() => {}
            }
            app.health.beat_ticker();
            app.check_disk().await;
            // The evaluation, the costly part, runs without the facility lock (alarms and
            // API requests do not wait for it).
            let now = now_ms();
            let inputs = app.facility.lock().await.tick_inputs(now);
            let evaluated = match inputs {
                Some((site, states)) => tokio::task::spawn_blocking(move || {
                    let ev = dcim_site::evaluate(&site, &states);
                    (states, ev)
                })
                .await
                .ok(),
                None => None,
            };
            let mut f = app.facility.lock().await;
            let changes = f.tick_with(now, evaluated);
            if let Err(e) = app.commit_changes(&f, &changes, None).await {
                app.store_write_failed("committing alarm changes", e.as_ref());
                tracing::error!("committing alarm changes: {e:#}");
            }
            for c in &changes.redundancy {
                app.publish_live("redundancy", c);
            }
        }
    })
}

/// Starts the server, waits for `shutdown`, then stops it.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = start(config).await?;
    let notifier = dcim_service::Notifier::from_env();
    notifier.ready(&format!("serving HTTP on {}", server.http_addr));
    let ended = server.run_until(shutdown, &notifier).await;
    notifier.stopping();
    tracing::info!("shutting down");
    server.shutdown().await;
    match ended {
        Some(tasks) => anyhow::bail!(
            "essential tasks ended while the server ran: {}",
            tasks.join(", ")
        ),
        None => Ok(()),
    }
}

impl Server {
    /// Serves until `shutdown` (then `None`), reloading on SIGHUP, or until an essential task
    /// ends on its own (then their names): a server without its ingest, ticker or HTTP listener
    /// must not stay up looking alive, so `main` stops it and exits with a failure status (the
    /// service manager restarts it). `/health` names the task in the meantime.
    pub async fn run_until(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
        notifier: &dcim_service::Notifier,
    ) -> Option<Vec<String>> {
        tokio::pin!(shutdown);
        let mut check = tokio::time::interval(std::time::Duration::from_millis(500));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let reload = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let reload = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = &mut shutdown => return None,
                Some(()) = reload => reload::on_sighup(&self.app, notifier).await,
                _ = check.tick() => {
                    let (_, ended) = self.app.health.ended_tasks();
                    if !ended.is_empty() {
                        tracing::error!(tasks = %ended.join(", "), "essential tasks ended while the server runs: stopping with a failure status so that the service manager restarts it");
                        return Some(ended);
                    }
                }
            }
        }
    }
}
