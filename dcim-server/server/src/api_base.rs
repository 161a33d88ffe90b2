//! What every route module shares: the list of routes ([`ROUTES`], which feeds routing checks,
//! the OpenAPI document and the live stream's filter), the error type, authorisation of a
//! request (session cookie with CSRF, or bearer token) and parsing of queries and bodies after
//! authorisation. The route modules (`api`, `api_*`) sit above it; it imports none of them.

use crate::app::App;
use crate::auth::{self, Access};
use crate::config::Role;
use crate::metrics::inc;
use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const SESSION_COOKIE: &str = "dcim_session";
pub const CSRF_COOKIE: &str = "dcim_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A route, what it needs, and what it does (for the OpenAPI document and the tests).
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: no authentication (only `/health`; `/api/login` authenticates by password).
    pub access: Option<Access>,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Option<Access>,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        access,
        summary,
    }
}

pub const ROUTES: &[RouteDoc] = &[
    r(
        "GET",
        "/health",
        None,
        "Health of every part (store, disk, broker, ingest, essential tasks, time-series store, DC-09 paths): status ok|degraded|failing with a reason per check; 503 while failing; no authentication. For the whole disk-full episode: `degraded` with top-level `store: \"disk full\"`, `free_bytes` and `reserve_bytes` (and the store and disk checks say so); a failed write: top-level `store: \"write failed\"`. On a multi-site replica, the `cluster` check: a follower that cannot reload the leader's alarm state is `degraded` (what it shows may be out of date).",
    ),
    r(
        "POST",
        "/api/login",
        None,
        "Sign in with {username, password} (body at most 8 KiB); sets the session, CSRF and device cookies. 401 on a wrong name or password (known and unknown names answer alike); 429 with Retry-After while the address, the user name or the device is locked after repeated failures; 503 with Retry-After when too many sign-ins wait for a password hash.",
    ),
    r(
        "POST",
        "/api/logout",
        Some(Access::Read),
        "End the current session.",
    ),
    r(
        "GET",
        "/api/me",
        Some(Access::Read),
        "The signed-in user and role.",
    ),
    r(
        "GET",
        "/api/points",
        Some(Access::Read),
        "Latest value of every point; filters: site, agent, device, role, limit.",
    ),
    r(
        "GET",
        "/api/points/{device}",
        Some(Access::Read),
        "Latest values of one device's points.",
    ),
    r(
        "GET",
        "/api/points/{device}/{point}/history",
        Some(Access::Read),
        "History of one numeric point: time buckets {t_ms, n, min, max, last} of good-quality samples; query from, to (ms, default the last hour), step (ms, a multiple of [history] resolution_ms), site. From the time-series store when [influx] query_url is set (what it does not hold yet from memory), else from the in-memory ring (since the server started, the last hour by default); `source` (store, memory, store+memory), `covers` {from, to} and `sources` say which answered for which range, `fallback_reason` why the store did not.",
    ),
    r(
        "GET",
        "/api/agents",
        Some(Access::Read),
        "Configured and seen edge agents with their last state.",
    ),
    r(
        "GET",
        "/api/events",
        Some(Access::Read),
        "Stored events, newest first; filters: since_ms, agent, device, limit.",
    ),
    r(
        "GET",
        "/api/stream",
        Some(Access::Read),
        "Server-sent events (each only to roles its REST twin allows: audit to admins only; the stream ends when its session or token is revoked or its user disabled, checked every 5 s): points, event, agent, alarm, incident, audit, authority, maintenance (the maintenance schedule changed), redundancy (a subsystem's or rack's level changed: subsystem, rack, designed, before and current (proven), if_unknown_up, verified, ts_ms), lagged; events=a,b to filter; heartbeat_ms=N (500..=60000): a `heartbeat` event (data: the server time in ms) after N ms without another event, so a client can tell a silent stream from a dead one.",
    ),
    r(
        "GET",
        "/api/openapi.json",
        Some(Access::Read),
        "This document.",
    ),
    r(
        "GET",
        "/metrics",
        Some(Access::Read),
        "Metrics of the server itself (OpenMetrics): counters, histograms (ingest-to-alarm, commit time), build, process, time-series buffer and DC-09; also with the [metrics] scrape token, or without authentication on [metrics] listen.",
    ),
    r(
        "GET",
        "/api/alarms",
        Some(Access::Read),
        "Alarms not in normal (all=true: every alarm; grouped=true: with the per-rack alarms hidden under their subsystem's), and the flood flag.",
    ),
    r(
        "GET",
        "/api/alarms/{id}/journal",
        Some(Access::Read),
        "Journal of one alarm (every transition and action).",
    ),
    r(
        "POST",
        "/api/alarms/{id}/{action}",
        Some(Access::Operate),
        "ack | shelve {until_ms|minutes, reason} (a reason is required and journalled as a comment; fire-stage and battery-temperature alarms are never shelved: 403, audited as alarm.shelve.refused) | unshelve | comment {text} | out_of_service | return_to_service.",
    ),
    r(
        "GET",
        "/api/maintenance",
        Some(Access::Read),
        "Devices and components in maintenance.",
    ),
    r(
        "POST",
        "/api/maintenance",
        Some(Access::Operate),
        "Put a device or component in maintenance, or take it out {subject, on, reason (audited)}.",
    ),
    r(
        "GET",
        "/api/maintenance/windows",
        Some(Access::Read),
        "Maintenance windows scheduled in advance: subjects, who, reason, from_ms, to_ms, status (scheduled, active, ended, cancelled), the subjects each put in maintenance, held under authority control.",
    ),
    r(
        "POST",
        "/api/maintenance/windows",
        Some(Access::Operate),
        "Schedule a maintenance window {subjects: [component or device ids], who, reason, from_ms, to_ms}: it puts its subjects in maintenance at from_ms and takes them out at to_ms by itself (audited; held under authority control).",
    ),
    r(
        "POST",
        "/api/maintenance/windows/{id}/cancel",
        Some(Access::Operate),
        "Cancel a scheduled window, or end an active one now {reason}; ending an active one is refused (423) under authority control.",
    ),
    r(
        "GET",
        "/api/energy/pue",
        Some(Access::Read),
        "PUE computed on the server: now (facility and IT power, only when every meter reports; what is missing otherwise) and its history from integrated energy; query from, to (ms), step (ms): minute buckets for the last 48 h, hour buckets for 400 days, each with its covered time.",
    ),
    r(
        "GET",
        "/api/energy/report",
        Some(Access::Read),
        "Monthly energy report: facility and IT energy (kWh), PUE and covered time per local day and for the month; query month (YYYY-MM), offset_min (minutes east of UTC), format=json (default) or csv.",
    ),
    r(
        "GET",
        "/api/export/alarms.csv",
        Some(Access::Read),
        "The alarm list as CSV (UTF-8), filtered like the console: grade, subsystem, state (a state, needs_ack or suppressed), room, q (words), all=true; times at offset_min (minutes east of UTC).",
    ),
    r(
        "GET",
        "/api/export/events.csv",
        Some(Access::Read),
        "The event list as CSV (UTF-8): since_ms, until_ms, severity, kind (or a prefix ending in `.`), room, device, q (words), limit (default 1000); times at offset_min.",
    ),
    r(
        "GET",
        "/api/search",
        Some(Access::Read),
        "Search racks, components, devices and points by id, name, room, row, role or description: q (words, all must match), limit (default 20, at most 100).",
    ),
    r(
        "GET",
        "/api/incidents",
        Some(Access::Read),
        "Incidents with their journals.",
    ),
    r(
        "POST",
        "/api/incidents",
        Some(Access::Operate),
        "Open an incident {title, grade}.",
    ),
    r(
        "GET",
        "/api/incidents/{id}",
        Some(Access::Read),
        "One incident.",
    ),
    r(
        "GET",
        "/api/incidents/{id}/export",
        Some(Access::Read),
        "Export as format=markdown (default) or json.",
    ),
    r(
        "POST",
        "/api/incidents/{id}/{op}",
        Some(Access::Operate),
        "advance {phase} | grade {grade} | note {text} | assign {role, person} | field {field, text} | follow_up {text, owner} | complete_follow_up {index}.",
    ),
    r("GET", "/api/site", Some(Access::Read), "The site model."),
    r(
        "GET",
        "/api/site/places",
        Some(Access::Read),
        "Where each rack, battery room, row, room, PDU and CRAH is: building (the site), room, row and position in the row (the site model has no coordinates).",
    ),
    r(
        "GET",
        "/api/fire/stages",
        Some(Access::Read),
        "The fire stage table of the fire logic: code, key, name, entry condition, default threshold (°C), actions added and all actions commanded at the stage; every action with its name and feedback role.",
    ),
    r(
        "GET",
        "/api/fire/summary",
        Some(Access::Read),
        "Every rack and battery room at pre-alarm or above, most severe first: stage by name, the reading behind it (stale ones keep their last stage), since when, the trigger (source and °C), the actions with their feedback, the place; the racks with no usable stage reading; counts per stage.",
    ),
    r(
        "GET",
        "/api/roles",
        Some(Access::Read),
        "The point role vocabulary: name, unit, kind, labels, description.",
    ),
    r(
        "GET",
        "/api/alarm-rules",
        Some(Access::Read),
        "The alarm rules in force (id, name, grade, condition, the role it reads, and `shelvable`: false for fire-stage and battery-temperature rules, whose alarms are never shelved).",
    ),
    r(
        "GET",
        "/api/site/redundancy",
        Some(Access::Read),
        "Redundancy per subsystem (`SubsystemHealth`: `current` is the level proven by components that are Up, `if_unknown_up` what Unknown ones would give, `verified`, `unverified`, `summary`) and buffer-tank ride-through (`RideThrough`); components=true adds every component (`ComponentHealth`, with `energised` from measurement and per-supply `SupplyHealth`).",
    ),
    r(
        "GET",
        "/api/site/whatif",
        Some(Access::Read),
        "fail=a,b: what loses power, cooling, network or redundancy if these components fail.",
    ),
    r(
        "GET",
        "/api/status",
        Some(Access::Read),
        "Up/Down/Warning/Maintenance/Unknown of every device.",
    ),
    r(
        "POST",
        "/api/devices/{device}/commands",
        Some(Access::Operate),
        "Send a command to a device's agent: {kind: acknowledge | time_sync {unix_ms} | test_mode {on} | inhibit_sensor {sensor, seconds}}.",
    ),
    r(
        "GET",
        "/api/audit",
        Some(Access::Admin),
        "Audit log; filters: since_id, limit.",
    ),
    r(
        "GET",
        "/api/drills",
        Some(Access::Read),
        "Drills, newest first, and the one in progress.",
    ),
    r(
        "GET",
        "/api/drills/{id}/report",
        Some(Access::Read),
        "Report of a finished drill: what was detected, acknowledged and sent to the fire authority when; format=json (default) or markdown.",
    ),
    r(
        "GET",
        "/api/dc09",
        Some(Access::Read),
        "The server's DC-09 transmitter: paths, counters and every site-level message with its ACK time.",
    ),
    r("GET", "/api/users", Some(Access::Admin), "Users and roles."),
    r(
        "POST",
        "/api/users",
        Some(Access::Admin),
        "Create a user {name, role, password}.",
    ),
    r(
        "POST",
        "/api/users/{name}/tokens",
        Some(Access::Admin),
        "Create an API bearer token for a user {name, days (lifetime, 1..=3650, default auth.token_days)}; the token is shown once; answers its id and expires_ms.",
    ),
    r(
        "GET",
        "/api/users/{name}/tokens",
        Some(Access::Admin),
        "A user's API tokens: id (first 16 hex digits of its hash), name, created_ms, expires_ms; never the token.",
    ),
    r(
        "POST",
        "/api/users/{name}/tokens/{id}/revoke",
        Some(Access::Admin),
        "Revoke one API token of a user (refused under authority control).",
    ),
    r(
        "POST",
        "/api/users/{name}/password",
        Some(Access::Admin),
        "Set a user's password {password} (12-256 characters, not only spaces, no control characters); ends every session of the user (refused under authority control).",
    ),
    r(
        "POST",
        "/api/users/{name}/disable",
        Some(Access::Admin),
        "Disable a user: sessions end, tokens are refused; not oneself, not the last enabled admin (refused under authority control).",
    ),
    r(
        "POST",
        "/api/users/{name}/enable",
        Some(Access::Admin),
        "Enable a disabled user.",
    ),
    r(
        "POST",
        "/api/me/password",
        Some(Access::Read),
        "Change one's own password {current, new}; other sessions of the user end. Wrong current passwords count towards the sign-in back-off.",
    ),
    r(
        "GET",
        "/api/auth/lockouts",
        Some(Access::Admin),
        "Sign-in back-off: every user name, device cookie and address with recent failures or a lock (http and mqtt), with locked_until_ms.",
    ),
    r(
        "POST",
        "/api/auth/lockouts/clear",
        Some(Access::Admin),
        "End a sign-in lock {kind: user | address | device, name, channel: http | mqtt}; audited.",
    ),
    r(
        "GET",
        "/api/cluster",
        Some(Access::Read),
        "Multi-site: this replica, whether it leads (and at which epoch), who leads, the other replicas (heard through the database, only through the witness, gone or unknown) and the verdict on every agent (lost only when every replica that can be heard agrees). `{enabled: false}` on a single server. On a follower, writes that need the leader (alarm actions, maintenance, incidents, authority control, device commands) are answered 503 with the leader's replica, site and console address.",
    ),
    r(
        "GET",
        "/api/authority",
        Some(Access::Read),
        "Authority control: active, since, cause (key switch at a device, or user and reason), keys on, refused action kinds.",
    ),
    r(
        "POST",
        "/api/authority/enter",
        Some(Access::TakeCommand),
        "Enter authority control {reason}: device commands, maintenance, shelving and out-of-service are refused (423) until an operator leaves it.",
    ),
    r(
        "POST",
        "/api/authority/exit",
        Some(Access::Operate),
        "Leave authority control {reason}; 423 while any authority key switch is still on; audited with the duration.",
    ),
];

