//! Reports what the ingest found wrong with an agent's stream, so that it is never absorbed
//! silently (`crate::engine::ingest` decides, this shell tells):
//!
//! - a new spool epoch ([`crate::engine::ingest::NewEpoch`]): the agent's spool was wiped or replaced,
//!   its sequence numbers started again under a new epoch, and the server accepts it as a new
//!   stream. Logged (warning), audited (`agent.spool_epoch`), streamed (`agent_epoch` live
//!   event), counted (`dcim_ingest_new_epochs_total`), and raised as the `agent-spool-new`
//!   trouble (grade 3, returns to normal at once and stays listed until acknowledged) when the
//!   spool really started over (`restarted`) or a previous epoch existed; an agent that merely
//!   started sending an epoch after an upgrade (its numbers continue) is logged and audited only;
//! - samples stamped in the future ([`crate::engine::ingest::Future`]): counted
//!   (`dcim_ingest_future_samples_total`, `dcim_ingest_clamped_samples_total`) and, when some
//!   were refused, the `agent-clock-ahead` trouble for that agent, cleared by the ticker once no
//!   sample has been refused for [`crate::engine::facility::CLOCK_AHEAD_CLEAR_MS`].

use crate::app::App;
use crate::base::metrics::inc;
use crate::engine::ingest::{Future, NewEpoch};

/// Reports a new spool epoch of `agent` (see the module docs).
pub async fn new_epoch(app: &App, site: &str, agent: &str, n: &NewEpoch, now_ms: i64) {
    inc(&app.metrics.ingest_new_epochs_total, 1);
    let previous = if n.previous.iter().all(String::is_empty) {
        "none (an agent from before spool epochs)".to_owned()
    } else {
        n.previous.join(", ")
    };
    let text = format!(
        "agent {agent} began spool epoch `{}` (previous: {previous}) at {} seq {}{}",
        n.epoch,
        n.stream,
        n.first_seq,
        if n.restarted {
            "; its sequence numbers started over: the spool was wiped or replaced, and what the \
             old spool had not delivered is lost"
        } else {
            ""
        }
    );
    tracing::warn!(%agent, epoch = %n.epoch, restarted = n.restarted, "{text}");
    if let Err(e) = app
        .audit(
            &format!("mqtt:{agent}"),
            "agent.spool_epoch",
            &format!("{site}/{agent}"),
            serde_json::to_value(n).unwrap_or_default(),
        )
        .await
    {
        app.store_write_failed("auditing a new spool epoch", e.as_ref());
        tracing::error!("auditing a new spool epoch: {e:#}");
    }
    app.publish_live(
        "agent_epoch",
        &serde_json::json!({"site": site, "agent": agent, "epoch": n}),
    );
    let alarm = n.restarted || n.previous.iter().any(|p| !p.is_empty());
    if !alarm {
        return;
    }
    let mut f = app.plant.facility.lock().await;
    let mut changes = f.trouble("spool_epoch", agent, true, &text, now_ms);
    let cleared = f.trouble("spool_epoch", agent, false, "", now_ms);
    changes.records.extend(cleared.records);
    changes.incidents.extend(cleared.incidents);
    if let Err(e) = app.commit_changes(&f, &changes, None).await {
        app.store_write_failed("committing alarm changes", e.as_ref());
        tracing::error!("committing alarm changes: {e:#}");
    }
}

/// Counts samples stamped in the future and raises the agent's clock trouble when some were
/// refused (see the module docs).
pub async fn future_samples(app: &App, agent: &str, future: &Future, now_ms: i64) {
    if future.clamped > 0 {
        inc(&app.metrics.ingest_clamped_samples_total, future.clamped);
    }
    if future.refused == 0 {
        return;
    }
    inc(&app.metrics.ingest_future_samples_total, future.refused);
    let mut f = app.plant.facility.lock().await;
    let changes = f.future_samples(agent, future.refused, future.latest_ts_ms, now_ms);
    if !changes.is_empty() {
        tracing::warn!(
            %agent,
            refused = future.refused,
            latest_ts_ms = future.latest_ts_ms,
            "samples stamped in the future refused: the agent's clock is ahead"
        );
    }
    if let Err(e) = app.commit_changes(&f, &changes, None).await {
        app.store_write_failed("committing alarm changes", e.as_ref());
        tracing::error!("committing alarm changes: {e:#}");
    }
}
