//! The Grafana dashboards read what the server's time-series writer writes: every name a query
//! uses is checked against a line produced by `influx::encode` (and, for PromQL, the series
//! name VictoriaMetrics gives it, `tsdb::query::series_name`), every role against the point
//! vocabulary. The PromQL dashboards (`dashboards/json/`) are also run against VictoriaMetrics
//! with the demo's data by `tests/e2e/tests/it/dashboards.rs`; the Flux ones (`dashboards/flux/`)
//! are checked here only.
//!
//! Hazards: a dashboard that names a measurement, field, tag or role the server does not write
//! shows an empty panel, and an empty panel reads as "nothing happening"; a panel that draws
//! readings whatever their quality shows a stale value as current; the Flux and PromQL sets
//! drifting apart, so that one of them lacks a panel.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../dashboards")
        .join(sub)
}

fn dashboards(sub: &str) -> Vec<(String, serde_json::Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir(sub))
        .unwrap_or_else(|e| panic!("dashboards/{sub}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "dashboards/{sub}: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let name = format!("{sub}/{}", p.file_name().unwrap().to_string_lossy());
            let d = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, d)
        })
        .collect()
}

fn default_measurement() -> String {
    let c: dcim_server::config::InfluxConfig =
        toml::from_str("url = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\n")
            .expect("a minimal [influx] section parses");
    c.measurement
}

/// (measurement, tag keys, field keys) of the line the writer produces for `value`.
fn written(role: &str, value: dcim_points::Value) -> (String, BTreeSet<String>, BTreeSet<String>) {
    let sample = dcim_points::Sample {
        device: "dev-1".into(),
        point: role.replace('.', "_"),
        role: dcim_points::Role::new(role).expect("vocabulary role"),
        labels: [("feed".to_string(), "A".to_string())].into(),
        value: Some(value),
        unit: String::new(),
        quality: dcim_points::Quality::Good,
        ts_ms: 1,
    };
    let line = dcim_server::influx::encode(&default_measurement(), "site-1", "agent-1", &sample)
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

/// `(name, operator, operand)` of every `r.<name> ==|!=|=~ "<operand>"|/<re>/` in a Flux query.
fn flux_comparisons(q: &str) -> Vec<(String, String, String)> {
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
        let Some(op) = ["==", "!=", "=~"]
            .into_iter()
            .find(|o| after.starts_with(o))
        else {
            continue;
        };
        let tail = after[2..].trim_start();
        let operand = match tail.chars().next() {
            Some(d @ ('"' | '/')) => tail[1..].split(d).next().unwrap_or("").to_string(),
            _ => continue,
        };
        out.push((name, op.to_string(), operand));
    }
    out
}

/// `(label, operator, value)` of the matchers in every `{...}` selector of a PromQL query.
fn prom_matchers(q: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = q;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        let end = rest.find('}').expect("a closed selector");
        for m in rest[..end].split(", ") {
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|o| m.contains(o))
                .unwrap_or_else(|| panic!("matcher `{m}` in {q}"));
            let (l, v) = m.split_once(op).unwrap();
            out.push((
                l.trim().to_string(),
                op.to_string(),
                v.trim().trim_matches('"').to_string(),
            ));
        }
        rest = &rest[end + 1..];
    }
    out
}

/// The label names of every `by (...)` in a PromQL query.
fn prom_by_labels(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = q;
    while let Some(i) = rest.find(" by (") {
        rest = &rest[i + 5..];
        let end = rest.find(')').unwrap();
        out.extend(rest[..end].split(',').map(|l| l.trim().to_string()));
        rest = &rest[end + 1..];
    }
    out
}

/// The role names of a role matcher (`a.b`, or `a\\.b|c\\.d`).
fn role_names(op: &str, operand: &str) -> Vec<String> {
    let operand = operand.trim_start_matches("^(").trim_end_matches(")$");
    match op {
        "==" | "=" => vec![operand.to_string()],
        _ => operand
            .split('|')
            .map(|r| r.replace("\\\\.", ".").replace("\\.", "."))
            .collect(),
    }
}

fn substitute(s: &str, vars: &[(String, String)]) -> String {
    let mut s = s.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("${{{k}}}"), v);
    }
    s
}

