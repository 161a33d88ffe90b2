//! Central DCIM server: MQTT ingest, storage, authentication, REST/SSE API and the time-series
//! writer. [`start`] starts everything and returns a [`Server`] handle; [`run`] starts and stops
//! it around a shutdown future (what `main` runs: [`Server::run_until`] stops the server within a
//! second of an essential task ending, and `main` then exits with a failure status). The
//! one-process demo and the drill runner live in the `dcim-demo` crate (`dcim-server/demo`),
//! which calls [`start`] itself: this crate links no simulator and no edge agent.
//!
//! # Layers
//!
//! One folder per layer; each module imports only modules of a lower layer
//! (`python3 tests/arch/module_cycles.py` checks there is no cycle between the folders, nor
//! between the modules of one folder; CI runs it):
//!
//! 1. [`base`], leaves: `stop` (the stop signal; the time is `dcim_clock`), `leader`,
//!    `metrics`, `observe`, `disk`, `tls`, `console` (embedded files), `notify_templates`.
//! 2. [`config`] (every section type), then [`engine`], the pure engines and planners:
//!    `ingest`, `authority`, `dc09_plan`, `maint_windows`, `energy`, `fire_view`, `search`;
//!    the adapter over `dcim-site` and `dcim-alarms`, `facility`; `mosquitto` (ACL file for an
//!    external broker).
//! 3. [`storage`]: `store` (SQLite, PostgreSQL), `incident_store`, `backup`, `tsdb` (`line`,
//!    `buffer`, `writer`, `query`, `influx`), and the pure `export` and `drill_plan` over the
//!    store's records. Then [`state`]: `auth`, `conn_limits`, `stream_access`, `health`,
//!    `cluster` (this replica's view), `security`, `dc09_tx`, and the subsystem handles the
//!    [`App`] holds: `plant` (the facility and its engines), `control` (authority, windows,
//!    drill, DC-09 transmitter) and `intake` (ingest table, broker client, tsdb writer).
//! 4. [`app`]: [`App`], the shared state every shell receives (its docs give the lock order).
//! 5. [`io`], the shells: `broker` (rumqttd behind the ACL gate), `mqtt` (the two ingest
//!    lanes), `deferred`, `stream_report`, `cluster_hooks`, `security_io`, `health_probe`,
//!    `openmetrics`, `authority_io`, `windows_io`, `energy_io`, `dc09`, `notify_io`, `drill`,
//!    `reload`, `cluster_tasks` (lease, heartbeat, takeover).
//! 6. [`http`]: `api_base` (`RouteDoc`, errors, `authorize_route`), the `api_*` handlers
//!    (typed response bodies), `http_limits`, and `api` on top, whose `ROUTES` declares every
//!    route once and builds the router.
//!
//! The crate root only wires the layers together ([`start`], [`Server`]). The load generators
//! (`dcim-ingest-bench`, `dcim-memory-bench`, `dcim-scale-bench`, results in BENCHMARKS.md) are
//! binaries of `dcim-demo`.
//!
//! Invariant: a store method returns only after commit, and nothing is acknowledged to anyone
//! (HTTP response, SSE event, MQTT PUBACK) before that. With PostgreSQL under Patroni's
//! synchronous mode, a commit is on both sites.

pub mod app;
pub mod base;
pub mod config;
pub mod engine;
pub mod http;
pub mod io;
pub mod state;
pub mod storage;
pub use app::{App, LiveMsg};
pub use base::stop::stopped;
pub use storage::tsdb::influx;

use anyhow::Context;
use config::{BrokerMode, Config, Role};
use dcim_clock::Clock;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use storage::store::{Store, UserRecord};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

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
        io::mqtt::save_marks(&self.app).await;
        self.store.close().await;
    }
}

