//! Every panel of the Grafana dashboards (`dashboards/json/`, PromQL) runs against
//! VictoriaMetrics holding the demo facility's data, written by the server's own time-series
//! writer (demo -> edge agent -> broker -> ingest -> on-disk buffer -> `/api/v2/write`), and
//! returns what the raw samples say it must.
//!
//! For each query the test knows the shape the generator emits (`AGG by (LABELS)
//! (FN_over_time({selector}[$__interval]))`), evaluates it itself over the raw samples exported
//! from the store (`/api/v1/export`) at every evaluation time, and compares: the same series
//! (exactly the grouping labels), the same values. A query of another shape fails the test, so
//! the generator cannot emit something nobody checked.
//!
//! Hazards: a panel whose metric or label names do not match what the store holds is empty,
//! and an empty panel reads as "nothing happening"; a panel that groups too coarsely averages
//! two feeds of one meter into one line; a value panel that draws a stale or lost reading as
//! current; a sum of breakers that counts a lost reading as an open (or closed) breaker without
//! showing that a reading is missing; the console's history asking the store for a metric name
//! it does not hold and answering "no data".

use anyhow::Context;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The dashboards' minimum interval (each panel's `interval`): Grafana's `$__interval` is never
/// shorter, and the test evaluates at this step.
const INTERVAL_MS: i64 = 30_000;

struct Vm {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_bin() -> Option<PathBuf> {
    [
        "/usr/bin/victoria-metrics",
        "/usr/local/bin/victoria-metrics",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn start_vm(bin: &std::path::Path) -> anyhow::Result<Vm> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.path().display()))
        .arg("-retentionPeriod=100y")
        // VictoriaMetrics replaces the points of the last 30 s of a range query by earlier
        // ones by default (data may still be arriving); the test evaluates up to now.
        .arg("-search.latencyOffset=1s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting victoria-metrics")?;
    Ok(Vm {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

fn enc(s: &str) -> String {
    dcim_server::influx::urlencode(s)
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http
        .get(url)
        .send()
        .await
        .with_context(|| url.to_string())?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))
}

// ---------------------------------------------------------------------------------------------
// The query shapes of dashboards/generate.py
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Ne,
    Re,
}

#[derive(Debug, Clone)]
struct Matcher {
    label: String,
    op: Op,
    value: String,
}

#[derive(Debug, Clone)]
struct Shape {
    agg: String,
    by: Vec<String>,
    func: String,
    selector: Vec<Matcher>,
    window_ms: i64,
}

/// `AGG by (L1, L2) (FN_over_time({selector}[Ns]))`; anything else is an error.
fn parse_shape(expr: &str) -> Result<Shape, String> {
    let err = |why: &str| format!("not a known query shape ({why}): {expr}");
    let (agg, rest) = expr.split_once(" by (").ok_or_else(|| err("AGG by ("))?;
    let (by, rest) = rest.split_once(") (").ok_or_else(|| err("by list"))?;
    let (func, rest) = rest
        .split_once("_over_time(")
        .ok_or_else(|| err("FN_over_time"))?;
    let (selector, rest) = rest.rsplit_once("}[").ok_or_else(|| err("selector"))?;
    let window = rest.strip_suffix("]))").ok_or_else(|| err("window"))?;
    let window_ms = window
        .strip_suffix('s')
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| err("window in seconds"))?
        * 1000;
    let selector = selector
        .strip_prefix('{')
        .ok_or_else(|| err("selector {"))?;
    if !["sum", "count", "avg", "max", "min"].contains(&agg) {
        return Err(err("aggregation"));
    }
    if !["last", "count", "avg", "max", "min"].contains(&func) {
        return Err(err("range function"));
    }
    Ok(Shape {
        agg: agg.to_string(),
        by: by.split(", ").map(str::to_owned).collect(),
        func: func.to_string(),
        selector: parse_selector(selector).map_err(|e| err(&e))?,
        window_ms,
    })
}

