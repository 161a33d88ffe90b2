//! Sign-in and accounts: `POST /api/login` with its limits, password changes, disabling
//! users, token expiry and revocation, and the admins' view of sign-in locks.
//!
//! Sign-in, in order, before any password is hashed: the body is at most [`LOGIN_BODY_MAX`]
//! bytes; the `Origin` check; the back-off (`auth::limits`: the address, and the user name or
//! the browser's device cookie of that user; 429 with `Retry-After` while locked); a user
//! name that cannot exist (not 1-64 of `[A-Za-z0-9._-]`) or a password over
//! `auth::password::MAX_BYTES` fails without a hash; the hashing gate (`security`: bounded
//! concurrency and queue, 503 when full). A name without an account is hashed against a dummy
//! hash, so known and unknown names answer alike. Failures are audited through the coalescer
//! (`auth::coalesce`): bounded rows whatever an attacker sends.
//!
//! Details: the sign-in body is at most `LOGIN_BODY_MAX` (8 KiB); back-off happens before any hash
//! (429 with `Retry-After`); names that cannot exist and passwords over 1 KiB fail unhashed; the
//! device cookie has `Path=/api/login`. Password changes, disable and enable refuse oneself and the
//! last admin, end the user's sessions and are refused under authority control. Tokens expire
//! after `auth.token_days` (default 90). `GET /api/auth/lockouts` and
//! `POST /api/auth/lockouts/clear` are for admins. The CLI has the same (`user passwd|disable|
//! enable|token --days|tokens|revoke`). A generated bootstrap password is shown on the terminal or
//! written to `<data>/initial-admin-password` (0600), never logged.

use crate::app::App;
use crate::base::metrics::inc;
use crate::config::Role;
use crate::engine::authority::ActionKind;
use crate::http::api_authority::guard;
use crate::http::api_base::Authorized;
use crate::http::api_base::{ApiError, CSRF_COOKIE, SESSION_COOKIE, parse_body};
use crate::state::auth::limits::Subject;
use crate::state::auth::{self, password};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Largest sign-in request body.
pub const LOGIN_BODY_MAX: usize = 8 * 1024;
/// The browser's device cookie (see `auth::limits`).
pub const DEVICE_COOKIE: &str = "dcim_device";
/// Lifetime of a device cookie.
const DEVICE_COOKIE_DAYS: u64 = 180;

type AppState = State<Arc<App>>;

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The peer address of a request (set by `http_limits`; unspecified when absent, e.g. a
/// router driven without a listener).
fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The 429 body while a sign-in subject is locked: the error and the seconds to wait.
#[derive(Serialize)]
pub struct TooMany {
    pub error: String,
    pub retry_after_s: i64,
}

fn too_many(until_ms: i64, now_ms: i64, why: &str) -> Response {
    let secs = ((until_ms - now_ms).max(0) + 999) / 1000;
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(TooMany {
            error: format!("{why}: try again in {secs} s"),
            retry_after_s: secs,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn busy() -> Response {
    let mut r = ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many sign-ins at once: try again in a second".into(),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// Verifies `password` for `name` through the hashing gate: against the user's hash, or a
/// dummy hash when there is no such (enabled) user. `Err(response)` when the gate is full;
/// not verified (false) when one of `subjects` was locked while the attempt waited.
async fn verify(
    app: &Arc<App>,
    address: &str,
    subjects: &[Subject],
    name: &str,
    password: String,
) -> Result<(Option<crate::storage::store::UserRecord>, bool), Response> {
    let ticket = app.security.hash_ticket(address).map_err(|_| {
        inc(&app.metrics.login_refused_total, 1);
        busy()
    })?;
    let user = app
        .store
        .get_user(name)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let (m, t) = (
        app.config.auth.argon2_memory_kib,
        app.config.auth.argon2_iterations,
    );
    let a = app.clone();
    let unlocked = || {
        app.security
            .logins
            .lock()
            .expect("login limiter")
            .check(subjects, app.now_ms())
            .is_ok()
    };
    let ok = ticket
        .run(unlocked, move |mem| {
            let hash = hash.unwrap_or_else(|| a.security.dummy_hash(m, t));
            auth::verify_password_in(&password, &hash, mem)
        })
        .await
        .unwrap_or(false);
    let ok = ok && user.as_ref().is_some_and(|u| !u.disabled);
    Ok((user, ok))
}

/// `POST /api/login`, in the order of the module docs: the request, the back-off, the
/// verification through the hashing gate, the back-off again, then the failure or the session.
pub(crate) async fn login(State(app): AppState, req: Request) -> Result<Response, ApiError> {
    let ip = peer_ip(&req);
    let (headers, body) = login_request(&app, req).await?;
    let name = body.username;
    let (key, device, subjects) = login_subjects(&app, ip, &headers, &name).await?;
    if let Some(resp) = locked_out(&app, &subjects) {
        return Ok(resp);
    }
    let plausible =
        dcim_wire::check_identifier(&name).is_ok() && password::plausible(&body.password);
    let address_key = crate::state::auth::limits::address_key(ip);
    let (user, ok) = if plausible {
        match verify(&app, &address_key, &subjects, &name, body.password).await {
            Ok(r) => r,
            Err(resp) => return Ok(resp),
        }
    } else {
        (None, false)
    };
    // Locked while this attempt waited (concurrent failures): refused even when right.
    if let Some(resp) = locked_out(&app, &subjects) {
        return Ok(resp);
    }
    let peer = ip.to_string();
    let real = user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        return Err(login_failed(&app, &subjects, real, &name, &peer).await);
    };
    app.security
        .logins
        .lock()
        .expect("login limiter")
        .succeeded(&subjects);
    start_session(&app, &user, device, &key, &peer).await
}

/// The sign-in request: its body (at most [`LOGIN_BODY_MAX`] bytes) and the `Origin` check.
async fn login_request(app: &App, req: Request) -> Result<(HeaderMap, LoginBody), ApiError> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let body = axum::body::to_bytes(body, LOGIN_BODY_MAX)
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: at most {LOGIN_BODY_MAX} bytes"),
            )
        })?;
    let body: LoginBody = parse_body(&body)?;
    if !auth::origin_ok(
        header_str(&headers, header::ORIGIN),
        header_str(&headers, header::HOST),
        &app.config.http.allowed_origins,
        app.config.http.secure_cookies,
    ) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "cross-origin request refused".into(),
        ));
    }
    Ok((headers, body))
}

