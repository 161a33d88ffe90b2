//! Maintenance windows scheduled in advance, over HTTP: list, create and cancel, around
//! [`crate::engine::maint_windows`] (pure). Listed in `api::ROUTES`. The schedule document and the
//! ticker that applies what is due are in `crate::io::windows_io` (locks in the order authority,
//! schedule, facility). Every change of the schedule is pushed as the live event
//! `maintenance`.

use crate::app::App;
use crate::engine::authority::ActionKind;
use crate::engine::maint_windows::{NewWindow, Window, WindowError};
use crate::http::api_base::Authorized;
use crate::http::api_base::{ApiError, Principal, parse_body};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

use crate::io::windows_io::{ScheduleWriteError, run_steps, store};

type AppState = State<Arc<App>>;

impl From<ScheduleWriteError> for ApiError {
    fn from(e: ScheduleWriteError) -> ApiError {
        match e {
            ScheduleWriteError::NotLeader => {
                ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ScheduleWriteError::Encode(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, m),
            // 503 "storage unavailable", logged, as every other store failure of a route.
            ScheduleWriteError::Failed(e) => ApiError::from(e),
        }
    }
}

fn window_error(e: WindowError) -> ApiError {
    let code = match e {
        WindowError::Unknown(_) => StatusCode::NOT_FOUND,
        WindowError::Finished { .. } => StatusCode::CONFLICT,
        WindowError::Invalid { .. } => StatusCode::BAD_REQUEST,
    };
    ApiError(code, e.to_string())
}

/// `GET /api/maintenance/windows`: every window and the server's time.
#[derive(Serialize)]
pub struct Windows {
    pub windows: Vec<Window>,
    pub now_ms: i64,
}

pub(crate) async fn list(State(app): AppState) -> Result<Json<Windows>, ApiError> {
    let s = app.control.windows.lock().await;
    Ok(Json(Windows {
        windows: s.windows.clone(),
        now_ms: app.now_ms(),
    }))
}

/// One window: the answer of scheduling (always one) and of cancelling (`null` if it is gone).
#[derive(Serialize)]
pub struct WindowBody {
    pub window: Option<Window>,
}

pub(crate) async fn create(
    Authorized(p): Authorized,
    State(app): AppState,
    body: Bytes,
) -> Result<(StatusCode, Json<WindowBody>), ApiError> {
    let req: NewWindow = parse_body(&body)?;
    // Scheduling changes nothing in the plant; the ticker applies it (and holds it under
    // authority control).
    let known: std::collections::BTreeSet<String> = {
        let f = app.plant.facility.lock().await;
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
        let ing = app.intake.ingest.lock().expect("ingest lock");
        k.extend(ing.devices().map(str::to_owned));
        k
    };
    let mut s = app.control.windows.lock().await;
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
    Ok((StatusCode::CREATED, Json(WindowBody { window: Some(w) })))
}

/// The live `maintenance` event of a change of the schedule.
#[derive(Serialize)]
struct ScheduleChanged<'a> {
    /// Always true: the schedule changed (not the maintenance set).
    windows: bool,
    window: u64,
    action: &'a str,
    user: &'a str,
    ts_ms: i64,
}

fn publish(app: &App, p: &Principal, action: &str, id: u64) {
    app.publish_live(
        "maintenance",
        &ScheduleChanged {
            windows: true,
            window: id,
            action,
            user: &p.user,
            ts_ms: app.now_ms(),
        },
    );
}

#[derive(Deserialize)]
struct CancelBody {
    reason: String,
}

pub(crate) async fn cancel(
    Authorized(p): Authorized,
    State(app): AppState,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<WindowBody>, ApiError> {
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
    let authority = app.control.authority.lock().await;
    let mut s = app.control.windows.lock().await;
    let active = s
        .get(id)
        .is_some_and(|w| w.status == crate::engine::maint_windows::Status::Active);
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
    Ok(Json(WindowBody { window: w }))
}
