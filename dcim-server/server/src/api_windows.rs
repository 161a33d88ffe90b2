//! Maintenance windows scheduled in advance: the routes and the ticker around
//! [`crate::maint_windows`] (pure). Listed in `api::ROUTES`.
//!
//! Every second the ticker asks the schedule what is due and applies it through the existing
//! maintenance mechanism (`Facility::set_maintenance`, committed with an audit record
//! `maintenance.set` whose actor is `window:{id}`). The schedule is one document
//! (`maintenance.windows/schedule`), stored **before** the maintenance it implies is set (see
//! the module doc of `maint_windows` for why). Locks are taken in the order authority, schedule,
//! facility; the authority lock is held while a step is applied, as the write routes do.
//! Every change of the schedule is pushed as the live event `maintenance`.

use crate::api_base::Authorized;
use crate::api_base::{ApiError, Principal, parse_body};
use crate::app::App;
use crate::authority::ActionKind;
use crate::maint_windows::{NewWindow, Schedule, Step, WindowError};
use crate::store::{DocRecord, Store};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const DOC_KIND: &str = "maintenance.windows";
const DOC_ID: &str = "schedule";

type AppState = State<Arc<App>>;

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

/// Stores the schedule, with an audit record when given.
async fn store(
    app: &App,
    s: &Schedule,
    audit: Option<(&str, &str, &serde_json::Value)>,
) -> Result<(), ApiError> {
    let doc = DocRecord {
        id: DOC_ID.into(),
        updated_ms: app.now_ms(),
        body: serde_json::to_value(s)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    };
    match app.leader_fence() {
        // A single server.
        Ok(None) => app.store.put_doc(DOC_KIND, &doc, audit).await?,
        // The leader: with its term's fence, so a deposed leader's late write changes nothing.
        Ok(Some(fence)) => {
            let batch = crate::store::Batch {
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
            app.store.commit_batch(&batch).await?;
        }
        // A follower never writes the schedule (the leader's ticker applies it).
        Err(crate::cluster::NotLeader) => {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "this replica is not the leader: change maintenance windows on the leader".into(),
            ));
        }
    }
    Ok(())
}

fn window_error(e: WindowError) -> ApiError {
    let code = match e {
        WindowError::Unknown(_) => StatusCode::NOT_FOUND,
        WindowError::Finished { .. } => StatusCode::CONFLICT,
        WindowError::Invalid { .. } => StatusCode::BAD_REQUEST,
    };
    ApiError(code, e.to_string())
}

/// Sets or clears the maintenance of `subjects` for window `id`, committed with an audit
/// record each (the alarm engine's records follow the maintenance as they do for a hand-set
/// one).
async fn apply(
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
    let mut f = app.facility.lock().await;
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

/// Applies the steps `due` returned (the schedule is already stored).
async fn run_steps(app: &App, s: &Schedule, steps: &[Step]) {
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
async fn tick(app: &App) {
    // Multi-site: only the leader applies windows (a follower reloads the leader's schedule,
    // see `cluster`); two replicas applying one window would both write the schedule.
    if !app.leads() {
        return;
    }
    let authority = app.authority.lock().await;
    let mut s = app.windows.lock().await;
    let maint = app.facility.lock().await.maintenance().clone();
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
        tracing::error!("storing the maintenance schedule: {}", e.1);
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
                _ = crate::clock::stopped(&mut stop) => break,
                _ = interval.tick() => {}
            }
            tick(&app).await;
        }
    })
}

pub(crate) async fn list(
    State(app): AppState,
    _headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = app.windows.lock().await;
    Ok(Json(json!({"windows": s.windows, "now_ms": app.now_ms()})))
}

pub(crate) async fn create(
    Authorized(p): Authorized,
    State(app): AppState,
    _headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewWindow = parse_body(&body)?;
    // Scheduling changes nothing in the plant; the ticker applies it (and holds it under
    // authority control).
    let known: std::collections::BTreeSet<String> = {
        let f = app.facility.lock().await;
        let mut k: std::collections::BTreeSet<String> = f
            .site
            .as_ref()
            .map(|s| {
                s.components
                    .iter()
                    .map(|c| c.id.clone())
                    .chain(s.devices())
                    .collect()
            })
            .unwrap_or_default();
        drop(f);
        // Devices that report without being bound in the site model can be maintained too.
        let ing = app.ingest.lock().expect("ingest lock");
        k.extend(ing.devices().map(str::to_owned));
        k
    };
    let mut s = app.windows.lock().await;
    let mut next = s.clone();
    let w = next
        .create(req, &p.user, app.now_ms(), |x| known.contains(x))
        .map_err(window_error)?
        .clone();
    let detail = json!(w);
    store(
        &app,
        &next,
        Some((&p.user, "maintenance.window.create", &detail)),
    )
    .await?;
    *s = next;
    drop(s);
    publish(&app, &p, "maintenance.window.create", w.id);
    Ok((StatusCode::CREATED, Json(json!({"window": w}))).into_response())
}

fn publish(app: &App, p: &Principal, action: &str, id: u64) {
    app.publish_live(
        "maintenance",
        &json!({"windows": true, "window": id, "action": action, "user": p.user, "ts_ms": app.now_ms()}),
    );
}

#[derive(Deserialize)]
struct CancelBody {
    reason: String,
}

pub(crate) async fn cancel(
    Authorized(p): Authorized,
    State(app): AppState,
    _headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no maintenance window `{id}`"),
        )
    })?;
    let b: CancelBody = parse_body(&body)?;
    // Ending an active window takes its subjects out of maintenance: refused (423, audited)
    // under authority control, like any maintenance change. The authority lock is taken
    // first and held while it acts, so the window cannot start in between.
    let authority = app.authority.lock().await;
    let mut s = app.windows.lock().await;
    let active = s
        .get(id)
        .is_some_and(|w| w.status == crate::maint_windows::Status::Active);
    if active && let Err(r) = authority.check(ActionKind::Maintenance) {
        drop(s);
        drop(authority);
        app.audit(
            &p.user,
            "authority.refused",
            &format!("window/{id}"),
            json!({"action": ActionKind::Maintenance, "reason": r.message}),
        )
        .await?;
        return Err(ApiError(StatusCode::LOCKED, r.message));
    }
    let mut next = s.clone();
    let step = next
        .cancel(id, &p.user, &b.reason, app.now_ms())
        .map_err(window_error)?;
    let detail = json!({"window": id, "reason": b.reason.trim(), "was_active": step.is_some()});
    store(
        &app,
        &next,
        Some((&p.user, "maintenance.window.cancel", &detail)),
    )
    .await?;
    *s = next;
    if let Some(st) = &step {
        run_steps(&app, &s, std::slice::from_ref(st)).await;
    }
    let w = s.get(id).cloned();
    drop(s);
    drop(authority);
    publish(&app, &p, "maintenance.window.cancel", id);
    Ok(Json(json!({"window": w})).into_response())
}