/// Creates the users listed in the config and, when there is no user at all, the bootstrap
/// admin (password from `DCIM_ADMIN_PASSWORD`, or generated and shown once: on the terminal,
/// or in `<data_dir>/initial-admin-password` with mode 0600; never in the log). The users and
/// their audit rows are stamped `now_ms`.
pub(crate) async fn bootstrap_users(
    config: &Config,
    store: &dyn Store,
    now_ms: i64,
) -> anyhow::Result<()> {
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
        state::auth::password::check_new(&pw).map_err(|e| {
            anyhow::anyhow!("user `{}`: the password in {}: {e}", u.name, u.password_env)
        })?;
        create_user(config, store, &u.name, u.role, &pw, "config", now_ms).await?;
        tracing::info!(user = %u.name, role = u.role.as_str(), "created user from config");
    }
    if store.count_users().await? == 0 {
        let name = &config.auth.bootstrap_admin;
        let (pw, generated) = match std::env::var("DCIM_ADMIN_PASSWORD") {
            Ok(p) if !p.is_empty() => {
                state::auth::password::check_new(&p)
                    .map_err(|e| anyhow::anyhow!("DCIM_ADMIN_PASSWORD: {e}"))?;
                (p, false)
            }
            _ => (state::auth::new_token("")[..24].to_string(), true),
        };
        create_user(config, store, name, Role::Admin, &pw, "bootstrap", now_ms).await?;
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

/// Creates the user `name` with `role` and the password `pw` (hashed with the configured
/// argon2 cost), and audits it as created by the system `from` the config or the bootstrap;
/// both stamped `now_ms`.
async fn create_user(
    config: &Config,
    store: &dyn Store,
    name: &str,
    role: Role,
    pw: &str,
    from: &str,
    now_ms: i64,
) -> anyhow::Result<()> {
    let password_hash = state::auth::hash_password(
        pw,
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
    )
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    store
        .create_user(&UserRecord {
            name: name.to_owned(),
            role: role.as_str().into(),
            password_hash,
            created_ms: now_ms,
            disabled: false,
        })
        .await?;
    store
        .audit(
            now_ms,
            "system",
            "user.create",
            name,
            &serde_json::json!({"role": role, "from": from}),
        )
        .await?;
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
/// and the HTTP API, on the system clock. Returns once all listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    start_with_clock(config, Clock::system()).await
}

/// [`start`] on a given clock: the server's shells read the time from it (`App::now_ms`), so a
/// test can run them on tokio's paused time ([`Clock::tokio`]) or a manual clock. The store,
/// the time-series writer and the start-up steps take their time from it too.
pub async fn start_with_clock(mut config: Config, clock: Clock) -> anyhow::Result<Server> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // TLS files are read before anything else starts, so a bad file stops the start at once.
    let http_tls = http_tls(&mut config)?;
    // One server per data directory (and no `restore` under a running one).
    let data_lock = storage::backup::lock_data_dir(&config.data_dir)?;
    let store = storage::store::open(&config, clock.clone()).await?;
    bootstrap_users(&config, store.as_ref(), clock.now_ms()).await?;
    if config.agents.is_empty() {
        tracing::warn!(
            "no [[agents]] configured: any client with the server's broker credentials is trusted and topic ACLs are not enforced"
        );
    }

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let app = Arc::new(build_app(&config, clock, store, &stop_rx, &mut tasks).await?);
    spawn_shell_tasks(&app, &config, &stop_rx, &mut tasks).await?;
    let broker = connect_broker(&app, &config, &stop_rx, &mut tasks).await?;
    spawn_ingest(&app, broker.target, broker.link, &stop_rx, &mut tasks);

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let metrics_addr = match config.metrics.listen {
        Some(addr) => Some(spawn_metrics_listener(&app, addr, &stop_rx, &mut tasks).await?),
        None => None,
    };
    let (router, tls_config) = with_tls(http::api::router(app.clone()), http_tls.as_ref())?;
    // Our own accept loop: connection limits, header/request/idle timeouts, the Host check.
    let http_task = tokio::spawn(http::http_limits::serve(
        listener,
        tls_config,
        router,
        app.clone(),
        stop_rx.clone(),
    ));
    app.health.essential("http", http_task.abort_handle());
    tasks.push(http_task);
    tasks.push(tokio::spawn(io::health_probe::supervise(
        app.clone(),
        dcim_service::Notifier::from_env(),
        stop_rx.clone(),
    )));
    app.health
        .ready_ms
        .store(app.now_ms(), std::sync::atomic::Ordering::Relaxed);
    warn_descriptor_limit(&config);
    let mqtt_addr = broker.public_addr;
    let mqtts_addr = broker.tls_addr;
    tracing::info!(%http_addr, https = http_tls.is_some(), mqtt = ?mqtt_addr, mqtts = ?mqtts_addr, metrics = ?metrics_addr, data_dir = %config.data_dir.display(), "dcim-server started");
    let store = app.store.clone();
    Ok(Server {
        app,
        http_addr,
        mqtt_addr,
        mqtts_addr,
        mqtt_internal_addr: broker.internal_addr,
        metrics_addr,
        stop,
        tasks,
        store,
        _data_lock: data_lock,
    })
}

