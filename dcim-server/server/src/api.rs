//! REST + SSE API (axum). Every route but `/health` needs a session cookie or a bearer token;
//! state-changing requests with a session cookie also need the CSRF token (`X-CSRF-Token`
//! header, double-submitted from the `dcim_csrf` cookie) and an acceptable `Origin`. Every write
//! is audited and committed before the response is sent.
//!
//! [`ROUTES`] is the single list of routes: it feeds the OpenAPI document and the auth tests.
//!
//! `/api/stream?heartbeat_ms=N` adds a `heartbeat` event after N ms without another one, so a
//! client can tell a quiet stream from a dead one; the stream checks its credentials again every
//! 5 s (a revoked session or token, a disabled user ends it). Shelving takes an optional `reason`
//! (journalled on the alarm as a comment), maintenance an optional `reason` (audited); the console
//! always asks for both.

use crate::app::App;
use crate::auth::{self, Access};
use crate::config::Role;
use crate::store::{EventQuery, UserRecord};
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

pub use crate::api_base::{
    ApiError, CSRF_COOKIE, CSRF_HEADER, Principal, ROUTES, RouteDoc, SESSION_COOKIE, authorize,
    header_str, parse_body, parse_query,
};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
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
        .merge(crate::api_auth::routes())
        .merge(crate::api_facility::routes())
        .merge(crate::api_drill::routes())
        .merge(crate::api_authority::routes())
        .merge(crate::api_console::routes())
        .merge(crate::api_windows::routes())
        .merge(crate::api_energy::routes())
        .merge(crate::api_export::routes())
        .merge(crate::console::router())
        .merge(crate::api_cluster::routes())
        // Multi-site: a follower refuses the writes that need the leader, naming it.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::api_cluster::refuse_writes_on_follower,
        ))
        .with_state(app)
}

type AppState = State<Arc<App>>;

/// `/health` (see `crate::health`): 200 while `ok` or `degraded`, 503 while `failing`.
pub async fn health(State(app): AppState) -> Response {
    let (level, doc) = crate::health_probe::report(&app);
    let status = if level == crate::health::Level::Failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(doc)).into_response()
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

async fn point_history(
    State(app): AppState,
    headers: HeaderMap,
    Path((device, point)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &headers, &Method::GET, Access::Read).await?;
    let q: crate::api_history::Params = parse_query(raw.as_deref())?;
    crate::api_history::point_history(&app, &device, &point, q)
        .await
        .map(Json)
        .map_err(|(status, msg)| ApiError(status, msg))
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
    State(app): AppState,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let principal = authorize(&app, &headers, &Method::GET, Access::Read).await?;
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
            // The heartbeat is due `heartbeat` after the last event sent (events filtered out
            // do not count).
            let due = heartbeat.map(|d| tokio::time::Instant::now() + d);
            let ev = loop {
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
                    _ = crate::clock::stopped(&mut stop) => return None,
                    _ = recheck => continue,
                    _ = beat => {
                        break SseEvent::default().event("heartbeat").data(auth.app.now_ms().to_string());
                    }
                    r = rx.recv() => match r {
                        Ok(m) => {
                            if wanted.as_ref().is_some_and(|w| !w.iter().any(|e| e == m.event))
                                || !crate::stream_access::may_receive(auth.role, m.event)
                            {
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
            Some((Ok::<_, Infallible>(ev), (rx, stop, guard, wanted, auth)))
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
    components["schemas"] = crate::api_facility::schemas();
    json!({
        "openapi": "3.0.3",
        "info": {"title": "dcim-server API", "version": env!("CARGO_PKG_VERSION")},
        "components": components,
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
    // A scrape token (`[metrics] scrape_token`) is accepted here and nowhere else.
    let scrape = app.config.metrics.token().is_some_and(|t| {
        header_str(&headers, header::AUTHORIZATION)
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|b| auth::same_secret(b.trim(), &t))
    });
    if !scrape {
        authorize(&app, &headers, &Method::GET, Access::Read).await?;
    }
    Ok(metrics_response(&app))
}

/// The `/metrics` document (also served without authentication on `[metrics] listen`).
pub fn metrics_response(app: &App) -> Response {
    (
        [(header::CONTENT_TYPE, crate::observe::CONTENT_TYPE)],
        crate::openmetrics::render(app),
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
    let hash = match crate::api_auth::hash_new_password(&app, body.password).await {
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
        Json(json!({"name": body.name, "role": role})),
    )
        .into_response())
}
