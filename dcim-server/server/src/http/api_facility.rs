//! API routes over the engines: alarms, maintenance, incidents, site model, redundancy, what-if
//! and device status. Writes go through [`App::commit_changes`]: the journal, the snapshots and
//! the operator's audit record are committed in one transaction before the response.

use crate::app::App;
use crate::engine::facility::Changes;
use crate::http::api_base::Authorized;
use crate::http::api_base::{ApiError, parse_body};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcim_alarms::{
    Action, ActionError, Alarm, Field, Incident, IncidentError, Phase, Record, RoleKind,
};
use dcim_site::{ComponentHealth, LevelChange, RideThrough, SubsystemHealth};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

type AppState = State<Arc<App>>;

fn action_error(e: ActionError) -> ApiError {
    let code = match e {
        ActionError::UnknownAlarm(_) => StatusCode::NOT_FOUND,
        ActionError::NotAllowed { .. } => StatusCode::CONFLICT,
        ActionError::BadShelveTime | ActionError::NoUser | ActionError::ReasonRequired { .. } => {
            StatusCode::BAD_REQUEST
        }
        // Never shelvable (fire-stage, battery temperature): a policy, not a bad request.
        ActionError::NotShelvable { .. } => StatusCode::FORBIDDEN,
    };
    ApiError(code, e.to_string())
}

