//! The operators' web console: static assets from `console/`, embedded in the binary
//! (rust-embed; debug builds read the folder from disk so the assets can be edited without a
//! rebuild). Served under `/console/`; `/` redirects there. A path under `/console/` that is not
//! an asset and has no file extension is a console route (history API) and gets `index.html`.
//!
//! The assets are public (they hold no data); everything they show comes from the
//! authenticated API.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

#[derive(rust_embed::RustEmbed)]
#[folder = "console/"]
struct Assets;

/// Routes of the console; merge into the API router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(|| async { serve("index.html") }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

/// What a request path under `/console/` resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    Asset(String),
    Index,
    NotFound,
}

/// Pure resolution of a path (relative to `/console/`) against the set of asset names.
pub fn resolve(path: &str, exists: impl Fn(&str) -> bool) -> Resolved {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Resolved::Index;
    }
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return Resolved::NotFound;
    }
    if exists(path) {
        return Resolved::Asset(path.to_string());
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    if last.contains('.') {
        Resolved::NotFound
    } else {
        Resolved::Index
    }
}

/// Cache policy: the HTML shell is always revalidated (so a new server version takes effect at
/// once); other assets may be cached briefly and revalidated by ETag.
pub fn cache_control(name: &str) -> &'static str {
    if name.ends_with(".html") {
        "no-cache"
    } else {
        "public, max-age=300, must-revalidate"
    }
}

fn serve(path: &str) -> Response {
    let name = match resolve(path, |p| Assets::get(p).is_some()) {
        Resolved::Asset(p) => p,
        Resolved::Index => "index.html".to_string(),
        Resolved::NotFound => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    let Some(file) = Assets::get(&name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = file.metadata.mimetype();
    let mime = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(&name)),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_assets_routes_and_traversal() {
        let have = |p: &str| p == "index.html" || p == "js/app.js";
        assert_eq!(resolve("", have), Resolved::Index);
        assert_eq!(
            resolve("js/app.js", have),
            Resolved::Asset("js/app.js".into())
        );
        assert_eq!(resolve("alarms", have), Resolved::Index);
        assert_eq!(resolve("racks/R-A01", have), Resolved::Index);
        assert_eq!(resolve("js/missing.js", have), Resolved::NotFound);
        assert_eq!(resolve("../Cargo.toml", have), Resolved::NotFound);
        assert_eq!(resolve(".hidden", have), Resolved::NotFound);
        assert_eq!(cache_control("index.html"), "no-cache");
        assert!(cache_control("app.js").contains("max-age"));
    }

    #[test]
    fn index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }
}