/// `name="v", name!="v", name=~"re"` (PromQL string escapes `\\` and `\"`).
fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let i = rest.find(['=', '!']).ok_or("a matcher without operator")?;
        let label = rest[..i].trim().to_string();
        rest = &rest[i..];
        let (op, tail) = if let Some(t) = rest.strip_prefix("=~") {
            (Op::Re, t)
        } else if let Some(t) = rest.strip_prefix("!=") {
            (Op::Ne, t)
        } else if let Some(t) = rest.strip_prefix('=') {
            (Op::Eq, t)
        } else {
            return Err(format!("unknown operator at {rest}"));
        };
        let tail = tail.strip_prefix('"').ok_or("a value without quotes")?;
        let mut value = String::new();
        let mut chars = tail.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let (_, c) = chars.next().ok_or("a dangling escape")?;
                    value.push(c);
                }
                Some((j, '"')) => break j,
                Some((_, c)) => value.push(c),
                None => return Err("an unterminated value".into()),
            }
        };
        out.push(Matcher { label, op, value });
        rest = tail[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// The regular expressions the generator writes: `.*`, or alternatives of literal names with
/// escaped dots. Anything else is refused, so that this matcher never guesses.
fn regex_matches(re: &str, v: &str) -> bool {
    if re == ".*" {
        return true;
    }
    re.split('|').any(|alt| {
        assert!(
            !alt.replace("\\.", "")
                .contains(['.', '*', '+', '(', '[', '?']),
            "regex `{re}` is more than literal alternatives"
        );
        alt.replace("\\.", ".") == v
    })
}

fn selects(sel: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|m| {
        let v = labels.get(&m.label).map(String::as_str).unwrap_or("");
        match m.op {
            Op::Eq => v == m.value,
            Op::Ne => v != m.value,
            Op::Re => regex_matches(&m.value, v),
        }
    })
}

/// One raw series from `/api/v1/export`.
#[derive(Debug)]
struct Raw {
    labels: BTreeMap<String, String>,
    samples: Vec<(i64, f64)>,
}

fn over_time(func: &str, xs: &[f64]) -> f64 {
    match func {
        "last" => *xs.last().unwrap(),
        "count" => xs.len() as f64,
        "avg" => xs.iter().sum::<f64>() / xs.len() as f64,
        "max" => xs.iter().copied().fold(f64::MIN, f64::max),
        "min" => xs.iter().copied().fold(f64::MAX, f64::min),
        _ => unreachable!("checked by parse_shape"),
    }
}

/// The query evaluated at `t` over the raw samples: group (the `by` label values) -> value.
fn evaluate(shape: &Shape, raws: &[Raw], t: i64) -> BTreeMap<Vec<String>, f64> {
    let mut groups: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
    for r in raws.iter().filter(|r| selects(&shape.selector, &r.labels)) {
        // VictoriaMetrics' window of a range function: (t - window, t].
        let xs: Vec<f64> = r
            .samples
            .iter()
            .filter(|(ts, _)| *ts > t - shape.window_ms && *ts <= t)
            .map(|(_, x)| *x)
            .collect();
        if xs.is_empty() {
            continue;
        }
        let key = shape
            .by
            .iter()
            .map(|l| r.labels.get(l).cloned().unwrap_or_default())
            .collect();
        groups
            .entry(key)
            .or_default()
            .push(over_time(&shape.func, &xs));
    }
    groups
        .into_iter()
        .map(|(k, xs)| {
            let v = match shape.agg.as_str() {
                "sum" => xs.iter().sum(),
                "count" => xs.len() as f64,
                "avg" => xs.iter().sum::<f64>() / xs.len() as f64,
                "max" => xs.iter().copied().fold(f64::MIN, f64::max),
                "min" => xs.iter().copied().fold(f64::MAX, f64::min),
                _ => unreachable!("checked by parse_shape"),
            };
            (k, v)
        })
        .collect()
}

