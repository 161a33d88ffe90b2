//! REST + SSE API (axum). Every route but `/health` needs a session cookie or a bearer token;
//! state-changing requests with a session cookie also need the CSRF token (`X-CSRF-Token`
//! header, double-submitted from the `dcim_csrf` cookie) and an acceptable `Origin`. Every write
//! is audited and committed before the response is sent.
//!
//! [`ROUTES`] is the single declaration of routes: the router is built from it, each route's
//! authorisation runs from its declared access before the handler (`api_base::authorize_route`;
//! handlers receive the principal as `Authorized`), and the OpenAPI document and the auth tests
//! read it.
//!
//! `/api/stream?heartbeat_ms=N` adds a `heartbeat` event after N ms without another one, so a
//! client can tell a quiet stream from a dead one; the stream checks its credentials again every
//! 5 s (a revoked session or token, a disabled user ends it). Shelving takes an optional `reason`
//! (journalled on the alarm as a comment), maintenance an optional `reason` (audited); the console
//! always asks for both.

use crate::app::App;
use crate::config::Role;
use crate::http::api_base::Authorized;
use crate::http::api_base::r;
use crate::state::auth::Access;
use crate::state::intake::Intake;
use crate::storage::store::{EventQuery, UserRecord};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use crate::http::api_base::{
    ApiError, CSRF_COOKIE, CSRF_HEADER, Principal, RouteDoc, SESSION_COOKIE, authorize, header_str,
    parse_body, parse_query,
};

/// The API: every route of [`ROUTES`] with its authorisation, the console's files, and the
/// follower's refusal of leader-only writes.
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        router = router.route(route.path, route.method_router(&app));
    }
    router
        .merge(crate::base::console::router())
        // Multi-site: a follower refuses the writes that need the leader, naming it.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::http::api_cluster::refuse_writes_on_follower,
        ))
        .with_state(app)
}

