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

/// The Grafana dashboards in `dashboards/json/` read what the server's InfluxDB writer writes:
/// every Flux query's measurement, field and tag names are checked against a line produced by
/// [`crate::influx::encode`], and every role against the point vocabulary.
#[cfg(test)]
mod dashboards {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn dashboard_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/json")
    }

    fn default_measurement() -> String {
        let c: crate::config::InfluxConfig =
            toml::from_str("url = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\n")
                .expect("a minimal [influx] section parses");
        c.measurement
    }

    /// (measurement, tag keys, field keys) of the line the writer produces for `value`.
    fn written(
        role: &str,
        value: dcim_points::Value,
    ) -> (String, BTreeSet<String>, BTreeSet<String>) {
        let sample = dcim_points::Sample {
            device: "dev-1".into(),
            point: role.replace('.', "_"),
            role: dcim_points::Role::new(role).expect("vocabulary role"),
            labels: Default::default(),
            value: Some(value),
            unit: String::new(),
            quality: dcim_points::Quality::Good,
            ts_ms: 1,
        };
        let line = crate::influx::encode(&default_measurement(), "site-1", "agent-1", &sample)
            .expect("a value is written");
        let mut parts = line.split(' ');
        let series = parts.next().unwrap();
        let fields = parts.next().unwrap();
        let mut series = series.split(',');
        let measurement = series.next().unwrap().to_string();
        let tags = series
            .map(|kv| kv.split('=').next().unwrap().to_string())
            .collect();
        let fields = fields
            .split(',')
            .map(|kv| kv.split('=').next().unwrap().to_string())
            .collect();
        (measurement, tags, fields)
    }

    /// `(name, operator, operand)` of every `r.<name> == "<operand>"` / `=~ /<re>/` in a query.
    fn comparisons(q: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut rest = q;
        while let Some(i) = rest.find("r.") {
            let before = rest[..i].chars().last();
            rest = &rest[i + 2..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let after = rest[name.len()..].trim_start();
            let (op, tail) = if let Some(t) = after.strip_prefix("==") {
                ("==", t.trim_start())
            } else if let Some(t) = after.strip_prefix("=~") {
                ("=~", t.trim_start())
            } else {
                continue;
            };
            let operand = match tail.chars().next() {
                Some(d @ ('"' | '/')) => tail[1..].split(d).next().unwrap_or("").to_string(),
                _ => continue,
            };
            out.push((name, op.to_string(), operand));
        }
        out
    }

    fn substitute(s: &str, vars: &[(String, String)]) -> String {
        let mut s = s.to_string();
        for (k, v) in vars {
            s = s.replace(&format!("${{{k}}}"), v);
        }
        s
    }

    #[test]
    fn every_query_reads_what_the_server_writes() {
        let mut files: Vec<_> = std::fs::read_dir(dashboard_dir())
            .expect("dashboards/json exists")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        assert!(files.len() >= 4, "dashboards: {files:?}");
        let (num_measurement, num_tags, num_fields) =
            written("feed.power_kw", dcim_points::Value::Number(1.0));
        let (_, _, bool_fields) = written("feed.breaker_closed", dcim_points::Value::Bool(true));
        assert_eq!(num_fields, bool_fields, "booleans are written as numbers");
        let mut roles_seen = BTreeSet::new();
        for path in &files {
            let where_ = path.display().to_string();
            let d: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap())
                    .unwrap_or_else(|e| panic!("{where_}: {e}"));
            let vars: Vec<(String, String)> = d["templating"]["list"]
                .as_array()
                .unwrap_or_else(|| panic!("{where_}: templating.list"))
                .iter()
                .filter_map(|v| {
                    let value = v["current"]["value"].as_str().or(v["query"].as_str())?;
                    Some((v["name"].as_str()?.to_string(), value.to_string()))
                })
                .collect();
            let panels = d["panels"]
                .as_array()
                .unwrap_or_else(|| panic!("{where_}: panels"));
            assert!(!panels.is_empty(), "{where_}: no panels");
            let mut ids = BTreeSet::new();
            for p in panels {
                let title = p["title"].as_str().unwrap_or("?");
                assert!(
                    ids.insert(p["id"].as_i64().unwrap()),
                    "{where_}: duplicate panel id"
                );
                let targets = p["targets"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{where_} `{title}`: targets"));
                assert!(!targets.is_empty(), "{where_} `{title}`: no query");
                for t in targets {
                    let q = substitute(
                        t["query"]
                            .as_str()
                            .unwrap_or_else(|| panic!("{where_} `{title}`: query")),
                        &vars,
                    );
                    let cmp = comparisons(&q);
                    let mut has = (false, false, false);
                    for (name, op, operand) in &cmp {
                        let at = format!("{where_} panel `{title}`: r.{name} {op} {operand}");
                        match name.as_str() {
                            "_measurement" => {
                                assert_eq!(
                                    operand, &num_measurement,
                                    "{at}: the server writes measurement `{num_measurement}`"
                                );
                                has.0 = true;
                            }
                            "_field" => {
                                assert!(
                                    num_fields.contains(operand),
                                    "{at}: the server writes fields {num_fields:?} for numbers and booleans"
                                );
                                has.1 = true;
                            }
                            tag => {
                                assert!(
                                    num_tags.contains(tag),
                                    "{at}: the server writes tags {num_tags:?}"
                                );
                                if tag == "role" {
                                    assert_eq!(op, "==", "{at}");
                                    assert!(
                                        dcim_points::Role::new(operand).is_ok(),
                                        "{at}: not a role of the point vocabulary"
                                    );
                                    roles_seen.insert(operand.clone());
                                    has.2 = true;
                                }
                            }
                        }
                    }
                    assert!(
                        has.0 && has.1 && has.2,
                        "{where_} panel `{title}`: the query must select measurement, field and role: {q}"
                    );
                    assert!(
                        !q.contains("${"),
                        "{where_} panel `{title}`: unresolved variable in {q}"
                    );
                }
            }
        }
        for role in [
            "feed.power_kw",
            "ups.load_pct",
            "ups.runtime_s",
            "chiller.supply_temp",
            "buffer_tank.temp",
            "battery.cell_temp.max",
            "feed.breaker_closed",
        ] {
            assert!(roles_seen.contains(role), "no dashboard shows {role}");
        }
    }

    #[test]
    fn the_checker_rejects_wrong_names() {
        let c = comparisons(
            "filter(fn: (r) => r._measurement == \"m\" and r.role == \"x.y\" and r.site =~ /^a$/ and r._field == \"value\")",
        );
        assert_eq!(
            c,
            vec![
                ("_measurement".into(), "==".into(), "m".into()),
                ("role".into(), "==".into(), "x.y".into()),
                ("site".into(), "=~".into(), "^a$".into()),
                ("_field".into(), "==".into(), "value".into()),
            ]
        );
        let (m, tags, fields) = written("ups.load_pct", dcim_points::Value::Number(3.0));
        assert_eq!(m, "dcim");
        assert!(tags.contains("role") && tags.contains("device") && !tags.contains("value"));
        assert!(fields.contains("value") && !fields.contains("_value"));
    }
}