fn incident_error(e: IncidentError) -> ApiError {
    let code = match e {
        IncidentError::Unknown(_) => StatusCode::NOT_FOUND,
        IncidentError::BadPhase { .. }
        | IncidentError::NoCause { .. }
        | IncidentError::SameGrade { .. }
        | IncidentError::TooMany { .. } => StatusCode::CONFLICT,
        IncidentError::TooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError(code, e.to_string())
}

#[derive(Deserialize)]
struct AlarmsQuery {
    /// Include alarms back to normal.
    all: Option<bool>,
    /// Include the per-rack alarms hidden under their subsystem's alarm (`all` includes them).
    grouped: Option<bool>,
}

/// `GET /api/alarms`: the alarms asked for, and whether the engine is in a flood.
#[derive(Serialize)]
pub struct Alarms {
    pub alarms: Vec<Alarm>,
    pub flooding: bool,
}

pub(crate) async fn alarms(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Json<Alarms>, ApiError> {
    let q: AlarmsQuery = crate::http::api_base::parse_query(raw.as_deref())?;
    let f = app.plant.facility.lock().await;
    let alarms: Vec<Alarm> = if q.all.unwrap_or(false) {
        f.engine.alarms().cloned().collect()
    } else {
        let grouped = q.grouped.unwrap_or(false);
        f.engine
            .active()
            .filter(|a| grouped || !f.engine.is_grouped_out(a))
            .cloned()
            .collect()
    };
    Ok(Json(Alarms {
        alarms,
        flooding: f.engine.is_flooding(),
    }))
}

#[derive(Deserialize)]
struct JournalQuery {
    since_id: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/alarms/{id}/journal`.
#[derive(Serialize)]
pub struct Journal {
    pub journal: Vec<crate::storage::store::JournalRecord>,
}

pub(crate) async fn alarm_journal(
    State(app): AppState,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Journal>, ApiError> {
    let q: JournalQuery = crate::http::api_base::parse_query(raw.as_deref())?;
    let rows = app
        .store
        .list_journal(
            Some(&id),
            q.since_id.unwrap_or(0),
            q.limit.unwrap_or(500).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(Journal { journal: rows }))
}

#[derive(Deserialize)]
struct ShelveBody {
    until_ms: Option<i64>,
    minutes: Option<i64>,
    /// Why (required; kept in the alarm's journal with the shelving and in the audit log).
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

async fn commit(
    app: &App,
    f: &crate::engine::facility::Facility,
    changes: &Changes,
    user: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    app.commit_changes(f, changes, Some((user, action, target, detail)))
        .await
        .map_err(ApiError::from)
}

/// The engine action an `/api/alarms/{id}/{action}` request asks for, and the shelving reason
/// (trimmed; `None` when empty or not shelving).
fn parse_alarm_action(
    action: &str,
    body: &Bytes,
    now: i64,
) -> Result<(Action, Option<String>), ApiError> {
    let mut reason = None;
    let act = match action {
        "ack" => Action::Ack,
        "shelve" => {
            let b: ShelveBody = parse_body(body)?;
            reason = b
                .reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty());
            let until_ms = match (b.until_ms, b.minutes) {
                (Some(t), _) => t,
                (None, Some(m)) => now + m * 60_000,
                _ => {
                    return Err(ApiError(
                        StatusCode::BAD_REQUEST,
                        "shelve needs until_ms or minutes".into(),
                    ));
                }
            };
            Action::Shelve {
                until_ms,
                reason: reason.clone().unwrap_or_default(),
            }
        }
        "unshelve" => Action::Unshelve,
        "comment" => Action::Comment {
            text: parse_body::<TextBody>(body)?.text,
        },
        "out_of_service" => Action::OutOfService,
        "return_to_service" => Action::ReturnToService,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown alarm action `{other}`: ack, shelve, unshelve, comment, out_of_service, return_to_service"
                ),
            ));
        }
    };
    Ok((act, reason))
}

/// `POST /api/alarms/{id}/{action}`: the alarm after the action (`null` if it is gone) and the
/// engine's records of it.
#[derive(Serialize)]
pub struct AlarmActed {
    pub alarm: Option<Alarm>,
    pub records: Vec<Record>,
}

pub(crate) async fn alarm_action(
    Authorized(p): Authorized,
    State(app): AppState,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<AlarmActed>, ApiError> {
    let now = app.now_ms();
    let (act, reason) = parse_alarm_action(&action, &body, now)?;
    let mut detail = serde_json::to_value(&act).unwrap_or_default();
    if let Some(r) = &reason {
        detail["reason"] = json!(r);
    }
    // Authority control: shelving and out-of-service are refused (423, audited).
    let kind = crate::engine::authority::ActionKind::of_alarm_action(&action)
        .unwrap_or(crate::engine::authority::ActionKind::AlarmShelve);
    let _authority =
        crate::http::api_authority::guard(&app, &p, kind, &format!("alarm/{id}")).await?;
    let mut f = app.plant.facility.lock().await;
    let changes = match f.act(&id, act, &p.user, now) {
        Ok(c) => c,
        // A refusal by policy (never shelvable, no reason) is audited like the attempt.
        Err(e @ (ActionError::NotShelvable { .. } | ActionError::ReasonRequired { .. })) => {
            drop(f);
            app.audit(
                &p.user,
                &format!("alarm.{action}.refused"),
                &format!("alarm/{id}"),
                json!({"request": detail, "error": e.to_string()}),
            )
            .await?;
            return Err(action_error(e));
        }
        Err(e) => return Err(action_error(e)),
    };
    commit(
        &app,
        &f,
        &changes,
        &p.user,
        &format!("alarm.{action}"),
        &format!("alarm/{id}"),
        detail,
    )
    .await?;
    Ok(Json(AlarmActed {
        alarm: f.engine.get(&id).cloned(),
        records: changes.records,
    }))
}

/// `GET /api/maintenance`: the devices and components in maintenance.
#[derive(Serialize)]
pub struct Maintenance {
    pub maintenance: BTreeSet<String>,
}

pub(crate) async fn maintenance(State(app): AppState) -> Result<Json<Maintenance>, ApiError> {
    let f = app.plant.facility.lock().await;
    Ok(Json(Maintenance {
        maintenance: f.maintenance().clone(),
    }))
}

/// `POST /api/maintenance`: the set after the change and the engine's records of it.
#[derive(Serialize)]
pub struct MaintenanceSet {
    pub maintenance: BTreeSet<String>,
    pub records: Vec<Record>,
}

#[derive(Deserialize)]
struct MaintenanceBody {
    subject: String,
    on: bool,
    /// Why (the console always asks); audited.
    reason: Option<String>,
}

pub(crate) async fn set_maintenance(
    Authorized(p): Authorized,
    State(app): AppState,
    body: Bytes,
) -> Result<Json<MaintenanceSet>, ApiError> {
    let b: MaintenanceBody = parse_body(&body)?;
    let _authority = crate::http::api_authority::guard(
        &app,
        &p,
        crate::engine::authority::ActionKind::Maintenance,
        &b.subject,
    )
    .await?;
    let mut f = app.plant.facility.lock().await;
    let changes = f.set_maintenance(&b.subject, b.on, &p.user, app.now_ms());
    commit(
        &app,
        &f,
        &changes,
        &p.user,
        "maintenance.set",
        &b.subject,
        json!({"on": b.on, "reason": b.reason}),
    )
    .await?;
    Ok(Json(MaintenanceSet {
        maintenance: f.maintenance().clone(),
        records: changes.records,
    }))
}

/// `GET /api/incidents`.
#[derive(Serialize)]
pub struct Incidents {
    pub incidents: Vec<Incident>,
}

pub(crate) async fn incidents(State(app): AppState) -> Result<Json<Incidents>, ApiError> {
    let f = app.plant.facility.lock().await;
    Ok(Json(Incidents {
        incidents: f.incidents.list.clone(),
    }))
}

/// One incident: `GET /api/incidents/{id}`, and the answer of opening one and of every
/// operation on one.
#[derive(Serialize)]
pub struct IncidentBody {
    pub incident: Option<Incident>,
}

fn incident_id(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no incident `{s}`")))
}

pub(crate) async fn incident(
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<IncidentBody>, ApiError> {
    let id = incident_id(&id)?;
    let f = app.plant.facility.lock().await;
    let inc = f
        .incidents
        .get(id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no incident {id}")))?;
    Ok(Json(IncidentBody {
        incident: Some(inc.clone()),
    }))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

pub(crate) async fn export_incident(
    State(app): AppState,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: ExportQuery = crate::http::api_base::parse_query(raw.as_deref())?;
    let id = incident_id(&id)?;
    let f = app.plant.facility.lock().await;
    let inc = f
        .incidents
        .get(id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no incident {id}")))?;
    Ok(match q.format.as_deref().unwrap_or("markdown") {
        "json" => ([(header::CONTENT_TYPE, "application/json")], inc.to_json()).into_response(),
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            inc.to_markdown(),
        )
            .into_response(),
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("format `{other}`: markdown or json"),
            ));
        }
    })
}

#[derive(Deserialize)]
struct OpenBody {
    title: String,
    grade: u8,
}

pub(crate) async fn open_incident(
    Authorized(p): Authorized,
    State(app): AppState,
    body: Bytes,
) -> Result<(StatusCode, Json<IncidentBody>), ApiError> {
    let b: OpenBody = parse_body(&body)?;
    let mut f = app.plant.facility.lock().await;
    let id = f
        .incidents
        .open(&b.title, b.grade, &p.user, app.now_ms())
        .map_err(incident_error)?;
    let changes = Changes {
        records: Vec::new(),
        incidents: vec![dcim_alarms::IncidentEvent::Opened { id, grade: b.grade }],
        ..Default::default()
    };
    commit(
        &app,
        &f,
        &changes,
        &p.user,
        "incident.open",
        &format!("incident/{id}"),
        json!({"title": b.title, "grade": b.grade}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(IncidentBody {
            incident: f.incidents.get(id).cloned(),
        }),
    ))
}

#[derive(Deserialize)]
struct OpBody {
    phase: Option<Phase>,
    grade: Option<u8>,
    text: Option<String>,
    role: Option<RoleKind>,
    person: Option<String>,
    field: Option<Field>,
    owner: Option<String>,
    index: Option<usize>,
}

fn need<T>(v: Option<T>, what: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, format!("missing `{what}`")))
}

pub(crate) async fn incident_op(
    Authorized(p): Authorized,
    State(app): AppState,
    Path((id, op)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<IncidentBody>, ApiError> {
    let id = incident_id(&id)?;
    let b: OpBody = parse_body(if body.is_empty() { b"{}" } else { &body })?;
    let detail: serde_json::Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let now = app.now_ms();
    let u = p.user.as_str();
    let mut f = app.plant.facility.lock().await;
    let inc = &mut f.incidents;
    let ev = match op.as_str() {
        "advance" => inc.advance(id, need(b.phase, "phase")?, u, now),
        "grade" => inc.set_grade(id, need(b.grade, "grade")?, u, now),
        "note" => inc.note(id, &need(b.text, "text")?, u, now),
        "assign" => inc.assign(id, need(b.role, "role")?, &need(b.person, "person")?, u, now),
        "field" => inc.set_field(id, need(b.field, "field")?, &need(b.text, "text")?, u, now),
        "follow_up" => inc.add_follow_up(id, &need(b.text, "text")?, b.owner.as_deref(), u, now),
        "complete_follow_up" => inc.complete_follow_up(id, need(b.index, "index")?, u, now),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown incident operation `{other}`: advance, grade, note, assign, field, follow_up, complete_follow_up"),
            ));
        }
    }
    .map_err(incident_error)?;
    let changes = Changes {
        records: Vec::new(),
        incidents: vec![ev],
        ..Default::default()
    };
    commit(
        &app,
        &f,
        &changes,
        u,
        &format!("incident.{op}"),
        &format!("incident/{id}"),
        detail,
    )
    .await?;
    Ok(Json(IncidentBody {
        incident: f.incidents.get(id).cloned(),
    }))
}

/// OpenAPI schemas of `/api/site/redundancy` (see `dcim_site::engine` for the definitions).
pub fn schemas() -> serde_json::Value {
    let level = json!({"type": "string", "enum": ["2N", "N+1", "N", "below_n"]});
    json!({
        "Level": level,
        "Redundancy": {
            "type": "object",
            "properties": {
                "subsystems": {"type": "array", "items": {"$ref": "#/components/schemas/SubsystemHealth"}},
                "ride_through": {"type": "array", "items": {"$ref": "#/components/schemas/RideThrough"}},
                "components": {"type": "array", "items": {"$ref": "#/components/schemas/ComponentHealth"},
                    "description": "With components=true."}
            }
        },
        "SubsystemHealth": subsystem_health_schema(),
        "SupplyHealth": supply_health_schema(),
        "ComponentHealth": component_health_schema(),
        "RideThrough": ride_through_schema()
    })
}

/// A list of component or consumer ids.
fn ids_schema() -> serde_json::Value {
    json!({"type": "array", "items": {"type": "string"}})
}

/// `SubsystemHealth`: one subsystem's redundancy, the worst over its consumers.
fn subsystem_health_schema() -> serde_json::Value {
    let ids = ids_schema();
    json!({
        "type": "object",
        "description": "A subsystem (power, cooling, network): the worst over its consumers (racks).",
        "properties": {
            "subsystem": {"type": "string"},
            "designed": {"$ref": "#/components/schemas/Level"},
            "current": {"$ref": "#/components/schemas/Level", "description": "Proven by components that are Up: below_n on a site that has not reported."},
            "if_unknown_up": {"$ref": "#/components/schemas/Level", "description": "The level if every Unknown component were up."},
            "verified": {"type": "boolean", "description": "Unknown components change no consumer's level."},
            "unverified": {"type": "array", "items": {"type": "string"}, "description": "Unknown components the consumers depend on."},
            "unverified_consumers": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string", "description": "For people: `2N`, or `unverified: N proven, 2N if the 4 unknown components are up`."},
            "consumers": {"type": "integer"},
            "min_live_paths": {"type": "integer", "description": "Fewest proven live paths of any consumer."},
            "lost": ids, "degraded": ids,
            "spare_after_one": {"type": "number", "nullable": true},
            "spare_after_one_at": {"type": "string", "nullable": true},
            "single_points_of_failure": ids,
            "unknown": ids, "maintenance": ids, "down": ids,
            "unmonitored": {"type": "array", "items": {"type": "string"}, "description": "Components with no state point bound (assumed up while a point of theirs is fresh)."}
        }
    })
}

/// `SupplyHealth`: one component's supply in one subsystem.
fn supply_health_schema() -> serde_json::Value {
    let ids = ids_schema();
    json!({
        "type": "object",
        "properties": {
            "subsystem": {"type": "string"},
            "supplied": {"type": "boolean", "description": "Not known to be lost (Unknown counted as up)."},
            "proven_supplied": {"type": "boolean"},
            "designed": {"$ref": "#/components/schemas/Level"},
            "current": {"$ref": "#/components/schemas/Level", "description": "Proven."},
            "if_unknown_up": {"$ref": "#/components/schemas/Level"},
            "verified": {"type": "boolean"},
            "unverified": ids,
            "summary": {"type": "string"},
            "designed_paths": {"type": "integer"},
            "live_paths": {"type": "integer", "description": "Proven."},
            "live_paths_if_unknown_up": {"type": "integer"},
            "spare_after_one": {"type": "number", "nullable": true},
            "single_points_of_failure": ids
        }
    })
}

/// `ComponentHealth`: one component's state, energisation and supplies.
fn component_health_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"},
            "state": {"type": "string", "enum": ["up", "down", "unknown", "maintenance"], "description": "Unknown for longer than [status] down_after_ms is down."},
            "reason": {"type": "string"},
            "monitored": {"type": "boolean"},
            "unknown_since_ms": {"type": "integer", "nullable": true},
            "energised": {"type": "boolean", "nullable": true, "description": "From measured voltage, else flow, else the switch position; null when unknown or not a power component."},
            "energised_by": {"type": "string", "nullable": true},
            "mismatch": {"type": "string", "nullable": true, "description": "Switch position and measurement disagree (a breaker-mismatch trouble)."},
            "available": {"type": "boolean"}, "proven_available": {"type": "boolean"},
            "load": {"type": "array", "items": {"type": "number", "nullable": true}},
            "supply": {"type": "array", "items": {"$ref": "#/components/schemas/SupplyHealth"}}
        }
    })
}

/// `RideThrough`: stored cooling over the chillers' deficit.
fn ride_through_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "description": "Stored cooling over the deficit (heat load - capacity of the chillers that are Up).",
        "properties": {
            "tank": {"type": "string"},
            "minutes": {"type": "number", "nullable": true, "description": "At the present deficit; null when the tank is not drawn or inputs are unknown."},
            "minutes_if_chillers_stop": {"type": "number", "nullable": true},
            "drawing": {"type": "boolean"},
            "heat_load_kw": {"type": "number", "nullable": true},
            "chiller_capacity_kw": {"type": "number"},
            "deficit_kw": {"type": "number", "nullable": true},
            "tank_temp_c": {"type": "number", "nullable": true},
            "level_pct": {"type": "number", "nullable": true},
            "chillers_available": {"type": "integer", "description": "Proven (Up)."},
            "chillers_unknown": {"type": "integer"},
            "chillers_total": {"type": "integer"}
        }
    })
}

fn no_site() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no site model configured (site_model in the config)".into(),
    )
}

/// `GET /api/site`: the site model.
#[derive(Serialize)]
pub struct SiteModel {
    #[serde(serialize_with = "shared")]
    pub site: Arc<dcim_site::Site>,
}

/// Serialises what an `Arc` holds (the facility shares the site model).
fn shared<S: serde::Serializer, T: Serialize>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
    T::serialize(v, s)
}

pub(crate) async fn site(State(app): AppState) -> Result<Json<SiteModel>, ApiError> {
    // Serialised without the lock.
    let site = app
        .plant
        .facility
        .lock()
        .await
        .site
        .clone()
        .ok_or_else(no_site)?;
    Ok(Json(SiteModel { site }))
}

#[derive(Deserialize)]
struct RedundancyQuery {
    components: Option<bool>,
}

/// `GET /api/site/redundancy` (its OpenAPI schema is `Redundancy` in [`schemas`]).
#[derive(Serialize)]
pub struct Redundancy {
    pub subsystems: Vec<SubsystemHealth>,
    pub ride_through: Vec<RideThrough>,
    /// Only with `components=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentHealth>>,
}

pub(crate) async fn redundancy(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Json<Redundancy>, ApiError> {
    let q: RedundancyQuery = crate::http::api_base::parse_query(raw.as_deref())?;
    // Serialised without the lock.
    let ev = app
        .plant
        .facility
        .lock()
        .await
        .evaluation(app.now_ms())
        .ok_or_else(no_site)?;
    Ok(Json(Redundancy {
        subsystems: ev.subsystems.clone(),
        ride_through: ev.ride_through.clone(),
        components: q.components.unwrap_or(false).then(|| ev.components.clone()),
    }))
}

#[derive(Deserialize)]
struct WhatIfQuery {
    /// Comma-separated component ids.
    fail: Option<String>,
}

/// `GET /api/site/whatif`: what the failures take away, and the evaluation after them.
#[derive(Serialize)]
pub struct WhatIf {
    pub failed: Vec<String>,
    pub loses_power: Vec<String>,
    pub loses_cooling: Vec<String>,
    pub loses_network: Vec<String>,
    pub loses_redundancy: Vec<LevelChange>,
    pub subsystems_after: Vec<SubsystemHealth>,
    pub ride_through_after: Vec<RideThrough>,
}

pub(crate) async fn what_if(
    State(app): AppState,
    RawQuery(raw): RawQuery,
) -> Result<Json<WhatIf>, ApiError> {
    let q: WhatIfQuery = crate::http::api_base::parse_query(raw.as_deref())?;
    let fail = need(q.fail, "fail")?;
    let failed: Vec<&str> = fail
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut f = app.plant.facility.lock().await;
    let w = f
        .what_if(&failed, app.now_ms())
        .ok_or_else(no_site)?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(WhatIf {
        failed: w.failed,
        loses_power: w.loses_power,
        loses_cooling: w.loses_cooling,
        loses_network: w.loses_network,
        loses_redundancy: w.loses_redundancy,
        subsystems_after: w.after.subsystems,
        ride_through_after: w.after.ride_through,
    }))
}

/// `GET /api/status`: the status of every device, by id.
#[derive(Serialize)]
pub struct Statuses {
    pub devices: BTreeMap<String, dcim_points::Status>,
}

pub(crate) async fn statuses(State(app): AppState) -> Result<Json<Statuses>, ApiError> {
    // Linear in the devices and their points; serialised without the lock.
    let inputs = app.plant.facility.lock().await.status_inputs();
    let statuses = {
        let ing = app.intake.ingest.lock().expect("ingest lock");
        crate::engine::facility::device_statuses(&inputs, &*ing, app.now_ms())
    };
    Ok(Json(Statuses { devices: statuses }))
}

/// `POST /api/devices/{device}/commands`: the command as published and its topic.
#[derive(Serialize)]
pub struct CommandSent {
    pub command: dcim_wire::Command,
    pub topic: String,
}

/// Sends one of the wire contract's commands (acknowledge, time_sync, test_mode,
/// inhibit_sensor) to the agent that owns the device. Safety actions are not representable in
/// `dcim_wire::CommandKind`, so they cannot be sent. The audit record is committed before the
/// command is published; the agent's `cmd_result` is audited when it arrives.
pub(crate) async fn send_command(
    Authorized(p): Authorized,
    State(app): AppState,
    Path(device): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CommandSent>), ApiError> {
    let kind: dcim_wire::CommandKind = parse_body(&body)?;
    if dcim_wire::check_identifier(&device).is_err() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "device id: 1-64 of [A-Za-z0-9._-]".into(),
        ));
    }
    let Some(agent) = app
        .config
        .agents
        .iter()
        .find(|a| a.may_publish_for(&device))
    else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no configured agent owns device `{device}`"),
        ));
    };
    // Authority control: no command is sent while the fire authority is in command (423,
    // audited); the lock is held until the command is published.
    let _authority = crate::http::api_authority::guard(
        &app,
        &p,
        crate::engine::authority::ActionKind::DeviceCommand,
        &device,
    )
    .await?;
    let Some(client) = app.intake.mqtt.get() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker client not started".into(),
        ));
    };
    let cmd = dcim_wire::Command {
        v: dcim_wire::VERSION,
        id: crate::state::auth::new_token("cmd-")[..20].to_string(),
        device: device.clone(),
        user: p.user.clone(),
        kind,
    };
    let topic = dcim_wire::Topic::new(
        &agent.site,
        &agent.id,
        dcim_wire::Channel::Command {
            device: device.clone(),
        },
    )
    .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    app.audit(
        &p.user,
        "command.send",
        &topic.to_string(),
        serde_json::to_value(&cmd).unwrap_or_default(),
    )
    .await?;
    client
        .publish(
            topic.to_string(),
            rumqttc::QoS::AtLeastOnce,
            false,
            dcim_wire::encode(&cmd),
        )
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("broker: {e}")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CommandSent {
            command: cmd,
            topic: topic.to_string(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redundancy_lists_components_only_when_asked() {
        // Hazard: `components: null` without `components=true` would read as a site with no
        // components; the key is absent unless asked for, as before.
        let body = Redundancy {
            subsystems: Vec::new(),
            ride_through: Vec::new(),
            components: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"subsystems": [], "ride_through": []})
        );
        let body = Redundancy {
            components: Some(Vec::new()),
            ..body
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"subsystems": [], "ride_through": [], "components": []})
        );
    }

    #[test]
    fn an_operation_on_a_gone_incident_answers_null() {
        // Hazard: the key missing instead of null when the incident is gone.
        let body = IncidentBody { incident: None };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"incident": null})
        );
    }
}