/// What the store answered: time -> group -> value, after checking that every series carries
/// exactly the grouping labels.
fn answered(shape: &Shape, body: &Value, at: &str) -> anyhow::Result<Answer> {
    anyhow::ensure!(body["status"] == "success", "{at}: {body}");
    anyhow::ensure!(body["data"]["resultType"] == "matrix", "{at}: {body}");
    let mut out = Answer::new();
    for s in body["data"]["result"].as_array().context("result")? {
        let metric = s["metric"].as_object().context("metric")?;
        let keys: BTreeSet<&str> = metric.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = shape.by.iter().map(String::as_str).collect();
        anyhow::ensure!(
            keys == want,
            "{at}: a series with labels {keys:?}, expected exactly {want:?}"
        );
        let key: Vec<String> = shape
            .by
            .iter()
            .map(|l| metric[l].as_str().unwrap_or_default().to_string())
            .collect();
        for v in s["values"].as_array().context("values")? {
            let t = (v[0].as_f64().context("time")? * 1000.0).round() as i64;
            let x: f64 = v[1].as_str().context("value")?.parse()?;
            anyhow::ensure!(
                out.entry(t).or_default().insert(key.clone(), x).is_none(),
                "{at}: two series for {key:?}"
            );
        }
    }
    Ok(out)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

type Answer = BTreeMap<i64, BTreeMap<Vec<String>, f64>>;

/// The same series at the same times with the same values (up to rounding).
fn same(a: &Answer, b: &Answer) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ta, ga), (tb, gb))| {
            ta == tb
                && ga.len() == gb.len()
                && ga
                    .iter()
                    .zip(gb)
                    .all(|((ka, xa), (kb, xb))| ka == kb && close(*xa, *xb))
        })
}

struct Target {
    at: String,
    expr: String,
    legend: String,
}

