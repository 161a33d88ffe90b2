//! The operators' web console: static assets from `console/`, embedded in the binary
//! (rust-embed; debug builds read the folder from disk so the assets can be edited without a
//! rebuild). Served under `/console/`; `/` redirects there. A path under `/console/` that is not
//! an asset and has no file extension is a console route (history API) and gets `index.html`.
//!
//! The assets are public (they hold no data); everything they show comes from the
//! authenticated API.
//!
//! `resolve` (pure) maps a path to an asset, the index or 404 and refuses `..` and dot-files; the
//! HTML shell is `no-cache`, other assets `max-age=300` with an ETag; every response carries a
//! same-origin-only Content-Security-Policy, so the console uses no inline script or style (layout
//! that depends on data, such as a rack's tile on a floor plan, is set through the CSSOM, which the
//! policy allows).
//!
//! # The client modules (`console/js/`)
//!
//! - `i18n.js` with `i18n/en.js` and `i18n/ko.js`: every text goes through `t(key, params)` (plural
//!   forms by `Intl.PluralRules`); the language is the user's choice (localStorage), else the
//!   browser's, else English. English is the reference; Korean has every key. Names the server
//!   gives in English (stage, action, role and alarm-rule names) are translated under `srv.` in
//!   Korean. Dates, times and numbers use `Intl`; a time that matters carries its UTC offset. A
//!   missing key shows `⟦key⟧` and logs an error, so tests find it.
//! - `api.js` (fetch; CSRF token on writes); `live.js` and `live-worker.js`: one live connection
//!   per browser. A SharedWorker holds the only `EventSource` on `/api/stream?heartbeat_ms=1500`
//!   and fans events out to every tab (a tab without SharedWorker opens its own); a stream silent
//!   for 3.5 s is reconnected, an HTTP error retried with back-off. Ten tabs hold one connection,
//!   which leaves the browser's other five per host (HTTP/1.1) for API calls.
//! - `state.js`: site model (floor plans, rack contents), places, latest points plus a history
//!   kept since page load and seeded on demand from the server's point history, redundancy,
//!   alarms, incidents, maintenance and its windows, PUE as the server computes it, the fire
//!   summary, the stage table, roles and alarm rules. Stream events (`points`, and `redundancy`: a
//!   level changed at the server's tick) trigger re-fetches at most every 250 ms (the fire summary
//!   at most every 1.5 s; PUE every 5 s). Liveness: with the stream down, or nothing (not even a
//!   heartbeat) heard for 4 s, `state.stale` is set; when the stream is back everything is loaded
//!   again before it clears.
//! - `fire.js`: stage names, colours (`stage-0` .. `stage-6`, `stage-x` for no reading), places,
//!   triggers, actions and event texts, all from the server's tables. `diagram.js`: layered SVG
//!   per subsystem, each component a `g.node[data-id][data-state]`; a layer of more than 40
//!   components is drawn per room (`g.node.group`, worst member state and counts).
//! - `plan.js`: floor plans as CSS grids of floor tiles from the site model's `[[plan]]` (a room
//!   without one shows its rows stacked, and says so). A rack's worst state: a fire stage first,
//!   then a missing stage reading (never normal), then down, degraded, unknown supply (power
//!   before cooling before network), maintenance, normal; maintenance windows are marked on top.
//!   The racks page, the fire authority's (printable) view and the wall use the same plans.
//! - `chart.js`: the history chart (SVG, no library): one or two series on their own axes,
//!   min-max band and last-value step line per bucket, a gap where the server has no bucket, the
//!   part of the range the server does not keep hatched and named, drag to zoom.
//! - `search.js` (the header's global search, `/` focuses it), `view-*.js` (one per page),
//!   `common.js`, `ui.js`, `app.js` (sign-in, navigation, the user menu with language, theme and
//!   the wall screen, the lost-data banner with the time of the last word from the server).
//! - Themes: dark (default) and light, every theme-dependent colour a CSS variable
//!   (`:root[data-theme=light]`); the system's preference unless the user chose.
//! - Wall screen (`/console/wall`, kiosk, 3840x2160): no navigation; cycles status, floor plans,
//!   alarms and fire (`?cycle=SECONDS`) or stays pinned (`?pin=`); any fire stage is always on
//!   screen; lost data turns the whole wall into a striped frame with the time of the last data.
//!
//! Invariants: the console hides controls from roles without `Operate` (and shelving of alarms
//! whose rule says `shelvable: false`), but the server enforces. Missing data is never drawn as
//! healthy: no reading is its own colour and label, a stale value is marked, a lost stream is said
//! across the page within 5 s; a range of history the server does not keep is said, not drawn;
//! PUE is never a division of partial sums; a redundancy level is the one proven by what reports
//! (`current`), and one that is not `verified` is shown with the server's `summary` and drawn
//! unknown, never green (a rack whose levels are unverified is never normal). Feeds and breakers
//! are live as the server decides from measurement (`energised`; a `mismatch` is listed).
//!
//! Decision: no library for plans or charts. The plans are tiles on a grid, which CSS grid draws
//! (and prints) directly, and the charts need a handful of SVG paths; D3, uPlot or ECharts would
//! add a dependency and a build or vendoring step for what ~300 lines do, and none handles the
//! "not kept by the server" region the console must show anyway.

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