/// Who the back-off counts the attempt against: the address, and the browser's device (its
/// cookie, when valid for this user name) or else the user name. Also the device key and the
/// device nonce, for the cookie a session renews.
async fn login_subjects(
    app: &Arc<App>,
    ip: IpAddr,
    headers: &HeaderMap,
    name: &str,
) -> Result<(Vec<u8>, Option<String>, [Subject; 2]), ApiError> {
    let address = Subject::address(ip);
    let key = app.security.device_key(app).await?.to_vec();
    let device = header_str(headers, header::COOKIE)
        .and_then(|c| auth::cookie(c, DEVICE_COOKIE))
        .and_then(|v| password::device_of(&key, v, name))
        .map(str::to_owned);
    let who = match &device {
        Some(d) => Subject::Device(d.clone()),
        None => Subject::User(name.to_owned()),
    };
    Ok((key, device, [address, who]))
}

/// The 429 answer while one of `subjects` is locked by the back-off.
fn locked_out(app: &App, subjects: &[Subject]) -> Option<Response> {
    let locked = app
        .security
        .logins
        .lock()
        .expect("login limiter")
        .check(subjects, app.now_ms());
    if let Err(l) = locked {
        inc(&app.metrics.login_refused_total, 1);
        return Some(too_many(
            l.until_ms,
            app.now_ms(),
            "too many failed sign-ins",
        ));
    }
    None
}

/// A failed sign-in: counted by the back-off (`real`: the user exists), audited, and the one
/// answer for a wrong name and a wrong password alike.
async fn login_failed(
    app: &Arc<App>,
    subjects: &[Subject],
    real: bool,
    name: &str,
    peer: &str,
) -> ApiError {
    let locks =
        app.security
            .logins
            .lock()
            .expect("login limiter")
            .failed(subjects, real, app.now_ms());
    app.security
        .audit_failure(app, "login.failed", name, "session", peer, json!({}))
        .await;
    app.security.audit_locks(app, "http", peer, &locks).await;
    ApiError(
        StatusCode::UNAUTHORIZED,
        "wrong user name or password".into(),
    )
}

/// `POST /api/login`: the signed-in user, its role, the CSRF token to send with writes and
/// when the session ends.
#[derive(Serialize)]
pub struct Session {
    pub user: String,
    pub role: String,
    pub csrf_token: String,
    pub expires_ms: i64,
}

