//! The edge agent: reads facility devices, spools every event and sample to disk and forwards
//! them to one or two MQTT brokers (see `ARCHITECTURE.md`).
//!
//! - [`config`]: the TOML configuration file (the bottom layer, one file per section);
//! - the time comes from a [`dcim_clock::Clock`] in [`ingest::Shared`], passed to the tasks (a
//!   manual one or tokio's paused time in tests); no module reads the system clocks itself;
//! - [`ingest`]: from drivers into the spool (telemetry batching, events);
//! - [`uplink`]: one task per broker publishing the spool, PUBACK-driven acknowledgement;
//! - [`devices`]: drivers (MQTT devices, a signal generator);
//! - [`fire`]: local fire logic of racks without a controller;
//! - [`controller`]: fire events of racks with their own controller, forwarded over DC-09;
//! - [`commands`]: answers to `cmd/{device}`;
//! - [`supervisor`]: the agent's tasks under watch (one ending early stops the agent with a
//!   failure status);
//! - [`test_mode`]: drills commanded by the center (DC-09 test codes, `test` flags);
//! - [`payload`]: spool records and wire payloads.
//!
//! Layers, bottom up (a module imports only modules of the layers below it):
//! 1. [`config`]: the configuration types, importing nothing of the crate;
//! 2. pure rules: [`payload`], [`test_mode`], [`disk_full`], [`commands`], [`supervisor`];
//! 3. [`ingest`] (drivers into the spool) and [`fire`] (local fire logic);
//! 4. I/O tasks: [`uplink`], [`devices`], [`controller`], drills;
//! 5. [`Agent`] here, which starts and watches them.

pub mod commands;
pub mod config;
pub mod controller;
pub mod devices;
pub mod disk_full;
mod drill;
pub mod fire;
pub mod ingest;
pub mod payload;
pub mod supervisor;
pub mod test_mode;
pub mod uplink;

/// The SNMP parts of the configuration, at their former path.
pub use config::snmp as snmp_config;

use config::Config;
use dcim_clock::Clock;
use dcim_spool::{Spool, SpoolConfig};
use ingest::{Ingest, Shared};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};
use uplink::LinkStatus;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Spool(#[from] dcim_spool::SpoolError),
    #[error("[dc09] link configuration: {0}")]
    Dc09(String),
    #[error("device `{device}`: {message}")]
    Device { device: String, message: String },
}

/// Everything the agent runs, built from a configuration; [`Agent::run`] drives it.
pub struct Agent {
    cfg: Config,
    shared: Arc<Shared>,
    ingest: Arc<Ingest>,
    links: Vec<Arc<LinkStatus>>,
    devices: Vec<devices::Driver>,
    dc09: Option<dc09_link::LinkConfig>,
}

impl Agent {
    /// Open the spool (recovering it), load the device profiles; the agent runs on the system
    /// clock.
    pub fn start(cfg: Config) -> Result<Agent, StartError> {
        Agent::start_with_clock(cfg, Clock::system())
    }

