//! What a driver reports: the per-device quality and deadband state machine, shared by every
//! protocol driver. Pure: time is passed in as `now_ms`.
//!
//! Rules:
//! - a reading is reported when its quality changes, when it is the first one, when it moved by
//!   more than the point's deadband (any change when there is none; any change for true/false
//!   and text), or when `report_every_ms` passed since the point was last reported;
//! - a failed poll marks the points it covered `stale` (last value kept);
//! - a device that has not answered for `comm_lost_after_ms` has every point marked `comm_lost`
//!   and `device.online` reported false; the first good answer reports it true again.

use crate::decode::Reading;
use crate::model::Profile;
use dcim_points::{Quality, Role, Sample, Value};
use std::collections::BTreeMap;

/// The point id of the synthetic `device.online` sample every driver reports.
pub const ONLINE_POINT: &str = "online";

#[derive(Debug, Clone)]
struct Slot {
    id: String,
    role: Role,
    labels: BTreeMap<String, String>,
    unit: String,
    deadband: Option<f64>,
    report_every_ms: u64,
    /// Last known value (kept through stale / comm_lost).
    value: Option<Value>,
    quality: Option<Quality>,
    sent_value: Option<Value>,
    sent_ms: i64,
}

/// The state of one device's points.
#[derive(Debug, Clone)]
pub struct DeviceTracker {
    device: String,
    slots: Vec<Slot>,
    comm_lost_after_ms: u64,
    online: Option<bool>,
    /// Last successful answer, or the start time before any.
    last_ok_ms: i64,
}

impl DeviceTracker {
    /// A tracker for `device` using `profile`'s points (indices follow `profile.points`).
    pub fn new(device: &str, profile: &Profile, now_ms: i64) -> DeviceTracker {
        DeviceTracker {
            device: device.to_owned(),
            slots: profile
                .points
                .iter()
                .map(|p| Slot {
                    id: p.id.clone(),
                    role: p.role.clone(),
                    labels: p.labels.clone(),
                    unit: p.unit.clone(),
                    deadband: p.deadband,
                    report_every_ms: p.report_every_ms,
                    value: None,
                    quality: None,
                    sent_value: None,
                    sent_ms: 0,
                })
                .collect(),
            comm_lost_after_ms: profile.comm.comm_lost_after_ms,
            online: None,
            last_ok_ms: now_ms,
        }
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// `None` until the device answered once or was declared lost.
    pub fn online(&self) -> Option<bool> {
        self.online
    }

    /// Last known value and quality of point `idx`.
    pub fn current(&self, idx: usize) -> (Option<&Value>, Option<Quality>) {
        let s = &self.slots[idx];
        (s.value.as_ref(), s.quality)
    }

    fn sample(&self, idx: usize, quality: Quality, now_ms: i64) -> Sample {
        let s = &self.slots[idx];
        Sample {
            device: self.device.clone(),
            point: s.id.clone(),
            role: s.role.clone(),
            labels: s.labels.clone(),
            value: s.value.clone(),
            unit: s.unit.clone(),
            quality,
            ts_ms: now_ms,
        }
    }

    fn online_sample(&self, online: bool, now_ms: i64) -> Sample {
        Sample {
            device: self.device.clone(),
            point: ONLINE_POINT.into(),
            role: Role::new("device.online").expect("device.online is in the vocabulary"),
            labels: BTreeMap::new(),
            value: Some(Value::Bool(online)),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms: now_ms,
        }
    }

    /// The device answered (call once per successful transaction, before [`Self::reading`]).
    pub fn answered(&mut self, now_ms: i64, out: &mut Vec<Sample>) {
        self.last_ok_ms = now_ms;
        if self.online != Some(true) {
            self.online = Some(true);
            out.push(self.online_sample(true, now_ms));
        }
    }

    /// A new reading of point `idx`; pushes a sample if it must be reported.
    pub fn reading(&mut self, idx: usize, r: Reading, now_ms: i64, out: &mut Vec<Sample>) {
        let slot = &mut self.slots[idx];
        if r.value.is_some() || r.quality != Quality::Bad {
            slot.value = r.value.clone();
        }
        let due = slot.quality != Some(r.quality)
            || slot.sent_value.is_none()
            || now_ms - slot.sent_ms >= slot.report_every_ms as i64
            || moved(slot.sent_value.as_ref(), r.value.as_ref(), slot.deadband);
        slot.quality = Some(r.quality);
        if due {
            slot.sent_value = r.value.clone();
            slot.sent_ms = now_ms;
            let mut s = self.sample(idx, r.quality, now_ms);
            s.value = r.value;
            out.push(s);
        }
    }

    /// A poll covering `indices` failed (after its retries).
    pub fn failed(&mut self, indices: &[usize], now_ms: i64, out: &mut Vec<Sample>) {
        for &i in indices {
            let q = self.slots[i].quality;
            if q == Some(Quality::Good) || q == Some(Quality::Bad) {
                self.mark(i, Quality::Stale, now_ms, out);
            }
        }
        self.tick(now_ms, out);
    }

    /// Checks the comm-lost timeout; call regularly (at least at every poll attempt).
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Sample>) {
        if self.online != Some(false) && now_ms - self.last_ok_ms >= self.comm_lost_after_ms as i64
        {
            self.online = Some(false);
            out.push(self.online_sample(false, now_ms));
            for i in 0..self.slots.len() {
                if self.slots[i].quality != Some(Quality::CommLost) {
                    self.mark(i, Quality::CommLost, now_ms, out);
                }
            }
        }
    }

