//! Per-point quality from read outcomes. Pure: the caller passes the outcome of each poll or
//! COV notification with the time, and reads back `(value, quality)` per point.
//!
//! Rules:
//! - a value read (or notified) successfully is `Good`, unless its status flags say `fault`
//!   (then `Bad`);
//! - a property the device answered with an error is `Bad` with no value;
//! - when the device does not answer, its points keep their last value and become `Stale`;
//!   after `comm_lost_after` consecutive failed polls they become `CommLost`;
//! - a point not refreshed for `stale_after_ms` (e.g. a COV subscription that went quiet and
//!   could not be renewed) reads as `Stale`.

use crate::client::{ClientError, PropertyRef};
use crate::codec::types::{BacnetError, Value};
use dcim_points::Quality;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
pub struct QualityPolicy {
    /// Consecutive failed polls of a device before its points are `CommLost`.
    pub comm_lost_after: u32,
    /// A point not refreshed for this long reads `Stale`.
    pub stale_after_ms: u64,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        QualityPolicy {
            comm_lost_after: 3,
            stale_after_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointReading {
    pub value: Option<Value>,
    pub quality: Quality,
    /// When the value was last refreshed (ms on the caller's clock), if ever.
    pub updated_ms: Option<u64>,
    /// The device's error for this property, when it answered with one.
    pub error: Option<BacnetError>,
}

#[derive(Debug, Default)]
struct DeviceState {
    failures: u32,
}

/// Tracks the latest value and quality of every polled point of every device.
#[derive(Debug, Default)]
pub struct PointTracker {
    policy: QualityPolicy,
    points: HashMap<(u32, PropertyRef), PointReading>,
    devices: HashMap<u32, DeviceState>,
}

impl PointTracker {
    pub fn new(policy: QualityPolicy) -> Self {
        PointTracker {
            policy,
            ..Default::default()
        }
    }

    /// Applies the outcome of `client.read_multiple(instance, refs)`.
    pub fn apply_poll(
        &mut self,
        instance: u32,
        refs: &[PropertyRef],
        outcome: &Result<Vec<Result<Value, BacnetError>>, ClientError>,
        now_ms: u64,
    ) {
        match outcome {
            Ok(results) => {
                self.devices.entry(instance).or_default().failures = 0;
                for (r, res) in refs.iter().zip(results) {
                    let reading = match res {
                        Ok(v) => PointReading {
                            value: Some(v.clone()),
                            quality: Quality::Good,
                            updated_ms: Some(now_ms),
                            error: None,
                        },
                        Err(e) => PointReading {
                            value: None,
                            quality: Quality::Bad,
                            updated_ms: Some(now_ms),
                            error: Some(*e),
                        },
                    };
                    self.points.insert((instance, *r), reading);
                }
            }
            Err(e) if e.is_comm_failure() => self.device_failed(instance, refs),
            Err(_) => {
                // The device answered, but not usefully (reject, abort, garbage): its values
                // cannot be trusted, yet it is alive.
                self.devices.entry(instance).or_default().failures = 0;
                for r in refs {
                    let p = self.entry(instance, *r);
                    p.quality = Quality::Bad;
                }
            }
        }
    }

    /// Applies a value received by COV notification.
    pub fn apply_value(&mut self, instance: u32, r: PropertyRef, value: Value, now_ms: u64) {
        self.devices.entry(instance).or_default().failures = 0;
        self.points.insert(
            (instance, r),
            PointReading {
                value: Some(value),
                quality: Quality::Good,
                updated_ms: Some(now_ms),
                error: None,
            },
        );
    }

    fn entry(&mut self, instance: u32, r: PropertyRef) -> &mut PointReading {
        self.points
            .entry((instance, r))
            .or_insert_with(|| PointReading {
                value: None,
                quality: Quality::Stale,
                updated_ms: None,
                error: None,
            })
    }

    /// Records that `instance` did not answer a poll of `refs`.
    pub fn device_failed(&mut self, instance: u32, refs: &[PropertyRef]) {
        let failures = {
            let d = self.devices.entry(instance).or_default();
            d.failures = d.failures.saturating_add(1);
            d.failures
        };
        let q = if failures >= self.policy.comm_lost_after {
            Quality::CommLost
        } else {
            Quality::Stale
        };
        for r in refs {
            self.entry(instance, *r).quality = q;
        }
        if q == Quality::CommLost {
            for ((i, _), p) in self.points.iter_mut() {
                if *i == instance {
                    p.quality = Quality::CommLost;
                }
            }
        }
    }

    /// The current reading of a point at `now_ms` (age is applied here).
    pub fn reading(&self, instance: u32, r: PropertyRef, now_ms: u64) -> Option<PointReading> {
        let mut p = self.points.get(&(instance, r))?.clone();
        if p.quality == Quality::Good
            && p.updated_ms
                .is_some_and(|t| now_ms.saturating_sub(t) > self.policy.stale_after_ms)
        {
            p.quality = Quality::Stale;
        }
        Some(p)
    }

    pub fn consecutive_failures(&self, instance: u32) -> u32 {
        self.devices.get(&instance).map_or(0, |d| d.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::types::{ObjectId, ObjectType};
    use std::net::SocketAddr;

    fn pv(i: u32) -> PropertyRef {
        PropertyRef::present_value(ObjectId::new(ObjectType::ANALOG_INPUT, i))
    }

    fn timeout() -> ClientError {
        ClientError::Timeout {
            instance: 1,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            attempts: 3,
        }
    }

    #[test]
    fn silent_device_degrades_to_stale_then_comm_lost_and_recovers() {
        let mut t = PointTracker::new(QualityPolicy {
            comm_lost_after: 2,
            stale_after_ms: 10_000,
        });
        let refs = [pv(1), pv(2)];
        t.apply_poll(
            1,
            &refs,
            &Ok(vec![
                Ok(Value::Real(1.0)),
                Err(BacnetError::unknown_object()),
            ]),
            0,
        );
        assert_eq!(t.reading(1, pv(1), 0).unwrap().quality, Quality::Good);
        let bad = t.reading(1, pv(2), 0).unwrap();
        assert_eq!(bad.quality, Quality::Bad);
        assert_eq!(bad.error, Some(BacnetError::unknown_object()));

        t.apply_poll(1, &refs, &Err(timeout()), 1000);
        let r = t.reading(1, pv(1), 1000).unwrap();
        assert_eq!(r.quality, Quality::Stale);
        assert_eq!(r.value, Some(Value::Real(1.0)), "last value is kept");
        t.apply_poll(1, &refs, &Err(timeout()), 2000);
        assert_eq!(
            t.reading(1, pv(1), 2000).unwrap().quality,
            Quality::CommLost
        );
        assert_eq!(t.consecutive_failures(1), 2);

        t.apply_poll(
            1,
            &refs,
            &Ok(vec![Ok(Value::Real(2.0)), Ok(Value::Real(3.0))]),
            3000,
        );
        assert_eq!(t.reading(1, pv(2), 3000).unwrap().quality, Quality::Good);
        assert_eq!(t.consecutive_failures(1), 0);
    }

    #[test]
    fn old_values_read_stale() {
        let mut t = PointTracker::new(QualityPolicy {
            comm_lost_after: 3,
            stale_after_ms: 1000,
        });
        t.apply_value(5, pv(1), Value::Real(4.0), 0);
        assert_eq!(t.reading(5, pv(1), 1000).unwrap().quality, Quality::Good);
        assert_eq!(t.reading(5, pv(1), 1001).unwrap().quality, Quality::Stale);
    }
}
