//! REST + SSE API (axum). Every route but `/health` needs a session cookie or a bearer token;
//! state-changing requests with a session cookie also need the CSRF token (`X-CSRF-Token`
//! header, double-submitted from the `dcim_csrf` cookie) and an acceptable `Origin`. Every write
//! is audited and committed before the response is sent.
//!
//! [`ROUTES`] is the single list of routes: it feeds the OpenAPI document and the auth tests.

use crate::auth::{self, Access};
use crate::config::Role;
use crate::metrics::inc;
use crate::store::{EventQuery, UserRecord};
use crate::{App, now_ms};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
        "Liveness and database state (`degraded` with `store: disk full` while writes fail; on a multi-site follower that cannot reload the leader's alarm state, `degraded` with `cluster`: why what it shows may be out of date); no authentication.",
    ),
    r(
        "POST",
        "/api/login",
        None,
        "Sign in with {username, password}; sets the session and CSRF cookies.",
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
        "Recent history of one numeric point from memory: time buckets {t_ms, n, min, max, last}; query from, to (ms, default the retention up to now), step (ms, a multiple of the resolution), site. Kept: good-quality samples since the server started, in one-minute buckets for the last hour per point by default ([history] resolution_ms, buckets).",
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
        "Server-sent events: points, event, agent, alarm, incident, audit, authority, redundancy (a subsystem's or rack's current level changed: subsystem, rack, designed, before, current, ts_ms), lagged; events=a,b to filter; heartbeat_ms=N (500..=60000): a `heartbeat` event (data: the server time in ms) after N ms without another event, so a client can tell a silent stream from a dead one.",
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
        "Prometheus metrics of the server itself.",
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
        "ack | shelve {until_ms|minutes, reason (journalled as a comment)} | unshelve | comment {text} | out_of_service | return_to_service.",
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
        "The alarm rules in force (id, name, grade, condition and the role it reads).",
    ),
    r(
        "GET",
        "/api/site/redundancy",
        Some(Access::Read),
        "Designed and current redundancy per subsystem, ride-through (components=true: per component).",
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
        "Create an API bearer token for a user {name}; shown once.",
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

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
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
        if now_ms() >= s.expires_ms {
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

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/points", get(points))
        .route("/api/points/{device}", get(device_points))
        .route("/api/points/{device}/{point}/history", get(point_history))
        .route("/api/agents", get(agents))
        .route("/api/events", get(events))
        .route("/api/stream", get(stream))
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/api/audit", get(audit))
        .route("/api/users", get(users).post(create_user))
        .route("/api/users/{name}/tokens", post(create_token))
        .merge(crate::api_facility::routes())
        .merge(crate::api_drill::routes())
        .merge(crate::api_authority::routes())
        .merge(crate::api_console::routes())
        .merge(crate::console::router())
        .merge(crate::cluster::routes())
        // Multi-site: a follower refuses the writes that need the leader, naming it.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::cluster::refuse_writes_on_follower,
        ))
        .with_state(app)
}

type AppState = State<Arc<App>>;

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

