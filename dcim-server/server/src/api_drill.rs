//! Drill and server DC-09 routes (read-only): drills, a drill's report, the server's DC-09
//! messages. Listed in `api::ROUTES`.

use crate::api_base::{ApiError, parse_query};
use crate::app::App;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

type AppState = State<Arc<App>>;

pub(crate) async fn drills(State(app): AppState) -> Result<Response, ApiError> {
    let active = app.drill.read().expect("drill lock").clone();
    let list = crate::drill::list(&app).await?;
    Ok(Json(json!({"active": active, "drills": list})).into_response())
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
}

pub(crate) async fn report(
    State(app): AppState,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q: ReportQuery = parse_query(q.as_deref())?;
    let Some(r) = crate::drill::stored_report(&app, &id).await? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no report for drill `{id}` (unknown, or still running)"),
        ));
    };
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(r).into_response()),
        Some("markdown") | Some("md") => Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            r.markdown(),
        )
            .into_response()),
        Some(other) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("format `{other}`: expected json or markdown"),
        )),
    }
}

pub(crate) async fn dc09(State(app): AppState, _headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(d) = app.dc09.get() else {
        return Ok(Json(json!({"enabled": false, "messages": []})).into_response());
    };
    // A multi-site follower runs no transmitter: its counters are empty.
    let stats = d
        .link()
        .map(|l| l.stats().borrow().clone())
        .unwrap_or_default();
    let messages = crate::dc09::messages(&app).await?;
    Ok(Json(json!({
        "enabled": true,
        "pending": stats.pending,
        "delivered": stats.delivered,
        "rejected": stats.rejected,
        "paths": stats.paths.iter().map(|(n, up)| json!({"name": n, "up": up})).collect::<Vec<_>>(),
        "messages": messages,
    }))
    .into_response())
}
