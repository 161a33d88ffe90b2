//! CSV export of the alarm and event lists and the global search: routes over
//! [`crate::storage::export`] and [`crate::engine::search`] (pure). Listed in `api::ROUTES`.

use crate::app::App;
use crate::http::api_base::{ApiError, parse_query};
use crate::storage::export::{self, AlarmFilter, EventFilter};
use crate::storage::store::EventQuery;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

type AppState = State<Arc<App>>;

fn csv_response(body: String, name: &str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn offset(o: Option<i32>) -> Result<i32, ApiError> {
    export::check_offset(o.unwrap_or(0))
        .map_err(|m| ApiError(StatusCode::BAD_REQUEST, format!("query: {m}")))
}

/// `alarms-20260501-1403.csv` in the requester's local time.
fn file_name(what: &str, offset_min: i32) -> String {
    let iso = export::iso_local(dcim_clock::now_ms(), offset_min); // wall time: names a download
    format!(
        "{what}-{}{}{}-{}{}.csv",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16]
    )
}

#[derive(Deserialize, Default)]
struct AlarmsQuery {
    grade: Option<u8>,
    subsystem: Option<String>,
    state: Option<String>,
    room: Option<String>,
    q: Option<String>,
    /// Include alarms back to normal (and the per-rack alarms grouped under their subsystem).
    all: Option<bool>,
    offset_min: Option<i32>,
}

pub(crate) async fn alarms_csv(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: AlarmsQuery = parse_query(raw.as_deref())?;
    let off = offset(q.offset_min)?;
    let filter = AlarmFilter {
        grade: q.grade,
        subsystem: q.subsystem,
        state: q.state,
        room: q.room,
        q: q.q,
    };
    let f = app.plant.facility.lock().await;
    let rules: BTreeMap<String, dcim_alarms::Rule> = f
        .engine
        .rules()
        .iter()
        .map(|r| (r.id.clone(), r.clone()))
        .collect();
    let places = f
        .site
        .as_deref()
        .map(crate::engine::fire_view::places)
        .unwrap_or_default();
    let list: Vec<&dcim_alarms::Alarm> = if q.all.unwrap_or(false) {
        f.engine.alarms().collect()
    } else {
        f.engine
            .active()
            .filter(|a| !f.engine.is_grouped_out(a))
            .collect()
    };
    let rows = export::alarm_rows(list, &rules, f.site.as_deref(), &places, &filter);
    let body = export::alarms_csv(&rows, off);
    Ok(csv_response(body, &file_name("alarms", off)))
}

#[derive(Deserialize, Default)]
struct EventsQuery {
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    severity: Option<String>,
    kind: Option<String>,
    room: Option<String>,
    device: Option<String>,
    q: Option<String>,
    /// Events looked at, newest first (default 1,000, at most 10,000).
    limit: Option<i64>,
    offset_min: Option<i32>,
}

pub(crate) async fn events_csv(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: EventsQuery = parse_query(raw.as_deref())?;
    let off = offset(q.offset_min)?;
    let events = app
        .store
        .list_events(&EventQuery {
            since_ms: q.since_ms,
            agent: None,
            device: q.device,
            limit: q.limit.unwrap_or(1000).clamp(1, 10_000),
        })
        .await?;
    let filter = EventFilter {
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        severity: q.severity,
        kind: q.kind,
        room: q.room,
        q: q.q,
    };
    let f = app.plant.facility.lock().await;
    let places = f
        .site
        .as_deref()
        .map(crate::engine::fire_view::places)
        .unwrap_or_default();
    let rows = export::event_rows(&events, f.site.as_deref(), &places, &filter);
    let body = export::events_csv(&rows, off);
    drop(f);
    Ok(csv_response(body, &file_name("events", off)))
}

#[derive(Deserialize, Default)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/search`: the query as understood and what matched, best first.
#[derive(Serialize)]
pub struct Search {
    pub query: String,
    pub results: Vec<crate::engine::search::SearchResult>,
}

pub(crate) async fn search(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Json<Search>, ApiError> {
    let q: SearchQuery = parse_query(raw.as_deref())?;
    let text = q.q.unwrap_or_default();
    if text.chars().count() > 200 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "query: q: expected at most 200 characters".into(),
        ));
    }
    let owned: Vec<(String, String, String)> = {
        let ing = app.intake.ingest.lock().expect("ingest lock");
        ing.latest()
            .map(|l| {
                (
                    l.sample.device.clone(),
                    l.sample.point.clone(),
                    l.sample.role.as_str().to_owned(),
                )
            })
            .collect()
    };
    let points: Vec<crate::engine::search::PointRef<'_>> = owned
        .iter()
        .map(|(d, p, r)| crate::engine::search::PointRef {
            device: d,
            point: p,
            role: r,
        })
        .collect();
    let descriptions: BTreeMap<&str, &str> = dcim_points::ROLES
        .iter()
        .map(|r| (r.name, r.description))
        .collect();
    let f = app.plant.facility.lock().await;
    let places = f
        .site
        .as_deref()
        .map(crate::engine::fire_view::places)
        .unwrap_or_default();
    let results = crate::engine::search::search(
        f.site.as_deref(),
        &places,
        &points,
        &descriptions,
        &text,
        q.limit.unwrap_or(20),
    );
    Ok(Json(Search {
        query: text,
        results,
    }))
}
