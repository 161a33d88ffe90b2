//! Authority control over HTTP (around the pure [`crate::engine::authority`] state; its document and
//! the ingest's key switch reports are in `crate::io::authority_io`):
//!
//! - `GET /api/authority`, `POST /api/authority/enter {reason}` (operator, admin, fire
//!   authority), `POST /api/authority/exit {reason}` (operator, admin; 423 while a key switch is
//!   on).
//! - [`guard`]: the check every write route calls before it acts; a refusal answers 423 Locked
//!   with a reason naming authority control and is written to the audit log. The returned lock
//!   is held while the action runs, so an action and a key switch coming on are ordered.
//!
//! Every change is stored (document `authority/state`, `authority_io::commit`) together with its
//! audit record in one transaction, then pushed on the live stream as an `authority` event.
//! Lock order: the authority lock is taken before the facility lock, never after it.

use crate::app::App;
use crate::engine::authority::{ActionKind, Authority, ChangeError, Transition};
use crate::http::api_base::Authorized;
use crate::http::api_base::{ApiError, Principal, parse_body};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

use crate::io::authority_io::commit;

type AppState = State<Arc<App>>;

/// Checks that `kind` is allowed now. On refusal, audits `authority.refused` (who, what
/// action, on what, why) and answers 423. The returned guard keeps the state from changing
/// while the caller acts.
pub async fn guard<'a>(
    app: &'a App,
    p: &Principal,
    kind: ActionKind,
    target: &str,
) -> Result<tokio::sync::MutexGuard<'a, Authority>, ApiError> {
    let a = app.control.authority.lock().await;
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

fn change_error(e: ChangeError) -> ApiError {
    let code = match e {
        ChangeError::Role(_) => StatusCode::FORBIDDEN,
        ChangeError::Reason => StatusCode::BAD_REQUEST,
        ChangeError::AlreadyActive { .. } | ChangeError::NotActive => StatusCode::CONFLICT,
        ChangeError::KeysOn(_) => StatusCode::LOCKED,
    };
    ApiError(code, e.to_string())
}

/// `GET /api/authority`, and the answer of entering and leaving it.
#[derive(Serialize)]
pub struct AuthorityState {
    pub authority: crate::engine::authority::View,
}

pub(crate) async fn state(State(app): AppState) -> Result<Json<AuthorityState>, ApiError> {
    let a = app.control.authority.lock().await;
    Ok(Json(AuthorityState {
        authority: a.view(app.now_ms()),
    }))
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
) -> Result<Json<AuthorityState>, ApiError> {
    let b: ReasonBody = parse_body(body)?;
    let mut a = app.control.authority.lock().await;
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
    Ok(Json(AuthorityState {
        authority: a.view(now),
    }))
}

pub(crate) async fn enter(
    Authorized(p): Authorized,
    State(app): AppState,
    body: Bytes,
) -> Result<Json<AuthorityState>, ApiError> {
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
    body: Bytes,
) -> Result<Json<AuthorityState>, ApiError> {
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