/// A successful sign-in: the session stored and audited, its token and CSRF token in cookies,
/// and the device cookie renewed (a new nonce when the browser had none).
async fn start_session(
    app: &Arc<App>,
    user: &crate::storage::store::UserRecord,
    device: Option<String>,
    key: &[u8],
    peer: &str,
) -> Result<Response, ApiError> {
    let token = auth::new_token("s_");
    let csrf = auth::new_token("");
    let now = app.now_ms();
    let ttl = app.config.http.session_ttl_s;
    let expires_ms = now + (ttl as i64) * 1000;
    app.store
        .create_session(&crate::storage::store::SessionRecord {
            token_hash: auth::token_hash(&token),
            user: user.name.clone(),
            csrf: csrf.clone(),
            created_ms: now,
            expires_ms,
        })
        .await?;
    app.audit(&user.name, "login", "session", json!({"peer": peer}))
        .await?;
    let secure = if app.config.http.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let nonce = device.unwrap_or_else(|| auth::new_token("")[..32].to_string());
    let device_value = password::device_cookie(key, &nonce, &user.name);
    let mut resp = Json(Session {
        user: user.name.clone(),
        role: user.role.clone(),
        csrf_token: csrf.clone(),
        expires_ms,
    })
    .into_response();
    let h = resp.headers_mut();
    for cookie in [
        format!(
            "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"
        ),
        format!("{CSRF_COOKIE}={csrf}; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"),
        format!(
            "{DEVICE_COOKIE}={device_value}; HttpOnly; SameSite=Strict; Path=/api/login; Max-Age={}{secure}",
            DEVICE_COOKIE_DAYS * 86_400
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// Hashes a new password (checked first) through the hashing gate.
async fn new_hash(app: &Arc<App>, address: &str, pw: String) -> Result<String, Response> {
    password::check_new(&pw)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("password: {e}")).into_response())?;
    let ticket = app.security.hash_ticket(address).map_err(|_| busy())?;
    let (m, t) = (
        app.config.auth.argon2_memory_kib,
        app.config.auth.argon2_iterations,
    );
    ticket
        .run(|| true, move |_| auth::hash_password(&pw, m, t))
        .await
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "hashing failed".into()))
        .and_then(|r| r.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)))
        .map_err(IntoResponse::into_response)
}

/// Hashes a new user's password (for `POST /api/users`).
pub async fn hash_new_password(app: &Arc<App>, pw: String) -> Result<String, Response> {
    new_hash(app, "admin", pw).await
}

/// `POST /api/me/password`, `POST /api/users/{name}/password`: how many sessions of the user
/// ended.
#[derive(Serialize)]
pub struct PasswordSet {
    pub ok: bool,
    pub sessions_ended: u64,
}

#[derive(Deserialize)]
struct OwnPassword {
    current: String,
    new: String,
}

/// `POST /api/me/password {current, new}`: the current password is verified like a sign-in
/// (same back-off); every other session of the user ends.
pub(crate) async fn change_own_password(
    State(app): AppState,
    Authorized(p): Authorized,
    req: Request,
) -> Result<Response, ApiError> {
    let ip = peer_ip(&req);
    let (_parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, LOGIN_BODY_MAX)
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large".into(),
            )
        })?;
    let b: OwnPassword = parse_body(&body)?;
    let address_key = crate::state::auth::limits::address_key(ip);
    let subjects = [Subject::address(ip), Subject::User(p.user.clone())];
    if let Err(l) = app
        .security
        .logins
        .lock()
        .expect("login limiter")
        .check(&subjects, app.now_ms())
    {
        return Ok(too_many(
            l.until_ms,
            app.now_ms(),
            "too many failed attempts",
        ));
    }
    if !password::plausible(&b.current) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "current password is wrong".into(),
        ));
    }
    let ok = match verify(&app, &address_key, &subjects, &p.user, b.current).await {
        Ok((_, ok)) => ok,
        Err(r) => return Ok(r),
    };
    if !ok {
        let locks = app.security.logins.lock().expect("login limiter").failed(
            &subjects,
            true,
            app.now_ms(),
        );
        app.security
            .audit_locks(&app, "http", &ip.to_string(), &locks)
            .await;
        app.audit(&p.user, "user.password_failed", &p.user, json!({}))
            .await?;
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "current password is wrong".into(),
        ));
    }
    let hash = match new_hash(&app, &address_key, b.new).await {
        Ok(h) => h,
        Err(r) => return Ok(r),
    };
    app.store.set_password(&p.user, &hash).await?;
    let ended = app
        .store
        .delete_sessions_of(&p.user, p.session.as_deref())
        .await?;
    app.audit(
        &p.user,
        "user.password",
        &p.user,
        json!({"by": "self", "sessions_ended": ended}),
    )
    .await?;
    Ok(Json(PasswordSet {
        ok: true,
        sessions_ended: ended,
    })
    .into_response())
}