async fn health(State(app): AppState) -> Json<serde_json::Value> {
    let store = *app.metrics.store_error.lock().expect("store status lock");
    let mut h = match store {
        // Alive, but what arrives now is not committed (nor acknowledged) until it can be.
        Some(why) => json!({"status": "degraded", "store": why}),
        None => json!({"status": "ok"}),
    };
    // Multi-site: a follower that cannot reload the leader's state says so.
    if let Some(why) = crate::cluster::health(&app) {
        h["status"] = "degraded".into();
        h["cluster"] = why.into();
    }
    Json(h)
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(app): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: LoginBody = parse_body(&body)?;
    if !auth::origin_ok(
        header_str(&headers, header::ORIGIN),
        header_str(&headers, header::HOST),
        &app.config.http.allowed_origins,
    ) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "cross-origin request refused".into(),
        ));
    }
    let user = app.store.get_user(&body.username).await?;
    let ok = match &user {
        Some(u) if !u.disabled => {
            let (pw, hash) = (body.password.clone(), u.password_hash.clone());
            tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    let Some(user) = user.filter(|_| ok) else {
        app.audit(&body.username, "login.failed", "session", json!({}))
            .await?;
        return Err(unauthorized(&app, "wrong user name or password"));
    };
    let token = auth::new_token("s_");
    let csrf = auth::new_token("");
    let now = now_ms();
    let ttl = app.config.http.session_ttl_s;
    let expires_ms = now + (ttl as i64) * 1000;
    app.store
        .create_session(&crate::store::SessionRecord {
            token_hash: auth::token_hash(&token),
            user: user.name.clone(),
            csrf: csrf.clone(),
            created_ms: now,
            expires_ms,
        })
        .await?;
    app.audit(&user.name, "login", "session", json!({})).await?;
    let secure = if app.config.http.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let mut resp = Json(json!({
        "user": user.name, "role": user.role, "csrf_token": csrf, "expires_ms": expires_ms
    }))
    .into_response();
    let h = resp.headers_mut();
    for cookie in [
        format!(
            "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"
        ),
        format!("{CSRF_COOKIE}={csrf}; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

async fn logout(State(app): AppState, headers: HeaderMap) -> Result<Response, ApiError> {
    let p = authorize(&app, &headers, &Method::POST, Access::Read).await?;
    if let Some(s) = &p.session {
        app.store.delete_session(s).await?;
    }
    app.audit(&p.user, "logout", "session", json!({})).await?;
    let mut resp = Json(json!({"ok": true})).into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0")) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

async fn me(State(app): AppState, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    let p = authorize(&app, &headers, &Method::GET, Access::Read).await?;
    Ok(Json(json!({"user": p.user, "role": p.role})))
}

#[derive(Deserialize, Default)]
struct PointsQuery {
    site: Option<String>,
    agent: Option<String>,
    device: Option<String>,
    role: Option<String>,
    limit: Option<usize>,
}

fn select_points(app: &App, q: &PointsQuery) -> Vec<crate::ingest::Latest> {
    let ing = app.ingest.lock().expect("ingest lock");
    let mut out: Vec<_> = ing
        .latest()
        .filter(|l| {
            q.site.as_ref().is_none_or(|s| &l.site == s)
                && q.agent.as_ref().is_none_or(|a| &l.agent == a)
                && q.device.as_ref().is_none_or(|d| &l.sample.device == d)
                && q.role.as_ref().is_none_or(|r| l.sample.role.as_str() == r)
        })
        .cloned()
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

async fn points(
    State(app): AppState,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    let q: PointsQuery = crate::api::parse_query(raw.as_deref())?;
    Ok(Json(json!({"points": select_points(&app, &q)})))
}

async fn device_points(
    State(app): AppState,
    headers: HeaderMap,
    Path(device): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    let q = PointsQuery {
        device: Some(device),
        ..Default::default()
    };
    Ok(Json(json!({"points": select_points(&app, &q)})))
}

#[derive(Deserialize, Default)]
struct HistoryQuery {
    from: Option<i64>,
    to: Option<i64>,
    step: Option<i64>,
    site: Option<String>,
}

async fn point_history(
    State(app): AppState,
    headers: HeaderMap,
    Path((device, point)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    let q: HistoryQuery = parse_query(raw.as_deref())?;
    let ing = app.ingest.lock().expect("ingest lock");
    let cfg = ing.history_config();
    let to = q.to.unwrap_or_else(crate::now_ms);
    let from = q.from.unwrap_or(to - cfg.retention_ms());
    if from > to {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "query: from: expected a time (ms) not after `to`".into(),
        ));
    }
    let step = q.step.unwrap_or(cfg.resolution_ms);
    if step < 0 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "query: step: expected a duration in ms >= 0".into(),
        ));
    }
    let Some((site, buckets)) = ing.history(q.site.as_deref(), &device, &point, from, to, step)
    else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no point `{point}` of device `{device}` has been received"),
        ));
    };
    let res = cfg.resolution_ms.max(1);
    let step = (step.max(res) + res - 1) / res * res;
    Ok(Json(json!({
        "site": site,
        "device": device,
        "point": point,
        "from": from,
        "to": to,
        "step_ms": step,
        "resolution_ms": cfg.resolution_ms,
        "retention_ms": cfg.retention_ms(),
        "buckets": buckets,
    })))
}

async fn agents(
    State(app): AppState,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    let seen = app.store.list_agents().await?;
    let mut out = Vec::new();
    for a in &app.config.agents {
        let state = seen.iter().find(|s| s.agent == a.id);
        let status = match state {
            Some(s) if s.online => "up",
            Some(_) => "down",
            None => "unknown",
        };
        out.push(json!({"id": a.id, "site": a.site, "devices": a.devices, "configured": true, "status": status, "state": state}));
    }
    for s in seen.iter().filter(|s| app.config.agent(&s.agent).is_none()) {
        out.push(json!({"id": s.agent, "site": s.site, "configured": false,
            "status": if s.online {"up"} else {"down"}, "state": s}));
    }
    Ok(Json(json!({"agents": out})))
}

