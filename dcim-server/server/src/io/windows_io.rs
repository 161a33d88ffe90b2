//! Maintenance windows in the store and on the clock: the schedule document
//! (`maintenance.windows/schedule`) and the ticker that applies what is due every second
//! through the maintenance mechanism (`Facility::set_maintenance`, audited as `window:{id}`).
//! The routes are in `api_windows`; locks in the order authority, schedule, facility.

use crate::app::App;
use crate::engine::authority::ActionKind;
use crate::engine::maint_windows::{Schedule, Step};
use crate::storage::store::{DocRecord, Store};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const DOC_KIND: &str = "maintenance.windows";
pub(crate) const DOC_ID: &str = "schedule";

/// The stored schedule (empty when there is none).
pub async fn load(store: &dyn Store) -> anyhow::Result<Schedule> {
    let docs = store.list_docs(DOC_KIND).await?;
    match docs.into_iter().find(|d| d.id == DOC_ID) {
        Some(d) => Ok(serde_json::from_value(d.body).map_err(|e| {
            anyhow::anyhow!("the stored maintenance schedule does not decode: {e}")
        })?),
        None => Ok(Schedule::default()),
    }
}

/// Why the schedule was not stored.
#[derive(Debug)]
pub enum ScheduleWriteError {
    /// A follower never writes the schedule (the leader's ticker applies it).
    NotLeader,
    /// The schedule does not encode (a bug).
    Encode(String),
    /// The store refused or failed the write.
    Failed(anyhow::Error),
}

impl std::fmt::Display for ScheduleWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleWriteError::NotLeader => f.write_str(
                "this replica is not the leader: change maintenance windows on the leader",
            ),
            ScheduleWriteError::Encode(e) => f.write_str(e),
            ScheduleWriteError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// Stores the schedule, with an audit record when given.
pub(crate) async fn store(
    app: &App,
    s: &Schedule,
    audit: Option<(&str, &str, &serde_json::Value)>,
) -> Result<(), ScheduleWriteError> {
    let doc = DocRecord {
        id: DOC_ID.into(),
        updated_ms: app.now_ms(),
        body: serde_json::to_value(s).map_err(|e| ScheduleWriteError::Encode(e.to_string()))?,
    };
    match app.leader_fence() {
        // A single server.
        Ok(None) => app
            .store
            .put_doc(DOC_KIND, &doc, audit)
            .await
            .map_err(|e| ScheduleWriteError::Failed(e.into()))?,
        // The leader: with its term's fence, so a deposed leader's late write changes nothing.
        Ok(Some(fence)) => {
            let batch = crate::storage::store::Batch {
                audit: audit
                    .map(|(actor, action, detail)| {
                        vec![(
                            actor.to_owned(),
                            action.to_owned(),
                            format!("{DOC_KIND}/{DOC_ID}"),
                            detail.clone(),
                        )]
                    })
                    .unwrap_or_default(),
                docs: vec![(DOC_KIND.into(), doc)],
                fence: Some(fence),
                ..Default::default()
            };
            app.store
                .commit_batch(&batch)
                .await
                .map_err(|e| ScheduleWriteError::Failed(e.into()))?;
        }
        // A follower never writes the schedule (the leader's ticker applies it).
        Err(crate::state::cluster::NotLeader) => {
            return Err(ScheduleWriteError::NotLeader);
        }
    }
    Ok(())
}

/// Applies the steps `due` returned (the schedule is already stored).
pub(crate) async fn run_steps(app: &App, s: &Schedule, steps: &[Step]) {
    for st in steps {
        let res = match st {
            Step::Start {
                id,
                apply: subjects,
            } => {
                let w = s.get(*id);
                let (by, why) = w.map_or(("", ""), |w| (w.created_by.as_str(), w.reason.as_str()));
                tracing::info!(window = id, ?subjects, "maintenance window started");
                apply(app, *id, by, subjects, true, why).await
            }
            Step::End {
                id,
                clear,
                handed,
                cause,
            } => {
                let by = s.get(*id).map_or("", |w| w.created_by.as_str());
                tracing::info!(
                    window = id,
                    ?clear,
                    ?handed,
                    cause,
                    "maintenance window ended"
                );
                let r = apply(app, *id, by, clear, false, cause).await;
                if r.is_ok() && (clear.is_empty() || !handed.is_empty()) {
                    // Nothing (or not everything) left maintenance: the end is audited anyway.
                    app.audit(
                        &format!("window:{id}"),
                        "maintenance.window.end",
                        &format!("window/{id}"),
                        json!({"cause": cause, "cleared": clear, "handed_over": handed}),
                    )
                    .await
                    .map(|_| ())
                } else {
                    r
                }
            }
            Step::Held { id, what } => {
                tracing::warn!(
                    window = id,
                    what,
                    "maintenance window held under authority control"
                );
                app.audit(
                    &format!("window:{id}"),
                    "authority.refused",
                    &format!("window/{id}"),
                    json!({"action": ActionKind::Maintenance, "what": what,
                        "reason": "maintenance cannot be set or cleared under authority control; applied when it ends"}),
                )
                .await
                .map(|_| ())
            }
        };
        if let Err(e) = res {
            app.store_write_failed("applying a maintenance window", e.as_ref());
            tracing::error!("applying maintenance window step {st:?}: {e:#}");
        }
    }
}

/// One pass of the ticker.
pub(crate) async fn tick(app: &App) {
    // Multi-site: only the leader applies windows (a follower reloads the leader's schedule,
    // see `cluster`); two replicas applying one window would both write the schedule.
    if !app.leads() {
        return;
    }
    let authority = app.control.authority.lock().await;
    let mut s = app.control.windows.lock().await;
    let maint = app.plant.facility.lock().await.maintenance().clone();
    let now = app.now_ms();
    let mut probe = s.clone();
    let steps = probe.due(now, |x| maint.contains(x), authority.is_active());
    let pruned = probe.prune(now);
    if steps.is_empty() && !pruned {
        return;
    }
    // The schedule first (the intent), then the plant: a crash in between leaves alarms
    // visible, never a maintenance nobody ends.
    if let Err(e) = store(app, &probe, None).await {
        tracing::error!("storing the maintenance schedule: {e}");
        return;
    }
    *s = probe;
    run_steps(app, &s, &steps).await;
    drop(authority);
    app.publish_live("maintenance", &json!({"windows": true, "ts_ms": now}));
}

/// Starts the ticker.
pub fn spawn(app: Arc<App>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = crate::base::stop::stopped(&mut stop) => break,
                _ = interval.tick() => {}
            }
            tick(&app).await;
        }
    })
}

/// Sets or clears the maintenance of `subjects` for window `id`, committed with an audit
/// record each (the alarm engine's records follow the maintenance as they do for a hand-set
/// one).
pub(crate) async fn apply(
    app: &App,
    id: u64,
    created_by: &str,
    subjects: &[String],
    on: bool,
    why: &str,
) -> anyhow::Result<()> {
    if subjects.is_empty() {
        return Ok(());
    }
    let actor = format!("window:{id}");
    let user = format!("{created_by} (window {id})");
    let mut f = app.plant.facility.lock().await;
    for s in subjects {
        let changes = f.set_maintenance(s, on, &user, app.now_ms());
        app.commit_changes(
            &f,
            &changes,
            Some((
                &actor,
                "maintenance.set",
                s,
                json!({"on": on, "window": id, "reason": why, "scheduled_by": created_by}),
            )),
        )
        .await?;
    }
    Ok(())
}
