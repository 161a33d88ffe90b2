//! Drill and server DC-09 routes (read-only): drills, a drill's report, the server's DC-09
//! messages. Listed in `api::ROUTES`.

use crate::app::App;
use crate::engine::dc09_plan::MessageRecord;
use crate::http::api_base::{ApiError, parse_query};
use crate::storage::drill_plan::ActiveDrill;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type AppState = State<Arc<App>>;

/// `GET /api/drills`: the drill in progress (`null` when none) and every drill, newest first.
#[derive(Serialize)]
pub struct Drills {
    pub active: Option<ActiveDrill>,
    pub drills: Vec<ActiveDrill>,
}

pub(crate) async fn drills(State(app): AppState) -> Result<Json<Drills>, ApiError> {
    let active = app.control.drill.read().expect("drill lock").clone();
    let drills = crate::io::drill::list(&app).await?;
    Ok(Json(Drills { active, drills }))
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
    let Some(r) = crate::io::drill::stored_report(&app, &id).await? else {
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

/// `GET /api/dc09`: `{enabled: false, messages: []}` without a transmitter, else its counters,
/// paths and messages.
#[derive(Serialize)]
pub struct Dc09 {
    pub enabled: bool,
    #[serde(flatten)]
    pub link: Option<Dc09Link>,
    pub messages: Vec<MessageRecord>,
}

/// The transmitter's counters and paths (empty on a multi-site follower, which runs none).
#[derive(Serialize)]
pub struct Dc09Link {
    pub pending: usize,
    pub delivered: u64,
    pub rejected: u64,
    pub paths: Vec<Dc09Path>,
}

/// One path to the receiver and whether it is up.
#[derive(Serialize)]
pub struct Dc09Path {
    pub name: String,
    pub up: bool,
}

pub(crate) async fn dc09(
    State(app): AppState,
    _headers: HeaderMap,
) -> Result<Json<Dc09>, ApiError> {
    let Some(d) = app.control.dc09.get() else {
        return Ok(Json(Dc09 {
            enabled: false,
            link: None,
            messages: Vec::new(),
        }));
    };
    // A multi-site follower runs no transmitter: its counters are empty.
    let stats = d
        .link()
        .map(|l| l.stats().borrow().clone())
        .unwrap_or_default();
    let messages = crate::io::dc09::messages(&app).await?;
    Ok(Json(Dc09 {
        enabled: true,
        link: Some(Dc09Link {
            pending: stats.pending,
            delivered: stats.delivered,
            rejected: stats.rejected,
            paths: stats
                .paths
                .into_iter()
                .map(|(name, up)| Dc09Path { name, up })
                .collect(),
        }),
        messages,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_dc09_answer_has_counters_only_with_a_transmitter() {
        // Hazard: counters of 0 served without a transmitter would read as "nothing pending,
        // nothing rejected"; without one the answer is only `enabled: false` and no messages.
        let off = Dc09 {
            enabled: false,
            link: None,
            messages: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&off).unwrap(),
            json!({"enabled": false, "messages": []})
        );
        let on = Dc09 {
            enabled: true,
            link: Some(Dc09Link {
                pending: 2,
                delivered: 5,
                rejected: 1,
                paths: vec![Dc09Path {
                    name: "primary".into(),
                    up: false,
                }],
            }),
            messages: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&on).unwrap(),
            json!({"enabled": true, "pending": 2, "delivered": 5, "rejected": 1,
                   "paths": [{"name": "primary", "up": false}], "messages": []})
        );
    }
}