fn variables(d: &serde_json::Value) -> Vec<(String, String)> {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "constant" || v["type"] == "textbox")
        .filter_map(|v| {
            let value = v["current"]["value"].as_str().or(v["query"].as_str())?;
            Some((v["name"].as_str()?.to_string(), value.to_string()))
        })
        .collect()
}

/// `(dashboard, panel title, query text, the dashboard's variables)`.
type Query = (String, String, String, Vec<(String, String)>);

/// Every query of the dashboards under `sub`.
fn queries(sub: &str, key: &str) -> Vec<Query> {
    let mut out = Vec::new();
    for (name, d) in dashboards(sub) {
        let vars = variables(&d);
        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{name}: no panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{name}: duplicate panel id"
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name} `{title}`: no query");
            for t in targets {
                let q = t[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} `{title}`: no `{key}`"));
                out.push((name.clone(), title.clone(), q.to_string(), vars.clone()));
            }
        }
    }
    out
}

#[test]
fn flux_queries_read_what_the_server_writes() {
    let (measurement, tags, fields) = written("feed.power_kw", dcim_points::Value::Number(1.0));
    let (_, _, bool_fields) = written("feed.breaker_closed", dcim_points::Value::Bool(true));
    assert_eq!(fields, bool_fields, "booleans are written as numbers");
    let mut roles_seen = BTreeSet::new();
    for (name, title, q, vars) in queries("flux", "query") {
        let q = substitute(&q, &vars);
        let at = format!("{name} `{title}`");
        let mut has = (false, false, false, false);
        for (field, op, operand) in flux_comparisons(&q) {
            let at = format!("{at}: r.{field} {op} {operand}");
            match field.as_str() {
                "_measurement" => {
                    assert_eq!(
                        operand, measurement,
                        "{at}: the server writes `{measurement}`"
                    );
                    has.0 = true;
                }
                "_field" => {
                    assert!(fields.contains(&operand), "{at}: fields are {fields:?}");
                    has.1 = true;
                }
                "_time" | "_value" => {}
                tag => {
                    assert!(tags.contains(tag), "{at}: the server writes tags {tags:?}");
                    if tag == "role" {
                        for r in role_names(&op, &operand) {
                            assert!(dcim_points::Role::new(&r).is_ok(), "{at}: `{r}` is no role");
                            roles_seen.insert(r);
                        }
                        has.2 = true;
                    }
                    if tag == "quality" {
                        assert_eq!(operand, "good", "{at}");
                        has.3 = true;
                    }
                }
            }
        }
        assert!(
            has.0 && has.1 && has.2 && has.3,
            "{at}: the query must select measurement, field, role and quality: {q}"
        );
        assert!(!q.contains("${"), "{at}: unresolved variable in {q}");
    }
    for role in [
        "feed.power_kw",
        "fire.stage",
        "battery.cell_temp.max",
        "feed.breaker_closed",
    ] {
        assert!(roles_seen.contains(role), "no Flux dashboard shows {role}");
    }
}

#[test]
fn promql_queries_read_what_victoria_metrics_stores() {
    let (measurement, tags, fields) = written("feed.power_kw", dcim_points::Value::Number(1.0));
    assert!(fields.contains("value"));
    let series = dcim_server::storage::tsdb::query::series_name(&measurement);
    let mut roles_seen = BTreeSet::new();
    for (name, title, q, vars) in queries("json", "expr") {
        let at = format!("{name} `{title}`");
        // `${site}` is Grafana's (a query variable); its braces are not a selector's.
        let q = substitute(&q, &vars).replace("${site}", "SITE_VARIABLE");
        let mut has = (false, false, false);
        for (label, op, value) in prom_matchers(&q) {
            let at = format!("{at}: {label}{op}\"{value}\"");
            match label.as_str() {
                "__name__" => {
                    assert_eq!(
                        (op.as_str(), value.as_str()),
                        ("=", series.as_str()),
                        "{at}"
                    );
                    has.0 = true;
                }
                "role" => {
                    for r in role_names(&op, &value) {
                        assert!(dcim_points::Role::new(&r).is_ok(), "{at}: `{r}` is no role");
                        roles_seen.insert(r);
                    }
                    has.1 = true;
                }
                "quality" => {
                    assert!(op == "=" || op == "!=", "{at}");
                    assert_eq!(value, "good", "{at}");
                    has.2 = true;
                }
                "site" => assert_eq!(
                    (op.as_str(), value.as_str()),
                    ("=~", "SITE_VARIABLE"),
                    "{at}"
                ),
                other => panic!("{at}: `{other}` is not a label the dashboards select on"),
            }
        }
        assert!(has.0 && has.1 && has.2, "{at}: name, role and quality: {q}");
        for l in prom_by_labels(&q) {
            assert!(
                tags.contains(&l),
                "{at}: by `{l}`; the server writes tags {tags:?}"
            );
        }
    }
    for role in [
        "feed.power_kw",
        "fire.stage",
        "battery.cell_temp.max",
        "feed.breaker_closed",
    ] {
        assert!(
            roles_seen.contains(role),
            "no PromQL dashboard shows {role}"
        );
    }
}