    /// [`Agent::start`] on `clock` (tokio's paused time or a manual clock in tests).
    pub fn start_with_clock(cfg: Config, clock: Clock) -> Result<Agent, StartError> {
        let mut sc = SpoolConfig::new(&cfg.spool.dir);
        sc.max_bytes = cfg.spool.max_bytes;
        sc.segment_bytes = cfg.spool.segment_bytes;
        sc.event_fsync = cfg.spool.event_fsync;
        sc.telemetry_fsync = cfg.spool.telemetry_fsync;
        sc.reserve_bytes = cfg.spool.reserve_bytes;
        sc.consumers = cfg.brokers.iter().map(|b| b.name.clone()).collect();
        // Publish telemetry as soon as it is written; its sequence numbers are protected by
        // the spool's durable reservation (events still wait for their fsync).
        sc.telemetry_visible_before_sync = true;
        let (spool, recovery) = Spool::open(sc)?;
        for (path, bytes, why) in &recovery.truncated {
            warn!(path = %path.display(), bytes, reason = why, "spool recovery cut a damaged tail");
        }
        let st = spool.stats();
        info!(
            pending_events = st.pending[0],
            pending_batches = st.pending[1],
            next_event_seq = st.next_seq[0],
            next_telemetry_seq = st.next_seq[1],
            thinned_samples = st.thinned_samples,
            "spool ready"
        );
        let device_ids = cfg.devices.iter().map(|d| d.id.clone()).collect();
        let shared = Shared::with_clock(
            cfg.site.clone(),
            cfg.agent.clone(),
            device_ids,
            spool,
            clock,
        );
        shared.set_test_mode_max(cfg.test_mode.max);
        let ingest = Ingest::new(shared.clone(), cfg.batch.max_samples, cfg.batch.max_delay);
        ingest.set_fast_points(fast_points(&cfg));
        let mut drivers = Vec::new();
        for d in &cfg.devices {
            let drv = devices::prepare(d, shared.clock.now_ms()).map_err(|message| {
                StartError::Device {
                    device: d.id.clone(),
                    message,
                }
            })?;
            drivers.push(drv);
        }
        let drivers = devices::group_lines(drivers);
        let dc09 = match &cfg.dc09 {
            None => None,
            Some(d) => Some(
                dc09_link::LinkConfig::from_file(&d.link_config)
                    .map_err(|e| StartError::Dc09(e.to_string()))?,
            ),
        };
        let links = cfg
            .brokers
            .iter()
            .map(|b| {
                Arc::new(LinkStatus {
                    name: b.name.clone(),
                    ..Default::default()
                })
            })
            .collect();
        Ok(Agent {
            cfg,
            shared,
            ingest,
            links,
            devices: drivers,
            dc09,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Where drivers hand samples and events (for tests that play the devices).
    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }

    /// Run until `shutdown` turns true, then flush the spool and close the broker links. Every
    /// task it spawns is essential: one that ends before (a panic, an error it cannot get past)
    /// stops the agent the same orderly way and is returned as [`Stopped::TaskEnded`], so that
    /// `main` exits with a failure status and the service manager restarts it.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Stopped {
        let Agent {
            cfg,
            shared,
            ingest,
            links,
            devices,
            dc09,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut device_tasks = supervisor::Supervisor::default();
        spawn_drivers(&cfg, &ingest, devices, &mut device_tasks, &stop_rx);
        let dc09 = start_dc09(&cfg, dc09, &shared.clock).await;
        spawn_controllers(&cfg, &shared, dc09.as_ref(), &mut device_tasks, &stop_rx);
        if let Some(rx) = shared.take_test_changes() {
            device_tasks.spawn(
                "drills",
                drill::run(
                    ingest.clone(),
                    cfg.test_mode.state_file.clone(),
                    dc09.clone(),
                    rx,
                    stop_rx.clone(),
                ),
            );
        }
        spawn_fire_logic(&cfg, &ingest, &dc09, &mut device_tasks, &stop_rx);
        let (link_stop_tx, link_stop_rx) = watch::channel(false);
        let mut link_tasks = supervisor::Supervisor::default();
        for (b, status) in cfg.brokers.iter().zip(&links) {
            link_tasks.spawn(
                format!("broker link {}", b.name),
                uplink::run(
                    shared.clone(),
                    b.clone(),
                    status.clone(),
                    cfg.health_interval,
                    link_stop_rx.clone(),
                ),
            );
        }
        let running = Running {
            cfg: &cfg,
            shared: &shared,
            ingest: &ingest,
            links: &links,
        };
        let notifier = dcim_service::Notifier::from_env();
        let ended = running
            .pump(&notifier, shutdown, &mut device_tasks, &mut link_tasks)
            .await;
        if let Some(t) = &ended {
            // No more watchdog pings from here: a shutdown that hangs is ended by systemd.
            error!(task = %t, "an essential task ended while the agent runs: stopping with a failure status so that the service manager restarts the agent");
        }
        notifier.stopping();
        running
            .stop(
                stop_tx,
                device_tasks,
                dc09.as_ref(),
                link_stop_tx,
                link_tasks,
            )
            .await;
        log_health(&shared, &links);
        match ended {
            Some(t) => {
                error!(task = %t, "stopped after an essential task ended");
                Stopped::TaskEnded(t)
            }
            None => {
                info!("stopped");
                Stopped::Asked
            }
        }
    }
}

/// The device drivers, one task each, and the SNMP trap receiver routing traps to them.
fn spawn_drivers(
    cfg: &Config,
    ingest: &Arc<Ingest>,
    mut devices: Vec<devices::Driver>,
    tasks: &mut supervisor::Supervisor,
    stop_rx: &watch::Receiver<bool>,
) {
    let mut traps = devices::snmp::TrapRouter::default();
    if cfg.snmp_traps.is_some() {
        for d in devices.iter_mut() {
            if let devices::Driver::Snmp(s) = d {
                traps.register(s);
            }
        }
    }
    if let Some(settings) = cfg.snmp_traps.clone() {
        tasks.spawn(
            "SNMP trap receiver",
            devices::snmp::receive_traps(settings, traps, stop_rx.clone()),
        );
    }
    for drv in devices {
        tasks.spawn(
            format!("driver {}", drv.name()),
            devices::run(ingest.clone(), drv, stop_rx.clone()),
        );
    }
}

/// The DC-09 link to the fire authority, when configured; a link that cannot start is logged
/// loudly (fire events would not reach the authority) and the agent runs on without it.
async fn start_dc09(
    cfg: &Config,
    link: Option<dc09_link::LinkConfig>,
    clock: &Clock,
) -> Option<dc09_link::Handle> {
    match (&cfg.dc09, link) {
        (Some(d), Some(lc)) => {
            match dc09_link::Transmitter::start_with_clock(lc, &d.outbox_dir, 0, clock.clone())
                .await
            {
                Ok(h) => Some(h),
                Err(e) => {
                    error!(error = %e, "DC-09 link cannot start: fire events are NOT forwarded to the fire authority");
                    None
                }
            }
        }
        _ => None,
    }
}

/// One task per rack controller, forwarding its fire events over the DC-09 link.
fn spawn_controllers(
    cfg: &Config,
    shared: &Arc<Shared>,
    dc09: Option<&dc09_link::Handle>,
    tasks: &mut supervisor::Supervisor,
    stop_rx: &watch::Receiver<bool>,
) {
    match dc09 {
        Some(link) => {
            for c in &cfg.controllers {
                tasks.spawn(
                    format!("rack controller {}", c.device),
                    controller::run(
                        shared.agent.clone(),
                        shared.clock.clone(),
                        c.clone(),
                        link.clone(),
                        stop_rx.clone(),
                    ),
                );
            }
        }
        None if !cfg.controllers.is_empty() => error!(
            "DC-09 link not running: fire events of rack controllers are NOT forwarded to the fire authority"
        ),
        None => {}
    }
}

/// The local fire logic, one task per rack without a controller of its own.
fn spawn_fire_logic(
    cfg: &Config,
    ingest: &Arc<Ingest>,
    dc09: &Option<dc09_link::Handle>,
    tasks: &mut supervisor::Supervisor,
    stop_rx: &watch::Receiver<bool>,
) {
    for rack in &cfg.racks {
        tasks.spawn(
            format!("fire logic of rack {}", rack.id),
            fire::run(
                ingest.clone(),
                ingest.latest().clone(),
                rack.clone(),
                dc09.clone(),
                stop_rx.clone(),
            ),
        );
    }
}

/// What the agent's own loop works on while the tasks run.
struct Running<'a> {
    cfg: &'a Config,
    shared: &'a Arc<Shared>,
    ingest: &'a Arc<Ingest>,
    links: &'a [Arc<LinkStatus>],
}

impl Running<'_> {
    /// Stops the drivers, flushes ingest into the spool, closes the DC-09 link, then the broker
    /// links (which publish what the flush added), and flushes the spool.
    async fn stop(
        &self,
        stop_tx: watch::Sender<bool>,
        mut device_tasks: supervisor::Supervisor,
        dc09: Option<&dc09_link::Handle>,
        link_stop_tx: watch::Sender<bool>,
        mut link_tasks: supervisor::Supervisor,
    ) {
        info!("shutting down: stopping drivers, flushing the spool");
        let _ = stop_tx.send(true);
        for t in device_tasks.join_all().await {
            error!(task = %t, "task panicked while stopping");
        }
        if let Err(e) = self.ingest.flush() {
            error!(error = %e, "final spool flush failed");
        }
        if let Some(h) = dc09 {
            h.shutdown().await;
        }
        let _ = link_stop_tx.send(true);
        for t in link_tasks.join_all().await {
            error!(task = %t, "task panicked while stopping");
        }
        if let Err(e) = self.shared.with_spool(|s| s.flush()) {
            error!(error = %e, "final spool flush failed");
        }
    }