#[derive(Deserialize)]
struct EventsQuery {
    since_ms: Option<i64>,
    agent: Option<String>,
    device: Option<String>,
    limit: Option<i64>,
}

async fn events(
    State(app): AppState,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    let q: EventsQuery = crate::api::parse_query(raw.as_deref())?;
    let ev = app
        .store
        .list_events(&EventQuery {
            since_ms: q.since_ms,
            agent: q.agent,
            device: q.device,
            limit: q.limit.unwrap_or(100).clamp(1, 10_000),
        })
        .await?;
    Ok(Json(json!({"events": ev})))
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

#[derive(Deserialize, Default)]
struct StreamQuery {
    /// Comma-separated event names to receive (default: all): points, event, agent, alarm,
    /// incident, audit, redundancy (a subsystem's or rack's current level changed).
    events: Option<String>,
    /// Send a `heartbeat` event after this many ms without another event (500..=60000).
    heartbeat_ms: Option<u64>,
}

async fn stream(
    State(app): AppState,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
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
    let s = futures_util::stream::unfold(
        (rx, stop, guard, wanted),
        move |(mut rx, mut stop, guard, wanted)| async move {
            // The heartbeat is due `heartbeat` after the last event sent (events filtered out
            // do not count).
            let due = heartbeat.map(|d| tokio::time::Instant::now() + d);
            let ev = loop {
                let beat = async {
                    match due {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = crate::stopped(&mut stop) => return None,
                    _ = beat => {
                        break SseEvent::default().event("heartbeat").data(crate::now_ms().to_string());
                    }
                    r = rx.recv() => match r {
                        Ok(m) => {
                            if wanted.as_ref().is_some_and(|w| !w.iter().any(|e| e == m.event)) {
                                continue;
                            }
                            break SseEvent::default().event(m.event).data(m.data.as_str());
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            break SseEvent::default().event("lagged").data(n.to_string());
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                }
            };
            Some((Ok::<_, Infallible>(ev), (rx, stop, guard, wanted)))
        },
    );
    Ok(Sse::new(s).keep_alive(KeepAlive::default()).into_response())
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
    json!({
        "openapi": "3.0.3",
        "info": {"title": "dcim-server API", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            "bearer": {"type": "http", "scheme": "bearer"}
        }},
        "security": [{"session": []}, {"bearer": []}],
        "paths": paths
    })
}

async fn openapi(
    State(app): AppState,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    Ok(Json(openapi_doc()))
}

async fn metrics(State(app): AppState, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    since_id: Option<i64>,
    limit: Option<i64>,
}

async fn audit(
    State(app): AppState,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Admin).await?;
    let q: AuditQuery = crate::api::parse_query(raw.as_deref())?;
    let rows = app
        .store
        .list_audit(
            q.since_id.unwrap_or(0),
            q.limit.unwrap_or(500).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(json!({"audit": rows})))
}

async fn users(
    State(app): AppState,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Admin).await?;
    Ok(Json(json!({"users": app.store.list_users().await?})))
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    role: String,
    password: String,
}

async fn create_user(
    State(app): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = authorize(&app, &headers, &Method::POST, Access::Admin).await?;
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
    if body.password.len() < 12 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "password: at least 12 characters".into(),
        ));
    }
    let (m, t) = (
        app.config.auth.argon2_memory_kib,
        app.config.auth.argon2_iterations,
    );
    let pw = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw, m, t))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let created = app
        .store
        .create_user(&UserRecord {
            name: body.name.clone(),
            role: role.as_str().into(),
            password_hash: hash,
            created_ms: now_ms(),
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
        Json(json!({"name": body.name, "role": role})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

async fn create_token(
    State(app): AppState,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = authorize(&app, &headers, &Method::POST, Access::Admin).await?;
    let body: NewToken = parse_body(&body)?;
    if app.store.get_user(&user).await?.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, "no such user".into()));
    }
    let token = auth::new_token("dcim_");
    app.store
        .create_token(&auth::token_hash(&token), &user, &body.name, now_ms())
        .await?;
    app.audit(&p.user, "token.create", &user, json!({"name": body.name}))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": user, "name": body.name, "token": token})),
    )
        .into_response())
}
