#![allow(dead_code)]

use dcim_points::{Quality, Sample, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Latest sample per `device/point`, fed from a poller's channel.
pub struct Collector {
    pub rx: mpsc::Receiver<Vec<Sample>>,
    pub latest: HashMap<String, Sample>,
    pub all: Vec<Sample>,
}

impl Collector {
    pub fn new(rx: mpsc::Receiver<Vec<Sample>>) -> Collector {
        Collector {
            rx,
            latest: HashMap::new(),
            all: Vec::new(),
        }
    }

    /// Receives batches until `pred` holds on the latest samples, or fails after `limit`.
    pub async fn until(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&HashMap<String, Sample>) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        while !pred(&self.latest) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(batch)) => {
                    for s in batch {
                        self.latest.insert(s.key(), s.clone());
                        self.all.push(s);
                    }
                }
                Ok(None) => panic!("poller ended while waiting for: {what}"),
                Err(_) => panic!(
                    "timed out after {limit:?} waiting for: {what}\nlatest: {:#?}",
                    self.latest
                ),
            }
        }
    }

    /// Receives batches for `d`.
    pub async fn during(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            for s in batch {
                self.latest.insert(s.key(), s.clone());
                self.all.push(s);
            }
        }
    }

    pub fn num(&self, key: &str) -> Option<f64> {
        self.latest
            .get(key)
            .and_then(|s| s.value.as_ref()?.as_f64())
    }
}

pub fn is(latest: &HashMap<String, Sample>, key: &str, q: Quality, v: Option<Value>) -> bool {
    latest
        .get(key)
        .is_some_and(|s| s.quality == q && (v.is_none() || s.value == v))
}

/// The latest sample of `key` is good, with the value `v`.
pub fn good(latest: &HashMap<String, Sample>, key: &str, v: Value) -> bool {
    is(latest, key, Quality::Good, Some(v))
}

pub fn near(latest: &HashMap<String, Sample>, key: &str, x: f64, tol: f64) -> bool {
    latest.get(key).is_some_and(|s| {
        s.quality == Quality::Good
            && s.value
                .as_ref()
                .and_then(|v| v.as_f64())
                .is_some_and(|v| (v - x).abs() <= tol)
    })
}