/// The HTTPS configuration and HSTS max-age of `[http.tls]`, read now so that a bad file stops
/// the start at once. Cookies set over HTTPS are never sent back over plain HTTP.
fn http_tls(config: &mut Config) -> anyhow::Result<Option<(Arc<rustls::ServerConfig>, u64)>> {
    match &config.http.tls {
        Some(t) => {
            // Cookies set over HTTPS are never sent back over plain HTTP.
            config.http.secure_cookies = true;
            let server_config = base::tls::server_config(t.files(), &[b"http/1.1"])
                .map_err(|e| anyhow::anyhow!("http.tls.{e}"))?;
            Ok(Some((server_config, t.hsts_max_age_s)))
        }
        None => Ok(None),
    }
}

/// Loads what the shared state starts from (the ingest's high-water marks, the facility and its
/// alarm snapshot, the authority and drill modes, the energy meter, the maintenance windows),
/// starts the time-series writer, and builds [`App`].
async fn build_app(
    config: &Config,
    clock: Clock,
    store: Arc<dyn Store>,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<App> {
    let metrics = Arc::new(base::metrics::Metrics::default());
    let ops = Arc::new(base::observe::Ops::with_clock(clock.clone()));
    let health = state::health::Health::default();
    let influx = match &config.influx {
        Some(ic) => {
            let (handle, t) = influx::spawn(
                ic.clone(),
                &config.data_dir,
                metrics.clone(),
                ops.clone(),
                clock.clone(),
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
    let ingest = load_ingest(config, store.as_ref()).await?;
    let facility = load_facility(config, store.as_ref(), clock.now_ms()).await?;

    let authority_state = io::authority_io::load(store.as_ref()).await?;
    if authority_state.is_active() {
        tracing::warn!(
            state = ?authority_state,
            "the site is under authority control (restored from the database)"
        );
    }

    let drill_state = io::drill::load_active(store.as_ref(), clock.now_ms()).await?;
    if let Some(d) = &drill_state {
        tracing::warn!(drill = %d.id, "the site is in drill mode (restored from the database)");
    }

    let energy_meter = io::energy_io::load(store.as_ref()).await?;
    let schedule = io::windows_io::load(store.as_ref()).await?;

    let (live, _) = broadcast::channel(4096);
    Ok(App {
        config: config.clone(),
        store,
        live,
        metrics,
        stopping: stop_rx.clone(),
        plant: state::plant::Plant::new(facility),
        control: state::control::Control::new(authority_state, schedule, drill_state),
        intake: state::intake::Intake::new(ingest, influx),
        energy: Mutex::new(energy_meter),
        ops,
        health,
        reloadable: app::Reloadable::new(config),
        security: state::security::Security::new(config),
        cluster: config
            .cluster
            .as_ref()
            .map(|c| Arc::new(state::cluster::Cluster::new(c.clone(), clock.clone()))),
        clock,
    })
}

/// The ingest with its limits and the high-water marks of the committed streams (a batch
/// already committed is a duplicate after a restart).
async fn load_ingest(config: &Config, store: &dyn Store) -> anyhow::Result<engine::ingest::Ingest> {
    let mut ingest = engine::ingest::Ingest::new(&config.agents);
    ingest.set_history(config.history);
    ingest.set_new_point_limit(config.broker.new_points_per_agent_per_min);
    ingest.set_max_clock_skew(config.ingest.max_clock_skew_ms);
    for (agent, epoch, seq) in store.event_high_water().await? {
        ingest.set_high_water(&agent, &epoch, engine::ingest::EVENTS, seq.max(0) as u64);
    }
    for (agent, epoch, stream, seq) in store.stream_seqs().await? {
        if stream == engine::ingest::TELEMETRY {
            ingest.set_high_water(&agent, &epoch, engine::ingest::TELEMETRY, seq.max(0) as u64);
        }
    }
    Ok(ingest)
}

/// The site model, the incidents and the alarm engine's last committed state.
async fn load_facility(
    config: &Config,
    store: &dyn Store,
    now_ms: i64,
) -> anyhow::Result<engine::facility::Facility> {
    let site = match &config.site_model {
        Some(path) => {
            Some(dcim_site::Site::load(path).map_err(|e| anyhow::anyhow!("site model: {e}"))?)
        }
        None => None,
    };
    let incidents = storage::incident_store::load(store).await?;
    let mut facility = engine::facility::Facility::new(site, incidents)
        .map_err(|e| anyhow::anyhow!("alarm rules: {e}"))?;
    facility.status_policy = config.status.policy();
    // A replica starts as a follower; it runs the engine once it leads (`cluster`).
    facility.set_passive(config.cluster.is_some());
    // Alarm states as last committed, before any ingest: acknowledged and shelved alarms stay
    // so, and a condition still present raises no second activation.
    if let Some(snap) = storage::store::load_alarm_snapshot(store).await? {
        tracing::info!(
            alarms = snap.alarms.len(),
            seq = snap.seq,
            "restored the alarm engine state"
        );
        facility.restore(snap, now_ms);
    }
    Ok(facility)
}

/// The essential shell tasks: cluster (lease, heartbeat, follower), security, the alarm
/// ticker, the energy sampler, maintenance windows, notifications and DC-09.
async fn spawn_shell_tasks(
    app: &Arc<App>,
    config: &Config,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    // `state::cluster::start` returns the lease, heartbeat and follower tasks, in this order: a
    // replica whose lease task died would lead on, or never lead, without anyone seeing it.
    for (name, t) in ["cluster.lease", "cluster.heartbeat", "cluster.follower"]
        .iter()
        .zip(io::cluster_tasks::start(app.clone(), stop_rx.clone()))
    {
        app.health.essential(*name, t.abort_handle());
        tasks.push(t);
    }
    let security_task = io::security_io::spawn(app.clone(), stop_rx.clone());
    app.health
        .essential("security", security_task.abort_handle());
    tasks.push(security_task);
    let ticker = spawn_ticker(app.clone(), stop_rx.clone());
    app.health.essential("ticker", ticker.abort_handle());
    tasks.push(ticker);
    let energy = io::energy_io::spawn(app.clone(), stop_rx.clone());
    // Without a site model the energy sampler has nothing to meter and ends at once: essential
    // only when there is a site (else /health would fail and the watchdog stop for good).
    if config.site_model.is_some() {
        app.health.essential("energy", energy.abort_handle());
    }
    tasks.push(energy);
    let windows = io::windows_io::spawn(app.clone(), stop_rx.clone());
    app.health
        .essential("maintenance-windows", windows.abort_handle());
    tasks.push(windows);
    if let Some((tx, t)) = io::notify_io::spawn(app.clone(), stop_rx.clone()).await? {
        let _ = app.plant.notify.set(tx);
        for t in &t {
            app.health.essential("notify", t.abort_handle());
        }
        tasks.extend(t);
    }
    if let Some(dc) = &config.dc09 {
        let (d, t) = io::dc09::start(app.clone(), dc, stop_rx.clone()).await?;
        let _ = app.control.dc09.set(d);
        for t in &t {
            app.health.essential("dc09", t.abort_handle());
        }
        tasks.extend(t);
    }
    Ok(())
}

/// Where the ingest reads from: the embedded broker's link, or the external broker.
struct BrokerEnds {
    target: io::mqtt::Target,
    link: Option<io::broker::IngestLink>,
    public_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    internal_addr: Option<SocketAddr>,
}

/// Broker: embedded (started here, with its gate tasks), or the external one by URL.
async fn connect_broker(
    app: &Arc<App>,
    config: &Config,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<BrokerEnds> {
    match config.broker.mode {
        BrokerMode::Embedded => {
            let server_secret = state::auth::new_token("");
            let b =
                io::broker::start_embedded(app.clone(), &server_secret, stop_rx.clone()).await?;
            for t in &b.gate_tasks {
                app.health.essential("broker.gate", t.abort_handle());
            }
            tasks.extend(b.gate_tasks);
            Ok(BrokerEnds {
                target: io::mqtt::Target {
                    host: b.internal_addr.ip().to_string(),
                    port: b.internal_addr.port(),
                    tls_ca: None,
                    username: Some(config.broker.client_id.clone()),
                    password: Some(server_secret),
                    clean_session: true,
                },
                link: Some(b.link),
                public_addr: b.public_addr,
                tls_addr: b.tls_addr,
                internal_addr: Some(b.internal_addr),
            })
        }
        BrokerMode::External => Ok(BrokerEnds {
            target: external_broker(config)?,
            link: None,
            public_addr: None,
            tls_addr: None,
            internal_addr: None,
        }),
    }
}

/// The external broker's address, CA and credentials, from `[broker]`.
fn external_broker(config: &Config) -> anyhow::Result<io::mqtt::Target> {
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
    Ok(io::mqtt::Target {
        host,
        port,
        tls_ca,
        username: config.broker.username.clone(),
        password,
        clean_session: false,
    })
}

/// The ingest tasks ([`io::mqtt::spawn`]), each essential under its own name.
fn spawn_ingest(
    app: &Arc<App>,
    target: io::mqtt::Target,
    link: Option<io::broker::IngestLink>,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    let embedded = link.is_some();
    let ingest_tasks = io::mqtt::spawn(app.clone(), target, link, stop_rx.clone());
    // `io::mqtt::spawn` returns its tasks in this order (the link reader only when embedded).
    const NAMES: [&str; 7] = [
        "ingest.link",
        "ingest.client",
        "ingest.decoder",
        "ingest.bulk",
        "ingest.priority",
        "ingest.retry",
        "ingest.marks",
    ];
    let names = if embedded { &NAMES[..] } else { &NAMES[1..] };
    for (i, t) in ingest_tasks.iter().enumerate() {
        let name = names.get(i).copied().unwrap_or("ingest");
        app.health.essential(name, t.abort_handle());
    }
    tasks.extend(ingest_tasks);
}

/// `[metrics] listen`: `/metrics` and `/health` without authentication, on its own listener.
async fn spawn_metrics_listener(
    app: &Arc<App>,
    addr: SocketAddr,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics.listen {addr}"))?;
    let bound = l.local_addr()?;
    let mut s = stop_rx.clone();
    let metrics_router = http::api::metrics_router(app.clone());
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
    Ok(bound)
}

/// The router with the HSTS header when serving HTTPS (`hsts_max_age_s` 0: none), and the TLS
/// configuration for the accept loop.
fn with_tls(
    router: axum::Router,
    http_tls: Option<&(Arc<rustls::ServerConfig>, u64)>,
) -> anyhow::Result<(axum::Router, Option<Arc<rustls::ServerConfig>>)> {
    let Some((tls, hsts_max_age_s)) = http_tls else {
        return Ok((router, None));
    };
    let router = match *hsts_max_age_s {
        0 => router,
        age => {
            let hsts = axum::http::HeaderValue::from_str(&base::tls::hsts_value(age))?;
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
    Ok((router, Some(tls.clone())))
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
            app.health.beat_ticker(app.now_ms());
            app.check_disk().await;
            // The evaluation, the costly part, runs without the facility lock (alarms and
            // API requests do not wait for it).
            let now = app.now_ms();
            let inputs = app.plant.facility.lock().await.tick_inputs(now);
            let evaluated = match inputs {
                Some((site, states)) => tokio::task::spawn_blocking(move || {
                    let ev = dcim_site::evaluate(&site, &states);
                    (states, ev)
                })
                .await
                .ok(),
                None => None,
            };
            let mut f = app.plant.facility.lock().await;
            let changes = f.tick_with(now, evaluated);
            // The replaced evaluation is freed off the tick and outside the lock.
            if let Some(retired) = f.take_retired() {
                tokio::task::spawn_blocking(move || drop(retired));
            }
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
                Some(()) = reload => io::reload::on_sighup(&self.app, notifier).await,
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