/// Every API route, declared once: routing, authorisation ([`crate::http::api_base::authorize_route`]),
/// the OpenAPI document and the auth tests all read this table.
pub const ROUTES: &[RouteDoc] = &[
    r(
        "GET",
        "/health",
        None,
        "Health of every part (store, disk, broker, ingest, essential tasks, time-series store, DC-09 paths): status ok|degraded|failing with a reason per check; 503 while failing; no authentication. For the whole disk-full episode: `degraded` with top-level `store: \"disk full\"`, `free_bytes` and `reserve_bytes` (and the store and disk checks say so); a failed write: top-level `store: \"write failed\"`. On a multi-site replica, the `cluster` check: a follower that cannot reload the leader's alarm state is `degraded` (what it shows may be out of date).",
        |m| on(m, health),
    ),
    r(
        "POST",
        "/api/login",
        None,
        "Sign in with {username, password} (body at most 8 KiB); sets the session, CSRF and device cookies. 401 on a wrong name or password (known and unknown names answer alike); 429 with Retry-After while the address, the user name or the device is locked after repeated failures; 503 with Retry-After when too many sign-ins wait for a password hash.",
        |m| on(m, crate::http::api_auth::login),
    ),
    r(
        "POST",
        "/api/logout",
        Some(Access::Read),
        "End the current session.",
        |m| on(m, logout),
    ),
    r(
        "GET",
        "/api/me",
        Some(Access::Read),
        "The signed-in user and role.",
        |m| on(m, me),
    ),
    r(
        "GET",
        "/api/points",
        Some(Access::Read),
        "Latest value of every point; filters: site, agent, device, role, limit.",
        |m| on(m, points),
    ),
    r(
        "GET",
        "/api/points/{device}",
        Some(Access::Read),
        "Latest values of one device's points.",
        |m| on(m, device_points),
    ),
    r(
        "GET",
        "/api/points/{device}/{point}/history",
        Some(Access::Read),
        "History of one numeric point: time buckets {t_ms, n, min, max, last} of good-quality samples; query from, to (ms, default the last hour), step (ms, a multiple of [history] resolution_ms), site. From the time-series store when [influx] query_url is set (what it does not hold yet from memory), else from the in-memory ring (since the server started, the last hour by default); `source` (store, memory, store+memory), `covers` {from, to} and `sources` say which answered for which range, `fallback_reason` why the store did not.",
        |m| on(m, point_history),
    ),
    r(
        "GET",
        "/api/agents",
        Some(Access::Read),
        "Configured and seen edge agents with their last state.",
        |m| on(m, agents),
    ),
    r(
        "GET",
        "/api/events",
        Some(Access::Read),
        "Stored events, newest first; filters: since_ms, agent, device, limit.",
        |m| on(m, events),
    ),
    r(
        "GET",
        "/api/stream",
        Some(Access::Read),
        "Server-sent events (each only to roles its REST twin allows: audit to admins only; the stream ends when its session or token is revoked or its user disabled, checked every 5 s): points, event, agent, alarm, incident, audit, authority, maintenance (the maintenance schedule changed), redundancy (a subsystem's or rack's level changed: subsystem, rack, designed, before and current (proven), if_unknown_up, verified, ts_ms), lagged; events=a,b to filter; heartbeat_ms=N (500..=60000): a `heartbeat` event (data: the server time in ms) after N ms without another event, so a client can tell a silent stream from a dead one.",
        |m| on(m, stream),
    ),
    r(
        "GET",
        "/api/openapi.json",
        Some(Access::Read),
        "This document.",
        |m| on(m, openapi),
    ),
    r(
        "GET",
        "/metrics",
        Some(Access::Read),
        "Metrics of the server itself (OpenMetrics): counters, histograms (ingest-to-alarm, commit time), build, process, time-series buffer and DC-09; also with the [metrics] scrape token, or without authentication on [metrics] listen.",
        |m| on(m, metrics),
    )
    .with_scrape_token(),
    r(
        "GET",
        "/api/alarms",
        Some(Access::Read),
        "Alarms not in normal (all=true: every alarm; grouped=true: with the per-rack alarms hidden under their subsystem's), and the flood flag.",
        |m| on(m, crate::http::api_facility::alarms),
    ),
    r(
        "GET",
        "/api/alarms/{id}/journal",
        Some(Access::Read),
        "Journal of one alarm (every transition and action).",
        |m| on(m, crate::http::api_facility::alarm_journal),
    ),
    r(
        "POST",
        "/api/alarms/{id}/{action}",
        Some(Access::Operate),
        "ack | shelve {until_ms|minutes, reason} (a reason is required and journalled as a comment; fire-stage and battery-temperature alarms are never shelved: 403, audited as alarm.shelve.refused) | unshelve | comment {text} | out_of_service | return_to_service.",
        |m| on(m, crate::http::api_facility::alarm_action),
    ),
    r(
        "GET",
        "/api/maintenance",
        Some(Access::Read),
        "Devices and components in maintenance.",
        |m| on(m, crate::http::api_facility::maintenance),
    ),
    r(
        "POST",
        "/api/maintenance",
        Some(Access::Operate),
        "Put a device or component in maintenance, or take it out {subject, on, reason (audited)}.",
        |m| on(m, crate::http::api_facility::set_maintenance),
    ),
    r(
        "GET",
        "/api/maintenance/windows",
        Some(Access::Read),
        "Maintenance windows scheduled in advance: subjects, who, reason, from_ms, to_ms, status (scheduled, active, ended, cancelled), the subjects each put in maintenance, held under authority control.",
        |m| on(m, crate::http::api_windows::list),
    ),
    r(
        "POST",
        "/api/maintenance/windows",
        Some(Access::Operate),
        "Schedule a maintenance window {subjects: [component or device ids], who, reason, from_ms, to_ms}: it puts its subjects in maintenance at from_ms and takes them out at to_ms by itself (audited; held under authority control).",
        |m| on(m, crate::http::api_windows::create),
    ),
    r(
        "POST",
        "/api/maintenance/windows/{id}/cancel",
        Some(Access::Operate),
        "Cancel a scheduled window, or end an active one now {reason}; ending an active one is refused (423) under authority control.",
        |m| on(m, crate::http::api_windows::cancel),
    ),
    r(
        "GET",
        "/api/energy/pue",
        Some(Access::Read),
        "PUE computed on the server: now (facility and IT power, only when every meter reports; what is missing otherwise) and its history from integrated energy; query from, to (ms), step (ms): minute buckets for the last 48 h, hour buckets for 400 days, each with its covered time.",
        |m| on(m, crate::http::api_energy::pue),
    ),
    r(
        "GET",
        "/api/energy/report",
        Some(Access::Read),
        "Monthly energy report: facility and IT energy (kWh), PUE and covered time per local day and for the month; query month (YYYY-MM), offset_min (minutes east of UTC), format=json (default) or csv.",
        |m| on(m, crate::http::api_energy::report),
    ),
    r(
        "GET",
        "/api/export/alarms.csv",
        Some(Access::Read),
        "The alarm list as CSV (UTF-8), filtered like the console: grade, subsystem, state (a state, needs_ack or suppressed), room, q (words), all=true; times at offset_min (minutes east of UTC).",
        |m| on(m, crate::http::api_export::alarms_csv),
    ),
    r(
        "GET",
        "/api/export/events.csv",
        Some(Access::Read),
        "The event list as CSV (UTF-8): since_ms, until_ms, severity, kind (or a prefix ending in `.`), room, device, q (words), limit (default 1000); times at offset_min.",
        |m| on(m, crate::http::api_export::events_csv),
    ),
    r(
        "GET",
        "/api/search",
        Some(Access::Read),
        "Search racks, components, devices and points by id, name, room, row, role or description: q (words, all must match), limit (default 20, at most 100).",
        |m| on(m, crate::http::api_export::search),
    ),
    r(
        "GET",
        "/api/incidents",
        Some(Access::Read),
        "Incidents with their journals.",
        |m| on(m, crate::http::api_facility::incidents),
    ),
    r(
        "POST",
        "/api/incidents",
        Some(Access::Operate),
        "Open an incident {title, grade}.",
        |m| on(m, crate::http::api_facility::open_incident),
    ),
    r(
        "GET",
        "/api/incidents/{id}",
        Some(Access::Read),
        "One incident.",
        |m| on(m, crate::http::api_facility::incident),
    ),
    r(
        "GET",
        "/api/incidents/{id}/export",
        Some(Access::Read),
        "Export as format=markdown (default) or json.",
        |m| on(m, crate::http::api_facility::export_incident),
    ),
    r(
        "POST",
        "/api/incidents/{id}/{op}",
        Some(Access::Operate),
        "advance {phase} | grade {grade} | note {text} | assign {role, person} | field {field, text} | follow_up {text, owner} | complete_follow_up {index}.",
        |m| on(m, crate::http::api_facility::incident_op),
    ),
    r(
        "GET",
        "/api/site",
        Some(Access::Read),
        "The site model.",
        |m| on(m, crate::http::api_facility::site),
    ),
    r(
        "GET",
        "/api/site/places",
        Some(Access::Read),
        "Where each rack, battery room, row, room, PDU and CRAH is: building (the site), room, row and position in the row (the site model has no coordinates).",
        |m| on(m, crate::http::api_console::places),
    ),
    r(
        "GET",
        "/api/fire/stages",
        Some(Access::Read),
        "The fire stage table of the fire logic: code, key, name, entry condition, default threshold (°C), actions added and all actions commanded at the stage; every action with its name and feedback role.",
        |m| on(m, crate::http::api_console::stages),
    ),
    r(
        "GET",
        "/api/fire/summary",
        Some(Access::Read),
        "Every rack and battery room at pre-alarm or above, most severe first: stage by name, the reading behind it (stale ones keep their last stage), since when, the trigger (source and °C), the actions with their feedback, the place; the racks with no usable stage reading; counts per stage.",
        |m| on(m, crate::http::api_console::summary),
    ),
    r(
        "GET",
        "/api/roles",
        Some(Access::Read),
        "The point role vocabulary: name, unit, kind, labels, description.",
        |m| on(m, crate::http::api_console::roles),
    ),
    r(
        "GET",
        "/api/alarm-rules",
        Some(Access::Read),
        "The alarm rules in force (id, name, grade, condition, the role it reads, and `shelvable`: false for fire-stage and battery-temperature rules, whose alarms are never shelved).",
        |m| on(m, crate::http::api_console::alarm_rules),
    ),
    r(
        "GET",
        "/api/site/redundancy",
        Some(Access::Read),
        "Redundancy per subsystem (`SubsystemHealth`: `current` is the level proven by components that are Up, `if_unknown_up` what Unknown ones would give, `verified`, `unverified`, `summary`) and buffer-tank ride-through (`RideThrough`); components=true adds every component (`ComponentHealth`, with `energised` from measurement and per-supply `SupplyHealth`).",
        |m| on(m, crate::http::api_facility::redundancy),
    ),
    r(
        "GET",
        "/api/site/whatif",
        Some(Access::Read),
        "fail=a,b: what loses power, cooling, network or redundancy if these components fail.",
        |m| on(m, crate::http::api_facility::what_if),
    ),
    r(
        "GET",
        "/api/status",
        Some(Access::Read),
        "Up/Down/Warning/Maintenance/Unknown of every device.",
        |m| on(m, crate::http::api_facility::statuses),
    ),
    r(
        "POST",
        "/api/devices/{device}/commands",
        Some(Access::Operate),
        "Send a command to a device's agent: {kind: acknowledge | time_sync {unix_ms} | test_mode {on} | inhibit_sensor {sensor, seconds}}.",
        |m| on(m, crate::http::api_facility::send_command),
    ),
    r(
        "GET",
        "/api/audit",
        Some(Access::Admin),
        "Audit log; filters: since_id, limit.",
        |m| on(m, audit),
    ),
    r(
        "GET",
        "/api/drills",
        Some(Access::Read),
        "Drills, newest first, and the one in progress.",
        |m| on(m, crate::http::api_drill::drills),
    ),
    r(
        "GET",
        "/api/drills/{id}/report",
        Some(Access::Read),
        "Report of a finished drill: what was detected, acknowledged and sent to the fire authority when; format=json (default) or markdown.",
        |m| on(m, crate::http::api_drill::report),
    ),
    r(
        "GET",
        "/api/dc09",
        Some(Access::Read),
        "The server's DC-09 transmitter: paths, counters and every site-level message with its ACK time.",
        |m| on(m, crate::http::api_drill::dc09),
    ),
    r(
        "GET",
        "/api/users",
        Some(Access::Admin),
        "Users and roles.",
        |m| on(m, users),
    ),
    r(
        "POST",
        "/api/users",
        Some(Access::Admin),
        "Create a user {name, role, password}.",
        |m| on(m, create_user),
    ),
    r(
        "POST",
        "/api/users/{name}/tokens",
        Some(Access::Admin),
        "Create an API bearer token for a user {name, days (lifetime, 1..=3650, default auth.token_days)}; the token is shown once; answers its id and expires_ms.",
        |m| on(m, crate::http::api_auth::create_token),
    ),
    r(
        "GET",
        "/api/users/{name}/tokens",
        Some(Access::Admin),
        "A user's API tokens: id (first 16 hex digits of its hash), name, created_ms, expires_ms; never the token.",
        |m| on(m, crate::http::api_auth::list_tokens),
    ),
    r(
        "POST",
        "/api/users/{name}/tokens/{id}/revoke",
        Some(Access::Admin),
        "Revoke one API token of a user (refused under authority control).",
        |m| on(m, crate::http::api_auth::revoke_token),
    ),
    r(
        "POST",
        "/api/users/{name}/password",
        Some(Access::Admin),
        "Set a user's password {password} (12-256 characters, not only spaces, no control characters); ends every session of the user (refused under authority control).",
        |m| on(m, crate::http::api_auth::set_password),
    ),
    r(
        "POST",
        "/api/users/{name}/disable",
        Some(Access::Admin),
        "Disable a user: sessions end, tokens are refused; not oneself, not the last enabled admin (refused under authority control).",
        |m| on(m, crate::http::api_auth::disable_user),
    ),
    r(
        "POST",
        "/api/users/{name}/enable",
        Some(Access::Admin),
        "Enable a disabled user.",
        |m| on(m, crate::http::api_auth::enable_user),
    ),
    r(
        "POST",
        "/api/me/password",
        Some(Access::Read),
        "Change one's own password {current, new}; other sessions of the user end. Wrong current passwords count towards the sign-in back-off.",
        |m| on(m, crate::http::api_auth::change_own_password),
    ),
    r(
        "GET",
        "/api/auth/lockouts",
        Some(Access::Admin),
        "Sign-in back-off: every user name, device cookie and address with recent failures or a lock (http and mqtt), with locked_until_ms.",
        |m| on(m, crate::http::api_auth::lockouts),
    ),
    r(
        "POST",
        "/api/auth/lockouts/clear",
        Some(Access::Admin),
        "End a sign-in lock {kind: user | address | device, name, channel: http | mqtt}; audited.",
        |m| on(m, crate::http::api_auth::clear_lockout),
    ),
    r(
        "GET",
        "/api/cluster",
        Some(Access::Read),
        "Multi-site: this replica, whether it leads (and at which epoch), who leads, the other replicas (heard through the database, only through the witness, gone or unknown) and the verdict on every agent (lost only when every replica that can be heard agrees). `{enabled: false}` on a single server. On a follower, writes that need the leader (alarm actions, maintenance, incidents, authority control, device commands) are answered 503 with the leader's replica, site and console address.",
        |m| on(m, crate::http::api_cluster::cluster_status),
    ),
    r(
        "GET",
        "/api/authority",
        Some(Access::Read),
        "Authority control: active, since, cause (key switch at a device, or user and reason), keys on, refused action kinds.",
        |m| on(m, crate::http::api_authority::state),
    ),
    r(
        "POST",
        "/api/authority/enter",
        Some(Access::TakeCommand),
        "Enter authority control {reason}: device commands, maintenance, shelving and out-of-service are refused (423) until an operator leaves it.",
        |m| on(m, crate::http::api_authority::enter),
    ),
    r(
        "POST",
        "/api/authority/exit",
        Some(Access::Operate),
        "Leave authority control {reason}; 423 while any authority key switch is still on; audited with the duration.",
        |m| on(m, crate::http::api_authority::exit),
    ),
];

