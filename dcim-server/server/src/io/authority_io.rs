//! Authority control's state in the store and from the ingest path (the shell around the pure
//! [`crate::engine::authority`]): loading it, committing a transition with its audit record, and the key
//! switch reports of the MQTT ingest ([`on_samples`], [`on_events`]). The HTTP routes are in
//! `api_authority`. Lock order: the authority lock is taken before the facility lock.

use crate::app::App;
use crate::engine::authority::{Authority, Transition};
use crate::storage::store::{Batch, DocRecord, Store};
use serde_json::json;

/// Document kind and id of the persisted state.
pub const DOC_KIND: &str = "authority";
pub const DOC_ID: &str = "state";

/// The stored state (default: not under authority control).
pub async fn load(store: &dyn Store) -> anyhow::Result<Authority> {
    match store
        .list_docs(DOC_KIND)
        .await?
        .into_iter()
        .find(|d| d.id == DOC_ID)
    {
        Some(d) => serde_json::from_value(d.body).map_err(|e| {
            anyhow::anyhow!(
                "stored authority-control state (docs {DOC_KIND}/{DOC_ID}) does not decode: {e}"
            )
        }),
        None => Ok(Authority::default()),
    }
}

/// Stores the state with the transition's audit record, then pushes both live.
pub(crate) async fn commit(
    app: &App,
    a: &Authority,
    t: &Transition,
    actor: &str,
    target: &str,
) -> anyhow::Result<()> {
    // Multi-site: the leader stores it (a follower applies key switches in memory only and
    // reloads the leader's state); the fence refuses a deposed leader's late write.
    let Ok(fence) = app.leader_fence() else {
        return Ok(());
    };
    let now = app.now_ms();
    let batch = Batch {
        fence,
        docs: vec![(
            DOC_KIND.into(),
            DocRecord {
                id: DOC_ID.into(),
                updated_ms: now,
                body: serde_json::to_value(a)?,
            },
        )],
        journal: Vec::new(),
        audit: vec![(actor.into(), t.action().into(), target.into(), t.detail())],
    };
    let ids = app.store.commit_batch(&batch).await?;
    app.publish_live(DOC_KIND, &a.view(now));
    if let Some(id) = ids.first() {
        app.publish_live(
            "audit",
            &json!({"id": id, "ts_ms": now, "actor": actor, "action": t.action(), "target": target}),
        );
    }
    Ok(())
}

/// Applies key switch reports `(device, on)` from `agent`. A key coming on takes effect in
/// memory even when it cannot be stored (refusing is the safe side); the error is logged.
async fn apply_keys(app: &App, agent: &str, reports: &[(&str, bool)]) {
    let mut a = app.control.authority.lock().await;
    let actor = format!("mqtt:{agent}");
    for (device, on) in reports {
        let Some(t) = a.key_report(device, agent, *on, app.now_ms()) else {
            continue;
        };
        match &t {
            Transition::Entered(_) => {
                tracing::warn!(%device, %agent, "authority key switch on: the site is under authority control")
            }
            _ => tracing::info!(%device, %agent, on, action = t.action(), "authority key switch"),
        }
        if let Err(e) = commit(app, &a, &t, &actor, device).await {
            crate::base::metrics::inc(&app.metrics.store_errors_total, 1);
            tracing::error!("storing the authority-control state: {e:#}");
        }
    }
}

/// Key switch readings in a telemetry batch (`fire.authority` points).
pub async fn on_samples(app: &App, agent: &str, samples: &[dcim_points::Sample]) {
    let reports: Vec<(&str, bool)> = samples
        .iter()
        .filter_map(|s| {
            crate::engine::authority::key_from_sample(s).map(|on| (s.device.as_str(), on))
        })
        .collect();
    if !reports.is_empty() {
        apply_keys(app, agent, &reports).await;
    }
}

/// Key switch changes in an event batch (`fire.supervisory` authority events).
pub async fn on_events(app: &App, agent: &str, events: &[dcim_wire::Event]) {
    let reports: Vec<(&str, bool)> = events
        .iter()
        .filter_map(|e| {
            crate::engine::authority::key_from_event(&e.kind, &e.data)
                .map(|on| (e.device.as_str(), on))
        })
        .collect();
    if !reports.is_empty() {
        apply_keys(app, agent, &reports).await;
    }
}
