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
use crate::state::intake::Intake;
use crate::storage::tsdb::query::{Bucket, MAX_BUCKETS};
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// Query parameters (ms).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub step: Option<i64>,
    pub site: Option<String>,
}

/// The answer: the request as checked, which source answered for which range, and the
/// buckets (only where samples were).
#[derive(Debug, Serialize)]
pub struct History {
    pub device: String,
    pub point: String,
    pub from: i64,
    pub to: i64,
    pub step_ms: i64,
    pub resolution_ms: i64,
    pub retention_ms: i64,
    /// The site the point was found under (`null` when the store answered for a point the
    /// ring does not hold and no site was asked for).
    pub site: Option<String>,
    /// `store`, `memory` or `store+memory`.
    pub source: &'static str,
    pub sources: Vec<Supplied>,
    /// The range the buckets are complete for.
    pub covers: Range,
    /// Why the store did not answer (only when the ring answered in its place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    pub buckets: Vec<Bucket>,
}

/// The range one source supplied.
#[derive(Debug, Serialize)]
pub struct Supplied {
    /// `store` or `memory`.
    pub source: &'static str,
    pub from: i64,
    pub to: i64,
}

/// A time range (ms).
#[derive(Debug, Serialize)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

/// What every answer says of the request, whichever source answers.
struct Head {
    device: String,
    point: String,
    from: i64,
    to: i64,
    step_ms: i64,
    resolution_ms: i64,
    retention_ms: i64,
}

impl Head {
    fn answer(
        self,
        site: Option<String>,
        source: &'static str,
        sources: Vec<Supplied>,
        covers: Range,
        fallback_reason: Option<String>,
        buckets: Vec<Bucket>,
    ) -> History {
        History {
            device: self.device,
            point: self.point,
            from: self.from,
            to: self.to,
            step_ms: self.step_ms,
            resolution_ms: self.resolution_ms,
            retention_ms: self.retention_ms,
            site,
            source,
            sources,
            covers,
            fallback_reason,
            buckets,
        }
    }
}

fn bad(msg: &str) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, format!("query: {msg}"))
}

/// The oldest sample time the store may not have yet (staged or buffered), if any.
fn oldest_unsent(app: &App) -> Option<i64> {
    let influx = app.intake.influx.as_ref()?;
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
) -> Result<History, (StatusCode, String)> {
    let now = app.now_ms();
    let (cfg, r) = request(&app.intake, device, point, &q, now)?;
    let ring = ring_buckets(&app.intake, q.site.as_deref(), &r);
    let started = app.health.ready_ms.load(Ordering::Relaxed).max(1);
    let memory_from = r.from.max(now - cfg.retention_ms()).max(started);
    let site = q
        .site
        .clone()
        .or_else(|| ring.as_ref().map(|(s, _)| s.clone()));
    let head = Head {
        device: device.to_owned(),
        point: point.to_owned(),
        from: r.from,
        to: r.to,
        step_ms: r.step,
        resolution_ms: cfg.resolution_ms,
        retention_ms: cfg.retention_ms(),
    };
    match from_store(app, &r, &site, &ring, memory_from).await? {
        StoreAnswer::Answered(a) => {
            Ok(head.answer(site, a.source, a.sources, a.covers, None, a.buckets))
        }
        StoreAnswer::Fallback(fallback) => from_memory(head, ring, fallback, memory_from, &r),
    }
}

/// One request, checked: the range, and the bucket step rounded up to the ring's resolution.
struct Request<'a> {
    device: &'a str,
    point: &'a str,
    from: i64,
    to: i64,
    step: i64,
}

