//! Read-only routes the console and the fire authority's view are drawn from: the fire stage
//! table, the fire state of every rack and battery room, the place of each component, the role
//! vocabulary (names and units) and the alarm rules. Listed in `api::ROUTES`. The data shaping
//! is in [`crate::engine::fire_view`] (pure); this module only gathers its inputs.

use crate::app::App;
use crate::engine::fire_view::{self, FireEvent};
use crate::http::api_base::ApiError;
use crate::state::intake::Intake;
use crate::storage::store::EventQuery;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dcim_points::Sample;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

type AppState = State<Arc<App>>;

/// Stored events looked at per rack in a fire stage (newest first).
const EVENTS_PER_RACK: i64 = 200;

fn no_site() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no site model configured (site_model in the config)".into(),
    )
}

pub(crate) async fn stages() -> Result<Json<fire_view::StageTable>, ApiError> {
    Ok(Json(fire_view::stage_table()))
}

pub(crate) async fn summary(
    State(app): AppState,
) -> Result<Json<fire_view::FireSummary>, ApiError> {
    let devices: HashSet<String> = {
        let f = app.plant.facility.lock().await;
        let site = f.site.as_ref().ok_or_else(no_site)?;
        fire_view::devices_of_interest(site).into_iter().collect()
    };
    let now = app.now_ms();
    let (samples, stage_history) = latest_and_stage_history(&app.intake, &devices, now);
    let events = fire_events(&app, stage_history.keys()).await?;
    let mut readings: fire_view::Readings<'_> = BTreeMap::new();
    for s in &samples {
        readings
            .entry((s.device.as_str(), s.role.as_str()))
            .or_default()
            .push(s);
    }
    let f = app.plant.facility.lock().await;
    let site = f.site.as_ref().ok_or_else(no_site)?;
    let out = fire_view::summary(
        site,
        &fire_view::SummaryInput {
            readings: &readings,
            events: &events,
            stage_history: &stage_history,
            now_ms: now,
        },
    );
    Ok(Json(out))
}

/// `(bucket start, max)` of a device's recent `fire.stage` history, oldest first.
type StageHistory = BTreeMap<String, Vec<(i64, f64)>>;

/// The latest samples of `devices`, and the recent stage history (the ring's retention) of
/// those in a stage, read under one ingest lock.
fn latest_and_stage_history(
    intake: &Intake,
    devices: &HashSet<String>,
    now: i64,
) -> (Vec<Sample>, StageHistory) {
    let ing = intake.ingest.lock().expect("ingest lock");
    let samples: Vec<Sample> = ing
        .latest()
        .filter(|l| devices.contains(&l.sample.device))
        .map(|l| l.sample.clone())
        .collect();
    let cfg = ing.history_config();
    let mut hist = BTreeMap::new();
    for s in samples.iter().filter(|s| {
        s.role.as_str() == "fire.stage"
            && s.value
                .as_ref()
                .and_then(fire_view::stage_code)
                .is_some_and(|c| c > 0)
    }) {
        if let Some((_, buckets)) = ing.history(
            None,
            &s.device,
            &s.point,
            now - cfg.retention_ms(),
            now,
            cfg.resolution_ms,
        ) {
            hist.insert(
                s.device.clone(),
                buckets
                    .iter()
                    .filter(|b| b.n > 0)
                    .map(|b| (b.t_ms, b.max))
                    .collect::<Vec<_>>(),
            );
        }
    }
    (samples, hist)
}

/// The stored `fire.*` events of each device (the newest [`EVENTS_PER_RACK`] events looked at),
/// newest first.
async fn fire_events(
    app: &App,
    devices: impl Iterator<Item = &String>,
) -> Result<BTreeMap<String, Vec<FireEvent>>, ApiError> {
    let mut events: BTreeMap<String, Vec<FireEvent>> = BTreeMap::new();
    for device in devices {
        let rows = app
            .store
            .list_events(&EventQuery {
                since_ms: None,
                agent: None,
                device: Some(device.clone()),
                limit: EVENTS_PER_RACK,
            })
            .await?;
        events.insert(
            device.clone(),
            rows.into_iter()
                .filter(|e| e.kind.starts_with("fire."))
                .map(|e| FireEvent {
                    ts_ms: e.ts_ms,
                    kind: e.kind,
                    data: e.data,
                })
                .collect(),
        );
    }
    Ok(events)
}

/// `GET /api/site/places`: the place of each component, by id.
#[derive(Serialize)]
pub struct Places {
    pub places: BTreeMap<String, fire_view::Place>,
}

pub(crate) async fn places(State(app): AppState) -> Result<Json<Places>, ApiError> {
    let f = app.plant.facility.lock().await;
    let site = f.site.as_ref().ok_or_else(no_site)?;
    Ok(Json(Places {
        places: fire_view::places(site),
    }))
}

/// `GET /api/roles`: the point role vocabulary.
#[derive(Serialize)]
pub struct Roles {
    pub roles: Vec<RoleEntry>,
}

/// One role of the vocabulary.
#[derive(Serialize)]
pub struct RoleEntry {
    pub name: &'static str,
    /// Empty when unitless.
    pub unit: &'static str,
    /// `analog`, `binary`, ... (the role kind, lower case).
    pub kind: String,
    pub labels: &'static [&'static str],
    pub description: &'static str,
}

pub(crate) async fn roles() -> Result<Json<Roles>, ApiError> {
    let roles = dcim_points::ROLES
        .iter()
        .map(|r| RoleEntry {
            name: r.name,
            unit: r.unit,
            kind: format!("{:?}", r.kind).to_lowercase(),
            labels: r.labels,
            description: r.description,
        })
        .collect();
    Ok(Json(Roles { roles }))
}

/// `GET /api/alarm-rules`: the rules in force.
#[derive(Serialize)]
pub struct AlarmRules {
    pub rules: Vec<RuleEntry>,
}

/// A rule as configured, with the role it reads and whether its alarms may be shelved.
#[derive(Serialize)]
pub struct RuleEntry {
    #[serde(flatten)]
    pub rule: dcim_alarms::Rule,
    /// `null` when the condition reads no single role.
    pub role: Option<String>,
    /// Fire-stage and battery-temperature alarms are never shelved (the console does not offer
    /// it; the server refuses it).
    pub shelvable: bool,
}

pub(crate) async fn alarm_rules(State(app): AppState) -> Result<Json<AlarmRules>, ApiError> {
    let f = app.plant.facility.lock().await;
    let rules = f
        .engine
        .rules()
        .iter()
        .map(|r| RuleEntry {
            role: r.role().map(str::to_owned),
            shelvable: r.shelvable(),
            rule: r.clone(),
        })
        .collect();
    Ok(Json(AlarmRules { rules }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rule_is_served_with_every_field_of_its_own_plus_role_and_shelvable() {
        // Hazard: a rule field lost (or renamed) in the flattened body: the console reads it as
        // absent and shows an alarm without its condition or, for `shelvable`, offers to shelve
        // a fire-stage alarm. The body must be the rule's own JSON with the two keys added.
        for rule in dcim_alarms::Rule::defaults() {
            let mut old = json!(rule);
            old["role"] = json!(rule.role());
            old["shelvable"] = json!(rule.shelvable());
            let body = RuleEntry {
                role: rule.role().map(str::to_owned),
                shelvable: rule.shelvable(),
                rule: rule.clone(),
            };
            assert_eq!(
                serde_json::to_value(&body).unwrap(),
                old,
                "rule {}",
                rule.id
            );
        }
    }
}