fn dashboard_targets() -> Vec<Target> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/json");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/json")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "dashboards: {files:?}");
    let mut out = Vec::new();
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for p in d["panels"].as_array().expect("panels") {
            assert_eq!(
                p["interval"], "30s",
                "{name} `{}`: the minimum interval is the server's staleness window",
                p["title"]
            );
            for t in p["targets"].as_array().expect("targets") {
                out.push(Target {
                    at: format!("{name} `{}` {}", p["title"].as_str().unwrap(), t["refId"]),
                    expr: t["expr"].as_str().expect("a PromQL expr").to_string(),
                    legend: t["legendFormat"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
    }
    out
}

fn substitute(expr: &str, site: &str) -> String {
    expr.replace("${measurement}", "dcim")
        .replace("${site}", site)
        .replace("$__interval", &format!("{}s", INTERVAL_MS / 1000))
}

/// The roles a query selects with `role="..."` or `role=~"a|b"`.
fn roles_of(shape: &Shape) -> Vec<String> {
    shape
        .selector
        .iter()
        .filter(|m| m.label == "role")
        .flat_map(|m| match m.op {
            Op::Eq => vec![m.value.clone()],
            _ => m.value.split('|').map(|r| r.replace("\\.", ".")).collect(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_answers_from_victoria_metrics_with_the_demos_data()
-> anyhow::Result<()> {
    let Some(bin) = vm_bin() else {
        if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("required peer missing: victoria-metrics (apt-get install victoria-metrics)");
        }
        println!("skipped: victoria-metrics is not installed");
        return Ok(());
    };
    let targets = dashboard_targets();
    let shapes: Vec<Shape> = targets
        .iter()
        .map(|t| {
            parse_shape(&substitute(&t.expr, ".*")).unwrap_or_else(|e| panic!("{}: {e}", t.at))
        })
        .collect();
    for (t, s) in targets.iter().zip(&shapes) {
        // The legend names each line by labels the query keeps.
        let mut rest = t.legend.as_str();
        while let Some(i) = rest.find("{{") {
            let j = rest[i..].find("}}").unwrap() + i;
            let label = &rest[i + 2..j];
            assert!(
                s.by.iter().any(|b| b == label),
                "{}: legend uses `{label}`",
                t.at
            );
            rest = &rest[j + 2..];
        }
        assert!(
            s.selector
                .iter()
                .any(|m| m.label == "quality" && m.value == "good" && m.op != Op::Re),
            "{}: every query selects good readings or those that are not",
            t.at
        );
        assert!(
            s.selector
                .iter()
                .any(|m| m.label == "__name__" && m.value == "dcim_value"),
            "{}: the selector names the series the writer produces",
            t.at
        );
    }
    let roles: BTreeSet<String> = shapes.iter().flat_map(roles_of).collect();

    let vm = start_vm(&bin)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let started_ms = dcim_clock::now_ms();
    let h = dcim_e2e::Harness::start_with(|o| {
        let mut influx = dcim_demo::demo::influx_for(&vm.url).expect("influx section");
        influx.flush_interval_ms = 200;
        o.influx = Some(influx);
    })
    .await?;

    // 1. Every role a dashboard draws reaches the store, with the points the server has.
    let series_roles = |q: &'static str| {
        let url = format!(
            "{}/api/v1/series?match[]={}&start={}",
            vm.url,
            enc(q),
            started_ms / 1000 - 60
        );
        let http = http.clone();
        async move {
            let s = get_json(&http, &url).await?;
            Ok::<_, anyhow::Error>(
                s["data"]
                    .as_array()
                    .context("series")?
                    .iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or_default().to_string(),
                            m["device"].as_str().unwrap_or_default().to_string(),
                            m["point"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect::<BTreeSet<_>>(),
            )
        }
    };
    dcim_e2e::wait_for(
        "every dashboard role in the store",
        Duration::from_secs(60),
        || async {
            let have: BTreeSet<String> = series_roles(r#"{__name__="dcim_value",quality="good"}"#)
                .await?
                .into_iter()
                .map(|(r, _, _)| r)
                .collect();
            Ok(roles.is_subset(&have).then_some(()))
        },
    )
    .await?;
    let numeric_points = || async {
        let points = h.get("/api/points").await?;
        Ok::<_, anyhow::Error>(
            points["points"]
                .as_array()
                .context("points")?
                .iter()
                .filter(|p| p["value"].is_number() || p["value"].is_boolean())
                .cloned()
                .collect::<Vec<Value>>(),
        )
    };
    dcim_e2e::wait_for(
        "the store holds every point of the dashboards' roles the server has",
        Duration::from_secs(30),
        || async {
            let stored = series_roles(r#"{__name__="dcim_value"}"#).await?;
            let points = numeric_points().await?;
            for role in &roles {
                let in_store: BTreeSet<(&str, &str)> = stored
                    .iter()
                    .filter(|(r, _, _)| r == role)
                    .map(|(_, d, p)| (d.as_str(), p.as_str()))
                    .collect();
                let at_server: BTreeSet<(&str, &str)> = points
                    .iter()
                    .filter(|p| p["role"] == role.as_str())
                    .map(|p| (p["device"].as_str().unwrap(), p["point"].as_str().unwrap()))
                    .collect();
                anyhow::ensure!(
                    in_store == at_server,
                    "{role}: only at the server {:?}, only in the store {:?}",
                    at_server.difference(&in_store).take(5).collect::<Vec<_>>(),
                    in_store.difference(&at_server).take(5).collect::<Vec<_>>()
                );
            }
            Ok(Some(()))
        },
    )
    .await?;
    let points = numeric_points().await?;

    // 2. One device per dashboard stops answering: its readings turn stale, then comm_lost.
    // Each dashboard's "readings not good" panel must show it; its value panels must not.
    let mut silenced: Vec<(String, BTreeSet<String>)> = Vec::new();
    let not_good: Vec<&Shape> = shapes
        .iter()
        .filter(|s| {
            s.selector
                .iter()
                .any(|m| m.label == "quality" && m.op == Op::Ne)
        })
        .collect();
    assert!(
        not_good.len() >= 4,
        "every dashboard has a readings-not-good panel"
    );
    for s in &not_good {
        let wanted: BTreeSet<String> = roles_of(s).into_iter().collect();
        if silenced.iter().any(|(_, rs)| !rs.is_disjoint(&wanted)) {
            continue;
        }
        let mut devices: Vec<(String, BTreeSet<String>)> = Vec::new();
        for p in &points {
            let (d, r) = (p["device"].as_str().unwrap(), p["role"].as_str().unwrap());
            match devices.iter_mut().find(|(x, _)| x == d) {
                Some((_, rs)) => {
                    rs.insert(r.to_string());
                }
                None => devices.push((d.to_string(), [r.to_string()].into())),
            }
        }
        devices.retain(|(_, rs)| !rs.is_disjoint(&wanted));
        devices.sort();
        let pick = devices
            .into_iter()
            .find(|(d, _)| h.sim(&format!("silent {d}")).is_ok())
            .with_context(|| format!("no simulated device with a role of {wanted:?}"))?;
        silenced.push(pick);
    }
    let silenced_devices: Vec<String> = silenced.iter().map(|(d, _)| d.clone()).collect();
    dcim_e2e::wait_for(
        "readings of the silenced devices marked not good in the store",
        Duration::from_secs(30),
        || async {
            let bad: BTreeSet<String> = series_roles(r#"{__name__="dcim_value",quality!="good"}"#)
                .await?
                .into_iter()
                .map(|(_, d, _)| d)
                .collect();
            Ok(silenced_devices
                .iter()
                .all(|d| bad.contains(d))
                .then_some(()))
        },
    )
    .await?;
    // Let the lines of the last second reach the store.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = http
        .get(format!("{}/internal/force_flush", vm.url))
        .send()
        .await;
    // The last evaluation's interval lies wholly after the demo started, so every healthy
    // point has a sample in it (each is reported at least every 10 s).
    let ready_at = started_ms + INTERVAL_MS + 2000;
    let wait = ready_at - dcim_clock::now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let _ = http
        .get(format!("{}/internal/force_flush", vm.url))
        .send()
        .await;
    let end_ms = dcim_clock::now_ms() - 1000;
    let points_now = numeric_points().await?;
    // One evaluation before the demo started (nothing may be invented there), then every
    // interval up to the end.
    let start_ms = end_ms - ((end_ms - started_ms) / INTERVAL_MS + 1) * INTERVAL_MS;

    // 3. The raw samples, the ground truth of every panel.
    let export = http
        .get(format!(
            "{}/api/v1/export?match[]={}&start={}&end={}",
            vm.url,
            enc(r#"{__name__="dcim_value"}"#),
            start_ms / 1000 - 60,
            end_ms / 1000 + 60
        ))
        .send()
        .await?
        .text()
        .await?;
    let raws: Vec<Raw> = export
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Raw {
                labels: v["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect(),
                samples: v["timestamps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(v["values"].as_array().unwrap())
                    .map(|(t, x)| (t.as_i64().unwrap(), x.as_f64().unwrap()))
                    .collect(),
            }
        })
        .collect();
    assert!(raws.len() > 1000, "the demo's series: {}", raws.len());

    // 4. Every panel's query, with the site variable at "All" (.*), at the demo's site, and at
    // a site that does not exist.
    let query = |expr: String| {
        let url = format!(
            "{}/api/v1/query_range?query={}&start={:.3}&end={:.3}&step={}s&nocache=1",
            vm.url,
            enc(&expr),
            start_ms as f64 / 1000.0,
            end_ms as f64 / 1000.0,
            INTERVAL_MS / 1000
        );
        let http = http.clone();
        async move { get_json(&http, &url).await }
    };
    let mut checked = 0;
    let mut stale_drawn_out = 0;
    let mut not_good_listed = 0;
    for (t, shape) in targets.iter().zip(&shapes) {
        let all = query(substitute(&t.expr, ".*")).await?;
        let got = answered(shape, &all, &t.at)?;
        assert!(!got.is_empty(), "{}: no data\n{}", t.at, t.expr);
        // Evaluation times are start + k * step.
        for ts in got.keys() {
            assert_eq!(
                (ts - start_ms).rem_euclid(INTERVAL_MS),
                0,
                "{}: evaluated at {ts}",
                t.at
            );
        }
        let mut evaluated = 0;
        let mut ts = start_ms;
        while ts <= end_ms {
            let want = evaluate(shape, &raws, ts);
            let have = got.get(&ts).cloned().unwrap_or_default();
            let wk: BTreeSet<_> = want.keys().collect();
            let hk: BTreeSet<_> = have.keys().collect();
            assert_eq!(hk, wk, "{} at {ts}: series (by {:?})", t.at, shape.by);
            for (k, w) in &want {
                assert!(
                    close(have[k], *w),
                    "{} at {ts} {k:?}: {} from the store, {w} from the raw samples",
                    t.at,
                    have[k]
                );
            }
            evaluated += want.len();
            ts += INTERVAL_MS;
        }
        assert!(evaluated > 0, "{}: nothing to compare", t.at);
        // The silenced devices: their readings that are not good are in the store with values
        // (the last known); a value panel leaves them out (the store's answer equals the
        // evaluation over good samples only, and those samples exist), the readings-not-good
        // panel lists them.
        let good_only = shape
            .selector
            .iter()
            .any(|m| m.label == "quality" && m.op == Op::Eq);
        let shape_roles: BTreeSet<String> = roles_of(shape).into_iter().collect();
        for (device, rs) in &silenced {
            if rs.is_disjoint(&shape_roles) {
                continue;
            }
            let device_at = shape.by.iter().position(|l| l == "device");
            let listed = got
                .values()
                .flat_map(|g| g.keys())
                .any(|k| device_at.is_some_and(|i| k[i] == *device));
            if good_only {
                let stale_in_store = raws.iter().any(|r| {
                    r.labels["device"] == *device
                        && shape_roles.contains(&r.labels["role"])
                        && r.labels["quality"] != "good"
                });
                let mut all_q = shape.clone();
                all_q.selector.retain(|m| m.label != "quality");
                if stale_in_store && device_at.is_some() {
                    // Without the quality filter the answer would differ somewhere.
                    let mut differs = false;
                    let mut ts = start_ms;
                    while ts <= end_ms && !differs {
                        differs = evaluate(&all_q, &raws, ts) != evaluate(shape, &raws, ts);
                        ts += INTERVAL_MS;
                    }
                    stale_drawn_out += usize::from(differs);
                }
            } else {
                assert!(
                    listed,
                    "{}: the silent device {device} is not listed as not good",
                    t.at
                );
                not_good_listed += 1;
            }
        }
        if good_only && shape.by.iter().any(|l| l == "device") {
            // A value panel draws one line per point (two feeds of one meter are two lines),
            // and at the last evaluation every point the server holds as good now.
            assert_eq!(
                shape.by,
                ["site", "device", "point"],
                "{}: one line per point",
                t.at
            );
            let good_now: BTreeSet<(String, String)> = points_now
                .iter()
                .filter(|p| {
                    p["quality"] == "good" && shape_roles.contains(p["role"].as_str().unwrap())
                })
                .filter(|p| !silenced.iter().any(|(d, _)| p["device"] == d.as_str()))
                .map(|p| {
                    (
                        p["device"].as_str().unwrap().to_string(),
                        p["point"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let drawn: BTreeSet<(String, String)> = got
                .iter()
                .next_back()
                .map(|(_, g)| g.keys().map(|k| (k[1].clone(), k[2].clone())).collect())
                .unwrap_or_default();
            assert!(
                good_now.is_subset(&drawn),
                "{}: points good at the server but not drawn: {:?}",
                t.at,
                good_now.difference(&drawn).take(5).collect::<Vec<_>>()
            );
        }
        let demo = query(substitute(&t.expr, "demo")).await?;
        let demo = answered(shape, &demo, &t.at)?;
        assert!(
            same(&demo, &got),
            "{}: site=~\"demo\" differs from All:\n{demo:?}\n{got:?}",
            t.at
        );
        let none = query(substitute(&t.expr, "no-such-site")).await?;
        assert!(
            answered(shape, &none, &t.at)?.is_empty(),
            "{}: another site's data",
            t.at
        );
        checked += 1;
    }
    println!(
        "{checked} panel queries checked against {} raw series; {stale_drawn_out} value panels left out stale readings; {not_good_listed} not-good panels listed a silent device",
        raws.len()
    );
    assert!(
        not_good_listed >= 4,
        "every dashboard's not-good panel saw a silent device"
    );
    assert!(
        stale_drawn_out >= 1,
        "a value panel left out readings that were not good"
    );

    // 5. The site variable's query.
    let sites = get_json(
        &http,
        &format!(
            "{}/api/v1/label/site/values?match[]={}&start={}",
            vm.url,
            enc(r#"{__name__="dcim_value"}"#),
            start_ms / 1000
        ),
    )
    .await?;
    assert_eq!(sites["data"], serde_json::json!(["demo"]));

    // 6. The console's history of a point comes from the store under the same names, and its
    // buckets are the raw samples' (a range that ended before the unsent tail: store only).
    let ups = points
        .iter()
        .find(|p| p["role"] == "ups.load_pct")
        .context("a UPS load point")?;
    let (device, point) = (
        ups["device"].as_str().unwrap(),
        ups["point"].as_str().unwrap(),
    );
    let hist = h
        .get(&format!(
            "/api/points/{device}/{point}/history?from={}&to={}&step=60000",
            start_ms - 60_000,
            end_ms - 2000
        ))
        .await?;
    assert_eq!(hist["source"], "store", "{hist}");
    let buckets = hist["buckets"].as_array().context("buckets")?;
    assert!(!buckets.is_empty(), "{hist}");
    let raw = raws
        .iter()
        .find(|r| {
            r.labels["device"] == device
                && r.labels["point"] == point
                && r.labels["quality"] == "good"
        })
        .context("the raw series")?;
    for b in buckets {
        let t = b["t_ms"].as_i64().unwrap();
        let xs: Vec<f64> = raw
            .samples
            .iter()
            .filter(|(ts, _)| *ts > t && *ts <= t + 60_000)
            .map(|(_, x)| *x)
            .collect();
        assert_eq!(b["n"].as_u64().unwrap() as usize, xs.len(), "{b}");
        assert!(
            close(b["max"].as_f64().unwrap(), over_time("max", &xs)),
            "{b}"
        );
        assert!(
            close(b["min"].as_f64().unwrap(), over_time("min", &xs)),
            "{b}"
        );
    }
    h.shutdown().await;
    Ok(())
}

#[test]
fn the_shape_parser_refuses_what_it_does_not_know() {
    let s = parse_shape(r#"max by (site, device, point) (max_over_time({__name__="dcim_value", role=~"a\\.b|c", quality!="good", site=~".*"}[30s]))"#).unwrap();
    assert_eq!(s.by, ["site", "device", "point"]);
    assert_eq!(s.func, "max");
    assert_eq!(s.window_ms, 30_000);
    assert_eq!(s.selector[1].value, "a\\.b|c");
    assert_eq!(s.selector[2].op, Op::Ne);
    assert!(regex_matches(&s.selector[1].value, "a.b"));
    assert!(!regex_matches(&s.selector[1].value, "axb"));
    assert!(parse_shape("rate(dcim_value[5m])").is_err());
    assert!(parse_shape(r#"sum by (site) (quantile_over_time({a="b"}[30s]))"#).is_err());
    assert!(parse_shape(r#"sum by (site) (last_over_time({a="b"}[5m]))"#).is_err());
}