/// Checks the query's range and step against the ring's configuration (defaults: up to now,
/// over the ring's retention, at its resolution).
fn request<'a>(
    intake: &Intake,
    device: &'a str,
    point: &'a str,
    q: &Params,
    now: i64,
) -> Result<(crate::engine::ingest::HistoryConfig, Request<'a>), (StatusCode, String)> {
    let (cfg, memory) = {
        let ing = intake.ingest.lock().expect("ingest lock");
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
    Ok((
        cfg,
        Request {
            device,
            point,
            from,
            to,
            step,
        },
    ))
}

/// The in-memory ring's buckets of the point and the site it found them under, if it holds
/// the point.
fn ring_buckets(intake: &Intake, site: Option<&str>, r: &Request) -> Option<(String, Vec<Bucket>)> {
    let ing = intake.ingest.lock().expect("ingest lock");
    ing.history(site, r.device, r.point, r.from, r.to, r.step)
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
}

/// The store's answer (with the ring's tail when the store does not have it yet).
struct Answered {
    source: &'static str,
    sources: Vec<Supplied>,
    covers: Range,
    buckets: Vec<Bucket>,
}

/// What the time-series store made of a request.
enum StoreAnswer {
    /// The store answered.
    Answered(Answered),
    /// The ring answers, with why the store did not (`None`: no store is configured).
    Fallback(Option<String>),
}

/// Asks the store (when one is configured) for the range it may have, the ring supplying the
/// tail it does not have yet.
async fn from_store(
    app: &App,
    r: &Request<'_>,
    site: &Option<String>,
    ring: &Option<(String, Vec<Bucket>)>,
    memory_from: i64,
) -> Result<StoreAnswer, (StatusCode, String)> {
    let (device, point, from, to, step) = (r.device, r.point, r.from, r.to, r.step);
    let client = app.intake.influx.as_ref().and_then(|i| i.query.clone());
    let Some(client) = client else {
        return Ok(StoreAnswer::Fallback(None));
    };
    let store_to = match oldest_unsent(app) {
        Some(t) => to.min(t - 1),
        None => to,
    };
    if (to - from) / step > MAX_BUCKETS {
        return Ok(StoreAnswer::Fallback(Some(format!(
            "the store answers at most {MAX_BUCKETS} buckets per request: raise `step` or narrow `from`..`to`"
        ))));
    }
    if from > store_to {
        return Ok(StoreAnswer::Fallback(Some(
            "the time-series store has nothing of this range yet".into(),
        )));
    }
    match client
        .history(site.as_deref(), device, point, from, store_to, step)
        .await
    {
        Ok(buckets) => {
            app.ops
                .history_from_store_total
                .fetch_add(1, Ordering::Relaxed);
            let a = with_ring_tail(r, buckets, store_to, ring, memory_from);
            if a.buckets.is_empty() && ring.is_none() {
                return Err(not_found(device, point));
            }
            Ok(StoreAnswer::Answered(a))
        }
        Err(e) => {
            app.ops
                .history_fallback_total
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%device, %point, "point history: the store did not answer ({e}); answering from memory");
            Ok(StoreAnswer::Fallback(Some(format!(
                "the time-series store did not answer: {e}"
            ))))
        }
    }
}

/// The store's buckets up to `store_to`, and the tail the store does not have yet from the
/// ring when the ring reaches back that far: its buckets replace the store's partial ones from
/// the first bucket that reaches past `store_to`.
fn with_ring_tail(
    r: &Request<'_>,
    mut buckets: Vec<Bucket>,
    store_to: i64,
    ring: &Option<(String, Vec<Bucket>)>,
    memory_from: i64,
) -> Answered {
    let (from, to, step) = (r.from, r.to, r.step);
    let mut sources = vec![Supplied {
        source: "store",
        from,
        to: store_to,
    }];
    let mut covers_to = store_to;
    let mut source = "store";
    if store_to < to
        && let Some((_, ring_buckets)) = ring
        && memory_from <= store_to + 1
    {
        let cut = store_to.div_euclid(step) * step;
        buckets.retain(|b| b.t_ms < cut);
        buckets.extend(ring_buckets.iter().filter(|b| b.t_ms >= cut));
        sources.push(Supplied {
            source: "memory",
            from: cut,
            to,
        });
        covers_to = to;
        source = "store+memory";
    }
    Answered {
        source,
        sources,
        covers: Range {
            from,
            to: covers_to,
        },
        buckets,
    }
}

