//! `GET /api/points/{device}/{point}/history`: the store when one is configured, the
//! in-memory ring otherwise or when the store does not answer.
//!
//! The answer says which source answered (`source`: `store`, `memory` or `store+memory`),
//! what range the buckets are complete for (`covers`), and per source the range it supplied
//! (`sources`). What the store does not have yet (batches still in the on-disk buffer while
//! it is down, or lines staged in the last second) is taken from the ring when the ring has
//! it; `covers.to` ends where neither has it. When the store fails, `fallback_reason` says
//! why and the ring answers for what it holds (the last hour by default, since the server
//! started). Missing data is never filled in: a bucket exists only where samples were.

use crate::app::App;
use crate::tsdb::query::{Bucket, MAX_BUCKETS};
use axum::http::StatusCode;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Query parameters (ms).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub step: Option<i64>,
    pub site: Option<String>,
}

fn bad(msg: &str) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, format!("query: {msg}"))
}

/// The oldest sample time the store may not have yet (staged or buffered), if any.
fn oldest_unsent(app: &App) -> Option<i64> {
    let influx = app.influx.as_ref()?;
    let buffered = app.ops.tsdb_oldest_pending_ms.load(Ordering::Relaxed);
    let staged = influx.staged_oldest();
    [buffered, staged.unwrap_or(0)]
        .into_iter()
        .filter(|t| *t > 0)
        .min()
}

pub async fn point_history(
    app: &App,
    device: &str,
    point: &str,
    q: Params,
) -> Result<serde_json::Value, (StatusCode, String)> {
    let now = app.now_ms();
    let (cfg, memory) = {
        let ing = app.ingest.lock().expect("ingest lock");
        let cfg = ing.history_config();
        let to = q.to.unwrap_or(now);
        let from = q.from.unwrap_or(to - cfg.retention_ms());
        (cfg, (from, to))
    };
    let (from, to) = memory;
    if from > to {
        return Err(bad("from: expected a time (ms) not after `to`"));
    }
    let step = q.step.unwrap_or(cfg.resolution_ms);
    if step < 0 {
        return Err(bad("step: expected a duration in ms >= 0"));
    }
    let res = cfg.resolution_ms.max(1);
    let step = (step.max(res) + res - 1) / res * res;
    let ring = {
        let ing = app.ingest.lock().expect("ingest lock");
        ing.history(q.site.as_deref(), device, point, from, to, step)
            .map(|(site, b)| {
                (
                    site,
                    b.iter()
                        .map(|b| Bucket {
                            t_ms: b.t_ms,
                            n: b.n,
                            min: b.min,
                            max: b.max,
                            last: b.last,
                        })
                        .collect::<Vec<_>>(),
                )
            })
    };
    let started = app.health.ready_ms.load(Ordering::Relaxed).max(1);
    let memory_from = from.max(now - cfg.retention_ms()).max(started);
    let site = q
        .site
        .clone()
        .or_else(|| ring.as_ref().map(|(s, _)| s.clone()));
    let mut doc = json!({
        "device": device,
        "point": point,
        "from": from,
        "to": to,
        "step_ms": step,
        "resolution_ms": cfg.resolution_ms,
        "retention_ms": cfg.retention_ms(),
    });
    let client = app.influx.as_ref().and_then(|i| i.query.clone());
    let mut fallback = None;
    if let Some(client) = client {
        let store_to = match oldest_unsent(app) {
            Some(t) => to.min(t - 1),
            None => to,
        };
        if (to - from) / step > MAX_BUCKETS {
            fallback = Some(format!(
                "the store answers at most {MAX_BUCKETS} buckets per request: raise `step` or narrow `from`..`to`"
            ));
        } else if from <= store_to {
            match client
                .history(site.as_deref(), device, point, from, store_to, step)
                .await
            {
                Ok(mut buckets) => {
                    app.ops
                        .history_from_store_total
                        .fetch_add(1, Ordering::Relaxed);
                    let mut sources =
                        vec![json!({"source": "store", "from": from, "to": store_to})];
                    let mut covers_to = store_to;
                    let mut source = "store";
                    if store_to < to
                        && let Some((_, ring_buckets)) = &ring
                        && memory_from <= store_to + 1
                    {
                        // The tail the store does not have yet, from the ring: its buckets
                        // replace the store's partial ones from the first bucket that
                        // reaches past `store_to`.
                        let cut = store_to.div_euclid(step) * step;
                        buckets.retain(|b| b.t_ms < cut);
                        buckets.extend(ring_buckets.iter().filter(|b| b.t_ms >= cut));
                        sources.push(json!({"source": "memory", "from": cut, "to": to}));
                        covers_to = to;
                        source = "store+memory";
                    }
                    if buckets.is_empty() && ring.is_none() {
                        return Err(not_found(device, point));
                    }
                    doc["site"] = json!(site);
                    doc["source"] = json!(source);
                    doc["sources"] = json!(sources);
                    doc["covers"] = json!({"from": from, "to": covers_to});
                    doc["buckets"] = json!(buckets);
                    return Ok(doc);
                }
                Err(e) => {
                    app.ops
                        .history_fallback_total
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%device, %point, "point history: the store did not answer ({e}); answering from memory");
                    fallback = Some(format!("the time-series store did not answer: {e}"));
                }
            }
        } else {
            fallback = Some("the time-series store has nothing of this range yet".into());
        }
    }
    let Some((site, buckets)) = ring else {
        return Err(match fallback {
            Some(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{why}; and no point `{point}` of device `{device}` is in memory"),
            ),
            None => not_found(device, point),
        });
    };
    doc["site"] = json!(site);
    doc["source"] = json!("memory");
    doc["sources"] = json!([{"source": "memory", "from": memory_from, "to": to}]);
    doc["covers"] = json!({"from": memory_from.min(to), "to": to});
    if let Some(f) = fallback {
        doc["fallback_reason"] = json!(f);
    }
    doc["buckets"] = json!(buckets);
    Ok(doc)
}

fn not_found(device: &str, point: &str) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("no point `{point}` of device `{device}` has been received"),
    )
}
