//! What every route module shares: a route's declaration ([`RouteDoc`]; the table is
//! `crate::http::api::ROUTES`) and its authorisation before the handler ([`authorize_route`]), the
//! error type, authorisation of a request (session cookie with CSRF, or bearer token) and
//! parsing of queries and bodies after authorisation. Handlers answer typed bodies: a named
//! `Serialize` struct per answer, kept next to the handler that returns it (or the domain type
//! when the body is that type); an error is always [`ApiError`], `{"error": "..."}`. The route
//! modules (`api`, `api_*`) sit above it; it imports none of them.

use crate::app::App;
use crate::base::metrics::inc;
use crate::config::Role;
use crate::state::auth::{self, Access};
use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "dcim_session";
pub const CSRF_COOKIE: &str = "dcim_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A route, declared once in `crate::http::api::ROUTES`: its method and path, what it needs, what it
/// does, and its handler. The router is built from the table, every route's authorisation runs
/// from its `access` before the handler ([`authorize_route`]), and the OpenAPI document and the
/// auth tests read the same table, so a route cannot be served without being declared.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: no authentication (only `/health`; `/api/login` authenticates by password,
    /// `/metrics` by its scrape token or session).
    pub access: Option<Access>,
    pub summary: &'static str,
    /// The handler, bound to the method it is given.
    pub handler: fn(MethodFilter) -> MethodRouter<Arc<App>>,
    /// Also admits the `[metrics] scrape_token` as a bearer token (only `/metrics`).
    pub scrape_token: bool,
}

impl RouteDoc {
    /// The method as axum's filter.
    pub fn method_filter(&self) -> MethodFilter {
        match self.method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            other => panic!("route {} {}: unsupported method {other}", other, self.path),
        }
    }

    /// This route's method router, with its authorisation in front of the handler.
    pub fn method_router(&'static self, app: &Arc<App>) -> MethodRouter<Arc<App>> {
        (self.handler)(self.method_filter()).route_layer(axum::middleware::from_fn_with_state(
            (app.clone(), self),
            authorize_route,
        ))
    }
}

pub const fn r(
    method: &'static str,
    path: &'static str,
    access: Option<Access>,
    summary: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<Arc<App>>,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        access,
        summary,
        handler,
        scrape_token: false,
    }
}

impl RouteDoc {
    /// The route also admits the scrape token (`[metrics] scrape_token`).
    pub const fn with_scrape_token(mut self) -> RouteDoc {
        self.scrape_token = true;
        self
    }
}

/// The principal [`authorize_route`] admitted, for the handler.
#[derive(Debug, Clone)]
pub struct Authorized(pub Principal);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        // A handler that asks for the principal on a route declared without access would
        // otherwise run unauthenticated: refuse (fail closed).
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authorized)
            .ok_or_else(|| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "route declared without access".into(),
                )
            })
    }
}

/// Whether the request carries the configured scrape token as its bearer token.
fn scrape_token_matches(app: &App, headers: &HeaderMap) -> bool {
    app.config.metrics.token().is_some_and(|t| {
        header_str(headers, header::AUTHORIZATION)
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|b| auth::same_secret(b.trim(), &t))
    })
}

/// Runs a route's declared authorisation before its handler and hands the principal on.
pub async fn authorize_route(
    axum::extract::State((app, route)): axum::extract::State<(Arc<App>, &'static RouteDoc)>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if route.scrape_token && scrape_token_matches(&app, req.headers()) {
        return next.run(req).await;
    }
    if let Some(access) = route.access {
        let method = req.method().clone();
        match authorize(&app, req.headers(), &method, access).await {
            Ok(p) => {
                req.extensions_mut().insert(p);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

/// The body of every error answer: `{"error": "what went wrong"}`.
#[derive(serde::Serialize)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
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