async fn existing_user(
    app: &App,
    name: &str,
) -> Result<crate::storage::store::UserRecord, ApiError> {
    app.store
        .get_user(name)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no user `{name}`")))
}

#[derive(Deserialize)]
struct NewPassword {
    password: String,
}

/// `POST /api/users/{name}/password {password}` (admin): sets a user's password and ends
/// every session of that user.
pub(crate) async fn set_password(
    Authorized(p): Authorized,
    State(app): AppState,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: NewPassword = parse_body(&body)?;
    let _held = guard(&app, &p, ActionKind::UserModify, &name).await?;
    existing_user(&app, &name).await?;
    let hash = match new_hash(&app, "admin", b.password).await {
        Ok(h) => h,
        Err(r) => return Ok(r),
    };
    app.store.set_password(&name, &hash).await?;
    let ended = app.store.delete_sessions_of(&name, None).await?;
    app.audit(
        &p.user,
        "user.password",
        &name,
        json!({"by": "admin", "sessions_ended": ended}),
    )
    .await?;
    Ok(Json(PasswordSet {
        ok: true,
        sessions_ended: ended,
    })
    .into_response())
}

async fn enabled_admins(app: &App) -> Result<usize, ApiError> {
    Ok(app
        .store
        .list_users()
        .await?
        .iter()
        .filter(|u| !u.disabled && u.role == Role::Admin.as_str())
        .count())
}

/// `POST /api/users/{name}/disable` and `/enable`: the user's new state; disabling also says
/// how many sessions ended (enabling has no `sessions_ended`).
#[derive(Serialize)]
pub struct UserDisabled {
    pub name: String,
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_ended: Option<u64>,
}

/// `POST /api/users/{name}/disable` (admin): the user's sessions end and its tokens are
/// refused. An admin cannot disable itself, nor the last enabled admin.
pub(crate) async fn disable_user(
    Authorized(p): Authorized,
    State(app): AppState,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let _held = guard(&app, &p, ActionKind::UserModify, &name).await?;
    let u = existing_user(&app, &name).await?;
    if name == p.user {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "an admin cannot disable itself".into(),
        ));
    }
    if u.role == Role::Admin.as_str() && !u.disabled && enabled_admins(&app).await? <= 1 {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "the last enabled admin cannot be disabled".into(),
        ));
    }
    app.store.set_user_disabled(&name, true).await?;
    let ended = app.store.delete_sessions_of(&name, None).await?;
    app.audit(
        &p.user,
        "user.disable",
        &name,
        json!({"sessions_ended": ended}),
    )
    .await?;
    Ok(Json(UserDisabled {
        name,
        disabled: true,
        sessions_ended: Some(ended),
    })
    .into_response())
}

/// `POST /api/users/{name}/enable` (admin).
pub(crate) async fn enable_user(
    Authorized(p): Authorized,
    State(app): AppState,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let _held = guard(&app, &p, ActionKind::UserCreate, &name).await?;
    existing_user(&app, &name).await?;
    app.store.set_user_disabled(&name, false).await?;
    app.audit(&p.user, "user.enable", &name, json!({})).await?;
    Ok(Json(UserDisabled {
        name,
        disabled: false,
        sessions_ended: None,
    })
    .into_response())
}

/// `GET /api/users/{name}/tokens`: the user's tokens (never the token itself).
#[derive(Serialize)]
pub struct Tokens {
    pub tokens: Vec<crate::storage::store::TokenRecord>,
}

pub(crate) async fn list_tokens(
    State(app): AppState,
    Path(name): Path<String>,
) -> Result<Json<Tokens>, ApiError> {
    existing_user(&app, &name).await?;
    Ok(Json(Tokens {
        tokens: app.store.list_tokens(Some(&name)).await?,
    }))
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    /// Lifetime in days (1..=3650); default `auth.token_days`.
    days: Option<u32>,
}

/// `POST /api/users/{name}/tokens`: the new token, shown this once.
#[derive(Serialize)]
pub struct TokenCreated {
    pub user: String,
    pub name: String,
    /// First hex digits of the token's hash (what revoking and listing name it by).
    pub id: String,
    pub token: String,
    pub expires_ms: i64,
}

