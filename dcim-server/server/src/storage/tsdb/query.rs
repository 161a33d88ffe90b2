//! A point's history from the store's Prometheus query API (`/api/v1/query_range`;
//! VictoriaMetrics is the tested store).
//!
//! The writer's lines become series `{measurement}_value{site, agent, device, point, role,
//! quality, <labels>}` in VictoriaMetrics ([`series_name`]; selected by `__name__`, since the
//! measurement is kept as written). String fields become a series `{measurement}_text` whose
//! values are 0 (VictoriaMetrics keeps no strings); nothing reads them. A point's buckets are four range queries over the
//! good-quality series of that point (the in-memory ring keeps good samples only, too):
//! `min_over_time`, `max_over_time`, `last_over_time` and `count_over_time` with a window of
//! one step, evaluated at the end of each bucket, so that the bucket starting at `t` covers
//! the samples in `(t, t + step]`. The PromQL text and the conversion of the answers are pure.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One bucket, the shape of the in-memory ring's (`{t_ms, n, min, max, last}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    pub t_ms: i64,
    pub n: u32,
    pub min: f64,
    pub max: f64,
    pub last: f64,
}

/// The most buckets one query may return (Prometheus' own limit is 11,000 points).
pub const MAX_BUCKETS: i64 = 11_000;

/// A PromQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The selector of a point's good-quality series.
pub fn selector(measurement: &str, site: Option<&str>, device: &str, point: &str) -> String {
    let mut s = format!(
        "{{__name__={},device={},point={},quality=\"good\"",
        quote(&series_name(measurement)),
        quote(device),
        quote(point)
    );
    if let Some(site) = site {
        s.push_str(&format!(",site={}", quote(site)));
    }
    s.push('}');
    s
}

/// The name VictoriaMetrics gives the numeric field of the writer's lines:
/// `{measurement}_{field}` with the field `value` (`-influxMeasurementFieldSeparator`, default
/// `_`). The measurement is kept as written (`my-dcim.ts` gives `my-dcim.ts_value`, which is
/// not a valid PromQL identifier), so queries select it by `__name__`.
pub fn series_name(measurement: &str) -> String {
    format!("{measurement}_value")
}