/// The ring's answer (since `memory_from`), with the store's `fallback` reason when it did not
/// answer; 503 when the store failed and the ring does not hold the point either.
fn from_memory(
    head: Head,
    ring: Option<(String, Vec<Bucket>)>,
    fallback: Option<String>,
    memory_from: i64,
    r: &Request,
) -> Result<History, (StatusCode, String)> {
    let (device, point, to) = (r.device, r.point, r.to);
    let Some((site, buckets)) = ring else {
        return Err(match fallback {
            Some(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{why}; and no point `{point}` of device `{device}` is in memory"),
            ),
            None => not_found(device, point),
        });
    };
    Ok(head.answer(
        Some(site),
        "memory",
        vec![Supplied {
            source: "memory",
            from: memory_from,
            to,
        }],
        Range {
            from: memory_from.min(to),
            to,
        },
        fallback,
        buckets,
    ))
}

fn not_found(device: &str, point: &str) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("no point `{point}` of device `{device}` has been received"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn head() -> Head {
        Head {
            device: "r07".into(),
            point: "temp".into(),
            from: 0,
            to: 60_000,
            step_ms: 10_000,
            resolution_ms: 10_000,
            retention_ms: 3_600_000,
        }
    }

    #[test]
    fn the_store_answer_has_no_fallback_reason_and_keeps_a_null_site() {
        // Hazard: a `fallback_reason: null` (or a missing `site`) in the store's answer: the
        // console tells "the store answered" by the key being absent.
        let h = head().answer(
            None,
            "store",
            vec![Supplied {
                source: "store",
                from: 0,
                to: 60_000,
            }],
            Range {
                from: 0,
                to: 60_000,
            },
            None,
            Vec::new(),
        );
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({"device": "r07", "point": "temp", "from": 0, "to": 60_000, "step_ms": 10_000,
                   "resolution_ms": 10_000, "retention_ms": 3_600_000, "site": null,
                   "source": "store", "sources": [{"source": "store", "from": 0, "to": 60_000}],
                   "covers": {"from": 0, "to": 60_000}, "buckets": []})
        );
    }

    fn bucket(t_ms: i64, last: f64) -> Bucket {
        Bucket {
            t_ms,
            n: 1,
            min: last,
            max: last,
            last,
        }
    }

    #[test]
    fn the_ring_supplies_the_tail_the_store_does_not_have_yet() {
        // Hazard: the store's partial last bucket kept next to the ring's (a half-filled bucket
        // shown as the whole), or `covers` ending where the store ends while the ring has the
        // rest (a gap read as no data).
        let r = Request {
            device: "r07",
            point: "temp",
            from: 0,
            to: 60_000,
            step: 10_000,
        };
        let store = vec![bucket(0, 1.0), bucket(10_000, 2.0), bucket(20_000, 99.0)];
        let ring = Some((
            "s1".to_owned(),
            vec![bucket(20_000, 3.0), bucket(30_000, 4.0)],
        ));
        let a = with_ring_tail(&r, store.clone(), 25_000, &ring, 0);
        assert_eq!(a.source, "store+memory");
        assert_eq!(
            a.buckets,
            vec![
                bucket(0, 1.0),
                bucket(10_000, 2.0),
                bucket(20_000, 3.0),
                bucket(30_000, 4.0)
            ]
        );
        assert_eq!((a.covers.from, a.covers.to), (0, 60_000));
        assert_eq!(a.sources.len(), 2);
        assert_eq!((a.sources[1].from, a.sources[1].to), (20_000, 60_000));
        // A ring that does not reach back to where the store ends: the store alone, and the
        // answer covers only what the store had.
        let a = with_ring_tail(&r, store.clone(), 25_000, &ring, 40_000);
        assert_eq!(a.source, "store");
        assert_eq!(a.buckets, store);
        assert_eq!(a.covers.to, 25_000);
    }

    #[test]
    fn the_memory_answer_says_why_the_store_did_not() {
        // Hazard: the ring's answer after a store failure without the reason reads as the
        // complete history.
        let h = head().answer(
            Some("s1".into()),
            "memory",
            Vec::new(),
            Range { from: 0, to: 1 },
            Some("the time-series store did not answer: timeout".into()),
            Vec::new(),
        );
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(
            v["fallback_reason"],
            "the time-series store did not answer: timeout"
        );
        assert_eq!(v["site"], "s1");
    }
}
