//! Thermal camera over the battery room (profile `thermal-camera-battery-room`): one region per
//! battery rack; its temperatures follow the racks' surfaces. Published over MQTT by
//! [`crate::publish_camera`] as `thermal/{id}/region/{region}` with
//! `{"ts_ms": .., "max_c": .., "avg_c": .., "hotspot": ..}`.

use super::wobble;
use crate::{Env, SimDevice};
use std::collections::BTreeMap;

/// Above this region maximum the camera flags a hot spot.
pub const HOTSPOT_C: f64 = 50.0;

pub struct Camera {
    id: String,
    /// Only regions keyed `{watched}:{region}` (a camera over one room's device); None: the
    /// regions without a device prefix.
    watched: Option<String>,
    /// region -> (max, avg)
    regions: BTreeMap<String, (f64, f64)>,
}

impl Camera {
    pub fn new(id: &str) -> Camera {
        Camera {
            id: id.to_owned(),
            watched: None,
            regions: BTreeMap::new(),
        }
    }

    /// A camera over the regions `device` reports (`{device}:{region}` in `Env::regions`).
    pub fn watching(id: &str, device: &str) -> Camera {
        Camera {
            id: id.to_owned(),
            watched: Some(device.to_owned()),
            regions: BTreeMap::new(),
        }
    }

    /// The messages to publish now: (topic, JSON payload).
    pub fn messages(&self, ts_ms: i64) -> Vec<(String, String)> {
        self.regions
            .iter()
            .map(|(r, (max, avg))| {
                let body = serde_json::json!({
                    "ts_ms": ts_ms,
                    "max_c": (max * 10.0).round() / 10.0,
                    "avg_c": (avg * 10.0).round() / 10.0,
                    "hotspot": *max >= HOTSPOT_C,
                });
                (format!("thermal/{}/region/{r}", self.id), body.to_string())
            })
            .collect()
    }
}

impl SimDevice for Camera {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "thermal-camera"
    }
    fn step(&mut self, t: f64, _dt: f64, env: &Env) {
        let mine = |key: &String| -> Option<String> {
            match (&self.watched, key.split_once(':')) {
                (Some(w), Some((d, r))) if d == w => Some(r.to_owned()),
                (None, None) => Some(key.clone()),
                _ => None,
            }
        };
        self.regions = env
            .regions
            .iter()
            .filter_map(|(k, v)| mine(k).map(|r| (r, v)))
            .enumerate()
            .map(|(i, (r, surface))| {
                let max = surface + 1.0 + 0.3 * wobble(t, 45.0, i as f64);
                (r, (max, max - 2.5))
            })
            .collect();
    }
    fn camera(&self) -> Option<&Camera> {
        Some(self)
    }
    fn profile_name(&self) -> Option<&str> {
        Some("thermal-camera-battery-room")
    }
}
