//! Central DCIM server: MQTT ingest, storage, authentication, REST/SSE API and the time-series
//! writer. [`start`] starts everything and returns a [`Server`] handle; [`run`] starts and stops
//! it around a shutdown future (that is what `main` and a future `demo` mode call).

pub mod api;
pub mod api_authority;
pub mod api_console;
pub mod api_drill;
pub mod api_facility;
pub mod auth;
pub mod authority;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod console;
pub mod dc09;
pub mod demo;
pub mod drill;
pub mod facility;
pub mod fire_view;
pub mod influx;
pub mod ingest;
pub mod leader;
pub mod metrics;
pub mod mosquitto;
pub mod mqtt;
pub mod notify_io;
pub mod store;
pub mod tls;

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
    /// Multi-site (`[cluster]`): this server is one replica; only the leader runs the work
    /// that must happen once (see `cluster`, `App::leader_fence`).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl App {
    pub fn publish_live<T: serde::Serialize>(&self, event: &'static str, data: &T) {
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
            batch.docs.push((
                "incidents".into(),
                store::DocRecord {
                    id: "state".into(),
                    updated_ms: now,
                    body: serde_json::to_value(&f.incidents)?,
                },
            ));
        }
        if let Some((actor, action, target, detail)) = &audit {
            batch.audit.push((
                actor.to_string(),
                action.to_string(),
                target.to_string(),
                detail.clone(),
            ));
        }
        let ids = match self.store.commit_batch(&batch).await {
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
        let was_full = self.metrics.store_disk_full.swap(disk_full as i64, Relaxed) == 1;
        if disk_full && !was_full {
            tracing::error!(
                "disk full: the database {} cannot be written ({what}: {e}); nothing new is \
                 acknowledged until it is committed, retrying",
                store::db_path(&self.config.data_dir).display()
            );
        }
        *self.metrics.store_error.lock().expect("store status lock") = Some(if disk_full {
            "disk full"
        } else {
            "write failed"
        });
    }

    /// Clears what [`App::store_write_failed`] recorded, after a successful write.
    pub fn store_write_ok(&self) {
        let mut status = self.metrics.store_error.lock().expect("store status lock");
        if let Some(was) = status.take() {
            self.metrics
                .store_disk_full
                .store(0, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                "the database {} is writable again (it was: {was})",
                store::db_path(&self.config.data_dir).display()
            );
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
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
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
/// admin (password from `DCIM_ADMIN_PASSWORD`, or generated and logged once).
async fn bootstrap_users(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
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
            Ok(p) if !p.is_empty() => (p, false),
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
            tracing::warn!(
                "created bootstrap admin `{name}` with generated password `{pw}` (shown once; change it or set DCIM_ADMIN_PASSWORD)"
            );
        } else {
            tracing::info!(
                "created bootstrap admin `{name}` with the password from DCIM_ADMIN_PASSWORD"
            );
        }
    }
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
    let store = store::open(&config).await?;
    bootstrap_users(&config, store.as_ref()).await?;
    if config.agents.is_empty() {
        tracing::warn!(
            "no [[agents]] configured: any client with the server's broker credentials is trusted and topic ACLs are not enforced"
        );
    }

    let (stop, stop_rx) = watch::channel(false);
    let metrics = Arc::new(metrics::Metrics::default());
    let mut tasks = Vec::new();

    let influx = match &config.influx {
        Some(ic) => {
            let (handle, task) = influx::spawn(ic.clone(), metrics.clone(), stop_rx.clone())?;
            tasks.push(task);
            Some(handle)
        }
        None => None,
    };

    let mut ingest = ingest::Ingest::new(&config.agents);
    ingest.set_history(config.history);
    for (agent, seq) in store.event_high_water().await? {
        ingest.set_high_water(&agent, ingest::EVENTS, seq.max(0) as u64);
    }
    for (agent, stream, seq) in store.stream_seqs().await? {
        if stream == ingest::TELEMETRY {
            ingest.set_high_water(&agent, ingest::TELEMETRY, seq.max(0) as u64);
        }
    }

    let site = match &config.site_model {
        Some(path) => {
            Some(dcim_site::Site::load(path).map_err(|e| anyhow::anyhow!("site model: {e}"))?)
        }
        None => None,
    };
    let incidents = match store
        .list_docs("incidents")
        .await?
        .into_iter()
        .find(|d| d.id == "state")
    {
        Some(d) => Some(serde_json::from_value(d.body).context("stored incidents do not decode")?),
        None => None,
    };
    let mut facility = facility::Facility::new(site, incidents)
        .map_err(|e| anyhow::anyhow!("alarm rules: {e}"))?;
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
        cluster: config
            .cluster
            .as_ref()
            .map(|c| Arc::new(cluster::Cluster::new(c.clone()))),
    });
    tasks.extend(cluster::start(app.clone(), stop_rx.clone()));
    tasks.push(spawn_ticker(app.clone(), stop_rx.clone()));
    if let Some((tx, t)) = notify_io::spawn(app.clone(), stop_rx.clone()).await? {
        let _ = app.notify.set(tx);
        tasks.extend(t);
    }
    if let Some(dc) = &config.dc09 {
        let (d, t) = dc09::start(app.clone(), dc, stop_rx.clone()).await?;
        let _ = app.dc09.set(d);
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
    tasks.extend(mqtt::spawn(app.clone(), mqtt_target, link, stop_rx.clone()));

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let router = api::router(app.clone());
    let mut http_stop = stop_rx.clone();
    let shutdown = async move {
        crate::stopped(&mut http_stop).await;
    };
    match &http_tls {
        None => tasks.push(tokio::spawn(async move {
            let r = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await;
            if let Err(e) = r {
                tracing::error!("http server: {e}");
            }
        })),
        Some((tls, hsts_max_age_s)) => {
            let listener = tls::TlsListener::new(listener, tls.clone(), stop_rx.clone())?;
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
            tasks.push(tokio::spawn(async move {
                let r = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await;
                if let Err(e) = r {
                    tracing::error!("https server: {e}");
                }
            }));
        }
    }
    tracing::info!(%http_addr, https = http_tls.is_some(), mqtt = ?mqtt_addr, mqtts = ?mqtts_addr, data_dir = %config.data_dir.display(), "dcim-server started");
    let store = app.store.clone();
    Ok(Server {
        app,
        http_addr,
        mqtt_addr,
        mqtts_addr,
        mqtt_internal_addr,
        stop,
        tasks,
        store,
    })
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
            let mut f = app.facility.lock().await;
            let changes = f.tick(now_ms());
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
    shutdown.await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