    /// Moves ingest into the spool, watches the brokers' lag and logs health until `shutdown`
    /// or until an essential task ends (returned).
    async fn pump(
        &self,
        notifier: &dcim_service::Notifier,
        mut shutdown: watch::Receiver<bool>,
        device_tasks: &mut supervisor::Supervisor,
        link_tasks: &mut supervisor::Supervisor,
    ) -> Option<supervisor::EndedTask> {
        let (cfg, shared) = (self.cfg, self.shared);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut urgent = tokio::time::interval(ingest::URGENT_FLUSH);
        urgent.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = tokio::time::interval(cfg.health_interval);
        health.tick().await;
        // systemd: ready once the drivers and links run; the watchdog is pinged from this loop
        // (the one that moves ingest into the spool), never from a timer of its own, so a
        // stuck loop stops the pings and systemd restarts the agent.
        let mut watchdog = dcim_service::Watchdog::from_env(notifier);
        notifier.ready(&format!(
            "site {} agent {}: {} devices, {} brokers",
            cfg.site,
            cfg.agent,
            cfg.devices.len(),
            cfg.brokers.len()
        ));
        // The brokers' lag limits (a dead site's broker is detached while the other flows).
        let mut lag = tokio::time::interval(Duration::from_secs(1));
        lag.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = urgent.tick() => self.ingest.flush_urgent(),
                _ = tick.tick() => {
                    self.ingest.tick();
                    if let Some(w) = &mut watchdog {
                        w.ping(std::time::Instant::now());
                    }
                }
                _ = lag.tick() => {
                    if uplink::lag::supervise(shared, &cfg.brokers, self.links, shared.clock.now_ms()) {
                        // The retained state shows the detached brokers at once.
                        shared.state_changed.send_modify(|n| *n += 1);
                    }
                }
                _ = health.tick() => log_health(shared, self.links),
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return None },
                t = device_tasks.ended() => return Some(t),
                t = link_tasks.ended() => return Some(t),
            }
        }
    }
}

