//! The energy sampler: every [`SAMPLE_MS`] it computes facility and IT power from the latest
//! readings and feeds the meter ([`crate::engine::energy`], pure); once a minute (and when the server
//! stops) the hour buckets that changed are stored as `energy.hour` documents, so a restart
//! loses at most a minute of energy and the time the server was down is never guessed. The
//! routes are in `api_energy`.

use crate::app::App;
use crate::engine::energy::{self, EnergyBucket, EnergyMeter, Meter, PowerNow};
use crate::state::intake::Intake;
use crate::state::plant::Plant;
use crate::storage::store::{DocRecord, Store};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the power sums are observed.
pub const SAMPLE_MS: u64 = 10_000;
/// How often changed hour buckets are stored.
pub(crate) const FLUSH_MS: i64 = 60_000;
/// The document kind of stored hour buckets.
pub const DOC_KIND: &str = "energy.hour";

/// The stored hour buckets, as a meter to continue from.
pub async fn load(store: &dyn Store) -> anyhow::Result<EnergyMeter> {
    let docs = store.list_docs(DOC_KIND).await?;
    let mut hours = Vec::with_capacity(docs.len());
    for d in docs {
        match serde_json::from_value::<EnergyBucket>(d.body) {
            Ok(b) => hours.push(b),
            Err(e) => tracing::warn!(id = %d.id, "stored energy bucket does not decode: {e}"),
        }
    }
    Ok(EnergyMeter::restore(hours))
}

/// Stores the hour buckets that changed (the sampler does this once a minute).
pub async fn flush(app: &App) {
    // Multi-site: only the leader stores the hours (a follower meters the same telemetry for
    // its own console and keeps its hours dirty, so that it stores them once it leads).
    if !app.leads() {
        return;
    }
    let dirty = app.energy.lock().expect("energy lock").take_dirty();
    for b in dirty {
        let doc = DocRecord {
            id: format!("{:015}", b.t_ms),
            updated_ms: app.now_ms(),
            body: json!(b),
        };
        if let Err(e) = app.store.put_doc(DOC_KIND, &doc, None).await {
            app.store_write_failed("storing energy", &e);
            tracing::error!("storing the energy of hour {}: {e}", b.t_ms);
            // Tried again at the next flush.
            app.energy.lock().expect("energy lock").mark_dirty(b.t_ms);
        }
    }
}

/// The meters of the site and its staleness limit.
pub(crate) async fn site_meters(plant: &Plant) -> Option<(Vec<Meter>, i64)> {
    let f = plant.facility.lock().await;
    let site = f.site.as_ref()?;
    Some((energy::meters(site), site.stale_after_ms))
}

/// Facility and IT power now, from the latest readings.
pub(crate) fn power(intake: &Intake, meters: &[Meter], stale_after_ms: i64, now: i64) -> PowerNow {
    // Only the meters' devices are read (the ingest's table holds every point of the site).
    let devices: std::collections::BTreeSet<&str> =
        meters.iter().map(|m| m.device.as_str()).collect();
    let samples: Vec<dcim_points::Sample> = {
        let ing = intake.ingest.lock().expect("ingest lock");
        devices
            .into_iter()
            .flat_map(|d| ing.latest_of(Some(d)).map(|l| l.sample).collect::<Vec<_>>())
            .collect()
    };
    energy::power_now(meters, samples.iter(), now, stale_after_ms)
}

/// One observation of the power sums now (what the sampler does every [`SAMPLE_MS`]).
pub async fn sample_once(app: &App) {
    if let Some((meters, stale)) = site_meters(&app.plant).await {
        observe(app, &meters, stale);
    }
}

pub(crate) fn observe(app: &App, meters: &[Meter], stale_after_ms: i64) {
    let now = app.now_ms();
    let p = power(&app.intake, meters, stale_after_ms, now);
    app.energy
        .lock()
        .expect("energy lock")
        .observe(now, p.complete());
}

/// Starts the sampler (nothing to do without a site model).
pub fn spawn(app: Arc<App>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some((meters, stale)) = site_meters(&app.plant).await else {
            // No site model: nothing to meter. The task stays until the server stops (it is
            // an essential task: its end would read as a failure in /health).
            crate::base::stop::stopped(&mut stop).await;
            return;
        };
        let mut interval = tokio::time::interval(std::time::Duration::from_millis(SAMPLE_MS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flushed = app.now_ms();
        loop {
            tokio::select! {
                _ = crate::base::stop::stopped(&mut stop) => break,
                _ = interval.tick() => {}
            }
            observe(&app, &meters, stale);
            let now = app.now_ms();
            if now - flushed >= FLUSH_MS {
                flushed = now;
                flush(&app).await;
            }
        }
        flush(&app).await;
    })
}