#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        tracing::error!("store: {e}");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable".into(),
        )
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        tracing::error!("{e:#}");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable".into(),
        )
    }
}

fn unauthorized(app: &App, why: &str) -> ApiError {
    inc(&app.metrics.http_auth_failures_total, 1);
    ApiError(StatusCode::UNAUTHORIZED, why.into())
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// Hash of the session token when authenticated by cookie.
    pub session: Option<String>,
}

pub fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Authenticates the request and checks the role (and CSRF for cookie-authenticated writes).
pub async fn authorize(
    app: &App,
    headers: &HeaderMap,
    method: &Method,
    access: Access,
) -> Result<Principal, ApiError> {
    let bearer = header_str(headers, header::AUTHORIZATION).and_then(|h| h.strip_prefix("Bearer "));
    let (user, session) = if let Some(token) = bearer {
        match app
            .store
            .token_user(&auth::token_hash(token.trim()))
            .await?
        {
            Some(u) => (u, None),
            None => return Err(unauthorized(app, "invalid token")),
        }
    } else if let Some(token) =
        header_str(headers, header::COOKIE).and_then(|c| auth::cookie(c, SESSION_COOKIE))
    {
        let hash = auth::token_hash(token);
        let Some(s) = app.store.get_session(&hash).await? else {
            return Err(unauthorized(app, "no such session"));
        };
        if app.now_ms() >= s.expires_ms {
            app.store.delete_session(&hash).await?;
            return Err(unauthorized(app, "session expired"));
        }
        if !matches!(*method, Method::GET | Method::HEAD) {
            let sent = header_str(headers, CSRF_HEADER).unwrap_or_default();
            if !auth::same_secret(sent, &s.csrf) {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token".into(),
                ));
            }
            if !auth::origin_ok(
                header_str(headers, header::ORIGIN),
                header_str(headers, header::HOST),
                &app.config.http.allowed_origins,
                app.config.http.secure_cookies,
            ) {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "cross-origin request refused".into(),
                ));
            }
        }
        (s.user, Some(hash))
    } else {
        return Err(unauthorized(app, "authentication required"));
    };
    let Some(u) = app.store.get_user(&user).await? else {
        return Err(unauthorized(app, "unknown user"));
    };
    if u.disabled {
        return Err(unauthorized(app, "user disabled"));
    }
    let role = Role::parse(&u.role).ok_or_else(|| unauthorized(app, "user has no valid role"))?;
    if !auth::allows(role, access) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("role {} may not do this", role.as_str()),
        ));
    }
    Ok(Principal {
        user,
        role,
        session,
    })
}

/// Query strings are parsed after authorization too.
pub fn parse_query<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("query: {e}")))
}

/// JSON bodies are parsed after authorization, so an anonymous request gets 401, never 400/422.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}