#[test]
fn the_flux_and_promql_sets_have_the_same_panels() {
    let titles = |sub: &str| -> Vec<(String, Vec<String>)> {
        dashboards(sub)
            .into_iter()
            .map(|(n, d)| {
                (
                    n.rsplit('/').next().unwrap().to_string(),
                    d["panels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["title"].as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(titles("json"), titles("flux"));
    let uids: BTreeSet<String> = ["json", "flux"]
        .iter()
        .flat_map(|s| dashboards(s))
        .map(|(_, d)| d["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uids.len(), 2 * dashboards("json").len(), "uids are unique");
}

#[test]
fn the_checkers_reject_wrong_names() {
    let c = flux_comparisons(
        "filter(fn: (r) => r._measurement == \"m\" and r.role == \"x.y\" and r.quality != \"good\" and r.site =~ /^a$/)",
    );
    assert_eq!(
        c,
        vec![
            ("_measurement".into(), "==".into(), "m".into()),
            ("role".into(), "==".into(), "x.y".into()),
            ("quality".into(), "!=".into(), "good".into()),
            ("site".into(), "=~".into(), "^a$".into()),
        ]
    );
    let m = prom_matchers(
        r#"sum by (site) (last_over_time({__name__="dcim_value", role=~"a\\.b|c\\.d", quality!="good"}[30s]))"#,
    );
    assert_eq!(m[1], ("role".into(), "=~".into(), "a\\\\.b|c\\\\.d".into()));
    assert_eq!(role_names(&m[1].1, &m[1].2), ["a.b", "c.d"]);
    assert_eq!(m[2].1, "!=");
    assert_eq!(
        prom_by_labels("max by (site, device) (x)"),
        ["site", "device"]
    );
    let (m, tags, fields) = written("ups.load_pct", dcim_points::Value::Number(3.0));
    assert_eq!(m, "dcim");
    assert!(tags.contains("role") && tags.contains("device") && !tags.contains("value"));
    assert!(fields.contains("value") && !fields.contains("_value"));
}

/// Hazard: dashboards provisioned next to a datasource they do not name open with "datasource
/// not found" and no data.
#[test]
fn the_provisioned_datasources_are_the_ones_the_dashboards_name() {
    for (sub, file, kind, uid) in [
        ("json", "dcim-victoriametrics.yaml", "prometheus", "dcim-vm"),
        ("flux", "dcim-influxdb.yaml", "influxdb", "dcim-influx"),
    ] {
        let yaml = std::fs::read_to_string(dir("provisioning/datasources").join(file)).unwrap();
        assert!(yaml.contains(&format!("uid: {uid}\n")), "{file}");
        assert!(yaml.contains(&format!("type: {kind}\n")), "{file}");
        for (name, d) in dashboards(sub) {
            let ds = d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "datasource")
                .unwrap_or_else(|| panic!("{name}: no datasource variable"));
            assert_eq!(ds["query"], kind, "{name}");
            assert_eq!(ds["current"]["value"], uid, "{name}");
            for p in d["panels"].as_array().unwrap() {
                assert_eq!(p["datasource"]["type"], kind, "{name}");
            }
        }
    }
}
