//! PUE and energy over HTTP: `GET /api/energy/pue` and `GET /api/energy/report`, over
//! [`crate::engine::energy`] (pure) and the meter the sampler in `crate::io::energy_io` feeds. Listed in
//! `api::ROUTES`.

use crate::app::App;
use crate::engine::energy::{self, HOUR_MS};
use crate::http::api_base::{ApiError, parse_query};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::io::energy_io::{SAMPLE_MS, power, site_meters};

type AppState = State<Arc<App>>;

fn no_site() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no site model configured (site_model in the config)".into(),
    )
}

#[derive(Deserialize, Default)]
struct PueQuery {
    from: Option<i64>,
    to: Option<i64>,
    step: Option<i64>,
}

/// `GET /api/energy/pue`: power and PUE now, and the PUE history over `from`..`to`.
#[derive(Serialize)]
pub struct Pue {
    pub now: energy::PowerNow,
    pub from: i64,
    pub to: i64,
    pub sample_ms: u64,
    pub history: energy::History,
}

pub(crate) async fn pue(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Json<Pue>, ApiError> {
    let q: PueQuery = parse_query(raw.as_deref())?;
    let now = app.now_ms();
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to - HOUR_MS);
    if from > to {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "query: from: expected a time (ms) not after `to`".into(),
        ));
    }
    let step = q.step.unwrap_or(energy::MINUTE_MS);
    if step < 0 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "query: step: expected a duration in ms >= 0".into(),
        ));
    }
    let (meters, stale) = site_meters(&app.plant).await.ok_or_else(no_site)?;
    let p = power(&app.intake, &meters, stale, now);
    let h = app
        .energy
        .lock()
        .expect("energy lock")
        .history(from, to, step, now);
    Ok(Json(Pue {
        now: p,
        from,
        to,
        sample_ms: SAMPLE_MS,
        history: h,
    }))
}

#[derive(Deserialize, Default)]
struct ReportQuery {
    /// `YYYY-MM`; default: the current month at `offset_min`.
    month: Option<String>,
    /// Minutes east of UTC of the report's days (default 0).
    offset_min: Option<i32>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

pub(crate) async fn report(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: ReportQuery = parse_query(raw.as_deref())?;
    let offset = crate::storage::export::check_offset(q.offset_min.unwrap_or(0))
        .map_err(|m| ApiError(StatusCode::BAD_REQUEST, format!("query: {m}")))?;
    let now = app.now_ms();
    let (year, month) = match q.month.as_deref() {
        Some(m) => energy::parse_month(m).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("query: month: `{m}`: expected YYYY-MM"),
            )
        })?,
        None => {
            let local = now + i64::from(offset) * energy::MINUTE_MS;
            let (y, m, _) = energy::civil_from_days(local.div_euclid(energy::DAY_MS));
            (y, m)
        }
    };
    if site_meters(&app.plant).await.is_none() {
        return Err(no_site());
    }
    let r = {
        let e = app.energy.lock().expect("energy lock");
        energy::month_report(e.hours(), year, month, offset, now)
    };
    Ok(match q.format.as_deref().unwrap_or("json") {
        "json" => Json(r).into_response(),
        "csv" => {
            let mut resp =
                format!("{}{}", crate::storage::export::BOM, energy::month_csv(&r)).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) =
                HeaderValue::from_str(&format!("attachment; filename=\"energy-{}.csv\"", r.month))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("query: format: `{other}`: expected json or csv"),
            ));
        }
    })
}