    fn mark(&mut self, i: usize, q: Quality, now_ms: i64, out: &mut Vec<Sample>) {
        let slot = &mut self.slots[i];
        slot.quality = Some(q);
        slot.sent_value = slot.value.clone();
        slot.sent_ms = now_ms;
        out.push(self.sample(i, q, now_ms));
    }
}

fn moved(before: Option<&Value>, now: Option<&Value>, deadband: Option<f64>) -> bool {
    match (before, now) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => match deadband {
            Some(d) => (a - b).abs() > d,
            None => a != b,
        },
        (a, b) => a != b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_str;

    const P: &str = r#"
[profile]
name = "t"
protocol = "modbus"
[comm]
comm_lost_after_ms = 10000
[modbus]
address_base = 0
[[point]]
id = "v"
role = "feed.voltage"
labels = { feed = "A" }
table = "holding"
register = 0
deadband = 1.0
report_every_ms = 30000
[[point]]
id = "b"
role = "feed.breaker_closed"
labels = { feed = "A" }
table = "coil"
register = 0
"#;

    fn num(x: f64) -> Reading {
        Reading::good(Value::Number(x))
    }

    #[test]
    fn deadband_suppresses_small_changes_until_the_heartbeat() {
        let p = load_str("t.toml", P).unwrap();
        let mut t = DeviceTracker::new("m", &p, 0);
        let mut out = vec![];
        t.answered(0, &mut out);
        assert_eq!(out.len(), 1, "online sample");
        out.clear();
        t.reading(0, num(230.0), 0, &mut out);
        assert_eq!(out.len(), 1);
        t.reading(0, num(230.9), 1000, &mut out);
        assert_eq!(out.len(), 1, "within deadband");
        t.reading(0, num(231.5), 2000, &mut out);
        assert_eq!(out.len(), 2, "moved by more than the deadband");
        t.reading(0, num(231.5), 31_999, &mut out);
        assert_eq!(out.len(), 2);
        t.reading(0, num(231.5), 32_000, &mut out);
        assert_eq!(out.len(), 3, "heartbeat");
        t.reading(
            0,
            Reading::bad(Some(Value::Number(231.5))),
            32_100,
            &mut out,
        );
        assert_eq!(out.len(), 4, "quality change always reported");
        assert_eq!(out[3].quality, Quality::Bad);
    }

    #[test]
    fn silent_device_goes_stale_then_comm_lost_then_back() {
        let p = load_str("t.toml", P).unwrap();
        let mut t = DeviceTracker::new("m", &p, 0);
        let mut out = vec![];
        t.answered(0, &mut out);
        t.reading(0, num(230.0), 0, &mut out);
        t.reading(1, Reading::good(Value::Bool(true)), 0, &mut out);
        out.clear();
        t.failed(&[0, 1], 1000, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.quality == Quality::Stale));
        assert_eq!(out[0].value, Some(Value::Number(230.0)), "last value kept");
        out.clear();
        t.failed(&[0, 1], 5000, &mut out);
        assert!(out.is_empty(), "already stale");
        t.tick(9_999, &mut out);
        assert!(out.is_empty());
        t.tick(10_000, &mut out);
        assert_eq!(out[0].point, ONLINE_POINT);
        assert_eq!(out[0].value, Some(Value::Bool(false)));
        assert_eq!(out.len(), 3);
        assert!(out[1..].iter().all(|s| s.quality == Quality::CommLost));
        out.clear();
        t.tick(20_000, &mut out);
        assert!(out.is_empty(), "comm_lost reported once");
        t.answered(21_000, &mut out);
        t.reading(0, num(230.0), 21_000, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].value, Some(Value::Bool(true)));
        assert_eq!(out[1].quality, Quality::Good);
    }

    #[test]
    fn a_device_that_never_answers_is_declared_lost_with_no_values() {
        let p = load_str("t.toml", P).unwrap();
        let mut t = DeviceTracker::new("m", &p, 1000);
        let mut out = vec![];
        t.failed(&[0], 5000, &mut out);
        assert!(out.is_empty(), "unknown, not yet lost");
        t.failed(&[0], 11_000, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].value, None);
        assert_eq!(out[1].quality, Quality::CommLost);
        assert_eq!(t.online(), Some(false));
    }
}
