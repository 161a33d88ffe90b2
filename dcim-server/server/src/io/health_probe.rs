//! The shell of `/health`: gathers the [`Readings`](crate::state::health::Readings) from the running
//! server, reports them (`crate::state::health::assess` is the pure judgement), and the supervisor
//! task that probes the store and watches the essential tasks.

use crate::app::App;
use crate::state::health::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Reads the running server.
pub fn readings(app: &App) -> Readings {
    let m = &app.metrics;
    let ops = &app.ops;
    let (tasks, ended_tasks) = app.health.ended_tasks();
    let r_now = app.now_ms();
    Readings {
        now_ms: r_now,
        ready_ms: app.health.ready_ms.load(Ordering::Relaxed),
        store_error: m
            .store_error
            .lock()
            .expect("store status lock")
            .map(str::to_string),
        store_probe_ok_ms: app.health.store_probe_ok_ms.load(Ordering::Relaxed),
        store_probe_error: app
            .health
            .store_probe_error
            .lock()
            .expect("probe lock")
            .clone(),
        disk_full: app.store.disk().map(|d| DiskFullReadings {
            full: d.is_full(),
            free_bytes: d.free(),
            reserve_bytes: d.reserve_held(),
        }),
        disk: disk_space(&app.config.data_dir),
        broker_connected: m.mqtt_connected.load(Ordering::Relaxed) == 1,
        broker_clients: m.broker_clients.load(Ordering::Relaxed),
        embedded_broker: app.config.broker.mode == crate::config::BrokerMode::Embedded,
        ingest_pending: ops.ingest_pending.load(Ordering::Relaxed) as u64,
        ingest_progress_ms: ops.ingest_progress_ms.load(Ordering::Relaxed),
        ingest_last_wait_ms: ops.ingest_last_wait_ms.load(Ordering::Relaxed),
        tasks,
        ended_tasks,
        ticker_beat_ms: app.health.ticker_beat_ms.load(Ordering::Relaxed),
        tsdb: app.intake.influx.as_ref().map(|_| TsdbReadings {
            buffer_bytes: ops.tsdb_buffer_bytes.load(Ordering::Relaxed),
            buffer_max_bytes: ops.tsdb_buffer_max_bytes.load(Ordering::Relaxed),
            batches: ops.tsdb_buffer_batches.load(Ordering::Relaxed),
            oldest_pending_ms: ops.tsdb_oldest_pending_ms.load(Ordering::Relaxed),
            dropped_lines: ops.tsdb_buffer_dropped_lines.load(Ordering::Relaxed)
                + m.influx_lines_dropped_total.load(Ordering::Relaxed),
            last_ok_ms: ops.tsdb_last_ok_ms.load(Ordering::Relaxed),
            last_error_ms: ops.tsdb_last_error_ms.load(Ordering::Relaxed),
        }),
        cluster: app.cluster.as_ref().map(|c| {
            let st = c.status();
            ClusterReadings {
                replica: st.replica.clone(),
                leading: c.fence().is_some(),
                leader: st.leader.as_ref().map(|l| l.replica.clone()),
                stale: c.stale(r_now),
            }
        }),
        // A multi-site follower has no transmitter (the leader's runs): no DC-09 check here.
        dc09: app.control.dc09.get().and_then(|d| d.link()).map(|link| {
            let s = link.stats().borrow().clone();
            Dc09Readings {
                pending: s.pending,
                rejected: s.rejected,
                paths: s.paths,
            }
        }),
    }
}

/// The `/health` document.
#[derive(Debug, serde::Serialize)]
pub struct HealthDoc {
    pub status: Level,
    pub version: &'static str,
    pub checks: std::collections::BTreeMap<&'static str, Check>,
    /// Kept from the first version of /health: the store's state at the top level (absent
    /// while it is fine): `disk full` during the disk-full episode, else why a write failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// With `store: "disk full"`: the free space and the reserve still held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve_bytes: Option<u64>,
    /// Kept from the multi-site `/health`: why a follower's view may be out of date (absent
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// The `/health` document and whether it is `failing` (then served with 503).
pub fn report(app: &App) -> (Level, HealthDoc) {
    let r = readings(app);
    let (level, checks) = assess(&r);
    let mut doc = HealthDoc {
        status: level,
        version: env!("CARGO_PKG_VERSION"),
        checks: checks.into_iter().collect(),
        store: None,
        free_bytes: None,
        reserve_bytes: None,
        cluster: None,
    };
    // The disk-full episode first, with the free space and the reserve still held.
    if let Some(d) = r.disk_full.filter(|d| d.full) {
        doc.store = Some("disk full".into());
        doc.free_bytes = Some(d.free_bytes);
        doc.reserve_bytes = Some(d.reserve_bytes);
    } else if let Some(why) = &r.store_error {
        doc.store = Some(why.clone());
    }
    if let Some(why) = r.cluster.as_ref().and_then(|c| c.stale.as_ref()) {
        doc.cluster = Some(why.clone());
    }
    (level, doc)
}

/// Runs until `stop`: probes the store, computes the report once a second, logs changes, keeps
/// systemd's status line current and pings its watchdog while nothing is failing.
pub async fn supervise(
    app: Arc<App>,
    notifier: dcim_service::Notifier,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut watchdog = dcim_service::Watchdog::from_env(&notifier);
    if let Some(w) = &watchdog {
        tracing::info!(period = ?w.period(), "systemd watchdog enabled: pinged while no health check is failing");
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(Level, Vec<String>)> = None;
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        if n.is_multiple_of(5) {
            probe_store(&app).await;
        }
        n += 1;
        let (level, checks) = assess(&readings(&app));
        let reasons: Vec<String> = checks
            .iter()
            .filter_map(|(name, c)| c.reason.as_ref().map(|r| format!("{name}: {r}")))
            .collect();
        if last.as_ref() != Some(&(level, reasons.clone())) {
            match level {
                Level::Ok => tracing::info!("health: ok"),
                Level::Degraded => tracing::warn!("health: degraded: {}", reasons.join("; ")),
                Level::Failing => tracing::error!("health: FAILING: {}", reasons.join("; ")),
            }
            notifier.status(&match level {
                Level::Ok => "ok".to_string(),
                _ => format!("{level:?}: {}", reasons.join("; ")).to_lowercase(),
            });
            last = Some((level, reasons));
        }
        if level != Level::Failing
            && let Some(w) = &mut watchdog
        {
            w.ping(std::time::Instant::now());
        }
    }
}

async fn probe_store(app: &App) {
    let r = tokio::time::timeout(Duration::from_secs(5), app.store.count_users()).await;
    let err = match r {
        Ok(Ok(_)) => {
            app.health
                .store_probe_ok_ms
                .store(app.now_ms(), Ordering::Relaxed);
            None
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 5 s".to_string()),
    };
    *app.health.store_probe_error.lock().expect("probe lock") = err;
}