/// How [`Agent::run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown signal: a clean stop.
    Asked,
    /// An essential task ended on its own (see [`supervisor`]): the agent stopped itself, and
    /// its process must exit with a failure status.
    TaskEnded(supervisor::EndedTask),
}

/// The `fast` poll-class points of every device with a profile (profiles were checked by
/// `devices::prepare` already; one that cannot be read contributes nothing).
fn fast_points(cfg: &Config) -> ingest::FastPoints {
    let mut out = ingest::FastPoints::new();
    for d in &cfg.devices {
        let Some(path) = &d.profile else { continue };
        let Ok(profile) = dcim_profiles::load_file(path) else {
            continue;
        };
        let fast: std::collections::HashSet<String> = profile
            .points
            .iter()
            .filter(|p| p.poll == dcim_profiles::PollClass::Fast)
            .map(|p| p.id.clone())
            .collect();
        if !fast.is_empty() {
            out.insert(d.id.clone(), fast);
        }
    }
    out
}

fn log_health(shared: &Shared, links: &[Arc<LinkStatus>]) {
    let st = shared.with_spool(|s| s.stats());
    let now = shared.clock.now_ms();
    let brokers: Vec<String> = links
        .iter()
        .map(|l| {
            let (lag, detached, detaches) = shared.with_spool(|s| {
                (
                    s.lag(&l.name, now),
                    s.is_detached(&l.name),
                    s.detach_count(&l.name),
                )
            });
            format!(
                "{}:{}:published={}:acked_event_seq={}:acked_batch_seq={}:lag_bytes={}:stuck_s={}{}:detaches={}:missed_events={}:missed_batches={}",
                l.name,
                if l.connected.load(Ordering::Relaxed) {
                    "up"
                } else {
                    "down"
                },
                l.published.load(Ordering::Relaxed),
                l.acked_events.load(Ordering::Relaxed),
                l.acked_batches.load(Ordering::Relaxed),
                lag.bytes,
                lag.stuck_ms / 1000,
                if detached { ":DETACHED" } else { "" },
                detaches,
                lag.missed[0],
                lag.missed[1],
            )
        })
        .collect();
    info!(
        pending_events = st.pending[0],
        pending_batches = st.pending[1],
        spool_bytes = st.bytes,
        spool_max_bytes = st.max_bytes,
        thinned_samples = st.thinned_samples,
        refused_batches = st.refused_batches,
        corrupt_skipped = st.corrupt_skipped,
        events_over_budget = st.events_over_budget,
        brokers = %brokers.join(" "),
        "health"
    );
    if st.events_over_budget {
        error!(
            "SPOOL OVER BUDGET WITH EVENTS ALONE: telemetry is refused until the center acknowledges events"
        );
    }
}
