//! Authority control over HTTP and from the ingest path (the imperative shell around the pure
//! [`crate::authority`] state):
//!
//! - `GET /api/authority`, `POST /api/authority/enter {reason}` (operator, admin, fire
//!   authority), `POST /api/authority/exit {reason}` (operator, admin; 423 while a key switch is
//!   on).
//! - [`guard`]: the check every write route calls before it acts; a refusal answers 423 Locked
//!   with a reason naming authority control and is written to the audit log. The returned lock
//!   is held while the action runs, so an action and a key switch coming on are ordered.
//! - [`on_samples`] / [`on_events`]: key switch reports from the MQTT ingest.
//!
//! Every change is stored (document `authority/state`) together with its audit record in one
//! transaction, then pushed on the live stream as an `authority` event. Lock order: the
//! authority lock is taken before the facility lock, never after it.

use crate::api_base::Authorized;
use crate::api_base::{ApiError, Principal, parse_body};
use crate::app::App;
use crate::authority::{ActionKind, Authority, ChangeError, Transition};
use crate::store::{Batch, DocRecord, Store};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Document kind and id of the persisted state.
pub const DOC_KIND: &str = "authority";
pub const DOC_ID: &str = "state";

type AppState = State<Arc<App>>;

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
async fn commit(
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

/// Checks that `kind` is allowed now. On refusal, audits `authority.refused` (who, what
/// action, on what, why) and answers 423. The returned guard keeps the state from changing
/// while the caller acts.
pub async fn guard<'a>(
    app: &'a App,
    p: &Principal,
    kind: ActionKind,
    target: &str,
) -> Result<tokio::sync::MutexGuard<'a, Authority>, ApiError> {
    let a = app.authority.lock().await;
    if let Err(r) = a.check(kind) {
        drop(a);
        app.audit(
            &p.user,
            "authority.refused",
            target,
            json!({"action": kind, "reason": r.message}),
        )
        .await?;
        return Err(ApiError(StatusCode::LOCKED, r.message));
    }
    Ok(a)
}

/// Applies key switch reports `(device, on)` from `agent`. A key coming on takes effect in
/// memory even when it cannot be stored (refusing is the safe side); the error is logged.
async fn apply_keys(app: &App, agent: &str, reports: &[(&str, bool)]) {
    let mut a = app.authority.lock().await;
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
            crate::metrics::inc(&app.metrics.store_errors_total, 1);
            tracing::error!("storing the authority-control state: {e:#}");
        }
    }
}

/// Key switch readings in a telemetry batch (`fire.authority` points).
pub async fn on_samples(app: &App, agent: &str, samples: &[dcim_points::Sample]) {
    let reports: Vec<(&str, bool)> = samples
        .iter()
        .filter_map(|s| crate::authority::key_from_sample(s).map(|on| (s.device.as_str(), on)))
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
            crate::authority::key_from_event(&e.kind, &e.data).map(|on| (e.device.as_str(), on))
        })
        .collect();
    if !reports.is_empty() {
        apply_keys(app, agent, &reports).await;
    }
}

fn change_error(e: ChangeError) -> ApiError {
    let code = match e {
        ChangeError::Role(_) => StatusCode::FORBIDDEN,
        ChangeError::Reason => StatusCode::BAD_REQUEST,
        ChangeError::AlreadyActive { .. } | ChangeError::NotActive => StatusCode::CONFLICT,
        ChangeError::KeysOn(_) => StatusCode::LOCKED,
    };
    ApiError(code, e.to_string())
}

pub(crate) async fn state(
    State(app): AppState,
    _headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let a = app.authority.lock().await;
    Ok(Json(json!({"authority": a.view(app.now_ms())})))
}

#[derive(Deserialize)]
struct ReasonBody {
    reason: String,
}

/// Applies a user's change; the state is rolled back if it cannot be stored.
async fn change(
    app: &App,
    p: &Principal,
    body: &[u8],
    f: impl FnOnce(&mut Authority, &str, i64) -> Result<Transition, ChangeError>,
    refused_action: &str,
) -> Result<Response, ApiError> {
    let b: ReasonBody = parse_body(body)?;
    let mut a = app.authority.lock().await;
    let before = a.clone();
    let now = app.now_ms();
    let t = match f(&mut a, &b.reason, now) {
        Ok(t) => t,
        Err(e) => {
            if matches!(e, ChangeError::KeysOn(_)) {
                drop(a);
                app.audit(
                    &p.user,
                    refused_action,
                    "site",
                    json!({"reason": b.reason, "error": e.to_string()}),
                )
                .await?;
            }
            return Err(change_error(e));
        }
    };
    if let Err(e) = commit(app, &a, &t, &p.user, "site").await {
        *a = before;
        return Err(e.into());
    }
    match &t {
        Transition::Exited { duration_ms, .. } => {
            tracing::info!(user = %p.user, duration_ms, "left authority control")
        }
        _ => tracing::warn!(user = %p.user, "entered authority control"),
    }
    Ok(Json(json!({"authority": a.view(now)})).into_response())
}

pub(crate) async fn enter(
    Authorized(p): Authorized,
    State(app): AppState,
    _headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (user, role) = (p.user.clone(), p.role);
    change(
        &app,
        &p,
        &body,
        |a, reason, now| a.enter(&user, role, reason, now),
        "authority.enter_refused",
    )
    .await
}

pub(crate) async fn exit(
    Authorized(p): Authorized,
    State(app): AppState,
    _headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (user, role) = (p.user.clone(), p.role);
    change(
        &app,
        &p,
        &body,
        |a, reason, now| a.exit(&user, role, reason, now),
        "authority.exit_refused",
    )
    .await
}