/// `POST /api/users/{name}/tokens {name, days}` (admin): a bearer token, shown once, that
/// expires after `days`.
pub(crate) async fn create_token(
    Authorized(p): Authorized,
    State(app): AppState,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: NewToken = parse_body(&body)?;
    let days = body.days.unwrap_or(app.config.auth.token_days);
    if !(1..=3650).contains(&days) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "days: expected 1..=3650".into(),
        ));
    }
    if body.name.is_empty() || body.name.chars().count() > 100 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "name: 1-100 characters".into(),
        ));
    }
    existing_user(&app, &user).await?;
    let token = auth::new_token("dcim_");
    let now = app.now_ms();
    let expires_ms = now + i64::from(days) * 86_400_000;
    let hash = auth::token_hash(&token);
    app.store
        .create_token_until(&hash, &user, &body.name, now, Some(expires_ms))
        .await?;
    let id = &hash[..crate::storage::store::TOKEN_ID_LEN];
    app.audit(
        &p.user,
        "token.create",
        &user,
        json!({"name": body.name, "id": id, "expires_ms": expires_ms}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: id.to_owned(),
            user,
            name: body.name,
            token,
            expires_ms,
        }),
    )
        .into_response())
}

/// `POST /api/users/{name}/tokens/{id}/revoke`.
#[derive(Serialize)]
pub struct TokenRevoked {
    pub user: String,
    pub id: String,
    pub revoked: bool,
}

/// `POST /api/users/{name}/tokens/{id}/revoke` (admin).
pub(crate) async fn revoke_token(
    Authorized(p): Authorized,
    State(app): AppState,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let _held = guard(&app, &p, ActionKind::TokenRevoke, &user).await?;
    if !app.store.revoke_token(&user, &id).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no token `{id}` of user `{user}`"),
        ));
    }
    app.audit(&p.user, "token.revoke", &user, json!({"id": id}))
        .await?;
    Ok(Json(TokenRevoked {
        user,
        id,
        revoked: true,
    })
    .into_response())
}

/// `GET /api/auth/lockouts`: the sign-in subjects tracked per channel.
#[derive(Serialize)]
pub struct Lockouts {
    pub http: Vec<crate::state::auth::limits::SubjectView>,
    pub mqtt: Vec<crate::state::auth::limits::SubjectView>,
    pub now_ms: i64,
}

/// `GET /api/auth/lockouts` (admin): every sign-in subject with failures or a lock, HTTP and
/// MQTT.
pub(crate) async fn lockouts(State(app): AppState) -> Result<Json<Lockouts>, ApiError> {
    let now = app.now_ms();
    let http = app.security.logins.lock().expect("login limiter").view(now);
    let mqtt = app
        .security
        .mqtt_logins
        .lock()
        .expect("mqtt login limiter")
        .view(now);
    Ok(Json(Lockouts {
        http,
        mqtt,
        now_ms: now,
    }))
}

#[derive(Deserialize)]
struct ClearLock {
    /// `user`, `address` or `device`.
    kind: String,
    name: String,
    /// `http` (default) or `mqtt`.
    channel: Option<String>,
}

/// `POST /api/auth/lockouts/clear`: whether the subject was tracked.
#[derive(Serialize)]
pub struct Cleared {
    pub cleared: bool,
}

/// `POST /api/auth/lockouts/clear {kind, name, channel}` (admin): ends a lock and its
/// counters (audited).
pub(crate) async fn clear_lockout(
    State(app): AppState,
    Authorized(p): Authorized,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: ClearLock = parse_body(&body)?;
    let subject = match b.kind.as_str() {
        "user" => Subject::User(b.name.clone()),
        "address" => Subject::Address(b.name.clone()),
        "device" => Subject::Device(b.name.clone()),
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "kind: expected user, address or device".into(),
            ));
        }
    };
    let channel = b.channel.as_deref().unwrap_or("http");
    let limiter = match channel {
        "http" => &app.security.logins,
        "mqtt" => &app.security.mqtt_logins,
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "channel: expected http or mqtt".into(),
            ));
        }
    };
    let cleared = limiter.lock().expect("login limiter").clear(&subject);
    app.audit(
        &p.user,
        "login.unlock",
        &b.name,
        json!({"kind": b.kind, "channel": channel, "was_tracked": cleared}),
    )
    .await?;
    Ok(Json(Cleared { cleared }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enabling_a_user_answers_no_sessions_ended_and_disabling_does() {
        // Hazard: `sessions_ended: null` on enabling would read as "unknown how many sessions
        // ended"; the old answer had no such key, the disabling answer a number.
        let enabled = UserDisabled {
            name: "ops".into(),
            disabled: false,
            sessions_ended: None,
        };
        assert_eq!(
            serde_json::to_value(&enabled).unwrap(),
            json!({"name": "ops", "disabled": false})
        );
        let disabled = UserDisabled {
            name: "ops".into(),
            disabled: true,
            sessions_ended: Some(3),
        };
        assert_eq!(
            serde_json::to_value(&disabled).unwrap(),
            json!({"name": "ops", "disabled": true, "sessions_ended": 3})
        );
    }
}