/// The four queries: `(stat, promql)`, stat in `min`, `max`, `last`, `n`.
pub fn queries(sel: &str, step_ms: i64) -> [(&'static str, String); 4] {
    let w = format!("[{step_ms}ms]");
    [
        ("min", format!("min(min_over_time({sel}{w}))")),
        ("max", format!("max(max_over_time({sel}{w}))")),
        ("last", format!("max(last_over_time({sel}{w}))")),
        ("n", format!("sum(count_over_time({sel}{w}))")),
    ]
}

/// `(first evaluation, last evaluation)` in ms for buckets aligned to `step` covering
/// `[from, to]`: a bucket starting at `t` is evaluated at `t + step`.
pub fn evaluation_range(from: i64, to: i64, step: i64) -> (i64, i64) {
    let first = from.div_euclid(step) * step;
    let last = to.div_euclid(step) * step;
    (first + step, last + step)
}

/// The `values` of a one-series matrix answer as `(eval ms, value)`; an empty result is an
/// empty list (no samples), anything else that is not a matrix is an error.
pub fn parse_matrix(body: &serde_json::Value) -> Result<Vec<(i64, f64)>, String> {
    if body["status"] != "success" {
        return Err(format!(
            "query failed: {}",
            body["error"].as_str().unwrap_or("no status")
        ));
    }
    if body["data"]["resultType"] != "matrix" {
        return Err("the answer is not a matrix".into());
    }
    let result = body["data"]["result"]
        .as_array()
        .ok_or("the answer has no result")?;
    let mut out = Vec::new();
    for series in result {
        for v in series["values"]
            .as_array()
            .ok_or("a series without values")?
        {
            let t = v[0].as_f64().ok_or("a value without time")?;
            let x: f64 = v[1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or("a value that is not a number")?;
            out.push(((t * 1000.0).round() as i64, x));
        }
    }
    Ok(out)
}

/// Buckets from the four answers (by stat name). A bucket exists only where `n > 0`.
pub fn combine(step: i64, answers: &BTreeMap<&str, Vec<(i64, f64)>>) -> Vec<Bucket> {
    let get = |stat: &str| -> BTreeMap<i64, f64> {
        answers
            .get(stat)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    };
    let (min, max, last) = (get("min"), get("max"), get("last"));
    get("n")
        .into_iter()
        .filter(|(_, n)| *n >= 1.0)
        .filter_map(|(t, n)| {
            Some(Bucket {
                t_ms: t - step,
                n: n as u32,
                min: *min.get(&t)?,
                max: *max.get(&t)?,
                last: *last.get(&t)?,
            })
        })
        .collect()
}

/// The query client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    measurement: String,
}

impl Client {
    pub fn new(base: &str, measurement: &str, timeout: Duration) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base: base.trim_end_matches('/').to_string(),
            measurement: measurement.to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A point's buckets in `[from, to]`.
    pub async fn history(
        &self,
        site: Option<&str>,
        device: &str,
        point: &str,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<Bucket>, String> {
        let sel = selector(&self.measurement, site, device, point);
        let (start, end) = evaluation_range(from, to, step);
        let mut answers = BTreeMap::new();
        let qs = queries(&sel, step);
        let futs = qs.iter().map(|(stat, q)| async move {
            let url = format!(
                "{}/api/v1/query_range?query={}&start={:.3}&end={:.3}&step={step}ms&nocache=1",
                self.base,
                crate::storage::tsdb::line::urlencode(q),
                start as f64 / 1000.0,
                end as f64 / 1000.0,
            );
            let r = self
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| format!("{e}"))?;
            let status = r.status();
            let text = r.text().await.map_err(|e| format!("{e}"))?;
            let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "not JSON ({e}): {}",
                    text.chars().take(200).collect::<String>()
                )
            })?;
            if !status.is_success() {
                return Err(format!(
                    "{status}: {}",
                    body["error"].as_str().unwrap_or_default()
                ));
            }
            parse_matrix(&body).map(|v| (*stat, v))
        });
        for r in futures_util::future::join_all(futs).await {
            let (stat, v) = r?;
            answers.insert(stat, v);
        }
        Ok(combine(step, &answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_quote_what_they_are_given() {
        // Hazard: a device id with a quote would break out of the selector (wrong series, or
        // an error read as "no data").
        assert_eq!(
            selector("dcim", Some("s1"), "ups \"1\"", "load"),
            "{__name__=\"dcim_value\",device=\"ups \\\"1\\\"\",point=\"load\",quality=\"good\",site=\"s1\"}"
        );
        // VictoriaMetrics keeps the measurement as written; a PromQL identifier made of it
        // (`my_dcim_ts_value`) would select nothing, read as "no history".
        assert_eq!(
            selector("my-dcim.ts", None, "d", "p"),
            "{__name__=\"my-dcim.ts_value\",device=\"d\",point=\"p\",quality=\"good\"}"
        );
        let q = queries("x{}", 60_000);
        assert_eq!(q[3].1, "sum(count_over_time(x{}[60000ms]))");
    }

    #[test]
    fn buckets_are_aligned_and_exist_only_where_samples_were() {
        assert_eq!(
            evaluation_range(125_000, 250_000, 60_000),
            (180_000, 300_000)
        );
        let mut a = BTreeMap::new();
        a.insert("n", vec![(180_000, 2.0), (240_000, 0.0), (300_000, 1.0)]);
        a.insert("min", vec![(180_000, 1.0), (300_000, 5.0)]);
        a.insert("max", vec![(180_000, 3.0), (300_000, 5.0)]);
        a.insert("last", vec![(180_000, 2.0), (300_000, 5.0)]);
        let b = combine(60_000, &a);
        assert_eq!(
            b,
            vec![
                Bucket {
                    t_ms: 120_000,
                    n: 2,
                    min: 1.0,
                    max: 3.0,
                    last: 2.0
                },
                Bucket {
                    t_ms: 240_000,
                    n: 1,
                    min: 5.0,
                    max: 5.0,
                    last: 5.0
                },
            ]
        );
    }

    #[test]
    fn answers_that_are_not_matrices_are_errors_not_empty_history() {
        // Hazard: an error page read as "no samples" would draw a healthy flat gap.
        let ok = serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[180,"2.5"]]}]}});
        assert_eq!(parse_matrix(&ok).unwrap(), vec![(180_000, 2.5)]);
        let empty =
            serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[]}});
        assert!(parse_matrix(&empty).unwrap().is_empty());
        let err = serde_json::json!({"status":"error","error":"bad query"});
        assert!(parse_matrix(&err).unwrap_err().contains("bad query"));
        let vector =
            serde_json::json!({"status":"success","data":{"resultType":"vector","result":[]}});
        assert!(parse_matrix(&vector).is_err());
    }
}