type AppState = State<Arc<App>>;

/// `/health` (see `crate::state::health`): 200 while `ok` or `degraded`, 503 while `failing`.
pub async fn health(State(app): AppState) -> Response {
    let (level, doc) = crate::io::health_probe::report(&app);
    let status = if level == crate::state::health::Level::Failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(doc)).into_response()
}

/// `POST /api/logout`.
#[derive(Serialize)]
pub struct LoggedOut {
    pub ok: bool,
}

async fn logout(Authorized(p): Authorized, State(app): AppState) -> Result<Response, ApiError> {
    if let Some(s) = &p.session {
        app.store.delete_session(s).await?;
    }
    app.audit(&p.user, "logout", "session", json!({})).await?;
    let mut resp = Json(LoggedOut { ok: true }).into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0")) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// `GET /api/me`.
#[derive(Serialize)]
pub struct Me {
    pub user: String,
    pub role: Role,
}

async fn me(Authorized(p): Authorized) -> Result<Json<Me>, ApiError> {
    Ok(Json(Me {
        user: p.user,
        role: p.role,
    }))
}

#[derive(Deserialize, Default)]
struct PointsQuery {
    site: Option<String>,
    agent: Option<String>,
    device: Option<String>,
    role: Option<String>,
    limit: Option<usize>,
}

fn select_points(intake: &Intake, q: &PointsQuery) -> Vec<crate::engine::ingest::Latest> {
    let ing = intake.ingest.lock().expect("ingest lock");
    let mut out: Vec<_> = ing
        .latest_of(q.device.as_deref())
        .filter(|l| {
            q.site.as_ref().is_none_or(|s| &l.site == s)
                && q.agent.as_ref().is_none_or(|a| &l.agent == a)
                && q.device.as_ref().is_none_or(|d| &l.sample.device == d)
                && q.role.as_ref().is_none_or(|r| l.sample.role.as_str() == r)
        })
        .collect();
    drop(ing);
    out.sort_by(|a, b| {
        (&a.site, &a.sample.device, &a.sample.point).cmp(&(
            &b.site,
            &b.sample.device,
            &b.sample.point,
        ))
    });
    out.truncate(q.limit.unwrap_or(10_000));
    out
}

/// `GET /api/points`, `GET /api/points/{device}`: latest values.
#[derive(Serialize)]
pub struct Points {
    pub points: Vec<crate::engine::ingest::Latest>,
}

async fn points(State(app): AppState, RawQuery(raw): RawQuery) -> Result<Json<Points>, ApiError> {
    let q: PointsQuery = crate::http::api::parse_query(raw.as_deref())?;
    Ok(Json(Points {
        points: select_points(&app.intake, &q),
    }))
}

async fn device_points(
    State(app): AppState,
    Path(device): Path<String>,
) -> Result<Json<Points>, ApiError> {
    let q = PointsQuery {
        device: Some(device),
        ..Default::default()
    };
    Ok(Json(Points {
        points: select_points(&app.intake, &q),
    }))
}

async fn point_history(
    State(app): AppState,
    Path((device, point)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<crate::http::api_history::History>, ApiError> {
    let q: crate::http::api_history::Params = parse_query(raw.as_deref())?;
    crate::http::api_history::point_history(&app, &device, &point, q)
        .await
        .map(Json)
        .map_err(|(status, msg)| ApiError(status, msg))
}

/// `GET /api/agents`: every configured agent (`unknown` until it has said anything), then the
/// ones that reported without being configured.
#[derive(Serialize)]
pub struct Agents {
    pub agents: Vec<AgentEntry>,
}

#[derive(Serialize)]
pub struct AgentEntry {
    pub id: String,
    pub site: String,
    /// Only for a configured agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    pub configured: bool,
    /// `up`, `down` or `unknown` (never heard from).
    pub status: &'static str,
    pub state: Option<crate::storage::store::AgentRecord>,
}

async fn agents(State(app): AppState) -> Result<Json<Agents>, ApiError> {
    let seen = app.store.list_agents().await?;
    let mut agents = Vec::new();
    for a in &app.config.agents {
        let state = seen.iter().find(|s| s.agent == a.id);
        let status = match state {
            Some(s) if s.online => "up",
            Some(_) => "down",
            None => "unknown",
        };
        agents.push(AgentEntry {
            id: a.id.clone(),
            site: a.site.clone(),
            devices: Some(a.devices.clone()),
            configured: true,
            status,
            state: state.cloned(),
        });
    }
    for s in seen.iter().filter(|s| app.config.agent(&s.agent).is_none()) {
        agents.push(AgentEntry {
            id: s.agent.clone(),
            site: s.site.clone(),
            devices: None,
            configured: false,
            status: if s.online { "up" } else { "down" },
            state: Some(s.clone()),
        });
    }
    Ok(Json(Agents { agents }))
}

#[derive(Deserialize)]
struct EventsQuery {
    since_ms: Option<i64>,
    agent: Option<String>,
    device: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/events`.
#[derive(Serialize)]
pub struct Events {
    pub events: Vec<crate::storage::store::EventRecord>,
}

async fn events(State(app): AppState, RawQuery(raw): RawQuery) -> Result<Json<Events>, ApiError> {
    let q: EventsQuery = crate::http::api::parse_query(raw.as_deref())?;
    let ev = app
        .store
        .list_events(&EventQuery {
            since_ms: q.since_ms,
            agent: q.agent,
            device: q.device,
            limit: q.limit.unwrap_or(100).clamp(1, 10_000),
        })
        .await?;
    Ok(Json(Events { events: ev }))
}

/// Counts an open stream (and whether it receives `points`, which the ingest serialises only
/// while someone listens) for as long as it lives.
struct SseGuard(Arc<App>, bool);
impl SseGuard {
    fn new(app: Arc<App>, points: bool) -> SseGuard {
        app.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
        if points {
            app.metrics
                .sse_points_clients
                .fetch_add(1, Ordering::Relaxed);
        }
        SseGuard(app, points)
    }
}
impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.fetch_sub(1, Ordering::Relaxed);
        if self.1 {
            self.0
                .metrics
                .sse_points_clients
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How often a live stream's credentials are checked again.
pub const STREAM_REAUTH: std::time::Duration = std::time::Duration::from_secs(5);

/// What a live stream needs to check its credentials again.
struct StreamAuth {
    app: Arc<App>,
    headers: HeaderMap,
    role: Role,
    next_check: tokio::time::Instant,
}

#[derive(Deserialize, Default)]
struct StreamQuery {
    /// Comma-separated event names to receive (default: all): points, event, agent, alarm,
    /// incident, audit, redundancy (a subsystem's or rack's current level changed).
    events: Option<String>,
    /// Send a `heartbeat` event after this many ms without another event (500..=60000).
    heartbeat_ms: Option<u64>,
}

async fn stream(
    Authorized(principal): Authorized,
    State(app): AppState,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: StreamQuery = parse_query(raw.as_deref())?;
    let wanted: Option<Vec<String>> = q
        .events
        .map(|e| e.split(',').map(|s| s.trim().to_string()).collect());
    let heartbeat = match q.heartbeat_ms {
        None => None,
        Some(ms @ 500..=60_000) => Some(std::time::Duration::from_millis(ms)),
        Some(_) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "query: heartbeat_ms: expected 500..=60000".into(),
            ));
        }
    };
    let rx = app.live.subscribe();
    let stop = app.stopping.clone();
    let points = wanted
        .as_ref()
        .is_none_or(|w| w.iter().any(|e| e == "points"));
    let guard = SseGuard::new(app.clone(), points);
    // Every event is filtered by the permission of its REST twin (`stream_access`), and the
    // credentials are checked again every `STREAM_REAUTH`: a stream ends when its session or
    // token is revoked or expires, or its user is disabled, and follows a change of role.
    let auth = StreamAuth {
        app: app.clone(),
        headers,
        role: principal.role,
        next_check: tokio::time::Instant::now() + STREAM_REAUTH,
    };
    let s = futures_util::stream::unfold(
        (rx, stop, guard, wanted, auth),
        move |(mut rx, mut stop, guard, wanted, mut auth)| async move {
            let ev =
                next_event(&mut rx, &mut stop, wanted.as_deref(), &mut auth, heartbeat).await?;
            Some((Ok::<_, Infallible>(ev), (rx, stop, guard, wanted, auth)))
        },
    );
    Ok(Sse::new(s).keep_alive(KeepAlive::default()).into_response())
}

/// The next event a stream sends: a live message it wants and may receive, `lagged` when it
/// fell behind, or `heartbeat` after `heartbeat` without another; `None` ends the stream (the
/// server stops, the channel closes, or the credentials no longer hold).
async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<crate::app::LiveMsg>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    wanted: Option<&[String]>,
    auth: &mut StreamAuth,
    heartbeat: Option<std::time::Duration>,
) -> Option<SseEvent> {
    // The heartbeat is due `heartbeat` after the last event sent (events filtered out
    // do not count).
    let due = heartbeat.map(|d| tokio::time::Instant::now() + d);
    loop {
        if tokio::time::Instant::now() >= auth.next_check {
            match authorize(&auth.app, &auth.headers, &Method::GET, Access::Read).await {
                Ok(p) => auth.role = p.role,
                Err(_) => return None,
            }
            auth.next_check = tokio::time::Instant::now() + STREAM_REAUTH;
        }
        let recheck = tokio::time::sleep_until(auth.next_check);
        let beat = async {
            match due {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = crate::base::stop::stopped(stop) => return None,
            _ = recheck => continue,
            _ = beat => {
                break Some(SseEvent::default().event("heartbeat").data(auth.app.now_ms().to_string()));
            }
            r = rx.recv() => match r {
                Ok(m) => {
                    if wanted.is_some_and(|w| !w.iter().any(|e| e == m.event))
                        || !crate::state::stream_access::may_receive(auth.role, m.event)
                    {
                        continue;
                    }
                    break Some(SseEvent::default().event(m.event).data(m.data.as_str()));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    break Some(SseEvent::default().event("lagged").data(n.to_string()));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            },
        }
    }
}

pub fn openapi_doc() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for rt in ROUTES {
        let entry = paths
            .entry(rt.path.to_string())
            .or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": rt.summary,
            "responses": {
                "200": {"description": "OK"},
                "401": {"description": "Not authenticated"},
                "403": {"description": "Role too weak, or CSRF/origin check failed"}
            }
        });
        if rt.method == "POST"
            && matches!(
                rt.path,
                "/api/devices/{device}/commands"
                    | "/api/maintenance"
                    | "/api/maintenance/windows/{id}/cancel"
                    | "/api/alarms/{id}/{action}"
                    | "/api/authority/exit"
            )
        {
            op["responses"]["423"] = json!({"description": "Refused under authority control (the fire authority is in command); the reason names it"});
        }
        match rt.access {
            None => {
                op["security"] = json!([]);
            }
            Some(a) => {
                op["x-required-role"] = json!(match a {
                    Access::Read => "viewer, operator, admin or fire_authority",
                    Access::Operate => "operator or admin",
                    Access::Admin => "admin",
                    Access::TakeCommand => "operator, admin or fire_authority",
                });
            }
        }
        let params: Vec<_> = rt
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        entry[rt.method.to_lowercase()] = op;
    }
    if let Some(op) = paths
        .get_mut("/api/site/redundancy")
        .and_then(|p| p.get_mut("get"))
    {
        op["responses"]["200"] = json!({
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Redundancy"}}}
        });
    }
    if let Some(op) = paths
        .get_mut("/api/alarms/{id}/{action}")
        .and_then(|p| p.get_mut("post"))
    {
        op["responses"]["400"] =
            json!({"description": "Bad request, e.g. shelving without a reason"});
        op["responses"]["403"] = json!({"description": "Role too weak, CSRF/origin check failed, or the alarm may never be shelved (fire stage, battery temperature)"});
    }
    let mut components = json!({"securitySchemes": {
        "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
        "bearer": {"type": "http", "scheme": "bearer"}
    }});
    components["schemas"] = crate::http::api_facility::schemas();
    json!({
        "openapi": "3.0.3",
        "info": {"title": "dcim-server API", "version": env!("CARGO_PKG_VERSION")},
        "components": components,
        "security": [{"session": []}, {"bearer": []}],
        "paths": paths
    })
}

/// The document is assembled as JSON (its shape is OpenAPI's, open-ended), so it stays a
/// `serde_json::Value`.
async fn openapi() -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(openapi_doc()))
}

/// `/metrics`: admitted by a session or token with read access, or by the scrape token
/// (declared in [`ROUTES`]).
async fn metrics(State(app): AppState) -> Result<Response, ApiError> {
    Ok(metrics_response(&app))
}

/// The `/metrics` document (also served without authentication on `[metrics] listen`).
pub fn metrics_response(app: &App) -> Response {
    (
        [(header::CONTENT_TYPE, crate::base::observe::CONTENT_TYPE)],
        crate::io::openmetrics::render(app),
    )
        .into_response()
}

/// The router of `[metrics] listen`: `/metrics` and `/health` only, without authentication
/// (bind it where only the scraper reaches).
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/metrics",
            get(|State(app): AppState| async move { metrics_response(&app) }),
        )
        .with_state(app)
}

#[derive(Deserialize)]
struct AuditQuery {
    since_id: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/audit`.
#[derive(Serialize)]
pub struct Audit {
    pub audit: Vec<crate::storage::store::AuditRecord>,
}

async fn audit(State(app): AppState, RawQuery(raw): RawQuery) -> Result<Json<Audit>, ApiError> {
    let q: AuditQuery = crate::http::api::parse_query(raw.as_deref())?;
    let rows = app
        .store
        .list_audit(
            q.since_id.unwrap_or(0),
            q.limit.unwrap_or(500).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(Audit { audit: rows }))
}

/// `GET /api/users` (password hashes are never serialised).
#[derive(Serialize)]
pub struct Users {
    pub users: Vec<UserRecord>,
}

async fn users(State(app): AppState) -> Result<Json<Users>, ApiError> {
    Ok(Json(Users {
        users: app.store.list_users().await?,
    }))
}

/// `POST /api/users`: the user created.
#[derive(Serialize)]
pub struct UserCreated {
    pub name: String,
    pub role: Role,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    role: String,
    password: String,
}

async fn create_user(
    Authorized(p): Authorized,
    State(app): AppState,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: NewUser = parse_body(&body)?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "role: expected viewer, operator, admin or fire_authority".into(),
        )
    })?;
    if dcim_wire::check_identifier(&body.name).is_err() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "name: 1-64 of [A-Za-z0-9._-]".into(),
        ));
    }
    let hash = match crate::http::api_auth::hash_new_password(&app, body.password).await {
        Ok(h) => h,
        Err(r) => return Ok(r),
    };
    let created = app
        .store
        .create_user(&UserRecord {
            name: body.name.clone(),
            role: role.as_str().into(),
            password_hash: hash,
            created_ms: app.now_ms(),
            disabled: false,
        })
        .await?;
    if !created {
        return Err(ApiError(StatusCode::CONFLICT, "user exists".into()));
    }
    app.audit(&p.user, "user.create", &body.name, json!({"role": role}))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            name: body.name,
            role,
        }),
    )
        .into_response())
}
